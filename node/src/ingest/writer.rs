//! Stage 2 of ingest: the group-commit writer, on a thread of its own.
//!
//! It gathers every submission waiting at that moment, refuses those the queue has no room for
//! ([`IngestError::Busy`]), gives the others' new CDRs this operator's next sequence numbers,
//! and writes them and their ingest keys to the durable queue in one synced batch. Only then do
//! the submitters get their ids. It is the only place sequence numbers are assigned, so they are
//! contiguous.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::ids::{OperatorId, Sequence};
use cdrchain_storage::{QueueRun, Storage, StorageError};
use parity_scale_codec::Encode;
use tokio::sync::{mpsc, oneshot, Notify};

use super::handoff::Handoff;
use super::{IngestError, Keyed, BUSY_LOG_INTERVAL_MS, MAX_GROUP_CDRS};

/// Per CDR of a submission, in order: its sequence, and whether it had been ingested before.
pub(super) type Answers = Vec<(Sequence, bool)>;

/// One submission on its way to the writer, and where its answer goes.
pub(super) struct Request {
    /// The validated CDRs, in submission order.
    pub(super) cdrs: Vec<Keyed>,
    /// Where the writer answers once the group is durable (or refused).
    pub(super) reply: oneshot::Sender<Result<Answers, IngestError>>,
}

/// What the writer's thread works with.
pub(super) struct Writer {
    pub(super) storage: Arc<Storage>,
    pub(super) operator: OperatorId,
    /// The next sequence to assign (everything below is durable); shared with [`super::Ingest`],
    /// which reads it for the queue's depth.
    pub(super) next_assigned: Arc<AtomicU64>,
    /// Wakes the batcher once a group is durable.
    pub(super) notify: Arc<Notify>,
    /// The queue's limits (shared with the front, which checks them before reading).
    pub(super) admission: Arc<super::admission::Admission>,
    /// Rate-limits the "queue full" warning, shared with [`super::Ingest::admit`].
    pub(super) busy_log: Arc<BusyLog>,
    /// Where the decoded copy of each group goes, for the batcher.
    pub(super) handoff: Arc<Handoff>,
}

/// Why a group of submissions was not written; every submitter of the group is refused with it
/// ([`IngestError::Unavailable`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// The ingest-key lookup or the queue's write failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A bug: the group is refused, the writer goes on.
    #[error("the ingest writer panicked placing this group")]
    Panicked,
}

/// The "queue full" warning, at most every [`BUSY_LOG_INTERVAL_MS`], counting what was refused
/// in between: whole submissions by the writer (CDRs counted) and unread ones by
/// [`super::Ingest::admit`].
#[derive(Debug, Default)]
pub(super) struct BusyLog(Mutex<BusyCounts>);

#[derive(Debug, Default)]
struct BusyCounts {
    /// CDRs of whole submissions the writer refused since the last warning.
    cdrs: u64,
    /// Submissions refused unread ([`super::Ingest::admit`]) since the last warning.
    unread: u64,
    /// When the last warning went out; `None` before the first.
    logged: Option<Instant>,
}

impl BusyLog {
    /// One refusal (`why`): of `cdrs` CDRs, or of a submission not read (`None`).
    pub(super) fn refused(&self, why: &IngestError, cdrs: Option<u64>) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match cdrs {
            Some(cdrs) => counts.cdrs += cdrs,
            None => counts.unread += 1,
        }
        let interval = Duration::from_millis(BUSY_LOG_INTERVAL_MS);
        if counts.logged.is_none_or(|at| at.elapsed() >= interval) {
            tracing::warn!(
                target: "cdrchain::ingest",
                "ingest refuses with 503 ({why}): {} CDRs and {} submissions unread refused since the \
                 last such line; senders retry",
                counts.cdrs,
                counts.unread
            );
            *counts = BusyCounts { logged: Some(Instant::now()), ..BusyCounts::default() };
        }
    }
}

/// The writer's loop, on its own thread: one group of waiting submissions at a time, until the
/// last sender is dropped.
pub(super) fn writer(state: Writer, mut receiver: mpsc::Receiver<Request>) {
    while let Some(first) = receiver.blocking_recv() {
        let pending = gather_group(first, &mut receiver);
        // Never below what the chain holds of this operator: after a purge or a restore the
        // queue restarts empty, and numbering from it would reuse committed ids (review M10).
        let committed = super::committed_next(&state.storage, &state.operator).map_or(0, |s| s.0);
        // Nor below the queue's end: a commit may have queued displaced CDRs there (M10).
        let start =
            state.next_assigned.load(Ordering::Acquire).max(committed).max(state.storage.queue_end().0);
        let group = state.admit(start - committed, committed, pending);
        if !group.is_empty() {
            state.write(start, group);
        }
    }
}

/// The first request and every one waiting behind it, up to about [`MAX_GROUP_CDRS`] CDRs.
fn gather_group(first: Request, receiver: &mut mpsc::Receiver<Request>) -> Vec<Request> {
    let mut pending = vec![first];
    let mut total = pending[0].cdrs.len();
    while total < MAX_GROUP_CDRS {
        match receiver.try_recv() {
            Ok(request) => {
                total += request.cdrs.len();
                pending.push(request);
            }
            Err(_) => break,
        }
    }
    pending
}

impl Writer {
    /// Admission: the queue (acknowledged, not committed) stays within its count and time limits
    /// and the disk keeps its reserve (`admission`); the requests beyond them are refused whole
    /// ([`IngestError::Busy`], [`IngestError::Slow`], [`IngestError::DiskFull`]). Counting duplicates as new over-counts a little, never under. An
    /// empty queue takes one submission of any size. `queued`: the CDRs numbered and not yet
    /// committed when the group starts; `committed`: the committed next sequence.
    fn admit(&self, queued: u64, committed: u64, pending: Vec<Request>) -> Vec<Request> {
        let mut queued = queued;
        let mut group = Vec::with_capacity(pending.len());
        for request in pending {
            let count = request.cdrs.len() as u64;
            let admitted = self
                .admission
                .check_disk(&self.storage)
                .and_then(|()| self.admission.check(queued, committed, count));
            match admitted {
                Ok(()) => {
                    queued += count;
                    group.push(request);
                }
                Err(refusal) => {
                    self.busy_log.refused(&refusal, Some(count));
                    let _ = request.reply.send(Err(refusal));
                }
            }
        }
        group
    }

    /// Places and writes one admitted group from sequence `start`, then answers its submitters.
    /// Submissions that collide with other records are refused first, and the rest placed.
    fn write(&self, start: u64, group: Vec<Request>) {
        let total: usize = group.iter().map(|request| request.cdrs.len()).sum();
        let (mut submissions, mut replies): (Vec<Vec<Keyed>>, Vec<_>) =
            group.into_iter().map(|request| (request.cdrs, request.reply)).unzip();
        let written = loop {
            // A panic in one group (a bug) refuses that group, as a failed write does, and the
            // writer goes on: it is not the thread's end, which would refuse all ingest from
            // then on.
            let placed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                place(&self.storage, &self.operator, start, std::mem::take(&mut submissions))
            }))
            .unwrap_or(Err(WriteError::Panicked));
            match placed {
                Ok(Placement::Placed(group)) => break Ok(group),
                Ok(Placement::Conflicts(mut conflicts, returned)) => {
                    // Nothing was written: refuse the colliding submissions, place the rest.
                    submissions = returned;
                    conflicts.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
                    for (s, error) in conflicts {
                        tracing::warn!(target: "cdrchain::ingest", "submission refused: {error}");
                        submissions.remove(s);
                        let _ = replies.remove(s).send(Err(error));
                    }
                    if replies.is_empty() {
                        return;
                    }
                }
                Err(error) => break Err(error),
            }
        };
        match written {
            Ok(PlacedGroup { next, answers, queued }) => {
                debug_assert_eq!(queued.len() as u64, next - start, "placed CDRs and sequences disagree");
                self.handoff.put(start, queued);
                self.next_assigned.store(next, Ordering::Release);
                for (reply, answers) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answers));
                }
                self.notify.notify_one();
            }
            Err(error) => {
                tracing::error!(target: "cdrchain::ingest", "queue write failed, {total} CDRs refused: {error}");
                let reason = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(IngestError::Unavailable(reason.clone())));
                }
            }
        }
    }
}

/// A group of submissions, placed and durable.
#[derive(Debug)]
pub(super) struct PlacedGroup {
    /// The next free sequence: the first the following group gets.
    pub(super) next: u64,
    /// Per submission, in order, each CDR's answer.
    pub(super) answers: Vec<Answers>,
    /// The CDRs queued (new ones only), in sequence order, with their encoded sizes: the copy
    /// for the batcher (see [`Handoff`]).
    pub(super) queued: Vec<(CdrBody, usize)>,
}

/// Gives the new CDRs of a group of submissions sequences from `start`, finds the ones seen
/// before, and writes the new ones and their keys in one synced batch.
pub(super) fn place(
    storage: &Storage,
    operator: &OperatorId,
    start: u64,
    submissions: Vec<Vec<Keyed>>,
) -> Result<Placement, WriteError> {
    let all_keys: Vec<[u8; 32]> = submissions.iter().flatten().map(|cdr| cdr.key).collect();
    // The group's keys in key order, once (equal keys by position): the batched lookup and the
    // ingest-key inserts both take them in that order, and a key repeated within the group sits
    // right after its first occurrence, so no hash set is needed to find repeats.
    let mut order: Vec<usize> = (0..all_keys.len()).collect();
    order.sort_unstable_by_key(|&i| (all_keys[i], i));
    let earlier = find_earlier(storage, &all_keys, &order)?;
    let conflicts = super::conflict::find_conflicts(storage, operator, &submissions, &earlier)?;
    if !conflicts.is_empty() {
        return Ok(Placement::Conflicts(conflicts, submissions));
    }
    let mut run = QueueRun::new(Sequence(start));
    let mut next = start;
    let mut answers = Vec::with_capacity(submissions.len());
    let mut duplicates = 0usize;
    let mut given = vec![Sequence(0); all_keys.len()];
    let mut queued = Vec::with_capacity(all_keys.len());
    let mut i = 0;
    for cdrs in submissions {
        let mut answered = Vec::with_capacity(cdrs.len());
        for cdr in cdrs {
            let sequence = match earlier[i] {
                Earlier::Stored(sequence) => Some(sequence),
                // Positions are visited in order, so the first occurrence has its sequence.
                Earlier::Repeats(first) => Some(given[first]),
                Earlier::New => None,
            };
            match sequence {
                Some(sequence) => {
                    duplicates += 1;
                    given[i] = sequence;
                    answered.push((sequence, true));
                }
                None => {
                    let sequence = Sequence(next);
                    next += 1;
                    given[i] = sequence;
                    let size = run.push_with(|out| cdr.body.encode_to(out));
                    answered.push((sequence, false));
                    queued.push((cdr.body, size));
                }
            }
            i += 1;
        }
        answers.push(answered);
    }
    // In key order (see `Storage::enqueue_keyed`).
    let keys: Vec<([u8; 32], Sequence)> = order
        .iter()
        .filter(|&&i| matches!(earlier[i], Earlier::New))
        .map(|&i| (all_keys[i], given[i]))
        .collect();
    storage.enqueue_keyed(&run, &keys)?;
    if duplicates > 0 {
        tracing::info!(
            target: "cdrchain::ingest",
            "{duplicates} re-submitted CDR(s) recognised by their source identity: not queued again"
        );
    }
    Ok(Placement::Placed(PlacedGroup { next, answers, queued }))
}

/// What became of a group: placed, or refused because some of its submissions collide with
/// other records (nothing was written; the others are placed again without them).
#[derive(Debug)]
pub(super) enum Placement {
    Placed(PlacedGroup),
    /// Per colliding submission, its index in the group and why; and the group's submissions,
    /// given back.
    Conflicts(Vec<(usize, IngestError)>, Vec<Vec<Keyed>>),
}

/// What the writer knows of a CDR's ingest key before it places the CDR.
#[derive(Clone, Copy, Debug)]
pub(super) enum Earlier {
    /// Not seen: the CDR is new.
    New,
    /// Stored before: the CDR is a re-submission of that sequence.
    Stored(Sequence),
    /// Repeats the key of the CDR at this (earlier) position of the group.
    Repeats(usize),
}

/// Per position of `keys`, what is known of its key: one batched lookup in key `order`.
fn find_earlier(storage: &Storage, keys: &[[u8; 32]], order: &[usize]) -> Result<Vec<Earlier>, WriteError> {
    let sorted: Vec<[u8; 32]> = order.iter().map(|&i| keys[i]).collect();
    let found = storage.ingest_keys(&sorted)?;
    let mut earlier = vec![Earlier::New; keys.len()];
    for (rank, (&i, found)) in order.iter().zip(found).enumerate() {
        earlier[i] = match found {
            Some(sequence) => Earlier::Stored(sequence),
            None if rank > 0 && sorted[rank - 1] == sorted[rank] => Earlier::Repeats(order[rank - 1]),
            None => Earlier::New,
        };
    }
    Ok(earlier)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::ingest::tests::cdrs;
    use crate::ingest::validate;
    use cdrchain_chain_spec::ChainSpec;
    use cdrchain_runtime::party::PartyHasher;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// `place` against a model: a key seen before (stored, earlier in the group, or earlier
        /// in the same submission) answers its first sequence; new keys get the next ones, in
        /// order, and are stored with them.
        #[test]
        fn placing_answers_first_sequences_like_a_model(
            groups in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(0u8..6, 1..6), 1..4),
                1..4,
            )
        ) {
            let spec = ChainSpec::dev();
            let dir = tempfile::tempdir()?;
            let storage = Storage::open(dir.path(), spec.genesis_hash(), &spec.genesis_state()?)?;
            let parties = PartyHasher::new(b"unit-test consortium secret", None)?;
            let body = validate(&cdrs(0, 1, 0), &parties, &Default::default())?.remove(0).body;
            let mut model = std::collections::HashMap::new();
            let mut next = 0u64;
            for group in groups {
                let mut expected = Vec::new();
                let mut submissions = Vec::new();
                for submission in &group {
                    let mut answers = Vec::new();
                    for &k in submission {
                        let duplicate = model.contains_key(&k);
                        let sequence = *model.entry(k).or_insert_with(|| {
                            next += 1;
                            Sequence(next - 1)
                        });
                        answers.push((sequence, duplicate));
                    }
                    expected.push(answers);
                    submissions.push(
                        submission.iter().map(|&k| Keyed { body: body.clone(), key: [k; 32] }).collect(),
                    );
                }
                let start = storage.last_queued()?.map_or(0, |s| s.0 + 1);
                let operator = OperatorId::new("alice")?;
                let placement = place(&storage, &operator, start, submissions)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                let Placement::Placed(PlacedGroup { next: end, answers: placed, queued }) = placement else {
                    return Err(proptest::test_runner::TestCaseError::fail("same bodies cannot collide"));
                };
                proptest::prop_assert_eq!(end, next);
                proptest::prop_assert_eq!(queued.len() as u64, end - start);
                proptest::prop_assert_eq!(placed, expected);
            }
            for (k, sequence) in &model {
                proptest::prop_assert_eq!(storage.ingest_key(&[*k; 32])?, Some(*sequence));
            }
            proptest::prop_assert_eq!(storage.queue_len()?, next);
        }
    }
}
