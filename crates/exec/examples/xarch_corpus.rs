//! The cross-architecture determinism corpus: runs every case under each NaN mode and prints
//! one line per run, `case mode outcome digest fuel`. `scripts/cross-arch-check` runs this
//! program on x86-64 and, built for aarch64, under qemu, and compares the lines.
//!
//! `cargo run --release -p exo-exec --example xarch_corpus [-- --dump CASE MODE]`; `--dump`
//! prints that run's stdout in hex instead.

#[path = "../tests/guests/mod.rs"]
mod guests;

use exo_exec::{NanMode, Sandbox, SandboxConfig, UnitSpec};

/// One unit of the corpus. `machine_fuel` marks outcomes whose fuel depends on the machine
/// (a stack overflow's depth): their digest must agree, their fuel need not.
struct Case {
    name: String,
    wasm: Vec<u8>,
    args: Vec<String>,
    inputs: Vec<(&'static str, Vec<u8>)>,
    fuel: u64,
    max_output_bytes: u64,
    machine_fuel: bool,
}

impl Case {
    fn new(name: &str, wasm: Vec<u8>) -> Self {
        Case {
            name: name.into(),
            wasm,
            args: Vec::new(),
            inputs: Vec::new(),
            fuel: 20_000_000_000,
            max_output_bytes: 1 << 20,
            machine_fuel: false,
        }
    }

    fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    fn input(mut self, name: &'static str, bytes: &[u8]) -> Self {
        self.inputs.push((name, bytes.to_vec()));
        self
    }

    fn spec(&self) -> UnitSpec<'_> {
        let mut spec = UnitSpec::wasm(&self.wasm)
            .args(self.args.iter().cloned())
            .fuel(self.fuel)
            .max_output(self.max_output_bytes)
            .timeout_ms(600_000);
        for (name, bytes) in &self.inputs {
            spec = spec.input(*name, bytes);
        }
        spec
    }
}

fn corpus() -> Vec<Case> {
    use guests::{
        METADATA, MISSING_INPUT, NAN_KERNEL, SLOW_WRITES, module, nan_input, two_gib, wat,
    };
    // The studio scene, compiled as a requester does; the app reads nothing else.
    let studio = exo_apps::render::studio_scene().expect("the shipped studio scene compiles");
    let mut cases = vec![
        Case::new("render", exo_apps::RENDER_WASM.to_vec())
            .args(&["24", "16", "0", "0", "24", "16", "2", "0"])
            .input(exo_apps::render::SCENE_INPUT, &studio.canonical),
        Case::new("backtest", exo_apps::BACKTEST_WASM.to_vec())
            .args(&[
                "sma=5:20:5/30:60:10",
                "cost=5",
                "slip=0",
                "folds=1",
                "sets=0:16",
            ])
            .input("prices.csv", exo_apps::SP500_CSV.as_bytes()),
        Case::new("montecarlo", exo_apps::MONTECARLO_WASM.to_vec()).args(&[
            "spot=100",
            "strike=100",
            "rate=0.05",
            "vol=0.2",
            "maturity=1",
            "pairs=2000",
            "seed=7",
            "stream=0",
        ]),
        Case::new("nan-kernel", wat(NAN_KERNEL)).input("nan.bin", &nan_input()),
        Case::new("metadata-listing", module(METADATA))
            .input("b", b"bb")
            .input("a", b"a")
            .input("A", b"AAAA")
            .input("zz", b"z"),
        Case::new("missing-input", module(MISSING_INPUT)).input("present", b"x"),
        Case {
            fuel: 20_000_000,
            ..Case::new("slow-io", module(SLOW_WRITES))
        },
        Case {
            machine_fuel: true,
            ..Case::new("stack-overflow", exo_apps::PROBE_WASM.to_vec()).args(&["recurse"])
        },
        Case::new("clocks-hashmap", exo_apps::PROBE_WASM.to_vec()).args(&["time"]),
    ];
    let attacks = [
        (
            "write-2gib-fd_write",
            "(drop (call $write (local.get $fd) (i32.const 0) (i32.const 1024) (i32.const 16400)))",
        ),
        (
            "write-2gib-set_size",
            "(drop (call $setsize (local.get $fd) (i64.const 2147483648)))",
        ),
        (
            "write-2gib-pwrite",
            "(drop (call $pwrite (local.get $fd) (i32.const 0) (i32.const 1) (i64.const 2147483648) (i32.const 16400)))",
        ),
    ];
    for (name, attack) in attacks {
        cases.push(Case::new(name, two_gib(attack)));
    }
    cases
}

const MODES: [(NanMode, &str); 3] = [
    (NanMode::AtObservation, "observed"),
    (NanMode::Always, "always"),
    (NanMode::Off, "off"),
];

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let dump = match argv.as_slice() {
        [flag, case, mode] if flag == "--dump" => Some((case.clone(), mode.clone())),
        [] => None,
        _ => anyhow::bail!("usage: xarch_corpus [--dump CASE MODE]"),
    };
    let cache = tempfile::tempdir()?;
    let cases = corpus();
    println!("# arch {}", std::env::consts::ARCH);
    for (mode, mode_name) in MODES {
        let sandbox = Sandbox::new(SandboxConfig {
            nan_mode: mode,
            max_concurrent_units: 1,
            ..SandboxConfig::new(cache.path())
        })?;
        for case in &cases {
            let r = sandbox.run(&case.spec())?;
            match &dump {
                Some((c, m)) if *c == case.name && m == mode_name => {
                    println!("{}", hex::encode(&r.stdout));
                }
                Some(_) => {}
                None => {
                    let fuel = if case.machine_fuel {
                        format!("({} machine-dependent)", r.fuel_used)
                    } else {
                        r.fuel_used.to_string()
                    };
                    println!(
                        "{} {mode_name} {} {} {fuel}",
                        case.name,
                        r.outcome,
                        r.digest_hex()
                    );
                }
            }
        }
    }
    Ok(())
}
