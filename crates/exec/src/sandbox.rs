//! The sandbox: one wasmtime engine with a deterministic configuration, a pooling allocator, an
//! epoch ticker and a compile cache, running units one per call (calls may come from many
//! threads at once, up to the pool's size).

use crate::cache::{CacheStats, Compiled, ModuleCache, Source};
use crate::error::ExecError;
use crate::host::{Limiter, SeededRandom, State};
use crate::nan::NanMode;
use crate::outputs;
use crate::spec::{ModuleHash, ModuleSource, Outcome, TrapCode, UnitResult, UnitSpec};
use crate::vfs::{GROWTH_SLACK_BYTES, Vfs};
use crate::wasi_p1::{self, GuestExit, OutputLimit};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, OptLevel, PoolingAllocationConfig, Store,
    UpdateDeadline,
};

/// Hard ceilings a [`UnitSpec`] may not exceed, whatever it asks.
pub const MAX_ARGS_BYTES: usize = 64 << 10;
pub const MAX_STDIO_BYTES: u64 = 64 << 20;
/// wasm32 cannot address more.
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where compiled modules are kept across restarts.
    pub cache_dir: PathBuf,
    /// Unused: `/in` and `/out` live in the sandbox's memory, so no host directory can
    /// change what a guest sees. Kept so that existing configurations still build.
    pub scratch_dir: Option<PathBuf>,
    /// How many units may run at once: the pool's instance and memory slots.
    pub max_concurrent_units: u32,
    /// The largest `memory_limit_bytes` any unit may ask for; sizes the pool's memory slots.
    pub max_memory_bytes: u64,
    /// Bound on the total size of one unit's inputs, which are held in memory while it runs.
    pub max_input_bytes: u64,
    /// Epoch tick: the resolution of timeouts.
    pub epoch_tick_ms: u64,
    /// Guest stack limit. Stack exhaustion depth is backend-dependent (not attestable).
    pub max_wasm_stack_bytes: usize,
    /// How NaN bit patterns are made the same on every machine: [`NanMode::AtObservation`]
    /// for anything whose results are compared across machines; `Always` and `Off` are for
    /// comparison in benchmarks (see docs/exec-determinism.md). Part of the cache key.
    pub nan_mode: NanMode,
}

impl SandboxConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        SandboxConfig {
            cache_dir: cache_dir.into(),
            scratch_dir: None,
            max_concurrent_units: 8,
            max_memory_bytes: MAX_MEMORY_BYTES,
            max_input_bytes: 1 << 30,
            epoch_tick_ms: 10,
            max_wasm_stack_bytes: 512 << 10,
            nan_mode: NanMode::AtObservation,
        }
    }
}

pub struct Sandbox {
    engine: Engine,
    /// WASI with the sandbox's replacements: what modules link against.
    linker: Linker<State>,
    cache: ModuleCache,
    config: SandboxConfig,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn engine_err(e: wasmtime::Error) -> ExecError {
    ExecError::Engine(format!("{e:#}"))
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Result<Sandbox, ExecError> {
        if config.max_concurrent_units == 0 || config.epoch_tick_ms == 0 {
            return Err(ExecError::InvalidSpec(
                "max_concurrent_units and epoch_tick_ms must be positive".into(),
            ));
        }
        if config.max_memory_bytes == 0 || config.max_memory_bytes > MAX_MEMORY_BYTES {
            return Err(ExecError::InvalidSpec(format!(
                "max_memory_bytes must be in 1..={MAX_MEMORY_BYTES}"
            )));
        }
        let mut c = Config::new();
        // Determinism: NaN bit patterns differ between x86 and ARM unless canonicalised (by Cranelift
        // after every float operation, or by the cache's rewrite where they are observed); relaxed
        // SIMD is implementation-defined by spec, so modules using it are refused; the
        // `threads` feature is not compiled in, so shared memory and atomics waits cannot exist.
        c.cranelift_nan_canonicalization(config.nan_mode == NanMode::Always);
        c.wasm_relaxed_simd(false);
        c.relaxed_simd_deterministic(true);
        c.shared_memory(false);
        // Metering and deadlines.
        c.consume_fuel(true);
        c.epoch_interruption(true);
        c.max_wasm_stack(config.max_wasm_stack_bytes);
        c.cranelift_opt_level(OptLevel::Speed);
        let mut pool = PoolingAllocationConfig::new();
        let slots = config.max_concurrent_units;
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            // The pool's cap is the sandbox's ceiling, not the unit's limit: a module declaring a
            // larger minimum than the pool cap would fail to compile, which would make a unit's
            // verdict depend on the node's configuration. The limiter enforces each unit's limit.
            .max_memory_size(config.max_memory_bytes as usize);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&c).map_err(engine_err)?;

        let mut linker: Linker<State> = Linker::new(&engine);
        wasi_p1::add_to_linker(&mut linker).map_err(engine_err)?;

        let cache = ModuleCache::open(&config.cache_dir, &engine, config.nan_mode)?;
        spawn_ticker(&engine, Duration::from_millis(config.epoch_tick_ms))?;
        Ok(Sandbox {
            engine,
            linker,
            cache,
            config,
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The engine compatibility hash that names this sandbox's cache directory.
    pub fn engine_hash(&self) -> String {
        crate::cache::engine_hash(&self.engine)
    }

    /// Compiles `wasm` into the cache (a worker does this when it fetches an app) and returns
    /// its hash, usable as [`ModuleSource::Hash`].
    pub fn prepare(&self, wasm: &[u8]) -> Result<ModuleHash, ExecError> {
        crate::limits::check_module(wasm).map_err(|e| ExecError::InvalidModule(e.to_string()))?;
        let hash = *blake3::hash(wasm).as_bytes();
        match self
            .cache
            .get_or_compile(&self.engine, &self.linker, &hash, wasm)?
        {
            Ok((c, _)) => match &c.pre {
                Ok(_) => Ok(hash),
                Err(e) => Err(ExecError::InvalidModule(e.clone())),
            },
            Err(e) => Err(ExecError::InvalidModule(e)),
        }
    }

    /// Runs one unit to an [`Outcome`]. `Err` only for host faults and malformed specs.
    pub fn run(&self, spec: &UnitSpec<'_>) -> Result<UnitResult, ExecError> {
        self.check_spec(spec)?;
        let (hash, found) = match &spec.module {
            ModuleSource::Wasm(wasm) => {
                let hash = *blake3::hash(wasm).as_bytes();
                // Static bounds before the cache: a module compiled by an older version stays
                // refused, as it is on every other machine.
                if let Err(refusal) = crate::limits::check_module(wasm) {
                    let outcome = Outcome::InvalidModule(refusal.to_string());
                    return Ok(rejected(hash, outcome, false));
                }
                (
                    hash,
                    self.cache
                        .get_or_compile(&self.engine, &self.linker, &hash, wasm)?,
                )
            }
            ModuleSource::Hash(hash) => {
                match self.cache.lookup(&self.engine, &self.linker, hash)? {
                    Some(found) => (*hash, Ok(found)),
                    None => return Err(ExecError::ModuleNotCached(hex::encode(hash))),
                }
            }
        };
        let (compiled, source) = match found {
            Ok(f) => f,
            Err(reason) => return Ok(rejected(hash, Outcome::InvalidModule(reason), false)),
        };
        let cache_hit = source != Source::Compiled;
        self.execute(spec, hash, &compiled, cache_hit)
    }

    fn check_spec(&self, spec: &UnitSpec<'_>) -> Result<(), ExecError> {
        if spec.memory_limit_bytes > self.config.max_memory_bytes {
            return Err(ExecError::InvalidSpec(format!(
                "memory limit {} exceeds this sandbox's {}",
                spec.memory_limit_bytes, self.config.max_memory_bytes
            )));
        }
        if spec.max_stdio_bytes > MAX_STDIO_BYTES {
            return Err(ExecError::InvalidSpec(format!(
                "max_stdio_bytes exceeds {MAX_STDIO_BYTES}"
            )));
        }
        let args_bytes: usize = spec.args.iter().map(|a| a.len() + 1).sum();
        if args_bytes > MAX_ARGS_BYTES || spec.args.iter().any(|a| a.contains('\0')) {
            return Err(ExecError::InvalidSpec(format!(
                "arguments must be at most {MAX_ARGS_BYTES} bytes, without NUL"
            )));
        }
        if spec.timeout_ms == 0 {
            return Err(ExecError::InvalidSpec("timeout_ms must be positive".into()));
        }
        Ok(())
    }

    fn execute(
        &self,
        spec: &UnitSpec<'_>,
        hash: ModuleHash,
        compiled: &Compiled,
        cache_hit: bool,
    ) -> Result<UnitResult, ExecError> {
        let pre = match &compiled.pre {
            Ok(p) => p,
            Err(reason) => {
                return Ok(rejected(
                    hash,
                    Outcome::InvalidModule(reason.clone()),
                    cache_hit,
                ));
            }
        };
        let started = Instant::now();
        let inputs = outputs::load_inputs(&spec.inputs, self.config.max_input_bytes)?;
        let mut args = Vec::with_capacity(spec.args.len() + 1);
        args.push("unit".to_string());
        args.extend(spec.args.iter().cloned());
        let state = State {
            vfs: Vfs::new(
                inputs,
                spec.max_output_bytes,
                outputs::MAX_OUTPUT_ENTRIES,
                spec.max_stdio_bytes,
            ),
            limiter: Limiter {
                limit_bytes: usize::try_from(spec.memory_limit_bytes).unwrap_or(usize::MAX),
                peak_bytes: 0,
                denied: false,
            },
            args,
            env: vec![
                format!("EXO_UNIT={}", spec.unit_index),
                format!("EXO_SEED={}", spec.seed),
            ],
            random: SeededRandom::new(spec.seed, spec.unit_index, "secure"),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(spec.fuel_limit).map_err(engine_err)?;
        // Every tick the callback checks the wall clock. Quotas need no polling: every write
        // checks them.
        let deadline = started + Duration::from_millis(spec.timeout_ms);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });

        let run = match pre.instantiate(&mut store) {
            Ok(instance) => match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Ok(start) => start.call(&mut store, ()),
                Err(e) => {
                    return Ok(rejected(
                        hash,
                        Outcome::InvalidModule(format!("no usable _start: {e:#}")),
                        cache_hit,
                    ));
                }
            },
            Err(e) => {
                // A trap in the start function, or the limiter refusing the initial memory, is
                // the guest's; anything else (no free pool slot) is the host's.
                if e.downcast_ref::<wasmtime::Trap>().is_none() && !store.data().limiter.denied {
                    return Err(ExecError::Engine(format!("instantiate: {e:#}")));
                }
                Err(e)
            }
        };

        let remaining = store.get_fuel().unwrap_or(0);
        let outcome = classify(run, &store.data().limiter);
        let peak_memory_bytes = store.data().limiter.peak_bytes as u64;
        let fuel_used = match outcome {
            // A timeout bills the whole budget: it came at three times the time the budget
            // predicts on this machine, and wasmtime does not count the fuel of a loop cut off
            // by the epoch (a spinning guest reads as a few thousand).
            Outcome::Timeout | Outcome::OutOfFuel => spec.fuel_limit,
            // The fuel check is lazy: a guest may overrun by one straight-line block, which is
            // deterministic, and never billed.
            _ => spec
                .fuel_limit
                .saturating_sub(remaining)
                .min(spec.fuel_limit),
        };
        let mut state = store.into_data();
        // The quota was checked on every write; what the host held must agree.
        debug_assert!(state.vfs.out_bytes() <= spec.max_output_bytes);
        debug_assert!(
            state.vfs.held_bytes() <= spec.max_output_bytes.saturating_add(GROWTH_SLACK_BYTES)
        );
        let stdout = state.vfs.stdout().to_vec();
        let stderr = state.vfs.stderr().to_vec();
        let keeps = outcome.keeps_outputs();
        // Every quota of /out was checked on every write, so what is left is within bounds.
        let (files, dirs) = if keeps {
            state.vfs.take_outputs()
        } else {
            (Vec::new(), Vec::new())
        };
        drop(state);
        let digest_stdout: &[u8] = if keeps { &stdout } else { &[] };
        let digest = crate::digest::result_digest(&outcome, digest_stdout, &files, &dirs);
        let wall_time_us = started.elapsed().as_micros() as u64;
        Ok(UnitResult {
            outcome,
            digest,
            fuel_used,
            stdout,
            stderr,
            outputs: files,
            output_dirs: dirs,
            peak_memory_bytes,
            module_hash: hash,
            cache_hit,
            wall_time_us,
        })
    }
}

/// A result for a unit that never ran.
fn rejected(hash: ModuleHash, outcome: Outcome, cache_hit: bool) -> UnitResult {
    UnitResult {
        cache_hit,
        ..UnitResult::verdict(outcome, 0, hash)
    }
}

/// Maps how `_start` ended to an outcome, in the order that explains it best: exhausted budgets
/// first (a guest often traps or exits *because* an allocation failed), then exits and traps.
fn classify(run: wasmtime::Result<()>, limiter: &Limiter) -> Outcome {
    let err = match run {
        Ok(()) => return Outcome::Ok,
        Err(e) => e,
    };
    if let Some(OutputLimit(stream)) = err.downcast_ref::<OutputLimit>() {
        return Outcome::OutputTooLarge(*stream);
    }
    let exit = err.downcast_ref::<GuestExit>().map(|e| e.0);
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    match trap {
        Some(wasmtime::Trap::OutOfFuel) => return Outcome::OutOfFuel,
        Some(wasmtime::Trap::Interrupt) => return Outcome::Timeout,
        _ => {}
    }
    if exit == Some(0) {
        return Outcome::Ok;
    }
    if limiter.denied {
        return Outcome::OutOfMemory;
    }
    if let Some(code) = exit {
        return Outcome::Exit(code);
    }
    match trap {
        Some(t) => Outcome::Trap(TrapCode::from_wasmtime(t)),
        None => Outcome::Trap(TrapCode::Host(format!("{err}"))),
    }
}

/// One thread per engine advances the epoch every `tick`. It holds only a weak reference, so it
/// ends with the engine.
fn spawn_ticker(engine: &Engine, tick: Duration) -> Result<(), ExecError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("exo-exec-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(|_| ())
        .map_err(|e| ExecError::io("spawn epoch ticker", PathBuf::new(), e))
}

/// Keeps the `Arc` import honest for callers that share a sandbox between threads.
#[allow(dead_code)]
fn _assert_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<Sandbox>();
    ok::<Arc<Sandbox>>();
}
