//! The compute market in the ledger: providers, offers, jobs, matching, commit-reveal,
//! acceptance, slashing and settlement, executed block by block on an in-memory chain.

use commonware_cryptography::Signer;
use exo_ledger::{
    BlockEnv, BlockInput, Genesis, GenesisAccount, MemoryChain, Params, Policy, REPUTATION_START,
    Receipt, Rejection, Signatures, TxStatus,
    exec::Coded,
    modules::{
        bank::{self, Pot},
        market::{
            self, MarketParams, keys,
            records::{
                AUDIT_SEED_DELAY, AuditDraw, CapacityRound, IdList, Job, JobState, OfferRecord,
                ProvenRound, Provider, ReplicaStatus, Unit, UnitState, WorkCount, WorkItem,
            },
        },
        staking::{EpochRecord, Units, epoch_key, units_key},
    },
    state::{Namespace, decode},
};
use exo_market::{DeviceClass, GpuRequirement, Requirements, Resources, Runtime, RuntimeSet};
use exo_types::{
    Action, Address, Amount, CapacityChallenge, CapacityProof, Hash32, JobSpec, PrivateKey,
    ResultCommit, ResultReveal, SignedTx, Unfinished, UnsignedTx, address_to_hex,
    result_commitment, result_seal,
};
use std::collections::BTreeMap;

const CHAIN: &str = "exo-test";
const REQUESTER: u64 = 1;
const DEVELOPER: u64 = 2;
const PROPOSER: u64 = 9;
const PROVIDERS: [u64; 3] = [11, 12, 13];
/// A fourth provider's account, for the tests that need one: it registers after the three
/// others (provider id 3), so [`provider_seed`] still names it.
const FOURTH: u64 = 14;
const APP: Hash32 = [7u8; 32];
const FUEL_LIMIT: u64 = 2_000_000_000;

/// The key seed of provider `id`, when providers registered in seed order from
/// `PROVIDERS[0]` (as [`Market::setup`] registers them).
fn provider_seed(id: u64) -> u64 {
    PROVIDERS[0] + id
}

fn key(i: u64) -> PrivateKey {
    PrivateKey::from_seed(i)
}

fn addr(i: u64) -> Address {
    key(i).public_key()
}

fn resources(cores: u32) -> Resources {
    Resources {
        cores,
        cpu_score: 1_000_000_000,
        memory_mib: 8_192,
        gpu: None,
        class: DeviceClass::Pc,
        region: "eu-west".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    }
}

fn requirements() -> Requirements {
    Requirements::wasm(512, FUEL_LIMIT)
}

fn spec(units: u32, trust: u8) -> JobSpec {
    JobSpec {
        app: APP,
        app_developer: addr(DEVELOPER),
        inputs: Vec::new(),
        unit_args: Vec::new(),
        units,
        requirements: requirements(),
        max_price_per_unit: Amount::from_exo(2),
        trust,
    }
}

/// The lie the tests' liars commit.
const LIE: (Hash32, u64) = ([0xEE; 32], 1_500_000_000);

/// The honest result of a unit.
fn truth(job: u64, unit: u32) -> (Hash32, u64) {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&job.to_be_bytes());
    digest[8..12].copy_from_slice(&unit.to_be_bytes());
    (digest, 1_500_000_000)
}

struct Market {
    chain: MemoryChain,
    nonces: BTreeMap<u64, u64>,
}

/// The default parameters with `market`'s in place of the market's: what a test of one market
/// rule changes, and nothing else.
fn with_market(market: MarketParams) -> Params {
    Params {
        market,
        ..Params::default()
    }
}

/// The default parameters with nobody on probation and disputes decided by one vote: for
/// tests of how a dispute is decided among the three providers, whose one deciding replica
/// goes to a provider that has no record yet (a newcomer never gets one under the default
/// parameters, and the default margin of two votes needs a second decider:
/// [`five_providers_all_audited`]).
fn veterans() -> Params {
    with_market(MarketParams {
        probation_results: 0,
        ..one_vote_disputes()
    })
}

/// The default market parameters with disputes decided by one vote: three providers leave
/// room for only one deciding replica.
fn one_vote_disputes() -> MarketParams {
    MarketParams {
        dispute_margin: 1,
        ..MarketParams::default()
    }
}

impl Market {
    fn new(params: Params) -> Self {
        let mut accounts: Vec<GenesisAccount> = [REQUESTER, DEVELOPER]
            .into_iter()
            .chain(PROVIDERS)
            .chain([FOURTH])
            .map(|i| GenesisAccount {
                address: address_to_hex(&addr(i)),
                balance: Amount::from_exo(1_000_000),
            })
            .collect();
        accounts.sort_by(|a, b| a.address.cmp(&b.address));
        let genesis = Genesis {
            chain_id: CHAIN.into(),
            params,
            accounts,
            validators: vec![address_to_hex(&addr(PROPOSER))],
        };
        Self {
            chain: MemoryChain::new(genesis),
            nonces: BTreeMap::new(),
        }
    }

    fn tx(&mut self, from: u64, action: Action) -> SignedTx {
        let nonce = self.nonces.entry(from).or_insert(0);
        let tx = UnsignedTx {
            chain_id: CHAIN.into(),
            sender: addr(from),
            nonce: *nonce,
            fee: Amount(1_000),
            action,
        }
        .sign(&key(from));
        *nonce += 1;
        tx
    }

    fn block(&mut self, txs: Vec<SignedTx>) -> Vec<TxStatus> {
        self.chain
            .execute_block(&addr(PROPOSER), &txs)
            .into_iter()
            .map(|r: Option<Receipt>| r.expect("fresh transaction").status)
            .collect()
    }

    fn ok(&mut self, txs: Vec<SignedTx>) {
        for status in self.block(txs) {
            assert_eq!(status, TxStatus::Ok);
        }
    }

    /// Runs the empty blocks up to the one that draws the audit of the units whose replicas
    /// all committed in the last block: their reveals are open after it. A draw is filed for
    /// the height [`AUDIT_SEED_DELAY`] blocks later, however far apart the blocks are.
    fn draw_audits(&mut self) {
        for _ in 0..AUDIT_SEED_DELAY {
            self.ok(vec![]);
        }
    }

    fn job(&self, id: u64) -> Job {
        self.chain.get(&keys::job_key(id)).expect("job")
    }

    fn unit(&self, job: u64, unit: u32) -> Unit {
        self.chain.get(&keys::unit_key(job, unit)).expect("unit")
    }

    fn provider(&self, id: u64) -> Provider {
        self.chain.get(&keys::provider_key(id)).expect("provider")
    }

    fn work(&self, provider: u64) -> Vec<(u64, u32, u32)> {
        let count = self
            .chain
            .get::<WorkCount>(&keys::work_key(provider))
            .unwrap_or_default()
            .0;
        (0..count)
            .map(|at| {
                self.chain
                    .get::<WorkItem>(&keys::work_item_key(provider, at))
                    .expect("every position below the count holds a replica")
                    .0
            })
            .collect()
    }

    /// The chain's supply and what slashing burnt so far.
    fn supply_and_slashed(&self) -> (Amount, Amount) {
        let supply: bank::Supply = self.chain.get(&bank::supply_key()).expect("supply");
        (supply.total, supply.burnt)
    }

    /// Every token: balances and pots (provider bonds, job escrow still held). Burnt slashes
    /// are gone from the supply, so this must equal the bank's supply. Each pot also holds
    /// what its market record says.
    fn tokens(&self) -> (u128, u128) {
        let entries = &self.chain.store.entries;
        let mut total = 0u128;
        for (key, value) in entries {
            if key[0] == Namespace::Bank as u8 && key[1] == bank::Table::Account as u8 {
                total += decode::<bank::Account>(value).expect("account").balance.0;
            } else if key[0] == Namespace::Bank as u8 && key[1] == bank::Table::Pot as u8 {
                total += decode::<bank::PotBalance>(value).expect("pot").0.0;
            } else if key[0] == Namespace::Market as u8 && key[1] == keys::Table::Provider as u8 {
                let p: Provider = decode(value).expect("provider");
                assert_eq!(self.pot(Pot::ProviderBond(p.id)), p.bond.0);
            } else if key[0] == Namespace::Market as u8 && key[1] == keys::Table::Job as u8 {
                let j: Job = decode(value).expect("job");
                assert_eq!(self.pot(Pot::JobEscrow(j.id)), j.accounts.held.0);
            }
        }
        (total, self.supply_and_slashed().0.0)
    }

    fn pot(&self, pot: Pot) -> u128 {
        self.chain
            .get::<bank::PotBalance>(&bank::pot_key(pot))
            .map_or(0, |p| p.0.0)
    }

    /// Publishes the app and registers `providers` with one offer each.
    fn setup(&mut self, providers: &[u64]) {
        let mut txs = vec![self.publish(Amount(10_000_000))];
        for p in providers {
            txs.extend(self.join(*p, 8, Amount::from_exo(1)));
        }
        self.ok(txs);
    }

    /// The developer publishes the app with `royalty_per_unit`.
    fn publish(&mut self, royalty_per_unit: Amount) -> SignedTx {
        self.tx(
            DEVELOPER,
            Action::PublishApp {
                module_hash: APP,
                name: "render".into(),
                version: "1.0".into(),
                royalty_per_unit,
            },
        )
    }

    /// `provider` registers with a bond of 100 EXO and no offer.
    fn register(&mut self, provider: u64) {
        let register = self.registration(provider, 8);
        self.ok(vec![register]);
    }

    /// `provider`'s registration with `cores` cores and a bond of 100 EXO.
    fn registration(&mut self, provider: u64, cores: u32) -> SignedTx {
        self.tx(
            provider,
            Action::RegisterProvider {
                resources: resources(cores),
                bond: Amount::from_exo(100),
            },
        )
    }

    /// `provider`'s offer of `slots` at the lowest price, live until `expiry_secs`.
    fn offer(&mut self, provider: u64, slots: u32, expiry_secs: u64) -> SignedTx {
        self.tx(
            provider,
            Action::PostOffer {
                slots,
                price_per_unit: Amount(1),
                expiry_secs,
            },
        )
    }

    /// `provider` registers (bond 100 EXO) and posts one offer of `slots` at `price`.
    fn join(&mut self, provider: u64, slots: u32, price: Amount) -> [SignedTx; 2] {
        [
            self.registration(provider, 8),
            self.tx(
                provider,
                Action::PostOffer {
                    slots,
                    price_per_unit: price,
                    expiry_secs: 10_000,
                },
            ),
        ]
    }

    /// The index of the replica `provider` holds of a unit.
    fn replica_of(&self, provider: u64, job: u64, unit: u32) -> u32 {
        self.unit(job, unit)
            .replicas
            .iter()
            .find(|r| r.provider == self.provider_id(provider))
            .expect("replica")
            .index
    }

    fn commit_entry(
        &self,
        provider: u64,
        result: (Hash32, u64),
        job: u64,
        unit: u32,
    ) -> ResultCommit {
        let salt = [provider as u8; 32];
        ResultCommit {
            job,
            unit,
            replica: self.replica_of(provider, job, unit),
            commitment: result_commitment(&result.0, result.1, &salt, &addr(provider)),
            seal: result_seal(&result.0, result.1, job, unit),
        }
    }

    fn reveal_entry(
        &self,
        provider: u64,
        result: (Hash32, u64),
        job: u64,
        unit: u32,
    ) -> ResultReveal {
        ResultReveal {
            job,
            unit,
            replica: self.replica_of(provider, job, unit),
            digest: result.0,
            fuel: result.1,
            salt: [provider as u8; 32],
        }
    }

    fn commit(&mut self, provider: u64, result: (Hash32, u64), job: u64, unit: u32) -> SignedTx {
        let entry = self.commit_entry(provider, result, job, unit);
        self.tx(provider, Action::CommitResults(vec![entry]))
    }

    fn reveal(&mut self, provider: u64, result: (Hash32, u64), job: u64, unit: u32) -> SignedTx {
        let entry = self.reveal_entry(provider, result, job, unit);
        self.tx(provider, Action::RevealResults(vec![entry]))
    }

    /// Job 0, one unit at trust 2, on two providers: the first commits the true result, the
    /// second a lie. Their seals disagree, so the unit's reveals stay closed and a deciding
    /// replica is sought. Returns the honest and the lying account and their provider ids.
    fn one_against_one(&mut self) -> (u64, u64, [u64; 2]) {
        let tx = self.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
        self.ok(vec![tx]);
        self.ok(vec![]);
        let holders: Vec<u64> = self
            .unit(0, 0)
            .replicas
            .iter()
            .map(|r| r.provider)
            .collect();
        let (honest, liar) = (
            PROVIDERS[holders[0] as usize],
            PROVIDERS[holders[1] as usize],
        );
        let commits = vec![
            self.commit(honest, truth(0, 0), 0, 0),
            self.commit(liar, LIE, 0, 0),
        ];
        self.ok(commits);
        self.draw_audits();
        let unit = self.unit(0, 0);
        assert_eq!(
            unit.reveal_deadline, None,
            "sealed until a decider committed"
        );
        assert!(
            unit.sought || unit.replicas.len() == 3,
            "a decider is sought"
        );
        (honest, liar, [holders[0], holders[1]])
    }

    /// The replica of `unit` added last commits `result`; once that opens the reveals, every
    /// provider of `revealing` reveals its result in one block.
    fn decide(
        &mut self,
        job: u64,
        unit: u32,
        result: (Hash32, u64),
        revealing: &[(u64, (Hash32, u64))],
    ) -> u64 {
        let decider = *self.holders(job, unit).last().expect("a decider");
        let commit = self.commit(decider, result, job, unit);
        self.ok(vec![commit]);
        let reveals = revealing
            .iter()
            .chain(std::iter::once(&(decider, result)))
            .map(|(p, r)| self.reveal(*p, *r, job, unit))
            .collect();
        self.ok(reveals);
        decider
    }

    /// Job `job`, one unit at trust 2 in a market where every unit is audited and nobody is
    /// trusted yet: its pair of replicas, then its audit, commit the truth and reveal it, and
    /// the unit is accepted. Returns the three providers' accounts.
    fn agreed_by_a_pair_and_its_audit(&mut self, job: u64) -> Vec<u64> {
        let tx = self.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
        self.ok(vec![tx]);
        let pair = self.holders(job, 0);
        assert_eq!(pair.len(), 2);
        let txs = pair
            .iter()
            .map(|p| self.commit(*p, truth(job, 0), job, 0))
            .collect();
        self.ok(txs);
        self.draw_audits();
        let all = self.holders(job, 0);
        assert_eq!(all.len(), 3, "audited");
        let tx = self.commit(all[2], truth(job, 0), job, 0);
        self.ok(vec![tx]);
        let txs = all
            .iter()
            .map(|p| self.reveal(*p, truth(job, 0), job, 0))
            .collect();
        self.ok(txs);
        assert_eq!(self.unit(job, 0).state, UnitState::Accepted);
        all
    }

    /// Unit 0 of job `job`, held alone in a market where every unit is audited: its holder
    /// commits `result`, the audit is drawn and its replica commits the truth. Returns the
    /// holder and the auditor.
    fn alone_against_its_audit(&mut self, job: u64, result: (Hash32, u64)) -> (u64, u64) {
        let holder = self.holders(job, 0)[0];
        let tx = self.commit(holder, result, job, 0);
        self.ok(vec![tx]);
        self.draw_audits();
        let auditor = self.holders(job, 0)[1];
        let tx = self.commit(auditor, truth(job, 0), job, 0);
        self.ok(vec![tx]);
        (holder, auditor)
    }

    /// The accounts of the providers holding replicas of a unit, in replica order.
    fn holders(&self, job: u64, unit: u32) -> Vec<u64> {
        self.unit(job, unit)
            .replicas
            .iter()
            .map(|r| provider_seed(r.provider))
            .collect()
    }

    /// Each of `results` committed by its provider in one block, then revealed in the next.
    fn settle(&mut self, job: u64, unit: u32, results: &[(u64, (Hash32, u64))]) {
        let commits = results
            .iter()
            .map(|(p, r)| self.commit(*p, *r, job, unit))
            .collect();
        self.ok(commits);
        self.draw_audits();
        let reveals = results
            .iter()
            .map(|(p, r)| self.reveal(*p, *r, job, unit))
            .collect();
        self.ok(reveals);
    }

    /// Checks the job's accounts add up, token for token, and every token is where the bank
    /// says.
    fn accounts_add_up(&self, job: u64) {
        let a = self.job(job).accounts;
        assert_eq!(
            a.escrowed.0,
            a.paid_total().0 + a.royalties.0 + a.fees.0 + a.refunded.0 + a.held.0,
            "{a:?}"
        );
        let (total, supply) = self.tokens();
        assert_eq!(total, supply);
    }

    /// The provider id of the key seed `account` (the inverse of [`provider_seed`]).
    /// Runs empty blocks through the last block of the first epoch of `epoch_length` blocks,
    /// which pays its rewards; returns the balances of `accounts` just before that block.
    fn run_to_epoch_end(&mut self, epoch_length: u64, accounts: &[u64]) -> Vec<u128> {
        while self.chain.height < epoch_length - 2 {
            self.ok(vec![]);
        }
        let before = accounts
            .iter()
            .map(|a| self.chain.account(&addr(*a)).balance.0)
            .collect();
        self.ok(vec![]);
        before
    }

    fn provider_id(&self, account: u64) -> u64 {
        account.checked_sub(PROVIDERS[0]).expect("provider")
    }
}

/// The name of the market's refusal code.
fn refused(status: &TxStatus) -> &'static str {
    match status {
        TxStatus::Rejected(Rejection::Market(refusal)) => refusal.name(),
        other => panic!("expected a market refusal, got {other:?}"),
    }
}

#[test]
fn a_job_runs_from_submission_to_payment_token_for_token() {
    // New providers are on probation, one replica at a time; this test is about the money, so
    // it lets them take all three units at once.
    let mut m = Market::new(with_market(MarketParams {
        probation_slots: 8,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..2]);
    let requester_before = m.chain.account(&addr(REQUESTER)).balance;
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(3, 2))));
    m.ok(vec![tx]);
    // Matched in the block that carried it: no provider is trusted (weight 1), so each unit
    // gets trust = 2 replicas at once, on the two providers.
    let job = m.job(0);
    assert_eq!(job.running, 3);
    assert_eq!(job.waiting, 0);
    for unit in 0..3 {
        let replicas = m.unit(0, unit).replicas;
        assert_eq!(replicas.len(), 2);
        assert_ne!(replicas[0].provider, replicas[1].provider);
    }
    assert_eq!(m.work(0).len(), 3);
    assert_eq!(m.work(1).len(), 3);

    let mut commits = Vec::new();
    for unit in 0..3 {
        for p in &PROVIDERS[..2] {
            commits.push(m.commit(*p, truth(0, unit), 0, unit));
        }
    }
    m.ok(commits);
    m.draw_audits();
    assert!(m.unit(0, 0).reveal_deadline.is_some());
    let mut reveals = Vec::new();
    for unit in 0..3 {
        for p in &PROVIDERS[..2] {
            reveals.push(m.reveal(*p, truth(0, unit), 0, unit));
        }
    }
    m.ok(reveals);

    let job = m.job(0);
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.accepted, 3);
    for unit in 0..3 {
        let unit = m.unit(0, unit);
        assert_eq!(unit.state, UnitState::Accepted);
        assert_eq!(unit.accepted, Some(truth(0, unit.unit)));
        assert!(
            unit.replicas
                .iter()
                .all(|r| r.status == ReplicaStatus::Agreed)
        );
    }
    // 1.5e9 fuel at 1 EXO per 1e9 fuel: 1.5 EXO per replica, 6 replicas.
    let accounts = &job.accounts;
    assert_eq!(accounts.paid_total(), Amount(9_000_000_000));
    assert_eq!(accounts.royalties, Amount(3 * 15_000_000));
    assert_eq!(accounts.held, Amount::ZERO);
    assert_eq!(
        accounts.escrowed.0,
        accounts.paid_total().0 + accounts.royalties.0 + accounts.fees.0 + accounts.refunded.0
    );
    let requester_after = m.chain.account(&addr(REQUESTER)).balance;
    let spent = requester_before.0 - requester_after.0;
    assert_eq!(
        spent,
        accounts.paid_total().0 + accounts.royalties.0 + accounts.fees.0 + 1_000
    );
    assert!(m.work(0).is_empty() && m.work(1).is_empty());
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

#[test]
fn a_wrong_result_is_outvoted_slashed_and_the_unit_still_correct() {
    let mut m = Market::new(veterans());
    m.setup(&PROVIDERS);
    let (honest, liar, holders) = m.one_against_one();
    // One against one: no agreement, a third replica is sought from the third provider.
    assert_eq!(m.unit(0, 0).state, UnitState::Running);
    m.ok(vec![]);
    let third = m.unit(0, 0).replicas.last().expect("third").provider;
    let third_account = PROVIDERS[third as usize];
    assert!(third_account != honest && third_account != liar);
    m.decide(0, 0, truth(0, 0), &[(honest, truth(0, 0)), (liar, LIE)]);

    let unit = m.unit(0, 0);
    assert_eq!(unit.state, UnitState::Accepted);
    assert_eq!(unit.accepted, Some(truth(0, 0)));
    let liar_record = m.provider(holders[1]);
    assert_eq!(liar_record.invalid, 1);
    assert!(liar_record.bond < Amount::from_exo(100));
    assert!(liar_record.reputation < exo_ledger::REPUTATION_START);
    assert_eq!(m.provider(holders[0]).valid, 1);
    let (total, supply) = m.tokens();
    assert_eq!(
        total, supply,
        "slashing burns exactly what leaves the supply"
    );
}

/// Two honest providers with one slot each and a liar with two, the cheapest, so that each
/// of two units at trust 2 goes to the liar and one honest provider. Both units are disputed,
/// and each one's deciding replica can only come from the honest provider that holds the other
/// unit. A committed replica gives its slot back, so both disputes are decided; before, each
/// honest provider's only slot stayed held until its unit's verdict, which waited for the
/// other's slot: the market stalled for good.
#[test]
fn two_disputes_each_waiting_for_the_other_ones_provider_are_both_decided() {
    let mut m = Market::new(veterans());
    let [a, b, liar] = PROVIDERS;
    let mut txs = vec![m.publish(Amount::ZERO)];
    // Prices in thousandths of an EXO per compute unit.
    for (p, slots, price) in [(a, 1, 1_000), (b, 1, 1_000), (liar, 2, 500)] {
        txs.extend(m.join(p, slots, Amount(Amount::from_exo(1).0 / 1_000 * price)));
    }
    m.ok(txs);
    let submit = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(2, 2))));
    m.ok(vec![submit]);
    m.ok(vec![]);
    let lie = ([0xEE; 32], 1_500_000_000);
    let mut commits = Vec::new();
    let mut reveals = Vec::new();
    for unit in 0..2 {
        let holders: Vec<u64> = m
            .unit(0, unit)
            .replicas
            .iter()
            .map(|r| PROVIDERS[r.provider as usize])
            .collect();
        assert_eq!(holders.len(), 2, "unit {unit}: {holders:?}");
        assert!(holders.contains(&liar), "unit {unit}: {holders:?}");
        for p in holders {
            let result = if p == liar { lie } else { truth(0, unit) };
            commits.push(m.commit(p, result, 0, unit));
            reveals.push((p, result, unit));
        }
    }
    m.ok(commits);
    m.draw_audits();
    // The seals disagree: each unit's third replica goes, before anyone reveals, to the
    // honest provider it did not have.
    m.ok(vec![]);
    let mut deciders = Vec::new();
    for unit in 0..2 {
        let replicas = m.unit(0, unit).replicas;
        assert_eq!(replicas.len(), 3, "unit {unit} got no deciding replica");
        let decider = PROVIDERS[replicas[2].provider as usize];
        assert_ne!(decider, liar);
        deciders.push(m.commit(decider, truth(0, unit), 0, unit));
    }
    m.ok(deciders);
    let mut reveals: Vec<SignedTx> = reveals
        .into_iter()
        .map(|(p, result, unit)| m.reveal(p, result, 0, unit))
        .collect();
    for unit in 0..2 {
        let decider = PROVIDERS[m.unit(0, unit).replicas[2].provider as usize];
        reveals.push(m.reveal(decider, truth(0, unit), 0, unit));
    }
    m.ok(reveals);
    for unit in 0..2 {
        assert_eq!(m.unit(0, unit).state, UnitState::Accepted, "unit {unit}");
    }
    assert_eq!(m.job(0).state, JobState::Done);
    for p in [a, b, liar] {
        let provider = m.provider(m.provider_id(p));
        assert_eq!(provider.active, 0, "{p}");
        assert!(m.work(m.provider_id(p)).is_empty(), "{p}");
    }
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

#[test]
fn a_requirement_nobody_meets_waits_with_its_reason() {
    let mut m = Market::new(Params::default());
    m.setup(&PROVIDERS[..2]);
    let mut job = spec(2, 1);
    job.requirements.gpu = Some(GpuRequirement {
        model: Some("rtx4090".into()),
        min_count: 1,
        min_memory_mib: 0,
    });
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(job)));
    m.ok(vec![tx]);
    let job = m.job(0);
    assert_eq!(job.waiting, 2);
    // The reason is stored as numbers and rendered from them with the job's requirements.
    let reason = job.wait_reason.expect("a reason");
    let gpu = exo_market::Constraint::ALL
        .iter()
        .position(|c| *c == exo_market::Constraint::Gpu)
        .expect("gpu");
    assert_eq!(reason.excluded_by[gpu], reason.live_offers);
    let spec: JobSpec = m.chain.get(&keys::job_spec_key(0)).expect("spec");
    let sentence = reason.explain(&spec.requirements).to_string();
    assert!(sentence.contains("gpu"), "{sentence}");
}

#[test]
fn cancelling_refunds_exactly_what_was_not_spent() {
    let mut m = Market::new(Params::default());
    m.setup(&[]);
    let before = m.chain.account(&addr(REQUESTER)).balance;
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(4, 2))));
    m.ok(vec![tx]);
    let escrowed = m.job(0).accounts.escrowed;
    assert_eq!(
        m.chain.account(&addr(REQUESTER)).balance.0,
        before.0 - escrowed.0 - 1_000
    );
    let tx = m.tx(REQUESTER, Action::CancelJob { job: 0 });
    m.ok(vec![tx]);
    let job = m.job(0);
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.accounts.refunded, escrowed);
    assert_eq!(
        m.chain.account(&addr(REQUESTER)).balance.0,
        before.0 - 2_000
    );
}

#[test]
fn a_no_show_is_penalised_and_replaced() {
    let params = with_market(MarketParams {
        commit_window_secs: 3,
        ..MarketParams::default()
    });
    let mut m = Market::new(params);
    m.setup(&PROVIDERS[..2]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    let first = m.unit(0, 0).replicas[0].provider;
    for _ in 0..3 {
        m.ok(vec![]);
    }
    let unit = m.unit(0, 0);
    assert_eq!(unit.replicas[0].status, ReplicaStatus::NoShow);
    let absent = m.provider(first);
    assert_eq!(absent.missed, 1);
    assert!(absent.bond < Amount::from_exo(100));
    m.ok(vec![]);
    let unit = m.unit(0, 0);
    let replacement = unit.replicas.last().expect("replacement");
    assert_ne!(replacement.provider, first);
    assert_eq!(replacement.status, ReplicaStatus::Assigned);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// Audit H7: a liar that sees the honest reveal would withhold its own and pay the no-show's
/// 2% rather than a wrong result's 20%. A commitment never opened costs as much as a wrong
/// result, so withholding never pays better than revealing.
#[test]
fn a_commitment_never_revealed_costs_as_much_as_a_wrong_result() {
    let params = with_market(MarketParams {
        reveal_window_secs: 3,
        ..veterans().market
    });
    let slash_wrong_bps = params.market.slash_wrong_bps;
    let mut m = Market::new(params);
    m.setup(&PROVIDERS);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let holders = m.holders(0, 0);
    let (honest, withholder) = (holders[0], holders[1]);
    let commits = vec![
        m.commit(honest, truth(0, 0), 0, 0),
        m.commit(withholder, LIE, 0, 0),
    ];
    m.ok(commits);
    m.draw_audits();
    // The seals disagree: a third replica decides; the withholder sees the others reveal and
    // keeps its own lie to itself.
    m.decide(0, 0, truth(0, 0), &[(honest, truth(0, 0))]);
    for _ in 0..3 {
        m.ok(vec![]);
    }
    let record = m.provider(m.provider_id(withholder));
    let bond = Amount::from_exo(100);
    let slashed = Amount(bond.0 * u128::from(slash_wrong_bps) / 10_000);
    assert_eq!(record.bond, Amount(bond.0 - slashed.0));
    assert_eq!(
        record.reputation,
        exo_ledger::REPUTATION_START.saturating_sub(exo_ledger::REPUTATION_WRONG)
    );
    assert_eq!(record.missed, 1);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

#[test]
fn bad_market_actions_are_refused_with_their_reason_and_cost_only_the_fee() {
    let mut m = Market::new(Params::default());
    m.setup(&PROVIDERS[..1]);
    let before = m.chain.account(&addr(REQUESTER)).balance;
    let txs = vec![
        m.tx(
            REQUESTER,
            Action::RegisterProvider {
                resources: resources(0),
                bond: Amount::from_exo(100),
            },
        ),
        m.offer(REQUESTER, 1, 50),
        m.tx(REQUESTER, Action::CancelOffer { offer: 0 }),
        m.tx(
            REQUESTER,
            Action::SubmitJob(Box::new(JobSpec {
                app: [1; 32],
                ..spec(1, 1)
            })),
        ),
        m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(0, 1)))),
        m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 9)))),
        m.tx(
            REQUESTER,
            Action::SubmitJob(Box::new(JobSpec {
                max_price_per_unit: Amount::ZERO,
                ..spec(1, 1)
            })),
        ),
        m.tx(REQUESTER, Action::CancelJob { job: 42 }),
        m.tx(
            REQUESTER,
            Action::RegisterProvider {
                resources: resources(4),
                bond: Amount(1),
            },
        ),
    ];
    let statuses = m.block(txs);
    assert_eq!(refused(&statuses[0]), "invalid_resources");
    assert_eq!(refused(&statuses[1]), "not_a_provider");
    assert_eq!(refused(&statuses[2]), "not_your_offer");
    assert_eq!(refused(&statuses[3]), "unknown_app");
    assert_eq!(refused(&statuses[4]), "invalid_job");
    assert_eq!(refused(&statuses[5]), "invalid_job");
    assert_eq!(refused(&statuses[6]), "invalid_job");
    assert_eq!(refused(&statuses[7]), "unknown_job");
    assert_eq!(refused(&statuses[8]), "bond_too_low");
    // Every refusal cost its fee and nothing else.
    let after = m.chain.account(&addr(REQUESTER)).balance;
    assert_eq!(before.0 - after.0, 9 * 1_000);

    // A job the requester cannot afford is refused as insufficient funds.
    let mut huge = spec(exo_ledger::modules::market::max_units_per_job(), 4);
    huge.max_price_per_unit = Amount::from_exo(100_000);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(huge)));
    let statuses = m.block(vec![tx]);
    assert!(matches!(
        statuses[0],
        TxStatus::Rejected(Rejection::Bank(bank::Refusal::InsufficientFunds { .. }))
    ));

    // A reveal that does not open its commitment is refused.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    let job = m
        .chain
        .get::<exo_ledger::modules::market::records::IdList>(&keys::open_jobs_key())
        .expect("open")
        .0[0];
    let commit = m.commit(PROVIDERS[0], truth(job, 0), job, 0);
    m.ok(vec![commit]);
    m.draw_audits();
    let bad = m.reveal(PROVIDERS[0], ([3; 32], 5), job, 0);
    let statuses = m.block(vec![bad]);
    assert_eq!(refused(&statuses[0]), "commitment_mismatch");
}

#[test]
fn a_stale_entry_is_skipped_and_the_rest_of_its_batch_applied() {
    let params = with_market(MarketParams {
        commit_window_secs: 3,
        audit_ppm: 1,
        ..MarketParams::default()
    });
    let mut m = Market::new(params);
    m.setup(&PROVIDERS[..2]);
    let p = PROVIDERS[0];
    // Job 0 is matched at height 2 (commit deadline 5) to the first provider. Job 1, at
    // height 3 (deadline 6), goes to the second: the first is on probation (no confirmed
    // result yet), so it holds one replica at a time.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    let q = PROVIDERS[1];
    assert_eq!(m.unit(0, 0).replicas[0].provider, m.provider_id(p));
    assert_eq!(m.unit(1, 0).replicas[0].provider, m.provider_id(q));
    // Job 0's replica misses its deadline at height 5.
    m.ok(vec![]);
    m.ok(vec![]);
    assert_eq!(m.unit(0, 0).replicas[0].status, ReplicaStatus::NoShow);
    // At height 6, the first provider's late commitment for job 0 is stale, and so is the
    // duplicate in the second provider's batch: both batches pass, doing the rest.
    let stale = m.commit_entry(p, truth(0, 0), 0, 0);
    let fresh = m.commit_entry(q, truth(1, 0), 1, 0);
    let txs = vec![
        m.tx(p, Action::CommitResults(vec![stale])),
        m.tx(q, Action::CommitResults(vec![fresh.clone(), fresh])),
    ];
    m.ok(txs);
    m.draw_audits();
    assert_eq!(m.unit(0, 0).replicas[0].status, ReplicaStatus::NoShow);
    assert_eq!(m.unit(0, 0).replicas[0].commitment, None);
    let unit = m.unit(1, 0);
    assert_eq!(unit.replicas[0].status, ReplicaStatus::Committed);
    assert!(unit.reveal_deadline.is_some());
    // Reveals: the fresh one, then the same again (stale once the first settled the unit).
    let reveal = m.reveal_entry(q, truth(1, 0), 1, 0);
    let tx = m.tx(
        q,
        Action::RevealResults(vec![reveal.clone(), reveal.clone()]),
    );
    m.ok(vec![tx]);
    let unit = m.unit(1, 0);
    assert_eq!(unit.state, UnitState::Accepted);
    assert_eq!(unit.accepted, Some(truth(1, 0)));
    // Sent again later, the whole batch is stale: applied, doing nothing.
    let tx = m.tx(q, Action::RevealResults(vec![reveal]));
    m.ok(vec![tx]);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

#[test]
fn a_wrong_entry_refuses_its_batch_and_undoes_what_the_batch_settled() {
    let mut m = Market::new(veterans());
    m.setup(&PROVIDERS);
    let (honest, liar, holders) = m.one_against_one();
    m.ok(vec![]);
    let third = PROVIDERS[m.unit(0, 0).replicas[2].provider as usize];
    let commit = m.commit(third, truth(0, 0), 0, 0);
    m.ok(vec![commit]);
    let reveals = vec![
        m.reveal(honest, truth(0, 0), 0, 0),
        m.reveal(liar, LIE, 0, 0),
    ];
    m.ok(reveals);
    let meta_before = m.supply_and_slashed();
    let liar_before = m.provider(holders[1]);
    // The third reveal settles the unit and slashes the liar; the batch's second entry names
    // a replica of another provider, so the whole batch is refused and undone.
    let good = m.reveal_entry(third, truth(0, 0), 0, 0);
    let mut wrong = good.clone();
    wrong.replica = m.replica_of(honest, 0, 0);
    let tx = m.tx(third, Action::RevealResults(vec![good.clone(), wrong]));
    let statuses = m.block(vec![tx]);
    assert_eq!(refused(&statuses[0]), "not_your_replica");
    let unit = m.unit(0, 0);
    assert_eq!(unit.state, UnitState::Running);
    assert_eq!(unit.replicas[2].status, ReplicaStatus::Committed);
    assert_eq!(m.provider(holders[1]), liar_before);
    assert_eq!(m.supply_and_slashed(), meta_before);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
    // Alone, the reveal goes through.
    let tx = m.tx(third, Action::RevealResults(vec![good]));
    m.ok(vec![tx]);
    assert_eq!(m.unit(0, 0).accepted, Some(truth(0, 0)));
    assert_eq!(m.provider(holders[1]).invalid, 1);
}

#[test]
fn an_audit_is_judged_and_a_trusted_liar_cannot_outvote_its_auditor() {
    // Trusted after one confirmed result, and every unit held by a trusted provider audited.
    let params = with_market(MarketParams {
        trusted_reputation: REPUTATION_START,
        trusted_min_valid: 1,
        trusted_min_age_secs: 0,
        audit_ppm: 1_000_000,
        ..one_vote_disputes()
    });
    let mut m = Market::new(params);
    m.setup(&PROVIDERS);
    // Job 0: nobody is trusted, so its unit gets two replicas at once, and an audit once they
    // committed; all three agree, and every provider earns a confirmed result.
    m.agreed_by_a_pair_and_its_audit(0);
    assert!((0..3).all(|p| m.provider(p).valid == 1));

    // Job 1: one trusted provider reaches trust 2 alone. Its audit replica is sought only
    // once it committed, from a seed drawn after its commitment.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let unit = m.unit(1, 0);
    assert_eq!(unit.replicas.len(), 1, "{unit:?}");
    assert!(!unit.sought);
    let liar_id = unit.replicas[0].provider;
    let liar = PROVIDERS[liar_id as usize];
    let lie = ([0xEE; 32], 1_500_000_000);
    let tx = m.commit(liar, lie, 1, 0);
    m.ok(vec![tx]);
    m.draw_audits();
    let unit = m.unit(1, 0);
    assert_eq!(unit.replicas.len(), 2, "{unit:?}");
    assert_eq!(
        unit.reveal_deadline, None,
        "reveals wait for the audit's commitment"
    );
    let auditor = PROVIDERS[unit.replicas[1].provider as usize];
    let tx = m.commit(auditor, truth(1, 0), 1, 0);
    m.ok(vec![tx]);
    // One against one, while both are sealed: the trusted liar's weight does not count in a
    // dispute, so the reveals stay closed and a third replica is sought (and matched in the
    // same block, to the provider left) before anyone reveals.
    let unit = m.unit(1, 0);
    assert_eq!(unit.reveal_deadline, None);
    assert_eq!(unit.replicas.len(), 3);
    m.decide(1, 0, truth(1, 0), &[(liar, lie), (auditor, truth(1, 0))]);
    let unit = m.unit(1, 0);
    assert_eq!(unit.state, UnitState::Accepted);
    assert_eq!(unit.accepted, Some(truth(1, 0)));
    assert_eq!(m.provider(liar_id).invalid, 1);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// A market of the three providers and two more (seeds 14 and 15, funded by the requester),
/// all past probation, where every unit is audited: room for a dispute's two deciding
/// replicas. Returns the newcomers' account seeds.
fn five_providers_all_audited() -> (Market, [u64; 2]) {
    let mut m = Market::new(Params {
        market: MarketParams {
            audit_ppm: 1_000_000,
            probation_results: 0,
            ..MarketParams::default()
        },
        ..Params::default()
    });
    m.setup(&PROVIDERS);
    let more = [0, 1].map(|i| provider_seed(PROVIDERS.len() as u64 + i));
    for p in more {
        let fund = m.tx(
            REQUESTER,
            Action::Transfer {
                to: addr(p),
                amount: Amount::from_exo(1_000),
            },
        );
        m.ok(vec![fund]);
        let join = m.join(p, 8, Amount::from_exo(1)).to_vec();
        m.ok(join);
    }
    (m, more)
}

/// Job 0, one unit at trust 2, on a pair of providers dealt in one block that both commit
/// `pair_result`, then audited by a third provider that commits the truth: the seals tie (the
/// pair dealt together counts one vote) and a first deciding replica is dealt, which commits
/// `decider_result`. Either way one vote ahead is short of the margin of two, so a second
/// decider is dealt. Returns the pair, the auditor and the first decider.
fn a_pair_against_its_audit(
    m: &mut Market,
    pair_result: (Hash32, u64),
    decider_result: (Hash32, u64),
) -> ([u64; 2], u64, u64) {
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let unit = m.unit(0, 0);
    assert_eq!(unit.replicas.len(), 2);
    assert_eq!(
        unit.replicas[0].assigned_height, unit.replicas[1].assigned_height,
        "the pair was dealt together"
    );
    let holders = m.holders(0, 0);
    let pair = [holders[0], holders[1]];
    let txs = pair
        .iter()
        .map(|p| m.commit(*p, pair_result, 0, 0))
        .collect();
    m.ok(txs);
    m.draw_audits();
    let holders = m.holders(0, 0);
    assert_eq!(holders.len(), 3, "audited");
    let auditor = holders[2];
    let tx = m.commit(auditor, truth(0, 0), 0, 0);
    m.ok(vec![tx]);
    let unit = m.unit(0, 0);
    assert_eq!(unit.reveal_deadline, None, "a tie opens no reveal");
    assert_eq!(unit.replicas.len(), 4, "a blind decider is dealt: {unit:?}");
    let decider = *m.holders(0, 0).last().expect("a decider");
    let tx = m.commit(decider, decider_result, 0, 0);
    m.ok(vec![tx]);
    let unit = m.unit(0, 0);
    assert_eq!(unit.reveal_deadline, None, "one vote ahead decides nothing");
    assert_eq!(
        unit.replicas.len(),
        5,
        "a second decider is dealt: {unit:?}"
    );
    (pair, auditor, decider)
}

/// Found by the strategic simulation (issue C4, colluders): two identities of one operator
/// that a batch happened to deal onto one unit together commit the same lie, and the unit's
/// hidden audit, honest, disagrees. Counted one replica one vote, the pair won two to one: the
/// lie was accepted and the honest auditor slashed. Replicas dealt in one block now share one
/// vote, so the audit ties with the pair, blind deciding replicas break the tie, and only the
/// colluders lose.
#[test]
fn a_colluding_pair_dealt_onto_one_unit_cannot_outvote_and_slash_its_auditor() {
    let (mut m, _) = five_providers_all_audited();
    // The first decider sides with the audit: two votes against one is not yet a margin of
    // two, so a second decider is dealt before anyone reveals.
    let (pair, auditor, first) = a_pair_against_its_audit(&mut m, LIE, truth(0, 0));
    m.decide(
        0,
        0,
        truth(0, 0),
        &[
            (pair[0], LIE),
            (pair[1], LIE),
            (auditor, truth(0, 0)),
            (first, truth(0, 0)),
        ],
    );
    let unit = m.unit(0, 0);
    assert_eq!(unit.accepted, Some(truth(0, 0)));
    let id = |seed: u64| m.provider_id(seed);
    assert_eq!(
        m.provider(id(auditor)).invalid,
        0,
        "the auditor keeps its bond"
    );
    assert_eq!(m.provider(id(auditor)).valid, 1);
    for p in &pair {
        assert_eq!(m.provider(id(*p)).invalid, 1, "each colluder is caught");
    }
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// The colluding pair's operator also holds the first deciding replica (it happens to a share
/// of the disputes equal to its share of capacity): counted by head count, its decider tipped
/// the dispute two votes to one and the honest auditor was slashed. A dispute is now decided
/// only by a margin of two votes: short of it the reveals stay closed while another decider is
/// sought, and a unit that none comes to fails unpaid with nobody punished once its job ends
/// (here the requester cancels): the requester gets its escrow back, never the lie.
#[test]
fn a_colluding_decider_cannot_tip_a_dispute_by_one_vote_and_slash_the_auditor() {
    let (mut m, _) = five_providers_all_audited();
    let (pair, auditor, colluder) = a_pair_against_its_audit(&mut m, LIE, LIE);
    let second = *m.holders(0, 0).last().expect("a decider");
    let tx = m.commit(second, truth(0, 0), 0, 0);
    m.ok(vec![tx]);
    // Two against two: a dispute may take one replica past the job's five, and with every
    // provider used, the unit waits for it.
    let unit = m.unit(0, 0);
    assert_eq!(unit.reveal_deadline, None, "a tie opens no reveal");
    assert!(unit.sought, "a third decider is sought: {unit:?}");
    let bonds: Vec<Amount> = (0..5).map(|id| m.provider(id).bond).collect();
    let cancel = m.tx(REQUESTER, Action::CancelJob { job: 0 });
    m.ok(vec![cancel]);
    let reveals = [
        (pair[0], LIE),
        (pair[1], LIE),
        (auditor, truth(0, 0)),
        (colluder, LIE),
        (second, truth(0, 0)),
    ]
    .iter()
    .map(|(p, r)| m.reveal(*p, *r, 0, 0))
    .collect();
    m.ok(reveals);
    let unit = m.unit(0, 0);
    assert_eq!(unit.state, UnitState::Failed);
    assert_eq!(unit.accepted, None);
    for id in 0..5 {
        let provider = m.provider(id);
        assert_eq!(
            provider.bond, bonds[id as usize],
            "provider {id} keeps its bond"
        );
        assert_eq!(provider.invalid, 0, "provider {id}");
    }
    let job = m.job(0);
    assert_eq!(job.accounts.paid_total(), Amount::ZERO);
    assert_eq!(job.accounts.refunded, job.accounts.escrowed);
    m.accounts_add_up(0);
}

/// A catch took 200 reputation and nothing else from a trusted provider's standing: one at
/// the top of the scale (1,000) stayed at 800, still trusted, and went on holding units alone
/// with only the hidden audit to check it. A wrong result now ends its record of confirmed
/// results, so trusted weight needs `trusted_min_valid` new confirmations whatever reputation
/// is left.
#[test]
fn a_caught_liar_loses_its_trusted_weight_whatever_reputation_it_keeps() {
    let params = MarketParams {
        // Trusted on one confirmed result, at any reputation.
        trusted_reputation: 0,
        trusted_min_valid: 1,
        trusted_min_age_secs: 0,
        audit_ppm: 1_000_000,
        ..veterans().market
    };
    let mut m = Market::new(with_market(params.clone()));
    m.setup(&PROVIDERS);
    // Job 0: two providers and their audit agree, and all three are trusted.
    let all = m.agreed_by_a_pair_and_its_audit(0);
    for p in &all {
        let provider = m.provider(m.provider_id(*p));
        assert_eq!(market::weight(&params, &provider, 0), 2);
    }
    // Job 1: a trusted provider holds its unit alone and lies; the audit disagrees, and a
    // deciding replica settles it.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    assert_eq!(
        m.holders(1, 0).len(),
        1,
        "trusted weight reaches trust 2 alone"
    );
    let (liar, auditor) = m.alone_against_its_audit(1, LIE);
    m.decide(1, 0, truth(1, 0), &[(liar, LIE), (auditor, truth(1, 0))]);
    assert_eq!(m.unit(1, 0).accepted, Some(truth(1, 0)));
    let caught = m.provider(m.provider_id(liar));
    assert_eq!(caught.invalid, 1);
    // The trusted threshold is 0, so no reputation the catch took can explain the lost weight.
    assert_eq!(
        caught.valid, 0,
        "a catch ends the record of confirmed results"
    );
    assert_eq!(market::weight(&params, &caught, 0), 1);
}

/// What a provider holding a unit sees of it before it commits: the unit, the job, and the
/// job's waiting list (whether another replica of the unit is sought).
fn seen_before_committing(m: &Market, job: u64, unit: u32) -> (Unit, Job, Option<Vec<u8>>) {
    let waiting = m.chain.store.entries.get(&keys::waiting_key(job)).cloned();
    (m.unit(job, unit), m.job(job), waiting)
}

/// A market of the three providers, nobody on probation, where units are audited with
/// probability `audit_ppm`.
fn audited_market(audit_ppm: u32) -> Market {
    let mut m = Market::new(Params {
        market: MarketParams {
            audit_ppm,
            ..veterans().market
        },
        ..Params::default()
    });
    m.setup(&PROVIDERS);
    m
}

/// Audit C4: the audit replica was sought with the unit, on chain before the audited provider
/// computed, so a provider could lie whenever it saw no second replica. Now a unit that will
/// be audited and one that will not look the same until every replica committed.
#[test]
fn a_provider_cannot_see_before_committing_whether_its_unit_is_audited() {
    let mut always = audited_market(1_000_000);
    // The rarest audit the parameters allow: none is drawn in this run.
    let mut never = audited_market(1);
    for m in [&mut always, &mut never] {
        let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
        m.ok(vec![tx]);
    }
    assert_eq!(
        seen_before_committing(&always, 0, 0),
        seen_before_committing(&never, 0, 0)
    );
    let unit = always.unit(0, 0);
    assert_eq!(unit.replicas.len(), 1);
    assert!(!unit.sought);
    // It lies, seeing no second replica; the draw comes after its commitment.
    let lie = ([0xEE; 32], 1_500_000_000);
    for m in [&mut always, &mut never] {
        let liar = m.holders(0, 0)[0];
        let tx = m.commit(liar, lie, 0, 0);
        m.ok(vec![tx]);
        assert_eq!(
            m.unit(0, 0).audit,
            AuditDraw::Due(m.chain.height + AUDIT_SEED_DELAY)
        );
        m.draw_audits();
        assert!(m.unit(0, 0).audit.is_drawn());
    }
    assert_eq!(always.unit(0, 0).replicas.len(), 2, "the audit replica");
    assert_eq!(always.unit(0, 0).reveal_deadline, None);
    assert_eq!(never.unit(0, 0).replicas.len(), 1);
    assert!(never.unit(0, 0).reveal_deadline.is_some());
}

/// The audit draw waits for blocks, not for time: with blocks a tenth of a second apart, a
/// unit whose last replica committed is drawn [`AUDIT_SEED_DELAY`] blocks later and its
/// reveals open then. Filed under the next second of block time, as it was, the draw waited
/// for that second: about half a second more on average, every unit, at light load.
#[test]
fn the_audit_is_drawn_audit_seed_delay_blocks_after_the_last_commitment_however_short_the_blocks() {
    let mut m = audited_market(1);
    m.chain.block_interval_ms = 100;
    // Start the job early in a second, so that the seed's blocks end well inside it.
    while m.chain.next_time_ms() % 1_000 != 100 {
        m.ok(vec![]);
    }
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    let holder = m.holders(0, 0)[0];
    let tx = m.commit(holder, ([0xAB; 32], 1_500_000_000), 0, 0);
    m.ok(vec![tx]);
    let committed = (m.chain.height, m.chain.time_ms);
    for _ in 1..AUDIT_SEED_DELAY {
        m.ok(vec![]);
        assert!(
            !m.unit(0, 0).audit.is_drawn(),
            "not before its seed's block"
        );
    }
    m.ok(vec![]);
    let unit = m.unit(0, 0);
    assert!(unit.audit.is_drawn(), "{:?}", unit.audit);
    assert!(unit.reveal_deadline.is_some(), "reveals are open");
    assert_eq!(m.chain.height, committed.0 + AUDIT_SEED_DELAY);
    assert_eq!(
        m.chain.time_ms / 1_000,
        committed.1 / 1_000,
        "within the second of the commitment"
    );
}

/// Audit C4: a unit started with two trusted replicas was never audited, so two farmed
/// Sybils agreeing on a lie were paid for it. Every unit now draws its audit, whatever its
/// trust level and however trusted its replicas.
#[test]
fn units_of_two_trusted_replicas_are_still_audited() {
    let mut m = Market::new(Params {
        market: MarketParams {
            // Everyone is trusted from the start: weight 2 each.
            trusted_reputation: 0,
            trusted_min_valid: 0,
            trusted_min_age_secs: 0,
            audit_ppm: 1_000_000,
            ..veterans().market
        },
        ..Params::default()
    });
    first_matched_apart(&mut m);
    // Trust 4: two trusted replicas reach it alone.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 4))));
    m.ok(vec![tx]);
    // Jobs 0 to 2 matched the providers apart.
    let job = 3;
    let sybils = m.holders(job, 0);
    assert_eq!(sybils.len(), 2);
    let lie = ([0xEE; 32], 1_500_000_000);
    let txs = sybils.iter().map(|p| m.commit(*p, lie, job, 0)).collect();
    m.ok(txs);
    m.draw_audits();
    let holders = m.holders(job, 0);
    assert_eq!(holders.len(), 3, "the audit replica");
    let auditor = holders[2];
    let tx = m.commit(auditor, truth(job, 0), job, 0);
    m.ok(vec![tx]);
    // Two agreeing Sybils do not outvote their auditor: two seals against one give no verdict
    // at trust 4, so the reveals stay closed while a fourth replica is sought (none is left
    // here, and the job's wait window would end it); the lie is not accepted nor paid.
    let unit = m.unit(job, 0);
    assert_eq!(unit.reveal_deadline, None);
    assert!(unit.sought);
    assert_eq!(unit.state, UnitState::Running);
    assert_eq!(m.job(job).accounts.paid_total(), Amount::ZERO);
    let tx = m.reveal(sybils[0], lie, job, 0);
    assert_eq!(refused(&m.block(vec![tx])[0]), "reveal_not_open");
}

/// Publishes the app and registers the three providers, each first matched in a block of its
/// own: each registers with the cheapest offer so far in the block that submits a trust-1 job
/// (jobs 0 to 2, left running). Providers first matched in the same block get no trusted
/// bonus on a unit they share.
fn first_matched_apart(m: &mut Market) {
    let publish = m.publish(Amount::ZERO);
    m.ok(vec![publish]);
    for (i, p) in PROVIDERS.iter().enumerate() {
        let price = Amount(Amount::from_exo(1).0 / 10 * (18 - 3 * i as u128));
        let mut txs = m.join(*p, 8, price).to_vec();
        txs.push(m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1)))));
        m.ok(txs);
        assert_eq!(m.holders(i as u64, 0), vec![*p]);
    }
}

/// Runs the next block of `txs` on a seed of the caller's choice (a block's seed is its
/// parent's digest, which that parent's proposer could choose), all accepted.
fn seeded_block(m: &mut Market, seed: u8, txs: Vec<SignedTx>) {
    let outcome = m
        .chain
        .run(BlockInput {
            env: BlockEnv {
                height: m.chain.height + 1,
                proposer: addr(PROPOSER),
                skipped_leaders: Vec::new(),
                parent_voters: Vec::new(),
                seed: [seed; 32],
                time_ms: m.chain.next_time_ms(),
            },
            evidence: Vec::new(),
            txs,
            signatures: Signatures::Verify,
            policy: Policy::Verify,
        })
        .expect("the ledger runs the block");
    for receipt in outcome.receipts {
        assert_eq!(receipt.expect("fresh").status, TxStatus::Ok);
    }
}

/// Whether a trust-1 unit is audited, given the seeds of the block that assigns it, the block
/// that takes its commitment, the next one (whose seed the commit block's proposer chose) and
/// the one after.
fn audited_with_seeds(assign: u8, commit: u8, after_commit: u8, draw: u8) -> bool {
    let mut m = audited_market(500_000);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    seeded_block(&mut m, assign, vec![tx]);
    let holder = m.holders(0, 0)[0];
    let tx = m.commit(holder, truth(0, 0), 0, 0);
    seeded_block(&mut m, commit, vec![tx]);
    seeded_block(&mut m, after_commit, Vec::new());
    seeded_block(&mut m, draw, Vec::new());
    assert!(m.unit(0, 0).audit.is_drawn());
    m.unit(0, 0).replicas.len() > 1
}

/// Audit H7: the audit was drawn from the seed of the block that assigned the unit, known
/// before the provider computed, and a block's seed is its parent's digest, which that
/// parent's proposer can grind. The draw now takes the seed of a block built after the
/// commitment was final: neither the committing provider nor the proposer of the block that
/// took its commitment chooses or sees it.
#[test]
fn an_audit_is_drawn_from_no_seed_the_committer_or_its_blocks_proposer_knew() {
    for draw in [10u8, 11, 12, 13] {
        let outcome = audited_with_seeds(0, 0, 0, draw);
        for (assign, commit, after) in [(1, 2, 3), (3, 1, 2), (2, 3, 1), (7, 7, 7)] {
            assert_eq!(
                audited_with_seeds(assign, commit, after, draw),
                outcome,
                "seeds {assign} {commit} {after} {draw}"
            );
        }
    }
    // The seed of the drawing block decides, either way.
    let outcomes: Vec<bool> = (10u8..30)
        .map(|draw| audited_with_seeds(0, 0, 0, draw))
        .collect();
    assert!(
        outcomes.contains(&true) && outcomes.contains(&false),
        "{outcomes:?}"
    );
}

/// Audit C4: a lone replica claimed the fuel limit and was paid for it unchecked. Fuel is part
/// of the result an audit compares: an inflated claim disagrees with the audit replica's like a
/// wrong digest, is slashed like one, and the unit is billed the fuel the others agreed on.
#[test]
fn an_inflated_fuel_claim_is_caught_by_its_audit_and_the_agreed_fuel_billed() {
    let mut m = audited_market(1_000_000);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    let (digest, fuel) = truth(0, 0);
    let inflated = (digest, FUEL_LIMIT);
    assert!(inflated.1 > fuel);
    let (inflater, auditor) = m.alone_against_its_audit(0, inflated);
    // One against one: the dispute's third replica decides, sealed like the others.
    assert_eq!(m.holders(0, 0).len(), 3);
    m.decide(
        0,
        0,
        truth(0, 0),
        &[(inflater, inflated), (auditor, truth(0, 0))],
    );
    let unit = m.unit(0, 0);
    assert_eq!(unit.accepted, Some(truth(0, 0)));
    let caught = m.provider(m.provider_id(inflater));
    assert_eq!(caught.invalid, 1);
    assert!(caught.bond < Amount::from_exo(100));
    // Two replicas paid for the agreed fuel at 1 EXO per 10^9, not the claimed limit.
    let paid = m.job(0).accounts.paid_total();
    assert_eq!(paid, Amount(2 * u128::from(fuel)));
    m.accounts_add_up(0);
}

/// With no audit, or no slash for a caught lie, lying on a unit held alone pays whatever it
/// is worth; such parameters are refused at genesis.
#[test]
fn parameters_under_which_a_lie_costs_nothing_are_refused_at_genesis() {
    let ok = MarketParams::default();
    for bad in [
        MarketParams {
            audit_ppm: 0,
            ..ok.clone()
        },
        MarketParams {
            slash_wrong_bps: 0,
            ..ok.clone()
        },
    ] {
        assert_eq!(
            bad.validate(),
            Err(exo_ledger::modules::market::ParamsError::Deterrence),
            "{bad:?}"
        );
    }
}

#[test]
fn probation_and_the_floor_limit_who_gets_work() {
    let params = with_market(MarketParams {
        audit_ppm: 1,
        ..MarketParams::default()
    });
    let mut m = Market::new(params);
    m.setup(&PROVIDERS[..1]);
    // A new provider with eight free slots holds one replica until a result is confirmed.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(3, 1))));
    m.ok(vec![tx]);
    assert_eq!(m.work(0).len(), 1);
    assert_eq!(m.job(0).waiting, 2);
    // Below the floor, it gets nothing at all: with the floor at the starting reputation, one
    // missed deadline is enough.
    let mut m = Market::new(with_market(MarketParams {
        min_match_reputation: REPUTATION_START,
        commit_window_secs: 3,
        audit_ppm: 1,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..1]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    assert_eq!(m.work(0).len(), 1);
    for _ in 0..3 {
        m.ok(vec![]);
    }
    assert!(m.provider(0).reputation < REPUTATION_START);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    assert!(m.work(0).is_empty());
    assert_eq!(m.job(1).waiting, 1);
}

#[test]
fn two_identical_jobs_in_one_block_get_their_own_ids_in_their_receipts() {
    let mut m = Market::new(Params::default());
    m.setup(&[]);
    let first = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    let second = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    let receipts = m.chain.execute_block(&addr(PROPOSER), &[first, second]);
    let ids: Vec<Option<u64>> = receipts
        .iter()
        .map(|r| r.as_ref().expect("fresh").job_id())
        .collect();
    assert_eq!(ids, vec![Some(0), Some(1)]);
    // A refused submission creates nothing.
    let mut broken = spec(1, 1);
    broken.units = 0;
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(broken)));
    let receipts = m.chain.execute_block(&addr(PROPOSER), &[tx]);
    assert_eq!(receipts[0].as_ref().expect("fresh").created, vec![]);
}

/// A job so large that its waiting units could outgrow their record (every unit waiting with
/// its replicas' providers excluded) is refused at submission, with the limit in the receipt,
/// instead of halting the chain at the end of a later block.
#[test]
fn a_job_whose_waiting_list_could_outgrow_its_record_is_refused() {
    use exo_ledger::modules::market::{JobProblem, Refusal, max_units_per_job};
    let mut m = Market::new(Params::default());
    m.setup(&[]);
    let max = max_units_per_job();
    assert!((4_000..exo_types::MAX_JOB_UNITS).contains(&max), "{max}");
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(max + 1, 1))));
    let statuses = m.block(vec![tx]);
    assert_eq!(
        statuses[0],
        TxStatus::Rejected(Rejection::Market(Refusal::InvalidJob(
            JobProblem::UnitsOverWaitingBound { max }
        )))
    );
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(max, 1))));
    assert_eq!(m.block(vec![tx]), vec![TxStatus::Ok]);
}

/// A job cancelled while one of its running units waits for another replica: the replicas
/// that already committed can still reveal, the unit is judged, and the job closes with its
/// refund (before, the unit's reveals never opened and the escrow stayed held for good).
#[test]
fn cancelling_a_job_whose_unit_still_seeks_a_replica_lets_its_commitments_reveal() {
    let params = with_market(MarketParams {
        audit_ppm: 1,
        ..MarketParams::default()
    });
    let mut m = Market::new(params);
    m.setup(&PROVIDERS[..1]);
    let p = PROVIDERS[0];
    // Trust 2 with one provider: the unit starts on it and waits for a second replica.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    assert_eq!(m.unit(0, 0).replicas.len(), 1);
    assert_eq!(m.job(0).waiting, 1);
    let commit = m.commit(p, truth(0, 0), 0, 0);
    m.ok(vec![commit]);
    assert_eq!(m.unit(0, 0).reveal_deadline, None);

    let cancel = m.tx(REQUESTER, Action::CancelJob { job: 0 });
    m.ok(vec![cancel]);
    m.draw_audits();
    assert!(
        m.unit(0, 0).reveal_deadline.is_some(),
        "reveals open once the audit draw after cancellation is behind the unit"
    );
    let reveal = m.reveal(p, truth(0, 0), 0, 0);
    m.ok(vec![reveal]);
    // One replica cannot reach trust 2: the unit fails, unpaid and unpunished, and the job
    // closes with everything refunded.
    let job = m.job(0);
    assert_eq!(m.unit(0, 0).state, UnitState::Failed);
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.accounts.held, Amount::ZERO);
    assert_eq!(job.accounts.refunded, job.accounts.escrowed);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// An unmatchable job: a region no provider declares.
fn unmatchable(units: u32) -> JobSpec {
    let mut spec = spec(units, 1);
    spec.requirements.region = Some("nowhere".into());
    spec.max_price_per_unit = Amount(1);
    spec.requirements.fuel_limit = 1;
    spec
}

/// One account submits a flood of jobs nobody can run: it holds at most its cap of open jobs,
/// the rest are refused with the cap in the refusal, and another requester's job is still
/// accepted and matched.
#[test]
fn a_thousand_unmatchable_jobs_do_not_lock_out_new_jobs() {
    use exo_ledger::modules::market::Refusal;
    let mut m = Market::new(Params::default());
    m.setup(&PROVIDERS[..1]);
    let max = MarketParams::default().max_open_jobs_per_account;
    let attacker = DEVELOPER;
    let flood: Vec<SignedTx> = (0..max + 4)
        .map(|_| m.tx(attacker, Action::SubmitJob(Box::new(unmatchable(1_000)))))
        .collect();
    let statuses = m.block(flood);
    let ok = statuses.iter().filter(|s| **s == TxStatus::Ok).count();
    assert_eq!(ok, max as usize);
    assert_eq!(
        statuses[max as usize],
        TxStatus::Rejected(Rejection::Market(Refusal::TooManyOpenJobs {
            held: max,
            max
        }))
    );
    let honest = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    assert_eq!(m.block(vec![honest]), vec![TxStatus::Ok]);
    let job = u64::from(max);
    assert_eq!(m.job(job).running, 1, "the honest job is matched");
    // Closing a job frees its place under the cap.
    let cancel = m.tx(attacker, Action::CancelJob { job: 0 });
    m.ok(vec![cancel]);
    let again = m.tx(attacker, Action::SubmitJob(Box::new(unmatchable(1))));
    assert_eq!(m.block(vec![again]), vec![TxStatus::Ok]);
}

/// A provider cannot squat the book: an offer with no slot or one that never expires is
/// refused, and it holds at most its cap of offers.
#[test]
fn an_offer_with_no_slot_or_a_far_expiry_is_refused() {
    use exo_ledger::modules::market::Refusal;
    let mut m = Market::new(Params::default());
    m.setup(&PROVIDERS[..1]);
    let p = PROVIDERS[0];
    let lifetime = MarketParams::default().max_offer_lifetime_secs;
    let post = |m: &mut Market, slots, expiry_secs| {
        let tx = m.offer(p, slots, expiry_secs);
        m.block(vec![tx]).remove(0)
    };
    assert_eq!(
        post(&mut m, 0, 100),
        TxStatus::Rejected(Rejection::Market(Refusal::InvalidOffer { expiry: None }))
    );
    // Lifetimes count from the posting block's time, in seconds.
    let now = m.chain.next_time_ms() / 1_000;
    assert_eq!(
        post(&mut m, 1, u64::MAX),
        TxStatus::Rejected(Rejection::Market(Refusal::OfferTooLong {
            expiry: u64::MAX,
            max: now + lifetime,
        }))
    );
    let now = m.chain.next_time_ms() / 1_000;
    assert_eq!(
        post(&mut m, 1, now),
        TxStatus::Rejected(Rejection::Market(Refusal::InvalidOffer {
            expiry: Some((now, now))
        }))
    );
    let latest = m.chain.next_time_ms() / 1_000 + lifetime;
    assert_eq!(post(&mut m, 1, latest), TxStatus::Ok);
}

/// Audit H6: an offer expired at a block height, so its lifetime in time depended on how fast
/// blocks came (a thousand blocks were ten seconds under load and a quarter of an hour idle).
/// An offer posted to expire N seconds later now takes work until N seconds of block time have
/// passed and none after, whatever the block rate.
#[test]
fn an_offer_of_n_seconds_takes_work_for_n_seconds_whatever_the_block_rate() {
    const LIFETIME: u64 = 30;
    for interval_ms in [100, 1_000, 3_000] {
        // A job submitted this many seconds after the offer: (seconds, matched).
        for (after, matched) in [(LIFETIME - 4, true), (LIFETIME, false)] {
            let mut m = Market::new(Params::default());
            m.chain.block_interval_ms = interval_ms;
            m.setup(&[]);
            let p = PROVIDERS[0];
            m.register(p);
            let posted = m.chain.next_time_ms() / 1_000;
            let offer = m.offer(p, 1, posted + LIFETIME);
            m.ok(vec![offer]);
            while m.chain.next_time_ms() / 1_000 < posted + after {
                m.ok(vec![]);
            }
            let job = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
            m.ok(vec![job]);
            assert_eq!(
                m.job(0).waiting == 0,
                matched,
                "at {interval_ms} ms a block, a job {after} s after the offer"
            );
            let book: IdList = m.chain.get(&keys::book_key()).unwrap_or_default();
            assert_eq!(
                book.0.is_empty(),
                !matched,
                "an expired offer leaves the book"
            );
        }
    }
}

/// Expired offers leave the book when a batch runs, and a batch runs only when a job waits.
/// A worker renews its offer before it expires, so on a market with no jobs its expired offers
/// used to pile up until its cap of offers refused the renewal (after about an hour): it then
/// sold nothing when the next job came. Renewing for hours of empty blocks is always accepted,
/// the provider never holds more than its cap, and the renewal sells even while the expired
/// offer before it is still on the book (a newcomer's probation room went to the expired one).
#[test]
fn a_provider_renewing_its_offer_for_hours_on_an_idle_market_is_never_refused() {
    const LIFETIME: u64 = 600;
    let mut m = Market::new(Params::default());
    m.chain.block_interval_ms = 30_000;
    m.setup(&[]);
    let p = PROVIDERS[0];
    m.register(p);
    let cap = MarketParams::default().max_offers_per_provider as usize;
    let mut renewed_at = None;
    for _ in 0..3 * 3_600 / 30 {
        let now = m.chain.next_time_ms() / 1_000;
        let txs = if renewed_at.is_none_or(|at| now >= at + LIFETIME * 4 / 5) {
            renewed_at = Some(now);
            vec![m.offer(p, 1, now + LIFETIME)]
        } else {
            vec![]
        };
        m.ok(txs);
        let book: IdList = m.chain.get(&keys::book_key()).unwrap_or_default();
        assert!(
            book.0.len() <= cap,
            "the book holds {} offers",
            book.0.len()
        );
    }
    let job = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![job]);
    assert_eq!(m.job(0).running, 1, "the renewed offer sells");
}

/// A book full of expired offers does not lock out a live one: posting to a full book first
/// clears the offers whose time is up.
#[test]
fn a_book_full_of_expired_offers_takes_a_new_one() {
    use exo_ledger::modules::market::Refusal;
    let mut m = Market::new(with_market(MarketParams {
        max_open_offers: 2,
        ..MarketParams::default()
    }));
    m.setup(&[]);
    for p in &PROVIDERS[..3] {
        m.register(*p);
    }
    let post = |m: &mut Market, p, lifetime| {
        let now = m.chain.next_time_ms() / 1_000;
        let tx = m.offer(p, 1, now + lifetime);
        m.block(vec![tx]).remove(0)
    };
    assert_eq!(post(&mut m, PROVIDERS[0], 20), TxStatus::Ok);
    assert_eq!(post(&mut m, PROVIDERS[1], 20), TxStatus::Ok);
    assert_eq!(
        post(&mut m, PROVIDERS[2], 20),
        TxStatus::Rejected(Rejection::Market(Refusal::BookFull { max: 2 })),
        "a full book of live offers refuses"
    );
    m.chain.pass_secs(25);
    assert_eq!(post(&mut m, PROVIDERS[2], 20), TxStatus::Ok);
    let book: IdList = m.chain.get(&keys::book_key()).unwrap_or_default();
    assert_eq!(book.0.len(), 1, "the expired offers left the book");
}

/// One developer cannot fill the chain's app table: it publishes at most its cap of apps.
#[test]
fn one_developer_cannot_publish_past_its_cap_of_apps() {
    use exo_ledger::modules::market::Refusal;
    let mut m = Market::new(Params::default());
    let max = MarketParams::default().max_apps_per_account;
    let txs: Vec<SignedTx> = (0..max + 1)
        .map(|i| {
            let mut module_hash = [0u8; 32];
            module_hash[..4].copy_from_slice(&i.to_be_bytes());
            m.tx(
                DEVELOPER,
                Action::PublishApp {
                    module_hash,
                    name: "squat".into(),
                    version: "1".into(),
                    royalty_per_unit: Amount(1),
                },
            )
        })
        .collect();
    let statuses = m.block(txs);
    assert!(statuses[..max as usize].iter().all(|s| *s == TxStatus::Ok));
    assert_eq!(
        statuses[max as usize],
        TxStatus::Rejected(Rejection::Market(Refusal::TooManyApps { held: max, max }))
    );
}

/// A job nobody can run does not wait for ever: once its waiting window passes, its units
/// still waiting fail, the job closes with everything refunded through the bank, and its
/// place under the requester's cap comes back.
#[test]
fn an_unmatchable_job_expires_and_its_escrow_comes_back() {
    let window = 5;
    let params = with_market(MarketParams {
        job_wait_window_secs: window,
        max_open_jobs_per_account: 1,
        ..MarketParams::default()
    });
    let mut m = Market::new(params);
    m.setup(&PROVIDERS[..1]);
    let before = m.chain.account(&addr(REQUESTER)).balance;
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(unmatchable(1_000))));
    m.ok(vec![tx]);
    let expires = m.chain.height + window;
    while m.chain.height + 1 < expires {
        m.ok(vec![]);
        assert_eq!(m.job(0).state, JobState::Open);
    }
    m.ok(vec![]);
    let job = m.job(0);
    assert_eq!(job.state, JobState::Expired);
    assert_eq!((job.waiting, job.running, job.failed), (0, 0, 1_000));
    assert_eq!(job.accounts.held, Amount::ZERO);
    assert_eq!(job.accounts.refunded, job.accounts.escrowed);
    assert_eq!(
        before.0 - m.chain.account(&addr(REQUESTER)).balance.0,
        1_000,
        "the requester lost only its fee"
    );
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
    let again = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    assert_eq!(m.block(vec![again]), vec![TxStatus::Ok]);
}

/// A job whose window passes while one unit runs and another still waits: the waiting unit
/// fails at once, the running one finishes and is paid, and the job then closes with the rest
/// refunded.
#[test]
fn an_expired_job_closes_once_its_running_units_end() {
    let window = 3;
    let params = with_market(MarketParams {
        job_wait_window_secs: window,
        audit_ppm: 1,
        ..MarketParams::default()
    });
    let mut m = Market::new(params);
    m.setup(&PROVIDERS[..1]);
    let p = PROVIDERS[0];
    // A provider on probation runs one unit at a time: unit 1 waits behind unit 0.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(2, 1))));
    m.ok(vec![tx]);
    let expires = m.chain.height + window;
    assert_eq!((m.job(0).running, m.job(0).waiting), (1, 1));
    while m.chain.height < expires {
        m.ok(vec![]);
    }
    let job = m.job(0);
    assert_eq!(job.state, JobState::Expired);
    assert_eq!((job.waiting, job.running, job.failed), (0, 1, 1));
    assert!(job.accounts.held > Amount::ZERO);
    let commit = m.commit(p, truth(0, 0), 0, 0);
    m.ok(vec![commit]);
    m.draw_audits();
    let reveal = m.reveal(p, truth(0, 0), 0, 0);
    m.ok(vec![reveal]);
    let job = m.job(0);
    assert_eq!(m.unit(0, 0).state, UnitState::Accepted);
    assert_eq!((job.running, job.accepted, job.failed), (0, 1, 1));
    assert_eq!(job.state, JobState::Expired);
    assert_eq!(job.accounts.held, Amount::ZERO);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// Params for the list-bound tests: no audits, no probation limit in the way.
fn roomy(market: MarketParams) -> Params {
    with_market(MarketParams {
        audit_ppm: 1,
        probation_slots: 64,
        ..market
    })
}

/// A batch that could place more replicas than a block's assignment log may hold places its
/// cap and defers the rest to the next blocks, whole units at a time.
#[test]
fn a_block_assigns_at_most_its_cap_and_defers_the_rest() {
    let mut m = Market::new(roomy(MarketParams {
        max_assignments_per_block: 3,
        max_deadlines_per_second: 3,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..1]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(8, 1))));
    m.ok(vec![tx]);
    let mut per_block = Vec::new();
    for _ in 0..3 {
        let log: exo_ledger::modules::market::records::AssignmentList = m
            .chain
            .get(&keys::assignments_key(m.chain.height))
            .unwrap_or_default();
        per_block.push(log.0.len());
        m.ok(vec![]);
    }
    assert_eq!(per_block, vec![3, 3, 2]);
    assert_eq!(m.job(0).running, 8);
}

/// When a second's deadlines are full, a new deadline goes to the next second with room: it
/// is deferred, never filed past the bound, and it still falls due.
#[test]
fn a_full_deadline_height_defers_new_deadlines_to_the_next() {
    use exo_ledger::modules::market::records::DeadlineCount;
    let window = 10;
    let mut m = Market::new(roomy(MarketParams {
        max_assignments_per_block: 3,
        max_deadlines_per_second: 3,
        commit_window_secs: window,
        job_wait_window_secs: window,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..1]);
    // Three jobs' wait deadlines fill height h + window; their three replicas' commit
    // deadlines, due at the same height, go to the next one.
    let txs: Vec<SignedTx> = (0..3)
        .map(|_| m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1)))))
        .collect();
    m.ok(txs);
    let due = m.chain.height + window;
    let list = |m: &Market, h| {
        m.chain
            .get::<DeadlineCount>(&keys::deadline_key(h))
            .unwrap_or_default()
            .0
    };
    assert_eq!((list(&m, due), list(&m, due + 1)), (3, 3));
    for job in 0..3 {
        assert_eq!(m.unit(job, 0).replicas[0].commit_deadline, due + 1);
    }
    while m.chain.height < due + 1 {
        m.ok(vec![]);
    }
    // Nobody committed: each replica was a no-show at its deferred deadline, and each job,
    // expired, closed with its refund.
    for job in 0..3 {
        assert_eq!(m.unit(job, 0).replicas[0].status, ReplicaStatus::NoShow);
        assert_eq!(m.job(job).state, JobState::Expired);
        assert_eq!(m.job(job).accounts.held, Amount::ZERO);
    }
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// A provider cannot hold more open replicas than it offers slots for by cancelling and
/// reposting its offers: the slots its running replicas took count until they end.
#[test]
fn cancelling_and_reposting_offers_cannot_take_more_replicas_than_the_slot_cap() {
    use exo_ledger::modules::market::Refusal;
    let mut m = Market::new(roomy(MarketParams {
        max_slots_per_provider: 8,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..1]);
    let p = PROVIDERS[0];
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(8, 1))));
    m.ok(vec![tx]);
    assert_eq!(m.provider(0).active, 8);
    let cancel = m.tx(p, Action::CancelOffer { offer: 0 });
    m.ok(vec![cancel]);
    let post = |m: &mut Market, slots| {
        let tx = m.tx(
            p,
            Action::PostOffer {
                slots,
                price_per_unit: Amount::from_exo(1),
                expiry_secs: 10_000,
            },
        );
        m.block(vec![tx]).remove(0)
    };
    assert_eq!(
        post(&mut m, 1),
        TxStatus::Rejected(Rejection::Market(Refusal::TooManySlots { held: 8, max: 8 }))
    );
    // One unit ends: its slot comes back to the provider's budget.
    let commit = m.commit(p, truth(0, 0), 0, 0);
    m.ok(vec![commit]);
    m.draw_audits();
    let reveal = m.reveal(p, truth(0, 0), 0, 0);
    m.ok(vec![reveal]);
    assert_eq!(m.provider(0).active, 7);
    assert_eq!(post(&mut m, 1), TxStatus::Ok);
    assert_eq!(
        post(&mut m, 1),
        TxStatus::Rejected(Rejection::Market(Refusal::TooManySlots { held: 8, max: 8 }))
    );
}

/// Parameters under which a list could outgrow its record are refused at genesis.
#[test]
fn parameters_that_could_break_a_bound_are_refused_at_genesis() {
    let ok = MarketParams::default();
    assert_eq!(ok.validate(), Ok(()));
    let bad = [
        MarketParams {
            commit_window_secs: u64::MAX,
            ..ok.clone()
        },
        MarketParams {
            job_wait_window_secs: 0,
            ..ok.clone()
        },
        // Not longer than the two seconds a block's time may run ahead of a clock.
        MarketParams {
            reveal_window_secs: 2,
            ..ok.clone()
        },
        MarketParams {
            commit_window_secs: exo_ledger::modules::market::MAX_WINDOW_SECS + 1,
            ..ok.clone()
        },
        MarketParams {
            max_assignments_per_block: 0,
            ..ok.clone()
        },
        MarketParams {
            max_assignments_per_block: 1 << 20,
            max_deadlines_per_second: 1 << 20,
            ..ok.clone()
        },
        MarketParams {
            max_assignments_per_block: 8,
            max_deadlines_per_second: 4,
            ..ok.clone()
        },
        MarketParams {
            max_slots_per_provider: 0,
            ..ok.clone()
        },
        MarketParams {
            dispute_margin: 0,
            ..ok.clone()
        },
        // No room for the deciders a tie on a unit held alone needs.
        MarketParams {
            dispute_margin: ok.extra_replicas + 1,
            ..ok.clone()
        },
        MarketParams {
            max_open_jobs_per_account: ok.max_open_jobs + 1,
            ..ok.clone()
        },
        MarketParams {
            max_offer_lifetime_secs: u64::MAX,
            ..ok.clone()
        },
    ];
    for params in bad {
        assert!(params.validate().is_err(), "{params:?}");
    }
    // The largest lists the parameters allow fit their records.
    use exo_ledger::{
        modules::market::{
            MAX_ASSIGNMENTS_PER_BLOCK,
            records::{AssignmentList, AssignmentRecord},
        },
        state::Record,
    };
    let entry = AssignmentRecord {
        job: u64::MAX,
        unit: u32::MAX,
        replica: u32::MAX,
        provider: u64::MAX,
        price_per_unit: Amount(u128::MAX),
        commit_deadline: u64::MAX,
    };
    let log = AssignmentList(vec![entry; MAX_ASSIGNMENTS_PER_BLOCK as usize]);
    assert!(log.to_bytes().len() <= AssignmentList::MAX_BYTES);
}

/// Publishing someone else's module under your own key makes a different app: a job names the
/// app it means by module and developer, so the squatter's royalty is never charged to the
/// original developer's users, and its app is reached only by those who name it.
#[test]
fn publishing_someone_elses_module_cannot_capture_its_royalties() {
    let squatter = PROVIDERS[2];
    let mut m = Market::new(Params::default());
    // The squatter publishes the module first, with the highest royalty.
    let squat = m.tx(
        squatter,
        Action::PublishApp {
            module_hash: APP,
            name: "render".into(),
            version: "1.0".into(),
            royalty_per_unit: Amount::from_exo(1_000),
        },
    );
    m.ok(vec![squat]);
    // The developer still publishes its own module: a different app.
    m.setup(&PROVIDERS[..1]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    let job = m.job(0);
    assert_eq!(job.developer, addr(DEVELOPER));
    assert_eq!(job.royalty_per_unit, Amount(10_000_000));
    // Naming the squatter's app is a choice, with its royalty.
    let mut theirs = spec(1, 1);
    theirs.app_developer = addr(squatter);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(theirs)));
    m.ok(vec![tx]);
    assert_eq!(m.job(1).developer, addr(squatter));
    // An app nobody published under the named developer is unknown.
    let mut nobody = spec(1, 1);
    nobody.app_developer = addr(REQUESTER);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(nobody)));
    assert_eq!(refused(&m.block(vec![tx])[0]), "unknown_app");
}

/// A "could not finish" report with the fuel burnt: what a worker commits and reveals for an
/// outcome its machine decides.
fn report(reason: Unfinished, fuel: u64) -> (Hash32, u64) {
    (reason.digest(), fuel)
}

/// Bond, reputation and the counts of wrong results and missed deadlines: what a penalty
/// would change.
/// A roomy market with `providers` and job 0 of `units` units at `trust`, matched.
fn with_job(providers: &[u64], units: u32, trust: u8) -> Market {
    let mut m = Market::new(roomy(veterans().market));
    m.setup(providers);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(units, trust))));
    m.ok(vec![tx]);
    m
}

/// Checks that a unit failed as one that cannot be finished: every replica's report stood.
fn assert_unfinished(m: &Market, job: u64, unit: u32) {
    let unit = m.unit(job, unit);
    assert_eq!(unit.state, UnitState::Failed);
    assert!(
        unit.replicas
            .iter()
            .all(|r| r.status == ReplicaStatus::Unfinished),
        "{unit:?}"
    );
}

fn standing(m: &Market, provider: u64) -> (Amount, u32, u64, u64) {
    let p = m.provider(provider);
    (p.bond, p.reputation, p.invalid, p.missed)
}

#[test]
fn every_replica_reporting_it_could_not_finish_fails_the_unit_and_charges_the_least_fuel_burnt() {
    let mut m = with_job(&PROVIDERS[..2], 1, 2);
    let holders = m.holders(0, 0);
    assert_eq!(holders.len(), 2);
    let before: Vec<_> = (0..2).map(|p| standing(&m, p)).collect();
    let balances: Vec<_> = holders
        .iter()
        .map(|p| m.chain.account(&addr(*p)).balance)
        .collect();
    // Two machines overflow the stack at different depths: they burnt different fuel.
    m.settle(
        0,
        0,
        &[
            (holders[0], report(Unfinished::StackOverflow, 300_000_000)),
            (holders[1], report(Unfinished::StackOverflow, 400_000_000)),
        ],
    );
    assert_unfinished(&m, 0, 0);
    // Nobody is penalised: the module caused it.
    assert_eq!((0..2).map(|p| standing(&m, p)).collect::<Vec<_>>(), before);
    // Each is paid for the least fuel reported, 3 * 10^8 at 1 EXO per 10^9: 0.3 EXO, less the
    // fee each transaction cost it.
    for (p, was) in holders.iter().zip(balances) {
        let now = m.chain.account(&addr(*p)).balance;
        assert_eq!(now.0 + 1_000 * 2, was.0 + 300_000_000);
    }
    let job = m.job(0);
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.failed, 1);
    assert_eq!(job.accounts.paid_total(), Amount(600_000_000));
    assert_eq!(job.accounts.royalties, Amount::ZERO);
    m.accounts_add_up(0);
}

#[test]
fn a_lone_report_is_replaced_without_penalty_and_unpaid_when_the_others_agree() {
    let mut m = with_job(&PROVIDERS, 1, 2);
    let holders = m.holders(0, 0);
    let (honest, slow) = (holders[0], holders[1]);
    let slow_id = m.provider_id(slow);
    let before = standing(&m, slow_id);
    let slow_balance = m.chain.account(&addr(slow)).balance;
    let slow_report = report(Unfinished::Timeout, 50_000_000);
    let commits = vec![
        m.commit(honest, truth(0, 0), 0, 0),
        m.commit(slow, slow_report, 0, 0),
    ];
    m.ok(commits);
    m.draw_audits();
    // One result of weight 1 does not reach trust 2, and a report is no vote: a third replica
    // is sought before anyone reveals, from the provider that had none.
    let unit = m.unit(0, 0);
    assert_eq!(unit.state, UnitState::Running);
    assert_eq!(unit.replicas.len(), 3);
    let third = m.holders(0, 0)[2];
    assert!(third != honest && third != slow);
    m.decide(
        0,
        0,
        truth(0, 0),
        &[(honest, truth(0, 0)), (slow, slow_report)],
    );
    let unit = m.unit(0, 0);
    assert_eq!(unit.state, UnitState::Accepted);
    assert_eq!(unit.accepted, Some(truth(0, 0)));
    assert_eq!(unit.replicas[1].status, ReplicaStatus::Excused);
    assert_eq!(standing(&m, slow_id), before);
    // Unpaid: only its two transaction fees left its balance.
    assert_eq!(
        m.chain.account(&addr(slow)).balance.0 + 2_000,
        slow_balance.0
    );
    let excuses: exo_ledger::modules::market::records::Excuses = m
        .chain
        .get(&keys::excuses_key(slow_id))
        .expect("an excuse was spent");
    assert_eq!(excuses.used, 1);
    m.accounts_add_up(0);
}

#[test]
fn a_single_report_on_a_trust_one_unit_is_checked_by_another_replica_before_the_unit_fails() {
    let mut m = with_job(&PROVIDERS[..2], 1, 1);
    let first = m.holders(0, 0)[0];
    // One provider's word that a unit cannot be finished is not enough: it could be dodging.
    m.settle(0, 0, &[(first, report(Unfinished::Timeout, 10_000_000))]);
    let unit = m.unit(0, 0);
    assert_eq!(unit.state, UnitState::Running);
    assert_eq!(unit.replicas.len(), 2);
    let second = m.holders(0, 0)[1];
    m.settle(0, 0, &[(second, report(Unfinished::Timeout, 20_000_000))]);
    // Two agree: the unit fails, both are paid for 10^7 fuel, neither is penalised.
    assert_unfinished(&m, 0, 0);
    assert_eq!(m.job(0).accounts.paid_total(), Amount(2 * 10_000_000));
    for p in 0..2 {
        assert_eq!(standing(&m, p).0, Amount::from_exo(100));
        assert_eq!(standing(&m, p).3, 0);
    }
    m.accounts_add_up(0);
}

#[test]
fn reports_past_the_excuse_budget_count_as_no_shows_until_the_next_window() {
    let mut m = Market::new(roomy(MarketParams {
        commit_window_secs: 10,
        reveal_window_secs: 10,
        excuse_window_secs: 40,
        max_excuses_per_window: 1,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..2]);
    // A trust-1 unit on two providers: one reports, the other's result is accepted.
    let dodge = |m: &mut Market, job: u64| -> (u64, ReplicaStatus) {
        let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
        m.ok(vec![tx]);
        let dodger = m.holders(job, 0)[0];
        m.settle(job, 0, &[(dodger, report(Unfinished::Host, 0))]);
        let worker = m.holders(job, 0)[1];
        m.settle(job, 0, &[(worker, truth(job, 0))]);
        assert_eq!(m.unit(job, 0).state, UnitState::Accepted);
        (dodger, m.unit(job, 0).replicas[0].status)
    };
    let (first, status) = dodge(&mut m, 0);
    assert_eq!(status, ReplicaStatus::Excused);
    let id = m.provider_id(first);
    let clean = standing(&m, id);
    // Jobs until the same provider reports again (the first replica goes to whoever ranks
    // first): its status then.
    let mut job = 1;
    let mut next_report = |m: &mut Market| {
        for _ in 0..4 {
            let (dodger, status) = dodge(m, job);
            job += 1;
            if dodger == first {
                return status;
            }
        }
        panic!("the provider got no first replica in four jobs");
    };
    assert_eq!(next_report(&mut m), ReplicaStatus::NoShow);
    let (bond, reputation, _, missed) = standing(&m, id);
    assert!(bond < clean.0);
    assert!(reputation < clean.1);
    assert_eq!(missed, 1);
    // The next window brings a new budget.
    let next_window = (m.chain.height / 40 + 1) * 40;
    while m.chain.height < next_window {
        m.ok(vec![]);
    }
    assert_eq!(next_report(&mut m), ReplicaStatus::Excused);
    assert_eq!(standing(&m, id).3, 1);
    m.accounts_add_up(0);
}

#[test]
fn an_unbounded_excuse_budget_or_a_window_shorter_than_a_unit_is_refused_at_genesis() {
    let ok = MarketParams::default();
    for bad in [
        MarketParams {
            max_excuses_per_window: u32::MAX,
            ..ok.clone()
        },
        MarketParams {
            excuse_window_secs: ok.commit_window_secs + ok.reveal_window_secs - 1,
            ..ok.clone()
        },
        MarketParams {
            excuse_window_secs: u64::MAX,
            ..ok.clone()
        },
    ] {
        assert!(
            matches!(
                bad.validate(),
                Err(exo_ledger::modules::market::ParamsError::Excuses { .. })
            ),
            "{bad:?}"
        );
    }
}

/// The issue's attack: one job of hostile units. Stack overflow and slow I/O that times out
/// are machine-dependent (every replica reports it could not finish); a missing input and an
/// output over its bound are results every replica shares. No honest provider loses bond or
/// reputation, the requester pays for the fuel burnt, and the job's accounts add up.
#[test]
fn a_job_of_hostile_units_costs_honest_providers_nothing_and_the_requester_the_fuel_burnt() {
    let mut m = Market::new(roomy(MarketParams::default()));
    m.setup(&PROVIDERS);
    let starts: Vec<_> = (0..3).map(|p| standing(&m, p)).collect();
    let requester_before = m.chain.account(&addr(REQUESTER)).balance;
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(4, 2))));
    m.ok(vec![tx]);
    let missing_input = ([0x4D; 32], 0);
    let output_too_large = ([0x70; 32], 700_000_000);
    let outcomes = [
        report(Unfinished::StackOverflow, 100_000_000),
        report(Unfinished::Timeout, 200_000_000),
        missing_input,
        output_too_large,
    ];
    for (unit, outcome) in outcomes.iter().enumerate() {
        let unit = unit as u32;
        let holders = m.holders(0, unit);
        assert_eq!(holders.len(), 2);
        let results: Vec<_> = holders.iter().map(|p| (*p, *outcome)).collect();
        m.settle(0, unit, &results);
    }
    let job = m.job(0);
    assert_eq!(job.state, JobState::Done);
    assert_eq!((job.failed, job.accepted), (2, 2));
    assert_eq!(m.unit(0, 2).accepted, Some(missing_input));
    assert_eq!(m.unit(0, 3).accepted, Some(output_too_large));
    for (p, start) in starts.iter().enumerate() {
        let (bond, reputation, invalid, missed) = standing(&m, p as u64);
        assert_eq!(bond, start.0);
        assert!(reputation >= start.1);
        assert_eq!((invalid, missed), (0, 0));
    }
    // Paid: two replicas each of 10^8 + 2 * 10^8 + 0 + 7 * 10^8 fuel at 1 EXO per 10^9, plus
    // the royalty of the two accepted units and the protocol fee; the rest came back.
    let accounts = &job.accounts;
    assert_eq!(accounts.paid_total(), Amount(2 * 1_000_000_000));
    assert_eq!(accounts.royalties, Amount(7_000_000));
    let spent = requester_before.0 - m.chain.account(&addr(REQUESTER)).balance.0;
    assert_eq!(
        spent,
        accounts.paid_total().0 + accounts.royalties.0 + accounts.fees.0 + 1_000
    );
    m.accounts_add_up(0);
}

/// Machine-dependent reasons differ between machines (one overflows its stack where another
/// reaches its wall clock first), and the rule does not ask them to agree: reports are not
/// results. Two replicas that both report, for different reasons, fail the unit; each is paid
/// for the least fuel any report claims, and nobody is penalised.
#[test]
fn two_reports_with_different_machine_dependent_reasons_fail_the_unit_without_penalty() {
    let mut m = with_job(&PROVIDERS[..2], 1, 2);
    let holders = m.holders(0, 0);
    let before: Vec<_> = (0..2).map(|p| standing(&m, p)).collect();
    m.settle(
        0,
        0,
        &[
            (holders[0], report(Unfinished::StackOverflow, 70_000_000)),
            (holders[1], report(Unfinished::Timeout, 90_000_000)),
        ],
    );
    assert_unfinished(&m, 0, 0);
    assert_eq!((0..2).map(|p| standing(&m, p)).collect::<Vec<_>>(), before);
    let job = m.job(0);
    assert_eq!(job.failed, 1);
    assert_eq!(job.accounts.paid_total(), Amount(2 * 70_000_000));
    m.accounts_add_up(0);
}

/// A host that could not give the memory and a host that failed otherwise are reported with
/// different reasons too; the unit fails the same way and charges the requester the least
/// fuel claimed (here none: neither run started).
#[test]
fn a_host_memory_report_and_a_host_report_fail_the_unit_and_charge_no_fuel() {
    let mut m = with_job(&PROVIDERS[..2], 1, 2);
    let holders = m.holders(0, 0);
    let before: Vec<_> = (0..2).map(|p| standing(&m, p)).collect();
    m.settle(
        0,
        0,
        &[
            (holders[0], report(Unfinished::HostMemory, 0)),
            (holders[1], report(Unfinished::Host, 0)),
        ],
    );
    assert_unfinished(&m, 0, 0);
    assert_eq!((0..2).map(|p| standing(&m, p)).collect::<Vec<_>>(), before);
    assert_eq!(m.job(0).accounts.paid_total(), Amount::ZERO);
    m.accounts_add_up(0);
}

/// In one unit at trust 1, one replica reports that it could not finish and another commits a
/// result. A lone report neither fails the unit nor counts as a vote: a second replica is
/// sought, its result alone meets trust 1 and is accepted, and the reporter is excused (not
/// paid, no penalty).
#[test]
fn a_report_beside_a_result_in_one_unit_leaves_the_result_accepted_and_the_reporter_excused() {
    let mut m = with_job(&PROVIDERS[..2], 1, 1);
    let first = m.holders(0, 0)[0];
    m.settle(0, 0, &[(first, report(Unfinished::HostMemory, 0))]);
    let second = m.holders(0, 0)[1];
    let reporter = m.provider_id(first);
    let before = standing(&m, reporter);
    m.settle(0, 0, &[(second, truth(0, 0))]);
    let unit = m.unit(0, 0);
    assert_eq!(unit.state, UnitState::Accepted, "{unit:?}");
    assert_eq!(unit.accepted, Some(truth(0, 0)));
    assert_eq!(unit.replicas[0].status, ReplicaStatus::Excused);
    assert_eq!(standing(&m, reporter), before);
    m.accounts_add_up(0);
}

// ---------------------------------------------------------------------------------------------
// Time: windows and expiries are seconds of block time, whatever the block rate
// ---------------------------------------------------------------------------------------------

/// Seconds of block time from `start_ms` to the last block.
fn elapsed_secs(m: &Market, start_ms: u64) -> f64 {
    (m.chain.time_ms - start_ms) as f64 / 1_000.0
}

/// Opens the reveal phase of a two-replica unit in which only one replica reveals; returns
/// the time the phase opened at.
fn open_reveals_with_one_withholder(m: &mut Market) -> u64 {
    m.setup(&PROVIDERS);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let holders = m.holders(0, 0);
    let commits = vec![
        m.commit(holders[0], truth(0, 0), 0, 0),
        m.commit(holders[1], truth(0, 0), 0, 0),
    ];
    m.ok(commits);
    m.draw_audits();
    assert!(m.unit(0, 0).reveal_deadline.is_some(), "reveals are open");
    let opened = m.chain.time_ms;
    let reveal = m.reveal(holders[0], truth(0, 0), 0, 0);
    m.ok(vec![reveal]);
    opened
}

/// Audit H6: a reveal window of N seconds closes after N seconds of block time, whether
/// blocks come ten a second or one every three seconds, never after N blocks.
#[test]
fn a_reveal_window_of_n_seconds_elapses_after_n_seconds_whatever_the_block_rate() {
    const WINDOW: u64 = 10;
    for interval_ms in [100, 1_000, 3_000] {
        let mut m = Market::new(with_market(MarketParams {
            reveal_window_secs: WINDOW,
            audit_ppm: 1,
            ..MarketParams::default()
        }));
        m.chain.block_interval_ms = interval_ms;
        let opened = open_reveals_with_one_withholder(&mut m);
        let mut blocks = 0;
        while m
            .unit(0, 0)
            .replicas
            .iter()
            .any(|r| r.status == ReplicaStatus::Committed)
        {
            assert!(blocks < 1_000, "the window never closed");
            m.ok(vec![]);
            blocks += 1;
        }
        let closed = elapsed_secs(&m, opened);
        // Deadlines fall on whole seconds: the window closes at the first block at or past
        // the opening time rounded up plus the window.
        let latest = (WINDOW + 1) as f64 + interval_ms as f64 / 1_000.0;
        assert!(
            (WINDOW as f64..=latest).contains(&closed),
            "at {interval_ms} ms a block the window closed after {closed} s ({blocks} blocks)"
        );
        let withholder = m
            .unit(0, 0)
            .replicas
            .iter()
            .find(|r| r.status == ReplicaStatus::NoShow)
            .map(|r| r.provider);
        assert!(withholder.is_some(), "the withheld reveal is a no-show");
    }
}

/// A job nobody takes expires after its window of seconds even when no block came for
/// longer than the window: the next block, whatever its height, finds it due and refunds it.
#[test]
fn a_job_expires_by_time_after_the_chain_was_idle() {
    let mut m = Market::new(with_market(MarketParams {
        job_wait_window_secs: 30,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..1]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(unmatchable(10))));
    m.ok(vec![tx]);
    let submitted = m.chain.height;
    // The next block comes 29 s after the job's: one interval after the 28 s that pass.
    m.chain.pass_secs(28);
    m.ok(vec![]);
    assert_eq!(
        m.job(0).state,
        JobState::Open,
        "29 s later the job still waits"
    );
    m.chain.pass_secs(5);
    m.ok(vec![]);
    let job = m.job(0);
    assert_eq!(job.state, JobState::Expired);
    assert_eq!(job.accounts.refunded, job.accounts.escrowed);
    assert_eq!(m.chain.height, submitted + 2, "two blocks in 35 s");
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// After a long halt the deadlines of the gap are processed over several blocks, oldest
/// first, 64 seconds of deadlines per block: no block reads every second of the gap.
#[test]
fn a_long_halt_is_caught_up_over_several_blocks_in_order() {
    use exo_ledger::modules::market::records::DeadlineCursor;
    let mut m = Market::new(with_market(MarketParams {
        job_wait_window_secs: 200,
        max_open_jobs_per_account: 4,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..1]);
    // Two jobs whose expiries are 61 s apart: at 202 s and 263 s of block time.
    let first = m.tx(REQUESTER, Action::SubmitJob(Box::new(unmatchable(1))));
    m.ok(vec![first]);
    assert_eq!(m.chain.time_ms, 2_000);
    m.chain.pass_secs(60);
    let second = m.tx(REQUESTER, Action::SubmitJob(Box::new(unmatchable(1))));
    m.ok(vec![second]);
    let cursor = |m: &Market| {
        m.chain
            .get::<DeadlineCursor>(&keys::deadline_cursor_key())
            .expect("cursor")
            .0
    };
    assert_eq!(
        cursor(&m),
        63,
        "every second up to the block's was looked at"
    );
    // A halt of an hour; then each block moves on by 64 seconds.
    m.chain.pass_secs(3_600);
    let states = |m: &Market| (m.job(0).state, m.job(1).state);
    let open = JobState::Open;
    let expired = JobState::Expired;
    for (cursor_after, expect) in [
        (127, (open, open)),
        (191, (open, open)),
        (255, (expired, open)),
        (319, (expired, expired)),
    ] {
        m.ok(vec![]);
        assert_eq!(cursor(&m), cursor_after);
        assert_eq!(states(&m), expect, "after second {cursor_after}");
    }
}

/// The chain refuses a block whose time does not follow its parent's; if one reached the
/// ledger anyway, it stops rather than run windows backwards.
#[test]
fn a_block_whose_time_goes_back_stops_the_ledger() {
    let mut m = Market::new(Params::default());
    m.ok(vec![]);
    m.ok(vec![]);
    m.chain.time_ms -= 1_000;
    let fault = m
        .chain
        .next(&addr(PROPOSER), &[], exo_ledger::Signatures::Verify)
        .expect_err("time went back");
    assert!(fault.to_string().contains("does not follow"), "{fault}");
}

// ---------------------------------------------------------------------------------------------
// Reputation that cannot be bought (audit C4) and disputes no newcomer decides (audit H7)
// ---------------------------------------------------------------------------------------------

/// An account with no balance at genesis: a requester identity a provider's owner funds.
const FUNDED: u64 = 30;

/// A transfer of `exo` EXO from `from` to `to`.
fn transfer(m: &mut Market, from: u64, to: u64, exo: u64) -> SignedTx {
    m.tx(
        from,
        Action::Transfer {
            to: addr(to),
            amount: Amount::from_exo(exo),
        },
    )
}

/// A provider's confirmed results and reputation.
fn record(m: &Market, account: u64) -> (u64, u32) {
    let p = m.provider(m.provider_id(account));
    (p.valid, p.reputation)
}

/// Job `job` of one unit at trust 2 by `requester`, settled by `a` and `b` agreeing on the
/// truth.
fn agree_on_a_job(m: &mut Market, requester: u64, job: u64, [a, b]: [u64; 2]) {
    let tx = m.tx(requester, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let mut holders = m.holders(job, 0);
    holders.sort_unstable();
    assert_eq!(holders, [a, b]);
    m.settle(job, 0, &[(a, truth(job, 0)), (b, truth(job, 0))]);
    assert_eq!(m.unit(job, 0).accepted, Some(truth(job, 0)));
}

/// Audit C4: a provider farmed reputation on its own jobs. Work for a requester its owner
/// funded is paid but builds no record; its co-replica, funded by nobody the requester knows,
/// gains as usual.
#[test]
fn a_provider_gains_no_reputation_on_jobs_of_a_requester_its_owner_funded() {
    let mut m = Market::new(Params::default());
    m.setup(&PROVIDERS[..2]);
    let [farmer, other, _] = PROVIDERS;
    let tx = transfer(&mut m, farmer, FUNDED, 10_000);
    m.ok(vec![tx]);
    let paid_before = m.chain.account(&addr(farmer)).balance;
    agree_on_a_job(&mut m, FUNDED, 0, [farmer, other]);
    assert!(m.chain.account(&addr(farmer)).balance > paid_before, "paid");
    assert_eq!(record(&m, farmer), (0, REPUTATION_START));
    assert_eq!(record(&m, other), (1, REPUTATION_START + 10));
    m.accounts_add_up(0);
}

/// Audit C4: two Sybils of one operator confirm each other. A provider whose owner another's
/// owner funded confirms nothing for it, whoever pays the job.
#[test]
fn two_providers_funded_by_one_account_gain_no_reputation_confirming_each_other() {
    let mut m = Market::new(Params::default());
    m.setup(&PROVIDERS[..2]);
    let [a, b, _] = PROVIDERS;
    let tx = transfer(&mut m, a, b, 1);
    m.ok(vec![tx]);
    agree_on_a_job(&mut m, REQUESTER, 0, [a, b]);
    assert_eq!(record(&m, a), (0, REPUTATION_START));
    assert_eq!(record(&m, b), (0, REPUTATION_START));
}

/// A requester and a provider's owner first funded by the same account are tied for
/// `self_dealing_window_secs` of block time; after it their work counts again, so the rule
/// never holds an honest provider back for good.
#[test]
fn a_requester_sharing_a_funder_with_the_provider_is_self_dealing_until_the_window_passes() {
    let mut m = Market::new(with_market(MarketParams {
        self_dealing_window_secs: 100,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..2]);
    let [outsider, tied, _] = PROVIDERS;
    let txs = vec![
        transfer(&mut m, DEVELOPER, FUNDED, 10_000),
        transfer(&mut m, DEVELOPER, tied, 1),
    ];
    m.ok(txs);
    agree_on_a_job(&mut m, FUNDED, 0, [outsider, tied]);
    assert_eq!(record(&m, tied), (0, REPUTATION_START));
    assert_eq!(record(&m, outsider), (1, REPUTATION_START + 10));
    m.chain.pass_secs(100);
    agree_on_a_job(&mut m, FUNDED, 1, [outsider, tied]);
    assert_eq!(record(&m, tied).0, 1);
    assert!(record(&m, tied).1 > REPUTATION_START);
}

/// Audit C4: providers offering at price 0 confirmed each other's results on a dummy job for
/// free. Unpaid work builds no record; work paid less than `reputation_full_value` earns
/// that fraction of the gain.
#[test]
fn zero_price_work_builds_no_record_and_cheap_work_earns_its_share() {
    for (price, gain, valid) in [
        (Amount::ZERO, 0, 0),
        // 0.2 EXO per 10^9 fuel, 1.5 x 10^9 fuel: paid 0.3 EXO of the 1 EXO for full gain.
        (Amount(Amount::from_exo(1).0 / 5), 3, 1),
    ] {
        let mut m = Market::new(Params::default());
        let publish = m.publish(Amount::ZERO);
        m.ok(vec![publish]);
        let mut txs = Vec::new();
        for p in &PROVIDERS[..2] {
            txs.extend(m.join(*p, 8, price));
        }
        m.ok(txs);
        agree_on_a_job(&mut m, REQUESTER, 0, [PROVIDERS[0], PROVIDERS[1]]);
        for p in &PROVIDERS[..2] {
            assert_eq!(record(&m, *p), (valid, REPUTATION_START + gain), "{price}");
        }
    }
}

/// Audit C4: a pair of providers confirming each other unit after unit. Each confirmation by
/// the same co-replica earns less (10, 5, 3, 2, ...), so a closed pair cannot reach trusted
/// weight; a co-replica new to it earns the full gain again.
#[test]
fn a_pair_of_providers_that_keep_confirming_each_other_gains_less_each_time() {
    let mut m = Market::new(roomy(MarketParams::default()));
    m.setup(&PROVIDERS[..2]);
    let [a, b, c] = PROVIDERS;
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(4, 2))));
    m.ok(vec![tx]);
    let mut reputations = Vec::new();
    for unit in 0..4 {
        m.settle(0, unit, &[(a, truth(0, unit)), (b, truth(0, unit))]);
        reputations.push(record(&m, a).1 - REPUTATION_START);
    }
    assert_eq!(reputations, [10, 15, 18, 20]);
    assert_eq!(record(&m, a).0, 4, "every confirmation is still progress");
    // A third provider joins; b is busy, so a and c share the next unit.
    let mut txs = m.join(c, 8, Amount::from_exo(1)).to_vec();
    txs.push(m.tx(b, Action::CancelOffer { offer: 1 }));
    m.ok(txs);
    agree_on_a_job(&mut m, REQUESTER, 1, [a, c]);
    assert_eq!(record(&m, a).1 - REPUTATION_START, 30);
}

/// What stands above the starting reputation halves every `reputation_half_life_secs` of
/// block time, however many blocks pass in it: a provider trusted on an old record loses its
/// weight when it stops working, and a new unit of its needs a second replica again.
#[test]
fn reputation_above_the_start_decays_with_block_time_not_blocks() {
    let mut m = Market::new(with_market(MarketParams {
        reputation_half_life_secs: 1_000,
        trusted_reputation: REPUTATION_START + 6,
        trusted_min_valid: 1,
        trusted_min_age_secs: 0,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..2]);
    let [a, b, _] = PROVIDERS;
    agree_on_a_job(&mut m, REQUESTER, 0, [a, b]);
    assert_eq!(record(&m, a), (1, REPUTATION_START + 10));
    // Many blocks in little time change nothing that matters: still trusted, a trust-2 unit
    // starts on one replica.
    for _ in 0..50 {
        m.ok(vec![]);
    }
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    assert_eq!(m.unit(1, 0).replicas.len(), 1);
    let holder = m.holders(1, 0)[0];
    m.settle(1, 0, &[(holder, truth(1, 0))]);
    assert_eq!(m.unit(1, 0).state, UnitState::Accepted);
    // One half-life of idle time: 10 above the start become 5, below the trusted 6.
    m.chain.pass_secs(1_000);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    assert_eq!(m.unit(2, 0).replicas.len(), 2, "nobody is trusted any more");
}

/// Audit C4: two trusted Sybils started together placed both replicas of a trust-3 or
/// trust-4 unit and decided it alone. Providers first matched in the same block get no trusted bonus on a
/// unit they share: the unit needs a replica from outside them (two first matched apart
/// still reach trust 4 alone: `units_of_two_trusted_replicas_are_still_audited`).
#[test]
fn two_trusted_providers_first_matched_together_cannot_decide_a_unit_alone() {
    let mut m = Market::new(with_market(MarketParams {
        trusted_reputation: 0,
        trusted_min_valid: 0,
        trusted_min_age_secs: 0,
        audit_ppm: 1,
        ..veterans().market
    }));
    let [a, b, outsider] = PROVIDERS;
    let publish = m.publish(Amount::ZERO);
    m.ok(vec![publish]);
    // The pair starts together, on a trust-4 unit of job 0 that they cannot decide alone.
    let mut txs = m.join(a, 8, Amount::from_exo(1)).to_vec();
    txs.extend(m.join(b, 8, Amount::from_exo(1)));
    txs.push(m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 4)))));
    m.ok(txs);
    let mut pair = m.holders(0, 0);
    pair.sort_unstable();
    assert_eq!(pair, [a, b]);
    // An outsider asking more joins; job 1 at trust 3 goes to the cheaper pair first (weight 4
    // without the cap), and takes the outsider too.
    let mut txs = m
        .join(outsider, 8, Amount(Amount::from_exo(1).0 * 3 / 2))
        .to_vec();
    txs.push(m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 3)))));
    m.ok(txs);
    let holders = m.holders(1, 0);
    assert_eq!(holders.len(), 3, "{holders:?}");
    assert!(holders.contains(&outsider));
    let results: Vec<(u64, (Hash32, u64))> = holders.iter().map(|p| (*p, truth(1, 0))).collect();
    m.settle(1, 0, &results);
    assert_eq!(m.unit(1, 0).accepted, Some(truth(1, 0)));
    // At trust 4 the pair's weight 2 asks for two more replicas as if each weighed 1; the
    // trusted outsider reaches 4 alone, and the unit stops seeking the other.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 4))));
    m.ok(vec![tx]);
    let holders = m.holders(2, 0);
    assert_eq!(holders.len(), 3, "{holders:?}");
    assert!(!m.unit(2, 0).sought);
    let results: Vec<(u64, (Hash32, u64))> = holders.iter().map(|p| (*p, truth(2, 0))).collect();
    m.settle(2, 0, &results);
    assert_eq!(m.unit(2, 0).accepted, Some(truth(2, 0)));
}

/// Audit H7: a dispute's deciding replica was dealt after the results were public, to
/// anyone, and a fresh identity of the liar's sided with it at no cost to a record it did not
/// have. Once a provider past probation is on the book, a newcomer never gets it, even when
/// it is the only provider free; it decides once it has a confirmed result of its own.
#[test]
fn a_newcomer_on_probation_never_gets_a_disputes_deciding_replica() {
    let mut m = Market::new(with_market(one_vote_disputes()));
    let [honest, liar, newcomer] = PROVIDERS;
    // The honest provider and the liar end their probation together on job 0.
    let mut txs = vec![m.publish(Amount::ZERO)];
    txs.extend(m.join(honest, 8, Amount::from_exo(1)));
    txs.extend(m.join(liar, 8, Amount::from_exo(1)));
    m.ok(txs);
    agree_on_a_job(&mut m, REQUESTER, 0, [honest, liar]);
    // The newcomer joins; job 1 goes to the older offers, and the liar lies.
    let mut txs = m.join(newcomer, 8, Amount::from_exo(1)).to_vec();
    txs.push(m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2)))));
    m.ok(txs);
    let mut holders = m.holders(1, 0);
    holders.sort_unstable();
    assert_eq!(holders, [honest, liar]);
    let commits = vec![
        m.commit(honest, truth(1, 0), 1, 0),
        m.commit(liar, LIE, 1, 0),
    ];
    m.ok(commits);
    m.draw_audits();
    for _ in 0..3 {
        m.ok(vec![]);
    }
    let unit = m.unit(1, 0);
    assert!(unit.sought, "a decider is sought");
    assert_eq!(unit.replicas.len(), 2, "no newcomer decides");
    // The newcomer asks less than the others, so it takes the next new unit; it and its
    // co-replica settle it honestly (the liar too, biding its time) and it ends probation.
    let offer = m.provider_id(newcomer);
    let cancel = m.tx(newcomer, Action::CancelOffer { offer });
    let cheaper = m.tx(
        newcomer,
        Action::PostOffer {
            slots: 8,
            price_per_unit: Amount(Amount::from_exo(1).0 / 2),
            expiry_secs: 10_000,
        },
    );
    m.ok(vec![cancel, cheaper]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let holders = m.holders(2, 0);
    assert!(holders.contains(&newcomer), "{holders:?}");
    let results: Vec<(u64, (Hash32, u64))> = holders.iter().map(|p| (*p, truth(2, 0))).collect();
    m.settle(2, 0, &results);
    assert_eq!(record(&m, newcomer).0, 1);
    m.ok(vec![]);
    let mut holders = m.holders(1, 0);
    assert_eq!(holders.pop(), Some(newcomer));
    m.decide(1, 0, truth(1, 0), &[(honest, truth(1, 0)), (liar, LIE)]);
    assert_eq!(m.unit(1, 0).accepted, Some(truth(1, 0)));
    assert_eq!(m.provider(m.provider_id(liar)).invalid, 1);
    assert_eq!(m.provider(m.provider_id(honest)).invalid, 0);
}

/// Issue 12: a sleeper earned a trusted record within hours (here two confirmations; about
/// thirty in the simulation) and then held trust-2 units alone, where only the hidden audit
/// checks it. Trusted weight also needs a record `trusted_min_age_secs` old (two weeks): until
/// then the provider's units take a second replica.
#[test]
fn a_record_farmed_within_hours_holds_no_unit_alone_until_it_is_two_weeks_old() {
    let params = MarketParams {
        trusted_reputation: 0,
        trusted_min_valid: 2,
        audit_ppm: 0,
        ..veterans().market
    };
    let mut m = Market::new(with_market(params.clone()));
    let [a, b, _] = PROVIDERS;
    m.setup(&[a, b]);
    agree_on_a_job(&mut m, REQUESTER, 0, [a, b]);
    agree_on_a_job(&mut m, REQUESTER, 1, [a, b]);
    assert_eq!(
        record(&m, a).0,
        2,
        "enough confirmations for trusted weight"
    );
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    assert_eq!(
        m.holders(2, 0).len(),
        2,
        "a record of a few seconds holds no trust-2 unit alone"
    );
    let results = [a, b].map(|p| (p, truth(2, 0)));
    m.settle(2, 0, &results);
    // Two weeks later (offers renewed), the same record is old enough.
    m.chain.pass_secs(params.trusted_min_age_secs);
    let expiry = m.chain.next_time_ms() / 1_000 + 10_000;
    let offers = vec![m.offer(a, 8, expiry), m.offer(b, 8, expiry)];
    m.ok(offers);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    assert_eq!(
        m.holders(3, 0).len(),
        1,
        "trusted weight reaches trust 2 alone"
    );
}

/// Publishes the app; `PROVIDERS[0]` (an offer of `slots`) and `FOURTH` (an offer of 8) earn
/// their records together on job 0, which makes them trusted under parameters that trust one
/// confirmation; `PROVIDERS[1]` and `PROVIDERS[2]` register with `cores` cores and no offer.
fn two_trusted_and_two_newcomers(m: &mut Market, slots: u32, cores: u32) {
    let [trusted, a, b] = PROVIDERS;
    let mut txs = vec![m.publish(Amount::ZERO)];
    txs.extend(m.join(trusted, slots, Amount::from_exo(1)));
    for p in [a, b] {
        txs.push(m.registration(p, cores));
    }
    txs.extend(m.join(FOURTH, 8, Amount::from_exo(1)));
    m.ok(txs);
    agree_on_a_job(m, REQUESTER, 0, [trusted, FOURTH]);
}

/// Issue 12: two newcomers of one operator dealt onto one trust-2 unit agree on a lie, and
/// only the hidden audit can catch them: about the square of the operator's share of units.
/// While a trusted provider is on the book, a newcomer's unit takes its check from trusted
/// providers only, waiting for one to free a slot if it must, and so does a dispute's
/// deciding replica.
#[test]
fn newcomers_of_one_operator_never_check_each_other_while_a_trusted_provider_is_on_the_book() {
    let mut m = Market::new(with_market(MarketParams {
        trusted_reputation: 0,
        trusted_min_valid: 1,
        trusted_min_age_secs: 0,
        audit_ppm: 0,
        ..veterans().market
    }));
    let [trusted, a, b] = PROVIDERS;
    let spare = FOURTH;
    // `trusted` has one slot; the operator's two providers have no offer yet.
    two_trusted_and_two_newcomers(&mut m, 1, 8);
    // `trusted` takes a trust-1 unit (its only slot); `spare` leaves the book and the
    // operator's providers post offers.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    assert_eq!(m.holders(1, 0), [trusted]);
    // Offers are numbered as posted: `spare`'s is the second.
    let mut txs = vec![m.tx(spare, Action::CancelOffer { offer: 1 })];
    txs.extend([a, b].map(|p| m.offer(p, 8, 10_000)));
    m.ok(txs);
    // A trust-2 unit while the only trusted provider on the book is busy.
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let holders = m.holders(2, 0);
    assert!(
        !(holders.contains(&a) && holders.contains(&b)),
        "the operator's two newcomers hold the unit together: {holders:?}"
    );
    assert_eq!(holders.len(), 1, "{holders:?}");
    let colluder = holders[0];
    let tx = m.commit(colluder, LIE, 2, 0);
    m.ok(vec![tx]);
    // Its check waits for `trusted`, though the other colluder has free slots.
    m.settle(1, 0, &[(trusted, truth(1, 0))]);
    m.ok(vec![]);
    assert_eq!(m.holders(2, 0), [colluder, trusted]);
    let tx = m.commit(trusted, truth(2, 0), 2, 0);
    m.ok(vec![tx]);
    m.draw_audits();
    // The seals disagree: the deciding replica waits for a trusted provider too.
    let expiry = m.chain.next_time_ms() / 1_000 + 10_000;
    let offer = m.offer(spare, 8, expiry);
    m.ok(vec![offer]);
    m.ok(vec![]);
    assert_eq!(m.holders(2, 0), [colluder, trusted, spare]);
    m.decide(
        2,
        0,
        truth(2, 0),
        &[(colluder, LIE), (trusted, truth(2, 0))],
    );
    assert_eq!(m.unit(2, 0).accepted, Some(truth(2, 0)));
    assert_eq!(m.provider(m.provider_id(colluder)).invalid, 1);
    assert_eq!(m.provider(m.provider_id(trusted)).invalid, 0);
    m.accounts_add_up(2);
}

/// The other side of the rule above: a job that no trusted provider could take (here it
/// needs more cores than any of them has) is not held up waiting for one. Its units are
/// checked as in a new market, by newcomers that meet its requirements.
#[test]
fn a_job_no_trusted_provider_could_take_is_checked_by_the_newcomers_that_can() {
    let mut m = Market::new(with_market(MarketParams {
        trusted_reputation: 0,
        trusted_min_valid: 1,
        trusted_min_age_secs: 0,
        ..veterans().market
    }));
    let [_, a, b] = PROVIDERS;
    two_trusted_and_two_newcomers(&mut m, 8, 16);
    let offers = [a, b].map(|p| m.offer(p, 8, 10_000)).to_vec();
    m.ok(offers);
    let mut big = spec(1, 2);
    big.requirements.min_cores = 16;
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(big)));
    m.ok(vec![tx]);
    let mut holders = m.holders(1, 0);
    holders.sort_unstable();
    assert_eq!(holders, [a, b]);
    m.settle(1, 0, &[(a, truth(1, 0)), (b, truth(1, 0))]);
    assert_eq!(m.unit(1, 0).accepted, Some(truth(1, 0)));
}

#[test]
fn reputation_parameters_that_could_break_a_bound_are_refused_at_genesis() {
    for market in [
        MarketParams {
            reputation_full_value: Amount::ZERO,
            ..MarketParams::default()
        },
        MarketParams {
            reputation_half_life_secs: 0,
            ..MarketParams::default()
        },
        MarketParams {
            self_dealing_window_secs: 0,
            ..MarketParams::default()
        },
        MarketParams {
            self_dealing_window_secs: exo_ledger::modules::market::MAX_WINDOW_SECS + 1,
            ..MarketParams::default()
        },
        MarketParams {
            trusted_min_age_secs: exo_ledger::modules::market::MAX_WINDOW_SECS + 1,
            ..MarketParams::default()
        },
    ] {
        assert!(
            matches!(
                market.validate(),
                Err(exo_ledger::modules::market::ParamsError::Reputation { .. })
            ),
            "{market:?}"
        );
    }
}

/// Audit H7: a dispute's deciding replica was dealt after the results were revealed, so it
/// could copy one instead of computing. The seals committed with the results show the
/// dispute while every result is still sealed: reveals stay closed until the deciding
/// replica committed too.
#[test]
fn a_disputes_deciding_replica_commits_before_any_result_of_the_unit_is_revealed() {
    let mut m = Market::new(veterans());
    m.setup(&PROVIDERS);
    let (honest, liar, _) = m.one_against_one();
    let tx = m.reveal(honest, truth(0, 0), 0, 0);
    assert_eq!(refused(&m.block(vec![tx])[0]), "reveal_not_open");
    let unit = m.unit(0, 0);
    assert_eq!(unit.replicas.len(), 3, "the decider, dealt blind");
    assert!(unit.replicas.iter().all(|r| r.reveal.is_none()));
    let decider = m.decide(0, 0, truth(0, 0), &[(honest, truth(0, 0)), (liar, LIE)]);
    assert!(decider != honest && decider != liar);
    assert_eq!(m.unit(0, 0).accepted, Some(truth(0, 0)));
    assert_eq!(m.provider(m.provider_id(liar)).invalid, 1);
    assert_eq!(m.provider(m.provider_id(honest)).invalid, 0);
    m.accounts_add_up(0);
}

/// A decider that copies the seal it sees on chain instead of computing agrees on paper,
/// but cannot open its commitment without the result itself: its reveal is refused, and once
/// the reveal window closes it is punished like a wrong result, and its copy decided nothing.
#[test]
fn a_decider_copying_a_seal_cannot_reveal_and_pays_like_a_liar() {
    let mut m = Market::new(with_market(MarketParams {
        reveal_window_secs: 3,
        ..veterans().market
    }));
    m.setup(&PROVIDERS);
    let (honest, liar, _) = m.one_against_one();
    let copier = m.holders(0, 0)[2];
    let unit = m.unit(0, 0);
    let mut commit = m.commit_entry(copier, ([0; 32], 0), 0, 0);
    commit.seal = unit.replicas[1].seal.expect("the liar's seal");
    let tx = m.tx(copier, Action::CommitResults(vec![commit]));
    m.ok(vec![tx]);
    // Two seals against one: the reveals open.
    assert!(m.unit(0, 0).reveal_deadline.is_some());
    let reveals = vec![
        m.reveal(honest, truth(0, 0), 0, 0),
        m.reveal(liar, LIE, 0, 0),
    ];
    m.ok(reveals);
    let guess = m.reveal(copier, truth(0, 0), 0, 0);
    assert_eq!(refused(&m.block(vec![guess])[0]), "commitment_mismatch");
    for _ in 0..4 {
        m.ok(vec![]);
    }
    let copier_record = m.provider(m.provider_id(copier));
    assert!(copier_record.bond < Amount::from_exo(100));
    assert_eq!(copier_record.missed, 1);
    // The lie is not accepted on the copier's word, and nobody honest paid for it.
    assert_ne!(m.unit(0, 0).accepted, Some(LIE));
    assert_eq!(m.provider(m.provider_id(honest)).invalid, 0);
}

/// A reveal must match the seal committed with it, as well as the commitment: a provider
/// cannot seal one result (to side with a majority) and reveal another.
#[test]
fn a_reveal_that_does_not_match_its_seal_is_refused() {
    let mut m = Market::new(Params::default());
    m.setup(&PROVIDERS[..2]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let [a, b] = [m.holders(0, 0)[0], m.holders(0, 0)[1]];
    let mut sealed_other = m.commit_entry(b, truth(0, 0), 0, 0);
    sealed_other.seal = result_seal(&LIE.0, LIE.1, 0, 0);
    let mut other = m.commit_entry(a, truth(0, 0), 0, 0);
    other.seal = sealed_other.seal;
    let txs = vec![
        m.tx(a, Action::CommitResults(vec![other])),
        m.tx(b, Action::CommitResults(vec![sealed_other])),
    ];
    m.ok(txs);
    m.draw_audits();
    assert!(m.unit(0, 0).reveal_deadline.is_some(), "the seals agree");
    let tx = m.reveal(a, truth(0, 0), 0, 0);
    assert_eq!(refused(&m.block(vec![tx])[0]), "commitment_mismatch");
}

/// The commit window of the audit-lapse tests, in seconds.
const LAPSE_WINDOW: u64 = 60;

/// A market of `providers` that audits every unit, with a commit window of [`LAPSE_WINDOW`]:
/// job 0's one unit at trust 2 committed truthfully by its two replicas and its audit drawn.
/// Returns the market and the two holders.
fn committed_and_audited(providers: &[u64]) -> (Market, Vec<u64>) {
    let mut m = Market::new(with_market(MarketParams {
        audit_ppm: 1_000_000,
        commit_window_secs: LAPSE_WINDOW,
        ..MarketParams::default()
    }));
    m.setup(providers);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 2))));
    m.ok(vec![tx]);
    let holders = m.holders(0, 0);
    assert_eq!(holders.len(), 2);
    let commits = holders
        .iter()
        .map(|p| m.commit(*p, truth(0, 0), 0, 0))
        .collect();
    m.ok(commits);
    m.draw_audits();
    (m, holders)
}

/// Lets block time pass a second at a time until job 0's unit opens its reveals, at most until
/// second `latest`; then checks its audit lapsed no earlier than second `earliest`, and that
/// the holders' truthful reveals are accepted and cost them nothing.
fn lapse_then_accept(m: &mut Market, holders: &[u64], earliest: u64, latest: u64) {
    while m.unit(0, 0).reveal_deadline.is_none() {
        assert!(
            m.chain.time_ms / 1_000 <= latest,
            "the audit never lapsed: {:?}",
            m.unit(0, 0)
        );
        m.chain.pass_secs(1);
        m.ok(vec![]);
    }
    assert!(m.chain.time_ms / 1_000 >= earliest);
    let unit = m.unit(0, 0);
    assert_eq!(unit.audit, AuditDraw::Lapsed);
    assert!(!unit.sought);
    assert_eq!(m.job(0).waiting, 0, "nothing is sought any more");
    let reveals = holders
        .iter()
        .map(|p| m.reveal(*p, truth(0, 0), 0, 0))
        .collect();
    m.ok(reveals);
    assert_eq!(m.unit(0, 0).state, UnitState::Accepted);
    assert!(m.job(0).accounts.paid_total() > Amount::ZERO);
    for p in holders {
        let provider = m.provider(m.provider_id(*p));
        assert_eq!(provider.bond, Amount::from_exo(100), "{provider:?}");
        assert_eq!((provider.invalid, provider.missed), (0, 0), "{provider:?}");
    }
}

/// A market too thin to audit: the unit's two replicas are on the only two providers, so its
/// audit replica (drawn always here) has nobody to go to. The unit waited for it until the job
/// expired, a day later, and the honest providers' committed work was never paid. The search
/// now lapses after one commit window: reveals open without the audit, the unit is accepted,
/// and both providers are paid and keep their bond.
#[test]
fn an_audit_nobody_can_take_lapses_after_a_commit_window_and_the_unit_is_paid() {
    let (mut m, holders) = committed_and_audited(&PROVIDERS[..2]);
    assert!(m.unit(0, 0).sought, "the audit replica is sought");
    let drawn = m.chain.time_ms / 1_000;
    lapse_then_accept(
        &mut m,
        &holders,
        drawn + LAPSE_WINDOW,
        drawn + LAPSE_WINDOW + 2,
    );
}

/// The audit replica is taken, by a provider that then never commits: its replacement has
/// nobody to go to either. The search lapses one commit window after the taker's deadline,
/// not before (it might still have committed), and the unit's honest replicas are paid.
#[test]
fn an_audit_taken_and_never_committed_lapses_a_window_after_the_takers_deadline() {
    let (mut m, holders) = committed_and_audited(&PROVIDERS);
    let unit = m.unit(0, 0);
    assert_eq!(unit.replicas.len(), 3, "the audit replica is taken at once");
    let deadline = unit.replicas[2].commit_deadline;
    lapse_then_accept(
        &mut m,
        &holders,
        deadline + LAPSE_WINDOW,
        deadline + LAPSE_WINDOW + 2,
    );
    assert_eq!(m.unit(0, 0).replicas[2].status, ReplicaStatus::NoShow);
}

/// Commits and reveals every replica `providers` hold as a worker would, the liar committing
/// [`LIE`], for at most `blocks` blocks or until job 0 is done.
fn work_until_done(m: &mut Market, providers: &[u64], liar: u64, blocks: usize) {
    for _ in 0..blocks {
        if m.job(0).state == JobState::Done {
            return;
        }
        let mut txs = Vec::new();
        for p in providers {
            for (job, unit, replica) in m.work(m.provider_id(*p)) {
                let record = m.unit(job, unit);
                let Some(r) = record.replicas.iter().find(|r| r.index == replica) else {
                    continue;
                };
                let result = if *p == liar { LIE } else { truth(job, unit) };
                if r.status == ReplicaStatus::Assigned {
                    txs.push(m.commit(*p, result, job, unit));
                } else if r.status == ReplicaStatus::Committed && record.reveal_deadline.is_some() {
                    txs.push(m.reveal(*p, result, job, unit));
                }
            }
        }
        m.ok(txs);
    }
}

/// The market the first attempt at keeping newcomers from deciding disputes deadlocked (docs/
/// security.md): every provider new, a liar asking the lowest price so that it holds a replica
/// of every unit it can, so that honest newcomers never share a unit. With nobody past
/// probation on the book, deciding replicas go to anyone until the first provider ends its
/// probation. Every unit ends with the true result, and only the liar pays.
#[test]
fn a_market_of_newcomers_beside_a_liar_still_decides_every_unit() {
    let mut m = Market::new(with_market(one_vote_disputes()));
    let [a, b, liar] = PROVIDERS;
    let mut txs = vec![m.publish(Amount::ZERO)];
    txs.extend(m.join(a, 8, Amount::from_exo(1)));
    txs.extend(m.join(b, 8, Amount::from_exo(1)));
    txs.extend(m.join(liar, 8, Amount(Amount::from_exo(1).0 / 2)));
    m.ok(txs);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(6, 2))));
    m.ok(vec![tx]);
    work_until_done(&mut m, &PROVIDERS, liar, 200);
    let job = m.job(0);
    assert_eq!((job.state, job.accepted), (JobState::Done, 6), "{job:?}");
    for unit in 0..6 {
        assert_eq!(
            m.unit(0, unit).accepted,
            Some(truth(0, unit)),
            "unit {unit}"
        );
    }
    assert!(m.provider(m.provider_id(liar)).invalid >= 1);
    for p in [a, b] {
        assert_eq!(m.provider(m.provider_id(p)).invalid, 0, "{p}");
    }
    m.accounts_add_up(0);
}

/// A dispute that no provider is left to decide does not hold its replicas for good: when the
/// requester cancels (or the job's wait window ends), the reveals open, the unit fails without
/// a verdict, nobody is punished, and the escrow comes back.
#[test]
fn cancelling_a_job_whose_dispute_awaits_its_decider_opens_the_reveals_and_punishes_nobody() {
    let mut m = Market::new(with_market(MarketParams {
        audit_ppm: 1,
        ..MarketParams::default()
    }));
    m.setup(&PROVIDERS[..2]);
    let (honest, liar, ids) = m.one_against_one();
    for _ in 0..3 {
        m.ok(vec![]);
    }
    assert_eq!(m.unit(0, 0).replicas.len(), 2, "nobody is left to decide");
    let cancel = m.tx(REQUESTER, Action::CancelJob { job: 0 });
    m.ok(vec![cancel]);
    assert!(m.unit(0, 0).reveal_deadline.is_some());
    let reveals = vec![
        m.reveal(honest, truth(0, 0), 0, 0),
        m.reveal(liar, LIE, 0, 0),
    ];
    m.ok(reveals);
    assert_eq!(m.unit(0, 0).state, UnitState::Failed);
    for id in ids {
        let p = m.provider(id);
        assert_eq!((p.invalid, p.bond), (0, Amount::from_exo(100)), "{p:?}");
    }
    let job = m.job(0);
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.accounts.refunded, job.accounts.escrowed);
    m.accounts_add_up(0);
}

#[test]
fn confirmed_work_earns_the_providers_share_of_the_epochs_rewards_by_units() {
    const EPOCH: u64 = 20;
    let mut m = Market::new(Params {
        epoch_length: EPOCH,
        ..with_market(MarketParams {
            probation_slots: 8,
            ..MarketParams::default()
        })
    });
    m.setup(&PROVIDERS[..2]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(3, 2))));
    m.ok(vec![tx]);
    for step in [Market::commit, Market::reveal] {
        let mut txs = Vec::new();
        for unit in 0..3 {
            for p in &PROVIDERS[..2] {
                txs.push(step(&mut m, *p, truth(0, unit), 0, unit));
            }
        }
        m.ok(txs);
        m.draw_audits();
    }
    assert_eq!(m.job(0).state, JobState::Done);
    let fees = m.job(0).accounts.fees;
    assert!(fees > Amount::ZERO);
    let before = m.run_to_epoch_end(EPOCH, &PROVIDERS[..2]);

    let record: EpochRecord = m.chain.get(&epoch_key(0)).expect("the epoch's record");
    // Each provider computed three units another provider confirmed.
    assert_eq!((record.work_units, record.capacity_units), (6, 0));
    // The protocol fees joined the transaction fees in the pool.
    assert!(record.fees > fees);
    let pool = record.fees.0 + record.minted.0;
    let providers_pool = pool * 3_000 / 10_000;
    for (p, before) in PROVIDERS[..2].iter().zip(before) {
        assert_eq!(
            m.chain.account(&addr(*p)).balance.0,
            before + providers_pool * 3 / 6
        );
    }
    assert_eq!(record.providers_pool.0, providers_pool);
    assert_eq!(record.to_providers.0, providers_pool / 2 * 2);
    assert!(
        record.providers_paid,
        "two owners are paid in the epoch's last block"
    );
    assert_eq!(m.pot(Pot::Rewards), 0);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

/// Audit M1: a block's transaction count and bytes did not bound its execution time. The
/// proof-of-task simulation at 1,024 providers built blocks of about 2,000 batches of 64
/// results, each taking 7.7 s in the in-memory ledger (`block_cost` example), past the
/// leader's one-second timeout. A block being built now stops at its work bound, one per
/// transaction plus one per result.
#[test]
fn a_block_being_built_stops_at_its_work_bound_counting_each_result() {
    let mut m = Market::new(veterans());
    m.setup(&PROVIDERS);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(6, 1))));
    m.ok(vec![tx]);
    // The provider holding the most units commits them all in one batch.
    let holder = PROVIDERS
        .into_iter()
        .max_by_key(|p| (0..6).filter(|u| m.holders(0, *u).contains(p)).count())
        .expect("a provider");
    let entries: Vec<ResultCommit> = (0..6)
        .filter(|u| m.holders(0, *u).contains(&holder))
        .map(|u| m.commit_entry(holder, truth(0, u), 0, u))
        .collect();
    assert!(entries.len() >= 2, "{entries:?}");
    let batch = m.tx(holder, Action::CommitResults(entries.clone()));
    assert_eq!(exo_ledger::tx_work(&batch), 1 + entries.len());
    let transfers: Vec<SignedTx> = (0..3)
        .map(|_| {
            m.tx(
                REQUESTER,
                Action::Transfer {
                    to: addr(DEVELOPER),
                    amount: Amount(1),
                },
            )
        })
        .collect();
    let txs: Vec<SignedTx> = std::iter::once(batch.clone())
        .chain(transfers.iter().cloned())
        .collect();
    // Room for the batch and one transfer.
    let max_work = exo_ledger::tx_work(&batch) + 1;
    let height = m.chain.height + 1;
    let outcome = m
        .chain
        .run(BlockInput {
            env: BlockEnv {
                height,
                time_ms: m.chain.next_time_ms(),
                proposer: addr(PROPOSER),
                skipped_leaders: Vec::new(),
                parent_voters: Vec::new(),
                seed: MemoryChain::seed(height),
            },
            evidence: Vec::new(),
            txs,
            signatures: Signatures::Verify,
            policy: Policy::Build {
                max_txs: 100,
                max_bytes: 1 << 20,
                max_work,
            },
        })
        .expect("a block");
    assert_eq!(outcome.included, vec![batch, transfers[0].clone()]);
    let committed = (0..6)
        .filter(|u| {
            m.unit(0, *u)
                .replicas
                .iter()
                .any(|r| r.status == ReplicaStatus::Committed)
        })
        .count();
    assert_eq!(committed, entries.len());
}

/// Market parameters under which a capacity round opens at every block where none is open,
/// for 3 seconds (3 blocks), and a slot's share of a proof takes 256 hashes.
fn capacity_rounds() -> MarketParams {
    MarketParams {
        capacity_round_ppm: 1_000_000,
        capacity_window_secs: 3,
        capacity_hashes_per_slot: 256,
        ..MarketParams::default()
    }
}

impl Market {
    fn capacity_round(&self) -> CapacityRound {
        self.chain
            .get(&keys::capacity_round_key())
            .unwrap_or_default()
    }

    /// Runs empty blocks until a round opens after every offer on the book was posted, and
    /// returns it.
    fn next_capacity_round(&mut self) -> CapacityRound {
        let last = self.capacity_round().number;
        loop {
            self.ok(vec![]);
            let round = self.capacity_round();
            if round.number > last {
                return round;
            }
        }
    }

    /// A proof of `slots` slots of `offer` in `round`, found by searching as a worker does.
    fn capacity_proof(round: &CapacityRound, offer: u64, slots: u32) -> CapacityProof {
        let challenge = CapacityChallenge {
            seed: round.seed,
            round: round.number,
            offer,
            slots,
            hashes_per_slot: round.hashes_per_slot,
        };
        CapacityProof {
            round: round.number,
            offer,
            slots,
            nonces: challenge.solve(),
        }
    }

    fn prove(&mut self, provider: u64, proof: CapacityProof) -> SignedTx {
        self.tx(provider, Action::ProveCapacity(proof))
    }

    /// The reward units `account` earned in `epoch` so far.
    fn reward_units(&self, epoch: u64, account: u64) -> u64 {
        self.chain
            .get::<Units>(&units_key(epoch, &addr(account)))
            .unwrap_or_default()
            .0
    }
}

#[test]
fn proven_free_slots_earn_their_owners_the_providers_share_of_the_epoch_by_units() {
    const EPOCH: u64 = 20;
    let mut m = Market::new(Params {
        epoch_length: EPOCH,
        ..with_market(capacity_rounds())
    });
    // Two providers, one offer of 8 free slots each (offers 0 and 1).
    m.setup(&PROVIDERS[..2]);
    let round = m.next_capacity_round();
    let all = Market::capacity_proof(&round, 0, 8);
    let some = Market::capacity_proof(&round, 1, 3);
    let txs = vec![m.prove(PROVIDERS[0], all), m.prove(PROVIDERS[1], some)];
    m.ok(txs);
    assert_eq!(m.reward_units(0, PROVIDERS[0]), 8);
    assert_eq!(m.reward_units(0, PROVIDERS[1]), 3);

    let before = m.run_to_epoch_end(EPOCH, &PROVIDERS[..2]);
    let record: EpochRecord = m.chain.get(&epoch_key(0)).expect("the epoch's record");
    assert_eq!((record.work_units, record.capacity_units), (11, 11));
    let pool = record.fees.0 + record.minted.0;
    let providers_pool = pool * 3_000 / 10_000;
    assert_eq!(record.providers_pool.0, providers_pool);
    for ((p, before), units) in PROVIDERS[..2].iter().zip(before).zip([8, 3]) {
        assert_eq!(
            m.chain.account(&addr(*p)).balance.0,
            before + providers_pool * units / 11
        );
    }
    assert!(record.providers_paid);
    let (total, supply) = m.tokens();
    assert_eq!(total, supply);
}

#[test]
fn a_capacity_proof_counts_once_for_its_own_offer_round_and_slots() {
    let mut m = Market::new(with_market(capacity_rounds()));
    m.setup(&PROVIDERS[..2]);
    let round = m.next_capacity_round();
    let proof = Market::capacity_proof(&round, 0, 8);
    // Another offer's nonces, another provider's offer, fewer slots claimed than solved for.
    let replayed = CapacityProof {
        offer: 1,
        ..proof.clone()
    };
    let fewer = CapacityProof {
        slots: 7,
        ..proof.clone()
    };
    let txs = vec![
        m.prove(PROVIDERS[1], replayed),
        m.prove(PROVIDERS[1], proof.clone()),
        m.prove(PROVIDERS[0], fewer),
        m.prove(PROVIDERS[0], proof.clone()),
        m.prove(PROVIDERS[0], proof.clone()),
    ];
    let statuses = m.block(txs);
    let names: Vec<&str> = statuses[..3].iter().map(refused).collect();
    assert_eq!(
        names,
        [
            "invalid_capacity_proof",
            "not_your_offer",
            "invalid_capacity_proof"
        ]
    );
    assert_eq!(statuses[3], TxStatus::Ok);
    assert_eq!(refused(&statuses[4]), "capacity_already_proven");
    assert_eq!(m.reward_units(0, PROVIDERS[0]), 8);
    assert_eq!(m.reward_units(0, PROVIDERS[1]), 0);

    // Once the round closed, its proofs are worth nothing, and the next round's seed makes
    // the old nonces fail there.
    let next = m.next_capacity_round();
    let late = m.prove(PROVIDERS[1], Market::capacity_proof(&round, 1, 8));
    let stale = m.prove(
        PROVIDERS[0],
        CapacityProof {
            round: next.number,
            ..proof
        },
    );
    let statuses = m.block(vec![late, stale]);
    assert_eq!(refused(&statuses[0]), "capacity_round_not_open");
    assert_eq!(refused(&statuses[1]), "invalid_capacity_proof");
    assert_eq!(m.reward_units(0, PROVIDERS[1]), 0);
}

#[test]
fn an_offer_posted_after_a_round_opened_cannot_answer_it() {
    // The attack: a provider that sees a round open rents a machine, posts an offer for it and
    // proves it, then lets it go. The round opened before it could post: its offer answers
    // only later rounds, when it must be there again, unannounced.
    let mut m = Market::new(with_market(capacity_rounds()));
    m.setup(&PROVIDERS[..1]);
    m.register(PROVIDERS[1]);
    let round = m.next_capacity_round();
    let offer = m.offer(PROVIDERS[1], 8, 10_000);
    m.ok(vec![offer]);
    let proof = Market::capacity_proof(&round, 1, 8);
    let tx = m.prove(PROVIDERS[1], proof);
    assert_eq!(refused(&m.block(vec![tx])[0]), "offer_after_capacity_round");
    assert_eq!(m.reward_units(0, PROVIDERS[1]), 0);

    let next = m.next_capacity_round();
    let tx = m.prove(PROVIDERS[1], Market::capacity_proof(&next, 1, 8));
    m.ok(vec![tx]);
    assert_eq!(m.reward_units(0, PROVIDERS[1]), 8);
}

#[test]
fn capacity_earns_only_for_free_slots_at_a_price_the_market_can_pay() {
    let mut m = Market::new(with_market(MarketParams {
        capacity_max_price: Amount::from_exo(2),
        ..capacity_rounds()
    }));
    m.setup(&PROVIDERS[..1]);
    m.register(PROVIDERS[1]);
    let dear = m.tx(
        PROVIDERS[1],
        Action::PostOffer {
            slots: 8,
            price_per_unit: Amount::from_exo(3),
            expiry_secs: 10_000,
        },
    );
    m.ok(vec![dear]);
    let round = m.next_capacity_round();
    // Twenty slots solved for, eight free on the offer: eight earn.
    let more = m.prove(PROVIDERS[0], Market::capacity_proof(&round, 0, 20));
    let priced_out = m.prove(PROVIDERS[1], Market::capacity_proof(&round, 1, 8));
    let statuses = m.block(vec![more, priced_out]);
    assert_eq!(statuses[0], TxStatus::Ok);
    assert_eq!(refused(&statuses[1]), "capacity_price_too_high");
    assert_eq!(m.reward_units(0, PROVIDERS[0]), 8);
    assert_eq!(m.reward_units(0, PROVIDERS[1]), 0);
}

#[test]
fn a_capacity_round_opens_only_when_none_is_open_and_the_chain_without_rounds_opens_none() {
    let mut m = Market::new(with_market(capacity_rounds()));
    m.ok(vec![]);
    let first = m.capacity_round();
    assert_eq!(first.number, 1);
    assert_eq!(first.closes_ms, first.opened_ms + 3_000);
    while m.chain.time_ms <= first.closes_ms {
        assert_eq!(m.capacity_round(), first, "a round stays until it closes");
        m.ok(vec![]);
    }
    assert_eq!(m.capacity_round().number, 2);

    let mut quiet = Market::new(with_market(MarketParams {
        capacity_round_ppm: 0,
        ..capacity_rounds()
    }));
    for _ in 0..20 {
        quiet.ok(vec![]);
    }
    assert_eq!(quiet.capacity_round(), CapacityRound::default());
}

#[test]
fn a_provider_the_match_would_not_use_earns_nothing_for_its_free_slots() {
    // One no-show takes a new provider below a matching floor set at the starting reputation:
    // the match gives it no work, so its free slots serve nobody and earn nothing.
    let mut m = Market::new(with_market(MarketParams {
        commit_window_secs: 3,
        min_match_reputation: REPUTATION_START,
        ..capacity_rounds()
    }));
    m.setup(&PROVIDERS[..1]);
    let tx = m.tx(REQUESTER, Action::SubmitJob(Box::new(spec(1, 1))));
    m.ok(vec![tx]);
    for _ in 0..3 {
        m.ok(vec![]);
    }
    assert!(m.provider(0).reputation < REPUTATION_START);
    // Nobody else takes the unit: the job is cancelled before another provider joins.
    let cancel = m.tx(REQUESTER, Action::CancelJob { job: 0 });
    m.ok(vec![cancel]);
    let joined = m.join(PROVIDERS[1], 8, Amount::from_exo(1));
    m.ok(joined.to_vec());
    let round = m.next_capacity_round();
    let below = m.prove(PROVIDERS[0], Market::capacity_proof(&round, 0, 4));
    let proof = m.prove(PROVIDERS[1], Market::capacity_proof(&round, 1, 4));
    let statuses = m.block(vec![below, proof]);
    assert_eq!(refused(&statuses[0]), "no_free_slots");
    assert_eq!(statuses[1], TxStatus::Ok);
    assert_eq!(m.reward_units(0, PROVIDERS[0]), 0);
    assert_eq!(m.reward_units(0, PROVIDERS[1]), 4);
}

#[test]
fn an_offer_that_leaves_the_book_leaves_no_proof_record_behind() {
    // Three proven offers leave the book three ways: cancelled, with their retired provider,
    // expired.
    let mut m = Market::new(with_market(capacity_rounds()));
    m.setup(&PROVIDERS);
    let round = m.next_capacity_round();
    let proofs: Vec<SignedTx> = PROVIDERS
        .iter()
        .zip(0u64..)
        .map(|(p, offer)| m.prove(*p, Market::capacity_proof(&round, offer, 8)))
        .collect();
    m.ok(proofs);
    let proven = |m: &Market, offer: u64| {
        m.chain
            .get::<ProvenRound>(&keys::capacity_proven_key(offer))
    };
    for offer in 0..3 {
        assert_eq!(proven(&m, offer), Some(ProvenRound(round.number)));
    }
    let cancel = m.tx(PROVIDERS[0], Action::CancelOffer { offer: 0 });
    let retire = m.tx(PROVIDERS[2], Action::RetireProvider);
    m.ok(vec![cancel, retire]);
    assert_eq!(proven(&m, 0), None);
    assert_eq!(proven(&m, 2), None);
    // The offers of `setup` expire at second 10,000; an expired offer is swept when its
    // provider posts again (or when the match or a full book meets it).
    m.chain.pass_secs(10_000);
    let repost = m.offer(PROVIDERS[1], 8, 20_000);
    m.ok(vec![repost]);
    assert_eq!(m.chain.get::<OfferRecord>(&keys::offer_key(1)), None);
    assert_eq!(proven(&m, 1), None);
}
