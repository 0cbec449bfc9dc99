//! Measures what the sandbox's fuel rates for host work should be: how much fuel guest compute
//! burns per nanosecond, and how many nanoseconds a WASI call and each byte it moves cost the
//! host. `cargo run --release -p exo-exec --example io_fuel -- [repeats]`; the results and the
//! rates chosen from them are in docs/exec-determinism.md.

use exo_exec::{Outcome, Sandbox, SandboxConfig, UnitSpec};

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $pread (param i32 i32 i32 i64 i32) (result i32)))
"#;

/// A guest that makes `calls` calls of `op` (`$pwrite` or `$pread`) moving `size` bytes each, at
/// offset 0 of /out/f (written once to `size` bytes first).
fn io_guest(op: &str, size: u32, calls: u32) -> Vec<u8> {
    let pages = size / 65536 + 2;
    let src = format!(
        r#"(module {IMPORTS}
  (memory (export "memory") {pages})
  (data (i32.const 100) "f")
  (func (export "_start")
    (local $fd i32) (local $i i32)
    (drop (call $open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 1)
      (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 20)))
    (local.set $fd (i32.load (i32.const 20)))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const {size}))
    (drop (call $pwrite (local.get $fd) (i32.const 0) (i32.const 1) (i64.const 0) (i32.const 8)))
    (loop $l
      (drop (call {op} (local.get $fd) (i32.const 0) (i32.const 1) (i64.const 0) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {calls}))))))"#
    );
    wat::parse_str(src).expect("wat")
}

/// Integer work with no host calls: a multiply-add chain.
fn compute_guest(iterations: u32) -> Vec<u8> {
    let src = format!(
        r#"(module (memory (export "memory") 1)
  (func (export "_start")
    (local $i i32) (local $x i64)
    (local.set $x (i64.const 1))
    (loop $l
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (i64.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {iterations}))))
    (i64.store (i32.const 0) (local.get $x))))"#
    );
    wat::parse_str(src).expect("wat")
}

/// Best-of-`repeats` wall time (ns) and the fuel of one run.
fn measure(sandbox: &Sandbox, spec: &UnitSpec<'_>, repeats: usize) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut fuel = 0;
    for _ in 0..repeats {
        let r = sandbox.run(spec).expect("run");
        assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.outcome);
        best = best.min(r.wall_time_us as f64 * 1000.0);
        fuel = r.fuel_used;
    }
    (best, fuel)
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::new(SandboxConfig::new(dir.path().join("cache"))).expect("sandbox");
    let spec = |wasm: &'static [u8]| {
        UnitSpec::wasm(wasm)
            .fuel(u64::MAX / 4)
            .timeout_ms(600_000)
            .max_output(64 << 20)
    };

    let compute = Box::leak(compute_guest(50_000_000).into_boxed_slice());
    let (ns, fuel) = measure(&sandbox, &spec(compute), repeats);
    let fuel_per_ns = fuel as f64 / ns;
    println!(
        "compute loop: {fuel} fuel in {:.1} ms: {fuel_per_ns:.2} fuel/ns",
        ns / 1e6
    );
    let scene = exo_apps::render::studio_scene().expect("the studio scene compiles");
    let render = UnitSpec::wasm(exo_apps::RENDER_WASM)
        .args(["96", "72", "0", "0", "96", "72", "8", "0"])
        .input(exo_apps::render::SCENE_INPUT, &scene.canonical)
        .fuel(u64::MAX / 4)
        .timeout_ms(600_000);
    let (rns, rfuel) = measure(&sandbox, &render, repeats);
    println!(
        "render app: {rfuel} fuel in {:.1} ms: {:.2} fuel/ns",
        rns / 1e6,
        rfuel as f64 / rns
    );

    println!("op      size  calls  ns/call  host fuel/call charged");
    for op in ["$pwrite", "$pread"] {
        for (size, calls) in [
            (0u32, 200_000u32),
            (64, 200_000),
            (4096, 100_000),
            (65536, 20_000),
            (1 << 20, 1_000),
        ] {
            let wasm = Box::leak(io_guest(op, size, calls).into_boxed_slice());
            let (ns, fuel) = measure(&sandbox, &spec(wasm), repeats);
            let per_call = ns / f64::from(calls);
            println!(
                "{op:8} {size:>7} {calls:>6} {per_call:>8.1} {:>10.0} {:>10}",
                per_call * fuel_per_ns,
                exo_exec::HOST_CALL_FUEL + exo_exec::io_fuel(u64::from(size)),
            );
            let _ = fuel;
        }
    }
}
