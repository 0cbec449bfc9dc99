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
        "{:<10} {:>11} {:>11} {:>8} {:>14} {:>8} {:>14} {:>10} {:>10}",
        "kernel",
        "native_ms",
        "wasm_ms",
        "ratio",
        "no_canon_ms",
        "ratio",
        "fuel",
        "=native",
        "=nocanon"
    );
    for k in &b.kernels {
        let nc = k.wasm_no_canon_us.unwrap_or(0);
        println!(
            "{:<10} {:>11.1} {:>11.1} {:>8.2} {:>14.1} {:>8.2} {:>14} {:>10} {:>10?}",
            k.name,
            k.native_us as f64 / 1e3,
            k.wasm_us as f64 / 1e3,
            k.slowdown,
            nc as f64 / 1e3,
            nc as f64 / k.native_us.max(1) as f64,
            k.fuel,
            k.same_output_as_native,
            k.same_output_without_canon,
        );
    }
    for k in &b.kernels {
        println!(
            "{}: fuel with canonicalisation {}, without {:?}",
            k.name, k.fuel, k.fuel_without_canon
        );
    }
    println!(
        "slowdown (worst kernel, fuel + epochs + NaN canonicalisation): {:.2}x",
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
