//! Deterministic simulation of whole Exodus clusters.
//!
//! A [`Cluster`] runs N validators in one process under Commonware's deterministic runtime and
//! simulated network: clock, randomness, storage and links all come from the runtime, so a
//! seed reproduces a run exactly, including crashes, partitions and byzantine peers.
//!
//! Test-only code: nothing in a node depends on this crate.

use commonware_consensus::simplex::{mocks::conflicter, scheme::ed25519::Scheme};
use commonware_cryptography::{Sha256, Signer as _, ed25519};
use commonware_p2p::{
    Recipients, Sender as _,
    simulated::{self, Link, Network, Oracle},
    utils::mux::Muxer,
};
use commonware_runtime::{Clock, Handle, Quota, Spawner, Supervisor as _, deterministic};
use commonware_utils::{NZU32, NZUsize};
use exo_chain::{
    ChainStatus, MempoolLimits,
    engine::{
        self, CONSENSUS_NAMESPACE, Channels, Faults, Timeouts, ValidatorConfig, ValidatorHandle,
    },
    epochs::KeyOnly,
};
use exo_ledger::{
    Genesis, GenesisAccount, Params, exec,
    modules::bank,
    state::{Query, Record},
};
use exo_types::{Action, Address, Amount, PrivateKey, SignedTx, UnsignedTx, address_to_hex};
use futures::channel::oneshot;
use std::{sync::Arc, time::Duration};

/// The chain id of simulated clusters.
pub const CHAIN_ID: &str = "exo-sim";
/// Seed of the funded test account's key.
pub const FAUCET_SEED: u64 = 1_000;

const QUOTA: Quota = Quota::per_second(NZU32!(100_000));

/// Deterministic validator keys.
pub fn validator_key(i: usize) -> PrivateKey {
    PrivateKey::from_seed(i as u64)
}

/// The funded account's key.
pub fn faucet_key() -> PrivateKey {
    PrivateKey::from_seed(FAUCET_SEED)
}

/// A deterministic account key.
pub fn account_key(seed: u64) -> PrivateKey {
    PrivateKey::from_seed(10_000 + seed)
}

/// Genesis accounts of `keys`, each funded with `balance`: for [`Setup::accounts`].
pub fn funded<'a>(
    keys: impl IntoIterator<Item = &'a PrivateKey>,
    balance: Amount,
) -> Vec<GenesisAccount> {
    keys.into_iter()
        .map(|key| GenesisAccount {
            address: address_to_hex(&key.public_key()),
            balance,
        })
        .collect()
}

/// A deterministic runtime seeded with `seed` that fails a simulation still running after
/// ten simulated minutes.
pub fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::default()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600))),
    )
}

/// Blocks per epoch in simulations: short, so that every test crosses epoch boundaries.
pub const EPOCH_LENGTH: u64 = 20;

/// A genesis for `n` validators with the faucet funded with a million EXO.
pub fn genesis(n: usize) -> Genesis {
    Genesis {
        chain_id: CHAIN_ID.into(),
        params: Params {
            epoch_length: EPOCH_LENGTH,
            ..Params::default()
        },
        accounts: vec![GenesisAccount {
            address: address_to_hex(&faucet_key().public_key()),
            balance: Amount::from_exo(1_000_000),
        }],
        validators: (0..n)
            .map(|i| address_to_hex(&validator_key(i).public_key()))
            .collect(),
    }
}

/// The fee test transactions pay unless they say otherwise.
pub const FEE: Amount = Amount(1_000);

/// `action` of `from` at `nonce`, paying `fee`, signed.
pub fn signed_with_fee(from: &PrivateKey, nonce: u64, action: Action, fee: Amount) -> SignedTx {
    UnsignedTx {
        chain_id: CHAIN_ID.into(),
        sender: from.public_key(),
        nonce,
        fee,
        action,
    }
    .sign(from)
}

/// `action` of `from` at `nonce`, paying [`FEE`], signed.
pub fn signed(from: &PrivateKey, nonce: u64, action: Action) -> SignedTx {
    signed_with_fee(from, nonce, action, FEE)
}

/// A signed transfer paying `fee`.
pub fn transfer_with_fee(
    from: &PrivateKey,
    nonce: u64,
    to: &Address,
    amount: Amount,
    fee: Amount,
) -> SignedTx {
    let action = Action::Transfer {
        to: to.clone(),
        amount,
    };
    signed_with_fee(from, nonce, action, fee)
}

/// A signed transfer.
pub fn transfer(from: &PrivateKey, nonce: u64, to: &Address, amount: Amount) -> SignedTx {
    transfer_with_fee(from, nonce, to, amount, FEE)
}

struct Member {
    key: PrivateKey,
    task: Option<Handle<()>>,
    handle: Option<ValidatorHandle<deterministic::Context>>,
}

/// A simulated cluster of validators.
pub struct Cluster {
    context: deterministic::Context,
    oracle: Oracle<ed25519::PublicKey, deterministic::Context>,
    genesis: Arc<Genesis>,
    members: Vec<Member>,
    restarts: usize,
    mempool: MempoolLimits,
    /// The faults each validator plays, by index; missing ones play none.
    faults: Vec<Faults>,
    /// The validators' consensus timeouts and block pacing.
    timeouts: Timeouts,
}

/// How a simulated cluster departs from the default: what [`Cluster::start_with`] takes.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub mempool: MempoolLimits,
    /// The genesis parameters; the default [`genesis`]'s when `None`.
    pub params: Option<Params>,
    /// The faults each validator plays, by index; missing ones play none.
    pub faults: Vec<Faults>,
    /// Nodes started besides the genesis validators, with fresh keys (indices `n..n +
    /// newcomers`, keys [`validator_key`]): they follow the chain and can register as
    /// validator candidates.
    pub newcomers: usize,
    /// Nodes with fresh keys after the newcomers (indices `n + newcomers..`), linked to the
    /// others but not started: [`Cluster::start_validator`] starts one later from empty
    /// storage, as a node joining a running chain. The network delivers to it only while it is
    /// in a tracked peer set: the first one, until later epochs' sets push it out, and those
    /// that name it once it has registered.
    pub late_newcomers: usize,
    /// Genesis validators (the last ones) replaced by equivocators that sign conflicting votes.
    pub equivocators: usize,
    /// Accounts funded at genesis besides the faucet.
    pub accounts: Vec<GenesisAccount>,
    /// The minimum block interval a leader with work gathers for ([`Timeouts::min_block`]);
    /// zero, the engine's default, proposes as soon as there is work.
    pub min_block: Duration,
}

impl Cluster {
    /// Starts `n` validators, all linked, with `byzantine` of them (the last ones) replaced by
    /// equivocators that sign conflicting votes, and returns once height 1 is finalized.
    pub async fn start(context: deterministic::Context, n: usize, byzantine: usize) -> Self {
        let setup = Setup {
            equivocators: byzantine,
            ..Setup::default()
        };
        Self::start_with(context, n, setup).await
    }

    /// Starts `n` honest validators whose mempools have `limits`.
    pub async fn start_with_mempool(
        context: deterministic::Context,
        n: usize,
        limits: MempoolLimits,
    ) -> Self {
        Self::start_with(
            context,
            n,
            Setup {
                mempool: limits,
                ..Setup::default()
            },
        )
        .await
    }

    /// Starts `n` validators as `setup` says.
    pub async fn start_with(context: deterministic::Context, n: usize, setup: Setup) -> Self {
        let byzantine = setup.equivocators;
        let mut genesis = genesis(n);
        if let Some(params) = setup.params {
            genesis.params = params;
        }
        genesis.accounts.extend(setup.accounts);
        let genesis = Arc::new(genesis);
        let started = n + setup.newcomers;
        let total = started + setup.late_newcomers;
        let keys: Vec<PrivateKey> = (0..total).map(validator_key).collect();
        // Every node is in the first peer set, as if it had been given the others' addresses;
        // from then on the validators announce each epoch's peers, which keep the candidates.
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: engine::max_message_size(total as u32),
                // Inbound buffers are sized by peers per set x sets x quota burst: a few
                // small sets (simulated clusters stay under 16 nodes) keep them below what one
                // set of 64 once took.
                max_peers_per_set: NZUsize!(16),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(3),
            },
            keys.iter().map(|k| k.public_key()),
        )
        .await;
        network.start();
        let mut cluster = Self {
            context,
            oracle,
            genesis,
            members: keys
                .into_iter()
                .map(|key| Member {
                    key,
                    task: None,
                    handle: None,
                })
                .collect(),
            restarts: 0,
            mempool: setup.mempool,
            faults: setup.faults,
            timeouts: Timeouts {
                min_block: setup.min_block,
                ..Timeouts::default()
            },
        };
        for a in 0..total {
            for b in 0..total {
                if a != b {
                    cluster.link(a, b).await;
                }
            }
        }
        for i in 0..started {
            if (n - byzantine..n).contains(&i) {
                cluster.start_equivocator(i).await;
            } else {
                cluster.start_validator(i).await;
            }
        }
        // Genesis accounts exist in state once the first block is finalized; admission reads
        // them from there.
        cluster.wait_for_height(1, Duration::from_secs(60)).await;
        cluster
    }

    async fn link(&self, a: usize, b: usize) {
        let link = Link {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(3),
            success_rate: commonware_utils::probability!(1.0),
        };
        let _ = self
            .oracle
            .add_link(
                self.members[a].key.public_key(),
                self.members[b].key.public_key(),
                link,
            )
            .await;
    }

    async fn channels(
        &self,
        i: usize,
    ) -> Channels<
        simulated::Sender<ed25519::PublicKey, deterministic::Context>,
        simulated::Receiver<ed25519::PublicKey>,
    > {
        let control = self.oracle.control(self.members[i].key.public_key());
        let mut pairs = Vec::new();
        for ch in engine::channel::ALL {
            pairs.push(control.register(ch, QUOTA).await.expect("register channel"));
        }
        Channels::from_ordered(pairs).expect("all channels")
    }

    /// Starts (or restarts, from its storage) validator `i`.
    pub async fn start_validator(&mut self, i: usize) {
        let channels = self.channels(i).await;
        let config = ValidatorConfig {
            signer: self.members[i].key.clone(),
            genesis: self.genesis.clone(),
            partition_prefix: format!("validator-{i}"),
            mempool: self.mempool,
            timeouts: self.timeouts,
            retained_blocks: 1_024,
            faults: self.faults.get(i).copied().unwrap_or_default(),
        };
        let peers = self.oracle.manager();
        let peer_sets = KeyOnly(self.oracle.manager());
        let blocker = self.oracle.control(self.members[i].key.public_key());
        let (tx, rx) = oneshot::channel();
        let run = self.restarts;
        self.restarts += 1;
        let context = self
            .context
            .child("validator")
            .with_attribute("index", i)
            .with_attribute("run", run);
        let task = context.spawn(move |ctx| async move {
            let handle = engine::start(ctx, config, peers, peer_sets, blocker, channels)
                .await
                .expect("validator starts");
            let _ = tx.send(handle);
            futures::future::pending::<()>().await;
        });
        self.members[i].task = Some(task);
        self.members[i].handle = Some(rx.await.expect("validator handle"));
    }

    async fn start_equivocator(&mut self, i: usize) {
        let channels = self.channels(i).await;
        let committee = engine::committee(&self.genesis).expect("committee");
        let scheme = Scheme::signer(CONSENSUS_NAMESPACE, committee, self.members[i].key.clone())
            .expect("member");
        let equivocator = conflicter::Conflicter::<_, _, Sha256>::new(
            self.context.child("equivocator").with_attribute("index", i),
            conflicter::Config { scheme },
        );
        // Votes travel on per-epoch subchannels; the equivocator speaks in epoch 0.
        let (mux, mut handle) = Muxer::new(
            self.context
                .child("equivocator_mux")
                .with_attribute("index", i),
            channels.votes.0,
            channels.votes.1,
        );
        mux.start();
        let votes = handle.register(0).await.expect("epoch 0 votes");
        self.members[i].task = Some(equivocator.start(votes));
    }

    /// Replaces validator `i` with a peer that only gossips `message` to the others on the
    /// mempool channel, every `every`, as a byzantine validator could.
    pub async fn start_gossip_spammer(&mut self, i: usize, message: Vec<u8>, every: Duration) {
        let channels = self.channels(i).await;
        let (mut sender, _receiver) = channels.mempool;
        let task = self
            .context
            .child("gossip_spammer")
            .with_attribute("index", i)
            .spawn(move |ctx| async move {
                loop {
                    sender.send(Recipients::All, message.clone(), false);
                    ctx.sleep(every).await;
                }
            });
        self.members[i].task = Some(task);
    }

    /// The peers validator `i` has blocked.
    pub async fn blocked_by(&self, i: usize) -> Vec<ed25519::PublicKey> {
        let me = self.members[i].key.public_key();
        self.oracle
            .blocked()
            .await
            .expect("network runs")
            .into_iter()
            .filter(|(from, _)| *from == me)
            .map(|(_, to)| to)
            .collect()
    }

    /// Validator `i`'s public key.
    pub fn public_key(&self, i: usize) -> ed25519::PublicKey {
        self.members[i].key.public_key()
    }

    /// Stops validator `i` as a crash would: its tasks end, its storage stays.
    pub async fn crash(&mut self, i: usize) {
        self.members[i].handle = None;
        if let Some(mut task) = self.members[i].task.take() {
            task.abort();
            let _ = (&mut task).await;
        }
        // Give aborted children a moment to drop their storage handles.
        self.context.sleep(Duration::from_millis(10)).await;
    }

    /// Cuts every link between `group` and the rest.
    pub async fn partition(&self, group: &[usize]) {
        for a in 0..self.members.len() {
            for b in 0..self.members.len() {
                if group.contains(&a) != group.contains(&b) {
                    let _ = self
                        .oracle
                        .remove_link(
                            self.members[a].key.public_key(),
                            self.members[b].key.public_key(),
                        )
                        .await;
                }
            }
        }
    }

    /// Restores every link.
    pub async fn heal(&self) {
        for a in 0..self.members.len() {
            for b in 0..self.members.len() {
                if a != b {
                    let _ = self
                        .oracle
                        .remove_link(
                            self.members[a].key.public_key(),
                            self.members[b].key.public_key(),
                        )
                        .await;
                    self.link(a, b).await;
                }
            }
        }
    }

    pub fn validator(&self, i: usize) -> &ValidatorHandle<deterministic::Context> {
        self.members[i]
            .handle
            .as_ref()
            .expect("validator is running")
    }

    /// Indices of running honest validators.
    pub fn running(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| self.members[*i].handle.is_some())
            .collect()
    }

    pub fn status(&self, i: usize) -> ChainStatus {
        self.validator(i).events.status()
    }

    /// Waits until every running validator has finalized `height`, or panics after `limit`
    /// of simulated time.
    pub async fn wait_for_height(&self, height: u64, limit: Duration) {
        let deadline = self.context.current() + limit;
        loop {
            if self
                .running()
                .iter()
                .all(|i| self.status(*i).finalized_height >= height)
            {
                return;
            }
            if self.context.current() > deadline {
                let heights: Vec<u64> = self
                    .running()
                    .iter()
                    .map(|i| self.status(*i).finalized_height)
                    .collect();
                panic!("validators did not reach height {height}: {heights:?}");
            }
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }

    /// Validator `i`'s finalized block at `height`; panics when it has none.
    pub async fn block(&self, i: usize, height: u64) -> exo_chain::Block {
        self.validator(i)
            .blocks
            .by_height(height)
            .await
            .unwrap_or_else(|| panic!("validator {i} has no finalized block at {height}"))
    }

    /// A record of validator `i`'s finalized state.
    pub async fn read<T: Record>(&self, i: usize, query: Query<T>) -> Option<T> {
        let value = self
            .validator(i)
            .state
            .get(&query.key)
            .await
            .expect("state read");
        query
            .decode(value.as_deref())
            .unwrap_or_else(|fault| panic!("{fault}"))
    }

    /// The finalized balance of `address` on validator `i`.
    pub async fn balance(&self, i: usize, address: &Address) -> Amount {
        self.read(i, bank::queries::account(address))
            .await
            .unwrap_or_default()
            .balance
    }

    /// The number of consensus faults recorded in validator `i`'s finalized state.
    pub async fn evidence_count(&self, i: usize) -> u64 {
        self.read(i, exec::queries::meta())
            .await
            .map_or(0, |m| m.evidence_count)
    }

    /// The runtime's fingerprint of everything that happened so far.
    pub fn auditor_state(&self) -> String {
        self.context.auditor().state()
    }

    /// The simulated time now.
    pub fn now(&self) -> std::time::SystemTime {
        self.context.current()
    }

    /// Sleeps in simulated time.
    pub async fn sleep(&self, duration: Duration) {
        self.context.sleep(duration).await;
    }
}
