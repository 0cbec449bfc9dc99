//! The node's blob store: content-addressed files (job inputs, app modules, output archives)
//! that workers and requesters exchange through the API, and the index of each unit's outputs.
//!
//! A blob is named by the BLAKE3 of its bytes, computed by the store as it receives them, so a
//! client cannot store bytes under another hash. It is written to a temporary file and renamed
//! into place, so a crash never leaves a partial blob under a valid name. It is verified once,
//! at write; a whole read is hashed again as it goes (a file corrupted on disk is then deleted
//! and reported, never served whole), but a range is served from the stored file without
//! hashing the rest, so a one-byte request costs one byte. Total disk use is bounded: a write
//! that would pass the bound is refused (507).
//!
//! Every blob stored for a client is owned: by the account that signed its upload, counted
//! against that account's quota, or by the peers it was pulled from. An archive registered as
//! a unit's output leaves its uploader's quota (only a unit's replicas can register one), so
//! that a busy provider's results never crowd out its next ones before they are collected. An owned blob that nothing
//! on chain references ([`BlobStore::collect`]) is deleted once it is older than the grace
//! period, so junk cannot fill the store for good, and a job's inputs go once the job ended.
//!
//! Layout under the store's directory: `blobs/<hex hash>`, `owners/<hex hash>` (JSON: who
//! uploaded it, its size and when), `tmp/` (emptied on open) and `outputs/<job>-<unit>` (JSON:
//! the archives offered for that unit).

use crate::{ApiError, wire};
use axum::body::Body;
use exo_types::Hash32;
use futures::{StreamExt, future::BoxFuture};
use serde::{Deserialize, Serialize};
use std::{
    collections::{HashMap, HashSet},
    io::{ErrorKind, Read},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::io::AsyncWriteExt;

/// Archives kept for one unit before it is accepted: one per replica (a unit has at most 16),
/// so that no replica's archive can be crowded out by another's.
pub const MAX_OUTPUT_CANDIDATES: usize = 16;
/// Size of the chunks hashed and served.
const CHUNK_BYTES: usize = 256 * 1024;
/// Blobs read whole into memory at once (to unpack an archive): with 64 MiB blobs, this bounds
/// what such reads hold to 256 MiB however many clients ask.
const MAX_WHOLE_READS: usize = 4;
/// A whole blob up to this size is checked before its first byte is served (a corrupt one is
/// answered 500); a bigger one is checked as it streams, and its stream is cut on a mismatch.
const CHECK_FIRST_BYTES: u64 = 1024 * 1024;

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

/// A blob store on disk. Cheap to clone; clones share the disk-use counter.
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
    next_temp: AtomicU64,
    /// Serialises read-modify-write of output indices.
    outputs: tokio::sync::Mutex<()>,
    whole_reads: tokio::sync::Semaphore,
    /// Bytes read back and hashed since the store opened (at write, bytes are hashed as they
    /// arrive and not counted).
    hashed_bytes: AtomicU64,
    owners: Mutex<Owners>,
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

/// Renames `from` to `to` and syncs `to`'s directory, so that the new name survives a power
/// loss (a synced file under a lost rename is as lost as an unsynced one).
async fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    tokio::fs::rename(from, to).await?;
    match to.parent() {
        Some(dir) => tokio::fs::File::open(dir).await?.sync_all().await,
        None => Ok(()),
    }
}

fn storage(context: &str, err: std::io::Error) -> ApiError {
    ApiError::Storage(format!("{context}: {err}"))
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

/// Removes a temporary file when dropped, unless it was renamed into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl BlobStore {
    /// Opens (creating if needed) the store at `dir`, holding at most `max_total_bytes`.
    /// Leftover temporary files of an earlier run are removed.
    pub fn open(dir: impl Into<PathBuf>, max_total_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        for sub in ["blobs", "tmp", "outputs", "owners"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        for entry in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let mut used = 0u64;
        for entry in std::fs::read_dir(dir.join("blobs"))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                used = used.saturating_add(entry.metadata()?.len());
            }
        }
        let mut owners = Owners::default();
        for entry in std::fs::read_dir(dir.join("outputs"))? {
            let index = std::fs::read(entry?.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<OutputIndex>(&b).ok());
            for candidate in index.into_iter().flat_map(|i| i.candidates) {
                owners.outputs.insert(candidate.archive);
            }
        }
        for entry in std::fs::read_dir(dir.join("owners"))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let parsed = wire::hash32_from_hex(name).zip(
                std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Ownership>(&b).ok()),
            );
            match parsed {
                Some((hash, ownership)) if dir.join("blobs").join(name).exists() => {
                    owners.add(hash, ownership);
                }
                // A record whose blob is gone, or that does not parse: the blob is unowned.
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                max_total_bytes,
                used_bytes: Mutex::new(used),
                next_temp: AtomicU64::new(0),
                outputs: tokio::sync::Mutex::new(()),
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

    fn owner_path(&self, hash: &Hash32) -> PathBuf {
        self.inner.dir.join("owners").join(hex::encode(hash))
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

    /// Deletes blob `hash` and its ownership record, releasing their bytes.
    async fn delete(&self, hash: &Hash32) {
        let size = match tokio::fs::metadata(self.blob_path(hash)).await {
            Ok(meta) => meta.len(),
            Err(_) => 0,
        };
        if tokio::fs::remove_file(self.blob_path(hash)).await.is_ok() {
            self.release(size);
        }
        let _ = tokio::fs::remove_file(self.owner_path(hash)).await;
        self.lock_owners().remove(hash);
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
        for (hash, size) in candidates {
            self.delete(&hash).await;
            collected.blobs += 1;
            collected.bytes = collected.bytes.saturating_add(size);
        }
        Ok(collected)
    }

    /// Archives listed in any outputs index.
    async fn indexed_archives(&self) -> Result<HashSet<Hash32>, ApiError> {
        let mut listed = HashSet::new();
        for (job, unit, _) in self.output_indexes().await? {
            for candidate in self.output_index(job, unit).await?.candidates {
                listed.insert(candidate.archive);
            }
        }
        Ok(listed)
    }

    /// Every outputs index: its job, unit and last change (seconds since the Unix epoch).
    pub async fn output_indexes(&self) -> Result<Vec<(u64, u32, u64)>, ApiError> {
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(self.inner.dir.join("outputs"))
            .await
            .map_err(|e| storage("list output indexes", e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| storage("list output indexes", e))?
        {
            let name = entry.file_name();
            let Some((job, unit)) = name.to_str().and_then(|n| n.split_once('-')) else {
                continue;
            };
            let (Ok(job), Ok(unit)) = (job.parse::<u64>(), unit.parse::<u32>()) else {
                continue;
            };
            let changed = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            found.push((job, unit, changed));
        }
        Ok(found)
    }

    /// Forgets the outputs index of a unit (its archives become collectable).
    pub async fn drop_output_index(&self, job: u64, unit: u32) -> Result<(), ApiError> {
        let _guard = self.inner.outputs.lock().await;
        match tokio::fs::remove_file(self.index_path(job, unit)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage("remove an output index", e)),
        }
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
    async fn corrupt(&self, hash: &Hash32, size: u64) -> ApiError {
        let _ = tokio::fs::remove_file(self.blob_path(hash)).await;
        self.release(size);
        let _ = tokio::fs::remove_file(self.owner_path(hash)).await;
        self.lock_owners().remove(hash);
        tracing::error!(blob = %hex::encode(hash), "corrupt blob deleted");
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

    /// Where the blob `hash` lives.
    pub fn blob_path(&self, hash: &Hash32) -> PathBuf {
        self.inner.dir.join("blobs").join(hex::encode(hash))
    }

    fn temp_path(&self) -> PathBuf {
        let n = self.inner.next_temp.fetch_add(1, Ordering::Relaxed);
        self.inner
            .dir
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()))
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

    async fn put_counted(
        &self,
        body: Body,
        max_blob_bytes: u64,
        expected: Option<Hash32>,
        uploader: Option<Uploader>,
    ) -> Result<wire::BlobStored, ApiError> {
        let temp = TempFile(Some(self.temp_path()));
        let temp_path = temp.0.clone().unwrap_or_default();
        let mut file = tokio::fs::File::create(&temp_path)
            .await
            .map_err(|e| storage("create a temporary blob", e))?;
        let mut reservation = Reservation {
            store: self,
            bytes: 0,
        };
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
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
            file.write_all(&chunk)
                .await
                .map_err(|e| storage("write a temporary blob", e))?;
        }
        file.sync_all()
            .await
            .map_err(|e| storage("sync a temporary blob", e))?;
        drop(file);
        let hash: Hash32 = *hasher.finalize().as_bytes();
        if let Some(expected) = expected
            && expected != hash
        {
            return Err(ApiError::HashMismatch {
                expected: hex::encode(expected),
                got: hex::encode(hash),
            });
        }
        let path = self.blob_path(&hash);
        // Renaming over an existing copy replaces it whole; its bytes leave the count.
        let replaced = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(_) => 0,
        };
        rename_durably(&temp_path, &path)
            .await
            .map_err(|e| storage("move a blob into place", e))?;
        let mut temp = temp;
        temp.0 = None;
        reservation.keep();
        self.release(replaced);
        if let Some(uploader) = uploader {
            self.own(hash, uploader.owner, size).await?;
        }
        Ok(wire::BlobStored { hash, size })
    }

    /// Records who owns blob `hash` (written to a temporary file and renamed, like a blob).
    async fn own(&self, hash: Hash32, owner: Option<Hash32>, size: u64) -> Result<(), ApiError> {
        let ownership = Ownership {
            owner,
            size,
            stored_unix_secs: unix_now_secs(),
        };
        self.write_json(&self.owner_path(&hash), &ownership, "an ownership record")
            .await?;
        self.lock_owners().add(hash, ownership);
        Ok(())
    }

    /// Writes `value` as JSON to `path`: to a temporary file first, synced, then renamed into
    /// place, so that a crash never leaves half a record or loses one the node answered for.
    async fn write_json(
        &self,
        path: &Path,
        value: &impl Serialize,
        what: &str,
    ) -> Result<(), ApiError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| ApiError::Internal(format!("{what}: {e}")))?;
        let temp = TempFile(Some(self.temp_path()));
        let temp_path = temp.0.clone().unwrap_or_default();
        let mut file = tokio::fs::File::create(&temp_path)
            .await
            .map_err(|e| storage(&format!("create {what}"), e))?;
        file.write_all(&bytes)
            .await
            .map_err(|e| storage(&format!("write {what}"), e))?;
        file.sync_all()
            .await
            .map_err(|e| storage(&format!("sync {what}"), e))?;
        drop(file);
        rename_durably(&temp_path, path)
            .await
            .map_err(|e| storage(&format!("move {what} into place"), e))?;
        let mut temp = temp;
        temp.0 = None;
        Ok(())
    }

    /// The size of blob `hash`, without checking its content.
    pub async fn size(&self, hash: &Hash32) -> Result<u64, ApiError> {
        match tokio::fs::metadata(self.blob_path(hash)).await {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(blob_not_found(hash)),
            Err(e) => Err(storage("read blob metadata", e)),
        }
    }

    /// Checks blob `hash` against its name and answers its size. A blob whose content no
    /// longer has its hash is deleted and reported as corrupt.
    pub async fn verify(&self, hash: &Hash32) -> Result<u64, ApiError> {
        let path = self.blob_path(hash);
        let want = *hash;
        let checked = tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|e| ApiError::Internal(format!("blob check failed: {e}")))?;
        if let Ok((_, size)) = &checked {
            self.count_hashed(*size);
        }
        match checked {
            Ok((got, size)) if got == want => Ok(size),
            Ok((_, size)) => Err(self.corrupt(hash, size).await),
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
        let size = self.size(hash).await?;
        if size > max_bytes {
            return Err(ApiError::BlobTooLarge { max: max_bytes });
        }
        let bytes = tokio::fs::read(self.blob_path(hash))
            .await
            .map_err(|e| storage("read a blob", e))?;
        self.count_hashed(bytes.len() as u64);
        let (data, got) = tokio::task::spawn_blocking(move || {
            let got = *blake3::hash(&bytes).as_bytes();
            (bytes, got)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("blob check failed: {e}")))?;
        if got != *hash {
            return Err(self.corrupt(hash, data.len() as u64).await);
        }
        Ok(data)
    }

    /// `len` bytes of blob `hash` from `start`, as a response body: read from the stored file,
    /// which was verified when it was written, without hashing anything else.
    pub async fn stream(&self, hash: &Hash32, start: u64, len: u64) -> Result<Body, ApiError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = self.open_blob(hash).await?;
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
                let size = tokio::fs::metadata(store.blob_path(&hash))
                    .await
                    .map_or(0, |m| m.len());
                let err = store.corrupt(&hash, size).await;
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

    fn index_path(&self, job: u64, unit: u32) -> PathBuf {
        self.inner.dir.join("outputs").join(format!("{job}-{unit}"))
    }

    /// The archives offered for a unit (none if it has no index).
    pub async fn output_index(&self, job: u64, unit: u32) -> Result<OutputIndex, ApiError> {
        match tokio::fs::read(self.index_path(job, unit)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::Storage(format!("output index of {job}-{unit}: {e}"))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(OutputIndex::default()),
            Err(e) => Err(storage("read an output index", e)),
        }
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
        let _guard = self.inner.outputs.lock().await;
        let archive = candidate.archive;
        let mut index = self.output_index(job, unit).await?;
        if only {
            index.candidates = vec![candidate];
        } else if !index.candidates.contains(&candidate) {
            index
                .candidates
                .retain(|c| c.digest != candidate.digest && c.replica != candidate.replica);
            if index.candidates.len() >= MAX_OUTPUT_CANDIDATES {
                return Err(ApiError::Conflict {
                    code: "too_many_candidates",
                    message: format!(
                        "unit {unit} of job {job} already has {MAX_OUTPUT_CANDIDATES} archives \
                         waiting for its verdict"
                    ),
                });
            }
            index.candidates.push(candidate);
        }
        self.write_json(&self.index_path(job, unit), &index, "an output index")
            .await?;
        self.lock_owners().exempt(archive);
        Ok(())
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

/// BLAKE3 and size of a file, read in chunks.
fn hash_file(path: &Path) -> std::io::Result<(Hash32, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((*hasher.finalize().as_bytes(), size))
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
}
