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
    testing::{MemoryNode, alice, bob, market_node, provider_resources, submit_body},
};
use exo_market::{GpuRequirement, Requirements, Runtime};
use exo_types::{
    Action, Amount, Hash32, InputRef, JobSpec, PrivateKey, ResultCommit, ResultReveal, UnsignedTx,
    address_to_hex, result_commitment, result_seal,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

const CHAIN: &str = "exo-market-test";

struct Chain {
    node: MemoryNode,
    app: Router,
    store: BlobStore,
    _dir: tempfile::TempDir,
    blob_dir: std::path::PathBuf,
    nonces: std::collections::BTreeMap<u64, u64>,
}

fn chain_with(limits: ApiLimits, store_bytes: u64) -> Chain {
    let node = market_node(CHAIN);
    let dir = tempfile::tempdir().unwrap();
    let blob_dir = dir.path().join("blobs");
    let blobs = BlobStore::open(&blob_dir, store_bytes).unwrap();
    let app = router_with(
        node.clone(),
        ApiConfig {
            limits,
            blobs: Some(blobs.clone()),
            ..ApiConfig::default()
        },
    );
    Chain {
        node,
        app,
        store: blobs,
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

/// `PUT /v1/blobs?hash=` of `body`, announced as `hash` and signed by `key`.
fn blob_request(hash: Hash32, body: Body, key: &PrivateKey) -> Request<Body> {
    let mut request = Request::put(format!("/v1/blobs?hash={}", hex::encode(hash)));
    for (name, value) in exo_api::wire::blob_upload_headers(CHAIN, hash, key) {
        request = request.header(name, value);
    }
    request.body(body).unwrap()
}

/// Uploads `bytes` signed by alice (funded).
async fn put_blob(app: &Router, bytes: &[u8]) -> (StatusCode, Value) {
    let request = blob_request(blob_hash(bytes), Body::from(bytes.to_vec()), &alice());
    call(app, request).await
}

impl Chain {
    /// Signs `action` with `key` at its next nonce and admits it into a block.
    async fn send(&mut self, key: &PrivateKey, seed: u64, action: Action) {
        let hash = self.admit(key, seed, action).await;
        self.node.produce_block();
        let (_, receipt) = get(&self.app, &format!("/v1/txs/{hash}")).await;
        assert_eq!(receipt["status"], "ok", "{receipt}");
    }

    /// Signs `action` with `key` at its next nonce and admits it into the mempool: its hash.
    async fn admit(&mut self, key: &PrivateKey, seed: u64, action: Action) -> String {
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
        body["hash"].as_str().unwrap().to_string()
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

/// Bob uploads the archive of [`unit_output`]`(seed)` and offers it for replica 0 of unit 0
/// of job 0: the upload's answer, then the registration's status and answer.
async fn bob_offers_outputs(app: &Router, seed: u32) -> (Value, StatusCode, Value) {
    let (_, stored) = put_blob(app, &pack(&unit_output(seed)).unwrap()).await;
    let archive = hash_of(&stored["hash"]);
    let (status, body) = call(app, signed_outputs(0, 0, 0, archive, &bob())).await;
    (stored, status, body)
}

/// `PUT /v1/outputs/{job}/{unit}` of `archive` (a hex hash), unsigned.
fn unsigned_outputs(job: u64, unit: u32, archive: &Value) -> Request<Body> {
    Request::put(format!("/v1/outputs/{job}/{unit}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "archive": archive }).to_string()))
        .unwrap()
}

/// `PUT /v1/outputs/{job}/{unit}` of `archive`, signed by `key` as replica `replica`'s provider.
fn signed_outputs(
    job: u64,
    unit: u32,
    replica: u32,
    archive: Hash32,
    key: &PrivateKey,
) -> Request<Body> {
    let body = exo_api::wire::OutputsPut::signed(CHAIN, job, unit, replica, archive, key);
    Request::put(format!("/v1/outputs/{job}/{unit}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

/// Reads SSE frames until `enough` holds for the frames read so far; answers each frame's
/// event name and data.
async fn read_frames(
    body: Body,
    enough: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut stream = body.into_data_stream();
    let mut text = String::new();
    let mut frames = Vec::new();
    use futures::StreamExt;
    while !enough(&frames) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .to_string()
            };
            frames.push((field("event: "), field("data: ")));
        }
    }
    frames
}

/// How many of `frames` are events named `name`.
fn count(frames: &[(String, String)], name: &str) -> usize {
    frames.iter().filter(|(n, _)| n == name).count()
}

/// Reads SSE frames until `want` events named `name` arrived; answers their data.
async fn read_events(body: Body, name: &str, want: usize) -> Vec<Value> {
    read_frames(body, |frames| count(frames, name) >= want)
        .await
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, data)| serde_json::from_str(&data).unwrap())
        .collect()
}

/// Opens an event stream at `path`.
async fn open_events(app: &Router, path: &str) -> axum::response::Response {
    let events = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK, "{path}");
    events
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

    chain.register_bob().await;
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

    chain.offer_bob(2).await;
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

    // A worker listens for its assignments from here on, and another follows the blocks only.
    let events = open_events(&chain.app, "/v1/events?provider=0").await;
    let blocks = open_events(&chain.app, "/v1/events?assignments=false").await;

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
    // Each unit carries its own argument line, split on spaces, whether it runs or waits.
    assert_eq!(job["units"][0]["args"], json!(["--frame", "0"]));
    assert_eq!(job["units"][1]["args"], json!(["--frame", "1"]));
    assert_eq!(job["units"][2]["args"], json!([]));
    assert!(job["accounts"]["escrowed"].as_str().unwrap() != "0");
    assert_eq!(job["accounts"]["held"], job["accounts"]["escrowed"]);

    let (_, gpu_job) = get(&chain.app, "/v1/jobs/1").await;
    assert_eq!(gpu_job["units"][0]["state"], "waiting");
    assert_eq!(
        gpu_job["units"][0]["args"],
        Value::Null,
        "no lines of its own"
    );
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
    assert_eq!(mine["next"], Value::Null);

    // History a page at a time, newest first: `next` is where the older page starts, and
    // none follows the oldest job.
    let page_ids = |page: &Value| -> Vec<u64> {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_u64().unwrap())
            .collect()
    };
    let (_, newest) = get(&chain.app, "/v1/jobs?height=0&limit=1").await;
    assert_eq!((page_ids(&newest), &newest["next"]), (vec![1], &json!(0)));
    let (_, older) = get(&chain.app, "/v1/jobs?height=0&from=0&limit=1").await;
    assert_eq!((page_ids(&older), &older["next"]), (vec![0], &Value::Null));
    let (_, beyond) = get(&chain.app, "/v1/jobs?height=0&from=99&limit=5").await;
    assert_eq!(
        (page_ids(&beyond), &beyond["next"]),
        (vec![1, 0], &Value::Null)
    );
    // A height above every job's ends the scan at once, with no page after it.
    let late = format!("/v1/jobs?height={}&limit=1", submitted + 1_000);
    let (_, none) = get(&chain.app, &late).await;
    assert_eq!((page_ids(&none), &none["next"]), (vec![], &Value::Null));

    // The assignments reached the worker's event stream.
    let assignments = read_events(events.into_body(), "assignment", 2).await;
    assert_eq!(assignments[0]["job"], 0);
    assert_eq!(assignments[0]["provider"], 0);
    assert_eq!(assignments[1]["unit"], 1);
    // The blocks that assigned them reached the other stream, and nothing else did.
    let frames = read_frames(blocks.into_body(), |frames| count(frames, "block") >= 2).await;
    let names: Vec<&str> = frames.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, vec!["block", "block"]);

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
    let (stored, status, early) = bob_offers_outputs(&chain.app, 0).await;
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
                seal: result_seal(&digest, fuel, 0, 0),
            }]),
        )
        .await;
    let (_, work) = get(&chain.app, "/v1/providers/0/work").await;
    assert_eq!(work["work"][0]["status"], "committed");
    assert_eq!(
        work["work"][0]["reveal_open"], false,
        "the audit is drawn first"
    );
    chain.node.produce_blocks_to_the_audit_draw();
    let (_, work) = get(&chain.app, "/v1/providers/0/work").await;
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
    let (status, body) = call(&chain.app, unsigned_outputs(0, 0, &wrong_stored["hash"])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "digest_mismatch");
    // Bytes that are no archive are refused too.
    let (_, junk) = put_blob(&chain.app, b"not an archive").await;
    let (status, body) = call(
        &chain.app,
        signed_outputs(0, 1, 0, hash_of(&junk["hash"]), &bob()),
    )
    .await;
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
    // And the blob store's commits and the writes they carried.
    let writes = format!("exo_blob_store_writes_total {}\n", chain.store.writes());
    assert!(
        chain.store.writes() > 0 && metrics.contains(&writes),
        "{metrics}"
    );
    let commits = format!("exo_blob_store_commits_total {}\n", chain.store.commits());
    assert!(metrics.contains(&commits), "{metrics}");
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
        (
            "/v1/events?assignments=maybe",
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
        blob_request([0xcd; 32], Body::from("other bytes"), &alice()),
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
    chain
        .store
        .damage(&hash_of(&stored["hash"]), b"precious bytez".to_vec())
        .await
        .unwrap();
    let (status, body) = get(&chain.app, &format!("/v1/blobs/{hash}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"], "blob_corrupt");
    assert!(chain.store.size(&hash_of(&stored["hash"])).await.is_err());
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
        blob_request(blob_hash(&[3u8; 120]), Body::from_stream(chunks), &alice()),
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

/// Another node's store, as [`exo_api::PeerBlobs`] sees it: here a map, with one blob whose
/// bytes do not match its name (a lying or corrupted peer).
#[derive(Debug, Default)]
struct Peer {
    blobs: std::collections::HashMap<Hash32, Vec<u8>>,
    asked: std::sync::atomic::AtomicUsize,
    /// How long the peer takes to answer.
    delay: Duration,
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
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            found
        })
    }

    fn outputs(
        &self,
        _job: u64,
        _unit: u32,
        _height: u64,
    ) -> futures::future::BoxFuture<'_, Option<Hash32>> {
        Box::pin(async { None })
    }
}

/// A node with an empty store of its own that fills misses from `peer`.
fn with_peer(peer: std::sync::Arc<Peer>) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = router_with(
        chain().node,
        ApiConfig {
            limits: ApiLimits {
                rate_per_sec: 0,
                ..ApiLimits::default()
            },
            blobs: Some(BlobStore::open(dir.path(), 1 << 30).unwrap()),
            peers: Some(peer),
        },
    );
    (app, dir)
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
    let (app, _dir) = with_peer(peer.clone());
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

impl Chain {
    /// Bob registers as provider 0 with a bond of 10 EXO.
    async fn register_bob(&mut self) {
        let register = Action::RegisterProvider {
            resources: provider_resources(),
            bond: Amount::from_exo(10),
        };
        self.send(&bob(), 2, register).await;
    }

    /// Bob offers `slots` slots at 1,000 per unit.
    async fn offer_bob(&mut self, slots: u32) {
        let offer = Action::PostOffer {
            slots,
            price_per_unit: Amount(1_000),
            expiry_secs: exo_api::testing::GENESIS_TIME_MS / 1_000 + 1_000,
        };
        self.send(&bob(), 2, offer).await;
    }

    /// Bob, the provider of replica 0 of unit 0 of job 0 ([`running_unit`]), commits and
    /// reveals `digest`: at trust 1 the unit is accepted with it.
    async fn prove_unit_0(&mut self, digest: Hash32) {
        let reveal = self.commit_unit_0(digest).await;
        self.send(&bob(), 2, Action::RevealResults(vec![reveal]))
            .await;
    }

    /// Bob commits `digest` for replica 0 of unit 0 of job 0 and the chain goes on to the
    /// audit draw: the reveal that would open it.
    async fn commit_unit_0(&mut self, digest: Hash32) -> ResultReveal {
        let (salt, fuel) = ([1u8; 32], 10);
        let commitment = result_commitment(&digest, fuel, &salt, &bob().public_key());
        let commit = ResultCommit {
            job: 0,
            unit: 0,
            replica: 0,
            commitment,
            seal: result_seal(&digest, fuel, 0, 0),
        };
        self.send(&bob(), 2, Action::CommitResults(vec![commit]))
            .await;
        self.node.produce_blocks_to_the_audit_draw();
        ResultReveal {
            job: 0,
            unit: 0,
            replica: 0,
            digest,
            fuel,
            salt,
        }
    }
}

/// A provider with an offer, a published app and a job of one unit at trust 1, matched to the
/// provider (bob, provider 0): job 0, unit 0, replica 0.
async fn running_unit(chain: &mut Chain) {
    chain.register_bob().await;
    chain.offer_bob(1).await;
    let (_, module) = put_blob(&chain.app, b"\0asm module").await;
    chain
        .send(
            &alice(),
            1,
            Action::PublishApp {
                module_hash: hash_of(&module["hash"]),
                name: "render".into(),
                version: "1".into(),
                royalty_per_unit: Amount(0),
            },
        )
        .await;
    let spec = JobSpec {
        app: hash_of(&module["hash"]),
        app_developer: alice().public_key(),
        inputs: vec![],
        unit_args: vec![],
        units: 1,
        requirements: requirements(None),
        max_price_per_unit: Amount(2_000),
        trust: 1,
    };
    chain
        .send(&alice(), 1, Action::SubmitJob(Box::new(spec)))
        .await;
    let (_, job) = get(&chain.app, "/v1/jobs/0").await;
    assert_eq!(job["units"][0]["state"], "running", "{job}");
}

/// A node that misses a unit's outputs asks its peers with its own finalized height. A peer
/// a block behind, which has not executed the accepting reveal yet, answered at once that the
/// unit was not accepted, so a requester whose node was a block ahead of the worker's could
/// not download the outputs of a job it had just seen done. Now the peer waits (briefly) for
/// that height and answers from it.
#[tokio::test]
async fn a_peer_a_block_behind_waits_for_the_asked_height_before_answering() {
    let mut chain = chain();
    running_unit(&mut chain).await;
    let (stored, status, body) = bob_offers_outputs(&chain.app, 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let digest = unit_output(0).result_digest();
    let reveal = chain.commit_unit_0(digest).await;
    // The accepting reveal waits in the mempool: the asking node has finalized its block,
    // this one not yet.
    chain
        .admit(&bob(), 2, Action::RevealResults(vec![reveal]))
        .await;
    let accepted_at = chain.node.status().finalized_height + 1;
    let from_peer = |height: u64| {
        Request::get(format!("/v1/outputs/0/0?min_height={height}"))
            .header(exo_api::wire::PEER_HEADER, "1")
            .body(Body::empty())
            .unwrap()
    };
    let app = chain.app.clone();
    let asked = tokio::spawn(async move { call(&app, from_peer(accepted_at)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    chain.node.produce_block();
    let (status, outputs) = asked.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{outputs}");
    assert_eq!(outputs["archive"], stored["hash"]);
    assert_eq!(outputs["digest"], hex::encode(digest));

    // A height this node does not reach in time gets the answer of the height it has; a
    // height that is no number is refused.
    let (status, _) = call(&chain.app, from_peer(accepted_at + 3)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&chain.app, "/v1/outputs/0/0?min_height=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = get(&chain.app, "/v1/outputs/0/0?at=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// H3: anyone watching the events could register 16 junk archives for a running unit and so
/// lock its real provider out. Now only the provider of one of the unit's replicas may offer
/// an archive before the verdict, each replica holds one slot, and the honest archive is
/// served once the unit is accepted.
#[tokio::test]
async fn a_stranger_cannot_fill_a_units_output_slots() {
    let mut chain = chain();
    running_unit(&mut chain).await;
    let stranger = PrivateKey::from_seed(3);
    for i in 0..20u32 {
        let junk = Archive {
            outcome: "ok".into(),
            stdout: format!("junk {i}\n").into_bytes(),
            dirs: vec![],
            files: vec![],
        };
        let (_, stored) = put_blob(&chain.app, &pack(&junk).unwrap()).await;
        let archive = hash_of(&stored["hash"]);
        // Unsigned: refused before the verdict.
        let (status, body) = call(&chain.app, unsigned_outputs(0, 0, &stored["hash"])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "unsigned", "{body}");
        // Signed by someone who is not the replica's provider, as the replica or another.
        for replica in [0, 1, i] {
            let (status, body) = call(
                &chain.app,
                signed_outputs(0, 0, replica, archive, &stranger),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(body["error"], "not_a_replica", "{body}");
        }
        // Requester and provider are not interchangeable either.
        let (status, _) = call(&chain.app, signed_outputs(0, 0, 0, archive, &alice())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // A signature that is not hex, or not a signature: a 400 with its reason.
    for bad in ["zz", "00"] {
        let (_, stored) = put_blob(&chain.app, &pack(&unit_output(0)).unwrap()).await;
        let (status, body) = call(
            &chain.app,
            Request::put("/v1/outputs/0/0")
                .body(Body::from(
                    json!({ "archive": stored["hash"], "replica": 0, "signature": bad })
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "bad_signature", "{body}");
    }

    // The provider's first archive, then its second, replace each other: one slot per replica.
    let (first, status, body) = bob_offers_outputs(&chain.app, 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (stored, status, body) = bob_offers_outputs(&chain.app, 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], false);
    let index = chain.store.output_index(0, 0).await.unwrap();
    assert_eq!(index.candidates.len(), 1, "{index:?}");

    // Commit, reveal: the honest archive is the unit's outputs.
    chain.prove_unit_0(unit_output(0).result_digest()).await;
    let (status, outputs) = get(&chain.app, "/v1/outputs/0/0").await;
    assert_eq!(status, StatusCode::OK, "{outputs}");
    assert_eq!(outputs["archive"], stored["hash"]);
    // After the verdict anyone may register the accepted archive (a peer filling its index),
    // but nothing else.
    let (status, body) = call(&chain.app, unsigned_outputs(0, 0, &stored["hash"])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], true);
    let (status, body) = call(&chain.app, unsigned_outputs(0, 0, &first["hash"])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "digest_mismatch");
}

/// `PUT /v1/outputs/{job}/{unit}/replicas/{replica}?archive=` of `bytes`, signed by `key` as
/// the replica's provider over `archive`.
fn replica_archive(
    (job, unit, replica): (u64, u32, u32),
    archive: Hash32,
    bytes: Vec<u8>,
    key: &PrivateKey,
) -> Request<Body> {
    let claim = exo_api::wire::OutputsPut::signed(CHAIN, job, unit, replica, archive, key);
    Request::put(format!(
        "/v1/outputs/{job}/{unit}/replicas/{replica}?archive={}",
        hex::encode(archive)
    ))
    .header(exo_api::wire::SIGNATURE_HEADER, claim.signature.unwrap())
    .body(Body::from(bytes))
    .unwrap()
}

/// The worker's path: one request stores a replica's archive and registers it. Only the
/// replica's provider may, the signature is checked before the body is stored, and the body
/// must be the archive the signature names.
#[tokio::test]
async fn a_replicas_provider_uploads_and_registers_its_archive_in_one_request() {
    let mut chain = chain();
    running_unit(&mut chain).await;
    let bytes = pack(&unit_output(0)).unwrap();
    let archive = blob_hash(&bytes);

    // A stranger, as this replica or another: refused, and nothing is stored.
    let stranger = PrivateKey::from_seed(3);
    for replica in [0, 1] {
        let request = replica_archive((0, 0, replica), archive, bytes.clone(), &stranger);
        let (status, body) = call(&chain.app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"], "not_a_replica", "{body}");
    }
    // The requester is no provider of it either.
    let request = replica_archive((0, 0, 0), archive, bytes.clone(), &alice());
    assert_eq!(call(&chain.app, request).await.0, StatusCode::FORBIDDEN);
    assert!(
        chain.store.size(&archive).await.is_err(),
        "a refused body was stored"
    );

    // Unsigned, or without the archive's hash: 4xx with the reason.
    let unsigned = Request::put(format!(
        "/v1/outputs/0/0/replicas/0?archive={}",
        hex::encode(archive)
    ))
    .body(Body::from(bytes.clone()))
    .unwrap();
    let (status, body) = call(&chain.app, unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unsigned", "{body}");
    let mut nameless = replica_archive((0, 0, 0), archive, bytes.clone(), &bob());
    *nameless.uri_mut() = "/v1/outputs/0/0/replicas/0".parse().unwrap();
    let (status, body) = call(&chain.app, nameless).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_query", "{body}");
    let request = replica_archive((0, 0, 0), archive, bytes.clone(), &bob());
    let (parts, body) = request.into_parts();
    let mut bad_replica = Request::from_parts(parts, body);
    *bad_replica.uri_mut() = format!(
        "/v1/outputs/0/0/replicas/x?archive={}",
        hex::encode(archive)
    )
    .parse()
    .unwrap();
    let (status, body) = call(&chain.app, bad_replica).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_id", "{body}");

    // The provider's signature over one archive does not carry another body.
    let other = pack(&unit_output(1)).unwrap();
    let request = replica_archive((0, 0, 0), archive, other, &bob());
    let (status, body) = call(&chain.app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "hash_mismatch", "{body}");

    // The provider: stored, owned by it, and registered for its replica.
    let request = replica_archive((0, 0, 0), archive, bytes.clone(), &bob());
    let (status, body) = call(&chain.app, request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["archive"], hex::encode(archive));
    assert_eq!(body["accepted"], false);
    assert_eq!(
        chain.store.size(&archive).await.unwrap(),
        bytes.len() as u64
    );
    let owner = chain.store.ownership(&archive).expect("an owned blob");
    assert_eq!(
        owner.owner,
        Some(exo_api::wire::address_bytes(&bob().public_key()))
    );
    let index = chain.store.output_index(0, 0).await.unwrap();
    assert_eq!(index.candidates.len(), 1, "{index:?}");

    // Once the unit is accepted, its outputs are served.
    chain.prove_unit_0(unit_output(0).result_digest()).await;
    let (status, outputs) = get(&chain.app, "/v1/outputs/0/0").await;
    assert_eq!(status, StatusCode::OK, "{outputs}");
    assert_eq!(outputs["archive"], hex::encode(archive));
}

/// H1: a one-byte range of a big blob used to hash the whole blob first (64 MiB of work per
/// request). Ranges are now served from the file verified at write; only a whole download is
/// checked, as it streams.
#[tokio::test]
async fn a_ranged_get_does_not_hash_the_whole_blob() {
    let chain = chain();
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let (status, stored) = put_blob(&chain.app, &big).await;
    assert_eq!(status, StatusCode::CREATED, "{stored}");
    let path = format!("/v1/blobs/{}", stored["hash"].as_str().unwrap());
    let before = chain.store.hashed_bytes();
    for i in 0..16u64 {
        let (status, headers, body) = raw(
            &chain.app,
            Request::get(&path)
                .header(header::RANGE, format!("bytes={i}-{i}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(headers[header::CONTENT_LENGTH], "1");
        assert_eq!(body, [big[i as usize]]);
    }
    assert_eq!(
        chain.store.hashed_bytes(),
        before,
        "a range hashed the blob"
    );
    // The whole blob is checked once, as it is served.
    let (status, _, body) = raw(&chain.app, Request::get(&path).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, big);
    assert_eq!(chain.store.hashed_bytes(), before + big.len() as u64);
}

/// H1: a big blob corrupted on disk is cut off before its last chunk and deleted, never served
/// whole.
#[tokio::test]
async fn a_big_corrupted_blob_is_cut_off_and_deleted() {
    let chain = chain();
    let big = vec![7u8; 3 << 20];
    let (_, stored) = put_blob(&chain.app, &big).await;
    let hash = stored["hash"].as_str().unwrap().to_string();
    let file = chain.blob_dir.join("blobs").join(&hash);
    let mut bad = big.clone();
    bad[1 << 20] = 8;
    std::fs::write(&file, &bad).unwrap();
    let response = chain
        .app
        .clone()
        .oneshot(
            Request::get(format!("/v1/blobs/{hash}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.into_body().collect().await.is_err());
    assert!(!file.exists());
}

/// H1: eight clients asking at once for a blob this node lacks used to make eight downloads
/// of it from peers (each held whole in memory). They now share one.
#[tokio::test]
async fn concurrent_pulls_of_one_blob_are_merged() {
    let held = vec![3u8; 100_000];
    let held_hash = blob_hash(&held);
    let peer = std::sync::Arc::new(Peer {
        blobs: [(held_hash, held.clone())].into(),
        delay: Duration::from_millis(200),
        ..Peer::default()
    });
    let (app, _dir) = with_peer(peer.clone());
    let path = format!("/v1/blobs/{}", hex::encode(held_hash));
    let gets = (0..8).map(|_| raw(&app, Request::get(&path).body(Body::empty()).unwrap()));
    for (status, _, body) in futures::future::join_all(gets).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, held);
    }
    assert_eq!(peer.asked.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// H1: requests that take too long are answered 408, and past the concurrency bound new
/// requests are refused at once (429 `busy`) rather than queued behind the slow ones.
#[tokio::test]
async fn slow_requests_time_out_and_a_flood_is_refused_at_once() {
    let chain = chain_with(
        ApiLimits {
            rate_per_sec: 0,
            node_timeout_ms: 60_000,
            request_timeout_ms: 500,
            max_concurrent_requests: 2,
            ..ApiLimits::default()
        },
        1 << 30,
    );
    chain
        .node
        .set_state_mode(exo_api::testing::StateMode::Hangs);
    let address = address_to_hex(&alice().public_key());
    let path = format!("/v1/accounts/{address}");
    let slow = || get(&chain.app, &path);
    let started = std::time::Instant::now();
    let (first, second, third) = tokio::join!(slow(), slow(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = get(&chain.app, "/v1/status").await;
        (answer, started.elapsed())
    });
    for (status, body) in [first, second] {
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
        assert_eq!(body["error"], "request_timeout", "{body}");
    }
    let ((status, body), waited) = third;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "busy", "{body}");
    assert!(waited < Duration::from_millis(400), "queued for {waited:?}");
    // Once they are gone, the node answers again.
    chain.node.set_state_mode(exo_api::testing::StateMode::Ok);
    let (status, _) = get(&chain.app, &path).await;
    assert_eq!(status, StatusCode::OK);
}

/// H2: anyone could fill a node's blob store (4 GiB) with junk, never deleted, making every
/// worker on it a no-show. Uploads are now signed by a funded account and counted against its
/// quota; other accounts are still served.
#[tokio::test]
async fn a_stranger_cannot_fill_the_blob_store() {
    let chain = chain_with(
        ApiLimits {
            rate_per_sec: 0,
            max_account_blob_bytes: 1_000,
            ..ApiLimits::default()
        },
        1 << 30,
    );
    let junk = vec![9u8; 600];
    let hash = blob_hash(&junk);
    // Unsigned.
    let (status, body) = call(
        &chain.app,
        Request::put(format!("/v1/blobs?hash={}", hex::encode(hash)))
            .body(Body::from(junk.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unsigned");
    // Signed by an account with nothing on it.
    let nobody = PrivateKey::from_seed(3);
    let (status, body) = call(
        &chain.app,
        blob_request(hash, Body::from(junk.clone()), &nobody),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "unfunded");
    // Claiming to be a funded account with another key's signature.
    let mut forged = blob_request(hash, Body::from(junk.clone()), &nobody);
    forged.headers_mut().insert(
        exo_api::wire::SIGNER_HEADER,
        address_to_hex(&alice().public_key()).parse().unwrap(),
    );
    let (status, body) = call(&chain.app, forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "bad_signer");
    // A funded account, up to its quota.
    let (status, body) = put_blob(&chain.app, &junk).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let more = vec![8u8; 600];
    let (status, body) = put_blob(&chain.app, &more).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "quota_exceeded");
    assert_eq!(
        chain
            .store
            .owned_bytes(&exo_api::wire::address_bytes(&alice().public_key())),
        600
    );
    // The same blob again costs nothing more; another account is served.
    let (status, _) = put_blob(&chain.app, &junk).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(
        &chain.app,
        blob_request(blob_hash(&more), Body::from(more.clone()), &bob()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// H2: blobs nothing references are collected after the grace period, and a job's inputs once
/// the job ended; an app's module and an open job's inputs stay; outputs stay while their job
/// is open and for the retention after.
#[tokio::test]
async fn unreferenced_blobs_and_the_inputs_of_ended_jobs_are_collected() {
    let mut chain = chain();
    let limits = ApiLimits::default();
    running_unit(&mut chain).await;
    let (_, junk) = put_blob(&chain.app, b"never referenced").await;
    let (_, input) = put_blob(&chain.app, b"an input").await;
    let (_, module) = put_blob(&chain.app, b"\0asm module").await;
    // Outputs of job 0's unit, registered by its provider.
    let (outputs, status, _) = bob_offers_outputs(&chain.app, 0).await;
    assert_eq!(status, StatusCode::OK);
    // Job 1 uses the input; nobody offers for it, so it stays open.
    let spec = JobSpec {
        app: hash_of(&module["hash"]),
        app_developer: alice().public_key(),
        inputs: vec![InputRef {
            name: "in.txt".into(),
            hash: hash_of(&input["hash"]),
            size: 8,
        }],
        unit_args: vec![],
        units: 1,
        requirements: requirements(Some("rtx4090")),
        max_price_per_unit: Amount(2_000),
        trust: 1,
    };
    chain
        .send(&alice(), 1, Action::SubmitJob(Box::new(spec)))
        .await;
    let store = chain.store.clone();
    let exists = |hash: &Value| {
        let hash = hash_of(hash);
        let store = store.clone();
        async move { store.size(&hash).await.is_ok() }
    };
    // Within the grace period nothing goes.
    let now = exo_api::blobs::unix_now_secs();
    let collected = exo_api::market::collect_blobs(&chain.node, &limits, &chain.store, now)
        .await
        .unwrap();
    assert_eq!(collected.blobs, 0);
    // After it, only the junk.
    let later = now + limits.blob_grace_secs + 10;
    let collected = exo_api::market::collect_blobs(&chain.node, &limits, &chain.store, later)
        .await
        .unwrap();
    assert_eq!(collected.blobs, 1, "{collected:?}");
    assert!(!exists(&junk["hash"]).await);
    for kept in [&input, &module, &outputs] {
        assert!(exists(&kept["hash"]).await, "{kept}");
    }
    // The job ends: its input goes; the module (an app's) stays.
    chain.send(&alice(), 1, Action::CancelJob { job: 1 }).await;
    exo_api::market::collect_blobs(&chain.node, &limits, &chain.store, later)
        .await
        .unwrap();
    assert!(!exists(&input["hash"]).await);
    assert!(exists(&module["hash"]).await);
    assert!(exists(&outputs["hash"]).await);
    // Job 0 is still open: its outputs stay even after the retention.
    let much_later = later + limits.outputs_retention_secs + 10;
    exo_api::market::collect_blobs(&chain.node, &limits, &chain.store, much_later)
        .await
        .unwrap();
    assert!(exists(&outputs["hash"]).await);
    // Once job 0 ended too (its unit accepted), after the retention.
    chain.prove_unit_0(unit_output(0).result_digest()).await;
    let (_, job) = get(&chain.app, "/v1/jobs/0").await;
    assert_ne!(job["state"], "open", "{job}");
    exo_api::market::collect_blobs(&chain.node, &limits, &chain.store, later)
        .await
        .unwrap();
    assert!(
        exists(&outputs["hash"]).await,
        "collected within the retention"
    );
    exo_api::market::collect_blobs(&chain.node, &limits, &chain.store, much_later)
        .await
        .unwrap();
    assert!(!exists(&outputs["hash"]).await);
    assert!(exists(&module["hash"]).await);
}

/// M6: every client behind one address (a NAT, a host with workers and a requester) shared one
/// token bucket, so reads could starve transactions and uploads. Unsigned reads now spend the
/// address's budget and signed requests their signer's; failed signed requests spend the
/// address's failure budget, so forging is not free.
#[tokio::test]
async fn signed_requests_behind_one_address_have_their_own_budget() {
    let chain = chain_with(
        ApiLimits {
            rate_per_sec: 1,
            rate_burst: 2,
            signed_rate_per_sec: 1,
            signed_rate_burst: 3,
            ..ApiLimits::default()
        },
        1 << 30,
    );
    // Reads spend the address's budget.
    for _ in 0..2 {
        assert_eq!(get(&chain.app, "/v1/status").await.0, StatusCode::OK);
    }
    let (status, body) = get(&chain.app, "/v1/status").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Transactions are still taken: alice's budget, then bob's.
    let submit = |key: &PrivateKey, nonce: u64| {
        let tx = UnsignedTx {
            chain_id: CHAIN.into(),
            sender: key.public_key(),
            nonce,
            fee: Amount(1_000),
            action: Action::Transfer {
                to: bob().public_key(),
                amount: Amount(1),
            },
        }
        .sign(key);
        Request::post("/v1/txs")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(submit_body(&tx)))
            .unwrap()
    };
    for nonce in 0..3 {
        let (status, body) = call(&chain.app, submit(&alice(), nonce)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = call(&chain.app, submit(&alice(), 3)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, body) = call(&chain.app, submit(&bob(), 0)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Garbage spends the address's failure budget; past it, the address's signed requests
    // wait, before any signature is checked.
    let garbage = || {
        Request::post("/v1/txs")
            .body(Body::from(json!({ "tx": "00" }).to_string()))
            .unwrap()
    };
    for _ in 0..2 {
        assert_eq!(call(&chain.app, garbage()).await.0, StatusCode::BAD_REQUEST);
    }
    let (status, body) = call(&chain.app, garbage()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, _) = call(&chain.app, submit(&bob(), 1)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
