//! `probe`: a hostile guest for the sandbox tests. Each mode tries one thing a malicious or buggy
//! work unit might do; the sandbox must contain all of them. Not a real task app.
//!
//! Modes (first argument): `escape` (read and write outside `/in` and `/out`, open a socket),
//! `sleep <ms>` (block in `poll_oneoff`), `spin` (loop forever), `membomb` (allocate without end),
//! `stdout <bytes>` (flood stdout), `write <bytes>` (write a large file to `/out`), `fill` (write to `/out` without end), `time` (print
//! clocks and random bytes, which must be fixed per unit), `recurse` (recurse without end: a
//! stack overflow, whose depth depends on the machine), `listing` (write a file, then print its
//! metadata and the listings of `/out` and `/in` in the order the filesystem gives them),
//! `bigwrite` (put 2 GiB into `/out` with one call), `slowio` (one-byte writes
//! without end), `missing` (read an input that does not exist and print the error).

use std::io::Write;
use std::time::UNIX_EPOCH;

fn attempt(label: &str, ok: bool) {
    // One line per attempt: "denied" is what the sandbox must produce for every one of them.
    println!("{label}: {}", if ok { "ALLOWED" } else { "denied" });
}

fn escape() {
    attempt("read /etc/passwd", std::fs::read("/etc/passwd").is_ok());
    attempt(
        "read /in/../etc/passwd",
        std::fs::read("/in/../etc/passwd").is_ok(),
    );
    attempt("read ../etc/passwd", std::fs::read("../etc/passwd").is_ok());
    attempt(
        "read /proc/self/environ",
        std::fs::read("/proc/self/environ").is_ok(),
    );
    attempt("write /in/x", std::fs::write("/in/x", b"x").is_ok());
    attempt("write /out/../x", std::fs::write("/out/../x", b"x").is_ok());
    attempt("write /tmp/x", std::fs::write("/tmp/x", b"x").is_ok());
    attempt("readdir /", std::fs::read_dir("/").is_ok());
    attempt("readdir /in/..", std::fs::read_dir("/in/..").is_ok());
    attempt(
        "rename /in/data /out/data",
        std::fs::rename("/in/data", "/out/data").is_ok(),
    );
    attempt(
        "hardlink /in/data /out/link",
        std::fs::hard_link("/in/data", "/out/link").is_ok(),
    );
    attempt(
        "tcp connect 127.0.0.1:80",
        std::net::TcpStream::connect("127.0.0.1:80").is_ok(),
    );
    attempt(
        "tcp bind 127.0.0.1:0",
        std::net::TcpListener::bind("127.0.0.1:0").is_ok(),
    );
    attempt("read /in/data", std::fs::read("/in/data").is_err());
    attempt(
        "write /out/ok.txt",
        std::fs::write("/out/ok.txt", b"ok").is_err(),
    );
}

/// Recurses until the stack runs out; the frame is kept large and alive so that the compiler
/// cannot turn the recursion into a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    recurse(depth + 1).wrapping_add(frame[(depth % 16) as usize])
}

/// Everything a guest can learn about a file and two directories through WASI metadata and
/// listings: on a host filesystem it differs from run to run and host to host.
fn listing() {
    let _ = std::fs::write("/out/probe", b"probe");
    let since_epoch = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
    };
    if let Ok(m) = std::fs::metadata("/out/probe") {
        println!(
            "probe len={} modified={:?} accessed={:?}",
            m.len(),
            since_epoch(m.modified()),
            since_epoch(m.accessed())
        );
    }
    for dir in ["/out", "/in"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            println!("{dir}: cannot list");
            continue;
        };
        for entry in entries.flatten() {
            let m = entry.metadata().ok();
            println!(
                "{dir}/{} len={:?} dir={:?} modified={:?}",
                entry.file_name().to_string_lossy(),
                m.as_ref().map(|m| m.len()),
                m.as_ref().map(|m| m.is_dir()),
                m.map(|m| since_epoch(m.modified()))
            );
        }
    }
}

/// 2 GiB into `/out` with one call: a file resized to 2 GiB (`fd_filestat_set_size`), which a
/// host filesystem makes sparse and a polling quota may never see.
fn bigwrite() {
    let Ok(f) = std::fs::File::create("/out/big.bin") else {
        std::process::exit(3)
    };
    match f.set_len(2 << 30) {
        Ok(()) => println!("resized to 2 GiB"),
        Err(e) => println!("resize failed: {:?}", e.kind()),
    }
}

fn arg_u64(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() {
    let args = exo_guest::args();
    match args.first().map(String::as_str) {
        Some("escape") => escape(),
        Some("sleep") => {
            let ms = arg_u64(&args, 1, 30_000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            println!("woke");
        }
        Some("recurse") => println!("{}", recurse(0)),
        Some("spin") => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        Some("membomb") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Some("stdout") => {
            let n = arg_u64(&args, 1, 1 << 20) as usize;
            let line = [b'x'; 1024];
            let mut out = std::io::stdout().lock();
            let mut written = 0;
            while written < n {
                if out.write_all(&line).is_err() {
                    std::process::exit(3);
                }
                written += line.len();
            }
        }
        Some("write") => {
            let n = arg_u64(&args, 1, 1 << 20) as usize;
            if std::fs::write("/out/big.bin", vec![7u8; n]).is_err() {
                std::process::exit(3);
            }
        }
        Some("fill") => {
            // Many small writes that never end: only the sandbox's watch on /out stops them.
            let chunk = vec![7u8; 64 << 10];
            let Ok(mut f) = std::fs::File::create("/out/fill.bin") else {
                std::process::exit(3)
            };
            loop {
                if f.write_all(&chunk).is_err() {
                    std::process::exit(3);
                }
            }
        }
        Some("listing") => listing(),
        Some("bigwrite") => bigwrite(),
        Some("slowio") => {
            // Every call moves one byte: only the fuel that host calls cost stops it.
            let Ok(mut f) = std::fs::File::create("/out/slow.bin") else {
                std::process::exit(3)
            };
            while f.write_all(&[1]).is_ok() {}
            std::process::exit(3);
        }
        Some("missing") => match std::fs::read("/in/missing") {
            Ok(bytes) => println!("read {} bytes", bytes.len()),
            Err(e) => println!("read /in/missing: {:?}", e.kind()),
        },
        Some("time") => {
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let t0 = std::time::Instant::now();
            let elapsed = t0.elapsed().as_nanos();
            let mut map = std::collections::HashMap::new();
            for i in 0..16u32 {
                map.insert(i, i);
            }
            let order: Vec<u32> = map.keys().copied().collect();
            println!("wall={wall} elapsed={elapsed} hashmap_order={order:?}");
        }
        _ => exo_guest::fail(
            64,
            "usage: probe escape|sleep|spin|membomb|stdout|write|fill|time|listing|bigwrite|slowio|missing",
        ),
    }
}
