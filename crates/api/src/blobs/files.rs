//! Big blobs, those above [`super::SMALL_BLOB_BYTES`]: one file each, `blobs/<hex hash>`,
//! written under `tmp/`, synced and renamed into place, so that a crash never leaves a partial
//! blob under a valid name.

use super::db::storage;
use crate::ApiError;
use exo_types::Hash32;
use std::{
    io::{ErrorKind, Read},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};
use tokio::io::AsyncWriteExt;

/// Size of the chunks hashed and served.
pub(super) const CHUNK_BYTES: usize = 256 * 1024;

/// The store's files: `blobs/` and `tmp/` under its directory.
#[derive(Debug)]
pub(super) struct Files {
    dir: PathBuf,
    next_temp: AtomicU64,
}

impl Files {
    /// The files under `dir`, creating their folders; leftover temporary files of an earlier
    /// run are removed.
    pub(super) fn open(dir: &Path) -> std::io::Result<Self> {
        for sub in ["blobs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        for entry in std::fs::read_dir(dir.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            next_temp: AtomicU64::new(0),
        })
    }

    pub(super) fn blob_path(&self, hash: &Hash32) -> PathBuf {
        self.dir.join("blobs").join(hex::encode(hash))
    }

    /// The size of big blob `hash`, if there is one.
    pub(super) async fn size(&self, hash: &Hash32) -> Result<Option<u64>, ApiError> {
        match tokio::fs::metadata(self.blob_path(hash)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(storage("read blob metadata", e)),
        }
    }

    /// Deletes big blob `hash`, answering the bytes it held (0 if there was none).
    pub(super) async fn remove(&self, hash: &Hash32) -> u64 {
        let path = self.blob_path(hash);
        let size = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(_) => return 0,
        };
        match tokio::fs::remove_file(path).await {
            Ok(()) => size,
            Err(_) => 0,
        }
    }

    /// Starts the file of an upload that outgrew the database, with its first `bytes`.
    pub(super) async fn spill(&self, bytes: &[u8]) -> Result<Spill, ApiError> {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let temp = TempFile(Some(path.clone()));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| storage("create a temporary blob", e))?;
        let mut spill = Spill { temp, file };
        spill.write(bytes).await?;
        Ok(spill)
    }
}

/// An upload being written to its temporary file; the file goes if the upload is dropped.
pub(super) struct Spill {
    temp: TempFile,
    file: tokio::fs::File,
}

impl Spill {
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| storage("write a temporary blob", e))
    }

    /// Syncs the file and moves it to `to`, durably. Answers the bytes of the copy replaced
    /// (0 if none): renaming over an existing copy replaces it whole.
    pub(super) async fn finish(mut self, to: &Path) -> Result<u64, ApiError> {
        self.file
            .sync_all()
            .await
            .map_err(|e| storage("sync a temporary blob", e))?;
        let replaced = tokio::fs::metadata(to).await.map_or(0, |m| m.len());
        let from = self.temp.0.take().unwrap_or_default();
        if let Err(e) = rename_durably(&from, to).await {
            self.temp.0 = Some(from);
            return Err(storage("move a blob into place", e));
        }
        Ok(replaced)
    }
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

/// Removes a temporary file when dropped, unless it was renamed into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// BLAKE3 and size of a file, read in chunks.
pub(super) fn hash_file(path: &Path) -> std::io::Result<(Hash32, u64)> {
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
