//! Stage 3 of ingest: the batcher, a task that signs the queued CDRs into `CdrBatch`
//! transactions and keeps them in the pool until a block commits them.
//!
//! It takes the CDRs in sequence order, from the writer's decoded copy ([`Handoff`]) when that
//! holds the next sequence, else from the queue itself. It keeps at most `max_in_flight` CDRs
//! batched and not yet committed; after a crash, or when a batch left the pool uncommitted, it
//! starts again from the committed sequence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Sequence};
use cdrchain_runtime::tx::{CdrBatch, SequenceGap, SignedTransaction, Transaction};
use cdrchain_storage::{Storage, StorageError};
use ed25519_dalek::SigningKey;
use tokio::sync::{watch, Notify};

use super::handoff::{Gather, Handoff};
use super::{
    committed_next, NextSequenceError, BATCHER_ERROR_BACKOFF_MS, MAX_BATCHER_TICK_MS, MIN_BATCHER_TICK_MS,
};
use crate::pool::{PoolError, TxPool};

/// Why one pass of the batcher failed. The batcher logs it, waits
/// [`BATCHER_ERROR_BACKOFF_MS`] and tries again: nothing acknowledged is lost, the queue keeps
/// every CDR until a block commits it.
#[derive(Debug, thiserror::Error)]
pub(super) enum BatchError {
    #[error(transparent)]
    NextSequence(#[from] NextSequenceError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The chain registers a key for the operator that the node does not hold.
    #[error("{0}")]
    NoKey(String),
    /// The queue is not contiguous from the sequence the batcher wants.
    #[error("the ingest queue skips from {expected} to {found}")]
    QueueGap { expected: Sequence, found: Sequence },
    /// A queued CDR does not decode (the database is damaged).
    #[error("queued CDR {sequence} does not decode: {source}")]
    Decode {
        sequence: Sequence,
        #[source]
        source: parity_scale_codec::Error,
    },
    /// More CDRs than a batch holds (the batcher asks for at most that many).
    #[error("{count} CDRs exceed a batch")]
    TooMany { count: usize },
    /// The pool did not take the batch.
    #[error("the pool did not take the batch from sequence {first}: {source}")]
    Pool {
        first: Sequence,
        #[source]
        source: PoolError,
    },
}

/// The batcher's state, owned by its task.
pub(super) struct Batcher {
    pub(super) storage: Arc<Storage>,
    pub(super) pool: Arc<TxPool>,
    /// This node's operator: the batches' signer and the recorder of their CDRs.
    pub(super) operator: OperatorId,
    /// Signs the batches: the key of `keys` the chain registers for the next block, read at
    /// each pass (a rotation switches it at its height).
    pub(super) key: SigningKey,
    pub(super) keys: Arc<crate::keys::KeyRing>,
    /// The height whose next block `key` was taken for, and whether the chain registers the
    /// operator there: the key is read again only after a commit, not at every pass.
    pub(super) key_checked: Option<(Height, bool)>,
    /// Bound into every signature.
    pub(super) genesis_hash: Hash32,
    /// Most CDRs per batch (1 to `MAX_CDRS_PER_BATCH`).
    pub(super) batch_max: usize,
    /// Most encoded CDR bytes per batch (at most `MAX_BATCH_BYTES`).
    pub(super) batch_max_bytes: usize,
    /// How long a partial batch waits for more CDRs.
    pub(super) linger: Duration,
    /// Most CDRs batched and not yet committed (at least 1).
    pub(super) max_in_flight: u64,
    /// Woken by the writer when a group is durable.
    pub(super) notify: Arc<Notify>,
    /// The next queued sequence not yet in a batch.
    pub(super) next_to_batch: Sequence,
    /// Batches in the pool, not yet committed: (id, last sequence).
    pub(super) in_flight: Vec<(Hash32, Sequence)>,
    /// Turns true when the node stops.
    pub(super) shutdown: watch::Receiver<bool>,
    /// The writer's decoded copy of what it queued.
    pub(super) handoff: Arc<Handoff>,
    /// A gap declared by the operator, to sign instead of the CDRs it covers (see `gap`).
    pub(super) gap: super::gap::GapSlot,
    /// The signed `SequenceGap` in the pool, while a block has not recorded it.
    pub(super) gap_in_flight: Option<Hash32>,
    /// Shown by `system_health` while the stream does not move.
    pub(super) stuck: Arc<super::stuck::StuckFlag>,
    /// Resubmissions in a row from one committed sequence.
    pub(super) resubmits: (Sequence, u32),
}

/// The batcher's loop: a pass whenever the writer queued something, at least every tick, until
/// shutdown.
pub(super) async fn batcher(mut state: Batcher) {
    let tick = (state.linger / 2)
        .clamp(Duration::from_millis(MIN_BATCHER_TICK_MS), Duration::from_millis(MAX_BATCHER_TICK_MS));
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
        if let Err(error) = result {
            tracing::error!(target: "cdrchain::ingest", "batcher: {error}");
            let at = match &error {
                BatchError::Decode { sequence, .. } => *sequence,
                BatchError::QueueGap { expected, .. } => *expected,
                _ => state.next_to_batch,
            };
            state.stuck.set(&state.operator, at, format!("{error}; {}", super::stuck::ADVICE));
            tokio::time::sleep(Duration::from_millis(BATCHER_ERROR_BACKOFF_MS)).await;
        }
    }
}

impl Batcher {
    /// One pass: forget committed batches, resubmit lost ones, batch what is queued.
    fn step(&mut self, storage: &Storage, waiting_since: &mut Option<Instant>) -> Result<(), BatchError> {
        // The key first: it reads the head's height, which waits for a commit in progress, and
        // the committed sequence read after it must be as new as the pool it is compared with
        // (a commit between the two made every batch in flight look lost, and the queue skip).
        if !self.take_key_in_force(storage)? {
            return Ok(());
        }
        let committed = match committed_next(storage, &self.operator) {
            // Not added yet (a joining operator): nothing can be signed for the chain; wait.
            Err(NextSequenceError::NotRegistered { .. }) => return Ok(()),
            other => other?,
        };
        self.stuck.passed(&self.operator, committed);
        self.forget_committed(committed);
        self.sign_declared_gap(committed)?;
        while self.pool.has_space(self.batch_max_bytes + crate::config::BATCH_ENVELOPE_BYTES) {
            let in_flight = self.next_to_batch.0.saturating_sub(committed.0);
            if in_flight >= self.max_in_flight {
                return Ok(());
            }
            let room = usize::try_from(self.max_in_flight - in_flight).unwrap_or(usize::MAX);
            let want = self.batch_max.min(room);
            let (cdrs, full) = match self.read_queue(storage, want) {
                // A block committed (and dequeued) what the pass was about to resubmit since it
                // read `committed`: the next pass starts from the new position.
                Err(BatchError::QueueGap { expected, .. })
                    if committed_next(storage, &self.operator).is_ok_and(|now| now > expected) =>
                {
                    return Ok(());
                }
                other => other?,
            };
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

    /// Takes the key the chain registers for the next block; false when it registers none (the
    /// operator was removed, or is being added): nothing can be signed.
    fn take_key_in_force(&mut self, storage: &Storage) -> Result<bool, BatchError> {
        let height = storage.height();
        if let Some((checked, registered)) = self.key_checked {
            if checked == height {
                return Ok(registered);
            }
        }
        let key = match self.keys.transaction_key(storage, &self.operator) {
            Ok(Some(key)) => key,
            Ok(None) => {
                self.key_checked = Some((height, false));
                return Ok(false);
            }
            Err(e) => return Err(BatchError::NoKey(e.to_string())),
        };
        self.key_checked = Some((height, true));
        if key.verifying_key() != self.key.verifying_key() {
            tracing::info!(
                target: "cdrchain::ingest",
                "signing `{}`'s batches with {} from block {} (the chain's key for it)",
                self.operator,
                cdrchain_runtime::crypto::public_key(key),
                crate::keys::next_height(storage)
            );
            self.key = key.clone();
        }
        Ok(true)
    }

    /// Forgets the batches a block committed; starts again from `committed` when a batch left
    /// the pool uncommitted, or the chain is not where the batcher thought.
    fn forget_committed(&mut self, committed: Sequence) {
        self.in_flight.retain(|(_, last)| *last >= committed);
        let lost = self.in_flight.iter().any(|(id, _)| !self.pool.contains(id));
        if lost
            || self.next_to_batch < committed
            || (self.in_flight.is_empty() && self.next_to_batch > committed)
        {
            if lost {
                self.count_resubmit(committed);
            }
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
    }

    /// Counts a resubmission from `committed`; after [`super::stuck::STUCK_AFTER_RESUBMITS`] in a
    /// row the stream is stuck there (its batch is refused by every block, or never taken).
    fn count_resubmit(&mut self, committed: Sequence) {
        let count = if self.resubmits.0 == committed { self.resubmits.1.saturating_add(1) } else { 1 };
        self.resubmits = (committed, count);
        if count >= super::stuck::STUCK_AFTER_RESUBMITS {
            let reason = format!(
                "the batch from {}:{} left the pool uncommitted {count} times in a row (blocks refuse \
                 it: see the WARN lines `dropping transaction`); {}",
                self.operator,
                committed.0,
                super::stuck::ADVICE
            );
            self.stuck.set(&self.operator, committed, reason);
        }
    }

    /// Signs a declared gap once the chain has reached its first sequence, in place of the
    /// batches that cover it; forgets it once a block has recorded it.
    fn sign_declared_gap(&mut self, committed: Sequence) -> Result<(), BatchError> {
        let Some(gap) = super::gap::pending(&self.gap) else { return Ok(()) };
        if committed > gap.to {
            tracing::info!(target: "cdrchain::ingest", "the gap {} to {} is on the chain", gap.from.0, gap.to.0);
            super::gap::clear(&self.gap);
            self.gap_in_flight = None;
            return Ok(());
        }
        let in_pool = self.gap_in_flight.is_some_and(|id| self.pool.contains(&id));
        if committed != gap.from || in_pool {
            return Ok(());
        }
        // Whatever was batched from the gap on (the stuck batch, and those behind it) goes: the
        // gap takes its place, and the CDRs after it are batched again behind the gap.
        let ids: Vec<Hash32> = self.in_flight.drain(..).map(|(id, _)| id).collect();
        self.pool.remove(&ids);
        let tx = Transaction::SequenceGap(SequenceGap {
            operator: self.operator.clone(),
            from: gap.from,
            to: gap.to,
            reason: gap.reason.clone(),
        });
        let signed = SignedTransaction::sign(tx, &self.key, &self.genesis_hash);
        let id = signed.id(&self.genesis_hash);
        self.pool.add(id, signed).map_err(|source| BatchError::Pool { first: gap.from, source })?;
        self.in_flight.push((id, gap.to));
        self.gap_in_flight = Some(id);
        self.next_to_batch = Sequence(gap.to.0 + 1);
        tracing::info!(target: "cdrchain::ingest", "signed the gap {} to {}: {}", gap.from.0, gap.to.0, gap.reason);
        Ok(())
    }

    /// Up to `want` queued CDRs from `next_to_batch`, and at most `batch_max_bytes` of them
    /// (at least one); and whether that is a full batch (more may be waiting).
    fn read_queue(&self, storage: &Storage, want: usize) -> Result<(Vec<CdrBody>, bool), BatchError> {
        if let Some(taken) = self.handoff.take(self.next_to_batch.0, want, self.batch_max_bytes) {
            return Ok(taken);
        }
        let first = self.next_to_batch.0;
        let mut gather = Gather::new(want, self.batch_max_bytes);
        let mut failure = None;
        storage.visit_queued(self.next_to_batch, |sequence, item| {
            let expected = Sequence(first + gather.cdrs.len() as u64);
            if sequence != expected {
                failure = Some(BatchError::QueueGap { expected, found: sequence });
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
                Err(source) => {
                    failure = Some(BatchError::Decode { sequence, source });
                    false
                }
            }
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(gather.finish()),
        }
    }

    /// Signs `cdrs` (from `next_to_batch` on) into one batch and puts it in the pool.
    fn batch(&mut self, cdrs: Vec<CdrBody>) -> Result<(), BatchError> {
        let first = self.next_to_batch;
        let count = cdrs.len() as u64;
        let tx = Transaction::CdrBatch(CdrBatch {
            operator: self.operator.clone(),
            first_sequence: first,
            cdrs: BoundedVec::new(cdrs).map_err(|cdrs| BatchError::TooMany { count: cdrs.len() })?.into(),
        });
        let signed = SignedTransaction::sign(tx, &self.key, &self.genesis_hash);
        let id = signed.id(&self.genesis_hash);
        self.pool.add(id, signed).map_err(|source| BatchError::Pool { first, source })?;
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
    use crate::ingest::tests::{cdrs, start};
    use crate::ingest::MAX_BATCH_BYTES;
    use cdrchain_runtime::tx::MAX_CDRS_PER_BATCH;
    use parity_scale_codec::Encode;

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
