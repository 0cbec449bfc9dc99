//! `exo bench exec`: how much slower the sandbox runs real kernels than native code on this machine,
//! and how long a tiny unit takes end to end.
//!
//! The same Rust kernels (the `render` path tracer and the `backtest` grid) are called natively
//! as library functions and run as the embedded `wasm32-wasip1` apps, both doing the whole job
//! (parse the input, compute, encode the output). Each figure is the best of `repeats` runs.

use exo_exec::fixtures::TINY_WASM;
use exo_exec::{ExecError, NanMode, Outcome, Sandbox, SandboxConfig, UnitSpec};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Compile cache (a subdirectory per engine configuration is used).
    pub cache_dir: PathBuf,
    pub repeats: u32,
    /// Render: frame width and height (the whole frame is one tile) and samples per pixel.
    pub render_size: (u32, u32),
    pub render_samples: u32,
    /// Backtest grid: (fast lo, hi, step), (slow lo, hi, step).
    pub backtest_fast: (u32, u32, u32),
    pub backtest_slow: (u32, u32, u32),
    /// Runs of the tiny module for the latency figure.
    pub tiny_runs: u32,
    /// Also run the wasm kernels with Cranelift's canonicalisation after every float operation
    /// and with none, to set the network's mode beside both.
    pub compare_nan_modes: bool,
}

impl BenchConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        BenchConfig {
            cache_dir: cache_dir.into(),
            repeats: 3,
            render_size: (96, 72),
            render_samples: 8,
            backtest_fast: (2, 60, 1),
            backtest_slow: (10, 250, 5),
            tiny_runs: 200,
            compare_nan_modes: true,
        }
    }

    /// Small sizes for tests.
    pub fn quick(cache_dir: impl Into<PathBuf>) -> Self {
        BenchConfig {
            repeats: 1,
            render_size: (16, 12),
            render_samples: 1,
            backtest_fast: (5, 10, 5),
            backtest_slow: (20, 40, 20),
            tiny_runs: 5,
            ..BenchConfig::new(cache_dir)
        }
    }
}

/// One kernel's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelBench {
    pub name: &'static str,
    pub native_us: u64,
    /// In the sandbox as configured for the network: fuel, epochs, NaN canonicalisation where
    /// NaN bits are observed ([`NanMode::AtObservation`]).
    pub wasm_us: u64,
    /// `wasm_us / native_us`.
    pub slowdown: f64,
    pub fuel: u64,
    /// Whether the wasm output equals the native one byte for byte (libm differences in
    /// transcendental functions can legitimately change a few pixels).
    pub same_output_as_native: bool,
    /// The other NaN modes, if measured.
    pub always: Option<ModeFigures>,
    pub off: Option<ModeFigures>,
}

/// A kernel's run under another NaN mode than the network's.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeFigures {
    pub wasm_us: u64,
    pub fuel: u64,
    /// Whether the output equals the network mode's: a kernel that does not look at NaN bits
    /// gives the same bytes in every mode.
    pub same_output: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecBench {
    /// The worst kernel's wasm/native ratio: what a provider's benchmark score should use.
    pub slowdown: f64,
    pub kernels: Vec<KernelBench>,
    /// Mean end-to-end latency of running a tiny module (in-memory `/in` and `/out`, WASI state, pooled
    /// instantiation, `_start`, output collection), from a warm cache.
    pub instantiate_us: f64,
    /// The same for the `hello` app (a Rust program with std, writing one output file).
    pub hello_us: f64,
    /// First compile of the render module, and its load from the disk cache in a new sandbox.
    pub compile_ms: f64,
    pub cache_load_ms: f64,
}

struct Kernel {
    name: &'static str,
    wasm: &'static [u8],
    args: Vec<String>,
    input: (&'static str, Vec<u8>),
    output: &'static str,
    native: Box<dyn Fn() -> Vec<u8>>,
}

fn kernels(cfg: &BenchConfig) -> Result<Vec<Kernel>, ExecError> {
    let (w, h) = cfg.render_size;
    let params = exo_app_render::TileParams::whole(w, h, cfg.render_samples, 0);
    params.validate().map_err(ExecError::InvalidSpec)?;
    let render_args: Vec<String> = params.to_string().split(' ').map(String::from).collect();
    let studio = exo_apps::render::studio_scene()
        .map_err(|e| ExecError::InvalidSpec(format!("the studio scene: {e}")))?;
    let (f, s) = (cfg.backtest_fast, cfg.backtest_slow);
    // The moving-average grid alone, every set in one unit, one walk-forward fold.
    let mut bt_args: Vec<String> = vec![
        format!("sma={}:{}:{}/{}:{}:{}", f.0, f.1, f.2, s.0, s.1, s.2),
        "cost=5".into(),
        "slip=0".into(),
        "folds=1".into(),
    ];
    let whole =
        exo_app_backtest::UnitArgs::parse(&bt_args, false).map_err(ExecError::InvalidSpec)?;
    bt_args.push(format!("sets=0:{}", whole.sets.1));
    Ok(vec![
        Kernel {
            name: "render",
            wasm: exo_apps::RENDER_WASM,
            args: render_args,
            input: (exo_apps::render::SCENE_INPUT, studio.canonical.clone()),
            output: "tile.ppm",
            native: Box::new(move || {
                let scene = exo_app_render::Scene::new(&studio.desc);
                let px = exo_app_render::render_tile(&scene, &params);
                exo_app_render::ppm::encode(params.tile_w, params.tile_h, &px)
            }),
        },
        Kernel {
            name: "backtest",
            wasm: exo_apps::BACKTEST_WASM,
            args: bt_args,
            input: ("prices.csv", exo_apps::SP500_CSV.as_bytes().to_vec()),
            output: "results.csv",
            native: Box::new(move || {
                let bars = exo_app_backtest::parse_csv(exo_apps::SP500_CSV).unwrap_or_default();
                let rows = exo_app_backtest::run_unit(&bars, &whole).unwrap_or_default();
                let header = exo_app_backtest::header(&bars, &whole.config);
                exo_app_backtest::format_results(&header, &rows).into_bytes()
            }),
        },
    ])
}

fn best_native(k: &Kernel, repeats: u32) -> (u64, Vec<u8>) {
    let mut best = u64::MAX;
    let mut out = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        out = std::hint::black_box((k.native)());
        best = best.min(t.elapsed().as_micros() as u64);
    }
    (best, out)
}

fn best_wasm(sb: &Sandbox, k: &Kernel, repeats: u32) -> Result<(u64, u64, Vec<u8>), ExecError> {
    let spec = UnitSpec::wasm(k.wasm)
        .args(k.args.iter().cloned())
        .input(k.input.0, &k.input.1)
        .fuel(u64::MAX / 4)
        .timeout_ms(600_000);
    // Warm the compile cache outside the timing.
    sb.prepare(k.wasm)?;
    let mut best = u64::MAX;
    let mut fuel = 0;
    let mut out = Vec::new();
    for _ in 0..repeats.max(1) {
        let r = sb.run(&spec)?;
        if r.outcome != Outcome::Ok {
            return Err(ExecError::Engine(format!(
                "bench kernel {} ended with {}",
                k.name, r.outcome
            )));
        }
        best = best.min(r.wall_time_us);
        fuel = r.fuel_used;
        out = r.output(k.output).unwrap_or_default().to_vec();
    }
    Ok((best, fuel, out))
}

fn sandbox(cfg: &BenchConfig, nan_mode: NanMode, sub: &str) -> Result<Sandbox, ExecError> {
    Sandbox::new(SandboxConfig {
        nan_mode,
        max_concurrent_units: 2,
        ..SandboxConfig::new(cfg.cache_dir.join(sub))
    })
}

/// Runs `k` in `sb` (if given) and compares its output with the network mode's.
fn other_mode(
    sb: Option<&Sandbox>,
    k: &Kernel,
    repeats: u32,
    network_out: &[u8],
) -> Result<Option<ModeFigures>, ExecError> {
    let Some(sb) = sb else { return Ok(None) };
    let (wasm_us, fuel, out) = best_wasm(sb, k, repeats)?;
    Ok(Some(ModeFigures {
        wasm_us,
        fuel,
        same_output: out == network_out,
    }))
}

/// Runs the benchmark. Takes a few seconds with [`BenchConfig::new`].
pub fn run(cfg: &BenchConfig) -> Result<ExecBench, ExecError> {
    let sb = sandbox(cfg, NanMode::AtObservation, "observed")?;
    let (always, off) = if cfg.compare_nan_modes {
        (
            Some(sandbox(cfg, NanMode::Always, "always")?),
            Some(sandbox(cfg, NanMode::Off, "off")?),
        )
    } else {
        (None, None)
    };

    // Compile and cache-load times, from a cache directory of their own.
    let fresh = tempfile::tempdir_in(&cfg.cache_dir).map_err(|source| ExecError::Io {
        context: "bench tempdir",
        path: cfg.cache_dir.clone(),
        source,
    })?;
    let t = Instant::now();
    Sandbox::new(SandboxConfig::new(fresh.path()))?.prepare(exo_apps::RENDER_WASM)?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let again = Sandbox::new(SandboxConfig::new(fresh.path()))?;
    let t = Instant::now();
    again.prepare(exo_apps::RENDER_WASM)?;
    let cache_load_ms = t.elapsed().as_secs_f64() * 1e3;

    let mut figures = Vec::new();
    for k in kernels(cfg)? {
        let (native_us, native_out) = best_native(&k, cfg.repeats);
        let (wasm_us, fuel, wasm_out) = best_wasm(&sb, &k, cfg.repeats)?;
        figures.push(KernelBench {
            name: k.name,
            native_us,
            wasm_us,
            slowdown: wasm_us as f64 / native_us.max(1) as f64,
            fuel,
            same_output_as_native: native_out == wasm_out,
            always: other_mode(always.as_ref(), &k, cfg.repeats, &wasm_out)?,
            off: other_mode(off.as_ref(), &k, cfg.repeats, &wasm_out)?,
        });
    }

    let instantiate_us = mean_run_us(&sb, &UnitSpec::wasm(TINY_WASM), cfg.tiny_runs)?;
    let hello_us = mean_run_us(&sb, &UnitSpec::wasm(exo_apps::HELLO_WASM), cfg.tiny_runs)?;

    let slowdown = figures.iter().map(|k| k.slowdown).fold(0.0, f64::max);
    Ok(ExecBench {
        slowdown,
        kernels: figures,
        instantiate_us,
        hello_us,
        compile_ms,
        cache_load_ms,
    })
}

fn mean_run_us(sb: &Sandbox, spec: &UnitSpec<'_>, runs: u32) -> Result<f64, ExecError> {
    sb.run(spec)?; // compile outside the timing
    let runs = runs.max(1);
    let t = Instant::now();
    for _ in 0..runs {
        let r = sb.run(spec)?;
        if r.outcome != Outcome::Ok {
            return Err(ExecError::Engine(format!(
                "tiny module ended with {}",
                r.outcome
            )));
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / runs as f64)
}
