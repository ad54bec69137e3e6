//! Durable ingest: CDRs in, sequence numbers out, nothing lost.
//!
//! 1. [`parse_documents`] reads a JSON array, one JSON object, or NDJSON; every CDR is validated
//!    ([`cdrchain_runtime::input::CdrInput::to_body`]) before any is accepted: a submission is all
//!    or nothing, and an error names the CDR (index, NDJSON line) and the field.
//! 2. [`Ingest::submit`] hands the bodies to the writer (a thread of its own), which gathers
//!    every submission waiting at that moment, gives them this operator's next sequence numbers,
//!    and writes them to the durable queue in one synced batch (group commit). Only then does the
//!    submitter get its ids. The writer is the only place sequence numbers are assigned, so they
//!    are contiguous. Each CDR carries its ingest key (a digest of its identity in the source:
//!    system id and source id, or call id and leg, [`CdrInput::source_key`]); the writer looks
//!    the key up and answers the first record's id for a record it has seen before, without
//!    queueing it again (idempotent re-posts and re-imports). Keys are written in the queue's
//!    batch.
//! 3. The batcher takes the queued CDRs in order (the writer's decoded copy of what it just
//!    wrote when it holds the next sequence, else the queue itself), signs `CdrBatch`
//!    transactions and puts them in the pool. Committing a block removes its CDRs from the queue
//!    in the same storage batch. After a crash the queue holds exactly the acknowledged CDRs not
//!    yet committed, and the batcher starts again from the committed sequence: every acknowledged
//!    CDR is committed once (the runtime refuses a second copy of a sequence number), and nothing
//!    unacknowledged was ever numbered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::hash::{context, hash_with, Hash32};
use cdrchain_runtime::ids::{CdrId, OperatorId, Sequence};
use cdrchain_runtime::input::{CdrInput, InputError};
use cdrchain_runtime::party::PartyHasher;
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{CdrBatch, SignedTransaction, Transaction, MAX_CDRS_PER_BATCH};
use cdrchain_storage::{QueueRun, Storage};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::pool::TxPool;

/// Most bytes of encoded CDRs in one batch transaction: half the default transaction gossip
/// limit (4 MiB), so that every batch can be gossiped. 2,000 typical CDRs take about 0.5 MiB.
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Most CDRs in one submission (one RPC call or HTTP request).
pub const MAX_CDRS_PER_SUBMISSION: usize = 100_000;
/// Most bytes in one submission body.
pub const MAX_SUBMISSION_BYTES: usize = 64 * 1024 * 1024;

/// Why a submission was refused. Nothing of a refused submission is stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("CDR {index}{}: {error}", line_suffix(*.line))]
    Invalid { index: usize, line: Option<usize>, error: InputError },
    #[error("malformed submission{}: {reason}", line_suffix(*.line))]
    Malformed { line: Option<usize>, reason: String },
    #[error("{count} CDRs in one submission, more than the limit of {max}")]
    TooMany { count: usize, max: usize },
    #[error("the submission is empty")]
    Empty,
    #[error("CDRs were not stored: {0}")]
    Unavailable(String),
    #[error(
        "CDRs were not stored: {queued} CDRs acknowledged here wait for the chain (limit {max}, \
         --max-queue); send them again shortly"
    )]
    Busy { queued: u64, max: u64 },
    #[error(
        "this node has no consortium secret, so it cannot hash parties the way the other operators do: \
         ingest is off (start it with --consortium-secret-file or CDRCHAIN_CONSORTIUM_SECRET_FILE)"
    )]
    NoSecret,
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl IngestError {
    /// Whether the client may retry the same submission (the node, not the data, failed).
    pub fn is_retryable(&self) -> bool {
        matches!(self, IngestError::Unavailable(_) | IngestError::NoSecret | IngestError::Busy { .. })
    }

    /// The offending field, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            IngestError::Invalid { error, .. } => error.field(),
            _ => None,
        }
    }
}

/// Reads a submission body: a JSON array of CDR objects, a single object, or NDJSON.
pub fn parse_documents(body: &[u8]) -> Result<Vec<(CdrInput, Option<usize>)>, IngestError> {
    if body.len() > MAX_SUBMISSION_BYTES {
        return Err(IngestError::Malformed {
            line: None,
            reason: format!("{} bytes, more than the limit of {MAX_SUBMISSION_BYTES}", body.len()),
        });
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| IngestError::Malformed { line: None, reason: format!("not UTF-8: {e}") })?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(IngestError::Empty);
    }
    if trimmed.starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| IngestError::Malformed {
                line: Some(e.line()),
                reason: format!("not a JSON array of CDR objects: {e}"),
            })?;
        check_count(values.len())?;
        return values
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                CdrInput::from_value(value).map(|input| (input, None)).map_err(|error| IngestError::Invalid {
                    index,
                    line: None,
                    error,
                })
            })
            .collect();
    }
    // NDJSON (a single object is one line of it, possibly spread over several lines).
    if let Ok(input) = CdrInput::from_json(text) {
        return Ok(vec![(input, Some(1))]);
    }
    let mut out = Vec::with_capacity(
        usize::try_from(estimated_records(body)).unwrap_or(0).min(MAX_CDRS_PER_SUBMISSION),
    );
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        check_count(out.len() + 1)?;
        let input = CdrInput::from_json(line).map_err(|error| IngestError::Invalid {
            index: out.len(),
            line: Some(number + 1),
            error,
        })?;
        out.push((input, Some(number + 1)));
    }
    if out.is_empty() {
        return Err(IngestError::Empty);
    }
    Ok(out)
}

fn check_count(count: usize) -> Result<(), IngestError> {
    if count > MAX_CDRS_PER_SUBMISSION {
        Err(IngestError::TooMany { count, max: MAX_CDRS_PER_SUBMISSION })
    } else {
        Ok(())
    }
}

/// A validated CDR with its ingest key.
#[derive(Clone, Debug)]
pub struct Keyed {
    pub body: CdrBody,
    pub key: [u8; 32],
}

/// The ingest key of a canonical input: a digest of [`CdrInput::source_key`].
pub fn ingest_key(input: &CdrInput) -> [u8; 32] {
    hash_with(context::INGEST_KEY, &[input.source_key().as_bytes()]).0
}

/// Validates every CDR of a submission; the first bad one refuses the whole submission.
pub fn validate(
    inputs: &[(CdrInput, Option<usize>)],
    parties: &PartyHasher,
) -> Result<Vec<Keyed>, IngestError> {
    if inputs.is_empty() {
        return Err(IngestError::Empty);
    }
    check_count(inputs.len())?;
    // A loop, not `collect`: a collect of `Result`s cannot size its vector up front.
    let mut cdrs = Vec::with_capacity(inputs.len());
    for (index, (input, line)) in inputs.iter().enumerate() {
        let body =
            input.to_body(parties).map_err(|error| IngestError::Invalid { index, line: *line, error })?;
        cdrs.push(Keyed { body, key: ingest_key(input) });
    }
    Ok(cdrs)
}

/// Where a submitted CDR went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub id: CdrId,
    /// The record had been ingested before: `id` is its first id, and nothing was queued.
    pub duplicate: bool,
}

struct Request {
    cdrs: Vec<Keyed>,
    reply: oneshot::Sender<Result<Vec<(Sequence, bool)>, IngestError>>,
}

/// Where a CDR submitted here stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Durable in the queue, not yet in a committed block.
    Queued,
    /// Not known to this node (another operator's CDR is only known once committed).
    Unknown,
}

/// What ingest needs besides storage and the pool.
pub struct IngestSettings {
    /// This node's operator: the recorder of every CDR it ingests.
    pub operator: OperatorId,
    /// Signs the batches.
    pub key: SigningKey,
    /// Normalizes and hashes parties; `None` (no consortium secret): ingest refuses, clearly.
    pub parties: Option<PartyHasher>,
    /// Bound into every signature.
    pub genesis_hash: Hash32,
    /// Most CDRs per batch.
    pub batch_max: usize,
    /// How long a partial batch waits.
    pub linger: Duration,
    /// Most of this node's CDRs signed into batches and not yet committed. The rest wait in the
    /// durable queue: the pool (memory) and the gossip of waiting batches stay bounded however
    /// far ingest runs ahead of the chain. The node uses two blocks' worth.
    pub max_in_flight: u64,
    /// Most CDRs acknowledged and not yet committed (the durable queue). A submission that
    /// would go beyond it is refused whole with [`IngestError::Busy`] (HTTP 503, Retry-After),
    /// so that a sender faster than the chain is slowed down instead of the queue, and the wait
    /// of every CDR in it, growing without end. One submission is always taken into an empty
    /// queue, whatever its size.
    pub max_queue: u64,
}

impl std::fmt::Debug for IngestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestSettings")
            .field("operator", &self.operator)
            .field("batch_max", &self.batch_max)
            .field("linger", &self.linger)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_queue", &self.max_queue)
            .finish_non_exhaustive()
    }
}

/// The ingest handle, the writer's thread and the batcher's task.
pub type Started = (Arc<Ingest>, std::thread::JoinHandle<()>, tokio::task::JoinHandle<()>);

/// The ingest front: submit CDRs, learn where they stand.
pub struct Ingest {
    operator: OperatorId,
    parties: Option<PartyHasher>,
    requests: mpsc::Sender<Request>,
    /// The next sequence number the writer will assign (everything below is durable).
    next_assigned: Arc<AtomicU64>,
    storage: Arc<Storage>,
    max_queue: u64,
    busy_log: Arc<BusyLog>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("operator", &self.operator).finish_non_exhaustive()
    }
}

/// The committed next sequence of `operator` (what the chain expects next).
pub fn committed_next(storage: &Storage, operator: &OperatorId) -> Result<Sequence, String> {
    let key = StateKey::NextSequence(operator.clone()).encode();
    match storage.get(&key).map_err(|e| e.to_string())? {
        Some(bytes) => decode_exact(&bytes).map_err(|e| format!("next sequence does not decode: {e}")),
        None => Err(format!("operator `{operator}` is not registered on this chain")),
    }
}

impl Ingest {
    /// Starts the writer and the batcher. `shutdown` stops the batcher; the writer stops when the
    /// last `Ingest` handle is dropped.
    pub fn start(
        storage: Arc<Storage>,
        pool: Arc<TxPool>,
        settings: IngestSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Started, String> {
        let IngestSettings {
            operator,
            key,
            parties,
            genesis_hash,
            batch_max,
            linger,
            max_in_flight,
            max_queue,
        } = settings;
        let committed = committed_next(&storage, &operator)?;
        let last_queued = storage.last_queued().map_err(|e| e.to_string())?;
        let next = match last_queued {
            Some(last) if last >= committed => last.0 + 1,
            _ => committed.0,
        };
        tracing::info!(
            target: "cdrchain::ingest",
            "`{operator}`: next sequence {next}, committed up to {}, {} queued",
            committed.0,
            next - committed.0
        );
        let next_assigned = Arc::new(AtomicU64::new(next));
        let notify = Arc::new(Notify::new());
        let (requests, receiver) = mpsc::channel(1024);
        let busy_log = Arc::new(BusyLog::default());
        let handoff = Arc::new(Handoff::default());
        let state = Writer {
            storage: storage.clone(),
            operator: operator.clone(),
            next_assigned: next_assigned.clone(),
            notify: notify.clone(),
            max_queue: max_queue.max(1),
            busy_log: busy_log.clone(),
            handoff: handoff.clone(),
        };
        // The writer is a serial stage that every acknowledgement waits for: a thread of its own,
        // blocked on the channel between groups, instead of a task that handed each group to
        // the blocking pool (a wake-up and a thread hand-off per group). Not in the blocking
        // pool either: the runtime would wait for it at shutdown. It ends when the last sender
        // (the last `Ingest` handle) is dropped.
        let writer = std::thread::Builder::new()
            .name("ingest-writer".into())
            .spawn(move || writer(state, receiver))
            .map_err(|e| format!("starting the ingest writer thread: {e}"))?;
        let batcher = tokio::spawn(batcher(Batcher {
            storage: storage.clone(),
            pool,
            operator: operator.clone(),
            key,
            genesis_hash,
            batch_max: batch_max.clamp(1, MAX_CDRS_PER_BATCH),
            linger,
            max_in_flight: max_in_flight.max(1),
            notify,
            next_to_batch: committed,
            in_flight: Vec::new(),
            shutdown,
            handoff,
        }));
        let ingest = Arc::new(Ingest {
            operator,
            parties,
            requests,
            next_assigned,
            storage,
            max_queue: max_queue.max(1),
            busy_log,
        });
        Ok((ingest, writer, batcher))
    }

    pub fn operator(&self) -> &OperatorId {
        &self.operator
    }

    /// The party hasher; [`IngestError::NoSecret`] when the node has no consortium secret.
    pub fn parties(&self) -> Result<&PartyHasher, IngestError> {
        self.parties.as_ref().ok_or(IngestError::NoSecret)
    }

    /// Parses, validates and durably queues a submission body; answers where the CDRs went.
    pub async fn submit_body(&self, body: &[u8]) -> Result<Vec<Submitted>, IngestError> {
        self.admit(estimated_records(body))?;
        let inputs = parse_documents(body)?;
        self.queue_inputs(&inputs).await
    }

    /// Validates and durably queues canonical inputs (all or nothing).
    pub async fn submit_inputs(
        &self,
        inputs: &[(CdrInput, Option<usize>)],
    ) -> Result<Vec<Submitted>, IngestError> {
        self.admit(inputs.len() as u64)?;
        self.queue_inputs(inputs).await
    }

    /// [`Ingest::submit_inputs`] for a caller that called [`Ingest::admit`] before it read the
    /// submission (the HTTP adapters): validates and durably queues, without a second look.
    pub(crate) async fn queue_inputs(
        &self,
        inputs: &[(CdrInput, Option<usize>)],
    ) -> Result<Vec<Submitted>, IngestError> {
        let cdrs = validate(inputs, self.parties()?)?;
        self.submit(cdrs).await
    }

    /// Whether a canonical input was ingested here before: its first id.
    pub fn already_ingested(&self, input: &CdrInput) -> Result<Option<CdrId>, IngestError> {
        let sequence = self
            .storage
            .ingest_key(&ingest_key(input))
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        Ok(sequence.map(|sequence| CdrId { recorder: self.operator.clone(), sequence }))
    }

    /// Durably queues validated CDRs; answers their ids once they are synced to disk. A CDR
    /// whose ingest key is known (or repeats one earlier in the submission) is not queued again:
    /// its answer is the first record's id, marked `duplicate`.
    pub async fn submit(&self, cdrs: Vec<Keyed>) -> Result<Vec<Submitted>, IngestError> {
        if cdrs.is_empty() {
            return Err(IngestError::Empty);
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { cdrs, reply })
            .await
            .map_err(|_| IngestError::Unavailable("the node is shutting down".into()))?;
        let placed =
            answer.await.map_err(|_| IngestError::Unavailable("the node is shutting down".into()))??;
        Ok(placed
            .into_iter()
            .map(|(sequence, duplicate)| Submitted {
                id: CdrId { recorder: self.operator.clone(), sequence },
                duplicate,
            })
            .collect())
    }

    /// Whether one of this operator's sequence numbers is queued (durable, not yet committed).
    pub fn status(&self, sequence: Sequence) -> Status {
        let committed = committed_next(&self.storage, &self.operator).map(|s| s.0).unwrap_or(u64::MAX);
        if sequence.0 >= committed && sequence.0 < self.next_assigned.load(Ordering::Acquire) {
            Status::Queued
        } else {
            Status::Unknown
        }
    }

    /// Refuses a submission of about `records` CDRs before it is read when it would not fit the
    /// queue: [`IngestError::Busy`], by the writer's rule (an empty queue takes anything).
    /// Senders retry a full node many times a second; parsing and validating each retry only to
    /// refuse it took three quarters of the CPU of an overloaded localnet, and starved consensus
    /// until blocks stopped. Refusing only a queue already at its limit was not enough: a queue
    /// a little under it (48,736 of 50,000) refused every 2,000-CDR retry only after parsing it,
    /// and a four-validator chain stopped committing for good. `records` is an estimate (see
    /// [`estimated_records`]); the writer still checks each submission's exact count.
    pub fn admit(&self, records: u64) -> Result<(), IngestError> {
        let queued = self.queue_depth();
        if queued == 0 || (queued < self.max_queue && queued.saturating_add(records) <= self.max_queue) {
            return Ok(());
        }
        self.busy_log.refused(queued, self.max_queue, None);
        Err(IngestError::Busy { queued, max: self.max_queue })
    }

    /// CDRs assigned but not yet committed.
    pub fn queue_depth(&self) -> u64 {
        queue_depth(&self.storage, &self.operator, self.next_assigned.load(Ordering::Acquire))
    }
}

/// How many records a submission body holds, read without parsing it: its lines (NDJSON has one
/// record per line), at least one. Pretty-printed JSON over-counts, which only refuses it a little
/// earlier near a full queue; a one-line array under-counts, and the writer's exact check refuses
/// it after parsing. Counted with `memchr` (SIMD): a byte-by-byte count of each ~0.5 MiB body,
/// twice per submission, was ~4 % of the dev node's CPU at its ceiling.
pub fn estimated_records(body: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', body).count() as u64;
    let unterminated = u64::from(body.last().is_some_and(|&byte| byte != b'\n'));
    (newlines + unterminated).max(1)
}

/// CDRs assigned below `next` and not yet committed (all of them if the state cannot be read).
fn queue_depth(storage: &Storage, operator: &OperatorId, next: u64) -> u64 {
    let committed = committed_next(storage, operator).map(|s| s.0).unwrap_or(0);
    next.saturating_sub(committed)
}

/// Most CDRs written in one group commit.
const MAX_GROUP_CDRS: usize = 200_000;

struct Writer {
    storage: Arc<Storage>,
    operator: OperatorId,
    /// The next sequence to assign (everything below is durable).
    next_assigned: Arc<AtomicU64>,
    /// Wakes the batcher.
    notify: Arc<Notify>,
    max_queue: u64,
    busy_log: Arc<BusyLog>,
    handoff: Arc<Handoff>,
}

/// How often, at most, the node logs that it refuses submissions because the queue is full.
const BUSY_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The "queue full" warning, at most every [`BUSY_LOG_INTERVAL`], counting what was refused in
/// between: whole submissions by the writer (CDRs counted) and unread ones by [`Ingest::admit`].
#[derive(Default)]
struct BusyLog(std::sync::Mutex<BusyCounts>);

#[derive(Default)]
struct BusyCounts {
    cdrs: u64,
    unread: u64,
    logged: Option<Instant>,
}

impl BusyLog {
    /// One refusal: of `cdrs` CDRs, or of a submission not read (`None`).
    fn refused(&self, queued: u64, max: u64, cdrs: Option<u64>) {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match cdrs {
            Some(cdrs) => counts.cdrs += cdrs,
            None => counts.unread += 1,
        }
        if counts.logged.is_none_or(|at| at.elapsed() >= BUSY_LOG_INTERVAL) {
            tracing::warn!(
                target: "cdrchain::ingest",
                "queue full ({queued} CDRs wait for the chain, limit {max}): refused {} CDRs and {} \
                 submissions unread with 503 since the last such line; senders retry",
                counts.cdrs,
                counts.unread
            );
            *counts = BusyCounts { logged: Some(Instant::now()), ..BusyCounts::default() };
        }
    }
}

/// The writer's loop, on its own thread: one group of waiting submissions at a time, until the
/// last sender is dropped.
fn writer(state: Writer, mut receiver: mpsc::Receiver<Request>) {
    let Writer { storage, operator, next_assigned, notify, max_queue, busy_log, handoff } = state;
    while let Some(first) = receiver.blocking_recv() {
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
        let start = next_assigned.load(Ordering::Acquire);
        // Admission: the queue (acknowledged, not committed) stays within max_queue. Counting
        // duplicates as new over-counts a little, never under.
        let mut queued = queue_depth(&storage, &operator, start);
        let mut group = Vec::with_capacity(pending.len());
        for request in pending {
            let count = request.cdrs.len() as u64;
            if queued == 0 || queued + count <= max_queue {
                queued += count;
                group.push(request);
            } else {
                busy_log.refused(queued, max_queue, Some(count));
                let _ = request.reply.send(Err(IngestError::Busy { queued, max: max_queue }));
            }
        }
        if group.is_empty() {
            continue;
        }
        let total: usize = group.iter().map(|request| request.cdrs.len()).sum();
        let (submissions, replies): (Vec<Vec<Keyed>>, Vec<_>) =
            group.into_iter().map(|request| (request.cdrs, request.reply)).unzip();
        // A panic in one group (a bug) refuses that group, as a failed write does, and the
        // writer goes on: it is not the thread's end, which would refuse all ingest from then on.
        let written =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| place(&storage, start, submissions)))
                .unwrap_or_else(|_| Err("the ingest writer panicked placing this group".to_string()));
        match written {
            Ok((next, placed, queued)) => {
                handoff.put(start, queued);
                next_assigned.store(next, Ordering::Release);
                for (reply, placed) in replies.into_iter().zip(placed) {
                    let _ = reply.send(Ok(placed));
                }
                notify.notify_one();
            }
            Err(reason) => {
                tracing::error!(target: "cdrchain::ingest", "queue write failed, {total} CDRs refused: {reason}");
                for reply in replies {
                    let _ = reply.send(Err(IngestError::Unavailable(reason.clone())));
                }
            }
        }
    }
}

/// Gives the new CDRs of a group of submissions sequences from `start`, finds the ones seen
/// before, and writes the new ones and their keys in one synced batch. Answers the next free
/// sequence, per submission each CDR's (sequence, duplicate), and the queued CDRs in order with
/// their encoded sizes (for the batcher, see [`Handoff`]).
#[allow(clippy::type_complexity)]
fn place(
    storage: &Storage,
    start: u64,
    submissions: Vec<Vec<Keyed>>,
) -> Result<(u64, Vec<Vec<(Sequence, bool)>>, Vec<(CdrBody, usize)>), String> {
    let all_keys: Vec<[u8; 32]> = submissions.iter().flatten().map(|cdr| cdr.key).collect();
    // The group's keys in key order, once (equal keys by position): the batched lookup and the
    // ingest-key inserts both take them in that order, and a key repeated within the group sits
    // right after its first occurrence, so no hash set is needed to find repeats.
    let mut order: Vec<usize> = (0..all_keys.len()).collect();
    order.sort_unstable_by_key(|&i| (all_keys[i], i));
    let sorted: Vec<[u8; 32]> = order.iter().map(|&i| all_keys[i]).collect();
    let found = storage.ingest_keys(&sorted).map_err(|e| e.to_string())?;
    let mut earlier = vec![Earlier::New; all_keys.len()];
    for (rank, (&i, found)) in order.iter().zip(found).enumerate() {
        earlier[i] = match found {
            Some(sequence) => Earlier::Stored(sequence),
            None if rank > 0 && sorted[rank - 1] == sorted[rank] => Earlier::Repeats(order[rank - 1]),
            None => Earlier::New,
        };
    }
    let mut run = QueueRun::new(Sequence(start));
    let mut next = start;
    let mut placed = Vec::with_capacity(submissions.len());
    let mut duplicates = 0usize;
    let mut given = vec![Sequence(0); all_keys.len()];
    let mut queued = Vec::with_capacity(all_keys.len());
    let mut i = 0;
    for cdrs in submissions {
        let mut answers = Vec::with_capacity(cdrs.len());
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
                    answers.push((sequence, true));
                }
                None => {
                    let sequence = Sequence(next);
                    next += 1;
                    given[i] = sequence;
                    let size = run.push_with(|out| cdr.body.encode_to(out));
                    answers.push((sequence, false));
                    queued.push((cdr.body, size));
                }
            }
            i += 1;
        }
        placed.push(answers);
    }
    // In key order (see `Storage::enqueue_keyed`).
    let keys: Vec<([u8; 32], Sequence)> = order
        .iter()
        .filter(|&&i| matches!(earlier[i], Earlier::New))
        .map(|&i| (all_keys[i], given[i]))
        .collect();
    storage.enqueue_keyed(&run, &keys).map_err(|e| e.to_string())?;
    if duplicates > 0 {
        tracing::info!(
            target: "cdrchain::ingest",
            "{duplicates} re-submitted CDR(s) recognised by their source identity: not queued again"
        );
    }
    Ok((next, placed, queued))
}

/// What the writer knows of a CDR's ingest key before it places the CDR.
#[derive(Clone, Copy, Debug)]
enum Earlier {
    /// Not seen: the CDR is new.
    New,
    /// Stored before: the CDR is a re-submission of that sequence.
    Stored(Sequence),
    /// Repeats the key of the CDR at this (earlier) position of the group.
    Repeats(usize),
}

/// Most CDRs the writer hands to the batcher in memory (about 30 MiB of typical CDRs).
const HANDOFF_MAX_CDRS: usize = 65_536;

/// The CDRs the writer just queued, decoded, for the batcher: it takes them from here instead
/// of reading the queue back and decoding every CDR again (~4 % of the dev node's CPU). Only a
/// copy: the durable queue stays the record. The batcher reads the queue whenever the sequence
/// it wants is not the first held here (after a restart, when batches are resubmitted, or when
/// the writer ran more than [`HANDOFF_MAX_CDRS`] ahead and kept no copy).
#[derive(Debug, Default)]
struct Handoff(std::sync::Mutex<HandoffRuns>);

#[derive(Debug, Default)]
struct HandoffRuns {
    /// Runs of consecutive sequences: (first, the CDRs with their encoded sizes), in order.
    runs: std::collections::VecDeque<(u64, std::collections::VecDeque<(CdrBody, usize)>)>,
    held: usize,
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HandoffRuns> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a copy of the CDRs just queued from sequence `first`, unless that would hold more
    /// than [`HANDOFF_MAX_CDRS`].
    fn put(&self, first: u64, cdrs: Vec<(CdrBody, usize)>) {
        let mut held = self.lock();
        if cdrs.is_empty() || held.held + cdrs.len() > HANDOFF_MAX_CDRS {
            return;
        }
        held.held += cdrs.len();
        held.runs.push_back((first, cdrs.into()));
    }

    /// Up to `want` CDRs from sequence `from` on, at most [`MAX_BATCH_BYTES`] of them (at least
    /// one), and whether that is a full batch; `None` if `from` is not the first CDR held. What
    /// lies below `from` is dropped (batched already, or to be read from the queue).
    fn take(&self, from: u64, want: usize) -> Option<(Vec<CdrBody>, bool)> {
        let mut guard = self.lock();
        let held = &mut *guard;
        while let Some((first, run)) = held.runs.front_mut() {
            let end = *first + run.len() as u64;
            if end <= from {
                held.held -= run.len();
                held.runs.pop_front();
                continue;
            }
            if *first < from {
                let skip = usize::try_from(from - *first).unwrap_or(run.len()).min(run.len());
                run.drain(..skip);
                held.held -= skip;
                *first = from;
            }
            break;
        }
        if held.runs.front().is_none_or(|(first, _)| *first != from) {
            return None;
        }
        let mut gather = Gather::new(want);
        // Across runs while they follow on from each other.
        while let Some((first, run)) = held.runs.front_mut() {
            if *first != from + gather.cdrs.len() as u64 {
                break;
            }
            while let Some((_, size)) = run.front() {
                if !gather.fits(*size) {
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
        Some(gather.finish())
    }
}

/// One batch being gathered: up to `want` CDRs and at most [`MAX_BATCH_BYTES`] of them (at
/// least one), whether they come from the hand-off or from the queue.
struct Gather {
    cdrs: Vec<CdrBody>,
    bytes: usize,
    want: usize,
    full: bool,
}

impl Gather {
    fn new(want: usize) -> Gather {
        Gather { cdrs: Vec::with_capacity(want.min(MAX_CDRS_PER_BATCH)), bytes: 0, want, full: false }
    }

    /// Whether a CDR of `size` encoded bytes still fits; if not, the batch is full.
    fn fits(&mut self, size: usize) -> bool {
        if self.cdrs.len() >= self.want || (!self.cdrs.is_empty() && self.bytes + size > MAX_BATCH_BYTES) {
            self.full = true;
        }
        !self.full
    }

    fn push(&mut self, body: CdrBody, size: usize) {
        self.bytes += size;
        self.cdrs.push(body);
    }

    /// The CDRs, and whether they make a full batch (more may be waiting).
    fn finish(self) -> (Vec<CdrBody>, bool) {
        let full = self.full || self.cdrs.len() >= self.want;
        (self.cdrs, full)
    }
}

struct Batcher {
    storage: Arc<Storage>,
    pool: Arc<TxPool>,
    operator: OperatorId,
    key: SigningKey,
    genesis_hash: Hash32,
    batch_max: usize,
    linger: Duration,
    max_in_flight: u64,
    notify: Arc<Notify>,
    /// The next queued sequence not yet in a batch.
    next_to_batch: Sequence,
    /// Batches in the pool, not yet committed: (id, last sequence).
    in_flight: Vec<(Hash32, Sequence)>,
    shutdown: watch::Receiver<bool>,
    handoff: Arc<Handoff>,
}

async fn batcher(mut state: Batcher) {
    let tick = (state.linger / 2).clamp(Duration::from_millis(5), Duration::from_millis(100));
    let mut waiting_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = state.notify.notified() => {}
            _ = tokio::time::sleep(tick) => {}
            _ = state.shutdown.changed() => {}
        }
        if *state.shutdown.borrow() {
            return;
        }
        let storage = state.storage.clone();
        let result = tokio::task::block_in_place(|| state.step(&storage, &mut waiting_since));
        if let Err(reason) = result {
            tracing::error!(target: "cdrchain::ingest", "batcher: {reason}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Batcher {
    /// One pass: forget committed batches, resubmit lost ones, batch what is queued.
    fn step(&mut self, storage: &Storage, waiting_since: &mut Option<Instant>) -> Result<(), String> {
        let committed = committed_next(storage, &self.operator)?;
        self.in_flight.retain(|(_, last)| *last >= committed);
        let lost = self.in_flight.iter().any(|(id, _)| !self.pool.contains(id));
        if lost
            || self.next_to_batch < committed
            || (self.in_flight.is_empty() && self.next_to_batch > committed)
        {
            if self.next_to_batch != committed {
                tracing::info!(
                    target: "cdrchain::ingest",
                    "resubmitting from sequence {} (batched up to {})",
                    committed.0,
                    self.next_to_batch.0
                );
            }
            let ids: Vec<Hash32> = self.in_flight.drain(..).map(|(id, _)| id).collect();
            self.pool.remove(&ids);
            self.next_to_batch = committed;
        }
        while self.pool.has_space() {
            let in_flight = self.next_to_batch.0.saturating_sub(committed.0);
            if in_flight >= self.max_in_flight {
                return Ok(());
            }
            let room = usize::try_from(self.max_in_flight - in_flight).unwrap_or(usize::MAX);
            let want = self.batch_max.min(room);
            let (cdrs, full) = self.read_queue(storage, want)?;
            if cdrs.is_empty() {
                *waiting_since = None;
                return Ok(());
            }
            if !full {
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() < self.linger {
                    return Ok(());
                }
            }
            *waiting_since = None;
            self.batch(cdrs)?;
        }
        Ok(())
    }

    /// Up to `want` queued CDRs from `next_to_batch`, and at most [`MAX_BATCH_BYTES`] of them
    /// (at least one); and whether that is a full batch (more may be waiting).
    fn read_queue(&self, storage: &Storage, want: usize) -> Result<(Vec<CdrBody>, bool), String> {
        if let Some(taken) = self.handoff.take(self.next_to_batch.0, want) {
            return Ok(taken);
        }
        let first = self.next_to_batch.0;
        let mut gather = Gather::new(want);
        let mut failure = None;
        storage
            .visit_queued(self.next_to_batch, |sequence, item| {
                let expected = first + gather.cdrs.len() as u64;
                if sequence.0 != expected {
                    failure = Some(format!("the ingest queue skips from {expected} to {}", sequence.0));
                    return false;
                }
                if !gather.fits(item.len()) {
                    return false;
                }
                match decode_exact::<CdrBody>(item) {
                    Ok(body) => {
                        gather.push(body, item.len());
                        true
                    }
                    Err(e) => {
                        failure = Some(format!("queued CDR {} does not decode: {e}", sequence.0));
                        false
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        match failure {
            Some(reason) => Err(reason),
            None => Ok(gather.finish()),
        }
    }

    fn batch(&mut self, cdrs: Vec<CdrBody>) -> Result<(), String> {
        let first = self.next_to_batch;
        let count = cdrs.len() as u64;
        let tx = Transaction::CdrBatch(CdrBatch {
            operator: self.operator.clone(),
            first_sequence: first,
            cdrs: BoundedVec::new(cdrs).map_err(|v| format!("{} CDRs exceed a batch", v.len()))?.into(),
        });
        let signed = SignedTransaction::sign(tx, &self.key, &self.genesis_hash);
        let id = signed.id(&self.genesis_hash);
        self.pool.add(id, signed).map_err(|e| e.to_string())?;
        let last = Sequence(first.0 + count - 1);
        self.in_flight.push((id, last));
        self.next_to_batch = Sequence(last.0 + 1);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use cdrchain_chain_spec::{ChainSpec, DevAccount};

    struct Fixture {
        _dir: tempfile::TempDir,
        storage: Arc<Storage>,
        pool: Arc<TxPool>,
        ingest: Arc<Ingest>,
        _stop: watch::Sender<bool>,
    }

    fn start(batch_max: usize, max_in_flight: u64, max_queue: u64) -> Fixture {
        let spec = ChainSpec::dev();
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Arc::new(Storage::open(dir.path(), spec.genesis_hash(), &spec.genesis_state().unwrap()).unwrap());
        let pool = Arc::new(TxPool::new(1_000));
        let (stop, stopping) = watch::channel(false);
        let settings = IngestSettings {
            operator: "alice".parse().unwrap(),
            key: DevAccount::derive("alice").signing_key,
            parties: Some(PartyHasher::new(b"unit-test consortium secret", None).unwrap()),
            genesis_hash: spec.genesis_hash(),
            batch_max,
            linger: Duration::from_millis(10),
            max_in_flight,
            max_queue,
        };
        let (ingest, _, _) = Ingest::start(storage.clone(), pool.clone(), settings, stopping).unwrap();
        Fixture { _dir: dir, storage, pool, ingest, _stop: stop }
    }

    /// `count` distinct CDRs from `from`; `pad` characters of call id and linked id each.
    fn cdrs(from: u64, count: u64, pad: usize) -> Vec<(CdrInput, Option<usize>)> {
        (from..from + count)
            .map(|n| {
                let tail = "x".repeat(pad);
                let text = format!(
                    r#"{{"call_id":"u-{n}-{tail}","linked_id":"l-{n}-{tail}","caller":"+442079460{m:03}",
                        "callee":"+14155550100","caller_operator":"alice","callee_operator":"bob",
                        "start":1795000000000,"end":1795000060000,"disposition":"no-answer"}}"#,
                    m = n % 1_000
                );
                (CdrInput::from_json(&text).unwrap(), None)
            })
            .collect()
    }

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
            let body = validate(&cdrs(0, 1, 0), &parties)?.remove(0).body;
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
                let (end, placed, queued) =
                    place(&storage, start, submissions).map_err(proptest::test_runner::TestCaseError::fail)?;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_whole_submissions_and_numbers_none_of_their_cdrs() {
        // Nothing is batched (max_in_flight 1 and no chain), so the queue only grows.
        let f = start(2_000, 1, 10);
        assert_eq!(f.ingest.submit_inputs(&cdrs(0, 6, 0)).await.unwrap().len(), 6);
        let refused = f.ingest.submit_inputs(&cdrs(6, 5, 0)).await.unwrap_err();
        assert!(matches!(refused, IngestError::Busy { queued: 6, max: 10 }), "{refused:?}");
        assert!(refused.is_retryable());
        assert!(refused.to_string().contains("--max-queue"), "{refused}");
        // Nothing of the refused submission was numbered: the next one continues at 6.
        let placed = f.ingest.submit_inputs(&cdrs(6, 4, 0)).await.unwrap();
        assert_eq!(placed.first().unwrap().id.sequence, Sequence(6));
        assert_eq!(f.ingest.queue_depth(), 10);
        assert!(matches!(
            f.ingest.submit_inputs(&cdrs(10, 1, 0)).await,
            Err(IngestError::Busy { queued: 10, max: 10 })
        ));
        assert_eq!(f.storage.queue_len().unwrap(), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_before_reading_the_submission() {
        let f = start(2_000, 1, 4);
        assert_eq!(f.ingest.submit_inputs(&cdrs(0, 4, 0)).await.unwrap().len(), 4);
        // Not even parsed: garbage gets the same answer as good CDRs would.
        assert!(matches!(
            f.ingest.submit_body(b"{not json").await,
            Err(IngestError::Busy { queued: 4, max: 4 })
        ));
        assert!(matches!(f.ingest.admit(1), Err(IngestError::Busy { queued: 4, max: 4 })));
        // Below the limit, the same garbage is read and refused for what it is.
        let g = start(2_000, 1, 5);
        g.ingest.submit_inputs(&cdrs(0, 4, 0)).await.unwrap();
        assert!(g.ingest.admit(1).is_ok());
        let refused = g.ingest.submit_body(b"{not json").await.unwrap_err();
        assert!(!refused.is_retryable(), "{refused:?}");
        // Under the limit but without room for the submission's lines: refused unread too (the
        // retry storm that stopped an overloaded localnet; see `Ingest::admit`).
        assert!(matches!(g.ingest.admit(2), Err(IngestError::Busy { queued: 4, max: 5 })));
        assert!(matches!(
            g.ingest.submit_body(b"{not json\n{not json either\n").await,
            Err(IngestError::Busy { queued: 4, max: 5 })
        ));
        // An empty queue takes a submission of any size (the writer's rule).
        let h = start(2_000, 1, 3);
        assert!(h.ingest.admit(10).is_ok());
    }

    #[test]
    fn records_are_estimated_by_lines() {
        assert_eq!(estimated_records(b""), 1);
        assert_eq!(estimated_records(b"{}"), 1);
        assert_eq!(estimated_records(b"{}\n"), 1);
        assert_eq!(estimated_records(b"{}\n{}\n{}"), 3);
        assert_eq!(estimated_records(b"{}\n{}\n{}\n"), 3);
        assert_eq!(estimated_records(b"[{}, {}]"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_queue_takes_one_submission_larger_than_the_limit() {
        let f = start(2_000, 1, 3);
        assert_eq!(f.ingest.submit_inputs(&cdrs(0, 5, 0)).await.unwrap().len(), 5);
        assert!(matches!(
            f.ingest.submit_inputs(&cdrs(5, 1, 0)).await,
            Err(IngestError::Busy { queued: 5, max: 3 })
        ));
    }

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
        assert!(handoff.take(0, 10).is_none());
        handoff.put(10, run(10, 5, 100));
        handoff.put(15, run(15, 5, 100));
        // Not the first held: the queue answers.
        assert!(handoff.take(9, 10).is_none());
        // Across two runs that follow on; a short take is not full.
        let (cdrs, full) = handoff.take(12, 100).ok_or("nothing held")?;
        assert_eq!(
            sequences(&cdrs),
            sequences(&run(12, 8, 0).into_iter().map(|(c, _)| c).collect::<Vec<_>>())
        );
        assert!(!full);
        assert!(handoff.take(20, 1).is_none());
        // A gap (a run the writer kept no copy of) ends a take; the queue fills the gap.
        handoff.put(20, run(20, 3, 100));
        handoff.put(30, run(30, 3, 100));
        let (cdrs, full) = handoff.take(20, 2).ok_or("nothing held")?;
        assert_eq!((cdrs.len(), full), (2, true));
        let (cdrs, full) = handoff.take(22, 10).ok_or("nothing held")?;
        assert_eq!((cdrs.len(), full), (1, false));
        assert!(handoff.take(23, 10).is_none());
        // Taking from further on drops what lies below.
        let (cdrs, _) = handoff.take(31, 10).ok_or("nothing held")?;
        assert_eq!(cdrs.len(), 2);
        assert_eq!(handoff.lock().held, 0);
        // The byte cap: at least one, then no more than MAX_BATCH_BYTES.
        handoff.put(40, run(40, 4, MAX_BATCH_BYTES / 2));
        let (cdrs, full) = handoff.take(40, 10).ok_or("nothing held")?;
        assert_eq!((cdrs.len(), full), (2, true));
        handoff.put(50, run(50, 1, MAX_BATCH_BYTES * 2));
        let (cdrs, _) = handoff.take(42, 10).ok_or("nothing held")?;
        assert_eq!(cdrs.len(), 2);
        let (cdrs, _) = handoff.take(50, 10).ok_or("nothing held")?;
        assert_eq!(cdrs.len(), 1);
        // Bounded: a run that would go beyond the limit is not kept.
        handoff.put(100, run(100, 10, 1));
        handoff.put(110, (0..HANDOFF_MAX_CDRS).map(|_| run(0, 1, 1).remove(0)).collect());
        assert_eq!(handoff.lock().held, 10);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_stay_under_the_byte_cap_whatever_their_count() {
        // ~620-byte CDRs: 4,000 of them (2.4 MiB) fit the count limit of one batch but not its
        // byte limit, so they go out as two contiguous batches, each within MAX_BATCH_BYTES.
        let f = start(MAX_CDRS_PER_BATCH, 10_000, 100_000);
        f.ingest.submit_inputs(&cdrs(0, 4_000, 240)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while f.pool.cdr_count() < 4_000 {
            assert!(Instant::now() < deadline, "batched only {} CDRs", f.pool.cdr_count());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut batches: Vec<CdrBatch> = f
            .pool
            .snapshot(100)
            .into_iter()
            .map(|(_, signed)| match signed.transaction {
                Transaction::CdrBatch(batch) => batch,
                other => panic!("not a CDR batch: {other:?}"),
            })
            .collect();
        batches.sort_by_key(|b| b.first_sequence);
        assert_eq!(batches.len(), 2, "{:?}", batches.iter().map(|b| b.cdrs.len()).collect::<Vec<_>>());
        assert_eq!(batches[0].first_sequence, Sequence(0));
        assert_eq!(batches[1].first_sequence.0, batches[0].cdrs.len() as u64);
        let bytes: Vec<usize> =
            batches.iter().map(|batch| batch.cdrs.iter().map(|cdr| cdr.encoded_size()).sum()).collect();
        assert!(bytes.iter().all(|b| *b <= MAX_BATCH_BYTES), "{bytes:?} bytes per batch");
        // The first is full: one more CDR would not have fitted.
        assert!(bytes[0] + 1_000 > MAX_BATCH_BYTES, "{bytes:?}: the cap cut too early");
    }
}
