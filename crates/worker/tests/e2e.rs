//! Workers against a node: the real ledger in memory (`exo_api::testing::MemoryNode`) behind the
//! real API routes, plus the worker routes that `exo-api` does not serve yet (provider lookup,
//! work list, unit replicas, blobs, outputs), implemented here over the same node state with
//! the JSON shapes the worker reads. When `exo-api` serves them, this file should drop its own
//! and use the node's.
//!
//! Three workers run real units of the `hello` app in the sandbox at trust 2: one lies about
//! every result (and is the cheapest, so it gets the first replica of every unit), two are
//! honest. Every unit must be accepted with the sandbox's true digest, the liar slashed, the
//! honest paid, and the uploaded outputs must unpack to the accepted digest.

#![allow(clippy::unwrap_used)]

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, put},
};
use commonware_cryptography::Signer;
use exo_api::{ApiLimits, NodeView, testing::MemoryNode};
use exo_client::Client;
use exo_ledger::{
    Genesis, GenesisAccount, Params, Tag,
    compute::{Job, JobState, Provider, Record, Unit, UnitState, WorkList},
    unit_key,
};
use exo_types::{
    Action, Amount, Hash32, InputRef, JobSpec, PrivateKey, UnsignedTx, address_from_hex,
    address_to_hex,
    exo_market::{Requirements, Runtime},
};
use exo_worker::{Benchmark, Misbehave, WorkerConfig};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

const CHAIN: &str = "exo-worker-e2e";

type Blobs = Arc<Mutex<HashMap<Hash32, Vec<u8>>>>;
type Outputs = Arc<Mutex<HashMap<(u64, u32), Vec<Vec<u8>>>>>;

#[derive(Clone)]
struct Extra {
    node: MemoryNode,
    blobs: Blobs,
    outputs: Outputs,
}

impl Extra {
    async fn get<T: Record>(&self, key: exo_ledger::Key) -> Option<T> {
        self.node
            .state(key)
            .await
            .unwrap()
            .map(|b| T::from_bytes(&b).unwrap())
    }
}

async fn provider_of(State(x): State<Extra>, Path(address): Path<String>) -> impl IntoResponse {
    let Some(address) = address_from_hex(&address) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "bad_address", "message": "bad"})),
        );
    };
    match x
        .node
        .state(Tag::ProviderOwner.key_of(&address))
        .await
        .unwrap()
    {
        Some(b) => {
            let id = u64::from_be_bytes(b.try_into().unwrap());
            (StatusCode::OK, Json(json!({ "id": id })))
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "message": "no provider"})),
        ),
    }
}

async fn work(State(x): State<Extra>, Path(id): Path<u64>) -> Json<Value> {
    let list: WorkList = x.get(Tag::Work.key_u64(id)).await.unwrap_or_default();
    let mut items = Vec::new();
    for (job_id, unit_index, replica_index) in list.0 {
        let job: Job = x.get(Tag::Job.key_u64(job_id)).await.unwrap();
        let unit: Unit = x.get(unit_key(job_id, unit_index)).await.unwrap();
        let replica = unit
            .replicas
            .iter()
            .find(|r| r.index == replica_index)
            .unwrap();
        let args = job
            .spec
            .unit_args
            .get(unit_index as usize)
            .map(|l| l.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>());
        items.push(json!({
            "job": job_id,
            "unit": unit_index,
            "replica": replica_index,
            "status": replica.status.name(),
            "commit_deadline": replica.commit_deadline,
            "reveal_open": unit.reveal_deadline.is_some(),
            "reveal_deadline": unit.reveal_deadline,
            "app": hex::encode(job.spec.app),
            "inputs": job.spec.inputs.iter().map(|i| json!({
                "name": i.name, "hash": hex::encode(i.hash), "size": i.size
            })).collect::<Vec<_>>(),
            "args": args,
            "fuel_limit": job.fuel_limit,
            "memory_mib": job.spec.requirements.min_memory_mib,
            "price": replica.price_per_unit.0.to_string(),
        }));
    }
    Json(json!({ "provider": id, "work": items }))
}

async fn unit_replicas(
    State(x): State<Extra>,
    Path((job, unit)): Path<(u64, u32)>,
) -> impl IntoResponse {
    let Some(unit) = x.get::<Unit>(unit_key(job, unit)).await else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "not_found", "message": "no unit"})),
        );
    };
    let replicas: Vec<Value> = unit
        .replicas
        .iter()
        .map(|r| {
            json!({
                "replica": r.index,
                "provider": r.provider,
                "status": r.status.name(),
                "reveal": r.reveal.map(|(d, f)| json!({"digest": hex::encode(d), "fuel": f})),
            })
        })
        .collect();
    (StatusCode::OK, Json(json!({ "replicas": replicas })))
}

async fn get_blob(State(x): State<Extra>, Path(hash): Path<String>) -> impl IntoResponse {
    let hash: Hash32 = hex::decode(hash).unwrap().try_into().unwrap();
    match x.blobs.lock().unwrap().get(&hash) {
        Some(b) => (StatusCode::OK, b.clone()),
        None => (StatusCode::NOT_FOUND, b"no blob".to_vec()),
    }
}

async fn put_blob(State(x): State<Extra>, body: Bytes) -> Json<Value> {
    let hash = *blake3::hash(&body).as_bytes();
    x.blobs.lock().unwrap().insert(hash, body.to_vec());
    Json(json!({ "hash": hex::encode(hash) }))
}

async fn put_outputs(
    State(x): State<Extra>,
    Path((job, unit)): Path<(u64, u32)>,
    body: Bytes,
) -> StatusCode {
    x.outputs
        .lock()
        .unwrap()
        .entry((job, unit))
        .or_default()
        .push(body.to_vec());
    StatusCode::NO_CONTENT
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_run_prove_and_get_paid_and_a_liar_is_caught() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "exo_worker=info".into()))
        .with_test_writer()
        .try_init();
    let requester = key(1);
    let liar = key(10);
    let honest = [key(11), key(12)];
    let validator = key(99);
    let mut accounts = vec![GenesisAccount {
        address: address_to_hex(&requester.public_key()),
        balance: Amount::from_exo(1_000_000),
    }];
    for k in std::iter::once(&liar).chain(honest.iter()) {
        accounts.push(GenesisAccount {
            address: address_to_hex(&k.public_key()),
            balance: Amount::from_exo(100),
        });
    }
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params: Params::default(),
        accounts,
        validators: vec![address_to_hex(&validator.public_key())],
    };
    let node = MemoryNode::new(genesis, validator.public_key());
    let extra = Extra {
        node: node.clone(),
        blobs: Arc::default(),
        outputs: Arc::default(),
    };
    let limits = ApiLimits {
        rate_per_sec: 0,
        ..ApiLimits::default()
    };
    let routes = Router::new()
        .route("/v1/accounts/{address}/provider", get(provider_of))
        .route("/v1/providers/{id}/work", get(work))
        .route("/v1/jobs/{job}/units/{unit}", get(unit_replicas))
        .route("/v1/blobs/{hash}", get(get_blob))
        .route("/v1/blobs", put(put_blob))
        .route("/v1/outputs/{job}/{unit}", put(put_outputs))
        .with_state(extra.clone())
        .merge(exo_api::router(node.clone(), limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            routes.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let blocks = tokio::spawn(node.clone().run(Duration::from_millis(100)));

    // The requester publishes `hello` and uploads it with an input.
    let wasm = exo_apps::HELLO_WASM;
    let app = *blake3::hash(wasm).as_bytes();
    let input = b"some input bytes".to_vec();
    let input_hash = *blake3::hash(&input).as_bytes();
    extra.blobs.lock().unwrap().insert(app, wasm.to_vec());
    extra
        .blobs
        .lock()
        .unwrap()
        .insert(input_hash, input.clone());
    let client = Client::new(&url).unwrap();
    send(
        &client,
        &requester,
        0,
        Action::PublishApp {
            module_hash: app,
            name: "hello".into(),
            version: "1".into(),
            royalty_per_unit: Amount(0),
        },
    )
    .await;

    // Three workers; the liar asks the lowest price, so it is matched first. They share a
    // compile cache, warmed here: a debug build compiles wasm slowly.
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut config = exo_exec::SandboxConfig::new(cache_dir);
        config.max_concurrent_units = 5;
        exo_exec::Sandbox::new(config)
            .unwrap()
            .prepare(wasm)
            .unwrap();
    })
    .await
    .unwrap();
    let bench = Benchmark {
        fuel_per_second: 1_000_000_000,
        cores: 2,
        memory_mib: 4_096,
        gpu: None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for (i, k) in std::iter::once(&liar).chain(honest.iter()).enumerate() {
        let mut cfg = WorkerConfig::new(url.clone(), k.clone(), dirs[i].path());
        cfg.slots = 4;
        cfg.benchmark = Some(bench.clone());
        cfg.poll_interval = Duration::from_millis(200);
        cfg.compile_cache = Some(cache.path().to_path_buf());
        if i == 0 {
            cfg.misbehave = Some(Misbehave::WrongResult);
            cfg.price_per_unit = Amount::from_exo(1);
        } else {
            cfg.price_per_unit = Amount::from_exo(2);
        }
        let mut stopped = stopped.clone();
        workers.push(tokio::spawn(exo_worker::run(cfg, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }

    // Wait until every worker registered and posted its offer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = 0;
        for k in std::iter::once(&liar).chain(honest.iter()) {
            if client.account(&k.public_key()).await.unwrap().nonce >= 2 {
                ready += 1;
            }
        }
        if ready == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not register"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let units = 3u32;
    let spec = JobSpec {
        app,
        inputs: vec![InputRef {
            name: "data.txt".into(),
            hash: input_hash,
            size: input.len() as u64,
        }],
        unit_args: (0..units).map(|u| format!("tile {u}")).collect(),
        units,
        requirements: Requirements {
            min_cores: 1,
            min_memory_mib: 64,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: None,
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: 1_000_000_000,
            min_reputation: 0,
        },
        max_price_per_unit: Amount::from_exo(5),
        trust: 2,
    };
    send(&client, &requester, 1, Action::SubmitJob(Box::new(spec))).await;

    // The job finishes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let job: Job = loop {
        let job: Job = extra.get(Tag::Job.key_u64(0)).await.unwrap();
        if job.state != JobState::Open {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job not done: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.send(true).unwrap();
    for w in workers {
        w.await.unwrap().unwrap();
    }
    blocks.abort();

    assert_eq!(job.accepted, units, "{job:?}");
    let liar_provider: Provider = {
        let id = u64::from_be_bytes(
            node.state(Tag::ProviderOwner.key_of(&liar.public_key()))
                .await
                .unwrap()
                .unwrap()
                .try_into()
                .unwrap(),
        );
        extra.get(Tag::Provider.key_u64(id)).await.unwrap()
    };
    assert_eq!(liar_provider.valid, 0, "{liar_provider:?}");
    assert!(liar_provider.invalid >= 1, "{liar_provider:?}");
    assert!(liar_provider.bond < Amount::from_exo(10));
    for u in 0..units {
        let unit: Unit = extra.get(unit_key(0, u)).await.unwrap();
        assert_eq!(unit.state, UnitState::Accepted);
        let (digest, _fuel) = unit.accepted.unwrap();
        // The outputs every replica uploaded unpack to the accepted digest.
        let uploads = extra.outputs.lock().unwrap().get(&(0, u)).cloned().unwrap();
        assert!(uploads.len() >= 2);
        for archive in &uploads {
            let a = exo_worker::outputs::unpack(archive).unwrap();
            assert_eq!(a.result_digest(), digest);
            assert_eq!(a.outcome, "ok");
            let text = String::from_utf8(a.file("hello.txt").unwrap().to_vec()).unwrap();
            assert!(text.contains(&format!("unit={u}")), "{text}");
            assert!(text.contains(&format!("args=tile {u}")), "{text}");
            assert!(text.contains("input data.txt 16"), "{text}");
        }
    }
    for k in &honest {
        let balance = client.account(&k.public_key()).await.unwrap().balance;
        let bond = Amount::from_exo(10);
        // Paid for its units (and more than its fees).
        assert!(
            balance.0 + bond.0 > Amount::from_exo(100).0,
            "honest worker not paid: {balance}"
        );
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

/// A node with the extra routes, funded keys, blocks every 100 ms, `hello` published and
/// uploaded with an input. Returns the node, its extra state, its URL and the input's hash.
async fn start_with_hello(
    requester: &PrivateKey,
    providers: &[&PrivateKey],
) -> (MemoryNode, Extra, String, Hash32) {
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
        params: Params::default(),
        accounts,
        validators: vec![address_to_hex(&validator.public_key())],
    };
    let node = MemoryNode::new(genesis, validator.public_key());
    let extra = Extra {
        node: node.clone(),
        blobs: Arc::default(),
        outputs: Arc::default(),
    };
    let limits = ApiLimits {
        rate_per_sec: 0,
        ..ApiLimits::default()
    };
    let routes = Router::new()
        .route("/v1/accounts/{address}/provider", get(provider_of))
        .route("/v1/providers/{id}/work", get(work))
        .route("/v1/blobs/{hash}", get(get_blob))
        .route("/v1/outputs/{job}/{unit}", put(put_outputs))
        .with_state(extra.clone())
        .merge(exo_api::router(node.clone(), limits));
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
    let wasm = exo_apps::HELLO_WASM;
    let app = *blake3::hash(wasm).as_bytes();
    let input = b"restart".to_vec();
    let input_hash = *blake3::hash(&input).as_bytes();
    extra.blobs.lock().unwrap().insert(app, wasm.to_vec());
    extra.blobs.lock().unwrap().insert(input_hash, input);
    let client = Client::new(&url).unwrap();
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
    (node, extra, url, input_hash)
}

fn spawn_worker(
    url: &str,
    key: &PrivateKey,
    dir: &std::path::Path,
    cache: &std::path::Path,
) -> (
    tokio::task::JoinHandle<Result<(), exo_worker::WorkerError>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let mut cfg = WorkerConfig::new(url.to_string(), key.clone(), dir);
    cfg.slots = 2;
    cfg.benchmark = Some(Benchmark {
        fuel_per_second: 1_000_000_000,
        cores: 2,
        memory_mib: 4_096,
        gpu: None,
    });
    cfg.poll_interval = Duration::from_millis(200);
    cfg.compile_cache = Some(cache.to_path_buf());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(exo_worker::run(cfg, async move {
        let _ = stopped.await;
    }));
    (handle, stop)
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker stopped between its commitment and the opening of reveals reveals after a restart,
/// from the sealed result it kept on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_worker_reveals_what_it_committed() {
    let requester = key(1);
    let (a, b) = (key(21), key(22));
    let (_node, extra, url, input_hash) = start_with_hello(&requester, &[&a, &b]).await;
    let client = Client::new(&url).unwrap();
    let (dir_a, dir_b, cache) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // Only A runs: it takes replica 0 and commits; replica 1 waits for another provider, so
    // reveals stay closed.
    let (worker_a, stop_a) = spawn_worker(&url, &a, dir_a.path(), cache.path());
    wait_until("A registers and offers", || async {
        client.account(&a.public_key()).await.unwrap().nonce >= 2
    })
    .await;
    let spec = JobSpec {
        app: *blake3::hash(exo_apps::HELLO_WASM).as_bytes(),
        inputs: vec![InputRef {
            name: "in.txt".into(),
            hash: input_hash,
            size: 7,
        }],
        unit_args: Vec::new(),
        units: 1,
        requirements: Requirements {
            min_cores: 1,
            min_memory_mib: 64,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: None,
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: 1_000_000_000,
            min_reputation: 0,
        },
        max_price_per_unit: Amount::from_exo(5),
        trust: 2,
    };
    send(&client, &requester, 1, Action::SubmitJob(Box::new(spec))).await;
    let committed = || async {
        extra.get::<Unit>(unit_key(0, 0)).await.is_some_and(|u| {
            u.replicas
                .iter()
                .any(|r| r.status == exo_ledger::compute::ReplicaStatus::Committed)
        })
    };
    wait_until("A commits", committed).await;
    stop_a.send(()).unwrap();
    worker_a.await.unwrap().unwrap();
    let sealed = std::fs::read_to_string(dir_a.path().join("state.json")).unwrap();
    assert!(sealed.contains("\"salt\""), "{sealed}");

    // B takes replica 1 and commits: reveals open. A comes back and reveals.
    let (worker_b, stop_b) = spawn_worker(&url, &b, dir_b.path(), cache.path());
    let (worker_a, stop_a) = spawn_worker(&url, &a, dir_a.path(), cache.path());
    wait_until("the unit is accepted", || async {
        extra
            .get::<Unit>(unit_key(0, 0))
            .await
            .is_some_and(|u| u.state == UnitState::Accepted)
    })
    .await;
    let unit: Unit = extra.get(unit_key(0, 0)).await.unwrap();
    assert_eq!(unit.replicas.len(), 2, "{unit:?}");
    for r in &unit.replicas {
        assert_eq!(
            r.status,
            exo_ledger::compute::ReplicaStatus::Agreed,
            "{unit:?}"
        );
    }
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    worker_a.await.unwrap().unwrap();
    worker_b.await.unwrap().unwrap();
}
