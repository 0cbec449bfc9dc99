//! One validator's service stack: simplex, marshal, block broadcast, backfill, the stateful
//! application, state-sync serving and mempool gossip.
//!
//! [`start`] is generic over the runtime context and the p2p network, so the same wiring runs
//! under the deterministic simulator (tests) and over authenticated TCP (nodes).

use crate::{
    admission::{self, Refusal},
    app::{App, EvidencePool, Pacing, Sources},
    block::Block,
    epochs::{Committees, EpochSchemes, PeerSets},
    events::ChainEvents,
    evidence::EvidenceProof,
    mempool::{Mempool, MempoolLimits},
    orchestrator::EpochChannels,
    store::{StateReader, state_config},
    votes::VoteBook,
};
use commonware_broadcast::buffered;
use commonware_codec::{Decode, Encode, RangeCfg};
use commonware_consensus::{
    Reporter, Reporters,
    marshal::{
        self, Identifier,
        core::{Actor as MarshalActor, Mailbox as MarshalMailbox},
        resolver::p2p as marshal_resolver,
        standard::{Deferred, Standard},
    },
    simplex::{
        self,
        config::{ForwardPolicy, SkipPolicy},
        scheme::ed25519::Scheme,
        types::Activity,
    },
    types::{Epoch, Epocher as _, FixedEpocher, Height, ViewDelta},
};
use commonware_cryptography::{
    Digestible, Signer as _, certificate::Verifier as _, ed25519, sha256,
};
use commonware_glue::stateful::{
    Config as StatefulConfig, PruneConfig, Stateful, SyncPlan,
    db::{DatabaseSet, SyncEngineConfig},
};
use commonware_p2p::{Blocker, Provider, Receiver, Recipients, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, buffer::paged::CacheRef};
use commonware_storage::{Context as StorageContext, archive::prunable, translator::TwoCap};
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize, ordered::Set};
use exo_ledger::{Genesis, exec::Rules};
use exo_types::{MAX_TX_BYTES, SignedTx};
use futures::{StreamExt, channel::mpsc};
use std::{collections::BTreeMap, num::NonZeroUsize, sync::Arc, time::Duration};
use tracing::{debug, info, warn};

/// Namespace of consensus signatures, distinct from transaction signatures.
pub const CONSENSUS_NAMESPACE: &[u8] = b"exodus-consensus-v1";

/// The p2p channels a validator uses, in this order.
pub mod channel {
    pub const VOTES: u64 = 0;
    pub const CERTIFICATES: u64 = 1;
    pub const RESOLVER: u64 = 2;
    pub const BACKFILL: u64 = 3;
    pub const BROADCAST: u64 = 4;
    pub const MEMPOOL: u64 = 5;
    pub const ALL: [u64; 6] = [VOTES, CERTIFICATES, RESOLVER, BACKFILL, BROADCAST, MEMPOOL];
}

/// Registered p2p channels, in the order of [`channel::ALL`].
pub struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub backfill: (S, R),
    pub broadcast: (S, R),
    pub mempool: (S, R),
}

impl<S, R> Channels<S, R> {
    /// Builds the set from pairs registered in the order of [`channel::ALL`].
    pub fn from_ordered(pairs: Vec<(S, R)>) -> Option<Self> {
        let mut it = pairs.into_iter();
        Some(Self {
            votes: it.next()?,
            certificates: it.next()?,
            resolver: it.next()?,
            backfill: it.next()?,
            broadcast: it.next()?,
            mempool: it.next()?,
        })
    }
}

/// Timeouts of the consensus engine.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub leader: Duration,
    pub certification: Duration,
    pub retry: Duration,
    pub skip: Duration,
    pub fetch: Duration,
    /// How long a leader with nothing to include waits for work before proposing an empty
    /// block; must stay below `leader`.
    pub empty_block: Duration,
    /// The shortest time between a block and its parent that a leader with work waits for,
    /// gathering more transactions, unless its mempool already fills a block: under load,
    /// fewer and fuller blocks, each of whose fixed costs (execution on every validator,
    /// merkleization, syncs, the workers' reads) is paid once. Zero proposes as soon as there
    /// is work. At most half of `leader`, so that a gathering leader leaves its block time to
    /// be broadcast, verified and notarized before the view times out.
    pub min_block: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            // Above the empty-block interval, so that an idle leader is not timed out.
            leader: Duration::from_millis(1_500),
            certification: Duration::from_millis(2_000),
            retry: Duration::from_millis(500),
            skip: Duration::from_secs(5),
            fetch: Duration::from_secs(2),
            empty_block: Duration::from_millis(1_000),
            // The engine's own default proposes as soon as there is work; a node takes its
            // interval from its configuration (`min_block_ms`).
            min_block: Duration::ZERO,
        }
    }
}

/// Faults a simulated validator plays, to test how the others treat it; every real node runs
/// with none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// How far this validator's clock runs ahead when it makes a proposal: its blocks are
    /// executed and stamped at that time, as a node with a wrong clock would.
    pub clock_ahead_ms: u64,
    /// When set, each proposal is executed at its honest time but stamped this many
    /// milliseconds before its parent, as a byzantine proposer could: a validator that
    /// executed it without checking its time first would stop on the ledger's fault.
    pub stamp_before_parent_ms: Option<u64>,
    /// When set, proposals ignore the block's work bound ([`crate::MAX_BLOCK_WORK`]), as a
    /// byzantine proposer could: validators refuse such a block before executing it.
    pub ignore_block_work: bool,
    /// When set, each proposal carries the certificate of its grandparent in place of its
    /// parent's (genuine signatures of another block), as a byzantine proposer crediting
    /// votes that were never cast for the parent could: validators refuse such a block.
    pub foreign_parent_votes: bool,
}

/// Everything one validator needs to start.
#[derive(Clone)]
pub struct ValidatorConfig {
    pub signer: ed25519::PrivateKey,
    pub genesis: Arc<Genesis>,
    /// Storage partitions are named under this prefix.
    pub partition_prefix: String,
    pub mempool: MempoolLimits,
    pub timeouts: Timeouts,
    /// Finalized blocks kept by marshal beyond what it needs, for lagging peers.
    pub retained_blocks: usize,
    pub faults: Faults,
}

/// A running validator.
pub struct ValidatorHandle<E: StorageContext + Spawner> {
    pub public_key: ed25519::PublicKey,
    pub consensus: Handle<()>,
    pub mempool: Mempool,
    pub events: ChainEvents,
    pub state: StateReader<E>,
    pub blocks: BlockReader,
    genesis: Arc<Genesis>,
    gossip: mpsc::Sender<SignedTx>,
}

impl<E: StorageContext + Spawner> ValidatorHandle<E> {
    /// Admits a transaction that passed the ledger's prechecks against `account` (the sender's
    /// finalized account, as the caller read it), and gossips it to the other validators.
    /// Gossip is best-effort: a full queue only delays it until a local proposal.
    pub fn submit(
        &self,
        tx: SignedTx,
        account: &exo_ledger::Account,
    ) -> Result<exo_types::TxHash, crate::MempoolError> {
        let hash = self.mempool.insert(tx.clone(), account)?;
        let _ = self.gossip.clone().try_send(tx);
        Ok(hash)
    }

    /// Checks a transaction against finalized state as gossip from a peer is checked, admits
    /// it and gossips it.
    pub async fn admit(&self, tx: SignedTx) -> Result<exo_types::TxHash, Refusal> {
        let signature_ok = tx.verify_signature();
        let hash = admission::admit(
            &self.state,
            &self.mempool,
            rules(&self.genesis),
            tx.clone(),
            signature_ok,
        )
        .await?;
        let _ = self.gossip.clone().try_send(tx);
        Ok(hash)
    }
}

/// The admission rules of `genesis`'s chain.
fn rules(genesis: &Genesis) -> Rules<'_> {
    Rules {
        chain_id: &genesis.chain_id,
        min_fee: genesis.params.min_fee,
    }
}

/// Reads finalized blocks through marshal.
#[derive(Clone)]
pub struct BlockReader {
    marshal: MarshalMailbox<Scheme, Standard<Block>>,
}

impl BlockReader {
    pub async fn by_height(&self, height: u64) -> Option<Block> {
        self.marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await
            .map(|b| b.inner().clone())
    }
}

/// The committee of the genesis, as the ordered set consensus uses.
pub fn committee(genesis: &Genesis) -> Result<Set<ed25519::PublicKey>, String> {
    let validators = genesis.validators().map_err(|e| e.to_string())?;
    Set::try_from(validators).map_err(|_| "duplicate validator".to_string())
}

/// The genesis block every validator of `genesis` starts from.
pub fn genesis_block<E: StorageContext + Spawner>(genesis: &Genesis) -> Result<Block, String> {
    let committee = committee(genesis)?;
    let leader = committee
        .iter()
        .next()
        .cloned()
        .ok_or_else(|| "empty committee".to_string())?;
    let target = <crate::StateDatabases<E> as DatabaseSet<E>>::initial_sync_targets();
    Ok(Block::genesis(
        genesis.hash(),
        target.root,
        target.range,
        leader,
    ))
}

/// The largest message any channel carries, for the network configuration.
pub fn max_message_size(validators: u32) -> u32 {
    commonware_p2p::max_message_size(&[
        simplex::max_payload_size::<Scheme, sha256::Digest>(validators),
        marshal::max_payload_size::<Standard<Block>, Scheme>(validators, &()),
        MAX_GOSSIP_TXS * MAX_TX_BYTES + 64,
    ])
}

const STATE_SYNC_BATCH: std::num::NonZeroU64 = NZU64!(256);
const MAX_GOSSIP_TXS: usize = 256;
const IO_BUFFER: NonZeroUsize = NZUsize!(64 * 1024);

fn archive_config<C>(
    prefix: &str,
    name: &str,
    page_cache: CacheRef,
    codec: C,
) -> prunable::Config<TwoCap, C> {
    prunable::Config {
        translator: TwoCap,
        metadata_partition: format!("{prefix}-{name}-metadata"),
        key_partition: format!("{prefix}-{name}-key"),
        key_page_cache: page_cache,
        value_partition: format!("{prefix}-{name}-value"),
        compression: None,
        codec_config: codec,
        items_per_section: NZU64!(1024),
        key_write_buffer: IO_BUFFER,
        value_write_buffer: IO_BUFFER,
        replay_buffer: IO_BUFFER,
    }
}

/// Sends consensus faults to the evidence pool, and notarizations and notarize votes to the
/// vote book that proposals take their parent's certificate from.
#[derive(Clone)]
struct ActivityReporter {
    evidence: EvidencePool,
    votes: VoteBook,
}

impl Reporter for ActivityReporter {
    type Activity = Activity<Scheme, sha256::Digest>;

    fn report(&mut self, activity: Self::Activity) -> commonware_actor::Feedback {
        if let Some(proof) = EvidenceProof::from_activity(&activity) {
            warn!("consensus fault observed; queuing evidence");
            self.evidence.push(proof);
        }
        self.votes.record(&activity);
        commonware_actor::Feedback::Ok
    }
}

/// Starts a validator. Every actor is a child of `context`, so aborting the returned consensus
/// handle's parent task tears the whole validator down.
///
/// Its key need not be in any committee: in an epoch whose committee leaves it out, the node
/// follows the chain without voting. Each epoch's peers are announced to `peer_sets`.
pub async fn start<E, P, T, B, S, R>(
    context: E,
    config: ValidatorConfig,
    peers: P,
    peer_sets: T,
    blocker: B,
    channels: Channels<S, R>,
) -> Result<ValidatorHandle<E>, String>
where
    E: StorageContext + Spawner + Clock + Metrics + rand::CryptoRng,
    P: Provider<PublicKey = ed25519::PublicKey>,
    T: PeerSets,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    if config.timeouts.empty_block >= config.timeouts.leader {
        return Err("the empty-block interval must stay below the leader timeout".into());
    }
    if config.timeouts.min_block > config.timeouts.leader / 2 {
        return Err("the minimum block interval must be at most half the leader timeout".into());
    }
    let public_key = config.signer.public_key();
    let gossip_blocker = blocker.clone();
    let committee = committee(&config.genesis)?;
    // Epoch 0's committee is the genesis one; the orchestrator registers every later epoch's
    // from finalized state as it reaches it.
    let schemes = EpochSchemes::new(config.signer.clone());
    schemes.register(Epoch::zero(), committee.clone());
    let prefix = config.partition_prefix.clone();
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(1024));
    let epoch_length = std::num::NonZeroU64::new(config.genesis.params.epoch_length)
        .ok_or_else(|| "epoch length must be positive".to_string())?;
    let epocher = FixedEpocher::new(epoch_length);
    let genesis_block = genesis_block::<E>(&config.genesis)?;
    let genesis_digest = genesis_block.digest();

    // Backfill of missing blocks from peers.
    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: public_key.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size: NZUsize!(1024),
            fetch_timeout: NZDuration!(config.timeouts.fetch),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );

    // Gossip of proposed blocks.
    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: public_key.clone(),
            mailbox_size: NZUsize!(1024),
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peers.clone(),
            strategy: Sequential,
        },
    );
    broadcast_engine.start(channels.broadcast);

    let finalizations = prunable::Archive::init(
        context.child("finalizations"),
        archive_config(
            &prefix,
            "finalizations",
            page_cache.clone(),
            Scheme::certificate_codec_config_unbounded(),
        ),
    )
    .await
    .map_err(|e| format!("finalizations archive: {e}"))?;
    let blocks = prunable::Archive::init(
        context.child("blocks"),
        archive_config(&prefix, "blocks", page_cache.clone(), ()),
    )
    .await
    .map_err(|e| format!("blocks archive: {e}"))?;

    let plan = SyncPlan::init(context.child("sync_plan"), prefix.clone()).await;
    let (marshal_actor, marshal_mailbox, floor) =
        MarshalActor::<_, Standard<Block>, _, _, _, _, _>::init(
            context.child("marshal"),
            finalizations,
            blocks,
            marshal::Config {
                provider: schemes.clone(),
                epocher: epocher.clone(),
                start: plan.marshal_start(commonware_cryptography::Digested::precomputed(
                    genesis_block.clone(),
                    genesis_digest,
                )),
                partition_prefix: prefix.clone(),
                mailbox_size: NZUsize!(1024),
                view_retention: ViewDelta::new(64),
                prunable_items_per_section: NZU64!(1024),
                page_cache: page_cache.clone(),
                replay_buffer: IO_BUFFER,
                key_write_buffer: IO_BUFFER,
                value_write_buffer: IO_BUFFER,
                block_codec_config: (),
                max_repair: NZUsize!(64),
                max_pending_acks: NZUsize!(16),
                strategy: Sequential,
            },
        )
        .await;

    let events = ChainEvents::default();
    let mempool = Mempool::new(config.mempool);
    let evidence = EvidencePool::default();
    let votes = VoteBook::default();
    let sources = Sources {
        mempool: mempool.clone(),
        evidence: evidence.clone(),
        votes: votes.clone(),
    };
    let app = App::new(
        config.genesis.clone(),
        genesis_block.clone(),
        committee.clone(),
        CONSENSUS_NAMESPACE,
        events.clone(),
        sources.clone(),
        Pacing {
            empty_block: config.timeouts.empty_block,
            min_block: config.timeouts.min_block,
        },
    )
    .with_faults(config.faults);
    let (stateful, stateful_mailbox) = Stateful::new(
        context.child("stateful"),
        StatefulConfig {
            application: app,
            db_config: state_config(&prefix, page_cache.clone()),
            provider: sources,
            marshal: (marshal_mailbox.clone(), floor),
            mailbox_size: NZUsize!(1024),
            plan,
            resolvers: crate::store::NoStateSync::<E>::default(),
            sync_config: SyncEngineConfig {
                fetch_batch_size: STATE_SYNC_BATCH,
                apply_batch_size: NZU64!(1024),
                max_outstanding_requests: NZUsize!(8),
            },
            prune_config: Some(PruneConfig {
                maintenance_interval: NZUsize!(64),
                retained_marshal_blocks: config.retained_blocks,
                retained_qmdb_blocks: 0,
            }),
            strategy: Sequential,
        },
    );
    let deferred = Deferred::new(
        context.child("deferred"),
        stateful_mailbox.clone(),
        marshal_mailbox.clone(),
        epocher.clone(),
    );
    marshal_actor.start(stateful_mailbox.clone(), buffer, resolver);
    stateful.start();

    let reporter: Reporters<_, _> = (deferred.clone(), ActivityReporter { evidence, votes }).into();

    // Boundary blocks reach the orchestrator from the finalized-block hook.
    let (boundary_tx, boundaries) = mpsc::channel::<(Height, sha256::Digest)>(64);
    {
        let epocher = epocher.clone();
        let boundary_tx = std::sync::Mutex::new(boundary_tx);
        events.subscribe(move |block| {
            let height = Height::new(block.height);
            if epocher
                .containing(height)
                .is_some_and(|info| info.last() == height)
            {
                let mut tx = boundary_tx.lock().unwrap_or_else(|p| p.into_inner());
                let _ = tx.try_send((height, block.digest));
            }
        });
    }
    let processed = marshal_mailbox
        .get_processed()
        .await
        .map_or(Height::zero(), |p| p.height());
    let databases = stateful_mailbox.subscribe_databases().await;
    let state = StateReader::new(databases);
    let timeouts = config.timeouts;
    let start_engine = move |context: E,
                             epoch: Epoch,
                             scheme: Arc<Scheme>,
                             floor: sha256::Digest,
                             votes: EpochChannels<S>,
                             certificates: EpochChannels<S>,
                             resolver: EpochChannels<S>| {
        simplex::Engine::new(
            context,
            simplex::Config {
                scheme: Scheme::clone(&scheme),
                elector: crate::app::leader_elector(),
                blocker: blocker.clone(),
                automaton: deferred.clone(),
                relay: deferred.clone(),
                reporter: reporter.clone(),
                strategy: Sequential,
                partition: format!("{prefix}-consensus-{}", epoch.get()),
                mailbox_size: NZUsize!(1024),
                epoch,
                floor: simplex::config::Floor::Genesis(floor),
                replay_buffer: IO_BUFFER,
                write_buffer: IO_BUFFER,
                page_cache: page_cache.clone(),
                leader_timeout: timeouts.leader,
                certification_timeout: timeouts.certification,
                timeout_retry: timeouts.retry,
                view_retention: ViewDelta::new(64),
                skip: SkipPolicy::Enabled {
                    timeout: timeouts.skip,
                    budget: simplex::SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(timeouts.fetch),
                fetch_retry_delay: Duration::from_millis(500),
                forward: ForwardPolicy::Disabled,
                track_historical_votes: false,
            },
        )
        .start(votes, certificates, resolver)
    };
    let consensus = crate::orchestrator::start(
        context.child("orchestrator"),
        crate::orchestrator::Setup {
            epocher: epocher.clone(),
            genesis: genesis_digest,
            processed,
            marshal: marshal_mailbox.clone(),
            boundaries,
            committees: Committees::new(state.clone(), committee),
            schemes,
            peer_sets,
        },
        start_engine,
        (channels.votes, channels.certificates, channels.resolver),
    );

    let gossip = start_gossip(
        context.child("mempool_gossip"),
        Gossip {
            mempool: mempool.clone(),
            state: state.clone(),
            genesis: config.genesis.clone(),
            blocker: gossip_blocker,
        },
        channels.mempool,
    );
    info!(validator = %public_key, "validator started");
    Ok(ValidatorHandle {
        public_key,
        consensus,
        mempool,
        events,
        state,
        genesis: config.genesis.clone(),
        blocks: BlockReader {
            marshal: marshal_mailbox,
        },
        gossip,
    })
}

/// What the gossip receiver admits with.
struct Gossip<E: StorageContext + Spawner, B> {
    mempool: Mempool,
    state: StateReader<E>,
    genesis: Arc<Genesis>,
    blocker: B,
}

/// Refused transactions a peer may gossip before its refusals are weighed against what it got
/// admitted; see [`PeerScore`].
const GOSSIP_REFUSALS_ALLOWED: u64 = 1_024;

/// How a peer's gossip has fared. Every transaction a peer sends costs a signature check and a
/// state read, so a peer that mostly sends what cannot be admitted is blocked.
#[derive(Default)]
struct PeerScore {
    admitted: u64,
    refused: u64,
}

impl PeerScore {
    fn is_abusive(&self) -> bool {
        self.refused > GOSSIP_REFUSALS_ALLOWED && self.refused > self.admitted.saturating_mul(4)
    }
}

/// Relays admitted transactions to the other validators and admits theirs with the same checks
/// as the API's. A peer that sends an undecodable message, a bad signature, another chain's
/// transaction or an oversized one is blocked at once; one whose transactions are mostly
/// refused for other reasons is blocked once its refusals pass a bound.
fn start_gossip<E, S, R, B>(
    context: E,
    gossip: Gossip<E, B>,
    (mut sender, mut receiver): (S, R),
) -> mpsc::Sender<SignedTx>
where
    E: StorageContext + Spawner + rand::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    let (queue, mut outgoing) = mpsc::channel::<SignedTx>(16 * 1024);
    context.child("send").spawn(move |_| async move {
        while let Some(first) = outgoing.next().await {
            // Whatever else is queued goes in the same message, so that load batches itself.
            let mut batch = vec![first];
            while batch.len() < MAX_GOSSIP_TXS {
                match outgoing.try_recv() {
                    Ok(tx) => batch.push(tx),
                    _ => break,
                }
            }
            sender.send(Recipients::All, batch.encode(), false);
        }
    });
    context.child("receive").spawn(move |mut rng| async move {
        let Gossip {
            mempool,
            state,
            genesis,
            mut blocker,
        } = gossip;
        let mut scores: BTreeMap<ed25519::PublicKey, PeerScore> = BTreeMap::new();
        loop {
            let (peer, message) = match receiver.recv().await {
                Ok(m) => m,
                Err(err) => {
                    debug!(%err, "mempool gossip closed");
                    return;
                }
            };
            let txs = match Vec::<SignedTx>::decode_cfg(
                message,
                &(RangeCfg::new(1..=MAX_GOSSIP_TXS), ()),
            ) {
                Ok(txs) => txs,
                Err(err) => {
                    warn!(%peer, %err, "undecodable mempool gossip; blocking the peer");
                    let _ = blocker.block(peer);
                    continue;
                }
            };
            // One batch verification per message; a bad batch is sorted out one by one.
            let verified = crate::app::verify_signatures(&mut rng, &txs);
            let mut garbage = None;
            for (tx, ok) in txs.into_iter().zip(verified) {
                let score = scores.entry(peer.clone()).or_default();
                match admission::admit(&state, &mempool, rules(&genesis), tx, ok).await {
                    Ok(_) => score.admitted = score.admitted.saturating_add(1),
                    // The same transaction reached this node another way, or this node could
                    // not read its own state: not the peer's fault.
                    Err(Refusal::Mempool(crate::MempoolError::Duplicate) | Refusal::Store(_)) => {}
                    Err(refusal) if refusal.is_garbage() => {
                        garbage = Some(refusal);
                        break;
                    }
                    Err(_) => score.refused = score.refused.saturating_add(1),
                }
            }
            let abusive = scores.get(&peer).is_some_and(PeerScore::is_abusive);
            if let Some(refusal) = garbage {
                warn!(%peer, %refusal, "invalid mempool gossip; blocking the peer");
                let _ = blocker.block(peer);
            } else if abusive {
                warn!(%peer, "mempool gossip mostly refused; blocking the peer");
                let _ = blocker.block(peer);
            }
        }
    });
    queue
}
