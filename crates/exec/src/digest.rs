//! The result digest that replicas compare: `exo_types::result_digest` (where its format is
//! written down) of a run's outcome and outputs. Outcomes that drop outputs (see
//! [`crate::Outcome::keeps_outputs`]) hash an empty stdout and an empty listing. stderr never
//! enters the digest: it is for diagnostics.

use crate::spec::{Outcome, OutputFile};

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
    exo_types::result_digest(
        outcome_code,
        stdout,
        files.iter().map(|f| (f.path.as_str(), f.bytes.as_slice())),
        dirs.iter().map(String::as_str),
    )
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
