//! State keys: a module's namespace byte, a table byte within the module, a 32-byte id.
//!
//! The layout is frozen like every encoded type: the authenticated store commits to it. A
//! module owns its namespace and numbers its own tables; a new module takes a new namespace,
//! so that no module can read or write another's records by accident.

/// Length of every state key.
pub const KEY_LEN: usize = 34;
/// A state key.
pub type Key = [u8; KEY_LEN];

/// Which module a key belongs to. Frozen; later modules take the next free byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Namespace {
    /// The block runner: chain metadata, parameters, receipts.
    Exec = 0,
    /// Balances, pots and the supply.
    Bank = 1,
    /// Consensus faults and the committee.
    Evidence = 2,
    /// The compute market.
    Market = 3,
    /// Validators, nominations, elections.
    Staking = 4,
}

impl Namespace {
    /// The namespace of `key`, if it is one this ledger knows.
    pub fn of(key: &Key) -> Option<Self> {
        [
            Self::Exec,
            Self::Bank,
            Self::Evidence,
            Self::Market,
            Self::Staking,
        ]
        .into_iter()
        .find(|ns| *ns as u8 == key[0])
    }
}

/// A key of `table` in `ns` over an identifier of at most 32 bytes, left-aligned.
pub fn key(ns: Namespace, table: u8, id: &[u8]) -> Key {
    let mut key = [0u8; KEY_LEN];
    key[0] = ns as u8;
    key[1] = table;
    let n = id.len().min(32);
    key[2..2 + n].copy_from_slice(&id[..n]);
    key
}

/// A key of `table` in `ns` over an integer id (big-endian in the last 8 bytes, so that ids sort
/// in numeric order).
pub fn key_u64(ns: Namespace, table: u8, id: u64) -> Key {
    let mut key = [0u8; KEY_LEN];
    key[0] = ns as u8;
    key[1] = table;
    key[26..].copy_from_slice(&id.to_be_bytes());
    key
}

/// Whether `key` is in table `table` of `ns`.
pub fn in_table(key: &Key, ns: Namespace, table: u8) -> bool {
    key[0] == ns as u8 && key[1] == table
}
