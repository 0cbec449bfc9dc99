//! `probe`: a hostile guest for the sandbox tests. Each mode tries one thing a malicious or buggy
//! work unit might do; the sandbox must contain all of them. Not a real task app.
//!
//! Modes (first argument): `escape` (read and write outside `/in` and `/out`, open a socket),
//! `sleep <ms>` (block in `poll_oneoff`), `spin` (loop forever), `membomb` (allocate without end),
//! `stdout <bytes>` (flood stdout), `write <bytes>` (write a large file to `/out`), `fill` (write to `/out` without end), `time` (print
//! clocks and random bytes, which must be fixed per unit), `recurse` (recurse without end: a
//! stack overflow, whose depth depends on the machine).

use std::io::Write;

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
            "usage: probe escape|sleep|spin|membomb|stdout|write|fill|time",
        ),
    }
}
