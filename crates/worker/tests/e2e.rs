//! Workers against a node: the real ledger in memory (`exo_api::testing::MemoryNode`) behind the
//! real API routes and blob store, plus the one route the `copy` misbehaviour reads that the API
//! does not serve (the revealed results of a unit's replicas), implemented here over the same
//! node state.
//!
//! Three workers run real units of the `hello` app in the sandbox at trust 2: one lies about
//! every result (and is the cheapest, so it gets the first replica of every unit), two are
//! honest. Every unit must be accepted with the sandbox's true digest, the liar slashed, the
//! honest paid, and the uploaded outputs must unpack to the accepted digest.

#![allow(clippy::unwrap_used)]

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
};
use commonware_cryptography::Signer;
use exo_api::{ApiLimits, NodeView, testing::MemoryNode};
use exo_client::Client;
use exo_ledger::{
    Genesis, GenesisAccount, Params, Tag,
    compute::{Job, JobState, Provider, Record, Unit, UnitState},
    unit_key,
};
use exo_types::{
    Action, Amount, Hash32, InputRef, JobSpec, PrivateKey, UnsignedTx, address_to_hex,
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

/// Blobs a fake node serves, by the hash it claims for them.
type ServedBlobs = Arc<Mutex<HashMap<Hash32, Vec<u8>>>>;

#[derive(Clone)]
struct Extra {
    node: MemoryNode,
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
    let extra = Extra { node: node.clone() };
    let blob_dir = tempfile::tempdir().unwrap();
    let limits = ApiLimits {
        rate_per_sec: 0,
        ..ApiLimits::default()
    };
    let config = exo_api::ApiConfig {
        limits,
        blobs: Some(exo_api::BlobStore::open(blob_dir.path(), 1 << 30).unwrap()),
    };
    let routes = Router::new()
        .route("/v1/jobs/{job}/units/{unit}", get(unit_replicas))
        .with_state(extra.clone())
        .merge(exo_api::router_with(node.clone(), config));
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
    let client = Client::new(&url).unwrap();
    assert_eq!(client.put_blob(wasm.to_vec()).await.unwrap(), app);
    assert_eq!(client.put_blob(input.clone()).await.unwrap(), input_hash);
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
        // The node serves the accepted outputs, and they unpack to the accepted digest.
        let outputs = client
            .outputs(0, u)
            .await
            .unwrap()
            .expect("accepted outputs");
        let bytes = client.get_blob(&outputs.archive).await.unwrap();
        let a = exo_client::outputs::unpack(&bytes).unwrap();
        assert_eq!(a.result_digest(), digest);
        assert_eq!(a.outcome, "ok");
        let file = a.files.iter().find(|(p, _)| p == "hello.txt").unwrap();
        let text = String::from_utf8(file.1.clone()).unwrap();
        assert!(text.contains(&format!("unit={u}")), "{text}");
        assert!(text.contains(&format!("args=tile {u}")), "{text}");
        assert!(text.contains("input data.txt 16"), "{text}");
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
            get(
                |State(b): State<ServedBlobs>, Path(h): Path<String>| async move {
                    let h: Hash32 = hex::decode(h).unwrap().try_into().unwrap();
                    b.lock().unwrap().get(&h).cloned().unwrap_or_default()
                },
            ),
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
