//! A stand-in for `exo exec run` until the CLI wires it:
//! `cargo run -p exo-exec --example exec_run -- MODULE.wasm OUT_DIR [name=path ...] [-- args...]`.

use exo_exec::cli::{LocalRun, run_local};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let module = PathBuf::from(
        argv.next()
            .ok_or_else(|| anyhow::anyhow!("missing MODULE.wasm"))?,
    );
    let out_dir = PathBuf::from(
        argv.next()
            .ok_or_else(|| anyhow::anyhow!("missing OUT_DIR"))?,
    );
    let mut inputs = Vec::new();
    let mut args = Vec::new();
    let mut in_args = false;
    for a in argv {
        if in_args {
            args.push(a);
        } else if a == "--" {
            in_args = true;
        } else {
            let (name, path) = a
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("input must be name=path: {a}"))?;
            inputs.push((name.to_string(), PathBuf::from(path)));
        }
    }
    let report = run_local(&LocalRun {
        module,
        inputs,
        args,
        unit_index: 0,
        seed: 0,
        fuel_limit: 100 * exo_exec::FUEL_PER_COMPUTE_UNIT,
        memory_mib: 512,
        timeout_ms: 60_000,
        max_output_bytes: 256 << 20,
        out_dir: Some(out_dir),
        cache_dir: std::env::temp_dir().join("exo-exec-cache"),
    })?;
    print!("{}", String::from_utf8_lossy(&report.stdout));
    eprint!("{}", String::from_utf8_lossy(&report.stderr));
    println!("outcome: {}", report.outcome);
    println!("digest: {}", report.digest_hex);
    println!("fuel: {}", report.fuel_used);
    println!("outputs: {}", report.outputs.join(", "));
    Ok(())
}
