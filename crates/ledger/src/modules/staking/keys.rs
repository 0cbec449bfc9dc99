//! Staking's tables. Frozen: a new table takes the next free byte.

use crate::state::{Key, Namespace, keys};
use exo_types::Address;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// What an account has staked ([`super::Staker`]), by address.
    Staker = 0,
    /// A validator candidate ([`super::Validator`]), by its account's address.
    Validator = 1,
    /// The account that registered a consensus key, by consensus key.
    ConsensusKey = 2,
    /// The id counter (one record).
    Counters = 3,
    /// The addresses of every validator candidate (one record).
    Validators = 4,
    /// The addresses of every nominator (one record).
    Nominators = 5,
    /// The committee of an epoch, by epoch.
    Committee = 6,
    /// Who backs an elected validator in an epoch, by the hash of epoch and validator.
    Exposure = 7,
    /// A member's blocks proposed, leader slots missed and votes in the running epoch
    /// ([`super::Tally`]), by consensus key; cleared by the epoch's payout.
    Tally = 8,
    /// A provider owner's accepted work units in the running epoch ([`super::Units`]), by
    /// address; cleared by the epoch's payout.
    Units = 9,
    /// The provider owners with work in the running epoch, in the order they first earned
    /// ([`super::Addresses`]), one record.
    Workers = 10,
    /// Offences waiting for their slash or still inside the window ([`super::Offences`]), one
    /// record.
    Offences = 11,
    /// The exposure an offender had in the epoch of its fault, kept until its slash applies,
    /// by offender address.
    OffenceExposure = 12,
    /// What an epoch paid and slashed ([`super::EpochRecord`]), by epoch.
    Epoch = 13,
    /// Certificates of their parents the running epoch's blocks carried
    /// ([`super::Certificates`]), one record; cleared by the epoch's payout.
    Certificates = 14,
}

fn by_address(table: Table, address: &Address) -> Key {
    keys::key(Namespace::Staking, table as u8, address.as_ref())
}

pub fn staker_key(address: &Address) -> Key {
    by_address(Table::Staker, address)
}

pub fn validator_key(address: &Address) -> Key {
    by_address(Table::Validator, address)
}

pub fn consensus_key_key(consensus_key: &Address) -> Key {
    by_address(Table::ConsensusKey, consensus_key)
}

pub fn counters_key() -> Key {
    keys::key_u64(Namespace::Staking, Table::Counters as u8, 0)
}

pub fn validators_key() -> Key {
    keys::key_u64(Namespace::Staking, Table::Validators as u8, 0)
}

pub fn nominators_key() -> Key {
    keys::key_u64(Namespace::Staking, Table::Nominators as u8, 0)
}

pub fn committee_key(epoch: u64) -> Key {
    keys::key_u64(Namespace::Staking, Table::Committee as u8, epoch)
}

pub fn exposure_key(epoch: u64, validator: &Address) -> Key {
    let mut id = epoch.to_be_bytes().to_vec();
    id.extend_from_slice(validator.as_ref());
    let hash = exo_types::hash_bytes(&id);
    keys::key(Namespace::Staking, Table::Exposure as u8, hash.as_ref())
}

pub fn tally_key(consensus_key: &Address) -> Key {
    by_address(Table::Tally, consensus_key)
}

pub fn units_key(owner: &Address) -> Key {
    by_address(Table::Units, owner)
}

pub fn workers_key() -> Key {
    keys::key_u64(Namespace::Staking, Table::Workers as u8, 0)
}

pub fn offences_key() -> Key {
    keys::key_u64(Namespace::Staking, Table::Offences as u8, 0)
}

pub fn offence_exposure_key(offender: &Address) -> Key {
    by_address(Table::OffenceExposure, offender)
}

pub fn epoch_key(epoch: u64) -> Key {
    keys::key_u64(Namespace::Staking, Table::Epoch as u8, epoch)
}

pub fn certificates_key() -> Key {
    keys::key_u64(Namespace::Staking, Table::Certificates as u8, 0)
}
