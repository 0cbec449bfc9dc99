//! Criterion benchmarks of the committee election (PhragMMS with balancing), which runs in the
//! last block of every epoch: its time is part of that block's execution on every validator.
//!
//! `cargo bench -p exo-ledger --bench election`. The ballots are deterministic synthetic ones:
//! every candidate backs itself, and each nominator backs `MAX_NOMINATION_TARGETS` distinct
//! candidates drawn with a skew toward the first ones (popular validators), with stakes
//! spread over three orders of magnitude.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use exo_ledger::modules::staking::{StakingParams, election::Ballot, election::elect};
use exo_types::MAX_NOMINATION_TARGETS;

/// A xorshift generator: the same ballots on every run and machine.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `candidates` self-backed candidates and `nominators` nominators of 16 targets each.
fn ballots(candidates: u32, nominators: u32) -> (Vec<u32>, Vec<Ballot<u32, u32>>) {
    const EXO: u128 = 1_000_000_000;
    let mut rng = XorShift(0x5EED_E1EC ^ u64::from(candidates) << 20 ^ u64::from(nominators));
    let cands: Vec<u32> = (0..candidates).collect();
    let mut out: Vec<Ballot<u32, u32>> = cands
        .iter()
        .map(|c| Ballot {
            voter: *c,
            stake: u128::from(1_000 + rng.below(9_000)) * EXO,
            targets: vec![*c],
        })
        .collect();
    let targets = MAX_NOMINATION_TARGETS.min(candidates as usize);
    for n in 0..nominators {
        let mut picked = Vec::with_capacity(targets);
        while picked.len() < targets {
            // The smaller of two draws: low-numbered candidates are backed more often.
            let c = rng
                .below(u64::from(candidates))
                .min(rng.below(u64::from(candidates)));
            let c = c as u32;
            if !picked.contains(&c) {
                picked.push(c);
            }
        }
        out.push(Ballot {
            voter: candidates + n,
            stake: u128::from(10 + rng.below(10_000)) * EXO,
            targets: picked,
        });
    }
    (cands, out)
}

fn election(c: &mut Criterion) {
    let defaults = StakingParams::default();
    let mut group = c.benchmark_group("elect");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    // (candidates, nominators, seats): the default parameters at their limits (4 seats),
    // then larger committees over the same ballots. Nearer the bounds the parameters allow,
    // one election took about 19 s (100 seats over 1,000 candidates and 20,000 nominators),
    // past what criterion's samples can wait for.
    let cases = [4, 16, 64].map(|seats| (defaults.max_validators, defaults.max_nominators, seats));
    for (candidates, nominators, seats) in cases {
        let (cands, ballots) = ballots(candidates, nominators);
        let name = format!("{candidates} candidates, {nominators} nominators, {seats} seats");
        group.bench_function(name, |b| {
            b.iter(|| {
                elect(
                    black_box(&cands),
                    black_box(&ballots),
                    seats as usize,
                    defaults.balance_rounds,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, election);
criterion_main!(benches);
