//! Sandbox behaviour against hostile and honest guests: WAT modules written inline and the Rust
//! task apps' wasm. Workloads are small on purpose.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use exo_exec::{
    ExecError, ModuleSource, Outcome, OutputStream, Sandbox, SandboxConfig, TrapCode, UnitSpec,
};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tempfile::TempDir;

struct Env {
    sandbox: Sandbox,
}

fn config(dir: &TempDir) -> SandboxConfig {
    SandboxConfig {
        max_concurrent_units: 4,
        ..SandboxConfig::new(dir.path().join("cache"))
    }
}

/// One sandbox for most tests, so that each module is compiled once per test binary (the
/// compiler is slow in debug builds); its cache lives under the target directory and survives
/// between runs.
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exo-exec-tests");
        let sandbox = Sandbox::new(SandboxConfig {
            max_concurrent_units: 16,
            ..SandboxConfig::new(dir.join("cache"))
        })
        .expect("sandbox");
        Env { sandbox }
    })
}

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("valid wat")
}

const LOOP: &str = r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#;

#[test]
fn endless_loop_runs_out_of_fuel() {
    let e = env();
    let wasm = wat(LOOP);
    let r = e
        .sandbox
        .run(&UnitSpec::wasm(&wasm).fuel(1_000_000))
        .unwrap();
    assert_eq!(r.outcome, Outcome::OutOfFuel);
    assert_eq!(r.fuel_used, 1_000_000, "the whole budget is billed");
}

#[test]
fn endless_loop_times_out_and_bills_the_budget() {
    let e = env();
    let wasm = wat(LOOP);
    let t = Instant::now();
    let r = e
        .sandbox
        .run(&UnitSpec::wasm(&wasm).fuel(u64::MAX / 2).timeout_ms(200))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Timeout);
    assert!(!r.outcome.is_attestable());
    // The worker reports it as "could not finish", claiming the budget.
    assert_eq!(r.outcome.unfinished(), Some(exo_types::Unfinished::Timeout));
    assert_eq!(r.fuel_used, u64::MAX / 2);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn sleeping_guest_cannot_outlast_its_deadline() {
    let e = env();
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::PROBE_WASM)
                .args(["sleep", "30000"])
                .timeout_ms(2_000),
        )
        .unwrap();
    // poll_oneoff returns at once: the sleep ends immediately and deterministically.
    assert_eq!(
        r.outcome,
        Outcome::Ok,
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(r.stdout, b"woke\n");
    assert!(r.wall_time_us < 2_000_000, "took {} us", r.wall_time_us);
}

#[test]
fn growing_memory_without_end_is_out_of_memory() {
    let e = env();
    let wasm = wat(r#"(module (memory (export "memory") 1)
        (func (export "_start")
          (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
          unreachable))"#);
    let limit = 8u64 << 20;
    let r = e.sandbox.run(&UnitSpec::wasm(&wasm).memory(limit)).unwrap();
    assert_eq!(r.outcome, Outcome::OutOfMemory);
    assert_eq!(r.peak_memory_bytes, limit);

    // A Rust guest aborts when an allocation fails; the limiter's record says why.
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::PROBE_WASM)
                .arg("membomb")
                .memory(32 << 20),
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::OutOfMemory);
    assert!(r.peak_memory_bytes <= 32 << 20);
}

#[test]
fn initial_memory_over_the_limit_is_out_of_memory() {
    let e = env();
    let wasm = wat(r#"(module (memory (export "memory") 200) (func (export "_start")))"#);
    let r = e
        .sandbox
        .run(&UnitSpec::wasm(&wasm).memory(4 << 20))
        .unwrap();
    assert_eq!(r.outcome, Outcome::OutOfMemory);
}

#[test]
fn filesystem_escapes_and_sockets_are_refused() {
    let e = env();
    let data = b"input data";
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::PROBE_WASM)
                .arg("escape")
                .input("data", data),
        )
        .unwrap();
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.outcome, Outcome::Ok, "{out}");
    assert_eq!(out.lines().count(), 15, "{out}");
    assert!(!out.contains("ALLOWED"), "{out}");
    // The only file the guest could create is its own /out/ok.txt.
    assert_eq!(r.outputs.len(), 1);
    assert_eq!(r.output("ok.txt"), Some(&b"ok"[..]));
}

#[test]
fn modules_that_import_what_the_sandbox_lacks_are_invalid() {
    let e = env();
    let wasm = wat(r#"(module
        (import "wasi_snapshot_preview1" "sock_open" (func (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1) (func (export "_start")))"#);
    let r = e.sandbox.run(&UnitSpec::wasm(&wasm)).unwrap();
    assert!(
        matches!(r.outcome, Outcome::InvalidModule(_)),
        "{:?}",
        r.outcome
    );

    // sock_accept exists in preview 1 but there is no socket to accept on.
    let wasm = wat(r#"(module
        (import "wasi_snapshot_preview1" "sock_accept" (func $acc (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (if (i32.eqz (call $acc (i32.const 3) (i32.const 0) (i32.const 16))) (then (call $exit (i32.const 1))))))"#);
    let r = e.sandbox.run(&UnitSpec::wasm(&wasm)).unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
}

#[test]
fn invalid_and_nondeterministic_modules_are_rejected() {
    let e = env();
    let r = e.sandbox.run(&UnitSpec::wasm(b"\0asm garbage")).unwrap();
    assert!(matches!(r.outcome, Outcome::InvalidModule(_)));
    assert_eq!(r.fuel_used, 0);
    let relaxed = wat(r#"(module (func (export "_start")
        (drop (i32x4.relaxed_trunc_f32x4_s (v128.const f32x4 0 0 0 0)))))"#);
    assert!(matches!(
        e.sandbox.run(&UnitSpec::wasm(&relaxed)).unwrap().outcome,
        Outcome::InvalidModule(_)
    ));
    let shared = wat(r#"(module (memory (export "memory") 1 1 shared) (func (export "_start")))"#);
    assert!(matches!(
        e.sandbox.run(&UnitSpec::wasm(&shared)).unwrap().outcome,
        Outcome::InvalidModule(_)
    ));
    let no_start = wat(r#"(module (memory (export "memory") 1))"#);
    assert!(matches!(
        e.sandbox.run(&UnitSpec::wasm(&no_start)).unwrap().outcome,
        Outcome::InvalidModule(_)
    ));
    assert!(matches!(
        e.sandbox.prepare(b"nope"),
        Err(ExecError::InvalidModule(_))
    ));
}

#[test]
fn exit_codes_and_traps_are_typed() {
    let e = env();
    let exit3 = wat(
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1) (func (export "_start") (call $exit (i32.const 3))))"#,
    );
    assert_eq!(
        e.sandbox.run(&UnitSpec::wasm(&exit3)).unwrap().outcome,
        Outcome::Exit(3)
    );
    let div0 = wat(r#"(module (memory (export "memory") 1)
        (func (export "_start") (drop (i32.div_u (i32.const 1) (i32.const 0)))))"#);
    assert_eq!(
        e.sandbox.run(&UnitSpec::wasm(&div0)).unwrap().outcome,
        Outcome::Trap(TrapCode::IntegerDivisionByZero)
    );
}

#[test]
fn stdout_flood_is_output_too_large() {
    let e = env();
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::PROBE_WASM)
                .args(["stdout", "1000000"])
                .max_stdio(64 << 10),
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::OutputTooLarge(OutputStream::Stdout));
    assert!(r.stdout.len() as u64 <= (64 << 10) + 1);
}

#[test]
fn writing_too_much_to_out_is_output_too_large() {
    let e = env();
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::PROBE_WASM)
                .args(["write", "2000000"])
                .max_output(1 << 20),
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::OutputTooLarge(OutputStream::Out));
    assert!(r.outputs.is_empty());
    // Within the bound it is fine.
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::PROBE_WASM)
                .args(["write", "500000"])
                .max_output(1 << 20),
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.output("big.bin").map(<[u8]>::len), Some(500_000));
    // Run directories are reused: the next unit starts from an empty /out.
    let next = e
        .sandbox
        .run(&UnitSpec::wasm(exo_apps::HELLO_WASM))
        .unwrap();
    assert_eq!(
        next.outputs.len(),
        1,
        "{:?}",
        next.outputs.iter().map(|o| &o.path).collect::<Vec<_>>()
    );
}

#[test]
fn symlinks_cannot_be_planted_in_out() {
    let e = env();
    // path_symlink(old, old_len, dirfd = 4 (/out), new, new_len)
    let wasm = wat(r#"(module
        (import "wasi_snapshot_preview1" "path_symlink" (func $ln (param i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "../../../../../../etc/passwd")
        (data (i32.const 64) "evil")
        (func (export "_start")
          (if (call $ln (i32.const 0) (i32.const 28) (i32.const 4) (i32.const 64) (i32.const 4))
            (then (call $exit (i32.const 7))))))"#);
    let r = e.sandbox.run(&UnitSpec::wasm(&wasm)).unwrap();
    // The guest's filesystem has no links of any kind: the call fails and the guest says so.
    assert_eq!(r.outcome, Outcome::Exit(7));
    assert!(r.outputs.is_empty());
}

#[test]
fn nan_bits_are_canonical() {
    let src = r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func (export "_start")
          (if (i64.ne (i64.reinterpret_f64 (f64.div (f64.const 0) (f64.const 0))) (i64.const 0x7ff8000000000000))
            (then (call $exit (i32.const 1))))))"#;
    let e = env();
    assert_eq!(
        e.sandbox.run(&UnitSpec::wasm(&wat(src))).unwrap().outcome,
        Outcome::Ok
    );
    if cfg!(target_arch = "x86_64") {
        // Without canonicalisation x86 produces the negative default NaN: the reason for the rule.
        let dir = tempfile::tempdir().unwrap();
        let raw = Sandbox::new(SandboxConfig {
            nan_mode: exo_exec::NanMode::Off,
            ..config(&dir)
        })
        .unwrap();
        assert_eq!(
            raw.run(&UnitSpec::wasm(&wat(src))).unwrap().outcome,
            Outcome::Exit(1)
        );
    }
}

#[test]
fn clocks_and_randomness_are_fixed_by_the_unit() {
    let e = env();
    let run = |seed| {
        e.sandbox
            .run(
                &UnitSpec::wasm(exo_apps::PROBE_WASM)
                    .arg("time")
                    .unit(0, seed),
            )
            .unwrap()
    };
    let a = run(1);
    let b = run(1);
    assert_eq!(a.outcome, Outcome::Ok);
    let text = String::from_utf8_lossy(&a.stdout).to_string();
    assert!(
        text.starts_with("wall=946684800000000000 elapsed=0 "),
        "{text}"
    );
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.digest, b.digest);
    // The HashMap's order comes from random_get, which the seed drives.
    let others: Vec<_> = (2..6).map(|s| run(s).stdout).collect();
    assert!(others.iter().any(|o| *o != a.stdout));
}

#[test]
fn hello_sees_its_unit_args_and_inputs() {
    let e = env();
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::HELLO_WASM)
                .args(["a", "b"])
                .input("z.txt", b"123")
                .input("a.txt", b"1")
                .unit(7, 9),
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.stdout, b"hello from unit 7\n");
    let text = String::from_utf8(r.output("hello.txt").unwrap().to_vec()).unwrap();
    assert!(
        text.starts_with("unit=7\nargs=a b\ninput a.txt 1\ninput z.txt 3\nrng="),
        "{text}"
    );
    assert!(matches!(
        e.sandbox
            .run(&UnitSpec::wasm(exo_apps::HELLO_WASM).input("../x", b"")),
        Err(ExecError::InvalidSpec(_))
    ));
}

#[test]
fn real_apps_give_the_same_digest_and_fuel_every_time() {
    let e = env();
    let scene = exo_apps::render::studio_scene().unwrap();
    let render = UnitSpec::wasm(exo_apps::RENDER_WASM)
        .args(["32", "24", "8", "8", "8", "6", "2"])
        .input(exo_apps::render::SCENE_INPUT, &scene.canonical);
    let a = e.sandbox.run(&render).unwrap();
    assert_eq!(
        a.outcome,
        Outcome::Ok,
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let tile = a.output("tile.ppm").expect("tile");
    assert!(tile.starts_with(b"P6\n8 6\n255\n"));
    let b = e.sandbox.run(&render).unwrap();
    assert_eq!((a.digest, a.fuel_used), (b.digest, b.fuel_used));
    assert!(a.fuel_used > 0);

    let prices = exo_apps::SP500_CSV.as_bytes();
    let backtest = UnitSpec::wasm(exo_apps::BACKTEST_WASM)
        .args(["sma=10:20:10/50:100:50", "cost=5", "folds=2", "sets=0:4"])
        .input("prices.csv", prices);
    let a = e.sandbox.run(&backtest).unwrap();
    assert_eq!(
        a.outcome,
        Outcome::Ok,
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    let ranked =
        exo_apps::backtest::combine(&[a.output("results.csv").unwrap()], exo_apps::SP500_CSV)
            .unwrap();
    assert_eq!(ranked.ranked.len(), 4);
    // A fresh sandbox with its own cache (another "machine") agrees too.
    let dir = tempfile::tempdir().unwrap();
    let other = Sandbox::new(config(&dir)).unwrap();
    let c = other.run(&backtest).unwrap();
    assert_eq!((a.digest, a.fuel_used), (c.digest, c.fuel_used));
}

/// Audit L1: a compiled module damaged on disk (truncated by a crash, zero-filled, one byte
/// flipped) is never executed: it fails its checksum, and the module is compiled again.
#[test]
fn a_damaged_compiled_module_on_disk_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let spec = UnitSpec::wasm(exo_apps::HELLO_WASM);
    let first = Sandbox::new(config(&dir)).unwrap();
    let good = first.run(&spec).unwrap();
    drop(first);
    let artifacts: Vec<std::path::PathBuf> = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let path = &artifacts[0];
    let bytes = std::fs::read(path).unwrap();
    let damages: [(&str, Vec<u8>); 3] = [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("zero-filled", vec![0; bytes.len()]),
        ("one byte flipped", {
            let mut b = bytes.clone();
            let last = b.len() - 1;
            b[last] ^= 1;
            b
        }),
    ];
    for (damage, damaged) in damages {
        std::fs::write(path, &damaged).unwrap();
        let sandbox = Sandbox::new(config(&dir)).unwrap();
        let again = sandbox.run(&spec).unwrap();
        let stats = sandbox.cache_stats();
        assert_eq!((stats.compiles, stats.disk_hits), (1, 0), "{damage}");
        assert_eq!(
            (again.digest, again.fuel_used),
            (good.digest, good.fuel_used)
        );
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn second_sandbox_is_served_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = Sandbox::new(config(&dir)).unwrap();
    let spec = UnitSpec::wasm(exo_apps::HELLO_WASM);
    let a = first.run(&spec).unwrap();
    assert!(!a.cache_hit);
    assert_eq!(first.cache_stats().compiles, 1);
    drop(first);

    // A restart: a new engine, the same cache directory.
    let second = Sandbox::new(config(&dir)).unwrap();
    let b = second.run(&spec).unwrap();
    assert!(b.cache_hit);
    let s = second.cache_stats();
    assert_eq!((s.compiles, s.disk_hits), (0, 1));
    assert_eq!((a.digest, a.fuel_used), (b.digest, b.fuel_used));
    let c = second
        .run(&UnitSpec::new(ModuleSource::Hash(b.module_hash)))
        .unwrap();
    assert!(c.cache_hit);
    assert_eq!(second.cache_stats().memory_hits, 1);
    assert!(matches!(
        second.run(&UnitSpec::new(ModuleSource::Hash([1; 32]))),
        Err(ExecError::ModuleNotCached(_))
    ));
}

#[test]
fn text_modules_are_not_accepted_and_the_tiny_module_is_what_it_says() {
    let e = env();
    let text = br#"(module (memory (export "memory") 1) (func (export "_start")))"#;
    assert!(matches!(
        e.sandbox.run(&UnitSpec::wasm(text)).unwrap().outcome,
        Outcome::InvalidModule(_)
    ));
    assert_eq!(
        exo_exec::fixtures::TINY_WASM,
        wat(std::str::from_utf8(text).unwrap()).as_slice()
    );
    assert_eq!(
        e.sandbox
            .run(&UnitSpec::wasm(exo_exec::fixtures::TINY_WASM))
            .unwrap()
            .outcome,
        Outcome::Ok
    );
}

#[test]
fn a_guest_filling_out_is_stopped_while_it_runs() {
    let e = env();
    let r = e
        .sandbox
        .run(
            &UnitSpec::wasm(exo_apps::PROBE_WASM)
                .arg("fill")
                .max_output(1 << 20)
                .timeout_ms(20_000),
        )
        .unwrap();
    assert_eq!(r.outcome, Outcome::OutputTooLarge(OutputStream::Out));
    assert!(r.wall_time_us < 5_000_000, "took {} us", r.wall_time_us);
}
