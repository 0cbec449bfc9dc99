//! Measures what drives the cost of compiling a module: one synthetic module of a given shape
//! and size, compiled once by a fresh sandbox (compile, serialize, store in the cache), with the
//! wall time and the growth of the process's peak resident memory it caused. One case per
//! process, so that peaks do not mix:
//!
//! `cargo run --release -p exo-exec --example compile_cost -- <shape> <n>`
//!
//! Shapes: `body` (one function of n straight-line operators), `funcs` (n small functions),
//! `locals` (one function declaring n locals), `live` (one function summing n locals, all live
//! at once), `nest` (n nested blocks), `brtable` (a `br_table` of n targets), `types` (n
//! function types), `data` (n one-byte data segments), `globals` (n globals); `render` compiles the render app (n ignored). The results and
//! the static limits chosen from them are in docs/exec-determinism.md.

use exo_exec::{Sandbox, SandboxConfig};
use std::fmt::Write as _;
use std::time::Instant;

fn repeat(n: usize, f: impl Fn(&mut String, usize)) -> String {
    let mut s = String::new();
    for i in 0..n {
        f(&mut s, i);
    }
    s
}

/// The module text of `shape` at size `n`, with an empty `_start` so it links.
fn module(shape: &str, n: usize) -> String {
    let start = r#"(func (export "_start"))"#;
    let mem = r#"(memory (export "memory") 1)"#;
    let body = match shape {
        "body" => format!(
            "(func (param i32) (result i32) {} local.get 0)",
            repeat(n, |s, _| s.push_str(
                "local.get 0 i32.const 7 i32.mul i32.const 3 i32.add local.set 0 "
            ))
        ),
        "funcs" => repeat(n, |s, _| {
            s.push_str("(func (param i32) (result i32) local.get 0 i32.const 1 i32.add)")
        }),
        "locals" => format!(
            "(func (result i64) (local {}) local.get 0)",
            repeat(n.max(1), |s, _| s.push_str("i64 "))
        ),
        "live" => format!(
            "(func (param i64) (result i64) (local {}) {} {} local.get 0)",
            repeat(n.max(1), |s, _| s.push_str("i64 ")),
            repeat(n, |s, i| {
                let _ = write!(s, "local.get 0 i64.const {i} i64.mul local.set {} ", i + 1);
            }),
            repeat(n, |s, i| {
                let _ = write!(s, "local.get 0 local.get {} i64.add local.set 0 ", i + 1);
            })
        ),
        "nest" => format!(
            "(func {} {})",
            repeat(n, |s, _| s.push_str("(block ")),
            ")".repeat(n)
        ),
        "brtable" => format!(
            "(func (param i32) (block $out {} (br_table {} (local.get 0))))",
            "",
            repeat(n, |s, _| s.push_str("$out "))
        ),
        "types" => repeat(n, |s, i| {
            let _ = write!(s, "(type (func (param {})))", "i32 ".repeat(i % 16 + 1));
        }),
        "data" => repeat(n, |s, i| {
            let _ = write!(s, r#"(data (i32.const {}) "x")"#, i % 65_536);
        }),
        "globals" => repeat(n, |s, i| {
            let _ = write!(s, "(global (mut i64) (i64.const {i}))");
        }),
        other => panic!("unknown shape {other}"),
    };
    format!("(module {mem} {body} {start})")
}

/// The process's peak resident memory, from `/proc/self/status`, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape = args.first().map(String::as_str).unwrap_or("body");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let wasm = match shape {
        // A real app, for the ratio between this build's compile speed and a release build's.
        "render" => exo_apps::RENDER_WASM.to_vec(),
        _ => wat::parse_str(module(shape, n)).expect("wat"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SandboxConfig::new(dir.path());
    config.max_concurrent_units = 1;
    let sandbox = Sandbox::new(config).expect("sandbox");
    let before = peak_rss_kib();
    let started = Instant::now();
    let verdict = match sandbox.prepare(&wasm) {
        Ok(_) => "compiled".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let grown_mib = peak_rss_kib().saturating_sub(before) as f64 / 1024.0;
    println!(
        "{shape} n={n} module_bytes={} ms={ms:.1} peak_rss_growth_mib={grown_mib:.1} {verdict}",
        wasm.len()
    );
}
