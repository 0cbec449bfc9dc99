//! Four validators under the deterministic runtime and the simulated network.

use commonware_cryptography::Signer as _;
use commonware_runtime::Runner as _;
use exo_ledger::modules::{bank, staking};
use exo_testkit::{
    Cluster, EPOCH_LENGTH, Setup, account_key, faucet_key, funded, runner, transfer, validator_key,
};
use exo_types::Amount;
use std::time::Duration;

#[test]
fn four_validators_finalize_transfers_with_one_state_root() {
    runner(1).start(|context| async move {
        let cluster = Cluster::start(context, 4, 0).await;
        let faucet = faucet_key();
        let alice = account_key(1).public_key();
        // A sender may queue 16 nonces past its next one: the second half waits for the first.
        for nonce in 0..20 {
            if nonce == 10 {
                cluster.wait_for_height(4, Duration::from_secs(60)).await;
            }
            let tx = transfer(&faucet, nonce, &alice, Amount::from_exo(1));
            cluster
                .validator((nonce % 4) as usize)
                .admit(tx)
                .await
                .expect("admitted");
        }
        cluster.wait_for_height(10, Duration::from_secs(60)).await;
        for i in 0..4 {
            assert_eq!(cluster.balance(i, &alice).await, Amount::from_exo(20));
        }
        // Past two epoch boundaries: each epoch runs its own engine from the last one's block.
        cluster.wait_for_height(45, Duration::from_secs(120)).await;
        let statuses: Vec<_> = (0..4).map(|i| cluster.status(i)).collect();
        assert!(statuses.iter().all(|s| s.epoch >= 2), "{statuses:?}");
        let block = cluster
            .validator(0)
            .blocks
            .by_height(45)
            .await
            .expect("block");
        for i in 1..4 {
            let other = cluster
                .validator(i)
                .blocks
                .by_height(45)
                .await
                .expect("block");
            assert_eq!(block, other);
        }
    });
}

#[test]
fn three_validators_go_on_when_one_crashes() {
    runner(2).start(|context| async move {
        let mut cluster = Cluster::start(context, 4, 0).await;
        cluster.wait_for_height(3, Duration::from_secs(60)).await;
        cluster.crash(3).await;
        let before = cluster.status(0).finalized_height;
        let faucet = faucet_key();
        let bob = account_key(2).public_key();
        cluster
            .validator(0)
            .admit(transfer(&faucet, 0, &bob, Amount::from_exo(7)))
            .await
            .expect("admitted");
        cluster
            .wait_for_height(before + 8, Duration::from_secs(120))
            .await;
        for i in 0..3 {
            assert_eq!(cluster.balance(i, &bob).await, Amount::from_exo(7));
        }
    });
}

#[test]
fn a_restarted_validator_recovers_from_disk_and_catches_up() {
    runner(3).start(|context| async move {
        let mut cluster = Cluster::start(context, 4, 0).await;
        let faucet = faucet_key();
        let carol = account_key(3).public_key();
        cluster
            .validator(1)
            .admit(transfer(&faucet, 0, &carol, Amount::from_exo(3)))
            .await
            .expect("admitted");
        cluster.wait_for_height(5, Duration::from_secs(60)).await;
        cluster.crash(2).await;
        cluster
            .validator(0)
            .admit(transfer(&faucet, 1, &carol, Amount::from_exo(4)))
            .await
            .expect("admitted");
        let target = cluster.status(0).finalized_height + 10;
        cluster
            .wait_for_height(target, Duration::from_secs(120))
            .await;
        cluster.start_validator(2).await;
        // The restarted validator reopens its state, backfills the blocks it missed and
        // executes them to the same root as the others.
        cluster
            .wait_for_height(target + 3, Duration::from_secs(120))
            .await;
        assert_eq!(cluster.balance(2, &carol).await, Amount::from_exo(7));
        let height = cluster.status(2).finalized_height;
        let block_0 = cluster
            .validator(0)
            .blocks
            .by_height(height)
            .await
            .expect("block");
        let block_2 = cluster
            .validator(2)
            .blocks
            .by_height(height)
            .await
            .expect("block");
        assert_eq!(block_0.state_root, block_2.state_root);
    });
}

#[test]
fn a_partition_stalls_finality_and_healing_resumes_it() {
    runner(4).start(|context| async move {
        let cluster = Cluster::start(context, 4, 0).await;
        cluster.wait_for_height(3, Duration::from_secs(60)).await;
        // Two against two: neither side has the 3 votes a quorum of 4 needs.
        cluster.partition(&[0, 1]).await;
        cluster.sleep(Duration::from_secs(2)).await;
        let stalled = cluster.status(0).finalized_height;
        cluster.sleep(Duration::from_secs(10)).await;
        assert!(cluster.status(0).finalized_height <= stalled + 1);
        cluster.heal().await;
        cluster
            .wait_for_height(stalled + 5, Duration::from_secs(120))
            .await;
        let roots: Vec<_> = (0..4).map(|i| cluster.status(i).finalized_height).collect();
        assert!(roots.iter().all(|h| *h >= stalled + 5));
    });
}

#[test]
fn an_equivocating_validator_is_recorded_and_safety_holds() {
    runner(5).start(|context| async move {
        let cluster = Cluster::start(context, 4, 1).await;
        cluster.wait_for_height(10, Duration::from_secs(120)).await;
        // Safety: the honest validators agree on every finalized block.
        for height in 1..=10 {
            let digests: Vec<_> = futures::future::join_all(
                (0..3).map(|i| cluster.validator(i).blocks.by_height(height)),
            )
            .await
            .into_iter()
            .map(|b| b.expect("finalized block").state_root)
            .collect();
            assert!(digests.windows(2).all(|w| w[0] == w[1]), "fork at {height}");
        }
        // The equivocator's conflicting votes were proven and recorded in the ledger.
        let mut recorded = 0;
        for _ in 0..100 {
            recorded = cluster.evidence_count(0).await;
            if recorded > 0 {
                break;
            }
            cluster.sleep(Duration::from_millis(500)).await;
        }
        assert!(recorded > 0, "no evidence recorded");
    });
}

/// The fault of an equivocator, proven from its conflicting votes, jails it at once; once the
/// deferral has passed it loses `min((3k/n)^2, 1)` of its stake (k = 1 offender in a committee
/// of n = 4: 9/16) into the insurance pool, exactly, and it leaves every committee from the next
/// epoch's (elected before its fault) on, while the three honest validators never stop
/// finalizing.
#[test]
fn an_equivocator_is_slashed_into_the_insurance_pool_and_left_out_of_the_next_committee() {
    runner(5).start(|context| async move {
        let mut params = exo_testkit::genesis(4).params;
        params.staking.slash_deferral_secs = 1;
        let bond = Amount::from_exo(1_000);
        params.staking.genesis_self_bond = bond;
        // Each validator holds its bond and nothing else.
        let validators: Vec<_> = (0..4).map(validator_key).collect();
        let accounts = funded(&validators, bond);
        let cluster = Cluster::start_with(
            context,
            4,
            Setup {
                params: Some(params),
                equivocators: 1,
                accounts,
                ..Setup::default()
            },
        )
        .await;
        let offender = cluster.public_key(3);
        let mut tries = 0;
        while cluster.evidence_count(0).await == 0 {
            tries += 1;
            assert!(tries < 200, "no evidence recorded");
            cluster.sleep(Duration::from_millis(500)).await;
        }
        let recorded_at = cluster.status(0).finalized_height;
        // The slash lands in the first epoch that ends after its deferral; the election at
        // the end of the epoch after that one cannot pick the offender.
        let recorded_epoch = recorded_at / EPOCH_LENGTH;
        cluster
            .wait_for_height(
                (recorded_epoch + 3) * EPOCH_LENGTH,
                Duration::from_secs(300),
            )
            .await;
        let validator = cluster
            .read(0, staking::queries::validator(&offender))
            .await
            .expect("a genesis validator");
        assert!(
            matches!(validator.status, staking::Status::Jailed { .. }),
            "{validator:?}"
        );
        let mut slashed = Vec::new();
        let mut minted = Amount::ZERO;
        for epoch in 0..=recorded_epoch + 2 {
            let record = cluster
                .read(0, staking::queries::epoch_record(epoch))
                .await
                .expect("a finished epoch");
            slashed.extend(record.slashes);
            minted = Amount(minted.0 + record.minted.0);
        }
        assert_eq!(slashed.len(), 1, "{slashed:?}");
        let slash = &slashed[0];
        assert_eq!(slash.validator, offender);
        assert_eq!((slash.offenders, slash.committee), (1, 4));
        assert_eq!(slash.amount, Amount(bond.0 * 9 / 16), "9/16 of its stake");
        let insurance = cluster
            .read(0, bank::queries::pot(bank::Pot::Insurance))
            .await
            .expect("the insurance pool");
        assert_eq!(insurance.0, slash.amount);
        let staker = cluster
            .read(0, staking::queries::staker(&offender))
            .await
            .expect("its stake");
        assert_eq!(staker.active, Amount(bond.0 - slash.amount.0));
        // Out of every committee from the next: the one elected before the fault too, so
        // that a committee of three finalized the epoch after it.
        for epoch in recorded_epoch + 1..=recorded_epoch + 4 {
            let committee = cluster
                .read(0, staking::queries::committee(epoch))
                .await
                .expect("elected");
            assert!(
                committee.members.iter().all(|m| m.validator != offender),
                "epoch {epoch}: {committee:?}"
            );
        }
        // Slashed stake moved to a pot: the supply changed by the block reward alone.
        let supply = cluster
            .read(0, bank::queries::supply())
            .await
            .expect("a supply");
        let genesis = Amount::from_exo(1_000_000).0 + 4 * bond.0;
        assert_eq!(supply.total, Amount(genesis + minted.0));
    });
}

#[test]
fn the_same_seed_gives_the_same_state_root() {
    fn run(seed: u64) -> (String, String) {
        let runner = runner(seed);
        runner.start(|context| async move {
            let cluster = Cluster::start(context, 4, 0).await;
            let faucet = faucet_key();
            for nonce in 0..10 {
                let to = account_key(nonce).public_key();
                cluster
                    .validator(0)
                    .admit(transfer(&faucet, nonce, &to, Amount::from_exo(1)))
                    .await
                    .expect("admitted");
            }
            cluster.wait_for_height(8, Duration::from_secs(60)).await;
            let block = cluster
                .validator(0)
                .blocks
                .by_height(8)
                .await
                .expect("block");
            let auditor = cluster.auditor_state();
            (format!("{:?}", block.state_root), auditor)
        })
    }
    let first = run(42);
    let second = run(42);
    assert_eq!(first, second);
}

/// The chain hands the ledger the leaders of the views it skipped, elected as the engine
/// elects them, and the voters of each parent's certificate: a crashed validator's slots are
/// the ones counted as missed, its votes are missing from the certificates, and the payout at
/// the end of the epoch jails it (and only it), pays the others for their blocks and votes and
/// mints exactly the epoch's block reward.
#[test]
fn a_crashed_validator_misses_its_slots_and_is_jailed_at_the_end_of_the_epoch() {
    runner(4).start(|context| async move {
        let mut params = exo_testkit::genesis(4).params;
        params.staking.downtime_min_missed = 1;
        let mut cluster = Cluster::start_with(
            context,
            4,
            Setup {
                params: Some(params),
                ..Setup::default()
            },
        )
        .await;
        cluster.wait_for_height(2, Duration::from_secs(60)).await;
        cluster.crash(3).await;
        cluster
            .wait_for_height(EPOCH_LENGTH + 2, Duration::from_secs(300))
            .await;
        let record = cluster
            .read(0, staking::queries::epoch_record(0))
            .await
            .expect("epoch 0 was paid out");
        let crashed = cluster.public_key(3);
        for member in &record.members {
            let silent = member.validator == crashed;
            assert_eq!(member.jailed, silent, "{member:?}");
            if silent {
                assert!(member.missed > member.proposed, "{member:?}");
                // Its votes stop with it: far under half of the epoch's certificates.
                assert!(member.votes * 2 < record.certificates, "{member:?}");
                assert_eq!(member.points, 0);
            } else {
                // A live leader's views are not skipped: had the chain named the wrong
                // leaders, the misses would land here.
                assert!(member.proposed > 0, "{member:?}");
                assert_eq!(member.missed, 0, "{member:?}");
                // Three live members are a quorum of four: each signs every certificate
                // from the crash on, and earns its vote points.
                assert!(member.votes * 10 >= record.certificates * 9, "{member:?}");
                assert_eq!(
                    member.points,
                    member.proposed * staking::PROPOSAL_POINTS
                        + member.votes * staking::VOTE_POINTS
                );
            }
        }
        let validator = cluster
            .read(0, staking::queries::validator(&crashed))
            .await
            .expect("a genesis validator");
        assert!(matches!(validator.status, staking::Status::Jailed { .. }));
        let supply = cluster
            .read(0, bank::queries::supply())
            .await
            .expect("a supply");
        assert_eq!(
            supply.total,
            Amount(Amount::from_exo(1_000_000).0 + record.minted.0),
            "the supply grew by the block reward alone"
        );
        assert_eq!(
            record.minted,
            Amount(Amount::from_exo(1).0 * u128::from(EPOCH_LENGTH - 1))
        );
    });
}
