//! The full proof-of-task simulation: 10,000 units over 100 providers with 10% and 30% liars
//! at trust 1, 2 and 3. Run in release:
//!
//! ```text
//! cargo run --release -p exo-bench --example proof_of_task [name=value ...]
//! ```
//!
//! Names: `units` (10000), `providers` (100), `seed` (1), `shares` (`10,30`, percent of liars),
//! `trusts` (`1,2,3`), `kinds` (`wrong-result,independent-liar`), and, to try other rules, the
//! jobs' `min_reputation`, how long offers live in seconds (`offer_lifetime_secs`), the providers' `bond` in EXO,
//! and the ledger parameters `trusted_reputation`, `trusted_min_valid`, `audit_ppm`,
//! `min_match_reputation`, `probation_slots` (defaults: `SimConfig::liars`, `Params::default()`).
//!
//! Prints the markdown table of `docs/proof-of-task.md`, and a line per run on stderr.

use exo_bench::proof_of_task::{Behaviour, SimConfig, markdown_table, matrix_with};
use exo_types::Amount;
use exo_worker::Misbehave;

fn list<T: std::str::FromStr>(text: &str) -> Vec<T> {
    text.split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

fn main() {
    let mut units = 10_000u32;
    let mut providers = 100u32;
    let mut seed = 1u64;
    let mut shares = vec![0.1, 0.3];
    let mut trusts: Vec<u8> = vec![1, 2, 3];
    let mut kinds = vec![
        Behaviour::Worker(Misbehave::WrongResult),
        Behaviour::IndependentLiar,
    ];
    let mut tweaks: Vec<(String, u64)> = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some((name, value)) = arg.split_once('=') else {
            eprintln!("ignoring {arg:?}: expected name=value");
            continue;
        };
        match name {
            "units" => units = value.parse().unwrap_or(units),
            "providers" => providers = value.parse().unwrap_or(providers),
            "seed" => seed = value.parse().unwrap_or(seed),
            "shares" => shares = list::<f64>(value).iter().map(|p| p / 100.0).collect(),
            "trusts" => trusts = list(value),
            "kinds" => {
                kinds = value
                    .split(',')
                    .filter_map(|k| match k {
                        "independent-liar" => Some(Behaviour::IndependentLiar),
                        other => Misbehave::parse(other).map(Behaviour::Worker),
                    })
                    .collect()
            }
            _ => match value.parse() {
                Ok(v) => tweaks.push((name.to_string(), v)),
                Err(_) => eprintln!("ignoring {arg:?}: not a number"),
            },
        }
    }
    let tweak = move |cfg: &mut SimConfig| {
        for (name, value) in &tweaks {
            let v = *value;
            let small = u32::try_from(v).unwrap_or(u32::MAX);
            match name.as_str() {
                "min_reputation" => cfg.min_reputation = small,
                "offer_lifetime_secs" => cfg.offer_lifetime_secs = v,
                "bond" => cfg.bond = Amount::from_exo(v),
                "trusted_reputation" => cfg.params.market.trusted_reputation = small,
                "trusted_min_valid" => cfg.params.market.trusted_min_valid = v,
                "audit_ppm" => cfg.params.market.audit_ppm = small,
                "min_match_reputation" => cfg.params.market.min_match_reputation = small,
                "probation_slots" => cfg.params.market.probation_slots = small,
                "probation_results" => cfg.params.market.probation_results = v,
                other => eprintln!("unknown parameter {other}"),
            }
        }
    };
    let start = std::time::Instant::now();
    let rows = matrix_with(providers, units, &kinds, &shares, &trusts, seed, &tweak);
    print!("{}", markdown_table(&rows));
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
