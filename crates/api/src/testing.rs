//! An in-memory node for tests of the API, the client and the CLI (feature `testing`).
//!
//! It runs the real ledger and the real mempool over a map instead of consensus and QMDB:
//! [`MemoryNode::produce_block`] builds a block from the mempool the way a proposer does
//! (transactions rejected before paying a fee stay out of the block) and finalizes it at once.
//! Digests and state roots are stand-ins, not what a validator would compute.

use crate::{NodeView, wire};
use commonware_codec::Encode;
use commonware_consensus::types::Height;
use commonware_storage::mmr::Location;
use commonware_utils::range::NonEmptyRange;
use exo_chain::{
    Block, FinalizedBlock, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, Mempool, MempoolError, MempoolLimits,
};
use exo_ledger::{
    BlockEnv, BlockInput, BlockRun, Fault, Genesis, Key, MemoryBacking, Policy, Signatures,
};
use exo_types::{Address, Digest, SignedTx, TxHash, hash_bytes};
use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};
use tokio::sync::broadcast;

/// How the node's state store answers reads, to test failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateMode {
    Ok,
    Fails,
    Hangs,
}

struct Chain {
    genesis: Genesis,
    store: MemoryBacking,
    blocks: BTreeMap<u64, Block>,
    height: u64,
    state_mode: StateMode,
}

/// A single in-memory node; clones share it.
#[derive(Clone)]
pub struct MemoryNode {
    chain: Arc<Mutex<Chain>>,
    mempool: Mempool,
    events: broadcast::Sender<FinalizedBlock>,
    proposer: Address,
}

fn state_root(store: &MemoryBacking) -> Digest {
    let mut bytes = Vec::new();
    for (key, value) in &store.entries {
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&(value.len() as u64).to_be_bytes());
        bytes.extend_from_slice(value);
    }
    hash_bytes(&bytes)
}

impl MemoryNode {
    /// A node whose state is `genesis` at height 0. The genesis must validate.
    pub fn new(genesis: Genesis, proposer: Address) -> Self {
        // The genesis state, written by an empty block at height 0.
        let mut store = MemoryBacking::default();
        let input = BlockInput {
            env: BlockEnv {
                height: 0,
                proposer: proposer.clone(),
                seed: [0; 32],
            },
            evidence: Vec::new(),
            txs: Vec::new(),
            signatures: Signatures::Verify,
            policy: Policy::Verify,
        };
        let outcome = BlockRun::new(&genesis, input)
            .run_with(&store)
            .unwrap_or_else(|fault| panic!("invalid genesis: {fault}"));
        store.apply(outcome.writes);
        let genesis_block = Block::genesis(
            genesis.hash(),
            state_root(&store),
            NonEmptyRange::new(Location::new(0)..Location::new(1))
                .unwrap_or_else(|_| unreachable!("0..1 is not empty")),
            proposer.clone(),
        );
        Self {
            chain: Arc::new(Mutex::new(Chain {
                genesis,
                store,
                blocks: BTreeMap::from([(0, genesis_block)]),
                height: 0,
                state_mode: StateMode::Ok,
            })),
            mempool: Mempool::new(MempoolLimits::default()),
            events: broadcast::channel(64).0,
            proposer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    pub fn set_state_mode(&self, mode: StateMode) {
        self.lock().state_mode = mode;
    }

    /// Overwrites (or with `None`, deletes) a state entry.
    pub fn put_state(&self, key: Key, value: Option<Vec<u8>>) {
        let mut chain = self.lock();
        match value {
            Some(value) => chain.store.entries.insert(key, value),
            None => chain.store.entries.remove(&key),
        };
    }

    /// Builds a block from the mempool, executes it with the ledger, finalizes it and
    /// publishes it to subscribers. A ledger fault stops this node: it panics with the fault,
    /// as a validator would stop.
    pub fn produce_block(&self) -> FinalizedBlock {
        self.try_produce_block()
            .unwrap_or_else(|fault| panic!("ledger fault: {fault}"))
    }

    /// [`Self::produce_block`], giving a ledger fault back instead of stopping; the chain is
    /// left as it was.
    pub fn try_produce_block(&self) -> Result<FinalizedBlock, Fault> {
        let mut chain = self.lock();
        let height = chain.height + 1;
        let genesis = chain.genesis.clone();
        let input = BlockInput {
            env: BlockEnv {
                height,
                proposer: self.proposer.clone(),
                seed: [height as u8; 32],
            },
            evidence: Vec::new(),
            txs: self.mempool.candidates(MAX_BLOCK_TXS),
            // Like a proposer: the mempool's admission is not trusted here, every signature
            // is checked.
            signatures: Signatures::Verify,
            policy: Policy::Build {
                max_txs: MAX_BLOCK_TXS,
                max_bytes: MAX_BLOCK_BYTES,
            },
        };
        let outcome = BlockRun::new(&genesis, input).run_with(&chain.store)?;
        chain.store.apply(outcome.writes);
        let (included, evicted) = (outcome.included, outcome.evicted);
        let parent = chain
            .blocks
            .get(&chain.height)
            .map(commonware_cryptography::Digestible::digest)
            .unwrap_or_else(|| hash_bytes(b"parent"));
        let mut block = Block::genesis(
            genesis.hash(),
            state_root(&chain.store),
            NonEmptyRange::new(Location::new(0)..Location::new(height + 1))
                .unwrap_or_else(|_| unreachable!("0..h+1 is not empty")),
            self.proposer.clone(),
        );
        block.parent = parent;
        block.height = Height::new(height);
        block.txs = included;
        self.mempool.remove(evicted);
        self.mempool.finalized(height, &block.txs);
        let finalized = FinalizedBlock::from_block(&block);
        chain.blocks.insert(height, block);
        chain.height = height;
        drop(chain);
        let _ = self.events.send(finalized.clone());
        Ok(finalized)
    }

    /// Produces a block every `interval`, forever. Spawn it in a test; abort it to stop.
    pub async fn run(self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            self.produce_block();
        }
    }
}

impl NodeView for MemoryNode {
    fn status(&self) -> wire::Status {
        let chain = self.lock();
        wire::Status {
            chain_id: chain.genesis.chain_id.clone(),
            height: chain.height,
            finalized_height: chain.height,
            epoch: 0,
            state_root: Some(state_root(&chain.store)),
            peers: 0,
            min_fee: chain.genesis.params.min_fee,
        }
    }

    fn submit(&self, tx: SignedTx, sender: &exo_ledger::Account) -> Result<TxHash, MempoolError> {
        self.mempool.insert(tx, sender)
    }

    fn pending(&self, hash: &TxHash) -> bool {
        self.mempool.contains(hash)
    }

    fn state(&self, key: Key) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send {
        let chain = self.lock();
        let mode = chain.state_mode;
        let value = chain.store.entries.get(&key).cloned();
        drop(chain);
        async move {
            match mode {
                StateMode::Ok => Ok(value),
                StateMode::Fails => Err("state store failed".to_string()),
                StateMode::Hangs => std::future::pending().await,
            }
        }
    }

    fn block(&self, height: u64) -> impl Future<Output = Option<Block>> + Send {
        let block = self.lock().blocks.get(&height).cloned();
        async move { block }
    }

    fn subscribe(&self) -> broadcast::Receiver<FinalizedBlock> {
        self.events.subscribe()
    }

    fn metrics(&self) -> String {
        format!(
            "# TYPE exo_memory_node_height gauge\nexo_memory_node_height {}\n",
            self.lock().height
        )
    }
}

/// Encodes a transaction as `POST /v1/txs` expects it.
pub fn submit_body(tx: &SignedTx) -> String {
    serde_json::json!({ "tx": hex::encode(tx.encode()) }).to_string()
}
