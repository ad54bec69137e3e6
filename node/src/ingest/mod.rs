//! Durable ingest: CDRs in, sequence numbers out, nothing lost.
//!
//! The pipeline has three stages, one module each, and a hand-off between the last two:
//!
//! 1. `submission`: [`parse_documents`] reads a JSON array, one JSON object, or NDJSON; every
//!    CDR is validated ([`cdrchain_runtime::input::CdrInput::to_body`]) before any is accepted:
//!    a submission is all or nothing, and an error names the CDR (index, NDJSON line) and the
//!    field.
//! 2. `writer`: [`Ingest::submit`] hands the bodies to the writer (a thread of its own), which
//!    gathers every submission waiting at that moment, gives them this operator's next sequence
//!    numbers, and writes them to the durable queue in one synced batch (group commit). Only
//!    then does the submitter get its ids. The writer is the only place sequence numbers are
//!    assigned, so they are contiguous. Each CDR carries its ingest key (a digest of its
//!    identity in the source: system id and source id, or call id and leg,
//!    [`CdrInput::source_key`]); the writer looks the key up and answers the first record's id
//!    for a record it has seen before, without queueing it again (idempotent re-posts and
//!    re-imports). Keys are written in the queue's batch.
//! 3. `batcher`: the batcher takes the queued CDRs in order (the writer's decoded copy of what
//!    it just wrote when it holds the next sequence, `handoff`, else the queue itself), signs
//!    `CdrBatch` transactions and puts them in the pool. Committing a block removes its CDRs from
//!    the queue in the same storage batch. After a crash the queue holds exactly the
//!    acknowledged CDRs not yet committed, and the batcher starts again from the committed
//!    sequence: every acknowledged CDR is committed once (the runtime refuses a second copy of a
//!    sequence number), and nothing unacknowledged was ever numbered.
//!
//! This module holds the front ([`Ingest`]: submit, admit, status), the start of the stages
//! ([`Ingest::start`]) and ingest's limits.

mod admission;
mod batcher;
mod conflict;
mod gap;
mod handoff;
pub mod stats;
pub mod stuck;
mod submission;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdrchain_runtime::block::MAX_BLOCK_BYTES_CEILING;
use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{CdrId, OperatorId, Sequence};
use cdrchain_runtime::input::CdrInput;
use cdrchain_runtime::numbering::NumberRules;
use cdrchain_runtime::party::PartyHasher;
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::MAX_CDRS_PER_BATCH;
use cdrchain_storage::{Storage, StorageError};
use parity_scale_codec::Encode;
use tokio::sync::{mpsc, oneshot, watch, Notify};

pub use submission::{
    estimated_records, ingest_key, parse_documents, validate, IngestError, Keyed, Submitted,
};

use crate::metrics::Metrics;
use crate::pool::TxPool;
use batcher::Batcher;
pub use gap::{DeclaredGap, GapError, PendingGap, MAX_GAP_ITEMS};
use handoff::Handoff;
use writer::{BusyLog, Request, Writer};

// Ingest's limits. Each bounds memory or work that a sender (or a chain slower than its
// senders) could otherwise grow without end.

/// Most bytes of encoded CDRs in one batch transaction: half the default transaction gossip
/// limit (4 MiB, checked at start by [`crate::config::check_limits`]), so that every batch can
/// be gossiped. 2,000 typical CDRs take about 0.5 MiB.
pub const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Most CDRs in one submission, and most bytes in its body (the canonical reader's limits).
pub use cdrchain_formats::canonical::{MAX_CDRS_PER_SUBMISSION, MAX_SUBMISSION_BYTES};
/// Most CDRs the writer gathers into one group commit (it stops taking submissions once past it).
const MAX_GROUP_CDRS: usize = 200_000;
/// Most CDRs the writer hands to the batcher in memory (about 30 MiB of typical CDRs).
const MAX_HANDOFF_CDRS: usize = 65_536;
/// Most submissions waiting for the writer (the channel's capacity); a submitter beyond it waits
/// for room.
const MAX_WAITING_SUBMISSIONS: usize = 1_024;
/// How often, at most, the node logs that it refuses submissions because the queue is full.
const BUSY_LOG_INTERVAL_MS: u64 = 10_000;
/// How long the batcher waits after a failed pass before it tries again.
const BATCHER_ERROR_BACKOFF_MS: u64 = 500;
/// Bounds of the batcher's tick (half the linger): often enough to honour a short linger, rarely
/// enough not to spin.
const MIN_BATCHER_TICK_MS: u64 = 5;
const MAX_BATCHER_TICK_MS: u64 = 100;

// A full batch can be gathered from the hand-off alone.
const _: () = assert!(MAX_HANDOFF_CDRS >= MAX_CDRS_PER_BATCH);
// A batch fits the largest block a chain may have.
const _: () = assert!(MAX_BATCH_BYTES <= MAX_BLOCK_BYTES_CEILING);
// The RPC server's request body limit is a u32.
const _: () = assert!(MAX_SUBMISSION_BYTES <= u32::MAX as usize);
const _: () = assert!(MIN_BATCHER_TICK_MS <= MAX_BATCHER_TICK_MS);

/// Why this operator's committed next sequence (what the chain expects next) cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum NextSequenceError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The state holds bytes that are not a sequence (the database is damaged).
    #[error("the next sequence of `{operator}` in the chain state does not decode: {source}")]
    Decode {
        operator: OperatorId,
        #[source]
        source: parity_scale_codec::Error,
    },
    /// The chain does not know the operator.
    #[error("operator `{operator}` is not registered on this chain")]
    NotRegistered { operator: OperatorId },
}

/// Why ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    NextSequence(#[from] NextSequenceError),
    /// The end of the durable queue cannot be read.
    #[error("cannot read the end of the ingest queue: {0}")]
    Queue(#[source] StorageError),
    /// The operating system refused a thread.
    #[error("cannot start the ingest writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
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
    /// The operator's keys held: the one the chain registers for the next block signs the batches.
    pub keys: Arc<crate::keys::KeyRing>,
    /// Normalizes and hashes parties; `None` (no consortium secret): ingest refuses, clearly.
    pub parties: Option<PartyHasher>,
    /// How each source writes numbers, applied before parties are hashed.
    pub number_rules: Arc<NumberRules>,
    /// Where parties recorded as written are counted per source; `None` in tests.
    pub metrics: Option<Arc<Metrics>>,
    /// Set by the validator while it follows the chain to catch up with what it signed before
    /// (its database was purged or restored): ingest refuses meanwhile (review M10), because
    /// the node does not yet know which of its operator's sequence numbers the chain holds.
    pub catching_up: Arc<std::sync::atomic::AtomicBool>,
    /// Bound into every signature.
    pub genesis_hash: Hash32,
    /// Most CDRs per batch (taken as 1 to `MAX_CDRS_PER_BATCH`).
    pub batch_max: usize,
    /// Most encoded CDR bytes per batch (taken as at most [`MAX_BATCH_BYTES`]; a batch holds at
    /// least one CDR whatever its size). The node uses half a block's bytes, so that a batch
    /// always fits a block beside others.
    pub batch_max_bytes: usize,
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
    /// queue, whatever its size (so 0 acts as 1).
    pub max_queue: u64,
    /// The longest an acknowledged CDR should wait for its commit: beyond what the chain
    /// commits in 40 % of it at the measured rate, submissions are refused with
    /// [`IngestError::Slow`] (503, Retry-After). Zero turns this limit off. See `admission`.
    pub max_queue_wait: Duration,
    /// Ingest refuses ([`IngestError::DiskFull`]) while the database's disk has fewer bytes free.
    pub min_free_disk_bytes: u64,
    /// What the chain should commit of this operator's CDRs per second, by its spec: the first
    /// estimate of the time limit, until it is measured (see `admission`).
    pub nominal_rate_per_s: f64,
}

impl std::fmt::Debug for IngestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestSettings")
            .field("operator", &self.operator)
            .field("batch_max", &self.batch_max)
            .field("linger", &self.linger)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_queue", &self.max_queue)
            .field("max_queue_wait", &self.max_queue_wait)
            .field("min_free_disk_bytes", &self.min_free_disk_bytes)
            .finish_non_exhaustive()
    }
}

/// Ingest once started: the handle and the two stages that run on their own.
#[derive(Debug)]
pub struct Started {
    /// The front: submit, admit, status.
    pub ingest: Arc<Ingest>,
    /// The writer's thread; it ends once the last [`Ingest`] handle is dropped.
    pub writer: std::thread::JoinHandle<()>,
    /// The batcher's task; it ends at shutdown.
    pub batcher: tokio::task::JoinHandle<()>,
}

/// The ingest front: submit CDRs, learn where they stand.
pub struct Ingest {
    /// This node's operator: the recorder of every CDR submitted here.
    operator: OperatorId,
    /// Normalizes and hashes parties; `None` refuses ingest ([`IngestError::NoSecret`]).
    parties: Option<PartyHasher>,
    /// How each source writes numbers.
    number_rules: Arc<NumberRules>,
    /// See [`IngestSettings::catching_up`].
    catching_up: Arc<std::sync::atomic::AtomicBool>,
    /// A declared gap the batcher has yet to sign (see `gap`).
    gap: gap::GapSlot,
    /// Wakes the batcher.
    notify: Arc<Notify>,
    /// To the writer's thread.
    requests: mpsc::Sender<Request>,
    /// The next sequence number the writer will assign (everything below is durable).
    next_assigned: Arc<AtomicU64>,
    /// For the committed sequence (the queue's depth) and ingest-key look-ups.
    storage: Arc<Storage>,
    /// The queue's limits, by count and by time, and the measured commit rate.
    admission: Arc<admission::Admission>,
    /// The "queue full" warning, shared with the writer so both kinds of refusal count.
    busy_log: Arc<BusyLog>,
    /// Whether the batcher cannot move the operator's CDRs onto the chain.
    stuck: Arc<stuck::StuckFlag>,
    /// What was taken and refused, per source (the operator view).
    stats: stats::IngestStats,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("operator", &self.operator).finish_non_exhaustive()
    }
}

/// The committed next sequence of `operator` (what the chain expects next).
pub fn committed_next(storage: &Storage, operator: &OperatorId) -> Result<Sequence, NextSequenceError> {
    let key = StateKey::NextSequence(operator.clone()).encode();
    match storage.get(&key)? {
        Some(bytes) => decode_exact(&bytes)
            .map_err(|source| NextSequenceError::Decode { operator: operator.clone(), source }),
        None => Err(NextSequenceError::NotRegistered { operator: operator.clone() }),
    }
}

/// [`committed_next`] at start; a joining operator, which the chain registers (at sequence 0)
/// only from the height it is added, starts at 0 and its CDRs are queued until then.
fn committed_or_joining(storage: &Storage, operator: &OperatorId) -> Result<Sequence, NextSequenceError> {
    match committed_next(storage, operator) {
        Err(NextSequenceError::NotRegistered { .. }) => {
            tracing::warn!(
                target: "cdrchain::ingest",
                "operator `{operator}` is not registered on the chain yet: CDRs are queued and committed once \
                 the authorities add it"
            );
            Ok(Sequence(0))
        }
        other => other,
    }
}

/// CDRs assigned below `next` and not yet committed (all of them if the state cannot be read).
fn queue_depth(storage: &Storage, operator: &OperatorId, next: u64) -> u64 {
    let committed = committed_next(storage, operator).map(|s| s.0).unwrap_or(0);
    next.saturating_sub(committed)
}

impl Ingest {
    /// Starts the writer and the batcher. `shutdown` stops the batcher; the writer stops when the
    /// last `Ingest` handle is dropped.
    pub fn start(
        storage: Arc<Storage>,
        pool: Arc<TxPool>,
        settings: IngestSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Started, StartError> {
        let IngestSettings {
            operator,
            keys,
            parties,
            number_rules,
            metrics,
            catching_up,
            genesis_hash,
            batch_max,
            batch_max_bytes,
            linger,
            max_in_flight,
            max_queue,
            max_queue_wait,
            min_free_disk_bytes,
            nominal_rate_per_s,
        } = settings;
        let committed = committed_or_joining(&storage, &operator)?;
        let next = match storage.last_queued().map_err(StartError::Queue)? {
            Some(last) if last >= committed => last.0 + 1,
            _ => committed.0,
        };
        tracing::info!(
            target: "cdrchain::ingest",
            "`{operator}`: next sequence {next}, committed up to {}, {} queued",
            committed.0,
            next - committed.0
        );
        let admission = Arc::new(
            admission::Admission::new(max_queue, max_queue_wait)
                .with_disk_reserve(min_free_disk_bytes)
                .with_nominal_rate(nominal_rate_per_s),
        );
        let next_assigned = Arc::new(AtomicU64::new(next));
        let notify = Arc::new(Notify::new());
        let gap_slot = gap::GapSlot::default();
        let (requests, receiver) = mpsc::channel(MAX_WAITING_SUBMISSIONS);
        let busy_log = Arc::new(BusyLog::default());
        let stuck = stuck::StuckFlag::new();
        let handoff = Arc::new(Handoff::default());
        let writer = spawn_writer(
            Writer {
                storage: storage.clone(),
                operator: operator.clone(),
                next_assigned: next_assigned.clone(),
                notify: notify.clone(),
                admission: admission.clone(),
                busy_log: busy_log.clone(),
                handoff: handoff.clone(),
            },
            receiver,
        )?;
        let batcher = tokio::spawn(batcher::batcher(Batcher {
            storage: storage.clone(),
            pool,
            operator: operator.clone(),
            key: keys.first().clone(),
            keys,
            key_checked: None,
            genesis_hash,
            batch_max: batch_max.clamp(1, MAX_CDRS_PER_BATCH),
            batch_max_bytes: batch_max_bytes.min(MAX_BATCH_BYTES),
            linger,
            max_in_flight: max_in_flight.max(1),
            notify: notify.clone(),
            next_to_batch: committed,
            in_flight: Vec::new(),
            shutdown,
            handoff,
            gap: gap_slot.clone(),
            gap_in_flight: None,
            stuck: stuck.clone(),
            resubmits: (committed, 0),
        }));
        let ingest = Arc::new(Ingest {
            operator,
            parties,
            number_rules,
            catching_up,
            gap: gap_slot,
            notify,
            requests,
            next_assigned,
            storage,
            admission,
            busy_log,
            stats: stats::IngestStats::new(metrics),
            stuck,
        });
        Ok(Started { ingest, writer, batcher })
    }

    /// Why the operator's CDRs do not move onto the chain, if they do not.
    pub fn stuck(&self) -> Option<stuck::IngestStuck> {
        self.stuck.get()
    }

    pub fn operator(&self) -> &OperatorId {
        &self.operator
    }

    /// How each source writes numbers (see `cdrchain_runtime::numbering`).
    pub fn number_rules(&self) -> &NumberRules {
        &self.number_rules
    }

    /// The party hasher; [`IngestError::NoSecret`] when the node has no consortium secret.
    pub fn parties(&self) -> Result<&PartyHasher, IngestError> {
        self.parties.as_ref().ok_or(IngestError::NoSecret)
    }

    /// Parses, validates and durably queues a submission body; answers where the CDRs went.
    pub async fn submit_body(&self, body: &[u8]) -> Result<Vec<Submitted>, IngestError> {
        let cdrs = self.prepare_body(body)?;
        self.submit(cdrs).await
    }

    /// The synchronous half of [`Ingest::submit_body`]: admits, parses and validates (the CPU
    /// work; the HTTP front runs it off the async workers for a large body).
    pub fn prepare_body(&self, body: &[u8]) -> Result<Vec<Keyed>, IngestError> {
        self.admit(estimated_records(body))?;
        let inputs = parse_documents(body).inspect_err(|e| self.stats.refusal(UNREAD_SOURCE, e))?;
        self.prepare_inputs(&inputs)
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
        let cdrs = self.prepare_inputs(inputs)?;
        self.submit(cdrs).await
    }

    /// Validates canonical inputs (all or nothing): the synchronous half of
    /// [`Ingest::queue_inputs`].
    pub(crate) fn prepare_inputs(
        &self,
        inputs: &[(CdrInput, Option<usize>)],
    ) -> Result<Vec<Keyed>, IngestError> {
        self.parties().and_then(|parties| validate(inputs, parties, &self.number_rules)).inspect_err(|e| {
            let index = match e {
                IngestError::Invalid { index, .. } => *index,
                _ => 0,
            };
            let source = inputs.get(index).map_or(UNREAD_SOURCE, |(input, _)| input.source_system());
            self.stats.refusal(source, e);
        })
    }

    /// Counts an adapter's document refused before its CDRs were read (`reason`: what was
    /// wrong), as the other refusals are counted.
    pub(crate) fn count_unread_refusal(&self, reason: &str) {
        self.stats.refused(UNREAD_SOURCE, reason);
    }

    /// Whether a canonical input was ingested here before, and whether that record has the
    /// content of `body` (a re-submission) or not (a collision, review M7).
    pub fn ingested_as(
        &self,
        input: &CdrInput,
        body: &CdrBody,
    ) -> Result<Option<(CdrId, bool)>, IngestError> {
        let Some(id) = self.already_ingested(input)? else { return Ok(None) };
        let stored = conflict::stored_encoding(&self.storage, &self.operator, id.sequence)
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        let same = stored.is_none_or(|stored| stored == body.encode());
        Ok(Some((id, same)))
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
        let sources = stats::SourceRuns::of(&cdrs);
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { cdrs, reply })
            .await
            .map_err(|_| IngestError::Unavailable("the node is shutting down".into()))?;
        let placed = answer
            .await
            .map_err(|_| IngestError::Unavailable("the node is shutting down".into()))?
            .inspect_err(|e| {
                let index = if let IngestError::Conflict { index, .. } = e { *index } else { 0 };
                self.stats.refusal(sources.source(index).unwrap_or(UNREAD_SOURCE), e);
            })?;
        self.stats.took_submission(&sources, &placed);
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
        if self.catching_up.load(Ordering::Acquire) {
            return Err(IngestError::Unavailable(
                "this node is catching up with the chain (its database is behind what its validator signed: \
                 purged or restored); it takes CDRs again once synced, so that it numbers them after those \
                 the chain holds. Send them again later"
                    .into(),
            ));
        }
        let committed = committed_next(&self.storage, &self.operator).map_or(0, |s| s.0);
        let queued = self.next_assigned.load(Ordering::Acquire).saturating_sub(committed);
        self.admission.check(queued, committed, records).inspect_err(|refusal| {
            self.busy_log.refused(refusal, None);
            self.stats.admission_refused(refusal);
        })
    }

    /// What ingest took and refused since the node started, per source.
    pub fn stats(&self) -> stats::Counts {
        self.stats.snapshot()
    }

    /// The commit rate of this operator's CDRs that admission measured, in CDRs per second.
    pub fn commit_rate(&self) -> Option<f64> {
        self.admission.rate()
    }

    /// CDRs assigned but not yet committed.
    pub fn queue_depth(&self) -> u64 {
        queue_depth(&self.storage, &self.operator, self.next_assigned.load(Ordering::Acquire))
    }
}

/// The source named for records whose submission did not parse (no `system_id` to read).
const UNREAD_SOURCE: &str = "(unreadable submission)";

/// Starts the writer on a thread of its own. The writer is a serial stage that every
/// acknowledgement waits for: a thread blocked on the channel between groups, instead of a task
/// that handed each group to the blocking pool (a wake-up and a thread hand-off per group). Not
/// in the blocking pool either: the runtime would wait for it at shutdown. It ends when the last
/// sender (the last `Ingest` handle) is dropped.
fn spawn_writer(
    state: Writer,
    receiver: mpsc::Receiver<Request>,
) -> Result<std::thread::JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name("ingest-writer".into())
        .spawn(move || writer::writer(state, receiver))
        .map_err(StartError::WriterThread)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;
    use cdrchain_chain_spec::{ChainSpec, DevAccount};

    /// A dev chain's storage and pool with ingest started on them. Dropped, it waits for the
    /// writer thread to end: a thread still holding the database when the test process exits
    /// races RocksDB's static destructors (an abort, "pthread lock: Invalid argument").
    pub(crate) struct Fixture {
        _dir: tempfile::TempDir,
        pub(crate) storage: Arc<Storage>,
        pub(crate) pool: Arc<TxPool>,
        pub(crate) ingest: IngestHandle,
        _stop: watch::Sender<bool>,
        writer: Option<std::thread::JoinHandle<()>>,
    }

    /// The fixture's ingest handle; reads as [`Ingest`], and can be let go of before the join.
    pub(crate) struct IngestHandle(Option<Arc<Ingest>>);

    impl std::ops::Deref for IngestHandle {
        type Target = Ingest;
        fn deref(&self) -> &Ingest {
            self.0.as_ref().expect("the fixture's ingest is dropped only with the fixture")
        }
    }

    impl IngestHandle {
        /// Another handle on the same ingest (drop it before the fixture).
        pub(crate) fn arc(&self) -> Arc<Ingest> {
            self.0.clone().expect("the fixture's ingest is dropped only with the fixture")
        }
    }

    /// How long a dropped fixture waits for its writer thread.
    const WRITER_JOIN_WAIT: Duration = Duration::from_secs(5);

    impl Drop for Fixture {
        fn drop(&mut self) {
            // The writer ends once the last handle is gone (tests hold no other).
            self.ingest.0 = None;
            let _ = self._stop.send(true);
            if let Some(writer) = self.writer.take() {
                let deadline = std::time::Instant::now() + WRITER_JOIN_WAIT;
                while !writer.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if writer.is_finished() {
                    let _ = writer.join();
                }
            }
        }
    }

    pub(crate) fn start(batch_max: usize, max_in_flight: u64, max_queue: u64) -> Fixture {
        let spec = ChainSpec::dev();
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Arc::new(Storage::open(dir.path(), spec.genesis_hash(), &spec.genesis_state().unwrap()).unwrap());
        let pool = Arc::new(TxPool::new(1_000));
        let (stop, stopping) = watch::channel(false);
        let settings = IngestSettings {
            operator: "alice".parse().unwrap(),
            keys: Arc::new(crate::keys::KeyRing::new(
                DevAccount::derive("alice").signing_key,
                None,
                None,
                None,
            )),
            parties: Some(PartyHasher::new(b"unit-test consortium secret", None).unwrap()),
            number_rules: Arc::default(),
            metrics: None,
            catching_up: Arc::default(),
            genesis_hash: spec.genesis_hash(),
            batch_max,
            batch_max_bytes: MAX_BATCH_BYTES,
            linger: Duration::from_millis(10),
            max_in_flight,
            max_queue,
            max_queue_wait: Duration::ZERO,
            min_free_disk_bytes: 0,
            nominal_rate_per_s: 0.0,
        };
        let Started { ingest, writer, .. } =
            Ingest::start(storage.clone(), pool.clone(), settings, stopping).unwrap();
        Fixture {
            _dir: dir,
            storage,
            pool,
            ingest: IngestHandle(Some(ingest)),
            _stop: stop,
            writer: Some(writer),
        }
    }

    /// `count` distinct CDRs from `from`; `pad` characters of call id and linked id each.
    pub(crate) fn cdrs(from: u64, count: u64, pad: usize) -> Vec<(CdrInput, Option<usize>)> {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_whole_submissions_and_numbers_none_of_their_cdrs() {
        // Nothing is batched (max_in_flight 1 and no chain), so the queue only grows.
        let f = start(2_000, 1, 10);
        assert_eq!(f.ingest.submit_inputs(&cdrs(0, 6, 0)).await.unwrap().len(), 6);
        let refused = f.ingest.submit_inputs(&cdrs(6, 5, 0)).await.unwrap_err();
        assert!(matches!(refused, IngestError::Busy { queued: 6, max: 10, .. }), "{refused:?}");
        assert!(refused.is_retryable());
        assert!(refused.to_string().contains("--max-queue"), "{refused}");
        // Nothing of the refused submission was numbered: the next one continues at 6.
        let placed = f.ingest.submit_inputs(&cdrs(6, 4, 0)).await.unwrap();
        assert_eq!(placed.first().unwrap().id.sequence, Sequence(6));
        assert_eq!(f.ingest.queue_depth(), 10);
        assert!(matches!(
            f.ingest.submit_inputs(&cdrs(10, 1, 0)).await,
            Err(IngestError::Busy { queued: 10, max: 10, .. })
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
            Err(IngestError::Busy { queued: 4, max: 4, .. })
        ));
        assert!(matches!(f.ingest.admit(1), Err(IngestError::Busy { queued: 4, max: 4, .. })));
        // Below the limit, the same garbage is read and refused for what it is.
        let g = start(2_000, 1, 5);
        g.ingest.submit_inputs(&cdrs(0, 4, 0)).await.unwrap();
        assert!(g.ingest.admit(1).is_ok());
        let refused = g.ingest.submit_body(b"{not json").await.unwrap_err();
        assert!(!refused.is_retryable(), "{refused:?}");
        // Under the limit but without room for the submission's lines: refused unread too (the
        // retry storm that stopped an overloaded localnet; see `Ingest::admit`).
        assert!(matches!(g.ingest.admit(2), Err(IngestError::Busy { queued: 4, max: 5, .. })));
        assert!(matches!(
            g.ingest.submit_body(b"{not json\n{not json either\n").await,
            Err(IngestError::Busy { queued: 4, max: 5, .. })
        ));
        // An empty queue takes a submission of any size (the writer's rule).
        let h = start(2_000, 1, 3);
        assert!(h.ingest.admit(10).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_queue_takes_one_submission_larger_than_the_limit() {
        let f = start(2_000, 1, 3);
        assert_eq!(f.ingest.submit_inputs(&cdrs(0, 5, 0)).await.unwrap().len(), 5);
        assert!(matches!(
            f.ingest.submit_inputs(&cdrs(5, 1, 0)).await,
            Err(IngestError::Busy { queued: 5, max: 3, .. })
        ));
    }
}
