//! The full proof-of-task simulation: 10,000 units over 100 providers with 10% and 30% liars
//! at trust 1, 2 and 3. Run in release:
//!
//! ```text
//! cargo run --release -p exo-worker --example proof_of_task [units] [providers] [seed] \
//!     [min_reputation] [trusted_reputation] [audit_ppm] [offer_blocks]
//! ```
//!
//! The last four change the jobs' minimum reputation, ledger parameters and how long offers
//! live before providers post them again, to try remedies (defaults: 0, `Params::default()`,
//! 50).
//!
//! Prints the markdown table of `docs/proof-of-task.md`.

fn main() {
    let mut args = std::env::args().skip(1);
    let units: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let providers: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let min_reputation: Option<u32> = args.next().and_then(|a| a.parse().ok());
    let trusted_reputation: Option<u32> = args.next().and_then(|a| a.parse().ok());
    let audit_ppm: Option<u32> = args.next().and_then(|a| a.parse().ok());
    let offer_blocks: Option<u64> = args.next().and_then(|a| a.parse().ok());
    let tweak = move |cfg: &mut exo_worker::simulate::SimConfig| {
        if let Some(r) = min_reputation {
            cfg.min_reputation = r;
        }
        if let Some(r) = trusted_reputation {
            cfg.params.trusted_reputation = r;
        }
        if let Some(a) = audit_ppm {
            cfg.params.audit_ppm = a;
        }
        if let Some(b) = offer_blocks {
            cfg.offer_blocks = b;
        }
    };
    let start = std::time::Instant::now();
    use exo_worker::{Misbehave, simulate::Behaviour};
    let kinds = [
        Behaviour::Worker(Misbehave::WrongResult),
        Behaviour::IndependentLiar,
    ];
    let rows = exo_worker::simulate::matrix_with(
        providers,
        units,
        &kinds,
        &[0.1, 0.3],
        &[1, 2, 3],
        seed,
        &tweak,
    );
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
