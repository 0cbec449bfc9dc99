//! The outputs archive: one blob holding everything a unit produced, uploaded by the provider
//! and downloaded by the requester.
//!
//! The format is the node's (`exo_api::outputs`, re-exported by `exo-client` and here): the node
//! unpacks every archive registered with `PUT /v1/outputs/{job}/{unit}` and recomputes the result
//! digest from it, and requesters check downloaded outputs the same way, so there is one format
//! in the system. It is canonical (the same run gives the same bytes on every machine, so honest
//! replicas upload the same blob) and self-checking ([`Archive::result_digest`] is the sandbox's
//! digest). See `crates/api/src/outputs.rs` for the byte layout.
//!
//! What this module adds is [`archive_of`], the archive of a sandbox run.

pub use exo_client::outputs::{Archive, ArchiveError, MAGIC, pack, unpack};
use exo_exec::UnitResult;

/// The archive of a sandbox run: its outcome code, stdout and `/out` (stderr is left out, as
/// it is from the digest). An outcome that drops outputs (`output_too_large`, ...) keeps the
/// stdout it wrote in the run but not in the digest, so the archive leaves it out too: the
/// node checks an archive against the digest the replicas agreed on.
pub fn archive_of(result: &UnitResult) -> Archive {
    let stdout = if result.outcome.keeps_outputs() {
        result.stdout.clone()
    } else {
        Vec::new()
    };
    let mut archive = Archive {
        outcome: result.outcome.code(),
        stdout,
        dirs: result.output_dirs.clone(),
        files: result
            .outputs
            .iter()
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect(),
    };
    archive.sort();
    archive
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use exo_exec::{Outcome, OutputFile};

    fn result(files: Vec<OutputFile>, dirs: Vec<String>) -> UnitResult {
        let stdout = b"hello\n".to_vec();
        UnitResult {
            outcome: Outcome::Exit(3),
            digest: exo_exec::digest::result_digest(&Outcome::Exit(3), &stdout, &files, &dirs),
            fuel_used: 10,
            stdout,
            stderr: b"not archived".to_vec(),
            outputs: files,
            output_dirs: dirs,
            peak_memory_bytes: 0,
            module_hash: [0; 32],
            cache_hit: false,
            wall_time_us: 0,
        }
    }

    #[test]
    fn the_archive_of_a_run_round_trips_to_the_sandbox_digest() {
        let file = |path: &str, bytes: &[u8]| OutputFile {
            path: path.into(),
            bytes: bytes.to_vec(),
        };
        let run = result(
            vec![file("d/b.bin", &[0, 1, 2]), file("a.txt", b"1")],
            vec!["d".into()],
        );
        let archive = archive_of(&run);
        assert_eq!(archive.outcome, "exit:3");
        // The node's digest of the archive is the sandbox's digest of the run.
        assert_eq!(archive.result_digest(), run.digest);
        let bytes = pack(&archive).unwrap();
        assert_eq!(&bytes[..MAGIC.len()], MAGIC);
        let back = unpack(&bytes).unwrap();
        assert_eq!(back, archive);
        assert_eq!(back.result_digest(), run.digest);
        // Canonical: the order the sandbox listed files in does not matter.
        let mut shuffled = run.clone();
        shuffled.outputs.reverse();
        assert_eq!(pack(&archive_of(&shuffled)).unwrap(), bytes);
        // Empty outputs too.
        let empty = result(Vec::new(), Vec::new());
        assert_eq!(archive_of(&empty).result_digest(), empty.digest);
    }

    /// A run that flooded stdout ends `output_too_large` with its stdout dropped from the
    /// digest; its archive must drop it too, or no node serves the accepted outputs.
    #[test]
    fn the_archive_of_an_outcome_that_drops_outputs_matches_its_digest() {
        let outcome = Outcome::OutputTooLarge(exo_exec::OutputStream::Stdout);
        let run = UnitResult {
            outcome: outcome.clone(),
            digest: exo_exec::digest::result_digest(&outcome, b"", &[], &[]),
            ..result(Vec::new(), Vec::new())
        };
        assert!(!run.stdout.is_empty());
        let archive = archive_of(&run);
        assert!(archive.stdout.is_empty());
        assert_eq!(archive.result_digest(), run.digest);
    }
}
