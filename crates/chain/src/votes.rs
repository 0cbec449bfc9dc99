//! Votes carried in blocks: each block may carry the notarization certificate of its parent
//! (Cosmos's "last commit"), so that the ledger can count, deterministically, who voted.
//!
//! Simplex lets a leader build on a parent only once the parent is notarized, so a proposer
//! normally holds that certificate. The engine reports every certificate and every notarize
//! vote it sees ([`VoteBook::record`]); at proposal time the proposer joins the certificate with
//! the votes that arrived after the quorum was reached ([`VoteBook::parent_votes`]), so that a
//! member whose vote came last is still counted. Every verifier checks what a block carries
//! against the committee of the parent's epoch and the very proposal the parent was notarized
//! on ([`verify_parent_votes`]), and refuses a block whose certificate does not verify.

use crate::block::Block;
use commonware_consensus::simplex::{
    scheme::ed25519::Scheme,
    types::{Activity, Attributable, Notarize, Proposal, Subject},
};
use commonware_cryptography::{
    certificate::{Attestation, Scheme as _, Verifier as _},
    ed25519, sha256,
};
use commonware_parallel::Sequential;
use commonware_utils::{
    Participant,
    iter::NonEmpty,
    ordered::{Quorum as _, Set},
};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

/// The signers and signatures of a notarization certificate, as simplex's ed25519 scheme
/// encodes them (a signer bitmap over the committee, then one signature per signer).
pub type ParentVotes = ed25519::certificate::Certificate;

/// Most signers a block's certificate may name: one per member of the largest committee the
/// ledger may elect. Bounds the decoding of a block's certificate.
pub const MAX_VOTERS: usize = exo_ledger::MAX_PARENT_VOTERS;

/// The proposal `block`, whose digest is `digest`, was notarized on: its round, its parent's
/// view and its digest. `None` for the genesis block, which nobody notarizes (its children
/// carry no certificate).
pub fn proposal_of(block: &Block, digest: sha256::Digest) -> Option<Proposal<sha256::Digest>> {
    (block.height.get() > 0)
        .then(|| Proposal::new(block.context.round, block.context.parent.0, digest))
}

/// The consensus keys that signed `votes`, when `votes` is a notarization of `proposal` by
/// `committee` (the committee of the proposal's epoch): a quorum of valid signatures over a
/// signer bitmap exactly the committee's size. `None` otherwise.
pub fn verify_parent_votes(
    rng: &mut impl rand::CryptoRng,
    namespace: &[u8],
    committee: &Set<ed25519::PublicKey>,
    proposal: &Proposal<sha256::Digest>,
    votes: &ParentVotes,
) -> Option<Vec<ed25519::PublicKey>> {
    let verifier = Scheme::verifier(namespace, committee.clone());
    if !verifier.verify_certificate::<_, sha256::Digest>(
        rng,
        Subject::Notarize { proposal },
        votes,
        &Sequential,
    ) {
        return None;
    }
    votes
        .signers
        .iter()
        .map(|signer| committee.key(signer).cloned())
        .collect()
}

/// Most proposals the book remembers. A block carries its parent's certificate, which the
/// engine reported a view or two before the proposal; the book keeps the most recent rounds,
/// far more than that, whatever a byzantine member's votes for other proposals add.
const MAX_PROPOSALS: usize = 128;

/// What the engine reported of one proposal.
#[derive(Clone, Default)]
struct Seen {
    /// The notarization certificate the engine assembled or received (and verified).
    certificate: Option<ParentVotes>,
    /// Notarize votes for the proposal by signer, as the engine reported them: the engine
    /// reports a network vote before checking its signature, so each is verified before use.
    votes: BTreeMap<Participant, Notarize<Scheme, sha256::Digest>>,
}

/// Recent notarizations and notarize votes this validator's engine saw, by proposal; the
/// oldest rounds are forgotten past [`MAX_PROPOSALS`].
#[derive(Clone, Default)]
pub struct VoteBook {
    seen: Arc<Mutex<BTreeMap<Proposal<sha256::Digest>, Seen>>>,
}

impl VoteBook {
    /// Records a certificate or a notarize vote the engine reported; other activity is
    /// ignored.
    pub fn record(&self, activity: &Activity<Scheme, sha256::Digest>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match activity {
            Activity::Notarization(n) | Activity::Certification(n) => {
                let entry = seen.entry(n.proposal.clone()).or_default();
                entry
                    .certificate
                    .get_or_insert_with(|| n.certificate.clone());
            }
            Activity::Notarize(vote) => {
                let entry = seen.entry(vote.proposal.clone()).or_default();
                if entry.votes.len() < MAX_VOTERS {
                    entry
                        .votes
                        .entry(vote.signer())
                        .or_insert_with(|| vote.clone());
                }
            }
            _ => return,
        }
        // Proposals are ordered by round first: the oldest go.
        while seen.len() > MAX_PROPOSALS {
            seen.pop_first();
        }
    }

    /// The fullest notarization of `proposal` this validator can make: the engine's
    /// certificate joined with every notarize vote for it whose signature `scheme` (the
    /// committee of the proposal's epoch) verifies. `None` when neither reaches a quorum.
    pub fn parent_votes(
        &self,
        rng: &mut impl rand::CryptoRng,
        scheme: &Scheme,
        proposal: &Proposal<sha256::Digest>,
    ) -> Option<ParentVotes> {
        let Seen { certificate, votes } = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(proposal)?
            .clone();
        let mut attestations: BTreeMap<Participant, Attestation<Scheme>> = BTreeMap::new();
        if let Some(certificate) = certificate {
            for (signer, signature) in certificate.signers.iter().zip(certificate.signatures) {
                attestations.insert(signer, Attestation { signer, signature });
            }
        }
        for (signer, vote) in votes {
            if !attestations.contains_key(&signer) && vote.verify(rng, scheme, &Sequential) {
                attestations.insert(signer, vote.attestation);
            }
        }
        let attestations = NonEmpty::try_new(attestations.into_values())?;
        scheme.assemble(attestations, &Sequential).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CONSENSUS_NAMESPACE;
    use commonware_consensus::{
        simplex::types::Notarization,
        types::{Epoch, Round, View},
    };
    use commonware_cryptography::{Hasher, Sha256, Signer as _};
    use commonware_runtime::{Runner as _, deterministic};

    fn keys(seeds: std::ops::Range<u64>) -> Vec<ed25519::PrivateKey> {
        seeds.map(ed25519::PrivateKey::from_seed).collect()
    }

    fn committee(keys: &[ed25519::PrivateKey]) -> Set<ed25519::PublicKey> {
        Set::from_iter_dedup(keys.iter().map(|k| k.public_key()))
    }

    fn proposal(view: u64, what: &[u8]) -> Proposal<sha256::Digest> {
        Proposal::new(
            Round::new(Epoch::new(1), View::new(view)),
            View::new(view - 1),
            Sha256::hash(&[what]),
        )
    }

    /// The notarize votes of `signers` (of `keys`' committee) for `proposal`.
    fn notarizes(
        keys: &[ed25519::PrivateKey],
        signers: &[usize],
        proposal: &Proposal<sha256::Digest>,
    ) -> Vec<Notarize<Scheme, sha256::Digest>> {
        let set = committee(keys);
        signers
            .iter()
            .map(|i| {
                let scheme = Scheme::signer(CONSENSUS_NAMESPACE, set.clone(), keys[*i].clone())
                    .expect("a member");
                Notarize::sign(&scheme, proposal.clone()).expect("a signer signs")
            })
            .collect()
    }

    /// The certificate `signers` of `keys`' committee make for `proposal`.
    fn certificate(
        keys: &[ed25519::PrivateKey],
        signers: &[usize],
        proposal: &Proposal<sha256::Digest>,
    ) -> Notarization<Scheme, sha256::Digest> {
        let verifier = Scheme::verifier(CONSENSUS_NAMESPACE, committee(keys));
        let votes = notarizes(keys, signers, proposal);
        Notarization::from_notarizes(
            &verifier,
            NonEmpty::try_new(votes.iter()).expect("votes"),
            &Sequential,
        )
        .expect("a quorum")
    }

    /// The keys of `signers` of `keys`, in key order (the order verification names them in
    /// once sorted).
    fn voters(keys: &[ed25519::PrivateKey], signers: &[usize]) -> Vec<ed25519::PublicKey> {
        let mut voters: Vec<_> = signers.iter().map(|i| keys[*i].public_key()).collect();
        voters.sort();
        voters
    }

    /// A committee of four, its verifier, a parent proposal of view 3 and an empty book.
    type Four = (
        Vec<ed25519::PrivateKey>,
        Set<ed25519::PublicKey>,
        Scheme,
        Proposal<sha256::Digest>,
        VoteBook,
    );

    fn four() -> Four {
        let members = keys(0..4);
        let set = committee(&members);
        let verifier = Scheme::verifier(CONSENSUS_NAMESPACE, set.clone());
        (
            members,
            set,
            verifier,
            proposal(3, b"parent"),
            VoteBook::default(),
        )
    }

    #[test]
    fn a_parents_notarization_names_its_signers_and_nothing_else_verifies() {
        deterministic::Runner::default().start(|mut rng| async move {
            let members = keys(0..4);
            let set = committee(&members);
            let parent = proposal(7, b"parent");
            let genuine = certificate(&members, &[0, 1, 3], &parent);
            let mut signers = verify_parent_votes(
                &mut rng,
                CONSENSUS_NAMESPACE,
                &set,
                &parent,
                &genuine.certificate,
            )
            .expect("the parent's certificate verifies");
            signers.sort();
            assert_eq!(signers, voters(&members, &[0, 1, 3]));

            // The votes of another block, of the parent's digest in another round, or from
            // another committee do not certify the parent.
            let other_block = certificate(&members, &[0, 1, 2], &proposal(7, b"other"));
            let other_round = certificate(&members, &[0, 1, 2], &proposal(8, b"parent"));
            let outsiders = keys(10..14);
            let foreign = certificate(&outsiders, &[0, 1, 2], &parent);
            // A certificate over a committee of another size, even by members.
            let wider: Vec<_> = members.iter().cloned().chain(keys(10..11)).collect();
            let wide = certificate(&wider, &[0, 1, 2, 3], &parent);
            for forged in [&other_block, &other_round, &foreign, &wide] {
                assert_eq!(
                    verify_parent_votes(
                        &mut rng,
                        CONSENSUS_NAMESPACE,
                        &set,
                        &parent,
                        &forged.certificate
                    ),
                    None
                );
            }
            // Fewer signatures than a quorum, made by dropping one from a genuine certificate.
            let mut short = genuine.certificate.clone();
            short.signatures.pop();
            assert_eq!(
                verify_parent_votes(&mut rng, CONSENSUS_NAMESPACE, &set, &parent, &short),
                None
            );
        });
    }

    #[test]
    fn the_book_adds_the_votes_that_came_after_the_quorum_to_the_certificate() {
        deterministic::Runner::default().start(|mut rng| async move {
            let (members, set, verifier, parent, book) = four();
            assert!(book.parent_votes(&mut rng, &verifier, &parent).is_none());

            book.record(&Activity::Notarization(certificate(
                &members,
                &[0, 1, 2],
                &parent,
            )));
            // The last member's vote arrives after the quorum; its vote for another proposal
            // of the same round does not count for this one.
            let late = notarizes(&members, &[3], &parent).remove(0);
            book.record(&Activity::Notarize(late));
            book.record(&Activity::Notarize(
                notarizes(&members, &[3], &proposal(3, b"other")).remove(0),
            ));
            let votes = book
                .parent_votes(&mut rng, &verifier, &parent)
                .expect("the certificate");
            let mut signers =
                verify_parent_votes(&mut rng, CONSENSUS_NAMESPACE, &set, &parent, &votes)
                    .expect("what the book assembles verifies");
            signers.sort();
            assert_eq!(signers, voters(&members, &[0, 1, 2, 3]));
        });
    }

    #[test]
    fn votes_with_a_bad_signature_are_left_out_and_old_rounds_are_forgotten() {
        deterministic::Runner::default().start(|mut rng| async move {
            let (members, set, verifier, parent, book) = four();
            // Votes alone, no certificate: 0, 1 and 2 make a quorum; 3's vote carries the
            // signature of another proposal and is left out.
            for vote in notarizes(&members, &[0, 1, 2], &parent) {
                book.record(&Activity::Notarize(vote));
            }
            let mut bad = notarizes(&members, &[3], &parent).remove(0);
            bad.attestation = notarizes(&members, &[3], &proposal(3, b"x"))
                .remove(0)
                .attestation;
            book.record(&Activity::Notarize(bad));
            let votes = book
                .parent_votes(&mut rng, &verifier, &parent)
                .expect("a quorum of good votes");
            assert_eq!(votes.signers.count(), 3);
            assert!(
                verify_parent_votes(&mut rng, CONSENSUS_NAMESPACE, &set, &parent, &votes).is_some()
            );

            // Past the bound, the oldest rounds go first.
            for view in 4..(4 + MAX_PROPOSALS as u64) {
                let later = proposal(view, b"later");
                book.record(&Activity::Notarization(certificate(
                    &members,
                    &[0, 1, 2],
                    &later,
                )));
            }
            assert!(book.parent_votes(&mut rng, &verifier, &parent).is_none());
            assert!(
                book.parent_votes(
                    &mut rng,
                    &verifier,
                    &proposal(4 + MAX_PROPOSALS as u64 - 1, b"later")
                )
                .is_some()
            );
        });
    }

    /// A block with `votes` as its certificate of the parent.
    fn block_with(votes: ParentVotes) -> Block {
        let range = commonware_utils::range::NonEmptyRange::new(
            commonware_storage::mmr::Location::new(0)..commonware_storage::mmr::Location::new(1),
        )
        .expect("a range");
        let mut block = Block::genesis(
            Sha256::hash(&[b"chain"]),
            Sha256::hash(&[b"root"]),
            range,
            keys(0..1)[0].public_key(),
        );
        block.height = commonware_consensus::types::Height::new(5);
        block.parent_votes = Some(votes);
        block
    }

    #[test]
    fn a_blocks_certificate_round_trips_and_one_over_the_largest_committee_does_not_decode() {
        use commonware_codec::{Decode as _, Encode as _};
        let members = keys(0..4);
        let genuine = certificate(&members, &[0, 1, 3], &proposal(7, b"parent"));
        let block = block_with(genuine.certificate.clone());
        let decoded = Block::decode_cfg(block.encode(), &()).expect("a block decodes");
        assert_eq!(decoded, block);
        assert_eq!(decoded.parent_votes, Some(genuine.certificate.clone()));

        // A bitmap over the largest committee decodes (verification judges it); one over a
        // committee larger than any is refused by the decoder, before any signature is
        // looked at.
        let over = |participants: u32| ParentVotes {
            signers: commonware_cryptography::certificate::Signers::new(
                participants,
                [Participant::new(participants - 1)],
            )
            .expect("one signer"),
            signatures: genuine.certificate.signatures[..1].to_vec(),
        };
        let widest = block_with(over(MAX_VOTERS as u32));
        assert_eq!(
            Block::decode_cfg(widest.encode(), &()).expect("the widest bitmap decodes"),
            widest
        );
        let too_wide = over(MAX_VOTERS as u32 + 1);
        assert!(Block::decode_cfg(block_with(too_wide).encode(), &()).is_err());
    }
}
