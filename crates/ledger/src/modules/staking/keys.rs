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
    /// A provider owner's accepted work units in an epoch ([`super::Units`]), by the hash of
    /// epoch and owner; removed when the owner is paid.
    Units = 9,
    /// The provider owners with work in an epoch ([`super::Owner`]), by epoch and position
    /// in the order they first earned; removed when the owner is paid.
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
    /// An epoch's provider owners and units, then its payout ([`super::ProviderPayout`]), by
    /// epoch; removed when the payout is complete.
    Payout = 15,
    /// The ended epochs whose providers wait for their payout ([`super::PayoutQueue`]), one
    /// record.
    PayoutQueue = 16,
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

/// A key of `table` by an epoch and an address: the hash of both, since together they are
/// longer than an id.
fn by_epoch_and_address(table: Table, epoch: u64, address: &Address) -> Key {
    let mut id = epoch.to_be_bytes().to_vec();
    id.extend_from_slice(address.as_ref());
    let hash = exo_types::hash_bytes(&id);
    keys::key(Namespace::Staking, table as u8, hash.as_ref())
}

pub fn exposure_key(epoch: u64, validator: &Address) -> Key {
    by_epoch_and_address(Table::Exposure, epoch, validator)
}

pub fn tally_key(consensus_key: &Address) -> Key {
    by_address(Table::Tally, consensus_key)
}

pub fn units_key(epoch: u64, owner: &Address) -> Key {
    by_epoch_and_address(Table::Units, epoch, owner)
}

/// The provider owner at `position` of `epoch`'s work: the epoch then the position, both
/// big-endian, so that an epoch's owners sort together and in order.
pub fn worker_key(epoch: u64, position: u64) -> Key {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&epoch.to_be_bytes());
    id[8..].copy_from_slice(&position.to_be_bytes());
    keys::key(Namespace::Staking, Table::Workers as u8, &id)
}

pub fn payout_key(epoch: u64) -> Key {
    keys::key_u64(Namespace::Staking, Table::Payout as u8, epoch)
}

pub fn payout_queue_key() -> Key {
    keys::key_u64(Namespace::Staking, Table::PayoutQueue as u8, 0)
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
