//! What the chain tells the rest of the node: finalized blocks and a status summary.

use crate::block::Block;
use commonware_consensus::{Epochable, Viewable};
use commonware_cryptography::{Digestible, ed25519, sha256};
use exo_types::TxHash;
use std::sync::{Arc, Mutex};

/// A finalized block as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalizedBlock {
    pub height: u64,
    /// The block's time, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub digest: sha256::Digest,
    pub parent: sha256::Digest,
    pub state_root: sha256::Digest,
    pub epoch: u64,
    pub view: u64,
    pub proposer: ed25519::PublicKey,
    pub tx_hashes: Vec<TxHash>,
    pub evidence: usize,
}

impl FinalizedBlock {
    pub fn from_block(block: &Block) -> Self {
        Self {
            height: block.height.get(),
            timestamp_ms: block.timestamp_ms,
            digest: block.digest(),
            parent: block.parent,
            state_root: block.state_root,
            epoch: block.context.epoch().get(),
            view: block.context.view().get(),
            proposer: block.context.leader.clone(),
            tx_hashes: block.tx_hashes(),
            evidence: block.evidence.len(),
        }
    }
}

/// The chain as this validator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainStatus {
    pub finalized_height: u64,
    /// Time of the last finalized block, in milliseconds since the Unix epoch: the chain's
    /// clock, against which every window and expiry is measured.
    pub finalized_time_ms: u64,
    pub finalized_digest: Option<sha256::Digest>,
    pub state_root: Option<sha256::Digest>,
    pub epoch: u64,
    /// Highest block this validator proposed or executed speculatively.
    pub proposed_height: u64,
}

type Sink = Arc<dyn Fn(&FinalizedBlock) + Send + Sync>;

/// Collects chain events; cheap to clone.
#[derive(Clone)]
pub struct ChainEvents {
    status: Arc<Mutex<ChainStatus>>,
    sinks: Arc<Mutex<Vec<Sink>>>,
}

impl Default for ChainEvents {
    fn default() -> Self {
        Self {
            status: Arc::new(Mutex::new(ChainStatus::default())),
            sinks: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl ChainEvents {
    /// Calls `sink` for every finalized block from now on. Sinks must not block.
    pub fn subscribe(&self, sink: impl Fn(&FinalizedBlock) + Send + Sync + 'static) {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(sink));
    }

    pub fn status(&self) -> ChainStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn proposed(&self, height: u64, _txs: usize) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.proposed_height = status.proposed_height.max(height);
    }

    pub(crate) fn finalized(&self, block: FinalizedBlock) {
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.finalized_height = block.height;
            status.finalized_time_ms = block.timestamp_ms;
            status.finalized_digest = Some(block.digest);
            status.state_root = Some(block.state_root);
            status.epoch = block.epoch;
            status.proposed_height = status.proposed_height.max(block.height);
        }
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for sink in sinks {
            sink(&block);
        }
    }
}
