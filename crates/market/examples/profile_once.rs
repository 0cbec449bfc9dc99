fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let reps: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let book = exo_market::bench::synthetic(n, n, 0x5EED ^ n as u64);
    for _ in 0..reps {
        let t = std::time::Instant::now();
        let out = exo_market::match_batch(&book.offers, &book.demands, book.height).unwrap();
        eprintln!("{:?} {}", t.elapsed(), out.assignments.len());
    }
}
