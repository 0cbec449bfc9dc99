//! Criterion benchmarks of capacity proofs: what a provider's search costs per hash (which
//! sets `capacity_hashes_per_slot` against the round's window) and what checking a proof costs
//! a validator (part of executing a `ProveCapacity` transaction).
//!
//! `cargo bench -p exo-ledger --bench capacity`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exo_types::CapacityChallenge;

/// A challenge of one slot whose proof takes `hashes_per_slot` hashes on average.
fn challenge(hashes_per_slot: u64) -> CapacityChallenge {
    CapacityChallenge {
        seed: [0x5e; 32],
        round: 7,
        offer: 42,
        slots: 1,
        hashes_per_slot,
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("capacity");
    // One thread's search over 65,536 nonces: the provider's cost per hash.
    const NONCES: u64 = 1 << 16;
    group.throughput(Throughput::Elements(NONCES));
    let search = challenge(1 << 30);
    group.bench_function("search_65536_hashes", |b| {
        b.iter(|| {
            let mut solutions = 0u32;
            let seen = std::cell::Cell::new(0u64);
            search.search(
                0,
                1,
                &mut |_| {
                    solutions += 1;
                    true
                },
                &|| {
                    seen.set(seen.get() + 4_096);
                    seen.get() >= NONCES
                },
            );
            black_box(solutions)
        })
    });
    // A validator's check of a whole proof (sixteen hashes and the distinctness test).
    let cheap = challenge(1 << 10);
    let nonces = cheap.solve();
    group.throughput(Throughput::Elements(1));
    group.bench_function("check_proof", |b| {
        b.iter(|| black_box(cheap.check(black_box(&nonces))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
