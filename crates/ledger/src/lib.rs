//! The Exodus state machine: accounts, fees, receipts and consensus evidence.
//!
//! The ledger is a pure, synchronous, deterministic function from (state, block) to state. It
//! reads and writes through [`StateCache`], which holds what is known of the state so far. A read
//! of a key the cache does not hold returns [`Missing`]; the caller (the chain, which owns the
//! asynchronous authenticated store) fetches that key and runs the transaction again. That
//! keeps this crate free of I/O and async while the store stays the single source of truth.
//!
//! Every bad transaction ends in a [`Receipt`] that says why, never in a panic: arithmetic is
//! checked and nothing here indexes untrusted data.
//!
//! This crate must never do I/O, read a clock, draw randomness, spawn tasks or depend on
//! tokio, axum, wasmtime or serde_json.

mod cache;
pub mod compute;
mod genesis;
mod jobs;
mod keys;
mod memory;
mod records;
mod transition;

pub use cache::{Checkpoint, MemoryBacking, Missing, StateCache};
pub use genesis::{Genesis, GenesisAccount, Params};
pub use jobs::{REPUTATION_MAX, REPUTATION_START, fuel_cost, worst_case_escrow};
pub use keys::{KEY_LEN, Key, Tag, apps_key, book_key, counters_key, open_jobs_key, unit_key};
pub use memory::MemoryChain;
pub use records::{
    Account, ChainMeta, Evidence, EvidenceKind, Inclusion, MAX_DETAIL_LEN, Receipt, Refusal,
    Rejection, TxStatus,
};
pub use transition::{
    BlockEnv, Ledger, account_key, chain_meta_key, decode_account, decode_meta, decode_receipt,
    receipt_key,
};
