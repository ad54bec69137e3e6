//! Declared sequence gaps (review M8): a queued CDR that can never be committed (it no longer
//! decodes, or the chain's rules now refuse it) used to block its operator's stream for good:
//! every later CDR waited behind it, and the node kept acknowledging until its queue was full.
//! The operator declares the range a gap (`cdrchain gap declare`, `cdr_declareGap`, admin): the
//! stuck items are kept aside (quarantined, in the database's metadata, and shown), the batcher
//! signs a `SequenceGap` with the reason instead of their batch, and the stream goes on once a
//! block records it. The gap and its reason are on the chain for every partner to see.

use std::sync::{Arc, Mutex, PoisonError};

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::{OperatorId, ReasonText, Sequence};
use parity_scale_codec::Encode;

use super::{committed_next, Ingest};

/// The most queued items one declaration may cover: a gap is for a few poisoned records, and
/// its quarantine copy is read into memory.
pub const MAX_GAP_ITEMS: u64 = 10_000;

/// A gap declared here and not yet recorded by a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingGap {
    pub from: Sequence,
    /// Inclusive.
    pub to: Sequence,
    pub reason: ReasonText,
}

/// Shared by the RPC (which declares) and the batcher (which signs it).
pub(super) type GapSlot = Arc<Mutex<Option<PendingGap>>>;

pub(super) fn pending(slot: &GapSlot) -> Option<PendingGap> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

pub(super) fn clear(slot: &GapSlot) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Why a gap was not declared.
#[derive(Debug, thiserror::Error)]
pub enum GapError {
    #[error(
        "this node records `{ours}`'s CDRs: it can declare gaps in `{ours}`'s stream only, not `{asked}`'s"
    )]
    NotOurs { asked: OperatorId, ours: OperatorId },
    #[error(
        "a gap starts where the chain is in the stream: `{operator}`'s next sequence is {next}, not {from} \
         (the CDRs before it are committed or on their way)"
    )]
    NotAtNext { operator: OperatorId, next: u64, from: u64 },
    #[error("the gap ends ({to}) before it starts ({from})")]
    Backwards { from: u64, to: u64 },
    #[error(
        "sequence {to} was never given to a CDR here (the next is {next}): a gap covers queued CDRs only"
    )]
    BeyondQueued { to: u64, next: u64 },
    #[error("a gap covers at most {MAX_GAP_ITEMS} CDRs, not {count}")]
    TooLong { count: u64 },
    #[error("the reason: {0}")]
    Reason(String),
    #[error("storage: {0}")]
    Storage(String),
}

/// A declared gap, with what it quarantined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredGap {
    pub from: Sequence,
    pub to: Sequence,
    /// Each quarantined item: its sequence and what it is (the CDR's call id, or why it does not
    /// decode, with its first bytes).
    pub quarantined: Vec<(Sequence, String)>,
}

/// What a quarantined item is, in a line.
fn describe(bytes: &[u8]) -> String {
    match decode_exact::<CdrBody>(bytes) {
        Ok(body) => format!(
            "call {} ({}, {} → {})",
            body.call_id, body.system_id, body.caller_operator, body.callee_operator
        ),
        Err(e) => {
            let head: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("does not decode ({e}); {} bytes, starting {head}", bytes.len())
        }
    }
}

impl Ingest {
    /// Declares `[from, to]` of this node's stream a gap, for `reason`: quarantines the queued
    /// items and has the batcher sign a `SequenceGap` instead of them.
    pub fn declare_gap(
        &self,
        operator: &OperatorId,
        from: u64,
        to: u64,
        reason: &str,
    ) -> Result<DeclaredGap, GapError> {
        if operator != &self.operator {
            return Err(GapError::NotOurs { asked: operator.clone(), ours: self.operator.clone() });
        }
        let reason = ReasonText::new(reason.trim()).map_err(|e| GapError::Reason(e.to_string()))?;
        let storage_error = |e: &dyn std::fmt::Display| GapError::Storage(e.to_string());
        let next = committed_next(&self.storage, &self.operator).map_err(|e| storage_error(&e))?.0;
        if from != next {
            return Err(GapError::NotAtNext { operator: operator.clone(), next, from });
        }
        if to < from {
            return Err(GapError::Backwards { from, to });
        }
        let assigned = self.next_assigned.load(std::sync::atomic::Ordering::Acquire);
        if to >= assigned {
            return Err(GapError::BeyondQueued { to, next: assigned });
        }
        let count = to - from + 1;
        if count > MAX_GAP_ITEMS {
            return Err(GapError::TooLong { count });
        }
        let limit = usize::try_from(count).unwrap_or(usize::MAX);
        let items = self.storage.queued(Sequence(from), limit).map_err(|e| storage_error(&e))?;
        let items: Vec<(u64, Vec<u8>)> =
            items.into_iter().filter(|(s, _)| s.0 <= to).map(|(s, bytes)| (s.0, bytes)).collect();
        self.storage
            .meta_put(&format!("quarantine/{from}-{to}"), &items.encode())
            .map_err(|e| storage_error(&e))?;
        let quarantined: Vec<(Sequence, String)> =
            items.iter().map(|(s, bytes)| (Sequence(*s), describe(bytes))).collect();
        for (sequence, what) in &quarantined {
            tracing::warn!(target: "cdrchain::ingest", "gap declared: {operator}:{} quarantined: {what}", sequence.0);
        }
        tracing::warn!(
            target: "cdrchain::ingest",
            "gap declared in `{operator}`'s stream, {from} to {to}: {reason}; the batcher signs it next"
        );
        *self.gap.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(PendingGap { from: Sequence(from), to: Sequence(to), reason });
        self.notify.notify_one();
        Ok(DeclaredGap { from: Sequence(from), to: Sequence(to), quarantined })
    }
}
