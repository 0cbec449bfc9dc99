//! What one result costs the ledger does not depend on the size of its job or on how much work
//! its provider holds: a commitment and a reveal read and write the same records, of the same
//! sizes, for a unit of a 10-unit job as for one of a 2,000-unit job, and for a provider that
//! holds 40 open replicas as for one that holds 2,010. (A removal from a work set loads the
//! last 32 positions at once, so below 32 replicas it reads fewer keys.)
//!
//! This counts state bytes, not time: the same on every machine. The transaction's action is
//! run alone on a fresh cache over the chain's store, so that the block's own work (fees,
//! receipts, the batch match, which reads every open job's header) is left out.

use super::{
    Market, MarketParams, keys,
    records::{AUDIT_SEED_DELAY, OwnerIndex, Unit, WorkCount, WorkItem},
};
use crate::{
    BlockEnv, Genesis, GenesisAccount, MemoryChain, Params, Signatures, TxStatus,
    state::{Halt, StateCache},
};
use commonware_cryptography::Signer;
use exo_market::{DeviceClass, Requirements, Resources, Runtime, RuntimeSet};
use exo_types::{
    Action, Address, Amount, Hash32, JobSpec, PrivateKey, ResultCommit, ResultReveal, SignedTx,
    UnsignedTx, address_to_hex, result_commitment, result_seal,
};
use std::collections::BTreeMap;

const CHAIN: &str = "exo-test";
const REQUESTER: u64 = 1;
const DEVELOPER: u64 = 2;
const PROPOSER: u64 = 9;
/// Holds every replica of a 10-unit and a 2,000-unit job.
const BUSY: u64 = 11;
/// Holds the 40 replicas of a 40-unit job.
const IDLE: u64 = 12;
const APP: Hash32 = [7u8; 32];
const FUEL: u64 = 1_000_000_000;

fn key(i: u64) -> PrivateKey {
    PrivateKey::from_seed(i)
}

fn addr(i: u64) -> Address {
    key(i).public_key()
}

fn spec(units: u32) -> JobSpec {
    JobSpec {
        app: APP,
        app_developer: addr(DEVELOPER),
        inputs: Vec::new(),
        // Unit arguments make the spec grow with the job, as real jobs do.
        unit_args: (0..units).map(|u| format!("frame {u:05}")).collect(),
        units,
        requirements: Requirements::wasm(512, 2 * FUEL),
        max_price_per_unit: Amount::from_exo(2),
        trust: 1,
    }
}

/// What one block read from the store and wrote to it: keys and value bytes.
#[derive(Debug, PartialEq, Eq)]
struct Io {
    read_keys: usize,
    read_bytes: usize,
    written_keys: usize,
    written_bytes: usize,
}

struct World {
    chain: MemoryChain,
    nonces: BTreeMap<u64, u64>,
}

impl World {
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

    fn ok(&mut self, txs: Vec<SignedTx>) {
        for receipt in self.chain.execute_block(&addr(PROPOSER), &txs) {
            assert_eq!(receipt.expect("fresh").status, TxStatus::Ok);
        }
    }

    /// Runs `action` of `account` in the next block, alone, and counts what it read and
    /// wrote.
    fn measure(&self, account: u64, action: &Action) -> Io {
        self.measure_step(|market, cache| {
            let verdict = market.deliver(cache, &addr(account), action)?;
            verdict.expect("the action is accepted");
            Ok(())
        })
    }

    /// Runs `step` in the next block on a fresh cache over the chain's store, loading what
    /// it asks for until it completes, and counts what it read and wrote.
    fn measure_step(
        &self,
        step: impl FnMut(&mut Market, &mut StateCache) -> Result<(), Halt>,
    ) -> Io {
        let (cache, read_keys, read_bytes) = self.run_step(step);
        Io {
            read_keys,
            read_bytes,
            written_keys: cache.writes().len(),
            written_bytes: cache
                .writes()
                .filter_map(|(_, v)| v.as_ref())
                .map(Vec::len)
                .sum(),
        }
    }

    /// Runs `step` as [`Self::measure_step`] does: answers its cache, and the keys and bytes
    /// it read from the store.
    fn run_step(
        &self,
        mut step: impl FnMut(&mut Market, &mut StateCache) -> Result<(), Halt>,
    ) -> (StateCache, usize, usize) {
        let height = self.chain.height + 1;
        let env = BlockEnv {
            height,
            time_ms: self.chain.next_time_ms(),
            proposer: addr(PROPOSER),
            skipped_leaders: Vec::new(),
            parent_voters: Vec::new(),
            seed: MemoryChain::seed(height),
        };
        let params = &self.chain.genesis.params.market;
        let epoch_length = self.chain.genesis.params.epoch_length;
        let store = &self.chain.store.entries;
        let mut cache = StateCache::new();
        let (mut read_keys, mut read_bytes) = (0, 0);
        loop {
            let checkpoint = cache.checkpoint();
            match step(&mut Market::new(params, &env, epoch_length), &mut cache) {
                Ok(()) => return (cache, read_keys, read_bytes),
                Err(Halt::Missing(missing)) => {
                    cache.rollback(checkpoint);
                    for key in missing.0 {
                        let value = store.get(&key).cloned();
                        read_keys += 1;
                        read_bytes += value.as_ref().map_or(0, Vec::len);
                        cache.load(key, value);
                    }
                }
                Err(Halt::Fault(fault)) => panic!("the ledger stopped: {fault}"),
            }
        }
    }

    /// Files `count` deadlines under `second` and keeps them in the chain's store.
    fn file_deadlines(&mut self, second: u64, count: u32) {
        let (cache, _, _) = self.run_step(|market, cache| {
            for unit in 0..count {
                market.add_deadline(cache, second, 0, unit, 0)?;
            }
            Ok(())
        });
        self.chain.store.apply(cache.into_writes());
    }

    fn provider_id(&self, account: u64) -> u64 {
        self.chain
            .get::<OwnerIndex>(&keys::owner_key(&addr(account)))
            .expect("registered")
            .0
    }

    /// The replica `account` holds first in its work set: not its last one, so removing it
    /// moves another into its place (the most a removal costs).
    fn first_work(&self, account: u64) -> (u64, u32, u32) {
        let id = self.provider_id(account);
        let count: WorkCount = self.chain.get(&keys::work_key(id)).expect("work");
        assert!(count.0 >= 2);
        let item: WorkItem = self.chain.get(&keys::work_item_key(id, 0)).expect("first");
        item.0
    }

    fn replica_of(&self, account: u64, job: u64, unit: u32) -> u32 {
        let id = self.provider_id(account);
        let unit: Unit = self.chain.get(&keys::unit_key(job, unit)).expect("unit");
        unit.replicas
            .iter()
            .find(|r| r.provider == id)
            .expect("held")
            .index
    }

    fn commit(&self, account: u64, job: u64, unit: u32) -> Action {
        Action::CommitResults(vec![self.commit_result(account, job, unit)])
    }

    fn commit_result(&self, account: u64, job: u64, unit: u32) -> ResultCommit {
        let replica = self.replica_of(account, job, unit);
        let commitment = result_commitment(&digest(job, unit), FUEL, &[5; 32], &addr(account));
        ResultCommit {
            job,
            unit,
            replica,
            commitment,
            seal: result_seal(&digest(job, unit), FUEL, job, unit),
        }
    }

    fn reveal(&self, account: u64, job: u64, unit: u32) -> Action {
        Action::RevealResults(vec![self.reveal_result(account, job, unit)])
    }

    fn reveal_result(&self, account: u64, job: u64, unit: u32) -> ResultReveal {
        ResultReveal {
            job,
            unit,
            replica: self.replica_of(account, job, unit),
            digest: digest(job, unit),
            fuel: FUEL,
            salt: [5; 32],
        }
    }

    /// Runs one block of `txs`, all accepted, and says how many store rounds it needed.
    fn rounds(&mut self, txs: Vec<SignedTx>) -> u32 {
        let outcome = self
            .chain
            .next(&addr(PROPOSER), &txs, Signatures::Verify)
            .expect("the ledger runs the block");
        for receipt in outcome.receipts {
            assert_eq!(receipt.expect("fresh").status, TxStatus::Ok);
        }
        outcome.store_rounds
    }

    /// Runs the empty blocks up to the one that draws the audits of units whose last
    /// commitment the previous block took, and says how many store rounds the most costly
    /// needed.
    fn draw_audits(&mut self) -> u32 {
        (0..AUDIT_SEED_DELAY)
            .map(|_| self.rounds(Vec::new()))
            .max()
            .unwrap_or(0)
    }
}

fn digest(job: u64, unit: u32) -> Hash32 {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&job.to_be_bytes());
    d[8..12].copy_from_slice(&unit.to_be_bytes());
    d
}

fn resources() -> Resources {
    Resources {
        cores: 8,
        cpu_score: 1_000_000_000,
        memory_mib: 8_192,
        gpu: None,
        class: DeviceClass::Pc,
        region: "eu-west".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1),
        max_unit_fuel: 1_000_000_000_000,
    }
}

/// Job 0 (10 units) and job 1 (2,000 units) on the busy provider, job 2 (40 units) on the idle
/// one; every replica assigned, and the first of each provider's work set committed.
fn world() -> World {
    let params = Params {
        market: MarketParams {
            // No probation and audits as rare as the parameters allow: every unit gets exactly one
            // replica at once.
            probation_results: 0,
            audit_ppm: 1,
            // The busy provider holds 2,010 replicas.
            max_slots_per_provider: 4_096,
            ..MarketParams::default()
        },
        ..Params::default()
    };
    let mut accounts: Vec<GenesisAccount> = [REQUESTER, DEVELOPER, BUSY, IDLE]
        .into_iter()
        .map(|i| GenesisAccount {
            address: address_to_hex(&addr(i)),
            balance: Amount::from_exo(10_000_000),
        })
        .collect();
    accounts.sort_by(|a, b| a.address.cmp(&b.address));
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        params,
        accounts,
        validators: vec![address_to_hex(&addr(PROPOSER))],
    };
    let mut w = World {
        chain: MemoryChain::new(genesis),
        nonces: BTreeMap::new(),
    };
    let offer = |slots| Action::PostOffer {
        slots,
        price_per_unit: Amount::from_exo(1),
        expiry_secs: 10_000,
    };
    let register = Action::RegisterProvider {
        resources: resources(),
        bond: Amount::from_exo(100),
    };
    let txs = vec![
        w.tx(
            DEVELOPER,
            Action::PublishApp {
                module_hash: APP,
                name: "render".into(),
                version: "1.0".into(),
                royalty_per_unit: Amount(10_000_000),
            },
        ),
        w.tx(BUSY, register.clone()),
        w.tx(BUSY, offer(1_024)),
        w.tx(BUSY, offer(986)),
    ];
    w.ok(txs);
    let txs = vec![
        w.tx(REQUESTER, Action::SubmitJob(Box::new(spec(10)))),
        w.tx(REQUESTER, Action::SubmitJob(Box::new(spec(2_000)))),
    ];
    w.ok(txs);
    let txs = vec![w.tx(IDLE, register), w.tx(IDLE, offer(40))];
    w.ok(txs);
    let txs = vec![w.tx(REQUESTER, Action::SubmitJob(Box::new(spec(40))))];
    w.ok(txs);
    let busy = w
        .chain
        .get::<WorkCount>(&keys::work_key(w.provider_id(BUSY)));
    let idle = w
        .chain
        .get::<WorkCount>(&keys::work_key(w.provider_id(IDLE)));
    assert_eq!((busy, idle), (Some(WorkCount(2_010)), Some(WorkCount(40))));
    w
}

#[test]
fn a_commitment_costs_the_same_for_a_small_and_a_large_job() {
    let w = world();
    let small = w.measure(BUSY, &w.commit(BUSY, 0, 3));
    let large = w.measure(BUSY, &w.commit(BUSY, 1, 1_500));
    assert_eq!(small, large);
}

#[test]
fn a_reveal_costs_the_same_for_a_small_and_a_large_job() {
    let mut w = world();
    let txs = vec![
        w.tx(BUSY, w.commit(BUSY, 0, 3)),
        w.tx(BUSY, w.commit(BUSY, 1, 1_500)),
    ];
    w.ok(txs);
    w.draw_audits();
    let small = w.measure(BUSY, &w.reveal(BUSY, 0, 3));
    let large = w.measure(BUSY, &w.reveal(BUSY, 1, 1_500));
    assert_eq!(small, large);
}

#[test]
fn a_reveal_costs_the_same_whatever_work_its_provider_holds() {
    let mut w = world();
    let (busy_job, busy_unit, _) = w.first_work(BUSY);
    let (idle_job, idle_unit, _) = w.first_work(IDLE);
    let txs = vec![
        w.tx(BUSY, w.commit(BUSY, busy_job, busy_unit)),
        w.tx(IDLE, w.commit(IDLE, idle_job, idle_unit)),
    ];
    w.ok(txs);
    w.draw_audits();
    let busy = w.measure(BUSY, &w.reveal(BUSY, busy_job, busy_unit));
    let idle = w.measure(IDLE, &w.reveal(IDLE, idle_job, idle_unit));
    assert_eq!(busy, idle);
}

/// A block full of results loads its keys in a few rounds, not one round per result: every
/// round is a trip to the store and a re-run of the piece of work that needed the keys, so a
/// count that grew with the results would make a busy block quadratic (a benchmark's chain
/// stopped finalizing that way).
#[test]
fn a_block_of_two_thousand_results_needs_few_store_rounds() {
    let mut w = world();
    let units: Vec<u32> = (0..2_000).collect();
    // 32 transactions of 64 results: at most five rounds each (one removed 1,078 rounds).
    let bound = 5 * 32;
    let commits: Vec<SignedTx> = units
        .chunks(64)
        .map(|chunk| {
            let results = chunk.iter().map(|u| w.commit_result(BUSY, 1, *u)).collect();
            w.tx(BUSY, Action::CommitResults(results))
        })
        .collect();
    let commit_rounds = w.rounds(commits);
    let draw_rounds = w.draw_audits();
    let reveals: Vec<SignedTx> = units
        .chunks(64)
        .map(|chunk| {
            let results = chunk.iter().map(|u| w.reveal_result(BUSY, 1, *u)).collect();
            w.tx(BUSY, Action::RevealResults(results))
        })
        .collect();
    let reveal_rounds = w.rounds(reveals);
    assert!(
        commit_rounds <= bound && draw_rounds <= bound && reveal_rounds <= bound,
        "{commit_rounds} rounds for 2,000 commitments, {draw_rounds} for their audit draws, \
         {reveal_rounds} for their reveals"
    );
}

/// The store rounds of a block of results do not grow with its transactions: what every
/// transaction reads first (its receipt, its sender's account, its provider's index, the units
/// it names and what settling them touches) is loaded for the whole block in a few rounds
/// before any runs, instead of each transaction stopping at each unloaded key, rolled back and
/// run again. Only the removals from the provider's work set read ahead by windows of
/// `WORK_PREFETCH` positions, wherever the transactions' boundaries fall.
#[test]
fn a_block_of_results_needs_no_more_store_rounds_for_more_transactions() {
    let rounds = |transactions: u32| {
        let mut w = world();
        let units: Vec<u32> = (0..transactions * 8).collect();
        let block = |w: &mut World, reveal: bool| -> Vec<SignedTx> {
            let actions: Vec<Action> = units
                .chunks(8)
                .map(|chunk| {
                    if reveal {
                        Action::RevealResults(
                            chunk.iter().map(|u| w.reveal_result(BUSY, 1, *u)).collect(),
                        )
                    } else {
                        Action::CommitResults(
                            chunk.iter().map(|u| w.commit_result(BUSY, 1, *u)).collect(),
                        )
                    }
                })
                .collect();
            actions.into_iter().map(|a| w.tx(BUSY, a)).collect()
        };
        let commits = block(&mut w, false);
        let commit_rounds = w.rounds(commits);
        w.draw_audits();
        let reveals = block(&mut w, true);
        (commit_rounds, w.rounds(reveals))
    };
    let (one, many) = (rounds(1), rounds(64));
    let windows = (64 * 8u32).div_ceil(super::settlement::WORK_PREFETCH);
    assert!(
        many.0 <= one.0 && many.1 <= one.1 + windows,
        "64 transactions of results needed {many:?} store rounds (commits, reveals), one \
         needed {one:?}"
    );
}

/// Filing a deadline writes two small records whatever its second already holds: a batch match
/// of thousands of assignments files thousands of commit deadlines under one second, and each
/// used to rewrite the whole list of that second.
#[test]
fn filing_a_deadline_costs_the_same_whatever_its_second_holds() {
    let mut w = world();
    // Far past every window of the world: nothing else falls due then.
    let (quiet, busy) = (4_000_000_000, 4_000_000_001);
    w.file_deadlines(quiet, 1);
    w.file_deadlines(busy, 2_000);
    let file = |second| {
        w.measure_step(|market, cache| market.add_deadline(cache, second, 0, 7, 0).map(drop))
    };
    let (quiet, busy) = (file(quiet), file(busy));
    assert_eq!(quiet, busy);
    assert_eq!(quiet.written_keys, 2);
}
