//! What ingest took and refused since the node started, per source (the portal's operator view,
//! issue #29; RPC `ingest_stats`): CDRs accepted, duplicates answered with their first id,
//! submissions refused and why, parties recorded as written; and the admission refusals (the
//! queue full, the chain slower than the offer, the disk reserve). Counted once per submission,
//! never per CDR under a lock: the ingest path pays a map lookup per source of a submission.
//! This is the one place ingest counts: it bounds the sources (and reasons) it names, and
//! hands the same numbers, under the same labels, to the Prometheus counters (`metrics.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use cdrchain_runtime::ids::Sequence;
use serde::{Deserialize, Serialize};

use super::submission::{IngestError, Keyed};
use crate::metrics::Metrics;

/// The most sources counted under their own name; the rest are counted as `other`, so that a
/// sender of endless system ids cannot grow the counts without bound.
pub const MAX_SOURCES: usize = 256;
/// The most refusal reasons kept per source; the rest are counted as `other`.
pub const MAX_REASONS_PER_SOURCE: usize = 32;

/// The name under which sources (and reasons) beyond the limits are counted.
pub use crate::labels::OTHER;

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

/// The counters, behind one lock taken once per submission, and the metrics they feed.
#[derive(Debug, Default)]
pub struct IngestStats {
    counts: Mutex<Counts>,
    metrics: Option<Arc<Metrics>>,
}

impl IngestStats {
    pub fn new(metrics: Option<Arc<Metrics>>) -> IngestStats {
        IngestStats { counts: Mutex::default(), metrics }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        f(&mut self.counts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `source`'s counts, and the label they are kept under (its own, or [`OTHER`] past
    /// [`MAX_SOURCES`]).
    fn source<'a, 's>(counts: &'a mut Counts, source: &'s str) -> (&'a mut SourceCounts, &'s str) {
        let known = counts.sources.contains_key(source) || counts.sources.len() < MAX_SOURCES;
        let label = if known { source } else { OTHER };
        (counts.sources.entry(label.to_string()).or_default(), label)
    }

    /// A submission's outcome for one source: CDRs stored, duplicates, parties as written.
    pub fn took(&self, source: &str, accepted: u64, duplicates: u64, as_written: u64) {
        self.with(|counts| {
            let (counts, label) = Self::source(counts, source);
            counts.accepted += accepted;
            counts.duplicates += duplicates;
            counts.as_written += as_written;
            if let Some(metrics) = &self.metrics {
                if accepted + duplicates > 0 {
                    metrics.count_ingested(label, accepted, duplicates);
                }
                if as_written > 0 {
                    metrics.count_as_written(label, as_written);
                }
            }
        });
    }

    /// Counts a stored submission per source (its [`SourceRuns`]): CDRs queued, duplicates
    /// answered (`placed`: each CDR's sequence and whether it was a duplicate), and the parties
    /// recorded as written of the CDRs queued.
    pub fn took_submission(&self, runs: &SourceRuns, placed: &[(Sequence, bool)]) {
        let mut at = 0;
        let mut as_written = runs.as_written.iter().peekable();
        for (source, count) in &runs.runs {
            let end = (at + count).min(placed.len());
            let duplicates = placed[at..end].iter().filter(|(_, duplicate)| *duplicate).count() as u64;
            let mut parties = 0;
            while let Some((index, n)) = as_written.next_if(|(index, _)| *index < end) {
                if !placed.get(*index).is_some_and(|(_, duplicate)| *duplicate) {
                    parties += n;
                }
            }
            self.took(source, (end - at) as u64 - duplicates, duplicates, parties);
            at = end;
        }
    }

    /// A submission refused with `error`: by admission (the node cannot take it now), or for a
    /// record of `source`.
    pub fn refusal(&self, source: &str, error: &IngestError) {
        match admission_reason(error) {
            Some(_) => self.admission_refused(error),
            None => self.refused(source, &refusal_reason(error)),
        }
    }

    /// A submission refused for a record of `source`, for `reason`.
    pub fn refused(&self, source: &str, reason: &str) {
        self.with(|counts| {
            let refused = &mut Self::source(counts, source).0.refused;
            let known = refused.contains_key(reason) || refused.len() < MAX_REASONS_PER_SOURCE;
            *refused.entry(if known { reason } else { OTHER }.to_string()).or_default() += 1;
        });
    }

    /// A submission admission refused (nothing, for an error that is not admission's).
    pub fn admission_refused(&self, error: &IngestError) {
        let Some(reason) = admission_reason(error) else { return };
        self.with(|counts| *counts.admission_refusals.entry(reason.to_string()).or_default() += 1);
        if let Some(metrics) = &self.metrics {
            metrics.count_admission_refusal(reason);
        }
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> Counts {
        self.with(|counts| counts.clone())
    }
}

/// The sources of a submission's CDRs as runs, `(system_id, count)` in order (a submission
/// usually comes from one source, so one comparison per CDR and an allocation per run), and
/// which CDRs have parties recorded as written.
#[derive(Debug)]
pub struct SourceRuns {
    runs: Vec<(String, usize)>,
    /// `(index, parties)` of the CDRs with parties recorded as written, in order (few).
    as_written: Vec<(usize, u64)>,
}

impl SourceRuns {
    pub fn of(cdrs: &[Keyed]) -> SourceRuns {
        let mut runs: Vec<(String, usize)> = Vec::new();
        let mut as_written = Vec::new();
        for (index, cdr) in cdrs.iter().enumerate() {
            let source = cdr.body.system_id.as_str();
            match runs.last_mut() {
                Some((last, count)) if last == source => *count += 1,
                _ => runs.push((source.to_string(), 1)),
            }
            let written = &cdr.body.as_written;
            if !written.is_none() {
                as_written.push((index, u64::from(written.caller) + u64::from(written.callee)));
            }
        }
        SourceRuns { runs, as_written }
    }

    /// The source of the `index`-th CDR.
    pub fn source(&self, mut index: usize) -> Option<&str> {
        for (source, count) in &self.runs {
            if index < *count {
                return Some(source);
            }
            index -= count;
        }
        None
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
        IngestError::NoSecret => Some("no consortium secret"),
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
    fn parties_as_written_count_only_for_the_cdrs_queued() {
        let stats = IngestStats::default();
        let runs = SourceRuns {
            runs: vec![("a".into(), 2), ("b".into(), 2)],
            as_written: vec![(1, 1), (2, 2), (3, 1)],
        };
        let placed: Vec<(Sequence, bool)> =
            [false, true, false, true].iter().map(|&d| (Sequence(0), d)).collect();
        stats.took_submission(&runs, &placed);
        let counts = stats.snapshot();
        let (a, b) = (&counts.sources["a"], &counts.sources["b"]);
        assert_eq!(
            (a.accepted, a.duplicates, a.as_written),
            (1, 1, 0),
            "the duplicate's parties are not counted"
        );
        assert_eq!((b.accepted, b.duplicates, b.as_written), (1, 1, 2));
        // Refusals: admission's, or a record's.
        stats.refusal("a", &IngestError::NoSecret);
        stats.refusal("a", &IngestError::Empty);
        let counts = stats.snapshot();
        assert_eq!(counts.admission_refusals["no consortium secret"], 1);
        assert_eq!(counts.sources["a"].refused.values().sum::<u64>(), 1);
    }

    #[test]
    fn counts_add_up_per_source_and_stay_bounded() {
        let stats = IngestStats::default();
        stats.took("sbc-1", 10, 2, 1);
        stats.took("sbc-1", 5, 0, 0);
        stats.refused("sbc-1", "field `start`");
        stats.refused("sbc-1", "field `start`");
        stats.admission_refused(&IngestError::Busy { queued: 1, max: 1, retry_after_s: 1 });
        stats.admission_refused(&IngestError::Empty);
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
