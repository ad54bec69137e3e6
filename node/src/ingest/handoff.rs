//! Between stages 2 and 3: the writer's decoded copy of what it just queued, and the gathering of
//! one batch's worth of CDRs (from that copy or from the queue).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::tx::MAX_CDRS_PER_BATCH;

use super::{MAX_BATCH_BYTES, MAX_HANDOFF_CDRS};

/// The CDRs the writer just queued, decoded, for the batcher: it takes them from here instead
/// of reading the queue back and decoding every CDR again (~4 % of the dev node's CPU). Only a
/// copy: the durable queue stays the record. The batcher reads the queue whenever the sequence
/// it wants is not the first held here (after a restart, when batches are resubmitted, or when
/// the writer ran more than [`MAX_HANDOFF_CDRS`] ahead and kept no copy).
#[derive(Debug, Default)]
pub(super) struct Handoff(Mutex<HandoffRuns>);

#[derive(Debug, Default)]
pub(super) struct HandoffRuns {
    /// Runs of consecutive sequences: (first, the CDRs with their encoded sizes), in order. A
    /// run per group the writer placed; two runs need not follow on (a gap is a group of which
    /// no copy was kept).
    runs: VecDeque<(u64, VecDeque<(CdrBody, usize)>)>,
    /// CDRs held over all runs, kept so that [`Handoff::put`] checks [`MAX_HANDOFF_CDRS`]
    /// without counting the runs.
    pub(super) held: usize,
}

impl Handoff {
    pub(super) fn lock(&self) -> MutexGuard<'_, HandoffRuns> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a copy of the CDRs just queued from sequence `first`, unless that would hold more
    /// than [`MAX_HANDOFF_CDRS`].
    pub(super) fn put(&self, first: u64, cdrs: Vec<(CdrBody, usize)>) {
        let mut held = self.lock();
        if cdrs.is_empty() || held.held + cdrs.len() > MAX_HANDOFF_CDRS {
            return;
        }
        held.held += cdrs.len();
        held.runs.push_back((first, cdrs.into()));
        held.check();
    }

    /// Up to `want` CDRs from sequence `from` on, at most `max_bytes` of them (at least one), and
    /// whether that is a full batch; `None` if `from` is not the first CDR held. What lies below
    /// `from` is dropped (batched already, or to be read from the queue).
    pub(super) fn take(&self, from: u64, want: usize, max_bytes: usize) -> Option<(Vec<CdrBody>, bool)> {
        let mut guard = self.lock();
        let held = &mut *guard;
        held.drop_below(from);
        if held.runs.front().is_none_or(|(first, _)| *first != from) {
            return None;
        }
        let mut gather = Gather::new(want, max_bytes);
        // Across runs while they follow on from each other.
        while let Some((first, run)) = held.runs.front_mut() {
            if *first != from + gather.cdrs.len() as u64 {
                break;
            }
            while let Some((_, size)) = run.front() {
                if !gather.fits(*size) {
                    held.check();
                    return Some(gather.finish());
                }
                if let Some((body, size)) = run.pop_front() {
                    gather.push(body, size);
                }
                *first += 1;
                held.held -= 1;
            }
            held.runs.pop_front();
        }
        held.check();
        Some(gather.finish())
    }
}

impl HandoffRuns {
    /// Drops every CDR held below sequence `from`.
    fn drop_below(&mut self, from: u64) {
        while let Some((first, run)) = self.runs.front_mut() {
            let end = *first + run.len() as u64;
            if end <= from {
                self.held -= run.len();
                self.runs.pop_front();
                continue;
            }
            if *first < from {
                let skip = usize::try_from(from - *first).unwrap_or(run.len()).min(run.len());
                run.drain(..skip);
                self.held -= skip;
                *first = from;
            }
            break;
        }
        self.check();
    }

    /// The invariant behind `held`: it counts every CDR of every run.
    fn check(&self) {
        debug_assert_eq!(
            self.held,
            self.runs.iter().map(|(_, run)| run.len()).sum::<usize>(),
            "the hand-off's count of held CDRs drifted from its runs"
        );
    }
}

/// One batch being gathered: up to `want` CDRs and at most `max_bytes` of them (at least one),
/// whether they come from the hand-off or from the queue.
#[derive(Debug)]
pub(super) struct Gather {
    /// The CDRs taken so far, in sequence order.
    pub(super) cdrs: Vec<CdrBody>,
    /// Their encoded size, against `max_bytes`.
    bytes: usize,
    /// The most encoded bytes (at most [`MAX_BATCH_BYTES`]).
    max_bytes: usize,
    /// The most CDRs the batcher asked for.
    want: usize,
    /// Set once a CDR did not fit: the batch is full, whatever comes next.
    full: bool,
}

impl Gather {
    pub(super) fn new(want: usize, max_bytes: usize) -> Gather {
        debug_assert!(max_bytes <= MAX_BATCH_BYTES, "a batch may take at most {MAX_BATCH_BYTES} bytes");
        Gather {
            cdrs: Vec::with_capacity(want.min(MAX_CDRS_PER_BATCH)),
            bytes: 0,
            max_bytes,
            want,
            full: false,
        }
    }

    /// Whether a CDR of `size` encoded bytes still fits; if not, the batch is full.
    pub(super) fn fits(&mut self, size: usize) -> bool {
        if self.cdrs.len() >= self.want || (!self.cdrs.is_empty() && self.bytes + size > self.max_bytes) {
            self.full = true;
        }
        !self.full
    }

    /// Takes a CDR that [`Gather::fits`] accepted.
    pub(super) fn push(&mut self, body: CdrBody, size: usize) {
        debug_assert!(
            self.cdrs.len() < self.want,
            "a batch gathered more than the {} CDRs wanted",
            self.want
        );
        debug_assert!(
            self.cdrs.is_empty() || self.bytes + size <= self.max_bytes,
            "a batch gathered more than {} bytes",
            self.max_bytes
        );
        self.bytes += size;
        self.cdrs.push(body);
    }

    /// The CDRs, and whether they make a full batch (more may be waiting).
    pub(super) fn finish(self) -> (Vec<CdrBody>, bool) {
        let full = self.full || self.cdrs.len() >= self.want;
        (self.cdrs, full)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use cdrchain_runtime::ids::OperatorId;

    #[test]
    fn the_handoff_gives_what_follows_and_defers_to_the_queue_otherwise(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (a, b): (OperatorId, OperatorId) = ("alice".parse()?, "bob".parse()?);
        let run = |first: u64, count: u64, size: usize| -> Vec<(CdrBody, usize)> {
            (first..first + count).map(|i| (cdrchain_runtime::sample::cdr_body(i, &a, &b), size)).collect()
        };
        let sequences =
            |cdrs: &[CdrBody]| -> Vec<String> { cdrs.iter().map(|c| c.call_id.to_string()).collect() };
        let handoff = Handoff::default();
        assert!(handoff.take(0, 10, MAX_BATCH_BYTES).is_none());
        handoff.put(10, run(10, 5, 100));
        handoff.put(15, run(15, 5, 100));
        // Not the first held: the queue answers.
        assert!(handoff.take(9, 10, MAX_BATCH_BYTES).is_none());
        // Across two runs that follow on; a short take is not full.
        let (cdrs, full) = handoff.take(12, 100, MAX_BATCH_BYTES).ok_or("nothing held")?;
        assert_eq!(
            sequences(&cdrs),
            sequences(&run(12, 8, 0).into_iter().map(|(c, _)| c).collect::<Vec<_>>())
        );
        assert!(!full);
        assert!(handoff.take(20, 1, MAX_BATCH_BYTES).is_none());
        // A gap (a run the writer kept no copy of) ends a take; the queue fills the gap.
        handoff.put(20, run(20, 3, 100));
        handoff.put(30, run(30, 3, 100));
        let (cdrs, full) = handoff.take(20, 2, MAX_BATCH_BYTES).ok_or("nothing held")?;
        assert_eq!((cdrs.len(), full), (2, true));
        let (cdrs, full) = handoff.take(22, 10, MAX_BATCH_BYTES).ok_or("nothing held")?;
        assert_eq!((cdrs.len(), full), (1, false));
        assert!(handoff.take(23, 10, MAX_BATCH_BYTES).is_none());
        // Taking from further on drops what lies below.
        let (cdrs, _) = handoff.take(31, 10, MAX_BATCH_BYTES).ok_or("nothing held")?;
        assert_eq!(cdrs.len(), 2);
        assert_eq!(handoff.lock().held, 0);
        // The byte cap: at least one, then no more than MAX_BATCH_BYTES.
        handoff.put(40, run(40, 4, MAX_BATCH_BYTES / 2));
        let (cdrs, full) = handoff.take(40, 10, MAX_BATCH_BYTES).ok_or("nothing held")?;
        assert_eq!((cdrs.len(), full), (2, true));
        handoff.put(50, run(50, 1, MAX_BATCH_BYTES * 2));
        let (cdrs, _) = handoff.take(42, 10, MAX_BATCH_BYTES).ok_or("nothing held")?;
        assert_eq!(cdrs.len(), 2);
        let (cdrs, _) = handoff.take(50, 10, MAX_BATCH_BYTES).ok_or("nothing held")?;
        assert_eq!(cdrs.len(), 1);
        // Bounded: a run that would go beyond the limit is not kept.
        handoff.put(100, run(100, 10, 1));
        handoff.put(110, (0..MAX_HANDOFF_CDRS).map(|_| run(0, 1, 1).remove(0)).collect());
        assert_eq!(handoff.lock().held, 10);
        Ok(())
    }

    #[test]
    fn a_gather_stops_at_the_count_wanted_and_at_the_byte_cap() {
        let (a, b): (OperatorId, OperatorId) = ("alice".parse().unwrap(), "bob".parse().unwrap());
        let body = |i| cdrchain_runtime::sample::cdr_body(i, &a, &b);
        let mut gather = Gather::new(2, MAX_BATCH_BYTES);
        for i in 0..3 {
            if gather.fits(10) {
                gather.push(body(i), 10);
            }
        }
        assert_eq!(gather.finish().0.len(), 2);
        // The first CDR is always taken, however large; the next one only within the cap.
        let mut gather = Gather::new(10, MAX_BATCH_BYTES);
        assert!(gather.fits(MAX_BATCH_BYTES * 2));
        gather.push(body(0), MAX_BATCH_BYTES * 2);
        assert!(!gather.fits(1));
        assert_eq!(gather.finish(), (vec![body(0)], true));
    }
}
