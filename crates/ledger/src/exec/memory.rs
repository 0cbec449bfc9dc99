//! A chain in memory: blocks executed by the block runner on a [`MemoryBacking`].
//!
//! For tests, simulations and tools that need the real state machine without consensus,
//! storage or a runtime. It executes blocks exactly as validators do, through [`BlockRun`].

use super::{BlockEnv, BlockInput, BlockOutcome, BlockRun, Policy, Receipt, Signatures};
use crate::{
    Genesis,
    modules::bank::{self, Account},
    state::{Fault, Key, MemoryBacking, Record, decode},
};
use exo_types::{Address, SignedTx};

/// A chain of blocks executed in memory.
#[derive(Clone, Debug)]
pub struct MemoryChain {
    pub genesis: Genesis,
    pub store: MemoryBacking,
    pub height: u64,
    /// Time of the last block, in milliseconds since the Unix epoch (zero before the first).
    pub time_ms: u64,
    /// Time between two blocks unless a caller lets more pass ([`Self::pass_secs`]); at least
    /// one millisecond, since block times strictly increase.
    pub block_interval_ms: u64,
}

/// A [`MemoryChain`]'s default time between blocks: one second, so that a test's block
/// count and seconds agree.
pub const BLOCK_INTERVAL_MS: u64 = 1_000;

impl MemoryChain {
    pub fn new(genesis: Genesis) -> Self {
        Self {
            genesis,
            store: MemoryBacking::default(),
            height: 0,
            time_ms: 0,
            block_interval_ms: BLOCK_INTERVAL_MS,
        }
    }

    /// The time the next block gets: one interval after the last one.
    pub fn next_time_ms(&self) -> u64 {
        self.time_ms.saturating_add(self.block_interval_ms.max(1))
    }

    /// Lets `secs` seconds pass with no block, as on an idle chain: the next block's time is
    /// that much later than it would have been.
    pub fn pass_secs(&mut self, secs: u64) {
        self.time_ms = self.time_ms.saturating_add(secs.saturating_mul(1_000));
    }

    /// The seed of block `height` on this chain: known, since nothing here is adversarial.
    pub fn seed(height: u64) -> [u8; 32] {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&height.to_be_bytes());
        seed
    }

    /// Executes the next block with every transaction in it (signatures checked one by one);
    /// returns each transaction's receipt (`None` for a duplicate).
    pub fn execute_block(&mut self, proposer: &Address, txs: &[SignedTx]) -> Vec<Option<Receipt>> {
        self.next(proposer, txs, Signatures::Verify)
            .unwrap_or_else(|fault| panic!("the ledger stopped: {fault}"))
            .receipts
    }

    /// Executes the next block (seeded by [`Self::seed`]) with every transaction in it, taking
    /// `signatures` as the verdicts on them.
    pub fn next(
        &mut self,
        proposer: &Address,
        txs: &[SignedTx],
        signatures: Signatures,
    ) -> Result<BlockOutcome, Fault> {
        let height = self.height + 1;
        self.run(BlockInput {
            env: BlockEnv {
                height,
                time_ms: self.next_time_ms(),
                proposer: proposer.clone(),
                skipped_leaders: Vec::new(),
                parent_voters: Vec::new(),
                seed: Self::seed(height),
            },
            evidence: Vec::new(),
            txs: txs.to_vec(),
            signatures,
            policy: Policy::Verify,
        })
    }

    /// Executes a block and applies its writes; a fault leaves the store as it was.
    pub fn run(&mut self, input: BlockInput) -> Result<BlockOutcome, Fault> {
        let height = input.env.height;
        let time_ms = input.env.time_ms;
        let outcome = BlockRun::new(&self.genesis, input).run_with(&self.store)?;
        self.store.apply(outcome.writes.clone());
        self.height = height;
        self.time_ms = time_ms;
        Ok(outcome)
    }

    /// A record in state.
    pub fn get<T: Record>(&self, key: &Key) -> Option<T> {
        self.store
            .entries
            .get(key)
            .map(|b| decode(b).unwrap_or_else(|e| panic!("{e}")))
    }

    pub fn account(&self, address: &Address) -> Account {
        self.get(&bank::account_key(address)).unwrap_or_default()
    }
}
