//! "The operator's stream is stuck": what `system_health` shows when the batcher cannot move the
//! operator's CDRs onto the chain (review M8), so that an operator learns it from a probe instead
//! of from a partner months later. The batcher sets it when a pass fails (a queued CDR that does
//! not decode, a damaged queue) or when the batch at the chain's next sequence was refused or lost
//! [`STUCK_AFTER_RESUBMITS`] times in a row; it clears it once the chain passes that sequence.

use std::sync::{Arc, Mutex, PoisonError};

use cdrchain_runtime::ids::{OperatorId, Sequence};
use serde::{Deserialize, Serialize};

/// Resubmissions from one sequence after which the stream counts as stuck: a batch is resubmitted
/// when it left the pool uncommitted (refused by a block, or evicted); a few in a row happen when
/// a peer was slow, more mean the chain will not take it.
pub const STUCK_AFTER_RESUBMITS: u32 = 5;

/// Why the operator's stream does not move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestStuck {
    /// Since when (ms since the Unix epoch).
    pub since_ms: u64,
    /// The CDR id the stream waits at.
    pub at: String,
    /// What went wrong, and what to do.
    pub reason: String,
}

/// Shared by the batcher (which sets it) and the RPC (which shows it).
#[derive(Debug, Default)]
pub struct StuckFlag {
    state: Mutex<Option<(Sequence, IngestStuck)>>,
}

impl StuckFlag {
    pub fn new() -> Arc<StuckFlag> {
        Arc::new(StuckFlag::default())
    }

    /// What `system_health` shows: `None` while the stream moves.
    pub fn get(&self) -> Option<IngestStuck> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|(_, stuck)| stuck.clone())
    }

    /// The stream waits at `operator:sequence` because of `reason`; logged once per new reason.
    pub(super) fn set(&self, operator: &OperatorId, sequence: Sequence, reason: String) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let same = state.as_ref().is_some_and(|(at, stuck)| *at == sequence && stuck.reason == reason);
        if same {
            return;
        }
        let since_ms = match state.as_ref() {
            Some((at, stuck)) if *at == sequence => stuck.since_ms,
            _ => crate::now_ms(),
        };
        tracing::error!(
            target: "cdrchain::ingest",
            "`{operator}`'s CDRs are stuck at {operator}:{}: {reason}",
            sequence.0
        );
        *state = Some((sequence, IngestStuck { since_ms, at: format!("{operator}:{}", sequence.0), reason }));
    }

    /// The chain's next sequence of the operator is `committed`: a stream stuck below it moves.
    pub(super) fn passed(&self, operator: &OperatorId, committed: Sequence) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.as_ref().is_some_and(|(at, _)| *at < committed) {
            tracing::info!(target: "cdrchain::ingest", "`{operator}`'s CDRs move again (at {operator}:{})", committed.0);
            *state = None;
        }
    }
}

/// The advice that goes with a stream that does not move.
pub(super) const ADVICE: &str = "if the record can never be committed, `cdrchain gap declare` skips it \
     (it is quarantined and listed)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_stream_keeps_its_start_until_the_chain_passes_it() {
        let flag = StuckFlag::new();
        let alice = OperatorId::new("alice").unwrap();
        assert_eq!(flag.get(), None);
        flag.set(&alice, Sequence(10), "first".into());
        let first = flag.get().unwrap();
        assert_eq!(first.at, "alice:10");
        flag.set(&alice, Sequence(10), "second".into());
        let second = flag.get().unwrap();
        assert_eq!((second.since_ms, second.reason.as_str()), (first.since_ms, "second"));
        flag.passed(&alice, Sequence(10));
        assert!(flag.get().is_some(), "the chain has not passed 10 yet");
        flag.passed(&alice, Sequence(11));
        assert_eq!(flag.get(), None);
    }
}
