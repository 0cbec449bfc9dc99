//! Frozen formats of the staking module: its state keys, its records and its refusal codes.
//! Changing one of these bytes is a decision written in the commit message.

use commonware_cryptography::Signer;
use exo_ledger::{
    exec::Coded,
    modules::staking::{
        Addresses, Certificates, Chunk, Committee, Counters, EpochRecord, Exposure, Member,
        MemberReward, Offence, Offences, Owner, PayoutQueue, ProviderPayout, Refusal, SlashRecord,
        Staker, Status, Tally, Units, Validator, certificates_key, committee_key,
        consensus_key_key, counters_key, epoch_key, exposure_key, nominators_key,
        offence_exposure_key, offences_key, payout_key, payout_queue_key, staker_key, tally_key,
        units_key, validator_key, validators_key, worker_key,
    },
    state::{Namespace, Record, decode},
};
use exo_types::{Address, Amount, PrivateKey};
use std::fmt::Debug;

fn addr(i: u64) -> Address {
    PrivateKey::from_seed(i).public_key()
}

fn frozen<T: Record + PartialEq + Debug>(value: &T) -> String {
    let bytes = value.to_bytes();
    assert!(bytes.len() <= T::MAX_BYTES, "{} over its bound", T::WHAT);
    assert_eq!(&decode::<T>(&bytes).expect("decodes"), value);
    hex::encode(bytes)
}

fn every_record() -> Vec<(&'static str, String)> {
    vec![
        (
            "staker",
            frozen(&Staker {
                id: 3,
                active: Amount(500),
                unbonding: vec![Chunk {
                    amount: Amount(7),
                    release_secs: 40,
                }],
                targets: vec![addr(1), addr(2)],
            }),
        ),
        (
            "validator_jailed",
            frozen(&Validator {
                consensus_key: addr(3),
                p2p_address: "10.0.0.1:4000".into(),
                commission_bps: 500,
                status: Status::Jailed { until: 99 },
                nominators: 2,
            }),
        ),
        (
            "validator_active",
            frozen(&Validator {
                consensus_key: addr(3),
                p2p_address: "h:1".into(),
                commission_bps: 0,
                status: Status::Active,
                nominators: 0,
            }),
        ),
        ("owner", frozen(&Owner(addr(4)))),
        ("counters", frozen(&Counters { next_staker: 9 })),
        ("addresses", frozen(&Addresses(vec![addr(1), addr(2)]))),
        (
            "committee",
            frozen(&Committee {
                members: vec![Member {
                    validator: addr(1),
                    consensus_key: addr(5),
                    backing: Amount(1_650),
                }],
                elected: true,
            }),
        ),
        (
            "exposure",
            frozen(&Exposure {
                own: Amount(600),
                others: vec![(addr(21), Amount(1_050))],
            }),
        ),
        (
            "tally",
            frozen(&Tally {
                proposed: 7,
                missed: 2,
                votes: 15,
            }),
        ),
        ("units", frozen(&Units(12))),
        ("certificates", frozen(&Certificates(18))),
        (
            "provider_payout",
            frozen(&ProviderPayout {
                owners: 1_500,
                units: 3_750,
                capacity_units: 750,
                pool: Amount(30_000_000),
                paid: Amount(2_048_000),
                next: 256,
            }),
        ),
        ("payout_queue", frozen(&PayoutQueue { first: 2, end: 4 })),
        (
            "offences",
            frozen(&Offences(vec![Offence {
                validator: addr(2),
                epoch: 3,
                reported_secs: 40,
                due_secs: 45,
                applied: true,
            }])),
        ),
        (
            "epoch_record",
            frozen(&EpochRecord {
                ended_ms: 19_000,
                fees: Amount(3_000),
                minted: Amount(10_000),
                to_providers: Amount(3_900),
                work_units: 4,
                capacity_units: 1,
                providers_pool: Amount(3_901),
                providers_paid: true,
                certificates: 18,
                to_treasury: Amount(2),
                members: vec![MemberReward {
                    validator: addr(1),
                    proposed: 5,
                    missed: 1,
                    votes: 17,
                    points: 117,
                    reward: Amount(2_275),
                    kept: Amount(800),
                    jailed: false,
                }],
                slashes: vec![SlashRecord {
                    validator: addr(2),
                    offenders: 1,
                    committee: 4,
                    amount: Amount(70),
                }],
            }),
        ),
    ]
}

#[test]
fn every_staking_record_has_its_frozen_bytes_and_round_trips() {
    let expected = include_str!("golden/staking_records.hex");
    let actual: Vec<String> = every_record()
        .into_iter()
        .map(|(name, hex)| format!("{name} {hex}"))
        .collect();
    assert_eq!(actual.join("\n"), expected.trim());
}

#[test]
fn every_staking_key_opens_with_the_staking_namespace_then_its_table() {
    let keys = [
        (0, staker_key(&addr(1))),
        (1, validator_key(&addr(1))),
        (2, consensus_key_key(&addr(1))),
        (3, counters_key()),
        (4, validators_key()),
        (5, nominators_key()),
        (6, committee_key(7)),
        (7, exposure_key(7, &addr(1))),
        (8, tally_key(&addr(1))),
        (9, units_key(7, &addr(1))),
        (10, worker_key(7, 3)),
        (11, offences_key()),
        (12, offence_exposure_key(&addr(1))),
        (13, epoch_key(7)),
        (14, certificates_key()),
        (15, payout_key(7)),
        (16, payout_queue_key()),
    ];
    for (table, key) in keys {
        assert_eq!(key[0], Namespace::Staking as u8);
        assert_eq!(key[1], table);
    }
    assert_eq!(
        hex::encode(committee_key(7)),
        "04060000000000000000000000000000000000000000000000000000000000000007"
    );
    // An epoch's owners sort together, by position.
    assert_eq!(
        hex::encode(worker_key(7, 3)),
        "040a0000000000000007000000000000000300000000000000000000000000000000"
    );
}

#[test]
fn every_staking_refusal_keeps_its_code_and_round_trips_through_its_fields() {
    let a = Amount(5);
    let b = Amount(6);
    let all = [
        Refusal::AlreadyValidator,
        Refusal::IsNominator,
        Refusal::ConsensusKeyTaken,
        Refusal::SelfBondTooLow { bond: a, min: b },
        Refusal::CommissionTooHigh {
            bps: 10_001,
            max: 10_000,
        },
        Refusal::BadP2pAddress,
        Refusal::TooManyValidators { max: 8 },
        Refusal::NotAValidator,
        Refusal::IsValidator,
        Refusal::TooManyTargets {
            targets: 17,
            max: 16,
        },
        Refusal::UnknownTarget { index: 2 },
        Refusal::DuplicateTarget { index: 3 },
        Refusal::NominationTooLow { bond: a, min: b },
        Refusal::TooManyNominators { max: 4 },
        Refusal::ValidatorFull { index: 1, max: 2 },
        Refusal::ZeroAmount,
        Refusal::UnbondTooMuch {
            amount: a,
            active: b,
        },
        Refusal::TooManyUnbondingChunks { max: 2 },
        Refusal::NothingToWithdraw { next_release: 40 },
        Refusal::AlreadyChilled,
        Refusal::Jailed { until: 50 },
        Refusal::AlreadyActive,
        Refusal::MustChillFirst,
    ];
    for (code, refusal) in (1u16..).zip(&all) {
        assert_eq!(refusal.code(), code, "{}", refusal.name());
        assert_eq!(
            Refusal::from_fields(code, &refusal.fields()).as_ref(),
            Some(refusal)
        );
    }
    assert_eq!(Refusal::from_fields(0, &[]), None);
    assert_eq!(Refusal::from_fields(all.len() as u16 + 1, &[]), None);
    assert_eq!(Refusal::from_fields(7, &[u128::from(u32::MAX) + 1]), None);
}
