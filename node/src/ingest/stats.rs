//! What ingest took and refused since the node started, per source (the portal's operator view,
//! issue #29; RPC `ingest_stats`): CDRs accepted, duplicates answered with their first id,
//! submissions refused and why, parties recorded as written; and the admission refusals (the
//! queue full, the chain slower than the offer, the disk reserve). Counted once per submission,
//! never per CDR under a lock: the ingest path pays a map lookup per source of a submission.
//! The same numbers are Prometheus counters (`metrics.rs`).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::submission::IngestError;

/// The most sources counted under their own name; the rest are counted as `other`, so that a
/// sender of endless system ids cannot grow the counts without bound.
pub const MAX_SOURCES: usize = 256;
/// The most refusal reasons kept per source; the rest are counted as `other`.
pub const MAX_REASONS_PER_SOURCE: usize = 32;

/// The name under which sources (and reasons) beyond the limits are counted.
pub const OTHER: &str = "other";

/// One source's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    /// CDRs stored (queued for the chain) for the first time.
    pub accepted: u64,
    /// CDRs the node already held (same source identity): answered with their first id.
    pub duplicates: u64,
    /// Submissions refused for a record of this source, by reason (the field, or what was wrong).
    pub refused: BTreeMap<String, u64>,
    /// Parties of accepted CDRs recorded as written (not normalized to E.164).
    pub as_written: u64,
}

/// The counts since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Per source (`system_id`).
    pub sources: BTreeMap<String, SourceCounts>,
    /// Submissions refused by admission, by reason.
    pub admission_refusals: BTreeMap<String, u64>,
}

/// The counters, behind one lock taken once per submission.
#[derive(Debug, Default)]
pub struct IngestStats {
    counts: Mutex<Counts>,
}

impl IngestStats {
    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        f(&mut self.counts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn source<'a>(counts: &'a mut Counts, source: &str) -> &'a mut SourceCounts {
        let known = counts.sources.contains_key(source) || counts.sources.len() < MAX_SOURCES;
        counts.sources.entry(if known { source } else { OTHER }.to_string()).or_default()
    }

    /// A submission's outcome for one source: CDRs stored, duplicates, parties as written.
    pub fn took(&self, source: &str, accepted: u64, duplicates: u64, as_written: u64) {
        self.with(|counts| {
            let counts = Self::source(counts, source);
            counts.accepted += accepted;
            counts.duplicates += duplicates;
            counts.as_written += as_written;
        });
    }

    /// A submission refused for a record of `source`, for `reason`.
    pub fn refused(&self, source: &str, reason: &str) {
        self.with(|counts| {
            let refused = &mut Self::source(counts, source).refused;
            let known = refused.contains_key(reason) || refused.len() < MAX_REASONS_PER_SOURCE;
            *refused.entry(if known { reason } else { OTHER }.to_string()).or_default() += 1;
        });
    }

    /// A submission admission refused.
    pub fn admission_refused(&self, reason: &'static str) {
        self.with(|counts| *counts.admission_refusals.entry(reason.to_string()).or_default() += 1);
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> Counts {
        self.with(|counts| counts.clone())
    }
}

/// Why admission refused, in a word or two (the label of the counter), or `None` for an error
/// that is not admission's.
pub fn admission_reason(error: &IngestError) -> Option<&'static str> {
    match error {
        IngestError::Busy { .. } => Some("queue full"),
        IngestError::Slow { .. } => Some("chain slower than offered"),
        IngestError::DiskFull { .. } => Some("disk reserve"),
        IngestError::Unavailable(_) => Some("unavailable"),
        _ => None,
    }
}

/// Why a submission's records were refused, in a few words: the field a record broke, or the
/// kind of error.
pub fn refusal_reason(error: &IngestError) -> String {
    use cdrchain_runtime::input::InputError;
    match error {
        IngestError::Invalid { error: InputError::Field(e), .. } => format!("field `{}`", e.field),
        IngestError::Invalid { error: InputError::Malformed { field: Some(field), .. }, .. } => {
            format!("malformed `{field}`")
        }
        IngestError::Invalid { .. } | IngestError::Malformed { .. } => "malformed".to_string(),
        IngestError::TooMany { .. } => "too many CDRs in one submission".to_string(),
        IngestError::Conflict { .. } => "source identity reused with other content".to_string(),
        other => admission_reason(other).unwrap_or("other").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_source_and_stay_bounded() {
        let stats = IngestStats::default();
        stats.took("sbc-1", 10, 2, 1);
        stats.took("sbc-1", 5, 0, 0);
        stats.refused("sbc-1", "field `start`");
        stats.refused("sbc-1", "field `start`");
        stats.admission_refused("queue full");
        let counts = stats.snapshot();
        let sbc = &counts.sources["sbc-1"];
        assert_eq!((sbc.accepted, sbc.duplicates, sbc.as_written), (15, 2, 1));
        assert_eq!(sbc.refused["field `start`"], 2);
        assert_eq!(counts.admission_refusals["queue full"], 1);
        for n in 0..MAX_SOURCES + 10 {
            stats.took(&format!("s{n}"), 1, 0, 0);
        }
        for n in 0..MAX_REASONS_PER_SOURCE + 5 {
            stats.refused("sbc-1", &format!("reason {n}"));
        }
        let counts = stats.snapshot();
        assert_eq!(counts.sources.len(), MAX_SOURCES + 1, "the others under `other`");
        assert_eq!(counts.sources[OTHER].accepted, 11);
        assert!(counts.sources["sbc-1"].refused.len() <= MAX_REASONS_PER_SOURCE + 1);
        assert_eq!(counts.sources["sbc-1"].refused[OTHER], 6);
    }
}
