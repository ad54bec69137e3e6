//! The cdrchain node: everything with IO around the pure runtime.
//!
//! Tasks (all on one tokio runtime; the CPU- and disk-heavy parts in `spawn_blocking`):
//! - **ingest** ([`ingest`]), one module per stage: `submission` parses and validates submitted
//!   CDRs and hashes their parties; the `writer` (a thread) gives them this operator's next
//!   sequence numbers and writes them to the durable queue (synced, one group commit for all
//!   concurrent requests) *before* answering; the `batcher` signs `CdrBatch` transactions from
//!   the queue (or the writer's `handoff` copy) and puts them in the pool until they are
//!   committed.
//! - **pool** ([`pool`]): bounded, de-duplicated transactions waiting for a block.
//! - **validator** ([`validator`]): the consensus driver around `cdrchain-consensus`'s pure state
//!   machine: feeds it network messages and timers, builds and checks proposed blocks, writes its
//!   WAL records (synced) before anything it signs leaves the node, commits decisions with their
//!   certificates, syncs blocks from peers, gossips transactions, keeps equivocation evidence.
//! - **wire** ([`wire`]): the SCALE messages validators exchange.
//! - **chain** ([`chain`]): block building, import (`apply_block` + certificate check) and commit
//!   to storage in one batch; finalized-head notifications.
//! - **rpc** ([`rpc`]): JSON-RPC 2.0 over HTTP and WebSocket on one port, and `POST /ingest/…`.
//! - **metrics** ([`metrics`]): Prometheus text format on its own port.
//!
//! [`service::run`] wires them and shuts them down in order on SIGINT/SIGTERM; before anything
//! starts, [`config::check_limits`] refuses a configuration whose limits contradict each other or
//! the chain's.
//!
//! What the node does not do: decide validity (the runtime does), or trust a peer's block without
//! `apply_block` and a commit certificate check.

pub mod anchor;
pub mod chain;
pub mod config;
pub mod error;
pub mod ingest;
pub mod keys;
pub mod labels;
pub mod metrics;
pub mod party_index;
pub mod pool;
pub mod rpc;
pub mod service;
pub mod set_steps;
pub mod validator;
/// What validators send each other (moved to the consensus crate so the fuzz targets reach it
/// without RocksDB or libp2p).
pub use cdrchain_consensus::wire;

/// Wall-clock time in milliseconds since the Unix epoch (block timestamps, "since when" marks):
/// the node's one reading of the wall clock, so that a test can skew it ([`clock_offset_ms`]).
pub(crate) fn now_ms() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    now.saturating_add_signed(clock_offset_ms())
}

/// Fault injection for the clock-skew test (tests/faults.rs): `CDRCHAIN_FAILPOINT=clock-offset-ms:N`
/// moves this node's wall clock by N ms (negative: behind). libfaketime would do it from outside,
/// but it crashes at load beside the binary's mimalloc (its constructor's `dlsym` error string is
/// freed by mimalloc). Read once; never set in production.
fn clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("CDRCHAIN_FAILPOINT")
            .ok()
            .and_then(|set| set.strip_prefix("clock-offset-ms:").and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    })
}

pub use config::CheckpointSigning;
pub use config::{NetworkSettings, NodeConfig};

/// Most pool transactions considered for one block.
pub const MAX_TXS_PER_BUILD: usize = 4_096;
pub use error::NodeError;
