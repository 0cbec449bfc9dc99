//! The bank's records, with their frozen encodings.

use crate::state::Record;
use commonware_codec::{Copying, Error, ReadExt, Write};
use exo_types::{Address, Amount};
use std::fmt;

/// An account's balance and the nonce its next transaction must carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: Amount,
    pub nonce: u64,
}

impl Record for Account {
    const WHAT: &'static str = "account";
    const MAX_BYTES: usize = 24;
    fn put(&self, out: &mut Vec<u8>) {
        self.balance.write(out);
        self.nonce.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            balance: Amount::read(buf)?,
            nonce: u64::read(buf)?,
        })
    }
}

/// Where value at rest is held for a module. Kinds are frozen; later modules take new ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pot {
    /// A job's escrow: its worst case, paid out as units are accepted, the rest refunded.
    JobEscrow(u64),
    /// A provider's bond, by provider id: slashed by burning, returned on retirement.
    ProviderBond(u64),
    /// A validator's or nominator's stake (staking, next).
    StakeBond(u64),
    /// The price held for a capacity NFT until it is delivered (NFTs, later).
    NftEscrow(u64),
    /// The insurance pool (insurance, later).
    Insurance,
    /// The treasury (governance, later); it also takes the remainders of the epoch's
    /// reward division.
    Treasury,
    /// The epoch's rewards: transaction fees as they are paid and the block reward minted at
    /// the epoch's end, emptied by the payout in the epoch's last block (staking).
    Rewards,
    /// The providers' shares of ended epochs' rewards, until every owner of each is paid
    /// (staking pays a bounded number of owners a block).
    Payouts,
}

impl Pot {
    /// The pot's identifier in its state key: a kind byte and a big-endian id.
    pub fn id(self) -> [u8; 9] {
        let (kind, id): (u8, u64) = match self {
            Self::JobEscrow(id) => (1, id),
            Self::ProviderBond(id) => (2, id),
            Self::StakeBond(id) => (3, id),
            Self::NftEscrow(id) => (4, id),
            Self::Insurance => (5, 0),
            Self::Treasury => (6, 0),
            Self::Rewards => (7, 0),
            Self::Payouts => (8, 0),
        };
        let mut out = [0u8; 9];
        out[0] = kind;
        out[1..].copy_from_slice(&id.to_be_bytes());
        out
    }
}

impl fmt::Display for Pot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JobEscrow(id) => write!(f, "job_escrow({id})"),
            Self::ProviderBond(id) => write!(f, "provider_bond({id})"),
            Self::StakeBond(id) => write!(f, "stake_bond({id})"),
            Self::NftEscrow(id) => write!(f, "nft_escrow({id})"),
            Self::Insurance => f.write_str("insurance"),
            Self::Treasury => f.write_str("treasury"),
            Self::Rewards => f.write_str("rewards"),
            Self::Payouts => f.write_str("payouts"),
        }
    }
}

/// What a pot holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PotBalance(pub Amount);

impl Record for PotBalance {
    const WHAT: &'static str = "pot";
    const MAX_BYTES: usize = 16;
    fn put(&self, out: &mut Vec<u8>) {
        self.0.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self(Amount::read(buf)?))
    }
}

/// The supply: every token in a balance or a pot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Supply {
    pub total: Amount,
    /// Burnt so far (slashing), already taken out of `total`.
    pub burnt: Amount,
}

impl Record for Supply {
    const WHAT: &'static str = "supply";
    const MAX_BYTES: usize = 32;
    fn put(&self, out: &mut Vec<u8>) {
        self.total.write(out);
        self.burnt.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            total: Amount::read(buf)?,
            burnt: Amount::read(buf)?,
        })
    }
}

/// Who first funded an account by a transfer, and at which second of block time. Other
/// modules read it to tell accounts that share a source of funds (the market refuses
/// reputation for work whose requester and provider share one); the bank only records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Funding {
    pub funder: Address,
    pub at_secs: u64,
}

impl Record for Funding {
    const WHAT: &'static str = "funding";
    const MAX_BYTES: usize = 40;
    fn put(&self, out: &mut Vec<u8>) {
        self.funder.write(out);
        self.at_secs.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            funder: Address::read(buf)?,
            at_secs: u64::read(buf)?,
        })
    }
}
