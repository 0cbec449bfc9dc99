//! The soak (`exo bench soak`) run short: every attack gets answers, none of them 5xx, and every
//! check passes. Ignored by default (about 100 s, most of it waiting for the unmatchable jobs
//! to expire); run it with `cargo test -p exo-bench --test soak -- --ignored`.

#![allow(clippy::unwrap_used)]

use exo_bench::soak::{ATTACKS, SoakOptions, run};
use std::time::Duration;

#[test]
#[ignore = "a two-minute devnet run; the full soak is `exo bench soak`"]
fn a_short_soak_passes_every_check_under_every_attack() {
    let base = 41_000 + (std::process::id() % 400) as u16 * 20;
    let options = SoakOptions {
        duration: Duration::from_secs(20),
        api_port: base,
        p2p_port: base + 10,
        ..SoakOptions::default()
    };
    let report = run(&options, |m| eprintln!("soak: {m}")).expect("the soak runs");
    let text = format!("{report:#?}");
    println!("{text}");
    assert!(report.failures.is_empty(), "{text}");
    for attack in ATTACKS {
        let answers = report.attacks.get(attack);
        assert!(
            answers.is_some_and(|a| a.values().sum::<u64>() > 0),
            "{attack} sent nothing: {text}"
        );
    }
    // Every malformed request was refused.
    let malformed = &report.attacks["malformed"];
    assert!(
        malformed
            .keys()
            .all(|label| label.starts_with('4') || label == "connection closed"),
        "{text}"
    );
    assert!(report.transfers > 0 && report.transfers == report.transfers_finalized);
    assert!(report.honest_jobs > 0 && report.outputs_downloaded == 2 * report.honest_jobs);
    assert_eq!(report.gapped_executed, 0);
    assert_eq!(report.supply, report.held);
}
