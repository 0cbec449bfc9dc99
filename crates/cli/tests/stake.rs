//! The staking commands end to end: `exo stake` and `exo validators` against an in-memory
//! node (real ledger) served on loopback.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer;
use exo_api::{ApiConfig, ApiLimits, serve_with, testing::MemoryNode};
use exo_client::keyfile;
use exo_ledger::{Genesis, GenesisAccount, Params, modules::staking::StakingParams};
use exo_types::{Amount, PrivateKey, address_to_hex};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

const CHAIN: &str = "exo-cli-stake";

struct Node {
    url: String,
    // Dropping the runtime stops the server and the block producer.
    _runtime: tokio::runtime::Runtime,
}

/// A node where seeds 1 (validator) and 2 (nominator) hold 5,000 EXO, with epochs of 4 blocks
/// and a committee of one, producing a block every 50 ms.
fn start_node() -> Node {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params: Params {
            epoch_length: 4,
            staking: StakingParams {
                committee_size: 1,
                ..StakingParams::default()
            },
            ..Params::default()
        },
        accounts: [1, 2]
            .iter()
            .map(|seed| GenesisAccount {
                address: address_to_hex(&PrivateKey::from_seed(*seed).public_key()),
                balance: Amount::from_exo(5_000),
            })
            .collect(),
        validators: vec![address_to_hex(&PrivateKey::from_seed(9).public_key())],
    };
    let node = MemoryNode::new(genesis, PrivateKey::from_seed(9).public_key());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ApiConfig {
        limits: ApiLimits {
            rate_per_sec: 0,
            ..ApiLimits::default()
        },
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
        _runtime: runtime,
    }
}

fn exo(node: &Node, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exo"))
        .args(["--node", &node.url, "--json"])
        .args(args)
        .env_remove("EXO_NODE")
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn write_key(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("key{seed}"));
    keyfile::write_new(&path, &PrivateKey::from_seed(seed)).unwrap();
    path
}

#[test]
fn a_validator_registers_is_nominated_and_is_elected_two_epochs_later() {
    let node = start_node();
    let dir = tempfile::tempdir().unwrap();
    let k1 = write_key(dir.path(), 1);
    let k2 = write_key(dir.path(), 2);
    let validator = address_to_hex(&PrivateKey::from_seed(1).public_key());

    let out = exo(
        &node,
        &[
            "stake",
            "register-validator",
            "--key",
            k1.to_str().unwrap(),
            "--p2p-address",
            "127.0.0.1:4100",
            "--commission-bps",
            "300",
            "--bond",
            "1000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["status"], "ok");
    let out = exo(
        &node,
        &[
            "stake",
            "nominate",
            "--key",
            k2.to_str().unwrap(),
            "--target",
            &validator,
            "--bond",
            "300",
        ],
    );
    assert_eq!(json(&out)["status"], "ok");
    let out = exo(
        &node,
        &[
            "stake",
            "unbond",
            "--key",
            k2.to_str().unwrap(),
            "--amount",
            "100",
        ],
    );
    assert_eq!(json(&out)["status"], "ok");
    // The unbonding period is far away: the withdrawal is refused with its code.
    let out = exo(&node, &["stake", "withdraw", "--key", k2.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["reason"]["code"], "nothing_to_withdraw");

    let list = json(&exo(&node, &["validators"]));
    let mine = list["validators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["address"] == validator)
        .unwrap()
        .clone();
    assert_eq!(mine["nominators"], 1);
    assert_eq!(mine["self_bond"], Amount::from_exo(1_000).0.to_string());

    // Wait (bounded) for the committee elected after the nomination: the validator with
    // 1,200 EXO behind it (1,000 own, 200 nominated).
    let backing = Amount::from_exo(1_200).0.to_string();
    let elected = |epoch: u64| {
        let out = exo(&node, &["validators", "--epoch", &epoch.to_string()]);
        out.status.success().then(|| json(&out))
    };
    let mut found = None;
    'wait: for _ in 0..100 {
        for epoch in 2..=40 {
            match elected(epoch) {
                Some(view) if view["members"][0]["backing"] == backing.as_str() => {
                    found = Some(view);
                    break 'wait;
                }
                Some(_) => continue,
                None => break,
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let epoch = found.expect("the committee within the bound");
    assert_eq!(epoch["elected"], true);
    assert_eq!(epoch["members"][0]["validator"], validator);
    let missing = exo(&node, &["validators", "--epoch", "100000"]);
    assert!(!missing.status.success());
}
