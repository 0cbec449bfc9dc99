//! `exo bench chain`: finalized transfers per second and finality latency of a local network
//! of validators over loopback TCP, beside the machine's ceiling for signature verification.
//!
//! Transactions are signed before the clock starts and handed to the validators' mempools
//! directly, so the figures measure the chain (gossip, consensus, execution, storage), not the
//! HTTP front end.
//!
//! [`devnet_memory`] measures something else: the peak resident memory of a real devnet (one
//! `exo node` process per validator) under a light load through the HTTP API.

use crate::{
    devnet::{self, DevnetOptions, DevnetProcesses, peak_rss_mib},
    local::LocalNetwork,
    node::MetricsSource,
};
use anyhow::{Context, anyhow, bail};
use commonware_cryptography::{BatchEntry, BatchVerifier, Signer as _, ed25519};
use commonware_parallel::Sequential;
use exo_client::{Client, keyfile};
use exo_ledger::GenesisAccount;
use exo_types::{
    Action, Amount, PrivateKey, SignedTx, TX_NAMESPACE, TxHash, UnsignedTx, address_to_hex,
};
use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// What to measure.
#[derive(Clone, Debug)]
pub struct ChainBenchOptions {
    pub validators: usize,
    pub txs: usize,
    /// Transactions of the latency phase, sent one every `latency_interval`.
    pub latency_txs: usize,
    pub api_port: u16,
    pub p2p_port: u16,
}

impl Default for ChainBenchOptions {
    fn default() -> Self {
        Self {
            validators: 4,
            txs: 20_000,
            latency_txs: 200,
            api_port: 38_080,
            p2p_port: 39_000,
        }
    }
}

/// The figures, with their units in the names.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChainBenchReport {
    pub validators: usize,
    pub txs: usize,
    pub tx_per_sec: f64,
    pub finality_p50_ms: f64,
    pub finality_p99_ms: f64,
    pub verify_ceiling_per_sec: f64,
    pub blocks: u64,
    /// Transactions per non-empty block of the throughput phase.
    pub mean_block_txs: f64,
    /// Time between finalized blocks during the throughput phase.
    pub block_interval_ms: f64,
    /// Peak resident memory of the benchmark process (all validators in one process).
    pub peak_rss_mib: f64,
    /// Sum of the peak resident memory of a real devnet's validator processes, from
    /// [`devnet_memory`]; `None` when not measured.
    pub devnet_peak_rss_mib: Option<f64>,
}

const SENDERS: usize = 1_000;

/// Senders for `txs` transactions: enough that none has more queued than the mempool lets it.
fn senders_for(txs: usize) -> usize {
    txs.div_ceil(exo_chain::mempool::MAX_NONCE_AHEAD as usize)
        .max(SENDERS)
}

fn sender_key(i: usize) -> PrivateKey {
    PrivateKey::from_seed(0xbe_0000 + i as u64)
}

/// `count` transfers from the senders of `first_nonce`, the `n`th from sender `n % senders`.
fn sign_transfers(chain_id: &str, count: usize, first_nonce: &mut [u64]) -> Vec<SignedTx> {
    let sink = PrivateKey::from_seed(0xbe_ffff).public_key();
    let senders = first_nonce.len().max(1);
    (0..count)
        .map(|n| {
            let s = n % senders;
            let key = sender_key(s);
            let nonce = first_nonce[s];
            first_nonce[s] += 1;
            UnsignedTx {
                chain_id: chain_id.to_string(),
                sender: key.public_key(),
                nonce,
                fee: Amount(1_000),
                action: Action::Transfer {
                    to: sink.clone(),
                    amount: Amount(1),
                },
            }
            .sign(&key)
        })
        .collect()
}

/// Signatures one core verifies per second in batches of 1,000 (the ceiling for any chain
/// that checks every transaction's signature).
pub fn verify_ceiling_per_sec() -> f64 {
    let txs = sign_transfers("bench", 4_000, &mut vec![0; SENDERS]);
    let messages: Vec<bytes::Bytes> = txs
        .iter()
        .map(|t| commonware_codec::Encode::encode(&t.tx))
        .collect();
    let mut rng = rand::rng();
    let start = Instant::now();
    let mut verified = 0usize;
    while start.elapsed() < Duration::from_secs(2) {
        for chunk in (0..txs.len()).collect::<Vec<_>>().chunks(1_000) {
            let ok = ed25519::PublicKey::verify_batch(
                &mut rng,
                chunk,
                |_, i| BatchEntry {
                    namespace: TX_NAMESPACE,
                    message: &messages[*i],
                    public_key: &txs[*i].tx.sender,
                    signature: &txs[*i].signature,
                },
                &Sequential,
            );
            assert!(ok, "benchmark signatures verify");
            verified += chunk.len();
        }
    }
    verified as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs the benchmark. Progress goes to `progress`.
pub fn chain(
    options: &ChainBenchOptions,
    progress: impl Fn(&str),
) -> anyhow::Result<ChainBenchReport> {
    let senders = senders_for(options.txs + options.latency_txs);
    let dir = std::env::temp_dir().join(format!("exo-bench-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let balance = Amount::from_exo(1_000_000);
    let layout = devnet::init(&DevnetOptions {
        validators: options.validators,
        data_dir: dir.clone(),
        api_port: options.api_port,
        p2p_port: options.p2p_port,
        extra_accounts: (0..senders)
            .map(|i| GenesisAccount {
                address: address_to_hex(&sender_key(i).public_key()),
                balance,
            })
            .collect(),
    })?;
    progress("signing transactions");
    let mut nonces = vec![0u64; senders];
    let chain_id = layout.chain_id()?;
    let load = sign_transfers(&chain_id, options.txs, &mut nonces);
    // Each sender's account when the latency phase starts, once the load is finalized.
    let latency_start = nonces.clone();
    let latency_load = sign_transfers(&chain_id, options.latency_txs, &mut nonces);
    let account = |start: &[u64], n: usize| exo_ledger::Account {
        balance,
        nonce: start.get(n % senders).copied().unwrap_or_default(),
    };
    let load_start = vec![0u64; senders];

    // Each validator runs on its own runtime and thread, as separate processes would.
    let network = LocalNetwork::start(&layout, None)?;
    let finalized_at: Arc<Mutex<HashMap<TxHash, Instant>>> = Arc::default();
    let finalized_txs = Arc::new(AtomicUsize::new(0));
    let block_log: Arc<Mutex<Vec<(u64, usize, Instant)>>> = Arc::default();
    {
        let finalized_at = finalized_at.clone();
        let finalized_txs = finalized_txs.clone();
        let block_log = block_log.clone();
        network.validators[0].events.subscribe(move |block| {
            let now = Instant::now();
            let mut map = finalized_at.lock().unwrap_or_else(|p| p.into_inner());
            for hash in &block.tx_hashes {
                map.insert(*hash, now);
            }
            finalized_txs.fetch_add(block.tx_hashes.len(), Ordering::Relaxed);
            block_log.lock().unwrap_or_else(|p| p.into_inner()).push((
                block.height,
                block.tx_hashes.len(),
                now,
            ));
        });
    }
    let validators = &network.validators;
    let metrics = &network.metrics;
    network.wait_finalized(2, Duration::from_secs(60))?;

    progress("throughput phase");
    let start_height = validators[0].events.status().finalized_height;
    let start = Instant::now();
    for (n, tx) in load.iter().enumerate() {
        let target = &validators[n % validators.len()];
        if let Err(err) = target.submit(tx.clone(), &account(&load_start, n)) {
            return Err(anyhow!("mempool refused a benchmark transaction: {err}"));
        }
    }
    let hashes: Vec<TxHash> = load.iter().map(SignedTx::hash).collect();
    let limit = Duration::from_secs(120 + options.txs as u64 / 100);
    // Only benchmark transactions are ever submitted, so counting finalized transactions is
    // enough (and cheap: the harness shares the cores with the validators).
    loop {
        let done = finalized_txs.load(Ordering::Relaxed);
        if done >= hashes.len() {
            break;
        }
        if start.elapsed() > limit {
            return Err(anyhow!(
                "only {done} of {} transactions finalized",
                hashes.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let last = {
        let map = finalized_at.lock().unwrap_or_else(|p| p.into_inner());
        hashes.iter().filter_map(|h| map.get(h)).max().copied()
    }
    .unwrap_or_else(Instant::now);
    let tx_per_sec = options.txs as f64 / last.duration_since(start).as_secs_f64();
    let end_height = validators[0].events.status().finalized_height;
    let blocks = end_height - start_height;
    let phase: Vec<(u64, usize, Instant)> = block_log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(h, _, _)| *h > start_height && *h <= end_height)
        .copied()
        .collect();
    let full: Vec<usize> = phase.iter().map(|b| b.1).filter(|n| *n > 0).collect();
    let mean_block_txs = full.iter().sum::<usize>() as f64 / full.len().max(1) as f64;
    let block_interval_ms = match (phase.first(), phase.last()) {
        (Some(first), Some(last)) if phase.len() > 1 => {
            last.2.duration_since(first.2).as_secs_f64() * 1e3 / (phase.len() - 1) as f64
        }
        _ => f64::NAN,
    };
    if let Some(dir) = std::env::var_os("EXO_BENCH_TRACE") {
        write_trace(Path::new(&dir), start, &phase, metrics)?;
    }

    progress("latency phase");
    let mut sent = Vec::with_capacity(latency_load.len());
    for (n, tx) in latency_load.iter().enumerate() {
        let at = Instant::now();
        validators[n % validators.len()]
            .submit(tx.clone(), &account(&latency_start, n))
            .map_err(|e| anyhow!("mempool refused a benchmark transaction: {e}"))?;
        sent.push((tx.hash(), at));
        std::thread::sleep(Duration::from_millis(10));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies_ms = loop {
        let map = finalized_at.lock().unwrap_or_else(|p| p.into_inner());
        let lat: Vec<f64> = sent
            .iter()
            .filter_map(|(h, at)| {
                map.get(h)
                    .map(|f| f.duration_since(*at).as_secs_f64() * 1e3)
            })
            .collect();
        if lat.len() == sent.len() || Instant::now() > deadline {
            break lat;
        }
        drop(map);
        std::thread::sleep(Duration::from_millis(20));
    };
    latencies_ms.sort_by(f64::total_cmp);
    let peak_rss_mib = peak_rss_mib(std::process::id()).unwrap_or(f64::NAN);
    let _ = network.stop();
    let _ = std::fs::remove_dir_all(&dir);
    progress("signature verification ceiling");
    Ok(ChainBenchReport {
        validators: options.validators,
        txs: options.txs,
        tx_per_sec,
        finality_p50_ms: percentile(&latencies_ms, 0.5),
        finality_p99_ms: percentile(&latencies_ms, 0.99),
        verify_ceiling_per_sec: verify_ceiling_per_sec(),
        blocks,
        mean_block_txs,
        block_interval_ms,
        peak_rss_mib,
        devnet_peak_rss_mib: None,
    })
}

/// With `EXO_BENCH_TRACE=DIR`: the throughput phase's finalized blocks (`blocks.csv`: height,
/// transactions, milliseconds since the phase started) and each validator's metrics at its end
/// (`metrics-<i>.txt`), to see where the time goes.
fn write_trace(
    dir: &Path,
    start: Instant,
    blocks: &[(u64, usize, Instant)],
    metrics: &[MetricsSource],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut csv = String::from("height,txs,ms\n");
    for (height, txs, at) in blocks {
        let ms = at.duration_since(start).as_secs_f64() * 1e3;
        csv.push_str(&format!("{height},{txs},{ms:.1}\n"));
    }
    std::fs::write(dir.join("blocks.csv"), csv)?;
    for (i, source) in metrics.iter().enumerate() {
        std::fs::write(dir.join(format!("metrics-{i}.txt")), source.render())?;
    }
    Ok(())
}

/// How to load the devnet whose memory is measured.
#[derive(Clone, Debug)]
pub struct DevnetMemoryOptions {
    pub validators: usize,
    pub api_port: u16,
    pub p2p_port: u16,
    /// How long transfers are sent.
    pub load: Duration,
    /// Transfers sent per second, spread over the validators' APIs.
    pub tx_per_sec: u32,
}

impl Default for DevnetMemoryOptions {
    fn default() -> Self {
        Self {
            validators: 4,
            api_port: 38_180,
            p2p_port: 39_100,
            load: Duration::from_secs(15),
            tx_per_sec: 30,
        }
    }
}

/// Peak memory of a devnet's validator processes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DevnetMemoryReport {
    pub validators: usize,
    /// Transfers sent (and finalized) during the load.
    pub transfers: u64,
    pub finalized_height: u64,
    /// `VmHWM` of each validator process, in MiB.
    pub per_validator_mib: Vec<f64>,
    /// Their sum: what the devnet needs at its peak.
    pub total_mib: f64,
}

/// Starts a devnet of `exe node` processes in a temporary directory, sends transfers from the
/// faucet to new accounts through the validators' APIs for `options.load`, waits until the
/// last is finalized and sums the processes' peak resident memory (Linux `VmHWM`).
pub fn devnet_memory(
    exe: &Path,
    options: &DevnetMemoryOptions,
    progress: impl Fn(&str),
) -> anyhow::Result<DevnetMemoryReport> {
    let dir = std::env::temp_dir().join(format!("exo-bench-devnet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let layout = devnet::init(&DevnetOptions {
        validators: options.validators,
        data_dir: dir.clone(),
        api_port: options.api_port,
        p2p_port: options.p2p_port,
        extra_accounts: Vec::new(),
    })?;
    progress("starting a devnet of validator processes");
    let mut processes = DevnetProcesses::spawn(exe, &layout)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let load = runtime.block_on(drive_transfers(&layout, &mut processes, options, &progress));
    let per_validator_mib: Vec<f64> = processes
        .pids()
        .into_iter()
        .map(|pid| peak_rss_mib(pid).unwrap_or(f64::NAN))
        .collect();
    processes.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let (transfers, finalized_height) = load?;
    Ok(DevnetMemoryReport {
        validators: options.validators,
        transfers,
        finalized_height,
        total_mib: per_validator_mib.iter().sum(),
        per_validator_mib,
    })
}

/// Sends transfers at the configured rate; returns how many and the final height.
async fn drive_transfers(
    layout: &devnet::DevnetLayout,
    processes: &mut DevnetProcesses,
    options: &DevnetMemoryOptions,
    progress: &impl Fn(&str),
) -> anyhow::Result<(u64, u64)> {
    let mut alive = || match processes.exited().first() {
        Some((i, status)) => bail!(
            "validator {i} exited ({status}); see {}",
            layout.log_path(*i).display()
        ),
        None => Ok(()),
    };
    devnet::wait_for_height(&layout.api_urls, 1, Duration::from_secs(120), &mut alive).await?;
    progress("sending transfers through the API");
    let clients = layout
        .api_urls
        .iter()
        .map(|url| Client::new(url))
        .collect::<Result<Vec<_>, _>>()?;
    let faucet = keyfile::read(&layout.faucet_key)?;
    let status = clients[0].status().await?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.tx_per_sec.max(1)));
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut last = None;
    while start.elapsed() < options.load {
        let tx = UnsignedTx {
            chain_id: status.chain_id.clone(),
            sender: faucet.public_key(),
            nonce: sent,
            fee: status.min_fee,
            action: Action::Transfer {
                to: PrivateKey::from_seed(0xde_0000 + sent).public_key(),
                amount: Amount::from_exo(1),
            },
        }
        .sign(&faucet);
        let client = &clients[sent as usize % clients.len()];
        last = Some(
            client
                .submit(&tx)
                .await
                .with_context(|| format!("{} refused transfer {sent}", client.url()))?,
        );
        sent += 1;
        alive()?;
        tokio::time::sleep_until(start + interval * sent as u32).await;
    }
    if let Some(hash) = last {
        clients[0]
            .wait_for_receipt(&hash, Duration::from_secs(60))
            .await?;
    }
    let height = clients[0].status().await?.finalized_height;
    Ok((sent, height))
}
