//! The HTTP API of an Exodus node: JSON over HTTP for status, transactions, accounts,
//! finalized blocks, the compute market (providers, their work, offers and depth, jobs and
//! their units, apps), server-sent events (blocks and assignments), the node's blob store,
//! unit outputs and Prometheus metrics.
//!
//! The API sees the node only through the [`NodeView`] trait, so it knows nothing of the
//! Commonware runtime, and tests run every route against an in-memory node. Before a
//! transaction reaches the mempool the API makes the checks the ledger would make against
//! finalized state, so that a transaction certain to fail costs no block space; the ledger
//! stays the authority and repeats every check.
//!
//! The blob store ([`BlobStore`], given to [`router_with`] in an [`ApiConfig`]) holds job
//! inputs, app modules and output archives by BLAKE3 hash, bounded per blob and in total; the
//! outputs routes tie a unit to the archive of its results, checked against the digest the
//! chain accepted ([`outputs`] is the archive format).
//!
//! Features: `server` (default) is the HTTP server; without it the crate is only [`wire`] and
//! [`outputs`], what a client needs, free of axum and the chain. `testing` adds
//! `testing::MemoryNode`, a node in memory (real ledger and mempool, no consensus) for tests
//! of the API's users.
//!
//! This crate must never panic on a request, hold an unbounded collection a client can grow,
//! change chain state other than through [`NodeView::submit`], serve a blob whose bytes no
//! longer have its hash, or spawn long-lived tasks (the node runs [`serve`]).

pub mod outputs;
pub mod wire;

#[cfg(feature = "server")]
pub mod blobs;
#[cfg(feature = "server")]
mod dashboard;
#[cfg(feature = "server")]
mod error;
#[cfg(feature = "server")]
mod limits;
#[cfg(feature = "server")]
pub mod market;
#[cfg(feature = "server")]
mod metrics;
#[cfg(feature = "server")]
mod node;
#[cfg(feature = "server")]
pub mod openapi;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod staking;

#[cfg(feature = "server")]
pub use blobs::{BlobStore, PeerBlobs};
#[cfg(feature = "server")]
pub use error::ApiError;
#[cfg(feature = "server")]
pub use limits::{ApiLimits, RateLimiter};
#[cfg(feature = "server")]
pub use metrics::ApiMetrics;
#[cfg(feature = "server")]
pub use node::NodeView;
#[cfg(feature = "server")]
pub use server::{
    ApiConfig, collect_blobs_forever, router, router_with, routes, serve, serve_with,
};
#[cfg(feature = "testing")]
pub mod testing;
