//! The authenticated state store: one QMDB `any` database of ledger keys to encoded records.

use commonware_codec::RangeCfg;
use commonware_cryptography::Sha256;
use commonware_glue::stateful::db::{DatabaseSet, Shared};
use commonware_parallel::Sequential;
use commonware_runtime::{Spawner, buffer::paged::CacheRef};
use commonware_storage::{
    Context as StorageContext,
    journal::contiguous::variable::Config as LogConfig,
    merkle::full::Config as MerkleConfig,
    mmr,
    qmdb::any::{VariableConfig, unordered::variable},
    translator::{EightCap, Hashed},
};
use commonware_utils::{NZU64, NZUsize, sequence::FixedBytes};
use exo_ledger::{KEY_LEN, Key};
use std::num::NonZeroUsize;

/// A ledger key as the store sees it.
pub type StateKey = FixedBytes<KEY_LEN>;
/// Largest record the store accepts, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The state database.
pub type StateDb<E> =
    variable::Db<mmr::Family, E, StateKey, Vec<u8>, Sha256, Hashed<EightCap>, Sequential>;
/// The database set managed by `stateful`.
pub type StateDatabases<E> = Shared<StateDb<E>>;
/// A speculative batch of the state database.
pub type StateUnmerkleized<E> = <StateDatabases<E> as DatabaseSet<E>>::Unmerkleized;

const IO_BUFFER: NonZeroUsize = NZUsize!(64 * 1024);

/// The configuration type of the state database.
pub type StateConfig = VariableConfig<Hashed<EightCap>, ((), (RangeCfg<usize>, ())), Sequential>;

/// The storage layout of a validator's state database under `prefix`.
pub fn state_config(prefix: &str, page_cache: CacheRef) -> StateConfig {
    VariableConfig {
        merkle_config: MerkleConfig {
            journal_partition: format!("{prefix}-state-merkle-journal"),
            metadata_partition: format!("{prefix}-state-merkle-metadata"),
            items_per_blob: NZU64!(4096),
            write_buffer: IO_BUFFER,
            replay_buffer: IO_BUFFER,
            strategy: Sequential,
            page_cache: page_cache.clone(),
        },
        journal_config: LogConfig {
            partition: format!("{prefix}-state-log"),
            items_per_section: NZU64!(4096),
            compression: None,
            codec_config: ((), (RangeCfg::new(0..=MAX_VALUE_BYTES), ())),
            page_cache,
            write_buffer: IO_BUFFER,
            replay_buffer: IO_BUFFER,
        },
        // The index only needs to spread keys; the seed is fixed so that runs are reproducible.
        translator: Hashed::from_seed(0x45584f44, EightCap),
        init_cache: Some(NZUsize!(4096)),
        init_buffer: NZUsize!(1 << 20),
        init_concurrency: (),
    }
}

/// Read access to finalized state, for the API.
pub struct StateReader<E: StorageContext + Spawner> {
    databases: StateDatabases<E>,
}

impl<E: StorageContext + Spawner> Clone for StateReader<E> {
    fn clone(&self) -> Self {
        Self {
            databases: self.databases.clone(),
        }
    }
}

impl<E: StorageContext + Spawner> StateReader<E> {
    pub fn new(databases: StateDatabases<E>) -> Self {
        Self { databases }
    }

    /// The finalized value of `key`.
    pub async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, String> {
        let db = self.databases.read().await;
        db.get(&StateKey::new(*key))
            .await
            .map_err(|e| e.to_string())
    }
}

/// The state-sync source of a validator that neither fetches nor serves state.
///
/// Commonware's peer resolver for QMDB (2026.10) serves only databases whose operations decode
/// without configuration, which rules out variable-size values. Until that changes, a node that
/// was down or is new catches up by replaying finalized blocks that marshal backfills from its
/// peers; this source answers every request with an error and is never asked in practice,
/// because no startup requests peer state sync.
pub struct NoStateSync<E>(std::marker::PhantomData<fn() -> E>);

impl<E> Clone for NoStateSync<E> {
    fn clone(&self) -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<E> Default for NoStateSync<E> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// Peer state sync is not offered.
#[derive(Debug, thiserror::Error)]
#[error("peer state sync is not offered by this node")]
pub struct StateSyncUnavailable;

impl<E: StorageContext + Spawner> commonware_glue::stateful::db::AttachableResolver<StateDb<E>>
    for NoStateSync<E>
{
    async fn attach_database(&self, _db: Shared<StateDb<E>>) {}
}

impl<E: StorageContext + Spawner> commonware_storage::qmdb::sync::Source for NoStateSync<E> {
    type Family = mmr::Family;
    type Digest = commonware_cryptography::sha256::Digest;
    type Op = <StateDb<E> as commonware_storage::qmdb::sync::Database>::Op;
    type Error = StateSyncUnavailable;

    async fn serve(
        &self,
        _request: commonware_storage::qmdb::sync::Request<mmr::Family>,
    ) -> commonware_storage::qmdb::sync::source::Result<Self> {
        Err(StateSyncUnavailable)
    }
}
