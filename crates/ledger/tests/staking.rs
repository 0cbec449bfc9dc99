//! Staking on the in-memory chain: registration, nomination, unbonding, the bounds, and the
//! election of the committee at each epoch boundary.

use commonware_cryptography::Signer;
use exo_ledger::{
    BlockEnv, BlockInput, Evidence, EvidenceKind, Genesis, GenesisAccount, GenesisError,
    MemoryChain, Params, Policy, Rejection, Signatures, TxStatus,
    modules::{
        bank::{self, Pot},
        staking::{
            self, Committee, Credit, EpochRecord, Exposure, MAX_ELECTION_WORK, MAX_EPOCH_MINT,
            PAYOUTS_PER_BLOCK, PROPOSAL_POINTS, PayoutQueue, ProviderPayout, Refusal, Staker,
            StakingParams, StakingParamsError, Status, VOTE_POINTS, Validator, committee_key,
            credit_units, epoch_key, exposure_key, payout_key, payout_queue_key, staker_key,
            validator_key,
        },
    },
    state::{Halt, Namespace, StateCache, decode, keys::in_table},
};
use exo_types::{Action, Address, Amount, PrivateKey, UnsignedTx, address_to_hex};
use std::collections::BTreeMap;

const CHAIN: &str = "exo-test";
const EPOCH: u64 = 10;
const FEE: u128 = 1_000;
/// The proposer of every block: it collects the fees and stakes nothing.
const PROPOSER: u64 = 99;
const GENESIS_VALIDATORS: [u64; 4] = [1, 2, 3, 4];

fn key(i: u64) -> PrivateKey {
    PrivateKey::from_seed(i)
}

fn addr(i: u64) -> Address {
    key(i).public_key()
}

fn params() -> StakingParams {
    StakingParams {
        min_self_bond: Amount(100),
        min_nomination: Amount(10),
        genesis_self_bond: Amount(1_000),
        committee_size: 4,
        max_validators: 8,
        max_nominators: 4,
        max_nominators_per_validator: 2,
        max_targets: 3,
        max_unbonding_chunks: 2,
        unbonding_secs: 30,
        evidence_window_secs: 20,
        slash_deferral_secs: 5,
        balance_rounds: 20,
        exposure_epochs: 4,
        block_reward: Amount(1_000),
        provider_share_bps: 3_000,
        slash_floor_bps: 100,
        downtime_threshold_bps: 5_000,
        downtime_min_missed: 2,
        jail_blocks: 15,
    }
}

fn genesis(staking: StakingParams) -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        params: Params {
            epoch_length: EPOCH,
            staking,
            ..Params::default()
        },
        accounts: (1..=30)
            .map(|i| GenesisAccount {
                address: address_to_hex(&addr(i)),
                balance: Amount(1_000_000),
            })
            .collect(),
        validators: GENESIS_VALIDATORS
            .iter()
            .map(|i| address_to_hex(&addr(*i)))
            .collect(),
    }
}

struct Net {
    chain: MemoryChain,
    nonces: BTreeMap<u64, u64>,
    /// The leader of the next block and the leaders the chain skipped before it (key
    /// seeds); then back to [`PROPOSER`], a key no validator registered, and no skips.
    leader: u64,
    skipped: Vec<u64>,
    /// The signers of the certificate of its parent the next block carries (key seeds); then
    /// none.
    voters: Vec<u64>,
    /// Faults the next block carries.
    evidence: Vec<Evidence>,
}

impl Net {
    fn new() -> Self {
        Self::with(params())
    }

    fn with(staking: StakingParams) -> Self {
        Self {
            chain: MemoryChain::new(genesis(staking)),
            nonces: BTreeMap::new(),
            leader: PROPOSER,
            skipped: Vec::new(),
            voters: Vec::new(),
            evidence: Vec::new(),
        }
    }

    /// Has the next block proposed by `leader` after the chain skipped `skipped`.
    fn led_by(&mut self, leader: u64, skipped: &[u64]) -> &mut Self {
        self.leader = leader;
        self.skipped = skipped.to_vec();
        self
    }

    /// Has the next block carry a certificate of its parent signed by `voters`.
    fn voted_by(&mut self, voters: &[u64]) -> &mut Self {
        self.voters = voters.to_vec();
        self
    }

    /// Executes one block with one action of each sender; returns their statuses.
    fn block(&mut self, actions: &[(u64, Action)]) -> Vec<TxStatus> {
        let txs: Vec<_> = actions
            .iter()
            .map(|(from, action)| {
                let nonce = self.nonces.entry(*from).or_default();
                let tx = UnsignedTx {
                    chain_id: CHAIN.into(),
                    sender: addr(*from),
                    nonce: *nonce,
                    fee: Amount(FEE),
                    action: action.clone(),
                }
                .sign(&key(*from));
                *nonce += 1;
                tx
            })
            .collect();
        let height = self.chain.height + 1;
        let env = BlockEnv {
            height,
            time_ms: self.chain.next_time_ms(),
            proposer: addr(std::mem::replace(&mut self.leader, PROPOSER)),
            skipped_leaders: std::mem::take(&mut self.skipped)
                .into_iter()
                .map(addr)
                .collect(),
            parent_voters: std::mem::take(&mut self.voters)
                .into_iter()
                .map(addr)
                .collect(),
            seed: MemoryChain::seed(height),
        };
        let input = BlockInput {
            env,
            evidence: std::mem::take(&mut self.evidence),
            txs,
            signatures: Signatures::Verify,
            policy: Policy::Verify,
        };
        self.chain
            .run(input)
            .unwrap_or_else(|fault| panic!("the ledger stopped: {fault}"))
            .receipts
            .into_iter()
            .map(|r| r.expect("not a duplicate").status)
            .collect()
    }

    fn one(&mut self, from: u64, action: Action) -> TxStatus {
        self.block(&[(from, action)]).remove(0)
    }

    /// Runs empty blocks until `height` has been executed.
    fn run_to(&mut self, height: u64) {
        while self.chain.height < height {
            self.block(&[]);
        }
    }

    fn committee(&self, epoch: u64) -> Committee {
        self.chain
            .get(&committee_key(epoch))
            .expect("a committee for the epoch")
    }

    fn members(&self, epoch: u64) -> Vec<Address> {
        self.committee(epoch)
            .members
            .into_iter()
            .map(|m| m.validator)
            .collect()
    }

    fn staker(&self, i: u64) -> Option<Staker> {
        self.chain.get(&staker_key(&addr(i)))
    }

    fn validator(&self, i: u64) -> Option<Validator> {
        self.chain.get(&validator_key(&addr(i)))
    }

    fn balance(&self, i: u64) -> u128 {
        self.chain.account(&addr(i)).balance.0
    }

    fn record(&self, epoch: u64) -> EpochRecord {
        self.chain
            .get(&epoch_key(epoch))
            .expect("a record of the epoch")
    }

    fn supply(&self) -> u128 {
        self.chain
            .get::<bank::Supply>(&bank::supply_key())
            .expect("a supply")
            .total
            .0
    }

    fn named_pot(&self, pot: Pot) -> u128 {
        self.chain
            .get::<bank::PotBalance>(&bank::pot_key(pot))
            .map_or(0, |p| p.0.0)
    }

    /// Every balance and every pot in state, summed: the supply, if no token was lost or made.
    fn held(&self) -> u128 {
        let mut sum = 0u128;
        for (key, value) in &self.chain.store.entries {
            if in_table(key, Namespace::Bank, bank::Table::Account as u8) {
                sum += decode::<bank::Account>(value)
                    .expect("an account")
                    .balance
                    .0;
            } else if in_table(key, Namespace::Bank, bank::Table::Pot as u8) {
                sum += decode::<bank::PotBalance>(value).expect("a pot").0.0;
            }
        }
        sum
    }

    /// What the genesis funded plus what every ended epoch minted, checked against the supply
    /// and against every balance and pot summed.
    fn assert_supply_is_genesis_plus_minted(&self) {
        let genesis: u128 = 30 * 1_000_000;
        let ended = (self.chain.height + 1) / EPOCH;
        let minted: u128 = (0..ended).map(|e| self.record(e).minted.0).sum();
        assert_eq!(self.supply(), genesis + minted, "supply = genesis + minted");
        assert_eq!(
            self.held(),
            self.supply(),
            "balances and pots sum to the supply"
        );
    }

    fn pot(&self, i: u64) -> u128 {
        let id = self.staker(i).expect("a staker").id;
        self.chain
            .get::<bank::PotBalance>(&bank::pot_key(Pot::StakeBond(id)))
            .map_or(0, |p| p.0.0)
    }
}

fn register(bond: u128) -> Action {
    register_with(bond, 0)
}

fn register_with(bond: u128, consensus_seed: u64) -> Action {
    Action::RegisterValidator {
        consensus_key: addr(1_000 + consensus_seed),
        p2p_address: "127.0.0.1:4000".into(),
        commission_bps: 500,
        self_bond: Amount(bond),
    }
}

fn nominate(targets: &[u64], bond: u128) -> Action {
    Action::Nominate {
        targets: targets.iter().map(|i| addr(*i)).collect(),
        bond: Amount(bond),
    }
}

fn refused(r: Refusal) -> TxStatus {
    TxStatus::Rejected(Rejection::Staking(r))
}

fn sorted(ids: &[u64]) -> Vec<Address> {
    let mut v: Vec<Address> = ids.iter().map(|i| addr(*i)).collect();
    v.sort();
    v
}

/// Registers candidates 5, 6 and 7 (self-bonds 500, 600, 700), each with its own consensus
/// key, in block 1.
fn seven_candidates() -> Net {
    let mut net = Net::new();
    let statuses = net.block(&[
        (5, register_with(500, 5)),
        (6, register_with(600, 6)),
        (7, register_with(700, 7)),
    ]);
    assert_eq!(statuses, vec![TxStatus::Ok; 3]);
    net
}

#[test]
fn genesis_registers_its_validators_with_their_bond_and_the_first_two_committees() {
    let mut net = Net::new();
    // The genesis state is written with the first block.
    net.run_to(1);
    for i in GENESIS_VALIDATORS {
        let v = net.validator(i).expect("a genesis validator");
        assert_eq!(v.status, Status::Active);
        assert_eq!(v.consensus_key, addr(i));
        assert_eq!(net.staker(i).expect("a bond").active, Amount(1_000));
        assert_eq!(net.pot(i), 1_000);
        assert_eq!(net.balance(i), 1_000_000 - 1_000);
    }
    for epoch in [0, 1] {
        let c = net.committee(epoch);
        assert!(!c.elected);
        assert_eq!(
            c.members
                .iter()
                .map(|m| m.validator.clone())
                .collect::<Vec<_>>(),
            sorted(&GENESIS_VALIDATORS)
        );
    }
}

#[test]
fn seven_candidates_elect_four_and_shifted_nominations_change_the_committee_at_the_boundary() {
    let mut net = seven_candidates();
    // Block 9 is the last of epoch 0: it elects the committee of epoch 2 from the bonds alone.
    net.run_to(EPOCH - 2);
    assert!(net.chain.get::<Committee>(&committee_key(2)).is_none());
    net.run_to(EPOCH - 1);
    let c2 = net.committee(2);
    assert!(c2.elected);
    assert_eq!(net.members(2), sorted(&GENESIS_VALIDATORS));
    assert!(c2.members.iter().all(|m| m.backing == Amount(1_000)));

    // Nominators shift 2,000 each onto candidates 5 and 6 during epoch 1.
    let statuses = net.block(&[(20, nominate(&[5], 2_000)), (21, nominate(&[6, 7], 2_000))]);
    assert_eq!(statuses, vec![TxStatus::Ok; 2]);
    net.run_to(2 * EPOCH - 2);
    assert!(net.chain.get::<Committee>(&committee_key(3)).is_none());
    net.run_to(2 * EPOCH - 1);
    // Epoch 2 keeps the committee it was given; epoch 3 gets the new one.
    assert_eq!(net.members(2), sorted(&GENESIS_VALIDATORS));
    let c3 = net.committee(3);
    assert!(c3.elected);
    let members = net.members(3);
    for joined in [5, 6, 7] {
        assert!(
            members.contains(&addr(joined)),
            "candidate {joined} is elected"
        );
    }
    assert_eq!(members.len(), 4);
    // 21's 2,000 is balanced over 6 (600) and 7 (700): 1,650 each, above the 1,000 of the
    // genesis validators, of which the lowest address keeps its seat.
    let backing: BTreeMap<Address, Amount> = c3
        .members
        .iter()
        .map(|m| (m.validator.clone(), m.backing))
        .collect();
    assert_eq!(backing[&addr(5)], Amount(2_500));
    assert_eq!(backing[&addr(6)], Amount(1_650));
    assert_eq!(backing[&addr(7)], Amount(1_650));
    let exposure: Exposure = net
        .chain
        .get(&exposure_key(3, &addr(6)))
        .expect("an exposure");
    assert_eq!(exposure.own, Amount(600));
    assert_eq!(exposure.others, vec![(addr(21), Amount(1_050))]);
    let kept = sorted(&GENESIS_VALIDATORS)[0].clone();
    assert!(members.contains(&kept));
}

#[test]
fn bonds_move_through_the_bank_to_the_base_unit() {
    let mut net = seven_candidates();
    let supply = bank::supply_key();
    let before = net.chain.get::<bank::Supply>(&supply).expect("a supply");
    assert_eq!(net.balance(5), 1_000_000 - FEE - 500);
    assert_eq!(net.pot(5), 500);

    assert_eq!(net.one(20, nominate(&[5, 6], 300)), TxStatus::Ok);
    assert_eq!(net.one(20, nominate(&[7], 200)), TxStatus::Ok);
    assert_eq!(net.balance(20), 1_000_000 - 2 * FEE - 500);
    assert_eq!(net.staker(20).expect("a nominator").active, Amount(500));
    assert_eq!(net.pot(20), 500);
    assert_eq!(net.validator(5).expect("5").nominators, 0);
    assert_eq!(net.validator(7).expect("7").nominators, 1);

    assert_eq!(
        net.one(
            20,
            Action::Unbond {
                amount: Amount(120)
            }
        ),
        TxStatus::Ok
    );
    let s = net.staker(20).expect("a nominator");
    assert_eq!(s.active, Amount(380));
    assert_eq!(s.unbonding.len(), 1);
    assert_eq!(s.unbonding[0].amount, Amount(120));
    assert_eq!(net.pot(20), 500, "unbonding stays locked");
    assert_eq!(net.balance(20), 1_000_000 - 3 * FEE - 500);

    let after = net.chain.get::<bank::Supply>(&supply).expect("a supply");
    assert_eq!(before, after, "staking mints and burns nothing");
}

#[test]
fn unbonding_is_released_only_after_its_period_of_block_time() {
    let mut net = Net::new();
    // Three seconds a block: the period is counted in seconds, not in blocks.
    net.chain.block_interval_ms = 3_000;
    assert_eq!(net.one(20, nominate(&[1], 400)), TxStatus::Ok);
    assert_eq!(
        net.one(
            20,
            Action::Unbond {
                amount: Amount(400)
            }
        ),
        TxStatus::Ok
    );
    let unbonded_at = net.chain.time_ms / 1_000;
    let release = unbonded_at + params().unbonding_secs;
    assert_eq!(
        net.staker(20).expect("unbonding").unbonding[0].release_secs,
        release
    );
    assert_eq!(
        net.validator(1).expect("1").nominators,
        0,
        "an empty bond stops nominating"
    );

    // Up to the last block whose time is before the release; the one after is past it.
    while net.chain.next_time_ms() + 3_000 < release * 1_000 {
        net.block(&[]);
    }
    assert_eq!(
        net.one(20, Action::Withdraw),
        refused(Refusal::NothingToWithdraw {
            next_release: release
        })
    );
    let balance = net.balance(20);
    assert_eq!(net.one(20, Action::Withdraw), TxStatus::Ok);
    assert!(net.chain.time_ms / 1_000 >= release);
    assert_eq!(net.balance(20), balance - FEE + 400);
    assert!(net.staker(20).is_none(), "nothing left: the record is gone");
    assert_eq!(
        net.one(20, Action::Withdraw),
        refused(Refusal::NothingToWithdraw { next_release: 0 })
    );
}

#[test]
fn every_bound_is_refused_with_its_code() {
    let mut net = seven_candidates();
    // Candidates: 8 at most (4 genesis + 3 + 1 more).
    assert_eq!(net.one(8, register_with(100, 8)), TxStatus::Ok);
    assert_eq!(
        net.one(9, register_with(100, 9)),
        refused(Refusal::TooManyValidators { max: 8 })
    );
    // Targets: at most 3, no repeats, only validators.
    assert_eq!(
        net.one(20, nominate(&[1, 2, 3, 4], 10)),
        refused(Refusal::TooManyTargets { targets: 4, max: 3 })
    );
    assert_eq!(
        net.one(20, nominate(&[1, 1], 10)),
        refused(Refusal::DuplicateTarget { index: 1 })
    );
    assert_eq!(
        net.one(20, nominate(&[1, 25], 10)),
        refused(Refusal::UnknownTarget { index: 1 })
    );
    assert_eq!(
        net.one(20, nominate(&[1], 9)),
        refused(Refusal::NominationTooLow {
            bond: Amount(9),
            min: Amount(10)
        })
    );
    // Nominators per validator: 2.
    assert_eq!(net.one(20, nominate(&[1], 10)), TxStatus::Ok);
    assert_eq!(net.one(21, nominate(&[1], 10)), TxStatus::Ok);
    assert_eq!(
        net.one(22, nominate(&[2, 1], 10)),
        refused(Refusal::ValidatorFull { index: 1, max: 2 })
    );
    // Nominators: 4.
    assert_eq!(net.one(22, nominate(&[2], 10)), TxStatus::Ok);
    assert_eq!(net.one(23, nominate(&[2], 10)), TxStatus::Ok);
    assert_eq!(
        net.one(24, nominate(&[3], 10)),
        refused(Refusal::TooManyNominators { max: 4 })
    );
    // Unbonding chunks: 2 (one per block).
    assert_eq!(net.one(20, nominate(&[1], 100)), TxStatus::Ok);
    assert_eq!(
        net.one(20, Action::Unbond { amount: Amount(1) }),
        TxStatus::Ok
    );
    assert_eq!(
        net.one(20, Action::Unbond { amount: Amount(1) }),
        TxStatus::Ok
    );
    assert_eq!(
        net.one(20, Action::Unbond { amount: Amount(1) }),
        refused(Refusal::TooManyUnbondingChunks { max: 2 })
    );
    assert_eq!(
        net.one(
            20,
            Action::Unbond {
                amount: Amount(1_000)
            }
        ),
        refused(Refusal::UnbondTooMuch {
            amount: Amount(1_000),
            active: Amount(108)
        })
    );
}

#[test]
fn a_registration_with_bad_terms_is_refused_with_its_code() {
    let mut net = Net::new();
    assert_eq!(
        net.one(5, register(99)),
        refused(Refusal::SelfBondTooLow {
            bond: Amount(99),
            min: Amount(100)
        })
    );
    let mut high = register(100);
    if let Action::RegisterValidator { commission_bps, .. } = &mut high {
        *commission_bps = 10_001;
    }
    assert_eq!(
        net.one(5, high),
        refused(Refusal::CommissionTooHigh {
            bps: 10_001,
            max: 10_000
        })
    );
    let mut blank = register(100);
    if let Action::RegisterValidator { p2p_address, .. } = &mut blank {
        p2p_address.clear();
    }
    assert_eq!(net.one(5, blank), refused(Refusal::BadP2pAddress));
    assert_eq!(net.one(5, register(100)), TxStatus::Ok);
    assert_eq!(
        net.one(5, register(100)),
        refused(Refusal::AlreadyValidator)
    );
    assert_eq!(
        net.one(6, register(100)),
        refused(Refusal::ConsensusKeyTaken)
    );
    assert_eq!(net.one(6, nominate(&[5], 10)), TxStatus::Ok);
    assert_eq!(
        net.one(6, register_with(100, 6)),
        refused(Refusal::IsNominator)
    );
    assert_eq!(
        net.one(5, nominate(&[1], 10)),
        refused(Refusal::IsValidator)
    );
    assert_eq!(
        net.one(7, Action::Unbond { amount: Amount(1) }),
        refused(Refusal::UnbondTooMuch {
            amount: Amount(1),
            active: Amount::ZERO
        })
    );
}

#[test]
fn a_chilled_validator_is_not_elected_and_leaves_once_it_has_unbonded() {
    let mut net = seven_candidates();
    assert_eq!(
        net.one(
            7,
            Action::Unbond {
                amount: Amount(700)
            }
        ),
        refused(Refusal::MustChillFirst)
    );
    assert_eq!(
        net.one(
            7,
            Action::Unbond {
                amount: Amount(650)
            }
        ),
        refused(Refusal::SelfBondTooLow {
            bond: Amount(50),
            min: Amount(100)
        })
    );
    // Candidate 7 would be elected with 20's backing, but it chills.
    assert_eq!(net.one(20, nominate(&[7], 5_000)), TxStatus::Ok);
    assert_eq!(net.one(7, Action::Chill), TxStatus::Ok);
    assert_eq!(net.one(7, Action::Chill), refused(Refusal::AlreadyChilled));
    net.run_to(EPOCH - 1);
    assert!(!net.members(2).contains(&addr(7)));
    // It comes back: elected at the next boundary.
    assert_eq!(net.one(7, Action::Unjail), TxStatus::Ok);
    assert_eq!(net.one(7, Action::Unjail), refused(Refusal::AlreadyActive));
    net.run_to(2 * EPOCH - 1);
    assert!(net.members(3).contains(&addr(7)));
    // It leaves: chilled, no self-bond, and no nominator left.
    assert_eq!(net.one(7, Action::Chill), TxStatus::Ok);
    assert_eq!(
        net.one(
            7,
            Action::Unbond {
                amount: Amount(700)
            }
        ),
        TxStatus::Ok
    );
    assert!(net.validator(7).is_some(), "a nominator still names it");
    assert_eq!(net.one(20, nominate(&[5], 0)), TxStatus::Ok);
    assert!(
        net.validator(7).is_none(),
        "its place among the candidates is free"
    );
    assert_eq!(net.pot(7), 700, "its unbonding stays locked");
}

#[test]
fn too_few_backed_candidates_keep_the_committee() {
    let mut net = Net::with(StakingParams {
        genesis_self_bond: Amount::ZERO,
        ..params()
    });
    assert_eq!(net.one(5, register(100)), TxStatus::Ok);
    net.run_to(EPOCH - 1);
    let c = net.committee(2);
    assert!(!c.elected);
    assert_eq!(net.members(2), sorted(&GENESIS_VALIDATORS));
}

#[test]
fn a_genesis_whose_unbonding_ends_before_punishment_is_refused() {
    let g = genesis(StakingParams {
        unbonding_secs: 25,
        ..params()
    });
    assert_eq!(
        g.validate(),
        Err(GenesisError::Staking(StakingParamsError::Unbonding {
            unbonding: 25,
            exposed: 25
        }))
    );
    assert_eq!(genesis(params()).validate(), Ok(()));
}

/// The consensus key [`register_with`] gives candidate `i`.
fn consensus(i: u64) -> u64 {
    1_000 + i
}

/// What the epoch record says of `validator`'s points, reward and what it kept.
fn earned(record: &EpochRecord, validator: u64) -> (u64, u128, u128) {
    let m = record
        .members
        .iter()
        .find(|m| m.validator == addr(validator))
        .expect("a member of the epoch's committee");
    (m.points, m.reward.0, m.kept.0)
}

/// Candidate 5 (self-bond 500, commission 5%) backed by nominator 20 with 2,000, registered in
/// block 1, then empty blocks to the end of epoch 1: the committees of epochs 2 and 3 are 5
/// and the three genesis validators with the lowest addresses.
fn five_backed_by_twenty() -> Net {
    let mut net = Net::new();
    let statuses = net.block(&[(5, register_with(500, 5)), (20, nominate(&[5], 2_000))]);
    assert_eq!(statuses, vec![TxStatus::Ok; 2]);
    net.run_to(2 * EPOCH - 1);
    for epoch in [2, 3] {
        assert!(net.members(epoch).contains(&addr(5)));
    }
    net
}

/// A provider owner of the payout tests: seeds far from the accounts and consensus keys.
fn owner(i: u64) -> Address {
    addr(10_000 + i)
}

impl Net {
    /// Credits each owner its units of accepted work in the epoch of the next block, as the
    /// market's settlement does, but outside a block: these tests are about the payout, and a
    /// market settling thousands of owners' results would only make them slow.
    fn credit(&mut self, work: &[(Address, u64)]) {
        let epoch = (self.chain.height + 1) / EPOCH;
        let mut cache = StateCache::new();
        for (who, units) in work {
            for _ in 0..*units {
                loop {
                    let checkpoint = cache.checkpoint();
                    match credit_units(&mut cache, epoch, who, Credit::Work) {
                        Ok(()) => break,
                        Err(Halt::Missing(missing)) => {
                            cache.rollback(checkpoint);
                            for key in missing.0 {
                                let value = self.chain.store.entries.get(&key).cloned();
                                cache.load(key, value);
                            }
                        }
                        Err(Halt::Fault(fault)) => panic!("the ledger stopped: {fault}"),
                    }
                }
            }
        }
        self.chain.store.apply(cache.into_writes());
    }

    fn payout(&self, epoch: u64) -> Option<ProviderPayout> {
        self.chain.get(&payout_key(epoch))
    }

    fn queue(&self) -> PayoutQueue {
        self.chain.get(&payout_queue_key()).unwrap_or_default()
    }

    /// Records of the providers' work or payout left in state, of any epoch.
    fn work_records(&self) -> usize {
        let tables = [
            staking::Table::Units,
            staking::Table::Workers,
            staking::Table::Payout,
        ];
        self.chain
            .store
            .entries
            .keys()
            .filter(|k| {
                tables
                    .iter()
                    .any(|t| in_table(k, Namespace::Staking, *t as u8))
            })
            .count()
    }

    fn balance_of(&self, who: &Address) -> u128 {
        self.chain.account(who).balance.0
    }

    /// No payout is left: the pot is empty, no epoch's work remains, the queue is empty up to
    /// the last ended epoch, and the supply is exact.
    fn assert_payouts_done(&self) {
        assert_eq!(self.named_pot(Pot::Payouts), 0, "the payouts' pot is empty");
        assert_eq!(self.work_records(), 0, "every epoch's work is removed");
        let ended = (self.chain.height + 1) / EPOCH;
        assert_eq!(
            self.queue(),
            PayoutQueue {
                first: ended,
                end: ended
            }
        );
        self.assert_supply_is_genesis_plus_minted();
    }
}

/// A chain whose block reward makes every owner's share many base units, with `work` credited
/// in epoch 1.
fn rich_with_work_in_epoch_one(work: &[(Address, u64)]) -> Net {
    let mut net = Net::with(StakingParams {
        block_reward: Amount(10_000_000),
        ..params()
    });
    net.run_to(EPOCH);
    net.credit(work);
    net
}

/// Each owner's share of `pool` by its units, rounded down.
fn shares(pool: u128, work: &[(Address, u64)]) -> Vec<u128> {
    let total: u128 = work.iter().map(|(_, u)| u128::from(*u)).sum();
    work.iter()
        .map(|(_, u)| pool * u128::from(*u) / total)
        .collect()
}

/// Owners `from..from + n`, each with one to four units.
fn busy(from: u64, n: u64) -> Vec<(Address, u64)> {
    (from..from + n).map(|i| (owner(i), 1 + i % 4)).collect()
}

#[test]
fn every_provider_owner_of_a_busy_epoch_is_paid_past_the_old_cap() {
    // Half again the 1,024 owners that one list of them used to hold.
    let work = busy(0, 1_500);
    let mut net = rich_with_work_in_epoch_one(&work);
    let treasury = net.named_pot(Pot::Treasury);
    net.run_to(2 * EPOCH - 1);
    while !net.record(1).providers_paid {
        net.block(&[]);
    }

    let record = net.record(1);
    let pool = record.providers_pool.0;
    assert_eq!(pool, (record.fees.0 + record.minted.0) * 3 / 10);
    assert_eq!(record.work_units, work.iter().map(|(_, u)| u).sum::<u64>());
    let expected = shares(pool, &work);
    for ((who, _), share) in work.iter().zip(&expected) {
        assert!(*share > 1_000, "a share of many base units");
        assert_eq!(net.balance_of(who), *share, "owner paid its exact share");
    }
    let paid: u128 = expected.iter().sum();
    assert_eq!(record.to_providers.0, paid);
    // No point was earned: the committee's 70% goes to the treasury, and so does what the
    // providers' rounding left.
    assert_eq!(record.to_treasury.0, record.fees.0 + record.minted.0 - paid);
    assert_eq!(
        net.named_pot(Pot::Treasury),
        treasury + record.to_treasury.0
    );
    assert_eq!(net.named_pot(Pot::Payouts), 0);
    assert_eq!(net.work_records(), 0, "the epoch's work is removed");
    assert_eq!(net.queue(), PayoutQueue { first: 2, end: 2 });
    net.assert_supply_is_genesis_plus_minted();
}

#[test]
fn a_payout_pays_at_most_its_bound_per_block_and_finishes() {
    let work = busy(0, 600);
    let mut net = rich_with_work_in_epoch_one(&work);
    net.run_to(2 * EPOCH - 2);
    let bound = u64::from(PAYOUTS_PER_BLOCK);
    let (mut paid_owners, mut blocks, mut to_providers) = (0u64, 0, 0u128);
    loop {
        let before: Vec<u128> = work.iter().map(|(w, _)| net.balance_of(w)).collect();
        net.block(&[]);
        blocks += 1;
        let now = work
            .iter()
            .zip(&before)
            .filter(|((w, _), b)| net.balance_of(w) > **b)
            .count() as u64;
        assert!(now <= bound, "{now} owners paid in one block");
        paid_owners += now;
        let record = net.record(1);
        assert!(record.to_providers.0 >= to_providers, "paid only grows");
        to_providers = record.to_providers.0;
        if record.providers_paid {
            break;
        }
        let payout = net.payout(1).expect("a payout under way");
        assert_eq!(payout.next, paid_owners);
        assert_eq!(payout.paid, record.to_providers);
        assert_eq!(
            net.named_pot(Pot::Payouts),
            (payout.pool.0 - payout.paid.0),
            "the pot holds what is left of the pool"
        );
        net.assert_supply_is_genesis_plus_minted();
    }
    assert_eq!(paid_owners, 600);
    // 600 owners and the close, 256 payments a block.
    assert_eq!(blocks, 3);
    assert_eq!(net.chain.height, 2 * EPOCH + 1);
    assert_eq!(net.payout(1), None);
    net.assert_payouts_done();
}

#[test]
fn payouts_of_two_epochs_in_flight_pay_each_from_its_own_pool() {
    // Epoch 1: more owners than ten blocks pay, so its payout still runs when epoch 2 ends.
    let first = busy(0, 2_600);
    let mut net = rich_with_work_in_epoch_one(&first);
    net.run_to(2 * EPOCH);
    // Epoch 2: a fee makes its pool differ; its owners overlap epoch 1's, with other units.
    assert_eq!(net.one(20, nominate(&[2], 100)), TxStatus::Ok);
    let second: Vec<(Address, u64)> = (2_300..2_700).map(|i| (owner(i), 5 - i % 4)).collect();
    net.credit(&second);
    net.run_to(3 * EPOCH - 2);
    assert!(!net.record(1).providers_paid);
    net.block(&[]);
    // The end of epoch 2: both payouts are queued, and the first one finishes first.
    assert_eq!(net.chain.height, 3 * EPOCH - 1);
    assert!(net.record(1).providers_paid);
    assert!(!net.record(2).providers_paid);
    assert_eq!(net.queue(), PayoutQueue { first: 2, end: 3 });
    while !net.record(2).providers_paid {
        net.block(&[]);
    }

    let (one, two) = (net.record(1), net.record(2));
    assert_ne!(one.providers_pool, two.providers_pool);
    let mut expected: BTreeMap<Address, u128> = BTreeMap::new();
    for (record, work) in [(&one, &first), (&two, &second)] {
        let shares = shares(record.providers_pool.0, work);
        assert_eq!(record.to_providers.0, shares.iter().sum::<u128>());
        for ((who, _), share) in work.iter().zip(shares) {
            *expected.entry(who.clone()).or_default() += share;
        }
    }
    for (who, share) in &expected {
        assert_eq!(net.balance_of(who), *share);
    }
    net.assert_payouts_done();
}

#[test]
fn fees_go_to_the_epochs_rewards_and_not_to_the_proposer() {
    let mut net = Net::new();
    net.run_to(1);
    let before = net.balance(1);
    net.led_by(1, &[]);
    assert_eq!(net.one(20, nominate(&[2], 100)), TxStatus::Ok);
    assert_eq!(net.balance(1), before, "the proposer collects no fee");
    assert_eq!(net.named_pot(Pot::Rewards), FEE);

    net.run_to(EPOCH - 1);
    let record = net.record(0);
    assert_eq!(record.fees, Amount(FEE));
    // Nine blocks of 1,000; 30% to providers, of whom none worked: to the treasury. The one
    // point of the epoch takes the committee's whole 70%, with no commission and no
    // exposure (the genesis committee was not elected).
    assert_eq!(record.minted, Amount(9 * 1_000));
    let pool = FEE + 9_000;
    assert_eq!(record.work_units, 0);
    assert_eq!(record.to_providers, Amount::ZERO);
    assert_eq!(
        earned(&record, 1),
        (PROPOSAL_POINTS, pool * 7 / 10, pool * 7 / 10)
    );
    assert_eq!(record.to_treasury, Amount(pool * 3 / 10));
    assert_eq!(net.balance(1), before + pool * 7 / 10);
    assert_eq!(net.named_pot(Pot::Rewards), 0, "the pot is paid out");
    assert_eq!(net.named_pot(Pot::Treasury), pool * 3 / 10);
    net.assert_supply_is_genesis_plus_minted();
}

#[test]
fn an_epochs_rewards_pay_points_then_commission_then_exposure_to_the_base_unit() {
    let mut net = five_backed_by_twenty();
    // Epochs 0 and 1 had no registered proposer: no points, everything to the treasury.
    assert_eq!(net.record(0).fees, Amount(2 * FEE));
    assert_eq!(
        net.named_pot(Pot::Treasury),
        2 * FEE + 9 * 1_000 + 10 * 1_000
    );
    let others: Vec<u64> = GENESIS_VALIDATORS
        .into_iter()
        .filter(|i| net.members(2).contains(&addr(*i)))
        .collect();
    assert_eq!(others.len(), 3);
    let before: BTreeMap<u64, u128> = [5, 20]
        .into_iter()
        .chain(others.iter().copied())
        .map(|i| (i, net.balance(i)))
        .collect();

    // Epoch 2: candidate 5 proposes four blocks, the other members two each.
    for _ in 0..4 {
        net.led_by(consensus(5), &[]).block(&[]);
    }
    for i in &others {
        for _ in 0..2 {
            net.led_by(*i, &[]).block(&[]);
        }
    }
    assert_eq!(net.chain.height, 3 * EPOCH - 1);
    let record = net.record(2);
    assert_eq!(record.fees, Amount::ZERO);
    assert_eq!(record.minted, Amount(10_000));
    // 70% of 10,000 by points: 4/10 to 5, 2/10 to each other member.
    assert_eq!(earned(&record, 5).0, 4 * PROPOSAL_POINTS);
    assert_eq!(earned(&record, 5).1, 2_800);
    // 5 keeps its 5% commission (140) and 500/2,500 of the rest (532); 20 gets 2,000/2,500.
    assert_eq!(earned(&record, 5).2, 140 + 532);
    assert_eq!(net.balance(5), before[&5] + 672);
    assert_eq!(net.balance(20), before[&20] + 2_128);
    for i in &others {
        assert_eq!(earned(&record, *i), (2 * PROPOSAL_POINTS, 1_400, 1_400));
        assert_eq!(net.balance(*i), before[i] + 1_400);
    }
    assert_eq!(record.to_treasury, Amount(3_000));
    assert_eq!(net.named_pot(Pot::Rewards), 0);
    net.assert_supply_is_genesis_plus_minted();
}

fn equivocation(offender: u64, epoch: u64) -> Evidence {
    Evidence {
        offender: addr(offender),
        epoch,
        view: 3,
        kind: EvidenceKind::ConflictingNotarize,
        proof_hash: exo_types::hash_bytes(&offender.to_be_bytes()),
    }
}

#[test]
fn an_equivocator_is_slashed_by_the_formula_after_the_deferral_and_left_out_of_the_next_election() {
    let mut net = five_backed_by_twenty();
    net.run_to(2 * EPOCH);
    // Block 21 carries a fault 5 committed in epoch 2: reported at second 21, due at 26.
    net.evidence.push(equivocation(consensus(5), 2));
    net.block(&[]);
    assert_eq!(
        net.validator(5).expect("5").status,
        Status::Jailed {
            until: 21 + params().jail_blocks
        }
    );
    // It keeps its seat in the running epoch, whose engine cannot change committee, but not
    // in the next one, elected before the fault.
    assert!(net.members(2).contains(&addr(5)));
    assert!(!net.members(3).contains(&addr(5)), "{:?}", net.members(3));
    assert_eq!(net.members(3).len(), 3);
    // The nominator unbonds half before the slash: the chunk is still at stake.
    assert_eq!(
        net.one(
            20,
            Action::Unbond {
                amount: Amount(1_000)
            }
        ),
        TxStatus::Ok
    );
    net.run_to(25);
    assert_eq!(net.pot(5), 500, "nothing is slashed before the deferral");
    assert_eq!(net.pot(20), 2_000);
    assert_eq!(net.named_pot(Pot::Insurance), 0);

    net.block(&[]);
    // k = 1 offender, n = 4 members: (3/4)^2 = 9/16 of each backing, rounded down.
    let own = 500 * 9 / 16;
    let nominated = 2_000 * 9 / 16;
    assert_eq!((own, nominated), (281, 1_125));
    assert_eq!(net.pot(5), 500 - own);
    assert_eq!(net.staker(5).expect("5").active, Amount(500 - own));
    let twenty = net.staker(20).expect("20");
    assert_eq!(twenty.active, Amount::ZERO, "the active bond goes first");
    assert_eq!(twenty.unbonding[0].amount, Amount(2_000 - nominated));
    assert_eq!(net.pot(20), 2_000 - nominated);
    assert_eq!(net.named_pot(Pot::Insurance), own + nominated);
    let slashes = net
        .chain
        .get::<EpochRecord>(&epoch_key(2))
        .expect("a record")
        .slashes;
    assert_eq!(slashes.len(), 1);
    assert_eq!(slashes[0].validator, addr(5));
    assert_eq!((slashes[0].offenders, slashes[0].committee), (1, 4));
    assert_eq!(slashes[0].amount, Amount(own + nominated));

    // The election at the end of epoch 2 leaves the offender out.
    net.run_to(3 * EPOCH - 1);
    assert!(!net.members(4).contains(&addr(5)));
    assert_eq!(net.members(4), sorted(&GENESIS_VALIDATORS));
    net.assert_supply_is_genesis_plus_minted();
}

#[test]
fn two_offenders_in_one_window_of_a_committee_of_four_lose_everything() {
    let mut net = five_backed_by_twenty();
    net.run_to(2 * EPOCH);
    let genesis_member = GENESIS_VALIDATORS
        .into_iter()
        .find(|i| net.members(2).contains(&addr(*i)))
        .expect("a genesis member");
    net.evidence.push(equivocation(consensus(5), 2));
    net.block(&[]);
    // The second offender is reported three seconds later, inside the window.
    net.run_to(23);
    net.evidence.push(equivocation(genesis_member, 2));
    net.block(&[]);
    net.run_to(2 * EPOCH + 9);
    // k = 2, n = 4: 3k >= n, the whole exposure of both.
    assert_eq!(net.pot(5), 0);
    assert_eq!(net.pot(20), 0);
    assert_eq!(net.pot(genesis_member), 0);
    assert_eq!(net.named_pot(Pot::Insurance), 500 + 2_000 + 1_000);
    let record = net.record(2);
    assert_eq!(record.slashes.len(), 2);
    assert!(record.slashes.iter().all(|s| s.offenders == 2));
    net.assert_supply_is_genesis_plus_minted();
}

#[test]
fn a_fault_reported_again_inside_its_window_is_slashed_once() {
    let mut net = five_backed_by_twenty();
    net.run_to(2 * EPOCH);
    net.evidence.push(equivocation(consensus(5), 2));
    net.block(&[]);
    let mut again = equivocation(consensus(5), 2);
    again.view = 4;
    net.evidence.push(again);
    net.block(&[]);
    net.run_to(2 * EPOCH + 9);
    assert_eq!(net.named_pot(Pot::Insurance), (500 + 2_000) * 9 / 16);
}

#[test]
fn a_silent_validator_loses_its_points_is_jailed_and_is_not_elected_until_it_unjails() {
    let mut net = Net::new();
    assert_eq!(net.one(5, register_with(500, 5)), TxStatus::Ok);
    // Blocks 2 to 9 rotate over the genesis validators; 4 never proposes, and the next one
    // proposes in its place after the chain skipped its view.
    let order = sorted(&GENESIS_VALIDATORS);
    let seed_of = |a: &Address| {
        GENESIS_VALIDATORS
            .into_iter()
            .find(|i| addr(*i) == *a)
            .expect("a genesis validator")
    };
    let silent = 4;
    let mut proposed: BTreeMap<u64, u64> = BTreeMap::new();
    for h in 2..EPOCH {
        let leader = seed_of(&order[h as usize % 4]);
        if leader == silent {
            let next = seed_of(&order[(h as usize + 1) % 4]);
            net.led_by(next, &[silent]);
            *proposed.entry(next).or_default() += 1;
        } else {
            net.led_by(leader, &[]);
            *proposed.entry(leader).or_default() += 1;
        }
        net.block(&[]);
    }
    let record = net.record(0);
    let silent_record = record
        .members
        .iter()
        .find(|m| m.validator == addr(silent))
        .expect("4 is a member");
    assert!(silent_record.jailed);
    assert_eq!((silent_record.proposed, silent_record.points), (0, 0));
    assert_eq!(silent_record.missed, 2);
    assert_eq!(silent_record.reward, Amount::ZERO);
    // The 7,000 of the committee's pool is shared by the others' points alone.
    let pool = 7 * (FEE + 9_000) / 10;
    for (i, blocks) in &proposed {
        assert_eq!(
            earned(&record, *i),
            (
                *blocks * PROPOSAL_POINTS,
                pool * u128::from(*blocks) / 8,
                pool * u128::from(*blocks) / 8
            )
        );
    }
    let until = EPOCH - 1 + params().jail_blocks;
    assert_eq!(
        net.validator(silent).expect("4").status,
        Status::Jailed { until }
    );
    assert!(!net.members(2).contains(&addr(silent)));
    assert!(
        net.members(2).contains(&addr(5)),
        "the candidate takes its seat"
    );

    assert_eq!(
        net.one(silent, Action::Unjail),
        refused(Refusal::Jailed { until })
    );
    net.run_to(2 * EPOCH - 1);
    assert!(!net.members(3).contains(&addr(silent)), "still jailed");
    net.run_to(until - 1);
    assert_eq!(net.one(silent, Action::Unjail), TxStatus::Ok);
    net.run_to(3 * EPOCH - 1);
    assert!(net.members(4).contains(&addr(silent)), "elected again");
    assert!(!net.members(4).contains(&addr(5)));
    net.assert_supply_is_genesis_plus_minted();
}

/// The member of a genesis validator in `record`.
fn member(record: &EpochRecord, validator: u64) -> &exo_ledger::modules::staking::MemberReward {
    record
        .members
        .iter()
        .find(|m| m.validator == addr(validator))
        .expect("a member of the epoch's committee")
}

/// Runs epoch 0 (blocks 1 to 9) with 1, 2 and 3 proposing three blocks each and 4 skipped
/// twice, proposing nothing. Blocks 2 to 9 carry their parent's certificate (block 1's parent
/// is the genesis block, which nobody certifies), signed by 1, 2 and 4 and by 3 in the blocks
/// `three_signs`.
fn an_epoch_where_four_only_votes(three_signs: &[u64]) -> Net {
    let mut net = Net::new();
    let leaders = [(1, vec![]), (2, vec![]), (3, vec![])];
    for h in 1..EPOCH {
        let (leader, mut skipped) = leaders[(h as usize - 1) % 3].clone();
        if h % 3 == 1 && h > 1 {
            skipped = vec![4];
        }
        net.led_by(leader, &skipped);
        if h > 1 {
            let mut voters = vec![1, 2, 4];
            if three_signs.contains(&h) {
                voters.push(3);
            }
            net.voted_by(&voters);
        }
        net.block(&[]);
    }
    net
}

#[test]
fn a_member_that_signed_every_certificate_but_proposed_nothing_earns_vote_points_and_is_not_jailed()
{
    // 3 signs four of the eight certificates: exactly half is not more than the threshold.
    let net = an_epoch_where_four_only_votes(&[2, 4, 6, 8]);
    let record = net.record(0);
    assert_eq!(record.certificates, 8);
    let four = member(&record, 4);
    assert_eq!((four.proposed, four.missed, four.votes), (0, 2, 8));
    assert!(
        !four.jailed,
        "a member that votes is not down, its views skipped or not"
    );
    assert_eq!(four.points, 8 * VOTE_POINTS);
    assert_eq!(
        net.validator(4).expect("4").status,
        Status::Active,
        "not jailed"
    );
    let three = member(&record, 3);
    assert_eq!((three.proposed, three.votes, three.jailed), (3, 4, false));
    // Points: 1 and 2 proposed 3 blocks and signed 8 certificates (68), 3 proposed 3 and
    // signed 4 (64), 4 signed 8 (8): 208 points share the committee's 70% of 9,000.
    assert_eq!(PROPOSAL_POINTS, 20);
    assert_eq!(VOTE_POINTS, 1);
    let pool = 6_300u128;
    for (i, points) in [(1, 68), (2, 68), (3, 64), (4, 8)] {
        let share = pool * u128::from(points) / 208;
        assert_eq!(earned(&record, i), (points, share, share), "member {i}");
    }
    // 2,059 + 2,059 + 1,938 + 242 = 6,298: the two units the divisions leave join the
    // providers' unclaimed 2,700 in the treasury.
    assert_eq!(record.to_treasury, Amount(2_700 + 2));
    assert_eq!(net.named_pot(Pot::Treasury), 2_702);
    net.assert_supply_is_genesis_plus_minted();
}

#[test]
fn a_member_missing_from_most_certificates_is_jailed_and_loses_its_points() {
    // 3 proposes its share but signs three of the eight certificates: five missed votes.
    let net = an_epoch_where_four_only_votes(&[2, 5, 8]);
    let record = net.record(0);
    let three = member(&record, 3);
    assert_eq!((three.proposed, three.votes), (3, 3));
    assert!(three.jailed, "{three:?}");
    assert_eq!((three.points, three.reward), (0, Amount::ZERO));
    assert_eq!(
        net.validator(3).expect("3").status,
        Status::Jailed {
            until: EPOCH - 1 + params().jail_blocks
        }
    );
    // The others' 68 + 68 + 8 points share the pool.
    let pool = 6_300u128;
    for (i, points) in [(1, 68), (2, 68), (4, 8)] {
        let share = pool * u128::from(points) / 144;
        assert_eq!(earned(&record, i), (points, share, share), "member {i}");
        assert!(!member(&record, i).jailed);
    }
    assert!(
        !net.members(2).contains(&addr(3)),
        "left out of the next election"
    );
    net.assert_supply_is_genesis_plus_minted();
}

#[test]
fn the_certificate_carried_by_the_first_block_of_an_epoch_counts_for_nobody() {
    let mut net = Net::new();
    net.run_to(EPOCH - 2);
    // The last block of epoch 0 carries its parent's certificate; the first block of epoch 1
    // carries the certificate of that last block, whose epoch is already paid.
    net.led_by(1, &[]).voted_by(&[1, 2, 3]).block(&[]);
    assert_eq!(net.record(0).certificates, 1);
    assert_eq!(member(&net.record(0), 1).votes, 1);
    net.led_by(1, &[]).voted_by(&[1, 2, 3]).block(&[]);
    net.led_by(2, &[]).voted_by(&[2, 3, 4]).block(&[]);
    net.run_to(2 * EPOCH - 1);
    let record = net.record(1);
    assert_eq!(
        record.certificates, 1,
        "only the second block's certificate"
    );
    assert_eq!(member(&record, 1).votes, 0);
    assert_eq!(member(&record, 4).votes, 1);
    // One certificate is under `downtime_min_missed` (2): the leader slots are the measure,
    // and nobody missed one.
    assert!(record.members.iter().all(|m| !m.jailed));
}

#[test]
fn a_repeated_or_oversized_list_of_voters_is_a_fault_and_counts_nothing() {
    let mut net = Net::new();
    net.run_to(1);
    let block = |voters: Vec<Address>, chain: &MemoryChain| BlockInput {
        env: BlockEnv {
            height: chain.height + 1,
            time_ms: chain.next_time_ms(),
            proposer: addr(1),
            skipped_leaders: Vec::new(),
            parent_voters: voters,
            seed: MemoryChain::seed(chain.height + 1),
        },
        evidence: Vec::new(),
        txs: Vec::new(),
        signatures: Signatures::Verify,
        policy: Policy::Verify,
    };
    let repeated = vec![addr(1), addr(2), addr(1)];
    assert!(net.chain.run(block(repeated, &net.chain)).is_err());
    let oversized = (0..=exo_ledger::MAX_PARENT_VOTERS as u64)
        .map(addr)
        .collect();
    assert!(net.chain.run(block(oversized, &net.chain)).is_err());
    assert_eq!(net.chain.height, 1, "neither block was applied");
    net.voted_by(&[1, 2, 3]).block(&[]);
    net.run_to(EPOCH - 1);
    assert_eq!(net.record(0).certificates, 1);
    assert_eq!(member(&net.record(0), 1).votes, 1);
}

/// The election runs in the last block of an epoch, on every validator: measured, 4 seats
/// over the default ballots at their limits take 7 ms, 33 seats 190 ms and 64 seats 620 ms,
/// past what a block can spend besides its transactions within the leader's one-second
/// timeout, so every leader could fail at that height (audit M1). Parameters whose election
/// could cost more than 24 times the defaults' are refused.
#[test]
fn an_election_too_large_for_one_block_is_refused_at_genesis() {
    let defaults = StakingParams::default();
    assert_eq!(defaults.validate(), Ok(()));
    assert_eq!(defaults.election_work() * 24, MAX_ELECTION_WORK);
    let seats = |committee_size: u32, max_nominators: u32| StakingParams {
        committee_size,
        max_nominators,
        ..StakingParams::default()
    };
    assert_eq!(seats(33, defaults.max_nominators).validate(), Ok(()));
    for (committee, nominators) in [
        (34, defaults.max_nominators),
        (64, defaults.max_nominators),
        (64, 1_600),
    ] {
        let params = seats(committee, nominators);
        assert_eq!(
            params.validate(),
            Err(StakingParamsError::ElectionWork {
                work: params.election_work()
            }),
            "{committee} seats, {nominators} nominators"
        );
    }
    // A larger committee fits with fewer ballots.
    assert_eq!(seats(64, 1_200).validate(), Ok(()));
}

#[test]
fn reward_and_jail_parameters_that_break_a_bound_are_refused_at_genesis() {
    let too_rich = genesis(StakingParams {
        block_reward: Amount(MAX_EPOCH_MINT.0 / EPOCH as u128 + 1),
        ..params()
    });
    assert_eq!(
        too_rich.validate(),
        Err(GenesisError::Staking(StakingParamsError::EpochMint {
            blocks: EPOCH
        }))
    );
    let broken = [
        StakingParams {
            provider_share_bps: 10_001,
            ..params()
        },
        StakingParams {
            slash_floor_bps: 10_001,
            ..params()
        },
        StakingParams {
            downtime_threshold_bps: 0,
            ..params()
        },
        StakingParams {
            downtime_min_missed: 0,
            ..params()
        },
        StakingParams {
            jail_blocks: 0,
            ..params()
        },
    ];
    for staking in broken {
        assert_eq!(
            genesis(staking).validate(),
            Err(GenesisError::Staking(StakingParamsError::Rewards))
        );
    }
}

#[test]
fn a_fault_older_than_the_evidence_window_is_not_punished() {
    let mut net = five_backed_by_twenty();
    // Epoch 0 ended at second 9; the window is 20 seconds: at second 30 it is closed.
    net.run_to(29);
    net.evidence.push(equivocation(consensus(5), 0));
    net.block(&[]);
    net.run_to(3 * EPOCH - 1);
    assert_eq!(net.validator(5).expect("5").status, Status::Active);
    assert_eq!(net.named_pot(Pot::Insurance), 0);
    assert!(net.members(4).contains(&addr(5)));
}

#[test]
fn a_chilled_equivocator_is_jailed_and_cannot_stand_again_at_once() {
    let mut net = five_backed_by_twenty();
    assert_eq!(net.one(5, Action::Chill), TxStatus::Ok);
    net.evidence.push(equivocation(consensus(5), 2));
    net.block(&[]);
    let until = net.chain.height + params().jail_blocks;
    assert_eq!(
        net.validator(5).expect("5").status,
        Status::Jailed { until }
    );
    assert_eq!(
        net.one(5, Action::Unjail),
        refused(Refusal::Jailed { until })
    );
}
