//! The machine benchmark a provider registers: cores, memory, GPUs and a single-core score in
//! fuel per second, measured by running the `montecarlo` app in the sandbox for about a second.
//! The score is cached in the data directory, keyed by the sandbox's engine, so restarts are
//! quick.

use exo_exec::{ExecError, Sandbox, UnitSpec};
use exo_types::exo_market::{
    DeviceClass, Gpu, MAX_CPU_SCORE, Resources, Runtime, RuntimeSet, canonical_gpu_model,
};
use serde::{Deserialize, Serialize};
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// The cached score file in the data directory.
pub const BENCH_FILE: &str = "benchmark.json";
/// Fuel of the calibration run.
const CALIBRATION_FUEL: u64 = 50_000_000;

/// What the benchmark measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Benchmark {
    /// Single-core fuel per second.
    pub fuel_per_second: u64,
    pub cores: u32,
    pub memory_mib: u64,
    pub gpu: Option<GpuInfo>,
}

/// GPUs found by `nvidia-smi`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub model: String,
    pub count: u32,
    pub memory_mib: u64,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    /// The sandbox engine the score was measured with.
    engine: String,
    worker_version: String,
    fuel_per_second: u64,
}

impl Benchmark {
    /// The provider description to register.
    pub fn resources(&self, class: DeviceClass, region: &str, max_unit_fuel: u64) -> Resources {
        Resources {
            cores: self.cores.max(1),
            cpu_score: self.fuel_per_second.clamp(1, MAX_CPU_SCORE),
            memory_mib: self.memory_mib.max(1),
            gpu: self.gpu.as_ref().map(|g| Gpu {
                model: g.model.clone(),
                count: g.count,
                memory_mib: g.memory_mib,
            }),
            class,
            region: region.to_string(),
            runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
            max_unit_fuel,
        }
    }

    /// A generous wall-clock limit for a unit of `fuel_limit` on this machine: three times what
    /// the benchmark predicts, plus ten seconds, at most a day.
    pub fn timeout_for(&self, fuel_limit: u64) -> Duration {
        let rate = self.fuel_per_second.max(1);
        let predicted_ms = u128::from(fuel_limit) * 1000 / u128::from(rate);
        let ms = predicted_ms.saturating_mul(3).saturating_add(10_000);
        Duration::from_millis(u64::try_from(ms.min(86_400_000)).unwrap_or(86_400_000))
    }
}

/// Runs the reference kernel with `fuel` and returns the wall time it took.
fn timed_run(sandbox: &Sandbox, fuel: u64) -> Result<Duration, ExecError> {
    // Far more paths than the fuel allows: the run ends out of fuel, after exactly `fuel`.
    let spec = UnitSpec::wasm(exo_apps::MONTECARLO_WASM)
        .args([
            "spot=100",
            "strike=100",
            "rate=0.05",
            "vol=0.2",
            "maturity=1",
            "pairs=1099511627776",
            "seed=1",
            "stream=0",
        ])
        .unit(0, 1)
        .fuel(fuel)
        .timeout_ms(60_000);
    let start = Instant::now();
    let result = sandbox.run(&spec)?;
    let elapsed = start.elapsed();
    if result.outcome != exo_exec::Outcome::OutOfFuel {
        return Err(ExecError::Engine(format!(
            "benchmark kernel ended with {} instead of running out of fuel",
            result.outcome
        )));
    }
    Ok(elapsed)
}

/// Measures single-core fuel per second over about `target` of wall time.
pub fn measure_fuel_rate(sandbox: &Sandbox, target: Duration) -> Result<u64, ExecError> {
    // Compile (and warm) first, so the measurement is of execution only.
    timed_run(sandbox, 1_000_000)?;
    let t = timed_run(sandbox, CALIBRATION_FUEL)?;
    let rough = CALIBRATION_FUEL as f64 / t.as_secs_f64().max(1e-6);
    let fuel = (rough * target.as_secs_f64()).clamp(CALIBRATION_FUEL as f64, 1e12) as u64;
    let t = timed_run(sandbox, fuel)?;
    Ok(((fuel as f64 / t.as_secs_f64().max(1e-6)) as u64).clamp(1, MAX_CPU_SCORE))
}

/// Total memory from `/proc/meminfo` text, in MiB.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Parses `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`.
pub fn parse_nvidia_smi(text: &str) -> Option<GpuInfo> {
    let mut model = None;
    let mut count = 0u32;
    let mut memory = u64::MAX;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, mib) = line.split_once(',')?;
        let mib: u64 = mib.trim().trim_end_matches("MiB").trim().parse().ok()?;
        let m = canonical_gpu_model(name)?;
        // One model per provider: count only GPUs of the first model.
        match &model {
            None => model = Some(m),
            Some(first) if *first != m => continue,
            Some(_) => {}
        }
        count += 1;
        memory = memory.min(mib);
    }
    Some(GpuInfo {
        model: model?,
        count,
        memory_mib: memory,
    })
}

/// The machine's GPUs, or `None` without `nvidia-smi` (or when it fails).
pub fn detect_gpu() -> Option<GpuInfo> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Benchmarks this machine, reusing a cached score from `data_dir` when it was measured by the
/// same sandbox engine and worker version.
pub fn benchmark(sandbox: &Sandbox, data_dir: &Path) -> Result<Benchmark, ExecError> {
    let cores = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1);
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .unwrap_or(1024);
    let gpu = detect_gpu();
    let engine = sandbox.engine_hash();
    let version = env!("CARGO_PKG_VERSION").to_string();
    let path = data_dir.join(BENCH_FILE);
    let cached = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Cached>(&b).ok())
        .filter(|c| c.engine == engine && c.worker_version == version && c.fuel_per_second > 0);
    let fuel_per_second = match cached {
        Some(c) => c.fuel_per_second,
        None => {
            let rate = measure_fuel_rate(sandbox, Duration::from_secs(1))?;
            let record = Cached {
                engine,
                worker_version: version,
                fuel_per_second: rate,
            };
            if let Ok(json) = serde_json::to_vec_pretty(&record) {
                // A cache that cannot be written only costs a benchmark at the next start.
                if let Err(err) = crate::store::write_atomic(&path, &json) {
                    tracing::warn!("cannot cache the benchmark in {}: {err}", path.display());
                }
            }
            rate
        }
    };
    Ok(Benchmark {
        fuel_per_second,
        cores,
        memory_mib,
        gpu,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_information() {
        assert_eq!(
            parse_meminfo("MemTotal:       16384000 kB\nMemFree: 1 kB\n"),
            Some(16_000)
        );
        assert_eq!(parse_meminfo("nothing"), None);
        assert_eq!(
            canonical_gpu_model("NVIDIA GeForce RTX 4090").as_deref(),
            Some("rtx4090")
        );
        assert_eq!(
            canonical_gpu_model("NVIDIA A100-SXM4-80GB").as_deref(),
            Some("a100-sxm4-80gb")
        );
        let two =
            parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564\nNVIDIA GeForce RTX 4090, 24564\n")
                .unwrap();
        assert_eq!(
            (two.model.as_str(), two.count, two.memory_mib),
            ("rtx4090", 2, 24564)
        );
        assert_eq!(parse_nvidia_smi(""), None);
        assert_eq!(parse_nvidia_smi("garbage"), None);
        // No nvidia-smi here: no GPU, no error.
        let _ = detect_gpu();
    }

    #[test]
    fn measures_once_then_reads_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox =
            Sandbox::new(exo_exec::SandboxConfig::new(dir.path().join("sandbox"))).unwrap();
        let first = benchmark(&sandbox, dir.path()).unwrap();
        assert!(first.fuel_per_second > 1_000_000, "{first:?}");
        assert!(first.cores >= 1 && first.memory_mib >= 1);
        assert!(dir.path().join(BENCH_FILE).exists());
        let start = Instant::now();
        let second = benchmark(&sandbox, dir.path()).unwrap();
        assert_eq!(second.fuel_per_second, first.fuel_per_second);
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn resources_and_timeouts() {
        let b = Benchmark {
            fuel_per_second: 1_000_000_000,
            cores: 4,
            memory_mib: 8_000,
            gpu: None,
        };
        let r = b.resources(DeviceClass::Pc, "eu-west", 1_000_000_000_000);
        assert!(r.validate().is_ok());
        assert!(r.runtimes.contains(Runtime::Wasm32Wasip1));
        assert_eq!(b.timeout_for(10_000_000_000), Duration::from_secs(40));
        assert_eq!(b.timeout_for(u64::MAX), Duration::from_secs(86_400));
    }
}
