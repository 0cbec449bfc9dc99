//! Library side of `exo exec run`: run one unit from files on disk, the way a provider would.

use crate::error::ExecError;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::spec::{Outcome, UnitSpec};
use std::path::PathBuf;

/// Arguments of `exo exec run`.
#[derive(Clone, Debug)]
pub struct LocalRun {
    pub module: PathBuf,
    /// `(name, path)`: the file at `path` becomes `/in/<name>`.
    pub inputs: Vec<(String, PathBuf)>,
    pub args: Vec<String>,
    pub unit_index: u64,
    pub seed: u64,
    pub fuel_limit: u64,
    pub memory_mib: u64,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    /// Where the outputs are copied (created if missing). `None` keeps them in memory only.
    pub out_dir: Option<PathBuf>,
    /// The compile cache.
    pub cache_dir: PathBuf,
}

/// What `exo exec run` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    pub digest_hex: String,
    pub fuel_used: u64,
    pub peak_memory_bytes: u64,
    pub cache_hit: bool,
    pub wall_time_us: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Paths (relative to the out dir) of the files written.
    pub outputs: Vec<String>,
}

/// Runs the unit and copies its outputs to `out_dir`.
pub fn run_local(args: &LocalRun) -> Result<Report, ExecError> {
    let wasm =
        std::fs::read(&args.module).map_err(|e| ExecError::io("read module", &args.module, e))?;
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent_units: 1,
        ..SandboxConfig::new(&args.cache_dir)
    })?;
    let mut spec = UnitSpec::wasm(&wasm)
        .args(args.args.iter().cloned())
        .unit(args.unit_index, args.seed)
        .fuel(args.fuel_limit)
        .memory(args.memory_mib.saturating_mul(1 << 20))
        .timeout_ms(args.timeout_ms)
        .max_output(args.max_output_bytes);
    for (name, path) in &args.inputs {
        spec = spec.input_path(name.clone(), path.clone());
    }
    let result = sandbox.run(&spec)?;
    let mut written = Vec::new();
    if let Some(dir) = &args.out_dir {
        for d in &result.output_dirs {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(|e| ExecError::io("create output dir", &p, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| ExecError::io("create output dir", dir, e))?;
        for f in &result.outputs {
            let p = dir.join(&f.path);
            std::fs::write(&p, &f.bytes).map_err(|e| ExecError::io("write output", &p, e))?;
            written.push(f.path.clone());
        }
    }
    Ok(Report {
        outcome: result.outcome.clone(),
        digest_hex: result.digest_hex(),
        fuel_used: result.fuel_used,
        peak_memory_bytes: result.peak_memory_bytes,
        cache_hit: result.cache_hit,
        wall_time_us: result.wall_time_us,
        stdout: result.stdout,
        stderr: result.stderr,
        outputs: written,
    })
}
