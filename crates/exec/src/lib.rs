//! `exo-exec`: the Exodus execution sandbox. It runs a requester's work unit — a WASI preview 1
//! (`wasm32-wasip1`) command module — on a provider's machine and reports a typed outcome, the
//! fuel it used and a digest of its results.
//!
//! Replicas of a unit run on different machines and are accepted only when their digests and
//! fuel agree exactly, and providers are paid by fuel. So a run must be **deterministic** (NaN
//! canonicalisation where NaN bits become observable (`nan.rs`), no threads, no relaxed SIMD, fixed clocks, randomness seeded by the unit,
//! sleeps that return at once, and a filesystem of the sandbox's own: `vfs.rs`), **metered**
//! (fuel, for wasm instructions and for the host work of every WASI call: `wasi_p1.rs`), and
//! **bounded** (memory, wall time, `/out` by bytes and entries, stdout and stderr, each quota
//! checked on the write that would cross it). The digest is BLAKE3 over the outcome, stdout and
//! a canonical listing of `/out` (see [`digest`]).
//!
//! What this crate must never do:
//! - give a guest the network, any host directory (its `/in`, read-only, and `/out` are an
//!   in-memory tree), the host's clock or environment, or OS randomness;
//! - let anything about the host (timestamps, inode numbers, listing order, errno choices)
//!   reach a guest, or hold more than a unit's output quota (plus a fixed slack) for it;
//! - panic, hang or grow without bound on any module, input or guest behaviour;
//! - deserialize a compiled artifact it did not write itself (see [`cache`]).
//!
//! Entry points: [`Sandbox::new`] and [`Sandbox::run`]; [`cli::run_local`] for `exo exec run`;
//! [`fixtures::TINY_WASM`] for tests and `exo bench` (whose harness is `exo-bench`).

pub mod cache;
pub mod cli;
pub mod digest;
mod error;
pub mod fixtures;
mod host;
mod limits;
pub mod nan;
mod outputs;
mod sandbox;
mod spec;
mod vfs;
mod wasi_p1;

pub use cache::CacheStats;
pub use error::ExecError;
pub use limits::{ModuleLimit, ModuleRefusal, check_module};
pub use nan::NanMode;
pub use sandbox::{Sandbox, SandboxConfig};
pub use spec::{
    Input, InputData, MAX_ARCHIVE_BYTES, ModuleHash, ModuleSource, Outcome, OutputFile,
    OutputStream, TrapCode, UnitResult, UnitSpec,
};
pub use wasi_p1::{HOST_CALL_FUEL, IO_FUEL_PER_KIB, POLL_FUEL_PER_SUBSCRIPTION, io_fuel};

/// One compute unit, the market's fungible unit of work, is 10^9 fuel.
pub const FUEL_PER_COMPUTE_UNIT: u64 = 1_000_000_000;
