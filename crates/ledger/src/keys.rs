//! State keys: one tag byte and a 32-byte identifier.
//!
//! The key layout is frozen like every encoded type: the authenticated store commits to it.

/// Length of every state key.
pub const KEY_LEN: usize = 33;
/// A state key.
pub type Key = [u8; KEY_LEN];

/// What a key holds. Tags are frozen; new kinds take new tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Tag {
    /// Chain-wide records ([`crate::ChainMeta`], [`crate::Params`]).
    Meta = 0,
    /// An account by address.
    Account = 1,
    /// A receipt by transaction hash.
    Receipt = 2,
    /// A consensus fault by the hash of its record.
    Evidence = 3,
    /// A validator by public key.
    Validator = 4,
}

impl Tag {
    /// A key of this tag over a 32-byte identifier.
    pub fn key(self, id: &[u8; 32]) -> Key {
        let mut key = [0u8; KEY_LEN];
        key[0] = self as u8;
        key[1..].copy_from_slice(id);
        key
    }

    /// A key of this tag over an encodable identifier of exactly 32 bytes.
    pub fn key_of(self, id: &impl AsRef<[u8]>) -> Key {
        let mut key = [0u8; KEY_LEN];
        key[0] = self as u8;
        let bytes = id.as_ref();
        let n = bytes.len().min(32);
        key[1..1 + n].copy_from_slice(&bytes[..n]);
        key
    }

    /// A key of this tag over a small integer (chain-wide singletons).
    pub fn key_u64(self, id: u64) -> Key {
        let mut key = [0u8; KEY_LEN];
        key[0] = self as u8;
        key[25..].copy_from_slice(&id.to_be_bytes());
        key
    }
}

/// The key of the chain metadata record.
pub(crate) fn meta_key() -> Key {
    Tag::Meta.key_u64(0)
}

/// The key of the parameters record.
pub(crate) fn params_key() -> Key {
    Tag::Meta.key_u64(1)
}
