//! The RSK anchor as this node sees it (issue #29). Started with `--rsk-rpc`, a task reads the
//! `CdrCheckpoint` contract every poll interval (the latest checkpoint height it holds, and the
//! RSK node's block number), so that the portal's Chain page (`checkpoint_anchor`) and `/metrics`
//! show how far the anchor is behind the chain. It only reads: relaying stays the relayer's
//! (`cdrchain relay`), and nothing here changes what the node signs or commits.
//!
//! The node does not speak EVM: the binary hands it an [`AnchorReader`] (alloy, over HTTP), so
//! that this crate holds the schedule, the state and the arithmetic, tested without an RSK node.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdrchain_runtime::crypto::EvmAddress;
use cdrchain_storage::Storage;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Shortest time between two readings of the contract, seconds.
pub const MIN_POLL_S: u64 = 1;
/// Longest time between two readings, seconds: an anchor checked less often says little.
pub const MAX_POLL_S: u64 = 3_600;
/// Default time between two readings, seconds: the relayer runs from cron every few minutes.
pub const DEFAULT_POLL_S: u64 = 60;
/// Longest one reading may take, seconds, before it counts as failed.
pub const READ_TIMEOUT_S: u64 = 30;
/// Longest error text kept and shown, characters (an RSK node's error may embed a whole
/// response).
pub const MAX_ERROR_CHARS: usize = 400;

const _: () = assert!(MIN_POLL_S <= DEFAULT_POLL_S && DEFAULT_POLL_S <= MAX_POLL_S);
const _: () = assert!(READ_TIMEOUT_S <= MAX_POLL_S);

/// What one reading of the contract found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractReading {
    /// The latest checkpoint height the contract holds (0: none yet).
    pub anchored_height: u64,
    /// The RSK node's block number when it was read.
    pub rsk_block: u64,
}

/// A reading in flight: the contract's state, or why it could not be read (said as is).
pub type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<ContractReading, String>> + Send + 'a>>;

/// Reads the contract; the binary implements it over RSK's JSON-RPC. A reader checks that the
/// contract anchors this chain (its genesis hash) and that the RSK node is the chain id the
/// spec anchors on, and fails the reading otherwise.
pub trait AnchorReader: Send + Sync {
    fn read(&self) -> ReadFuture<'_>;
}

/// The node's `--rsk-rpc` settings.
#[derive(Clone)]
pub struct AnchorSettings {
    /// The `CdrCheckpoint` contract read.
    pub contract: EvmAddress,
    /// Time between two readings ([`MIN_POLL_S`] to [`MAX_POLL_S`]).
    pub poll: Duration,
    pub reader: Arc<dyn AnchorReader>,
}

impl std::fmt::Debug for AnchorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorSettings").field("contract", &self.contract).field("poll", &self.poll).finish()
    }
}

/// What the node last learnt of the anchor, for the RPC.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AnchorSnapshot {
    /// The last successful reading and when it was taken (Unix ms).
    pub last: Option<(ContractReading, u64)>,
    /// The last failed reading's error and when (Unix ms); cleared by a successful one.
    pub error: Option<(String, u64)>,
}

/// The shared view: written by [`follow`], read by the RPC.
#[derive(Debug)]
pub struct AnchorView {
    pub contract: EvmAddress,
    pub poll: Duration,
    state: Mutex<AnchorSnapshot>,
}

impl AnchorView {
    pub fn new(contract: EvmAddress, poll: Duration) -> Self {
        AnchorView { contract, poll, state: Mutex::new(AnchorSnapshot::default()) }
    }

    pub fn snapshot(&self) -> AnchorSnapshot {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Records a reading taken at `at_ms`; says whether the state changed from good to bad or
    /// back, or the error changed (what is worth a log line).
    fn record(&self, reading: Result<ContractReading, String>, at_ms: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match reading {
            Ok(reading) => {
                let changed = state.error.is_some() || state.last.is_none();
                state.last = Some((reading, at_ms));
                state.error = None;
                changed
            }
            Err(error) => {
                let error = cdrchain_runtime::codec::excerpt_of(&error, MAX_ERROR_CHARS);
                let changed = state.error.as_ref().is_none_or(|(old, _)| *old != error);
                state.error = Some((error, at_ms));
                changed
            }
        }
    }
}

/// How far the anchor is behind a chain whose head is `head`, with a checkpoint every
/// `interval` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// The node's latest checkpoint height (the highest multiple of the interval below the
    /// head, as `checkpoint_latest` answers; 0: none yet).
    pub latest_checkpoint: u64,
    /// Blocks from the anchored height to the head.
    pub blocks: u64,
    /// Checkpoints the node has that the contract does not.
    pub checkpoints: u64,
}

/// The lag of `anchored` behind `head`.
pub fn lag(head: u64, interval: u64, anchored: u64) -> Lag {
    let latest_checkpoint = crate::validator::latest_checkpoint(head, interval);
    let checkpoints = latest_checkpoint.saturating_sub(anchored).checked_div(interval).unwrap_or(0);
    Lag { latest_checkpoint, blocks: head.saturating_sub(anchored), checkpoints }
}

/// The anchor's gauges (registered whether or not the node reads the anchor; set only when it
/// does, so that a node without `--rsk-rpc` never looks behind).
#[derive(Debug, Clone, Default)]
pub struct AnchorGauges {
    pub anchored_height: Gauge,
    pub lag_blocks: Gauge,
    pub checkpoint_interval_blocks: Gauge,
    pub checked_timestamp_seconds: Gauge,
}

impl AnchorGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = AnchorGauges::default();
        for (name, help, gauge) in [
            (
                "rsk_anchored_height",
                "The latest checkpoint height the CdrCheckpoint contract on RSK holds (--rsk-rpc)",
                &gauges.anchored_height,
            ),
            (
                "rsk_anchor_lag_blocks",
                "Blocks from the height anchored on RSK to this node's head (--rsk-rpc)",
                &gauges.lag_blocks,
            ),
            (
                "checkpoint_interval_blocks",
                "Blocks between RSK checkpoints (set with --rsk-rpc)",
                &gauges.checkpoint_interval_blocks,
            ),
            (
                "rsk_anchor_checked_timestamp_seconds",
                "When the RSK contract was last read successfully (Unix seconds; --rsk-rpc)",
                &gauges.checked_timestamp_seconds,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        gauges
    }

    fn set(&self, reading: &ContractReading, lag: &Lag, interval: u64, at_ms: u64) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.anchored_height.set(clamp(reading.anchored_height));
        self.lag_blocks.set(clamp(lag.blocks));
        self.checkpoint_interval_blocks.set(clamp(interval));
        self.checked_timestamp_seconds.set(clamp(at_ms / 1_000));
    }
}

/// Reads the contract every `settings.poll` until `stopping`, recording each reading in `view`
/// and the gauges; says in the log when the anchor becomes readable or unreadable.
pub async fn follow(
    settings: AnchorSettings,
    view: Arc<AnchorView>,
    storage: Arc<Storage>,
    gauges: AnchorGauges,
    interval: u64,
    mut stopping: watch::Receiver<bool>,
) {
    tracing::info!(
        target: "cdrchain::anchor",
        "reading the RSK anchor (contract {}) every {} s",
        settings.contract.to_hex(),
        settings.poll.as_secs()
    );
    // Known from the start, so that a node that never reads the contract is seen as not reading
    // it (alert `CdrchainRskAnchorUnread`), not as not configured.
    gauges.checkpoint_interval_blocks.set(i64::try_from(interval).unwrap_or(i64::MAX));
    loop {
        let reading = tokio::time::timeout(Duration::from_secs(READ_TIMEOUT_S), settings.reader.read())
            .await
            .unwrap_or_else(|_| Err(format!("the RSK node did not answer within {READ_TIMEOUT_S} s")));
        let at_ms = crate::now_ms();
        if let Ok(reading) = &reading {
            let head = storage.height().0;
            let lag = lag(head, interval, reading.anchored_height);
            gauges.set(reading, &lag, interval, at_ms);
        }
        let logged = reading.clone();
        if view.record(reading, at_ms) {
            match logged {
                Ok(reading) => tracing::info!(
                    target: "cdrchain::anchor",
                    "RSK anchor read: the contract holds checkpoint #{} (RSK block {})",
                    reading.anchored_height,
                    reading.rsk_block
                ),
                Err(error) => tracing::warn!(
                    target: "cdrchain::anchor",
                    "cannot read the RSK anchor (contract {}): {error}; trying again every {} s",
                    settings.contract.to_hex(),
                    settings.poll.as_secs()
                ),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(settings.poll) => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_blocks_to_the_head_and_checkpoints_the_node_has() {
        // A checkpoint every 4 blocks, head 13: the node's latest checkpoint is 12.
        assert_eq!(lag(13, 4, 8), Lag { latest_checkpoint: 12, blocks: 5, checkpoints: 1 });
        assert_eq!(lag(13, 4, 12), Lag { latest_checkpoint: 12, blocks: 1, checkpoints: 0 });
        assert_eq!(lag(13, 4, 0), Lag { latest_checkpoint: 12, blocks: 13, checkpoints: 3 });
        // Head 12 is not yet past checkpoint 12: its signatures come with the next block.
        assert_eq!(lag(12, 4, 4).latest_checkpoint, 8);
        // An anchor ahead of this node (it is catching up) is no lag.
        assert_eq!(lag(5, 4, 8), Lag { latest_checkpoint: 4, blocks: 0, checkpoints: 0 });
        assert_eq!(lag(100, 0, 0), Lag { latest_checkpoint: 0, blocks: 100, checkpoints: 0 });
    }

    #[test]
    fn the_view_keeps_the_last_good_reading_through_errors_and_logs_changes_only() {
        let view = AnchorView::new(EvmAddress([7; 20]), Duration::from_secs(60));
        let reading = ContractReading { anchored_height: 8, rsk_block: 100 };
        assert!(view.record(Ok(reading), 1_000));
        assert!(!view.record(Ok(reading), 2_000));
        assert!(view.record(Err("connection refused".into()), 3_000));
        assert!(!view.record(Err("connection refused".into()), 4_000));
        assert!(view.record(Err("timed out".into()), 5_000));
        let snapshot = view.snapshot();
        assert_eq!(snapshot.last, Some((reading, 2_000)));
        assert_eq!(snapshot.error, Some(("timed out".to_string(), 5_000)));
        assert!(view.record(Ok(reading), 6_000));
        assert_eq!(view.snapshot().error, None);
        // A long error is cut, on a character boundary.
        view.record(Err("é".repeat(MAX_ERROR_CHARS + 10)), 7_000);
        let error = view.snapshot().error.map(|(error, _)| error).unwrap_or_default();
        assert!(error.chars().count() == MAX_ERROR_CHARS + 1 && error.ends_with('…'), "{error}");
    }
}
