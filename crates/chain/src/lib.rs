//! Commonware glue for the Exodus chain: blocks, the application that executes them on an
//! authenticated store, the mempool, evidence of consensus faults and the per-validator engine.
//!
//! Consensus is `simplex` (ed25519, attributable votes) with `marshal` delivering finalized
//! blocks in order. Execution state lives in a QMDB `any` database managed by
//! `commonware_glue::stateful`: propose and verify run on speculative batches forked from the
//! parent, only finalized blocks are applied, and each finalized block is one durable commit.
//!
//! Everything here takes its clock, randomness, storage and network from the Commonware runtime
//! context, so the same code runs under the deterministic simulator and under tokio. This crate
//! must never spawn with tokio, read the wall clock or use OS randomness directly.

pub mod block;
pub mod evidence;
pub mod votes;

pub use block::{
    Block, BlockContext, BlockDigest, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_BLOCK_WORK, block_work,
};
pub use evidence::EvidenceProof;
pub mod admission;
pub mod app;
pub mod engine;
pub mod epochs;
pub mod events;
pub mod mempool;
pub mod orchestrator;
pub mod store;

pub use app::{App, EvidencePool, GATHER_WORK, Pacing, Sources};
pub use events::{ChainEvents, ChainStatus, FinalizedBlock};
pub use mempool::{Mempool, MempoolError, MempoolLimits};
pub use store::{StateDatabases, StateDb, StateReader};
