//! `exo bench`: measurements of this machine against the project's goals.

use crate::{
    CliError, GlobalArgs, Report,
    args::{BenchChainArgs, BenchCommand},
    other,
};
use exo_node::bench::{self, ChainBenchOptions, DevnetMemoryOptions};
use serde_json::json;

/// Finalized transfers per second the chain should reach.
pub const GOAL_TX_PER_SEC: f64 = 5_000.0;
/// Median finality latency the chain should stay under, in milliseconds.
pub const GOAL_FINALITY_P50_MS: f64 = 300.0;
/// Memory a 4-validator devnet should stay under, in MiB.
pub const GOAL_DEVNET_MIB: f64 = 1_024.0;

pub fn run(command: BenchCommand, _global: &GlobalArgs) -> Result<Report, CliError> {
    match command {
        BenchCommand::Chain(args) => chain(&args),
    }
}

/// `exo bench chain`: progress goes to standard error, the figures to standard output.
pub fn chain(args: &BenchChainArgs) -> Result<Report, CliError> {
    let progress = |message: &str| eprintln!("bench: {message}");
    let mut report = bench::chain(
        &ChainBenchOptions {
            validators: args.validators,
            txs: args.txs,
            latency_txs: args.latency_txs,
            ..ChainBenchOptions::default()
        },
        progress,
    )
    .map_err(other)?;
    let devnet = if args.no_devnet {
        None
    } else {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Other(format!("cannot find the exo binary: {e}")))?;
        let memory = bench::devnet_memory(
            &exe,
            &DevnetMemoryOptions {
                validators: args.validators,
                ..DevnetMemoryOptions::default()
            },
            progress,
        )
        .map_err(other)?;
        report.devnet_peak_rss_mib = Some(memory.total_mib);
        Some(memory)
    };
    let mut json = serde_json::to_value(&report).map_err(other)?;
    json["devnet"] = json!(devnet);
    json["goals"] = json!({
        "tx_per_sec": GOAL_TX_PER_SEC,
        "finality_p50_ms": GOAL_FINALITY_P50_MS,
        "devnet_peak_rss_mib": GOAL_DEVNET_MIB,
    });
    let mut text = format!(
        "chain of {} validators, {} transfers in {} blocks ({:.0} per block, {:.0} ms apart)\n\
         throughput         {:>10.0} tx/s    goal >= {GOAL_TX_PER_SEC:.0} ({:.2}x)\n\
         finality p50       {:>10.1} ms      goal <= {GOAL_FINALITY_P50_MS:.0}\n\
         finality p99       {:>10.1} ms\n\
         verify ceiling     {:>10.0} sig/s   (one core, batches of 1,000)\n\
         in-process peak    {:>10.0} MiB     (all validators in the benchmark process)",
        report.validators,
        report.txs,
        report.blocks,
        report.mean_block_txs,
        report.block_interval_ms,
        report.tx_per_sec,
        report.tx_per_sec / GOAL_TX_PER_SEC,
        report.finality_p50_ms,
        report.finality_p99_ms,
        report.verify_ceiling_per_sec,
        report.peak_rss_mib,
    );
    if let Some(memory) = &devnet {
        text.push_str(&format!(
            "\ndevnet peak        {:>10.0} MiB     goal < {GOAL_DEVNET_MIB:.0} ({} processes, {} transfers)",
            memory.total_mib, memory.validators, memory.transfers
        ));
    }
    Ok(Report::ok(text, json))
}
