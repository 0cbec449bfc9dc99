//! WAT guests that attack determinism, shared by the determinism tests and the
//! cross-architecture corpus (`examples/xarch_corpus.rs`).

#![allow(dead_code)] // Each user takes the guests it needs.

pub fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("valid wat")
}

pub const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $setsize (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $pstat (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $unlink (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  ;; Writes mem[p..p+l] to stdout through the iovec at 0.
  (func $print (param $p i32) (param $l i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $l))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; Prints an errno (or any i32) as 4 bytes.
  (func $status (param $e i32)
    (i32.store (i32.const 16) (local.get $e))
    (call $print (i32.const 16) (i32.const 4)))
  ;; Opens /out/<path> for writing, creating it; the descriptor, or exit 10.
  (func $create (param $p i32) (param $l i32) (result i32)
    (if (call $open (i32.const 4) (i32.const 0) (local.get $p) (local.get $l) (i32.const 1)
          (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 20))
      (then (call $exit (i32.const 10))))
    (i32.load (i32.const 20)))
"#;

/// Writes files and a directory to /out, then prints the stat of files, directories and
/// preopens, and the raw listings of /out and /in.
pub const METADATA: &str = r#"
  (memory (export "memory") 2)
  (data (i32.const 100) "probe")
  (data (i32.const 110) "sub")
  (data (i32.const 120) "sub/x")
  (data (i32.const 130) "hello")
  (data (i32.const 140) "a")
  (func $writefile (param $p i32) (param $l i32)
    (local $fd i32)
    (local.set $fd (call $create (local.get $p) (local.get $l)))
    (i32.store (i32.const 24) (i32.const 130))
    (i32.store (i32.const 28) (i32.const 5))
    (call $status (call $write (local.get $fd) (i32.const 24) (i32.const 1) (i32.const 32)))
    (call $status (call $fstat (local.get $fd) (i32.const 1024)))
    (call $print (i32.const 1024) (i32.const 64))
    (drop (call $close (local.get $fd))))
  (func $statpath (param $dir i32) (param $p i32) (param $l i32)
    (call $status (call $pstat (local.get $dir) (i32.const 0) (local.get $p) (local.get $l) (i32.const 1024)))
    (call $print (i32.const 1024) (i32.const 64)))
  (func $statfd (param $fd i32)
    (call $status (call $fstat (local.get $fd) (i32.const 1024)))
    (call $print (i32.const 1024) (i32.const 64)))
  (func $list (param $fd i32)
    (call $status (call $readdir (local.get $fd) (i32.const 2048) (i32.const 4096) (i64.const 0) (i32.const 36)))
    (call $print (i32.const 2048) (i32.load (i32.const 36))))
  (func (export "_start")
    (call $writefile (i32.const 100) (i32.const 5))
    (call $status (call $mkdir (i32.const 4) (i32.const 110) (i32.const 3)))
    (call $writefile (i32.const 120) (i32.const 5))
    (call $statpath (i32.const 4) (i32.const 110) (i32.const 3))
    (call $statpath (i32.const 4) (i32.const 100) (i32.const 5))
    (call $statpath (i32.const 3) (i32.const 140) (i32.const 1))
    (call $statfd (i32.const 3))
    (call $statfd (i32.const 4))
    (call $list (i32.const 4))
    (call $list (i32.const 3)))
"#;

/// Wraps `body` in a module with the WASI imports and helpers above.
pub fn module(body: &str) -> Vec<u8> {
    wat(&format!("(module {IMPORTS} {body})"))
}

/// Opens /out/big, then tries to put 2 GiB into it with one call (`$attack`), then truncates it
/// to nothing and exits 0: only a quota checked on the call itself sees the attack.
pub fn two_gib(attack: &str) -> Vec<u8> {
    module(&format!(
        r#"
  (memory (export "memory") 40)
  (data (i32.const 16384) "big")
  (func (export "_start")
    (local $i i32) (local $fd i32)
    (local.set $fd (call $create (i32.const 16384) (i32.const 3)))
    ;; 1024 iovecs at 0..8192, each naming the same 2 MiB at 65536: 2 GiB in all.
    (loop $l
      (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 65536))
      (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4)) (i32.const 2097152))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1024))))
    {attack}
    (drop (call $setsize (local.get $fd) (i64.const 0)))
    (call $exit (i32.const 0)))
"#
    ))
}

/// Opens three missing inputs and one that leaves /in, prints each errno, and exits with the
/// last one.
pub const MISSING_INPUT: &str = r#"
  (memory (export "memory") 1)
  (data (i32.const 100) "missing")
  (data (i32.const 120) "nested/missing")
  (data (i32.const 140) "../missing")
  (func $try (param $p i32) (param $l i32) (result i32)
    (call $open (i32.const 3) (i32.const 0) (local.get $p) (local.get $l) (i32.const 0)
      (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 20)))
  (func (export "_start")
    (call $status (call $try (i32.const 100) (i32.const 7)))
    (call $status (call $pstat (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 7) (i32.const 1024)))
    (call $status (call $try (i32.const 120) (i32.const 14)))
    (call $status (call $try (i32.const 140) (i32.const 10)))
    (call $exit (call $try (i32.const 100) (i32.const 7))))
"#;

/// Four-byte writes at offset 0 of /out/slow, forever, each writing how many came before:
/// cheap in wasm, all the time in the host. What /out/slow holds at the end counts them.
pub const SLOW_WRITES: &str = r#"
  (memory (export "memory") 1)
  (data (i32.const 100) "slow")
  (func (export "_start")
    (local $fd i32) (local $i i32)
    (local.set $fd (call $create (i32.const 100) (i32.const 4)))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.const 4))
    (loop $l
      (i32.store (i32.const 200) (local.get $i))
      (drop (call $pwrite (local.get $fd) (i32.const 0) (i32.const 1) (i64.const 0) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
"#;

/// Makes NaNs every way wasm can and stores them (see the file's comment).
pub const NAN_KERNEL: &str = include_str!("nan_kernel.wat");

/// The input `NAN_KERNEL` reads as `/in/nan.bin`: NaNs with payloads and signs.
pub fn nan_input() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x7ff4_0000_0000_0abc_u64.to_le_bytes());
    v.extend_from_slice(&0xfff8_0000_0000_beef_u64.to_le_bytes());
    v.extend_from_slice(&0x7f80_0123_u32.to_le_bytes());
    v.extend_from_slice(&0xffc0_cafe_u32.to_le_bytes());
    v
}
