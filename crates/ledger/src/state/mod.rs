//! The state as the ledger sees it: keys, the block's cache over the store, typed records.
//!
//! Nothing here knows a module's rules. Reads that the cache cannot answer yet end in
//! [`Halt::Missing`]; a record that breaks its bound or does not decode ends in a [`Fault`].

mod cache;
pub mod keys;

pub use cache::{Checkpoint, MemoryBacking, Missing, StateCache};
pub use keys::{KEY_LEN, Key, Namespace};

use bytes::Buf as _;

/// Largest value the authenticated store keeps under one key.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
use commonware_codec::{Copying, Error};

/// Something the node must not go past: the state is not what this code wrote.
///
/// A fault is never a verdict on a transaction. The block runner stops, and so does the node,
/// loudly: going on would sign a state root that other validators may not share.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("corrupt {what} record in state: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("{what} record of {size} bytes is over its bound of {max}")]
    RecordTooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    #[error("{0}")]
    Invariant(String),
    #[error(
        "tokens not conserved in this block: balances and pots gained {held_in} and lost \
         {held_out}, while the supply gained {supply_in} and lost {supply_out}"
    )]
    Conservation {
        held_in: u128,
        held_out: u128,
        supply_in: u128,
        supply_out: u128,
    },
    #[error("arithmetic overflow in {0}")]
    Overflow(&'static str),
}

/// Why a step of the ledger stopped before its end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Halt {
    /// Keys to load from the store before running the step again.
    #[error(transparent)]
    Missing(#[from] Missing),
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// A state record's frozen encoding and its bound.
pub trait Record: Sized {
    /// What the record is, for faults and logs.
    const WHAT: &'static str;
    /// Largest encoding allowed, checked at write and at read; at most the store's value bound
    /// ([`MAX_VALUE_BYTES`]), so that a record that breaks it is caught where it is written
    /// instead of failing the store's own check later.
    const MAX_BYTES: usize;

    fn put(&self, out: &mut Vec<u8>);
    /// Reads the record from the front of `buf`, advancing it.
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.put(&mut out);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut buf = Copying(bytes);
        let value = Self::take(&mut buf)?;
        if buf.has_remaining() {
            return Err(Error::ExtraData(buf.remaining()));
        }
        Ok(value)
    }
}

/// Reads a record; a value that does not decode, or is over its bound, is a fault.
pub fn load<T: Record>(cache: &StateCache, key: &Key) -> Result<Option<T>, Halt> {
    let Some(bytes) = cache.get(key)? else {
        return Ok(None);
    };
    decode(bytes).map(Some).map_err(Halt::Fault)
}

/// Decodes a stored record, checking its bound.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, Fault> {
    if bytes.len() > T::MAX_BYTES {
        return Err(Fault::RecordTooLarge {
            what: T::WHAT,
            size: bytes.len(),
            max: T::MAX_BYTES,
        });
    }
    T::from_bytes(bytes).map_err(|e| Fault::Corrupt {
        what: T::WHAT,
        detail: e.to_string(),
    })
}

/// Reads a record that another record refers to: its absence is a fault.
pub fn expect<T: Record>(cache: &StateCache, key: &Key) -> Result<T, Halt> {
    load(cache, key)?.ok_or_else(|| {
        Halt::Fault(Fault::Invariant(format!(
            "a {} record is referred to but missing",
            T::WHAT
        )))
    })
}

/// Writes a record, checking its bound first: a record over it never reaches the store.
pub fn store<T: Record>(cache: &mut StateCache, key: Key, value: &T) -> Result<(), Fault> {
    let bytes = value.to_bytes();
    if bytes.len() > T::MAX_BYTES {
        return Err(Fault::RecordTooLarge {
            what: T::WHAT,
            size: bytes.len(),
            max: T::MAX_BYTES,
        });
    }
    cache.put(key, Some(bytes));
    Ok(())
}

/// Deletes a record.
pub fn remove(cache: &mut StateCache, key: Key) {
    cache.put(key, None);
}

/// A read of one record that a client of the ledger (the API, tools) makes without knowing the
/// storage layout: the key to fetch, and the decoder for what comes back.
#[derive(Debug)]
pub struct Query<T> {
    pub key: Key,
    _record: std::marker::PhantomData<fn() -> T>,
}

impl<T: Record> Query<T> {
    pub fn new(key: Key) -> Self {
        Self {
            key,
            _record: std::marker::PhantomData,
        }
    }

    /// Decodes the value fetched for [`Query::key`] (`None` when absent).
    pub fn decode(&self, value: Option<&[u8]>) -> Result<Option<T>, Fault> {
        value.map(decode).transpose()
    }
}
