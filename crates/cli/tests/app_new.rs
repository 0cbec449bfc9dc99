//! `exo app new` end to end: the scaffolded crate builds for wasm32-wasip1 offline against this
//! workspace's `exo-guest`, its own tests pass, and `exo exec run` runs it in the sandbox with
//! the result its README promises.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const NAME: &str = "word-count";

fn exo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exo"))
        .args(args)
        .env_remove("EXO_NODE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn workspace_root() -> PathBuf {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap()
}

/// Runs cargo on the scaffolded crate as its user would, offline, in its own target directory.
/// Only the variables a user's shell has are passed on: the ones cargo sets for this test
/// (target directory, flags, profiles) are for this workspace's build, not the app's.
fn cargo(app: &Path, target_dir: &Path, args: &[&str]) {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args)
        .arg("--offline")
        .arg("--manifest-path")
        .arg(app.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| {
            [
                "PATH",
                "HOME",
                "TMPDIR",
                "CARGO_HOME",
                "RUSTUP_HOME",
                "RUSTUP_TOOLCHAIN",
                "CARGO_BUILD_JOBS",
            ]
            .iter()
            .any(|keep| k == keep)
        }));
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}",
        text(&output.stderr)
    );
}

fn scaffold(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["app", "new", NAME, "--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    exo(&args)
}

#[test]
fn a_scaffolded_app_builds_for_wasm_and_counts_its_input_in_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join(NAME);
    let root = workspace_root();
    let created = scaffold(&app, &["--guest-path", root.to_str().unwrap()]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).contains("cargo build --release --target wasm32-wasip1"));

    let target = tmp.path().join("target");
    cargo(&app, &target, &["test", "--quiet"]);
    cargo(
        &app,
        &target,
        &["build", "--release", "--target", "wasm32-wasip1"],
    );
    let module = target.join(format!("wasm32-wasip1/release/{NAME}.wasm"));

    let words = tmp.path().join("words.txt");
    std::fs::write(&words, "to be or not to be\nthat is the question\n").unwrap();
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let ran = exo(&[
        "--json",
        "exec",
        "run",
        module.to_str().unwrap(),
        "--input",
        words.to_str().unwrap(),
        "--arg",
        "to",
        "--arg",
        "be",
        "--unit",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    let report: Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(report["outcome"], "ok", "{report}");
    assert_eq!(report["stdout"], "unit 3: counted 1 inputs\n");
    assert_eq!(report["outputs"], serde_json::json!(["counts.csv"]));
    assert_eq!(
        std::fs::read_to_string(out.join("counts.csv")).unwrap(),
        "input,lines,words,bytes,to,be\nwords.txt,2,10,40,2,2\n"
    );
}

#[test]
fn without_a_guest_path_the_app_uses_the_checkout_exo_was_built_from() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join(NAME);
    let created = scaffold(&app, &[]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let manifest: toml::Table = std::fs::read_to_string(app.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let guest = workspace_root().join("crates/guest");
    assert_eq!(
        manifest["dependencies"]["exo-guest"]["path"].as_str(),
        guest.to_str()
    );
}

#[test]
fn bad_names_existing_directories_and_wrong_guest_paths_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = tmp.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    let fresh = tmp.path().join("fresh");
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["app", "new", "My App"], "a-z 0-9 - _"),
        (vec!["app", "new", "test"], "reserved"),
        (
            vec!["app", "new", NAME, "--dir", taken.to_str().unwrap()],
            "already exists",
        ),
        (
            vec![
                "app",
                "new",
                NAME,
                "--dir",
                fresh.to_str().unwrap(),
                "--guest-path",
                tmp.path().to_str().unwrap(),
            ],
            "is the exo-guest crate",
        ),
    ];
    for (args, reason) in cases {
        let output = exo(&args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(reason),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 0);
    assert!(!fresh.exists());
}
