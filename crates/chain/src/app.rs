//! The application: executes blocks with the ledger on speculative QMDB batches.

use crate::{
    block::{
        Block, BlockContext, MAX_BLOCK_BYTES, MAX_BLOCK_EVIDENCE, MAX_BLOCK_TXS, check_time,
        proposal_time,
    },
    engine::Faults,
    epochs::consensus_keys,
    events::{ChainEvents, FinalizedBlock},
    evidence::EvidenceProof,
    mempool::Mempool,
    store::{StateDatabases, StateKey, StateUnmerkleized},
};
use commonware_consensus::{
    Heightable,
    marshal::ancestry::Ancestry,
    simplex::{
        elector::{Config as _, Elector as _, RoundRobin, RoundRobinElector},
        scheme::ed25519::Scheme,
    },
    types::{Epoch, Round, View},
};
use commonware_cryptography::{BatchEntry, BatchVerifier, Digestible, Sha256, ed25519, sha256};
use commonware_glue::stateful::{
    Application, Finality, Input, Proposed,
    db::{DatabaseSet, Merkleized as _, Unmerkleized as _},
};
use commonware_parallel::Sequential;
use commonware_runtime::Spawner;
use commonware_storage::{Context as StorageContext, qmdb::sync::Target};
use commonware_utils::{non_empty_range, ordered::Set};
use exo_ledger::{
    BlockEnv, BlockOutcome, BlockRun, Genesis, MAX_SKIPPED_LEADERS, Policy, Signatures, Step,
    modules::staking,
};
use exo_types::{SignedTx, TX_NAMESPACE};
use futures::StreamExt;
use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tracing::{debug, error, warn};

/// Why a block could not be executed. Any of these makes a candidate block invalid.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("state read failed: {0}")]
    Store(String),
    #[error("block has no parent in its ancestry")]
    NoParent,
    #[error("block is for another chain")]
    WrongChain,
    #[error("block carries {0} transactions, over the limit")]
    TooManyTxs(usize),
    #[error("block carries invalid evidence")]
    BadEvidence,
    #[error("no committee is recorded for the block's epoch {0}")]
    NoCommittee(u64),
    #[error(
        "block carries {count} transactions that pay no fee (the first at position {first}): \
         duplicates or ones refused before their fee, which an honest proposer leaves out"
    )]
    Unpaid { first: u32, count: usize },
}

/// Most mempool transactions a proposal executes to fill one block.
const MAX_CANDIDATES: usize = 2 * MAX_BLOCK_TXS;

/// The leader election every epoch's engine runs with: round-robin over the epoch's committee,
/// the leader of view `v` in epoch `e` at position `(e + v) mod n`. The ledger's downtime rule
/// is measured with the same election ([`App::skipped_leaders`]).
pub(crate) fn leader_elector() -> RoundRobin<Sha256> {
    RoundRobin::default()
}

/// Faults seen by this validator's consensus engine, waiting to be included in a block.
#[derive(Clone, Default)]
pub struct EvidencePool {
    pending: Arc<Mutex<Vec<EvidenceProof>>>,
}

impl EvidencePool {
    /// Bound on unincluded evidence: a flood of faults cannot grow memory without limit.
    const MAX_PENDING: usize = 256;

    pub fn push(&self, proof: EvidenceProof) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() < Self::MAX_PENDING && !pending.contains(&proof) {
            pending.push(proof);
        }
    }

    fn snapshot(&self) -> Vec<EvidenceProof> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_empty(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn remove(&self, included: &[EvidenceProof]) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| !included.contains(p));
    }
}

/// What proposals draw from: the mempool and the evidence pool.
#[derive(Clone)]
pub struct Sources {
    pub mempool: Mempool,
    pub evidence: EvidencePool,
}

impl Sources {
    /// Whether a block would carry something: an executable transaction or evidence.
    fn has_work(&self) -> bool {
        self.mempool.has_executable() || !self.evidence.is_empty()
    }
}

/// How often an idle proposer looks for work while it holds back an empty block.
const IDLE_POLL: Duration = Duration::from_millis(25);

/// The Exodus application driven by `commonware_glue::stateful`.
#[derive(Clone)]
pub struct App {
    genesis: Arc<Genesis>,
    genesis_hash: sha256::Digest,
    genesis_block: Block,
    /// The committee of epochs 0 and 1 until the first block writes them to state.
    genesis_committee: Set<ed25519::PublicKey>,
    namespace: Arc<[u8]>,
    events: ChainEvents,
    sources: Sources,
    /// How long a proposer with nothing to include waits for work before it proposes an empty
    /// block anyway; below the leader timeout, so that the view does not time out.
    empty_block_interval: Duration,
    /// None but in simulations of a faulty proposer.
    faults: Faults,
}

impl App {
    pub fn new(
        genesis: Arc<Genesis>,
        genesis_block: Block,
        committee: Set<ed25519::PublicKey>,
        namespace: &[u8],
        events: ChainEvents,
        sources: Sources,
        empty_block_interval: Duration,
    ) -> Self {
        Self {
            sources,
            empty_block_interval,
            faults: Faults::default(),
            genesis_hash: genesis.hash(),
            namespace: namespace.into(),
            genesis,
            genesis_block,
            genesis_committee: committee,
            events,
        }
    }

    /// Makes this validator's proposals play `faults`.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
}

/// What a block executes: its place in the chain and its contents.
struct BlockInput {
    height: u64,
    /// The block's time, in milliseconds since the Unix epoch.
    timestamp_ms: u64,
    /// Its consensus context: the leader that proposed it, its round and its parent's view.
    consensus: BlockContext,
    parent: sha256::Digest,
    txs: Vec<SignedTx>,
    evidence: Vec<EvidenceProof>,
}

/// Runs the ledger's block runner to its end, loading the keys it asks for from the batch.
///
/// A ledger fault means this validator's state is not what the ledger wrote: going on would
/// sign roots nobody else shares, so the node stops here, loudly.
async fn run_block<E>(
    batch: &StateUnmerkleized<E>,
    mut run: BlockRun<'_>,
) -> Result<BlockOutcome, ExecError>
where
    E: StorageContext + Spawner,
{
    loop {
        match run.step() {
            Ok(Step::Done) => return Ok(run.finish()),
            Ok(Step::Need(keys)) => {
                let store_keys: Vec<StateKey> = keys.iter().map(|k| StateKey::new(*k)).collect();
                let refs: Vec<&StateKey> = store_keys.iter().collect();
                let values = batch
                    .get_many(&refs)
                    .await
                    .map_err(|e| ExecError::Store(e.to_string()))?;
                for (key, value) in keys.into_iter().zip(values) {
                    run.load(key, value);
                }
            }
            Err(fault) => {
                error!(%fault, "ledger fault: this node stops");
                panic!("ledger fault: {fault}");
            }
        }
    }
}

/// Milliseconds since the Unix epoch of a clock reading; a clock set before 1970 reads zero.
fn epoch_ms(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Checks every signature of a block with one batch verification; on failure, finds the bad
/// ones one by one (a block with a bad signature is rare and its proposer pays the cost).
pub(crate) fn verify_signatures(rng: &mut impl rand::CryptoRng, txs: &[SignedTx]) -> Vec<bool> {
    if txs.is_empty() {
        return Vec::new();
    }
    let messages: Vec<bytes::Bytes> = txs
        .iter()
        .map(|t| commonware_codec::Encode::encode(&t.tx))
        .collect();
    let all_ok = ed25519::PublicKey::verify_batch(
        rng,
        txs,
        |i, tx| BatchEntry {
            namespace: TX_NAMESPACE,
            message: &messages[i],
            public_key: &tx.tx.sender,
            signature: &tx.signature,
        },
        &Sequential,
    );
    if all_ok {
        return vec![true; txs.len()];
    }
    txs.iter().map(SignedTx::verify_signature).collect()
}

/// The leaders `committee`'s engine elects for `views` of `epoch`, the first
/// [`MAX_SKIPPED_LEADERS`] of them.
fn leaders_of(
    committee: &Set<ed25519::PublicKey>,
    epoch: Epoch,
    views: std::ops::Range<u64>,
) -> Vec<ed25519::PublicKey> {
    let elector: RoundRobinElector<Scheme> = leader_elector().build(committee);
    views
        .take(MAX_SKIPPED_LEADERS)
        .filter_map(|v| {
            let leader = elector.elect(Round::new(epoch, View::new(v)), ());
            committee.get(usize::from(leader)).cloned()
        })
        .collect()
}

impl App {
    /// The committee of `epoch` in `batch`'s state, if it was elected there (epochs 0 and 1
    /// are the genesis committee before the first block writes them).
    async fn committee_at<E>(
        &self,
        batch: &StateUnmerkleized<E>,
        epoch: Epoch,
    ) -> Result<Option<Set<ed25519::PublicKey>>, ExecError>
    where
        E: StorageContext + Spawner,
    {
        let query = staking::queries::committee(epoch.get());
        let key = StateKey::new(query.key);
        let value = batch
            .get(&key)
            .await
            .map_err(|e| ExecError::Store(e.to_string()))?;
        match query.decode(value.as_deref()) {
            Ok(Some(committee)) => Ok(consensus_keys(committee)),
            Ok(None) if epoch.get() <= 1 => Ok(Some(self.genesis_committee.clone())),
            Ok(None) => Ok(None),
            Err(fault) => Err(ExecError::Store(fault.to_string())),
        }
    }

    /// The leaders of the views between the block's parent and the block, which the chain
    /// skipped (simplex builds on a parent only across views it nullified), as the epoch's
    /// engine elected them, at most [`MAX_SKIPPED_LEADERS`].
    async fn skipped_leaders<E>(
        &self,
        batch: &StateUnmerkleized<E>,
        consensus: &BlockContext,
    ) -> Result<Vec<ed25519::PublicKey>, ExecError>
    where
        E: StorageContext + Spawner,
    {
        let (epoch, view) = (consensus.round.epoch(), consensus.round.view().get());
        let first = consensus.parent.0.get().saturating_add(1);
        if first >= view {
            return Ok(Vec::new());
        }
        let committee = self
            .committee_at(batch, epoch)
            .await?
            .ok_or(ExecError::NoCommittee(epoch.get()))?;
        Ok(leaders_of(&committee, epoch, first..view))
    }

    /// Executes `txs` and `evidence` on `batch` as block `height` in `consensus`.
    ///
    /// When `building`, transactions the ledger would reject before charging a fee are left
    /// out of the block (and, when they can never succeed, dropped from the mempool), and
    /// duplicate evidence is skipped. When verifying, everything in the block is executed as it
    /// is, and invalid evidence or a transaction that pays no fee makes the block invalid.
    async fn execute<E>(
        &self,
        rng: &mut impl rand::CryptoRng,
        block: BlockInput,
        mut batch: StateUnmerkleized<E>,
        building: Option<&Mempool>,
    ) -> Result<(Vec<SignedTx>, Vec<EvidenceProof>, StateUnmerkleized<E>), ExecError>
    where
        E: StorageContext + Spawner,
    {
        let BlockInput {
            height,
            timestamp_ms,
            consensus,
            parent,
            txs,
            evidence,
        } = block;
        let skipped_leaders = self.skipped_leaders(&batch, &consensus).await?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(parent.as_ref());
        // The chain verifies evidence against the committee of its epoch, as the parent's
        // state records it; the ledger records the fault.
        let mut proofs = Vec::with_capacity(evidence.len());
        let mut records = Vec::with_capacity(evidence.len());
        for proof in evidence {
            let verified = self
                .committee_at(&batch, proof.epoch())
                .await?
                .and_then(|committee| {
                    let verifier = Scheme::verifier(&self.namespace, committee.clone());
                    proof.verify(rng, &verifier, &committee)
                });
            match verified {
                Some(record) => {
                    records.push(record);
                    proofs.push(proof);
                }
                None if building.is_some() => continue,
                None => return Err(ExecError::BadEvidence),
            }
        }
        let (signatures, policy) = match building {
            // The mempool admits only transactions whose signature it checked.
            Some(_) => (
                Signatures::Trusted,
                Policy::Build {
                    max_txs: MAX_BLOCK_TXS,
                    max_bytes: MAX_BLOCK_BYTES,
                },
            ),
            None => (
                Signatures::Checked(verify_signatures(rng, &txs)),
                Policy::Verify,
            ),
        };
        let input = exo_ledger::BlockInput {
            env: BlockEnv {
                height,
                time_ms: timestamp_ms,
                proposer: consensus.leader,
                skipped_leaders,
                seed,
            },
            evidence: records,
            txs,
            signatures,
            policy,
        };
        let outcome = run_block(&batch, BlockRun::new(&self.genesis, input)).await?;
        if let Some(first) = outcome.unpaid.first() {
            return Err(ExecError::Unpaid {
                first: *first,
                count: outcome.unpaid.len(),
            });
        }
        // A proposer leaves out evidence already recorded; a verifier keeps what it was given.
        let included_evidence = proofs
            .into_iter()
            .zip(&outcome.new_evidence)
            .filter(|(_, new)| **new || building.is_none())
            .map(|(proof, _)| proof)
            .collect();
        if let Some(mempool) = building
            && !outcome.evicted.is_empty()
        {
            debug!(
                count = outcome.evicted.len(),
                "dropping transactions that can never execute"
            );
            mempool.remove(outcome.evicted.clone());
        }
        let included = outcome.included;
        for (key, value) in outcome.writes {
            batch = batch.write(StateKey::new(key), value);
        }
        Ok((included, included_evidence, batch))
    }
}

impl<E> Application<E> for App
where
    E: StorageContext + Spawner + rand::CryptoRng,
{
    type SigningScheme = Scheme;
    type Context = BlockContext;
    type Block = Block;
    type Databases = StateDatabases<E>;
    type Captured = ();
    type Provider = Sources;
    type Input = ();

    fn sync_targets(block: &Block) -> <Self::Databases as DatabaseSet<E>>::SyncTargets {
        Target::new(block.state_root, block.state_range.clone())
    }

    async fn genesis(&mut self) -> Block {
        self.genesis_block.clone()
    }

    async fn propose(
        &mut self,
        (mut context, consensus): (E, BlockContext),
        ancestry: impl Ancestry<Block>,
        batches: <Self::Databases as DatabaseSet<E>>::Unmerkleized,
        input: Input<(), Sources>,
    ) -> Option<Proposed<Self, E>> {
        let mut ancestry = Box::pin(ancestry);
        let parent = ancestry.next().await?;
        let height = parent.height().next();
        let sources = input.provider;
        // An idle chain does not spin: with nothing to include, hold the empty block back until
        // the interval has passed since this view began, or until work arrives.
        let view_start = context.current();
        while !sources.has_work() {
            let waited = context
                .current()
                .duration_since(view_start)
                .unwrap_or_default();
            let Some(left) = self.empty_block_interval.checked_sub(waited) else {
                break;
            };
            if left.is_zero() {
                break;
            }
            context.sleep(left.min(IDLE_POLL)).await;
        }
        // Left-out candidates do not count against the block's budget: the runner stops at
        // MAX_BLOCK_TXS included, and twice that many candidates leave room for those that
        // turn out not to execute (a duplicate of the parent's, funds spent earlier in the
        // block) while keeping the proposal's work bounded.
        let candidates = sources.mempool.candidates(MAX_CANDIDATES);
        let mut evidence = sources.evidence.snapshot();
        evidence.truncate(MAX_BLOCK_EVIDENCE);
        let parent_ms = parent.inner().timestamp_ms;
        let now_ms = epoch_ms(context.current()).saturating_add(self.faults.clock_ahead_ms);
        let timestamp_ms = proposal_time(now_ms, parent_ms);
        let input = BlockInput {
            height: height.get(),
            timestamp_ms,
            consensus: consensus.clone(),
            parent: parent.digest(),
            txs: candidates,
            evidence,
        };
        let (txs, evidence, batch) = match self
            .execute(&mut context, input, batches, Some(&sources.mempool))
            .await
        {
            Ok(done) => done,
            Err(err) => {
                warn!(%err, height = height.get(), "cannot build a block");
                return None;
            }
        };
        let merkleized = batch.merkleize().await.ok()?;
        let bounds = merkleized.bounds();
        let block = Block {
            context: consensus,
            parent: parent.digest(),
            height,
            timestamp_ms: self
                .faults
                .stamp_before_parent_ms
                .map_or(timestamp_ms, |before| parent_ms.saturating_sub(before)),
            chain: self.genesis_hash,
            state_root: merkleized.root(),
            state_range: non_empty_range!(bounds.inactivity_floor, bounds.tip.size),
            txs,
            evidence,
        };
        self.events.proposed(height.get(), block.txs.len());
        Some(Proposed { block, merkleized })
    }

    async fn process(
        &mut self,
        (mut context, _consensus): (E, BlockContext),
        ancestry: impl Ancestry<Block>,
        batches: <Self::Databases as DatabaseSet<E>>::Unmerkleized,
        finality: Finality,
    ) -> Option<<Self::Databases as DatabaseSet<E>>::Merkleized> {
        let mut ancestry = Box::pin(ancestry);
        let block = ancestry.next().await?.inner().clone();
        if block.chain != self.genesis_hash {
            warn!(
                height = block.height.get(),
                "rejecting a block of another chain"
            );
            return None;
        }
        if block.txs.len() > MAX_BLOCK_TXS || block.evidence.len() > MAX_BLOCK_EVIDENCE {
            return None;
        }
        // A finalized block was accepted by a quorum when it was a candidate: its time is
        // not judged again against this validator's clock, which may be catching up from far
        // behind.
        if matches!(finality, Finality::Candidate) {
            let parent = ancestry.next().await?;
            let now_ms = epoch_ms(context.current());
            if let Err(err) = check_time(block.timestamp_ms, parent.inner().timestamp_ms, now_ms) {
                warn!(%err, height = block.height.get(), "refusing a block's time");
                return None;
            }
        }
        let input = BlockInput {
            height: block.height.get(),
            timestamp_ms: block.timestamp_ms,
            consensus: block.context.clone(),
            parent: block.parent,
            txs: block.txs.clone(),
            evidence: block.evidence.clone(),
        };
        let (_, _, batch) = match self.execute(&mut context, input, batches, None).await {
            Ok(done) => done,
            Err(err) => {
                warn!(%err, height = block.height.get(), "block does not execute");
                return None;
            }
        };
        batch.merkleize().await.ok()
    }

    async fn capture(
        &mut self,
        _context: (E, BlockContext),
        _block: &Block,
        _batches: &<Self::Databases as DatabaseSet<E>>::Merkleized,
        _readers: <Self::Databases as DatabaseSet<E>>::Readers,
    ) {
    }

    async fn finalized(
        &mut self,
        _context: (E, BlockContext),
        block: &Block,
        _captured: (),
        _readers: <Self::Databases as DatabaseSet<E>>::Readers,
    ) {
        let summary = FinalizedBlock::from_block(block);
        self.sources
            .mempool
            .finalized(block.height.get(), &block.txs);
        self.sources.evidence.remove(&block.evidence);
        self.events.finalized(summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;

    #[test]
    fn the_skipped_leaders_are_the_committee_in_round_robin_from_epoch_plus_view() {
        let committee =
            Set::from_iter_dedup((0..4).map(|s| ed25519::PrivateKey::from_seed(s).public_key()));
        let epoch = Epoch::new(5);
        let leaders = leaders_of(&committee, epoch, 3..7);
        let expected: Vec<_> = (3..7u64)
            .map(|v| committee[((5 + v) % 4) as usize].clone())
            .collect();
        assert_eq!(leaders, expected);
        assert_eq!(
            leaders_of(&committee, epoch, 1..1_000_000).len(),
            MAX_SKIPPED_LEADERS,
            "a long gap is cut at the ledger's bound"
        );
    }
}
