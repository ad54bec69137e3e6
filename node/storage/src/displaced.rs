//! Dequeue by content (review M10): a committed block that holds, at a sequence this node queued,
//! a CDR other than the one it queued (another node signed for the same operator, or a database
//! was restored on a second host) does not silently drop the queued one. The commit compares the
//! two and puts each displaced CDR back at the queue's end, with its ingest key, in the same
//! synced batch.

use cdrchain_runtime::block::Block;
use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::{OperatorId, Sequence};
use cdrchain_runtime::tx::Transaction;
use parity_scale_codec::Encode;
use std::sync::{Mutex, MutexGuard};

use rocksdb::WriteBatch;

use crate::ingest_queue::{put_run, QueueState};
use crate::{layout, lock, QueueRun, Storage, StorageError};

/// A queued CDR that a committed block replaced, and where it was queued again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requeued {
    /// The sequence it had: the block committed another CDR there.
    pub from: Sequence,
    /// Its new sequence, at the queue's end.
    pub to: Sequence,
}

/// A re-queue put into a commit's batch: what moved, the queue state it leaves (applied once
/// the batch is written), and the enqueue lock, held until then so that no enqueue places
/// others past the queue's end meanwhile.
pub(crate) struct Requeue<'a> {
    requeued: Vec<Requeued>,
    first: u64,
    end: u64,
    _enqueue: MutexGuard<'a, ()>,
}

impl Requeue<'_> {
    /// Applies the appended entries to the queue state (after the batch is written), releases
    /// the enqueue lock, and answers what moved.
    pub(crate) fn applied(self, queue: &Mutex<QueueState>) -> Vec<Requeued> {
        let mut state = lock(queue);
        state.len = state.len.saturating_add(self.end - self.first);
        state.base = state.base.min(self.first);
        state.ceiling = state.ceiling.max(self.end);
        state.debug_check();
        self.requeued
    }
}

impl Storage {
    /// The sequence the next queued CDR gets: past every entry queued and every one dequeued.
    pub fn queue_end(&self) -> Sequence {
        let queue = lock(&self.queue);
        Sequence(queue.ceiling.max(queue.floor))
    }

    /// `own`'s CDRs in `block` at sequences this database queued and has not dequeued, whose
    /// queued bytes differ from what the block committed: (sequence, the queued bytes).
    fn displaced(&self, block: &Block, own: &OperatorId) -> Result<Vec<(Sequence, Vec<u8>)>, StorageError> {
        let (floor, ceiling) = {
            let queue = lock(&self.queue);
            (queue.floor, queue.ceiling)
        };
        let mut displaced = Vec::new();
        let mut encoded = Vec::new();
        for tx in block.transactions.iter() {
            let Transaction::CdrBatch(batch) = &tx.transaction else { continue };
            if &batch.operator != own {
                continue;
            }
            let first = batch.first_sequence.0;
            let end = first.saturating_add(batch.cdrs.len() as u64);
            let (low, high) = (first.max(floor), end.min(ceiling));
            if low >= high {
                continue;
            }
            let mut failure = None;
            self.visit_queued(Sequence(low), |sequence, item| {
                if sequence.0 >= high {
                    return false;
                }
                let Some(body) = usize::try_from(sequence.0 - first).ok().and_then(|i| batch.cdrs.get(i))
                else {
                    failure = Some(sequence);
                    return false;
                };
                encoded.clear();
                body.encode_to(&mut encoded);
                if encoded.as_slice() != item {
                    displaced.push((sequence, item.to_vec()));
                }
                true
            })?;
            if let Some(sequence) = failure {
                return Err(StorageError::corrupt(
                    layout::QUEUE,
                    &layout::sequence_key(sequence),
                    "a queued sequence outside the batch it was read for",
                ));
            }
        }
        Ok(displaced)
    }

    /// Puts `own`'s displaced CDRs of `block` back at the queue's end (past `after`, the last
    /// sequence this commit dequeues), with their ingest keys pointing at the new sequences, into
    /// `batch`; `None` when nothing was displaced (the normal case).
    pub(crate) fn requeue_displaced(
        &self,
        batch: &mut WriteBatch,
        block: &Block,
        own: &OperatorId,
        after: Sequence,
    ) -> Result<Option<Requeue<'_>>, StorageError> {
        let displaced = self.displaced(block, own)?;
        if displaced.is_empty() {
            return Ok(None);
        }
        let enqueue = lock(&self.enqueue_lock);
        let first = self.queue_end().0.max(after.0.saturating_add(1));
        let mut run = QueueRun::new(Sequence(first));
        let mut keys = Vec::with_capacity(displaced.len());
        let mut requeued = Vec::with_capacity(displaced.len());
        for ((from, item), to) in displaced.iter().zip(first..) {
            run.push(item);
            // An entry that does not decode keeps no key: `cdrchain gap declare` deals with it.
            if let Ok(body) = decode_exact::<CdrBody>(item) {
                keys.push((body.source.ingest_key(), Sequence(to)));
            }
            requeued.push(Requeued { from: *from, to: Sequence(to) });
        }
        put_run(batch, self.column(layout::QUEUE)?, &run);
        self.put_ingest_keys(batch, self.column(layout::INGEST_KEYS)?, &keys);
        let end = first.saturating_add(run.len());
        Ok(Some(Requeue { requeued, first, end, _enqueue: enqueue }))
    }
}
