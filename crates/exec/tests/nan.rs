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
