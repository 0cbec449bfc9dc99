//! Golden tests of the ledger's frozen formats: every state key, every record's encoding, the
//! receipts and refusal codes, and the state one small block leaves behind.
//!
//! The state root commits to these bytes, and clients decode them. Changing any expected value
//! here (a key, a record's bytes, a code, the state hash) changes the format of the chain: it is
//! a decision, written in the commit message that makes it (STYLE.md, rule 9). Never regenerate
//! an expected value just to turn a test green.
//!
//! The record encodings live in `tests/golden/records.hex` and `tests/golden/receipts.hex`, one
//! `name hex` per line, so that a change shows in review as the one line it touched.

use commonware_cryptography::Signer;
use exo_ledger::{
    ChainMeta, Fault, Genesis, GenesisAccount, MemoryChain, Params, Receipt, Rejection, TxStatus,
    exec::{
        Coded, Created, ModuleId, Precheck,
        keys::{meta_key, params_key, receipt_key},
    },
    modules::{
        bank::{self, Account, Funding, Pot, PotBalance, Supply},
        evidence::{self, Evidence, EvidenceKind, Member, Recorded},
        market::{
            AppProblem, JobProblem, Refusal, keys as market_keys,
            records::{
                App, AppList, AssignmentList, AssignmentRecord, AuditDraw, CapacityRound, Counters,
                Deadline, DeadlineCount, DeadlineCursor, Excuses, Holdings, IdList, JOB_EXPIRY,
                Job, JobAccounts, JobState, OfferRecord, OwnerIndex, Partners, ProvenRound,
                Provider, REVEAL_DEADLINE, Replica, ReplicaStatus, Unit, UnitState, WaitReason,
                WaitingList, WaitingUnit, WorkCount, WorkItem, WorkSlot,
            },
        },
    },
    state::{self, KEY_LEN, Key, MAX_VALUE_BYTES, Namespace, Record, StateCache},
};
use exo_market::{
    DeviceClass, Gpu, GpuRequirement, Offer, OfferId, ProviderId, Requirements, Resources, Runtime,
    RuntimeSet,
};
use exo_types::{
    Action, Address, Amount, InputRef, JobSpec, PrivateKey, UnsignedTx, address_to_hex, hash_bytes,
};
use std::fmt::Debug;

fn addr(seed: u64) -> Address {
    PrivateKey::from_seed(seed).public_key()
}

/// An id whose eight bytes all differ, so that a key shows their order.
const ID: u64 = 0x0102_0304_0506_0708;

// ---------------------------------------------------------------------------------------------
// State keys
// ---------------------------------------------------------------------------------------------

fn sample_evidence() -> Evidence {
    Evidence {
        offender: addr(3),
        epoch: 2,
        view: 0x0102,
        kind: EvidenceKind::ConflictingFinalize,
        proof_hash: hash_bytes(b"votes"),
    }
}

/// Every key constructor of every module, with its namespace and table and its frozen bytes.
fn every_key() -> Vec<(&'static str, Namespace, u8, Key, &'static str)> {
    use Namespace::{Bank, Evidence as Ev, Exec, Market};
    let tx = hash_bytes(b"a transaction");
    vec![
        (
            "exec meta",
            Exec,
            0,
            meta_key(),
            "00000000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "exec params",
            Exec,
            1,
            params_key(),
            "00010000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "exec receipt",
            Exec,
            2,
            receipt_key(&tx),
            "00026bc9e91ed170a2e2d97883ebee8849c7a5ab0de48ef6287ce17470205ea2e6ff",
        ),
        (
            "bank account",
            Bank,
            0,
            bank::account_key(&addr(1)),
            "0100478b8e507e0bb2b18c0f9e0824769e8562d10df9abe2e774896f82b4b4405266",
        ),
        (
            "bank pot job escrow",
            Bank,
            1,
            bank::pot_key(Pot::JobEscrow(ID)),
            "01010101020304050607080000000000000000000000000000000000000000000000",
        ),
        (
            "bank pot provider bond",
            Bank,
            1,
            bank::pot_key(Pot::ProviderBond(ID)),
            "01010201020304050607080000000000000000000000000000000000000000000000",
        ),
        (
            "bank pot stake bond",
            Bank,
            1,
            bank::pot_key(Pot::StakeBond(ID)),
            "01010301020304050607080000000000000000000000000000000000000000000000",
        ),
        (
            "bank pot nft escrow",
            Bank,
            1,
            bank::pot_key(Pot::NftEscrow(ID)),
            "01010401020304050607080000000000000000000000000000000000000000000000",
        ),
        (
            "bank pot insurance",
            Bank,
            1,
            bank::pot_key(Pot::Insurance),
            "01010500000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "bank pot treasury",
            Bank,
            1,
            bank::pot_key(Pot::Treasury),
            "01010600000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "bank pot rewards",
            Bank,
            1,
            bank::pot_key(Pot::Rewards),
            "01010700000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "bank pot payouts",
            Bank,
            1,
            bank::pot_key(Pot::Payouts),
            "01010800000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "bank supply",
            Bank,
            2,
            bank::supply_key(),
            "01020000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "bank funding",
            Bank,
            3,
            bank::funding_key(&addr(1)),
            "0103478b8e507e0bb2b18c0f9e0824769e8562d10df9abe2e774896f82b4b4405266",
        ),
        (
            "evidence fault",
            Ev,
            0,
            evidence::fault_key(&sample_evidence()),
            "0200a613af86ac768f87cd1e9a0b730acf441cb1b28592f3698413d40fb2316ad455",
        ),
        (
            "evidence validator",
            Ev,
            1,
            evidence::validator_key(&addr(4)),
            "02011c0c1c72c52dbd38c741a2c1989e02a41b388348011566b914a1ed6932b8f880",
        ),
        (
            "market provider",
            Market,
            0,
            market_keys::provider_key(ID),
            "03000000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market provider owner",
            Market,
            1,
            market_keys::owner_key(&addr(1)),
            "0301478b8e507e0bb2b18c0f9e0824769e8562d10df9abe2e774896f82b4b4405266",
        ),
        (
            "market offer",
            Market,
            2,
            market_keys::offer_key(ID),
            "03020000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market job",
            Market,
            3,
            market_keys::job_key(ID),
            "03030000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market unit",
            Market,
            4,
            market_keys::unit_key(ID, 0x090a_0b0c),
            "03040102030405060708090a0b0c0000000000000000000000000000000000000000",
        ),
        (
            "market app",
            Market,
            5,
            market_keys::app_key(&[0xab; 32], &addr(2)),
            "03058ab940a015288ab3ff66661f4b96ba57b058cfbc5d8b0eb5260d03ec1f609f0d",
        ),
        (
            "market deadline",
            Market,
            6,
            market_keys::deadline_key(ID),
            "03060000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market work",
            Market,
            7,
            market_keys::work_key(ID),
            "03070000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market job spec",
            Market,
            13,
            market_keys::job_spec_key(ID),
            "030d0000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market waiting list",
            Market,
            14,
            market_keys::waiting_key(ID),
            "030e0000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market deadline item",
            Market,
            21,
            market_keys::deadline_item_key(ID, 7),
            "03150102030405060708000000070000000000000000000000000000000000000000",
        ),
        (
            "market audit draws",
            Market,
            22,
            market_keys::audit_draws_key(ID),
            "03160000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market audit draw item",
            Market,
            23,
            market_keys::audit_draw_item_key(ID, 7),
            "03170102030405060708000000070000000000000000000000000000000000000000",
        ),
        (
            "market capacity round",
            Market,
            24,
            market_keys::capacity_round_key(),
            "03180000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "market capacity proven",
            Market,
            25,
            market_keys::capacity_proven_key(ID),
            "03190000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market work item",
            Market,
            15,
            market_keys::work_item_key(ID, 7),
            "030f0102030405060708000000070000000000000000000000000000000000000000",
        ),
        (
            "market work slot",
            Market,
            16,
            market_keys::work_slot_key(ID, (31, 1, 0)),
            "03100102030405060708000000000000001f00000001000000000000000000000000",
        ),
        (
            "market holdings",
            Market,
            17,
            market_keys::holdings_key(&addr(1)),
            "0311478b8e507e0bb2b18c0f9e0824769e8562d10df9abe2e774896f82b4b4405266",
        ),
        (
            "market assignments",
            Market,
            8,
            market_keys::assignments_key(ID),
            "03080000000000000000000000000000000000000000000000000102030405060708",
        ),
        (
            "market counters",
            Market,
            9,
            market_keys::counters_key(),
            "03090000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "market book",
            Market,
            10,
            market_keys::book_key(),
            "030a0000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "market open jobs",
            Market,
            11,
            market_keys::open_jobs_key(),
            "030b0000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "market apps",
            Market,
            12,
            market_keys::apps_key(),
            "030c0000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "market partners",
            Market,
            20,
            market_keys::partners_key(ID),
            "03140000000000000000000000000000000000000000000000000102030405060708",
        ),
    ]
}

#[test]
fn every_state_key_has_its_frozen_bytes() {
    let mut changed = Vec::new();
    for (name, _, _, key, expected) in every_key() {
        if hex::encode(key) != expected {
            changed.push(format!("{name}: {}", hex::encode(key)));
        }
    }
    assert!(changed.is_empty(), "keys changed:\n{}", changed.join("\n"));
}

#[test]
fn every_state_key_opens_with_its_module_namespace_then_its_table() {
    let keys = every_key();
    for (name, namespace, table, key, _) in &keys {
        assert_eq!(key.len(), KEY_LEN, "{name}");
        assert_eq!(key[0], *namespace as u8, "{name}: namespace byte");
        assert_eq!(Namespace::of(key), Some(*namespace), "{name}");
        assert_eq!(key[1], *table, "{name}: table byte");
    }
    // Distinct constructors never meet on one key.
    let mut all: Vec<Key> = keys.iter().map(|k| k.3).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), keys.len());
    // The namespace bytes themselves are frozen.
    assert_eq!(
        [
            Namespace::Exec as u8,
            Namespace::Bank as u8,
            Namespace::Evidence as u8,
            Namespace::Market as u8
        ],
        [0, 1, 2, 3]
    );
    // A receipt names its module by the same byte as the module's namespace.
    assert_eq!(
        [
            ModuleId::Exec as u8,
            ModuleId::Bank as u8,
            ModuleId::Evidence as u8,
            ModuleId::Market as u8
        ],
        [0, 1, 2, 3]
    );
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// Encodes `value`, checks that it fits its bound and decodes back to itself (through the
/// ledger's bound-checking decoder too), and returns its hex.
fn frozen<T: Record + PartialEq + Debug>(value: &T) -> String {
    let bytes = value.to_bytes();
    assert!(
        bytes.len() <= T::MAX_BYTES,
        "a {} record of {} bytes is over its bound of {}",
        T::WHAT,
        bytes.len(),
        T::MAX_BYTES
    );
    let decoded = T::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", T::WHAT));
    assert_eq!(&decoded, value, "{}", T::WHAT);
    let decoded = state::decode::<T>(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&decoded, value, "{}", T::WHAT);
    // Trailing bytes are refused, so one value has exactly one encoding's length.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(T::from_bytes(&longer).is_err(), "{}", T::WHAT);
    hex::encode(bytes)
}

/// Compares `actual` (`name hex` lines) with a golden file, naming every line that changed.
fn check_golden(file: &str, expected: &str, actual: &[(&str, String)]) {
    let expected: Vec<(&str, &str)> = expected
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    let mut changed = Vec::new();
    for (name, hex) in actual {
        match expected.iter().find(|(n, _)| n == name) {
            Some((_, want)) if *want == hex.as_str() => {}
            Some(_) => changed.push(format!("changed: {name} {hex}")),
            None => changed.push(format!("new: {name} {hex}")),
        }
    }
    for (name, _) in &expected {
        if !actual.iter().any(|(n, _)| n == name) {
            changed.push(format!("gone: {name}"));
        }
    }
    assert!(
        changed.is_empty(),
        "{file} does not match:\n{}",
        changed.join("\n")
    );
}

fn resources() -> Resources {
    Resources {
        cores: 8,
        cpu_score: 1_000_000_000,
        memory_mib: 16_384,
        gpu: Some(Gpu {
            model: "rtx4090".into(),
            count: 2,
            memory_mib: 24_576,
        }),
        class: DeviceClass::Pc,
        region: "eu-west".into(),
        runtimes: RuntimeSet::only(Runtime::Wasm32Wasip1).with(Runtime::Wasm32Wasip2),
        max_unit_fuel: 1_000_000_000_000,
    }
}

fn requirements() -> Requirements {
    Requirements {
        min_cores: 2,
        min_memory_mib: 1_024,
        min_cpu_score: 5,
        gpu: Some(GpuRequirement {
            model: Some("rtx4090".into()),
            min_count: 1,
            min_memory_mib: 8_192,
        }),
        class: Some(DeviceClass::Server),
        region: Some("eu-west".into()),
        runtime: Runtime::Wasm32Wasip2,
        fuel_limit: 3_000_000_000,
        min_reputation: 10,
    }
}

fn job_accounts() -> JobAccounts {
    JobAccounts {
        escrowed: Amount(1_000_000),
        paid: vec![(11, Amount(300)), (12, Amount(400))],
        royalties: Amount(50),
        fees: Amount(14),
        refunded: Amount(36),
        held: Amount(999_200),
    }
}

fn waiting_unit() -> WaitingUnit {
    WaitingUnit {
        unit: 2,
        replicas: vec![0, 1],
        exclude: vec![11],
        started: true,
        deciding: true,
    }
}

fn wait_reason() -> WaitReason {
    WaitReason {
        live_offers: 42,
        excluded_by: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        passed: 3,
        passed_exact: true,
        best_ask: Some(77),
        max_price_per_unit: 70,
    }
}

fn replica(index: u32, status: ReplicaStatus) -> Replica {
    Replica {
        index,
        provider: 11 + u64::from(index),
        offer: 21 + u64::from(index),
        price_per_unit: Amount(60),
        assigned_height: 100,
        commit_deadline: 700,
        commitment: Some([0xc0; 32]),
        reveal: Some(([0xd0; 32], 1_500_000_000)),
        status,
        seal: Some([0xe0; 32]),
    }
}

/// A representative value of every record type, each field set to something other than its
/// default where the type allows.
fn every_record() -> Vec<(&'static str, String)> {
    vec![
        (
            "chain_meta",
            frozen(&ChainMeta {
                height: 7,
                time_ms: 1_764_000_000_000,
                tx_count: 0x0102,
                evidence_count: 3,
            }),
        ),
        ("params_default", frozen(&Params::default())),
        (
            "account",
            frozen(&Account {
                balance: Amount(0x0102_0304),
                nonce: 5,
            }),
        ),
        ("pot_balance", frozen(&PotBalance(Amount(123_456)))),
        (
            "supply",
            frozen(&Supply {
                total: Amount(1_000_000),
                burnt: Amount(25),
            }),
        ),
        (
            "evidence_recorded",
            frozen(&Recorded {
                evidence: sample_evidence(),
                height: 9,
            }),
        ),
        ("evidence_member", frozen(&Member)),
        (
            "provider",
            frozen(&Provider {
                id: 11,
                owner: addr(11),
                resources: resources(),
                bond: Amount::from_exo(10),
                reputation: 500,
                active: 2,
                valid: 30,
                invalid: 1,
                missed: 2,
                retired: true,
                registered_height: 4,
                reputation_secs: 1_764_000_123,
                first_matched_height: Some(5),
                valid_since_secs: 1_700_000_000,
            }),
        ),
        (
            "offer",
            frozen(&OfferRecord {
                owner: addr(11),
                offer: Offer {
                    id: OfferId(21),
                    provider: ProviderId(11),
                    resources: resources(),
                    reputation: 500,
                    slots: 3,
                    price_per_unit: 60,
                    posted_secs: 5,
                    expiry_secs: 1_005,
                },
            }),
        ),
        (
            "app",
            frozen(&App {
                module_hash: [0xab; 32],
                developer: addr(2),
                name: "render".into(),
                version: "1.2.0".into(),
                royalty_per_unit: Amount(3),
                published_height: 2,
            }),
        ),
        ("job_accounts", frozen(&job_accounts())),
        ("waiting_unit", frozen(&waiting_unit())),
        (
            "job",
            frozen(&Job {
                id: 31,
                requester: addr(1),
                app: [0xab; 32],
                units: 3,
                trust: 2,
                fuel_limit: 3_000_000_000,
                developer: addr(2),
                royalty_per_unit: Amount(3),
                max_replicas: 5,
                submitted_height: 6,
                state: JobState::Cancelled,
                accounts: job_accounts(),
                waiting: 1,
                running: 2,
                accepted: 1,
                failed: 1,
                wait_reason: Some(wait_reason()),
            }),
        ),
        (
            "job_spec",
            frozen(&JobSpec {
                app: [0xab; 32],
                app_developer: addr(2),
                inputs: vec![InputRef {
                    name: "scene.obj".into(),
                    hash: [4; 32],
                    size: 1_234,
                }],
                unit_args: vec!["a b".into(), "c".into(), "d".into()],
                units: 3,
                requirements: requirements(),
                max_price_per_unit: Amount(70),
                trust: 2,
            }),
        ),
        ("waiting_list", frozen(&WaitingList(vec![waiting_unit()]))),
        ("replica", frozen(&replica(1, ReplicaStatus::Revealed))),
        (
            "unit",
            frozen(&Unit {
                job: 31,
                unit: 1,
                state: UnitState::Accepted,
                replicas: vec![
                    replica(0, ReplicaStatus::Agreed),
                    replica(1, ReplicaStatus::NoShow),
                ],
                reveal_deadline: Some(1_000),
                accepted: Some(([0xd0; 32], 1_500_000_000)),
                sought: false,
                audit: AuditDraw::Due(998),
            }),
        ),
        ("id_list", frozen(&IdList(vec![3, ID]))),
        ("deadline_count", frozen(&DeadlineCount(2))),
        ("deadline", frozen(&Deadline((31, 2, REVEAL_DEADLINE)))),
        (
            "deadline_job_expiry",
            frozen(&Deadline((31, JOB_EXPIRY, REVEAL_DEADLINE))),
        ),
        (
            "counters",
            frozen(&Counters {
                next_provider: 12,
                next_offer: 22,
                next_job: 32,
            }),
        ),
        ("work_count", frozen(&WorkCount(2))),
        ("work_item", frozen(&WorkItem((31, 2, 1)))),
        ("work_slot", frozen(&WorkSlot(1))),
        (
            "assignment_list",
            frozen(&AssignmentList(vec![AssignmentRecord {
                job: 31,
                unit: 1,
                replica: 0,
                provider: 11,
                price_per_unit: Amount(60),
                commit_deadline: 700,
            }])),
        ),
        (
            "app_list",
            frozen(&AppList(vec![([0xab; 32], addr(2)), ([0xcd; 32], addr(3))])),
        ),
        ("wait_reason", frozen(&wait_reason())),
        ("owner_index", frozen(&OwnerIndex(11))),
        ("excuses", frozen(&Excuses { window: 3, used: 2 })),
        ("partners", frozen(&Partners(vec![(12, 3), (13, 1)]))),
        (
            "bank_funding",
            frozen(&Funding {
                funder: addr(2),
                at_secs: 1_764_000_123,
            }),
        ),
        ("deadline_cursor", frozen(&DeadlineCursor(1_764_000_123))),
        (
            "capacity_round",
            frozen(&CapacityRound {
                number: 3,
                seed: [9; 32],
                opened_ms: 1_764_000_123_456,
                closes_ms: 1_764_000_143_456,
                hashes_per_slot: 1 << 23,
            }),
        ),
        ("proven_round", frozen(&ProvenRound(3))),
        (
            "replica_unfinished",
            frozen(&replica(2, ReplicaStatus::Unfinished)),
        ),
        (
            "replica_excused",
            frozen(&replica(3, ReplicaStatus::Excused)),
        ),
        (
            "holdings",
            frozen(&Holdings {
                open_jobs: 3,
                apps: 1,
                offers: vec![21, 22],
            }),
        ),
    ]
}

#[test]
fn every_record_has_its_frozen_bytes_round_trips_and_fits_its_bound() {
    check_golden(
        "tests/golden/records.hex",
        include_str!("golden/records.hex"),
        &every_record(),
    );
}

/// An empty value of every list-like record still encodes, and decodes back to itself.
#[test]
fn empty_records_round_trip() {
    assert_eq!(frozen(&IdList::default()), "00");
    assert_eq!(frozen(&WaitingList::default()), "00");
    assert_eq!(frozen(&AssignmentList::default()), "00");
    assert_eq!(frozen(&AppList::default()), "00");
    frozen(&JobAccounts::default());
    frozen(&Account::default());
    frozen(&ChainMeta::default());
}

// ---------------------------------------------------------------------------------------------
// Receipts and refusals
// ---------------------------------------------------------------------------------------------

fn receipt(status: TxStatus, fee_paid: u128, created: Vec<Created>) -> Receipt {
    Receipt {
        height: 12,
        index: 3,
        status,
        fee_paid: Amount(fee_paid),
        created,
    }
}

fn rejected(r: impl Into<Rejection>) -> TxStatus {
    TxStatus::Rejected(r.into())
}

fn every_receipt() -> Vec<(&'static str, String)> {
    vec![
        ("ok_plain", frozen(&receipt(TxStatus::Ok, 1_000, vec![]))),
        (
            "ok_created",
            frozen(&receipt(
                TxStatus::Ok,
                1_000,
                vec![Created::Provider(11), Created::Offer(21), Created::Job(31)],
            )),
        ),
        (
            "exec_fee_too_low",
            frozen(&receipt(
                rejected(Precheck::FeeTooLow {
                    min: Amount(1_000),
                    got: Amount(999),
                }),
                0,
                vec![],
            )),
        ),
        (
            "exec_bad_signature",
            frozen(&receipt(rejected(Precheck::BadSignature), 0, vec![])),
        ),
        (
            "bank_insufficient_funds",
            frozen(&receipt(
                rejected(bank::Refusal::InsufficientFunds {
                    needed: Amount(5_000),
                    available: Amount(4_999),
                }),
                1_000,
                vec![],
            )),
        ),
        (
            "market_unknown_replica",
            frozen(&receipt(
                rejected(Refusal::UnknownReplica {
                    job: 31,
                    unit: 2,
                    replica: 1,
                }),
                1_000,
                vec![],
            )),
        ),
        (
            "market_invalid_offer_expiry",
            frozen(&receipt(
                rejected(Refusal::InvalidOffer {
                    expiry: Some((5, 9)),
                }),
                1_000,
                vec![],
            )),
        ),
        (
            "market_invalid_job_unit_args",
            frozen(&receipt(
                rejected(Refusal::InvalidJob(JobProblem::UnitArgs {
                    lines: 2,
                    units: 3,
                })),
                1_000,
                vec![],
            )),
        ),
    ]
}

#[test]
fn receipts_of_every_module_have_their_frozen_bytes_and_round_trip() {
    check_golden(
        "tests/golden/receipts.hex",
        include_str!("golden/receipts.hex"),
        &every_receipt(),
    );
}

/// The largest receipt (a refusal with the most fields and the most created ids) fits the
/// receipt's bound.
#[test]
fn the_largest_receipt_fits_its_bound() {
    let most = receipt(
        rejected(Refusal::InvalidJob(JobProblem::UnitArgs {
            lines: u32::MAX,
            units: u32::MAX,
        })),
        u128::MAX,
        vec![Created::Job(u64::MAX); exo_ledger::exec::MAX_CREATED],
    );
    frozen(&most);
}

/// Every market refusal with its frozen code and fields, written out by hand.
fn every_market_refusal() -> Vec<(Refusal, u16, Vec<u128>)> {
    let max = u128::MAX;
    vec![
        (Refusal::InvalidResources, 1, vec![]),
        (Refusal::ProviderExists, 2, vec![]),
        (Refusal::NotAProvider, 3, vec![]),
        (Refusal::ProviderRetired, 4, vec![]),
        (
            Refusal::BondTooLow {
                bond: Amount(5),
                min: Amount(max),
            },
            5,
            vec![5, max],
        ),
        (Refusal::ProviderBusy { active: 3 }, 6, vec![3]),
        (Refusal::InvalidOffer { expiry: None }, 7, vec![]),
        (
            Refusal::InvalidOffer {
                expiry: Some((5, u64::MAX)),
            },
            7,
            vec![5, u64::MAX.into()],
        ),
        (Refusal::TooManyOffers { held: 8, max: 8 }, 8, vec![8, 8]),
        (Refusal::BookFull { max: 10_000 }, 9, vec![10_000]),
        (Refusal::UnknownOffer { offer: ID }, 10, vec![ID.into()]),
        (Refusal::NotYourOffer { offer: 21 }, 11, vec![21]),
        (
            Refusal::InvalidJob(JobProblem::Units { units: 0 }),
            12,
            vec![1, 0],
        ),
        (
            Refusal::InvalidJob(JobProblem::Trust { trust: 9 }),
            12,
            vec![2, 9],
        ),
        (
            Refusal::InvalidJob(JobProblem::UnitArgs { lines: 2, units: 3 }),
            12,
            vec![3, 2, 3],
        ),
        (Refusal::InvalidJob(JobProblem::Requirements), 12, vec![4]),
        (Refusal::InvalidJob(JobProblem::ZeroFuel), 12, vec![5]),
        (Refusal::InvalidJob(JobProblem::ZeroPrice), 12, vec![6]),
        (Refusal::InvalidJob(JobProblem::InputNames), 12, vec![7]),
        (
            Refusal::InvalidJob(JobProblem::UnitsOverWaitingBound { max: 5_000 }),
            12,
            vec![8, 5_000],
        ),
        (Refusal::UnknownApp, 13, vec![]),
        (Refusal::TooManyJobs { max: 1_000 }, 14, vec![1_000]),
        (Refusal::UnknownJob { job: 31 }, 15, vec![31]),
        (Refusal::NotYourJob { job: 31 }, 16, vec![31]),
        (Refusal::JobClosed { job: 31 }, 17, vec![31]),
        (Refusal::AppExists, 18, vec![]),
        (Refusal::InvalidApp(AppProblem::Name), 19, vec![1]),
        (
            Refusal::InvalidApp(AppProblem::Royalty { max: Amount(max) }),
            19,
            vec![2, max],
        ),
        (
            Refusal::InvalidApp(AppProblem::Full { max: 4_096 }),
            19,
            vec![3, 4_096],
        ),
        (
            Refusal::UnknownReplica {
                job: 31,
                unit: 2,
                replica: 1,
            },
            20,
            vec![31, 2, 1],
        ),
        (
            Refusal::NotYourReplica {
                job: 31,
                unit: 2,
                replica: 1,
            },
            21,
            vec![31, 2, 1],
        ),
        (
            Refusal::RevealNotOpen {
                job: 31,
                unit: 2,
                replica: 1,
            },
            23,
            vec![31, 2, 1],
        ),
        (
            Refusal::CommitmentMismatch {
                job: u64::MAX,
                unit: u32::MAX,
                replica: u32::MAX,
            },
            24,
            vec![u64::MAX.into(), u32::MAX.into(), u32::MAX.into()],
        ),
        (Refusal::EscrowOverflow, 25, vec![]),
        (
            Refusal::TooManyOpenJobs { held: 16, max: 16 },
            26,
            vec![16, 16],
        ),
        (Refusal::TooManyApps { held: 16, max: 16 }, 27, vec![16, 16]),
        (
            Refusal::OfferTooLong {
                expiry: u64::MAX,
                max: 1_000_100,
            },
            28,
            vec![u64::MAX.into(), 1_000_100],
        ),
        (
            Refusal::TooManySlots {
                held: 1_024,
                max: 1_024,
            },
            29,
            vec![1_024, 1_024],
        ),
        (Refusal::CapacityRoundNotOpen { round: 4 }, 30, vec![4]),
        (
            Refusal::OfferAfterCapacityRound { offer: 9, round: 4 },
            31,
            vec![9, 4],
        ),
        (
            Refusal::CapacityAlreadyProven { offer: 9, round: 4 },
            32,
            vec![9, 4],
        ),
        (Refusal::InvalidCapacityProof { offer: 9 }, 33, vec![9]),
        (
            Refusal::CapacityPriceTooHigh {
                offer: 9,
                max: Amount::from_exo(10),
            },
            34,
            vec![9, Amount::from_exo(10).0],
        ),
        (Refusal::NoFreeSlots { offer: 9 }, 35, vec![9]),
    ]
}

#[test]
fn every_market_refusal_keeps_its_code_and_round_trips_through_its_fields() {
    let all = every_market_refusal();
    for (refusal, code, fields) in &all {
        assert_eq!(refusal.code(), *code, "{refusal:?}");
        assert_eq!(&refusal.fields(), fields, "{refusal:?}");
        assert_eq!(
            Refusal::from_fields(*code, fields).as_ref(),
            Some(refusal),
            "{refusal:?}"
        );
        // And through a stored receipt.
        frozen(&receipt(rejected(refusal.clone()), 1, vec![]));
    }
    // Distinct refusals never share a (code, fields) pair, and names are distinct per code.
    for (i, (a, ca, fa)) in all.iter().enumerate() {
        for (b, cb, fb) in &all[i + 1..] {
            assert!((ca, fa) != (cb, fb), "{a:?} and {b:?} encode alike");
            if ca != cb {
                assert_ne!(a.name(), b.name(), "{a:?} and {b:?}");
            }
        }
    }
}

#[test]
fn retired_unknown_and_malformed_codes_are_refused() {
    // Code 22 ("commit closed") is retired for good.
    assert_eq!(Refusal::from_fields(22, &[]), None);
    assert_eq!(Refusal::from_fields(22, &[1, 2, 3]), None);
    assert_eq!(Refusal::from_fields(0, &[]), None);
    assert_eq!(Refusal::from_fields(26, &[]), None);
    // A known code with the wrong number of fields, or a field out of its type's range.
    assert_eq!(Refusal::from_fields(6, &[]), None);
    assert_eq!(Refusal::from_fields(6, &[u128::from(u32::MAX) + 1]), None);
    assert_eq!(Refusal::from_fields(12, &[2, 256]), None);
    assert_eq!(Refusal::from_fields(12, &[8]), None);
    assert_eq!(Refusal::from_fields(19, &[4]), None);
    assert_eq!(Precheck::from_fields(0, &[]), None);
    assert_eq!(Precheck::from_fields(9, &[]), None);
    assert_eq!(bank::Refusal::from_fields(3, &[]), None);
    // A receipt naming the evidence module (which refuses nothing) or an unknown module does
    // not decode. Height 12, index 3, rejected (1) by module 2 with code 1 and no fields, no
    // fee, no created ids.
    let mut bytes = hex::decode("000000000000000c000000030102000100").unwrap();
    bytes.extend_from_slice(&[0; 17]);
    assert!(Receipt::from_bytes(&bytes).is_err());
    bytes[13] = 5;
    assert!(Receipt::from_bytes(&bytes).is_err());
    // The same bytes from the bank are its zero-amount refusal.
    bytes[13] = 1;
    assert_eq!(
        Receipt::from_bytes(&bytes).unwrap().status,
        rejected(bank::Refusal::ZeroAmount)
    );
    // More fields than any refusal has, or more created ids than a transaction makes.
    let mut many_fields = bytes.clone();
    many_fields[16] = 9;
    many_fields.splice(17..17, [0u8; 9 * 16]);
    assert!(Receipt::from_bytes(&many_fields).is_err());
    let mut many_created = hex::decode("000000000000000c0000000300").unwrap();
    many_created.extend_from_slice(&[0; 16]);
    many_created.push(exo_ledger::exec::MAX_CREATED as u8 + 1);
    for id in 0..=exo_ledger::exec::MAX_CREATED as u64 {
        many_created.push(2);
        many_created.extend_from_slice(&id.to_be_bytes());
    }
    assert!(Receipt::from_bytes(&many_created).is_err());
    many_created.truncate(many_created.len() - 9);
    many_created[29] = exo_ledger::exec::MAX_CREATED as u8;
    assert_eq!(
        Receipt::from_bytes(&many_created).unwrap().created.len(),
        exo_ledger::exec::MAX_CREATED
    );
}

#[test]
fn every_exec_and_bank_refusal_keeps_its_code_and_round_trips_through_its_fields() {
    let max = u128::MAX;
    let exec: Vec<(Precheck, u16, Vec<u128>)> = vec![
        (Precheck::BadSignature, 1, vec![]),
        (Precheck::WrongChain, 2, vec![]),
        (
            Precheck::Oversize {
                size: 70_000,
                max: 65_536,
            },
            3,
            vec![70_000, 65_536],
        ),
        (
            Precheck::ReplayedNonce {
                expected: 4,
                got: 3,
            },
            4,
            vec![4, 3],
        ),
        (
            Precheck::GappedNonce {
                expected: 4,
                got: u64::MAX,
            },
            5,
            vec![4, u64::MAX.into()],
        ),
        (
            Precheck::FeeTooLow {
                min: Amount(1_000),
                got: Amount(999),
            },
            6,
            vec![1_000, 999],
        ),
        (
            Precheck::InsufficientFunds {
                needed: Amount(max),
                available: Amount(0),
            },
            7,
            vec![max, 0],
        ),
        (
            Precheck::RecordTooLarge {
                size: 1_048_577,
                max: 1_048_576,
            },
            8,
            vec![1_048_577, 1_048_576],
        ),
    ];
    for (precheck, code, fields) in exec {
        assert_eq!(precheck.code(), code, "{precheck:?}");
        assert_eq!(precheck.fields(), fields, "{precheck:?}");
        assert_eq!(
            Precheck::from_fields(code, &fields),
            Some(precheck.clone()),
            "{precheck:?}"
        );
        frozen(&receipt(rejected(precheck), 0, vec![]));
    }
    let bank: Vec<(bank::Refusal, u16, Vec<u128>)> = vec![
        (bank::Refusal::ZeroAmount, 1, vec![]),
        (
            bank::Refusal::InsufficientFunds {
                needed: Amount(max),
                available: Amount(1),
            },
            2,
            vec![max, 1],
        ),
    ];
    for (refusal, code, fields) in bank {
        assert_eq!(Coded::code(&refusal), code, "{refusal:?}");
        assert_eq!(refusal.fields(), fields, "{refusal:?}");
        assert_eq!(
            bank::Refusal::from_fields(code, &fields),
            Some(refusal.clone()),
            "{refusal:?}"
        );
        frozen(&receipt(rejected(refusal), 1_000, vec![]));
    }
}

// ---------------------------------------------------------------------------------------------
// Bounds at write and at read
// ---------------------------------------------------------------------------------------------

#[test]
fn a_record_over_its_bound_is_refused_at_write() {
    let key = market_keys::waiting_key(11);
    let mut cache = StateCache::new();
    // One more unit than fits in the bound.
    let waiting = WaitingList(vec![
        WaitingUnit {
            unit: 1,
            started: false,
            replicas: vec![0],
            exclude: vec![],
            deciding: false,
        };
        WaitingList::MAX_BYTES / 12 + 1
    ]);
    let size = waiting.to_bytes().len();
    assert!(size > WaitingList::MAX_BYTES);
    assert_eq!(
        state::store(&mut cache, key, &waiting),
        Err(Fault::RecordTooLarge {
            what: WaitingList::WHAT,
            size,
            max: WaitingList::MAX_BYTES,
        })
    );
    let ids = IdList(vec![ID; IdList::MAX_BYTES / 8 + 1]);
    let size = ids.to_bytes().len();
    assert_eq!(
        state::store(&mut cache, market_keys::book_key(), &ids),
        Err(Fault::RecordTooLarge {
            what: "id list",
            size,
            max: IdList::MAX_BYTES,
        })
    );
    // Nothing of either reached the block's writes.
    assert_eq!(cache.writes().len(), 0);
    // A record within its bound is written.
    state::store(&mut cache, key, &WaitingList(waiting.0[..1].to_vec())).unwrap();
    assert_eq!(cache.writes().len(), 1);
}

#[test]
fn bytes_over_a_records_bound_are_refused_at_read() {
    let bytes = vec![0u8; Account::MAX_BYTES + 1];
    assert_eq!(
        state::decode::<Account>(&bytes),
        Err(Fault::RecordTooLarge {
            what: "account",
            size: Account::MAX_BYTES + 1,
            max: Account::MAX_BYTES,
        })
    );
    // A list whose bytes are over its bound is refused before any of it is decoded.
    let ids = IdList(vec![ID; IdList::MAX_BYTES / 8 + 1]).to_bytes();
    assert!(matches!(
        state::decode::<IdList>(&ids),
        Err(Fault::RecordTooLarge {
            what: "id list",
            ..
        })
    ));
    // Bytes within the bound that do not decode are corrupt, not too large.
    assert!(matches!(
        state::decode::<Account>(&[0u8; 3]),
        Err(Fault::Corrupt {
            what: "account",
            ..
        })
    ));
}

/// The store's value bound is the ceiling every record's bound must stay under.
#[test]
fn every_record_bound_is_within_the_stores_value_bound() {
    let bounds = [
        ChainMeta::MAX_BYTES,
        Params::MAX_BYTES,
        Receipt::MAX_BYTES,
        Account::MAX_BYTES,
        PotBalance::MAX_BYTES,
        Supply::MAX_BYTES,
        Recorded::MAX_BYTES,
        Member::MAX_BYTES,
        Provider::MAX_BYTES,
        OfferRecord::MAX_BYTES,
        App::MAX_BYTES,
        JobAccounts::MAX_BYTES,
        WaitingUnit::MAX_BYTES,
        Job::MAX_BYTES,
        Replica::MAX_BYTES,
        Unit::MAX_BYTES,
        IdList::MAX_BYTES,
        DeadlineCount::MAX_BYTES,
        Deadline::MAX_BYTES,
        Counters::MAX_BYTES,
        WaitingList::MAX_BYTES,
        WorkCount::MAX_BYTES,
        WorkItem::MAX_BYTES,
        WorkSlot::MAX_BYTES,
        JobSpec::MAX_BYTES,
        AssignmentList::MAX_BYTES,
        AppList::MAX_BYTES,
        WaitReason::MAX_BYTES,
        OwnerIndex::MAX_BYTES,
        Holdings::MAX_BYTES,
    ];
    for bound in bounds {
        assert!(bound <= MAX_VALUE_BYTES);
    }
}

// ---------------------------------------------------------------------------------------------
// The state of one small block
// ---------------------------------------------------------------------------------------------

const SENDER: u64 = 1;
const RECIPIENT: u64 = 2;
const VALIDATOR: u64 = 5;

fn golden_genesis() -> Genesis {
    Genesis {
        chain_id: "exo-golden".into(),
        params: Params::default(),
        accounts: vec![GenesisAccount {
            address: address_to_hex(&addr(SENDER)),
            balance: Amount::from_exo(1_000),
        }],
        validators: vec![address_to_hex(&addr(VALIDATOR))],
    }
}

/// Every entry of the store in key order, each as key, value length (u32, big-endian), value.
fn state_bytes(chain: &MemoryChain) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in &chain.store.entries {
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

#[test]
fn the_genesis_hash_is_frozen() {
    assert_eq!(
        hex::encode(golden_genesis().hash()),
        "0c57fd386db1d02fe7b696adffbff834dbd5b12aaf4f6c30a5c2f75bdb382c58"
    );
}

/// Lists are length-prefixed in the genesis encoding: moving 32 bytes from the accounts to the
/// validators cannot give the same bytes.
#[test]
fn geneses_with_the_same_bytes_in_other_lists_hash_apart() {
    let one = golden_genesis();
    let mut other = one.clone();
    other.validators.push(other.validators[0].clone());
    other.validators.dedup();
    assert_eq!(
        one.hash(),
        other.hash(),
        "a repeated validator is the same committee"
    );
    let mut fewer = one.clone();
    fewer.accounts.pop();
    assert_ne!(one.hash(), fewer.hash());
    let mut bad = one.clone();
    bad.accounts[0].address = "not hex".into();
    assert!(bad.canonical_bytes().is_err());
}

#[test]
fn one_transfer_from_a_fixed_genesis_leaves_a_frozen_state() {
    let mut chain = MemoryChain::new(golden_genesis());
    let transfer = UnsignedTx {
        chain_id: "exo-golden".into(),
        sender: addr(SENDER),
        nonce: 0,
        fee: Amount(1_000),
        action: Action::Transfer {
            to: addr(RECIPIENT),
            amount: Amount::from_exo(5),
        },
    }
    .sign(&PrivateKey::from_seed(SENDER));
    let receipts = chain.execute_block(&addr(VALIDATOR), &[transfer]);
    let receipt = receipts[0]
        .clone()
        .expect("a new transaction has a receipt");
    assert_eq!(receipt.status, TxStatus::Ok);
    assert_eq!(
        hex::encode(receipt.to_bytes()),
        "00000000000000010000000000000000000000000000000000000003e800",
        "the transfer's receipt"
    );
    let listing: Vec<String> = chain
        .store
        .entries
        .iter()
        .map(|(k, v)| format!("{} {}", hex::encode(k), hex::encode(v)))
        .collect();
    assert_eq!(
        hex::encode(hash_bytes(&state_bytes(&chain))),
        "414dbd50e44916ec55281d9c4f8b94952e73c9cdf98c3131d58859232010f38f",
        "the state after one transfer:\n{}",
        listing.join("\n")
    );
}
