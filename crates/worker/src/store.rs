//! What the worker keeps on disk in its data directory:
//!
//! - `state.json`: the provider id, the resources it registered, and every sealed result
//!   (digest, fuel and salt) from before its commitment is sent until the replica is settled,
//!   so that a restarted worker can still reveal what it committed to;
//! - `blobs/<hex>`: app modules and inputs by BLAKE3 hash, written only once verified;
//! - `outputs/<hex>`: packed output archives awaiting upload, from older versions (archives
//!   now wait in memory: they are uploaded before their commitment, and a unit whose archive
//!   was lost in a restart runs again);
//! - `benchmark.json`: the cached machine score;
//! - `sandbox/`: the sandbox's compile cache.
//!
//! Every file is written to a temporary name, synced and renamed, so a crash leaves either the
//! old or the new content.

use crate::commit::Sealed;
use exo_types::Hash32;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::Write,
    path::{Path, PathBuf},
};

/// Writes `bytes` to `path` atomically and durably: a temporary file, synced, renamed into
/// place, and the directory synced, so that after a power loss `path` holds either the old
/// bytes or the new ones (without the directory sync the rename itself may be lost, and with
/// it the salts of committed replicas).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    rename_durably(&tmp, path)
}

/// Renames `from` to `to` (in the same directory) and syncs the directory.
pub fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    let dir = to.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

/// A replica this worker holds a result for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// What is committed and revealed (after any misbehaviour).
    pub sealed: Sealed,
    /// The sandbox outcome code, for logs.
    pub outcome: String,
    /// BLAKE3 of the packed outputs archive, if the unit ran here.
    #[serde(default, with = "opt_hex32")]
    pub archive: Option<Hash32>,
    /// Whether the archive reached the node.
    #[serde(default)]
    pub uploaded: bool,
    /// Whether a commit transaction with it was executed.
    #[serde(default)]
    pub committed: bool,
    /// Whether a reveal transaction with it was executed.
    #[serde(default)]
    pub revealed: bool,
}

/// The worker's durable state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The chain this state belongs to; another chain id starts a fresh state.
    #[serde(default)]
    pub chain_id: Option<String>,
    pub provider_id: Option<u64>,
    /// Hex of the encoded resources last registered or updated.
    #[serde(default)]
    pub registered_resources: Option<String>,
    /// Expiry height of the last offer posted.
    #[serde(default)]
    pub offer_expiry: Option<u64>,
    /// Sealed results by `job/unit/replica`.
    #[serde(default)]
    pub results: BTreeMap<String, ResultRecord>,
    /// Replicas this worker gave up on (non-attestable outcome, bad inputs): never retried.
    #[serde(default)]
    pub abandoned: BTreeSet<String>,
}

/// [`State`] as [`Store::save`] writes it: the same JSON, with each result's already encoded.
#[derive(Serialize)]
struct SavedState<'a> {
    chain_id: &'a Option<String>,
    provider_id: &'a Option<u64>,
    registered_resources: &'a Option<String>,
    offer_expiry: &'a Option<u64>,
    results: BTreeMap<&'a String, &'a RawValue>,
    abandoned: &'a BTreeSet<String>,
}

/// The key of a replica in [`State`].
pub fn replica_key(job: u64, unit: u32, replica: u32) -> String {
    format!("{job}/{unit}/{replica}")
}

/// The data directory, held by one worker at a time.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    pub state: State,
    /// Each result's JSON as last saved, with the record it encodes: a busy worker saves
    /// thousands of results many times a second, most of them unchanged since the last save,
    /// and encoding them again was most of the cost.
    encoded: HashMap<String, (ResultRecord, Box<RawValue>)>,
    /// The open `lock` file, locked exclusively for as long as this store lives: two workers
    /// sharing a directory would use the same nonces and overwrite each other's salts.
    _lock: std::fs::File,
}

impl Store {
    /// Opens (creating) `dir`, locks it and loads its state. A directory another process
    /// holds is refused with `ErrorKind::WouldBlock`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        for sub in ["blobs", "outputs", "sandbox"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another worker is using this data directory",
            ),
            std::fs::TryLockError::Error(e) => e,
        })?;
        let path = dir.join("state.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            state,
            encoded: HashMap::new(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the state durable. Compact JSON: a busy worker saves its state whenever a result
    /// is about to be committed, with every result it holds.
    pub fn save(&mut self) -> std::io::Result<()> {
        let mut encoded = HashMap::with_capacity(self.state.results.len());
        for (key, record) in &self.state.results {
            let kept = match self.encoded.remove_entry(key) {
                Some((key, (old, raw))) if old == *record => (key, (old, raw)),
                _ => {
                    let raw =
                        serde_json::value::to_raw_value(record).map_err(std::io::Error::other)?;
                    (key.clone(), (record.clone(), raw))
                }
            };
            encoded.insert(kept.0, kept.1);
        }
        self.encoded = encoded;
        let State {
            chain_id,
            provider_id,
            registered_resources,
            offer_expiry,
            results,
            abandoned,
        } = &self.state;
        let out = SavedState {
            chain_id,
            provider_id,
            registered_resources,
            offer_expiry,
            results: results
                .keys()
                .filter_map(|key| Some((key, &*self.encoded.get(key)?.1)))
                .collect(),
            abandoned,
        };
        let json = serde_json::to_vec(&out).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("state.json"), &json)
    }

    /// Where a verified blob is kept.
    pub fn blob_path(&self, hash: &Hash32) -> PathBuf {
        self.dir.join("blobs").join(hex::encode(hash))
    }

    /// Where a packed outputs archive waits for its upload.
    pub fn output_path(&self, hash: &Hash32) -> PathBuf {
        self.dir.join("outputs").join(hex::encode(hash))
    }

    pub fn sandbox_dir(&self) -> PathBuf {
        self.dir.join("sandbox")
    }
}

mod opt_hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| {
                crate::commit::parse_hash(&t)
                    .ok_or_else(|| D::Error::custom(format!("{t:?} is not 32-byte hex")))
            })
            .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.state, State::default());
        store.state.provider_id = Some(7);
        store.state.results.insert(
            replica_key(1, 2, 0),
            ResultRecord {
                sealed: Sealed {
                    job: 1,
                    unit: 2,
                    replica: 0,
                    digest: [3; 32],
                    fuel: 4,
                    salt: [5; 32],
                },
                outcome: "ok".into(),
                archive: Some([6; 32]),
                uploaded: false,
                committed: true,
                revealed: false,
            },
        );
        store.state.abandoned.insert(replica_key(9, 9, 9));
        store.save().unwrap();
        // Saved again after changes: a changed result, a new one and a removed one are
        // written as they are now, not as they were encoded at the last save.
        let mut second = store.state.results[&replica_key(1, 2, 0)].clone();
        second.sealed.replica = 1;
        store.state.results.insert(replica_key(1, 2, 1), second);
        store.save().unwrap();
        store
            .state
            .results
            .get_mut(&replica_key(1, 2, 0))
            .unwrap()
            .revealed = true;
        store.state.results.insert(
            replica_key(1, 3, 0),
            store.state.results[&replica_key(1, 2, 1)].clone(),
        );
        store.state.results.remove(&replica_key(1, 2, 1));
        store.save().unwrap();
        let saved = store.state.clone();
        assert_eq!(saved.results.len(), 2);
        // Byte for byte the JSON of the state, as it was written before results were kept
        // encoded.
        assert_eq!(
            std::fs::read(dir.path().join("state.json")).unwrap(),
            serde_json::to_vec(&saved).unwrap()
        );
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.state, saved);
        drop(again);
        std::fs::write(dir.path().join("state.json"), b"{not json").unwrap();
        assert!(Store::open(dir.path()).is_err());
    }

    /// Audit L3: two workers on one data directory would use the same nonces and overwrite
    /// each other's salts; the second is refused while the first runs, and gets in after it.
    #[test]
    fn two_workers_cannot_share_a_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("another worker"), "{err}");
        drop(first);
        Store::open(dir.path()).unwrap();
    }
}
