//! Measurement harnesses: what Exodus is measured with, apart from the code it measures.
//!
//! [`proof_of_task`] runs the real ledger block by block against simulated providers, some of
//! which lie, and reports how many bad results got through and at what cost.
//!
//! This crate must never be a dependency of the node, the worker or the CLI's runtime paths:
//! it measures them from outside.

pub mod proof_of_task;
