//! Criterion benchmarks of the batch matcher and of one constraint check.
//!
//! `cargo bench -p exo-market`. The books are the deterministic synthetic markets of
//! `exo_market::fixtures`, with as many demand slots as resting offers; throughput is counted in
//! orders (offers plus demand slots) per batch.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use exo_market::fixtures::{XorShift, requirements, synthetic};
use exo_market::match_batch;

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

criterion_group!(benches, batch, check);
criterion_main!(benches);
