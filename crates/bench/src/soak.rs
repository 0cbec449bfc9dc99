//! `exo bench soak`: a devnet under honest load and every attack of the security audit at once,
//! for a bounded time, then checks that nothing was lost and nothing got stuck.
//!
//! Everything runs in this process, as in [`crate::tasks`]: four validators over loopback TCP,
//! each serving its HTTP API (default limits, rate limits on) and blob store, and three honest
//! provider workers. Honest clients and workers talk from 127.0.0.1; the attackers from other
//! loopback addresses (127.0.0.2 and up, one per attack), because a real attacker is not behind
//! the honest users' address and would otherwise only spend their rate budget.
//!
//! For [`SoakOptions::duration`], at once:
//!
//! - **honest load**: a few accounts each transfer, wait for finalization, pause and transfer
//!   again (every submit-to-finalized latency is kept); a requester submits a small `hello` job
//!   now and then, waits for it to finish and downloads every unit's outputs;
//! - **attacks**, each at a bounded rate: gapped nonces at ten times the honest fee (C1); a pool
//!   filler keeping 16 executable transactions queued per account; one-byte ranged `GET`s and
//!   whole `GET`s of a 16 MiB blob, and `GET`s of blobs no node holds (H1); unsigned, forged,
//!   oversized and malformed requests; hostile `probe` jobs (stack overflow, spin, stdout
//!   flood: C5); a requester submitting unmatchable jobs past its cap (C3); offers with no slot
//!   or a far expiry (M2).
//!
//! Then the attacks stop, every job of the soak is given time to finish (the unmatchable ones
//! expire: the soak's genesis sets a one-minute wait window), and the checks run: every honest
//! transfer finalized, every honest job finished with its outputs downloaded, no unit stuck,
//! no gap between finalized blocks longer than [`SoakOptions::max_gap`], every token in a known
//! balance or pot summing to the bank's supply, every validator at the same state root and
//! still finalizing, and no attack request answered 5xx. [`SoakReport::failures`] says which
//! failed.

use crate::{
    percentile,
    tasks::{
        ASK, FEE, FUEL_LIMIT, clients_runtime, cpu_model, free_ports, job_spec, sign_at, tmpfs,
    },
};
use commonware_codec::Encode as _;
use commonware_cryptography::Signer as _;
use exo_client::{Client, wire};
use exo_ledger::{
    GenesisAccount,
    modules::{bank, market, staking},
    state::{Query, Record},
};
use exo_node::{
    devnet::{self, DevnetOptions},
    local::LocalNetwork,
};
use exo_types::{
    Action, Address, Amount, Hash32, JobSpec, PrivateKey, SignedTx, TxHash, address_to_hex,
    exo_market::{DeviceClass, Requirements},
};
use exo_worker::{Benchmark, WorkerConfig};
use serde::Serialize;
use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Shortest and longest soak accepted: long enough to see every attack, short enough that a
/// mistyped duration does not hold the machine for a day.
pub const MIN_DURATION: Duration = Duration::from_secs(10);
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// How long honest load and attacks run together.
    pub duration: Duration,
    pub providers: usize,
    /// Accounts making honest transfers, each one at a time.
    pub transfer_accounts: usize,
    /// Pause of each honest account between a finalized transfer and its next one.
    pub transfer_pause: Duration,
    /// One honest job every this often (each waits for the previous one to finish).
    pub job_interval: Duration,
    /// Longest gap between finalized blocks the soak accepts.
    pub max_gap: Duration,
    /// Time after the attacks for every job of the soak to finish.
    pub drain_timeout: Duration,
    /// The attacks to run, by their names in [`ATTACKS`].
    pub attacks: Vec<String>,
    /// Validator `i` serves its API on `api_port + i` and listens for peers on `p2p_port + i`.
    pub api_port: u16,
    pub p2p_port: u16,
}

/// Every attack of the soak, by the name the report and the options use.
pub const ATTACKS: [&str; 11] = [
    "c1_gapped_nonces",
    "c1_pool_filler",
    "h1_ranged_get",
    "h1_whole_get",
    "h1_blob_miss",
    "malformed",
    "c5_hostile_jobs",
    "c3_unmatchable_jobs",
    "m2_offer_squatting",
    "h2_blob_fill",
    "h3_output_claims",
];

impl Default for SoakOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(180),
            providers: 3,
            transfer_accounts: 3,
            transfer_pause: Duration::from_millis(250),
            job_interval: Duration::from_secs(10),
            max_gap: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(180),
            attacks: ATTACKS.iter().map(|a| a.to_string()).collect(),
            api_port: 38_380,
            p2p_port: 39_300,
        }
    }
}

/// Attack rates, per second, of all the attack's requests together.
const GAPPED_PER_SEC: u32 = 20;
const FILLER_PER_SEC: u32 = 40;
const RANGED_GET_PER_SEC: u32 = 35;
const WHOLE_GET_PER_SEC: u32 = 2;
const BLOB_MISS_PER_SEC: u32 = 10;
const MALFORMED_PER_SEC: u32 = 20;
const UNMATCHABLE_PER_SEC: u32 = 1;
const OFFER_SQUAT_PER_SEC: u32 = 1;
const BLOB_FILL_PER_SEC: u32 = 2;
const OUTPUT_CLAIM_PER_SEC: u32 = 5;
/// Size of each junk blob the blob filler uploads.
const JUNK_BLOB_BYTES: usize = 4 * 1024 * 1024;
/// Each account's blob quota in the soak (the default is 1 GiB): small enough for the blob
/// filler to reach it on every node within 20 s, so even a short soak sees the refusals past
/// it, and above the big blob the ranged `GET`s read.
const SOAK_BLOB_QUOTA_BYTES: u64 = 32 * 1024 * 1024;
const _: () = assert!(SOAK_BLOB_QUOTA_BYTES >= BIG_BLOB_BYTES as u64);
/// One hostile probe job (three units) every this often.
const PROBE_JOB_INTERVAL: Duration = Duration::from_secs(30);
/// Size of the blob the ranged and whole `GET`s read.
const BIG_BLOB_BYTES: usize = 16 * 1024 * 1024;
/// Accounts of the gapped-nonce and pool-filling attacks.
const GAPPED_ACCOUNTS: u64 = 4;
const FILLER_ACCOUNTS: u64 = 8;
/// Nonces past its next one a gapped sender cycles through: 16 are admitted, the rest refused.
const GAPPED_SPAN: u64 = 24;
/// Wait window of the soak's genesis, so that unmatchable jobs expire within the soak.
const JOB_WAIT_WINDOW_SECS: u64 = 60;
/// Fuel limit of the hostile units: enough to spin for seconds.
const PROBE_FUEL_LIMIT: u64 = 2_000_000_000;
/// Longest wait for an honest transfer or job.
const HONEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at downloading an accepted unit's outputs, half a second apart.
const DOWNLOAD_TRIES: u32 = 10;
/// Units of each honest job.
const HONEST_JOB_UNITS: u32 = 2;
/// Timeout of each attack request (a slow answer is an answer, not a failure).
const ATTACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The soak's figures and verdicts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SoakReport {
    pub secs: u64,
    pub validators: usize,
    pub providers: usize,
    pub cores: usize,
    pub cpu_model: String,
    /// `/proc/loadavg`'s one-minute figure when the attacks started and when they stopped.
    pub load_avg_start: f64,
    pub load_avg_end: f64,
    /// Finalized blocks during the attacks (validator 0).
    pub blocks: usize,
    pub blocks_per_sec: f64,
    /// Longest time without a finalized block during the attacks.
    pub max_gap_ms: f64,
    /// Share of the attacks' whole seconds in which a block was finalized.
    pub seconds_with_block: f64,
    pub transfers: usize,
    pub transfers_finalized: usize,
    pub transfer_p50_ms: f64,
    pub transfer_p99_ms: f64,
    pub transfer_max_ms: f64,
    pub honest_jobs: usize,
    pub honest_units_accepted: usize,
    pub outputs_downloaded: usize,
    /// Honest job, submission to finished (outputs downloadable).
    pub job_p50_ms: f64,
    pub job_max_ms: f64,
    /// Jobs of the soak (honest, hostile, unmatchable) and how their units ended.
    pub jobs: usize,
    pub unit_states: BTreeMap<String, u64>,
    /// `total` (the bank's supply) and `held` (every known balance and pot), base units.
    pub supply: String,
    pub held: String,
    /// The height all validators reached at the end, and whether their state roots agree.
    pub final_height: u64,
    /// Per attack: its requests' answers (`200`, `400 bad_tx`, `429 busy`, `closed`...).
    pub attacks: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per attack: the receipts of its transactions that reached a block (`ok` or a reason).
    pub receipts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Transactions of the gapped senders that executed (must be none: nonce 0 is never sent),
    /// and of the pool filler's (each paid its fee).
    pub gapped_executed: u64,
    pub filler_executed: u64,
    /// Per attack: what its accounts lost, base units (fees, and for the offer squatter the
    /// bond it still has locked).
    pub attacker_cost: BTreeMap<String, String>,
    /// Honest requests refused or failed on the way (each was retried): how many, and the
    /// first [`MAX_ERRORS_KEPT`].
    pub honest_error_count: usize,
    pub honest_errors: Vec<String>,
    /// Why the soak failed; empty when every check passed.
    pub failures: Vec<String>,
}

/// How an attack request that got no answer is counted.
const TIMED_OUT: &str = "timed out";
const CLOSED: &str = "connection closed";

/// Honest errors kept in the report.
const MAX_ERRORS_KEPT: usize = 20;

/// Keys of the soak's actors, apart by seed range.
fn key(role: u64, i: u64) -> PrivateKey {
    PrivateKey::from_seed(0x50a6_0000 + role * 0x100 + i)
}
const ROLE_TRANSFER: u64 = 1;
const ROLE_REQUESTER: u64 = 2;
const ROLE_PROVIDER: u64 = 3;
const ROLE_GAPPED: u64 = 4;
const ROLE_FILLER: u64 = 5;
const ROLE_BLOB: u64 = 6;
const ROLE_HOSTILE: u64 = 7;
const ROLE_SQUATTER: u64 = 8;
const ROLE_UNMATCHABLE: u64 = 9;
const ROLE_BLOB_FILLER: u64 = 10;
const ROLE_CLAIMER: u64 = 11;

/// The accounts an attack's role uses.
fn attack_accounts(role: u64) -> impl Iterator<Item = Address> {
    let count = match role {
        ROLE_GAPPED => GAPPED_ACCOUNTS,
        ROLE_FILLER => FILLER_ACCOUNTS,
        _ => 1,
    };
    (0..count).map(move |i| key(role, i).public_key())
}

/// What validator 0 finalized and when this process saw it.
#[derive(Default)]
struct Observed {
    blocks: Mutex<Vec<Instant>>,
    txs: Mutex<HashMap<TxHash, Instant>>,
}

impl Observed {
    fn finalized(&self, hash: &TxHash) -> Option<Instant> {
        self.txs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .copied()
    }
}

/// Answers per attack, and the transactions each attack got into the mempool.
#[derive(Default)]
struct Tally {
    answers: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
    admitted: Mutex<BTreeMap<&'static str, Vec<TxHash>>>,
}

impl Tally {
    fn count(&self, attack: &'static str, answer: String) {
        *self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(attack)
            .or_default()
            .entry(answer)
            .or_default() += 1;
    }

    fn admitted(&self, attack: &'static str, hash: TxHash) {
        self.admitted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(attack)
            .or_default()
            .push(hash);
    }
}

/// One attacker: a plain HTTP client from its own loopback address.
struct Attacker<'a> {
    name: &'static str,
    http: reqwest::Client,
    urls: &'a [String],
    tally: &'a Tally,
}

impl<'a> Attacker<'a> {
    fn new(
        name: &'static str,
        source: u8,
        urls: &'a [String],
        tally: &'a Tally,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, source)))
            .timeout(ATTACK_TIMEOUT)
            .build()?;
        Ok(Self {
            name,
            http,
            urls,
            tally,
        })
    }

    /// The URL of `path` on node `i` (modulo the node count).
    fn url(&self, i: u64, path: &str) -> String {
        let base = &self.urls[(i % self.urls.len() as u64) as usize];
        format!("{}/{path}", base.trim_end_matches('/'))
    }

    /// Sends `request`, reads the answer (bounded by the request's timeout) and counts it as
    /// its status and, for errors, the node's error code. Returns the status and body.
    async fn send(&self, request: reqwest::RequestBuilder) -> Option<(u16, Vec<u8>)> {
        let answer = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.bytes().await?.to_vec()))
        }
        .await;
        match answer {
            Ok((status, body)) => {
                let label = if status < 300 {
                    status.to_string()
                } else {
                    let code = serde_json::from_slice::<wire::ErrorBody>(&body)
                        .map_or_else(|_| "no_reason".to_string(), |b| b.error);
                    format!("{status} {code}")
                };
                self.tally.count(self.name, label);
                Some((status, body))
            }
            Err(e) => {
                let label = if e.is_timeout() { TIMED_OUT } else { CLOSED };
                self.tally.count(self.name, label.into());
                None
            }
        }
    }

    /// Submits `tx` to node `i`; true when the node admitted it into its mempool.
    async fn submit(&self, i: u64, tx: &SignedTx) -> bool {
        let body = wire::SubmitRequest {
            tx: hex::encode(tx.encode()),
        };
        let request = self.http.post(self.url(i, "v1/txs")).json(&body);
        // 202: admitted to the mempool.
        matches!(self.send(request).await, Some((200..=299, _)))
    }
}

/// Ticks `per_sec` times a second until `until`, giving the tick's number.
struct Pace {
    next: tokio::time::Instant,
    interval: Duration,
    until: tokio::time::Instant,
    count: u64,
}

impl Pace {
    fn new(per_sec: u32, until: tokio::time::Instant) -> Self {
        Self::every(Duration::from_secs(1) / per_sec.max(1), until)
    }

    fn every(interval: Duration, until: tokio::time::Instant) -> Self {
        Self {
            next: tokio::time::Instant::now(),
            interval,
            until,
            count: 0,
        }
    }

    /// Waits for the next tick; `None` once the soak is over. A tick that a slow request made
    /// late is not made up for: the rate is a bound, not a target.
    async fn tick(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        self.next = self.next.max(now);
        if self.next >= self.until {
            return None;
        }
        tokio::time::sleep_until(self.next).await;
        self.next += self.interval;
        self.count += 1;
        Some(self.count - 1)
    }
}

/// Runs the soak; progress goes to `progress`.
pub fn run(options: &SoakOptions, progress: impl Fn(&str)) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(
        (MIN_DURATION..=MAX_DURATION).contains(&options.duration),
        "the soak lasts {} to {} s",
        MIN_DURATION.as_secs(),
        MAX_DURATION.as_secs()
    );
    anyhow::ensure!(
        (1..=16).contains(&options.providers) && (1..=64).contains(&options.transfer_accounts),
        "1 to 16 providers and 1 to 64 transfer accounts"
    );
    if let Some(unknown) = options
        .attacks
        .iter()
        .find(|a| !ATTACKS.contains(&a.as_str()))
    {
        anyhow::bail!(
            "unknown attack {unknown:?}: the attacks are {}",
            ATTACKS.join(", ")
        );
    }
    let dir = std::env::temp_dir().join(format!("exo-bench-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = run_in(&dir, options, &progress);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Every account of the soak with its genesis balance.
fn actors(options: &SoakOptions) -> Vec<(PrivateKey, Amount)> {
    let mut actors = Vec::new();
    let mut add = |role, count, exo| {
        for i in 0..count {
            actors.push((key(role, i), Amount::from_exo(exo)));
        }
    };
    add(ROLE_TRANSFER, options.transfer_accounts as u64, 1_000_000);
    add(ROLE_REQUESTER, 1, 1_000_000);
    add(ROLE_PROVIDER, options.providers as u64, 100_000);
    add(ROLE_GAPPED, GAPPED_ACCOUNTS, 10);
    add(ROLE_FILLER, FILLER_ACCOUNTS, 1_000);
    add(ROLE_BLOB, 1, 10);
    add(ROLE_HOSTILE, 1, 100_000);
    add(ROLE_SQUATTER, 1, 100);
    add(ROLE_UNMATCHABLE, 1, 1_000);
    add(ROLE_BLOB_FILLER, 1, 10);
    add(ROLE_CLAIMER, 1, 10);
    actors
}

fn run_in(
    dir: &std::path::Path,
    options: &SoakOptions,
    progress: &impl Fn(&str),
) -> anyhow::Result<SoakReport> {
    let accounts = actors(options)
        .iter()
        .map(|(k, balance)| GenesisAccount {
            address: address_to_hex(&k.public_key()),
            balance: *balance,
        })
        .collect();
    let (api_port, p2p_port) = free_ports(options.api_port, options.p2p_port, 4)?;
    let layout = devnet::init(&DevnetOptions {
        validators: 4,
        data_dir: dir.join("net"),
        api_port,
        p2p_port,
        extra_accounts: accounts,
    })?;
    let mut genesis = exo_node::config::load_genesis(&layout.genesis)?;
    genesis.params.market.job_wait_window_secs = JOB_WAIT_WINDOW_SECS;
    std::fs::write(&layout.genesis, toml::to_string_pretty(&genesis)?)?;
    let mut known: Vec<Address> = genesis.validators()?;
    for account in &genesis.accounts {
        known.push(
            exo_types::address_from_hex(&account.address)
                .ok_or_else(|| anyhow::anyhow!("bad genesis address {}", account.address))?,
        );
    }
    known.sort();
    known.dedup();

    progress("starting 4 validators (default API limits, a smaller blob quota per account)");
    let limits = exo_node::local::ApiLimits {
        max_account_blob_bytes: SOAK_BLOB_QUOTA_BYTES,
        ..exo_node::local::ApiLimits::default()
    };
    let network = LocalNetwork::start(&layout, Some(limits))?;
    let observed = Arc::new(Observed::default());
    {
        let observed = observed.clone();
        network.validators[0].events.subscribe(move |block| {
            let now = Instant::now();
            observed
                .blocks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(now);
            let mut txs = observed.txs.lock().unwrap_or_else(|p| p.into_inner());
            for hash in &block.tx_hashes {
                txs.insert(*hash, now);
            }
        });
    }
    let runtime = clients_runtime()?;
    let result = runtime.block_on(drive(dir, options, &network, &observed, &known, progress));
    drop(runtime);
    let stopped = network.stop();
    let mut report = result?;
    if let Err(err) = stopped {
        report
            .failures
            .push(format!("a validator ended with an error: {err:#}"));
    }
    Ok(report)
}

/// The honest and attacking parties' shared setup: the apps, the big blob, the squatter's
/// provider.
struct Setup {
    chain_id: String,
    hello: Hash32,
    probe: Hash32,
    big_blob: Hash32,
}

async fn setup(network: &LocalNetwork, progress: &impl Fn(&str)) -> anyhow::Result<Setup> {
    let urls = &network.api_urls;
    let client = Client::new(&urls[0])?;
    let chain_id = client.status().await?.chain_id;
    progress("publishing hello and probe, uploading a 16 MiB blob");
    let requester = key(ROLE_REQUESTER, 0);
    let hostile = key(ROLE_HOSTILE, 0);
    for url in urls {
        let node = Client::new(url)?;
        node.put_blob_on(&chain_id, exo_apps::HELLO_WASM.to_vec(), &requester)
            .await?;
        node.put_blob_on(&chain_id, exo_apps::PROBE_WASM.to_vec(), &hostile)
            .await?;
    }
    let hello = exo_client::blob_hash(exo_apps::HELLO_WASM);
    let probe = exo_client::blob_hash(exo_apps::PROBE_WASM);
    let publish = |module_hash, name: &str| Action::PublishApp {
        module_hash,
        name: name.into(),
        version: "1".into(),
        royalty_per_unit: Amount::ZERO,
    };
    // The squatter registers as a provider so that its offers reach the market's rules.
    let squatter = key(ROLE_SQUATTER, 0);
    let resources = Benchmark {
        fuel_per_second: 1_000_000_000,
        cores: 1,
        memory_mib: 1_024,
        gpu: None,
    }
    .resources(DeviceClass::Server, "eu-west", FUEL_LIMIT);
    let txs = [
        sign_at(&chain_id, &requester, 0, FEE, publish(hello, "hello")),
        sign_at(&chain_id, &hostile, 0, FEE, publish(probe, "probe")),
        sign_at(
            &chain_id,
            &squatter,
            0,
            FEE,
            Action::RegisterProvider {
                resources,
                bond: Amount::from_exo(10),
            },
        ),
    ];
    for tx in &txs {
        let hash = client.submit(tx).await?;
        let receipt = client.wait_for_receipt(&hash, HONEST_TIMEOUT).await?;
        anyhow::ensure!(
            receipt.status == wire::TxStatus::Ok,
            "setup transaction {} failed: {:?}",
            tx.tx.action.name(),
            receipt.reason
        );
    }
    // The big blob is uploaded to node 0 only; the other nodes pull it from a peer on the
    // first GET they are asked.
    let big: Vec<u8> = (0..BIG_BLOB_BYTES)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let big_blob = client
        .put_blob_on(&chain_id, big, &key(ROLE_BLOB, 0))
        .await?;
    Ok(Setup {
        chain_id,
        hello,
        probe,
        big_blob,
    })
}

async fn drive(
    dir: &std::path::Path,
    options: &SoakOptions,
    network: &LocalNetwork,
    observed: &Arc<Observed>,
    known: &[Address],
    progress: &impl Fn(&str),
) -> anyhow::Result<SoakReport> {
    network_ready(network).await?;
    let setup = setup(network, progress).await?;
    progress(&format!("starting {} workers", options.providers));
    let cache = dir.join("compiled");
    {
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let sandbox = exo_exec::Sandbox::new(exo_exec::SandboxConfig::new(cache))?;
            sandbox.prepare(exo_apps::HELLO_WASM)?;
            sandbox.prepare(exo_apps::PROBE_WASM)?;
            Ok(())
        })
        .await??;
    }
    let (stop_workers, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    let urls = &network.api_urls;
    for i in 0..options.providers {
        let mut config = WorkerConfig::new(
            urls[i % urls.len()].clone(),
            key(ROLE_PROVIDER, i as u64),
            dir.join(format!("worker-{i}")),
        );
        config.slots = 2;
        config.offer_slots = Some(16);
        config.price_per_unit = ASK;
        config.bond = Amount::from_exo(100);
        config.compile_cache = Some(cache.clone());
        config.scratch_dir = tmpfs();
        config.poll_interval = Duration::from_millis(500);
        config.benchmark = Some(Benchmark {
            fuel_per_second: 1_000_000_000,
            cores: 1,
            memory_mib: 4_096,
            gpu: None,
        });
        let mut stopped = stopped.clone();
        workers.push(tokio::spawn(exo_worker::run(config, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }
    let result = soak(options, network, observed, known, &setup, progress).await;
    let _ = stop_workers.send(true);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
    }
    result
}

async fn network_ready(network: &LocalNetwork) -> anyhow::Result<()> {
    let start = Instant::now();
    while network
        .validators
        .iter()
        .any(|v| v.events.status().finalized_height < 1)
    {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "the validators did not finalize a block"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Honest transfers: (latencies in ms, transfers sent, errors met).
type TransferResult = (Vec<f64>, usize, Vec<String>);
/// Honest jobs: (job ids, submit-to-finished ms, units accepted, outputs downloaded, errors).
type JobResult = (Vec<u64>, Vec<f64>, usize, usize, Vec<String>);

async fn soak(
    options: &SoakOptions,
    network: &LocalNetwork,
    observed: &Observed,
    known: &[Address],
    setup: &Setup,
    progress: &impl Fn(&str),
) -> anyhow::Result<SoakReport> {
    let urls = &network.api_urls;
    let client = Client::new(&urls[0])?;
    progress("waiting for the workers' offers");
    let start = Instant::now();
    while client.offering_providers(100).await?.len() < options.providers {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "the workers posted no offers within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let supply_before = read_supply(network, known).await?;
    let balances_before = balances(network, known).await?;
    let tally = Tally::default();
    progress(&format!(
        "honest load and every attack for {} s",
        options.duration.as_secs()
    ));
    let load_avg_start = load_avg();
    let t0 = Instant::now();
    let until = tokio::time::Instant::now() + options.duration;
    let on = |name: &str| options.attacks.iter().any(|a| a == name);
    // Each attack from its own loopback address (127.0.0.2 and up).
    let attacker = |i: usize| Attacker::new(ATTACKS[i], i as u8 + 2, urls, &tally);
    let (gapped, filler, ranged, whole, miss) = (
        attacker(0)?,
        attacker(1)?,
        attacker(2)?,
        attacker(3)?,
        attacker(4)?,
    );
    let (malformed, hostile, unmatchable, squat) =
        (attacker(5)?, attacker(6)?, attacker(7)?, attacker(8)?);
    let (blob_fill, claims) = (attacker(9)?, attacker(10)?);
    let chain_id = &setup.chain_id;
    let (transfers, jobs, ..) = tokio::join!(
        honest_transfers(options, urls, chain_id, observed, until),
        honest_jobs(options, urls, setup, until),
        gate(on(gapped.name), gapped_nonces(&gapped, chain_id, until)),
        gate(on(filler.name), pool_filler(&filler, chain_id, until)),
        gate(on(ranged.name), ranged_gets(&ranged, setup.big_blob, until)),
        gate(on(whole.name), whole_gets(&whole, setup.big_blob, until)),
        gate(on(miss.name), blob_misses(&miss, until)),
        gate(
            on(malformed.name),
            malformed_requests(&malformed, chain_id, until)
        ),
        gate(on(hostile.name), hostile_jobs(&hostile, setup, until)),
        gate(
            on(unmatchable.name),
            unmatchable_jobs(&unmatchable, setup, until)
        ),
        gate(on(squat.name), offer_squatting(&squat, chain_id, until)),
        gate(
            on(blob_fill.name),
            blob_fill_attack(&blob_fill, chain_id, until)
        ),
        gate(on(claims.name), output_claims(&claims, chain_id, until)),
    );
    let t1 = Instant::now();
    let load_avg_end = load_avg();
    let (latencies, sent, mut honest_errors) = transfers?;
    let (honest_ids, job_ms, units_accepted, downloaded, job_errors) = jobs?;
    let honest_finished = job_ms.len();
    honest_errors.extend(job_errors);
    let honest_error_count = honest_errors.len();
    honest_errors.truncate(MAX_ERRORS_KEPT);

    let mut report = SoakReport {
        secs: options.duration.as_secs(),
        validators: network.validators.len(),
        providers: options.providers,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpu_model(),
        load_avg_start,
        load_avg_end,
        transfers: sent,
        transfers_finalized: latencies.len(),
        honest_jobs: honest_ids.len(),
        honest_units_accepted: units_accepted,
        outputs_downloaded: downloaded,
        honest_error_count,
        honest_errors,
        ..SoakReport::default()
    };
    finality(&mut report, observed, t0, t1, options.max_gap);
    let mut latencies = latencies;
    report.transfer_p50_ms = percentile(&mut latencies, 0.5);
    report.transfer_p99_ms = percentile(&mut latencies, 0.99);
    report.transfer_max_ms = latencies.last().copied().unwrap_or(f64::NAN);
    let mut job_ms = job_ms;
    report.job_p50_ms = percentile(&mut job_ms, 0.5);
    report.job_max_ms = job_ms.last().copied().unwrap_or(f64::NAN);
    if report.transfers_finalized < report.transfers {
        report.failures.push(format!(
            "{} of {} honest transfers did not finalize within {} s",
            report.transfers - report.transfers_finalized,
            report.transfers,
            HONEST_TIMEOUT.as_secs()
        ));
    }
    // Every unit of every honest job accepted and downloaded.
    let units = HONEST_JOB_UNITS as usize * report.honest_jobs;
    if report.honest_jobs == 0
        || honest_finished < report.honest_jobs
        || report.honest_units_accepted < units
        || report.outputs_downloaded < units
    {
        report.failures.push(format!(
            "{} honest jobs, {honest_finished} finished within {} s, {} of {units} units \
             accepted, {} outputs downloaded",
            report.honest_jobs,
            HONEST_TIMEOUT.as_secs(),
            report.honest_units_accepted,
            report.outputs_downloaded
        ));
    }

    progress("attacks over: reading the attackers' receipts");
    let mut all_jobs = honest_ids;
    let admitted = tally
        .admitted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for (attack, hashes) in admitted {
        let (counts, jobs) = receipts(&client, &hashes).await?;
        report.receipts.insert(attack.to_string(), counts);
        all_jobs.extend(jobs);
    }
    progress("waiting for every job of the soak to finish");
    drain(&client, &all_jobs, options.drain_timeout, &mut report).await?;
    report.attacks = tally
        .answers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (attack, answers) in &report.attacks {
        // A node may refuse anything an attacker sends, but never fail on it or leave it
        // unanswered; and nothing malformed may be taken.
        let bad: Vec<String> = answers
            .iter()
            .filter(|(label, _)| {
                label.starts_with('5')
                    || label.as_str() == TIMED_OUT
                    || (attack.as_str() == ATTACKS[5]
                        && !label.starts_with('4')
                        && label.as_str() != CLOSED)
            })
            .map(|(label, n)| format!("{n} x {label}"))
            .collect();
        if !bad.is_empty() {
            report
                .failures
                .push(format!("{attack}: answered {}", bad.join(", ")));
        }
    }
    let balances_after = balances(network, known).await?;
    for (attack, role) in [
        (ATTACKS[0], ROLE_GAPPED),
        (ATTACKS[1], ROLE_FILLER),
        (ATTACKS[6], ROLE_HOSTILE),
        (ATTACKS[7], ROLE_UNMATCHABLE),
        (ATTACKS[8], ROLE_SQUATTER),
    ] {
        let lost: u128 = attack_accounts(role)
            .filter_map(|a| {
                let before = balances_before.get(&a)?;
                let after = balances_after.get(&a)?;
                Some(before.0.saturating_sub(after.0))
            })
            .sum();
        report
            .attacker_cost
            .insert(attack.to_string(), lost.to_string());
    }
    let nonces = |role| async move {
        let mut sum = 0;
        for a in attack_accounts(role) {
            sum += read(network, bank::queries::account(&a))
                .await?
                .map_or(0, |a| a.nonce);
        }
        anyhow::Ok(sum)
    };
    report.gapped_executed = nonces(ROLE_GAPPED).await?;
    report.filler_executed = nonces(ROLE_FILLER).await?;
    if report.gapped_executed > 0 {
        report.failures.push(format!(
            "{} gapped transactions executed: their senders never sent nonce 0",
            report.gapped_executed
        ));
    }
    let supply_after = read_supply(network, known).await?;
    report.supply = supply_after.total.to_string();
    report.held = supply_after.held.to_string();
    if supply_after.total != supply_after.held || supply_before.total != supply_before.held {
        report.failures.push(format!(
            "supply not conserved: before the soak {} held of {}, after {} held of {}",
            supply_before.held, supply_before.total, supply_after.held, supply_after.total
        ));
    }
    validators_agree(network, &mut report).await;
    Ok(report)
}

/// Each honest account transfers to the next, waits until validator 0 finalized it, pauses
/// and goes on; a refused submission is retried with the same nonce.
async fn honest_transfers(
    options: &SoakOptions,
    urls: &[String],
    chain_id: &str,
    observed: &Observed,
    until: tokio::time::Instant,
) -> anyhow::Result<TransferResult> {
    let n = options.transfer_accounts as u64;
    let clients = urls
        .iter()
        .map(|u| Client::new(u))
        .collect::<Result<Vec<_>, _>>()?;
    let clients = &clients;
    let one = |i: u64| async move {
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        let mut sent = 0;
        let sender = key(ROLE_TRANSFER, i);
        let to = key(ROLE_TRANSFER, (i + 1) % n).public_key();
        let mut nonce = 0;
        while tokio::time::Instant::now() < until {
            // Each transfer goes to the next node: honest users are spread over them.
            let client = &clients[((i + nonce) % clients.len() as u64) as usize];
            let tx = sign_at(
                chain_id,
                &sender,
                nonce,
                FEE,
                Action::Transfer {
                    to: to.clone(),
                    amount: Amount::from_exo(1),
                },
            );
            let at = Instant::now();
            if let Err(err) = client.submit(&tx).await {
                errors.push(format!("transfer: {err}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            sent += 1;
            nonce += 1;
            let hash = tx.hash();
            loop {
                if let Some(done) = observed.finalized(&hash) {
                    latencies.push(done.saturating_duration_since(at).as_secs_f64() * 1e3);
                    break;
                }
                if at.elapsed() > HONEST_TIMEOUT {
                    // Its nonce is now in doubt: this account stops.
                    return (latencies, sent, errors);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(options.transfer_pause).await;
        }
        (latencies, sent, errors)
    };
    let all = futures::future::join_all((0..n).map(one)).await;
    let mut out: TransferResult = Default::default();
    for (l, s, e) in all {
        out.0.extend(l);
        out.1 += s;
        out.2.extend(e);
    }
    Ok(out)
}

/// One small `hello` job every [`SoakOptions::job_interval`] from the last node's API: waits
/// for it to finish and downloads each unit's outputs, checked against the accepted digest.
async fn honest_jobs(
    options: &SoakOptions,
    urls: &[String],
    setup: &Setup,
    until: tokio::time::Instant,
) -> anyhow::Result<JobResult> {
    let client = Client::new(&urls[urls.len() - 1])?;
    let requester = key(ROLE_REQUESTER, 0);
    let mut out: JobResult = Default::default();
    let mut pace = Pace::every(options.job_interval, until);
    let mut nonce = 1;
    while pace.tick().await.is_some() {
        let spec = job_spec(setup.hello, &requester, HONEST_JOB_UNITS);
        let tx = sign_at(
            &setup.chain_id,
            &requester,
            nonce,
            FEE,
            Action::SubmitJob(Box::new(spec)),
        );
        let at = Instant::now();
        let hash = match client.submit(&tx).await {
            Ok(hash) => hash,
            Err(err) => {
                out.4.push(format!("job: {err}"));
                continue;
            }
        };
        nonce += 1;
        let receipt = match client.wait_for_receipt(&hash, HONEST_TIMEOUT).await {
            Ok(receipt) => receipt,
            Err(err) => {
                out.4.push(format!("job receipt: {err}"));
                continue;
            }
        };
        let Some(id) = receipt.created("job") else {
            out.4
                .push(format!("an honest job was refused: {:?}", receipt.reason));
            continue;
        };
        out.0.push(id);
        let job = loop {
            // A failed read (a 429 under load) is retried like a job still running.
            match client.job(id).await {
                Ok(Some(job)) if job.is_finished() => break Some(job),
                Ok(_) => {}
                Err(err) => out.4.push(format!("job {id}: {err}")),
            }
            if at.elapsed() > HONEST_TIMEOUT {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let Some(job) = job else {
            out.4.push(format!(
                "job {id} did not finish within {} s",
                HONEST_TIMEOUT.as_secs()
            ));
            continue;
        };
        out.1.push(at.elapsed().as_secs_f64() * 1e3);
        for unit in &job.units {
            let Some(digest) = unit.accepted_digest else {
                out.4
                    .push(format!("job {id} unit {} ended {}", unit.unit, unit.state));
                continue;
            };
            out.2 += 1;
            // A node that has not got the outputs from its peers yet answers 404: the first
            // miss is kept as an honest error, and the download retried for a while.
            let mut tries = 0;
            let fetched = loop {
                tries += 1;
                match client.fetch_outputs(id, unit.unit, &digest).await {
                    Err(err) if tries < DOWNLOAD_TRIES => {
                        if tries == 1 {
                            out.4.push(format!("outputs of job {id}: {err}"));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    done => break done,
                }
            };
            match fetched {
                Ok(archive) if archive.outcome == "ok" => out.3 += 1,
                Ok(archive) => out.4.push(format!(
                    "job {id} unit {} outcome {}",
                    unit.unit, archive.outcome
                )),
                Err(err) => out.4.push(format!("outputs of job {id}, given up: {err}")),
            }
        }
    }
    Ok(out)
}

/// Submits `action`s from `sender` at `pace`, each at the account's next nonce (a refused one
/// is not counted as used), and keeps the admitted ones' hashes for their receipts.
async fn signed_stream(
    attacker: &Attacker<'_>,
    chain_id: &str,
    sender: &PrivateKey,
    first_nonce: u64,
    mut pace: Pace,
    mut action: impl FnMut(u64) -> Action,
) {
    let mut nonce = first_nonce;
    while let Some(i) = pace.tick().await {
        let tx = sign_at(chain_id, sender, nonce, FEE, action(i));
        if attacker.submit(i, &tx).await {
            attacker.tally.admitted(attacker.name, tx.hash());
            nonce += 1;
        }
    }
}

/// Hostile `probe` jobs: a stack overflow, a spin until the fuel or the wall-clock limit, and
/// two million lines of stdout.
async fn hostile_jobs(attacker: &Attacker<'_>, setup: &Setup, until: tokio::time::Instant) {
    let sender = key(ROLE_HOSTILE, 0);
    let spec = JobSpec {
        unit_args: vec!["recurse".into(), "spin".into(), "stdout 2000000".into()],
        requirements: Requirements::wasm(64, PROBE_FUEL_LIMIT),
        ..job_spec(setup.probe, &sender, 3)
    };
    let pace = Pace::every(PROBE_JOB_INTERVAL, until);
    job_stream(attacker, setup, &sender, 1, pace, spec).await;
}

/// Jobs nobody can run (one base unit per compute unit), one a second: 16 are open at once,
/// the rest are refused until the open ones expire.
async fn unmatchable_jobs(attacker: &Attacker<'_>, setup: &Setup, until: tokio::time::Instant) {
    let spec = JobSpec {
        max_price_per_unit: Amount(1),
        ..job_spec(setup.hello, &key(ROLE_REQUESTER, 0), 1)
    };
    let pace = Pace::new(UNMATCHABLE_PER_SEC, until);
    job_stream(attacker, setup, &key(ROLE_UNMATCHABLE, 0), 0, pace, spec).await;
}

/// `spec` submitted again and again from `sender` at `pace`.
async fn job_stream(
    attacker: &Attacker<'_>,
    setup: &Setup,
    sender: &PrivateKey,
    first_nonce: u64,
    pace: Pace,
    spec: JobSpec,
) {
    signed_stream(attacker, &setup.chain_id, sender, first_nonce, pace, |_| {
        Action::SubmitJob(Box::new(spec.clone()))
    })
    .await;
}

/// Offers with no slot, and offers that expire far beyond the longest lifetime.
async fn offer_squatting(attacker: &Attacker<'_>, chain_id: &str, until: tokio::time::Instant) {
    let sender = key(ROLE_SQUATTER, 0);
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let pace = Pace::new(OFFER_SQUAT_PER_SEC, until);
    signed_stream(attacker, chain_id, &sender, 1, pace, |i| {
        if i % 2 == 0 {
            Action::PostOffer {
                slots: 0,
                price_per_unit: ASK,
                expiry_secs: now_secs + 600,
            }
        } else {
            Action::PostOffer {
                slots: 1,
                price_per_unit: ASK,
                expiry_secs: now_secs + 100_000_000,
            }
        }
    })
    .await;
}

/// Transactions that skip their sender's next nonce, at ten times the honest fee.
async fn gapped_nonces(attacker: &Attacker<'_>, chain_id: &str, until: tokio::time::Instant) {
    let mut pace = Pace::new(GAPPED_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        let account = i % GAPPED_ACCOUNTS;
        let sender = key(ROLE_GAPPED, account);
        // Nonce 0 is never sent, so none of these can ever execute.
        let nonce = 1 + (i / GAPPED_ACCOUNTS) % GAPPED_SPAN;
        let to = key(ROLE_GAPPED, (account + 1) % GAPPED_ACCOUNTS).public_key();
        let tx = sign_at(
            chain_id,
            &sender,
            nonce,
            Amount(FEE.0 * 10),
            Action::Transfer {
                to,
                amount: Amount(1),
            },
        );
        attacker.submit(i, &tx).await;
    }
}

/// Executable minimum-fee transfers from a few accounts, each keeping its queue full.
async fn pool_filler(attacker: &Attacker<'_>, chain_id: &str, until: tokio::time::Instant) {
    let mut nonces = [0u64; FILLER_ACCOUNTS as usize];
    let mut pace = Pace::new(FILLER_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        let account = i % FILLER_ACCOUNTS;
        let tx = sign_at(
            chain_id,
            &key(ROLE_FILLER, account),
            nonces[account as usize],
            FEE,
            Action::Transfer {
                to: key(ROLE_FILLER, (account + 1) % FILLER_ACCOUNTS).public_key(),
                amount: Amount(1),
            },
        );
        if attacker.submit(i, &tx).await {
            nonces[account as usize] += 1;
        }
    }
}

/// One-byte ranges of the big blob, all over it, on every node.
async fn ranged_gets(attacker: &Attacker<'_>, blob: Hash32, until: tokio::time::Instant) {
    let path = format!("v1/blobs/{}", hex::encode(blob));
    let mut pace = Pace::new(RANGED_GET_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        let at = i.wrapping_mul(7_919) % BIG_BLOB_BYTES as u64;
        let request = attacker
            .http
            .get(attacker.url(i, &path))
            .header(reqwest::header::RANGE, format!("bytes={at}-{at}"));
        attacker.send(request).await;
    }
}

/// Whole `GET`s of the big blob, on every node (the first on each node but the uploader's
/// pulls it from a peer).
async fn whole_gets(attacker: &Attacker<'_>, blob: Hash32, until: tokio::time::Instant) {
    let path = format!("v1/blobs/{}", hex::encode(blob));
    let mut pace = Pace::new(WHOLE_GET_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        attacker
            .send(attacker.http.get(attacker.url(i, &path)))
            .await;
    }
}

/// `GET`s of blobs no node holds: each makes the node ask its peers.
async fn blob_misses(attacker: &Attacker<'_>, until: tokio::time::Instant) {
    let mut pace = Pace::new(BLOB_MISS_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        let missing = blake3::hash(&i.to_le_bytes());
        let path = format!("v1/blobs/{}", hex::encode(missing.as_bytes()));
        attacker
            .send(attacker.http.get(attacker.url(i, &path)))
            .await;
    }
}

/// A signed upload of `bytes` by `key` to node `i`.
fn signed_upload(
    attacker: &Attacker<'_>,
    i: u64,
    chain_id: &str,
    key: &PrivateKey,
    bytes: Vec<u8>,
) -> reqwest::RequestBuilder {
    let hash = exo_client::blob_hash(&bytes);
    let mut request = attacker
        .http
        .put(attacker.url(i, &format!("v1/blobs?hash={}", hex::encode(hash))));
    for (name, value) in wire::blob_upload_headers(chain_id, hash, key) {
        request = request.header(name, value);
    }
    request.body(bytes)
}

/// A funded account uploading distinct junk blobs, signed, to every node (H2): each node
/// stores them up to the account's quota and refuses the rest with 429 `quota_exceeded`; the
/// honest workers' outputs and requesters' inputs, under their own quotas, still go in.
async fn blob_fill_attack(attacker: &Attacker<'_>, chain_id: &str, until: tokio::time::Instant) {
    let filler = key(ROLE_BLOB_FILLER, 0);
    let mut pace = Pace::new(BLOB_FILL_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        let mut junk = vec![0u8; JUNK_BLOB_BYTES];
        junk[..8].copy_from_slice(&i.to_le_bytes());
        attacker
            .send(signed_upload(attacker, i, chain_id, &filler, junk))
            .await;
    }
}

/// A funded stranger registering its own archive as the outputs of the honest jobs' open
/// units, signed with its key as their first replicas (H3): before a verdict only the
/// replica's provider may register (403 `not_a_replica`), after it only the accepted archive
/// is kept, so the honest jobs' outputs stay downloadable.
async fn output_claims(attacker: &Attacker<'_>, chain_id: &str, until: tokio::time::Instant) {
    let stranger = key(ROLE_CLAIMER, 0);
    let junk = b"junk outputs".to_vec();
    let archive = exo_client::blob_hash(&junk);
    for i in 0..attacker.urls.len() as u64 {
        attacker
            .send(signed_upload(
                attacker,
                i,
                chain_id,
                &stranger,
                junk.clone(),
            ))
            .await;
    }
    // The honest requester's jobs, as anyone can list them, read again every few claims.
    let listing = format!(
        "v1/jobs?requester={}&height=0",
        address_to_hex(&key(ROLE_REQUESTER, 0).public_key())
    );
    let mut targets: Vec<(u64, u32)> = Vec::new();
    let mut pace = Pace::new(OUTPUT_CLAIM_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        if i % 10 == 0
            && let Some((200, body)) = attacker
                .send(attacker.http.get(attacker.url(i, &listing)))
                .await
            && let Ok(page) = serde_json::from_slice::<wire::JobPage>(&body)
        {
            targets = page
                .jobs
                .iter()
                .filter(|j| j.state == "open")
                .map(|j| (j.id, j.unit_count))
                .collect();
        }
        let Some(&(job, units)) = targets.get(i as usize % targets.len().max(1)) else {
            continue;
        };
        let (unit, replica) = ((i % u64::from(units.max(1))) as u32, (i % 2) as u32);
        let claim = wire::OutputsPut::signed(chain_id, job, unit, replica, archive, &stranger);
        let request = attacker
            .http
            .put(attacker.url(i, &format!("v1/outputs/{job}/{unit}")))
            .json(&claim);
        attacker.send(request).await;
    }
}

/// Requests that must all be refused with a 4xx: unsigned, forged, oversized, malformed.
async fn malformed_requests(attacker: &Attacker<'_>, chain_id: &str, until: tokio::time::Instant) {
    let stranger = key(ROLE_BLOB, 1);
    let mut valid = sign_at(
        chain_id,
        &key(ROLE_BLOB, 0),
        1_000,
        FEE,
        Action::Transfer {
            to: stranger.public_key(),
            amount: Amount(1),
        },
    );
    let other_chain = hex::encode(
        sign_at(
            "another-chain",
            &key(ROLE_BLOB, 0),
            0,
            FEE,
            Action::Transfer {
                to: stranger.public_key(),
                amount: Amount(1),
            },
        )
        .encode(),
    );
    // The same transaction under another sender's name: its signature no longer verifies.
    valid.tx.sender = stranger.public_key();
    let forged = hex::encode(valid.encode());
    let oversized = "a".repeat(exo_node::local::ApiLimits::default().max_body_bytes + 1);
    let junk_hash = hex::encode([7u8; 32]);
    let mut pace = Pace::new(MALFORMED_PER_SEC, until);
    while let Some(i) = pace.tick().await {
        let h = &attacker.http;
        let request = match i % 12 {
            0 => h.post(attacker.url(i, "v1/txs")).body("not json"),
            1 => h
                .post(attacker.url(i, "v1/txs"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(r#"{"tx":"zz"}"#),
            2 => h
                .post(attacker.url(i, "v1/txs"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(oversized.clone()),
            3 => h
                .post(attacker.url(i, "v1/txs"))
                .json(&wire::SubmitRequest { tx: forged.clone() }),
            4 => h
                .post(attacker.url(i, "v1/txs"))
                .json(&wire::SubmitRequest {
                    tx: other_chain.clone(),
                }),
            5 => h
                .put(attacker.url(i, &format!("v1/blobs?hash={junk_hash}")))
                .body(vec![0u8; 1024]),
            6 => h
                .put(attacker.url(i, &format!("v1/outputs/0/0?archive={junk_hash}")))
                .body(""),
            7 => h.get(attacker.url(i, "v1/jobs/not-a-number")),
            8 => h.get(attacker.url(i, "v1/blocks/99999999999999999999999")),
            9 => h.get(attacker.url(i, "v1/jobs?limit=1&limit=2")),
            10 => h.delete(attacker.url(i, "v1/status")),
            _ => h.get(attacker.url(i, "v1/no-such-route")),
        };
        attacker.send(request).await;
    }
}

/// Waits until every job of `ids` finished, then counts their units' states; a job still open
/// after `limit` is a stuck job.
async fn drain(
    client: &Client,
    ids: &[u64],
    limit: Duration,
    report: &mut SoakReport,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut open: Vec<u64> = ids.to_vec();
    while !open.is_empty() && start.elapsed() < limit {
        let mut still = Vec::new();
        for id in open {
            let finished = client
                .job_page(id, 0, Some(1))
                .await?
                .is_some_and(|j| j.is_finished());
            if !finished {
                still.push(id);
            }
        }
        open = still;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    report.jobs = ids.len();
    for id in ids {
        let Some(job) = client.job(*id).await? else {
            continue;
        };
        for unit in &job.units {
            *report.unit_states.entry(unit.state.clone()).or_default() += 1;
        }
    }
    if !open.is_empty() {
        report.failures.push(format!(
            "{} jobs still open {} s after the attacks stopped: {open:?}",
            open.len(),
            limit.as_secs()
        ));
    }
    Ok(())
}

/// Receipts of `hashes` on `client`'s node, counted by status and reason, and the jobs they
/// created. Read at 100 a second, within an address's budget beside the workers' reads.
async fn receipts(
    client: &Client,
    hashes: &[TxHash],
) -> anyhow::Result<(BTreeMap<String, u64>, Vec<u64>)> {
    let mut counts = BTreeMap::new();
    let mut jobs = Vec::new();
    for hash in hashes {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let receipt = client.receipt(hash).await?;
        jobs.extend(receipt.as_ref().and_then(|r| r.created("job")));
        let label = match receipt {
            Some(r) if r.status == wire::TxStatus::Ok => "ok".to_string(),
            Some(r) if r.status.is_final() => {
                r.reason.map_or_else(|| "rejected".into(), |why| why.code)
            }
            _ => "never included".to_string(),
        };
        *counts.entry(label).or_default() += 1;
    }
    Ok((counts, jobs))
}

/// Runs `attack` if it is `on`.
async fn gate(on: bool, attack: impl std::future::Future<Output = ()>) {
    if on {
        attack.await;
    }
}

fn finality(report: &mut SoakReport, observed: &Observed, t0: Instant, t1: Instant, max: Duration) {
    let blocks: Vec<Instant> = observed
        .blocks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .filter(|t| (t0..=t1).contains(t))
        .collect();
    let window = t1.saturating_duration_since(t0);
    report.blocks = blocks.len();
    report.blocks_per_sec = blocks.len() as f64 / window.as_secs_f64().max(1e-9);
    let mut edges = vec![t0];
    edges.extend(&blocks);
    edges.push(t1);
    let gap = edges
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or(window);
    report.max_gap_ms = gap.as_secs_f64() * 1e3;
    let seconds = window.as_secs().max(1);
    let covered = (0..seconds)
        .filter(|s| {
            let from = t0 + Duration::from_secs(*s);
            let to = from + Duration::from_secs(1);
            blocks.iter().any(|t| (from..to).contains(t))
        })
        .count();
    report.seconds_with_block = covered as f64 / seconds as f64;
    if gap > max {
        report.failures.push(format!(
            "{:.0} ms without a finalized block (at most {} ms allowed)",
            report.max_gap_ms,
            max.as_millis()
        ));
    }
}

/// Reads `query` from validator 0's finalized state.
async fn read<T: Record>(network: &LocalNetwork, query: Query<T>) -> anyhow::Result<Option<T>> {
    let bytes = network.validators[0]
        .state
        .get(&query.key)
        .await
        .map_err(|e| anyhow::anyhow!("state read: {e}"))?;
    query
        .decode(bytes.as_deref())
        .map_err(|e| anyhow::anyhow!("state decode: {e}"))
}

async fn balances(
    network: &LocalNetwork,
    known: &[Address],
) -> anyhow::Result<BTreeMap<Address, Amount>> {
    let mut out = BTreeMap::new();
    for a in known {
        let account = read(network, bank::queries::account(a)).await?;
        out.insert(a.clone(), account.unwrap_or_default().balance);
    }
    Ok(out)
}

/// The bank's supply and what the known balances and pots hold.
#[derive(PartialEq, Eq)]
struct SupplyCheck {
    total: u128,
    held: u128,
}

/// Every balance of a known account, every job's escrow, every provider's bond, every known
/// staker's bond and the pools, and the bank's supply. The state is read while the chain goes
/// on, so the figures count only when two reads in a row, each within one finalized height,
/// give the same height and figures.
async fn read_supply(network: &LocalNetwork, known: &[Address]) -> anyhow::Result<SupplyCheck> {
    let mut last: Option<(u64, SupplyCheck)> = None;
    for _ in 0..20 {
        let height = network.validators[0].events.status().finalized_height;
        let read_now = supply_once(network, known).await?;
        if network.validators[0].events.status().finalized_height != height {
            continue;
        }
        if let Some((h, previous)) = &last
            && *h == height
            && *previous == read_now
        {
            return Ok(read_now);
        }
        last = Some((height, read_now));
    }
    anyhow::bail!("the chain moved during every one of 20 reads of the balances")
}

async fn supply_once(network: &LocalNetwork, known: &[Address]) -> anyhow::Result<SupplyCheck> {
    let total = read(network, bank::queries::supply())
        .await?
        .unwrap_or_default()
        .total
        .0;
    let counters = read(network, market::queries::counters())
        .await?
        .unwrap_or_default();
    let mut pots = vec![
        bank::Pot::Insurance,
        bank::Pot::Treasury,
        bank::Pot::Rewards,
        bank::Pot::Payouts,
    ];
    pots.extend((0..counters.next_job).map(bank::Pot::JobEscrow));
    pots.extend((0..counters.next_provider).map(bank::Pot::ProviderBond));
    let mut held: u128 = 0;
    for a in known {
        if let Some(account) = read(network, bank::queries::account(a)).await? {
            held += account.balance.0;
        }
        if let Some(staker) = read(network, staking::queries::staker(a)).await? {
            pots.push(bank::Pot::StakeBond(staker.id));
        }
    }
    for pot in pots {
        if let Some(p) = read(network, bank::queries::pot(pot)).await? {
            held += p.0.0;
        }
    }
    Ok(SupplyCheck { total, held })
}

/// Every validator reaches one height and holds the same state root there.
async fn validators_agree(network: &LocalNetwork, report: &mut SoakReport) {
    let target = network.validators[0].events.status().finalized_height;
    report.final_height = target;
    let start = Instant::now();
    while network
        .validators
        .iter()
        .any(|v| v.events.status().finalized_height < target)
    {
        if start.elapsed() > Duration::from_secs(30) {
            let heights: Vec<u64> = network
                .validators
                .iter()
                .map(|v| v.events.status().finalized_height)
                .collect();
            report.failures.push(format!(
                "validators stopped finalizing: heights {heights:?}, validator 0 at {target}"
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut roots = Vec::new();
    for v in &network.validators {
        roots.push(v.blocks.by_height(target).await.map(|b| b.state_root));
    }
    if roots.iter().any(|r| r.is_none() || *r != roots[0]) {
        report.failures.push(format!(
            "the validators disagree on the state at height {target}"
        ));
    }
}

/// The one-minute load average (Linux), or NaN.
fn load_avg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
