//! The compute market's routes, the blob store and outputs, against the in-memory node running
//! the real ledger: a provider registers and offers, an app is published, jobs are submitted and
//! matched, a unit is committed, revealed and accepted, and its outputs are served.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use commonware_cryptography::Signer;
use exo_api::{
    ApiConfig, ApiLimits, BlobStore, NodeView,
    outputs::{Archive, pack},
    router_with,
    testing::{MemoryNode, submit_body},
};
use exo_ledger::{Genesis, GenesisAccount, Params, modules::market::MarketParams};
use exo_market::{DeviceClass, GpuRequirement, Requirements, Resources, Runtime, RuntimeSet};
use exo_types::{
    Action, Amount, Hash32, InputRef, JobSpec, PrivateKey, ResultCommit, ResultReveal, UnsignedTx,
    address_to_hex, result_commitment,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

const CHAIN: &str = "exo-market-test";

fn alice() -> PrivateKey {
    PrivateKey::from_seed(1)
}

fn bob() -> PrivateKey {
    PrivateKey::from_seed(2)
}

struct Chain {
    node: MemoryNode,
    app: Router,
    _dir: tempfile::TempDir,
    blob_dir: std::path::PathBuf,
    nonces: std::collections::BTreeMap<u64, u64>,
}

fn chain_with(limits: ApiLimits, store_bytes: u64) -> Chain {
    let params = Params {
        market: MarketParams {
            audit_ppm: 0,
            // No probation: the tests count units running on a new provider.
            probation_slots: 16,
            ..MarketParams::default()
        },
        ..Params::default()
    };
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params,
        accounts: [alice(), bob()]
            .iter()
            .map(|k| GenesisAccount {
                address: address_to_hex(&k.public_key()),
                balance: Amount::from_exo(1_000),
            })
            .collect(),
        validators: vec![address_to_hex(&PrivateKey::from_seed(9).public_key())],
    };
    let node = MemoryNode::new(genesis, PrivateKey::from_seed(9).public_key());
    let dir = tempfile::tempdir().unwrap();
    let blob_dir = dir.path().join("blobs");
    let blobs = BlobStore::open(&blob_dir, store_bytes).unwrap();
    let app = router_with(
        node.clone(),
        ApiConfig {
            limits,
            blobs: Some(blobs),
            ..ApiConfig::default()
        },
    );
    Chain {
        node,
        app,
        _dir: dir,
        blob_dir,
        nonces: Default::default(),
    }
}

fn chain() -> Chain {
    chain_with(
        ApiLimits {
            rate_per_sec: 0,
            ..ApiLimits::default()
        },
        1 << 30,
    )
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    call(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn raw(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

async fn put_blob(app: &Router, bytes: &[u8]) -> (StatusCode, Value) {
    call(
        app,
        Request::put("/v1/blobs")
            .body(Body::from(bytes.to_vec()))
            .unwrap(),
    )
    .await
}

impl Chain {
    /// Signs `action` with `key` at its next nonce and admits it.
    async fn send(&mut self, key: &PrivateKey, seed: u64, action: Action) {
        let nonce = self.nonces.entry(seed).or_default();
        let tx = UnsignedTx {
            chain_id: CHAIN.into(),
            sender: key.public_key(),
            nonce: *nonce,
            fee: Amount(1_000),
            action,
        }
        .sign(key);
        *nonce += 1;
        let (status, body) = call(
            &self.app,
            Request::post("/v1/txs")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(submit_body(&tx)))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let hash = body["hash"].as_str().unwrap().to_string();
        self.node.produce_block();
        let (_, receipt) = get(&self.app, &format!("/v1/txs/{hash}")).await;
        assert_eq!(receipt["status"], "ok", "{receipt}");
    }
}

fn resources() -> Resources {
    Resources {
        cores: 4,
        cpu_score: 1_000_000_000,
        memory_mib: 4_096,
        gpu: None,
        class: DeviceClass::Pc,
        region: "eu-west".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    }
}

fn requirements(gpu: Option<&str>) -> Requirements {
    Requirements {
        min_cores: 1,
        min_memory_mib: 128,
        min_cpu_score: 0,
        gpu: gpu.map(|model| GpuRequirement {
            model: Some(model.into()),
            min_count: 1,
            min_memory_mib: 0,
        }),
        class: None,
        region: None,
        runtime: Runtime::Wasm32Wasip1,
        fuel_limit: 1_000_000_000,
        min_reputation: 0,
    }
}

fn hash_of(text: &Value) -> Hash32 {
    exo_api::wire::hash32_from_hex(text.as_str().unwrap()).unwrap()
}

fn unit_output(unit: u32) -> Archive {
    Archive {
        outcome: "ok".into(),
        stdout: format!("unit {unit}\n").into_bytes(),
        dirs: vec!["frames".into()],
        files: vec![("frames/0.png".into(), vec![unit as u8; 10])],
    }
}

/// Reads SSE frames until `want` events named `name` arrived; answers their data.
async fn read_events(body: Body, name: &str, want: usize) -> Vec<Value> {
    let mut stream = body.into_data_stream();
    let mut text = String::new();
    let mut found = Vec::new();
    use futures::StreamExt;
    while found.len() < want {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if block.lines().any(|l| l == format!("event: {name}")) {
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                found.push(serde_json::from_str(data).unwrap());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_job_is_matched_run_accepted_and_its_outputs_served() {
    let mut chain = chain();
    let bob_hex = address_to_hex(&bob().public_key());
    let alice_hex = address_to_hex(&alice().public_key());

    // No provider yet.
    let (status, body) = get(&chain.app, &format!("/v1/accounts/{bob_hex}/provider")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "not_found");

    chain
        .send(
            &bob(),
            2,
            Action::RegisterProvider {
                resources: resources(),
                bond: Amount::from_exo(10),
            },
        )
        .await;
    let (status, body) = get(&chain.app, &format!("/v1/accounts/{bob_hex}/provider")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "address": bob_hex, "provider": 0 }));
    let (_, page) = get(&chain.app, "/v1/providers").await;
    assert_eq!(page["providers"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], Value::Null);
    let (_, provider) = get(&chain.app, "/v1/providers/0").await;
    assert_eq!(provider["owner"], bob_hex);
    assert_eq!(provider["bond"], "10000000000");
    assert_eq!(provider["reputation"], 500);
    assert_eq!(provider["trusted"], false);
    assert_eq!(provider["resources"]["region"], "eu-west");
    assert_eq!(provider["resources"]["class"], "pc");
    assert_eq!(provider["resources"]["runtimes"], json!(["wasm32-wasip1"]));

    chain
        .send(
            &bob(),
            2,
            Action::PostOffer {
                slots: 2,
                price_per_unit: Amount(1_000),
                expiry_height: 1_000,
            },
        )
        .await;
    let (_, offers) = get(&chain.app, "/v1/market/offers").await;
    assert_eq!(offers["offers"][0]["slots"], 2);
    assert_eq!(offers["offers"][0]["price_per_unit"], "1000");
    assert_eq!(offers["offers"][0]["owner"], bob_hex);
    let (_, depth) = get(&chain.app, "/v1/market/depth").await;
    assert_eq!(
        depth["levels"],
        json!([{ "price_per_unit": "1000", "slots": 2, "offers": 1 }])
    );

    // The module and an input go to the blob store; the app is published.
    let module = b"\0asm pretend module".to_vec();
    let (status, stored) = put_blob(&chain.app, &module).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    let module_hash = hash_of(&stored["hash"]);
    assert_eq!(module_hash, *blake3::hash(&module).as_bytes());
    let (_, input) = put_blob(&chain.app, b"scene").await;
    chain
        .send(
            &alice(),
            1,
            Action::PublishApp {
                module_hash,
                name: "render".into(),
                version: "1".into(),
                royalty_per_unit: Amount(10),
            },
        )
        .await;
    let (_, apps) = get(&chain.app, "/v1/apps").await;
    assert_eq!(apps["apps"][0]["name"], "render");
    let (status, app) = get(
        &chain.app,
        &format!("/v1/apps/{}/{alice_hex}", hex::encode(module_hash)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app["royalty_per_unit"], "10");
    assert_eq!(app["developer"], alice_hex);

    // A worker listens for its assignments from here on.
    let events = chain
        .app
        .clone()
        .oneshot(
            Request::get("/v1/events?provider=0")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);

    // Three units on two slots, and a job nobody can run.
    let spec = |units: u32, gpu: Option<&str>, args: Vec<String>| JobSpec {
        app: module_hash,
        app_developer: alice().public_key(),
        inputs: vec![InputRef {
            name: "scene.txt".into(),
            hash: hash_of(&input["hash"]),
            size: 5,
        }],
        unit_args: args,
        units,
        requirements: requirements(gpu),
        max_price_per_unit: Amount(2_000),
        trust: 1,
    };
    let args = vec!["--frame 0".into(), "--frame  1".into(), String::new()];
    chain
        .send(
            &alice(),
            1,
            Action::SubmitJob(Box::new(spec(3, None, args))),
        )
        .await;
    let submitted = chain.node.status().finalized_height;
    chain
        .send(
            &alice(),
            1,
            Action::SubmitJob(Box::new(spec(1, Some("rtx4090"), vec![]))),
        )
        .await;

    let (status, job) = get(&chain.app, "/v1/jobs/0").await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "open");
    assert_eq!(job["requester"], alice_hex);
    assert_eq!(
        job["counts"],
        json!({ "waiting": 1, "running": 2, "accepted": 0, "failed": 0 })
    );
    assert_eq!(job["units"][0]["state"], "running");
    assert_eq!(job["units"][0]["replicas"][0]["provider"], 0);
    assert_eq!(job["units"][0]["replicas"][0]["status"], "assigned");
    assert_eq!(job["units"][0]["replicas"][0]["price_per_unit"], "1000");
    assert_eq!(job["units"][2]["state"], "waiting");
    assert_eq!(job["units"][2]["reason"]["code"], "slots_taken", "{job}");
    assert!(job["units"][2]["reason"]["sentence"].is_string(), "{job}");
    assert_eq!(job["units"][1]["reason"], Value::Null);
    assert!(job["accounts"]["escrowed"].as_str().unwrap() != "0");
    assert_eq!(job["accounts"]["held"], job["accounts"]["escrowed"]);

    let (_, gpu_job) = get(&chain.app, "/v1/jobs/1").await;
    assert_eq!(gpu_job["units"][0]["state"], "waiting");
    // The waiting reason: a code with the matcher's numbers, and the sentence made of them.
    let reason = &gpu_job["units"][0]["reason"];
    assert_eq!(reason["code"], "no_provider", "{reason}");
    assert_eq!(reason["binding"], "gpu", "{reason}");
    assert_eq!(
        reason["excluded_by"]["gpu"], reason["live_offers"],
        "{reason}"
    );
    let sentence = reason["sentence"].as_str().unwrap();
    assert!(sentence.starts_with("no provider with gpu"), "{sentence}");
    assert_eq!(&gpu_job["wait_reason"], reason);

    // Pages of units.
    let (_, page) = get(&chain.app, "/v1/jobs/0?from=1&limit=1").await;
    assert_eq!(page["units"].as_array().unwrap().len(), 1);
    assert_eq!(page["units"][0]["unit"], 1);
    assert_eq!(page["next_unit"], 2);

    // The requester finds its jobs from the receipt's height.
    let (_, mine) = get(
        &chain.app,
        &format!("/v1/jobs?requester={alice_hex}&height={submitted}"),
    )
    .await;
    let ids: Vec<u64> = mine["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 0]);

    // The assignments reached the worker's event stream.
    let assignments = read_events(events.into_body(), "assignment", 2).await;
    assert_eq!(assignments[0]["job"], 0);
    assert_eq!(assignments[0]["provider"], 0);
    assert_eq!(assignments[1]["unit"], 1);

    // Everything a worker needs.
    let (status, work) = get(&chain.app, "/v1/providers/0/work").await;
    assert_eq!(status, StatusCode::OK, "{work}");
    let items = work["work"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["job"], 0);
    assert_eq!(items[0]["status"], "assigned");
    assert_eq!(items[0]["reveal_open"], false);
    assert_eq!(items[0]["app"], hex::encode(module_hash));
    assert_eq!(items[0]["inputs"][0]["name"], "scene.txt");
    assert_eq!(items[0]["args"], json!(["--frame", "0"]));
    assert_eq!(items[1]["args"], json!(["--frame", "1"]));
    assert_eq!(items[0]["fuel_limit"], 1_000_000_000);
    assert_eq!(items[0]["memory_mib"], 128);
    assert_eq!(items[0]["price_per_unit"], "1000");
    let (_, page) = get(&chain.app, "/v1/providers/0/work?limit=1").await;
    assert_eq!(page["next"], 1);
    let (_, depth) = get(&chain.app, "/v1/market/depth").await;
    assert_eq!(depth["levels"], json!([]));

    // A worker uploads an archive before the verdict: kept as a candidate.
    let archive = pack(&unit_output(0)).unwrap();
    let (_, stored) = put_blob(&chain.app, &archive).await;
    let put_outputs = |unit: u32, hash: &Value| {
        Request::put(format!("/v1/outputs/0/{unit}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "archive": hash }).to_string()))
            .unwrap()
    };
    let (status, early) = call(&chain.app, put_outputs(0, &stored["hash"])).await;
    assert_eq!(status, StatusCode::OK, "{early}");
    assert_eq!(early["accepted"], false);
    let (status, body) = get(&chain.app, "/v1/outputs/0/0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_accepted");

    // The provider commits and reveals unit 0: accepted.
    let digest = unit_output(0).result_digest();
    let salt = [7u8; 32];
    let fuel = 5_000;
    chain
        .send(
            &bob(),
            2,
            Action::CommitResults(vec![ResultCommit {
                job: 0,
                unit: 0,
                replica: 0,
                commitment: result_commitment(&digest, fuel, &salt, &bob().public_key()),
            }]),
        )
        .await;
    let (_, work) = get(&chain.app, "/v1/providers/0/work").await;
    assert_eq!(work["work"][0]["status"], "committed");
    assert_eq!(work["work"][0]["reveal_open"], true);
    assert!(work["work"][0]["reveal_deadline"].is_u64());
    chain
        .send(
            &bob(),
            2,
            Action::RevealResults(vec![ResultReveal {
                job: 0,
                unit: 0,
                replica: 0,
                digest,
                fuel,
                salt,
            }]),
        )
        .await;
    let (_, job) = get(&chain.app, "/v1/jobs/0").await;
    assert_eq!(job["units"][0]["state"], "accepted");
    assert_eq!(job["units"][0]["accepted_digest"], hex::encode(digest));
    assert_eq!(job["units"][0]["accepted_fuel"], fuel);
    assert_eq!(job["units"][0]["replicas"][0]["status"], "agreed");
    assert_eq!(job["counts"]["accepted"], 1);
    assert_eq!(job["accounts"]["paid"][0]["provider"], 0);
    // The freed slot went to the waiting unit.
    assert_eq!(job["units"][2]["state"], "running");

    // Now the archive is served as the accepted outputs.
    let (status, outputs) = get(&chain.app, "/v1/outputs/0/0").await;
    assert_eq!(status, StatusCode::OK, "{outputs}");
    assert_eq!(outputs["archive"], stored["hash"]);
    assert_eq!(outputs["digest"], hex::encode(digest));
    assert_eq!(outputs["accepted"], true);
    let (status, _, bytes) = raw(
        &chain.app,
        Request::get(format!("/v1/blobs/{}", stored["hash"].as_str().unwrap()))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        exo_api::outputs::unpack(&bytes).unwrap().result_digest(),
        digest
    );

    // Another archive for the accepted unit is refused.
    let wrong = pack(&unit_output(9)).unwrap();
    let (_, wrong_stored) = put_blob(&chain.app, &wrong).await;
    let (status, body) = call(&chain.app, put_outputs(0, &wrong_stored["hash"])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "digest_mismatch");
    // Bytes that are no archive are refused too.
    let (_, junk) = put_blob(&chain.app, b"not an archive").await;
    let (status, body) = call(&chain.app, put_outputs(1, &junk["hash"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_archive");
    // A unit of no job.
    let (status, _) = get(&chain.app, "/v1/outputs/0/7").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The accepted archive stays after a wrong one.
    let (_, outputs) = get(&chain.app, "/v1/outputs/0/0").await;
    assert_eq!(outputs["archive"], stored["hash"]);

    // Metrics count the new routes by template.
    let (_, _, metrics) = raw(
        &chain.app,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("route=\"/v1/jobs/{id}\""), "{metrics}");
    assert!(
        metrics.contains("method=\"PUT\",route=\"/v1/blobs\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_ids_queries_and_missing_records_are_4xx() {
    let chain = chain();
    for (path, status, code) in [
        ("/v1/providers/x", StatusCode::BAD_REQUEST, "bad_id"),
        ("/v1/providers/99", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/providers/99/work", StatusCode::NOT_FOUND, "not_found"),
        (
            "/v1/providers?limit=0",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        (
            "/v1/providers?limit=5000",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        ("/v1/providers?frm=1", StatusCode::BAD_REQUEST, "bad_query"),
        ("/v1/jobs/-1", StatusCode::BAD_REQUEST, "bad_id"),
        ("/v1/jobs/0", StatusCode::NOT_FOUND, "not_found"),
        (
            "/v1/jobs?requester=zz&height=1",
            StatusCode::BAD_REQUEST,
            "bad_address",
        ),
        (
            "/v1/apps/abc/0000000000000000000000000000000000000000000000000000000000000000",
            StatusCode::BAD_REQUEST,
            "bad_hash",
        ),
        ("/v1/market/depth?x=1", StatusCode::BAD_REQUEST, "bad_query"),
        (
            "/v1/accounts/xyz/provider",
            StatusCode::BAD_REQUEST,
            "bad_address",
        ),
        ("/v1/outputs/0/x", StatusCode::BAD_REQUEST, "bad_id"),
        (
            "/v1/events?provider=x",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
    ] {
        let (got, body) = get(&chain.app, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"], code, "{path}: {body}");
    }
    let zero = "0".repeat(64);
    // The module of no app, and an app's module under a developer who did not publish it.
    let alice = address_to_hex(&alice().public_key());
    let (status, body) = get(&chain.app, &format!("/v1/apps/{zero}/{alice}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Empty lists are empty pages.
    for (path, key) in [
        ("/v1/providers", "providers"),
        ("/v1/market/offers", "offers"),
        ("/v1/apps", "apps"),
        ("/v1/jobs", "jobs"),
    ] {
        let (status, body) = get(&chain.app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body[key], json!([]), "{path}");
    }
}

#[tokio::test]
async fn blobs_round_trip_with_ranges() {
    let chain = chain();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let (status, stored) = put_blob(&chain.app, &bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    assert_eq!(stored["size"], 1000);
    let hash = stored["hash"].as_str().unwrap().to_string();
    assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str());
    let path = format!("/v1/blobs/{hash}");

    let (status, headers, body) =
        raw(&chain.app, Request::get(&path).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    assert_eq!(headers[header::CONTENT_LENGTH], "1000");
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");

    let range = |spec: &str| {
        Request::get(&path)
            .header(header::RANGE, spec)
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, body) = raw(&chain.app, range("bytes=10-19")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, bytes[10..20]);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 10-19/1000");
    let (status, _, body) = raw(&chain.app, range("bytes=-5")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, bytes[995..]);
    let (status, _, body) = raw(&chain.app, range("bytes=990-")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, bytes[990..]);
    let (status, headers, body) = raw(&chain.app, range("bytes=1000-")).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes */1000");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "range_not_satisfiable");

    // HEAD answers the size without a body.
    let (status, headers, body) = raw(
        &chain.app,
        Request::builder()
            .method(Method::HEAD)
            .uri(&path)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_LENGTH], "1000");
    assert!(body.is_empty());

    // Unknown and malformed hashes.
    let (status, body) = get(&chain.app, &format!("/v1/blobs/{}", "ab".repeat(32))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = get(&chain.app, "/v1/blobs/nothex").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_hash");

    // An expected hash that the bytes do not have: nothing stored.
    let (status, body) = call(
        &chain.app,
        Request::put(format!("/v1/blobs?hash={}", "cd".repeat(32)))
            .body(Body::from("other bytes"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "hash_mismatch");
    let (status, _) = get(
        &chain.app,
        &format!("/v1/blobs/{}", blake3::hash(b"other bytes").to_hex()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_corrupted_blob_is_deleted_not_served() {
    let chain = chain();
    let (_, stored) = put_blob(&chain.app, b"precious bytes").await;
    let hash = stored["hash"].as_str().unwrap().to_string();
    let file = chain.blob_dir.join("blobs").join(&hash);
    std::fs::write(&file, b"precious bytez").unwrap();
    let (status, body) = get(&chain.app, &format!("/v1/blobs/{hash}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"], "blob_corrupt");
    assert!(!file.exists());
    let (status, _) = get(&chain.app, &format!("/v1/blobs/{hash}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Uploading it again repairs it.
    let (status, _) = put_blob(&chain.app, b"precious bytes").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, body) = raw(
        &chain.app,
        Request::get(format!("/v1/blobs/{hash}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(body, b"precious bytes");
}

#[tokio::test]
async fn blob_bounds_are_the_blob_bounds() {
    let limits = ApiLimits {
        rate_per_sec: 0,
        max_body_bytes: 16,
        max_blob_bytes: 100,
        ..ApiLimits::default()
    };
    let chain = chain_with(limits, 150);
    // A body without a declared length is cut off at the bound as it streams in.
    let chunks = futures::stream::iter((0..3).map(|_| Ok::<_, std::io::Error>(vec![3u8; 40])));
    let (status, body) = call(
        &chain.app,
        Request::put("/v1/blobs")
            .body(Body::from_stream(chunks))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "blob_too_large");
    // Over the transaction bound but within the blob bound: stored.
    let (status, body) = put_blob(&chain.app, &[1u8; 100]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Over the blob bound, declared or streamed.
    let (status, body) = put_blob(&chain.app, &[2u8; 101]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "blob_too_large");
    // The store holds 150 bytes: another 60 do not fit.
    let (status, body) = put_blob(&chain.app, &[4u8; 60]).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"], "store_full");
    let (status, _) = put_blob(&chain.app, &[5u8; 50]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        std::fs::read_dir(chain.blob_dir.join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn without_a_store_blob_routes_say_so() {
    let chain = chain();
    let app = exo_api::router(chain.node.clone(), ApiLimits::default());
    let (status, body) = put_blob(&app, b"x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "blobs_disabled");
    let (status, _) = get(&app, "/v1/outputs/0/0").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn openapi_lists_the_market_routes() {
    let chain = chain();
    let (_, doc) = get(&chain.app, "/v1/openapi.json").await;
    for path in [
        "/v1/providers",
        "/v1/providers/{id}",
        "/v1/providers/{id}/work",
        "/v1/market/offers",
        "/v1/market/depth",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/apps",
        "/v1/apps/{hash}/{developer}",
        "/v1/accounts/{address}/provider",
        "/v1/blobs",
        "/v1/blobs/{hash}",
        "/v1/outputs/{job}/{unit}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    // Every schema referenced is defined.
    let text = doc.to_string();
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(
            doc["components"]["schemas"][&name].is_object(),
            "{name} is referenced but not defined"
        );
    }
}

/// Another node's store, as [`exo_api::PeerBlobs`] sees it: here a map, with one blob whose
/// bytes do not match its name (a lying or corrupted peer).
#[derive(Debug, Default)]
struct Peer {
    blobs: std::collections::HashMap<Hash32, Vec<u8>>,
    asked: std::sync::atomic::AtomicUsize,
}

impl exo_api::PeerBlobs for Peer {
    fn blob(
        &self,
        hash: Hash32,
        max_bytes: u64,
    ) -> futures::future::BoxFuture<'_, Option<Vec<u8>>> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found = self
            .blobs
            .get(&hash)
            .filter(|b| b.len() as u64 <= max_bytes)
            .cloned();
        Box::pin(async move { found })
    }

    fn outputs(&self, _job: u64, _unit: u32) -> futures::future::BoxFuture<'_, Option<Hash32>> {
        Box::pin(async { None })
    }
}

#[tokio::test]
async fn a_missing_blob_is_fetched_from_a_peer_and_checked() {
    let held = b"held by the other node".to_vec();
    let held_hash = blob_hash(&held);
    let forged_hash = blob_hash(b"what the name promises");
    let peer = std::sync::Arc::new(Peer {
        blobs: [
            (held_hash, held.clone()),
            (forged_hash, b"something else".to_vec()),
        ]
        .into(),
        ..Peer::default()
    });
    let node = chain().node;
    let dir = tempfile::tempdir().unwrap();
    let app = router_with(
        node,
        ApiConfig {
            limits: ApiLimits {
                rate_per_sec: 0,
                ..ApiLimits::default()
            },
            blobs: Some(BlobStore::open(dir.path(), 1 << 30).unwrap()),
            peers: Some(peer.clone()),
        },
    );
    let path = |h: &Hash32| format!("/v1/blobs/{}", hex::encode(h));

    // A node asking on behalf of its client gets this store's answer alone: no bounce.
    let from_node = Request::get(path(&held_hash))
        .header(exo_api::wire::PEER_HEADER, "1")
        .body(Body::empty())
        .unwrap();
    assert_eq!(raw(&app, from_node).await.0, StatusCode::NOT_FOUND);
    assert_eq!(peer.asked.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A client gets the peer's blob, which is then kept here.
    let (status, _, body) = raw(
        &app,
        Request::get(path(&held_hash)).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, held);
    let head = Request::head(path(&held_hash)).body(Body::empty()).unwrap();
    assert_eq!(raw(&app, head).await.0, StatusCode::OK);
    assert_eq!(peer.asked.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Bytes that do not have the name's hash are neither stored nor served.
    for _ in 0..2 {
        let forged = Request::get(path(&forged_hash))
            .body(Body::empty())
            .unwrap();
        assert_eq!(raw(&app, forged).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(peer.asked.load(std::sync::atomic::Ordering::SeqCst), 3);
}

fn blob_hash(bytes: &[u8]) -> Hash32 {
    *blake3::hash(bytes).as_bytes()
}
