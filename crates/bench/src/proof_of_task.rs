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
//! Strategic agents ([`Behaviour::Sleeper`] and the others) plan: they belong to one
//! operator, which knows its own providers and shares their results off chain, and they decide
//! from what the chain shows a worker, never from hidden state. [`strategic_matrix`] runs them
//! alone and mixed over several seeds and reports their profit against honest work.
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
                Holdings, IdList, Job, JobState, OwnerIndex, Provider, Replica, ReplicaStatus,
                Unit, UnitState, WorkCount, WorkItem,
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
use std::collections::{BTreeMap, BTreeSet};

const CHAIN: &str = "exo-sim";
/// Fuel limit of every simulated unit.
const FUEL_LIMIT: u64 = 1_000_000;

/// How a simulated provider behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// As the worker misbehaves. [`Misbehave::WrongResult`] liars all commit BLAKE3 of the true
    /// digest, so two of them on one unit agree: they collude. [`Misbehave::LieWhenAlone`]
    /// lies that way on a unit that shows no other replica when it commits.
    Worker(Misbehave),
    /// Commits a wrong digest of its own (BLAKE3 of the true digest and its address): liars
    /// that do not collude.
    IndependentLiar,
    /// Strategic agents: every one of them in a run belongs to one operator, which knows its
    /// own providers and shares their results off chain ([`Adversary`]). They act only on
    /// what the chain shows a worker (unit records, seals, reveals, their own provider
    /// record), never on hidden state such as whether a unit will be audited.
    ///
    /// Farms a record, then lies. Its operator's own requester account funds jobs that only
    /// its providers can take (a requirement no other provider meets), and the sleepers
    /// confirm each other on them; meanwhile it works honestly for everyone else. Once
    /// trusted (weight 2), it lies on every unit that shows no replica but the operator's.
    Sleeper,
    /// Lies on every unit that shows no replica but the operator's, and once reveals open
    /// withholds its reveal when the seals show that it would lose (another result has at
    /// least as many replicas as its own).
    Withholder,
    /// Runs honestly, except when it is handed a dispute's deciding replica: then it runs
    /// nothing and commits what the operator's replica on the unit claimed, or failing that a
    /// result another replica already revealed. When it sees neither (disputes are decided
    /// blind: a seal cannot be opened by whoever copies it) it runs the unit.
    DisputeCopier,
    /// Lies on every unit that shows no replica but the operator's; once caught (below the
    /// matching floor) it retires as soon as nothing runs, moves its funds to a fresh
    /// address and registers again, shedding its reputation.
    SybilChurner,
    /// Runs every unit, and on a unit that shows no replica but the operator's claims the
    /// job's whole fuel limit instead of the fuel the run burnt.
    FuelInflater,
}

impl Behaviour {
    /// The strategic agents, in the order of the table.
    pub const STRATEGIC: [Behaviour; 5] = [
        Behaviour::Sleeper,
        Behaviour::Withholder,
        Behaviour::DisputeCopier,
        Behaviour::SybilChurner,
        Behaviour::FuelInflater,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Worker(m) => m.name(),
            Behaviour::IndependentLiar => "independent-liar",
            Behaviour::Sleeper => "sleeper",
            Behaviour::Withholder => "withholder",
            Behaviour::DisputeCopier => "dispute-copier",
            Behaviour::SybilChurner => "sybil-churner",
            Behaviour::FuelInflater => "fuel-inflater",
        }
    }

    /// Parses a name as [`Behaviour::name`] prints it.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().replace('_', "-");
        Self::STRATEGIC
            .into_iter()
            .chain([Behaviour::Honest, Behaviour::IndependentLiar])
            .find(|b| b.name() == text)
            .or_else(|| Misbehave::parse(&text).map(Behaviour::Worker))
    }

    /// Whether the provider belongs to the strategic operator.
    pub fn is_strategic(self) -> bool {
        Self::STRATEGIC.contains(&self)
    }

    /// What a provider that does not plan claims for a run that gave (`digest`, `fuel`).
    fn claim(self, address: &Address, digest: Hash32, fuel: u64) -> Option<(Hash32, u64)> {
        match self {
            Behaviour::Worker(m) => Misbehave::claim(Some(m), digest, fuel),
            Behaviour::IndependentLiar => {
                let mut h = blake3::Hasher::new();
                h.update(&digest);
                h.update(address.as_ref());
                Some((*h.finalize().as_bytes(), fuel))
            }
            _ => Some((digest, fuel)),
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
    /// Units of each job the strategic operator's own requester submits for its providers
    /// alone while one of its sleepers is not yet trusted (one such job open at a time; 0:
    /// no farming).
    pub farm_units: u32,
    /// What running a unit costs its provider, in basis points of what the honest price
    /// pays for the unit's fuel. Not a chain transfer: the report subtracts it from what a
    /// provider earned, so that a lie (which runs nothing) saves it.
    pub compute_cost_bps: u32,
    /// A market in steady state: the honest providers earn trusted records first, by honest
    /// work for a requester of their own over `trusted_min_age_secs` of block time (not
    /// counted: [`warm_up`]), and the strategic operator's providers register afterwards, as
    /// newcomers. Otherwise every provider registers in the first block (a new market).
    pub established: bool,
    /// In an established market, the operator's providers take part in the warm-up too, and
    /// honestly (no operator's agent lies before the counted run): an operator that served
    /// two weeks before turning, whose providers are trusted when it starts.
    pub operator_trusted: bool,
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
                    // An hour, not two weeks: like the windows, scaled to a run that lasts a
                    // minute or two of block time, and still far longer than one. (The pause
                    // of an established market's warm-up is caught up by the deadline
                    // processor 64 seconds a block, so two weeks would cost 19,000 blocks.)
                    trusted_min_age_secs: 3_600,
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
            farm_units: 20,
            compute_cost_bps: 5_000,
            established: false,
            operator_trusted: false,
        }
    }

    /// `units` units over `providers` providers, a fraction `share` of which belong to one
    /// strategic operator whose providers are split evenly among `strategies` (the first
    /// ones take what does not divide), at trust `trust`, in an established market: the
    /// honest providers are trusted when the operator's register.
    pub fn strategic(
        providers: u32,
        share: f64,
        strategies: &[Behaviour],
        units: u32,
        trust: u8,
    ) -> Self {
        let mut cfg = Self::liars(providers, share, Behaviour::Honest, units, trust);
        cfg.established = true;
        let bad = providers - cfg.honest;
        let kinds = u32::try_from(strategies.len()).unwrap_or(u32::MAX).max(1);
        cfg.misbehaving = strategies
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let extra = u32::from((i as u32) < bad % kinds);
                (*s, bad / kinds + extra)
            })
            .collect();
        cfg
    }
}

/// Per kind of provider. A provider that registered again under fresh addresses (a Sybil
/// churner) counts once, with the records of all its identities.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Whether the kind is one of the strategic operator's ([`Behaviour::is_strategic`]).
    pub strategic: bool,
    pub providers: u32,
    pub valid: u64,
    pub invalid: u64,
    pub missed: u64,
    /// Mean final reputation (of each provider's last identity).
    pub reputation: u32,
    /// Providers that ended trusted (weight 2).
    pub trusted: u32,
    /// Balance change of the kind's providers, bonds included (may be negative).
    pub earned: i128,
    /// Providers penalised at least once (a wrong or withheld result, or a missed commit).
    pub slashed: u32,
    /// What running their units cost them (`SimConfig::compute_cost_bps`).
    pub compute_cost: u128,
    /// Results committed that were not the unit's true (digest, fuel).
    pub lies: u64,
    /// Providers that committed at least one of those.
    pub liars: u32,
    /// Reveals withheld on purpose.
    pub withheld: u64,
    /// Results committed by copying instead of running.
    pub copied: u64,
    /// Replicas that decided a dispute, as their provider saw it when committing (the other
    /// replicas' seals disagreed, or one of them had revealed).
    pub deciding: u64,
    /// Identities registered, first ones included.
    pub identities: u32,
    /// Providers never penalised, and their profit ([`KindStats::profit`]'s terms).
    pub unpenalised: u32,
    pub unpenalised_profit: i128,
}

impl KindStats {
    /// What the kind's providers earned less what running their units cost them.
    pub fn profit(&self) -> i128 {
        self.earned - i128::try_from(self.compute_cost).unwrap_or(i128::MAX)
    }
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
    /// Units of the strategic operator's own farming jobs (not counted in `units`).
    pub farm_units: u64,
    /// Balance change of the operator's farming requester (fees and royalties it paid).
    pub farm_earned: i128,
    /// What each block cost the ledger to execute, in order.
    pub block_costs: Vec<BlockCost>,
    /// Blocks and units of the honest warm-up of an established market (not counted).
    pub warmup_blocks: u64,
    pub warmup_units: u64,
    /// Providers that served in the warm-up (the honest ones, and the operator's with
    /// [`SimConfig::operator_trusted`]) and were trusted when the counted work began.
    pub trusted_at_start: u32,
}

/// One block's execution by the in-memory ledger: wall-clock time (signatures are not
/// verified, the simulation made them), its transactions, and the store rounds the block
/// runner needed (each a trip to the store and a re-run of the piece of work that lacked keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCost {
    pub txs: usize,
    pub micros: u64,
    pub store_rounds: u32,
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

    /// The strategic operator's profit: what its providers earned less their compute cost,
    /// plus what its farming requester gained (it pays fees and royalties, so a loss).
    pub fn adversary_profit(&self) -> i128 {
        self.strategic().map(KindStats::profit).sum::<i128>() + self.farm_earned
    }

    /// What the operator's capacity would have earned honestly, measured in the same run:
    /// the mean profit of the honest providers that were never penalised, times the
    /// operator's number of providers (every provider offers the same slots at the same
    /// price). Honest providers slashed by colluders are left out: their loss is the
    /// adversary's doing, not what honest work earns (the table counts them apart).
    pub fn honest_profit_of_adversary_capacity(&self) -> i128 {
        let Some(honest) = self.kinds.get("honest").filter(|h| h.unpenalised > 0) else {
            return 0;
        };
        let adversary: u32 = self.strategic().map(|k| k.providers).sum();
        honest.unpenalised_profit * i128::from(adversary) / i128::from(honest.unpenalised)
    }

    /// How often the operator deviated from honest work: results it lied about or copied,
    /// and reveals it withheld.
    pub fn deviations(&self) -> u64 {
        self.strategic()
            .map(|k| k.lies + k.copied + k.withheld)
            .sum()
    }

    fn strategic(&self) -> impl Iterator<Item = &KindStats> {
        self.kinds.values().filter(|k| k.strategic)
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

/// A replica as a worker names it: (job, unit, replica index).
type Slot = (u64, u32, u32);

struct SimProvider {
    key: PrivateKey,
    address: Address,
    kind: Behaviour,
    id: Option<u64>,
    offer_expiry: u64,
    sealed: BTreeMap<Slot, Sealed>,
    start_balance: u128,
    /// Seed of the provider's first key; fresh identities are derived from it.
    key_seed: u64,
    /// Earlier identities (address, provider id) of a Sybil churner.
    past: Vec<(Address, Option<u64>)>,
    /// Whether the current identity sent its registration.
    registering: bool,
    compute_cost: u128,
    lies: u64,
    withheld: u64,
    copied: u64,
    deciding: u64,
}

impl SimProvider {
    fn new(key_seed: u64, kind: Behaviour, start_balance: u128) -> Self {
        let key = PrivateKey::from_seed(key_seed);
        Self {
            address: key.public_key(),
            key,
            kind,
            id: None,
            offer_expiry: 0,
            sealed: BTreeMap::new(),
            start_balance,
            key_seed,
            past: Vec::new(),
            registering: true,
            compute_cost: 0,
            lies: 0,
            withheld: 0,
            copied: 0,
            deciding: 0,
        }
    }
}

/// What the strategic operator knows off chain: which providers are its own and how each
/// plays, which of its sleepers are awake (trusted, read from their public provider
/// records), and what its providers claimed on each unit (shared among them).
#[derive(Default)]
struct Adversary {
    members: BTreeMap<u64, Behaviour>,
    awake: BTreeSet<u64>,
    claims: BTreeMap<(u64, u32), (Hash32, u64)>,
}

impl Adversary {
    fn is_member(&self, provider: u64) -> bool {
        self.members.contains_key(&provider)
    }

    /// Whether the operator lies on `unit`: it shows no live replica but the operator's, and
    /// at least one of them is a liar that is willing (a sleeper only once awake). Dispute
    /// copiers follow their partners.
    fn lies_on(&self, unit: &Unit) -> bool {
        let mut willing = false;
        for r in unit.replicas.iter().filter(|r| live(r)) {
            match self.members.get(&r.provider) {
                None => return false,
                Some(Behaviour::Sleeper) => {
                    if !self.awake.contains(&r.provider) {
                        return false;
                    }
                    willing = true;
                }
                Some(Behaviour::DisputeCopier) => {}
                Some(_) => willing = true,
            }
        }
        willing
    }

    /// The wrong result every colluder on `unit` commits, so that they agree: the whole fuel
    /// limit when only fuel inflaters (and copiers) lie there, else a wrong digest.
    fn lie(&self, unit: &Unit, digest: Hash32, fuel: u64) -> (Hash32, u64) {
        let inflaters_only = unit.replicas.iter().filter(|r| live(r)).all(|r| {
            matches!(
                self.members.get(&r.provider),
                Some(Behaviour::FuelInflater | Behaviour::DisputeCopier)
            )
        });
        if inflaters_only {
            (digest, FUEL_LIMIT)
        } else {
            (*blake3::hash(&digest).as_bytes(), fuel)
        }
    }
}

/// A replica that still counts on its unit: assigned, committed or revealed.
fn live(r: &Replica) -> bool {
    matches!(
        r.status,
        ReplicaStatus::Assigned | ReplicaStatus::Committed | ReplicaStatus::Revealed
    )
}

struct Chain {
    chain: MemoryChain,
    proposer: Address,
    rejected: u64,
    costs: Vec<BlockCost>,
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
        let started = std::time::Instant::now();
        let outcome = self
            .chain
            .run(BlockInput {
                env: BlockEnv {
                    height,
                    time_ms: self.chain.next_time_ms(),
                    proposer: self.proposer.clone(),
                    skipped_leaders: Vec::new(),
                    parent_voters: Vec::new(),
                    seed,
                },
                evidence: Vec::new(),
                txs: txs.to_vec(),
                // Signatures are made by the simulation itself: skip verifying them.
                signatures: Signatures::Trusted,
                policy: Policy::Verify,
            })
            .unwrap_or_else(|fault| panic!("the ledger stopped: {fault}"));
        self.costs.push(BlockCost {
            txs: txs.len(),
            micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            store_rounds: outcome.store_rounds,
        });
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

/// The region of the strategic operator's providers, which its farming jobs require: no
/// other provider can take them.
const FARM_REGION: &str = "own";

/// The price every simulated provider asks, per compute unit.
fn honest_price() -> Amount {
    Amount::from_exo(1)
}

fn resources(region: &str) -> Resources {
    Resources {
        cores: 8,
        cpu_score: 1_000_000_000,
        memory_mib: 16_384,
        gpu: None,
        class: DeviceClass::Server,
        region: region.into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    }
}

/// A job of `units` units for the simulated app.
fn job_spec(
    app: Hash32,
    developer: &Address,
    units: u32,
    trust: u8,
    region: Option<&str>,
) -> JobSpec {
    JobSpec {
        app,
        app_developer: developer.clone(),
        inputs: Vec::new(),
        unit_args: Vec::new(),
        units,
        requirements: Requirements {
            min_cores: 1,
            min_memory_mib: 1,
            min_cpu_score: 0,
            gpu: None,
            class: None,
            region: region.map(str::to_string),
            runtime: Runtime::Wasm32Wasip1,
            fuel_limit: FUEL_LIMIT,
            min_reputation: 0,
        },
        max_price_per_unit: honest_price(),
        trust,
    }
}

/// Runs the simulation.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut rng = Rng(cfg.seed);
    let requester = PrivateKey::from_seed(1);
    let developer = PrivateKey::from_seed(2);
    let proposer = PrivateKey::from_seed(3);
    let farmer = PrivateKey::from_seed(4);
    let warm_requester = PrivateKey::from_seed(5);
    let provider_funds = Amount::from_exo(1_000).0;
    let requester_funds = Amount::from_exo(1_000_000_000).0;
    let farm_funds = Amount::from_exo(1_000).0;
    let kinds = std::iter::repeat_n(Behaviour::Honest, cfg.honest as usize).chain(
        cfg.misbehaving
            .iter()
            .flat_map(|(m, n)| std::iter::repeat_n(*m, *n as usize)),
    );
    let mut providers: Vec<SimProvider> = kinds
        .enumerate()
        .map(|(i, kind)| SimProvider::new(1_000 + i as u64, kind, provider_funds))
        .collect();
    // Interleave kinds so that registration order (and so provider ids) says nothing.
    rng.shuffle(&mut providers);
    let farming = cfg.farm_units > 0 && providers.iter().any(|p| p.kind == Behaviour::Sleeper);
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
    if cfg.established {
        accounts.push(GenesisAccount {
            address: address_to_hex(&warm_requester.public_key()),
            balance: Amount(requester_funds),
        });
    }
    // Funded at genesis, the farming requester is tied to none of the operator's providers:
    // the operator that routes its funds through intermediaries.
    if farming {
        accounts.push(GenesisAccount {
            address: address_to_hex(&farmer.public_key()),
            balance: Amount(farm_funds),
        });
    }
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
        costs: Vec::new(),
    };
    let block_seed = |height: u64| {
        let mut h = blake3::Hasher::new();
        h.update(&cfg.seed.to_le_bytes());
        h.update(&height.to_le_bytes());
        *h.finalize().as_bytes()
    };

    // Block 1: providers register (in an established market, the honest ones only: the
    // operator's register once they are trusted), the developer publishes the app.
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
    for p in &mut providers {
        if cfg.established && !cfg.operator_trusted && p.kind.is_strategic() {
            // Registers as soon as the loop below runs it: its funds are there.
            p.registering = false;
        } else {
            txs.push(register(p, cfg, fee, 0));
        }
    }
    chain.block(&txs, block_seed(1));

    // Block 2 on: the requester submits the jobs while providers work.
    let spec = job_spec(
        app,
        &developer.public_key(),
        cfg.units_per_job,
        cfg.trust,
        None,
    );
    let mut farm_spec = job_spec(
        app,
        &developer.public_key(),
        cfg.farm_units,
        2,
        Some(FARM_REGION),
    );
    // Farming jobs outbid the honest requester's, so the matcher serves them first.
    farm_spec.max_price_per_unit = Amount(honest_price().0 * 2);
    let warm = if cfg.established {
        let warm = warm_up(
            &mut chain,
            cfg,
            &mut providers,
            &warm_requester,
            &spec,
            &mut rng,
            &block_seed,
        );
        // What the honest providers earned and spent so far is the warm-up's: they are
        // measured from here, as the operator's providers are.
        for p in providers.iter_mut() {
            let Some(id) = p.id else { continue };
            let bond = chain
                .get::<Provider>(&keys::provider_key(id))
                .map_or(0, |r| r.bond.0);
            p.start_balance = chain.account(&p.address).balance.0 + bond;
            p.compute_cost = 0;
            p.deciding = 0;
            (p.lies, p.withheld, p.copied) = (0, 0, 0);
        }
        Some(warm)
    } else {
        None
    };
    let mut jobs_submitted = 0u32;
    let mut requester_nonce = 0u64;
    let mut adversary = Adversary::default();
    let end = chain.height() + cfg.max_blocks;
    while chain.height() < end {
        let mut txs: Vec<SignedTx> = Vec::new();
        // Jobs go in as fast as the chain takes them: within the market's open jobs and the
        // requester's own.
        let open = chain
            .get::<IdList>(&keys::open_jobs_key())
            .map_or(0, |l| l.0.len() as u32);
        let own = chain
            .get::<Holdings>(&keys::holdings_key(&requester.public_key()))
            .map_or(0, |h| h.open_jobs);
        let room = cfg.params.market.max_open_jobs.saturating_sub(open).min(
            cfg.params
                .market
                .max_open_jobs_per_account
                .saturating_sub(own),
        );
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
        learn_ids(&mut providers, &chain);
        adversary.observe(&chain, cfg, &providers);
        let sleeping = providers.iter().any(|p| {
            p.kind == Behaviour::Sleeper && p.id.is_some_and(|id| !adversary.awake.contains(&id))
        });
        let farm_open = chain
            .get::<Holdings>(&keys::holdings_key(&farmer.public_key()))
            .map_or(0, |h| h.open_jobs);
        if farming && sleeping && farm_open == 0 {
            let nonce = chain.account(&farmer.public_key()).nonce;
            txs.push(tx(
                &farmer,
                nonce,
                fee,
                Action::SubmitJob(Box::new(farm_spec.clone())),
            ));
        }
        let mut order: Vec<usize> = (0..providers.len()).collect();
        rng.shuffle(&mut order);
        for i in order {
            txs.extend(provider_txs(
                &mut providers[i],
                &chain,
                cfg,
                fee,
                &mut rng,
                &mut adversary,
            ));
        }
        let seed = block_seed(chain.height() + 1);
        chain.block(&txs, seed);
        let open = chain
            .get::<Holdings>(&keys::holdings_key(&requester.public_key()))
            .map_or(0, |h| h.open_jobs);
        if jobs_submitted == cfg.jobs && open == 0 {
            break;
        }
    }
    let mut r = report(
        cfg,
        &chain,
        &providers,
        genesis_supply,
        &requester.public_key(),
        &warm_requester.public_key(),
    );
    if let Some(warm) = warm {
        (r.warmup_blocks, r.warmup_units, r.trusted_at_start) = warm;
    }
    if farming {
        r.farm_earned = chain.account(&farmer.public_key()).balance.0 as i128 - farm_funds as i128;
    }
    r
}

/// Reads the provider id of each identity whose registration was sent and is not known yet.
fn learn_ids(providers: &mut [SimProvider], chain: &Chain) {
    for p in providers
        .iter_mut()
        .filter(|p| p.id.is_none() && p.registering)
    {
        p.id = chain
            .get::<OwnerIndex>(&keys::owner_key(&p.address))
            .map(|i| i.0);
    }
}

/// Most blocks of each stage of [`warm_up`] before it moves on, whoever is not trusted yet
/// (100 providers need about 30; in a small market some never reach `trusted_reputation`,
/// confirmed by too few distinct co-replicas).
const WARMUP_STAGE_BLOCKS: u64 = 200;

/// The honest providers' road to trusted records in an established market, before anything is
/// counted: honest work for `requester` (its jobs of `spec`) until each has a confirmed
/// result, a pause of `trusted_min_age_secs` once nothing runs (the chain idle, as
/// [`MemoryChain::pass_secs`] lets time pass), then work again until each is trusted. The
/// operator's providers serve too, honestly, with [`SimConfig::operator_trusted`]: the
/// operator knows none of its own here, so none of its agents lies. Returns the blocks and
/// units it took and the providers that served trusted at its end.
fn warm_up(
    chain: &mut Chain,
    cfg: &SimConfig,
    providers: &mut [SimProvider],
    requester: &PrivateKey,
    spec: &JobSpec,
    rng: &mut Rng,
    block_seed: &dyn Fn(u64) -> Hash32,
) -> (u64, u64, u32) {
    let fee = cfg.params.min_fee;
    let market = &cfg.params.market;
    let start = chain.height();
    let mut adversary = Adversary::default();
    let (mut nonce, mut units) = (0u64, 0u64);
    // The providers that take part: the honest ones, and the operator's if it served too.
    let serving = |p: &SimProvider| !p.kind.is_strategic() || cfg.operator_trusted;
    // How many of them meet `done` (of how many).
    let count = |chain: &Chain, providers: &[SimProvider], done: &dyn Fn(&Provider) -> bool| {
        let serving = providers.iter().filter(|p| serving(p));
        let met = serving
            .clone()
            .filter(|p| {
                p.id.and_then(|id| chain.get::<Provider>(&keys::provider_key(id)))
                    .is_some_and(|r| done(&r))
            })
            .count();
        (met, serving.count())
    };
    for stage in 0..2 {
        if stage == 1 {
            chain.chain.pass_secs(market.trusted_min_age_secs);
        }
        let limit = chain.height() + WARMUP_STAGE_BLOCKS;
        loop {
            learn_ids(providers, chain);
            let now = chain.next_secs();
            let (met, of) = if stage == 0 {
                count(chain, providers, &|r| r.valid > 0)
            } else {
                count(chain, providers, &|r| weight(market, r, now) >= 2)
            };
            let working = met < of && chain.height() < limit;
            let open = chain
                .get::<Holdings>(&keys::holdings_key(&requester.public_key()))
                .map_or(0, |h| h.open_jobs);
            // Nothing may run across the pause: a commit window would pass unanswered.
            if !working && (open == 0 || chain.height() >= limit + WARMUP_STAGE_BLOCKS) {
                break;
            }
            let mut txs = Vec::new();
            if working {
                for _ in 0..market.max_open_jobs_per_account.saturating_sub(open) {
                    txs.push(tx(
                        requester,
                        nonce,
                        fee,
                        Action::SubmitJob(Box::new(spec.clone())),
                    ));
                    nonce += 1;
                    units += u64::from(spec.units);
                }
            }
            let mut order: Vec<usize> = (0..providers.len())
                .filter(|&i| serving(&providers[i]))
                .collect();
            rng.shuffle(&mut order);
            for i in order {
                txs.extend(provider_txs(
                    &mut providers[i],
                    chain,
                    cfg,
                    fee,
                    rng,
                    &mut adversary,
                ));
            }
            chain.block(&txs, block_seed(chain.height() + 1));
        }
    }
    let now = chain.next_secs();
    let (trusted, _) = count(chain, providers, &|r| weight(market, r, now) >= 2);
    (
        chain.height() - start,
        units,
        u32::try_from(trusted).unwrap_or(u32::MAX),
    )
}

/// A provider's registration, from its current identity.
fn register(p: &SimProvider, cfg: &SimConfig, fee: Amount, nonce: u64) -> SignedTx {
    let region = if p.kind.is_strategic() {
        FARM_REGION
    } else {
        "sim"
    };
    tx(
        &p.key,
        nonce,
        fee,
        Action::RegisterProvider {
            resources: resources(region),
            bond: cfg.bond,
        },
    )
}

impl Adversary {
    /// Reads, as the operator's workers can, which of its providers exist and which of its
    /// sleepers are trusted.
    fn observe(&mut self, chain: &Chain, cfg: &SimConfig, providers: &[SimProvider]) {
        self.members.clear();
        self.awake.clear();
        for p in providers.iter().filter(|p| p.kind.is_strategic()) {
            let Some(id) = p.id else { continue };
            self.members.insert(id, p.kind);
            if p.kind == Behaviour::Sleeper
                && chain
                    .get::<Provider>(&keys::provider_key(id))
                    .is_some_and(|record| {
                        weight(&cfg.params.market, &record, chain.next_secs()) >= 2
                    })
            {
                self.awake.insert(id);
            }
        }
    }
}

/// How a provider came by the result it commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// It ran the unit (and may still misstate the fuel).
    Ran,
    /// It ran nothing and claims a wrong result.
    Lied,
    /// It ran nothing and claims what another replica claimed.
    Copied,
}

/// What a strategic agent commits on `unit`, whose true result is `truth`.
fn strategic_claim(
    kind: Behaviour,
    unit: &Unit,
    replica: u32,
    truth: (Hash32, u64),
    adversary: &Adversary,
) -> ((Hash32, u64), Work) {
    if adversary.lies_on(unit) {
        let lie = adversary.lie(unit, truth.0, truth.1);
        let work = if lie.0 == truth.0 {
            Work::Ran
        } else {
            Work::Lied
        };
        return (lie, work);
    }
    if kind == Behaviour::DisputeCopier && deciding(unit, replica) {
        let partner = unit
            .replicas
            .iter()
            .any(|r| r.index != replica && live(r) && adversary.is_member(r.provider));
        if partner && let Some(claim) = adversary.claims.get(&(unit.job, unit.unit)) {
            return (*claim, Work::Copied);
        }
        if let Some(reveal) = unit
            .replicas
            .iter()
            .filter(|r| r.index != replica)
            .find_map(|r| r.reveal)
        {
            return (reveal, Work::Copied);
        }
    }
    (truth, Work::Ran)
}

/// Whether `replica` of `unit` is a dispute's deciding replica, as its provider sees it: the
/// other replicas' seals disagree, or one of them already revealed.
fn deciding(unit: &Unit, replica: u32) -> bool {
    let others = || unit.replicas.iter().filter(|r| r.index != replica);
    let seals: BTreeSet<Hash32> = others()
        .filter(|r| live(r))
        .filter_map(|r| r.seal)
        .collect();
    seals.len() >= 2 || others().any(|r| r.reveal.is_some())
}

/// Whether the replica that committed `seal` on `unit` would lose if it revealed: another
/// seal is held by at least as many live replicas.
fn would_lose(unit: &Unit, seal: Hash32) -> bool {
    let mut counts: BTreeMap<Hash32, u32> = BTreeMap::new();
    for s in unit
        .replicas
        .iter()
        .filter(|r| live(r))
        .filter_map(|r| r.seal)
    {
        *counts.entry(s).or_default() += 1;
    }
    let own = counts.get(&seal).copied().unwrap_or(0);
    counts.iter().any(|(s, n)| *s != seal && *n >= own)
}

/// A Sybil churner's move this block, if it makes one: once caught (below the matching
/// floor) and with nothing running, it retires; once retired (its bond returned), it sends
/// everything to a fresh address, which registers when the funds arrive.
fn churn(
    p: &mut SimProvider,
    id: u64,
    chain: &Chain,
    cfg: &SimConfig,
    fee: Amount,
) -> Option<SignedTx> {
    let provider: Provider = chain.get(&keys::provider_key(id))?;
    let account = chain.account(&p.address);
    if provider.retired {
        let amount = Amount(account.balance.0.checked_sub(fee.0)?);
        let identity = u64::try_from(p.past.len()).ok()?.checked_add(1)?;
        let next = PrivateKey::from_seed(p.key_seed.checked_add(identity.checked_mul(1_000_000)?)?);
        let send = tx(
            &p.key,
            account.nonce,
            fee,
            Action::Transfer {
                to: next.public_key(),
                amount,
            },
        );
        p.past.push((p.address.clone(), p.id));
        p.address = next.public_key();
        p.key = next;
        p.id = None;
        p.registering = false;
        p.offer_expiry = 0;
        p.sealed.clear();
        return Some(send);
    }
    // Reputation below the start does not decay, so the stored figure is the current one.
    let caught = provider.reputation < cfg.params.market.min_match_reputation;
    (caught && provider.active == 0).then(|| tx(&p.key, account.nonce, fee, Action::RetireProvider))
}

/// What one simulated provider sends this block.
fn provider_txs(
    p: &mut SimProvider,
    chain: &Chain,
    cfg: &SimConfig,
    fee: Amount,
    rng: &mut Rng,
    adversary: &mut Adversary,
) -> Vec<SignedTx> {
    let Some(id) = p.id else {
        // A churner's fresh identity registers once its funds arrived.
        let account = chain.account(&p.address);
        if !p.registering && account.balance.0 >= cfg.bond.0.saturating_add(fee.0) {
            p.registering = true;
            return vec![register(p, cfg, fee, account.nonce)];
        }
        return Vec::new();
    };
    if p.kind == Behaviour::SybilChurner
        && let Some(tx) = churn(p, id, chain, cfg, fee)
    {
        return vec![tx];
    }
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
                    Amount(honest_price().0 / 2)
                } else {
                    honest_price()
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
    let work: Vec<Slot> = (0..count)
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
                let truth = true_result(job, unit_index);
                if deciding(&unit, replica_index) {
                    p.deciding += 1;
                }
                let planned = match p.kind {
                    Behaviour::Worker(Misbehave::Copy) => unit
                        .replicas
                        .iter()
                        .filter(|r| r.index != replica_index)
                        .find_map(|r| r.reveal)
                        .map(|claim| (claim, Work::Copied)),
                    Behaviour::Worker(Misbehave::LieWhenAlone) => {
                        let alone = !unit
                            .replicas
                            .iter()
                            .any(|r| r.index != replica_index && live(r));
                        let m = alone.then_some(Misbehave::WrongResult);
                        Misbehave::claim(m, truth.0, truth.1).map(|c| (c, Work::Ran))
                    }
                    kind if kind.is_strategic() => Some(strategic_claim(
                        kind,
                        &unit,
                        replica_index,
                        truth,
                        adversary,
                    )),
                    kind => kind
                        .claim(&p.address, truth.0, truth.1)
                        .map(|c| (c, Work::Ran)),
                };
                let Some(((digest, fuel), how)) = planned else {
                    continue;
                };
                match how {
                    Work::Ran => p.compute_cost += compute_cost(cfg, truth.1),
                    Work::Copied => p.copied += 1,
                    Work::Lied => {}
                }
                if (digest, fuel) != truth {
                    p.lies += 1;
                }
                if p.kind.is_strategic() {
                    adversary.claims.insert((job, unit_index), (digest, fuel));
                }
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
            ReplicaStatus::Committed if unit.reveal_deadline.is_some() => {
                let Some(sealed) = p.sealed.get(&slot) else {
                    continue;
                };
                let lied = (sealed.digest, sealed.fuel) != true_result(job, unit_index);
                if p.kind == Behaviour::Withholder
                    && lied
                    && replica.seal.is_some_and(|seal| would_lose(&unit, seal))
                {
                    // Withheld for good: forgetting the opening is what a withholder does.
                    p.sealed.remove(&slot);
                    p.withheld += 1;
                    continue;
                }
                // Kept until the replica leaves the work list: a reveal in a batch refused
                // whole is sent again.
                reveals.push(sealed.reveal());
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

/// What running a unit that burns `fuel` costs its provider.
fn compute_cost(cfg: &SimConfig, fuel: u64) -> u128 {
    u128::from(fuel) * honest_price().0 * u128::from(cfg.compute_cost_bps)
        / 10_000
        / u128::from(exo_market::FUEL_PER_UNIT)
}

/// What the run measured: units of `requester` only (the farming requester's jobs are counted
/// apart, the warm-up requester's not at all).
fn report(
    cfg: &SimConfig,
    chain: &Chain,
    providers: &[SimProvider],
    genesis_supply: u128,
    requester: &Address,
    warm_requester: &Address,
) -> SimReport {
    let mut r = SimReport {
        blocks: chain.height(),
        rejected_txs: chain.rejected,
        block_costs: chain.costs.clone(),
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
            if job.requester == *warm_requester {
                continue;
            }
            if job.requester != *requester {
                r.farm_units += u64::from(job.units);
                continue;
            }
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
        let stats = r.kinds.entry(p.kind.name().to_string()).or_default();
        stats.strategic = p.kind.is_strategic();
        stats.providers += 1;
        stats.compute_cost += p.compute_cost;
        stats.lies += p.lies;
        stats.liars += u32::from(p.lies > 0);
        stats.withheld += p.withheld;
        stats.copied += p.copied;
        stats.deciding += p.deciding;
        let mut now = 0u128;
        let mut penalised = false;
        let mut last = None;
        for (address, id) in p.past.iter().chain([(p.address.clone(), p.id)].iter()) {
            now += chain.account(address).balance.0;
            let Some(provider) = id.and_then(|id| chain.get::<Provider>(&keys::provider_key(id)))
            else {
                continue;
            };
            stats.identities += 1;
            stats.valid += provider.valid;
            stats.invalid += provider.invalid;
            stats.missed += provider.missed;
            penalised |= provider.invalid + provider.missed > 0;
            now += provider.bond.0;
            last = Some(provider);
        }
        stats.slashed += u32::from(penalised);
        let earned = now as i128 - p.start_balance as i128;
        stats.earned += earned;
        if !penalised {
            stats.unpenalised += 1;
            stats.unpenalised_profit +=
                earned - i128::try_from(p.compute_cost).unwrap_or(i128::MAX);
        }
        if let Some(provider) = last {
            stats.reputation += provider.reputation;
            if weight(&cfg.params.market, &provider, chain.next_secs()) >= 2 {
                stats.trusted += 1;
            }
        }
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

/// The rows of the strategic table: each strategic agent alone, then all of them together
/// (one operator, its providers split evenly among the strategies).
pub fn strategy_rows() -> Vec<(String, Vec<Behaviour>)> {
    Behaviour::STRATEGIC
        .iter()
        .map(|b| (b.name().to_string(), vec![*b]))
        .chain([("mix".to_string(), Behaviour::STRATEGIC.to_vec())])
        .collect()
}

/// One strategy (or mix) at one share of the providers, run under several seeds.
#[derive(Clone, Debug)]
pub struct StrategyRow {
    pub name: String,
    pub strategies: Vec<Behaviour>,
    pub share: f64,
    pub trust: u8,
    /// One report per seed.
    pub reports: Vec<SimReport>,
}

impl StrategyRow {
    fn mean(&self, f: impl Fn(&SimReport) -> f64) -> f64 {
        self.reports.iter().map(f).sum::<f64>() / self.reports.len().max(1) as f64
    }

    fn worst(&self, f: impl Fn(&SimReport) -> f64) -> f64 {
        self.reports.iter().map(f).fold(0.0, f64::max)
    }

    pub fn bad_per_10k_mean(&self) -> f64 {
        self.mean(SimReport::bad_per_10k)
    }

    pub fn bad_per_10k_worst(&self) -> f64 {
        self.worst(SimReport::bad_per_10k)
    }

    pub fn replicas_per_unit_mean(&self) -> f64 {
        self.mean(SimReport::replicas_per_unit)
    }

    pub fn replicas_per_unit_worst(&self) -> f64 {
        self.worst(SimReport::replicas_per_unit)
    }

    /// Honest providers penalised at least once, over every seed.
    pub fn honest_slashed(&self) -> u32 {
        self.reports
            .iter()
            .filter_map(|r| r.kinds.get("honest"))
            .map(|h| h.slashed)
            .sum()
    }

    /// The operator's penalties (wrong or withheld results, missed commits) per seed.
    pub fn adversary_caught_mean(&self) -> f64 {
        self.mean(|r| r.strategic().map(|k| (k.invalid + k.missed) as f64).sum())
    }

    /// [`SimReport::deviations`] per seed.
    pub fn deviations_mean(&self) -> f64 {
        self.mean(|r| r.deviations() as f64)
    }

    /// Mean of [`SimReport::adversary_profit`], in EXO.
    pub fn profit_mean_exo(&self) -> f64 {
        self.mean(|r| exo(r.adversary_profit()))
    }

    /// Mean of [`SimReport::honest_profit_of_adversary_capacity`], in EXO.
    pub fn honest_profit_mean_exo(&self) -> f64 {
        self.mean(|r| exo(r.honest_profit_of_adversary_capacity()))
    }

    /// Seeds in which the operator deviated and still made at least what its capacity
    /// earned honestly. (An operator that never deviated earns what honest work earns, give
    /// or take the luck of the draw.)
    pub fn seeds_deviating_paid(&self) -> usize {
        self.reports
            .iter()
            .filter(|r| {
                r.deviations() > 0
                    && r.adversary_profit() >= r.honest_profit_of_adversary_capacity()
            })
            .count()
    }

    pub fn conserved(&self) -> bool {
        self.reports.iter().all(SimReport::conserved)
    }
}

fn exo(base_units: i128) -> f64 {
    base_units as f64 / exo_types::BASE_UNITS_PER_EXO as f64
}

/// Runs every row of `rows` at every share, at trust `trust`, once per seed; each
/// configuration is [`SimConfig::strategic`] changed by `tweak`.
pub fn strategic_matrix(
    providers: u32,
    units: u32,
    rows: &[(String, Vec<Behaviour>)],
    shares: &[f64],
    trust: u8,
    seeds: &[u64],
    tweak: &dyn Fn(&mut SimConfig),
) -> Vec<StrategyRow> {
    let mut out = Vec::new();
    for (name, strategies) in rows {
        for &share in shares {
            let reports = seeds
                .iter()
                .map(|&seed| {
                    let mut cfg = SimConfig::strategic(providers, share, strategies, units, trust);
                    cfg.seed = seed;
                    tweak(&mut cfg);
                    run(&cfg)
                })
                .collect();
            out.push(StrategyRow {
                name: name.clone(),
                strategies: strategies.clone(),
                share,
                trust,
                reports,
            });
        }
    }
    out
}

/// The strategic rows as a markdown table.
pub fn strategic_table(rows: &[StrategyRow]) -> String {
    let mut out = String::from(
        "| strategy | share | trust | seeds | bad per 10,000 (mean) | bad per 10,000 (worst seed) | replicas/unit (mean) | replicas/unit (worst seed) | honest slashed | deviations per run | adversary penalties per run | adversary profit (EXO, mean) | same capacity honest (EXO, mean) | seeds where deviating paid | conserved |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {:.0}% | {} | {} | {:.1} | {:.1} | {:.3} | {:.3} | {} | {:.1} | {:.1} | {:.4} | {:.4} | {} | {} |\n",
            row.name,
            row.share * 100.0,
            row.trust,
            row.reports.len(),
            row.bad_per_10k_mean(),
            row.bad_per_10k_worst(),
            row.replicas_per_unit_mean(),
            row.replicas_per_unit_worst(),
            row.honest_slashed(),
            row.deviations_mean(),
            row.adversary_caught_mean(),
            row.profit_mean_exo(),
            row.honest_profit_mean_exo(),
            row.seeds_deviating_paid(),
            if row.conserved() { "yes" } else { "NO" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_ledger::modules::market::records::AuditDraw;

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

    fn replica(index: u32, provider: u64, seal: Option<Hash32>) -> Replica {
        Replica {
            index,
            provider,
            offer: provider,
            price_per_unit: honest_price(),
            assigned_height: 1,
            commit_deadline: 10,
            commitment: seal,
            reveal: None,
            status: if seal.is_some() {
                ReplicaStatus::Committed
            } else {
                ReplicaStatus::Assigned
            },
            seal,
        }
    }

    fn unit(replicas: Vec<Replica>) -> Unit {
        Unit {
            job: 1,
            unit: 0,
            state: UnitState::Running,
            replicas,
            reveal_deadline: None,
            accepted: None,
            sought: false,
            audit: AuditDraw::Undrawn,
        }
    }

    /// Providers 1 (a sleeper), 2 (a withholder), 3 (a fuel inflater) and 4 (a dispute
    /// copier) are the operator's; the sleeper is awake only when `awake`.
    fn operator(awake: bool) -> Adversary {
        let mut adversary = Adversary::default();
        for (id, kind) in [
            (1, Behaviour::Sleeper),
            (2, Behaviour::Withholder),
            (3, Behaviour::FuelInflater),
            (4, Behaviour::DisputeCopier),
        ] {
            adversary.members.insert(id, kind);
        }
        if awake {
            adversary.awake.insert(1);
        }
        adversary
    }

    #[test]
    fn the_operator_lies_only_on_units_that_show_no_outsider_and_a_sleeper_only_once_trusted() {
        let asleep = operator(false);
        let awake = operator(true);
        let alone = |p| unit(vec![replica(0, p, None)]);
        assert!(asleep.lies_on(&alone(2)));
        assert!(
            !asleep.lies_on(&alone(1)),
            "a sleeper lies only once trusted"
        );
        assert!(awake.lies_on(&alone(1)));
        assert!(
            !awake.lies_on(&alone(4)),
            "a copier alone has nothing to copy"
        );
        assert!(awake.lies_on(&unit(vec![replica(0, 2, None), replica(1, 3, None)])));
        assert!(!awake.lies_on(&unit(vec![replica(0, 2, None), replica(1, 9, None)])));
        // A partner that no longer counts (replaced after missing its commit) is no witness.
        let mut gone = replica(1, 9, None);
        gone.status = ReplicaStatus::NoShow;
        assert!(awake.lies_on(&unit(vec![replica(0, 2, None), gone])));
    }

    #[test]
    fn colluders_of_different_strategies_agree_on_one_lie() {
        let adversary = operator(true);
        let (digest, fuel) = true_result(1, 0);
        let inflaters = unit(vec![replica(0, 3, None), replica(1, 4, None)]);
        assert_eq!(
            adversary.lie(&inflaters, digest, fuel),
            (digest, FUEL_LIMIT)
        );
        let mixed = unit(vec![replica(0, 3, None), replica(1, 2, None)]);
        let lie = adversary.lie(&mixed, digest, fuel);
        assert_ne!(lie.0, digest);
        assert_eq!(lie.1, fuel);
    }

    #[test]
    fn seals_tell_a_decider_and_a_replica_that_would_lose() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let agreeing = unit(vec![replica(0, 9, Some(a)), replica(1, 8, Some(a))]);
        assert!(
            !deciding(&agreeing, 2),
            "an audit of agreeing replicas decides nothing"
        );
        let split = unit(vec![replica(0, 9, Some(a)), replica(1, 8, Some(b))]);
        assert!(deciding(&split, 2));
        assert!(
            would_lose(&split, a),
            "one against one: no verdict for either"
        );
        let decided = unit(vec![
            replica(0, 9, Some(a)),
            replica(1, 8, Some(b)),
            replica(2, 7, Some(b)),
        ]);
        assert!(would_lose(&decided, a));
        assert!(!would_lose(&decided, b));
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
