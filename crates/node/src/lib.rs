//! Configuration and wiring of an Exodus node: the only crate that spawns long-lived tasks.
//!
//! `node` runs one validator on Commonware's tokio runtime with authenticated TCP between
//! validators; `api` serves the HTTP API beside it (`exo node`); `devnet` writes a local
//! network's keys, genesis and configurations and runs its validators as separate processes;
//! `local` runs them in this process instead (benchmarks, tests). The chain benchmark that
//! drives them is `exo-bench`'s.
//!
//! Business logic lives in the ledger and the chain; this crate only reads files, opens
//! sockets and starts things. Key files are `exo_client::keyfile`, the same as the CLI's.

pub mod api;
pub mod config;
pub mod devnet;
pub mod local;
pub mod node;

pub use config::{NodeConfig, PeerConfig};

/// Logs to standard error, filtered by `RUST_LOG` (default `info`), colored only on a
/// terminal. Safe to call twice.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
