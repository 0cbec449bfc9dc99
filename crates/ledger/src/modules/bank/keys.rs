//! The bank's tables. Frozen: a new table takes the next free byte.

use super::Pot;
use crate::state::{Key, Namespace, keys};
use exo_types::Address;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// An account (balance and nonce) by address.
    Account = 0,
    /// A pot's balance by pot.
    Pot = 1,
    /// The supply (one record).
    Supply = 2,
    /// Who first funded an account by transfer, and when (a [`super::Funding`]), by address:
    /// written once per account, never grown.
    Funding = 3,
}

pub fn account_key(address: &Address) -> Key {
    keys::key(Namespace::Bank, Table::Account as u8, address.as_ref())
}

pub fn pot_key(pot: Pot) -> Key {
    keys::key(Namespace::Bank, Table::Pot as u8, &pot.id())
}

pub fn supply_key() -> Key {
    keys::key_u64(Namespace::Bank, Table::Supply as u8, 0)
}

pub fn funding_key(address: &Address) -> Key {
    keys::key(Namespace::Bank, Table::Funding as u8, address.as_ref())
}
