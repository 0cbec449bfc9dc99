//! The Exodus state machine: a block runner over modules that own their state, with a bank
//! that owns every token.
//!
//! The ledger is a pure, synchronous, deterministic function from (state, block) to state.
//! [`exec::BlockRun`] executes a block and asks its caller for the state keys it needs
//! ([`exec::Step::Need`]); the caller (the chain, which owns the asynchronous authenticated
//! store) loads them and steps again. That keeps this crate free of I/O and async while the
//! store stays the single source of truth.
//!
//! - [`state`]: keys (a namespace byte per module), the block's cache, typed records with their
//!   bounds, faults.
//! - [`exec`]: the block runner, the prechecks shared with admission, the router, receipts.
//! - [`modules`]: `bank` (balances, pots, supply), `evidence` (consensus faults), `market` (the
//!   compute market and proof of task).
//!
//! Every bad transaction ends in a [`exec::Receipt`] with a module's code and numbers, never in
//! a panic: arithmetic is checked and nothing here indexes untrusted data. A state that breaks
//! an invariant (a record that does not decode, a pot that disagrees with its module, tokens
//! not conserved) ends in a [`state::Fault`], which stops the node.
//!
//! This crate must never do I/O, read a clock, draw randomness, spawn tasks or depend on
//! tokio, axum, wasmtime or serde_json.

pub mod exec;
mod genesis;
pub mod modules;
pub mod state;

pub use exec::{
    BlockEnv, BlockInput, BlockOutcome, BlockRun, ChainMeta, Inclusion, MAX_PARENT_VOTERS,
    MAX_SKIPPED_LEADERS, MemoryChain, Policy, Receipt, Rejection, Signatures, Step, TxStatus,
    tx_work,
};
pub use genesis::{Genesis, GenesisAccount, GenesisError, Params, base_units};
pub use modules::bank::Account;
pub use modules::evidence::{Evidence, EvidenceKind};
pub use modules::market::{
    MIN_WINDOW_SECS, REPUTATION_MAX, REPUTATION_NO_SHOW, REPUTATION_START, REPUTATION_WRONG,
    fuel_cost, worst_case_escrow,
};
pub use state::{Fault, KEY_LEN, Key, MemoryBacking, Missing, StateCache};
