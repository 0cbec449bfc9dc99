//! `exo bench tasks`: accepted work units per second, and the overhead per unit, of the whole
//! compute market on this machine.
//!
//! Everything is real and in this process: four validators over loopback TCP, each on its own
//! runtime with its own storage and serving its HTTP API and blob store
//! (`exo_node::local`); three provider agents (`exo_worker::run`), worker `i` against
//! validator `i`, that register, post offers, fetch the app, run its units in the sandbox,
//! upload the outputs, commit and reveal; and a requester that publishes the `hello` app and
//! submits jobs through the last validator's API, at trust 1.
//!
//! Timing comes from validator 0's finalized blocks and the job records:
//!
//! - a unit's **submit** time is when `POST /v1/txs` admitted its job into the mempool;
//! - its **dispatch** is the block whose batch match assigned its first replica;
//! - its **acceptance** is the block holding the executed reveal of its agreed replica (at trust
//!   1 the first reveal decides the unit);
//! - its **execution** is the sandbox's wall time of the agreed replica's run, as the worker
//!   measured it ([`exo_worker::UnitRun::exec_us`]);
//! - **overhead** = finalization of the acceptance block - submit - execution.
//!
//! Phases: a warm-up job (every worker fetches and loads the module), a latency phase of
//! single-unit jobs at a light load (the overhead and dispatch figures), then a throughput
//! phase of many jobs of many units submitted at once (`units_per_sec`: accepted units over the
//! time from the first submission to the finalization of the last acceptance).

use crate::percentile;
use commonware_cryptography::Signer as _;
use exo_client::{Client, wire};
use exo_ledger::GenesisAccount;
use exo_node::{
    devnet::{self, DevnetOptions},
    local::LocalNetwork,
};
use exo_types::{
    Action, Amount, Hash32, JobSpec, PrivateKey, TxHash, UnsignedTx, address_to_hex,
    exo_market::Requirements,
};
use exo_worker::{Benchmark, UnitRun, WorkerConfig};
use serde::Serialize;
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// What to measure.
#[derive(Clone, Debug)]
pub struct TasksBenchOptions {
    pub validators: usize,
    pub providers: usize,
    /// Units of the throughput phase.
    pub units: u32,
    /// Units per job in the throughput phase.
    pub job_units: u32,
    /// Single-unit jobs of the latency phase, one every `latency_interval`.
    pub latency_jobs: u32,
    pub latency_interval: Duration,
    /// Units each worker runs at once.
    pub run_slots: u32,
    /// Slots of each worker's offer: units it holds from assignment to acceptance.
    pub offer_slots: u32,
    /// The app: `hello`, or `tiny` (an empty module).
    pub app: TaskApp,
    /// Validator `i` serves its API on `api_port + i` and listens for peers on `p2p_port + i`.
    pub api_port: u16,
    pub p2p_port: u16,
    /// Longest wait for a phase to finish.
    pub phase_timeout: Duration,
    /// The validators' minimum block interval under load (the node's `min_block_ms`).
    pub min_block_ms: u64,
}

impl Default for TasksBenchOptions {
    fn default() -> Self {
        Self {
            validators: 4,
            providers: 3,
            units: 20_000,
            job_units: 1_000,
            latency_jobs: 30,
            latency_interval: Duration::from_millis(300),
            run_slots: 2,
            offer_slots: 1_024,
            app: TaskApp::Hello,
            api_port: 38_280,
            p2p_port: 39_200,
            phase_timeout: Duration::from_secs(600),
            min_block_ms: exo_node::config::DEFAULT_MIN_BLOCK_MS,
        }
    }
}

/// The task app the units run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskApp {
    /// `apps/hello`: greets its unit and writes `/out/hello.txt` (Rust std, about 100 us).
    Hello,
    /// An empty `_start` (about 10 us): only the sandbox's fixed cost.
    Tiny,
}

impl TaskApp {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "hello" => Some(Self::Hello),
            "tiny" => Some(Self::Tiny),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Tiny => "tiny",
        }
    }

    fn wasm(self) -> &'static [u8] {
        match self {
            Self::Hello => exo_apps::HELLO_WASM,
            Self::Tiny => exo_exec::fixtures::TINY_WASM,
        }
    }
}

/// Medians of a unit's steps, each from the previous one, in milliseconds and blocks.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stages {
    /// Submission to the finalization of the block that included the job.
    pub included_ms: f64,
    /// That block to the finalization of the block whose batch match assigned the unit
    /// (0 blocks: matched at the end of the very block that carried the job).
    pub assigned_ms: f64,
    pub assigned_blocks: f64,
    /// Assignment's finalization to the worker having run the unit (seeing the assignment,
    /// queueing, fetching and verifying, the run, packing the outputs).
    pub ran_ms: f64,
    /// Run to the finalization of the block with its commitment.
    pub committed_ms: f64,
    pub committed_blocks: f64,
    /// Commitment's block to the finalization of the block with the accepted reveal.
    pub accepted_ms: f64,
    pub accepted_blocks: f64,
}

/// Figures of one phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseFigures {
    pub jobs: usize,
    pub units: usize,
    pub accepted_units: usize,
    /// Accepted units whose timeline was fully observed (the percentiles are over these).
    pub timed_units: usize,
    pub overhead_p50_ms: f64,
    pub overhead_p90_ms: f64,
    /// Submission to the finalization of the acceptance block (execution included).
    pub accepted_p50_ms: f64,
    /// Submission to the finalization of the block that assigned the unit.
    pub dispatch_p50_ms: f64,
    pub dispatch_p90_ms: f64,
    /// Blocks from the one that carried the job to the one that assigned the unit.
    pub dispatch_blocks_p50: f64,
    pub dispatch_blocks_max: u64,
    /// Share of units assigned by the batch match of the block that carried their job.
    pub dispatched_same_block: f64,
    /// Sandbox time of the accepted replica's run.
    pub exec_p50_us: f64,
    /// The worker's whole handling of the unit (fetch, verify, run, pack).
    pub handled_p50_us: f64,
    /// Units that got more than one replica (hidden audits).
    pub audited_units: usize,
    pub stages: Stages,
    /// From the first submission to the finalization of the last acceptance.
    pub window_ms: f64,
    pub units_per_sec: f64,
    pub blocks: u64,
    pub block_interval_ms: f64,
    /// Commit and reveal transactions in the phase's blocks, and results per transaction.
    pub commit_txs: usize,
    pub reveal_txs: usize,
    pub results_per_tx: f64,
    /// CPU time this process (validators, workers, requester) used from the first submission
    /// until the phase's jobs were done, per accepted unit (throughput phase, Linux).
    pub cpu_ms_per_unit: Option<f64>,
    /// Share of that CPU time on the workers' and requester's threads (the sandbox runs
    /// included); the rest is the validators'.
    pub workers_cpu_share: Option<f64>,
}

/// The report: the headline figures first, with their units in the names.
#[derive(Clone, Debug, Serialize)]
pub struct TasksBenchReport {
    pub units_per_sec: f64,
    /// Light load (the latency phase): submit to accepted, minus execution.
    pub overhead_p50_ms: f64,
    pub overhead_p90_ms: f64,
    pub dispatch_p50_ms: f64,
    pub dispatch_blocks_p50: f64,
    pub exec_p50_us: f64,
    pub validators: usize,
    pub providers: usize,
    pub trust: u8,
    pub app: TaskApp,
    pub run_slots: u32,
    pub offer_slots: u32,
    /// The validators' minimum block interval under load.
    pub min_block_ms: u64,
    /// Where the workers' runs make their `/in` and `/out`: `tmpfs` or `disk`.
    pub scratch: String,
    pub cores: usize,
    pub cpu_model: String,
    pub latency: PhaseFigures,
    pub throughput: PhaseFigures,
}

/// Fuel limit of a unit: far above what `hello` uses.
pub(crate) const FUEL_LIMIT: u64 = 100_000_000;
/// What providers ask, and the most the requester pays, per compute unit (10^9 fuel).
pub(crate) const ASK: Amount = Amount::from_exo(1);
const MAX_PRICE: Amount = Amount::from_exo(2);
/// Trust level of every job: one provider's word, so one replica per unit but for audits.
const TRUST: u8 = 1;

fn requester_key() -> PrivateKey {
    PrivateKey::from_seed(0x7a5c_0001)
}

fn provider_key(i: usize) -> PrivateKey {
    PrivateKey::from_seed(0x7a5c_1000 + i as u64)
}

/// A replica: (job, unit, replica index).
type ReplicaId = (u64, u32, u32);

/// Finalization instants of validator 0's blocks, and the runs the workers reported with the
/// instant they did.
#[derive(Default)]
struct Observed {
    finalized: Mutex<BTreeMap<u64, Instant>>,
    runs: Mutex<HashMap<ReplicaId, (UnitRun, Instant)>>,
}

impl Observed {
    fn finalized_at(&self, height: u64) -> Option<Instant> {
        self.finalized
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&height)
            .copied()
    }
}

/// A job the requester submitted, with the instant the node admitted it.
struct Submitted {
    hash: TxHash,
    at: Instant,
    units: u32,
}

/// Runs the benchmark; progress goes to `progress`.
pub fn run(
    options: &TasksBenchOptions,
    progress: impl Fn(&str),
) -> anyhow::Result<TasksBenchReport> {
    anyhow::ensure!(options.providers >= 1, "at least one provider");
    anyhow::ensure!(options.units >= 1, "at least one unit");
    anyhow::ensure!(
        options.job_units >= 1 && options.job_units <= exo_types::MAX_JOB_UNITS,
        "units per job must be 1 to {}",
        exo_types::MAX_JOB_UNITS
    );
    let dir = std::env::temp_dir().join(format!("exo-bench-tasks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = run_in(&dir, options, &progress);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    dir: &std::path::Path,
    options: &TasksBenchOptions,
    progress: &impl Fn(&str),
) -> anyhow::Result<TasksBenchReport> {
    let mut accounts = vec![GenesisAccount {
        address: address_to_hex(&requester_key().public_key()),
        balance: Amount::from_exo(100_000_000),
    }];
    for i in 0..options.providers {
        accounts.push(GenesisAccount {
            address: address_to_hex(&provider_key(i).public_key()),
            balance: Amount::from_exo(100_000),
        });
    }
    // The ports are in the range the kernel hands out to outgoing connections: step past
    // any in use.
    let (api_port, p2p_port) = free_ports(options.api_port, options.p2p_port, options.validators)?;
    let layout = devnet::init(&DevnetOptions {
        validators: options.validators,
        data_dir: dir.join("net"),
        api_port,
        p2p_port,
        extra_accounts: accounts,
    })?;
    for path in &layout.configs {
        let mut config = exo_node::NodeConfig::load(path)?;
        config.min_block_ms = options.min_block_ms;
        config.save(path)?;
    }
    // The one requester has every job of the throughput phase open at once, and with long
    // block intervals many of the latency phase's; the per-account cap on open jobs (a
    // squatting defence, not a cost) is raised to fit either.
    let mut genesis = exo_node::config::load_genesis(&layout.genesis)?;
    let jobs = options.units.div_ceil(options.job_units.max(1));
    let market = &mut genesis.params.market;
    market.max_open_jobs_per_account = market
        .max_open_jobs_per_account
        .max(jobs.max(options.latency_jobs).saturating_add(2));
    // No capacity rounds: one would take the free cores of every worker for seconds while the
    // latency phase measures units one by one. A round's cost is measured on its own
    // (docs/benchmarks.md, "Capacity proofs").
    market.capacity_round_ppm = 0;
    std::fs::write(&layout.genesis, toml::to_string_pretty(&genesis)?)?;
    progress("starting validators");
    // Rate limiting is off: every client of this benchmark shares 127.0.0.1.
    let limits = exo_node::local::ApiLimits {
        rate_per_sec: 0,
        ..exo_node::local::ApiLimits::default()
    };
    let network = LocalNetwork::start(&layout, Some(limits))?;
    let observed = Arc::new(Observed::default());
    {
        let observed = observed.clone();
        network.validators[0].events.subscribe(move |block| {
            let now = Instant::now();
            observed
                .finalized
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(block.height, now);
        });
    }
    let runtime = clients_runtime()?;
    let result = runtime.block_on(drive(dir, options, &network, &observed, progress));
    // Workers stop with the runtime; then the validators.
    drop(runtime);
    let _ = network.stop();
    result
}

async fn drive(
    dir: &std::path::Path,
    options: &TasksBenchOptions,
    network: &LocalNetwork,
    observed: &Arc<Observed>,
    progress: &impl Fn(&str),
) -> anyhow::Result<TasksBenchReport> {
    wait_finalized(network, 1, Duration::from_secs(120)).await?;
    let urls = &network.api_urls;
    let client = Client::new(&urls[urls.len() - 1])?;
    let wasm = options.app.wasm();
    // Blob stores are per node: every validator gets the module, as the devnet demo does.
    let requester = requester_key();
    for url in urls {
        Client::new(url)?
            .put_blob(wasm.to_vec(), &requester)
            .await?;
    }
    let app = exo_client::blob_hash(wasm);
    let status = client.status().await?;
    let mut nonce = 0u64;
    let publish = sign(
        &status.chain_id,
        &requester,
        &mut nonce,
        Action::PublishApp {
            module_hash: app,
            name: options.app.name().into(),
            version: "1".into(),
            royalty_per_unit: Amount::ZERO,
        },
    );
    let hash = client.submit(&publish).await?;
    let receipt = client
        .wait_for_receipt(&hash, Duration::from_secs(60))
        .await?;
    anyhow::ensure!(
        receipt.status == wire::TxStatus::Ok,
        "publishing the app failed: {receipt:?}"
    );

    // The compile cache is shared by the workers and warmed here, so no unit waits for
    // Cranelift (slow in a debug build).
    let cache = dir.join("compiled");
    {
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let config = exo_exec::SandboxConfig::new(cache);
            exo_exec::Sandbox::new(config)?.prepare(wasm)?;
            Ok(())
        })
        .await??;
    }
    progress(&format!(
        "starting {} workers ({} slots offered, {} units at once each)",
        options.providers, options.offer_slots, options.run_slots
    ));
    // Runs' /in and /out on a tmpfs, as the sandbox recommends, when the machine has one.
    let scratch = tmpfs();
    let (stop_workers, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for i in 0..options.providers {
        let mut config = WorkerConfig::new(
            urls[i % urls.len()].clone(),
            provider_key(i),
            dir.join(format!("worker-{i}")),
        );
        config.slots = options.run_slots;
        config.offer_slots = Some(options.offer_slots);
        config.price_per_unit = ASK;
        config.bond = Amount::from_exo(100);
        config.compile_cache = Some(cache.clone());
        config.scratch_dir = scratch.clone();
        config.poll_interval = Duration::from_millis(500);
        // The registered machine score only matters for matching; skip the one-second
        // calibration of each worker.
        config.benchmark = Some(Benchmark {
            fuel_per_second: 1_000_000_000,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_mib: 4_096,
            gpu: None,
        });
        let observed = observed.clone();
        config.on_run = Some(Arc::new(move |run: &UnitRun| {
            observed
                .runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    (run.job, run.unit, run.replica),
                    (run.clone(), Instant::now()),
                );
        }));
        let mut stopped = stopped.clone();
        workers.push(tokio::spawn(exo_worker::run(config, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }
    let result = phases(options, network, observed, &client, app, nonce, progress).await;
    let _ = stop_workers.send(true);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn phases(
    options: &TasksBenchOptions,
    network: &LocalNetwork,
    observed: &Arc<Observed>,
    client: &Client,
    app: Hash32,
    mut nonce: u64,
    progress: &impl Fn(&str),
) -> anyhow::Result<TasksBenchReport> {
    progress("waiting for the workers' offers");
    let start = Instant::now();
    loop {
        let mut providers: Vec<u64> = client
            .offers(0, None)
            .await?
            .offers
            .iter()
            .map(|o| o.provider)
            .collect();
        providers.sort_unstable();
        providers.dedup();
        if providers.len() >= options.providers {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {} workers posted offers",
            providers.len(),
            options.providers
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requester = requester_key();
    let chain_id = client.status().await?.chain_id;

    progress("warm-up job");
    let mut next_id = 0;
    let units = 3 * options.providers as u32;
    let warm = sign(
        &chain_id,
        &requester,
        &mut nonce,
        Action::SubmitJob(Box::new(job_spec(app, &requester, units))),
    );
    let warm = vec![Submitted {
        hash: client.submit(&warm).await?,
        at: Instant::now(),
        units,
    }];
    finish_phase(
        client,
        &requester,
        &warm,
        &mut next_id,
        options.phase_timeout,
    )
    .await?;

    progress(&format!(
        "latency phase: {} single-unit jobs, one every {} ms",
        options.latency_jobs,
        options.latency_interval.as_millis()
    ));
    let mut latency = Vec::new();
    for _ in 0..options.latency_jobs {
        let tx = sign(
            &chain_id,
            &requester,
            &mut nonce,
            Action::SubmitJob(Box::new(job_spec(app, &requester, 1))),
        );
        let hash = client.submit(&tx).await?;
        latency.push(Submitted {
            hash,
            at: Instant::now(),
            units: 1,
        });
        tokio::time::sleep(options.latency_interval).await;
    }
    let latency_jobs = finish_phase(
        client,
        &requester,
        &latency,
        &mut next_id,
        options.phase_timeout,
    )
    .await?;
    let (latency_figures, _) = measure(network, observed, client, &latency, &latency_jobs).await?;

    let jobs = options.units.div_ceil(options.job_units);
    progress(&format!(
        "throughput phase: {} units in {jobs} jobs of up to {}",
        options.units, options.job_units
    ));
    let mut left = options.units;
    let mut txs = Vec::new();
    while left > 0 {
        let units = left.min(options.job_units);
        left -= units;
        let tx = sign(
            &chain_id,
            &requester,
            &mut nonce,
            Action::SubmitJob(Box::new(job_spec(app, &requester, units))),
        );
        txs.push((tx, units));
    }
    let cpu_before = cpu_ticks();
    let mut load = Vec::new();
    for (tx, units) in &txs {
        let hash = submit_when_due(client, tx, options.phase_timeout).await?;
        load.push(Submitted {
            hash,
            at: Instant::now(),
            units: *units,
        });
    }
    let load_jobs = finish_phase(
        client,
        &requester,
        &load,
        &mut next_id,
        options.phase_timeout,
    )
    .await?;
    let cpu_after = cpu_ticks();
    progress("reading the blocks and job records");
    let (mut throughput, rows) = measure(network, observed, client, &load, &load_jobs).await?;
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let total = after.0.saturating_sub(before.0) as f64 * MS_PER_TICK;
        let workers = after.1.saturating_sub(before.1) as f64 * MS_PER_TICK;
        throughput.cpu_ms_per_unit = Some(total / throughput.accepted_units.max(1) as f64);
        throughput.workers_cpu_share = (total > 0.0).then(|| (workers / total).min(1.0));
    }
    if let Some(dir) = std::env::var_os("EXO_BENCH_TRACE") {
        write_trace(std::path::Path::new(&dir), network, &rows).await?;
    }

    Ok(TasksBenchReport {
        units_per_sec: throughput.units_per_sec,
        overhead_p50_ms: latency_figures.overhead_p50_ms,
        overhead_p90_ms: latency_figures.overhead_p90_ms,
        dispatch_p50_ms: latency_figures.dispatch_p50_ms,
        dispatch_blocks_p50: latency_figures.dispatch_blocks_p50,
        exec_p50_us: throughput.exec_p50_us,
        validators: options.validators,
        providers: options.providers,
        trust: TRUST,
        app: options.app,
        run_slots: options.run_slots,
        offer_slots: options.offer_slots,
        min_block_ms: options.min_block_ms,
        scratch: if tmpfs().is_some() { "tmpfs" } else { "disk" }.into(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu_model(),
        latency: latency_figures,
        throughput,
    })
}

/// A job on `app` as published by `developer` (the requester publishes it here).
pub(crate) fn job_spec(app: Hash32, developer: &PrivateKey, units: u32) -> JobSpec {
    JobSpec {
        app,
        app_developer: developer.public_key(),
        inputs: Vec::new(),
        unit_args: Vec::new(),
        units,
        requirements: Requirements::wasm(64, FUEL_LIMIT),
        max_price_per_unit: MAX_PRICE,
        trust: TRUST,
    }
}

/// The fee every transaction of the benchmarks' honest clients pays: the genesis minimum.
pub(crate) const FEE: Amount = Amount(1_000);

fn sign(chain_id: &str, key: &PrivateKey, nonce: &mut u64, action: Action) -> exo_types::SignedTx {
    let tx = sign_at(chain_id, key, *nonce, FEE, action);
    *nonce += 1;
    tx
}

/// `action` from `key` at `nonce`, paying `fee`.
pub(crate) fn sign_at(
    chain_id: &str,
    key: &PrivateKey,
    nonce: u64,
    fee: Amount,
    action: Action,
) -> exo_types::SignedTx {
    UnsignedTx {
        chain_id: chain_id.to_string(),
        sender: key.public_key(),
        nonce,
        fee,
        action,
    }
    .sign(key)
}

async fn wait_finalized(
    network: &LocalNetwork,
    height: u64,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while network
        .validators
        .iter()
        .any(|v| v.events.status().finalized_height < height)
    {
        anyhow::ensure!(
            start.elapsed() < limit,
            "validators did not reach height {height}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Submits `tx`; while its nonce is further ahead of the account's than the mempool takes
/// (`nonce_too_far`: one sender may queue 16 ahead), waits for earlier ones to finalize, as a
/// client with more jobs than that in flight must.
async fn submit_when_due(
    client: &Client,
    tx: &exo_types::SignedTx,
    limit: Duration,
) -> anyhow::Result<exo_types::TxHash> {
    let start = Instant::now();
    loop {
        match client.submit(tx).await {
            Err(err) if err.code() == Some("nonce_too_far") && start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            done => return Ok(done?),
        }
    }
}

/// Waits until every job of `submitted` executed and finished; returns their ids in order.
/// Only this requester submits jobs, from one account in nonce order, on a fresh chain: the
/// jobs get the ids from `*next_id` on, which the job records confirm.
async fn finish_phase(
    client: &Client,
    requester: &PrivateKey,
    submitted: &[Submitted],
    next_id: &mut u64,
    limit: Duration,
) -> anyhow::Result<Vec<u64>> {
    let start = Instant::now();
    for s in submitted {
        let receipt = client.wait_for_receipt(&s.hash, limit).await?;
        anyhow::ensure!(
            receipt.status == wire::TxStatus::Ok,
            "a job was rejected: {:?}",
            receipt.reason
        );
    }
    let ids: Vec<u64> = (*next_id..*next_id + submitted.len() as u64).collect();
    *next_id += submitted.len() as u64;
    for (id, s) in ids.iter().zip(submitted) {
        let job = client
            .job_page(*id, 0, Some(1))
            .await?
            .ok_or_else(|| anyhow::anyhow!("job {id} does not exist"))?;
        anyhow::ensure!(
            job.requester == requester.public_key() && job.unit_count == s.units,
            "job {id} is not the one submitted"
        );
    }
    loop {
        let mut open = 0;
        let mut accepted = 0u64;
        let mut total = 0u64;
        for id in &ids {
            let job = client
                .job_page(*id, 0, Some(1))
                .await?
                .ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
            if !job.is_finished() {
                open += 1;
            }
            accepted += u64::from(job.counts.accepted);
            total += u64::from(job.unit_count);
        }
        if open == 0 {
            return Ok(ids);
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "{open} jobs still open after {} s ({accepted} of {total} units accepted)",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Where each (job, unit, replica) was committed and revealed: the heights and transactions.
#[derive(Default)]
struct ChainLog {
    tx_height: HashMap<TxHash, u64>,
    commits: HashMap<ReplicaId, Vec<(u64, TxHash)>>,
    reveals: HashMap<ReplicaId, Vec<(u64, TxHash)>>,
    commit_txs: usize,
    reveal_txs: usize,
    results: usize,
}

async fn read_chain(network: &LocalNetwork, from: u64, to: u64) -> anyhow::Result<ChainLog> {
    let mut log = ChainLog::default();
    let reader = &network.validators[0].blocks;
    for height in from..=to {
        let block = reader
            .by_height(height)
            .await
            .ok_or_else(|| anyhow::anyhow!("validator 0 has no block {height}"))?;
        for tx in &block.txs {
            let hash = tx.hash();
            log.tx_height.insert(hash, height);
            match &tx.tx.action {
                Action::CommitResults(commits) => {
                    log.commit_txs += 1;
                    log.results += commits.len();
                    for c in commits {
                        log.commits
                            .entry((c.job, c.unit, c.replica))
                            .or_default()
                            .push((height, hash));
                    }
                }
                Action::RevealResults(reveals) => {
                    log.reveal_txs += 1;
                    log.results += reveals.len();
                    for r in reveals {
                        log.reveals
                            .entry((r.job, r.unit, r.replica))
                            .or_default()
                            .push((height, hash));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(log)
}

/// The height at which a result transaction for `key` executed: the only candidate, or the
/// one whose receipt says it executed.
async fn executed_at(
    client: &Client,
    receipts: &mut HashMap<TxHash, bool>,
    candidates: Option<&Vec<(u64, TxHash)>>,
) -> anyhow::Result<Option<u64>> {
    let Some(candidates) = candidates else {
        return Ok(None);
    };
    if let [(height, _)] = candidates.as_slice() {
        return Ok(Some(*height));
    }
    for (height, hash) in candidates {
        let ok = match receipts.get(hash) {
            Some(ok) => *ok,
            None => {
                let ok = client
                    .receipt(hash)
                    .await?
                    .is_some_and(|r| r.status == wire::TxStatus::Ok);
                receipts.insert(*hash, ok);
                ok
            }
        };
        if ok {
            return Ok(Some(*height));
        }
    }
    Ok(None)
}

/// A job with all its units, read in pages of 1,000.
async fn whole_job(client: &Client, id: u64) -> anyhow::Result<wire::Job> {
    let missing = || anyhow::anyhow!("job {id} vanished");
    let mut job = client
        .job_page(id, 0, Some(1_000))
        .await?
        .ok_or_else(missing)?;
    while let Some(next) = job.next_unit {
        let page = client
            .job_page(id, next, Some(1_000))
            .await?
            .ok_or_else(missing)?;
        if page.units.is_empty() {
            break;
        }
        job.units.extend(page.units);
        job.next_unit = page.next_unit.filter(|n| *n > next);
    }
    Ok(job)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn since(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        ms(later - earlier)
    } else {
        -ms(earlier - later)
    }
}

/// Per unit timelines of the jobs `ids` (submitted as `submitted`), and the phase's figures.
async fn measure(
    network: &LocalNetwork,
    observed: &Observed,
    client: &Client,
    submitted: &[Submitted],
    ids: &[u64],
) -> anyhow::Result<(PhaseFigures, Vec<String>)> {
    let mut rows = Vec::new();
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        jobs.push(whole_job(client, *id).await?);
    }
    let first_height = jobs
        .iter()
        .map(|j| j.submitted_height)
        .min()
        .unwrap_or_default();
    // The job records come from the API's state, which can be a block ahead of the events this
    // benchmark reads blocks and times by: a unit accepted in that block would have no
    // timeline. Wait (briefly) until the events have caught up with the state read.
    let read_at = client.status().await?.finalized_height;
    let caught_up = Instant::now() + Duration::from_secs(10);
    while (network.validators[0].events.status().finalized_height < read_at
        || observed.finalized_at(read_at).is_none())
        && Instant::now() < caught_up
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_height = network.validators[0].events.status().finalized_height;
    let log = read_chain(network, first_height, last_height).await?;
    let mut receipts = HashMap::new();
    let mut figures = PhaseFigures {
        jobs: jobs.len(),
        commit_txs: log.commit_txs,
        reveal_txs: log.reveal_txs,
        results_per_tx: log.results as f64 / (log.commit_txs + log.reveal_txs).max(1) as f64,
        ..PhaseFigures::default()
    };
    let (mut overhead, mut accepted, mut dispatch, mut dispatch_blocks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut exec, mut handled) = (Vec::new(), Vec::new());
    let mut stage: [Vec<f64>; 8] = Default::default();
    let mut same_block = 0usize;
    let first_submit = submitted.iter().map(|s| s.at).min();
    let mut last_accept: Option<Instant> = None;
    let mut last_accept_height = 0;
    for (job, sub) in jobs.iter().zip(submitted) {
        let included = *log
            .tx_height
            .get(&sub.hash)
            .ok_or_else(|| anyhow::anyhow!("job {} is in no block read", job.id))?;
        for unit in &job.units {
            figures.units += 1;
            if unit.state != "accepted" {
                continue;
            }
            figures.accepted_units += 1;
            if unit.replicas.len() > 1 {
                figures.audited_units += 1;
            }
            let Some(first) = unit.replicas.iter().min_by_key(|r| r.index) else {
                continue;
            };
            let Some(agreed) = unit.replicas.iter().find(|r| r.status == "agreed") else {
                continue;
            };
            let key = (job.id, unit.unit, agreed.index);
            let committed = executed_at(client, &mut receipts, log.commits.get(&key)).await?;
            let revealed = executed_at(client, &mut receipts, log.reveals.get(&key)).await?;
            let run = observed
                .runs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned();
            let (Some(committed), Some(revealed), Some((run, ran_at))) = (committed, revealed, run)
            else {
                continue;
            };
            let times = (
                observed.finalized_at(included),
                observed.finalized_at(first.assigned_height),
                observed.finalized_at(agreed.assigned_height),
                observed.finalized_at(committed),
                observed.finalized_at(revealed),
            );
            let (Some(t_inc), Some(t_disp), Some(t_asg), Some(t_com), Some(t_acc)) = times else {
                continue;
            };
            figures.timed_units += 1;
            let exec_ms = run.exec_us as f64 / 1e3;
            accepted.push(since(t_acc, sub.at));
            overhead.push(since(t_acc, sub.at) - exec_ms);
            dispatch.push(since(t_disp, sub.at));
            let blocks = first.assigned_height.saturating_sub(included);
            dispatch_blocks.push(blocks as f64);
            figures.dispatch_blocks_max = figures.dispatch_blocks_max.max(blocks);
            if blocks == 0 {
                same_block += 1;
            }
            exec.push(run.exec_us as f64);
            handled.push(run.handled_us as f64);
            stage[0].push(since(t_inc, sub.at));
            stage[1].push(since(t_asg, t_inc));
            stage[2].push(agreed.assigned_height.saturating_sub(included) as f64);
            stage[3].push(since(ran_at, t_asg));
            stage[4].push(since(t_com, ran_at));
            stage[5].push(committed.saturating_sub(agreed.assigned_height) as f64);
            stage[6].push(since(t_acc, t_com));
            stage[7].push(revealed.saturating_sub(committed) as f64);
            if let Some(start) = first_submit {
                rows.push(format!(
                    "{},{},{},{included},{},{committed},{revealed},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{},{}",
                    job.id,
                    unit.unit,
                    unit.replicas.len(),
                    agreed.assigned_height,
                    since(sub.at, start),
                    since(t_inc, start),
                    since(t_asg, start),
                    since(ran_at, start),
                    since(t_com, start),
                    since(t_acc, start),
                    run.exec_us,
                    run.handled_us,
                ));
            }
            if last_accept.is_none_or(|l| t_acc > l) {
                last_accept = Some(t_acc);
            }
            last_accept_height = last_accept_height.max(revealed);
        }
    }
    figures.overhead_p50_ms = percentile(&mut overhead, 0.5);
    figures.overhead_p90_ms = percentile(&mut overhead, 0.9);
    figures.accepted_p50_ms = percentile(&mut accepted, 0.5);
    figures.dispatch_p50_ms = percentile(&mut dispatch, 0.5);
    figures.dispatch_p90_ms = percentile(&mut dispatch, 0.9);
    figures.dispatch_blocks_p50 = percentile(&mut dispatch_blocks, 0.5);
    figures.dispatched_same_block = same_block as f64 / figures.timed_units.max(1) as f64;
    figures.exec_p50_us = percentile(&mut exec, 0.5);
    figures.handled_p50_us = percentile(&mut handled, 0.5);
    let [s0, s1, s2, s3, s4, s5, s6, s7] = &mut stage;
    figures.stages = Stages {
        included_ms: percentile(s0, 0.5),
        assigned_ms: percentile(s1, 0.5),
        assigned_blocks: percentile(s2, 0.5),
        ran_ms: percentile(s3, 0.5),
        committed_ms: percentile(s4, 0.5),
        committed_blocks: percentile(s5, 0.5),
        accepted_ms: percentile(s6, 0.5),
        accepted_blocks: percentile(s7, 0.5),
    };
    if let (Some(first), Some(last)) = (first_submit, last_accept) {
        figures.window_ms = since(last, first);
        figures.units_per_sec = figures.accepted_units as f64 / (figures.window_ms / 1e3);
        figures.blocks = last_accept_height.saturating_sub(first_height);
        let times = (
            observed.finalized_at(first_height),
            observed.finalized_at(last_accept_height),
        );
        if let (Some(a), Some(b)) = times
            && figures.blocks > 0
        {
            figures.block_interval_ms = since(b, a) / figures.blocks as f64;
        }
    }
    Ok((figures, rows))
}

/// With `EXO_BENCH_TRACE=DIR`: every accepted unit of the throughput phase (`units.csv`:
/// heights of its job's block, its assignment, commitment and acceptance, and milliseconds
/// since the phase's first submission of each step) and each validator's metrics, the API's
/// request counters included (`metrics-<i>.txt`).
async fn write_trace(
    dir: &std::path::Path,
    network: &LocalNetwork,
    rows: &[String],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::from(
        "job,unit,replicas,included_height,assigned_height,committed_height,accepted_height,\
         submitted_ms,included_ms,assigned_ms,ran_ms,committed_ms,accepted_ms,exec_us,handled_us\n",
    );
    for row in rows {
        csv.push_str(row);
        csv.push('\n');
    }
    std::fs::write(dir.join("units.csv"), csv)?;
    for (i, url) in network.api_urls.iter().enumerate() {
        let text = Client::new(url)?.metrics().await?;
        std::fs::write(dir.join(format!("metrics-{i}.txt")), text)?;
    }
    Ok(())
}

/// The first bases from `api` and `p2p` on, in steps of 10, with `count` free ports each on
/// 127.0.0.1.
pub(crate) fn free_ports(api: u16, p2p: u16, count: usize) -> anyhow::Result<(u16, u16)> {
    let free = |base: u16| {
        (0..count).all(|i| {
            u16::try_from(i)
                .ok()
                .and_then(|i| base.checked_add(i))
                .is_some_and(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        })
    };
    for step in 0..100u16 {
        let (a, p) = (api.checked_add(step * 10), p2p.checked_add(step * 10));
        if let (Some(a), Some(p)) = (a, p)
            && free(a)
            && free(p)
        {
            return Ok((a, p));
        }
    }
    anyhow::bail!("no free ports from {api} and {p2p} on")
}

/// The runtime of the workers and the clients beside the in-process validators, its threads
/// named apart from the validators' for profilers and for [`cpu_ticks`].
pub(crate) fn clients_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-workers")
        .enable_all()
        .build()
}

/// Length of a clock tick of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const MS_PER_TICK: f64 = 10.0;

/// User and system clock ticks of this process (threads that ended included), and of its
/// live threads named `bench-workers`, from `/proc` (Linux).
fn cpu_ticks() -> Option<(u64, u64)> {
    fn ticks(stat: &str) -> Option<(String, u64)> {
        let (head, rest) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1.to_string();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((name, utime + stime))
    }
    let (_, total) = ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let mut workers = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Some((name, t)) = std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|s| ticks(&s))
            && name.starts_with("bench-workers")
        {
            workers += t;
        }
    }
    Some((total, workers))
}

/// `/dev/shm` when it is a directory (a tmpfs on Linux).
pub(crate) fn tmpfs() -> Option<std::path::PathBuf> {
    let shm = std::path::Path::new("/dev/shm");
    shm.is_dir().then(|| shm.to_path_buf())
}

/// The processor's model name (Linux), or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
