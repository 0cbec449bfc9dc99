//! The genesis: chain id, parameters, funded accounts and the first committee.

use bytes::BufMut;
use commonware_codec::{Buf, DecodeExt, EncodeSize, Error, Read, ReadExt, Write};
use exo_types::{Address, Amount, address_from_hex, write_bytes};
use serde::{Deserialize, Serialize};

/// Chain parameters. Stored in state at genesis; later governance may change them.
///
/// The compute-market parameters, and why they have these defaults, are described in
/// ARCHITECTURE.md ("Proof of task").
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
    /// Smallest bond a provider locks to register.
    #[serde(with = "base_units")]
    pub min_provider_bond: Amount,
    /// Blocks a replica has to commit its result after assignment.
    pub commit_window: u64,
    /// Blocks replicas have to reveal once every replica of the unit committed.
    pub reveal_window: u64,
    /// Replicas a unit may get beyond its trust level before it fails.
    pub extra_replicas: u32,
    /// Chance, in parts per million, that a unit held by one provider whose weight reaches the
    /// job's trust level also gets a hidden audit replica.
    pub audit_ppm: u32,
    /// Reputation from which a provider's result weighs 2 instead of 1.
    pub trusted_reputation: u32,
    /// Confirmed results (results another replica agreed with) a provider needs before its
    /// result weighs 2.
    pub trusted_min_valid: u64,
    /// Share of provider payments paid to the block's proposer, in basis points.
    pub protocol_fee_bps: u32,
    /// Share of its bond a provider loses for a wrong result, in basis points.
    pub slash_wrong_bps: u32,
    /// Share of its bond a provider loses for a missed deadline, in basis points.
    pub slash_no_show_bps: u32,
    /// Most offers on the book.
    pub max_open_offers: u32,
    /// Most live offers of one provider.
    pub max_offers_per_provider: u32,
    /// Most open jobs.
    pub max_open_jobs: u32,
    /// Reputation below which a provider is not matched at all, whatever a job asks: a new
    /// provider (at [`crate::REPUTATION_START`]) caught with one wrong result falls below it.
    pub min_match_reputation: u32,
    /// Most open replicas of a provider on probation: one without a confirmed result (a
    /// result another replica agreed with). A new identity cannot take many units before its
    /// first check.
    pub probation_slots: u32,
    /// Confirmed results that end a provider's probation.
    pub probation_results: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_fee: Amount(1_000),
            max_block_txs: 5_000,
            epoch_length: 100_000,
            min_provider_bond: Amount::from_exo(10),
            commit_window: 600,
            reveal_window: 300,
            extra_replicas: 2,
            audit_ppm: 100_000,
            trusted_reputation: 800,
            trusted_min_valid: 20,
            protocol_fee_bps: 200,
            slash_wrong_bps: 2_000,
            slash_no_show_bps: 200,
            max_open_offers: 10_000,
            max_offers_per_provider: 8,
            max_open_jobs: 1_000,
            min_match_reputation: 400,
            probation_slots: 1,
            probation_results: 1,
        }
    }
}

impl Write for Params {
    fn write(&self, buf: &mut impl BufMut) {
        self.min_fee.write(buf);
        self.max_block_txs.write(buf);
        self.epoch_length.write(buf);
        self.min_provider_bond.write(buf);
        self.commit_window.write(buf);
        self.reveal_window.write(buf);
        self.extra_replicas.write(buf);
        self.audit_ppm.write(buf);
        self.trusted_reputation.write(buf);
        self.trusted_min_valid.write(buf);
        self.protocol_fee_bps.write(buf);
        self.slash_wrong_bps.write(buf);
        self.slash_no_show_bps.write(buf);
        self.max_open_offers.write(buf);
        self.max_offers_per_provider.write(buf);
        self.max_open_jobs.write(buf);
        self.min_match_reputation.write(buf);
        self.probation_slots.write(buf);
        self.probation_results.write(buf);
    }
}
impl EncodeSize for Params {
    fn encode_size(&self) -> usize {
        16 + 4 + 8 + 16 + 8 + 8 + 4 + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 4 + 4 + 4 + 8
    }
}
impl Read for Params {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, Error> {
        Ok(Self {
            min_fee: Amount::read(buf)?,
            max_block_txs: u32::read(buf)?,
            epoch_length: u64::read(buf)?,
            min_provider_bond: Amount::read(buf)?,
            commit_window: u64::read(buf)?,
            reveal_window: u64::read(buf)?,
            extra_replicas: u32::read(buf)?,
            audit_ppm: u32::read(buf)?,
            trusted_reputation: u32::read(buf)?,
            trusted_min_valid: u64::read(buf)?,
            protocol_fee_bps: u32::read(buf)?,
            slash_wrong_bps: u32::read(buf)?,
            slash_no_show_bps: u32::read(buf)?,
            max_open_offers: u32::read(buf)?,
            max_offers_per_provider: u32::read(buf)?,
            max_open_jobs: u32::read(buf)?,
            min_match_reputation: u32::read(buf)?,
            probation_slots: u32::read(buf)?,
            probation_results: u64::read(buf)?,
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
    #[error("extra_replicas must be at most 9 (a unit holds at most 16 replicas)")]
    Replicas,
    #[error("commit and reveal windows must be at least 2 blocks")]
    Windows,
    #[error("basis points must be at most 10000 and audit_ppm at most 1000000")]
    Shares,
    #[error(
        "probation_slots must be at least 1 and min_match_reputation at most the starting reputation"
    )]
    Probation,
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
        let p = &self.params;
        if p.max_block_txs == 0 {
            return Err(GenesisError::BlockTxs);
        }
        if p.extra_replicas > 9 {
            return Err(GenesisError::Replicas);
        }
        if p.commit_window < 2 || p.reveal_window < 2 {
            return Err(GenesisError::Windows);
        }
        if p.protocol_fee_bps > 10_000
            || p.slash_wrong_bps > 10_000
            || p.slash_no_show_bps > 10_000
            || p.audit_ppm > 1_000_000
        {
            return Err(GenesisError::Shares);
        }
        if p.probation_slots == 0 || p.min_match_reputation > crate::REPUTATION_START {
            return Err(GenesisError::Probation);
        }
        Ok(())
    }

    /// A canonical encoding of the genesis, for its hash.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        use commonware_codec::Encode;
        let mut out = Vec::new();
        write_bytes(self.chain_id.as_bytes(), &mut out);
        out.extend_from_slice(&self.params.encode());
        for (address, balance) in self.accounts().unwrap_or_default() {
            out.extend_from_slice(&address.encode());
            out.extend_from_slice(&balance.encode());
        }
        for validator in self.validators().unwrap_or_default() {
            out.extend_from_slice(&validator.encode());
        }
        out
    }

    /// The genesis hash committed by the genesis block.
    pub fn hash(&self) -> exo_types::Digest {
        exo_types::hash_bytes(&self.canonical_bytes())
    }
}

/// Decodes stored parameters.
pub(crate) fn decode_params(bytes: &[u8]) -> Result<Params, Error> {
    Params::decode(bytes.to_vec())
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
