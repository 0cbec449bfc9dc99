//! The outputs archive: how a worker hands one unit's results to the blob store, and how a
//! requester checks them against the digest the chain accepted.
//!
//! A unit's result digest (computed by the sandbox, `exo_exec::digest`) covers the outcome code,
//! stdout and the listing of `/out` (directories and files with their contents). The archive
//! carries exactly those, so anyone holding it can recompute the digest with
//! [`Archive::result_digest`] and compare it with the accepted one: an archive is worth nothing
//! until that check passes. stderr is left out, as it is from the digest.
//!
//! # Format (frozen: version 1)
//!
//! Every integer is big-endian. Paths are relative, `/`-separated UTF-8 (see [`check_path`]).
//!
//! ```text
//! magic      8 bytes  "EXOOUT01"
//! outcome    u16 length, bytes        the sandbox's outcome code, e.g. "ok", "exit:1"
//! stdout     u64 length, bytes
//! dirs       u32 count, then per dir:  u16 length, path bytes
//! files      u32 count, then per file: u16 length, path bytes, u64 size, content
//! ```
//!
//! Directories and files are each sorted by path bytes, without duplicates, and no path is
//! both a directory and a file; nothing follows the last file. [`unpack`] refuses anything
//! else, so one set of results has exactly one archive and hence one blob hash.
//!
//! This module must stay free of the server and of the sandbox: the client and the worker use
//! it too, and it is re-exported as `exo_client::outputs`.

/// The archive's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"EXOOUT01";
/// Longest outcome code, in bytes.
pub const MAX_OUTCOME_LEN: usize = 256;
/// Longest path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Most directories plus files in one archive.
pub const MAX_ENTRIES: usize = 65_536;

/// One unit's results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Archive {
    /// The sandbox's outcome code (`Outcome::code`): `ok`, `exit:N`, `out_of_fuel`, ...
    pub outcome: String,
    pub stdout: Vec<u8>,
    /// Directories of `/out`, relative paths.
    pub dirs: Vec<String>,
    /// Regular files of `/out`: (relative path, content).
    pub files: Vec<(String, Vec<u8>)>,
}

/// Why bytes are not a canonical archive, or an archive cannot be packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// The bytes do not start with [`MAGIC`].
    BadMagic,
    /// The bytes end inside a field.
    Truncated,
    /// Bytes follow the last file.
    TrailingBytes(usize),
    /// A field is over its bound.
    TooLarge(&'static str),
    /// A path or the outcome is not valid.
    BadPath(String),
    /// Entries are not sorted, or repeat.
    NotCanonical(String),
}

impl std::error::Error for ArchiveError {}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadMagic => write!(f, "not an outputs archive (bad magic)"),
            Self::Truncated => write!(f, "the archive is truncated"),
            Self::TrailingBytes(n) => write!(f, "{n} bytes follow the archive's last entry"),
            Self::TooLarge(what) => write!(f, "the archive's {what} is over its bound"),
            Self::BadPath(detail) => write!(f, "bad path in the archive: {detail}"),
            Self::NotCanonical(detail) => write!(f, "the archive is not canonical: {detail}"),
        }
    }
}

/// Checks that `path` is a plain relative path: 1 to [`MAX_PATH_LEN`] bytes, `/`-separated
/// components that are neither empty, `.` nor `..`, and no NUL or backslash. Paths that pass
/// can be joined to a directory without leaving it.
pub fn check_path(path: &str) -> Result<(), ArchiveError> {
    let bad = |why: &str| Err(ArchiveError::BadPath(format!("{path:?} {why}")));
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return bad("must be 1 to 1024 bytes");
    }
    if path.contains('\0') || path.contains('\\') {
        return bad("holds a NUL or a backslash");
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return bad("is not a plain relative path");
    }
    Ok(())
}

fn strictly_sorted<'a>(
    what: &str,
    mut paths: impl Iterator<Item = &'a str>,
) -> Result<(), ArchiveError> {
    let Some(mut previous) = paths.next() else {
        return Ok(());
    };
    for path in paths {
        if path.as_bytes() <= previous.as_bytes() {
            return Err(ArchiveError::NotCanonical(format!(
                "{what} {path:?} follows {previous:?}"
            )));
        }
        previous = path;
    }
    Ok(())
}

impl Archive {
    /// Sorts the entries into canonical order.
    pub fn sort(&mut self) {
        self.dirs.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        self.files
            .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }

    /// Checks the bounds and the canonical order.
    pub fn check(&self) -> Result<(), ArchiveError> {
        if self.outcome.is_empty() || self.outcome.len() > MAX_OUTCOME_LEN {
            return Err(ArchiveError::TooLarge("outcome"));
        }
        if self.dirs.len() + self.files.len() > MAX_ENTRIES {
            return Err(ArchiveError::TooLarge("entry count"));
        }
        for path in self.dirs.iter().chain(self.files.iter().map(|f| &f.0)) {
            check_path(path)?;
        }
        strictly_sorted("directory", self.dirs.iter().map(String::as_str))?;
        strictly_sorted("file", self.files.iter().map(|f| f.0.as_str()))?;
        for (path, _) in &self.files {
            if self
                .dirs
                .binary_search_by(|d| d.as_bytes().cmp(path.as_bytes()))
                .is_ok()
            {
                return Err(ArchiveError::NotCanonical(format!(
                    "{path:?} is both a directory and a file"
                )));
            }
        }
        Ok(())
    }

    /// The result digest of these results, as the sandbox computes it
    /// ([`exo_types::result_digest`]).
    pub fn result_digest(&self) -> [u8; 32] {
        exo_types::result_digest(
            &self.outcome,
            &self.stdout,
            self.files
                .iter()
                .map(|(path, bytes)| (path.as_str(), bytes.as_slice())),
            self.dirs.iter().map(String::as_str),
        )
    }

    /// Total bytes of stdout and file contents.
    pub fn content_bytes(&self) -> u64 {
        self.stdout.len() as u64 + self.files.iter().map(|f| f.1.len() as u64).sum::<u64>()
    }
}

/// The canonical bytes of `archive` (its entries are sorted first).
pub fn pack(archive: &Archive) -> Result<Vec<u8>, ArchiveError> {
    let mut archive = archive.clone();
    archive.sort();
    archive.check()?;
    let size = 8
        + 2
        + archive.outcome.len()
        + 8
        + archive.stdout.len()
        + 4
        + archive.dirs.iter().map(|d| 2 + d.len()).sum::<usize>()
        + 4
        + archive
            .files
            .iter()
            .map(|(p, b)| 2 + p.len() + 8 + b.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    // Lengths fit: check() bounded the outcome, paths and counts.
    out.extend_from_slice(&(archive.outcome.len() as u16).to_be_bytes());
    out.extend_from_slice(archive.outcome.as_bytes());
    out.extend_from_slice(&(archive.stdout.len() as u64).to_be_bytes());
    out.extend_from_slice(&archive.stdout);
    out.extend_from_slice(&(archive.dirs.len() as u32).to_be_bytes());
    for dir in &archive.dirs {
        out.extend_from_slice(&(dir.len() as u16).to_be_bytes());
        out.extend_from_slice(dir.as_bytes());
    }
    out.extend_from_slice(&(archive.files.len() as u32).to_be_bytes());
    for (path, bytes) in &archive.files {
        out.extend_from_slice(&(path.len() as u16).to_be_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

/// Reads fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ArchiveError> {
        if self.0.len() < n {
            return Err(ArchiveError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn int<const N: usize>(&mut self) -> Result<[u8; N], ArchiveError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<usize, ArchiveError> {
        Ok(usize::from(u16::from_be_bytes(self.int()?)))
    }

    fn u32(&mut self) -> Result<usize, ArchiveError> {
        usize::try_from(u32::from_be_bytes(self.int()?)).map_err(|_| ArchiveError::Truncated)
    }

    /// A length that must fit in what is left, so a lying length never allocates.
    fn u64_len(&mut self) -> Result<usize, ArchiveError> {
        let len = u64::from_be_bytes(self.int()?);
        match usize::try_from(len) {
            Ok(len) if len <= self.0.len() => Ok(len),
            _ => Err(ArchiveError::Truncated),
        }
    }

    fn text(&mut self, len: usize) -> Result<String, ArchiveError> {
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| ArchiveError::BadPath("a path or the outcome is not UTF-8".into()))
    }
}

/// Decodes a canonical archive. Every bound is checked before anything is allocated, so
/// untrusted bytes cost at most their own size.
pub fn unpack(bytes: &[u8]) -> Result<Archive, ArchiveError> {
    let mut r = Reader(bytes);
    if r.take(8).map_err(|_| ArchiveError::BadMagic)? != MAGIC {
        return Err(ArchiveError::BadMagic);
    }
    let outcome_len = r.u16()?;
    if outcome_len > MAX_OUTCOME_LEN {
        return Err(ArchiveError::TooLarge("outcome"));
    }
    let outcome = r.text(outcome_len)?;
    let stdout_len = r.u64_len()?;
    let stdout = r.take(stdout_len)?.to_vec();
    let dir_count = r.u32()?;
    if dir_count > MAX_ENTRIES {
        return Err(ArchiveError::TooLarge("entry count"));
    }
    let mut dirs = Vec::with_capacity(dir_count.min(r.0.len() / 3));
    for _ in 0..dir_count {
        let len = r.u16()?;
        dirs.push(r.text(len)?);
    }
    let file_count = r.u32()?;
    if dir_count + file_count > MAX_ENTRIES {
        return Err(ArchiveError::TooLarge("entry count"));
    }
    let mut files = Vec::with_capacity(file_count.min(r.0.len() / 11));
    for _ in 0..file_count {
        let len = r.u16()?;
        let path = r.text(len)?;
        let size = r.u64_len()?;
        files.push((path, r.take(size)?.to_vec()));
    }
    if !r.0.is_empty() {
        return Err(ArchiveError::TrailingBytes(r.0.len()));
    }
    let archive = Archive {
        outcome,
        stdout,
        dirs,
        files,
    };
    archive.check()?;
    Ok(archive)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Archive {
        Archive {
            outcome: "ok".into(),
            stdout: b"hi\n".to_vec(),
            dirs: vec!["d".into()],
            files: vec![("d/b".into(), b"2".to_vec()), ("a".into(), b"1".to_vec())],
        }
    }

    #[test]
    fn pack_sorts_and_unpack_round_trips() {
        let bytes = pack(&sample()).unwrap();
        let back = unpack(&bytes).unwrap();
        let mut sorted = sample();
        sorted.sort();
        assert_eq!(back, sorted);
        // Packing the same results in another order gives the same bytes.
        let mut shuffled = sample();
        shuffled.files.reverse();
        assert_eq!(pack(&shuffled).unwrap(), bytes);
    }

    #[test]
    fn digest_matches_the_sandbox() {
        // Frozen in exo_exec::digest: the digest of an ok run with no output.
        let empty = Archive {
            outcome: "ok".into(),
            ..Archive::default()
        };
        assert_eq!(
            hex::encode(empty.result_digest()),
            "5f9b859230785619baee92502e71e42b3eb1bf757096b87ce079d419d3350d2c"
        );
        let mut other = sample();
        other.stdout = b"ho\n".to_vec();
        assert_ne!(sample().result_digest(), other.result_digest());
    }

    #[test]
    fn refuses_non_canonical_and_malformed_bytes() {
        let bytes = pack(&sample()).unwrap();
        assert_eq!(unpack(&bytes[..7]), Err(ArchiveError::BadMagic));
        assert_eq!(unpack(b"NOTANARCHIVE"), Err(ArchiveError::BadMagic));
        for cut in 8..bytes.len() {
            assert!(unpack(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(unpack(&extra), Err(ArchiveError::TrailingBytes(1)));

        // Hand-built: files out of order.
        let mut unsorted = Vec::new();
        unsorted.extend_from_slice(MAGIC);
        unsorted.extend_from_slice(&2u16.to_be_bytes());
        unsorted.extend_from_slice(b"ok");
        unsorted.extend_from_slice(&0u64.to_be_bytes());
        unsorted.extend_from_slice(&0u32.to_be_bytes());
        unsorted.extend_from_slice(&2u32.to_be_bytes());
        for name in [b"b", b"a"] {
            unsorted.extend_from_slice(&1u16.to_be_bytes());
            unsorted.extend_from_slice(name);
            unsorted.extend_from_slice(&0u64.to_be_bytes());
        }
        assert!(matches!(
            unpack(&unsorted),
            Err(ArchiveError::NotCanonical(_))
        ));

        // A length that claims more than the buffer holds allocates nothing and fails.
        let mut huge = Vec::new();
        huge.extend_from_slice(MAGIC);
        huge.extend_from_slice(&2u16.to_be_bytes());
        huge.extend_from_slice(b"ok");
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(unpack(&huge), Err(ArchiveError::Truncated));
    }

    #[test]
    fn paths_must_stay_inside() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a/",
        ] {
            let archive = Archive {
                outcome: "ok".into(),
                files: vec![(bad.into(), vec![])],
                ..Archive::default()
            };
            assert!(pack(&archive).is_err(), "{bad:?}");
        }
        let dup = Archive {
            outcome: "ok".into(),
            dirs: vec!["a".into()],
            files: vec![("a".into(), vec![])],
            ..Archive::default()
        };
        assert!(matches!(pack(&dup), Err(ArchiveError::NotCanonical(_))));
    }
}
