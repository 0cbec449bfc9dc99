//! The ledger as a state machine: random sequences of every action of every module, executed
//! block by block through the block runner. Whatever the sequence, no step faults or panics,
//! every token is in a balance or a pot (`sum(balances) + sum(pots) == supply`, counted over
//! the whole state after every block), every pot holds what its module's record says, and the
//! same sequence gives the same state. Epochs are a few blocks long, so that rewards are
//! divided and providers' payouts run inside the sequences.
//!
//! Actions are drawn as symbols (who, which of their replicas, honest or not) and resolved
//! against the state when their block is built, so that commits, reveals and cancellations
//! name replicas, offers and jobs that exist often enough to exercise the rules.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use commonware_cryptography::Signer;
use exo_ledger::{
    Genesis, GenesisAccount, MemoryChain, Params, Signatures, TxStatus,
    modules::{
        bank::{self, Pot},
        market::{
            MarketParams, keys,
            records::{
                App, DeadlineCount, Holdings, IdList, Job, OfferRecord, OwnerIndex, Provider,
                ReplicaStatus, Unit, UnitState, WaitingList, WorkCount, WorkItem, WorkSlot,
            },
        },
        staking::{self, EpochRecord, ProviderPayout},
    },
    state::{Namespace, decode},
};
use exo_market::{DeviceClass, Requirements, Resources, Runtime, RuntimeSet};
use exo_types::{
    Action, Address, Amount, Hash32, JobSpec, PrivateKey, ResultCommit, ResultReveal, SignedTx,
    UnsignedTx, address_to_hex, result_commitment, result_seal,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const CHAIN: &str = "exo-sm";
const ACCOUNTS: u64 = 6;
const PROPOSER: u64 = 99;
/// Short, so that every sequence crosses epoch boundaries and their payouts.
const EPOCH: u64 = 4;
const APP: Hash32 = [5u8; 32];

fn key(i: u64) -> PrivateKey {
    PrivateKey::from_seed(i)
}

fn addr(i: u64) -> Address {
    key(i).public_key()
}

/// One action, as a symbol resolved against the state.
#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: u64,
        to: u64,
        exo: u64,
    },
    Register {
        who: u64,
        cores: u32,
        bond_exo: u64,
    },
    Update {
        who: u64,
        cores: u32,
    },
    Retire {
        who: u64,
    },
    Post {
        who: u64,
        slots: u32,
        price: u64,
        expiry: u64,
    },
    CancelOffer {
        who: u64,
        pick: usize,
    },
    Publish {
        who: u64,
        royalty: u64,
        module: u8,
    },
    Submit {
        who: u64,
        units: u32,
        trust: u8,
        price: u64,
        module: u8,
        /// Whose app of that module the job names.
        developer: u64,
    },
    CancelJob {
        who: u64,
        pick: usize,
    },
    Commit {
        who: u64,
        pick: usize,
        lie: bool,
    },
    Reveal {
        who: u64,
        pick: usize,
        bad_salt: bool,
    },
}

impl Op {
    const KINDS: usize = 11;
}

fn who() -> impl Strategy<Value = u64> {
    0..ACCOUNTS
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (who(), who(), 0u64..50).prop_map(|(from, to, exo)| Op::Transfer { from, to, exo }),
        (who(), 0u32..10, 0u64..60).prop_map(|(who, cores, bond_exo)| Op::Register {
            who,
            cores,
            bond_exo
        }),
        (who(), 0u32..10).prop_map(|(who, cores)| Op::Update { who, cores }),
        who().prop_map(|who| Op::Retire { who }),
        (who(), 0u32..4, 1u64..4, 0u64..30).prop_map(|(who, slots, price, expiry)| Op::Post {
            who,
            slots,
            price,
            expiry
        }),
        (who(), 0usize..8).prop_map(|(who, pick)| Op::CancelOffer { who, pick }),
        (who(), 0u64..3, 0u8..2).prop_map(|(who, royalty, module)| Op::Publish {
            who,
            royalty,
            module
        }),
        (who(), 0u32..4, 0u8..4, 1u64..4, 0u8..2, who()).prop_map(
            |(who, units, trust, price, module, developer)| Op::Submit {
                who,
                units,
                trust,
                price,
                module,
                developer,
            }
        ),
        (who(), 0usize..8).prop_map(|(who, pick)| Op::CancelJob { who, pick }),
        (who(), 0usize..8, proptest::bool::weighted(0.2)).prop_map(|(who, pick, lie)| Op::Commit {
            who,
            pick,
            lie
        }),
        (who(), 0usize..8, proptest::bool::weighted(0.1)).prop_map(|(who, pick, bad_salt)| {
            Op::Reveal {
                who,
                pick,
                bad_salt,
            }
        }),
    ]
}

fn resources(cores: u32) -> Resources {
    Resources {
        cores,
        cpu_score: 1_000_000_000,
        memory_mib: 4_096,
        gpu: None,
        class: DeviceClass::Pc,
        region: "eu".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    }
}

fn module_hash(module: u8) -> Hash32 {
    let mut hash = APP;
    hash[0] = module;
    hash
}

/// The true result of a unit, and a lie about it.
fn result(job: u64, unit: u32, lie: bool) -> (Hash32, u64) {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&job.to_be_bytes());
    digest[8..12].copy_from_slice(&unit.to_be_bytes());
    digest[31] = u8::from(lie);
    (digest, 1_000_000)
}

/// A replica by (account, job, unit, replica).
type ReplicaOf = (u64, u64, u32, u32);
/// What a replica committed: (digest, fuel, salt).
type Sealed = (Hash32, u64, Hash32);

struct Machine {
    chain: MemoryChain,
    /// What each replica committed.
    sealed: BTreeMap<ReplicaOf, Sealed>,
    /// Which kinds of action executed with `Ok` at least once.
    ok_kinds: [bool; Op::KINDS],
}

impl Machine {
    fn new() -> Self {
        let mut accounts: Vec<GenesisAccount> = (0..ACCOUNTS)
            .map(|i| GenesisAccount {
                address: address_to_hex(&addr(i)),
                balance: Amount::from_exo(1_000),
            })
            .collect();
        accounts.sort_by(|a, b| a.address.cmp(&b.address));
        let params = Params {
            market: MarketParams {
                commit_window_secs: 3,
                reveal_window_secs: 3,
                probation_slots: 4,
                // Low enough that the generated actions reach them.
                max_open_jobs_per_account: 3,
                max_apps_per_account: 2,
                max_offers_per_provider: 2,
                max_offer_lifetime_secs: 20,
                job_wait_window_secs: 6,
                max_assignments_per_block: 2,
                max_deadlines_per_second: 3,
                max_slots_per_provider: 5,
                ..MarketParams::default()
            },
            epoch_length: EPOCH,
            ..Params::default()
        };
        Self {
            chain: MemoryChain::new(Genesis {
                chain_id: CHAIN.into(),
                params,
                accounts,
                validators: vec![address_to_hex(&addr(PROPOSER))],
            }),
            sealed: BTreeMap::new(),
            ok_kinds: [false; Op::KINDS],
        }
    }

    fn provider(&self, who: u64) -> Option<Provider> {
        let id = self.chain.get::<OwnerIndex>(&keys::owner_key(&addr(who)))?;
        self.chain.get(&keys::provider_key(id.0))
    }

    fn work(&self, who: u64) -> Vec<(u64, u32, u32)> {
        let Some(p) = self.provider(who) else {
            return Vec::new();
        };
        let count = self
            .chain
            .get::<WorkCount>(&keys::work_key(p.id))
            .unwrap_or_default()
            .0;
        (0..count)
            .map(|at| {
                self.chain
                    .get::<WorkItem>(&keys::work_item_key(p.id, at))
                    .expect("every position below the count holds a replica")
                    .0
            })
            .collect()
    }

    fn list(&self, key: exo_ledger::Key) -> Vec<u64> {
        self.chain
            .get::<IdList>(&key)
            .map(|l| l.0)
            .unwrap_or_default()
    }

    /// The action an op stands for in the current state.
    fn action(&mut self, op: &Op) -> (u64, Action) {
        // The time of the block the action goes into, in seconds.
        let now_secs = self.chain.next_time_ms() / 1_000;
        match *op {
            Op::Transfer { from, to, exo } => (
                from,
                Action::Transfer {
                    to: addr(to),
                    amount: Amount::from_exo(exo),
                },
            ),
            Op::Register {
                who,
                cores,
                bond_exo,
            } => (
                who,
                Action::RegisterProvider {
                    resources: resources(cores),
                    bond: Amount::from_exo(bond_exo),
                },
            ),
            Op::Update { who, cores } => (
                who,
                Action::UpdateProvider {
                    resources: resources(cores),
                },
            ),
            Op::Retire { who } => (who, Action::RetireProvider),
            Op::Post {
                who,
                slots,
                price,
                expiry,
            } => (
                who,
                Action::PostOffer {
                    slots,
                    price_per_unit: Amount::from_exo(price),
                    expiry_secs: now_secs + expiry,
                },
            ),
            Op::CancelOffer { who, pick } => {
                let book = self.list(keys::book_key());
                let offer = book
                    .get(pick % book.len().max(1))
                    .copied()
                    .unwrap_or(pick as u64);
                (who, Action::CancelOffer { offer })
            }
            Op::Publish {
                who,
                royalty,
                module,
            } => (
                who,
                Action::PublishApp {
                    module_hash: module_hash(module),
                    name: "app".into(),
                    version: "1".into(),
                    royalty_per_unit: Amount(u128::from(royalty) * 1_000),
                },
            ),
            Op::Submit {
                who,
                units,
                trust,
                price,
                module,
                developer,
            } => (
                who,
                Action::SubmitJob(Box::new(JobSpec {
                    app: module_hash(module),
                    app_developer: addr(developer),
                    inputs: Vec::new(),
                    unit_args: Vec::new(),
                    units,
                    requirements: Requirements::wasm(512, 2_000_000),
                    max_price_per_unit: Amount::from_exo(price),
                    trust,
                })),
            ),
            Op::CancelJob { who, pick } => {
                let open = self.list(keys::open_jobs_key());
                let job = open
                    .get(pick % open.len().max(1))
                    .copied()
                    .unwrap_or(pick as u64);
                (who, Action::CancelJob { job })
            }
            Op::Commit { who, pick, lie } => {
                let work = self.work(who);
                let commits = work
                    .get(pick % work.len().max(1))
                    .map(|&(job, unit, replica)| {
                        let (digest, fuel) = result(job, unit, lie);
                        let salt = [who as u8 + 1; 32];
                        self.sealed
                            .insert((who, job, unit, replica), (digest, fuel, salt));
                        ResultCommit {
                            job,
                            unit,
                            replica,
                            commitment: result_commitment(&digest, fuel, &salt, &addr(who)),
                            seal: result_seal(&digest, fuel, job, unit),
                        }
                    })
                    .into_iter()
                    .collect();
                (who, Action::CommitResults(commits))
            }
            Op::Reveal {
                who,
                pick,
                bad_salt,
            } => {
                let mine: Vec<_> = self
                    .sealed
                    .iter()
                    .filter(|(k, _)| k.0 == who)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                let reveals = mine
                    .get(pick % mine.len().max(1))
                    .map(|&((_, job, unit, replica), (digest, fuel, salt))| {
                        let mut salt = salt;
                        salt[0] ^= u8::from(bad_salt);
                        ResultReveal {
                            job,
                            unit,
                            replica,
                            digest,
                            fuel,
                            salt,
                        }
                    })
                    .into_iter()
                    .collect();
                (who, Action::RevealResults(reveals))
            }
        }
    }

    fn block(&mut self, ops: &[Op]) {
        let mut nonces: BTreeMap<u64, u64> = BTreeMap::new();
        let mut txs: Vec<SignedTx> = Vec::new();
        let mut kinds = Vec::new();
        for op in ops {
            let (sender, action) = self.action(op);
            let nonce = nonces
                .entry(sender)
                .or_insert_with(|| self.chain.account(&addr(sender)).nonce);
            txs.push(
                UnsignedTx {
                    chain_id: CHAIN.into(),
                    sender: addr(sender),
                    nonce: *nonce,
                    fee: Amount(1_000),
                    action,
                }
                .sign(&key(sender)),
            );
            *nonce += 1;
            kinds.push(kind(op));
        }
        let height = self.chain.height + 1;
        let outcome = self
            .chain
            .next(&addr(PROPOSER), &txs, Signatures::Trusted)
            .unwrap_or_else(|fault| panic!("the ledger faulted at height {height}: {fault}"));
        for (receipt, kind) in outcome.receipts.iter().zip(kinds) {
            if receipt.as_ref().is_some_and(|r| r.status == TxStatus::Ok) {
                self.ok_kinds[kind] = true;
            }
        }
    }

    /// Every token, counted over the whole state, against the supply; and every pot against
    /// its module's record.
    fn audit(&self) {
        let mut held = 0u128;
        for (key, value) in &self.chain.store.entries {
            let table = |ns: Namespace, table: u8| key[0] == ns as u8 && key[1] == table;
            if table(Namespace::Bank, bank::Table::Account as u8) {
                held += decode::<bank::Account>(value).unwrap().balance.0;
            } else if table(Namespace::Bank, bank::Table::Pot as u8) {
                held += decode::<bank::PotBalance>(value).unwrap().0.0;
            } else if table(Namespace::Market, keys::Table::Provider as u8) {
                let p: Provider = decode(value).unwrap();
                assert_eq!(
                    self.pot(Pot::ProviderBond(p.id)),
                    p.bond.0,
                    "bond of {}",
                    p.id
                );
            } else if table(Namespace::Market, keys::Table::Job as u8) {
                let j: Job = decode(value).unwrap();
                assert_eq!(
                    self.pot(Pot::JobEscrow(j.id)),
                    j.accounts.held.0,
                    "job {}",
                    j.id
                );
                let a = &j.accounts;
                let spent = a.paid_total().0 + a.royalties.0 + a.fees.0 + a.refunded.0;
                assert_eq!(a.escrowed.0, spent + a.held.0, "job {} accounts", j.id);
            }
        }
        let supply: bank::Supply = self.chain.get(&bank::supply_key()).unwrap();
        assert_eq!(held, supply.total.0, "balances and pots against the supply");
        self.audit_market_indexes();
        self.audit_payouts();
        let minted: u128 = self.ended_epochs().iter().map(|r| r.minted.0).sum();
        assert_eq!(
            supply.total.0 + supply.burnt.0,
            1_000 * 1_000_000_000 * ACCOUNTS as u128 + minted,
            "the supply is the genesis plus the block rewards, less what was burnt"
        );
    }

    /// The market's indexes against the records they index: each provider's work set holds
    /// exactly its replicas that hold a slot (assigned or committed), each at the position its slot record gives; a unit says a
    /// replica of it is sought exactly when its job lists it as waiting; a job counts its
    /// waiting and running units right.
    fn audit_market_indexes(&self) {
        let entries = &self.chain.store.entries;
        let in_table = |key: &exo_ledger::Key, table: keys::Table| {
            key[0] == Namespace::Market as u8 && key[1] == table as u8
        };
        let mut open_replicas = 0u64;
        let mut running: BTreeMap<u64, u32> = BTreeMap::new();
        for (key, value) in entries
            .iter()
            .filter(|(k, _)| in_table(k, keys::Table::Unit))
        {
            let unit: Unit = decode(value).unwrap();
            let job: Job = self.chain.get(&keys::job_key(unit.job)).unwrap();
            let waiting: WaitingList = self
                .chain
                .get(&keys::waiting_key(unit.job))
                .unwrap_or_default();
            assert_eq!(
                unit.sought,
                waiting.0.iter().any(|w| w.unit == unit.unit),
                "unit {}/{} sought",
                unit.job,
                unit.unit
            );
            if unit.state == UnitState::Running {
                *running.entry(unit.job).or_default() += 1;
            }
            assert!(job.units > unit.unit, "{key:?}");
            // A revealed replica's work is done: it gave its slot back before its verdict.
            for r in unit.replicas.iter().filter(|r| r.status.holds_slot()) {
                open_replicas += 1;
                let slot: WorkSlot = self
                    .chain
                    .get(&keys::work_slot_key(
                        r.provider,
                        (unit.job, unit.unit, r.index),
                    ))
                    .expect("an open replica is in its provider's work set");
                let item: WorkItem = self
                    .chain
                    .get(&keys::work_item_key(r.provider, slot.0))
                    .unwrap();
                assert_eq!(item.0, (unit.job, unit.unit, r.index));
            }
        }
        for (_, value) in entries
            .iter()
            .filter(|(k, _)| in_table(k, keys::Table::Job))
        {
            let job: Job = decode(value).unwrap();
            let waiting: WaitingList = self
                .chain
                .get(&keys::waiting_key(job.id))
                .unwrap_or_default();
            assert_eq!(
                job.waiting as usize,
                waiting.0.len(),
                "job {} waiting",
                job.id
            );
            assert_eq!(
                job.running,
                running.get(&job.id).copied().unwrap_or(0),
                "job {} running",
                job.id
            );
            assert!(
                self.chain
                    .get::<JobSpec>(&keys::job_spec_key(job.id))
                    .is_some()
            );
        }
        let mut listed = 0u64;
        for (key, value) in entries
            .iter()
            .filter(|(k, _)| in_table(k, keys::Table::Work))
        {
            let provider = u64::from_be_bytes(key[26..34].try_into().unwrap());
            let count: WorkCount = decode(value).unwrap();
            assert!(count.0 > 0, "an empty work set has no count record");
            listed += u64::from(count.0);
            assert!(
                (0..count.0).all(|at| entries.contains_key(&keys::work_item_key(provider, at))),
                "provider {provider}'s work set has a gap"
            );
        }
        self.audit_holdings();
        let items = entries
            .keys()
            .filter(|k| in_table(k, keys::Table::WorkItem))
            .count() as u64;
        let slots = entries
            .keys()
            .filter(|k| in_table(k, keys::Table::WorkSlot))
            .count() as u64;
        assert_eq!(
            (listed, items, slots),
            (open_replicas, open_replicas, open_replicas)
        );
    }

    /// What each account holds against the records: its open jobs are the open jobs it
    /// requested, its offers exactly its offers on the book, its apps the apps it published;
    /// and each stays within its cap, a provider's replicas still running included (a
    /// committed replica gave its offer slot back: its run is done).
    fn audit_holdings(&self) {
        let params = &self.chain.genesis.params.market;
        let entries = &self.chain.store.entries;
        let mut running: BTreeMap<u64, u64> = BTreeMap::new();
        for (_, value) in entries
            .iter()
            .filter(|(k, _)| k[0] == Namespace::Market as u8 && k[1] == keys::Table::Unit as u8)
        {
            let unit: Unit = decode(value).unwrap();
            for r in &unit.replicas {
                if r.status == ReplicaStatus::Assigned {
                    *running.entry(r.provider).or_default() += 1;
                }
            }
        }
        let open: IdList = self.chain.get(&keys::open_jobs_key()).unwrap_or_default();
        let book: IdList = self.chain.get(&keys::book_key()).unwrap_or_default();
        let apps: Vec<App> = entries
            .iter()
            .filter(|(k, _)| k[0] == Namespace::Market as u8 && k[1] == keys::Table::App as u8)
            .map(|(_, v)| decode(v).unwrap())
            .collect();
        let mut listed = 0;
        for who in 0..ACCOUNTS {
            let account = addr(who);
            let h: Holdings = self
                .chain
                .get(&keys::holdings_key(&account))
                .unwrap_or_default();
            let jobs = open
                .0
                .iter()
                .filter(|id| {
                    self.chain
                        .get::<Job>(&keys::job_key(**id))
                        .unwrap()
                        .requester
                        == account
                })
                .count();
            assert_eq!(h.open_jobs as usize, jobs, "open jobs of {who}");
            assert!(h.open_jobs <= params.max_open_jobs_per_account);
            let published = apps.iter().filter(|a| a.developer == account).count();
            assert_eq!(h.apps as usize, published, "apps of {who}");
            assert!(h.apps <= params.max_apps_per_account);
            assert!(h.offers.len() as u32 <= params.max_offers_per_provider);
            for id in &h.offers {
                assert!(book.0.contains(id), "offer {id} of {who} is on the book");
                let o: OfferRecord = self.chain.get(&keys::offer_key(*id)).unwrap();
                assert_eq!(o.owner, account);
            }
            listed += h.offers.len();
            if let Some(p) = self.provider(who) {
                let offered: u64 = h
                    .offers
                    .iter()
                    .map(|id| {
                        let o: OfferRecord = self.chain.get(&keys::offer_key(*id)).unwrap();
                        u64::from(o.offer.slots)
                    })
                    .sum();
                let runs = running.get(&p.id).copied().unwrap_or_default();
                assert!(
                    runs + offered <= u64::from(params.max_slots_per_provider),
                    "provider of {who} runs {runs} replicas and offers {offered} slots"
                );
            }
        }
        for (key, value) in entries
            .iter()
            .filter(|(k, _)| k[0] == Namespace::Market as u8 && k[1] == keys::Table::Deadline as u8)
        {
            let count: DeadlineCount = decode(value).unwrap();
            assert!(count.0 <= params.max_deadlines_per_second, "{key:?}");
        }
        assert_eq!(
            listed,
            book.0.len(),
            "every offer on the book is in its owner's holdings"
        );
    }

    /// The providers' payouts against their pot and their work: the pot holds what every
    /// epoch's pool has not paid yet, and each epoch keeps one position and one units record
    /// for each owner it has not paid.
    fn audit_payouts(&self) {
        let count = |table: staking::Table| -> usize {
            self.chain
                .store
                .entries
                .keys()
                .filter(|k| k[0] == Namespace::Staking as u8 && k[1] == table as u8)
                .count()
        };
        let (mut unpaid, mut owners_left) = (0u128, 0u64);
        for (key, value) in &self.chain.store.entries {
            if key[0] == Namespace::Staking as u8 && key[1] == staking::Table::Payout as u8 {
                let p: ProviderPayout = decode(value).unwrap();
                assert!(p.next <= p.owners && p.owners <= p.units, "payout {p:?}");
                unpaid += p.unpaid().unwrap().0;
                owners_left += p.owners - p.next;
            }
        }
        assert_eq!(self.pot(Pot::Payouts), unpaid, "the payouts' pot");
        assert_eq!(count(staking::Table::Workers) as u64, owners_left);
        assert_eq!(count(staking::Table::Units) as u64, owners_left);
    }

    /// The records of the epochs that have ended.
    fn ended_epochs(&self) -> Vec<EpochRecord> {
        let ended = (self.chain.height + 1) / EPOCH;
        (0..ended)
            .map(|e| self.chain.get(&staking::epoch_key(e)).unwrap())
            .collect()
    }

    fn pot(&self, pot: Pot) -> u128 {
        self.chain
            .get::<bank::PotBalance>(&bank::pot_key(pot))
            .map_or(0, |p| p.0.0)
    }
}

fn kind(op: &Op) -> usize {
    match op {
        Op::Transfer { .. } => 0,
        Op::Register { .. } => 1,
        Op::Update { .. } => 2,
        Op::Retire { .. } => 3,
        Op::Post { .. } => 4,
        Op::CancelOffer { .. } => 5,
        Op::Publish { .. } => 6,
        Op::Submit { .. } => 7,
        Op::CancelJob { .. } => 8,
        Op::Commit { .. } => 9,
        Op::Reveal { .. } => 10,
    }
}

fn run(blocks: &[Vec<Op>]) -> Machine {
    let mut m = Machine::new();
    for ops in blocks {
        m.block(ops);
        m.audit();
    }
    m
}

/// A fixed sequence that takes every action through to `Ok` at least once, so that the
/// random sequences below start from a market that works.
fn every_action_once() -> Vec<Vec<Op>> {
    vec![
        vec![
            Op::Publish {
                who: 0,
                royalty: 1,
                module: 0,
            },
            Op::Register {
                who: 1,
                cores: 4,
                bond_exo: 20,
            },
            Op::Register {
                who: 2,
                cores: 4,
                bond_exo: 20,
            },
            Op::Register {
                who: 3,
                cores: 4,
                bond_exo: 20,
            },
            Op::Transfer {
                from: 4,
                to: 5,
                exo: 1,
            },
        ],
        vec![
            Op::Update { who: 3, cores: 8 },
            Op::Post {
                who: 1,
                slots: 2,
                price: 1,
                expiry: 15,
            },
            Op::Post {
                who: 2,
                slots: 2,
                price: 1,
                expiry: 15,
            },
            Op::Post {
                who: 3,
                slots: 1,
                price: 1,
                expiry: 15,
            },
        ],
        vec![Op::CancelOffer { who: 3, pick: 2 }, Op::Retire { who: 3 }],
        vec![
            Op::Submit {
                who: 4,
                units: 2,
                trust: 2,
                price: 2,
                module: 0,
                developer: 0,
            },
            Op::Submit {
                who: 5,
                units: 1,
                trust: 1,
                price: 2,
                module: 0,
                developer: 0,
            },
        ],
        vec![Op::CancelJob { who: 5, pick: 1 }],
        vec![
            Op::Commit {
                who: 1,
                pick: 0,
                lie: false,
            },
            Op::Commit {
                who: 2,
                pick: 0,
                lie: false,
            },
        ],
        // The blocks up to the audit draw after the commitments (AUDIT_SEED_DELAY).
        vec![],
        vec![],
        vec![
            Op::Reveal {
                who: 1,
                pick: 0,
                bad_salt: false,
            },
            Op::Reveal {
                who: 2,
                pick: 0,
                bad_salt: false,
            },
        ],
    ]
}

#[test]
fn every_action_of_every_module_executes_and_tokens_are_conserved() {
    let mut m = run(&every_action_once());
    let missing: Vec<usize> = (0..Op::KINDS).filter(|k| !m.ok_kinds[*k]).collect();
    assert!(missing.is_empty(), "actions never accepted: {missing:?}");
    // To the end of the running epoch, whose providers' payout then runs.
    while !(m.chain.height + 1).is_multiple_of(EPOCH) {
        m.block(&[]);
        m.audit();
    }
    let paid: u128 = m.ended_epochs().iter().map(|r| r.to_providers.0).sum();
    assert!(paid > 0, "confirmed work was paid the providers' share");
}

/// A sequence the random runs found: a provider posts an offer up to its slot cap, runs a
/// unit and commits it. The committed replica gives its offer slot back while it waits to
/// reveal, so the replicas a provider holds plus its free slots may pass the cap; the replicas
/// it still runs plus its free slots may not.
#[test]
fn a_committed_replica_gives_its_slot_back_and_the_slot_cap_still_holds() {
    let mut sequence = every_action_once();
    sequence.push(vec![Op::Post {
        who: 1,
        slots: 3,
        price: 1,
        expiry: 2,
    }]);
    sequence.push(vec![Op::Submit {
        who: 0,
        units: 1,
        trust: 1,
        price: 1,
        module: 0,
        developer: 0,
    }]);
    sequence.push(vec![Op::Commit {
        who: 1,
        pick: 0,
        lie: false,
    }]);
    run(&sequence);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_sequences_of_every_action_never_fault_and_conserve_tokens(
        blocks in proptest::collection::vec(proptest::collection::vec(op(), 0..8), 1..14)
    ) {
        let mut sequence = every_action_once();
        sequence.extend(blocks);
        let first = run(&sequence);
        let again = run(&sequence);
        prop_assert_eq!(&first.chain.store, &again.chain.store, "same sequence, same state");
    }
}
