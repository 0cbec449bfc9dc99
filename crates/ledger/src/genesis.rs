//! The genesis: chain id, parameters, funded accounts and the first committee.

use crate::{
    modules::{
        market::{MarketParams, ParamsError},
        staking::{StakingParams, StakingParamsError},
    },
    state::Record,
};
use commonware_codec::{Copying, Error, ReadExt, Write};
use exo_types::{Address, Amount, address_from_hex, write_bytes};
use serde::{Deserialize, Serialize};

/// Chain parameters: the block runner's own, then each module's in a section of its own
/// (`[params.market]` in a genesis file) with its own bounds. Stored in state at genesis;
/// later governance may change them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Smallest fee a transaction may offer, in base units.
    #[serde(with = "base_units")]
    pub min_fee: Amount,
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Blocks per epoch: the committee can change only at an epoch boundary.
    pub epoch_length: u64,
    /// The compute market's.
    pub market: MarketParams,
    /// Staking's (`[params.staking]`).
    pub staking: StakingParams,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_fee: Amount(1_000),
            max_block_txs: 5_000,
            epoch_length: 100_000,
            market: MarketParams::default(),
            staking: StakingParams::default(),
        }
    }
}

impl Record for Params {
    const WHAT: &'static str = "params";
    const MAX_BYTES: usize = 1_024;
    fn put(&self, out: &mut Vec<u8>) {
        self.min_fee.write(out);
        self.max_block_txs.write(out);
        self.epoch_length.write(out);
        self.market.put(out);
        self.staking.put(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            min_fee: Amount::read(buf)?,
            max_block_txs: u32::read(buf)?,
            epoch_length: u64::read(buf)?,
            market: MarketParams::take(buf)?,
            staking: StakingParams::take(buf)?,
        })
    }
}

/// An account funded at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// Hex address.
    pub address: String,
    /// Balance in base units.
    #[serde(with = "base_units")]
    pub balance: Amount,
}

/// Everything a new chain starts from. Every validator must load byte-identical genesis; its
/// hash is committed in the genesis block, so a mismatch cannot go unnoticed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    pub params: Params,
    pub accounts: Vec<GenesisAccount>,
    /// Hex public keys of the first committee, in any order.
    pub validators: Vec<String>,
}

/// Why a genesis cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("chain id must be 1 to {} bytes", exo_types::MAX_CHAIN_ID_LEN)]
    ChainId,
    #[error("{0:?} is not a hex address")]
    Address(String),
    #[error("account {0} appears twice")]
    DuplicateAccount(String),
    #[error("total supply overflows")]
    Supply,
    #[error("at least one validator is needed")]
    NoValidators,
    #[error("epoch length must be at least 2 blocks")]
    EpochLength,
    #[error("max_block_txs must be at least 1")]
    BlockTxs,
    #[error(transparent)]
    Market(#[from] ParamsError),
    #[error(transparent)]
    Staking(#[from] StakingParamsError),
    #[error("at most {max} genesis validators (the staking module's max_validators)")]
    TooManyValidators { max: u32 },
}

impl Genesis {
    /// Checks the genesis and returns the funded accounts, sorted by address.
    pub fn accounts(&self) -> Result<Vec<(Address, Amount)>, GenesisError> {
        if self.chain_id.is_empty() || self.chain_id.len() > exo_types::MAX_CHAIN_ID_LEN {
            return Err(GenesisError::ChainId);
        }
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for account in &self.accounts {
            let address = address_from_hex(&account.address)
                .ok_or_else(|| GenesisError::Address(account.address.clone()))?;
            accounts.push((address, account.balance));
        }
        accounts.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in accounts.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(GenesisError::DuplicateAccount(exo_types::address_to_hex(
                    &pair[0].0,
                )));
            }
        }
        accounts
            .iter()
            .try_fold(Amount::ZERO, |sum, (_, b)| sum.checked_add(*b))
            .ok_or(GenesisError::Supply)?;
        Ok(accounts)
    }

    /// Checks the genesis and returns the committee, sorted by public key.
    pub fn validators(&self) -> Result<Vec<Address>, GenesisError> {
        let mut validators = Vec::with_capacity(self.validators.len());
        for text in &self.validators {
            validators
                .push(address_from_hex(text).ok_or_else(|| GenesisError::Address(text.clone()))?);
        }
        if validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        validators.sort();
        validators.dedup();
        Ok(validators)
    }

    /// Checks everything a node needs before it starts.
    pub fn validate(&self) -> Result<(), GenesisError> {
        self.accounts()?;
        self.validators()?;
        if self.params.epoch_length < 2 {
            return Err(GenesisError::EpochLength);
        }
        if self.params.max_block_txs == 0 {
            return Err(GenesisError::BlockTxs);
        }
        self.params.market.validate()?;
        self.params.staking.validate()?;
        self.params.staking.epoch_mint(self.params.epoch_length)?;
        if self.validators()?.len() > self.params.staking.max_validators as usize {
            return Err(GenesisError::TooManyValidators {
                max: self.params.staking.max_validators,
            });
        }
        Ok(())
    }

    /// A canonical encoding of the genesis, for its hash: every list is preceded by its
    /// length, so that no two geneses share an encoding. Only a genesis that validates has one.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, GenesisError> {
        use commonware_codec::Encode;
        let accounts = self.accounts()?;
        let validators = self.validators()?;
        let mut out = Vec::new();
        write_bytes(self.chain_id.as_bytes(), &mut out);
        let params = self.params.to_bytes();
        (params.len() as u64).write(&mut out);
        out.extend_from_slice(&params);
        (accounts.len() as u64).write(&mut out);
        for (address, balance) in accounts {
            out.extend_from_slice(&address.encode());
            out.extend_from_slice(&balance.encode());
        }
        (validators.len() as u64).write(&mut out);
        for validator in validators {
            out.extend_from_slice(&validator.encode());
        }
        Ok(out)
    }

    /// The genesis hash committed by the genesis block. An invalid genesis hashes as the
    /// empty string does: no node starts from one (`validate` refuses it first).
    pub fn hash(&self) -> exo_types::Digest {
        exo_types::hash_bytes(&self.canonical_bytes().unwrap_or_default())
    }
}

/// Serde for amounts as decimal strings of base units: JSON and TOML numbers cannot carry u128.
pub mod base_units {
    use exo_types::Amount;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(amount: &Amount, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&amount.0.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let text = String::deserialize(d)?;
        Amount::parse_base_units(&text).map_err(D::Error::custom)
    }
}
