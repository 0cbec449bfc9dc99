//! Configuration and wiring of an Exodus node: the only crate that spawns long-lived tasks.
//!
//! `node` runs one validator on Commonware's tokio runtime with authenticated TCP between
//! validators and the HTTP API beside it; `devnet` writes a local network's keys, genesis and
//! configurations and runs its validators as separate processes.
//!
//! Business logic lives in the ledger and the chain; this crate only reads files, opens
//! sockets and starts things.

pub mod bench;
pub mod config;
pub mod devnet;
pub mod keyfile;
pub mod node;

pub use config::{NodeConfig, PeerConfig};
