//! Per-run `/in` and `/out` directories, reused between runs.
//!
//! Removing a directory costs milliseconds on some disk filesystems (about 4 ms per `rmdir` on
//! the ext4 test machine, against microseconds on tmpfs), which would dominate short units. So
//! each sandbox keeps a pool of slots under a private directory: after a run, a slot's `/in` and
//! `/out` are emptied (without following links) and the slot is reused; a slot that cannot be
//! emptied is thrown away. The private directory is removed when the sandbox is dropped.

use crate::error::ExecError;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots kept for reuse; more concurrent runs than this get fresh slots that are then removed.
const MAX_FREE_SLOTS: usize = 64;

pub(crate) struct ScratchPool {
    root: tempfile::TempDir,
    free: Mutex<Vec<PathBuf>>,
    next: AtomicU64,
}

pub(crate) struct Slot {
    pub dir: PathBuf,
    pub in_dir: PathBuf,
    pub out_dir: PathBuf,
}

impl ScratchPool {
    pub fn new(parent: &Path) -> Result<Self, ExecError> {
        fs::create_dir_all(parent).map_err(|e| ExecError::io("create scratch dir", parent, e))?;
        let root = tempfile::Builder::new()
            .prefix("exo-exec-")
            .tempdir_in(parent)
            .map_err(|e| ExecError::io("create scratch dir", parent, e))?;
        Ok(ScratchPool {
            root,
            free: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        })
    }

    pub fn take(&self) -> Result<Slot, ExecError> {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let dir = match reused {
            Some(d) => d,
            None => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let d = self.root.path().join(format!("slot-{n}"));
                for sub in ["in", "out"] {
                    let p = d.join(sub);
                    fs::create_dir_all(&p).map_err(|e| ExecError::io("create unit dir", &p, e))?;
                }
                d
            }
        };
        Ok(Slot {
            in_dir: dir.join("in"),
            out_dir: dir.join("out"),
            dir,
        })
    }

    /// Empties the slot for the next run, or removes it.
    pub fn give_back(&self, slot: Slot) {
        let clean = empty_dir(&slot.in_dir) && empty_dir(&slot.out_dir);
        if clean {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if free.len() < MAX_FREE_SLOTS {
                free.push(slot.dir);
                return;
            }
        }
        let _ = fs::remove_dir_all(&slot.dir);
    }
}

/// Removes everything inside `dir`; links are removed, never followed.
fn empty_dir(dir: &Path) -> bool {
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    for entry in rd {
        let Ok(entry) = entry else { return false };
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return false;
        };
        // remove_dir_all does not follow symlinks inside the tree either.
        let ok = if meta.is_dir() {
            fs::remove_dir_all(&path).is_ok()
        } else {
            fs::remove_file(&path).is_ok()
        };
        if !ok {
            return false;
        }
    }
    true
}
