//! `exo exec`: run one work unit in the sandbox on this machine, the way a provider would,
//! without a node.

use crate::{CliError, GlobalArgs, Report};
use clap::{Args, Subcommand};
use exo_exec::cli::{LocalRun, run_local};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ExecCommand {
    /// Run a module once and print its outcome, result digest and fuel used.
    Run(RunArgs),
}

#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The module (a wasm32-wasip1 command).
    #[arg(value_name = "MODULE.wasm")]
    pub module: PathBuf,
    /// An input file, seen as /in/<file name>. Repeatable.
    #[arg(long = "input", value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// An argument of the guest. Repeatable.
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Fuel the unit may burn.
    #[arg(long, value_name = "N", default_value_t = 10_000_000_000)]
    pub fuel: u64,
    /// The guest's memory limit, in MiB.
    #[arg(long, value_name = "M", default_value_t = 256)]
    pub memory_mib: u64,
    /// Wall-clock limit, in milliseconds.
    #[arg(long, value_name = "T", default_value_t = 60_000)]
    pub timeout_ms: u64,
    /// Unit index the guest sees.
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub unit: u64,
    /// Seed of the guest's randomness.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Most bytes of outputs (stdout, stderr and /out each).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_output_bytes: u64,
    /// Directory to copy /out into.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Directory of compiled modules (default: exo-exec-cache in the temporary directory).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

pub fn run(command: ExecCommand, _global: &GlobalArgs) -> Result<Report, CliError> {
    match command {
        ExecCommand::Run(args) => run_unit(&args),
    }
}

/// `exo exec run`.
pub fn run_unit(args: &RunArgs) -> Result<Report, CliError> {
    if !args.module.is_file() {
        return Err(CliError::Invalid(format!(
            "module {} is not a file",
            args.module.display()
        )));
    }
    let mut inputs = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            CliError::Invalid(format!("input {} has no file name", path.display()))
        })?;
        inputs.push((name.to_string(), path.clone()));
    }
    let local = LocalRun {
        module: args.module.clone(),
        inputs,
        args: args.args.clone(),
        unit_index: args.unit,
        seed: args.seed,
        fuel_limit: args.fuel,
        memory_mib: args.memory_mib,
        timeout_ms: args.timeout_ms,
        max_output_bytes: args.max_output_bytes,
        out_dir: args.out.clone(),
        cache_dir: args
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("exo-exec-cache")),
    };
    let report = run_local(&local).map_err(|e| CliError::Other(format!("exec: {e}")))?;
    let stdout = String::from_utf8_lossy(&report.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&report.stderr).into_owned();
    let mut text = format!(
        "outcome {}\ndigest {}\nfuel used {}",
        report.outcome, report.digest_hex, report.fuel_used
    );
    if !report.outputs.is_empty() {
        text.push_str(&format!("\noutputs {}", report.outputs.join(", ")));
    }
    if !stdout.is_empty() {
        text.push_str("\n--- stdout\n");
        text.push_str(stdout.trim_end_matches('\n'));
    }
    Ok(Report::ok(
        text,
        json!({
            "outcome": report.outcome.code(),
            "digest": report.digest_hex,
            "fuel_used": report.fuel_used,
            "peak_memory_bytes": report.peak_memory_bytes,
            "wall_time_us": report.wall_time_us,
            "stdout": stdout,
            "stderr": stderr,
            "outputs": report.outputs,
        }),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use exo_client::outputs::Archive;
    use exo_exec::{Outcome, OutputFile, digest::result_digest};

    /// The outputs archive recomputes the sandbox's result digest: what a worker uploads can
    /// be checked against what the chain accepted.
    #[test]
    fn archive_digest_is_the_sandbox_digest() {
        let files = vec![
            OutputFile {
                path: "frames/1.png".into(),
                bytes: vec![1, 2, 3],
            },
            OutputFile {
                path: "a.txt".into(),
                bytes: b"alpha".to_vec(),
            },
        ];
        let dirs = vec!["frames".to_string(), "empty".to_string()];
        for outcome in [Outcome::Ok, Outcome::Exit(3), Outcome::OutOfFuel] {
            let archive = Archive {
                outcome: outcome.code(),
                stdout: b"some output\n".to_vec(),
                dirs: dirs.clone(),
                files: files
                    .iter()
                    .map(|f| (f.path.clone(), f.bytes.clone()))
                    .collect(),
            };
            assert_eq!(
                archive.result_digest(),
                result_digest(&outcome, b"some output\n", &files, &dirs),
                "{outcome}"
            );
        }
    }
}
