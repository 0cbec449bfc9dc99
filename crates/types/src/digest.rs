//! The result digest that replicas compare, defined once: the sandbox computes it from a run,
//! the API and requesters recompute it from a downloaded outputs archive.
//!
//! `digest = BLAKE3-derive-key(CONTEXT, M)` where `M` is, with every integer as u64
//! little-endian and every string prefixed by its length:
//!
//! ```text
//! outcome code
//! stdout length, BLAKE3(stdout)
//! number of /out entries
//! for each entry, sorted by path bytes (a directory before a file of the same path):
//!     kind (1 byte: b'd' directory, b'f' regular file), path, size, BLAKE3(content) (zeros for a directory)
//! ```
//!
//! Changing this format changes every digest: do it on purpose, with a new context string.

/// The derivation context of the result digest.
pub const RESULT_DIGEST_CONTEXT: &str = "exodus exec result digest v1";

/// The digest of a unit's result: its outcome code, its stdout, and its `/out` files
/// (path, content) and directories (path), in any order.
pub fn result_digest<'a>(
    outcome_code: &str,
    stdout: &[u8],
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    dirs: impl IntoIterator<Item = &'a str>,
) -> [u8; 32] {
    let mut entries: Vec<(&str, u8, u64, [u8; 32])> = files
        .into_iter()
        .map(|(path, bytes)| {
            (
                path,
                b'f',
                bytes.len() as u64,
                *blake3::hash(bytes).as_bytes(),
            )
        })
        .chain(dirs.into_iter().map(|path| (path, b'd', 0, [0; 32])))
        .collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    let mut h = blake3::Hasher::new_derive_key(RESULT_DIGEST_CONTEXT);
    put_str(&mut h, outcome_code);
    h.update(&(stdout.len() as u64).to_le_bytes());
    h.update(blake3::hash(stdout).as_bytes());
    h.update(&(entries.len() as u64).to_le_bytes());
    for (path, kind, size, content) in entries {
        h.update(&[kind]);
        put_str(&mut h, path);
        h.update(&size.to_le_bytes());
        h.update(&content);
    }
    *h.finalize().as_bytes()
}

fn put_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// The derivation context of the digests that stand for "could not finish" reports.
pub const UNFINISHED_DIGEST_CONTEXT: &str = "exodus unfinished report v1";

/// Why a replica could not finish its unit on its machine: outcomes that depend on the machine
/// rather than on the module and its inputs, so that two honest providers may disagree on them
/// (docs/exec-determinism.md, "Who is to blame for an outcome"). Codes are frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfinished {
    /// The guest exhausted the machine stack: its depth depends on the compiler backend, the
    /// architecture and the wasmtime version.
    StackOverflow = 1,
    /// The wall-clock limit passed before the fuel ran out: it depends on the machine's speed
    /// and load.
    Timeout = 2,
    /// The host could not give the memory the unit may use.
    HostMemory = 3,
    /// The host failed otherwise: its inputs could not be fetched from its node, the engine
    /// refused to run, a disk failed.
    Host = 4,
}

impl Unfinished {
    /// Every reason, in code order.
    pub const ALL: [Unfinished; 4] = [
        Unfinished::StackOverflow,
        Unfinished::Timeout,
        Unfinished::HostMemory,
        Unfinished::Host,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::StackOverflow => "stack_overflow",
            Self::Timeout => "timeout",
            Self::HostMemory => "host_memory",
            Self::Host => "host",
        }
    }

    /// The digest a replica commits and reveals, with the fuel it burnt so far, to report that
    /// it could not finish for this reason. It is derived under its own context, so no result
    /// digest ([`result_digest`]) can be mistaken for it, and it goes through commit and
    /// reveal like a result: nobody can copy a report before committing its own.
    pub fn digest(self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(UNFINISHED_DIGEST_CONTEXT);
        h.update(&[self.code()]);
        *h.finalize().as_bytes()
    }

    /// The reason a revealed digest reports, if it is a report rather than a result.
    pub fn of_digest(digest: &[u8; 32]) -> Option<Unfinished> {
        Self::ALL.into_iter().find(|r| r.digest() == *digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frozen: the ledger recognises reports by these digests.
    #[test]
    fn the_digests_of_unfinished_reports_are_frozen_and_never_a_result_digest() {
        let hex: Vec<String> = Unfinished::ALL
            .iter()
            .map(|r| hex::encode(r.digest()))
            .collect();
        assert_eq!(
            hex.join("\n"),
            include_str!("../tests/golden/unfinished.hex").trim()
        );
        for reason in Unfinished::ALL {
            assert_eq!(Unfinished::of_digest(&reason.digest()), Some(reason));
        }
        let empty = result_digest("ok", b"", std::iter::empty(), std::iter::empty());
        assert_eq!(Unfinished::of_digest(&empty), None);
        let timeout = result_digest("timeout", b"", std::iter::empty(), std::iter::empty());
        assert_eq!(Unfinished::of_digest(&timeout), None);
    }
}
