//! The market commands end to end: `exo provider`, `exo app`, `exo job` and `exo exec`
//! against an in-memory node (real ledger) with a blob store, served on loopback.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer;
use exo_api::{ApiConfig, ApiLimits, BlobStore, serve_with, testing::MemoryNode};
use exo_client::keyfile;
use exo_ledger::{Genesis, GenesisAccount, Params, modules::market::MarketParams};
use exo_types::{Amount, PrivateKey, address_to_hex};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

const CHAIN: &str = "exo-cli-market";

struct Node {
    url: String,
    _dir: tempfile::TempDir,
    // Dropping the runtime stops the server and the block producer.
    _runtime: tokio::runtime::Runtime,
}

/// A node where seeds 1 (requester) and 2 (provider) hold 1000 EXO, producing a block every
/// 50 ms, with a blob store.
fn start_node() -> Node {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params: Params {
            market: MarketParams {
                audit_ppm: 1,
                // No probation: the test gives two units at once to a new provider.
                probation_slots: 16,
                ..MarketParams::default()
            },
            ..Params::default()
        },
        accounts: [1, 2]
            .iter()
            .map(|seed| GenesisAccount {
                address: address_to_hex(&PrivateKey::from_seed(*seed).public_key()),
                balance: Amount::from_exo(1_000),
            })
            .collect(),
        validators: vec![address_to_hex(&PrivateKey::from_seed(9).public_key())],
    };
    let node = MemoryNode::new(genesis, PrivateKey::from_seed(9).public_key());
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path().join("blobs"), 1 << 30).unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ApiConfig {
        limits: ApiLimits {
            rate_per_sec: 0,
            ..ApiLimits::default()
        },
        blobs: Some(blobs),
        ..ApiConfig::default()
    };
    runtime.spawn(serve_with(
        listener,
        node.clone(),
        config,
        std::future::pending(),
        100,
    ));
    runtime.spawn(node.run(Duration::from_millis(50)));
    Node {
        url,
        _dir: dir,
        _runtime: runtime,
    }
}

fn exo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exo"))
        .args(args)
        .env_remove("EXO_NODE")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

fn write_key(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let path = dir.join(name);
    keyfile::write_new(&path, &PrivateKey::from_seed(seed)).unwrap();
    path
}

/// Registers the provider of key file `pk` (2 cores, 1 GiB) and posts its offer of 2 slots at
/// 0.000001 EXO per compute unit.
fn register_and_offer(pk: &str, url: &str) {
    for args in [
        vec![
            "provider",
            "register",
            "--key",
            pk,
            "--cores",
            "2",
            "--memory-mib",
            "1024",
        ],
        vec![
            "provider", "offer", "--key", pk, "--slots", "2", "--price", "0.000001",
        ],
    ] {
        let mut args = args.clone();
        args.extend(["--node", url]);
        let out = exo(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn provider_offer_job_submit_and_status() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let provider_key = write_key(dir.path(), "provider.key", 2);
    let requester_key = write_key(dir.path(), "requester.key", 1);
    let pk = provider_key.to_str().unwrap();
    let rk = requester_key.to_str().unwrap();
    let url = node.url.as_str();

    let registered = exo(&[
        "provider",
        "register",
        "--key",
        pk,
        "--cores",
        "4",
        "--memory-mib",
        "4096",
        "--region",
        "eu-west",
        "--node",
        url,
        "--json",
    ]);
    assert!(registered.status.success(), "{}", stderr(&registered));
    let registered = json(&registered);
    assert_eq!(registered["status"], "ok", "{registered}");
    assert_eq!(registered["provider"], 0);

    let offered = exo(&[
        "provider", "offer", "--key", pk, "--slots", "2", "--price", "0.000001", "--node", url,
        "--json",
    ]);
    assert!(offered.status.success(), "{}", stderr(&offered));
    let offered = json(&offered);
    assert_eq!(offered["status"], "ok", "{offered}");
    assert_eq!(offered["offer"], 0);
    assert_eq!(offered["price_per_unit"], "1000");

    let shown = exo(&["provider", "show", "--key", pk, "--node", url, "--json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(json(&shown)["resources"]["region"], "eu-west");
    let shown = exo(&["provider", "show", "0", "--node", url]);
    assert!(String::from_utf8_lossy(&shown.stdout).starts_with("provider 0\n"));

    // A module file that no app has yet: published on the fly, then the job is submitted.
    let module = dir.path().join("render.wasm");
    std::fs::write(&module, b"\0asm not really a module").unwrap();
    let input = dir.path().join("scene.txt");
    std::fs::write(&input, b"a scene").unwrap();
    let args_file = dir.path().join("args.txt");
    std::fs::write(&args_file, "--frame 0\n--frame 1\n--frame 2\n").unwrap();
    let submitted = exo(&[
        "job",
        "submit",
        "--key",
        rk,
        "--app",
        module.to_str().unwrap(),
        "--units",
        "3",
        "--memory-mib",
        "128",
        "--max-price",
        "0.000002",
        "--fuel-limit",
        "1000000000",
        "--input",
        input.to_str().unwrap(),
        "--unit-args",
        args_file.to_str().unwrap(),
        "--node",
        url,
        "--json",
    ]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let submitted = json(&submitted);
    assert_eq!(submitted["status"], "ok", "{submitted}");
    assert_eq!(submitted["job_id"], 0);
    assert_eq!(submitted["published"]["name"], "render");

    let apps = exo(&["app", "list", "--node", url, "--json"]);
    assert_eq!(json(&apps)["apps"][0]["name"], "render");

    // The job is matched at the end of its block: two units run, one waits for a slot.
    let mut status = Value::Null;
    for _ in 0..50 {
        let out = exo(&["job", "status", "0", "--node", url, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        status = json(&out);
        if status["counts"]["running"] == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status["counts"]["running"], 2, "{status}");
    assert_eq!(status["units"][0]["state"], "running");
    assert_eq!(status["units"][0]["replicas"][0]["provider"], 0);
    assert_eq!(status["units"][2]["state"], "waiting");
    assert_eq!(
        status["units"][2]["reason"]["code"], "slots_taken",
        "{status}"
    );
    assert_eq!(status["inputs"][0]["name"], "scene.txt");

    // A job nobody can run says why.
    let gpu = exo(&[
        "job",
        "submit",
        "--key",
        rk,
        "--app",
        module.to_str().unwrap(),
        "--units",
        "1",
        "--gpu",
        "rtx4090",
        "--max-price",
        "0.000002",
        "--node",
        url,
        "--json",
    ]);
    assert!(gpu.status.success(), "{}", stderr(&gpu));
    let gpu_id = json(&gpu)["job_id"].as_u64().unwrap().to_string();
    let mut reason = String::new();
    for _ in 0..50 {
        let out = exo(&["job", "status", &gpu_id, "--node", url, "--json"]);
        if let Some(r) = json(&out)["units"][0]["reason"]["sentence"].as_str() {
            reason = r.to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reason.starts_with("no provider with gpu"), "{reason}");

    // Cancelling it refunds the escrow.
    let cancelled = exo(&[
        "job", "cancel", "--key", rk, &gpu_id, "--node", url, "--json",
    ]);
    assert!(cancelled.status.success(), "{}", stderr(&cancelled));
    assert_eq!(json(&cancelled)["status"], "ok");
    let out = exo(&["job", "status", &gpu_id, "--node", url, "--json"]);
    let job = json(&out);
    assert_eq!(job["state"], "cancelled");
    assert_eq!(job["units"][0]["state"], "cancelled");
    assert_eq!(job["accounts"]["held"], "0");

    // No outputs yet.
    let results = exo(&[
        "job",
        "results",
        "0",
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--node",
        url,
    ]);
    assert_eq!(results.status.code(), Some(0), "{}", stderr(&results));
}

/// `--estimate` runs unit 0 here first: the job is submitted with a fuel limit near what the
/// unit burnt instead of the worst case, and the expected cost is priced at the book's
/// cheapest ask; a unit 0 that fails here submits nothing.
#[test]
fn an_estimated_job_runs_unit_zero_here_first_and_escrows_near_its_cost() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let provider_key = write_key(dir.path(), "provider.key", 2);
    let requester_key = write_key(dir.path(), "requester.key", 1);
    let (pk, rk, url) = (
        provider_key.to_str().unwrap(),
        requester_key.to_str().unwrap(),
        node.url.as_str(),
    );
    register_and_offer(pk, url);

    let submitted = exo(&[
        "job",
        "submit",
        "--key",
        rk,
        "--app",
        "hello",
        "--units",
        "4",
        "--trust",
        "1",
        "--max-price",
        "0.000002",
        "--estimate",
        "--node",
        url,
        "--json",
    ]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let submitted = json(&submitted);
    assert_eq!(submitted["status"], "ok", "{submitted}");
    let estimate = &submitted["estimate"];
    let fuel_used = estimate["fuel_used"].as_u64().unwrap();
    let fuel_limit = estimate["fuel_limit"].as_u64().unwrap();
    assert!(fuel_used > 0, "{estimate}");
    assert_eq!(fuel_limit, (fuel_used + fuel_used / 2).max(10_000_000));
    assert_eq!(estimate["ask"], "0.000001", "{estimate}");
    assert!(estimate["expected_cost"].is_string(), "{estimate}");
    let id = submitted["job_id"].as_u64().unwrap().to_string();
    let job = json(&exo(&["job", "status", &id, "--node", url, "--json"]));
    assert_eq!(job["fuel_limit"], fuel_limit, "{job}");

    // A module that does not run here would not run on a provider either.
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm not really a module").unwrap();
    let refused = exo(&[
        "job",
        "submit",
        "--key",
        rk,
        "--app",
        broken.to_str().unwrap(),
        "--units",
        "1",
        "--max-price",
        "0.000002",
        "--estimate",
        "--node",
        url,
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("unit 0 ended invalid_module"),
        "{}",
        stderr(&refused)
    );
    let next = (submitted["job_id"].as_u64().unwrap() + 1).to_string();
    assert!(
        !exo(&["job", "status", &next, "--node", url])
            .status
            .success()
    );
}

#[test]
fn argument_errors_are_one_line_before_any_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "k", 3);
    let key = key.to_str().unwrap();
    // Nothing listens here: every error below must come before contacting a node.
    let node = "http://127.0.0.1:9";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "provider",
                "register",
                "--key",
                key,
                "--cores",
                "0",
                "--memory-mib",
                "1",
            ],
            "error: invalid resources: cores must be between",
        ),
        (
            vec![
                "provider",
                "register",
                "--key",
                key,
                "--cores",
                "2",
                "--memory-mib",
                "1",
                "--region",
                "eu west",
            ],
            "error: invalid resources: the region name is invalid",
        ),
        (
            vec![
                "provider",
                "register",
                "--key",
                key,
                "--cores",
                "2",
                "--memory-mib",
                "1",
                "--gpu",
                "rtx",
            ],
            "error: --gpu \"rtx\": expected MODEL:COUNT[:MEM_MIB]",
        ),
        (
            vec![
                "provider", "offer", "--key", key, "--slots", "0", "--price", "1",
            ],
            "error: --slots must be 1 to",
        ),
        (
            vec![
                "job",
                "submit",
                "--key",
                key,
                "--app",
                "nothing",
                "--units",
                "1",
                "--max-price",
                "1",
            ],
            "is neither a file, a 64-character hex module hash nor a built-in app",
        ),
        (
            vec![
                "job",
                "submit",
                "--key",
                key,
                "--app",
                "x",
                "--units",
                "0",
                "--max-price",
                "1",
            ],
            "error: --units must be 1 to",
        ),
        (
            vec![
                "job",
                "submit",
                "--key",
                key,
                "--app",
                "x",
                "--units",
                "1",
                "--max-price",
                "1",
                "--trust",
                "9",
            ],
            "error: --trust must be 1 to 4",
        ),
        (
            vec![
                "app",
                "publish",
                "/nonexistent.wasm",
                "--key",
                key,
                "--name",
                "a b",
                "--royalty",
                "0",
            ],
            "must be 1 to 64 printable characters without spaces",
        ),
        (
            vec!["exec", "run", "/nonexistent.wasm"],
            "error: module /nonexistent.wasm is not a file",
        ),
    ];
    for (args, expected) in cases {
        let mut args = args.clone();
        args.extend(["--node", node]);
        let out = exo(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // Unit arguments must give one line per unit.
    let module = dir.path().join("m.wasm");
    std::fs::write(&module, b"x").unwrap();
    let args_file = dir.path().join("args");
    std::fs::write(&args_file, "a\nb\n").unwrap();
    let out = exo(&[
        "job",
        "submit",
        "--key",
        key,
        "--app",
        module.to_str().unwrap(),
        "--units",
        "3",
        "--max-price",
        "1",
        "--unit-args",
        args_file.to_str().unwrap(),
        "--node",
        node,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let body = json(&out);
    assert_eq!(body["error"], "invalid_argument");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("2 lines for 3 units")
    );
    // clap refuses what it can: usage errors exit 2.
    let out = exo(&["provider", "show"]);
    assert_eq!(out.status.code(), Some(2));
    let out = exo(&["provider", "show", "1", "--key", key]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn exec_run_reports_outcome_digest_and_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("hello.wasm");
    std::fs::write(&module, exo_apps_hello()).unwrap();
    let out = exo(&[
        "exec",
        "run",
        module.to_str().unwrap(),
        "--json",
        "--cache-dir",
        dir.path().join("cache").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["outcome"], "ok", "{report}");
    assert_eq!(report["digest"].as_str().unwrap().len(), 64);
    assert!(report["fuel_used"].as_u64().unwrap() > 0);
}

/// A minimal WASI command that prints a line, written as WebAssembly text.
fn exo_apps_hello() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "hello\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 6))
            (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap()
}

/// Plays the provider's worker from the test: runs nothing, but uploads an outputs archive
/// for each assigned replica, commits and reveals, until `units` units are revealed.
fn play_worker(node: &Node, units: usize) {
    use exo_client::{
        Client,
        outputs::{Archive, pack},
    };
    use exo_types::{ResultCommit, ResultReveal, UnsignedTx, result_commitment, result_seal};
    let key = PrivateKey::from_seed(2);
    let client = Client::new(&node.url).unwrap();
    let send = |action: exo_types::Action| {
        node._runtime.block_on(async {
            let nonce = client.account(&key.public_key()).await.unwrap().nonce;
            let tx = UnsignedTx {
                chain_id: CHAIN.into(),
                sender: key.public_key(),
                nonce,
                fee: Amount(1_000),
                action,
            }
            .sign(&key);
            let hash = client.submit(&tx).await.unwrap();
            let receipt = client
                .wait_for_receipt(&hash, Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(
                receipt.status,
                exo_client::wire::TxStatus::Ok,
                "{receipt:?}"
            );
        })
    };
    let salt = [5u8; 32];
    let fuel = 1_000;
    let mut revealed = 0;
    for _ in 0..400 {
        if revealed == units {
            return;
        }
        let work = node._runtime.block_on(client.provider_work(0)).unwrap();
        for item in work {
            let archive = Archive {
                outcome: "ok".into(),
                stdout: format!("unit {} args {:?}\n", item.unit, item.args).into_bytes(),
                dirs: vec![],
                files: vec![("frame.txt".into(), vec![b'0' + item.unit as u8])],
            };
            let digest = archive.result_digest();
            match item.status.as_str() {
                "assigned" => {
                    node._runtime.block_on(async {
                        let hash = client
                            .put_blob_on(CHAIN, pack(&archive).unwrap(), &key)
                            .await
                            .unwrap();
                        client
                            .put_replica_outputs(
                                CHAIN,
                                item.job,
                                item.unit,
                                item.replica,
                                &hash,
                                &key,
                            )
                            .await
                            .unwrap();
                    });
                    send(exo_types::Action::CommitResults(vec![ResultCommit {
                        job: item.job,
                        unit: item.unit,
                        replica: item.replica,
                        commitment: result_commitment(&digest, fuel, &salt, &key.public_key()),
                        seal: result_seal(&digest, fuel, item.job, item.unit),
                    }]));
                }
                "committed" if item.reveal_open => {
                    send(exo_types::Action::RevealResults(vec![ResultReveal {
                        job: item.job,
                        unit: item.unit,
                        replica: item.replica,
                        digest,
                        fuel,
                        salt,
                    }]));
                    revealed += 1;
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the worker revealed {revealed} of {units} units");
}

#[test]
fn job_submit_waits_for_the_job_and_results_are_fetched_and_checked() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let provider_key = write_key(dir.path(), "provider.key", 2);
    let requester_key = write_key(dir.path(), "requester.key", 1);
    let pk = provider_key.to_str().unwrap();
    let url = node.url.as_str();
    register_and_offer(pk, url);
    let module = dir.path().join("mc.wasm");
    std::fs::write(&module, b"\0asm monte carlo").unwrap();
    let args_file = dir.path().join("args");
    std::fs::write(&args_file, "--seed 1\n--seed 2\n").unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_exo"))
        .args([
            "job",
            "submit",
            "--key",
            requester_key.to_str().unwrap(),
            "--app",
            module.to_str().unwrap(),
            "--units",
            "2",
            "--max-price",
            "0.000002",
            "--fuel-limit",
            "1000000",
            "--unit-args",
            args_file.to_str().unwrap(),
            "--wait",
            "--wait-timeout",
            "60",
            "--node",
            url,
            "--json",
        ])
        .env_remove("EXO_NODE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    play_worker(&node, 2);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["job_id"], 0, "{report}");
    assert_eq!(report["job"]["state"], "done", "{report}");
    assert_eq!(report["job"]["counts"]["accepted"], 2);
    let accounts = &report["job"]["accounts"];
    assert_eq!(accounts["held"], "0");
    assert_ne!(accounts["paid_total"], "0");
    assert_eq!(accounts["paid"][0]["provider"], 0);

    let out_dir = dir.path().join("results");
    let results = exo(&[
        "job",
        "results",
        "0",
        "--out",
        out_dir.to_str().unwrap(),
        "--node",
        url,
        "--json",
    ]);
    assert!(results.status.success(), "{}", stderr(&results));
    let results = json(&results);
    assert_eq!(results["units"].as_array().unwrap().len(), 2, "{results}");
    assert_eq!(results["missing"], serde_json::json!([]));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("unit-1/stdout")).unwrap(),
        "unit 1 args Some([\"--seed\", \"2\"])\n"
    );
    assert_eq!(
        std::fs::read(out_dir.join("unit-0/out/frame.txt")).unwrap(),
        b"0"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("unit-0/outcome")).unwrap(),
        "ok\n"
    );

    // A node a block behind the verdict answers 404 for the outputs for a moment: the command
    // asks again instead of reporting them missing.
    let behind = lagging_node(&node.url, 3);
    let results = exo(&[
        "job",
        "results",
        "0",
        "--out",
        dir.path().join("again").to_str().unwrap(),
        "--node",
        &behind.url,
        "--json",
    ]);
    assert!(results.status.success(), "{}", stderr(&results));
    let results = json(&results);
    assert_eq!(results["units"].as_array().unwrap().len(), 2, "{results}");
    assert_eq!(results["missing"], serde_json::json!([]));
}

/// A node in front of the one at `url` that has not caught up with its verdicts yet: it
/// answers its first `misses` requests for outputs with 404 `not_found`, and sends every other
/// request on to `url`.
fn lagging_node(url: &str, misses: usize) -> Node {
    use axum::{
        http::{StatusCode, Uri, header},
        response::{IntoResponse, Response},
    };
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let front = format!("http://{}", listener.local_addr().unwrap());
    let (behind, left) = (url.to_string(), Arc::new(AtomicUsize::new(misses)));
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let (behind, left) = (behind.clone(), left.clone());
        async move {
            let outputs = uri.path().starts_with("/v1/outputs/");
            if outputs
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                let body = r#"{"error":"not_found","message":"no outputs here yet"}"#;
                return (StatusCode::NOT_FOUND, body).into_response();
            }
            let to = format!(
                "{behind}{}",
                uri.path_and_query().map_or("", |p| p.as_str())
            );
            Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, to)
                .body(axum::body::Body::empty())
                .unwrap()
        }
    });
    runtime.spawn(async move { axum::serve(listener, app).await });
    Node {
        url: front,
        _dir: tempfile::tempdir().unwrap(),
        _runtime: runtime,
    }
}
