//! The block runner: the one loop that executes a block, sans I/O.
//!
//! [`BlockRun`] executes begin (genesis on the first block), evidence, transactions under an
//! inclusion policy, every module's end of block, and the chain metadata, in that order. It
//! never reads the store: when it needs a key it does not hold, [`BlockRun::step`] answers
//! [`Step::Need`] and the caller loads those keys ([`BlockRun::load`]) from wherever its state
//! lives (the chain's authenticated batch, a [`MemoryBacking`]) and steps again. Every piece of
//! work is atomic: a piece that needs a key is rolled back and run again from its start.

use super::{
    Inclusion, Precheck, Receipt, Rejection, TxStatus,
    keys::{meta_key, params_key, receipt_key},
    precheck::{Nonce, Rules, precheck},
};
use crate::{
    Genesis, Params,
    modules::{self, Ctx, bank, evidence::Evidence},
    state::{Fault, Halt, Key, MemoryBacking, Missing, Record, StateCache, load, store},
};
use commonware_codec::{Copying, EncodeSize, Error, ReadExt, Write};
use exo_types::{Action, Address, SignedTx, TxHash};
use std::collections::BTreeMap;

/// What the chain tells the ledger about the block being executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEnv {
    pub height: u64,
    /// The block's time, in milliseconds since the Unix epoch, as its proposer set it and the
    /// validators bounded it. The ledger reads no clock: every window and expiry is measured
    /// against this. Strictly greater than the previous block's.
    pub time_ms: u64,
    /// The leader that proposed the block (its consensus key): staking credits it a point.
    /// The block's fees go to the epoch's rewards, not to it.
    pub proposer: Address,
    /// The leaders (consensus keys) of the views the chain skipped between the parent block's
    /// view and this block's, in view order, at most [`MAX_SKIPPED_LEADERS`]: staking counts
    /// each as a missed slot of its leader (downtime). Empty wherever no consensus runs.
    pub skipped_leaders: Vec<Address>,
    /// The consensus keys whose votes the block's certificate of its parent carries (the
    /// notarization that let the block be built on its parent), each once, at most
    /// [`MAX_PARENT_VOTERS`]: staking credits each a vote in the parent's epoch. Empty when
    /// the block carries no certificate, and wherever no consensus runs.
    pub parent_voters: Vec<Address>,
    /// Randomness for the block: nobody may know it before the parent block is final, and
    /// nobody may choose it. Deals checking replicas and draws hidden audits (a unit's audit
    /// is drawn [`crate::modules::market::records::AUDIT_SEED_DELAY`] blocks after its last
    /// commitment). The chain passes the parent block's digest, which the parent's proposer
    /// chose (ARCHITECTURE.md, "Audit randomness", says what that allows and what replaces
    /// it).
    pub seed: [u8; 32],
}

/// Most skipped leaders one block reports. Past a gap this long every member of the largest
/// committee has been skipped several times over, so nothing a downtime rule needs is lost.
pub const MAX_SKIPPED_LEADERS: usize = 1_024;

/// Most voters one block reports: a certificate carries at most one vote per member of the
/// largest committee any chain may elect.
pub const MAX_PARENT_VOTERS: usize = crate::modules::staking::MAX_COMMITTEE_BOUND as usize;

/// Chain-wide counters the block runner keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainMeta {
    /// Height of the last executed block.
    pub height: u64,
    /// Time of the last executed block, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Transactions executed so far, accepted or rejected.
    pub tx_count: u64,
    /// Consensus faults recorded so far.
    pub evidence_count: u64,
}

impl Record for ChainMeta {
    const WHAT: &'static str = "chain meta";
    const MAX_BYTES: usize = 32;
    fn put(&self, out: &mut Vec<u8>) {
        self.height.write(out);
        self.time_ms.write(out);
        self.tx_count.write(out);
        self.evidence_count.write(out);
    }
    fn take(buf: &mut Copying<'_>) -> Result<Self, Error> {
        Ok(Self {
            height: u64::read(buf)?,
            time_ms: u64::read(buf)?,
            tx_count: u64::read(buf)?,
            evidence_count: u64::read(buf)?,
        })
    }
}

/// Whose word the runner takes for the transactions' signatures.
#[derive(Clone, Debug)]
pub enum Signatures {
    /// The caller verified them (the chain, one batch verification per block): one verdict per
    /// transaction.
    Checked(Vec<bool>),
    /// The runner verifies each one.
    Verify,
    /// They were checked on admission (a proposer's mempool) or made by the caller itself (a
    /// simulation).
    Trusted,
}

/// What the runner does with transactions that would not pay their fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Verifying a proposed block: every transaction is executed as it is, and those that pay
    /// no fee are reported in [`BlockOutcome::unpaid`].
    Verify,
    /// Building a block: a transaction that would be rejected before paying is left out (and
    /// reported as evicted when it can never execute), and the block stops at the first
    /// transaction past any bound: its transactions, its bytes, its work ([`tx_work`]).
    Build {
        max_txs: usize,
        max_bytes: usize,
        max_work: usize,
    },
}

/// What a transaction costs a block to execute, in units of one result: one for the
/// transaction, plus one per commitment or reveal it carries. Executing a block costs about
/// its work (the per-result work of the market does not grow with the job or the provider),
/// so a bound on a block's work bounds its time, which its transaction count and bytes do not:
/// a block of 4 MiB may hold two thousand batches of 64 results (audit M1).
pub fn tx_work(tx: &SignedTx) -> usize {
    1 + match &tx.tx.action {
        Action::CommitResults(commits) => commits.len(),
        Action::RevealResults(reveals) => reveals.len(),
        _ => 0,
    }
}

/// A block's content for the runner.
#[derive(Clone, Debug)]
pub struct BlockInput {
    pub env: BlockEnv,
    /// Faults the chain has verified.
    pub evidence: Vec<Evidence>,
    pub txs: Vec<SignedTx>,
    pub signatures: Signatures,
    pub policy: Policy,
}

/// What the runner needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Load these keys and step again.
    Need(Vec<Key>),
    /// The block is executed: take the outcome with [`BlockRun::finish`].
    Done,
}

/// A block, executed.
#[derive(Clone, Debug)]
pub struct BlockOutcome {
    /// The transactions in the block, in order: all of them when verifying.
    pub included: Vec<SignedTx>,
    /// The receipt of each included transaction (`None` for a duplicate when verifying).
    pub receipts: Vec<Option<Receipt>>,
    /// Transactions left out that can never execute: forget them.
    pub evicted: Vec<TxHash>,
    /// Positions in the block of transactions that paid no fee: a duplicate, or one refused by
    /// its prechecks (a nonce gap, a balance short of the fee, a bad signature). An honest
    /// proposer leaves them out, so the chain refuses a block that holds any: a byzantine
    /// proposer would otherwise put someone's pending transaction in out of order, or stuff a
    /// block with forgeries, at no cost (audit M3). Always empty when building.
    pub unpaid: Vec<u32>,
    /// Whether each evidence was new (a repeat is skipped when building).
    pub new_evidence: Vec<bool>,
    pub meta: ChainMeta,
    /// The block's net writes, in key order.
    pub writes: BTreeMap<Key, Option<Vec<u8>>>,
    /// How many times the runner asked for keys ([`Step::Need`]): each is a round trip to the
    /// store and a re-run of the piece of work that needed them.
    pub store_rounds: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Begin,
    Evidence(usize),
    Tx(usize),
    /// The end of block's pieces ([`modules::end_block`]), then the chain metadata.
    EndBlock(usize),
    Done,
}

/// Executes one block. See the module docs for the protocol.
pub struct BlockRun<'g> {
    genesis: &'g Genesis,
    input: BlockInput,
    stage: Stage,
    cache: StateCache,
    params: Params,
    meta: ChainMeta,
    included: Vec<usize>,
    receipts: Vec<Option<Receipt>>,
    evicted: Vec<TxHash>,
    unpaid: Vec<u32>,
    new_evidence: Vec<bool>,
    block_bytes: usize,
    block_work: usize,
    store_rounds: u32,
    /// Each transaction's hash, computed once.
    hashes: Vec<TxHash>,
    /// Whether the keys every transaction reads first were asked for ([`Self::prefetch`]).
    prefetched: bool,
}

impl<'g> BlockRun<'g> {
    pub fn new(genesis: &'g Genesis, input: BlockInput) -> Self {
        let hashes = input.txs.iter().map(SignedTx::hash).collect();
        Self {
            genesis,
            input,
            stage: Stage::Begin,
            cache: StateCache::new(),
            params: Params::default(),
            meta: ChainMeta::default(),
            included: Vec::new(),
            receipts: Vec::new(),
            evicted: Vec::new(),
            unpaid: Vec::new(),
            new_evidence: Vec::new(),
            block_bytes: 0,
            block_work: 0,
            store_rounds: 0,
            hashes,
            prefetched: false,
        }
    }

    /// Records the stored value of `key`, as fetched by the caller.
    pub fn load(&mut self, key: Key, value: Option<Vec<u8>>) {
        self.cache.load(key, value);
    }

    /// Runs as far as the loaded state allows.
    pub fn step(&mut self) -> Result<Step, Fault> {
        loop {
            let checkpoint = self.cache.checkpoint();
            match self.advance() {
                Ok(()) => {}
                Err(Halt::Missing(missing)) => {
                    self.cache.rollback(checkpoint);
                    self.store_rounds = self.store_rounds.saturating_add(1);
                    return Ok(Step::Need(missing.0));
                }
                Err(Halt::Fault(fault)) => return Err(fault),
            }
            if self.stage == Stage::Done {
                return Ok(Step::Done);
            }
        }
    }

    /// Runs the block to its end against an in-memory store.
    pub fn run_with(mut self, store: &MemoryBacking) -> Result<BlockOutcome, Fault> {
        while let Step::Need(keys) = self.step()? {
            for key in keys {
                let value = store.entries.get(&key).cloned();
                self.load(key, value);
            }
        }
        Ok(self.finish())
    }

    /// The executed block. Call after [`Step::Done`].
    pub fn finish(self) -> BlockOutcome {
        let mut txs: Vec<Option<SignedTx>> = self.input.txs.into_iter().map(Some).collect();
        let included = self
            .included
            .iter()
            .filter_map(|i| txs.get_mut(*i).and_then(Option::take))
            .collect();
        BlockOutcome {
            included,
            receipts: self.receipts,
            evicted: self.evicted,
            unpaid: self.unpaid,
            new_evidence: self.new_evidence,
            meta: self.meta,
            writes: self.cache.into_writes(),
            store_rounds: self.store_rounds,
        }
    }

    /// One piece of work: either completes and moves the stage on, or leaves everything it
    /// wrote to be rolled back.
    fn advance(&mut self) -> Result<(), Halt> {
        match self.stage {
            Stage::Begin => {
                self.prefetch()?;
                self.begin()?;
                self.stage = Stage::Evidence(0);
            }
            Stage::Evidence(i) => match self.input.evidence.get(i) {
                Some(evidence) => {
                    let new = modules::evidence::record(
                        &mut self.cache,
                        evidence,
                        self.input.env.height,
                    )?;
                    if new {
                        modules::report_offence(
                            &mut self.cache,
                            &self.input.env,
                            &self.params,
                            evidence,
                        )?;
                        self.meta.evidence_count = self.meta.evidence_count.saturating_add(1);
                    }
                    self.new_evidence.push(new);
                    self.stage = Stage::Evidence(i + 1);
                }
                None => self.stage = Stage::Tx(0),
            },
            Stage::Tx(i) => {
                if i >= self.input.txs.len() || self.block_is_full(i) {
                    self.stage = Stage::EndBlock(0);
                } else {
                    self.tx(i)?;
                    self.stage = Stage::Tx(i + 1);
                }
            }
            Stage::EndBlock(piece) if piece < modules::END_BLOCK_PIECES => {
                let mut created = Vec::new();
                let mut ctx = Ctx {
                    cache: &mut self.cache,
                    env: &self.input.env,
                    params: &self.params,
                    created: &mut created,
                };
                modules::end_block(&mut ctx, piece)?;
                self.stage = Stage::EndBlock(piece + 1);
            }
            Stage::EndBlock(_) => {
                let mut meta = self.meta.clone();
                meta.height = self.input.env.height;
                meta.time_ms = self.input.env.time_ms;
                store(&mut self.cache, meta_key(), &meta)?;
                self.meta = meta;
                self.stage = Stage::Done;
            }
            Stage::Done => {}
        }
        Ok(())
    }

    /// Before anything runs, asks for what the block's transactions read first: their
    /// receipts, their senders' accounts and what their modules name ([`modules::prefetch`]),
    /// for all of them at once, until nothing more is named. Without it, each transaction
    /// would stop at each unloaded key, be rolled back and run again: a store round each time.
    /// A fault met here is left for the transaction's own run to meet in its turn.
    fn prefetch(&mut self) -> Result<(), Halt> {
        if self.prefetched {
            return Ok(());
        }
        // Fees go to the rewards pot.
        let mut missing = vec![meta_key(), params_key(), bank::pot_key(bank::Pot::Rewards)];
        for (tx, hash) in self.input.txs.iter().zip(&self.hashes) {
            missing.push(receipt_key(hash));
            missing.push(bank::account_key(&tx.tx.sender));
            if let Err(Halt::Missing(keys)) =
                modules::prefetch(&self.cache, &tx.tx.sender, &tx.tx.action)
            {
                missing.extend(keys.0);
            }
        }
        missing.retain(|key| !self.cache.holds(key));
        if missing.is_empty() {
            self.prefetched = true;
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        Err(Missing(missing).into())
    }

    fn begin(&mut self) -> Result<(), Halt> {
        if self.input.env.skipped_leaders.len() > MAX_SKIPPED_LEADERS {
            return Err(Fault::Invariant(format!(
                "the chain reported {} skipped leaders, over the bound of {MAX_SKIPPED_LEADERS}",
                self.input.env.skipped_leaders.len()
            ))
            .into());
        }
        let voters = &self.input.env.parent_voters;
        let distinct: std::collections::BTreeSet<&Address> = voters.iter().collect();
        if voters.len() > MAX_PARENT_VOTERS || distinct.len() != voters.len() {
            return Err(Fault::Invariant(format!(
                "the chain reported {} parent voters ({} distinct), over the bound of \
                 {MAX_PARENT_VOTERS} or with a repeat",
                voters.len(),
                distinct.len()
            ))
            .into());
        }
        match load::<ChainMeta>(&self.cache, &meta_key())? {
            Some(meta) => {
                self.params = load::<Params>(&self.cache, &params_key())?.ok_or_else(|| {
                    Fault::Invariant("state has chain metadata but no parameters".into())
                })?;
                // The chain refuses a block whose time does not follow its parent's: a time
                // going back here means the caller broke that rule, and windows measured
                // against it would run backwards.
                if self.input.env.time_ms <= meta.time_ms {
                    return Err(Fault::Invariant(format!(
                        "block time {} ms does not follow the previous block's, {} ms",
                        self.input.env.time_ms, meta.time_ms
                    ))
                    .into());
                }
                self.meta = meta;
            }
            None => {
                modules::genesis(&mut self.cache, self.genesis)?;
                store(&mut self.cache, params_key(), &self.genesis.params)?;
                self.params = self.genesis.params.clone();
                self.meta = ChainMeta::default();
            }
        }
        Ok(())
    }

    fn block_is_full(&self, i: usize) -> bool {
        match self.input.policy {
            Policy::Verify => false,
            Policy::Build {
                max_txs,
                max_bytes,
                max_work,
            } => {
                let max_txs = max_txs.min(self.params.max_block_txs as usize);
                let tx = self.input.txs.get(i);
                let size = tx.map_or(0, EncodeSize::encode_size);
                let work = tx.map_or(0, tx_work);
                self.included.len() >= max_txs
                    || self.block_bytes + size > max_bytes
                    || self.block_work + work > max_work
            }
        }
    }

    fn tx(&mut self, i: usize) -> Result<(), Halt> {
        let Some((tx, hash)) = self.input.txs.get(i).zip(self.hashes.get(i).copied()) else {
            return Ok(());
        };
        let signature_ok = match &self.input.signatures {
            Signatures::Checked(verdicts) => verdicts.get(i).copied().unwrap_or(false),
            Signatures::Verify => tx.verify_signature(),
            Signatures::Trusted => true,
        };
        let size = tx.encode_size();
        let checkpoint = self.cache.checkpoint();
        let index = self.included.len() as u32;
        let receipt = execute(
            &mut self.cache,
            self.genesis,
            &self.params,
            &self.input.env,
            index,
            (tx, hash),
            signature_ok,
            size,
        )?;
        match (self.input.policy, Inclusion::of(&receipt)) {
            (_, Inclusion::Include) => {}
            (Policy::Verify, Inclusion::LeaveOut | Inclusion::Drop) => self.unpaid.push(index),
            (Policy::Build { .. }, Inclusion::LeaveOut) => {
                self.cache.rollback(checkpoint);
                return Ok(());
            }
            (Policy::Build { .. }, Inclusion::Drop) => {
                self.evicted.push(hash);
                self.cache.rollback(checkpoint);
                return Ok(());
            }
        }
        if receipt.is_some() {
            self.meta.tx_count = self.meta.tx_count.saturating_add(1);
        }
        self.block_bytes += size;
        self.block_work += tx_work(tx);
        self.included.push(i);
        self.receipts.push(receipt);
        Ok(())
    }
}

/// Executes one transaction and records its receipt; `None`, changing nothing, for a
/// transaction that already has a receipt (executing it again would overwrite the record of
/// what it did).
///
/// Rejections before the fee leave the state untouched, the receipt included: such a
/// transaction used nothing and may be valid later (its nonce comes due, its sender is
/// funded), and a stored receipt would refuse it then as a duplicate. A refused action still
/// charges the fee and uses the nonce, so that spam is never free, and leaves no other trace.
#[allow(clippy::too_many_arguments)]
fn execute(
    cache: &mut StateCache,
    genesis: &Genesis,
    params: &Params,
    env: &BlockEnv,
    index: u32,
    (signed, hash): (&SignedTx, TxHash),
    signature_ok: bool,
    encoded_len: usize,
) -> Result<Option<Receipt>, Halt> {
    if load::<Receipt>(cache, &receipt_key(&hash))?.is_some() {
        return Ok(None);
    }
    let tx = &signed.tx;
    let sender = bank::account(cache, &tx.sender)?;
    let rules = Rules {
        chain_id: &genesis.chain_id,
        min_fee: params.min_fee,
    };
    let mut created = Vec::new();
    let (status, fee_paid) = match precheck(
        signed,
        signature_ok,
        encoded_len,
        rules,
        &sender,
        Nonce::Next,
    ) {
        Err(rejection) => {
            return Ok(Some(Receipt {
                height: env.height,
                index,
                status: TxStatus::Rejected(rejection.into()),
                fee_paid: exo_types::Amount::ZERO,
                created,
            }));
        }
        Ok(()) => {
            bank::use_nonce(cache, &tx.sender)?;
            if tx.fee > exo_types::Amount::ZERO {
                // Fees join the epoch's rewards, paid out with the block reward at its end.
                bank::lock(cache, &tx.sender, bank::Pot::Rewards, tx.fee)?.map_err(|r| {
                    Fault::Invariant(format!("a fee the precheck allowed was refused: {r}"))
                })?;
            }
            let checkpoint = cache.checkpoint();
            let mut ctx = Ctx {
                cache,
                env,
                params,
                created: &mut created,
            };
            let status = match modules::route(&mut ctx, &tx.sender, &tx.action) {
                Ok(Ok(())) => TxStatus::Ok,
                Ok(Err(rejection)) => TxStatus::Rejected(rejection),
                // A record over its bound is the action's fault, not the state's: refuse
                // the transaction and keep nothing of it.
                Err(Halt::Fault(Fault::RecordTooLarge { size, max, .. })) => {
                    TxStatus::Rejected(Rejection::Exec(Precheck::RecordTooLarge {
                        size: size as u64,
                        max: max as u64,
                    }))
                }
                Err(halt) => return Err(halt),
            };
            if status != TxStatus::Ok {
                cache.rollback(checkpoint);
                created.clear();
            }
            (status, tx.fee)
        }
    };
    let receipt = Receipt {
        height: env.height,
        index,
        status,
        fee_paid,
        created,
    };
    store(cache, receipt_key(&hash), &receipt)?;
    Ok(Some(receipt))
}
