//! Staging `/in` and collecting `/out` on the host side.

use crate::error::ExecError;
use crate::spec::{Input, InputData, OutputFile, OutputStream};
use std::fs::{self, File, FileTimes};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Bounds of `/out` besides its total size.
pub const MAX_OUTPUT_ENTRIES: usize = 10_000;
pub const MAX_OUTPUT_DEPTH: usize = 32;
pub const MAX_NAME_BYTES: usize = 255;
/// The fixed time every staged input carries (2000-01-01T00:00:00Z), so that its mtime says
/// nothing about the host.
pub const FIXED_EPOCH_SECS: u64 = 946_684_800;

pub fn fixed_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(FIXED_EPOCH_SECS)
}

pub fn check_input_name(name: &str) -> Result<(), ExecError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > MAX_NAME_BYTES
        || name.bytes().any(|b| b == b'/' || b == b'\\' || b == 0);
    if bad {
        return Err(ExecError::InvalidSpec(format!(
            "input name {name:?} must be a flat file name (no '/', not '.' or '..', at most {MAX_NAME_BYTES} bytes)"
        )));
    }
    Ok(())
}

/// Writes the inputs into `dir`, refusing duplicate names and more than `max_bytes` in total.
pub fn stage_inputs(dir: &Path, inputs: &[Input<'_>], max_bytes: u64) -> Result<(), ExecError> {
    let mut total = 0u64;
    let mut names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(ExecError::InvalidSpec("duplicate input name".into()));
    }
    for input in inputs {
        check_input_name(&input.name)?;
        let dest = dir.join(&input.name);
        match &input.data {
            InputData::Bytes(b) => {
                total = total.saturating_add(b.len() as u64);
                if total > max_bytes {
                    return Err(ExecError::InvalidSpec(format!(
                        "inputs exceed {max_bytes} bytes"
                    )));
                }
                fs::write(&dest, b).map_err(|e| ExecError::io("write input", &dest, e))?;
            }
            InputData::Path(src) => {
                let meta = fs::metadata(src).map_err(|e| ExecError::io("read input", src, e))?;
                if !meta.is_file() {
                    return Err(ExecError::InvalidSpec(format!(
                        "input {} is not a regular file",
                        src.display()
                    )));
                }
                total = total.saturating_add(meta.len());
                if total > max_bytes {
                    return Err(ExecError::InvalidSpec(format!(
                        "inputs exceed {max_bytes} bytes"
                    )));
                }
                fs::copy(src, &dest).map_err(|e| ExecError::io("copy input", src, e))?;
            }
        }
        let f = File::options()
            .write(true)
            .open(&dest)
            .map_err(|e| ExecError::io("open input", &dest, e))?;
        let t = fixed_time();
        f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
            .map_err(|e| ExecError::io("set input times", &dest, e))?;
    }
    Ok(())
}

/// What `/out` held, or why it is rejected.
pub enum Collected {
    Ok {
        files: Vec<OutputFile>,
        dirs: Vec<String>,
    },
    TooLarge(OutputStream),
    Invalid(String),
}

/// Walks `root` without following anything: only regular files and directories are accepted,
/// sizes are checked from metadata before a byte is read.
pub fn collect(root: &Path, max_bytes: u64) -> Result<Collected, ExecError> {
    let mut found: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    let mut total = 0u64;
    let mut entries = 0usize;
    while let Some((dir, rel, depth)) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(|e| ExecError::io("read /out", &dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| ExecError::io("read /out", &dir, e))?;
            entries += 1;
            if entries > MAX_OUTPUT_ENTRIES {
                return Ok(Collected::TooLarge(OutputStream::Out));
            }
            let Ok(name) = entry.file_name().into_string() else {
                return Ok(Collected::Invalid("a name in /out is not UTF-8".into()));
            };
            let path = entry.path();
            let rel_path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // symlink_metadata never follows a link: a planted symlink is seen as one.
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| ExecError::io("stat /out entry", &path, e))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                if depth + 1 > MAX_OUTPUT_DEPTH {
                    return Ok(Collected::Invalid(format!(
                        "/out is nested deeper than {MAX_OUTPUT_DEPTH}"
                    )));
                }
                dirs.push(rel_path.clone());
                stack.push((path, rel_path, depth + 1));
            } else if ft.is_file() {
                total = total.saturating_add(meta.len());
                if total > max_bytes {
                    return Ok(Collected::TooLarge(OutputStream::Out));
                }
                found.push((rel_path, path, meta.len()));
            } else {
                let kind = if ft.is_symlink() {
                    "a symlink"
                } else {
                    "not a regular file or directory"
                };
                return Ok(Collected::Invalid(format!("/out/{rel_path} is {kind}")));
            }
        }
    }
    found.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    dirs.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut files = Vec::with_capacity(found.len());
    for (rel, path, len) in found {
        let bytes = fs::read(&path).map_err(|e| ExecError::io("read /out file", &path, e))?;
        if bytes.len() as u64 != len {
            // The guest is gone; a size change means someone else touches our scratch space.
            return Err(ExecError::io(
                "read /out file",
                &path,
                std::io::Error::other("file changed while being collected"),
            ));
        }
        files.push(OutputFile { path: rel, bytes });
    }
    Ok(Collected::Ok { files, dirs })
}

/// Whether the regular files under `root` add up to more than `limit` bytes (apparent sizes,
/// so sparse files count in full), or `root` holds too many entries. Used while the guest runs;
/// never follows links.
pub fn apparent_size_exceeds(root: &Path, limit: u64) -> bool {
    let mut stack = vec![root.to_path_buf()];
    let mut total = 0u64;
    let mut entries = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            entries += 1;
            if entries > MAX_OUTPUT_ENTRIES {
                return true;
            }
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total = total.saturating_add(meta.len());
                if total > limit {
                    return true;
                }
            }
        }
    }
    false
}
