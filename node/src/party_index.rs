//! The party index follows the head on a thread of its own, at the lowest CPU priority
//! (storage's `parties.rs`: the `parties` column is written behind the commits, not with them).
//!
//! Written with each block, its two keys per CDR cost a fifth of the dev chain's throughput
//! (docs/benchmarks.md, "Search by number"); at nice 19 behind the head they still cost a tenth
//! (the index's flushes and compactions run on RocksDB's threads, at normal priority). So the
//! thread takes only what the machine has to spare: it indexes while at least
//! [`MIN_SPARE_CPU_PERCENT`] of the CPUs were idle over the last interval (`/proc/stat`; niced
//! work counts as idle, so that its own steps do not stop it, and waiting for the disk as busy),
//! and waits otherwise. At the
//! operators' real rates (hundreds to thousands of CDRs per second) the index is a fraction of a
//! second behind the head; a saturated node lets it fall behind and it catches up when load eases.
//! A search answers how far the index has come (`cdr_byParty`'s `indexed_through`), and the
//! metric `cdrchain_party_index_lag_blocks` says how far behind it is.

use std::sync::{Arc, Weak};
use std::time::Duration;

use cdrchain_runtime::cdr::{CdrBody, Disposition};
use cdrchain_runtime::ids::OperatorId;
use cdrchain_storage::Storage;

use crate::labels::OTHER;
use crate::metrics::{Metrics, MAX_PARTNER_DIRECTIONS};

/// Most CDRs one step indexes (one batch write of ~2 keys each); a step also ends the thread's
/// hold on the database, which a shutdown waits for.
pub const STEP_CDRS: usize = 20_000;
/// How long the thread waits when the index has reached the head.
pub const IDLE_WAIT: Duration = Duration::from_millis(100);
/// How long it waits after a failed step before it tries again.
pub const RETRY_WAIT: Duration = Duration::from_secs(5);
/// The share of the CPUs (percent) that must have been idle over the last interval for a step.
pub const MIN_SPARE_CPU_PERCENT: u64 = 25;
/// How long the thread waits while the CPUs are busy.
pub const BUSY_WAIT: Duration = Duration::from_millis(500);
const _: () = assert!(MIN_SPARE_CPU_PERCENT < 100);

/// The niceness of the thread: the lowest priority, so that ingest, consensus and commits come
/// first on a busy machine.
const NICENESS: i32 = 19;

/// Starts the thread. It holds the storage weakly and ends when the node has dropped it.
pub fn spawn(storage: &Arc<Storage>, metrics: Arc<Metrics>) {
    let storage = Arc::downgrade(storage);
    let spawned =
        std::thread::Builder::new().name("party-index".into()).spawn(move || run(&storage, &metrics));
    if let Err(error) = spawned {
        tracing::warn!(
            target: "cdrchain::storage",
            "cannot start the party indexer ({error}): searches by number find only the CDRs indexed before"
        );
    }
}

fn run(storage: &Weak<Storage>, metrics: &Metrics) {
    if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICENESS) {
        tracing::info!(target: "cdrchain::storage", "the party indexer runs at normal priority ({error})");
    }
    let mut reported_failure = false;
    let mut cpu = CpuTimes::read();
    // The height the last step reached: a step that reaches it again had nothing to do.
    let mut reached_before = None;
    loop {
        let now = CpuTimes::read();
        let spare = spare_percent(cpu, now);
        cpu = now;
        if spare.is_some_and(|spare| spare < MIN_SPARE_CPU_PERCENT) {
            if storage.strong_count() == 0 {
                return;
            }
            std::thread::sleep(BUSY_WAIT);
            continue;
        }
        let Some(storage) = storage.upgrade() else { return };
        let mut traffic = Traffic::default();
        let step = storage.index_parties_step(STEP_CDRS, |recorder, body| traffic.count(recorder, body));
        let head = storage.height();
        drop(storage);
        match step {
            Ok(reached) => {
                reported_failure = false;
                traffic.export(metrics);
                metrics.party_index_lag_blocks.set(head.0.saturating_sub(reached.0) as i64);
                if reached_before.replace(reached) == Some(reached) {
                    std::thread::sleep(IDLE_WAIT);
                }
            }
            Err(error) => {
                if !reported_failure {
                    tracing::error!(
                        target: "cdrchain::storage",
                        "the party index cannot follow the head ({error}); searches by number miss newer \
                         CDRs until it can. Retrying every {} s",
                        RETRY_WAIT.as_secs()
                    );
                    reported_failure = true;
                }
                std::thread::sleep(RETRY_WAIT);
            }
        }
    }
}

/// The partners' traffic of one step, per direction and recorder: calls, answered calls and
/// billable seconds, from which dashboards take the answer-seizure ratio (answered / calls), the
/// average call duration (billable seconds / answered) and minutes per direction. Counted here,
/// behind the head, so that the commit path pays nothing for it.
#[derive(Debug, Default)]
struct Traffic {
    /// (from, to, recorder) → (calls, answered, billable ms); a few directions, searched in
    /// order, so that a CDR of a known direction costs no allocation. At most
    /// [`MAX_PARTNER_DIRECTIONS`]: the operator names are the CDRs', which a member writes.
    directions: Vec<([OperatorId; 3], (u64, u64, u64))>,
    /// The CDRs of the directions past the limit (exported as `other`).
    other: (u64, u64, u64),
}

impl Traffic {
    fn count(&mut self, recorder: &OperatorId, body: &CdrBody) {
        let key = [&body.caller_operator, &body.callee_operator, recorder];
        let counts = match self.directions.iter().position(|(k, _)| k.iter().eq(key)) {
            Some(at) => &mut self.directions[at].1,
            None if self.directions.len() < MAX_PARTNER_DIRECTIONS => {
                let at = self.directions.len();
                self.directions.push((key.map(Clone::clone), (0, 0, 0)));
                &mut self.directions[at].1
            }
            None => &mut self.other,
        };
        let (calls, answered, billable_ms) = counts;
        *calls += 1;
        if body.disposition == Disposition::Answered {
            *answered += 1;
        }
        *billable_ms += body.billable_ms();
    }

    fn export(self, metrics: &Metrics) {
        for (direction, (calls, answered, billable_ms)) in self.directions {
            metrics.count_traffic(direction.map(|op| op.to_string()), calls, answered, billable_ms);
        }
        let (calls, answered, billable_ms) = self.other;
        if calls > 0 {
            metrics.count_traffic([OTHER; 3].map(str::to_owned), calls, answered, billable_ms);
        }
    }
}

/// The machine's CPU time so far (`/proc/stat`, in clock ticks): busy, and in all. Niced work
/// counts as spare here; time waiting for the disk counts as busy (a node that waits for its
/// fsyncs has no disk to spare for the index's writes). `None` where there is no `/proc/stat` (the thread then never waits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    fn read() -> Option<CpuTimes> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        CpuTimes::parse(text.lines().next()?)
    }

    /// The `cpu` line: user nice system idle iowait irq softirq steal ...
    fn parse(line: &str) -> Option<CpuTimes> {
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else { return None };
        let busy = user + system + iowait + irq + softirq + steal;
        Some(CpuTimes { busy, total: busy + nice + idle })
    }
}

/// The share of the CPUs (percent) not busy between two readings; `None` when unknown.
fn spare_percent(before: Option<CpuTimes>, after: Option<CpuTimes>) -> Option<u64> {
    let (before, after) = (before?, after?);
    let total = after.total.checked_sub(before.total).filter(|t| *t > 0)?;
    let busy = after.busy.saturating_sub(before.busy).min(total);
    Some(100 - busy * 100 / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_cpu_counts_niced_and_idle_time_as_spare() {
        let a = CpuTimes { busy: 250, total: 1_000 };
        assert_eq!(CpuTimes::parse("cpu  100 50 100 700 50 0 0 0 0 0"), Some(a));
        let b = CpuTimes { busy: 340, total: 1_200 };
        assert_eq!(CpuTimes::parse("cpu  190 150 100 710 50 0 0 0 0 0"), Some(b));
        // 90 of 200 ticks busy (the 100 niced ticks are spare): 55 % spare.
        assert_eq!(spare_percent(Some(a), Some(b)), Some(55));
        // Waiting for the disk is not spare.
        let c = CpuTimes { busy: 430, total: 1_300 };
        assert_eq!(CpuTimes::parse("cpu  190 150 100 720 140 0 0 0 0 0"), Some(c));
        assert_eq!(spare_percent(Some(b), Some(c)), Some(10));
        assert_eq!(spare_percent(Some(a), Some(a)), None, "no time passed");
        assert_eq!(spare_percent(None, Some(b)), None);
        assert_eq!(CpuTimes::parse("cpu0 1 2 3 4 5 6 7 8"), None);
        assert_eq!(CpuTimes::parse("cpu 1 2 three"), None);
        assert!(CpuTimes::read().is_some(), "this machine has /proc/stat");
    }
}
