//! The full proof-of-task simulation. Run in release:
//!
//! ```text
//! cargo run --release -p exo-bench --example proof_of_task [name=value ...]
//! ```
//!
//! By default, the strategic table: each strategic agent alone and all of them together
//! (`mix`), at 10% and 30% of 100 providers, trust 2, 10,000 units, seeds 1 to 10. With
//! `table=liars`, the table of liars that do not plan (`wrong-result`, `independent-liar`) at
//! trust 1, 2 and 3, one seed.
//!
//! Names: `table` (`strategic` or `liars`), `units` (10000), `providers` (100), `seeds`
//! (`1,2,...,10`; the liars table takes the first), `shares` (`10,30`, percent of the
//! providers), `trusts` (`2` for the strategic table, `1,2,3` for the other; the strategic
//! table takes the first), `kinds` (strategies or liars by name; the strategic table adds the
//! mix of every kind given when it has more than one), and, to try other rules, the jobs'
//! `min_reputation`, how long offers live in seconds (`offer_lifetime_secs`), the providers'
//! `bond` in EXO, the farming job size `farm_units`, `compute_cost_bps`, `established` (1: the
//! honest providers are trusted before the operator's register; 0: every provider starts
//! new), `operator_trusted` (1: the operator's providers serve honestly in the warm-up too,
//! and are trusted when the counted run starts), and the ledger parameters
//! `trusted_reputation`, `trusted_min_valid`, `trusted_min_age_secs`, `audit_ppm`,
//! `min_match_reputation`, `probation_slots`, `probation_results` (defaults:
//! `SimConfig::liars`, `SimConfig::strategic`, `Params::default()`).
//!
//! Prints the markdown table of `docs/proof-of-task.md`, and a line per run on stderr.

use exo_bench::proof_of_task::{
    Behaviour, SimConfig, SimReport, markdown_table, matrix_with, strategic_matrix,
    strategic_table, strategy_rows,
};
use exo_types::Amount;
use exo_worker::Misbehave;

fn list<T: std::str::FromStr>(text: &str) -> Vec<T> {
    text.split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

fn describe(label: &str, r: &SimReport) {
    eprintln!(
        "{label}: units {}, accepted {}, bad {}, blocks {} (warm-up {} blocks, {} units, {} trusted), rejected txs {}, unfinished {}, farm units {}, genesis {} accounted {} (diff {}), supply+slashed {}: {:?}",
        r.units,
        r.accepted,
        r.bad_accepted,
        r.blocks,
        r.warmup_blocks,
        r.warmup_units,
        r.trusted_at_start,
        r.rejected_txs,
        r.unfinished,
        r.farm_units,
        r.genesis_supply,
        r.accounted,
        r.genesis_supply as i128 - r.accounted as i128,
        r.supply + r.slashed,
        r.kinds
    );
}

fn main() {
    let mut strategic = true;
    let mut units = 10_000u32;
    let mut providers = 100u32;
    let mut seeds: Vec<u64> = (1..=10).collect();
    let mut shares = vec![0.1, 0.3];
    let mut trusts: Option<Vec<u8>> = None;
    let mut kinds: Option<Vec<Behaviour>> = None;
    let mut tweaks: Vec<(String, u64)> = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some((name, value)) = arg.split_once('=') else {
            eprintln!("ignoring {arg:?}: expected name=value");
            continue;
        };
        match name {
            "table" => strategic = value != "liars",
            "units" => units = value.parse().unwrap_or(units),
            "providers" => providers = value.parse().unwrap_or(providers),
            "seed" | "seeds" => seeds = list(value),
            "shares" => shares = list::<f64>(value).iter().map(|p| p / 100.0).collect(),
            "trusts" => trusts = Some(list(value)),
            "kinds" => kinds = Some(value.split(',').filter_map(Behaviour::parse).collect()),
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
                "farm_units" => cfg.farm_units = small,
                "compute_cost_bps" => cfg.compute_cost_bps = small,
                "trusted_reputation" => cfg.params.market.trusted_reputation = small,
                "trusted_min_valid" => cfg.params.market.trusted_min_valid = v,
                "trusted_min_age_secs" => cfg.params.market.trusted_min_age_secs = v,
                "established" => cfg.established = v != 0,
                "operator_trusted" => cfg.operator_trusted = v != 0,
                "audit_ppm" => cfg.params.market.audit_ppm = small,
                "min_match_reputation" => cfg.params.market.min_match_reputation = small,
                "probation_slots" => cfg.params.market.probation_slots = small,
                "probation_results" => cfg.params.market.probation_results = v,
                other => eprintln!("unknown parameter {other}"),
            }
        }
    };
    let start = std::time::Instant::now();
    let runs = if strategic {
        let rows = match kinds {
            None => strategy_rows(),
            Some(kinds) => {
                let mut rows: Vec<(String, Vec<Behaviour>)> = kinds
                    .iter()
                    .map(|k| (k.name().to_string(), vec![*k]))
                    .collect();
                if kinds.len() > 1 {
                    rows.push(("mix".to_string(), kinds));
                }
                rows
            }
        };
        let trust = trusts.and_then(|t| t.first().copied()).unwrap_or(2);
        let rows = strategic_matrix(providers, units, &rows, &shares, trust, &seeds, &tweak);
        print!("{}", strategic_table(&rows));
        for row in &rows {
            for (seed, r) in seeds.iter().zip(&row.reports) {
                let label = format!("{} {:.0}% seed {seed}", row.name, row.share * 100.0);
                describe(&label, r);
            }
        }
        rows.iter().map(|r| r.reports.len()).sum::<usize>()
    } else {
        let kinds = kinds.unwrap_or_else(|| {
            vec![
                Behaviour::Worker(Misbehave::WrongResult),
                Behaviour::IndependentLiar,
            ]
        });
        let trusts = trusts.unwrap_or_else(|| vec![1, 2, 3]);
        let seed = seeds.first().copied().unwrap_or(1);
        let rows = matrix_with(providers, units, &kinds, &shares, &trusts, seed, &tweak);
        print!("{}", markdown_table(&rows));
        for row in &rows {
            let label = format!(
                "{} {:.0}% trust {}",
                row.liar.name(),
                row.liars * 100.0,
                row.trust
            );
            describe(&label, &row.report);
        }
        rows.len()
    };
    eprintln!("{runs} runs in {:.1} s", start.elapsed().as_secs_f64());
}
