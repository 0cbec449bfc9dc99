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
