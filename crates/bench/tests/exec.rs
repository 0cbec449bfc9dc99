//! The sandbox benchmark runs on small sizes, and what it compares agrees.

#[test]
fn exec_bench_runs_on_small_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let b = exo_bench::exec::run(&exo_bench::exec::BenchConfig::quick(dir.path())).unwrap();
    assert_eq!(b.kernels.len(), 2);
    assert!(b.slowdown > 0.0 && b.instantiate_us > 0.0);
    for k in &b.kernels {
        assert!(k.fuel > 0, "{k:?}");
        // Neither kernel looks at NaN bits, so canonicalisation must not change its output.
        assert_eq!(k.same_output_without_canon, Some(true), "{k:?}");
        assert_eq!(k.fuel_without_canon, Some(k.fuel), "{k:?}");
    }
}
