//! The result digest that replicas compare.
//!
//! `digest = BLAKE3-derive-key("exodus exec result digest v1", M)` where `M` is, with every
//! integer as u64 little-endian and every string prefixed by its length:
//!
//! ```text
//! outcome code (Outcome::code)
//! stdout length, BLAKE3(stdout)
//! number of /out entries
//! for each entry, sorted by path bytes:
//!     kind (1 byte: b'd' directory, b'f' regular file), path, size, BLAKE3(content) (zeros for a directory)
//! ```
//!
//! Outcomes that drop outputs (see [`crate::Outcome::keeps_outputs`]) hash an empty stdout and an
//! empty listing. stderr never enters the digest: it is for diagnostics. Changing this format
//! changes every digest: do it on purpose, with a new context string.

use crate::spec::{Outcome, OutputFile};

pub const CONTEXT: &str = "exodus exec result digest v1";

pub fn result_digest(
    outcome: &Outcome,
    stdout: &[u8],
    files: &[OutputFile],
    dirs: &[String],
) -> [u8; 32] {
    result_digest_of_code(&outcome.code(), stdout, files, dirs)
}

/// [`result_digest`] from an outcome's code ([`Outcome::code`]) rather than the outcome itself:
/// what a requester recomputes from a downloaded outputs archive to check it against the
/// accepted digest.
pub fn result_digest_of_code(
    outcome_code: &str,
    stdout: &[u8],
    files: &[OutputFile],
    dirs: &[String],
) -> [u8; 32] {
    let mut entries: Vec<(&str, u8, u64, [u8; 32])> = Vec::with_capacity(files.len() + dirs.len());
    for f in files {
        entries.push((
            &f.path,
            b'f',
            f.bytes.len() as u64,
            *blake3::hash(&f.bytes).as_bytes(),
        ));
    }
    for d in dirs {
        entries.push((d, b'd', 0, [0; 32]));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));

    let mut h = blake3::Hasher::new_derive_key(CONTEXT);
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

    #[test]
    fn golden_and_order_independent() {
        let a = result_digest(
            &Outcome::Ok,
            b"hi\n",
            &[file("a", b"1"), file("d/b", b"2")],
            &["d".into()],
        );
        let b = result_digest(
            &Outcome::Ok,
            b"hi\n",
            &[file("d/b", b"2"), file("a", b"1")],
            &["d".into()],
        );
        assert_eq!(a, b);
        // Frozen: a change here changes every digest on the network.
        assert_eq!(
            hex::encode(result_digest(&Outcome::Ok, b"", &[], &[])),
            "5f9b859230785619baee92502e71e42b3eb1bf757096b87ce079d419d3350d2c"
        );
    }

    #[test]
    fn everything_counts() {
        let base = result_digest(&Outcome::Ok, b"x", &[file("a", b"1")], &[]);
        assert_ne!(
            base,
            result_digest(&Outcome::Exit(1), b"x", &[file("a", b"1")], &[])
        );
        assert_ne!(
            base,
            result_digest(&Outcome::Ok, b"y", &[file("a", b"1")], &[])
        );
        assert_ne!(
            base,
            result_digest(&Outcome::Ok, b"x", &[file("b", b"1")], &[])
        );
        assert_ne!(
            base,
            result_digest(&Outcome::Ok, b"x", &[file("a", b"2")], &[])
        );
        assert_ne!(
            base,
            result_digest(&Outcome::Ok, b"x", &[file("a", b"1")], &["d".into()])
        );
    }
}
