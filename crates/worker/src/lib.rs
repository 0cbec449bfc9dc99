//! `exo-worker`: the provider agent behind `exo worker`.
//!
//! [`run`] benchmarks the machine ([`bench`]), registers it as a provider (or updates its
//! resources), keeps an offer of `slots` units on the book, and follows the provider's open
//! replicas on the node (`GET /v1/providers/{id}/work`, read on every `block` or `assignment`
//! event of `GET /v1/events?provider=ID` and every two seconds). For each assigned replica it
//! fetches the app module and inputs from the node's blob store ([`api`]: streamed, bounded,
//! resumed, verified against their BLAKE3 hash), runs the unit in the deterministic sandbox
//! (`exo-exec`) with the unit's seed ([`commit::unit_seed`]), stores the outputs as one archive
//! in the node's format ([`outputs`]) and registers it with `PUT /v1/outputs/{job}/{unit}`,
//! seals the result with a random salt and keeps it on disk ([`store`]), commits, and reveals
//! once the unit's reveals open. Commits and reveals are batched, at most 256 per transaction.
//! When a capacity round opens it proves its offer's free slots beside the loop (`capacity.rs`).
//! Every node call but blob downloads goes through `exo-client`.
//!
//! Outcomes: every outcome the sandbox calls attestable (ok, exit codes, traps, out of fuel,
//! out of memory, invalid module or outputs) is a result and is committed: its code is part of
//! the sandbox's digest. A timeout or a stack overflow depends on the machine, so the worker
//! commits a "could not finish" report with the fuel burnt instead, which the ledger judges by
//! rule.
//!
//! Memory: units start only while the memory limits, inputs and output buffers of the units
//! running fit the memory the provider declared (`admission.rs`); the others wait, in the order
//! they are due, and one that would start too late to commit in time is reported as
//! `host_memory` before its deadline. The sandbox's limiter holds each unit to its limit.
//!
//! The worker never exits on a transient error: a node that does not answer is retried with
//! backoff, a refused transaction is logged with its reason and derived again from the chain at
//! the next pass. With [`WorkerConfig::idle_only`] it offers work only while the host is idle
//! ([`idle`]). [`Misbehave`] makes it lie in controlled ways for tests and simulations
//! (`exo-bench` measures proof of task against such liars on the real ledger).
//!
//! This crate must never run bytes whose hash it has not verified, commit before the sealed
//! result is durable, or give up on a revealable commitment while the process lives.

mod admission;
mod agent;
pub mod api;
mod capacity;
pub mod commit;
pub mod holdback;
pub mod idle;
pub mod machine;
pub mod nonce;
pub mod outputs;
pub mod store;

pub use commit::{Misbehave, unit_seed};
pub use idle::{HourWindow, IdlePolicy};
pub use machine::Benchmark;

use exo_exec::{Sandbox, SandboxConfig};
use exo_types::{
    Amount, PrivateKey,
    exo_market::{DeviceClass, MAX_SLOTS_PER_OFFER},
};
use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The node's API, such as `http://127.0.0.1:8080`.
    pub node: String,
    /// The provider's key: it pays fees and the bond, and is paid.
    pub key: PrivateKey,
    /// Units run at once, and the slots of the offer unless `offer_slots` says otherwise.
    pub slots: u32,
    /// Slots of the offer, when more units should be held than run at once. A slot is taken
    /// from assignment until the replica's commitment executes, a block or two after the run
    /// (longer with [`Self::result_delay`]), so for units that run in microseconds a few run
    /// slots keep up with many more offered ones; assigned units wait for a run slot in
    /// order.
    pub offer_slots: Option<u32>,
    /// Asked price in base units per compute unit (10^9 fuel).
    pub price_per_unit: Amount,
    /// Where the worker keeps its state, blob cache, outputs and compile cache.
    pub data_dir: PathBuf,
    /// Offer work only while the host is idle.
    pub idle_only: Option<IdlePolicy>,
    /// Misbehave on purpose (tests and simulations only).
    pub misbehave: Option<Misbehave>,
    /// Bond locked at registration.
    pub bond: Amount,
    /// Canonical region name, such as `eu-west`.
    pub region: String,
    pub class: DeviceClass,
    /// Seconds of block time an offer lives; it is posted again when a fifth of that is left.
    pub offer_lifetime_secs: u64,
    /// The longest unit, in fuel, this provider accepts.
    pub max_unit_fuel: u64,
    /// Transaction fee; the node's minimum when `None`.
    pub fee: Option<Amount>,
    /// Fallback poll interval when no block event arrives.
    pub poll_interval: Duration,
    /// Longest a finished result's commitment or reveal waits for others to share its
    /// transaction ([`holdback`]); at most [`holdback::MAX_RESULT_DELAY`].
    pub result_delay: Duration,
    /// Use these measurements instead of benchmarking (tests).
    pub benchmark: Option<Benchmark>,
    /// Most threads a capacity round's proof searches on; the machine's cores when `None`,
    /// and `Some(0)` answers no round (the offer's free slots then earn no capacity reward).
    pub capacity_threads: Option<u32>,
    /// The sandbox's compile cache; `<data_dir>/sandbox` when `None`. Workers on one machine
    /// may share one (entries are written atomically).
    pub compile_cache: Option<PathBuf>,
    /// Where the sandbox makes each run's `/in` and `/out`; the system temporary directory
    /// when `None`. A tmpfs (such as `/dev/shm`) is much faster for short units: every run
    /// creates and removes files there.
    pub scratch_dir: Option<PathBuf>,
    /// Told about every unit this worker ran (benchmarks, monitoring).
    pub on_run: Option<RunObserver>,
    /// The longest a module's compile may take here before its unit is reported as "could
    /// not finish" (`host`). The sandbox's static bounds keep compiles to seconds on a loaded
    /// development machine (docs/exec-determinism.md, "Bounded compiles").
    pub compile_timeout: Duration,
}

/// A unit this worker ran, as told to [`WorkerConfig::on_run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitRun {
    pub job: u64,
    pub unit: u32,
    pub replica: u32,
    /// Host time of the sandbox run: instantiation and execution (`exo_exec`'s wall time).
    pub exec_us: u64,
    /// Host time from the start of the unit's handling to its outputs packed: fetching and
    /// verifying the module and inputs, the sandbox run, packing the outputs archive.
    pub handled_us: u64,
    pub fuel: u64,
    /// The outcome's code (`ok`, `exit:2`, ...).
    pub outcome: String,
    /// Host memory the worker reserved for the units running when this one started, itself
    /// included: each unit's memory limit, inputs and output buffers. Never more than the
    /// provider's declared memory, unless this unit ran alone.
    pub reserved_bytes: u64,
}

/// Receives a [`UnitRun`] for every unit run; called on the worker's loop, so it must be
/// quick.
pub type RunObserver = Arc<dyn Fn(&UnitRun) + Send + Sync>;

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("WorkerConfig")
            .field("node", &self.node)
            .field("slots", &self.slots)
            .field("offer_slots", &self.offer_slots)
            .field("price_per_unit", &self.price_per_unit)
            .field("data_dir", &self.data_dir)
            .field("idle_only", &self.idle_only)
            .field("misbehave", &self.misbehave)
            .field("bond", &self.bond)
            .field("region", &self.region)
            .field("class", &self.class)
            .field("offer_lifetime_secs", &self.offer_lifetime_secs)
            .field("scratch_dir", &self.scratch_dir)
            .finish_non_exhaustive()
    }
}

impl WorkerConfig {
    /// A worker with defaults: 1 slot at 1 EXO per compute unit, bond 10 EXO, region `local`,
    /// class `pc`, offers of 1,000 blocks, units up to 10^12 fuel.
    pub fn new(node: impl Into<String>, key: PrivateKey, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node: node.into(),
            key,
            slots: 1,
            offer_slots: None,
            price_per_unit: Amount::from_exo(1),
            data_dir: data_dir.into(),
            idle_only: None,
            misbehave: None,
            bond: Amount::from_exo(10),
            region: "local".into(),
            class: DeviceClass::Pc,
            offer_lifetime_secs: 600,
            max_unit_fuel: 1_000_000_000_000,
            fee: None,
            poll_interval: Duration::from_secs(2),
            result_delay: holdback::DEFAULT_RESULT_DELAY,
            benchmark: None,
            capacity_threads: None,
            compile_cache: None,
            scratch_dir: None,
            on_run: None,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
        }
    }
}

/// [`WorkerConfig::compile_timeout`] unless set.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// Shortest offer lifetime a worker accepts: a shorter one would be posted again every few
/// blocks.
pub const MIN_OFFER_LIFETIME_SECS: u64 = 10;

/// Why the worker could not start. Once running, it stops only when told to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker configuration: {0}")]
    Config(String),
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox: {0}")]
    Sandbox(#[from] exo_exec::ExecError),
}

/// Runs the worker until `shutdown` completes. Running units are abandoned at shutdown; their
/// replicas are picked up again (or become no-shows) when the worker restarts.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    if config.slots == 0 || config.slots > MAX_SLOTS_PER_OFFER {
        return Err(WorkerError::Config(format!(
            "slots must be 1 to {MAX_SLOTS_PER_OFFER}"
        )));
    }
    if config
        .offer_slots
        .is_some_and(|s| s == 0 || s > MAX_SLOTS_PER_OFFER)
    {
        return Err(WorkerError::Config(format!(
            "offer slots must be 1 to {MAX_SLOTS_PER_OFFER}"
        )));
    }
    if config.offer_lifetime_secs < MIN_OFFER_LIFETIME_SECS {
        return Err(WorkerError::Config(format!(
            "offers must live at least {MIN_OFFER_LIFETIME_SECS} s"
        )));
    }
    let data_dir = config.data_dir.clone();
    let store = store::Store::open(&data_dir).map_err(|source| WorkerError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let cache_dir = config
        .compile_cache
        .clone()
        .unwrap_or_else(|| store.sandbox_dir());
    let mut sandbox_config = SandboxConfig::new(cache_dir);
    sandbox_config.max_concurrent_units = config.slots + 1;
    sandbox_config.scratch_dir = config.scratch_dir.clone();
    let sandbox = Arc::new(
        tokio::task::spawn_blocking(move || Sandbox::new(sandbox_config))
            .await
            .map_err(|e| WorkerError::Config(format!("sandbox start panicked: {e}")))??,
    );
    let bench = match config.benchmark.clone() {
        Some(b) => b,
        None => {
            let sb = sandbox.clone();
            let dir = data_dir.clone();
            tokio::task::spawn_blocking(move || machine::benchmark(&sb, &dir))
                .await
                .map_err(|e| WorkerError::Config(format!("benchmark panicked: {e}")))??
        }
    };
    info!(
        fuel_per_second = bench.fuel_per_second,
        cores = bench.cores,
        memory_mib = bench.memory_mib,
        gpu = ?bench.gpu,
        misbehave = ?config.misbehave,
        "worker starting"
    );
    let (done_tx, mut done_rx) = mpsc::channel(64);
    let (upload_tx, mut upload_rx) = mpsc::channel(64);
    let (tick_tx, mut tick_rx) = mpsc::channel(1);
    let poll = config.poll_interval;
    let mut agent = agent::Agent::new(config, store, sandbox, bench, done_tx, upload_tx, tick_tx)?;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failures = 0u32;
    'passes: loop {
        let pass_started = tokio::time::Instant::now();
        let step = async {
            let result = agent.step().await;
            // Runs and uploads that finished meanwhile are recorded before the next pass.
            while let Ok(done) = done_rx.try_recv() {
                agent.finish_run(done);
            }
            while let Ok(done) = upload_rx.try_recv() {
                agent.finish_upload(done);
            }
            agent.admit_runs();
            result
        };
        let result = tokio::select! {
            () = &mut shutdown => break 'passes,
            r = step => r,
        };
        let wait = match result {
            Ok(()) => {
                if failures > 0 {
                    info!("node reachable again");
                }
                failures = 0;
                poll
            }
            Err(err) => {
                failures += 1;
                let backoff =
                    Duration::from_millis(250 << failures.min(7)).min(Duration::from_secs(30));
                if failures == 1 || failures.is_multiple_of(10) {
                    warn!("{err}; retrying in {backoff:?}");
                }
                backoff
            }
        };
        // Until the next pass (a block, an assignment, or `wait`), runs that finish are
        // committed as they come, without reading the work list again.
        let next_pass = tokio::time::Instant::now() + wait;
        // A pass reads every open replica: with thousands of them, passes on every block would
        // keep the node busy answering, so they are spaced by the list's length.
        let earliest = pass_started + agent.pass_gap();
        let mut ticked = false;
        loop {
            // Results held back to share a transaction leave when their hold is over, in a
            // pass, so not before the gap between passes is over either.
            let held = agent.held_until().map(|due| due.max(earliest));
            tokio::select! {
                () = tokio::time::sleep_until(held.unwrap_or(next_pass)),
                    if held.is_some() && failures == 0 => break,
                () = &mut shutdown => break 'passes,
                Some(done) = done_rx.recv() => {
                    agent.finish_run(done);
                    while let Ok(done) = done_rx.try_recv() {
                        agent.finish_run(done);
                    }
                    agent.admit_runs();
                    if failures == 0 && !commit_fresh(&mut agent, &mut shutdown).await {
                        break 'passes;
                    }
                }
                Some(done) = upload_rx.recv() => {
                    agent.finish_upload(done);
                    while let Ok(done) = upload_rx.try_recv() {
                        agent.finish_upload(done);
                    }
                    if failures == 0 && !commit_fresh(&mut agent, &mut shutdown).await {
                        break 'passes;
                    }
                }
                Some(()) = tick_rx.recv(), if failures == 0 && !ticked => {
                    ticked = true;
                    if tokio::time::Instant::now() >= earliest {
                        break;
                    }
                }
                () = tokio::time::sleep_until(earliest), if ticked => break,
                () = tokio::time::sleep_until(next_pass) => break,
            }
        }
    }
    info!("worker stopped");
    Ok(())
}

/// Uploads and commits the results finished since the last pass ([`agent::Agent::commit_fresh`])
/// unless `shutdown` comes first: answers whether the worker goes on.
async fn commit_fresh(
    agent: &mut agent::Agent,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> bool {
    tokio::select! {
        () = shutdown => false,
        result = agent.commit_fresh() => {
            if let Err(err) = result {
                warn!("{err}");
            }
            true
        }
    }
}
