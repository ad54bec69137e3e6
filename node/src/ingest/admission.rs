//! Admission: how many CDRs ingest acknowledges ahead of the chain.
//!
//! Two limits, both checked before a submission is read (an estimate of its size) and again by
//! the writer (its exact count):
//!
//! - **count**: at most `--max-queue` CDRs acknowledged and not yet committed;
//! - **time**: no more than the chain commits of this operator's CDRs in a share of
//!   `--max-queue-wait` (default 5 s) at the rate this node measured, 40 % of it. The rest is for
//!   what follows the queue: the batch's linger, the block interval and the commit round, and the
//!   rate estimate's error (at twice a localnet's ceiling, half for the queue made the p99 of
//!   acknowledged CDRs 6 s). A sender offering more than the chain takes is refused with 503 and
//!   a `Retry-After` of the time the queue needs to make room, instead of waiting behind a queue
//!   that grows for minutes (issue #26: at twice the ceiling, a 10-million-CDR queue made p99
//!   60 s).
//!
//! The rate is this operator's committed CDRs per second, sampled at most once per
//! [`RATE_SAMPLE_MS`] as admission is asked. A sample taken while the queue never ran dry
//! measures the chain's capacity for this operator and moves the estimate (an exponentially
//! weighted mean); a sample taken while the queue ran dry only shows that the chain takes at
//! least that much, and raises the estimate if it is higher. CDRs waiting [`STALL_MS`] with none
//! committed mean the chain has stalled (no quorum): the estimate is zero, and admission falls to
//! [`MIN_TIMED_QUEUE_CDRS`] until commits resume. Until the first measurement the estimate is
//! the chain spec's nominal rate ([`Admission::with_nominal_rate`]). An empty queue takes one
//! submission of any size.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::submission::IngestError;

const MIB: u64 = 1024 * 1024;

/// Least time between two rate samples.
pub(crate) const RATE_SAMPLE_MS: u64 = 3_000;
/// How long CDRs must wait with nothing committed before the chain counts as stalled (the rate
/// estimate becomes zero, and admission falls to [`MIN_TIMED_QUEUE_CDRS`]).
pub(crate) const STALL_MS: u64 = 5_000;
/// Weight of a new capacity sample in the estimate, in percent: more when it is lower than the
/// estimate than when it is higher, so that the estimate follows a slower chain at once (what
/// was admitted at the old rate already waits longer) and a faster one with caution.
const RATE_SAMPLE_WEIGHT_DOWN_PERCENT: u64 = 50;
const RATE_SAMPLE_WEIGHT_UP_PERCENT: u64 = 20;
/// The time limit never refuses a queue shorter than this: a switch's burst (five seconds of an
/// operator's 2,000 calls per second) is taken while a chain stalls for a moment.
pub(crate) const MIN_TIMED_QUEUE_CDRS: u64 = 10_000;
/// The longest `Retry-After` ingest answers, in seconds: a switch comes back at least this often
/// (a refusal before reading costs the node little), so it finds a chain that resumed soon.
pub(crate) const MAX_RETRY_AFTER_S: u64 = 10;
/// Of `--max-queue-wait`, the share (in percent) the queue may take; the rest covers the linger,
/// the block interval, the commit, and the rate estimate's error.
const QUEUE_SHARE_OF_WAIT_PERCENT: u64 = 40;

const _: () = assert!(RATE_SAMPLE_WEIGHT_DOWN_PERCENT > 0 && RATE_SAMPLE_WEIGHT_DOWN_PERCENT <= 100);
const _: () = assert!(RATE_SAMPLE_WEIGHT_UP_PERCENT > 0 && RATE_SAMPLE_WEIGHT_UP_PERCENT <= 100);
const _: () = assert!(QUEUE_SHARE_OF_WAIT_PERCENT > 0 && QUEUE_SHARE_OF_WAIT_PERCENT < 100);
const _: () = assert!(MAX_RETRY_AFTER_S >= 1);
const _: () = assert!(STALL_MS > RATE_SAMPLE_MS);

/// The node's admission limits and its estimate of the commit rate.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Ingest refuses while the database's disk has less free than this, so that what it
    /// acknowledged can still be committed and RocksDB never meets a full disk (after which it
    /// takes no write until reopened).
    min_free_disk_bytes: u64,
    /// At least 1 (see `IngestSettings::max_queue`).
    max_queue: u64,
    /// `None`: no time limit (`--max-queue-wait 0`).
    max_wait: Option<Duration>,
    rate: Mutex<RateEstimate>,
}

/// The commit rate estimate and the last sample's marks.
#[derive(Debug, Default)]
struct RateEstimate {
    /// CDRs per second; `None` before the first sample that says anything.
    per_s: Option<f64>,
    /// The estimate is not a measurement (the chain spec's nominal rate, or zero after a stall):
    /// the next backlogged sample that sees commits replaces it.
    provisional: bool,
    /// When the last sample was taken, the committed next sequence then, and the queue then.
    last: Option<(Instant, u64, u64)>,
}

impl RateEstimate {
    fn observe(&mut self, now: Instant, committed: u64, queued: u64) {
        let Some((at, was_committed, was_queued)) = self.last else {
            self.last = Some((now, committed, queued));
            return;
        };
        let elapsed = now.saturating_duration_since(at);
        let moved = committed.saturating_sub(was_committed);
        // Backlogged throughout: more was waiting at the start than the chain took since.
        let backlogged = was_queued > moved;
        if elapsed < Duration::from_millis(RATE_SAMPLE_MS) {
            return;
        }
        if moved == 0 && backlogged && elapsed < Duration::from_millis(STALL_MS) {
            // Nothing committed yet while CDRs wait: a block on its way (the first after a
            // start takes a while), not yet a stall. Keep measuring from the same mark.
            return;
        }
        self.last = Some((now, committed, queued));
        let sample = moved as f64 / elapsed.as_secs_f64();
        self.per_s = match (self.per_s, backlogged) {
            // A stall: whatever was measured before, nothing commits now.
            (_, true) if moved == 0 => {
                self.provisional = true;
                Some(0.0)
            }
            (None, _) if sample > 0.0 => Some(sample),
            (None, _) => None,
            (Some(_), true) if std::mem::take(&mut self.provisional) => Some(sample),
            (Some(rate), true) => {
                let weight = if sample < rate {
                    RATE_SAMPLE_WEIGHT_DOWN_PERCENT
                } else {
                    RATE_SAMPLE_WEIGHT_UP_PERCENT
                };
                Some(rate + weight as f64 / 100.0 * (sample - rate))
            }
            (Some(rate), false) => Some(rate.max(sample)),
        };
    }
}

impl Admission {
    /// `max_queue` is taken as at least 1; a zero `max_wait` turns the time limit off.
    pub(crate) fn new(max_queue: u64, max_wait: Duration) -> Admission {
        Admission {
            min_free_disk_bytes: 0,
            max_queue: max_queue.max(1),
            max_wait: (!max_wait.is_zero()).then_some(max_wait),
            rate: Mutex::new(RateEstimate::default()),
        }
    }

    /// With a first estimate of the commit rate (the chain spec's nominal rate for this operator:
    /// a full block every block interval, shared by the authorities), used until the chain is
    /// measured. Without one, a node that starts under load would take the whole count limit in
    /// its first second (a localnet took 190,000 CDRs per validator, which waited 13 s).
    pub(crate) fn with_nominal_rate(self, per_s: f64) -> Admission {
        if per_s > 0.0 {
            let mut estimate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
            *estimate = RateEstimate { per_s: Some(per_s), provisional: true, last: None };
        }
        self
    }

    /// With the disk reserve: ingest refuses while fewer bytes are free (see [`Admission::check_disk`]).
    pub(crate) fn with_disk_reserve(self, min_free_disk_bytes: u64) -> Admission {
        Admission { min_free_disk_bytes, ..self }
    }

    /// Refuses ([`IngestError::DiskFull`]) while the database's disk has less free space than
    /// the reserve. A disk whose free space cannot be read is not refused for it (RocksDB's own
    /// write errors still are).
    pub(crate) fn check_disk(&self, storage: &cdrchain_storage::Storage) -> Result<(), IngestError> {
        if self.min_free_disk_bytes == 0 {
            return Ok(());
        }
        match storage.free_disk_bytes() {
            Ok(free) if free < self.min_free_disk_bytes => Err(IngestError::DiskFull {
                free_mib: free / MIB,
                reserve_mib: self.min_free_disk_bytes / MIB,
            }),
            _ => Ok(()),
        }
    }

    /// The commit rate this node measured for its operator, in CDRs per second.
    pub(crate) fn rate(&self) -> Option<f64> {
        self.rate.lock().unwrap_or_else(PoisonError::into_inner).per_s
    }

    /// Whether `records` more CDRs may join a queue of `queued` (this operator's committed next
    /// sequence is `committed`); records a rate sample when one is due.
    pub(crate) fn check(&self, queued: u64, committed: u64, records: u64) -> Result<(), IngestError> {
        self.check_at(Instant::now(), queued, committed, records)
    }

    fn check_at(&self, now: Instant, queued: u64, committed: u64, records: u64) -> Result<(), IngestError> {
        let rate = {
            let mut estimate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
            estimate.observe(now, committed, queued);
            estimate.per_s
        };
        if queued == 0 {
            return Ok(());
        }
        let after = queued.saturating_add(records);
        if queued >= self.max_queue || after > self.max_queue {
            let retry_after_s = retry_after(after - self.max_queue.min(after), rate);
            return Err(IngestError::Busy { queued, max: self.max_queue, retry_after_s });
        }
        let (Some(max_wait), Some(rate)) = (self.max_wait, rate) else { return Ok(()) };
        let share = max_wait.as_secs_f64() * QUEUE_SHARE_OF_WAIT_PERCENT as f64 / 100.0;
        let allowed = ((rate * share) as u64).max(MIN_TIMED_QUEUE_CDRS);
        if after <= allowed {
            return Ok(());
        }
        Err(IngestError::Slow {
            queued,
            rate_per_s: rate.round() as u64,
            max_wait_s: max_wait.as_secs_f64(),
            retry_after_s: retry_after(after - allowed, Some(rate)),
        })
    }
}

/// Seconds until the chain has committed `excess` CDRs at `rate`, 1 to [`MAX_RETRY_AFTER_S`].
fn retry_after(excess: u64, rate: Option<f64>) -> u64 {
    match rate {
        Some(rate) if rate >= 1.0 => ((excess as f64 / rate).ceil() as u64).clamp(1, MAX_RETRY_AFTER_S),
        Some(_) => MAX_RETRY_AFTER_S,
        None => 1,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// An admission whose estimate learned `rate` CDRs/s from backlogged samples; the time and
    /// committed sequence of its last sample.
    fn learned(rate: u64, max_wait_s: u64) -> (Admission, Instant, u64) {
        let admission = Admission::new(10_000_000, Duration::from_secs(max_wait_s));
        let start = Instant::now();
        for second in 0..20 {
            // A queue of a million waits: refused by the time limit once the rate is known.
            let _ = admission.check_at(start + SECOND * second, 1_000_000, rate * u64::from(second), 0);
        }
        (admission, start + SECOND * 19, rate * 19)
    }

    #[test]
    fn a_backlogged_queue_learns_the_chains_rate_and_admits_its_share_of_the_bound() {
        let (admission, last, committed) = learned(20_000, 5);
        let rate = admission.rate().unwrap();
        assert!((rate - 20_000.0).abs() < 200.0, "{rate}");
        // 40 % of 5 s at 20,000/s: 40,000 CDRs (no new sample within the second).
        let now = last + Duration::from_millis(500);
        assert!(admission.check_at(now, 38_000, committed, 2_000).is_ok());
        let refused = admission.check_at(now, 38_000, committed, 2_001).unwrap_err();
        match refused {
            IngestError::Slow { queued: 38_000, rate_per_s, retry_after_s: 1, .. } => {
                assert!((19_800..=20_200).contains(&rate_per_s), "{rate_per_s}");
            }
            other => panic!("{other:?}"),
        }
        // Far over it, the sender is told to come back when the queue has made room.
        match admission.check_at(now, 38_000, committed, 100_000).unwrap_err() {
            IngestError::Slow { retry_after_s, .. } => assert_eq!(retry_after_s, 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_idle_chain_teaches_only_a_lower_bound_and_a_stopped_one_admits_the_minimum() {
        let admission = Admission::new(10_000_000, Duration::from_secs(5));
        let start = Instant::now();
        // The queue runs dry every second (100 CDRs/s offered): the estimate is at least that.
        let mut committed = 0;
        for second in 0..5 {
            admission.check_at(start + SECOND * second, 50, committed, 0).unwrap();
            committed += 100;
        }
        assert!((admission.rate().unwrap() - 100.0).abs() < 1.0);
        // A low estimate never refuses below the minimum queue.
        assert!(admission.check_at(start + SECOND * 5, MIN_TIMED_QUEUE_CDRS - 10, committed, 10).is_ok());
        // The chain stops with a backlog: the estimate falls, and so does what is admitted.
        for second in 6..40 {
            let _ = admission.check_at(start + SECOND * second, 9_000, committed, 0);
        }
        assert!(admission.rate().unwrap() < 1.0);
        assert_eq!(admission.rate(), Some(0.0));
        let refused = admission.check_at(start + SECOND * 41, 9_000, committed, 2_000).unwrap_err();
        assert!(matches!(refused, IngestError::Slow { retry_after_s: MAX_RETRY_AFTER_S, .. }), "{refused:?}");
        // Commits resume: the first sample that sees them is the estimate, at once.
        let resumed = committed + 30_000;
        let later = start + SECOND * 60;
        let _ = admission.check_at(later, 9_000, resumed, 0);
        let rate = admission.rate().unwrap();
        assert!(rate > 1_000.0, "{rate}");
    }

    #[test]
    fn the_nominal_rate_bounds_a_cold_start_until_the_first_measurement_replaces_it() {
        let admission = Admission::new(10_000_000, Duration::from_secs(5)).with_nominal_rate(25_000.0);
        let start = Instant::now();
        // 40 % of 5 s at 25,000/s: 50,000 before anything is measured.
        assert!(admission.check_at(start, 40_000, 0, 9_999).is_ok());
        assert!(matches!(admission.check_at(start, 40_000, 0, 10_001), Err(IngestError::Slow { .. })));
        // Measured while backlogged: 12,000/s replaces the nominal rate at once.
        let _ = admission.check_at(start + SECOND * 3, 50_000, 36_000, 0);
        let rate = admission.rate().unwrap();
        assert!((rate - 12_000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn a_first_block_that_takes_seconds_is_not_a_stall() {
        let admission = Admission::new(10_000_000, Duration::from_secs(5));
        let start = Instant::now();
        // A full queue at start, nothing committed for three seconds, then 60,000 at once.
        for millis in (0..3_000).step_by(250) {
            assert!(admission.check_at(start + Duration::from_millis(millis), 40_000, 0, 1_000).is_ok());
        }
        assert_eq!(admission.rate(), None, "no estimate before the first commit");
        let _ = admission.check_at(start + SECOND * 3, 40_000, 60_000, 0);
        let rate = admission.rate().unwrap();
        assert!((rate - 20_000.0).abs() < 1.0, "measured over the three seconds: {rate}");
    }

    #[test]
    fn the_count_limit_holds_without_a_rate_and_an_empty_queue_takes_anything() {
        let admission = Admission::new(100, Duration::from_secs(5));
        assert!(admission.rate().is_none());
        assert!(admission.check(0, 0, 1_000_000).is_ok());
        assert!(admission.check(60, 0, 40).is_ok());
        assert!(matches!(
            admission.check(60, 0, 41),
            Err(IngestError::Busy { queued: 60, max: 100, retry_after_s: 1 })
        ));
        // With the time limit off, a learned rate does not refuse.
        let untimed = Admission::new(10_000_000, Duration::ZERO);
        let start = Instant::now();
        for second in 0..5 {
            untimed.check_at(start + SECOND * second, 1_000_000, u64::from(second) * 10, 0).unwrap();
        }
        assert!(untimed.check_at(start + SECOND * 6, 1_000_000, 50, 1_000_000).is_ok());
    }

    #[test]
    fn retry_after_is_the_time_to_make_room_within_bounds() {
        assert_eq!(retry_after(0, Some(1_000.0)), 1);
        assert_eq!(retry_after(2_500, Some(1_000.0)), 3);
        assert_eq!(retry_after(10_000_000, Some(1_000.0)), MAX_RETRY_AFTER_S);
        assert_eq!(retry_after(10, Some(0.0)), MAX_RETRY_AFTER_S);
        assert_eq!(retry_after(10, None), 1);
    }
}
