//! Blocks: consensus context, parent, height, the state commitment, transactions, evidence,
//! and the certificate of the parent.

use crate::{
    evidence::EvidenceProof,
    votes::{MAX_VOTERS, ParentVotes},
};
use bytes::BufMut;
use commonware_codec::{
    Buf, Encode, EncodeSize, Error as CodecError, FixedSize, MaxEncodeSize, RangeCfg, Read,
    ReadExt, Write,
};
use commonware_consensus::{
    Block as ConsensusBlock, BoundedBlock, CertifiableBlock, Heightable,
    simplex::{scheme::ed25519::Scheme, types::Context},
    types::{Epoch, Height, Round, View},
};
use commonware_cryptography::{
    Digest as _, Digestible, Hasher, Sha256, certificate::Verifier as _, ed25519, sha256,
};
use commonware_storage::mmr::Location;
use commonware_utils::range::NonEmptyRange;
use exo_types::SignedTx;

/// The digest of a block.
pub type BlockDigest = sha256::Digest;
/// The consensus context embedded in every block (round, leader, parent view).
pub type BlockContext = Context<sha256::Digest, ed25519::PublicKey>;

/// Most transactions in one block, whatever the chain parameters say.
pub const MAX_BLOCK_TXS: usize = 10_000;
/// Most evidence records in one block.
pub const MAX_BLOCK_EVIDENCE: usize = 16;
/// Largest encoded block, in bytes. Proposers stop adding transactions before it.
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;
/// Most work in one block ([`exo_ledger::tx_work`]: one per transaction, plus one per result
/// committed or revealed). Proposers stop adding transactions before it and validators refuse
/// a block over it. Executing a block costs about its work: the proof-of-task simulation
/// measured about 60 us per result in the in-memory ledger (`block_cost` example,
/// docs/security.md, "Blocks that take longer than the leader's timeout (M1)"), so 4,096 is a
/// quarter of a second there, within the one-second leader timeout with room for storage and
/// signatures, and still some 20,000 results a second at the minimum block interval.
pub const MAX_BLOCK_WORK: usize = 4_096;

/// What fills a block: its most transactions, encoded bytes and work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockBounds {
    pub txs: usize,
    pub bytes: usize,
    pub work: usize,
}

/// The bounds of every block.
pub const MAX_BLOCK: BlockBounds = BlockBounds {
    txs: MAX_BLOCK_TXS,
    bytes: MAX_BLOCK_BYTES,
    work: MAX_BLOCK_WORK,
};

/// The work of `txs` ([`exo_ledger::tx_work`] summed).
pub fn block_work(txs: &[SignedTx]) -> usize {
    txs.iter().map(exo_ledger::tx_work).sum()
}

/// How far ahead of a validator's clock a block's time may be. Validators' clocks are kept by
/// NTP to well under a second; two seconds absorbs that drift and a slow network, and is small
/// against the shortest window the market allows ([`exo_ledger::MIN_WINDOW_SECS`]), so that a
/// proposer running its clock ahead cannot make a window close noticeably early.
pub const MAX_CLOCK_AHEAD_MS: u64 = 2_000;
const _: () = assert!(MAX_CLOCK_AHEAD_MS < exo_ledger::MIN_WINDOW_SECS * 1_000);

/// Why a block's time is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("block time {time_ms} ms does not follow its parent's, {parent_ms} ms")]
    NotAfterParent { time_ms: u64, parent_ms: u64 },
    #[error(
        "block time {time_ms} ms is more than {MAX_CLOCK_AHEAD_MS} ms ahead of this clock, {now_ms} ms"
    )]
    AheadOfClock { time_ms: u64, now_ms: u64 },
}

/// The time a proposer gives its block: its clock, or one millisecond past the parent's when
/// its clock is behind (a proposer never makes a block its peers would refuse for going back).
pub fn proposal_time(now_ms: u64, parent_ms: u64) -> u64 {
    now_ms.max(parent_ms.saturating_add(1))
}

/// Checks a candidate block's time against its parent's and this validator's clock: strictly
/// after the parent (so that two blocks never share a time and a window's end has one side),
/// and at most [`MAX_CLOCK_AHEAD_MS`] ahead of `now_ms`. A block behind the clock is accepted:
/// it may have waited in the network, and its time still only moves forward.
pub fn check_time(time_ms: u64, parent_ms: u64, now_ms: u64) -> Result<(), TimeError> {
    if time_ms <= parent_ms {
        return Err(TimeError::NotAfterParent { time_ms, parent_ms });
    }
    if time_ms > now_ms.saturating_add(MAX_CLOCK_AHEAD_MS) {
        return Err(TimeError::AheadOfClock { time_ms, now_ms });
    }
    Ok(())
}

/// A block of the Exodus chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Round and leader this block was proposed in; verified by consensus.
    pub context: BlockContext,
    pub parent: BlockDigest,
    pub height: Height,
    /// When the proposer made the block, in milliseconds since the Unix epoch, by its clock.
    /// Validators refuse a block whose time does not move forward from its parent's, or that
    /// is ahead of their own clock by more than [`MAX_CLOCK_AHEAD_MS`] (ARCHITECTURE.md, "Block
    /// time").
    pub timestamp_ms: u64,
    /// Hash of the genesis this chain started from: blocks of another chain never verify.
    pub chain: sha256::Digest,
    /// Root of the authenticated state after this block.
    pub state_root: sha256::Digest,
    /// Operation range of the state store after this block (the state-sync target).
    pub state_range: NonEmptyRange<Location>,
    pub txs: Vec<SignedTx>,
    /// Proven consensus faults, recorded by the ledger for slashing.
    pub evidence: Vec<EvidenceProof>,
    /// The notarization certificate of the parent block as the proposer knew it (its
    /// signers and their signatures), or `None` when it knew none or the parent is the
    /// genesis block. Verifiers refuse a block whose certificate is not a notarization of
    /// the parent by the committee of the parent's epoch; the ledger credits its signers a
    /// vote ([`crate::votes`]).
    pub parent_votes: Option<ParentVotes>,
}

impl Block {
    /// The block every validator starts from: height zero, empty state.
    pub fn genesis(
        chain: sha256::Digest,
        state_root: sha256::Digest,
        state_range: NonEmptyRange<Location>,
        leader: ed25519::PublicKey,
    ) -> Self {
        Self {
            context: Context {
                round: Round::new(Epoch::zero(), View::zero()),
                leader,
                parent: (View::zero(), sha256::Digest::EMPTY),
            },
            parent: sha256::Digest::EMPTY,
            height: Height::zero(),
            // The genesis block precedes every clock reading: any first block's time follows it.
            timestamp_ms: 0,
            chain,
            state_root,
            state_range,
            txs: Vec::new(),
            evidence: Vec::new(),
            parent_votes: None,
        }
    }

    /// The hashes of the block's transactions, in order.
    pub fn tx_hashes(&self) -> Vec<exo_types::TxHash> {
        self.txs.iter().map(SignedTx::hash).collect()
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        self.context.write(buf);
        self.parent.write(buf);
        self.height.write(buf);
        self.timestamp_ms.write(buf);
        self.chain.write(buf);
        self.state_root.write(buf);
        self.state_range.write(buf);
        self.txs.write(buf);
        self.evidence.write(buf);
        self.parent_votes.write(buf);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        self.context.encode_size()
            + self.parent.encode_size()
            + self.height.encode_size()
            + self.timestamp_ms.encode_size()
            + self.chain.encode_size()
            + self.state_root.encode_size()
            + self.state_range.encode_size()
            + self.txs.encode_size()
            + self.evidence.encode_size()
            + self.parent_votes.encode_size()
    }
}

impl Read for Block {
    type Cfg = ();

    fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
        let block = Self {
            context: BlockContext::read(buf)?,
            parent: sha256::Digest::read(buf)?,
            height: Height::read(buf)?,
            timestamp_ms: u64::read(buf)?,
            chain: sha256::Digest::read(buf)?,
            state_root: sha256::Digest::read(buf)?,
            state_range: NonEmptyRange::read(buf)?,
            txs: Vec::<SignedTx>::read_cfg(buf, &(RangeCfg::new(0..=MAX_BLOCK_TXS), ()))?,
            evidence: Vec::<EvidenceProof>::read_cfg(
                buf,
                &(RangeCfg::new(0..=MAX_BLOCK_EVIDENCE), ()),
            )?,
            parent_votes: Option::<ParentVotes>::read_cfg(buf, &MAX_VOTERS)?,
        };
        Ok(block)
    }
}

impl Digestible for Block {
    type Digest = sha256::Digest;

    fn digest(&self) -> sha256::Digest {
        Sha256::hash(&[&self.encode()])
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        self.height
    }
}

impl ConsensusBlock for Block {
    fn parent(&self) -> sha256::Digest {
        self.parent
    }
}

impl CertifiableBlock for Block {
    type Context = BlockContext;

    fn context(&self) -> BlockContext {
        self.context.clone()
    }
}

impl BoundedBlock for Block {
    fn max_encode_size(_: &()) -> usize {
        // Proposers never exceed MAX_BLOCK_BYTES; the fixed header and the largest certificate
        // are added so that the bound also covers the largest header.
        MAX_BLOCK_BYTES
            + 1
            + Scheme::max_certificate_size(exo_ledger::modules::staking::MAX_COMMITTEE_BOUND)
            + BlockContext::MAX_ENCODE_SIZE
            + 3 * sha256::Digest::SIZE
            + Height::MAX_ENCODE_SIZE
            + u64::SIZE
            + NonEmptyRange::<Location>::MAX_ENCODE_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_time_must_follow_its_parent_strictly() {
        assert_eq!(
            check_time(1_000, 1_000, 1_000),
            Err(TimeError::NotAfterParent {
                time_ms: 1_000,
                parent_ms: 1_000
            })
        );
        assert!(check_time(999, 1_000, 5_000).is_err());
        assert_eq!(check_time(1_001, 1_000, 1_000), Ok(()));
    }

    #[test]
    fn a_block_time_may_run_ahead_of_the_clock_by_the_tolerance_only() {
        let now = 10_000;
        assert_eq!(check_time(now + MAX_CLOCK_AHEAD_MS, 0, now), Ok(()));
        assert_eq!(
            check_time(now + MAX_CLOCK_AHEAD_MS + 1, 0, now),
            Err(TimeError::AheadOfClock {
                time_ms: now + MAX_CLOCK_AHEAD_MS + 1,
                now_ms: now
            })
        );
        // Behind the clock is fine: the block may have waited in the network.
        assert_eq!(check_time(1, 0, now), Ok(()));
    }

    #[test]
    fn a_proposer_whose_clock_is_behind_its_parent_still_moves_time_forward() {
        assert_eq!(proposal_time(5_000, 1_000), 5_000);
        assert_eq!(proposal_time(500, 1_000), 1_001);
        assert_eq!(check_time(proposal_time(500, 1_000), 1_000, 500), Ok(()));
    }
}
