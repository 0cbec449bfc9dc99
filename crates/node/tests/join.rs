//! A node with a fresh key joins a running devnet and takes a seat in its committee: four
//! genesis validators and the newcomer, each on its own runtime in this process, over
//! authenticated TCP on 127.0.0.1, driven through their HTTP APIs.
//!
//! The same scenario with `exo` processes is `crates/cli/tests/devnet.rs`'s
//! `a_fresh_node_joins_the_devnet_by_registering_and_signs_once_elected`; by hand it is
//! `docs/joining.md`.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer as _;
use exo_client::{Client, keyfile, wire};
use exo_ledger::Params;
use exo_node::{
    NodeConfig,
    devnet::{DevnetOptions, JoinOptions, init_with_params, join},
    local::{ApiLimits, LocalNetwork},
};
use exo_types::{Action, Address, Amount, PrivateKey, UnsignedTx, address_to_hex};
use std::{
    collections::BTreeSet,
    net::TcpListener,
    time::{Duration, Instant},
};

/// Blocks per epoch: long enough for the newcomer to catch up during the epoch before it
/// signs, short enough that three elections pass in well under a minute.
const EPOCH_LENGTH: u64 = 20;
/// An idle leader's wait before an empty block: faster blocks than a devnet's second, so that
/// epochs pass quickly.
const EMPTY_BLOCK_MS: u64 = 400;
/// The longest a finalized block may follow the one before it. A leader that is down (the
/// newcomer before it caught up) costs a leader timeout of 1.5 s; more means finality stopped.
const MAX_BLOCK_GAP_MS: u64 = 6_000;
const GENESIS_VALIDATORS: usize = 4;

/// A base port with `base..base + 20` free on 127.0.0.1: APIs from `base`, p2p from
/// `base + 10`. Derived from the process id so that concurrent runs rarely meet.
fn free_ports() -> u16 {
    let mut base = 33_000 + (std::process::id() % 1_000) * 20;
    loop {
        if (0..20).all(|i| TcpListener::bind(("127.0.0.1", (base + i) as u16)).is_ok()) {
            return base as u16;
        }
        base = 33_000 + (base - 33_000 + 20) % 20_000;
    }
}

/// Signs `action` for the devnet's chain and submits it through `client`, without waiting.
async fn submit(
    client: &Client,
    chain_id: &str,
    from: &PrivateKey,
    nonce: u64,
    action: Action,
) -> exo_types::TxHash {
    let tx = UnsignedTx {
        chain_id: chain_id.into(),
        sender: from.public_key(),
        nonce,
        fee: Amount(1_000),
        action,
    }
    .sign(from);
    client.submit(&tx).await.unwrap()
}

/// Waits for each transaction's receipt and requires it to be `ok`.
async fn executed(client: &Client, hashes: &[exo_types::TxHash]) {
    for hash in hashes {
        let receipt = client
            .wait_for_receipt(hash, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(receipt.status, wire::TxStatus::Ok, "{receipt:?}");
    }
}

/// Waits until `client` reports a finalized height of at least `height`, within `limit`.
async fn reach(client: &Client, height: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let at = client.status().await.map_or(0, |s| s.finalized_height);
        if at >= height {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{} finalized {at}, not {height}, within {limit:?}",
            client.url()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn members(view: &wire::EpochView) -> BTreeSet<Address> {
    view.members.iter().map(|m| m.validator.clone()).collect()
}

fn exo(amount: u64) -> Amount {
    Amount::from_exo(amount)
}

#[test]
fn a_node_with_a_fresh_key_registers_is_elected_and_signs_while_finality_never_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    let base = free_ports();
    let layout = init_with_params(
        &DevnetOptions {
            validators: GENESIS_VALIDATORS,
            data_dir: data.clone(),
            api_port: base,
            p2p_port: base + 10,
            extra_accounts: Vec::new(),
        },
        &Params {
            epoch_length: EPOCH_LENGTH,
            ..Params::default()
        },
    )
    .unwrap();
    for path in &layout.configs {
        let mut config = NodeConfig::load(path).unwrap();
        config.empty_block_ms = EMPTY_BLOCK_MS;
        config.save(path).unwrap();
    }
    let joined = join(&JoinOptions {
        data_dir: data.clone(),
        api_port: None,
        p2p_port: None,
    })
    .unwrap();
    let genesis: Vec<Address> = layout
        .configs
        .iter()
        .map(|c| {
            let config = NodeConfig::load(c).unwrap();
            keyfile::read(&config.key_file).unwrap().public_key()
        })
        .collect();
    assert!(!genesis.contains(&joined.public_key));
    let newcomer = joined.public_key.clone();
    let weakest = genesis[3].clone();

    let limits = ApiLimits {
        rate_per_sec: 0,
        ..ApiLimits::default()
    };
    let validators = LocalNetwork::start(&layout, Some(limits)).unwrap();
    // The newcomer starts at once: the validators refuse its connection until it registers,
    // and it waits for them.
    let joiner =
        LocalNetwork::start_configs(std::slice::from_ref(&joined.config), Some(limits)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let chain_id = layout.chain_id().unwrap();
    let faucet = keyfile::read(&layout.faucet_key).unwrap();
    let newcomer_key = keyfile::read(&joined.key_file).unwrap();
    let (backer_of_weakest, backer_of_newcomer) = (keyfile::generate(), keyfile::generate());

    rt.block_on(async {
        let api = Client::new(&validators.api_urls[0]).unwrap();
        let own_api = Client::new(&joiner.api_urls[0]).unwrap();
        reach(&api, 1, Duration::from_secs(60)).await;

        // The faucet funds the newcomer and two nominators, and backs genesis validators 0 to
        // 2 (about 5,000 EXO each once balanced); validator 3 gets 3,000 EXO: the weakest.
        let funding = [
            (&newcomer, 2_000),
            (&backer_of_weakest.public_key(), 4_000),
            (&backer_of_newcomer.public_key(), 11_000),
        ];
        let mut hashes = Vec::new();
        for (nonce, (to, amount)) in funding.into_iter().enumerate() {
            let action = Action::Transfer {
                to: to.clone(),
                amount: exo(amount),
            };
            hashes.push(submit(&api, &chain_id, &faucet, nonce as u64, action).await);
        }
        executed(&api, &hashes).await;
        let stakes = [
            (
                &faucet,
                3,
                Action::Nominate {
                    targets: genesis[..3].to_vec(),
                    bond: exo(15_000),
                },
            ),
            (
                &backer_of_weakest,
                0,
                Action::Nominate {
                    targets: vec![weakest.clone()],
                    bond: exo(3_000),
                },
            ),
            (
                &newcomer_key,
                0,
                Action::RegisterValidator {
                    consensus_key: newcomer.clone(),
                    p2p_address: joined.p2p_address.to_string(),
                    commission_bps: 500,
                    self_bond: exo(1_000),
                },
            ),
        ];
        let mut hashes = Vec::new();
        for (key, nonce, action) in stakes {
            hashes.push(submit(&api, &chain_id, key, nonce, action).await);
        }
        executed(&api, &hashes).await;
        // Once it is a candidate, the newcomer is backed above the weakest member: 11,000 EXO
        // with its self-bond.
        let action = Action::Nominate {
            targets: vec![newcomer.clone()],
            bond: exo(10_000),
        };
        let hash = submit(&api, &chain_id, &backer_of_newcomer, 0, action).await;
        executed(&api, &[hash]).await;

        // The candidates list shows the newcomer with the address it registered.
        let listed = api.validators().await.unwrap();
        let me = listed
            .validators
            .iter()
            .find(|v| v.address == newcomer)
            .expect("the newcomer is a candidate");
        assert_eq!(me.status, "active");
        assert_eq!(me.p2p_address, joined.p2p_address.to_string());
        assert_eq!(me.self_bond, exo(1_000));

        // The last block of the epoch the stakes landed in elects the committee of the epoch
        // after next (or, if they straddled a boundary, of the one after it).
        let staked_at = api.status().await.unwrap().finalized_height;
        let mut changed = staked_at / EPOCH_LENGTH + 2;
        let limit = Duration::from_secs(120);
        let committee = loop {
            reach(&api, (changed - 1) * EPOCH_LENGTH, limit).await;
            let view = api.epoch(changed).await.unwrap().expect("elected");
            if members(&view).contains(&newcomer) {
                break view;
            }
            assert!(
                changed < staked_at / EPOCH_LENGTH + 3,
                "never elected: {view:?}"
            );
            changed += 1;
        };
        assert!(committee.elected);
        let expected: BTreeSet<Address> = [&genesis[0], &genesis[1], &genesis[2], &newcomer]
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(members(&committee), expected);
        let before = api.epoch(changed - 1).await.unwrap().unwrap();
        assert!(members(&before).contains(&weakest), "{before:?}");

        // The whole epoch of the new committee finalizes, on the validators and the newcomer.
        let first = changed * EPOCH_LENGTH;
        let last = first + EPOCH_LENGTH - 1;
        let limit = Duration::from_secs(180);
        for url in validators.api_urls.iter().chain(&joiner.api_urls) {
            reach(&Client::new(url).unwrap(), last + 1, limit).await;
        }

        // Finality never stopped, and the new committee led its epoch: the newcomer proposed,
        // the weakest never did.
        let mut blocks = Vec::new();
        for height in 1..=last + 1 {
            blocks.push(api.block(height).await.unwrap().expect("finalized"));
        }
        for pair in blocks.windows(2) {
            let gap = pair[1].timestamp_ms.saturating_sub(pair[0].timestamp_ms);
            assert!(
                gap <= MAX_BLOCK_GAP_MS,
                "{gap} ms between heights {} and {}",
                pair[0].height,
                pair[1].height
            );
        }
        let proposers: BTreeSet<Address> = blocks
            .iter()
            .filter(|b| (first..=last).contains(&b.height))
            .map(|b| b.proposer.clone())
            .collect();
        assert!(proposers.is_subset(&expected), "{proposers:?}");
        assert!(
            proposers.contains(&newcomer),
            "the newcomer never proposed in epoch {changed}"
        );
        assert!(!proposers.contains(&weakest));

        // The newcomer's own API serves the same chain and shows the committee it sits in.
        let theirs = own_api.block(last).await.unwrap().expect("finalized");
        assert_eq!(theirs.digest, blocks[(last - 1) as usize].digest);
        assert_eq!(theirs.state_root, blocks[(last - 1) as usize].state_root);
        let view = own_api.epoch(changed).await.unwrap().expect("elected");
        assert_eq!(members(&view), expected);
        // Every token is accounted for: the genesis accounts, plus what each finished epoch
        // minted, minus what was burnt; nothing was slashed into the insurance pool.
        let genesis_total = exo_node::config::load_genesis(&layout.genesis)
            .unwrap()
            .accounts
            .iter()
            .map(|a| a.balance.0)
            .sum::<u128>();
        let (supply, minted) = loop {
            let epoch = api.status().await.unwrap().epoch;
            let supply = api.supply().await.unwrap();
            let mut minted = 0u128;
            let mut paid_epochs = 0;
            for e in 0..=epoch {
                if let Some(payout) = api.epoch(e).await.unwrap().and_then(|v| v.payout) {
                    minted += payout.minted.0;
                    paid_epochs += 1;
                }
            }
            // An epoch that ended between the reads is read again.
            if api.status().await.unwrap().epoch == epoch {
                assert!(
                    paid_epochs >= changed,
                    "every epoch before {changed} paid out"
                );
                break (supply, minted);
            }
        };
        assert!(minted > 0, "block rewards were minted");
        assert_eq!(
            supply.total.0,
            genesis_total + minted - supply.burnt.0,
            "supply = genesis + rewards - burnt, to the base unit: {supply:?}"
        );
        assert_eq!(supply.insurance, Amount::ZERO, "nobody was slashed");
        // The new committee's epoch is over: the newcomer's points and reward are on record.
        let paid = api.epoch(changed).await.unwrap().unwrap();
        assert!(paid.payout.is_some(), "{paid:?}");
        let earned = paid
            .members
            .iter()
            .find(|m| m.validator == newcomer)
            .and_then(|m| m.earned.clone())
            .expect("the newcomer's record");
        assert!(
            earned.points > 0 && earned.reward > Amount::ZERO,
            "{earned:?}"
        );
        println!(
            "newcomer {} elected for epoch {changed}, proposers there: {}",
            address_to_hex(&newcomer),
            proposers.len()
        );
    });
    joiner.stop().unwrap();
    validators.stop().unwrap();
}

#[test]
fn a_node_outside_the_genesis_committee_with_no_peers_to_follow_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("devnet");
    init_with_params(
        &DevnetOptions {
            validators: 1,
            data_dir: data.clone(),
            api_port: 28_500,
            p2p_port: 29_500,
            extra_accounts: Vec::new(),
        },
        &Params::default(),
    )
    .unwrap();
    let joined = join(&JoinOptions {
        data_dir: data,
        api_port: None,
        p2p_port: None,
    })
    .unwrap();
    let mut config = NodeConfig::load(&joined.config).unwrap();
    config.peers.clear();
    let err = exo_node::node::run(config, |_, _| async { Ok(()) }).unwrap_err();
    assert!(err.to_string().contains("lists none"), "{err:#}");
}
