//! The application: executes blocks with the ledger on speculative QMDB batches.

use crate::{
    block::{
        Block, BlockBounds, BlockContext, MAX_BLOCK, MAX_BLOCK_EVIDENCE, MAX_BLOCK_TXS,
        MAX_BLOCK_WORK, block_work, check_time, proposal_time,
    },
    engine::Faults,
    epochs::consensus_keys,
    events::{ChainEvents, FinalizedBlock},
    evidence::EvidenceProof,
    mempool::Mempool,
    store::{StateDatabases, StateKey, StateUnmerkleized},
    votes::{ParentVotes, VoteBook, proposal_of, verify_parent_votes},
};
use commonware_consensus::{
    Heightable,
    marshal::ancestry::Ancestry,
    simplex::{
        elector::{Config as _, Elector as _, RoundRobin, RoundRobinElector},
        scheme::ed25519::Scheme,
        types::Proposal,
    },
    types::{Epoch, Round, View},
};
use commonware_cryptography::{BatchEntry, BatchVerifier, Digestible, Sha256, ed25519, sha256};
use commonware_glue::stateful::{
    Application, Finality, Input, Proposed,
    db::{DatabaseSet, Merkleized as _, Unmerkleized as _},
};
use commonware_parallel::Sequential;
use commonware_runtime::{Clock, Spawner};
use commonware_storage::{Context as StorageContext, qmdb::sync::Target};
use commonware_utils::{non_empty_range, ordered::Set};
use exo_ledger::{
    BlockEnv, BlockOutcome, BlockRun, Genesis, MAX_SKIPPED_LEADERS, Policy, Signatures, Step,
    modules::{
        market::{self, records::AUDIT_SEED_DELAY},
        staking,
    },
};
use exo_types::{SignedTx, TX_NAMESPACE};
use futures::StreamExt;
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
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
    #[error("block carries a certificate that is not a notarization of its parent")]
    BadParentVotes,
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

/// What proposals draw from: the mempool, the evidence pool and the votes the engine saw.
#[derive(Clone)]
pub struct Sources {
    pub mempool: Mempool,
    pub evidence: EvidencePool,
    pub votes: VoteBook,
}

impl Sources {
    /// Whether a block would carry something: an executable transaction or evidence.
    fn has_work(&self) -> bool {
        self.mempool.has_executable() || !self.evidence.is_empty()
    }
}

/// How often a proposer that holds its block back looks again at its mempool (for work when it
/// has none, for a full block when it is gathering) when no transaction arrives to wake it
/// ([`Mempool::arrival`]): evidence arrives without one.
const IDLE_POLL: Duration = Duration::from_millis(25);

/// When a leader proposes.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// How long a leader with nothing to include waits for work, from the start of its view,
    /// before it proposes an empty block anyway; below the leader timeout, so that the view
    /// does not time out.
    pub empty_block: Duration,
    /// The longest time from its parent's timestamp at which a leader with work proposes,
    /// unless its mempool fills a block first: under load the transactions that arrive
    /// meanwhile join this block instead of making another, and every block costs each
    /// validator an execution, a merkleization and its syncs whatever it carries. A leader
    /// gathers for the whole of it only after a busy parent ([`GATHER_WORK`]). Zero proposes
    /// as soon as there is work.
    pub min_block: Duration,
}

/// The work (a block's transactions plus their results, [`crate::block_work`]) of a parent
/// after which a leader gathers for the whole of [`Pacing::min_block`]; after a parent that
/// carried less it gathers for that share of it, and after an empty one not at all. Under light
/// load (a transfer, a job, a worker's few results) blocks stay as quick as without gathering;
/// under load the parent is busy, the leader gathers, and its block is busy in turn. 32 is
/// about one worker's batch of results.
pub const GATHER_WORK: usize = 32;

/// What a leader's pacing reads of its parent block.
#[derive(Clone, Copy, Debug)]
struct Parent {
    /// The parent's timestamp, in milliseconds since the Unix epoch.
    time_ms: u64,
    /// The parent's work ([`crate::block_work`]).
    work: usize,
}

impl Pacing {
    /// How long a leader gathers after a parent that carried `parent_work`: `min_block` times
    /// the parent's share of [`GATHER_WORK`], at most the whole of it.
    fn gather(&self, parent_work: usize) -> Duration {
        let share = parent_work.min(GATHER_WORK) as u32;
        self.min_block * share / GATHER_WORK as u32
    }

    /// When a leader whose view began at `view_start`, on `parent`, proposes unless its
    /// mempool fills a block first. With work: its gathering time ([`Self::gather`]) after the
    /// parent's time, and never later than that after its view began, so that a parent stamped
    /// by a clock running ahead cannot hold the leader past its own bound. Without work:
    /// `empty_block` after its view began.
    fn deadline(&self, view_start: SystemTime, parent: Parent, has_work: bool) -> SystemTime {
        if !has_work {
            return view_start
                .checked_add(self.empty_block)
                .unwrap_or(view_start);
        }
        let gather = self.gather(parent.work);
        let by_view = view_start.checked_add(gather).unwrap_or(view_start);
        UNIX_EPOCH
            .checked_add(Duration::from_millis(parent.time_ms))
            .and_then(|time| time.checked_add(gather))
            .map_or(by_view, |by_parent| by_parent.min(by_view))
    }
}

/// Holds a leader's proposal back as its [`Pacing`] says. An idle chain does not spin: with
/// nothing to include, the empty block waits until its interval has passed since the view
/// began, or until work arrives. A busy one gathers: with work, the block waits until the
/// gathering time has passed since the parent's time (the whole minimum interval after a busy
/// parent, none after an empty one), or until the mempool's executable transactions fill
/// `full` (a block's most transactions, bytes and work). A block the ledger has work `due`
/// for counts as having work, though it carries no transaction: see [`App::work_due`].
async fn hold_back(
    clock: &impl Clock,
    sources: &Sources,
    pacing: Pacing,
    parent: Parent,
    full: BlockBounds,
    due: bool,
) {
    let view_start = clock.current();
    loop {
        // Asked before looking, so that a transaction admitted in between still wakes it.
        let arrival = sources.mempool.arrival();
        let has_work = due || sources.has_work();
        let left = pacing
            .deadline(view_start, parent, has_work)
            .duration_since(clock.current())
            .unwrap_or_default();
        if left.is_zero() || (has_work && sources.mempool.fills_block(full)) {
            return;
        }
        let look_again = clock.sleep(left.min(IDLE_POLL));
        futures::future::select(std::pin::pin!(look_again), arrival).await;
    }
}

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
    pacing: Pacing,
    /// The last height whose block, as this validator built or verified it, drew audits (0:
    /// none yet; no block draws before height `1 + AUDIT_SEED_DELAY`): the block after it is
    /// proposed at once ([`App::work_due`]).
    drew_at: Arc<AtomicU64>,
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
        pacing: Pacing,
    ) -> Self {
        Self {
            sources,
            pacing,
            faults: Faults::default(),
            drew_at: Arc::default(),
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
    /// The proposal the parent was notarized on (`None` for the genesis block).
    parent_proposal: Option<Proposal<sha256::Digest>>,
    txs: Vec<SignedTx>,
    evidence: Vec<EvidenceProof>,
    parent_votes: Option<ParentVotes>,
}

/// What a block executed to: what it includes and its state.
struct Executed<E: StorageContext + Spawner> {
    txs: Vec<SignedTx>,
    evidence: Vec<EvidenceProof>,
    parent_votes: Option<ParentVotes>,
    batch: StateUnmerkleized<E>,
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

    /// Whether the block at `height` is owed at once, on `batch`, its parent's state:
    /// - an audit draw is filed for it or for one of the blocks up to `height +
    ///   AUDIT_SEED_DELAY - 1`. A unit whose replicas all committed is drawn, and its reveals
    ///   open, [`AUDIT_SEED_DELAY`] blocks after its last commitment; on a chain with nothing
    ///   else to include those blocks would each wait the empty-block interval, about a
    ///   second, and the unit with them;
    /// - or its parent drew audits. While a leader holds its proposal back, its node queues
    ///   the finalized blocks it is handed (Commonware's stateful actor applies them once the
    ///   proposal is built), so after a block that opened reveals and carried no transaction
    ///   the next leader's node, and every worker reading it, would see those reveals open a
    ///   second late. (After a block with transactions the next leader has work anyway: they
    ///   stay in its pool until the block is finalized.)
    ///
    /// A state that cannot be read owes nothing: the block then waits as an idle one would.
    async fn work_due<E>(&self, batch: &StateUnmerkleized<E>, height: u64) -> bool
    where
        E: StorageContext + Spawner,
    {
        let drew_at = self.drew_at.load(Ordering::Relaxed);
        if drew_at > 0 && drew_at.checked_add(1) == Some(height) {
            return true;
        }
        for at in height..height.saturating_add(AUDIT_SEED_DELAY) {
            if Self::draws_at(batch, at).await {
                return true;
            }
        }
        false
    }

    /// Whether audit draws are filed for the block at `height`, by `batch`.
    async fn draws_at<E>(batch: &StateUnmerkleized<E>, height: u64) -> bool
    where
        E: StorageContext + Spawner,
    {
        let query = market::queries::audit_draws(height);
        let Ok(value) = batch.get(&StateKey::new(query.key)).await else {
            return false;
        };
        matches!(query.decode(value.as_deref()), Ok(Some(count)) if count.0 > 0)
    }

    /// Notes that the block at `height`, built or verified on `batch` (its parent's state),
    /// draws audits.
    async fn note_draws<E>(&self, batch: &StateUnmerkleized<E>, height: u64)
    where
        E: StorageContext + Spawner,
    {
        if Self::draws_at(batch, height).await {
            self.drew_at.fetch_max(height, Ordering::Relaxed);
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

    /// The signers of `votes` when it is a notarization of `parent` by the committee of the
    /// parent's epoch as `batch` (the parent's state) records it; `None` otherwise, or when
    /// the parent is the genesis block.
    async fn parent_voters<E>(
        &self,
        rng: &mut impl rand::CryptoRng,
        batch: &StateUnmerkleized<E>,
        parent: Option<&Proposal<sha256::Digest>>,
        votes: &ParentVotes,
    ) -> Result<Option<Vec<ed25519::PublicKey>>, ExecError>
    where
        E: StorageContext + Spawner,
    {
        let Some(parent) = parent else {
            return Ok(None);
        };
        Ok(self
            .committee_at(batch, parent.round.epoch())
            .await?
            .and_then(|committee| {
                verify_parent_votes(rng, &self.namespace, &committee, parent, votes)
            }))
    }

    /// The fullest certificate of `proposal` this validator's engine saw, checked against
    /// the committee of the proposal's epoch as `batch` records it.
    async fn known_votes<E>(
        &self,
        rng: &mut impl rand::CryptoRng,
        batch: &StateUnmerkleized<E>,
        book: &VoteBook,
        proposal: &Proposal<sha256::Digest>,
    ) -> Option<ParentVotes>
    where
        E: StorageContext + Spawner,
    {
        let committee = self
            .committee_at(batch, proposal.round.epoch())
            .await
            .ok()
            .flatten()?;
        let verifier = Scheme::verifier(&self.namespace, committee);
        book.parent_votes(rng, &verifier, proposal)
    }

    /// Executes `txs` and `evidence` on `batch` as block `height` in `consensus`.
    ///
    /// When `building`, transactions the ledger would reject before charging a fee are left
    /// out of the block (and, when they can never succeed, dropped from the mempool), and
    /// duplicate evidence and a certificate of the parent that does not verify are skipped.
    /// When verifying, everything in the block is executed as it is, and invalid evidence, a
    /// certificate that is not the parent's or a transaction that pays no fee makes the block
    /// invalid.
    async fn execute<E>(
        &self,
        rng: &mut impl rand::CryptoRng,
        block: BlockInput,
        mut batch: StateUnmerkleized<E>,
        building: Option<&Mempool>,
    ) -> Result<Executed<E>, ExecError>
    where
        E: StorageContext + Spawner,
    {
        let BlockInput {
            height,
            timestamp_ms,
            consensus,
            parent,
            parent_proposal,
            txs,
            evidence,
            mut parent_votes,
        } = block;
        let skipped_leaders = self.skipped_leaders(&batch, &consensus).await?;
        let mut parent_voters = Vec::new();
        if let Some(votes) = &parent_votes {
            match self
                .parent_voters(rng, &batch, parent_proposal.as_ref(), votes)
                .await?
            {
                Some(voters) => parent_voters = voters,
                None if building.is_some() => {
                    warn!(
                        height,
                        "leaving out a certificate of the parent that does not verify"
                    );
                    parent_votes = None;
                }
                None => return Err(ExecError::BadParentVotes),
            }
        }
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
                    max_txs: MAX_BLOCK.txs,
                    max_bytes: MAX_BLOCK.bytes,
                    max_work: if self.faults.ignore_block_work {
                        usize::MAX
                    } else {
                        MAX_BLOCK.work
                    },
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
                parent_voters,
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
        for (key, value) in outcome.writes {
            batch = batch.write(StateKey::new(key), value);
        }
        Ok(Executed {
            txs: outcome.included,
            evidence: included_evidence,
            parent_votes,
            batch,
        })
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
        let parent_ms = parent.inner().timestamp_ms;
        let paced_on = Parent {
            time_ms: parent_ms,
            work: crate::block_work(&parent.inner().txs),
        };
        let due = self.work_due(&batches, height.get()).await;
        hold_back(&context, &sources, self.pacing, paced_on, MAX_BLOCK, due).await;
        self.note_draws(&batches, height.get()).await;
        // Left-out candidates do not count against the block's budget: the runner stops at
        // MAX_BLOCK_TXS included, and twice that many candidates leave room for those that
        // turn out not to execute (a duplicate of the parent's, funds spent earlier in the
        // block) while keeping the proposal's work bounded.
        let candidates = sources.mempool.candidates(MAX_CANDIDATES);
        let mut evidence = sources.evidence.snapshot();
        evidence.truncate(MAX_BLOCK_EVIDENCE);
        let now_ms = epoch_ms(context.current()).saturating_add(self.faults.clock_ahead_ms);
        let timestamp_ms = proposal_time(now_ms, parent_ms);
        let parent_proposal = proposal_of(parent.inner(), parent.digest());
        let parent_votes = match &parent_proposal {
            Some(proposal) => {
                self.known_votes(&mut context, &batches, &sources.votes, proposal)
                    .await
            }
            None => None,
        };
        // A byzantine proposer carrying the certificate of its grandparent, a genuine
        // certificate of another block, in place of its parent's.
        let mut foreign_votes = None;
        if self.faults.foreign_parent_votes
            && let Some(grandparent) = ancestry.next().await
            && let Some(proposal) = proposal_of(grandparent.inner(), parent.inner().parent)
        {
            foreign_votes = self
                .known_votes(&mut context, &batches, &sources.votes, &proposal)
                .await;
        }
        let input = BlockInput {
            height: height.get(),
            timestamp_ms,
            consensus: consensus.clone(),
            parent: parent.digest(),
            parent_proposal,
            txs: candidates,
            evidence,
            parent_votes,
        };
        let Executed {
            txs,
            evidence,
            parent_votes,
            batch,
        } = match self
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
            parent_votes: foreign_votes.or(parent_votes),
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
        if block.txs.len() > MAX_BLOCK_TXS
            || block.evidence.len() > MAX_BLOCK_EVIDENCE
            || block_work(&block.txs) > MAX_BLOCK_WORK
        {
            return None;
        }
        // A finalized block was accepted by a quorum when it was a candidate: its time is
        // not judged again against this validator's clock, which may be catching up from far
        // behind. Its certificate of the parent is checked either way: it is an input of the
        // ledger.
        let candidate = matches!(finality, Finality::Candidate);
        let parent = if candidate || block.parent_votes.is_some() {
            Some(ancestry.next().await?)
        } else {
            None
        };
        if candidate && let Some(parent) = &parent {
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
            parent_proposal: parent.and_then(|p| proposal_of(p.inner(), block.parent)),
            txs: block.txs.clone(),
            evidence: block.evidence.clone(),
            parent_votes: block.parent_votes.clone(),
        };
        self.note_draws(&batches, input.height).await;
        let Executed { batch, .. } = match self.execute(&mut context, input, batches, None).await {
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
    use commonware_runtime::{Runner as _, Supervisor as _, deterministic};

    fn at_ms(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// A busy parent stamped at `ms`.
    fn busy_at(ms: u64) -> Parent {
        Parent {
            time_ms: ms,
            work: GATHER_WORK,
        }
    }

    #[test]
    fn a_leader_with_work_waits_the_minimum_interval_from_a_busy_parents_time() {
        let pacing = Pacing {
            empty_block: Duration::from_millis(1_000),
            min_block: Duration::from_millis(200),
        };
        // The view began 50 ms after the parent was stamped: 150 ms more to wait.
        assert_eq!(
            pacing.deadline(at_ms(10_050), busy_at(10_000), true),
            at_ms(10_200)
        );
        // A view that began long after its parent (a timed-out view before it): at once.
        assert!(pacing.deadline(at_ms(12_000), busy_at(10_000), true) <= at_ms(12_000));
        // A parent stamped ahead of this leader's clock holds it no longer than the interval.
        assert_eq!(
            pacing.deadline(at_ms(10_000), busy_at(10_900), true),
            at_ms(10_200)
        );
        // Without work the empty block's interval counts from the view's start.
        assert_eq!(
            pacing.deadline(at_ms(10_050), busy_at(10_000), false),
            at_ms(11_050)
        );
        let eager = Pacing {
            min_block: Duration::ZERO,
            ..pacing
        };
        assert_eq!(
            eager.deadline(at_ms(10_050), busy_at(10_000), true),
            at_ms(10_000)
        );
    }

    /// Sources whose mempool holds `n` executable transfers from distinct senders.
    fn sources_with(n: u64) -> Sources {
        let mempool = Mempool::new(Default::default());
        for seed in 0..n {
            let key = exo_types::PrivateKey::from_seed(seed);
            let tx = exo_types::UnsignedTx {
                chain_id: "t".into(),
                sender: key.public_key(),
                nonce: 0,
                fee: exo_types::Amount(10),
                action: exo_types::Action::Transfer {
                    to: exo_types::PrivateKey::from_seed(99).public_key(),
                    amount: exo_types::Amount(1),
                },
            }
            .sign(&key);
            let account = exo_ledger::Account {
                balance: exo_types::Amount(1_000_000),
                nonce: 0,
            };
            mempool.insert(tx, &account).expect("admitted");
        }
        Sources {
            mempool,
            evidence: EvidencePool::default(),
            votes: VoteBook::default(),
        }
    }

    /// How long [`hold_back`] holds a proposal on a parent stamped `parent_ago` before the
    /// view began, with `full` as a full block, under the deterministic runtime; the parent
    /// carried a full interval's worth of work.
    fn held(sources: Sources, parent_ago: Duration, full: BlockBounds) -> Duration {
        held_after(sources, parent_ago, full, GATHER_WORK, false)
    }

    /// [`held`] on a parent that carried `parent_work`, for a block the ledger owes work if
    /// `due`.
    fn held_after(
        sources: Sources,
        parent_ago: Duration,
        full: BlockBounds,
        parent_work: usize,
        due: bool,
    ) -> Duration {
        let pacing = Pacing {
            empty_block: Duration::from_millis(1_000),
            min_block: Duration::from_millis(200),
        };
        deterministic::Runner::default().start(|context| async move {
            context.sleep(Duration::from_secs(10)).await;
            let start = context.current();
            let parent_ms = epoch_ms(start - parent_ago);
            let parent = Parent {
                time_ms: parent_ms,
                work: parent_work,
            };
            hold_back(&context, &sources, pacing, parent, full, due).await;
            context
                .current()
                .duration_since(start)
                .expect("time runs forward")
        })
    }

    #[test]
    fn a_proposal_with_work_gathers_until_the_interval_unless_the_mempool_fills_a_block() {
        let roomy = MAX_BLOCK;
        assert_eq!(
            held(sources_with(0), Duration::ZERO, roomy),
            Duration::from_millis(1_000),
            "an empty block waits its interval from the view's start"
        );
        assert_eq!(
            held(sources_with(2), Duration::from_millis(50), roomy),
            Duration::from_millis(150),
            "two transactions wait for the interval from the parent's time"
        );
        assert_eq!(
            held(
                sources_with(3),
                Duration::from_millis(50),
                BlockBounds {
                    txs: 3,
                    ..MAX_BLOCK
                }
            ),
            Duration::ZERO,
            "a mempool that fills a block is proposed at once"
        );
    }

    /// Light load keeps its latency: the interval a leader gathers for grows with the work
    /// its parent carried, so a leader after an idle parent proposes its first transaction at
    /// once, and only a busy chain waits the whole interval.
    #[test]
    fn a_leader_gathers_only_as_long_as_its_parent_was_busy() {
        let after = |parent_work| {
            held_after(
                sources_with(1),
                Duration::ZERO,
                MAX_BLOCK,
                parent_work,
                false,
            )
        };
        assert_eq!(after(0), Duration::ZERO, "after an empty parent: at once");
        assert_eq!(
            after(GATHER_WORK / 4),
            Duration::from_millis(50),
            "a quarter of the busy work: a quarter of the interval"
        );
        assert_eq!(after(GATHER_WORK), Duration::from_millis(200));
        assert_eq!(after(MAX_BLOCK.work), Duration::from_millis(200));
    }

    /// A block the ledger owes work (an audit draw at its height or the next) is proposed at
    /// once though nothing waits in the mempool, and after a busy parent it gathers as any
    /// block with work does.
    #[test]
    fn a_block_the_ledger_owes_work_is_proposed_without_waiting_for_the_empty_interval() {
        let owed = |parent_work| {
            held_after(
                sources_with(0),
                Duration::ZERO,
                MAX_BLOCK,
                parent_work,
                true,
            )
        };
        assert_eq!(owed(0), Duration::ZERO);
        assert_eq!(owed(GATHER_WORK), Duration::from_millis(200));
    }

    /// An idle leader proposes when a transaction is admitted, not at its next look at the
    /// mempool ([`IDLE_POLL`] apart).
    #[test]
    fn an_idle_leader_proposes_as_soon_as_a_transaction_arrives() {
        let pacing = Pacing {
            empty_block: Duration::from_millis(1_000),
            min_block: Duration::from_millis(200),
        };
        let arrives = Duration::from_millis(110);
        let held = deterministic::Runner::default().start(|context| async move {
            let sources = sources_with(0);
            let filled = sources_with(1).mempool.candidates(1);
            let mempool = sources.mempool.clone();
            context.child("sender").spawn(move |context| async move {
                context.sleep(arrives).await;
                let account = exo_ledger::Account {
                    balance: exo_types::Amount(1_000_000),
                    nonce: 0,
                };
                for tx in filled {
                    mempool.insert(tx, &account).expect("admitted");
                }
            });
            let start = context.current();
            let parent = Parent {
                time_ms: epoch_ms(start),
                work: 0,
            };
            hold_back(&context, &sources, pacing, parent, MAX_BLOCK, false).await;
            context.current().duration_since(start).expect("forward")
        });
        // The simulated runtime's scheduling adds a millisecond or two.
        assert!(
            held >= arrives && held < arrives + IDLE_POLL / 2,
            "proposed {held:?} after the view began, for a transaction admitted at {arrives:?}"
        );
    }

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
