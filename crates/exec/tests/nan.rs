//! NaN bits that a guest can observe are the same on every host: the kernel in
//! `guests/nan_kernel.wat` makes NaNs every way wasm can and stores them, and each stored value
//! is checked against what the sandbox's rule gives on any machine (the cross-architecture
//! script compares the same kernel on x86-64 and aarch64).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod guests;

use exo_exec::{NanMode, Outcome, Sandbox, SandboxConfig, UnitSpec};
use guests::{NAN_KERNEL, nan_input, wat};

const NAN64: u64 = 0x7ff8_0000_0000_0000;
/// An f32 result sits in the upper half of its 8-byte slot.
const NAN32: u64 = 0x7fc0_0000 << 32;
const fn f32_slot(bits: u32) -> u64 {
    (bits as u64) << 32
}
const fn lanes32(lo: u32, hi: u32) -> u64 {
    (lo as u64) | ((hi as u64) << 32)
}

/// What the kernel stores, slot by slot, under the network's mode. Arithmetic NaNs read as the
/// positive canonical NaN wherever they are observed; NaNs read from memory or made from
/// integers keep their bits while they stay in locals and the operand stack.
const EXPECTED: [u64; 54] = [
    NAN64,
    NAN64,
    NAN64,
    NAN64,
    NAN32,
    NAN32, // 0/0, inf-inf, sqrt(-1), 0*inf; f32 0/0, sqrt
    0x7ff4_0000_0000_0abc,
    0xfff8_0000_0000_beef, // input payloads, loaded and stored again
    0x7ff4_0000_0000_0abc, // reinterpret of a loaded signalling NaN
    NAN64,
    NAN64,
    NAN64,
    NAN32,
    NAN32, // arithmetic on payload NaNs
    NAN64,
    0xfff0_0000_0000_5678, // arithmetic on, and reinterpret of, integer-made NaNs
    NAN64,
    NAN64,
    NAN64,                 // neg, abs, neg(abs) of 0/0
    0x3ff0_0000_0000_0000, // copysign(1, 0/0): the sign of an arithmetic NaN is canonical
    NAN64,
    NAN64,
    NAN64,
    NAN64,
    NAN64,                 // copysign and neg with NaN magnitudes, stored by a callee
    NAN64,                 // reinterpret(neg(sqrt(-4)))
    0x4000_0000_0000_0000, // copysign(2, inf-inf)
    NAN64,                 // neg(0/0) stored directly
    NAN64,
    NAN64,
    NAN64,
    NAN64,
    NAN32,
    NAN32, // min, max, promote, demote
    NAN64,
    NAN64,
    NAN64,
    NAN64,
    NAN64, // call result, call param, select, global, block
    1,
    0, // 0/0 != 0/0; trunc_sat(0/0)
    lanes32(0x7fc0_0000, 0x7f80_0000),
    lanes32(0x7fc0_0000, 0xff80_0000), // f32x4 [0,1,0,-1]/0
    NAN64,
    0x4000_0000_0000_0000, // f64x2.sqrt [-1, 4]
    NAN64,
    NAN64, // f64x2 payloads + 1
    NAN64,
    NAN64, // splat(0/0)
    0x7ff4_0000_0000_0abc,
    NAN64,                 // replace_lane of a loaded vector with neg(0/0)
    f32_slot(0x7fc0_0000), // a lane extracted from 0/0
    lanes32(0xffc0_0000, 0xffc0_0000),
    lanes32(0xbf80_0000, 0xbf80_0000), // neg(sqrt [-1,-1,1,1])
];

fn run_kernel(mode: NanMode) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        nan_mode: mode,
        max_concurrent_units: 1,
        ..SandboxConfig::new(dir.path())
    })
    .unwrap();
    let wasm = wat(NAN_KERNEL);
    let input = nan_input();
    let r = sandbox
        .run(&UnitSpec::wasm(&wasm).input("nan.bin", &input))
        .unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    r.stdout
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn hex(slots: &[u64]) -> Vec<String> {
    slots.iter().map(|s| format!("{s:#018x}")).collect()
}

#[test]
fn every_nan_a_guest_can_observe_has_the_bits_the_rule_fixes_for_every_host() {
    assert_eq!(hex(&run_kernel(NanMode::AtObservation)), hex(&EXPECTED));
}

#[test]
fn without_canonicalisation_this_host_leaks_its_own_nan_bits() {
    // The attack the rule prevents: on x86-64 0/0 is the negative default NaN, on ARM the
    // positive one, so a guest storing it gets a digest that depends on the machine.
    let off = run_kernel(NanMode::Off);
    assert_ne!(hex(&off), hex(&EXPECTED));
    if cfg!(target_arch = "x86_64") {
        assert_eq!(off[0], 0xfff8_0000_0000_0000);
        assert_eq!(
            off[19], 0xbff0_0000_0000_0000,
            "copysign(1, 0/0) is -1 on x86"
        );
    }
}

#[test]
fn canonicalising_after_every_float_operation_agrees_on_the_nans_that_stay_arithmetic() {
    // Cranelift's mode canonicalises at the operation, the rewrite at the observation: they
    // agree wherever no sign operation sits between the two.
    let always = run_kernel(NanMode::Always);
    for i in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 19, 26, 39, 40] {
        assert_eq!(always[i], EXPECTED[i], "slot {i}");
    }
}

#[test]
fn a_module_importing_a_function_that_takes_a_float_is_refused() {
    let wasm = wat(r#"(module
        (import "env" "leak" (func (param f64)))
        (memory (export "memory") 1)
        (func (export "_start")))"#);
    let reason = exo_exec::nan::canonicalize_at_sinks(&wasm).unwrap_err();
    assert!(reason.contains("env::leak"), "{reason}");
}

#[test]
fn the_compile_cache_is_keyed_by_the_nan_mode_and_the_rewrite_version() {
    let tags = [NanMode::AtObservation, NanMode::Always, NanMode::Off].map(NanMode::cache_tag);
    assert!(tags[0].ends_with(&format!("v{}", exo_exec::nan::REWRITE_VERSION)));
    assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2]);
}

#[test]
fn the_rewrite_of_every_example_app_is_valid_and_the_same_every_time() {
    let apps = [
        exo_apps::HELLO_WASM,
        exo_apps::PROBE_WASM,
        exo_apps::RENDER_WASM,
        exo_apps::BACKTEST_WASM,
        exo_apps::MONTECARLO_WASM,
    ];
    for wasm in apps {
        let once = exo_exec::nan::canonicalize_at_sinks(wasm).unwrap();
        assert_eq!(once, exo_exec::nan::canonicalize_at_sinks(wasm).unwrap());
        wasmparser::Validator::new().validate_all(&once).unwrap();
        // The rewrite inserts instructions only where floats are observed.
        assert!(once.len() >= wasm.len() && once.len() < wasm.len() + wasm.len() / 4);
    }
}

/// A float operation the property test composes, with its Rust twin (both IEEE 754, so they
/// agree on every result that is not a NaN).
#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Sqrt,
}

fn interesting_bits() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    prop_oneof![
        any::<u64>(),
        Just(0x7ff4_0000_0000_0abc), // signalling NaN with a payload
        Just(0xfff8_0000_0000_beef), // negative quiet NaN with a payload
        Just(0x7ff0_0000_0000_0000), // +inf
        Just(0xfff0_0000_0000_0000), // -inf
        Just(0x8000_0000_0000_0000), // -0
        Just(0),
        Just(0xbff0_0000_0000_0000), // -1
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Loads two inputs, applies an operation and a chain of `neg`/`abs`, and stores the result:
    /// a non-NaN result keeps its exact bits, and a NaN reads as the positive canonical NaN
    /// whatever payloads and signs went in.
    #[test]
    fn a_stored_result_is_exact_or_the_canonical_nan(
        a in interesting_bits(),
        b in interesting_bits(),
        op in proptest::sample::select(vec![Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Sqrt]),
        chain in proptest::collection::vec(proptest::bool::ANY, 0..3),
    ) {
        let (x, y) = (f64::from_bits(a), f64::from_bits(b));
        let (wat_op, mut expected) = match op {
            Op::Add => ("(f64.add (local.get $a) (local.get $b))", x + y),
            Op::Sub => ("(f64.sub (local.get $a) (local.get $b))", x - y),
            Op::Mul => ("(f64.mul (local.get $a) (local.get $b))", x * y),
            Op::Div => ("(f64.div (local.get $a) (local.get $b))", x / y),
            Op::Sqrt => ("(f64.sqrt (local.get $a))", x.sqrt()),
        };
        let mut expr = wat_op.to_string();
        for neg in &chain {
            expr = if *neg { format!("(f64.neg {expr})") } else { format!("(f64.abs {expr})") };
            expected = if *neg { -expected } else { expected.abs() };
        }
        let expected = if expected.is_nan() { NAN64 } else { expected.to_bits() };
        let wasm = wat(&format!(r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "_start") (local $a f64) (local $b f64)
              (local.set $a (f64.load (i32.const 0)))
              (local.set $b (f64.load (i32.const 8)))
              (f64.store (i32.const 64) {expr})
              (i32.store (i32.const 32) (i32.const 64))
              (i32.store (i32.const 36) (i32.const 8))
              (drop (call $w (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40))))
            (data (i32.const 0) "{}"))"#,
            [a, b].iter().flat_map(|v| v.to_le_bytes()).map(|byte| format!("\\{byte:02x}")).collect::<String>()
        ));
        let r = shared().run(&UnitSpec::wasm(&wasm)).unwrap();
        proptest::prop_assert_eq!(r.outcome, Outcome::Ok);
        let got = u64::from_le_bytes(r.stdout.as_slice().try_into().unwrap());
        proptest::prop_assert_eq!(format!("{got:#018x}"), format!("{expected:#018x}"));
    }
}

fn shared() -> &'static Sandbox {
    static S: std::sync::OnceLock<(tempfile::TempDir, Sandbox)> = std::sync::OnceLock::new();
    &S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = Sandbox::new(SandboxConfig::new(dir.path())).unwrap();
        (dir, sandbox)
    })
    .1
}

/// `max` and `min` written as a `gt` feeding a `select`, the way compilers emit them, against
/// another operand and against a constant, for `f64` and `f32`: every pair of eight inputs
/// (zeros of both signs, ±1, ±infinity, NaNs with payloads) goes through each and is stored.
const SELECT_KERNEL: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $max64 (param $a f64) (param $b f64) (result f64)
    (select (local.get $a) (local.get $b) (f64.gt (local.get $a) (local.get $b))))
  (func $min64 (param $a f64) (param $b f64) (result f64)
    (select (local.get $a) (local.get $b) (f64.gt (local.get $b) (local.get $a))))
  (func $max64c (param $a f64) (result f64)
    (select (local.get $a) (f64.const 0.5) (f64.gt (local.get $a) (f64.const 0.5))))
  (func $max32 (param $a f32) (param $b f32) (result f32)
    (select (local.get $a) (local.get $b) (f32.gt (local.get $a) (local.get $b))))
  (func $min32 (param $a f32) (param $b f32) (result f32)
    (select (local.get $a) (local.get $b) (f32.gt (local.get $b) (local.get $a))))
  (func (export "_start") (local $i i32) (local $j i32) (local $o i32)
    (local.set $o (i32.const 256))
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner
        (f64.store (local.get $o) (call $max64
          (f64.load (i32.shl (local.get $i) (i32.const 3)))
          (f64.load (i32.shl (local.get $j) (i32.const 3)))))
        (f64.store offset=8 (local.get $o) (call $min64
          (f64.load (i32.shl (local.get $i) (i32.const 3)))
          (f64.load (i32.shl (local.get $j) (i32.const 3)))))
        (f32.store offset=16 (local.get $o) (call $max32
          (f32.load offset=64 (i32.shl (local.get $i) (i32.const 2)))
          (f32.load offset=64 (i32.shl (local.get $j) (i32.const 2)))))
        (f32.store offset=20 (local.get $o) (call $min32
          (f32.load offset=64 (i32.shl (local.get $i) (i32.const 2)))
          (f32.load offset=64 (i32.shl (local.get $j) (i32.const 2)))))
        (local.set $o (i32.add (local.get $o) (i32.const 24)))
        (br_if $inner (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (i32.const 8))))
      (f64.store (local.get $o) (call $max64c (f64.load (i32.shl (local.get $i) (i32.const 3)))))
      (local.set $o (i32.add (local.get $o) (i32.const 8)))
      (br_if $outer (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 8))))
    (i32.store (i32.const 128) (i32.const 256))
    (i32.store (i32.const 132) (i32.sub (local.get $o) (i32.const 256)))
    (drop (call $w (i32.const 1) (i32.const 128) (i32.const 1) (i32.const 136))))
  (data (i32.const 0) "INPUT"))"#;

const SELECT_INPUTS_64: [u64; 8] = [
    0,
    0x8000_0000_0000_0000,
    0x3ff0_0000_0000_0000,
    0xbff0_0000_0000_0000,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    0x7ff4_0000_0000_0abc,
    0xfff8_0000_0000_beef,
];
const SELECT_INPUTS_32: [u32; 8] = [
    0,
    0x8000_0000,
    0x3f80_0000,
    0xbf80_0000,
    0x7f80_0000,
    0xff80_0000,
    0x7f80_0123,
    0xffc0_cafe,
];

fn select_kernel() -> Vec<u8> {
    let bytes = SELECT_INPUTS_64
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .chain(SELECT_INPUTS_32.iter().flat_map(|v| v.to_le_bytes()))
        .map(|byte| format!("\\{byte:02x}"))
        .collect::<String>();
    wat(&SELECT_KERNEL.replace("INPUT", &bytes))
}

/// Each function's operators, in order, as their debug names without operands.
fn operators(wasm: &[u8]) -> Vec<Vec<String>> {
    let mut funcs = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let mut reader = body.get_operators_reader().unwrap();
            let mut ops = Vec::new();
            while !reader.eof() {
                let op = format!("{:?}", reader.read().unwrap());
                ops.push(op.split([' ', '{']).next().unwrap_or_default().to_string());
            }
            funcs.push(ops);
        }
    }
    funcs
}

#[test]
fn a_gt_feeding_a_select_is_rewritten_as_lt_with_the_same_operators() {
    let wasm = select_kernel();
    let before = operators(&wasm);
    let after = operators(&exo_exec::nan::canonicalize_at_sinks(&wasm).unwrap());
    // The five comparison functions: the two operands swap and `gt` becomes `lt`, nothing else.
    for f in 0..5 {
        let mut flipped = before[f].clone();
        let gt = flipped.iter().position(|op| op.ends_with("Gt")).unwrap();
        flipped.swap(gt - 2, gt - 1);
        flipped[gt] = flipped[gt].replace("Gt", "Lt");
        assert_eq!(after[f], flipped, "function {f}");
    }
    // So each function has as many operators of each cost as before: fuel cannot change.
    assert!(before[..5].iter().flatten().any(|op| op.ends_with("Gt")));
    assert!(!after[..5].iter().flatten().any(|op| op.ends_with("Gt")));
}

#[test]
fn a_flipped_comparison_selects_what_the_original_selects_for_every_pair_of_floats() {
    let canonical64 = |x: f64| if x.is_nan() { NAN64 } else { x.to_bits() };
    let canonical32 = |x: f32| if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() };
    let mut expected = Vec::new();
    let inputs = || {
        SELECT_INPUTS_64
            .map(f64::from_bits)
            .into_iter()
            .zip(SELECT_INPUTS_32.map(f32::from_bits))
    };
    for (a, a32) in inputs() {
        for (b, b32) in inputs() {
            expected.extend(canonical64(if a > b { a } else { b }).to_le_bytes());
            expected.extend(canonical64(if b > a { a } else { b }).to_le_bytes());
            expected.extend(canonical32(if a32 > b32 { a32 } else { b32 }).to_le_bytes());
            expected.extend(canonical32(if b32 > a32 { a32 } else { b32 }).to_le_bytes());
        }
        expected.extend(canonical64(if a > 0.5 { a } else { 0.5 }).to_le_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxConfig::new(dir.path())).unwrap();
    let r = sandbox.run(&UnitSpec::wasm(&select_kernel())).unwrap();
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.stdout.len(), expected.len());
    for (i, (got, want)) in r.stdout.chunks(8).zip(expected.chunks(8)).enumerate() {
        assert_eq!(got, want, "chunk {i}");
    }
}
