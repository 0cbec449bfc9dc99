//! Workers against a node: the real ledger in memory (`exo_api::testing::MemoryNode`) behind the
//! real API routes, blob store included.
//!
//! Three workers run real units of the `hello` app in the sandbox at trust 2: one lies about
//! every result (and is the cheapest, so it gets the first replica of every unit), two are
//! honest. Every unit must be accepted with the sandbox's true digest, the liar slashed, the
//! honest paid, and the registered outputs must unpack to the accepted digest. A worker stopped
//! between its commitment and the reveal reveals after a restart. A blob that does not match
//! its hash is refused. A job of hostile units (a stack overflow, a unit that reaches the wall
//! clock, a flood of stdout, a missing input) costs honest workers nothing.

#![allow(clippy::unwrap_used)]

use axum::{
    Router,
    extract::{Path, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::IntoResponse,
    routing::get,
};
use commonware_cryptography::Signer;
use exo_api::{ApiConfig, ApiLimits, BlobStore, NodeView, testing::MemoryNode};
use exo_client::Client;
use exo_ledger::{
    Genesis, GenesisAccount, Params,
    modules::{
        market::{
            MarketParams, queries,
            records::{Job, JobState, Provider, ReplicaStatus, Unit, UnitState},
        },
        staking::{Units, units_key},
    },
    state::{Query, Record},
};
use exo_types::{
    Action, Amount, Hash32, InputRef, JobSpec, PrivateKey, UnsignedTx, address_to_hex,
    exo_market::Requirements,
};
use exo_worker::{Benchmark, Misbehave, WorkerConfig};
use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering::SeqCst},
    },
    time::Duration,
};

const CHAIN: &str = "exo-worker-e2e";
const INPUT: &[u8] = b"some input bytes";

type Blobs = Arc<Mutex<HashMap<Hash32, Vec<u8>>>>;

/// A finalized state record of the node.
async fn state<T: Record>(node: &MemoryNode, query: Query<T>) -> Option<T> {
    let value = node.state(query.key).await.unwrap();
    query.decode(value.as_deref()).unwrap()
}

fn key(seed: u64) -> PrivateKey {
    PrivateKey::from_seed(seed)
}

async fn send(client: &Client, signer: &PrivateKey, nonce: u64, action: Action) {
    let tx = UnsignedTx {
        chain_id: CHAIN.into(),
        sender: signer.public_key(),
        nonce,
        fee: Amount(1_000),
        action,
    }
    .sign(signer);
    let hash = client.submit(&tx).await.unwrap();
    let receipt = client
        .wait_for_receipt(&hash, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        receipt.status,
        exo_client::wire::TxStatus::Ok,
        "{receipt:?}"
    );
}

/// A node on loopback with its blob store, funded keys and a block every 100 ms; `hello`
/// published by `requester` and uploaded with an input; a compile cache warmed with `hello`
/// (a debug build compiles wasm slowly). The temporary directory holds the store and the cache.
struct Env {
    node: MemoryNode,
    client: Client,
    url: String,
    dir: tempfile::TempDir,
    input: Hash32,
    /// Outputs registrations still to be refused (429, then 503, alternately) before the
    /// node takes one: a node under load, as a worker sees it.
    refuse_outputs: Arc<AtomicU32>,
    /// Outputs registrations refused so far.
    refused_outputs: Arc<AtomicU32>,
    /// While `true`, outputs registrations wait: a node slow to store them.
    hold_outputs: Arc<tokio::sync::watch::Sender<bool>>,
    /// Outputs registrations whose client gave up while they waited.
    abandoned_outputs: Arc<AtomicU32>,
    /// While `true`, the node has no batch route for outputs (404), as one older than the
    /// worker; `batches_refused` counts the batches it refused.
    without_batches: Arc<std::sync::atomic::AtomicBool>,
    batches_refused: Arc<AtomicU32>,
    /// Who published `hello`: jobs name its app by module and developer.
    developer: exo_types::Address,
}

impl Env {
    async fn start(requester: &PrivateKey, providers: &[&PrivateKey]) -> Self {
        Self::start_with(requester, providers, Params::default()).await
    }

    /// [`Env::start`] with the ledger's parameters given.
    async fn start_with(requester: &PrivateKey, providers: &[&PrivateKey], params: Params) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "exo_worker=info".into()))
            .with_test_writer()
            .try_init();
        let validator = key(99);
        let mut accounts = vec![GenesisAccount {
            address: address_to_hex(&requester.public_key()),
            balance: Amount::from_exo(1_000_000),
        }];
        for k in providers {
            accounts.push(GenesisAccount {
                address: address_to_hex(&k.public_key()),
                balance: Amount::from_exo(100),
            });
        }
        let genesis = Genesis {
            chain_id: CHAIN.into(),
            params,
            accounts,
            validators: vec![address_to_hex(&validator.public_key())],
        };
        let node = MemoryNode::new(genesis, validator.public_key());
        let dir = tempfile::tempdir().unwrap();
        let config = ApiConfig {
            limits: ApiLimits {
                rate_per_sec: 0,
                ..ApiLimits::default()
            },
            blobs: Some(BlobStore::open(dir.path().join("store"), 1 << 30).unwrap()),
            ..ApiConfig::default()
        };
        let refuse_outputs = Arc::new(AtomicU32::new(0));
        let refused_outputs = Arc::new(AtomicU32::new(0));
        let hold_outputs = Arc::new(tokio::sync::watch::Sender::new(false));
        let (refuse, refused) = (refuse_outputs.clone(), refused_outputs.clone());
        let abandoned_outputs = Arc::new(AtomicU32::new(0));
        let (hold, abandoned) = (hold_outputs.clone(), abandoned_outputs.clone());
        let without_batches = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let batches_refused = Arc::new(AtomicU32::new(0));
        let (older, batches) = (without_batches.clone(), batches_refused.clone());
        let routes = exo_api::router_with(node.clone(), config).layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let (refuse, refused) = (refuse.clone(), refused.clone());
                let mut held = hold.subscribe();
                let abandoned = abandoned.clone();
                let (older, batches) = (older.clone(), batches.clone());
                async move {
                    if older.load(SeqCst) && request.uri().path() == "/v1/outputs/batch" {
                        batches.fetch_add(1, SeqCst);
                        let body =
                            serde_json::json!({ "error": "not_found", "message": "no route" });
                        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
                    }
                    // Uploads of outputs, one by one or in batches.
                    let outputs = matches!(*request.method(), Method::PUT | Method::POST)
                        && request.uri().path().starts_with("/v1/outputs/");
                    if outputs {
                        // Dropped with the request if its client gives up while it waits.
                        let waiting = CountOnDrop(Some(abandoned));
                        let _ = held.wait_for(|held| !held).await;
                        waiting.disarm();
                    }
                    let take = |n: u32| n.checked_sub(1);
                    if outputs && refuse.fetch_update(SeqCst, SeqCst, take).is_ok() {
                        let n = refused.fetch_add(1, SeqCst);
                        let (status, code) = if n % 2 == 0 {
                            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                        } else {
                            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                        };
                        let body = serde_json::json!({ "error": code, "message": "not now" });
                        return (status, axum::Json(body)).into_response();
                    }
                    next.run(request).await
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                routes.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        tokio::spawn(node.clone().run(Duration::from_millis(100)));
        let client = Client::new(&url).unwrap();
        let wasm = exo_apps::HELLO_WASM;
        let app = client.put_blob(wasm.to_vec(), requester).await.unwrap();
        let input = client.put_blob(INPUT.to_vec(), requester).await.unwrap();
        send(
            &client,
            requester,
            0,
            Action::PublishApp {
                module_hash: app,
                name: "hello".into(),
                version: "1".into(),
                royalty_per_unit: Amount(0),
            },
        )
        .await;
        let cache = dir.path().join("compiled");
        let warm = cache.clone();
        tokio::task::spawn_blocking(move || {
            let mut config = exo_exec::SandboxConfig::new(warm);
            config.max_concurrent_units = 5;
            exo_exec::Sandbox::new(config)
                .unwrap()
                .prepare(wasm)
                .unwrap();
        })
        .await
        .unwrap();
        Self {
            node,
            client,
            url,
            dir,
            input,
            refuse_outputs,
            refused_outputs,
            hold_outputs,
            abandoned_outputs,
            without_batches,
            batches_refused,
            developer: requester.public_key(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("compiled")
    }

    /// A job of `units` units of `hello` at trust `trust`, each with its own arguments.
    fn job(&self, units: u32, trust: u8) -> JobSpec {
        JobSpec {
            app: *blake3::hash(exo_apps::HELLO_WASM).as_bytes(),
            app_developer: self.developer.clone(),
            inputs: vec![InputRef {
                name: "data.txt".into(),
                hash: self.input,
                size: INPUT.len() as u64,
            }],
            unit_args: (0..units).map(|u| format!("tile {u}")).collect(),
            units,
            requirements: Requirements::wasm(64, 1_000_000_000),
            max_price_per_unit: Amount::from_exo(5),
            trust,
        }
    }

    /// A worker on `key` with its data in `data`, stopped by sending on the returned channel.
    fn worker(
        &self,
        key: &PrivateKey,
        data: &FsPath,
        tweak: impl FnOnce(&mut WorkerConfig),
    ) -> Worker {
        let mut cfg = WorkerConfig::new(self.url.clone(), key.clone(), data);
        cfg.slots = 4;
        cfg.benchmark = Some(Benchmark {
            fuel_per_second: 1_000_000_000,
            cores: 2,
            memory_mib: 4_096,
            gpu: None,
        });
        cfg.poll_interval = Duration::from_millis(200);
        cfg.compile_cache = Some(self.cache());
        tweak(&mut cfg);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(exo_worker::run(cfg, async move {
            let _ = stopped.await;
        }));
        (handle, stop)
    }

    /// Waits until `key` registered and posted an offer (two transactions).
    async fn offering(&self, key: &PrivateKey) {
        wait_until("a worker registers and offers", || async {
            self.client.account(&key.public_key()).await.unwrap().nonce >= 2
        })
        .await;
    }

    /// Waits until job `job` is no longer open.
    async fn done(&self, job: u64) {
        wait_until("the job is done", || async {
            state::<Job>(&self.node, queries::job(job))
                .await
                .is_some_and(|j| j.state != JobState::Open)
        })
        .await;
    }

    /// Uploads and publishes the `probe` app from `requester` (with its account's `nonce`) and
    /// warms the compile cache with it; returns its module hash.
    async fn publish_probe(&self, requester: &PrivateKey, nonce: u64) -> Hash32 {
        let probe = self
            .client
            .put_blob(exo_apps::PROBE_WASM.to_vec(), requester)
            .await
            .unwrap();
        send(
            &self.client,
            requester,
            nonce,
            Action::PublishApp {
                module_hash: probe,
                name: "probe".into(),
                version: "1".into(),
                royalty_per_unit: Amount(0),
            },
        )
        .await;
        let warm = self.cache();
        tokio::task::spawn_blocking(move || {
            exo_exec::Sandbox::new(exo_exec::SandboxConfig::new(warm))
                .unwrap()
                .prepare(exo_apps::PROBE_WASM)
                .unwrap();
        })
        .await
        .unwrap();
        probe
    }

    async fn provider(&self, key: &PrivateKey) -> Provider {
        let id = self
            .client
            .provider_of(&key.public_key())
            .await
            .unwrap()
            .unwrap();
        state(&self.node, queries::provider(id)).await.unwrap()
    }
}

type Worker = (
    tokio::task::JoinHandle<Result<(), exo_worker::WorkerError>>,
    tokio::sync::oneshot::Sender<()>,
);

/// Stops `workers` and checks each ended cleanly.
async fn stop_all(workers: Vec<Worker>) {
    for (handle, stop) in workers {
        stop.send(()).unwrap();
        handle.await.unwrap().unwrap();
    }
}

/// Adds one to its counter when dropped, unless disarmed.
struct CountOnDrop(Option<Arc<AtomicU32>>);

impl CountOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        if let Some(counter) = self.0.take() {
            counter.fetch_add(1, SeqCst);
        }
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_run_prove_and_get_paid_and_a_liar_is_caught() {
    let requester = key(1);
    let liar = key(10);
    // Four honest workers: a dispute with the liar is won by a margin of two votes, and
    // replicas dealt in one block count as one. When the liar is the hidden audit of a unit
    // an honest pair holds, the dispute ties one against one and needs two deciders besides
    // the pair.
    let honest = [key(11), key(12), key(13), key(14)];
    let providers: Vec<&PrivateKey> = std::iter::once(&liar).chain(honest.iter()).collect();
    let env = Env::start(&requester, &providers).await;
    let dirs: Vec<tempfile::TempDir> = (0..providers.len())
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    // The liar asks the lowest price, so it gets the first replica of every unit it can take.
    let mut workers = vec![env.worker(&liar, dirs[0].path(), |c| {
        c.misbehave = Some(Misbehave::WrongResult);
        c.price_per_unit = Amount::from_exo(1);
    })];
    for (i, k) in honest.iter().enumerate() {
        workers.push(env.worker(k, dirs[i + 1].path(), |c| {
            c.price_per_unit = Amount::from_exo(2);
        }));
    }
    for k in std::iter::once(&liar).chain(honest.iter()) {
        env.offering(k).await;
    }
    let units = 3u32;
    send(
        &env.client,
        &requester,
        1,
        Action::SubmitJob(Box::new(env.job(units, 2))),
    )
    .await;
    env.done(0).await;
    stop_all(workers).await;

    let job: Job = state(&env.node, queries::job(0)).await.unwrap();
    assert_eq!(job.accepted, units, "{job:?}");
    let liar_provider = env.provider(&liar).await;
    assert_eq!(liar_provider.valid, 0, "{liar_provider:?}");
    // Caught on the first unit it shares with an honest worker; below the matching floor
    // after that, so it may not see every unit (one more may already be in hand).
    assert!(
        (1..=u64::from(units)).contains(&liar_provider.invalid),
        "{liar_provider:?}"
    );
    assert!(liar_provider.bond < Amount::from_exo(10));
    for u in 0..units {
        let unit: Unit = state(&env.node, queries::unit(0, u)).await.unwrap();
        assert_eq!(unit.state, UnitState::Accepted);
        let (digest, _fuel) = unit.accepted.unwrap();
        // The registered outputs unpack to the accepted digest.
        let archive = env.client.fetch_outputs(0, u, &digest).await.unwrap();
        assert_eq!(archive.outcome, "ok");
        let (_, text) = archive
            .files
            .iter()
            .find(|(p, _)| p == "hello.txt")
            .unwrap();
        let text = String::from_utf8(text.clone()).unwrap();
        assert!(text.contains(&format!("unit={u}")), "{text}");
        assert!(text.contains(&format!("args=tile {u}")), "{text}");
        assert!(text.contains("input data.txt 16"), "{text}");
    }
    // Every accepted unit was confirmed by at least two honest workers, none of them punished.
    let mut confirmed = 0;
    for k in &honest {
        let p = env.provider(k).await;
        assert_eq!((p.invalid, p.missed), (0, 0), "{p:?}");
        assert!(p.valid <= u64::from(units), "{p:?}");
        confirmed += p.valid;
        if p.valid > 0 {
            let balance = env.client.account(&k.public_key()).await.unwrap().balance;
            // Paid for its units, more than its fees.
            assert!(
                balance.0 + p.bond.0 > Amount::from_exo(100).0,
                "honest worker not paid: {balance}"
            );
        }
    }
    assert!(
        confirmed >= 2 * u64::from(units),
        "{confirmed} confirmations"
    );
}

/// A worker stopped between its commitment and the opening of reveals reveals after a restart,
/// from the sealed result it kept on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_worker_reveals_what_it_committed() {
    let requester = key(1);
    let (a, b) = (key(21), key(22));
    let env = Env::start(&requester, &[&a, &b]).await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Only A runs: it takes replica 0 and commits; replica 1 waits for another provider, so
    // reveals stay closed.
    let (worker_a, stop_a) = env.worker(&a, dir_a.path(), |_| {});
    env.offering(&a).await;
    send(
        &env.client,
        &requester,
        1,
        Action::SubmitJob(Box::new(env.job(1, 2))),
    )
    .await;
    wait_until("A commits", || async {
        state::<Unit>(&env.node, queries::unit(0, 0))
            .await
            .is_some_and(|u| {
                u.replicas
                    .iter()
                    .any(|r| r.status == ReplicaStatus::Committed)
            })
    })
    .await;
    stop_a.send(()).unwrap();
    worker_a.await.unwrap().unwrap();
    let sealed = std::fs::read_to_string(dir_a.path().join("state.json")).unwrap();
    assert!(sealed.contains("\"salt\""), "{sealed}");

    // B takes replica 1 and commits: reveals open. A comes back and reveals.
    let (worker_b, stop_b) = env.worker(&b, dir_b.path(), |_| {});
    let (worker_a, stop_a) = env.worker(&a, dir_a.path(), |_| {});
    wait_until("the unit is accepted", || async {
        state::<Unit>(&env.node, queries::unit(0, 0))
            .await
            .is_some_and(|u| u.state == UnitState::Accepted)
    })
    .await;
    let unit: Unit = state(&env.node, queries::unit(0, 0)).await.unwrap();
    assert_eq!(unit.replicas.len(), 2, "{unit:?}");
    for r in &unit.replicas {
        assert_eq!(r.status, ReplicaStatus::Agreed, "{unit:?}");
    }
    for (handle, stop) in [(worker_a, stop_a), (worker_b, stop_b)] {
        stop.send(()).unwrap();
        handle.await.unwrap().unwrap();
    }
}

/// H8: a node that answers 429 or 503 to a worker's outputs registration has not stored
/// them. The worker keeps the archive, retries with a backoff, commits only once the node
/// confirmed it, and the requester downloads the outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_keeps_its_archive_until_the_node_confirms_it() {
    let requester = key(1);
    // Two providers, so that a hidden audit drawn for the unit finds its second replica.
    let providers = [key(31), key(32)];
    let env = Env::start(&requester, &[&providers[0], &providers[1]]).await;
    env.refuse_outputs.store(4, SeqCst);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut workers = Vec::new();
    for (k, dir) in providers.iter().zip(&dirs) {
        workers.push(env.worker(k, dir.path(), |_| {}));
        env.offering(k).await;
    }
    send(
        &env.client,
        &requester,
        1,
        Action::SubmitJob(Box::new(env.job(1, 1))),
    )
    .await;
    wait_until("the unit is accepted", || async {
        state::<Unit>(&env.node, queries::unit(0, 0))
            .await
            .is_some_and(|u| u.state == UnitState::Accepted)
    })
    .await;
    for (worker, stop) in workers {
        stop.send(()).unwrap();
        worker.await.unwrap().unwrap();
    }
    let unit: Unit = state(&env.node, queries::unit(0, 0)).await.unwrap();
    let (digest, _) = unit.accepted.unwrap();
    let archive = env.client.fetch_outputs(0, 0, &digest).await.unwrap();
    assert_eq!(archive.result_digest(), digest);
    assert_eq!(env.refused_outputs.load(SeqCst), 4);
}

/// A node older than the worker has no batch route for outputs (404): the worker uploads the
/// same archives one by one instead, the units are accepted and the requester gets the
/// outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_uploads_one_by_one_to_a_node_without_the_batch_route() {
    let requester = key(1);
    let providers = [key(51), key(52)];
    let env = Env::start(&requester, &[&providers[0], &providers[1]]).await;
    env.without_batches.store(true, SeqCst);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut workers = Vec::new();
    for (k, dir) in providers.iter().zip(&dirs) {
        workers.push(env.worker(k, dir.path(), |_| {}));
        env.offering(k).await;
    }
    let units = 3;
    send(
        &env.client,
        &requester,
        1,
        Action::SubmitJob(Box::new(env.job(units, 1))),
    )
    .await;
    wait_until("every unit is accepted", || async {
        let mut accepted = 0;
        for unit in 0..units {
            let unit = state::<Unit>(&env.node, queries::unit(0, unit)).await;
            accepted += u32::from(unit.is_some_and(|u| u.state == UnitState::Accepted));
        }
        accepted == units
    })
    .await;
    for (worker, stop) in workers {
        stop.send(()).unwrap();
        worker.await.unwrap().unwrap();
    }
    assert!(
        env.batches_refused.load(SeqCst) > 0,
        "the workers tried batches"
    );
    for unit in 0..units {
        let unit: Unit = state(&env.node, queries::unit(0, unit)).await.unwrap();
        let (digest, _) = unit.accepted.unwrap();
        let archive = env
            .client
            .fetch_outputs(0, unit.unit, &digest)
            .await
            .unwrap();
        assert_eq!(archive.result_digest(), digest);
    }
}

/// A node slow to store outputs never keeps a worker's runs from starting: while every outputs
/// registration waits, the workers still run each unit they were dealt, before any upload
/// gives up on the node (uploads go on beside the runs; a worker that awaited them would only
/// start its next unit after its upload timed out), and the units are accepted once the node
/// takes their outputs.
#[tokio::test]
async fn runs_keep_starting_while_the_node_is_slow_to_take_outputs() {
    let requester = key(1);
    let providers = [key(41), key(42)];
    // Newcomers may hold more than one unit of their probation at once: every unit is dealt
    // before any commits.
    let mut params = Params::default();
    params.market.probation_slots = 8;
    let env = Env::start_with(&requester, &[&providers[0], &providers[1]], params).await;
    env.hold_outputs.send_replace(true);
    let runs = Arc::new(AtomicU32::new(0));
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut workers = Vec::new();
    for (k, dir) in providers.iter().zip(&dirs) {
        let counted = runs.clone();
        workers.push(env.worker(k, dir.path(), move |cfg| {
            // One unit at a time, with room on the offer for all of them.
            cfg.slots = 1;
            cfg.offer_slots = Some(8);
            cfg.on_run = Some(Arc::new(move |_| {
                counted.fetch_add(1, SeqCst);
            }));
        }));
        env.offering(k).await;
    }
    let units = 6;
    send(
        &env.client,
        &requester,
        1,
        Action::SubmitJob(Box::new(env.job(units, 1))),
    )
    .await;
    wait_until("every unit runs while no outputs are taken", || async {
        runs.load(SeqCst) >= units
    })
    .await;
    assert_eq!(
        env.abandoned_outputs.load(SeqCst),
        0,
        "a run waited for an upload that gave up"
    );
    let job: Job = state(&env.node, queries::job(0)).await.unwrap();
    assert_eq!(
        job.accepted, 0,
        "nothing commits before its outputs are on the node"
    );
    env.hold_outputs.send_replace(false);
    wait_until("every unit is accepted", || async {
        state::<Job>(&env.node, queries::job(0))
            .await
            .is_some_and(|j| j.accepted == units)
    })
    .await;
    for (worker, stop) in workers {
        stop.send(()).unwrap();
        worker.await.unwrap().unwrap();
    }
}

/// A blob whose bytes do not hash to its name is refused and never reaches the cache; a good
/// one is kept.
#[tokio::test]
async fn blobs_that_do_not_match_their_hash_are_refused() {
    let good = b"good bytes".to_vec();
    let good_hash = *blake3::hash(&good).as_bytes();
    let bad_hash = *blake3::hash(b"what was asked for").as_bytes();
    let served: HashMap<Hash32, Vec<u8>> = HashMap::from([
        (good_hash, good.clone()),
        (bad_hash, b"something else".to_vec()),
    ]);
    let extra_blobs = Arc::new(Mutex::new(served));
    let routes = Router::new()
        .route(
            "/v1/blobs/{hash}",
            get(|State(b): State<Blobs>, Path(h): Path<String>| async move {
                let h: Hash32 = hex::decode(h).unwrap().try_into().unwrap();
                b.lock().unwrap().get(&h).cloned().unwrap_or_default()
            }),
        )
        .with_state(extra_blobs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let api = exo_worker::api::NodeApi::new(&url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("bad");
    let err = api
        .download_blob(&bad_hash, 1_000, &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, exo_worker::api::CallError::HashMismatch(_)),
        "{err}"
    );
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Over its declared size: refused too.
    let err = api.download_blob(&good_hash, 3, &dest).await.unwrap_err();
    assert!(
        matches!(err, exo_worker::api::CallError::TooLarge { .. }),
        "{err}"
    );
    let dest = dir.path().join("good");
    api.download_blob(&good_hash, 1_000, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), good);
}

/// Fair blame with real guests: the `probe` app overflows the stack, spins until the wall clock
/// stops it and floods stdout, and a `hello` job names an input nobody uploaded. The first two
/// are machine-dependent, so both workers report that they could not finish and the units fail
/// with the requester paying for the fuel burnt; the last two are results both workers share.
/// A third job of `probe` units reads metadata and listings, puts 2 GiB into `/out` in one
/// call, writes one byte at a time until its fuel runs out and reads a missing file: all
/// results both workers share. No honest provider loses bond or reputation, and the jobs'
/// accounts add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_units_cost_honest_workers_nothing_and_the_requester_the_fuel_burnt() {
    let requester = key(1);
    let honest = [key(41), key(42)];
    // Only two providers, both on every unit: an audit replica would have nobody to go to and
    // hold the unit a whole commit window before it lapses. No unit is audited (as good as: one
    // in a million, the least the genesis allows).
    let mut params = Params::default();
    params.market.audit_ppm = 1;
    let env = Env::start_with(&requester, &[&honest[0], &honest[1]], params).await;
    let probe = env.publish_probe(&requester, 1).await;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // The benchmark claims far more speed than the machine has, so that the wall-clock limit
    // (three times the predicted time plus ten seconds) comes long before the fuel runs out.
    let workers: Vec<_> = honest
        .iter()
        .zip(&dirs)
        .map(|(k, dir)| {
            env.worker(k, dir.path(), |c| {
                if let Some(b) = c.benchmark.as_mut() {
                    b.fuel_per_second = 1_000_000_000_000;
                }
            })
        })
        .collect();
    for k in &honest {
        env.offering(k).await;
    }
    let mut standing = Vec::new();
    for k in &honest {
        let p = env.provider(k).await;
        standing.push((p.bond, p.reputation));
    }
    let fuel_limit = 1_000_000_000_000;
    let hostile = JobSpec {
        app: probe,
        inputs: Vec::new(),
        unit_args: vec!["recurse".into(), "spin".into(), "stdout 2000000".into()],
        units: 3,
        requirements: Requirements::wasm(64, fuel_limit),
        ..env.job(3, 2)
    };
    send(
        &env.client,
        &requester,
        2,
        Action::SubmitJob(Box::new(hostile)),
    )
    .await;
    let mut missing = env.job(1, 2);
    missing.inputs[0].hash = [0x42; 32];
    send(
        &env.client,
        &requester,
        3,
        Action::SubmitJob(Box::new(missing)),
    )
    .await;
    // Guests that end deterministically however hostile: metadata and listings of the guest's
    // filesystem, 2 GiB in one call, one-byte writes until the fuel runs out, and a read of
    // an input that does not exist.
    let io_fuel_limit = 200_000_000;
    let io = JobSpec {
        app: probe,
        inputs: Vec::new(),
        unit_args: vec![
            "listing".into(),
            "bigwrite".into(),
            "slowio".into(),
            "missing".into(),
        ],
        units: 4,
        requirements: Requirements::wasm(64, io_fuel_limit),
        ..env.job(4, 2)
    };
    send(&env.client, &requester, 4, Action::SubmitJob(Box::new(io))).await;
    for job in 0..3 {
        env.done(job).await;
    }
    stop_all(workers).await;

    // The stack overflow and the spin: every replica reported, the unit failed, each reporter
    // was paid for the fuel burnt.
    for u in 0..2 {
        let unit: Unit = state(&env.node, queries::unit(0, u)).await.unwrap();
        assert_eq!(unit.state, UnitState::Failed, "{unit:?}");
        assert_eq!(unit.replicas.len(), 2, "{unit:?}");
        for r in &unit.replicas {
            assert_eq!(r.status, ReplicaStatus::Unfinished, "{unit:?}");
        }
    }
    // A timeout claims the budget (the machine was held for three times its predicted time);
    // a stack overflow the fuel counted at the trap.
    let spin: Unit = state(&env.node, queries::unit(0, 1)).await.unwrap();
    assert!(
        spin.replicas
            .iter()
            .all(|r| r.reveal.is_some_and(|(_, fuel)| fuel == fuel_limit)),
        "{spin:?}"
    );
    // The flood of stdout and the missing input are results both workers agree on.
    // (job, unit, outcome, a line its stdout holds).
    for (job, unit, outcome, says) in [
        (0, 2, "output_too_large:stdout", ""),
        (1, 0, "missing_input", ""),
        // The sandbox's fixed time, 2000-01-01, whatever the host's clock.
        (2, 0, "ok", "probe len=5 modified=Some(946684800000000000)"),
        (2, 1, "output_too_large:out", ""),
        (2, 2, "out_of_fuel", ""),
        (2, 3, "ok", "read /in/missing: NotFound"),
    ] {
        let unit: Unit = state(&env.node, queries::unit(job, unit)).await.unwrap();
        assert_eq!(unit.state, UnitState::Accepted, "{unit:?}");
        let (digest, _) = unit.accepted.unwrap();
        let archive = env
            .client
            .fetch_outputs(job, unit.unit, &digest)
            .await
            .unwrap();
        assert_eq!(archive.outcome, outcome);
        let stdout = String::from_utf8_lossy(&archive.stdout);
        assert!(stdout.contains(says), "{stdout}");
    }
    for (k, (bond, reputation)) in honest.iter().zip(standing) {
        let p = env.provider(k).await;
        assert_eq!(p.bond, bond, "{p:?}");
        assert!(p.reputation >= reputation, "{p:?}");
        assert_eq!((p.invalid, p.missed), (0, 0), "{p:?}");
    }
    let job: Job = state(&env.node, queries::job(0)).await.unwrap();
    let a = &job.accounts;
    assert!(a.paid_total() > Amount::ZERO, "{a:?}");
    // The one-byte writer burnt its whole budget, and the requester paid for it.
    let slow: Unit = state(&env.node, queries::unit(2, 2)).await.unwrap();
    assert_eq!(slow.accepted.map(|(_, fuel)| fuel), Some(io_fuel_limit));
    for job in 0..3 {
        let a = state::<Job>(&env.node, queries::job(job))
            .await
            .unwrap()
            .accounts;
        assert_eq!(
            a.escrowed.0,
            a.paid_total().0 + a.royalties.0 + a.fees.0 + a.refunded.0 + a.held.0,
            "{a:?}"
        );
    }
}

/// More units than fit the provider's declared memory, offered four run slots: each unit may
/// use 64 MiB of linear memory plus its output buffers (about 131 MiB in all), the provider
/// declares 300 MiB, so at most two run at once. The others wait in order and every unit
/// finishes and is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_units_than_fit_the_declared_memory_run_two_at_a_time_and_all_finish() {
    const DECLARED_MIB: u64 = 300;
    const UNITS: u32 = 6;
    let requester = key(1);
    let provider = key(51);
    // A newcomer is not on probation here: it may hold as many units as it offers. No unit is
    // audited (as good as: one in a million, the least the genesis allows): an audit replica
    // would wait a whole commit window for a second provider that this test does not have.
    let mut params = Params::default();
    params.market.probation_results = 0;
    params.market.audit_ppm = 1;
    let env = Env::start_with(&requester, &[&provider], params).await;
    let probe = env.publish_probe(&requester, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let runs: Arc<Mutex<Vec<(std::time::Instant, exo_worker::UnitRun)>>> = Arc::default();
    let seen = runs.clone();
    let worker = env.worker(&provider, dir.path(), |c| {
        c.slots = 4;
        if let Some(b) = c.benchmark.as_mut() {
            b.memory_mib = DECLARED_MIB;
        }
        c.on_run = Some(Arc::new(move |run: &exo_worker::UnitRun| {
            seen.lock()
                .unwrap()
                .push((std::time::Instant::now(), run.clone()));
        }));
    });
    env.offering(&provider).await;
    // Each unit spins until its fuel runs out, a few tenths of a second: long enough to overlap.
    let fuel_limit = 2_000_000_000;
    let job = JobSpec {
        app: probe,
        inputs: Vec::new(),
        unit_args: vec!["spin".into(); UNITS as usize],
        requirements: Requirements::wasm(64, fuel_limit),
        ..env.job(UNITS, 1)
    };
    send(&env.client, &requester, 2, Action::SubmitJob(Box::new(job))).await;
    env.done(0).await;
    stop_all(vec![worker]).await;

    let job: Job = state(&env.node, queries::job(0)).await.unwrap();
    assert_eq!(job.accepted, UNITS, "{job:?}");
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), UNITS as usize);
    let declared = DECLARED_MIB << 20;
    for (_, run) in &runs {
        assert_eq!(run.outcome, "out_of_fuel", "{run:?}");
        assert!(run.reserved_bytes <= declared, "{run:?}");
    }
    // Each run's span (from its handling's start to its end) as seen by the observer: at most
    // two overlap at any time.
    let spans: Vec<_> = runs
        .iter()
        .map(|(end, run)| (*end - Duration::from_micros(run.handled_us), *end))
        .collect();
    let most = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most, 2, "{spans:?}");
    let p = env.provider(&provider).await;
    assert_eq!((p.invalid, p.missed), (0, 0), "{p:?}");
}

/// A provider whose machine compiles too slowly (here a compile bound of one millisecond and a
/// cold cache) reports the unit as "could not finish" at once instead of holding it: another
/// provider is given the replica, the unit is accepted, and the slow provider keeps its bond
/// and reputation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compile_over_the_machines_bound_is_reported_and_replaced_without_penalty() {
    let requester = key(1);
    let slow = key(61);
    let honest = [key(62), key(63)];
    let env = Env::start(&requester, &[&slow, &honest[0], &honest[1]]).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // The slow provider asks the lowest price, so that it gets the first replica.
    let mut workers = vec![env.worker(&slow, dirs[0].path(), |c| {
        c.compile_cache = None;
        c.compile_timeout = Duration::from_millis(1);
        c.price_per_unit = Amount::from_exo(1);
    })];
    for (k, dir) in honest.iter().zip(&dirs[1..]) {
        workers.push(env.worker(k, dir.path(), |c| {
            c.price_per_unit = Amount::from_exo(2);
        }));
    }
    for k in std::iter::once(&slow).chain(&honest) {
        env.offering(k).await;
    }
    let before = env.provider(&slow).await;
    send(
        &env.client,
        &requester,
        1,
        Action::SubmitJob(Box::new(env.job(1, 2))),
    )
    .await;
    env.done(0).await;
    stop_all(workers).await;

    let unit: Unit = state(&env.node, queries::unit(0, 0)).await.unwrap();
    assert_eq!(unit.state, UnitState::Accepted, "{unit:?}");
    let reported = unit
        .replicas
        .iter()
        .find(|r| r.provider == before.id)
        .expect("the slow provider held a replica");
    assert_eq!(reported.status, ReplicaStatus::Excused, "{unit:?}");
    let after = env.provider(&slow).await;
    assert_eq!(
        (after.bond, after.reputation, after.invalid, after.missed),
        (before.bond, before.reputation, 0, 0),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_proves_its_free_slots_in_a_capacity_round_and_its_owner_earns_reward_units() {
    let requester = key(1);
    let provider = key(71);
    // Told to answer no round: its idle slots earn nothing.
    let abstainer = key(72);
    // A round opens at every block where none is open, for 3 seconds; a slot's share takes
    // 65,536 hashes, a few milliseconds.
    let params = Params {
        market: MarketParams {
            capacity_round_ppm: 1_000_000,
            capacity_window_secs: 3,
            capacity_hashes_per_slot: 1 << 16,
            ..MarketParams::default()
        },
        ..Params::default()
    };
    let env = Env::start_with(&requester, &[&provider, &abstainer], params).await;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let workers = vec![
        env.worker(&provider, dirs[0].path(), |_| {}),
        env.worker(&abstainer, dirs[1].path(), |c| c.capacity_threads = Some(0)),
    ];
    env.offering(&provider).await;
    env.offering(&abstainer).await;
    let (id, abstainer_id) = (
        env.provider(&provider).await.id,
        env.provider(&abstainer).await.id,
    );
    // Two rounds proven: the abstainer's offer could have answered at least one of them.
    wait_until("the worker proves its offer's free slots twice", || async {
        let view = env.client.provider_capacity(id).await.unwrap();
        view.offers
            .iter()
            .any(|o| o.proven_round.is_some_and(|r| r >= 2))
    })
    .await;
    stop_all(workers).await;

    let view = env.client.provider_capacity(id).await.unwrap();
    let proven = view.offers[0].proven_round.expect("a round proven");
    // Each proof earns its four free slots; a proof per round, while the worker ran.
    let units: Units = state(&env.node, Query::new(units_key(0, &provider.public_key())))
        .await
        .expect("reward units");
    assert!(
        units.0 >= 4 && units.0.is_multiple_of(4),
        "{units:?} {view:?}"
    );
    assert!(units.0 <= 4 * proven, "{units:?} {view:?}");
    let abstained = env.client.provider_capacity(abstainer_id).await.unwrap();
    assert!(
        abstained.offers.iter().all(|o| o.proven_round.is_none()),
        "{abstained:?}"
    );
    let none: Option<Units> =
        state(&env.node, Query::new(units_key(0, &abstainer.public_key()))).await;
    assert_eq!(none, None);
}
