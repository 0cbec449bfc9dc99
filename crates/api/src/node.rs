//! What the API needs from a node. The node implements [`NodeView`] over its validator handle;
//! tests implement it in memory.

use crate::wire::Status;
use exo_chain::{Block, FinalizedBlock, MempoolError};
use exo_ledger::{Account, Key};
use exo_types::{SignedTx, TxHash};
use std::future::Future;
use tokio::sync::broadcast;

/// A node as the API sees it: a status summary, mempool admission, finalized state and blocks,
/// and a feed of finalized blocks.
///
/// Implementations must answer quickly or not at all: the API bounds every asynchronous call
/// with [`crate::ApiLimits::node_timeout_ms`] and answers 503 when it runs out.
pub trait NodeView: Clone + Send + Sync + 'static {
    /// The chain as this node sees it now.
    fn status(&self) -> Status;

    /// Admits a transaction whose signature, chain, nonce and fee the API has checked against
    /// `sender`, the sender's finalized account.
    fn submit(&self, tx: SignedTx, sender: &Account) -> Result<TxHash, MempoolError>;

    /// Whether the transaction is in this node's mempool.
    fn pending(&self, hash: &TxHash) -> bool;

    /// The finalized value of a state key.
    fn state(&self, key: Key) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;

    /// The finalized block at `height`, if this node has it.
    fn block(&self, height: u64) -> impl Future<Output = Option<Block>> + Send;

    /// A feed of finalized blocks from now on. A subscriber that falls behind the channel's
    /// capacity loses the oldest blocks, never holds the node back.
    fn subscribe(&self) -> broadcast::Receiver<FinalizedBlock>;

    /// The node's own metrics in OpenMetrics text format, with or without its closing `# EOF`;
    /// the API adds its families and closes the whole.
    fn metrics(&self) -> String;
}
