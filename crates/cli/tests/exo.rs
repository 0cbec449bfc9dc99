//! The `exo` binary end to end, against an in-memory node served on loopback.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer;
use exo_api::{ApiLimits, serve, testing::MemoryNode};
use exo_client::keyfile;
use exo_ledger::{Genesis, GenesisAccount, Params};
use exo_types::{Amount, PrivateKey, address_to_hex};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

const CHAIN: &str = "exo-cli-test";

struct Node {
    url: String,
    // Dropping the runtime stops the server and the block producer.
    _runtime: tokio::runtime::Runtime,
}

/// A node whose faucet (seed 1) holds 100 EXO, producing a block every 50 ms.
fn start_node() -> Node {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let faucet = PrivateKey::from_seed(1).public_key();
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: address_to_hex(&faucet),
            balance: Amount::from_exo(100),
        }],
        validators: vec![address_to_hex(&PrivateKey::from_seed(9).public_key())],
    };
    let node = MemoryNode::new(genesis, PrivateKey::from_seed(9).public_key());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let limits = ApiLimits {
        rate_per_sec: 0,
        ..ApiLimits::default()
    };
    runtime.spawn(serve(
        listener,
        node.clone(),
        limits,
        std::future::pending(),
        100,
    ));
    runtime.spawn(node.run(Duration::from_millis(50)));
    Node {
        url,
        _runtime: runtime,
    }
}

fn exo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exo"))
        .args(args)
        .env_remove("EXO_NODE")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

fn write_key(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let path = dir.join(name);
    keyfile::write_new(&path, &PrivateKey::from_seed(seed)).unwrap();
    path
}

fn address(seed: u64) -> String {
    address_to_hex(&PrivateKey::from_seed(seed).public_key())
}

#[test]
fn key_new_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.key");
    let path_text = path.to_str().unwrap();

    let created = exo(&["key", "new", "--out", path_text, "--json"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let address = json(&created)["address"].as_str().unwrap().to_string();
    assert_eq!(address.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let shown = exo(&["key", "show", path_text]);
    assert!(shown.status.success());
    assert_eq!(stdout(&shown).trim(), address);

    let before = std::fs::read(&path).unwrap();
    let again = exo(&["key", "new", "--out", path_text]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        format!("error: {path_text} already exists; refusing to overwrite it\n")
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let missing = exo(&["key", "show", "/nonexistent/key"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing), "error: /nonexistent/key does not exist\n");
}

#[test]
fn unreachable_node_is_one_clear_line() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let output = exo(&["account", "balance", &address(1), "--node", &url]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!("error: node {url} is unreachable\n")
    );
    assert!(stdout(&output).is_empty());

    let output = exo(&["--json", "account", "balance", &address(1), "--node", &url]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json(&output)["error"], "node_unreachable");
}

#[test]
fn bad_arguments_fail_before_the_node_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "k", 1);
    let key = key.to_str().unwrap();
    // No node listens on this URL: each error must come from the argument itself.
    let node = "http://127.0.0.1:9";
    let cases: [(&[&str], &str); 4] = [
        (
            &["account", "balance", "xyz"],
            "error: \"xyz\" is not a 64-character hex address\n",
        ),
        (
            &[
                "account", "transfer", "--key", key, "--to", "ab", "--amount", "1",
            ],
            "error: \"ab\" is not a 64-character hex address\n",
        ),
        (
            &[
                "account",
                "transfer",
                "--key",
                key,
                "--to",
                &address(2),
                "--amount",
                "1.5x",
            ],
            "error: amount \"1.5x\" is not a decimal number\n",
        ),
        (
            &[
                "account",
                "transfer",
                "--key",
                key,
                "--to",
                &address(2),
                "--amount",
                "0",
            ],
            "error: amount must be greater than zero\n",
        ),
    ];
    for (args, expected) in cases {
        let mut args = args.to_vec();
        args.extend(["--node", node]);
        let output = exo(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&output), expected, "{args:?}");
    }
    let usage = exo(&["account", "transfer"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn balance_and_transfers_against_a_node() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let faucet_key = write_key(dir.path(), "faucet", 1);
    let faucet_key = faucet_key.to_str().unwrap();
    let url = node.url.as_str();

    let balance = exo(&["account", "balance", &address(1), "--node", url]);
    assert!(balance.status.success(), "{}", stderr(&balance));
    assert_eq!(stdout(&balance), "100 EXO\n");

    let sent = exo(&[
        "account",
        "transfer",
        "--key",
        faucet_key,
        "--to",
        &address(2),
        "--amount",
        "2.5",
        "--wait",
        "--timeout",
        "20",
        "--node",
        url,
        "--json",
    ]);
    assert!(sent.status.success(), "{}", stdout(&sent));
    let report = json(&sent);
    assert_eq!(report["status"], "ok");
    assert_eq!(report["amount"], "2500000000");
    assert_eq!(report["fee_paid"], "1000");
    assert_eq!(report["nonce"], 0);
    assert!(report["height"].as_u64().unwrap() >= 1);

    let balance = exo(&["account", "balance", &address(2), "--node", url, "--json"]);
    let balance = json(&balance);
    assert_eq!(balance["address"], address(2));
    assert_eq!(balance["balance"], "2500000000");
    assert_eq!(balance["balance_exo"], "2.5");
    assert_eq!(balance["nonce"], 0);

    // Without --wait: submitted, then finalized by the node on its own.
    let submitted = exo(&[
        "account",
        "transfer",
        "--key",
        faucet_key,
        "--to",
        &address(2),
        "--amount",
        "1",
        "--node",
        url,
    ]);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    assert!(stdout(&submitted).starts_with("submitted "));

    // More than the balance: finalized as rejected, exit code 3, the reason printed. If the
    // previous transfer is still pending, this one reuses its nonce and replaces it with a
    // higher fee; either way it is the one finalized.
    let rejected = exo(&[
        "account",
        "transfer",
        "--key",
        faucet_key,
        "--to",
        &address(2),
        "--amount",
        "1000",
        "--fee",
        "0.000002",
        "--wait",
        "--timeout",
        "20",
        "--node",
        url,
    ]);
    assert_eq!(rejected.status.code(), Some(3), "{}", stderr(&rejected));
    let text = stdout(&rejected);
    assert!(
        text.starts_with("rejected: insufficient funds: needs 1000000000000, has "),
        "{text}"
    );
    assert!(text.contains("(insufficient_funds)"), "{text}");

    // A sender who cannot pay the fee is refused at submission, with the node's reason.
    let empty_key = write_key(dir.path(), "empty", 77);
    let refused = exo(&[
        "account",
        "transfer",
        "--key",
        empty_key.to_str().unwrap(),
        "--to",
        &address(2),
        "--amount",
        "1",
        "--node",
        url,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "error: node refused the transaction: insufficient funds: needs 1000, has 0 (insufficient_funds)\n"
    );
}
