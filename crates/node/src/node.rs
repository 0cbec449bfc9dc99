//! One validator process: tokio runtime, authenticated p2p, the chain engine and the API.

use crate::config::{NodeConfig, load_genesis};
use anyhow::{Context, anyhow};
use commonware_cryptography::{ChaCha20Poly1305, Signer as _, ed25519};
use commonware_p2p::{
    Address, AddressableManager as _, AddressableTrackedPeers, authenticated::lookup,
};
use commonware_runtime::{
    Metrics as _, Quota, Runner as _, Spawner as _, Supervisor as _, tokio as cw_tokio,
};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{
    NZU32, NZUsize,
    ordered::{Map, Set},
};
use exo_chain::{
    engine::{self, Channels, Faults, Timeouts, ValidatorConfig, ValidatorHandle},
    epochs::{EpochPeers, PeerSets},
};
use exo_types::{Amount, address_from_hex};
use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};
use tracing::info;

/// Namespace of the p2p handshake, so that no other protocol's handshake can be replayed here.
const P2P_NAMESPACE: &[u8] = b"exodus-p2p-v1";

/// What the node shares with the API once the validator runs.
pub type Validator = ValidatorHandle<cw_tokio::Context>;

/// Runs the validator described by `config` until the process is stopped.
///
/// `serve` is called once the validator runs, on the same tokio runtime, and typically starts
/// the HTTP API; it returns when the node should stop. The runtime is then asked to stop (tasks
/// see their stop signal, with a bounded wait) before every task is aborted.
///
/// The key need not be a genesis validator: such a node dials the configured peers (the genesis
/// validators of a devnet it joins), follows the chain without voting once they accept it, and
/// signs in the epochs whose committee the ledger elects it into.
pub fn run<F, Fut>(config: NodeConfig, serve: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Validator>, NodeInfo) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let genesis = Arc::new(load_genesis(&config.genesis_file)?);
    let signer = exo_client::keyfile::read(&config.key_file)?;
    let committee = engine::committee(&genesis).map_err(|e| anyhow!(e))?;
    let genesis_member = committee.position(&signer.public_key()).is_some();
    if !genesis_member && config.peers.is_empty() {
        return Err(anyhow!(
            "key {} is not a validator in {}, so the node follows the chain from its peers, \
             and its configuration lists none",
            config.key_file.display(),
            config.genesis_file.display()
        ));
    }
    let mut peers = Vec::new();
    for peer in &config.peers {
        let key = address_from_hex(&peer.public_key)
            .ok_or_else(|| anyhow!("peer key {:?} is not a hex public key", peer.public_key))?;
        peers.push((key, Address::Symmetric(peer.address)));
    }
    peers.push((signer.public_key(), Address::Symmetric(config.p2p_listen)));
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;

    let runtime = cw_tokio::Config::new()
        .with_storage_directory(config.data_dir.clone())
        .with_worker_threads(config.worker_threads.max(1))
        .with_max_blocking_threads(4)
        .with_thread_stack_size(STACK_BYTES)
        .with_catch_panics(false);
    let chain_id = genesis.chain_id.clone();
    let min_fee = genesis.params.min_fee;
    // Consensus futures are deep, especially in debug builds: the root task gets its own thread
    // with the same generous stack as the runtime's workers.
    let root = std::thread::Builder::new()
        .name("exo-node".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            cw_tokio::Runner::new(runtime).start(|context| async move {
        let info = NodeInfo {
            chain_id,
            validators: committee.len(),
            min_fee,
            api_listen: config.api_listen,
            metrics: MetricsSource::new(context.child("metrics")),
        };
        let shutdown = context.child("shutdown");
        // Messages carry certificates of the largest committee an election can seat.
        let validators = committee
            .len()
            .max(genesis.params.staking.committee_size as usize) as u32;
        let mut p2p = lookup::Config::local(
            Cups::<_, ChaCha20Poly1305>::new(
                Sake {
                    signer: signer.clone(),
                    synchrony_bound: Duration::from_secs(5),
                    max_handshake_age: Duration::from_secs(10),
                    version: sake::Version::V1,
                },
                cups::Version::V1,
            ),
            P2P_NAMESPACE,
            config.p2p_listen,
            // Inbound buffers are sized by peers x quota burst, so both stay small: a devnet
            // or committee of up to 32 validators.
            NZUsize!(32),
            engine::max_message_size(validators),
            NZUsize!(4_096),
        );
        p2p.tracked_peer_sets = NZUsize!(1);
        p2p.dial_frequency = Duration::from_millis(250);
        p2p.peer_connection_cooldown = Duration::from_millis(250);
        let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
        let mut pairs = Vec::new();
        for ch in engine::channel::ALL {
            pairs.push(network.register(ch, Quota::per_second(NZU32!(1_024))));
        }
        let channels = Channels::from_ordered(pairs).ok_or_else(|| anyhow!("p2p channels"))?;
        let peer_map: Map<ed25519::PublicKey, Address> = Map::try_from(peers.clone())
            .map_err(|_| anyhow!("a peer is listed twice"))?;
        let _ = oracle.track(0, peer_map);
        network.start();
        let peer_sets = LedgerPeers {
            oracle: oracle.clone(),
            configured: peers.into_iter().collect(),
        };

        let validator = engine::start(
            context.child("validator"),
            ValidatorConfig {
                signer,
                genesis,
                partition_prefix: "exodus".into(),
                mempool: Default::default(),
                timeouts: Timeouts {
                    empty_block: Duration::from_millis(config.empty_block_ms),
                    min_block: Duration::from_millis(config.min_block_ms),
                    ..Timeouts::default()
                },
                retained_blocks: 100_000,
                faults: Faults::default(),
            },
            oracle.clone(),
            peer_sets,
            oracle,
            channels,
        )
        .await
        .map_err(|e| anyhow!(e))?;
        if genesis_member {
            info!(validator = %validator.public_key, api = %config.api_listen, "validator running");
        } else {
            // Outside the genesis committee the node follows without voting until the ledger
            // elects its key; the genesis validators accept its connection once it is a
            // registered candidate (see `Committees::peers`).
            info!(
                key = %validator.public_key,
                api = %config.api_listen,
                "node running outside the genesis committee: it follows the chain and signs \
                 in the epochs the ledger elects it for"
            );
        }
        let result = serve(Arc::new(validator), info).await;
        info!("stopping the validator");
        if let Err(err) = shutdown.stop(0, Some(STOP_GRACE)).await {
            tracing::warn!(%err, "tasks did not stop in time; aborting them");
        }
        result
    })
        })
        .context("cannot start the node thread")?;
    root.join()
        .map_err(|_| anyhow!("the node thread panicked"))?
}

/// Announces each epoch's peers to the `lookup` network. A peer's address is the configured
/// one when there is one, else the one it registered in the ledger; a peer with neither
/// cannot be dialed and is left out.
struct LedgerPeers {
    oracle: lookup::Oracle<ed25519::PublicKey>,
    configured: BTreeMap<ed25519::PublicKey, Address>,
}

impl LedgerPeers {
    fn addresses(
        &self,
        keys: &Set<ed25519::PublicKey>,
        registered: &BTreeMap<ed25519::PublicKey, String>,
    ) -> Map<ed25519::PublicKey, Address> {
        let known: Vec<_> = keys
            .iter()
            .filter_map(|key| {
                let address = self.configured.get(key).cloned().or_else(|| {
                    registered
                        .get(key)
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                        .map(Address::Symmetric)
                })?;
                Some((key.clone(), address))
            })
            .collect();
        // The keys come from a set, so they are unique.
        Map::try_from(known).unwrap_or_default()
    }
}

impl PeerSets for LedgerPeers {
    fn track(&mut self, epoch: u64, peers: EpochPeers) {
        let primary = self.addresses(&peers.primary, &peers.addresses);
        let secondary = self.addresses(&peers.secondary, &peers.addresses);
        let _ = self
            .oracle
            .track(epoch, AddressableTrackedPeers::new(primary, secondary));
    }
}

/// Stack of every runtime thread.
const STACK_BYTES: usize = 16 * 1024 * 1024;

/// How long tasks get to notice the stop signal before they are aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Facts the API reports about the node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub chain_id: String,
    /// Size of the genesis committee (this node need not be in it).
    pub validators: usize,
    /// Smallest fee a transaction may offer (genesis parameters).
    pub min_fee: Amount,
    /// Where the API should listen.
    pub api_listen: SocketAddr,
    /// The runtime's metrics.
    pub metrics: MetricsSource,
}

/// Renders the runtime's metrics registry (every validator component, p2p, storage and the
/// runtime itself) in Prometheus text format.
#[derive(Clone)]
pub struct MetricsSource(Arc<dyn Fn() -> String + Send + Sync>);

impl MetricsSource {
    fn new(context: cw_tokio::Context) -> Self {
        Self(Arc::new(move || context.encode()))
    }

    /// A source that renders `text`, for tests.
    pub fn fixed(text: impl Into<String>) -> Self {
        let text = text.into();
        Self(Arc::new(move || text.clone()))
    }

    pub fn render(&self) -> String {
        (self.0)()
    }
}

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}
