//! `exo bench market`: throughput of the batch matcher on synthetic books, and the cost of one
//! demand-offer constraint check.
//!
//! The books are `exo_market::fixtures`, built deterministically from a seed, so two runs time
//! the same work. The matcher itself reads no clock; the timing is done here, from outside.

use std::hint::black_box;
use std::time::{Duration, Instant};

use exo_market::fixtures::{XorShift, requirements, synthetic};
use exo_market::{Requirements, match_batch};

/// What [`run`] measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// (resting offers, orders per second), where orders are the offers plus the demand slots
    /// of the batch (as many as offers) and the time is one whole `match_batch` call.
    pub orders_per_sec: Vec<(usize, f64)>,
    /// Nanoseconds for one `Requirements::admits` check of a demand against an offer.
    pub check_ns: f64,
}

/// Times `match_batch` on a synthetic book of each size (with as many demand slots as offers)
/// and times the single constraint check. Each size is run enough times to take a measurable
/// while, and the fastest run is kept, as the least disturbed by other work on the machine.
pub fn run(sizes: &[usize]) -> BenchReport {
    let mut orders_per_sec = Vec::with_capacity(sizes.len());
    for &n in sizes {
        let book = synthetic(n, n, 0x5EED ^ n as u64);
        let orders = book.orders();
        let runs = (2_000_000 / n.max(1)).clamp(3, 20);
        let mut best = Duration::MAX;
        for _ in 0..runs {
            let best_run = time(|| {
                black_box(match_batch(
                    black_box(&book.offers),
                    black_box(&book.demands),
                    book.now_secs,
                ))
            });
            best = best.min(best_run);
        }
        orders_per_sec.push((n, orders as f64 / best.as_secs_f64()));
    }
    BenchReport {
        orders_per_sec,
        check_ns: check_ns(),
    }
}

/// Times one demand-offer check over a cycle of pairs big enough to defeat branch prediction
/// memorising the answers.
pub fn check_ns() -> f64 {
    let book = synthetic(1024, 0, 7);
    let mut rng = XorShift::new(11);
    let reqs: Vec<Requirements> = (0..1024).map(|_| requirements(&mut rng)).collect();
    let rounds = 4_000usize;
    let elapsed = time(|| {
        let mut admitted = 0u64;
        for round in 0..rounds {
            for (i, req) in reqs.iter().enumerate() {
                let offer = &book.offers[(i * 7 + round) % book.offers.len()];
                admitted += u64::from(black_box(req).admits(black_box(offer)));
            }
        }
        black_box(admitted)
    });
    elapsed.as_nanos() as f64 / (rounds * reqs.len()) as f64
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    black_box(f());
    start.elapsed()
}
