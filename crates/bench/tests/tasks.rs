//! The tasks benchmark (`exo bench tasks`) runs end to end on a small load: validators, workers and requester all
//! real, and the report's figures hang together.

#![allow(clippy::unwrap_used)]

use exo_bench::tasks::{TasksBenchOptions, run};
use std::{net::TcpListener, time::Duration};

/// A base port with `base..base + 4` free for the APIs and `base + 10..base + 14` for p2p.
fn free_ports() -> u16 {
    let mut base = 40_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let free = (0..4).all(|i| {
            TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", base + 10 + i)).is_ok()
        });
        if free {
            return base;
        }
        base = 40_000 + (base - 40_000 + 20) % 10_000;
    }
}

#[test]
fn tasks_bench_accepts_units_and_reports_sane_figures() {
    let base = free_ports();
    let options = TasksBenchOptions {
        units: 60,
        job_units: 30,
        latency_jobs: 3,
        latency_interval: Duration::from_millis(200),
        api_port: base,
        p2p_port: base + 10,
        phase_timeout: Duration::from_secs(120),
        ..TasksBenchOptions::default()
    };
    let report = run(&options, |_| {}).expect("the benchmark runs");
    // The report's printed form is the CLI's (`exo_cli::bench::tasks_text`); its fields do here.
    let text = format!("{report:#?}");
    println!("{text}");
    let t = &report.throughput;
    assert_eq!((t.jobs, t.units, t.accepted_units), (2, 60, 60), "{text}");
    assert_eq!(
        t.timed_units, 60,
        "every accepted unit has a timeline: {text}"
    );
    assert_eq!(report.latency.accepted_units, 3, "{text}");
    assert!(report.units_per_sec > 0.0 && report.units_per_sec.is_finite());
    assert_eq!(report.units_per_sec, t.units_per_sec);
    // Acceptance needs at least the job's block, a commitment and a reveal after it.
    assert!(
        t.stages.committed_blocks >= 1.0 && t.stages.accepted_blocks >= 1.0,
        "{text}"
    );
    for phase in [&report.latency, t] {
        assert!(phase.overhead_p50_ms > 0.0, "{text}");
        assert!(phase.overhead_p50_ms < phase.accepted_p50_ms, "{text}");
        assert!(phase.overhead_p50_ms <= phase.overhead_p90_ms, "{text}");
        assert!(phase.accepted_p50_ms < 120_000.0, "{text}");
        assert!(phase.dispatch_p50_ms > 0.0, "{text}");
        assert!(phase.dispatch_p50_ms < phase.accepted_p50_ms, "{text}");
        assert!(phase.exec_p50_us > 0.0 && phase.exec_p50_us <= phase.handled_p50_us);
        assert!(phase.commit_txs > 0 && phase.reveal_txs > 0, "{text}");
    }
    assert_eq!(report.overhead_p50_ms, report.latency.overhead_p50_ms);
    if cfg!(target_os = "linux") {
        assert!(t.cpu_ms_per_unit.is_some_and(|c| c > 0.0), "{text}");
        assert!(
            t.workers_cpu_share.is_some_and(|s| s > 0.0 && s < 1.0),
            "{text}"
        );
    }
    assert_eq!(
        (report.validators, report.providers, report.trust),
        (4, 3, 1)
    );
    assert!(report.cores >= 1);
    let json = serde_json::to_value(&report).unwrap();
    for key in ["units_per_sec", "overhead_p50_ms", "dispatch_blocks_p50"] {
        assert!(json[key].is_number(), "{key} in {json}");
    }
}
