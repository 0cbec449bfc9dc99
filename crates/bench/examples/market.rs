//! Prints the matcher's throughput: `cargo run --release -p exo-bench --example market [sizes...]`.

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    for &n in &sizes {
        let book = exo_market::fixtures::synthetic(n, n, 0x5EED ^ n as u64);
        let outcome = exo_market::match_batch(&book.offers, &book.demands, book.now_secs)
            .expect("synthetic books are valid");
        println!(
            "{n} offers, {} demands, {} slots: {} assigned, {} unmatched, {} expired",
            book.demands.len(),
            book.orders() - n,
            outcome.assignments.len(),
            outcome.unmatched.len(),
            outcome.expired.len(),
        );
    }
    let report = exo_bench::market::run(&sizes);
    for (n, rate) in &report.orders_per_sec {
        println!("{n:>9} resting offers: {:>6.2} M orders/s", rate / 1e6);
    }
    println!("one constraint check: {:.1} ns", report.check_ns);
}
