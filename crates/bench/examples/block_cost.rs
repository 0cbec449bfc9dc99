//! What one block costs the ledger at the market's per-block bounds (audit M1). Run in release:
//!
//! ```text
//! cargo run --release -p exo-bench --example block_cost [providers=1024] [slots=4] [units=40000] [runs=3]
//! ```
//!
//! An honest market in the proof-of-task simulation, saturated: `providers` providers with
//! `slots` slots each (1,024 x 4 fills a block's `max_assignments_per_block`, 4,096), jobs of
//! 1,000 units at trust 2, results committed and revealed in batches of 64 as workers send
//! them. Every block is executed by the in-memory ledger (the same block runner the chain
//! uses, without the chain's storage and signature checks) and timed. Prints, per run, the
//! blocks, the median, 99th percentile and largest execution time, the transactions of the
//! largest block, and the most store rounds a block needed.

use exo_bench::proof_of_task::{Behaviour, BlockCost, SimConfig, run};

fn main() {
    let mut providers = 1_024u32;
    let mut slots = 4u32;
    let mut units = 40_000u32;
    let mut runs = 3u32;
    for arg in std::env::args().skip(1) {
        let Some((name, value)) = arg.split_once('=') else {
            eprintln!("ignored (not name=value): {arg}");
            continue;
        };
        let Ok(value) = value.parse::<u32>() else {
            eprintln!("ignored (not a number): {arg}");
            continue;
        };
        match name {
            "providers" => providers = value.max(2),
            "slots" => slots = value.max(1),
            "units" => units = value.max(1),
            "runs" => runs = value.max(1),
            _ => eprintln!("ignored (unknown name): {arg}"),
        }
    }
    let mut cfg = SimConfig::liars(providers, 0.0, Behaviour::IndependentLiar, units, 2);
    cfg.units_per_job = 1_000.min(units);
    cfg.jobs = units.div_ceil(cfg.units_per_job);
    cfg.slots = slots;
    cfg.reveal_batch = 64;
    println!(
        "| run | blocks | accepted | median | p99 | largest | txs in the largest | most store rounds |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for i in 1..=runs {
        let r = run(&cfg);
        assert!(r.conserved(), "tokens not conserved: {r:?}");
        let mut times: Vec<u64> = r.block_costs.iter().map(|c| c.micros).collect();
        times.sort_unstable();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        let largest = r
            .block_costs
            .iter()
            .max_by_key(|c| c.micros)
            .copied()
            .unwrap_or_default();
        let rounds = r.block_costs.iter().map(|c| c.store_rounds).max();
        let BlockCost { txs, .. } = largest;
        println!(
            "| {i} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {txs} | {} |",
            r.blocks,
            r.accepted,
            at(0.5) as f64 / 1e3,
            at(0.99) as f64 / 1e3,
            largest.micros as f64 / 1e3,
            rounds.unwrap_or(0),
        );
    }
}
