//! The blob store's database: ownership records, outputs indexes and small blobs in one redb
//! file, `store.redb`, changed only by one writer thread with group commit.
//!
//! Every change goes to the writer through a bounded queue. The writer takes every request
//! waiting (up to [`MAX_BATCH`] requests and [`MAX_BATCH_BYTES`] of blobs), applies them all in
//! one write transaction, commits it durably (redb's default `Durability::Immediate`: synced
//! before `commit` returns) and only then answers each request. Uploads arriving together thus
//! cost one commit and its syncs, not a file and three syncs each, and a request is still
//! answered only once what it wrote survives a power loss. Reads open their own read
//! transactions on a blocking thread and never wait for the writer.
//!
//! The records are internal to this node, encoded with `commonware-codec` and bounded at
//! decoding (an outputs index holds at most [`MAX_OUTPUT_CANDIDATES`] archives).

use super::{MAX_OUTPUT_CANDIDATES, OutputCandidate, OutputIndex, Ownership};
use crate::ApiError;
use bytes::BufMut;
use commonware_codec::{
    Buf, Copying, DecodeExt, Encode, EncodeSize, RangeCfg, Read, ReadExt, Write,
};
use exo_types::Hash32;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::sync::{mpsc, oneshot};

/// Blob hash → its [`Ownership`], for every owned blob, small or big.
const OWNERS: TableDefinition<&Hash32, &[u8]> = TableDefinition::new("owners");
/// (job, unit) → its [`IndexRecord`].
const OUTPUTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("outputs");
/// Blob hash → its bytes, for blobs of at most [`super::SMALL_BLOB_BYTES`].
const SMALL_BLOBS: TableDefinition<&Hash32, &[u8]> = TableDefinition::new("small_blobs");
/// Blob hash → its size, for every entry of [`SMALL_BLOBS`], written in the same transactions
/// ([`SmallBlobs`]): what counts a blob's bytes (opening the store, a size lookup, a replaced
/// or deleted blob) reads a few bytes here instead of the blob's pages.
const SMALL_SIZES: TableDefinition<&Hash32, u64> = TableDefinition::new("small_sizes");

/// Requests waiting for the writer; a full queue makes the next request wait for room.
const QUEUE_DEPTH: usize = 512;
/// Requests applied in one transaction, at most.
pub(super) const MAX_BATCH: usize = 512;
/// Blob bytes applied in one transaction, at most (a transaction holds its new pages in
/// memory until it commits). One request may pass it alone.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// The database's page cache. Most reads are of records and blobs just written; the bytes of
/// big reads come from files, not from here.
const CACHE_BYTES: usize = 64 << 20;

/// How long an open waits for this process's last handle on the same file to close. A close
/// ends with a durable write of the database's own state, which took more than 5 s once (a
/// test's store reopened while the other tests of its crate wrote to the same disk).
const CLOSING_WAIT_MS: u64 = 30_000;

/// The database file in the store's directory.
pub(super) const FILE_NAME: &str = "store.redb";

/// A change, as the writer applies it.
#[derive(Debug)]
pub(super) enum Change {
    /// Stores a small blob (replacing any copy), and its ownership record if it is owned.
    /// Answers the bytes of the copy replaced (0 if none).
    PutSmall {
        hash: Hash32,
        bytes: Vec<u8>,
        ownership: Option<Ownership>,
    },
    /// Records who owns a big blob (its file is already in place).
    Own { hash: Hash32, ownership: Ownership },
    /// Adds a candidate to a unit's outputs index, as [`super::BlobStore::add_output`] says.
    /// Answers [`Outcome::TooManyCandidates`] instead of adding one past the bound.
    AddOutput {
        job: u64,
        unit: u32,
        candidate: OutputCandidate,
        only: bool,
        now_unix_secs: u64,
    },
    /// Stores small archives and adds each to its unit's outputs index, as [`Self::PutSmall`]
    /// (except that a blob already held keeps its bytes and its first owner) followed by
    /// [`Self::AddOutput`] for each. Answers [`Outcome::Outputs`].
    PutOutputs {
        items: Vec<OutputPut>,
        now_unix_secs: u64,
    },
    /// Forgets a unit's outputs index.
    DropOutput { job: u64, unit: u32 },
    /// Deletes these blobs' ownership records and small copies. Answers the bytes of the small
    /// copies deleted.
    Delete { hashes: Vec<Hash32> },
}

/// One archive of [`Change::PutOutputs`].
#[derive(Debug)]
pub(super) struct OutputPut {
    pub(super) bytes: Vec<u8>,
    pub(super) ownership: Ownership,
    pub(super) job: u64,
    pub(super) unit: u32,
    /// Its hash is the blob's.
    pub(super) candidate: OutputCandidate,
    pub(super) only: bool,
}

/// What [`Change::PutOutputs`] did with one archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct OutputPutOutcome {
    /// Its bytes were stored: the store did not hold the blob.
    pub(super) stored: bool,
    /// It was added to its unit's index (not refused for [`MAX_OUTPUT_CANDIDATES`]).
    pub(super) registered: bool,
}

impl Change {
    fn blob_bytes(&self) -> usize {
        match self {
            Self::PutSmall { bytes, .. } => bytes.len(),
            Self::PutOutputs { items, .. } => items.iter().map(|item| item.bytes.len()).sum(),
            _ => 0,
        }
    }
}

/// What a change did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Done,
    /// Bytes of small blobs replaced or deleted.
    Freed(u64),
    TooManyCandidates,
    /// Of [`Change::PutOutputs`], in the order of its items.
    Outputs(Vec<OutputPutOutcome>),
}

/// A change and where its outcome goes once committed.
#[derive(Debug)]
pub(super) struct Request {
    change: Change,
    reply: oneshot::Sender<Result<Outcome, ApiError>>,
}

/// Commits and the changes they carried, since the store opened.
#[derive(Debug, Default)]
pub(super) struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl Counters {
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// The database and the queue to its writer.
#[derive(Debug)]
pub(super) struct Db {
    database: Arc<Database>,
    queue: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

/// The databases this process has open, by path. redb admits one handle per file and process,
/// so a store opened again on the same directory (a restart within a test, or while the last
/// writer of a dropped store finishes) shares the handle; redb serialises their writes.
static OPEN: Mutex<Option<HashMap<PathBuf, Weak<Database>>>> = Mutex::new(None);

fn database_at(path: &Path) -> Result<Arc<Database>, redb::Error> {
    let mut waited_ms = 0;
    // Whether this process had the file open, as first seen: an open of another path drops
    // the record while this one waits.
    let mut had_it = None;
    loop {
        {
            let mut registry = OPEN.lock().unwrap_or_else(|p| p.into_inner());
            let open = registry.get_or_insert_with(HashMap::new);
            open.retain(|known, database| known == path || database.strong_count() > 0);
            if let Some(database) = open.get(path).and_then(Weak::upgrade) {
                return Ok(database);
            }
            let had_it = *had_it.get_or_insert_with(|| open.contains_key(path));
            match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
                // A handle of this process that is gone may still be closing (on its writer's
                // thread): its lock on the file goes when it has closed.
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if had_it && waited_ms < CLOSING_WAIT_MS => {}
                opened => {
                    let database = Arc::new(opened?);
                    open.insert(path.to_path_buf(), Arc::downgrade(&database));
                    return Ok(database);
                }
            }
        }
        // The wait is outside the registry's lock, so that stores on other paths open
        // meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(5));
        waited_ms += 5;
    }
}

/// The database in `dir`, with its tables.
fn open_database(dir: &Path) -> Result<Arc<Database>, redb::Error> {
    // The folder exists (the file may not yet): one name for it however it is reached.
    let path = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .join(FILE_NAME);
    let database = database_at(&path)?;
    let txn = database.begin_write()?;
    txn.open_table(OWNERS)?;
    txn.open_table(OUTPUTS)?;
    {
        // A database written before the sizes table has its blobs but not their sizes: they
        // are counted once, here. Both tables change in the same transactions, so their
        // lengths differ only then.
        let small = txn.open_table(SMALL_BLOBS)?;
        let mut sizes = txn.open_table(SMALL_SIZES)?;
        if small.len()? != sizes.len()? {
            sizes.retain(|_, _| false)?;
            for entry in small.iter()? {
                let (hash, bytes) = entry?;
                sizes.insert(hash.value(), bytes.value().len() as u64)?;
            }
        }
    }
    txn.commit()?;
    Ok(database)
}

/// The small blobs' two tables in a write transaction, changed together.
struct SmallBlobs<'t> {
    bytes: redb::Table<'t, &'static Hash32, &'static [u8]>,
    sizes: redb::Table<'t, &'static Hash32, u64>,
}

impl<'t> SmallBlobs<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Self {
            bytes: txn.open_table(SMALL_BLOBS)?,
            sizes: txn.open_table(SMALL_SIZES)?,
        })
    }

    fn contains(&self, hash: &Hash32) -> Result<bool, redb::Error> {
        Ok(self.sizes.get(hash)?.is_some())
    }

    /// Stores `bytes` as blob `hash`; answers the size of the blob it replaced (0 if none).
    fn insert(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<u64, redb::Error> {
        self.bytes.insert(hash, bytes)?;
        let replaced = self.sizes.insert(hash, bytes.len() as u64)?;
        Ok(replaced.map_or(0, |size| size.value()))
    }

    /// Deletes blob `hash`; answers its size (0 if the database did not hold it).
    fn remove(&mut self, hash: &Hash32) -> Result<u64, redb::Error> {
        self.bytes.remove(hash)?;
        let removed = self.sizes.remove(hash)?;
        Ok(removed.map_or(0, |size| size.value()))
    }
}

pub(super) fn storage(context: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::Storage(format!("{context}: {err}"))
}

impl Db {
    /// Opens (creating if needed) the database in `dir`, with its tables, and starts its
    /// writer. The writer stops once every handle to this `Db` is dropped.
    pub(super) fn open(dir: &Path) -> Result<Self, redb::Error> {
        let database = open_database(dir)?;
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let counters = Arc::new(Counters::default());
        let writer = (database.clone(), counters.clone());
        std::thread::Builder::new()
            .name("blob-store-writer".into())
            .spawn(move || run_writer(&writer.0, requests, &writer.1))
            .map_err(redb::Error::Io)?;
        Ok(Self {
            database,
            queue,
            counters,
        })
    }

    pub(super) fn database(&self) -> &Arc<Database> {
        &self.database
    }

    pub(super) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Applies `change` and answers its outcome once it is durable.
    pub(super) async fn write(&self, change: Change) -> Result<Outcome, ApiError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send(Request { change, reply })
            .await
            .map_err(|_| ApiError::Internal("the blob store's writer stopped".into()))?;
        outcome
            .await
            .map_err(|_| ApiError::Internal("the blob store's writer stopped".into()))?
    }

    /// Runs `read` over a read transaction on a blocking thread.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        read: impl FnOnce(&Tables) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        let database = self.database.clone();
        tokio::task::spawn_blocking(move || Tables::read(&database).and_then(|t| read(&t)))
            .await
            .map_err(|e| ApiError::Internal(format!("{what}: {e}")))?
            .map_err(|e| storage(what, e))
    }
}

/// The tables of one read transaction.
pub(super) struct Tables {
    owners: redb::ReadOnlyTable<&'static Hash32, &'static [u8]>,
    outputs: redb::ReadOnlyTable<(u64, u32), &'static [u8]>,
    small: redb::ReadOnlyTable<&'static Hash32, &'static [u8]>,
    sizes: redb::ReadOnlyTable<&'static Hash32, u64>,
}

impl Tables {
    pub(super) fn read(database: &Database) -> Result<Self, redb::Error> {
        let txn = database.begin_read()?;
        Ok(Self {
            owners: txn.open_table(OWNERS)?,
            outputs: txn.open_table(OUTPUTS)?,
            small: txn.open_table(SMALL_BLOBS)?,
            sizes: txn.open_table(SMALL_SIZES)?,
        })
    }

    /// The bytes of small blob `hash`, if the database holds it.
    pub(super) fn small(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, redb::Error> {
        Ok(self.small.get(hash)?.map(|v| v.value().to_vec()))
    }

    /// The size of small blob `hash`, if the database holds it.
    pub(super) fn small_size(&self, hash: &Hash32) -> Result<Option<u64>, redb::Error> {
        Ok(self.sizes.get(hash)?.map(|v| v.value()))
    }

    /// Every small blob's hash and size.
    pub(super) fn small_sizes(&self) -> Result<Vec<(Hash32, u64)>, redb::Error> {
        let mut found = Vec::new();
        for entry in self.sizes.iter()? {
            let (hash, size) = entry?;
            found.push((*hash.value(), size.value()));
        }
        Ok(found)
    }

    /// Every ownership record; records that do not decode are left out.
    pub(super) fn owners(&self) -> Result<Vec<(Hash32, Ownership)>, redb::Error> {
        let mut found = Vec::new();
        for entry in self.owners.iter()? {
            let (hash, record) = entry?;
            if let Ok(ownership) = Ownership::decode(Copying(record.value())) {
                found.push((*hash.value(), ownership));
            }
        }
        Ok(found)
    }

    /// The outputs index of a unit, with its last change.
    pub(super) fn output_index(
        &self,
        job: u64,
        unit: u32,
    ) -> Result<Option<IndexRecord>, redb::Error> {
        match self.outputs.get((job, unit))? {
            Some(record) => decode_index(job, unit, record.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Every outputs index: its job, unit and record.
    pub(super) fn output_indexes(&self) -> Result<Vec<(u64, u32, IndexRecord)>, redb::Error> {
        let mut found = Vec::new();
        for entry in self.outputs.iter()? {
            let (key, record) = entry?;
            let (job, unit) = key.value();
            found.push((job, unit, decode_index(job, unit, record.value())?));
        }
        Ok(found)
    }
}

fn decode_index(job: u64, unit: u32, bytes: &[u8]) -> Result<IndexRecord, redb::Error> {
    IndexRecord::decode(Copying(bytes)).map_err(|e| {
        redb::Error::Corrupted(format!(
            "the outputs index of {job}-{unit} does not decode: {e}"
        ))
    })
}

/// The writer's loop: takes what is queued, commits it as one transaction, answers, until
/// every sender is gone.
pub(super) fn run_writer(
    database: &Database,
    mut requests: mpsc::Receiver<Request>,
    counters: &Counters,
) {
    while let Some(first) = requests.blocking_recv() {
        let mut bytes = first.change.blob_bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match requests.try_recv() {
                Ok(request) => {
                    bytes = bytes.saturating_add(request.change.blob_bytes());
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        commit_batch(database, batch, counters);
    }
}

/// Applies `batch` in one durable transaction, then answers each request: its outcome, or the
/// error that kept the whole transaction from committing.
fn commit_batch(database: &Database, batch: Vec<Request>, counters: &Counters) {
    let applied = (|| -> Result<Vec<Outcome>, redb::Error> {
        let txn = database.begin_write()?;
        let outcomes = batch
            .iter()
            .map(|request| apply(&txn, &request.change))
            .collect::<Result<Vec<_>, _>>()?;
        txn.commit()?;
        Ok(outcomes)
    })();
    match applied {
        Ok(outcomes) => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .writes
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for (request, outcome) in batch.into_iter().zip(outcomes) {
                let _ = request.reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "blob store commit failed");
            for request in batch {
                let _ = request
                    .reply
                    .send(Err(storage("commit to the blob store", &e)));
            }
        }
    }
}

/// Applies one change inside the writer's transaction.
fn apply(txn: &WriteTransaction, change: &Change) -> Result<Outcome, redb::Error> {
    match change {
        Change::PutSmall {
            hash,
            bytes,
            ownership,
        } => {
            let replaced = SmallBlobs::open(txn)?.insert(hash, bytes)?;
            if let Some(ownership) = ownership {
                txn.open_table(OWNERS)?
                    .insert(hash, ownership.encode().as_ref())?;
            }
            Ok(Outcome::Freed(replaced))
        }
        Change::Own { hash, ownership } => {
            txn.open_table(OWNERS)?
                .insert(hash, ownership.encode().as_ref())?;
            Ok(Outcome::Done)
        }
        Change::AddOutput {
            job,
            unit,
            candidate,
            only,
            now_unix_secs,
        } => {
            let mut outputs = txn.open_table(OUTPUTS)?;
            if add_output(
                &mut outputs,
                (*job, *unit),
                candidate,
                *only,
                *now_unix_secs,
            )? {
                Ok(Outcome::Done)
            } else {
                Ok(Outcome::TooManyCandidates)
            }
        }
        Change::PutOutputs {
            items,
            now_unix_secs,
        } => {
            let mut small = SmallBlobs::open(txn)?;
            let mut owners = txn.open_table(OWNERS)?;
            let mut outputs = txn.open_table(OUTPUTS)?;
            let mut done = Vec::with_capacity(items.len());
            for item in items {
                let hash = &item.candidate.archive;
                let stored = !small.contains(hash)?;
                if stored {
                    small.insert(hash, &item.bytes)?;
                    owners.insert(hash, item.ownership.encode().as_ref())?;
                }
                let registered = add_output(
                    &mut outputs,
                    (item.job, item.unit),
                    &item.candidate,
                    item.only,
                    *now_unix_secs,
                )?;
                done.push(OutputPutOutcome { stored, registered });
            }
            Ok(Outcome::Outputs(done))
        }
        Change::DropOutput { job, unit } => {
            txn.open_table(OUTPUTS)?.remove((*job, *unit))?;
            Ok(Outcome::Done)
        }
        Change::Delete { hashes } => {
            let mut owners = txn.open_table(OWNERS)?;
            let mut small = SmallBlobs::open(txn)?;
            let mut freed = 0u64;
            for hash in hashes {
                owners.remove(hash)?;
                freed = freed.saturating_add(small.remove(hash)?);
            }
            Ok(Outcome::Freed(freed))
        }
    }
}

/// Adds `candidate` to the outputs index of unit `key` (job, unit), as
/// [`super::BlobStore::add_output`] says. Answers `false`, changing nothing, instead of adding
/// one past [`MAX_OUTPUT_CANDIDATES`].
fn add_output(
    outputs: &mut redb::Table<'_, (u64, u32), &[u8]>,
    (job, unit): (u64, u32),
    candidate: &OutputCandidate,
    only: bool,
    now_unix_secs: u64,
) -> Result<bool, redb::Error> {
    // An index the disk corrupted is started afresh: failing here would fail every other
    // change of the batch with it, other units' uploads included.
    let stored = outputs
        .get((job, unit))?
        .map(|record| decode_index(job, unit, record.value()));
    let mut index = match stored {
        Some(Ok(record)) => record.index,
        Some(Err(e)) => {
            tracing::error!(error = %e, "corrupt outputs index replaced");
            OutputIndex::default()
        }
        None => OutputIndex::default(),
    };
    if only {
        index.candidates = vec![candidate.clone()];
    } else if !index.candidates.contains(candidate) {
        index
            .candidates
            .retain(|c| c.digest != candidate.digest && c.replica != candidate.replica);
        if index.candidates.len() >= MAX_OUTPUT_CANDIDATES {
            return Ok(false);
        }
        index.candidates.push(candidate.clone());
    }
    let record = IndexRecord {
        changed_unix_secs: now_unix_secs,
        index,
    };
    outputs.insert((job, unit), record.encode().as_ref())?;
    Ok(true)
}

/// Writes straight to the database, outside the writer: for opening, before any request.
pub(super) struct Direct<'a>(pub(super) &'a Database);

impl Direct<'_> {
    /// Stores these small blobs (the import of an older layout), in one durable transaction.
    pub(super) fn put_small(&self, blobs: &[(Hash32, Vec<u8>)]) -> Result<(), redb::Error> {
        let txn = self.0.begin_write()?;
        {
            let mut small = SmallBlobs::open(&txn)?;
            for (hash, bytes) in blobs {
                small.insert(hash, bytes)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores ownership records and outputs indexes (the import of an older layout), in one
    /// durable transaction.
    pub(super) fn put_records(
        &self,
        owners: &[(Hash32, Ownership)],
        outputs: &[(u64, u32, IndexRecord)],
    ) -> Result<(), redb::Error> {
        let txn = self.0.begin_write()?;
        {
            let mut table = txn.open_table(OWNERS)?;
            for (hash, ownership) in owners {
                table.insert(hash, ownership.encode().as_ref())?;
            }
            let mut table = txn.open_table(OUTPUTS)?;
            for (job, unit, record) in outputs {
                table.insert((*job, *unit), record.encode().as_ref())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes ownership records (of blobs that are gone), in one durable transaction.
    pub(super) fn drop_owners(&self, hashes: &HashSet<Hash32>) -> Result<(), redb::Error> {
        let txn = self.0.begin_write()?;
        {
            let mut table = txn.open_table(OWNERS)?;
            for hash in hashes {
                table.remove(hash)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// An outputs index as stored: the archives and when the index last changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct IndexRecord {
    /// Seconds since the Unix epoch, by this node's clock.
    pub(super) changed_unix_secs: u64,
    pub(super) index: OutputIndex,
}

impl Write for Ownership {
    fn write(&self, buf: &mut impl BufMut) {
        self.owner.write(buf);
        self.size.write(buf);
        self.stored_unix_secs.write(buf);
    }
}

impl EncodeSize for Ownership {
    fn encode_size(&self) -> usize {
        self.owner.encode_size() + self.size.encode_size() + self.stored_unix_secs.encode_size()
    }
}

impl Read for Ownership {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, commonware_codec::Error> {
        Ok(Self {
            owner: Option::<Hash32>::read(buf)?,
            size: u64::read(buf)?,
            stored_unix_secs: u64::read(buf)?,
        })
    }
}

impl Write for OutputCandidate {
    fn write(&self, buf: &mut impl BufMut) {
        self.archive.write(buf);
        self.digest.write(buf);
        self.size.write(buf);
        self.replica.write(buf);
    }
}

impl EncodeSize for OutputCandidate {
    fn encode_size(&self) -> usize {
        self.archive.encode_size()
            + self.digest.encode_size()
            + self.size.encode_size()
            + self.replica.encode_size()
    }
}

impl Read for OutputCandidate {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, commonware_codec::Error> {
        Ok(Self {
            archive: Hash32::read(buf)?,
            digest: Hash32::read(buf)?,
            size: u64::read(buf)?,
            replica: Option::<u32>::read(buf)?,
        })
    }
}

impl Write for IndexRecord {
    fn write(&self, buf: &mut impl BufMut) {
        self.changed_unix_secs.write(buf);
        self.index.candidates.write(buf);
    }
}

impl EncodeSize for IndexRecord {
    fn encode_size(&self) -> usize {
        self.changed_unix_secs.encode_size() + self.index.candidates.encode_size()
    }
}

impl Read for IndexRecord {
    type Cfg = ();
    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, commonware_codec::Error> {
        let changed_unix_secs = u64::read(buf)?;
        let bound = (RangeCfg::new(0..=MAX_OUTPUT_CANDIDATES), ());
        let candidates = Vec::<OutputCandidate>::read_cfg(buf, &bound)?;
        Ok(Self {
            changed_unix_secs,
            index: OutputIndex { candidates },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn candidate(n: u8) -> OutputCandidate {
        OutputCandidate {
            archive: [n; 32],
            digest: [n + 1; 32],
            size: u64::from(n) * 1000,
            replica: n.is_multiple_of(2).then_some(u32::from(n)),
        }
    }

    /// Queues `changes`, runs the writer until the queue is empty and answers their outcomes.
    fn run_changes(database: &Database, changes: impl IntoIterator<Item = Change>) -> Vec<Outcome> {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let mut replies = Vec::new();
        for change in changes {
            let (reply, outcome) = oneshot::channel();
            queue.try_send(Request { change, reply }).unwrap();
            replies.push(outcome);
        }
        drop(queue);
        run_writer(database, requests, &Counters::default());
        replies
            .into_iter()
            .map(|mut r| r.try_recv().unwrap().unwrap())
            .collect()
    }

    #[test]
    fn records_round_trip_and_an_oversized_index_is_refused() {
        let ownership = Ownership {
            owner: Some([3; 32]),
            size: 5,
            stored_unix_secs: 1_700_000_000,
        };
        assert_eq!(Ownership::decode(ownership.encode()).unwrap(), ownership);
        let pulled = Ownership {
            owner: None,
            ..ownership
        };
        assert_eq!(Ownership::decode(pulled.encode()).unwrap(), pulled);
        let record = IndexRecord {
            changed_unix_secs: 9,
            index: OutputIndex {
                candidates: (1..=3).map(candidate).collect(),
            },
        };
        assert_eq!(IndexRecord::decode(record.encode()).unwrap(), record);
        let oversized = IndexRecord {
            changed_unix_secs: 9,
            index: OutputIndex {
                candidates: (0..=MAX_OUTPUT_CANDIDATES as u8).map(candidate).collect(),
            },
        };
        assert!(IndexRecord::decode(oversized.encode()).is_err());
    }

    /// A corrupt outputs index fails neither its own registration nor the other changes
    /// committed with it: the registration starts the index afresh.
    #[test]
    fn a_corrupt_outputs_index_fails_no_change_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let database = open_database(dir.path()).unwrap();
        let txn = database.begin_write().unwrap();
        txn.open_table(OUTPUTS)
            .unwrap()
            .insert((1, 1), [0xff_u8; 3].as_slice())
            .unwrap();
        txn.commit().unwrap();
        let changes = [
            Change::AddOutput {
                job: 1,
                unit: 1,
                candidate: candidate(4),
                only: false,
                now_unix_secs: 7,
            },
            Change::PutSmall {
                hash: [9; 32],
                bytes: vec![9; 10],
                ownership: None,
            },
        ];
        let outcomes = run_changes(&database, changes);
        assert_eq!(outcomes, [Outcome::Done, Outcome::Freed(0)]);
        let tables = Tables::read(&database).unwrap();
        let index = tables.output_index(1, 1).unwrap().unwrap().index;
        assert_eq!(index.candidates, [candidate(4)]);
        assert_eq!(tables.small(&[9; 32]).unwrap(), Some(vec![9; 10]));
    }

    /// An open that waits for this process's last handle on its file to close holds up no
    /// open of another file.
    #[test]
    fn an_open_waiting_for_a_closing_handle_holds_up_no_other_store() {
        let dir = tempfile::tempdir().unwrap();
        let (waiting, other) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
        // A handle of this process still closing: the file is locked, and the registry
        // remembers the path with no live handle.
        let closing = Database::create(&waiting).unwrap();
        OPEN.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(waiting.clone(), Weak::new());
        let (started, waits) = std::sync::mpsc::channel();
        let opener = std::thread::spawn({
            let waiting = waiting.clone();
            move || {
                started.send(()).unwrap();
                database_at(&waiting).map(|_| ())
            }
        });
        waits.recv().unwrap();
        // Time for the opener to reach its wait; if it has not, the test passes without
        // showing anything, never fails.
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Before the waiting open had let go of the registry this one waited for it, and the
        // closing handle went only after it: the waiting open then failed.
        database_at(&other).unwrap();
        drop(closing);
        opener.join().unwrap().unwrap();
    }

    /// A store written before sizes had their own table holds its small blobs' bytes only:
    /// opening it counts them once, and from then on sizes come from their table, through
    /// replacements and deletions.
    #[test]
    fn small_blob_sizes_are_counted_once_for_a_database_from_before_their_table() {
        let dir = tempfile::tempdir().unwrap();
        {
            let older = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = older.begin_write().unwrap();
            {
                let mut small = txn.open_table(SMALL_BLOBS).unwrap();
                for n in 1..=3u8 {
                    small
                        .insert(&[n; 32], vec![n; usize::from(n) * 100].as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let database = open_database(dir.path()).unwrap();
        let tables = Tables::read(&database).unwrap();
        let mut sizes = tables.small_sizes().unwrap();
        sizes.sort_unstable();
        assert_eq!(sizes, [([1; 32], 100), ([2; 32], 200), ([3; 32], 300)]);
        assert_eq!(tables.small_size(&[2; 32]).unwrap(), Some(200));
        drop(tables);

        let outcomes = run_changes(
            &database,
            [
                Change::PutSmall {
                    hash: [1; 32],
                    bytes: vec![1; 50],
                    ownership: None,
                },
                Change::Delete {
                    hashes: vec![[2; 32], [9; 32]],
                },
            ],
        );
        assert_eq!(outcomes, [Outcome::Freed(100), Outcome::Freed(200)]);
        let tables = Tables::read(&database).unwrap();
        let mut sizes = tables.small_sizes().unwrap();
        sizes.sort_unstable();
        assert_eq!(sizes, [([1; 32], 50), ([3; 32], 300)]);
        assert_eq!(tables.small_size(&[2; 32]).unwrap(), None);
    }

    /// The writer takes everything queued before it runs as one transaction: 64 uploads cost
    /// one commit, and each is answered with its own outcome.
    #[test]
    fn the_writer_commits_what_is_queued_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let database = open_database(dir.path()).unwrap();
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let mut replies = Vec::new();
        for n in 0..64u8 {
            let (reply, outcome) = oneshot::channel();
            let change = Change::PutSmall {
                hash: [n; 32],
                bytes: vec![n; 100],
                ownership: None,
            };
            queue.try_send(Request { change, reply }).unwrap();
            replies.push(outcome);
        }
        // The last request replaces the first's blob: it sees the batch's earlier changes.
        let (reply, replaced) = oneshot::channel();
        let change = Change::PutSmall {
            hash: [0; 32],
            bytes: vec![0; 100],
            ownership: None,
        };
        queue.try_send(Request { change, reply }).unwrap();
        drop(queue);
        let counters = Counters::default();
        run_writer(&database, requests, &counters);
        assert_eq!((counters.commits(), counters.writes()), (1, 65));
        for mut outcome in replies {
            assert_eq!(outcome.try_recv().unwrap().unwrap(), Outcome::Freed(0));
        }
        let mut replaced = replaced;
        assert_eq!(replaced.try_recv().unwrap().unwrap(), Outcome::Freed(100));
        let tables = Tables::read(&database).unwrap();
        assert_eq!(tables.small_sizes().unwrap().len(), 64);
    }
}
