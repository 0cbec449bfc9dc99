//! The chain benchmark runs end to end on a small load.

#[test]
fn chain_bench_runs_on_a_small_load() {
    let report = exo_bench::chain::chain(
        &exo_bench::chain::ChainBenchOptions {
            validators: 4,
            txs: 2_000,
            latency_txs: 20,
            api_port: 48_080,
            p2p_port: 49_000,
        },
        |_| {},
    )
    .expect("benchmark runs");
    assert_eq!(report.txs, 2_000);
    assert!(report.tx_per_sec > 0.0);
    assert!(report.finality_p50_ms.is_finite());
    assert!(report.blocks > 0);
    println!("{report:?}");
}
