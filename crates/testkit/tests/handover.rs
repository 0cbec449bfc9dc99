//! The committee hands over at an epoch boundary: four genesis validators and three nodes with
//! fresh keys, a committee of four, and nominations that move one seat to a newcomer.

use commonware_cryptography::Signer as _;
use commonware_runtime::{Runner as _, deterministic};
use exo_ledger::{
    Params,
    modules::staking::{Committee, queries},
};
use exo_testkit::{Cluster, Setup, account_key, faucet_key, signed, transfer, validator_key};
use exo_types::{Action, Address, Amount};
use std::{collections::BTreeSet, time::Duration};

/// Blocks per epoch: short, so that elections come quickly.
const EPOCH_LENGTH: u64 = 10;
const GENESIS_VALIDATORS: usize = 4;
const NEWCOMERS: usize = 3;
/// The longest a finalized block may follow the one before it, in simulated time, while the
/// chain crosses the boundary. An idle chain finalizes a block about every second.
const MAX_BLOCK_GAP_MS: u64 = 4_000;

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::default()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(900))),
    )
}

fn key(i: usize) -> Address {
    validator_key(i).public_key()
}

fn members(committee: &Committee) -> BTreeSet<Address> {
    committee
        .members
        .iter()
        .map(|m| m.consensus_key.clone())
        .collect()
}

/// The committee of `epoch` in validator 0's finalized state, once it is there.
async fn committee(cluster: &Cluster, epoch: u64) -> Committee {
    for _ in 0..1_200 {
        if let Some(c) = cluster.read(0, queries::committee(epoch)).await {
            return c;
        }
        cluster.sleep(Duration::from_millis(100)).await;
    }
    panic!("no committee elected for epoch {epoch}");
}

/// Whether validator 0's finalized state holds the first nominations and registrations.
async fn staked(
    cluster: &Cluster,
    nominators: &[exo_types::PrivateKey],
    newcomers: &[usize],
) -> bool {
    for n in nominators {
        if cluster
            .read(0, queries::staker(&n.public_key()))
            .await
            .is_none()
        {
            return false;
        }
    }
    for &i in newcomers {
        if cluster.read(0, queries::validator(&key(i))).await.is_none() {
            return false;
        }
    }
    true
}

/// Sleeps a poll interval, or panics once `tries` polls went by.
async fn poll(cluster: &Cluster, tries: &mut u32, what: &str) {
    *tries += 1;
    assert!(*tries < 1_200, "never finalized: {what}");
    cluster.sleep(Duration::from_millis(100)).await;
}

/// The committee once newcomer 4 took genesis validator 3's seat.
fn shifted() -> BTreeSet<Address> {
    [0, 1, 2, 4].into_iter().map(key).collect()
}

/// How the newcomers run while the nominations shift.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Newcomers {
    /// Three newcomers follow the chain from genesis.
    FollowFromGenesis,
    /// One newcomer (4) registers, but its node is not started: the caller starts it.
    NotStarted,
}

/// Starts the cluster, backs the genesis validators, registers the newcomers and checks that
/// the next election keeps the genesis committee; then shifts the nominations so that
/// newcomer 4 takes the seat of genesis validator 3. Returns the cluster and the first epoch
/// of the new committee.
async fn shift_one_seat(context: deterministic::Context, mode: Newcomers) -> (Cluster, u64) {
    let (started, late) = match mode {
        Newcomers::FollowFromGenesis => (NEWCOMERS, 0),
        Newcomers::NotStarted => (0, 1),
    };
    let cluster = Cluster::start_with(
        context,
        GENESIS_VALIDATORS,
        Setup {
            params: Some(Params {
                epoch_length: EPOCH_LENGTH,
                ..Params::default()
            }),
            newcomers: started,
            late_newcomers: late,
            ..Setup::default()
        },
    )
    .await;
    let faucet = faucet_key();
    // Nominators 0..=3 back the genesis validators, nominator 4 later backs a newcomer.
    let nominators: Vec<_> = (0..5).map(account_key).collect();
    let newcomers: Vec<usize> = (GENESIS_VALIDATORS..GENESIS_VALIDATORS + started + late).collect();
    let mut nonce = 0;
    for n in &nominators {
        let tx = transfer(&faucet, nonce, &n.public_key(), Amount::from_exo(20_000));
        cluster.validator(0).admit(tx).await.expect("admitted");
        nonce += 1;
    }
    for &i in &newcomers {
        let tx = transfer(&faucet, nonce, &key(i), Amount::from_exo(2_000));
        cluster.validator(0).admit(tx).await.expect("admitted");
        nonce += 1;
    }
    let mut tries = 0;
    while cluster
        .balance(0, &key(newcomers[newcomers.len() - 1]))
        .await
        == Amount::ZERO
    {
        poll(&cluster, &mut tries, "the funding").await;
    }

    // The genesis validators are backed, the weakest of them (3) less than the others; the
    // newcomers stand on the minimum self-bond, below every genesis validator.
    for (g, n) in nominators.iter().take(GENESIS_VALIDATORS).enumerate() {
        let bond = if g == 3 { 3_000 } else { 5_000 };
        let action = Action::Nominate {
            targets: vec![key(g)],
            bond: Amount::from_exo(bond),
        };
        cluster
            .validator(0)
            .admit(signed(n, 0, action))
            .await
            .expect("admitted");
    }
    for &i in &newcomers {
        let action = Action::RegisterValidator {
            consensus_key: key(i),
            p2p_address: format!("10.0.0.{i}:3000"),
            commission_bps: 500,
            self_bond: Amount::from_exo(1_000),
        };
        cluster
            .validator(0)
            .admit(signed(&validator_key(i), 0, action))
            .await
            .expect("admitted");
    }
    let mut tries = 0;
    while !staked(&cluster, &nominators[..GENESIS_VALIDATORS], &newcomers).await {
        poll(&cluster, &mut tries, "the nominations and registrations").await;
    }

    // The next election keeps the genesis committee: the newcomers are backed least.
    let genesis_set: BTreeSet<Address> = (0..GENESIS_VALIDATORS).map(key).collect();
    let now = cluster.status(0).finalized_height / EPOCH_LENGTH;
    let kept = committee(&cluster, now + 2).await;
    assert!(kept.elected, "{kept:?}");
    assert_eq!(members(&kept), genesis_set);

    if mode == Newcomers::NotStarted {
        // The first peer set names every node; the simulated network keeps three sets, so
        // from epoch 3 on a node is reachable only when an epoch's set names it.
        cluster
            .wait_for_height(3 * EPOCH_LENGTH, Duration::from_secs(300))
            .await;
    }
    // The nominations shift: a new nominator backs newcomer 4 above every genesis validator.
    let action = Action::Nominate {
        targets: vec![key(4)],
        bond: Amount::from_exo(10_000),
    };
    cluster
        .validator(1)
        .admit(signed(&nominators[4], 0, action))
        .await
        .expect("admitted");
    let mut epoch = now + 3;
    let changed = loop {
        let c = committee(&cluster, epoch).await;
        if members(&c).contains(&key(4)) {
            break epoch;
        }
        assert_eq!(members(&c), genesis_set, "epoch {epoch}");
        epoch += 1;
        assert!(epoch < now + 8, "the committee never changed");
    };
    assert_eq!(members(&committee(&cluster, changed).await), shifted());
    (cluster, changed)
}

/// Checks validator 0's finalized blocks from `from` to the first block after epoch
/// `changed`, and returns them: finality never stopped (no gap between consecutive blocks
/// above [`MAX_BLOCK_GAP_MS`]), and the new committee led epoch `changed`: newcomer 4
/// proposed, the dropped genesis validator 3 never did.
async fn assert_new_committee_led(
    cluster: &Cluster,
    from: u64,
    changed: u64,
) -> Vec<exo_chain::Block> {
    let first = changed * EPOCH_LENGTH;
    let last = first + EPOCH_LENGTH - 1;
    let mut blocks = Vec::new();
    for height in from..=last + 1 {
        blocks.push(cluster.block(0, height).await);
    }
    for pair in blocks.windows(2) {
        let gap = pair[1].timestamp_ms.saturating_sub(pair[0].timestamp_ms);
        assert!(
            gap <= MAX_BLOCK_GAP_MS,
            "{gap} ms between heights {} and {}",
            pair[0].height.get(),
            pair[1].height.get()
        );
    }
    let proposers: BTreeSet<Address> = blocks
        .iter()
        .filter(|b| (first..=last).contains(&b.height.get()))
        .map(|b| b.context.leader.clone())
        .collect();
    assert!(proposers.is_subset(&shifted()), "{proposers:?}");
    assert!(proposers.contains(&key(4)), "the newcomer never proposed");
    assert!(!proposers.contains(&key(3)));
    blocks
}

#[test]
fn nominations_shift_and_the_committee_changes_at_the_boundary_while_finality_never_stops() {
    runner(7).start(|context| async move {
        let (cluster, changed) = shift_one_seat(context, Newcomers::FollowFromGenesis).await;
        // Every node (the dropped validator and the newcomers outside the committee included)
        // finalizes through the boundary and the whole epoch of the new committee.
        let first = changed * EPOCH_LENGTH;
        let last = first + EPOCH_LENGTH - 1;
        cluster
            .wait_for_height(last + 1, Duration::from_secs(300))
            .await;

        let blocks = assert_new_committee_led(&cluster, first - EPOCH_LENGTH, changed).await;
        // The dropped validator keeps following: it holds the same blocks.
        for height in [first, last + 1] {
            let theirs = cluster.block(3, height).await;
            assert_eq!(theirs, blocks[(height - (first - EPOCH_LENGTH)) as usize]);
        }
        assert!(cluster.status(3).epoch >= changed);
    });
}

#[test]
fn a_newcomer_restarted_in_its_first_epoch_resumes_with_its_committee_and_proposes_again() {
    runner(8).start(|context| async move {
        let (mut cluster, changed) = shift_one_seat(context, Newcomers::FollowFromGenesis).await;
        let first = changed * EPOCH_LENGTH;
        // The newcomer crashes a few blocks into the epoch it was elected for; the three other
        // members still make a quorum of four.
        cluster
            .wait_for_height(first + 2, Duration::from_secs(300))
            .await;
        cluster.crash(4).await;
        let down = cluster.status(0).finalized_height;
        cluster
            .wait_for_height(down + 3, Duration::from_secs(60))
            .await;
        // It restarts from its storage, reads the committee of the epoch it resumes in from its
        // finalized state and takes its seat again.
        cluster.start_validator(4).await;
        let back = cluster.status(0).finalized_height;
        let until = back + 2 * EPOCH_LENGTH;
        cluster
            .wait_for_height(until, Duration::from_secs(300))
            .await;
        let mut proposed = false;
        for height in back + 1..=until {
            proposed |= cluster.block(0, height).await.context.leader == key(4);
        }
        assert!(proposed, "the restarted newcomer never proposed again");
        assert_eq!(cluster.block(4, until).await, cluster.block(0, until).await);
    });
}

#[test]
fn a_node_started_with_a_fresh_key_after_it_registered_catches_up_and_signs_once_elected() {
    runner(9).start(|context| async move {
        let (mut cluster, changed) = shift_one_seat(context, Newcomers::NotStarted).await;
        let first = changed * EPOCH_LENGTH;
        let last = first + EPOCH_LENGTH - 1;
        // The newcomer's node starts from empty storage during the epoch before its own, once
        // the first peer set has left the network: only its registration (a standing
        // candidate, then a member-to-be) makes the epochs' sets name it. It crosses every
        // epoch from genesis to take its seat.
        let behind = cluster.status(0).finalized_height;
        assert!(behind >= 3 * EPOCH_LENGTH && behind < first, "{behind}");
        cluster.start_validator(4).await;
        cluster
            .wait_for_height(last + 1, Duration::from_secs(300))
            .await;

        let blocks = assert_new_committee_led(&cluster, 1, changed).await;
        // Blocks start at height 1: the last one is `last + 1`.
        assert_eq!(cluster.block(4, last + 1).await, blocks[last as usize]);
        assert!(cluster.status(4).epoch >= changed);
    });
}
