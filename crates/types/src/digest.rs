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
