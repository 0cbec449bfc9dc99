//! The full proof-of-task simulation: 10,000 units over 100 providers with 10% and 30% liars
//! at trust 1, 2 and 3. Run in release:
//!
//! ```text
//! cargo run --release -p exo-worker --example proof_of_task [units] [providers] [seed]
//! ```
//!
//! Prints the markdown table of `docs/proof-of-task.md`.

fn main() {
    let mut args = std::env::args().skip(1);
    let units: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let providers: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let start = std::time::Instant::now();
    use exo_worker::{Misbehave, simulate::Behaviour};
    let kinds = [
        Behaviour::Worker(Misbehave::WrongResult),
        Behaviour::IndependentLiar,
    ];
    let rows =
        exo_worker::simulate::matrix(providers, units, &kinds, &[0.1, 0.3], &[1, 2, 3], seed);
    print!("{}", exo_worker::simulate::markdown_table(&rows));
    for row in &rows {
        let r = &row.report;
        eprintln!(
            "{} {:.0}% trust {}: rejected txs {}, unfinished {}, genesis {} accounted {} (diff {}), supply+slashed {}: {:?}",
            row.liar.name(),
            row.liars * 100.0,
            row.trust,
            r.rejected_txs,
            r.unfinished,
            r.genesis_supply,
            r.accounted,
            r.genesis_supply as i128 - r.accounted as i128,
            r.supply + r.slashed,
            r.kinds
        );
    }
    eprintln!(
        "{} runs in {:.1} s",
        rows.len(),
        start.elapsed().as_secs_f64()
    );
}
