//! The HTTP API of a running validator: [`exo_api::NodeView`] over the validator handle, and
//! the server loop that `exo node` runs until SIGINT or SIGTERM.

use crate::{
    NodeConfig,
    node::{self, NodeInfo, Validator},
};
use anyhow::Context as _;
use exo_api::{ApiLimits, NodeView, PeerBlobs, wire};
use exo_chain::{Block, FinalizedBlock, MempoolError};
use exo_client::Client;
use exo_ledger::Key;
use exo_types::{Hash32, SignedTx, TxHash};
use futures::future::BoxFuture;
use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::broadcast;
use tracing::{debug, info};

/// Finalized blocks buffered for event subscribers; a slower subscriber loses the oldest.
pub const EVENT_CAPACITY: usize = 256;
/// How long open requests (and event streams) get once the node is asked to stop.
pub const SHUTDOWN_GRACE_MS: u64 = 2_000;
/// How long a connected-peer count is reused before the metrics are read again.
const PEERS_TTL: Duration = Duration::from_secs(1);

/// A running validator as the API sees it; clones share it.
#[derive(Clone)]
pub struct ValidatorView {
    inner: Arc<Inner>,
}

struct Inner {
    validator: Arc<Validator>,
    info: NodeInfo,
    blocks: broadcast::Sender<FinalizedBlock>,
    peers: Mutex<Option<(Instant, u64)>>,
}

impl ValidatorView {
    /// Bridges the validator's finalized-block hook into a bounded broadcast channel. The hook
    /// runs on the chain's finalization path, so it only ever does a non-blocking send.
    pub fn new(validator: Arc<Validator>, info: NodeInfo) -> Self {
        let (blocks, _) = broadcast::channel(EVENT_CAPACITY);
        let sink = blocks.clone();
        validator.events.subscribe(move |block| {
            // No subscriber is not an error: the block is simply not wanted.
            let _ = sink.send(block.clone());
        });
        Self {
            inner: Arc::new(Inner {
                validator,
                info,
                blocks,
                peers: Mutex::new(None),
            }),
        }
    }

    /// Connected peers, from the p2p tracker's metrics, reused for a second; the committee
    /// size minus one if the metric cannot be found.
    fn peers(&self) -> u64 {
        let mut cached = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, peers)) = *cached
            && at.elapsed() < PEERS_TTL
        {
            return peers;
        }
        let peers = connected_peers(&self.inner.info.metrics.render())
            .unwrap_or(self.inner.info.validators.saturating_sub(1) as u64);
        *cached = Some((Instant::now(), peers));
        peers
    }
}

/// Counts the peers in the p2p tracker's `connected` gauge family (one sample per connected
/// peer, labelled `peer`). `None` when the family is not in `metrics` at all.
pub fn connected_peers(metrics: &str) -> Option<u64> {
    let mut family = false;
    let mut peers = 0;
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            family |= is_connected_family(name);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line
            .split(|c: char| c == '{' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        if is_connected_family(name) && line.contains("peer=") {
            peers += 1;
        }
    }
    family.then_some(peers)
}

fn is_connected_family(name: &str) -> bool {
    name.starts_with("p2p_") && name.ends_with("_connected")
}

impl NodeView for ValidatorView {
    fn status(&self) -> wire::Status {
        let status = self.inner.validator.events.status();
        wire::Status {
            chain_id: self.inner.info.chain_id.clone(),
            height: status.proposed_height.max(status.finalized_height),
            finalized_height: status.finalized_height,
            finalized_time_ms: status.finalized_time_ms,
            epoch: status.epoch,
            state_root: status.state_root,
            peers: self.peers(),
            min_fee: self.inner.info.min_fee,
        }
    }

    fn submit(&self, tx: SignedTx, sender: &exo_ledger::Account) -> Result<TxHash, MempoolError> {
        self.inner.validator.submit(tx, sender)
    }

    fn pending(&self, hash: &TxHash) -> bool {
        self.inner.validator.mempool.contains(hash)
    }

    fn state(&self, key: Key) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send {
        let state = self.inner.validator.state.clone();
        async move { state.get(&key).await }
    }

    fn block(&self, height: u64) -> impl Future<Output = Option<Block>> + Send {
        let blocks = self.inner.validator.blocks.clone();
        async move { blocks.by_height(height).await }
    }

    fn subscribe(&self) -> broadcast::Receiver<FinalizedBlock> {
        self.inner.blocks.subscribe()
    }

    fn metrics(&self) -> String {
        self.inner.info.metrics.render()
    }
}

/// Serves the API of `validator` on `info.api_listen` until `shutdown` completes.
pub async fn serve(
    validator: Arc<Validator>,
    info: NodeInfo,
    limits: ApiLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_blobs(validator, info, limits, None, None, shutdown).await
}

/// [`serve`] with a blob store for the blob and output routes, filled from `peers` on a miss.
///
/// The API runs on a runtime of its own ([`api_runtime`]): its requests, its blob I/O and the
/// state reads it makes (whose disk work goes to the blocking pool of the runtime that polls
/// them) use the API's threads, never the validator's, so a flood of requests slows the API
/// and not consensus. This future, on the validator's runtime, only waits for it to end.
pub async fn serve_with_blobs(
    validator: Arc<Validator>,
    info: NodeInfo,
    limits: ApiLimits,
    blobs: Option<exo_api::BlobStore>,
    peers: Option<PeerApis>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = api_runtime().context("cannot start the API's runtime")?;
    let view = ValidatorView::new(validator, info);
    let address = view.inner.info.api_listen;
    // Junk, the inputs of ended jobs and old outputs leave the store on their own.
    if let Some(store) = &blobs {
        runtime.spawn(exo_api::collect_blobs_forever(
            view.clone(),
            limits,
            store.clone(),
            COLLECT_EVERY,
        ));
    }
    let server = runtime.spawn(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen for the API on {address}"))?;
        info!(%address, "API listening");
        exo_api::serve_with(
            listener,
            view,
            exo_api::ApiConfig {
                limits,
                blobs,
                peers: peers.map(|p| Arc::new(p) as Arc<dyn PeerBlobs>),
            },
            shutdown,
            SHUTDOWN_GRACE_MS,
        )
        .await
        .context("the API server failed")
    });
    let result = server.await;
    // Dropping a runtime waits for its blocking threads, which an async context must not do.
    runtime.shutdown_background();
    result.map_err(|e| anyhow::anyhow!("the API's task failed: {e}"))??;
    info!("API stopped");
    Ok(())
}

/// Time between two collections of the blob store.
const COLLECT_EVERY: Duration = Duration::from_secs(300);

/// Threads of the API's runtime, and the most blocking threads (blob files, hashing, state
/// reads) it may use.
pub const API_WORKER_THREADS: usize = 2;
pub const API_BLOCKING_THREADS: usize = 16;

/// The API's own tokio runtime, apart from the validator's.
pub fn api_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(API_WORKER_THREADS)
        .max_blocking_threads(API_BLOCKING_THREADS)
        .thread_name("exo-api")
        .enable_all()
        .build()
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                    _ = term.recv() => info!("SIGTERM received"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `exo node`: runs the validator of `config` and its API until SIGINT or SIGTERM.
/// The API keeps a blob store (modules, inputs, outputs) under `<data_dir>/blobs`, filled on a
/// miss from the APIs in `config.blob_peers`.
pub fn run_node(config: NodeConfig) -> anyhow::Result<()> {
    let dir = config.data_dir.join("blobs");
    let blobs = exo_api::BlobStore::open(&dir, BLOB_STORE_BYTES)
        .with_context(|| format!("cannot open the blob store {}", dir.display()))?;
    let peers = PeerApis::new(&config.blob_peers)?;
    node::run(config, move |validator, info| {
        serve_with_blobs(
            validator,
            info,
            ApiLimits::default(),
            Some(blobs),
            Some(peers),
            shutdown_signal(),
        )
    })
}

/// Other nodes' APIs, asked in turn when this node misses a blob or a unit's outputs.
#[derive(Clone, Debug)]
pub struct PeerApis {
    clients: Vec<Client>,
}

impl PeerApis {
    /// Clients of the APIs at `urls`, asked in that order.
    pub fn new(urls: &[String]) -> anyhow::Result<Self> {
        let clients = urls
            .iter()
            .map(|url| {
                Client::peer(url)
                    .map(|c| c.with_timeout(PEER_TIMEOUT))
                    .with_context(|| format!("blob peer {url}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { clients })
    }
}

impl PeerBlobs for PeerApis {
    fn blob(&self, hash: Hash32, max_bytes: u64) -> BoxFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            for client in &self.clients {
                // The size first, so that nothing larger than the bound is downloaded; the
                // client checks the bytes against the hash, and the store does again.
                match client.blob_size(&hash).await {
                    Ok(Some(size)) if size <= max_bytes => {}
                    _ => continue,
                }
                match client.get_blob(&hash).await {
                    Ok(bytes) => return Some(bytes),
                    Err(err) => debug!(peer = client.url(), %err, "blob from a peer"),
                }
            }
            None
        })
    }

    fn outputs(&self, job: u64, unit: u32, height: u64) -> BoxFuture<'_, Option<Hash32>> {
        Box::pin(async move {
            for client in &self.clients {
                if let Ok(Some(outputs)) = client.outputs_at(job, unit, height).await {
                    return Some(outputs.archive);
                }
            }
            None
        })
    }
}

/// How long a peer gets to answer one request (a blob download gets the client's blob
/// timeout).
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes a node's blob store keeps.
const BLOB_STORE_BYTES: u64 = 4 << 30;

#[cfg(test)]
mod tests {
    use super::connected_peers;

    #[test]
    fn counts_connected_peers_from_metrics() {
        let text = "\
# HELP p2p_tracker_connected Unix timestamp in milliseconds when each connected peer became active.
# TYPE p2p_tracker_connected gauge
p2p_tracker_connected{peer=\"aa\"} 1700000000000
p2p_tracker_connected{peer=\"bb\"} 1700000000001
# TYPE p2p_tracker_tracked gauge
p2p_tracker_tracked 3
";
        assert_eq!(connected_peers(text), Some(2));
        assert_eq!(
            connected_peers("# TYPE p2p_tracker_connected gauge\n"),
            Some(0)
        );
        assert_eq!(connected_peers("runtime_tasks 3\n"), None);
    }
}
