//! Prints the sandbox benchmark: `cargo run --release -p exo-bench --example exec [repeats]`.

fn main() -> anyhow::Result<()> {
    let repeats = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let cfg = exo_bench::exec::BenchConfig {
        repeats,
        ..exo_bench::exec::BenchConfig::new(dir.path())
    };
    let b = exo_bench::exec::run(&cfg)?;
    println!(
        "{:<10} {:>10} {:>18} {:>18} {:>18} {:>8} {:>8}",
        "kernel",
        "native_ms",
        "observed_ms (x)",
        "always_ms (x)",
        "off_ms (x)",
        "=native",
        "=modes"
    );
    for k in &b.kernels {
        let ratio = |us: u64| us as f64 / k.native_us.max(1) as f64;
        let mode = |m: &Option<exo_bench::exec::ModeFigures>| match m {
            Some(m) => format!("{:.1} ({:.2})", m.wasm_us as f64 / 1e3, ratio(m.wasm_us)),
            None => "-".into(),
        };
        let same = [&k.always, &k.off]
            .iter()
            .all(|m| m.as_ref().is_none_or(|m| m.same_output));
        println!(
            "{:<10} {:>10.1} {:>18} {:>18} {:>18} {:>8} {:>8}",
            k.name,
            k.native_us as f64 / 1e3,
            format!("{:.1} ({:.2})", k.wasm_us as f64 / 1e3, k.slowdown),
            mode(&k.always),
            mode(&k.off),
            k.same_output_as_native,
            same,
        );
    }
    for k in &b.kernels {
        let fuel = |m: &Option<exo_bench::exec::ModeFigures>| m.as_ref().map(|m| m.fuel);
        println!(
            "{}: fuel observed {}, always {:?}, off {:?}",
            k.name,
            k.fuel,
            fuel(&k.always),
            fuel(&k.off)
        );
    }
    println!(
        "slowdown (worst kernel, fuel + epochs + NaN canonicalisation where observed): {:.2}x",
        b.slowdown
    );
    println!(
        "tiny module run end to end: {:.1} us; hello app: {:.1} us",
        b.instantiate_us, b.hello_us
    );
    println!(
        "render.wasm compile: {:.1} ms; load from disk cache: {:.2} ms",
        b.compile_ms, b.cache_load_ms
    );
    Ok(())
}
