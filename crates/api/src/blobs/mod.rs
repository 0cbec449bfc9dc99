//! The node's blob store: content-addressed blobs (job inputs, app modules, output archives)
//! that workers and requesters exchange through the API, and the index of each unit's outputs.
//!
//! A blob is named by the BLAKE3 of its bytes, computed by the store as it receives them, so a
//! client cannot store bytes under another hash. It is verified once, at write; a whole read is
//! hashed again (a blob corrupted on disk is then deleted and reported, never served whole),
//! but a range is served from the stored bytes without hashing the rest, so a one-byte request
//! costs one byte. Total disk use is bounded: a write that would pass the bound is refused
//! (507).
//!
//! Every blob stored for a client is owned: by the account that signed its upload, counted
//! against that account's quota, or by the peers it was pulled from. An archive registered as
//! a unit's output leaves its uploader's quota (only a unit's replicas can register one), so
//! that a busy provider's results never crowd out its next ones before they are collected. An
//! owned blob that nothing on chain references ([`BlobStore::collect`]) is deleted once it is
//! older than the grace period, so junk cannot fill the store for good, and a job's inputs go
//! once the job ended.
//!
//! Layout under the store's directory: `store.redb`, one crash-safe database ([`db`]) holding
//! the ownership records, the outputs indexes (with their last change) and every blob of at
//! most [`SMALL_BLOB_BYTES`] (with a table of their sizes, so that opening the store counts
//! its disk use without reading them); `blobs/<hex hash>`, one file per bigger blob ([`files`]); and
//! `tmp/` (emptied on open), where a big upload is written before it is renamed into place. An
//! accepted unit's upload and registration (a 100-byte archive) cost no new file: the writes of
//! all the uploads in flight share one durable commit. A directory written by the older
//! layout (a file per blob, per ownership record and per outputs index) is imported on open
//! ([`legacy`]).

mod db;
mod files;
mod legacy;

use crate::{ApiError, wire};
use axum::body::Body;
use db::{Change, Db, IndexRecord, Outcome, Tables, storage};
use exo_types::Hash32;
use files::{CHUNK_BYTES, Files, hash_file};
use futures::{StreamExt, future::BoxFuture};
use serde::{Deserialize, Serialize};
use std::{
    collections::{HashMap, HashSet},
    io::ErrorKind,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Archives kept for one unit before it is accepted: one per replica (a unit has at most 16),
/// so that no replica's archive can be crowded out by another's.
pub const MAX_OUTPUT_CANDIDATES: usize = 16;
/// Blobs of at most this many bytes live in the database; bigger ones are files.
///
/// Output archives (100 bytes for a simple app, 10 KiB to 2 MiB for a render), small inputs
/// and most modules fall below it, and each would otherwise cost a file, its inode and two
/// syncs; in the database they cost a share of one commit. Above it, a file costs little next
/// to the bytes it holds, a range read seeks in it instead of loading the value, and the
/// database's pages stay small. It equals [`CHECK_FIRST_BYTES`]: a blob in the database is
/// always read whole into memory and checked before it is served, which holds at most this
/// much per read.
pub const SMALL_BLOB_BYTES: u64 = 1024 * 1024;
/// Blobs read whole into memory at once (to unpack an archive): with 64 MiB blobs, this bounds
/// what such reads hold to 256 MiB however many clients ask.
const MAX_WHOLE_READS: usize = 4;
/// A whole blob up to this size is checked before its first byte is served (a corrupt one is
/// answered 500); a bigger one is checked as it streams, and its stream is cut on a mismatch.
const CHECK_FIRST_BYTES: u64 = 1024 * 1024;
const _: () = assert!(SMALL_BLOB_BYTES <= CHECK_FIRST_BYTES);

/// Other nodes' blob stores, asked when this node misses a blob or a unit's outputs: a client
/// can then fetch from any node what was uploaded to one. What a peer answers is checked like
/// an upload: a blob against its hash, an outputs archive against the accepted digest.
pub trait PeerBlobs: std::fmt::Debug + Send + Sync + 'static {
    /// The bytes of blob `hash` from some peer, if one holds it in at most `max_bytes`.
    fn blob(&self, hash: Hash32, max_bytes: u64) -> BoxFuture<'_, Option<Vec<u8>>>;
    /// The archive some peer holds for the accepted outputs of `unit` of `job`, as of a
    /// finalized height of at least `height` (the one at which this node read the verdict).
    fn outputs(&self, job: u64, unit: u32, height: u64) -> BoxFuture<'_, Option<Hash32>>;
}

/// A blob store on disk. Cheap to clone; clones share the disk-use counter and the database.
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_total_bytes: u64,
    /// Bytes of stored blobs plus bytes reserved by uploads in progress.
    used_bytes: Mutex<u64>,
    db: Db,
    files: Files,
    whole_reads: tokio::sync::Semaphore,
    /// Bytes read back and hashed since the store opened (at write, bytes are hashed as they
    /// arrive and not counted).
    hashed_bytes: AtomicU64,
    owners: Mutex<Owners>,
}

// An archive of an outputs batch is a small blob: it goes to the database, never to a file.
const _: () = assert!(wire::MAX_OUTPUTS_BATCH_ARCHIVE_BYTES as u64 <= SMALL_BLOB_BYTES);

/// A small outputs archive checked for its unit, to store and register
/// ([`BlobStore::put_outputs`]).
#[derive(Debug)]
pub struct OutputArchive {
    pub job: u64,
    pub unit: u32,
    /// At most [`SMALL_BLOB_BYTES`].
    pub bytes: Vec<u8>,
    /// Its `archive` is the bytes' hash.
    pub candidate: OutputCandidate,
    /// The unit has its verdict and this is its result: the index keeps it alone.
    pub only: bool,
}

fn too_many_candidates(job: u64, unit: u32) -> ApiError {
    ApiError::Conflict {
        code: "too_many_candidates",
        message: format!(
            "unit {unit} of job {job} already has {MAX_OUTPUT_CANDIDATES} archives waiting for \
             its verdict"
        ),
    }
}

/// Who uploaded each owned blob, and how many bytes each account holds.
#[derive(Debug, Default)]
struct Owners {
    by_blob: HashMap<Hash32, Ownership>,
    used_by: HashMap<Hash32, u64>,
    /// Blobs listed in an outputs index: owned (collected like any other) but counted against
    /// nobody's quota. Derived from the indexes, so a restart finds the same set.
    outputs: HashSet<Hash32>,
}

/// Who a stored blob is counted against, its size and when it was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The uploading account's address; `None` for a blob pulled from a peer.
    #[serde(with = "wire::hex32_opt")]
    pub owner: Option<Hash32>,
    pub size: u64,
    /// Seconds since the Unix epoch, by this node's clock.
    pub stored_unix_secs: u64,
}

/// An upload's owner and what that owner may hold in all.
#[derive(Clone, Copy, Debug)]
pub struct Uploader {
    pub owner: Option<Hash32>,
    pub quota_bytes: u64,
}

/// What a collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub blobs: u64,
    pub bytes: u64,
}

/// Seconds since the Unix epoch, by this node's clock.
pub fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One archive offered for a unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCandidate {
    #[serde(with = "wire::hex32")]
    pub archive: Hash32,
    #[serde(with = "wire::hex32")]
    pub digest: Hash32,
    pub size: u64,
    /// The replica whose provider offered it; `None` for an archive registered after the
    /// verdict (checked against the accepted digest, whoever sent it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
}

/// The archives offered for one unit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputIndex {
    pub candidates: Vec<OutputCandidate>,
}

/// Releases a reservation of disk bytes when dropped, unless kept.
struct Reservation<'a> {
    store: &'a BlobStore,
    bytes: u64,
}

impl Reservation<'_> {
    fn grow(&mut self, bytes: u64) -> Result<(), ApiError> {
        self.store.reserve(bytes)?;
        self.bytes += bytes;
        Ok(())
    }

    /// The reserved bytes now belong to a stored blob.
    fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.store.release(self.bytes);
    }
}

/// Where a stored blob's bytes are.
enum Stored {
    /// In the database: its bytes.
    Small(Vec<u8>),
    /// A file: its size.
    Big(u64),
}

fn open_error(err: redb::Error) -> std::io::Error {
    match err {
        redb::Error::Io(e) => e,
        other => std::io::Error::other(format!("the blob store's database: {other}")),
    }
}

impl BlobStore {
    /// Opens (creating if needed) the store at `dir`, holding at most `max_total_bytes`.
    /// Leftover temporary files of an earlier run are removed, a directory of the older layout
    /// is imported, disk use is counted again and ownership records whose blob is gone are
    /// dropped.
    pub fn open(dir: impl Into<PathBuf>, max_total_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        let files = Files::open(&dir)?;
        let db = Db::open(&dir).map_err(open_error)?;
        legacy::import(&dir, db.database()).map_err(open_error)?;
        let tables = Tables::read(db.database()).map_err(open_error)?;
        let mut used = 0u64;
        let mut small = HashSet::new();
        for (hash, size) in tables.small_sizes().map_err(open_error)? {
            used = used.saturating_add(size);
            small.insert(hash);
        }
        for entry in std::fs::read_dir(dir.join("blobs"))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                used = used.saturating_add(entry.metadata()?.len());
            }
        }
        let mut owners = Owners::default();
        for (_, _, record) in tables.output_indexes().map_err(open_error)? {
            for candidate in record.index.candidates {
                owners.outputs.insert(candidate.archive);
            }
        }
        let mut gone = HashSet::new();
        for (hash, ownership) in tables.owners().map_err(open_error)? {
            if small.contains(&hash) || files.blob_path(&hash).exists() {
                owners.add(hash, ownership);
            } else {
                // A record whose blob is gone: nothing to own.
                gone.insert(hash);
            }
        }
        drop(tables);
        if !gone.is_empty() {
            db::Direct(db.database())
                .drop_owners(&gone)
                .map_err(open_error)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                max_total_bytes,
                used_bytes: Mutex::new(used),
                db,
                files,
                whole_reads: tokio::sync::Semaphore::new(MAX_WHOLE_READS),
                hashed_bytes: AtomicU64::new(0),
                owners: Mutex::new(owners),
            }),
        })
    }

    fn lock_owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.inner.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes of blobs `account` uploaded that the store holds.
    pub fn owned_bytes(&self, account: &Hash32) -> u64 {
        self.lock_owners()
            .used_by
            .get(account)
            .copied()
            .unwrap_or(0)
    }

    /// Who blob `hash` is counted against, if anyone.
    pub fn ownership(&self, hash: &Hash32) -> Option<Ownership> {
        self.lock_owners().by_blob.get(hash).copied()
    }

    /// Durable commits of the store's database since it opened: one per batch of writes that
    /// arrived together.
    pub fn commits(&self) -> u64 {
        self.inner.db.counters().commits()
    }

    /// Writes to the store's database since it opened (a small blob with its ownership, a big
    /// blob's ownership, an outputs index change, a deletion), each answered once committed.
    pub fn writes(&self) -> u64 {
        self.inner.db.counters().writes()
    }

    /// Stores `body` for `uploader`: as [`Self::put`], but counted against the uploader's
    /// quota (refused with 429 `quota_exceeded` past it) and recorded, so that
    /// [`Self::collect`] can delete it once nothing references it. A blob the store already
    /// holds stays its first owner's: the body is read to its end and dropped.
    pub async fn put_for(
        &self,
        body: Body,
        max_blob_bytes: u64,
        expected: Hash32,
        uploader: Uploader,
    ) -> Result<wire::BlobStored, ApiError> {
        if let Ok(size) = self.size(&expected).await {
            // An answer sent over an unread body makes the server close the connection while
            // the client still counts on it: the client's next request on it would fail.
            drain(body, max_blob_bytes).await?;
            return Ok(wire::BlobStored {
                hash: expected,
                size,
            });
        }
        let stored = self
            .put_counted(body, max_blob_bytes, Some(expected), Some(uploader))
            .await?;
        Ok(stored)
    }

    /// Deletes blobs `hashes` and their ownership records, releasing their bytes.
    async fn delete(&self, hashes: Vec<Hash32>) -> Result<(), ApiError> {
        for hash in &hashes {
            let size = self.inner.files.remove(hash).await;
            self.release(size);
        }
        let owners = hashes.clone();
        if let Outcome::Freed(bytes) = self.inner.db.write(Change::Delete { hashes }).await? {
            self.release(bytes);
        }
        let mut by_blob = self.lock_owners();
        for hash in &owners {
            by_blob.remove(hash);
        }
        Ok(())
    }

    /// Deletes every owned blob stored before `older_than_unix_secs` that `referenced` does
    /// not keep and that no outputs index lists. Blobs without an owner (stored before
    /// ownership was recorded) are left alone.
    pub async fn collect(
        &self,
        older_than_unix_secs: u64,
        referenced: &HashSet<Hash32>,
    ) -> Result<Collected, ApiError> {
        let listed = self.indexed_archives().await?;
        let candidates: Vec<(Hash32, u64)> = self
            .lock_owners()
            .by_blob
            .iter()
            .filter(|(hash, o)| {
                o.stored_unix_secs < older_than_unix_secs
                    && !referenced.contains(*hash)
                    && !listed.contains(*hash)
            })
            .map(|(hash, o)| (*hash, o.size))
            .collect();
        let mut collected = Collected::default();
        for (_, size) in &candidates {
            collected.blobs += 1;
            collected.bytes = collected.bytes.saturating_add(*size);
        }
        if !candidates.is_empty() {
            self.delete(candidates.into_iter().map(|(hash, _)| hash).collect())
                .await?;
        }
        Ok(collected)
    }

    /// Every outputs index as stored: its job, unit and record.
    async fn index_records(&self) -> Result<Vec<(u64, u32, IndexRecord)>, ApiError> {
        self.inner
            .db
            .read("list output indexes", |t| t.output_indexes())
            .await
    }

    /// Archives listed in any outputs index.
    async fn indexed_archives(&self) -> Result<HashSet<Hash32>, ApiError> {
        Ok(self
            .index_records()
            .await?
            .into_iter()
            .flat_map(|(_, _, record)| record.index.candidates)
            .map(|candidate| candidate.archive)
            .collect())
    }

    /// Every outputs index: its job, unit and last change (seconds since the Unix epoch).
    pub async fn output_indexes(&self) -> Result<Vec<(u64, u32, u64)>, ApiError> {
        Ok(self
            .index_records()
            .await?
            .into_iter()
            .map(|(job, unit, record)| (job, unit, record.changed_unix_secs))
            .collect())
    }

    /// Forgets the outputs index of a unit (its archives become collectable).
    pub async fn drop_output_index(&self, job: u64, unit: u32) -> Result<(), ApiError> {
        self.inner
            .db
            .write(Change::DropOutput { job, unit })
            .await
            .map(|_| ())
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Bytes of stored blobs read back and hashed since the store opened.
    pub fn hashed_bytes(&self) -> u64 {
        self.inner.hashed_bytes.load(Ordering::Relaxed)
    }

    fn count_hashed(&self, bytes: u64) {
        self.inner.hashed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Deletes a blob found corrupt and says so.
    async fn corrupt(&self, hash: &Hash32) -> ApiError {
        if let Err(e) = self.delete(vec![*hash]).await {
            tracing::error!(blob = %hex::encode(hash), error = %e, "corrupt blob not deleted");
        } else {
            tracing::error!(blob = %hex::encode(hash), "corrupt blob deleted");
        }
        ApiError::BlobCorrupt(hex::encode(hash))
    }

    /// Bytes of stored blobs and uploads in progress.
    pub fn used_bytes(&self) -> u64 {
        *self.lock_used()
    }

    fn lock_used(&self) -> std::sync::MutexGuard<'_, u64> {
        self.inner
            .used_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn reserve(&self, bytes: u64) -> Result<(), ApiError> {
        let mut used = self.lock_used();
        match used.checked_add(bytes) {
            Some(total) if total <= self.inner.max_total_bytes => {
                *used = total;
                Ok(())
            }
            _ => Err(ApiError::StoreFull {
                max: self.inner.max_total_bytes,
            }),
        }
    }

    fn release(&self, bytes: u64) {
        let mut used = self.lock_used();
        *used = used.saturating_sub(bytes);
    }

    /// Where blob `hash` lives if it is bigger than [`SMALL_BLOB_BYTES`] (a smaller one is in
    /// the store's database).
    pub fn blob_path(&self, hash: &Hash32) -> PathBuf {
        self.inner.files.blob_path(hash)
    }

    /// Stores the bytes of `body`, at most `max_blob_bytes` of them, and answers their hash.
    /// With `expected`, bytes of another hash are refused and nothing is stored. The blob has
    /// no owner: [`Self::collect`] never deletes it. Clients' uploads go through
    /// [`Self::put_for`].
    pub async fn put(
        &self,
        body: Body,
        max_blob_bytes: u64,
        expected: Option<Hash32>,
    ) -> Result<wire::BlobStored, ApiError> {
        self.put_counted(body, max_blob_bytes, expected, None).await
    }

    /// Stores a blob pulled from a peer: owned by nobody, collectable like an upload.
    pub async fn put_pulled(
        &self,
        body: Body,
        max_blob_bytes: u64,
        expected: Hash32,
    ) -> Result<wire::BlobStored, ApiError> {
        let uploader = Uploader {
            owner: None,
            quota_bytes: u64::MAX,
        };
        self.put_counted(body, max_blob_bytes, Some(expected), Some(uploader))
            .await
    }

    /// Receives `body`: held in memory while it is at most [`SMALL_BLOB_BYTES`], then written to
    /// a temporary file. A small blob and its ownership go to the database in one change; a big
    /// one is renamed into place, then its ownership recorded.
    async fn put_counted(
        &self,
        body: Body,
        max_blob_bytes: u64,
        expected: Option<Hash32>,
        uploader: Option<Uploader>,
    ) -> Result<wire::BlobStored, ApiError> {
        let mut reservation = Reservation {
            store: self,
            bytes: 0,
        };
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut held = Vec::new();
        let mut spill: Option<files::Spill> = None;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::BodyUnreadable(e.to_string()))?;
            let len = chunk.len() as u64;
            size = size.saturating_add(len);
            if size > max_blob_bytes {
                return Err(ApiError::BlobTooLarge {
                    max: max_blob_bytes,
                });
            }
            if let Some(Uploader {
                owner: Some(owner),
                quota_bytes,
            }) = uploader
            {
                let held = self.owned_bytes(&owner);
                if held.saturating_add(size) > quota_bytes {
                    return Err(ApiError::QuotaExceeded {
                        held,
                        max: quota_bytes,
                    });
                }
            }
            reservation.grow(len)?;
            hasher.update(&chunk);
            match &mut spill {
                Some(file) => file.write(&chunk).await?,
                None if size > SMALL_BLOB_BYTES => {
                    let mut file = self.inner.files.spill(&held).await?;
                    file.write(&chunk).await?;
                    held = Vec::new();
                    spill = Some(file);
                }
                None => held.extend_from_slice(&chunk),
            }
        }
        let hash: Hash32 = *hasher.finalize().as_bytes();
        if let Some(expected) = expected
            && expected != hash
        {
            return Err(ApiError::HashMismatch {
                expected: hex::encode(expected),
                got: hex::encode(hash),
            });
        }
        let ownership = uploader.map(|uploader| Ownership {
            owner: uploader.owner,
            size,
            stored_unix_secs: unix_now_secs(),
        });
        let replaced = match spill {
            None => {
                let change = Change::PutSmall {
                    hash,
                    bytes: held,
                    ownership,
                };
                match self.inner.db.write(change).await? {
                    Outcome::Freed(bytes) => bytes,
                    _ => 0,
                }
            }
            Some(file) => {
                let replaced = file.finish(&self.blob_path(&hash)).await?;
                if let Some(ownership) = ownership {
                    self.inner.db.write(Change::Own { hash, ownership }).await?;
                }
                replaced
            }
        };
        reservation.keep();
        self.release(replaced);
        if let Some(ownership) = ownership {
            self.lock_owners().add(hash, ownership);
        }
        Ok(wire::BlobStored { hash, size })
    }

    /// Where blob `hash` is, if the store holds it: its bytes if it is small.
    async fn locate(&self, hash: &Hash32) -> Result<Option<Stored>, ApiError> {
        let want = *hash;
        let small = self
            .inner
            .db
            .read("read a blob", move |t| t.small(&want))
            .await?;
        if let Some(bytes) = small {
            return Ok(Some(Stored::Small(bytes)));
        }
        Ok(self.inner.files.size(hash).await?.map(Stored::Big))
    }

    /// The size of blob `hash`, without checking its content.
    pub async fn size(&self, hash: &Hash32) -> Result<u64, ApiError> {
        let want = *hash;
        let small = self
            .inner
            .db
            .read("read blob metadata", move |t| t.small_size(&want))
            .await?;
        match small {
            Some(size) => Ok(size),
            None => self
                .inner
                .files
                .size(hash)
                .await?
                .ok_or_else(|| blob_not_found(hash)),
        }
    }

    /// Checks blob `hash` against its name and answers its size. A blob whose content no
    /// longer has its hash is deleted and reported as corrupt.
    pub async fn verify(&self, hash: &Hash32) -> Result<u64, ApiError> {
        let stored = self
            .locate(hash)
            .await?
            .ok_or_else(|| blob_not_found(hash))?;
        let path = self.blob_path(hash);
        let checked = tokio::task::spawn_blocking(move || match stored {
            Stored::Small(bytes) => Ok((*blake3::hash(&bytes).as_bytes(), bytes.len() as u64)),
            Stored::Big(_) => hash_file(&path),
        })
        .await
        .map_err(|e| ApiError::Internal(format!("blob check failed: {e}")))?;
        if let Ok((_, size)) = &checked {
            self.count_hashed(*size);
        }
        match checked {
            Ok((got, size)) if got == *hash => Ok(size),
            Ok(_) => Err(self.corrupt(hash).await),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(blob_not_found(hash)),
            Err(e) => Err(storage("read a blob", e)),
        }
    }

    /// The verified content of blob `hash`, refused if over `max_bytes`.
    pub async fn read(&self, hash: &Hash32, max_bytes: u64) -> Result<Vec<u8>, ApiError> {
        let _permit = self
            .inner
            .whole_reads
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("blob store closed".into()))?;
        let bytes = match self.locate(hash).await? {
            None => return Err(blob_not_found(hash)),
            Some(Stored::Small(bytes)) if bytes.len() as u64 <= max_bytes => bytes,
            Some(Stored::Big(size)) if size <= max_bytes => tokio::fs::read(self.blob_path(hash))
                .await
                .map_err(|e| storage("read a blob", e))?,
            Some(_) => return Err(ApiError::BlobTooLarge { max: max_bytes }),
        };
        self.count_hashed(bytes.len() as u64);
        let (data, got) = tokio::task::spawn_blocking(move || {
            let got = *blake3::hash(&bytes).as_bytes();
            (bytes, got)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("blob check failed: {e}")))?;
        if got != *hash {
            return Err(self.corrupt(hash).await);
        }
        Ok(data)
    }

    /// `len` bytes of blob `hash` from `start`, as a response body: read from the stored bytes,
    /// which were verified when they were written, without hashing anything else.
    pub async fn stream(&self, hash: &Hash32, start: u64, len: u64) -> Result<Body, ApiError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let file = match self.locate(hash).await? {
            None => return Err(blob_not_found(hash)),
            Some(Stored::Small(bytes)) => {
                let start = usize::try_from(start)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start
                    .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                    .min(bytes.len());
                return Ok(Body::from(bytes[start..end].to_vec()));
            }
            Some(Stored::Big(_)) => self.open_blob(hash).await?,
        };
        let mut file = file;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| storage("seek in a blob", e))?;
        let reader = file.take(len);
        let stream = futures::stream::unfold(reader, |mut reader| async move {
            let mut buf = vec![0u8; CHUNK_BYTES];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(buf), reader))
                }
                Err(e) => Some((Err(e), reader)),
            }
        });
        Ok(Body::from_stream(stream))
    }

    /// The whole blob `hash` of `size` bytes, as a response body, checked against its hash: a
    /// small blob before its first byte goes (a corrupt one is answered 500), a big one as it
    /// streams (its stream ends in an error instead of its last chunk on a mismatch). Either
    /// way it is deleted once found corrupt.
    pub async fn stream_whole(&self, hash: &Hash32, size: u64) -> Result<Body, ApiError> {
        use tokio::io::AsyncReadExt;
        if size <= CHECK_FIRST_BYTES {
            let bytes = self.read(hash, CHECK_FIRST_BYTES).await?;
            return Ok(Body::from(bytes));
        }
        // Above CHECK_FIRST_BYTES, so above SMALL_BLOB_BYTES: a file.
        let file = self.open_blob(hash).await?;
        let state = (file, blake3::Hasher::new(), self.clone(), *hash, false);
        let stream = futures::stream::unfold(
            state,
            |(mut file, mut hasher, store, hash, done)| async move {
                if done {
                    return None;
                }
                let mut buf = vec![0u8; CHUNK_BYTES];
                let mut filled = 0;
                // Fill the chunk, so that the last one is known as last before it goes.
                while filled < buf.len() {
                    match file.read(&mut buf[filled..]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => return Some((Err(e), (file, hasher, store, hash, true))),
                    }
                }
                buf.truncate(filled);
                hasher.update(&buf);
                store.count_hashed(filled as u64);
                if filled == CHUNK_BYTES {
                    return Some((Ok(buf), (file, hasher, store, hash, false)));
                }
                if *hasher.finalize().as_bytes() == hash {
                    return Some((Ok(buf), (file, hasher, store, hash, true)));
                }
                let err = store.corrupt(&hash).await;
                Some((
                    Err(std::io::Error::other(err.to_string())),
                    (file, hasher, store, hash, true),
                ))
            },
        );
        Ok(Body::from_stream(stream))
    }

    async fn open_blob(&self, hash: &Hash32) -> Result<tokio::fs::File, ApiError> {
        tokio::fs::File::open(self.blob_path(hash))
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => blob_not_found(hash),
                _ => storage("open a blob", e),
            })
    }

    /// The archives offered for a unit (none if it has no index).
    pub async fn output_index(&self, job: u64, unit: u32) -> Result<OutputIndex, ApiError> {
        let record = self
            .inner
            .db
            .read("read an output index", move |t| t.output_index(job, unit))
            .await?;
        Ok(record.map(|r: IndexRecord| r.index).unwrap_or_default())
    }

    /// Records `candidate` for a unit. With `only`, the index keeps that candidate alone (the
    /// unit is accepted and this is its result); otherwise the candidate replaces its replica's
    /// earlier one (and any other of the same digest), up to [`MAX_OUTPUT_CANDIDATES`].
    pub async fn add_output(
        &self,
        job: u64,
        unit: u32,
        candidate: OutputCandidate,
        only: bool,
    ) -> Result<(), ApiError> {
        let archive = candidate.archive;
        let change = Change::AddOutput {
            job,
            unit,
            candidate,
            only,
            now_unix_secs: unix_now_secs(),
        };
        if self.inner.db.write(change).await? == Outcome::TooManyCandidates {
            return Err(too_many_candidates(job, unit));
        }
        self.lock_owners().exempt(archive);
        Ok(())
    }

    /// Stores small archives for `uploader` and records each as a candidate for its unit, as
    /// [`Self::put_for`] then [`Self::add_output`] would for each, but in one change of the
    /// database: one durable commit for the lot, and no read back of what was just received.
    /// A blob the store already holds stays its first owner's. The whole batch is refused for
    /// the uploader's quota or the store's room; otherwise each archive is answered alone
    /// (`too_many_candidates` for a unit with its bound of archives waiting).
    pub async fn put_outputs(
        &self,
        items: Vec<OutputArchive>,
        uploader: Uploader,
    ) -> Result<Vec<Result<(), ApiError>>, ApiError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let total = items.iter().fold(0u64, |sum, item| {
            sum.saturating_add(item.bytes.len() as u64)
        });
        if let Some(owner) = uploader.owner {
            let held = self.owned_bytes(&owner);
            if held.saturating_add(total) > uploader.quota_bytes {
                return Err(ApiError::QuotaExceeded {
                    held,
                    max: uploader.quota_bytes,
                });
            }
        }
        let mut reservation = Reservation {
            store: self,
            bytes: 0,
        };
        reservation.grow(total)?;
        let now = unix_now_secs();
        let units: Vec<(u64, u32)> = items.iter().map(|item| (item.job, item.unit)).collect();
        let puts: Vec<db::OutputPut> = items
            .into_iter()
            .map(|item| db::OutputPut {
                ownership: Ownership {
                    owner: uploader.owner,
                    size: item.bytes.len() as u64,
                    stored_unix_secs: now,
                },
                bytes: item.bytes,
                job: item.job,
                unit: item.unit,
                candidate: item.candidate,
                only: item.only,
            })
            .collect();
        let placed: Vec<(Hash32, Ownership)> = puts
            .iter()
            .map(|put| (put.candidate.archive, put.ownership))
            .collect();
        let change = Change::PutOutputs {
            items: puts,
            now_unix_secs: now,
        };
        let Outcome::Outputs(outcomes) = self.inner.db.write(change).await? else {
            return Err(ApiError::Internal(
                "the blob store answered an outputs batch with another outcome".into(),
            ));
        };
        reservation.keep();
        let mut answers = Vec::with_capacity(outcomes.len());
        // Copies of blobs held already, by their first owners: their reserved bytes are free.
        let mut unused = 0u64;
        let mut owners = self.lock_owners();
        for ((outcome, (hash, ownership)), (job, unit)) in
            outcomes.into_iter().zip(placed).zip(units)
        {
            if outcome.stored {
                owners.add(hash, ownership);
            } else {
                unused = unused.saturating_add(ownership.size);
            }
            answers.push(if outcome.registered {
                owners.exempt(hash);
                Ok(())
            } else {
                Err(too_many_candidates(job, unit))
            });
        }
        drop(owners);
        self.release(unused);
        Ok(answers)
    }

    /// Testing only: replaces the stored bytes of blob `hash` by `bytes` without checking
    /// them, as a fault of the disk would.
    #[cfg(any(test, feature = "testing"))]
    pub async fn damage(&self, hash: &Hash32, bytes: Vec<u8>) -> Result<(), ApiError> {
        match self.locate(hash).await? {
            Some(Stored::Small(_)) => {
                let change = Change::PutSmall {
                    hash: *hash,
                    bytes,
                    ownership: None,
                };
                self.inner.db.write(change).await.map(|_| ())
            }
            Some(Stored::Big(_)) => tokio::fs::write(self.blob_path(hash), bytes)
                .await
                .map_err(|e| storage("damage a blob", e)),
            None => Err(blob_not_found(hash)),
        }
    }
}

impl Owners {
    fn add(&mut self, hash: Hash32, ownership: Ownership) {
        if let Some(old) = self.by_blob.insert(hash, ownership) {
            self.uncount(&hash, &old);
        }
        self.count(&hash, &ownership);
    }

    fn remove(&mut self, hash: &Hash32) {
        if let Some(old) = self.by_blob.remove(hash) {
            self.uncount(hash, &old);
        }
        self.outputs.remove(hash);
    }

    /// Takes output archive `hash` out of its uploader's quota.
    fn exempt(&mut self, hash: Hash32) {
        if self.outputs.contains(&hash) {
            return;
        }
        if let Some(ownership) = self.by_blob.get(&hash).copied() {
            self.uncount(&hash, &ownership);
        }
        self.outputs.insert(hash);
    }

    /// Adds a blob's bytes to its owner's count, unless it is an output archive.
    fn count(&mut self, hash: &Hash32, ownership: &Ownership) {
        if let Some(owner) = ownership.owner
            && !self.outputs.contains(hash)
        {
            let used = self.used_by.entry(owner).or_insert(0);
            *used = used.saturating_add(ownership.size);
        }
    }

    fn uncount(&mut self, hash: &Hash32, ownership: &Ownership) {
        if let Some(owner) = ownership.owner
            && !self.outputs.contains(hash)
            && let Some(used) = self.used_by.get_mut(&owner)
        {
            *used = used.saturating_sub(ownership.size);
            if *used == 0 {
                self.used_by.remove(&owner);
            }
        }
    }
}

fn blob_not_found(hash: &Hash32) -> ApiError {
    ApiError::NotFound(format!("blob {}", hex::encode(hash)))
}

/// A byte range of a blob of `size` bytes, from a `Range` header. `Ok(None)`: serve it whole
/// (no header, or a form this store does not serve, such as several ranges).
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(header) = header else {
        return Ok(None);
    };
    let unsatisfiable = Err(ApiError::RangeNotSatisfiable { size });
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return unsatisfiable;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            // The last `n` bytes.
            let Some(n) = number(suffix) else {
                return unsatisfiable;
            };
            if n == 0 || size == 0 {
                return unsatisfiable;
            }
            (size.saturating_sub(n), size - 1)
        }
        (first, "") => match number(first) {
            Some(start) if start < size => (start, size - 1),
            _ => return unsatisfiable,
        },
        (first, last) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end && start < size => (start, end.min(size - 1)),
            _ => return unsatisfiable,
        },
    };
    Ok(Some((start, end)))
}

/// Reads `body` to its end, at most `max_blob_bytes`, and drops it.
async fn drain(body: Body, max_blob_bytes: u64) -> Result<(), ApiError> {
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BodyUnreadable(e.to_string()))?;
        size = size.saturating_add(chunk.len() as u64);
        if size > max_blob_bytes {
            return Err(ApiError::BlobTooLarge {
                max: max_blob_bytes,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-3"), 10).unwrap(), Some((0, 3)));
        assert_eq!(parse_range(Some("bytes=4-"), 10).unwrap(), Some((4, 9)));
        assert_eq!(parse_range(Some("bytes=-3"), 10).unwrap(), Some((7, 9)));
        assert_eq!(parse_range(Some("bytes=-30"), 10).unwrap(), Some((0, 9)));
        assert_eq!(parse_range(Some("bytes=5-100"), 10).unwrap(), Some((5, 9)));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10).unwrap(), None);
        assert_eq!(parse_range(Some("items=0-1"), 10).unwrap(), None);
        for bad in ["bytes=10-", "bytes=5-4", "bytes=-0", "bytes=x-1", "bytes=1"] {
            assert!(parse_range(Some(bad), 10).is_err(), "{bad}");
        }
        assert!(parse_range(Some("bytes=0-"), 0).is_err());
    }

    #[tokio::test]
    async fn store_counts_and_bounds_disk_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 10).unwrap();
        let stored = store.put(Body::from("hello"), 100, None).await.unwrap();
        assert_eq!(stored.size, 5);
        assert_eq!(stored.hash, *blake3::hash(b"hello").as_bytes());
        assert_eq!(store.used_bytes(), 5);
        // The same bytes again replace the copy: still 5.
        store.put(Body::from("hello"), 100, None).await.unwrap();
        assert_eq!(store.used_bytes(), 5);
        assert!(matches!(
            store.put(Body::from("world!"), 100, None).await,
            Err(ApiError::StoreFull { max: 10 })
        ));
        assert_eq!(store.used_bytes(), 5);
        assert!(matches!(
            store.put(Body::from("toolong"), 3, None).await,
            Err(ApiError::BlobTooLarge { max: 3 })
        ));
        assert!(matches!(
            store.put(Body::from("x"), 100, Some([0; 32])).await,
            Err(ApiError::HashMismatch { .. })
        ));
        assert_eq!(store.used_bytes(), 5);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        // Reopening counts what is on disk.
        let reopened = BlobStore::open(dir.path(), 10).unwrap();
        assert_eq!(reopened.used_bytes(), 5);
        assert_eq!(reopened.verify(&stored.hash).await.unwrap(), 5);
    }

    /// A body of `chunks` whose last chunk, once read, counts in `read`.
    fn watched_body(chunks: Vec<&'static str>, read: Arc<AtomicU64>) -> Body {
        let last = chunks.len();
        Body::from_stream(futures::stream::iter(chunks.into_iter().enumerate().map(
            move |(i, chunk)| {
                if i + 1 == last {
                    read.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, std::io::Error>(chunk)
            },
        )))
    }

    /// The upload of a blob the store holds is answered only once its body is read, so the
    /// server keeps the connection (closing it under an unread body broke the client's next
    /// request), and a repeated body is bounded like a new one.
    #[tokio::test]
    async fn a_repeated_upload_is_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1_000).unwrap();
        let hash = *blake3::hash(b"hello").as_bytes();
        let uploader = Uploader {
            owner: Some([7u8; 32]),
            quota_bytes: 100,
        };
        let read = Arc::new(AtomicU64::new(0));
        for _ in 0..2 {
            let body = watched_body(vec!["hel", "lo"], read.clone());
            let stored = store.put_for(body, 100, hash, uploader).await.unwrap();
            assert_eq!((stored.hash, stored.size), (hash, 5));
        }
        assert_eq!(
            read.load(Ordering::SeqCst),
            2,
            "both bodies were read whole"
        );
        let long = watched_body(vec!["hello", " world"], read.clone());
        assert!(matches!(
            store.put_for(long, 8, hash, uploader).await,
            Err(ApiError::BlobTooLarge { max: 8 })
        ));
        assert_eq!(store.used_bytes(), 5);
    }

    /// A provider's archive registered as a unit's output leaves its quota, so its next
    /// uploads are not refused while its results wait for collection; a restart agrees.
    #[tokio::test]
    async fn a_registered_output_leaves_its_uploaders_quota() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1_000).unwrap();
        let provider = [7u8; 32];
        let uploader = Uploader {
            owner: Some(provider),
            quota_bytes: 8,
        };
        let put = |bytes: &'static str| {
            let store = store.clone();
            async move {
                let hash = *blake3::hash(bytes.as_bytes()).as_bytes();
                store.put_for(Body::from(bytes), 100, hash, uploader).await
            }
        };
        let first = put("result-1").await.unwrap();
        assert_eq!(store.owned_bytes(&provider), 8);
        assert!(matches!(
            put("result-2").await,
            Err(ApiError::QuotaExceeded { .. })
        ));
        let candidate = OutputCandidate {
            archive: first.hash,
            digest: [1; 32],
            size: first.size,
            replica: Some(0),
        };
        store.add_output(3, 4, candidate, false).await.unwrap();
        assert_eq!(store.owned_bytes(&provider), 0);
        put("result-2").await.unwrap();
        assert_eq!(store.owned_bytes(&provider), 8);
        let reopened = BlobStore::open(dir.path(), 1_000).unwrap();
        assert_eq!(reopened.owned_bytes(&provider), 8);
        assert_eq!(
            reopened.ownership(&first.hash).unwrap().owner,
            Some(provider)
        );
    }

    /// An outputs batch is one durable commit. A blob the store held already keeps its first
    /// owner and its bytes are not counted twice; a unit with its bound of candidates refuses
    /// only its own archive; what was registered leaves the uploader's quota and survives a
    /// reopen.
    #[tokio::test]
    async fn an_outputs_batch_is_one_commit_and_a_held_blob_keeps_its_first_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let earlier = put_owned(&store, b"held".to_vec(), 1).await;
        // Unit (9, 9) already has its bound of candidates, from other replicas.
        for replica in 0..MAX_OUTPUT_CANDIDATES as u32 {
            let candidate = OutputCandidate {
                archive: [replica as u8; 32],
                digest: [replica as u8; 32],
                size: 1,
                replica: Some(replica),
            };
            store.add_output(9, 9, candidate, false).await.unwrap();
        }
        let archive = |bytes: &[u8], (job, unit): (u64, u32)| {
            let hash = *blake3::hash(bytes).as_bytes();
            OutputArchive {
                job,
                unit,
                bytes: bytes.to_vec(),
                candidate: OutputCandidate {
                    archive: hash,
                    digest: [0xdd; 32],
                    size: bytes.len() as u64,
                    replica: Some(99),
                },
                only: false,
            }
        };
        let used = store.used_bytes();
        let commits = store.commits();
        let answers = store
            .put_outputs(
                vec![
                    archive(b"new-one", (1, 0)),
                    archive(b"held", (1, 1)),
                    archive(b"refused", (9, 9)),
                ],
                uploader(2),
            )
            .await
            .unwrap();
        assert_eq!(store.commits(), commits + 1);
        assert!(answers[0].is_ok() && answers[1].is_ok());
        assert_eq!(
            answers[2].as_ref().unwrap_err().code(),
            "too_many_candidates"
        );
        // Only the new blobs' bytes are used; "held" stays the first uploader's.
        assert_eq!(store.used_bytes(), used + 7 + 7);
        assert_eq!(store.ownership(&earlier.hash).unwrap().owner, Some([1; 32]));
        // Registered outputs leave the quota; the refused archive counts against it.
        assert_eq!(store.owned_bytes(&[2; 32]), 7);
        let reopened = BlobStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reopened.owned_bytes(&[2; 32]), 7);
        let index = reopened.output_index(1, 0).await.unwrap();
        assert_eq!(index.candidates.len(), 1);
        assert_eq!(index.candidates[0].replica, Some(99));
        assert_eq!(
            reopened.read(&earlier.hash, 100).await.unwrap(),
            b"held".to_vec()
        );
        // Past the uploader's quota, the whole batch is refused and nothing is stored.
        let small = Uploader {
            owner: Some([3; 32]),
            quota_bytes: 10,
        };
        let refused = store
            .put_outputs(
                vec![archive(b"aaaaaa", (2, 0)), archive(b"bbbbbb", (2, 1))],
                small,
            )
            .await;
        assert!(matches!(refused, Err(ApiError::QuotaExceeded { .. })));
        assert_eq!(store.output_index(2, 0).await.unwrap().candidates.len(), 0);
    }

    fn uploader(owner: u8) -> Uploader {
        Uploader {
            owner: Some([owner; 32]),
            quota_bytes: 1 << 30,
        }
    }

    async fn put_owned(store: &BlobStore, bytes: Vec<u8>, owner: u8) -> wire::BlobStored {
        let hash = *blake3::hash(&bytes).as_bytes();
        store
            .put_for(Body::from(bytes), 1 << 30, hash, uploader(owner))
            .await
            .unwrap()
    }

    async fn body_bytes(body: Body) -> Vec<u8> {
        axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn blob_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("blobs")).unwrap().count()
    }

    #[tokio::test]
    async fn a_small_blob_its_ownership_and_outputs_index_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1_000).unwrap();
        let stored = put_owned(&store, b"an archive".to_vec(), 7).await;
        let candidate = OutputCandidate {
            archive: stored.hash,
            digest: [1; 32],
            size: stored.size,
            replica: Some(2),
        };
        store
            .add_output(3, 4, candidate.clone(), false)
            .await
            .unwrap();
        let ownership = store.ownership(&stored.hash).unwrap();
        // No file for either: the blob and both records are in the database.
        assert_eq!(blob_files(dir.path()), 0);
        drop(store);

        let reopened = BlobStore::open(dir.path(), 1_000).unwrap();
        assert_eq!(
            reopened.read(&stored.hash, 100).await.unwrap(),
            b"an archive"
        );
        assert_eq!(reopened.ownership(&stored.hash), Some(ownership));
        assert_eq!(reopened.used_bytes(), stored.size);
        // The archive is an output: out of its uploader's quota after the restart too.
        assert_eq!(reopened.owned_bytes(&[7; 32]), 0);
        assert_eq!(
            reopened.output_index(3, 4).await.unwrap().candidates,
            vec![candidate]
        );
        let indexes = reopened.output_indexes().await.unwrap();
        assert_eq!(indexes.len(), 1);
        let (job, unit, changed) = indexes[0];
        assert_eq!((job, unit), (3, 4));
        assert!(changed.abs_diff(unix_now_secs()) < 60, "{changed}");
        // Once its index is dropped, the archive is collected like any owned blob.
        reopened.drop_output_index(3, 4).await.unwrap();
        let collected = reopened
            .collect(unix_now_secs() + 1, &HashSet::new())
            .await
            .unwrap();
        assert_eq!(collected.blobs, 1);
        assert_eq!(reopened.used_bytes(), 0);
        assert!(matches!(
            reopened.size(&stored.hash).await,
            Err(ApiError::NotFound(_))
        ));
    }

    /// 64 uploads at once are all stored, and they shared commits: the writer takes every
    /// request waiting while it syncs the previous batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_small_uploads_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let tasks: Vec<_> = (0..64u8)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { put_owned(&store, vec![n; 100], n).await })
            })
            .collect();
        let mut stored = Vec::new();
        for task in tasks {
            stored.push(task.await.unwrap());
        }
        for (n, blob) in stored.iter().enumerate() {
            assert_eq!(
                store.read(&blob.hash, 100).await.unwrap(),
                vec![n as u8; 100]
            );
            assert_eq!(store.owned_bytes(&[n as u8; 32]), 100);
        }
        assert_eq!(store.used_bytes(), 6400);
        assert_eq!(store.writes(), 64);
        assert!(
            store.commits() < store.writes(),
            "{} commits for {} writes",
            store.commits(),
            store.writes()
        );
    }

    #[tokio::test]
    async fn a_corrupt_small_blob_is_detected_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1_000).unwrap();
        let stored = put_owned(&store, b"precious bytes".to_vec(), 7).await;
        store
            .damage(&stored.hash, b"precious bytez".to_vec())
            .await
            .unwrap();
        // A range is served from what is stored, unchecked, as for a file.
        let range = store.stream(&stored.hash, 9, 5).await.unwrap();
        assert_eq!(body_bytes(range).await, b"bytez");
        assert!(matches!(
            store.stream_whole(&stored.hash, stored.size).await,
            Err(ApiError::BlobCorrupt(_))
        ));
        assert!(matches!(
            store.size(&stored.hash).await,
            Err(ApiError::NotFound(_))
        ));
        assert_eq!(store.ownership(&stored.hash), None);
        assert_eq!(store.owned_bytes(&[7; 32]), 0);
        assert_eq!(store.used_bytes(), 0);
        assert_eq!(store.hashed_bytes(), stored.size);
        // Verifying finds the same fault.
        let again = put_owned(&store, b"other bytes".to_vec(), 7).await;
        store
            .damage(&again.hash, b"other bytez".to_vec())
            .await
            .unwrap();
        assert!(matches!(
            store.verify(&again.hash).await,
            Err(ApiError::BlobCorrupt(_))
        ));
        let reopened = BlobStore::open(dir.path(), 1_000).unwrap();
        assert_eq!(reopened.used_bytes(), 0);
    }

    /// A store directory of the older layout (a file per blob, ownership record and outputs
    /// index) opens with its data: small blobs and records move into the database, big blobs
    /// stay files, and the old files are gone.
    #[tokio::test]
    async fn a_store_of_the_older_layout_is_imported_on_open() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["blobs", "owners", "outputs", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let small = b"an old archive".to_vec();
        let big = vec![9u8; SMALL_BLOB_BYTES as usize + 10];
        let small_hash = *blake3::hash(&small).as_bytes();
        let big_hash = *blake3::hash(&big).as_bytes();
        let gone_hash = [5u8; 32];
        std::fs::write(
            dir.path().join("blobs").join(hex::encode(small_hash)),
            &small,
        )
        .unwrap();
        std::fs::write(dir.path().join("blobs").join(hex::encode(big_hash)), &big).unwrap();
        let owned = |size: u64| Ownership {
            owner: Some([7; 32]),
            size,
            stored_unix_secs: 1_700_000_000,
        };
        for (hash, size) in [
            (small_hash, small.len() as u64),
            (big_hash, big.len() as u64),
            (gone_hash, 3),
        ] {
            std::fs::write(
                dir.path().join("owners").join(hex::encode(hash)),
                serde_json::to_vec(&owned(size)).unwrap(),
            )
            .unwrap();
        }
        let index = OutputIndex {
            candidates: vec![OutputCandidate {
                archive: small_hash,
                digest: [1; 32],
                size: small.len() as u64,
                replica: None,
            }],
        };
        std::fs::write(
            dir.path().join("outputs").join("3-4"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();

        let store = BlobStore::open(dir.path(), 1 << 30).unwrap();
        assert!(!dir.path().join("owners").exists());
        assert!(!dir.path().join("outputs").exists());
        assert_eq!(blob_files(dir.path()), 1, "the big blob stays a file");
        assert!(store.blob_path(&big_hash).exists());
        assert_eq!(store.read(&small_hash, 100).await.unwrap(), small);
        assert_eq!(store.verify(&big_hash).await.unwrap(), big.len() as u64);
        assert_eq!(store.used_bytes(), (small.len() + big.len()) as u64);
        assert_eq!(
            store.ownership(&small_hash),
            Some(owned(small.len() as u64))
        );
        assert_eq!(store.ownership(&big_hash), Some(owned(big.len() as u64)));
        // A record whose blob was gone is dropped; the listed archive is out of the quota.
        assert_eq!(store.ownership(&gone_hash), None);
        assert_eq!(store.owned_bytes(&[7; 32]), big.len() as u64);
        assert_eq!(store.output_index(3, 4).await.unwrap(), index);
        let (_, _, changed) = store.output_indexes().await.unwrap()[0];
        assert!(changed.abs_diff(unix_now_secs()) < 60, "the file's time");
        drop(store);
        // Opening again finds the same store and nothing more to import.
        let reopened = BlobStore::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(reopened.used_bytes(), (small.len() + big.len()) as u64);
        assert_eq!(reopened.output_index(3, 4).await.unwrap(), index);
        assert_eq!(reopened.owned_bytes(&[7; 32]), big.len() as u64);
    }

    /// A blob of exactly [`SMALL_BLOB_BYTES`] goes to the database and one a byte longer to a
    /// file; both read back whole and by range.
    #[tokio::test]
    async fn blobs_at_and_just_over_the_small_bound_take_their_two_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 30).unwrap();
        let at: Vec<u8> = (0..SMALL_BLOB_BYTES).map(|i| (i % 251) as u8).collect();
        let over: Vec<u8> = (0..=SMALL_BLOB_BYTES).map(|i| (i % 241) as u8).collect();
        // In chunks, as a client's body arrives.
        let chunked = |bytes: &Vec<u8>| {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(100_000).map(|c| Ok(c.to_vec())).collect();
            Body::from_stream(futures::stream::iter(chunks))
        };
        let at_hash = store.put(chunked(&at), 1 << 30, None).await.unwrap().hash;
        assert_eq!(blob_files(dir.path()), 0, "at the bound: in the database");
        let over_hash = store.put(chunked(&over), 1 << 30, None).await.unwrap().hash;
        assert_eq!(blob_files(dir.path()), 1, "a byte over: a file");
        assert!(store.blob_path(&over_hash).exists());
        assert_eq!(store.used_bytes(), 2 * SMALL_BLOB_BYTES + 1);
        for (hash, bytes) in [(at_hash, &at), (over_hash, &over)] {
            let size = bytes.len() as u64;
            assert_eq!(store.size(&hash).await.unwrap(), size);
            assert_eq!(&store.read(&hash, size).await.unwrap(), bytes);
            assert!(matches!(
                store.read(&hash, size - 1).await,
                Err(ApiError::BlobTooLarge { .. })
            ));
            assert_eq!(store.verify(&hash).await.unwrap(), size);
            let whole = store.stream_whole(&hash, size).await.unwrap();
            assert_eq!(&body_bytes(whole).await, bytes);
            for (start, len) in [(0, 1), (1000, 5000), (size - 3, 3)] {
                let range = store.stream(&hash, start, len).await.unwrap();
                let (start, len) = (start as usize, len as usize);
                assert_eq!(body_bytes(range).await, bytes[start..start + len]);
            }
        }
        assert!(
            std::fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }
}
