//! Votes carried in blocks: each block carries its parent's notarization, verifiers refuse a
//! certificate of another block, and the ledger counts each member's votes.

use commonware_cryptography::{Digestible as _, Signer as _};
use commonware_runtime::{Runner as _, Supervisor as _};
use commonware_utils::ordered::Set;
use exo_chain::{
    engine::{CONSENSUS_NAMESPACE, Faults},
    votes::{proposal_of, verify_parent_votes},
};
use exo_ledger::modules::staking::{self, PROPOSAL_POINTS, VOTE_POINTS};
use exo_testkit::{Cluster, EPOCH_LENGTH, Setup, runner, validator_key};
use std::{collections::BTreeMap, time::Duration};

/// Over epoch 0 of four honest validators, nearly every block carries its parent's
/// certificate, each verifies against the genesis committee, and the epoch's record counts
/// exactly the votes those certificates hold: every member votes on most of them, none is
/// jailed, and points are the blocks proposed and the votes at their weights.
#[test]
fn honest_blocks_carry_their_parents_certificate_and_the_epoch_record_counts_every_vote() {
    runner(31).start(|context| async move {
        let mut rng = context.child("verify");
        let cluster = Cluster::start(context, 4, 0).await;
        cluster
            .wait_for_height(EPOCH_LENGTH + 1, Duration::from_secs(300))
            .await;
        let committee = Set::from_iter_dedup((0..4).map(|i| validator_key(i).public_key()));
        assert_eq!(
            cluster.block(0, 1).await.parent_votes,
            None,
            "genesis is not notarized"
        );
        // Blocks 2 to 19 have their parent in epoch 0; block 20, the first of epoch 1, carries
        // the certificate of block 19, which counts for nobody.
        let mut parent = cluster.block(0, 1).await;
        let (mut carried, mut votes) = (0u64, BTreeMap::new());
        for height in 2..EPOCH_LENGTH {
            let block = cluster.block(0, height).await;
            if let Some(certificate) = &block.parent_votes {
                let proposal = proposal_of(&parent, parent.digest()).expect("not genesis");
                let signers = verify_parent_votes(
                    &mut rng,
                    CONSENSUS_NAMESPACE,
                    &committee,
                    &proposal,
                    certificate,
                )
                .expect("a finalized block's certificate verifies");
                carried += 1;
                for signer in signers {
                    *votes.entry(signer).or_insert(0u64) += 1;
                }
            }
            parent = block;
        }
        println!(
            "{carried} of {} blocks carried a certificate",
            EPOCH_LENGTH - 2
        );
        assert!(
            carried * 10 >= (EPOCH_LENGTH - 2) * 9,
            "only {carried} blocks carried their parent's certificate"
        );
        let record = cluster
            .read(0, staking::queries::epoch_record(0))
            .await
            .expect("epoch 0 was paid out");
        assert_eq!(record.certificates, carried);
        for member in &record.members {
            println!(
                "proposed {} missed {} votes {} of {carried}",
                member.proposed, member.missed, member.votes
            );
            let counted = votes.get(&member.validator).copied().unwrap_or(0);
            assert_eq!(member.votes, counted, "{member:?}");
            assert!(member.votes * 2 >= carried, "{member:?}");
            assert!(!member.jailed, "{member:?}");
            assert_eq!(
                member.points,
                member.proposed * PROPOSAL_POINTS + member.votes * VOTE_POINTS
            );
        }
    });
}

/// A proposer that carries the certificate of its grandparent (genuine signatures of
/// another block) in place of its parent's gets none of its blocks past its first two
/// finalized: the others refuse them, and the chain goes on without it.
#[test]
fn a_block_carrying_another_blocks_certificate_is_refused_and_the_chain_goes_on() {
    runner(32).start(|context| async move {
        let mut faults = vec![Faults::default(); 4];
        faults[3].foreign_parent_votes = true;
        let cluster = Cluster::start_with(
            context,
            4,
            Setup {
                faults,
                ..Setup::default()
            },
        )
        .await;
        let forger = cluster.public_key(3);
        cluster.sleep(Duration::from_secs(30)).await;
        let top = cluster.status(0).finalized_height;
        assert!(top >= 12, "{top} blocks finalized in 30 s");
        for height in 3..=top {
            let block = cluster.block(0, height).await;
            assert_ne!(
                block.context.leader, forger,
                "the forger's block {height} was finalized"
            );
        }
    });
}
