//! The cdrchain node: everything with IO around the pure runtime.
//!
//! Tasks (all on one tokio runtime; the CPU- and disk-heavy parts in `spawn_blocking`):
//! - **ingest** ([`ingest`]): parses and validates submitted CDRs, hashes their parties, gives them
//!   this operator's next sequence numbers and writes them to the durable queue (synced, one group
//!   commit for all concurrent requests) *before* answering; a batcher signs `CdrBatch`
//!   transactions from the queue and puts them in the pool until they are committed.
//! - **pool** ([`pool`]): bounded, de-duplicated transactions waiting for a block.
//! - **authoring** ([`authoring`]): the consensus driver. Today the single-validator case (n = 1):
//!   every block interval, build a block from the pool through the runtime's `BlockBuilder`,
//!   precommit it (the vote is written to the WAL before it is signed), commit it with its
//!   certificate. Multi-validator consensus (issue #4) drives the same [`chain::Chain`] seams.
//! - **chain** ([`chain`]): block building, import (`apply_block` + certificate check) and commit
//!   to storage in one batch; finalized-head notifications.
//! - **rpc** ([`rpc`]): JSON-RPC 2.0 over HTTP and WebSocket on one port, and `POST /ingest/…`.
//! - **metrics** ([`metrics`]): Prometheus text format on its own port.
//!
//! [`service::run`] wires them and shuts them down in order on SIGINT/SIGTERM.
//!
//! What the node does not do: decide validity (the runtime does), or trust a peer's block without
//! `apply_block` and a commit certificate check.

pub mod authoring;
pub mod chain;
pub mod config;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod pool;
pub mod rpc;
pub mod service;

pub use config::NodeConfig;

/// Most pool transactions considered for one block.
pub const MAX_TXS_PER_BUILD: usize = 4_096;
pub use error::NodeError;
