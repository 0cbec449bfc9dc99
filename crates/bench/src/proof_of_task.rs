//! Proof of task under attack, on the real ledger and without a network.
//!
//! [`run`] executes blocks with `exo_ledger`'s block runner over a [`MemoryChain`] (as the
//! chain would, one block at a time),
//! with simulated providers that behave like the worker: register, keep an offer on the book
//! (posted again before it expires, so it carries their current reputation), commit each
//! assigned replica in the block after the assignment, and reveal once reveals open. Honest
//! providers claim a unit's true result; the others misbehave as [`Misbehave`] says. Units need
//! no sandbox: the true digest of a unit is `BLAKE3(job, unit)` and its fuel is derived from
//! the same hash.
//!
//! The report counts accepted units whose result is not the true one, replicas per unit, and
//! checks that tokens are conserved: every balance, plus every pot (the providers' bonds, the
//! escrow jobs still hold), plus what slashing burnt, equals the genesis supply.

use commonware_cryptography::Signer;
use exo_ledger::{
    Account, BlockEnv, BlockInput, Genesis, GenesisAccount, MemoryChain, Params, Policy,
    Signatures, TxStatus,
    modules::{
        bank,
        market::{
            MarketParams, keys,
            records::{
                IdList, Job, JobState, OwnerIndex, Provider, ReplicaStatus, Unit, UnitState,
                WorkCount, WorkItem,
            },
            weight,
        },
    },
    state::{Key, Namespace, Record, decode},
};
use exo_types::{
    Action, Address, Amount, Hash32, JobSpec, MAX_RESULTS_PER_TX, PrivateKey, SignedTx, UnsignedTx,
    address_to_hex,
    exo_market::{DeviceClass, Requirements, Resources, Runtime, RuntimeSet},
};
use exo_worker::commit::{Misbehave, Sealed};
use std::collections::BTreeMap;

const CHAIN: &str = "exo-sim";
/// Fuel limit of every simulated unit.
const FUEL_LIMIT: u64 = 1_000_000;

/// How a simulated provider behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// As the worker misbehaves. [`Misbehave::WrongResult`] liars all commit BLAKE3 of the true
    /// digest, so two of them on one unit agree: they collude.
    Worker(Misbehave),
    /// Commits a wrong digest of its own (BLAKE3 of the true digest and its address): liars
    /// that do not collude.
    IndependentLiar,
}

impl Behaviour {
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Worker(m) => m.name(),
            Behaviour::IndependentLiar => "independent-liar",
        }
    }

    fn claim(self, address: &Address, digest: Hash32, fuel: u64) -> Option<(Hash32, u64)> {
        match self {
            Behaviour::Honest => Some((digest, fuel)),
            Behaviour::Worker(m) => Misbehave::claim(Some(m), digest, fuel),
            Behaviour::IndependentLiar => {
                let mut h = blake3::Hasher::new();
                h.update(&digest);
                h.update(address.as_ref());
                Some((*h.finalize().as_bytes(), fuel))
            }
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub honest: u32,
    /// Misbehaving providers of each kind.
    pub misbehaving: Vec<(Behaviour, u32)>,
    pub jobs: u32,
    pub units_per_job: u32,
    /// The jobs' trust level.
    pub trust: u8,
    /// The jobs' minimum provider reputation.
    pub min_reputation: u32,
    /// Slots of each provider's offer.
    pub slots: u32,
    /// Seconds of block time an offer lives; providers post a new one when a fifth is left.
    pub offer_lifetime_secs: u64,
    pub params: Params,
    /// Seeds block seeds (audits), the order of transactions in blocks and salts.
    pub seed: u64,
    /// Stop after this many blocks even if jobs are still open.
    pub max_blocks: u64,
    /// Most reveals in one transaction (the worker sends up to `MAX_RESULTS_PER_TX`; stale
    /// entries, whose unit another reveal settled in the same block, are skipped).
    pub reveal_batch: usize,
    /// Each provider's bond. The worker registers with ten times the minimum, so that one
    /// slashing does not take it off the market: a caught liar is then kept off by the
    /// reputation floor, not by its bond.
    pub bond: Amount,
    /// Misbehaving providers ask half the honest price, so the matcher serves them first.
    pub cheap_misbehavers: bool,
}

impl SimConfig {
    /// `units` units in jobs of 100 over `providers` providers, a fraction `liars` of which
    /// lie as `liar` does, at trust `trust`.
    pub fn liars(providers: u32, liars: f64, liar: Behaviour, units: u32, trust: u8) -> Self {
        let bad = (f64::from(providers) * liars).round() as u32;
        let per_job = units.clamp(1, 100);
        Self {
            honest: providers - bad,
            misbehaving: vec![(liar, bad)],
            jobs: units.div_ceil(per_job),
            units_per_job: per_job,
            trust,
            min_reputation: 0,
            slots: 4,
            offer_lifetime_secs: 50,
            params: Params {
                market: MarketParams {
                    commit_window_secs: 4,
                    reveal_window_secs: 4,
                    // The simulated units are tiny (about half of a 1M-fuel limit, 0.0005 EXO
                    // at the honest price): a confirmation earns its full reputation at what
                    // one unit pays here, as a real unit's does at the default value.
                    reputation_full_value: Amount(
                        Amount::from_exo(1).0 * u128::from(FUEL_LIMIT / 2)
                            / u128::from(exo_market::FUEL_PER_UNIT),
                    ),
                    ..MarketParams::default()
                },
                ..Params::default()
            },
            seed: 1,
            max_blocks: 5_000,
            reveal_batch: MAX_RESULTS_PER_TX,
            bond: Amount(MarketParams::default().min_provider_bond.0 * 10),
            cheap_misbehavers: false,
        }
    }
}

/// Per kind of provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    pub providers: u32,
    pub valid: u64,
    pub invalid: u64,
    pub missed: u64,
    /// Mean final reputation.
    pub reputation: u32,
    /// Providers that ended trusted (weight 2).
    pub trusted: u32,
    /// Balance change of the kind's providers, bonds included (may be negative).
    pub earned: i128,
}

/// What a simulation measured.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub units: u64,
    pub accepted: u64,
    pub failed: u64,
    /// Units never finished within `max_blocks`.
    pub unfinished: u64,
    /// Accepted units whose accepted digest or fuel is not the true one.
    pub bad_accepted: u64,
    /// Replicas assigned, over all units (no-shows and replacements included).
    pub replicas: u64,
    pub blocks: u64,
    /// Transactions the ledger rejected.
    pub rejected_txs: u64,
    pub genesis_supply: u128,
    /// Balances + bonds + escrow held + slashed at the end.
    pub accounted: u128,
    pub slashed: u128,
    /// The ledger's own supply figure (genesis supply less what was burnt).
    pub supply: u128,
    /// By kind name (`honest`, `wrong-result`, ...).
    pub kinds: BTreeMap<String, KindStats>,
}

impl SimReport {
    /// Whether every token is accounted for, and the ledger's own supply figure agrees.
    pub fn conserved(&self) -> bool {
        self.genesis_supply == self.accounted && self.supply + self.slashed == self.genesis_supply
    }

    pub fn replicas_per_unit(&self) -> f64 {
        self.replicas as f64 / self.units.max(1) as f64
    }

    /// Bad units accepted per 10,000 units.
    pub fn bad_per_10k(&self) -> f64 {
        self.bad_accepted as f64 * 10_000.0 / self.units.max(1) as f64
    }
}

/// The true result of a unit.
pub fn true_result(job: u64, unit: u32) -> (Hash32, u64) {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&job.to_be_bytes());
    bytes[8..].copy_from_slice(&unit.to_be_bytes());
    let digest = *blake3::hash(&bytes).as_bytes();
    let fuel = FUEL_LIMIT / 2 + u64::from(u16::from_be_bytes([digest[0], digest[1]]));
    (digest, fuel)
}

/// splitmix64: a small deterministic generator for the simulation's choices.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn hash32(&mut self) -> Hash32 {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

struct SimProvider {
    key: PrivateKey,
    address: Address,
    kind: Behaviour,
    id: Option<u64>,
    offer_expiry: u64,
    sealed: BTreeMap<(u64, u32, u32), Sealed>,
    start_balance: u128,
}

struct Chain {
    chain: MemoryChain,
    proposer: Address,
    rejected: u64,
}

impl Chain {
    fn get<T: Record>(&self, key: &Key) -> Option<T> {
        self.chain.get(key)
    }

    fn account(&self, address: &Address) -> Account {
        self.chain.account(address)
    }

    fn height(&self) -> u64 {
        self.chain.height
    }

    /// The time of the next block, in seconds: the one that will carry what is sent now.
    fn next_secs(&self) -> u64 {
        self.chain.next_time_ms() / 1_000
    }

    fn block(&mut self, txs: &[SignedTx], seed: Hash32) {
        let height = self.chain.height + 1;
        let outcome = self
            .chain
            .run(BlockInput {
                env: BlockEnv {
                    height,
                    time_ms: self.chain.next_time_ms(),
                    proposer: self.proposer.clone(),
                    skipped_leaders: Vec::new(),
                    seed,
                },
                evidence: Vec::new(),
                txs: txs.to_vec(),
                // Signatures are made by the simulation itself: skip verifying them.
                signatures: Signatures::Trusted,
                policy: Policy::Verify,
            })
            .unwrap_or_else(|fault| panic!("the ledger stopped: {fault}"));
        self.rejected += outcome
            .receipts
            .iter()
            .flatten()
            .filter(|r| matches!(r.status, TxStatus::Rejected(_)))
            .count() as u64;
    }
}

fn tx(key: &PrivateKey, nonce: u64, fee: Amount, action: Action) -> SignedTx {
    UnsignedTx {
        chain_id: CHAIN.into(),
        sender: key.public_key(),
        nonce,
        fee,
        action,
    }
    .sign(key)
}

fn resources() -> Resources {
    Resources {
        cores: 8,
        cpu_score: 1_000_000_000,
        memory_mib: 16_384,
        gpu: None,
        class: DeviceClass::Server,
        region: "sim".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    }
}

/// Runs the simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut rng = Rng(cfg.seed);
    let requester = PrivateKey::from_seed(1);
    let developer = PrivateKey::from_seed(2);
    let proposer = PrivateKey::from_seed(3);
    let provider_funds = Amount::from_exo(1_000).0;
    let requester_funds = Amount::from_exo(1_000_000_000).0;
    let mut providers: Vec<SimProvider> = Vec::new();
    let kinds = std::iter::repeat_n(Behaviour::Honest, cfg.honest as usize).chain(
        cfg.misbehaving
            .iter()
            .flat_map(|(m, n)| std::iter::repeat_n(*m, *n as usize)),
    );
    for (i, kind) in kinds.enumerate() {
        let key = PrivateKey::from_seed(1_000 + i as u64);
        providers.push(SimProvider {
            address: key.public_key(),
            key,
            kind,
            id: None,
            offer_expiry: 0,
            sealed: BTreeMap::new(),
            start_balance: provider_funds,
        });
    }
    // Interleave kinds so that registration order (and so provider ids) says nothing.
    rng.shuffle(&mut providers);
    let mut accounts = vec![
        GenesisAccount {
            address: address_to_hex(&requester.public_key()),
            balance: Amount(requester_funds),
        },
        GenesisAccount {
            address: address_to_hex(&developer.public_key()),
            balance: Amount::from_exo(1),
        },
    ];
    for p in &providers {
        accounts.push(GenesisAccount {
            address: address_to_hex(&p.address),
            balance: Amount(provider_funds),
        });
    }
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params: cfg.params.clone(),
        accounts,
        validators: vec![address_to_hex(&proposer.public_key())],
    };
    let genesis_supply: u128 = genesis
        .accounts()
        .unwrap_or_else(|e| panic!("simulation genesis: {e}"))
        .iter()
        .map(|(_, b)| b.0)
        .sum();
    let fee = cfg.params.min_fee;
    let mut chain = Chain {
        chain: MemoryChain::new(genesis),
        proposer: proposer.public_key(),
        rejected: 0,
    };
    let block_seed = |height: u64| {
        let mut h = blake3::Hasher::new();
        h.update(&cfg.seed.to_le_bytes());
        h.update(&height.to_le_bytes());
        *h.finalize().as_bytes()
    };

    // Block 1: providers register, the developer publishes the app.
    let app: Hash32 = *blake3::hash(b"simulated app").as_bytes();
    let mut txs = vec![tx(
        &developer,
        0,
        fee,
        Action::PublishApp {
            module_hash: app,
            name: "sim".into(),
            version: "1".into(),
            royalty_per_unit: Amount(1_000),
        },
    )];
    for p in &providers {
        txs.push(tx(
            &p.key,
            0,
            fee,
            Action::RegisterProvider {
                resources: resources(),
                bond: cfg.bond,
            },
        ));
    }
    chain.block(&txs, block_seed(1));
    for p in providers.iter_mut() {
        let key = keys::owner_key(&p.address);
        p.id = chain.get::<OwnerIndex>(&key).map(|i| i.0);
    }

    // Block 2 on: the requester submits the jobs while providers work.
    let spec = JobSpec {
        app,
        app_developer: developer.public_key(),
        inputs: Vec::new(),
        unit_args: Vec::new(),
        units: cfg.units_per_job,
        requirements: Requirements {
            min_cores: 1,
            min_memory_mib: 1,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: None,
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: FUEL_LIMIT,
            min_reputation: cfg.min_reputation,
        },
        max_price_per_unit: Amount::from_exo(1),
        trust: cfg.trust,
    };
    let mut jobs_submitted = 0u32;
    let mut requester_nonce = 0u64;
    while chain.height() < cfg.max_blocks {
        let mut txs: Vec<SignedTx> = Vec::new();
        // Jobs go in as fast as the chain takes them.
        let open = chain
            .get::<IdList>(&keys::open_jobs_key())
            .map_or(0, |l| l.0.len() as u32);
        let room = cfg.params.market.max_open_jobs.saturating_sub(open);
        for _ in 0..room.min(cfg.jobs - jobs_submitted).min(100) {
            txs.push(tx(
                &requester,
                requester_nonce,
                fee,
                Action::SubmitJob(Box::new(spec.clone())),
            ));
            requester_nonce += 1;
            jobs_submitted += 1;
        }
        let mut order: Vec<usize> = (0..providers.len()).collect();
        rng.shuffle(&mut order);
        for i in order {
            txs.extend(provider_txs(&mut providers[i], &chain, cfg, fee, &mut rng));
        }
        let seed = block_seed(chain.height() + 1);
        chain.block(&txs, seed);
        let open = chain
            .get::<IdList>(&keys::open_jobs_key())
            .map_or(0, |l| l.0.len());
        if jobs_submitted == cfg.jobs && open == 0 {
            break;
        }
    }
    report(cfg, &chain, &providers, genesis_supply)
}

/// What one simulated provider sends this block.
fn provider_txs(
    p: &mut SimProvider,
    chain: &Chain,
    cfg: &SimConfig,
    fee: Amount,
    rng: &mut Rng,
) -> Vec<SignedTx> {
    let Some(id) = p.id else {
        return Vec::new();
    };
    let mut nonce = chain.account(&p.address).nonce;
    let mut out = Vec::new();
    let margin = (cfg.offer_lifetime_secs / 5).max(2);
    if chain.next_secs() + margin >= p.offer_expiry {
        let expiry = chain.next_secs() + cfg.offer_lifetime_secs;
        out.push(tx(
            &p.key,
            nonce,
            fee,
            Action::PostOffer {
                slots: cfg.slots,
                price_per_unit: if cfg.cheap_misbehavers && p.kind != Behaviour::Honest {
                    Amount(Amount::from_exo(1).0 / 2)
                } else {
                    Amount::from_exo(1)
                },
                expiry_secs: expiry,
            },
        ));
        nonce += 1;
        p.offer_expiry = expiry;
    }
    let count = chain
        .get::<WorkCount>(&keys::work_key(id))
        .unwrap_or_default()
        .0;
    let work: Vec<(u64, u32, u32)> = (0..count)
        .filter_map(|p| chain.get::<WorkItem>(&keys::work_item_key(id, p)))
        .map(|w| w.0)
        .collect();
    let mut commits = Vec::new();
    let mut reveals = Vec::new();
    p.sealed.retain(|slot, _| work.contains(slot));
    for (job, unit_index, replica_index) in work {
        let Some(unit) = chain.get::<Unit>(&keys::unit_key(job, unit_index)) else {
            continue;
        };
        let Some(replica) = unit.replicas.iter().find(|r| r.index == replica_index) else {
            continue;
        };
        let slot = (job, unit_index, replica_index);
        match replica.status {
            ReplicaStatus::Assigned => {
                if let Some(sealed) = p.sealed.get(&slot) {
                    // A commit in a batch refused whole is sent again.
                    commits.push(sealed.commit(&p.address));
                    continue;
                }
                let (digest, fuel) = true_result(job, unit_index);
                let claim = match p.kind {
                    Behaviour::Worker(Misbehave::Copy) => unit
                        .replicas
                        .iter()
                        .filter(|r| r.index != replica_index)
                        .find_map(|r| r.reveal),
                    kind => kind.claim(&p.address, digest, fuel),
                };
                if let Some((digest, fuel)) = claim {
                    let sealed = Sealed {
                        job,
                        unit: unit_index,
                        replica: replica_index,
                        digest,
                        fuel,
                        salt: rng.hash32(),
                    };
                    commits.push(sealed.commit(&p.address));
                    p.sealed.insert(slot, sealed);
                }
            }
            ReplicaStatus::Committed if unit.reveal_deadline.is_some() => {
                // Kept until the replica leaves the work list: a reveal in a batch refused
                // whole is sent again.
                if let Some(sealed) = p.sealed.get(&slot) {
                    reveals.push(sealed.reveal());
                }
            }
            _ => {}
        }
    }
    for chunk in commits.chunks(MAX_RESULTS_PER_TX) {
        out.push(tx(
            &p.key,
            nonce,
            fee,
            Action::CommitResults(chunk.to_vec()),
        ));
        nonce += 1;
    }
    for chunk in reveals.chunks(cfg.reveal_batch.clamp(1, MAX_RESULTS_PER_TX)) {
        out.push(tx(
            &p.key,
            nonce,
            fee,
            Action::RevealResults(chunk.to_vec()),
        ));
        nonce += 1;
    }
    out
}

fn report(
    cfg: &SimConfig,
    chain: &Chain,
    providers: &[SimProvider],
    genesis_supply: u128,
) -> SimReport {
    let mut r = SimReport {
        blocks: chain.height(),
        rejected_txs: chain.rejected,
        genesis_supply,
        ..SimReport::default()
    };
    let mut held = 0u128;
    for (key, value) in &chain.chain.store.entries {
        let table = |ns: Namespace, table: u8| key[0] == ns as u8 && key[1] == table;
        if table(Namespace::Bank, bank::Table::Account as u8) {
            held += decode::<Account>(value).map_or(0, |a| a.balance.0);
        } else if table(Namespace::Bank, bank::Table::Pot as u8) {
            held += decode::<bank::PotBalance>(value).map_or(0, |p| p.0.0);
        } else if table(Namespace::Market, keys::Table::Job as u8) {
            let Ok(job) = decode::<Job>(value) else {
                continue;
            };
            r.units += u64::from(job.units);
            for unit_index in 0..job.units {
                let Some(unit) = chain.get::<Unit>(&keys::unit_key(job.id, unit_index)) else {
                    if job.state == JobState::Open {
                        r.unfinished += 1;
                    } else {
                        r.failed += 1;
                    }
                    continue;
                };
                r.replicas += unit.replicas.len() as u64;
                match unit.state {
                    UnitState::Accepted => {
                        r.accepted += 1;
                        if unit.accepted != Some(true_result(job.id, unit_index)) {
                            r.bad_accepted += 1;
                        }
                    }
                    UnitState::Failed => r.failed += 1,
                    UnitState::Running => r.unfinished += 1,
                }
            }
        }
    }
    let supply: bank::Supply = chain.get(&bank::supply_key()).unwrap_or_default();
    r.slashed = supply.burnt.0;
    r.supply = supply.total.0;
    r.accounted = held + supply.burnt.0;
    for p in providers {
        let name = p.kind.name().to_string();
        let stats = r.kinds.entry(name).or_default();
        stats.providers += 1;
        let Some(id) = p.id else { continue };
        let Some(provider) = chain.get::<Provider>(&keys::provider_key(id)) else {
            continue;
        };
        stats.valid += provider.valid;
        stats.invalid += provider.invalid;
        stats.missed += provider.missed;
        stats.reputation += provider.reputation;
        if weight(&cfg.params.market, &provider) >= 2 {
            stats.trusted += 1;
        }
        let now = chain.account(&p.address).balance.0 + provider.bond.0;
        stats.earned += now as i128 - p.start_balance as i128;
    }
    for stats in r.kinds.values_mut() {
        stats.reputation /= stats.providers.max(1);
    }
    r
}

/// One row of the proof-of-task table.
#[derive(Clone, Debug)]
pub struct Row {
    pub liar: Behaviour,
    pub liars: f64,
    pub trust: u8,
    pub report: SimReport,
}

/// Runs `units` units over `providers` providers for each kind of liar, liar share and trust
/// level.
pub fn matrix(
    providers: u32,
    units: u32,
    kinds: &[Behaviour],
    liars: &[f64],
    trusts: &[u8],
    seed: u64,
) -> Vec<Row> {
    matrix_with(providers, units, kinds, liars, trusts, seed, &|_| {})
}

/// [`matrix`] with each configuration changed by `tweak` (parameters, job requirements).
pub fn matrix_with(
    providers: u32,
    units: u32,
    kinds: &[Behaviour],
    liars: &[f64],
    trusts: &[u8],
    seed: u64,
    tweak: &dyn Fn(&mut SimConfig),
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &liar in kinds {
        for &l in liars {
            for &trust in trusts {
                let mut cfg = SimConfig::liars(providers, l, liar, units, trust);
                cfg.seed = seed;
                tweak(&mut cfg);
                rows.push(Row {
                    liar,
                    liars: l,
                    trust,
                    report: run(&cfg),
                });
            }
        }
    }
    rows
}

/// The rows as a markdown table.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| liars | share | trust | units | accepted | failed | bad accepted | bad per 10,000 | replicas/unit | liars caught (invalid) | honest slashed (invalid) | blocks | conserved |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n",
    );
    for row in rows {
        let r = &row.report;
        let caught: u64 = r
            .kinds
            .iter()
            .filter(|(k, _)| k.as_str() != "honest")
            .map(|(_, s)| s.invalid)
            .sum();
        let honest = r.kinds.get("honest").map_or(0, |s| s.invalid);
        out.push_str(&format!(
            "| {} | {:.0}% | {} | {} | {} | {} | {} | {:.1} | {:.3} | {} | {} | {} | {} |\n",
            row.liar.name(),
            row.liars * 100.0,
            row.trust,
            r.units,
            r.accepted,
            r.failed + r.unfinished,
            r.bad_accepted,
            r.bad_per_10k(),
            r.replicas_per_unit(),
            caught,
            honest,
            r.blocks,
            if r.conserved() { "yes" } else { "NO" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_only_accepts_everything_and_conserves() {
        let mut cfg = SimConfig::liars(6, 0.0, Behaviour::IndependentLiar, 40, 2);
        cfg.units_per_job = 10;
        cfg.jobs = 4;
        let r = run(&cfg);
        assert_eq!(r.units, 40);
        assert_eq!(r.accepted, 40, "{r:?}");
        assert_eq!(r.bad_accepted, 0);
        assert!(r.conserved(), "{r:?}");
        assert_eq!(r.rejected_txs, 0, "{r:?}");
        assert!(r.replicas_per_unit() >= 2.0);
    }

    /// Reveals in batches: a stale entry is skipped, and a refused batch (whose settlements
    /// may have slashed someone) leaves no trace in the supply counters.
    #[test]
    fn batched_reveals_conserve_tokens() {
        let mut cfg = SimConfig::liars(20, 0.3, Behaviour::Worker(Misbehave::WrongResult), 400, 2);
        cfg.reveal_batch = MAX_RESULTS_PER_TX;
        let r = run(&cfg);
        assert!(r.conserved(), "{r:?}");
    }
}
