//! `exo-guest`: the small SDK that Exodus task apps use inside the sandbox.
//!
//! A task app is a `wasm32-wasip1` command. The sandbox (`exo-exec`) gives it its arguments, a
//! read-only directory `/in` holding the unit's named inputs, a writable directory `/out` whose
//! files are the unit's result, and the environment variables `EXO_UNIT` (the unit index) and
//! `EXO_SEED` (the unit's seed). This crate wraps those conventions so that apps read the same on
//! every machine, and it provides [`Rng`], a deterministic generator with integer-only state.
//!
//! The same apps also build natively (benchmarks, local debugging). Natively, `EXO_IN_DIR` and
//! `EXO_OUT_DIR` may point `/in` and `/out` elsewhere; inside the sandbox they are never set.
//!
//! This crate must never read the clock, OS randomness or anything else that could differ between
//! two honest providers: replicas of a unit are compared byte for byte.

use std::io;
use std::path::PathBuf;

mod rng;

pub use rng::{Rng, splitmix64};

/// Directory holding the unit's inputs (read-only inside the sandbox).
pub fn in_dir() -> PathBuf {
    dir_from_env("EXO_IN_DIR", "/in")
}

/// Directory whose regular files form the unit's result.
pub fn out_dir() -> PathBuf {
    dir_from_env("EXO_OUT_DIR", "/out")
}

fn dir_from_env(var: &str, default: &str) -> PathBuf {
    // Only honoured natively: the sandbox never sets these, so a guest always sees /in and /out.
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(default),
    }
}

/// The unit's arguments, without the program name.
pub fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// The unit index within its job (`EXO_UNIT`), 0 when unset or malformed.
pub fn unit_index() -> u64 {
    env_u64("EXO_UNIT").unwrap_or(0)
}

/// The unit's seed (`EXO_SEED`); falls back to the unit index so that a seedless run is still
/// deterministic.
pub fn seed() -> u64 {
    env_u64("EXO_SEED").unwrap_or_else(unit_index)
}

fn env_u64(var: &str) -> Option<u64> {
    std::env::var(var).ok()?.trim().parse().ok()
}

/// A generator seeded by this unit (see [`seed`]).
pub fn unit_rng() -> Rng {
    Rng::new(seed())
}

/// Reads the whole input `/in/<name>`.
pub fn read_input(name: &str) -> io::Result<Vec<u8>> {
    check_name(name)?;
    std::fs::read(in_dir().join(name))
}

/// Reads the input `/in/<name>` as UTF-8 text.
pub fn read_input_string(name: &str) -> io::Result<String> {
    check_name(name)?;
    std::fs::read_to_string(in_dir().join(name))
}

/// The names of all inputs, sorted: directory order is host-specific and must not leak into a
/// result.
pub fn input_names() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(in_dir())? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `/out/<name>`, replacing it. Names are flat (no `/`).
pub fn write_output(name: &str, bytes: &[u8]) -> io::Result<()> {
    check_name(name)?;
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn check_name(name: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0');
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid file name {name:?}: names are flat, without '/'"),
        ));
    }
    Ok(())
}

/// Prints `msg` to stderr and exits with `code`; the sandbox reports the exit code.
pub fn fail(code: i32, msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(code)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_flat() {
        assert!(check_name("tile.ppm").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
