//! The layout before the database: every blob a file under `blobs/`, each ownership record a
//! JSON file `owners/<hex hash>`, each outputs index a JSON file `outputs/<job>-<unit>` (its
//! last change the file's modification time). Opening a store imports what it finds of it,
//! then removes the imported files, so that a node keeps its data across the upgrade.
//!
//! Each step commits before it removes what it imported, and importing again is harmless, so
//! a crash in the middle leaves the next open to finish.

use super::{
    OutputIndex, Ownership, SMALL_BLOB_BYTES,
    db::{Direct, IndexRecord},
};
use crate::wire;
use redb::Database;
use std::{path::Path, time::UNIX_EPOCH};

/// Blob bytes imported in one transaction, at most.
const IMPORT_BATCH_BYTES: u64 = 64 << 20;

/// Moves small blob files, ownership records and outputs indexes of the older layout into the
/// database.
pub(super) fn import(dir: &Path, database: &Database) -> Result<(), redb::Error> {
    import_small_blobs(dir, database)?;
    import_records(dir, database)
}

/// Moves every blob file of at most [`SMALL_BLOB_BYTES`] into the database, in batches.
fn import_small_blobs(dir: &Path, database: &Database) -> Result<(), redb::Error> {
    let blobs = dir.join("blobs");
    let mut batch = Vec::new();
    let mut batch_bytes = 0u64;
    let mut imported = false;
    for entry in std::fs::read_dir(&blobs)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let name = entry.file_name();
        let Some(hash) = name.to_str().and_then(wire::hash32_from_hex) else {
            continue;
        };
        if !meta.is_file() || meta.len() > SMALL_BLOB_BYTES {
            continue;
        }
        // Imported as they are: a corrupt one is caught when it is read, as it would have been.
        batch.push((hash, std::fs::read(entry.path())?));
        batch_bytes += meta.len();
        if batch_bytes >= IMPORT_BATCH_BYTES {
            move_batch(&blobs, database, &mut batch)?;
            batch_bytes = 0;
            imported = true;
        }
    }
    if !batch.is_empty() {
        move_batch(&blobs, database, &mut batch)?;
        imported = true;
    }
    if imported {
        // A removal lost to a power loss would bring a deleted blob back at the next open.
        std::fs::File::open(&blobs)?.sync_all()?;
    }
    Ok(())
}

fn move_batch(
    blobs: &Path,
    database: &Database,
    batch: &mut Vec<(exo_types::Hash32, Vec<u8>)>,
) -> Result<(), redb::Error> {
    Direct(database).put_small(batch)?;
    for (hash, _) in batch.drain(..) {
        std::fs::remove_file(blobs.join(hex::encode(hash)))?;
    }
    Ok(())
}

/// Moves the JSON records of `owners/` and `outputs/` into the database, then removes both
/// folders. A record that does not parse is dropped, as the older store dropped it.
fn import_records(dir: &Path, database: &Database) -> Result<(), redb::Error> {
    let owners_dir = dir.join("owners");
    let outputs_dir = dir.join("outputs");
    if !owners_dir.exists() && !outputs_dir.exists() {
        return Ok(());
    }
    let mut owners = Vec::new();
    if owners_dir.is_dir() {
        for entry in std::fs::read_dir(&owners_dir)? {
            let path = entry?.path();
            let hash = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(wire::hash32_from_hex);
            let ownership = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Ownership>(&b).ok());
            if let Some(found) = hash.zip(ownership) {
                owners.push(found);
            }
        }
    }
    let mut outputs = Vec::new();
    if outputs_dir.is_dir() {
        for entry in std::fs::read_dir(&outputs_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some((job, unit)) = name.to_str().and_then(|n| n.split_once('-')) else {
                continue;
            };
            let (Ok(job), Ok(unit)) = (job.parse::<u64>(), unit.parse::<u32>()) else {
                continue;
            };
            let Some(index) = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<OutputIndex>(&b).ok())
            else {
                continue;
            };
            let changed_unix_secs = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            outputs.push((
                job,
                unit,
                IndexRecord {
                    changed_unix_secs,
                    index,
                },
            ));
        }
    }
    Direct(database).put_records(&owners, &outputs)?;
    for folder in [owners_dir, outputs_dir] {
        match std::fs::remove_dir_all(&folder) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}
