//! The outputs archive: one blob holding everything a unit produced, uploaded by the provider
//! and downloaded by the requester.
//!
//! An archive is canonical: the same run gives the same bytes on every machine, so honest
//! replicas upload byte-identical blobs with the same BLAKE3 hash, and it is self-checking: the
//! requester recomputes the sandbox's result digest from it ([`Archive::result_digest`]) and
//! compares it with the digest the chain accepted, so a node or a provider cannot hand over
//! outputs other than those the replicas agreed on.
//!
//! # Format (version 1)
//!
//! Commonware codec; `varint` is the codec's `usize` (LEB128), `bytes` is a varint length then
//! that many bytes, strings are UTF-8 `bytes`.
//!
//! ```text
//! magic      8 bytes  "EXOOUT\0\x01"   (the last byte is the format version)
//! outcome    bytes    the sandbox outcome's code (`exo_exec::Outcome::code`), <= 256 bytes
//! stdout     bytes    the guest's stdout, <= 64 MiB
//! dirs       varint count <= 10,000, then each path as bytes (<= 4,096), strictly ascending
//! files      varint count <= 10,000, then for each: path as bytes (<= 4,096), content as bytes,
//!            strictly ascending by path
//! ```
//!
//! Paths are relative to `/out`, `/`-separated, without empty, `.` or `..` components; they
//! are sorted by their bytes. The file contents together are at most [`MAX_ARCHIVE_BYTES`].
//! stderr is not in the archive: it is diagnostics and does not enter the result digest.
//! Nothing follows the last file: trailing bytes are an error. Decoding checks every bound
//! before allocating, so a hostile archive cannot make [`unpack`] allocate more than its own
//! size.

use bytes::{Buf as _, BufMut};
use commonware_codec::{Error as CodecError, RangeCfg, Read, Write};
use exo_exec::{OutputFile, UnitResult};
use exo_types::{read_bounded_bytes, read_bounded_string, write_bytes};

/// The first bytes of every archive; the last one is the format version.
pub const MAGIC: [u8; 8] = *b"EXOOUT\x00\x01";
/// Longest outcome code.
pub const MAX_OUTCOME_LEN: usize = 256;
/// Largest stdout kept (the sandbox's ceiling for stdout).
pub const MAX_STDOUT_BYTES: usize = 64 << 20;
/// Most directories, and most files, in one archive (the sandbox's bound on `/out` entries).
pub const MAX_ENTRIES: usize = 10_000;
/// Longest path.
pub const MAX_PATH_LEN: usize = 4_096;
/// Largest archive [`unpack`] accepts, in bytes.
pub const MAX_ARCHIVE_BYTES: usize = 1 << 30;

/// A unit's outputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Archive {
    /// The sandbox outcome's code, such as `ok`, `exit:3` or `out_of_fuel`.
    pub outcome: String,
    pub stdout: Vec<u8>,
    /// Directories of `/out`, sorted.
    pub dirs: Vec<String>,
    /// Regular files of `/out`, sorted by path.
    pub files: Vec<OutputFile>,
}

/// Why bytes are not an outputs archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not an outputs archive (bad magic or unknown version)")]
    Magic,
    #[error("archive of {0} bytes is over the {MAX_ARCHIVE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("archive does not decode: {0}")]
    Codec(#[from] CodecError),
    #[error("path {0:?} is not a canonical relative path")]
    BadPath(String),
    #[error("paths are not strictly ascending at {0:?}")]
    Unsorted(String),
    #[error("{0} bytes follow the archive")]
    Trailing(usize),
}

impl Archive {
    /// The archive of a sandbox run.
    pub fn of(result: &UnitResult) -> Self {
        Self {
            outcome: result.outcome.code(),
            stdout: result.stdout.clone(),
            dirs: result.output_dirs.clone(),
            files: result.outputs.clone(),
        }
    }

    /// The sandbox's result digest of these outputs (`exo_exec::digest`): equal to the digest
    /// the replicas committed to, for the archive of their run.
    pub fn result_digest(&self) -> [u8; 32] {
        exo_exec::digest::result_digest_of_code(
            &self.outcome,
            &self.stdout,
            &self.files,
            &self.dirs,
        )
    }

    /// A file's content.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.bytes.as_slice())
    }
}

fn check_path(path: &str) -> Result<(), ArchiveError> {
    let bad = || ArchiveError::BadPath(path.chars().take(200).collect());
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return Err(bad());
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
    {
        return Err(bad());
    }
    Ok(())
}

/// Encodes `archive` canonically: directories and files are sorted (and duplicates dropped)
/// whatever their order in `archive`.
pub fn pack(archive: &Archive) -> Vec<u8> {
    let mut dirs: Vec<&String> = archive.dirs.iter().collect();
    dirs.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    dirs.dedup();
    let mut files: Vec<&OutputFile> = archive.files.iter().collect();
    files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    files.dedup_by(|a, b| a.path == b.path);
    let size = 64
        + archive.outcome.len()
        + archive.stdout.len()
        + dirs.iter().map(|d| d.len() + 5).sum::<usize>()
        + files
            .iter()
            .map(|f| f.path.len() + f.bytes.len() + 10)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.put_slice(&MAGIC);
    write_bytes(archive.outcome.as_bytes(), &mut out);
    write_bytes(&archive.stdout, &mut out);
    dirs.len().write(&mut out);
    for d in dirs {
        write_bytes(d.as_bytes(), &mut out);
    }
    files.len().write(&mut out);
    for f in files {
        write_bytes(f.path.as_bytes(), &mut out);
        write_bytes(&f.bytes, &mut out);
    }
    out
}

/// Decodes and checks an archive made by [`pack`].
pub fn unpack(bytes: &[u8]) -> Result<Archive, ArchiveError> {
    if bytes.len() > MAX_ARCHIVE_BYTES {
        return Err(ArchiveError::TooLarge(bytes.len()));
    }
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(ArchiveError::Magic);
    }
    let mut buf = bytes::Bytes::copy_from_slice(&bytes[MAGIC.len()..]);
    let outcome = read_bounded_string(&mut buf, MAX_OUTCOME_LEN)?;
    let stdout = read_bounded_bytes(&mut buf, MAX_STDOUT_BYTES)?;
    let count = usize::read_cfg(&mut buf, &RangeCfg::new(0..=MAX_ENTRIES))?;
    let mut dirs: Vec<String> = Vec::with_capacity(count.min(buf.remaining()));
    for _ in 0..count {
        let d = read_bounded_string(&mut buf, MAX_PATH_LEN)?;
        check_path(&d)?;
        if dirs
            .last()
            .is_some_and(|prev| prev.as_bytes() >= d.as_bytes())
        {
            return Err(ArchiveError::Unsorted(d));
        }
        dirs.push(d);
    }
    let count = usize::read_cfg(&mut buf, &RangeCfg::new(0..=MAX_ENTRIES))?;
    let mut files: Vec<OutputFile> = Vec::with_capacity(count.min(buf.remaining()));
    for _ in 0..count {
        let path = read_bounded_string(&mut buf, MAX_PATH_LEN)?;
        check_path(&path)?;
        if files
            .last()
            .is_some_and(|prev| prev.path.as_bytes() >= path.as_bytes())
        {
            return Err(ArchiveError::Unsorted(path));
        }
        let bytes = read_bounded_bytes(&mut buf, MAX_ARCHIVE_BYTES)?;
        files.push(OutputFile { path, bytes });
    }
    if buf.has_remaining() {
        return Err(ArchiveError::Trailing(buf.remaining()));
    }
    Ok(Archive {
        outcome,
        stdout,
        dirs,
        files,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8]) -> OutputFile {
        OutputFile {
            path: path.into(),
            bytes: bytes.to_vec(),
        }
    }

    fn sample() -> Archive {
        Archive {
            outcome: "ok".into(),
            stdout: b"hello\n".to_vec(),
            dirs: vec!["d".into()],
            files: vec![file("a.txt", b"1"), file("d/b.bin", &[0, 1, 2])],
        }
    }

    #[test]
    fn round_trips_and_is_canonical() {
        let a = sample();
        let bytes = pack(&a);
        assert_eq!(unpack(&bytes).unwrap(), a);
        // Order of the input does not matter.
        let mut shuffled = a.clone();
        shuffled.files.reverse();
        assert_eq!(pack(&shuffled), bytes);
        // Frozen: the format is shared with requesters.
        assert_eq!(
            hex::encode(blake3::hash(&pack(&Archive::default())).as_bytes()),
            hex::encode(blake3::hash(b"EXOOUT\x00\x01\x00\x00\x00\x00").as_bytes())
        );
    }

    #[test]
    fn digest_matches_the_sandbox_digest() {
        let a = sample();
        assert_eq!(
            a.result_digest(),
            exo_exec::digest::result_digest(&exo_exec::Outcome::Ok, &a.stdout, &a.files, &a.dirs)
        );
    }

    #[test]
    fn refuses_bad_archives() {
        let good = pack(&sample());
        assert!(matches!(unpack(b"nope"), Err(ArchiveError::Magic)));
        let mut v2 = good.clone();
        v2[7] = 2;
        assert!(matches!(unpack(&v2), Err(ArchiveError::Magic)));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(unpack(&trailing), Err(ArchiveError::Trailing(1))));
        for cut in 8..good.len() {
            assert!(unpack(&good[..cut]).is_err(), "truncated at {cut}");
        }
        for bad in ["", "/abs", "a//b", "a/../b", ".", "x/"] {
            let a = Archive {
                files: vec![file(bad, b"")],
                ..Archive::default()
            };
            assert!(
                matches!(unpack(&pack(&a)), Err(ArchiveError::BadPath(_))),
                "{bad:?}"
            );
        }
        // Unsorted or duplicate entries, written by hand.
        let mut raw = MAGIC.to_vec();
        write_bytes(b"ok", &mut raw);
        write_bytes(b"", &mut raw);
        0usize.write(&mut raw);
        2usize.write(&mut raw);
        for p in ["b", "a"] {
            write_bytes(p.as_bytes(), &mut raw);
            write_bytes(b"", &mut raw);
        }
        assert!(matches!(unpack(&raw), Err(ArchiveError::Unsorted(_))));
        // A count over the bound is refused before anything is allocated.
        let mut huge = MAGIC.to_vec();
        write_bytes(b"ok", &mut huge);
        write_bytes(b"", &mut huge);
        (MAX_ENTRIES + 1).write(&mut huge);
        assert!(matches!(unpack(&huge), Err(ArchiveError::Codec(_))));
    }
}
