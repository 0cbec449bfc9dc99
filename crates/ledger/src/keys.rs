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
    /// A provider by id.
    Provider = 5,
    /// A provider id by owner address.
    ProviderOwner = 6,
    /// An offer by id.
    Offer = 7,
    /// A job by id.
    Job = 8,
    /// A work unit by job id and unit index.
    Unit = 9,
    /// An app by module hash.
    App = 10,
    /// The deadlines falling due at a height.
    Deadline = 11,
    /// A provider's open replicas, by provider id: what its worker must do.
    Work = 12,
    /// The assignments made by the batch match of a block, by height.
    Assignments = 13,
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

/// The key of a work unit.
pub fn unit_key(job: u64, unit: u32) -> Key {
    let mut key = [0u8; KEY_LEN];
    key[0] = Tag::Unit as u8;
    key[1..9].copy_from_slice(&job.to_be_bytes());
    key[9..13].copy_from_slice(&unit.to_be_bytes());
    key
}

/// The key of the id counters.
pub fn counters_key() -> Key {
    Tag::Meta.key_u64(2)
}

/// The key of the list of offers on the book.
pub fn book_key() -> Key {
    Tag::Meta.key_u64(3)
}

/// The key of the list of open jobs.
pub fn open_jobs_key() -> Key {
    Tag::Meta.key_u64(4)
}

/// The key of the list of published apps.
pub fn apps_key() -> Key {
    Tag::Meta.key_u64(5)
}

/// The key of the chain metadata record.
pub(crate) fn meta_key() -> Key {
    Tag::Meta.key_u64(0)
}

/// The key of the parameters record.
pub(crate) fn params_key() -> Key {
    Tag::Meta.key_u64(1)
}
