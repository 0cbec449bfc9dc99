//! Replicas must agree byte for byte and fuel for fuel: guests that look at what a host
//! filesystem would leak (times, inode numbers, sizes, listing order, errnos), that push `/out`
//! past its quotas, or that spend their time in host calls. WAT guests, each run several times
//! and on more than one kind of scratch directory.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use exo_exec::{Outcome, OutputStream, Sandbox, SandboxConfig, UnitResult, UnitSpec};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;
use tempfile::TempDir;

mod guests;
use guests::{METADATA, MISSING_INPUT, SLOW_WRITES, module, two_gib};

/// A sandbox whose scratch space lives under `parent`.
fn sandbox_in(parent: &Path) -> (TempDir, Sandbox) {
    std::fs::create_dir_all(parent).unwrap();
    let dir = tempfile::tempdir_in(parent).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        scratch_dir: Some(dir.path().join("scratch")),
        max_concurrent_units: 2,
        ..SandboxConfig::new(dir.path().join("cache"))
    })
    .unwrap();
    (dir, sandbox)
}

/// A tmpfs directory where the system has one, else the temporary directory.
fn tmpfs_parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A directory on the disk that holds the build.
fn disk_parent() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exo-exec-determinism")
}

fn shared() -> &'static Sandbox {
    static S: OnceLock<(TempDir, Sandbox)> = OnceLock::new();
    &S.get_or_init(|| sandbox_in(&disk_parent())).1
}

/// Runs `spec` `n` times and checks that every run gave the same outcome, digest and fuel.
fn same_every_time(sandbox: &Sandbox, spec: &UnitSpec<'_>, n: usize) -> UnitResult {
    let first = sandbox.run(spec).unwrap();
    for _ in 1..n {
        let r = sandbox.run(spec).unwrap();
        assert_eq!(r.outcome, first.outcome);
        assert_eq!(r.stdout, first.stdout);
        assert_eq!((r.digest, r.fuel_used), (first.digest, first.fuel_used));
    }
    first
}

#[test]
fn a_guest_reading_metadata_and_listings_gets_the_same_digest_and_fuel_on_tmpfs_and_on_disk() {
    let wasm = module(METADATA);
    let spec = UnitSpec::wasm(&wasm)
        .input("b", b"bb")
        .input("a", b"a")
        .input("c", b"ccc")
        .input("A", b"AAAA")
        .input("zz", b"z");
    let mut seen = Vec::new();
    for parent in [tmpfs_parent(), disk_parent()] {
        let (_dir, sandbox) = sandbox_in(&parent);
        let r = same_every_time(&sandbox, &spec, 3);
        assert_eq!(r.outcome, Outcome::Ok);
        seen.push((r.digest, r.fuel_used, r.stdout));
    }
    assert_eq!(seen[0], seen[1], "tmpfs and disk differ");
    // The listing of /in is in byte order of names: ".", "..", "A", "a", "b", "c", "zz".
    let stdout = &seen[0].2;
    let names: Vec<&[u8]> = [&b"A"[..], b"a", b"b", b"c", b"zz"].to_vec();
    let pos: Vec<usize> = names
        .iter()
        .map(|n| {
            let mut needle = (n.len() as u32).to_le_bytes().to_vec();
            needle.extend_from_slice(&[4, 0, 0, 0]);
            needle.extend_from_slice(n);
            stdout
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
                .unwrap()
        })
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
}

#[test]
fn putting_two_gib_into_out_with_one_call_is_output_too_large_on_every_run() {
    let sandbox = shared();
    let attacks = [
        "(drop (call $write (local.get $fd) (i32.const 0) (i32.const 1024) (i32.const 16400)))",
        "(drop (call $setsize (local.get $fd) (i64.const 2147483648)))",
        "(drop (call $pwrite (local.get $fd) (i32.const 0) (i32.const 1) (i64.const 2147483648) (i32.const 16400)))",
    ];
    for attack in attacks {
        let wasm = two_gib(attack);
        let t = Instant::now();
        let r = same_every_time(sandbox, &UnitSpec::wasm(&wasm).max_output(1 << 20), 3);
        assert_eq!(
            r.outcome,
            Outcome::OutputTooLarge(OutputStream::Out),
            "{attack}"
        );
        assert!(r.outputs.is_empty());
        // Nothing near 2 GiB was ever copied.
        assert!(t.elapsed().as_secs() < 10, "{attack}: {:?}", t.elapsed());
    }
}

#[test]
fn a_guest_over_the_entry_quota_ends_output_too_large_on_every_run() {
    // Creates /out/f00000 .. /out/f10000 (one more than the quota of entries), then removes
    // them all and exits 0.
    let body = r#"
  (memory (export "memory") 1)
  (data (i32.const 100) "f00000")
  (func $name (param $i i32)
    (local $k i32)
    (local.set $k (i32.const 5))
    (loop $d
      (i32.store8 (i32.add (i32.const 100) (local.get $k))
        (i32.add (i32.const 48) (i32.rem_u (local.get $i) (i32.const 10))))
      (local.set $i (i32.div_u (local.get $i) (i32.const 10)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (br_if $d (i32.ge_s (local.get $k) (i32.const 1)))))
  (func (export "_start")
    (local $i i32)
    (loop $l
      (call $name (local.get $i))
      (drop (call $close (call $create (i32.const 100) (i32.const 6))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.le_u (local.get $i) (i32.const 10000))))
    (local.set $i (i32.const 0))
    (loop $l
      (call $name (local.get $i))
      (drop (call $unlink (i32.const 4) (i32.const 100) (i32.const 6)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.le_u (local.get $i) (i32.const 10000))))
    (call $exit (i32.const 0)))
"#;
    let wasm = module(body);
    let r = same_every_time(shared(), &UnitSpec::wasm(&wasm), 3);
    assert_eq!(r.outcome, Outcome::OutputTooLarge(OutputStream::Out));
}

#[test]
fn a_guest_reading_a_missing_input_gets_the_same_errno_and_digest_on_every_run() {
    let wasm = module(MISSING_INPUT);
    let spec = UnitSpec::wasm(&wasm).input("present", b"x");
    let mut seen = Vec::new();
    for parent in [tmpfs_parent(), disk_parent()] {
        let (_dir, sandbox) = sandbox_in(&parent);
        let r = same_every_time(&sandbox, &spec, 3);
        seen.push((r.digest, r.fuel_used));
        // ENOENT (44) three times, then EPERM (63) for a path that leaves /in.
        let codes: Vec<u32> = r
            .stdout
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(codes, [44, 44, 44, 63]);
        assert_eq!(r.outcome, Outcome::Exit(44));
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn many_small_writes_pay_fuel_and_run_out_of_it_instead_of_reaching_the_deadline() {
    let wasm = module(SLOW_WRITES);
    let budget = 20_000_000;
    let spec = UnitSpec::wasm(&wasm).fuel(budget).timeout_ms(10_000);
    let r = same_every_time(shared(), &spec, 2);
    assert_eq!(r.outcome, Outcome::OutOfFuel);
    assert_eq!(r.fuel_used, budget);
    let calls = u64::from(u32::from_le_bytes(
        r.output("slow").unwrap().try_into().unwrap(),
    ));
    // Each call paid at least the base fee (and the bytes it moved), not just its few wasm
    // instructions.
    let per_call = exo_exec::HOST_CALL_FUEL + exo_exec::io_fuel(4);
    assert!(calls <= budget / per_call, "{calls} calls");
    assert!(calls >= budget / (per_call + 100), "{calls} calls");
}

/// Writes `size` bytes with one `fd_write` to `/out/f` (or to stdout), then reads them back with
/// one `fd_pread` of `/out/f`.
fn one_write(size: u32, to_stdout: bool) -> Vec<u8> {
    let target = if to_stdout {
        "(i32.const 1)"
    } else {
        "(call $create (i32.const 100) (i32.const 1))"
    };
    module(&format!(
        r#"
  (memory (export "memory") 34)
  (data (i32.const 100) "f")
  (func (export "_start")
    (local $fd i32)
    (local.set $fd {target})
    (i32.store (i32.const 24) (i32.const 65536))
    (i32.store (i32.const 28) (i32.const {size}))
    (drop (call $write (local.get $fd) (i32.const 24) (i32.const 1) (i32.const 32)))
    (drop (call $pread (local.get $fd) (i32.const 24) (i32.const 1) (i64.const 0) (i32.const 32))))
"#
    ))
}

#[test]
fn bytes_moved_through_files_and_stdout_cost_fuel_by_the_byte() {
    let sandbox = shared();
    let fuel = |size: u32, to_stdout: bool| {
        let wasm = one_write(size, to_stdout);
        let r = sandbox
            .run(&UnitSpec::wasm(&wasm).max_stdio(4 << 20))
            .unwrap();
        assert_eq!(r.outcome, Outcome::Ok);
        r.fuel_used
    };
    let mib = 1u64 << 20;
    // The wasm is the same but for one constant, so the difference is the host's charge: one
    // more MiB written and, for the file, one more MiB read back.
    let file = fuel(2 << 20, false) - fuel(1 << 20, false);
    assert_eq!(file, 2 * exo_exec::io_fuel(mib));
    let stdout = fuel(2 << 20, true) - fuel(1 << 20, true);
    assert_eq!(stdout, exo_exec::io_fuel(mib));
    assert!(exo_exec::io_fuel(mib) > 0);
}
