//! The sandbox: one wasmtime engine with a deterministic configuration, a pooling allocator, an
//! epoch ticker and a compile cache, running units one per call (calls may come from many
//! threads at once, up to the pool's size).

use crate::cache::{CacheStats, Compiled, ModuleCache, Source};
use crate::error::ExecError;
use crate::host::{self, FixedMono, FixedWall, Limiter, OutWatch, SeededRandom, State};
use crate::outputs::{self, Collected};
use crate::scratch::{ScratchPool, Slot};
use crate::spec::{
    ModuleHash, ModuleSource, Outcome, OutputStream, TrapCode, UnitResult, UnitSpec,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, OptLevel,
    PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Hard ceilings a [`UnitSpec`] may not exceed, whatever it asks.
pub const MAX_ARGS_BYTES: usize = 64 << 10;
pub const MAX_STDIO_BYTES: u64 = 64 << 20;
/// wasm32 cannot address more.
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;

#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where compiled modules are kept across restarts.
    pub cache_dir: PathBuf,
    /// Where the sandbox's private directory of per-run `/in` and `/out` slots is created
    /// (removed when the sandbox is dropped). Defaults to the system temporary directory; a
    /// size-limited tmpfs is best: directory operations are fast there and the kernel bounds
    /// what a guest can write between two checks of `/out`.
    pub scratch_dir: Option<PathBuf>,
    /// How many units may run at once: the pool's instance and memory slots.
    pub max_concurrent_units: u32,
    /// The largest `memory_limit_bytes` any unit may ask for; sizes the pool's memory slots.
    pub max_memory_bytes: u64,
    /// Bound on the total size of one unit's inputs.
    pub max_input_bytes: u64,
    /// Epoch tick: the resolution of timeouts.
    pub epoch_tick_ms: u64,
    /// Guest stack limit. Stack exhaustion depth is backend-dependent (not attestable).
    pub max_wasm_stack_bytes: usize,
    /// NaN canonicalisation: on for anything whose results are compared across machines. Only
    /// benchmarks turn it off (see docs/exec-determinism.md).
    pub nan_canonicalization: bool,
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
            nan_canonicalization: true,
        }
    }
}

pub struct Sandbox {
    engine: Engine,
    /// WASI with the sandbox's replacements: what modules link against.
    linker: Linker<State>,
    cache: ModuleCache,
    config: SandboxConfig,
    scratch: ScratchPool,
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
        // Determinism: NaN bit patterns differ between x86 and ARM unless canonicalised; relaxed
        // SIMD is implementation-defined by spec, so modules using it are refused; the
        // `threads` feature is not compiled in, so shared memory and atomics waits cannot exist.
        c.cranelift_nan_canonicalization(config.nan_canonicalization);
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
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
            .map_err(engine_err)?;
        host::add_shadows(&mut linker).map_err(engine_err)?;

        let cache = ModuleCache::open(&config.cache_dir, &engine)?;
        let scratch_parent = config
            .scratch_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let scratch = ScratchPool::new(&scratch_parent)?;
        spawn_ticker(&engine, Duration::from_millis(config.epoch_tick_ms))?;
        Ok(Sandbox {
            engine,
            linker,
            cache,
            config,
            scratch,
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
        let slot = self.scratch.take()?;
        let result = self.execute_in(spec, hash, pre, cache_hit, started, &slot);
        self.scratch.give_back(slot);
        result
    }

    fn execute_in(
        &self,
        spec: &UnitSpec<'_>,
        hash: ModuleHash,
        pre: &InstancePre<State>,
        cache_hit: bool,
        started: Instant,
        slot: &Slot,
    ) -> Result<UnitResult, ExecError> {
        let (in_dir, out_dir) = (&slot.in_dir, &slot.out_dir);
        outputs::stage_inputs(in_dir, &spec.inputs, self.config.max_input_bytes)?;

        // One byte more than allowed: the pipe filling up is how an overflow is seen.
        let stdio_cap = spec.max_stdio_bytes as usize + 1;
        let stdout = MemoryOutputPipe::new(stdio_cap);
        let stderr = MemoryOutputPipe::new(stdio_cap);
        let mut argv = Vec::with_capacity(spec.args.len() + 1);
        argv.push("unit".to_string());
        argv.extend(spec.args.iter().cloned());
        let mut b = WasiCtxBuilder::new();
        // Must come before the preopens, which capture it.
        b.allow_blocking_current_thread(true)
            .args(&argv)
            .env("EXO_UNIT", spec.unit_index.to_string())
            .env("EXO_SEED", spec.seed.to_string())
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FixedWall)
            .monotonic_clock(FixedMono)
            .secure_random(SeededRandom::new(spec.seed, spec.unit_index, "secure"))
            .insecure_random(SeededRandom::new(spec.seed, spec.unit_index, "insecure"))
            .insecure_random_seed(u128::from(spec.seed) << 64 | u128::from(spec.unit_index));
        b.preopened_dir(in_dir, "/in", FsPerms::ReadOnly)
            .map_err(|e| ExecError::Engine(format!("preopen /in: {e:#}")))?;
        b.preopened_dir(out_dir, "/out", FsPerms::ReadWrite)
            .map_err(|e| ExecError::Engine(format!("preopen /out: {e:#}")))?;
        let state = State {
            wasi: b.build_p1(),
            limiter: Limiter {
                limit_bytes: usize::try_from(spec.memory_limit_bytes).unwrap_or(usize::MAX),
                peak_bytes: 0,
                denied: false,
            },
            out: OutWatch {
                dir: out_dir.clone(),
                limit_bytes: spec.max_output_bytes,
                exceeded: false,
                next_check: Instant::now() + host::OUT_CHECK_INTERVAL,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(spec.fuel_limit).map_err(engine_err)?;
        // Every tick the callback checks the wall clock (a trap on timeout) and, now and then,
        // the size of /out.
        let deadline = started + Duration::from_millis(spec.timeout_ms);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let now = Instant::now();
            if now >= deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            if ctx.data_mut().out.check(now) {
                return Err(wasmtime::format_err!("/out exceeds its bound"));
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
        let state = store.data();
        let stdout_bytes = stdout.contents().to_vec();
        let stderr_bytes = stderr.contents().to_vec();
        let mut outcome = classify(
            run,
            &state.limiter,
            state.out.exceeded,
            stdout_bytes.len() as u64 > spec.max_stdio_bytes,
            stderr_bytes.len() as u64 > spec.max_stdio_bytes,
        );
        let peak_memory_bytes = state.limiter.peak_bytes as u64;
        let fuel_used = match outcome {
            Outcome::Timeout | Outcome::OutOfFuel => spec.fuel_limit,
            // The fuel check is lazy: a guest may overrun by one straight-line block, which is
            // deterministic, and never billed.
            _ => spec
                .fuel_limit
                .saturating_sub(remaining)
                .min(spec.fuel_limit),
        };
        drop(store);

        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        if outcome.keeps_outputs() {
            match outputs::collect(out_dir, spec.max_output_bytes)? {
                Collected::Ok { files: f, dirs: d } => {
                    files = f;
                    dirs = d;
                }
                Collected::TooLarge(s) => outcome = Outcome::OutputTooLarge(s),
                Collected::Invalid(reason) => outcome = Outcome::InvalidOutput(reason),
            }
        }
        let keeps = outcome.keeps_outputs();
        let digest_stdout: &[u8] = if keeps { &stdout_bytes } else { &[] };
        let digest = crate::digest::result_digest(&outcome, digest_stdout, &files, &dirs);
        let wall_time_us = started.elapsed().as_micros() as u64;
        Ok(UnitResult {
            outcome,
            digest,
            fuel_used,
            stdout: stdout_bytes,
            stderr: stderr_bytes,
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
    let digest = crate::digest::result_digest(&outcome, &[], &[], &[]);
    UnitResult {
        outcome,
        digest,
        fuel_used: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
        outputs: Vec::new(),
        output_dirs: Vec::new(),
        peak_memory_bytes: 0,
        module_hash: hash,
        cache_hit,
        wall_time_us: 0,
    }
}

/// Maps how `_start` ended to an outcome, in the order that explains it best: exhausted budgets
/// first (a guest often traps or exits *because* an allocation or a write failed), then exits
/// and traps.
fn classify(
    run: wasmtime::Result<()>,
    limiter: &Limiter,
    out_exceeded: bool,
    stdout_over: bool,
    stderr_over: bool,
) -> Outcome {
    let err = match run {
        Ok(()) => {
            return if out_exceeded {
                Outcome::OutputTooLarge(OutputStream::Out)
            } else {
                Outcome::Ok
            };
        }
        Err(e) => e,
    };
    let exit = err.downcast_ref::<I32Exit>().map(|e| e.0);
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    match trap {
        Some(wasmtime::Trap::OutOfFuel) => return Outcome::OutOfFuel,
        Some(wasmtime::Trap::Interrupt) => return Outcome::Timeout,
        _ => {}
    }
    if exit == Some(0) {
        return if out_exceeded {
            Outcome::OutputTooLarge(OutputStream::Out)
        } else {
            Outcome::Ok
        };
    }
    if limiter.denied {
        return Outcome::OutOfMemory;
    }
    if out_exceeded {
        return Outcome::OutputTooLarge(OutputStream::Out);
    }
    if stdout_over {
        return Outcome::OutputTooLarge(OutputStream::Stdout);
    }
    if stderr_over {
        return Outcome::OutputTooLarge(OutputStream::Stderr);
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
