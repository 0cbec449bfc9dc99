//! `exo bench`: measurements of this machine against the project's goals.
//!
//! The harnesses (running a workload, timing it, building a report) are `exo-bench`'s; this
//! module turns the arguments into their options and their reports into text and JSON, beside
//! the goals they are held to.

use crate::{
    CliError, GlobalArgs, Report,
    args::{BenchChainArgs, BenchCommand, BenchSoakArgs, BenchTasksArgs},
    other,
};
use exo_bench::chain::{ChainBenchOptions, DevnetMemoryOptions};
use exo_bench::soak::{SoakOptions, SoakReport};
use exo_bench::tasks::{PhaseFigures, TaskApp, TasksBenchOptions, TasksBenchReport};
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
        BenchCommand::Market => market(),
        BenchCommand::Exec => exec(),
        BenchCommand::Tasks(args) => tasks(&args),
        BenchCommand::Soak(args) => soak(&args),
    }
}

/// Orders per second the batch matcher should reach on one core.
pub const GOAL_ORDERS_PER_SEC: f64 = 1_000_000.0;
/// An HTCondor ClassAd match measured through its Python bindings, in nanoseconds.
pub const CLASSAD_MATCH_NS: f64 = 25_000.0;
/// Wasm-to-native ratio the sandbox should stay under with fuel metering on.
pub const GOAL_SLOWDOWN: f64 = 1.4;
/// Latency of running a tiny module the sandbox should stay under, in microseconds.
pub const GOAL_INSTANTIATE_US: f64 = 10.0;

/// `exo bench market`.
pub fn market() -> Result<Report, CliError> {
    eprintln!("bench: matching synthetic books of 10k, 100k and 1M resting offers");
    let report = exo_bench::market::run(&[10_000, 100_000, 1_000_000]);
    let mut text = String::new();
    for (size, rate) in &report.orders_per_sec {
        text.push_str(&format!(
            "{size:>9} resting orders  {rate:>12.0} orders/s   goal >= {GOAL_ORDERS_PER_SEC:.0} ({:.2}x)\n",
            rate / GOAL_ORDERS_PER_SEC
        ));
    }
    text.push_str(&format!(
        "constraint check  {:>8.1} ns   ({:.0}x cheaper than a {CLASSAD_MATCH_NS:.0} ns ClassAd match)",
        report.check_ns,
        CLASSAD_MATCH_NS / report.check_ns
    ));
    let orders: serde_json::Map<String, serde_json::Value> = report
        .orders_per_sec
        .iter()
        .map(|(size, rate)| (size.to_string(), json!(rate)))
        .collect();
    Ok(Report::ok(
        text,
        json!({ "orders_per_sec": orders, "check_ns": report.check_ns }),
    ))
}

/// `exo bench exec`.
pub fn exec() -> Result<Report, CliError> {
    let cache = tempfile::tempdir().map_err(other)?;
    eprintln!("bench: native and sandboxed kernels, and a tiny module");
    let report =
        exo_bench::exec::run(&exo_bench::exec::BenchConfig::new(cache.path())).map_err(other)?;
    let mut text = format!(
        "slowdown (worst kernel, fuel on)  {:>6.2}x   goal <= {GOAL_SLOWDOWN}\n         tiny module, end to end          {:>6.1} us  goal <= {GOAL_INSTANTIATE_US}",
        report.slowdown, report.instantiate_us
    );
    for k in &report.kernels {
        let ratio = |m: &Option<exo_bench::exec::ModeFigures>| {
            m.as_ref()
                .map_or(0.0, |m| m.wasm_us as f64 / k.native_us.max(1) as f64)
        };
        text.push_str(&format!(
            "\n         {:<10} NaN canonicalised where observed {:.2}x, after every float op {:.2}x, never {:.2}x native",
            k.name,
            k.slowdown,
            ratio(&k.always),
            ratio(&k.off)
        ));
    }
    Ok(Report::ok(
        text,
        json!({ "slowdown": report.slowdown, "instantiate_us": report.instantiate_us }),
    ))
}

/// `exo bench chain`: progress goes to standard error, the figures to standard output.
pub fn chain(args: &BenchChainArgs) -> Result<Report, CliError> {
    let progress = |message: &str| eprintln!("bench: {message}");
    let mut report = exo_bench::chain::chain(
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
        let memory = exo_bench::chain::devnet_memory(
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

/// Accepted units per second the market should reach with tiny units.
pub const GOAL_UNITS_PER_SEC: f64 = 1_000.0;
/// Jobs per second one BOINC server dispatches, for comparison.
pub const BOINC_JOBS_PER_SEC: f64 = 100.0;

/// `exo bench tasks`: progress goes to standard error, the figures to standard output.
pub fn tasks(args: &BenchTasksArgs) -> Result<Report, CliError> {
    let app = TaskApp::parse(&args.app)
        .ok_or_else(|| CliError::Invalid(format!("unknown app {:?}", args.app)))?;
    let options = TasksBenchOptions {
        units: args.units,
        job_units: args.job_units,
        latency_jobs: args.latency_jobs,
        latency_interval: std::time::Duration::from_millis(args.latency_interval_ms),
        run_slots: args.run_slots,
        offer_slots: args.offer_slots,
        min_block_ms: args.min_block_ms,
        app,
        ..TasksBenchOptions::default()
    };
    if std::env::var_os("RUST_LOG").is_some() {
        exo_node::init_logging();
    }
    let report = exo_bench::tasks::run(&options, |m| eprintln!("bench: {m}")).map_err(other)?;
    let mut json = serde_json::to_value(&report).map_err(other)?;
    json["goals"] = json!({
        "units_per_sec": GOAL_UNITS_PER_SEC,
        "dispatch_blocks": 0,
        "boinc_jobs_per_sec": BOINC_JOBS_PER_SEC,
    });
    Ok(Report::ok(tasks_text(&report), json))
}

/// The human form of a tasks report: the figures against the goals, then where the time went.
pub fn tasks_text(r: &TasksBenchReport) -> String {
    let (l, t) = (&r.latency, &r.throughput);
    let stages = |p: &PhaseFigures| {
        let s = &p.stages;
        format!(
            "included {:.0} ms | assigned {:+.0} ms ({:.0} blocks) | ran {:+.0} ms | \
             committed {:+.0} ms ({:.0} blocks) | accepted {:+.0} ms ({:.0} blocks)",
            s.included_ms,
            s.assigned_ms,
            s.assigned_blocks,
            s.ran_ms,
            s.committed_ms,
            s.committed_blocks,
            s.accepted_ms,
            s.accepted_blocks
        )
    };
    format!(
        "tasks: {} validators ({} ms minimum block interval), {} providers ({} run slots, \
         {} offered slots each), app {}, \
         trust {} (one replica per unit; {} of {} units drew a hidden audit replica)\n\
         machine: {} cores, {}\n\
         throughput       {:>8.0} units/s  goal >= {GOAL_UNITS_PER_SEC:.0} ({:.2}x; one BOINC server: \
         about {BOINC_JOBS_PER_SEC:.0} jobs/s)\n\
         \x20                 {} units in {} jobs accepted in {:.1} s, {} blocks ({:.0} ms apart), \
         {:.0} results per commit/reveal tx\n\
         overhead p50     {:>8.0} ms       submit to accepted minus execution, light load \
         ({} single-unit jobs; p90 {:.0} ms)\n\
         dispatch p50     {:>8.0} blocks   after the block that carried the job, {:.0} ms after submission; \
         {:.0}% in that very block (goal: within one block; HTCondor negotiates every 5-60 s)\n\
         execution p50    {:>8.0} us       in the sandbox ({:.0} us handled by the worker)\n\
         light load, medians:  {}\n\
         under load, medians:  {}\n\
         under load: overhead p50 {:.0} ms, dispatch p50 {:.0} ms ({:.0} blocks; units wait for free slots){}",
        r.validators,
        r.min_block_ms,
        r.providers,
        r.run_slots,
        r.offer_slots,
        r.app.name(),
        r.trust,
        t.audited_units,
        t.units,
        r.cores,
        r.cpu_model,
        r.units_per_sec,
        r.units_per_sec / GOAL_UNITS_PER_SEC,
        t.accepted_units,
        t.jobs,
        t.window_ms / 1e3,
        t.blocks,
        t.block_interval_ms,
        t.results_per_tx,
        r.overhead_p50_ms,
        l.jobs,
        r.overhead_p90_ms,
        r.dispatch_blocks_p50,
        r.dispatch_p50_ms,
        l.dispatched_same_block * 100.0,
        r.exec_p50_us,
        t.handled_p50_us,
        stages(l),
        stages(t),
        t.overhead_p50_ms,
        t.dispatch_p50_ms,
        t.dispatch_blocks_p50,
        match (t.cpu_ms_per_unit, t.workers_cpu_share) {
            (Some(cpu), Some(share)) => format!(
                "\ncpu              {cpu:>8.2} ms/unit  all threads of the run, {:.0}% in the workers \
                 and requester: at most {:.0} units/s on {} cores",
                share * 100.0,
                r.cores as f64 * 1e3 / cpu,
                r.cores
            ),
            _ => String::new(),
        },
    )
}

/// `exo bench soak`: progress goes to standard error, the figures and verdicts to standard
/// output; the report is a failure (exit 3) when a check failed.
pub fn soak(args: &BenchSoakArgs) -> Result<Report, CliError> {
    let defaults = SoakOptions::default();
    let options = SoakOptions {
        duration: std::time::Duration::from_secs(args.secs),
        max_gap: std::time::Duration::from_millis(args.max_gap_ms),
        attacks: if args.no_attacks {
            Vec::new()
        } else if args.attacks.is_empty() {
            defaults.attacks.clone()
        } else {
            args.attacks.clone()
        },
        ..defaults
    };
    if std::env::var_os("RUST_LOG").is_some() {
        exo_node::init_logging();
    }
    let report = exo_bench::soak::run(&options, |m| eprintln!("bench: {m}")).map_err(other)?;
    let json = serde_json::to_value(&report).map_err(other)?;
    Ok(Report {
        text: soak_text(&report),
        json,
        success: report.failures.is_empty(),
    })
}

/// The human form of a soak report: the verdict, finality, the honest users, the attacks.
pub fn soak_text(r: &SoakReport) -> String {
    let verdict = if r.failures.is_empty() {
        "every check passed".to_string()
    } else {
        format!("FAILED:\n  {}", r.failures.join("\n  "))
    };
    let mut text = format!(
        "soak: {} s, {} validators, {} providers; machine: {} cores, {}; load average {:.1} at \
         the start, {:.1} at the end\n\
         verdict: {verdict}\n\
         finality       {} blocks ({:.1}/s), longest gap {:.0} ms, {:.1}% of seconds with a block\n\
         transfers      {} of {} finalized; submit to finalized p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n\
         honest jobs    {} ({} units accepted, {} outputs downloaded); submit to finished p50 {:.0} ms, max {:.0} ms\n\
         all jobs       {} of the soak, units {:?}\n\
         supply         {} base units, {} held in known balances and pots\n\
         gapped txs executed {}, pool filler's executed {}; final height {}\n",
        r.secs,
        r.validators,
        r.providers,
        r.cores,
        r.cpu_model,
        r.load_avg_start,
        r.load_avg_end,
        r.blocks,
        r.blocks_per_sec,
        r.max_gap_ms,
        r.seconds_with_block * 100.0,
        r.transfers_finalized,
        r.transfers,
        r.transfer_p50_ms,
        r.transfer_p99_ms,
        r.transfer_max_ms,
        r.honest_jobs,
        r.honest_units_accepted,
        r.outputs_downloaded,
        r.job_p50_ms,
        r.job_max_ms,
        r.jobs,
        r.unit_states,
        r.supply,
        r.held,
        r.gapped_executed,
        r.filler_executed,
        r.final_height,
    );
    for (attack, answers) in &r.attacks {
        text.push_str(&format!("attack {attack:<20} answers {answers:?}"));
        if let Some(receipts) = r.receipts.get(attack) {
            text.push_str(&format!(", receipts {receipts:?}"));
        }
        if let Some(cost) = r.attacker_cost.get(attack) {
            text.push_str(&format!(", cost {cost} base units"));
        }
        text.push('\n');
    }
    if !r.honest_errors.is_empty() {
        text.push_str(&format!(
            "honest errors (retried) {}, the first: {}\n",
            r.honest_error_count,
            r.honest_errors.join("; ")
        ));
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tasks_report_prints_its_figures_against_the_goals() {
        let throughput = PhaseFigures {
            units: 60,
            accepted_units: 60,
            units_per_sec: 250.0,
            cpu_ms_per_unit: Some(4.0),
            workers_cpu_share: Some(0.25),
            ..PhaseFigures::default()
        };
        let report = TasksBenchReport {
            units_per_sec: 250.0,
            overhead_p50_ms: 120.0,
            overhead_p90_ms: 180.0,
            dispatch_p50_ms: 40.0,
            dispatch_blocks_p50: 0.0,
            exec_p50_us: 100.0,
            validators: 4,
            providers: 3,
            trust: 1,
            app: TaskApp::Tiny,
            run_slots: 2,
            offer_slots: 1_024,
            min_block_ms: 200,
            scratch: "tmpfs".into(),
            cores: 2,
            cpu_model: "test cpu".into(),
            latency: PhaseFigures::default(),
            throughput,
        };
        let text = tasks_text(&report);
        assert!(text.contains("250 units/s"), "{text}");
        assert!(text.contains("goal >= 1000 (0.25x"), "{text}");
        assert!(text.contains("app tiny"), "{text}");
        assert!(text.contains("4.00 ms/unit"), "{text}");
        assert!(text.contains("at most 500 units/s on 2 cores"), "{text}");
    }
}
