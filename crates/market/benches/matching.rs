//! Criterion benchmarks of the batch matcher, of one constraint check, and of `any_taker`.
//!
//! `cargo bench -p exo-market`. The books are the deterministic synthetic markets of
//! `exo_market::fixtures`, with as many demand slots as resting offers; throughput is counted in
//! orders (offers plus demand slots) per batch.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use exo_market::fixtures::{XorShift, requirements, synthetic};
use exo_market::{
    DeviceClass, GpuRequirement, Offer, Requirements, Runtime, any_taker, match_batch,
};

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_batch");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for n in [10_000usize, 100_000] {
        let book = synthetic(n, n, 0x5EED ^ n as u64);
        group.throughput(Throughput::Elements(book.orders() as u64));
        group.bench_function(format!("{n} offers"), |b| {
            b.iter(|| {
                match_batch(
                    black_box(&book.offers),
                    black_box(&book.demands),
                    book.now_secs,
                )
            })
        });
    }
    group.finish();
}

fn check(c: &mut Criterion) {
    let book = synthetic(1024, 0, 7);
    let mut rng = XorShift::new(11);
    let reqs: Vec<_> = (0..1024).map(|_| requirements(&mut rng)).collect();
    let mut group = c.benchmark_group("constraint check");
    group.throughput(Throughput::Elements(reqs.len() as u64));
    group.bench_function("Requirements::admits x1024", |b| {
        b.iter_batched(
            || (),
            |()| {
                reqs.iter()
                    .zip(book.offers.iter().cycle().skip(3))
                    .filter(|(r, o)| black_box(r).admits(black_box(o)))
                    .count()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Whether anyone on the book could take each job, at the ledger's default bounds (10,000
/// open offers, 1,000 open jobs): the matcher's index against a check of every offer for each
/// job, stopping at the first that fits. Three sets of jobs: requirements and prices drawn as
/// the synthetic market's; the same asking more reputation than any offer has (the scan
/// checks every offer, the index's root says no); and a combination of common resources that
/// few or no machines have (the index descends into many subtrees).
fn takers(c: &mut Criterion) {
    const JOBS: usize = 1_000;
    let book = synthetic(10_000, 0, 0x7A6E);
    let offers: Vec<&Offer> = book.offers.iter().collect();
    let mut rng = XorShift::new(0x7A6E);
    let synthetic_jobs: Vec<(Requirements, u128)> = (0..JOBS)
        .map(|_| (requirements(&mut rng), u128::from(rng.between(40, 600))))
        .collect();
    let unmet: Vec<(Requirements, u128)> = synthetic_jobs
        .iter()
        .map(|(r, price)| {
            let requirements = Requirements {
                min_reputation: 1_000,
                ..r.clone()
            };
            (requirements, *price)
        })
        .collect();
    let rare = Requirements {
        min_cores: 128,
        min_memory_mib: 512 * 1024,
        gpu: Some(GpuRequirement {
            model: None,
            min_count: 8,
            min_memory_mib: 64 * 1024,
        }),
        class: Some(DeviceClass::Server),
        runtime: Runtime::Wasm32Wasip2,
        ..Requirements::wasm(0, 1)
    };
    let rare: Vec<(Requirements, u128)> = vec![(rare, u128::MAX); JOBS];
    let mut group = c.benchmark_group("any_taker");
    group.sample_size(10);
    group.throughput(Throughput::Elements(JOBS as u64));
    for (name, jobs) in [
        ("synthetic jobs", &synthetic_jobs),
        ("jobs no offer meets", &unmet),
        ("a rare combination", &rare),
    ] {
        let wants: Vec<(&Requirements, u128)> = jobs.iter().map(|(r, p)| (r, *p)).collect();
        group.bench_function(format!("index, {name}"), |b| {
            b.iter(|| any_taker(black_box(&offers), black_box(&wants), book.now_secs))
        });
        group.bench_function(format!("scan, {name}"), |b| {
            b.iter(|| {
                black_box(&wants)
                    .iter()
                    .map(|(r, max)| {
                        offers.iter().any(|o| {
                            o.is_live(book.now_secs) && o.price_per_unit <= *max && r.admits(o)
                        })
                    })
                    .collect::<Vec<bool>>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, batch, check, takers);
criterion_main!(benches);
