//! The sandbox benchmark runs on small sizes, and what it compares agrees.

#[test]
fn exec_bench_runs_on_small_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let b = exo_bench::exec::run(&exo_bench::exec::BenchConfig::quick(dir.path())).unwrap();
    assert_eq!(b.kernels.len(), 2);
    assert!(b.slowdown > 0.0 && b.instantiate_us > 0.0);
    for k in &b.kernels {
        assert!(k.fuel > 0, "{k:?}");
        // Neither kernel looks at NaN bits, so no NaN mode may change its output.
        let (always, off) = (k.always.clone().unwrap(), k.off.clone().unwrap());
        assert!(always.same_output && off.same_output, "{k:?}");
        // Fuel counts wasm operators: Cranelift's canonicalisation adds none, the rewrite adds
        // the canonicalisation sequences it inserts.
        assert_eq!(always.fuel, off.fuel, "{k:?}");
        assert!(k.fuel >= off.fuel, "{k:?}");
    }
}
