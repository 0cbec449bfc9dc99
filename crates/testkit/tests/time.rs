//! Block time under the deterministic runtime: validators refuse a block whose time runs ahead
//! of their clocks or goes back, an idle chain makes blocks no faster than its interval, a busy
//! one no faster than its minimum interval, and deadlines fall due on an idle chain (audit H6).

use commonware_cryptography::Signer as _;
use commonware_runtime::{Runner as _, deterministic};
use exo_chain::engine::{Faults, Timeouts};
use exo_ledger::{
    Params,
    modules::market::{
        MarketParams, queries,
        records::{AUDIT_SEED_DELAY, JobState, UnitState},
    },
};
use exo_testkit::{
    Cluster, EPOCH_LENGTH, Setup, account_key, faucet_key, funded, runner, signed, transfer,
};
use exo_types::{
    Action, Amount, JobSpec, ResultCommit, ResultReveal,
    exo_market::{DeviceClass, Requirements, Resources, Runtime, RuntimeSet},
    result_commitment, result_seal,
};
use std::time::{Duration, UNIX_EPOCH};

/// What the tests read of a finalized block.
struct Finalized {
    leader: exo_types::Address,
    time_ms: u64,
    txs: usize,
}

/// Every finalized block from height 1 to validator 0's finalized height (index `h - 1` holds
/// height `h`), checking on the way that block times strictly increase and none is ahead of
/// the simulated clock.
async fn finalized_blocks(cluster: &Cluster) -> Vec<Finalized> {
    let now_ms = cluster
        .now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64;
    let top = cluster.status(0).finalized_height;
    let mut blocks = Vec::new();
    let mut parent_ms = 0;
    for height in 1..=top {
        let block = cluster.block(0, height).await;
        assert!(
            block.timestamp_ms > parent_ms,
            "block {height} at {} ms does not follow its parent at {parent_ms} ms",
            block.timestamp_ms
        );
        assert!(
            block.timestamp_ms <= now_ms,
            "block {height} is in the future"
        );
        parent_ms = block.timestamp_ms;
        blocks.push(Finalized {
            leader: block.context.leader.clone(),
            time_ms: block.timestamp_ms,
            txs: block.txs.len(),
        });
    }
    blocks
}

/// Runs four validators of which the last plays `faults` for 30 s, and checks that the
/// chain finalized blocks all along, none of them that validator's.
fn a_faulty_proposer_never_gets_a_block_finalized(seed: u64, faults: Faults) {
    runner(seed).start(|context| async move {
        let faults = vec![
            Faults::default(),
            Faults::default(),
            Faults::default(),
            faults,
        ];
        let setup = Setup {
            faults,
            ..Setup::default()
        };
        let cluster = Cluster::start_with(context, 4, setup).await;
        let faulty = cluster.public_key(3);
        cluster.sleep(Duration::from_secs(30)).await;
        let blocks = finalized_blocks(&cluster).await;
        let theirs = blocks.iter().filter(|block| block.leader == faulty).count();
        assert_eq!(theirs, 0, "a block of the faulty proposer was finalized");
        // Three honest leaders of four, each view idle for a second, the faulty leader's view
        // timing out: the chain goes on.
        assert!(
            blocks.len() >= 12,
            "{} blocks finalized in 30 s",
            blocks.len()
        );
    });
}

#[test]
fn a_block_stamped_too_far_ahead_of_the_validators_clocks_is_not_finalized() {
    a_faulty_proposer_never_gets_a_block_finalized(
        21,
        Faults {
            clock_ahead_ms: 10_000,
            ..Faults::default()
        },
    );
}

/// The byzantine proposer executes its block at an honest time, so that only the time rule
/// stands between its block and the others: executed unchecked, it would stop their ledgers.
#[test]
fn a_block_stamped_before_its_parent_is_refused() {
    a_faulty_proposer_never_gets_a_block_finalized(
        22,
        Faults {
            stamp_before_parent_ms: Some(1),
            ..Faults::default()
        },
    );
}

/// An idle chain makes no more than one block per empty-block interval: consecutive block
/// times are at least the interval apart, and 30 s hold at most 30 s worth.
#[test]
fn an_idle_chain_makes_no_more_blocks_than_its_minimum_interval_allows() {
    runner(23).start(|context| async move {
        let cluster = Cluster::start(context, 4, 0).await;
        cluster.sleep(Duration::from_secs(30)).await;
        let blocks = finalized_blocks(&cluster).await;
        let interval_ms = Timeouts::default().empty_block.as_millis() as u64;
        let gaps: Vec<u64> = blocks
            .windows(2)
            .map(|w| w[1].time_ms - w[0].time_ms)
            .collect();
        let shortest = gaps.iter().copied().min().expect("blocks");
        println!(
            "{} blocks in 30 s of an idle chain; shortest gap {shortest} ms",
            blocks.len()
        );
        assert!(
            shortest >= interval_ms,
            "two empty blocks {shortest} ms apart"
        );
        // Height 1 came before the 30 s began.
        assert!(blocks.len() <= 32, "{} blocks in 30 s", blocks.len());
    });
}

/// A busy chain gathers: under a steady stream of transfers (one every 25 ms for 10 s) each
/// block follows its parent by at least the minimum interval, so that blocks are few and each
/// carries the transactions of its whole interval, and every transfer is still included.
/// Sends `count` transfers round-robin from `senders`, one every `every`, from the nonces in
/// `nonces` on; then lets the chain finalize them.
async fn stream(
    cluster: &Cluster,
    senders: &[exo_types::PrivateKey],
    nonces: &mut [u64],
    count: usize,
    every: Duration,
) {
    let to = faucet_key().public_key();
    for i in 0..count {
        let sender = i % senders.len();
        let tx = transfer(&senders[sender], nonces[sender], &to, Amount(1));
        cluster.validator(0).admit(tx).await.expect("admitted");
        nonces[sender] += 1;
        cluster.sleep(every).await;
    }
    cluster.sleep(Duration::from_secs(3)).await;
}

/// A leader gathers for the minimum interval only after a busy parent ([`exo_chain::GATHER_WORK`]):
/// a light stream of transfers is proposed as it comes, as without gathering, and a heavy one
/// makes blocks at least the interval apart, each carrying many transfers.
#[test]
fn a_heavy_stream_gathers_blocks_the_minimum_interval_apart_and_a_light_one_waits_for_nothing() {
    runner(25).start(|context| async move {
        const MIN_BLOCK_MS: u64 = 300;
        let senders: Vec<_> = (0..16).map(account_key).collect();
        let setup = Setup {
            accounts: funded(&senders, Amount::from_exo(1_000)),
            min_block: Duration::from_millis(MIN_BLOCK_MS),
            ..Setup::default()
        };
        let cluster = Cluster::start_with(context, 4, setup).await;
        let mut nonces = vec![0; senders.len()];

        // Light: a transfer every 100 ms, three an interval, far below the busy work.
        let before = cluster.status(0).finalized_height;
        stream(
            &cluster,
            &senders,
            &mut nonces,
            20,
            Duration::from_millis(100),
        )
        .await;
        let blocks = finalized_blocks(&cluster).await;
        let light = &blocks[before as usize - 1..];
        let mut gaps: Vec<u64> = light
            .windows(2)
            .filter(|pair| pair[1].txs > 0)
            .map(|pair| pair[1].time_ms - pair[0].time_ms)
            .collect();
        gaps.sort_unstable();
        let included: usize = light[1..].iter().map(|block| block.txs).sum();
        assert_eq!(included, 20, "every light transfer was finalized");
        let median = gaps[gaps.len() / 2];
        assert!(
            median < MIN_BLOCK_MS / 2,
            "light transfers' blocks follow their parents by {gaps:?} ms"
        );

        // Heavy: 200 transfers a second, 60 an interval. After the first few blocks, whose
        // parents were still light, every block follows its parent by the whole interval.
        const HEAVY: usize = 600;
        const EVERY_MS: u64 = 5;
        let before = cluster.status(0).finalized_height;
        stream(
            &cluster,
            &senders,
            &mut nonces,
            HEAVY,
            Duration::from_millis(EVERY_MS),
        )
        .await;
        let blocks = finalized_blocks(&cluster).await;
        let heavy = &blocks[before as usize - 1..];
        let included: usize = heavy[1..].iter().map(|block| block.txs).sum();
        assert_eq!(included, HEAVY, "every heavy transfer was finalized");
        let busy = heavy[1..].iter().filter(|block| block.txs > 0).count();
        const RAMP: usize = 4;
        let mut gathered = 0;
        for pair in heavy.windows(2) {
            if pair[0].txs >= exo_chain::GATHER_WORK {
                let gap = pair[1].time_ms - pair[0].time_ms;
                assert!(
                    gap >= MIN_BLOCK_MS,
                    "a block follows a busy parent by {gap} ms"
                );
                gathered += 1;
            }
        }
        assert!(
            gathered + RAMP + 2 >= busy,
            "only {gathered} of {busy} blocks followed a busy parent"
        );
        // 3 s of stream make at most 3 s / 300 ms blocks with transactions, plus the ramp and
        // the stream's tail: about 60 transfers each, not the one or two of a leader that
        // proposes as soon as it has work.
        let stream_ms = HEAVY as u64 * EVERY_MS;
        assert!(
            busy as u64 <= stream_ms / MIN_BLOCK_MS + RAMP as u64 + 2,
            "{busy} blocks carried the stream"
        );
    });
}

/// A job nobody can take is refunded when its waiting window passes, though nobody sends a
/// transaction after it: the idle chain's blocks carry the deadline.
#[test]
fn a_jobs_expiry_fires_and_refunds_it_on_an_idle_chain() {
    runner(24).start(|context| async move {
        const WINDOW_SECS: u64 = 20;
        let params = Params {
            epoch_length: EPOCH_LENGTH,
            market: MarketParams {
                job_wait_window_secs: WINDOW_SECS,
                ..MarketParams::default()
            },
            ..Params::default()
        };
        let setup = Setup {
            params: Some(params),
            ..Setup::default()
        };
        let cluster = Cluster::start_with(context, 4, setup).await;
        let faucet = faucet_key();
        // No provider exists: the job's units wait until the window closes.
        let (publish, job) = app_and_job(&faucet, 4);
        for tx in [signed(&faucet, 0, publish), signed(&faucet, 1, job)] {
            cluster.validator(0).admit(tx).await.expect("admitted");
        }
        let submitted = cluster.now();
        let open = loop {
            if let Some(job) = cluster.read(0, queries::job(0)).await {
                break job;
            }
            cluster.sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(open.state, JobState::Open);
        assert!(open.accounts.held > Amount::ZERO, "the job holds escrow");
        let held_before = cluster.balance(0, &faucet.public_key()).await;

        cluster.sleep(Duration::from_secs(WINDOW_SECS - 3)).await;
        let job = cluster.read(0, queries::job(0)).await.expect("job");
        assert_eq!(job.state, JobState::Open, "expired before its window");

        cluster.sleep(Duration::from_secs(6)).await;
        let job = cluster.read(0, queries::job(0)).await.expect("job");
        let waited = cluster.now().duration_since(submitted).unwrap_or_default();
        assert_eq!(job.state, JobState::Expired, "still open after {waited:?}");
        assert_eq!(job.accounts.held, Amount::ZERO);
        assert_eq!(job.accounts.refunded, job.accounts.escrowed);
        let refunded = cluster.balance(0, &faucet.public_key()).await;
        assert_eq!(refunded.0 - held_before.0, job.accounts.escrowed.0);
    });
}

/// `developer` publishes an app, and submits a job of `units` units of it at trust 1 that any
/// provider with half a GiB can take: the two actions.
fn app_and_job(developer: &exo_types::PrivateKey, units: u32) -> (Action, Action) {
    let app = [7u8; 32];
    let publish = Action::PublishApp {
        module_hash: app,
        name: "idle".into(),
        version: "1.0".into(),
        royalty_per_unit: Amount::ZERO,
    };
    let job = JobSpec {
        app,
        app_developer: developer.public_key(),
        inputs: Vec::new(),
        unit_args: Vec::new(),
        units,
        requirements: Requirements::wasm(512, 1_000_000_000),
        max_price_per_unit: Amount::from_exo(1),
        trust: 1,
    };
    (publish, Action::SubmitJob(Box::new(job)))
}

/// Starts 4 validators with `providers` funded providers, each registered with an offer of one
/// slot, under market parameters with `audit_ppm`, and submits a job of one unit at trust 1 from
/// the faucet; returns once the unit's first replica is assigned, with the providers' keys.
async fn idle_market(
    context: deterministic::Context,
    providers: u64,
    audit_ppm: u32,
) -> (Cluster, Vec<exo_types::PrivateKey>) {
    let keys: Vec<_> = (1..=providers).map(account_key).collect();
    let params = Params {
        epoch_length: EPOCH_LENGTH,
        market: MarketParams {
            audit_ppm,
            ..MarketParams::default()
        },
        ..Params::default()
    };
    let setup = Setup {
        accounts: funded(&keys, Amount::from_exo(1_000)),
        params: Some(params),
        ..Setup::default()
    };
    let cluster = Cluster::start_with(context, 4, setup).await;
    let faucet = faucet_key();
    let resources = Resources {
        cores: 1,
        cpu_score: 1_000_000_000,
        memory_mib: 1_024,
        gpu: None,
        class: DeviceClass::Pc,
        region: "eu-west".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000,
    };
    let mut txs = Vec::new();
    for key in &keys {
        let register = Action::RegisterProvider {
            resources: resources.clone(),
            bond: Amount::from_exo(100),
        };
        let offer = Action::PostOffer {
            slots: 1,
            price_per_unit: Amount(1),
            expiry_secs: 1_000_000,
        };
        txs.extend([signed(key, 0, register), signed(key, 1, offer)]);
    }
    let (publish, job) = app_and_job(&faucet, 1);
    txs.extend([signed(&faucet, 0, publish), signed(&faucet, 1, job)]);
    for tx in txs {
        cluster.validator(0).admit(tx).await.expect("admitted");
    }
    while cluster.read(0, queries::unit(0, 0)).await.is_none() {
        cluster.sleep(Duration::from_millis(20)).await;
    }
    (cluster, keys)
}

/// The result every replica of the idle market's unit commits, and its salt.
const RESULT: ([u8; 32], u64) = ([5u8; 32], 1_000);
const SALT: [u8; 32] = [1u8; 32];

/// Admits `key`'s commitment of [`RESULT`] for its replica of unit (0, 0), at `nonce`.
async fn commit_result(cluster: &Cluster, key: &exo_types::PrivateKey, nonce: u64) {
    let unit = cluster.read(0, queries::unit(0, 0)).await.expect("unit");
    let provider = cluster
        .read(0, queries::provider_of(&key.public_key()))
        .await
        .expect("registered");
    let replica = unit
        .replicas
        .iter()
        .find(|r| r.provider == provider.0)
        .expect("its replica")
        .index;
    let commit = ResultCommit {
        job: 0,
        unit: 0,
        replica,
        commitment: result_commitment(&RESULT.0, RESULT.1, &SALT, &key.public_key()),
        seal: result_seal(&RESULT.0, RESULT.1, 0, 0),
    };
    let tx = signed(key, nonce, Action::CommitResults(vec![commit]));
    cluster.validator(0).admit(tx).await.expect("admitted");
}

/// A unit whose only replica committed on an otherwise idle chain is drawn for its audit, and
/// its reveal accepted, without waiting for empty blocks: the blocks that bring the draw's
/// height ([`AUDIT_SEED_DELAY`] after the commitment) carry no transaction, yet their leaders
/// propose them at once, since the ledger owes them the draw. Before, each waited the
/// empty-block interval (a second), and an idle chain's single units took two seconds more.
/// The reveals open on every validator at once, not only on three: the next leader's node
/// applies the draw's block only once its own proposal is built, so that one is proposed at
/// once too (before, that node saw the reveals open 1.145 s after the commitment).
#[test]
fn an_idle_chain_brings_a_units_audit_draw_without_waiting_for_empty_blocks() {
    runner(26).start(|context| async move {
        // Drawn, but as good as never audited: with one provider an audit replica could only
        // lapse, a commit window later.
        let (cluster, keys) = idle_market(context, 1, 1).await;
        let provider = &keys[0];
        // Let the chain go idle: nothing is left to include.
        cluster.sleep(Duration::from_secs(3)).await;

        let committed_at = cluster.now();
        commit_result(&cluster, provider, 2).await;
        // Each validator's view: a worker reads the one it is attached to.
        let mut opened = vec![None; 4];
        while opened.iter().any(Option::is_none) {
            for (i, at) in opened.iter_mut().enumerate() {
                let unit = cluster.read(i, queries::unit(0, 0)).await.expect("unit");
                if at.is_none() && unit.reveal_deadline.is_some() {
                    *at = Some(cluster.now().duration_since(committed_at).unwrap_or_default());
                }
            }
            cluster.sleep(Duration::from_millis(5)).await;
        }
        let open = opened.iter().flatten().copied().max().expect("opened");
        let unit = cluster.read(0, queries::unit(0, 0)).await.expect("unit");
        let reveal = ResultReveal {
            job: 0,
            unit: 0,
            replica: unit.replicas[0].index,
            digest: RESULT.0,
            fuel: RESULT.1,
            salt: SALT,
        };
        let revealed_at = cluster.now();
        let tx = signed(provider, 3, Action::RevealResults(vec![reveal]));
        cluster.validator(0).admit(tx).await.expect("admitted");
        let accepted = loop {
            let unit = cluster.read(0, queries::unit(0, 0)).await.expect("unit");
            if unit.state == UnitState::Accepted {
                break cluster.now().duration_since(revealed_at).unwrap_or_default();
            }
            cluster.sleep(Duration::from_millis(10)).await;
        };

        let empty_ms = Timeouts::default().empty_block.as_millis() as u64;
        let blocks = finalized_blocks(&cluster).await;
        let mut commit_height = None;
        for height in 1..=blocks.len() as u64 {
            let block = cluster.block(0, height).await;
            if block
                .txs
                .iter()
                .any(|tx| matches!(tx.tx.action, Action::CommitResults(_)))
            {
                commit_height = Some(height);
            }
        }
        let commit_height = commit_height.expect("a block took the commitment");
        // The blocks after the commitment's, up to the draw's (index `h - 1` holds height `h`).
        let gaps: Vec<u64> = (commit_height + 1..=commit_height + AUDIT_SEED_DELAY)
            .map(|h| blocks[h as usize - 1].time_ms - blocks[h as usize - 2].time_ms)
            .collect();
        println!("reveals opened {opened:?} after the commitment, accepted {accepted:?} after the reveal; gaps to the draw {gaps:?} ms");
        assert!(
            gaps.iter().all(|gap| *gap < empty_ms / 2),
            "the blocks up to the audit draw waited {gaps:?} ms"
        );
        assert!(
            open < Duration::from_millis(empty_ms / 2),
            "reveals opened {opened:?} after the commitment on the four validators"
        );
    });
}

/// An audited unit on an idle chain gets its audit replica without waiting for an empty block:
/// the replica is sought at the draw and placed by a batch match soon after.
#[test]
fn an_idle_chain_places_a_units_audit_replica_without_waiting_for_empty_blocks() {
    runner(27).start(|context| async move {
        // Every unit audited; two providers, so that the audit has someone to go to.
        let (cluster, keys) = idle_market(context, 2, 1_000_000).await;
        cluster.sleep(Duration::from_secs(3)).await;
        let unit = cluster.read(0, queries::unit(0, 0)).await.expect("unit");
        let first = unit.replicas[0].provider;
        let mut holder = None;
        for key in &keys {
            let id = cluster
                .read(0, queries::provider_of(&key.public_key()))
                .await;
            if id.is_some_and(|id| id.0 == first) {
                holder = Some(key);
            }
        }
        let committed_at = cluster.now();
        commit_result(&cluster, holder.expect("a provider holds it"), 2).await;
        let audited = loop {
            let unit = cluster.read(0, queries::unit(0, 0)).await.expect("unit");
            if unit.replicas.len() == 2 {
                break cluster
                    .now()
                    .duration_since(committed_at)
                    .unwrap_or_default();
            }
            cluster.sleep(Duration::from_millis(10)).await;
        };
        let empty = Timeouts::default().empty_block;
        println!("audit replica placed {audited:?} after the commitment");
        assert!(
            audited < empty,
            "the audit replica was placed {audited:?} after the commitment"
        );
    });
}

/// Every validator applies a block that carried a transaction soon after it is finalized,
/// though the chain then goes idle. A leader's node applies finalized blocks only once its own
/// proposal is built; after a block with transactions the next leader proposes at once, since
/// they stay in its pool until that block is finalized (after a draw's block, which carries
/// none, the next block is proposed at once by rule: the test above).
#[test]
fn every_validator_applies_the_last_block_before_an_idle_pause_at_once() {
    runner(28).start(|context| async move {
        let cluster = Cluster::start(context, 4, 0).await;
        let faucet = faucet_key();
        let to = account_key(5).public_key();
        for nonce in 0..4 {
            // Let the chain go idle, then send one transfer.
            cluster.sleep(Duration::from_secs(3)).await;
            let sent = cluster.now();
            let tx = transfer(&faucet, nonce, &to, Amount(1));
            cluster.validator(0).admit(tx).await.expect("admitted");
            let mut applied = vec![None; 4];
            while applied.iter().any(Option::is_none) {
                for (i, at) in applied.iter_mut().enumerate() {
                    if at.is_none() && cluster.balance(i, &to).await == Amount(nonce as u128 + 1) {
                        *at = Some(cluster.now().duration_since(sent).unwrap_or_default());
                    }
                }
                cluster.sleep(Duration::from_millis(5)).await;
            }
            println!("transfer {nonce} applied after {applied:?}");
            let slowest = applied.iter().flatten().max().expect("applied");
            assert!(
                *slowest < Timeouts::default().empty_block / 2,
                "a validator applied the transfer {slowest:?} after it was sent: {applied:?}"
            );
        }
    });
}
