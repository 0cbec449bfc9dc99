//! Measurement harnesses: what Exodus is measured with, apart from the code it measures.
//!
//! A harness runs a workload, times it and builds a report; `exo bench` parses the arguments
//! and prints the report. One module per subject:
//!
//! - [`chain`]: finalized transfers per second and finality latency of validators over
//!   loopback, the signature-verification ceiling, and a devnet's peak memory (`exo bench chain`);
//! - [`market`]: the batch matcher on synthetic books, and one constraint check
//!   (`exo bench market`);
//! - [`exec`]: the sandbox against native code on the same kernels, and a tiny module's latency
//!   (`exo bench exec`);
//! - [`tasks`]: accepted work units per second of the whole market, validators, workers and a
//!   requester in one process (`exo bench tasks`);
//! - [`soak`]: a devnet under honest load and every attack of the security audit at once,
//!   checked for lost tokens, stuck units, finality gaps and 5xx answers (`exo bench soak`);
//! - [`proof_of_task`]: the real ledger block by block against simulated providers, some of
//!   which lie or plan (a colluding operator's sleepers, withholders, dispute copiers, Sybil
//!   churners and fuel inflaters), reporting how many bad results got through, at what cost,
//!   and whether deviating paid.
//!
//! The workloads' fixtures (synthetic books, tiny modules) belong to the crates they exercise,
//! which test with them too (`exo_market::fixtures`, `exo_exec::fixtures`).
//!
//! This crate reads the wall clock; it must never be a dependency of the node, the worker, the
//! exec sandbox, the market or the ledger: it measures them from outside. Only the CLI (for
//! `exo bench`) depends on it.

pub mod chain;
pub mod exec;
pub mod market;
pub mod proof_of_task;
pub mod soak;
pub mod tasks;

/// The value at rank `p` (0 to 1, rounded to the nearest) of `values`, which it sorts; NaN
/// when there are none.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[rank.min(values.len() - 1)]
}
