//! The node's durable ingest queue (`queue`, with its floor in `meta`): CDRs accepted but not
//! yet in a block, in chunks (`queue.rs`), and the numbers kept about it in memory.

use cdrchain_runtime::ids::Sequence;
use parity_scale_codec::Encode;
use rocksdb::{ColumnFamily, ReadOptions, WriteBatch};

use crate::queue::Chunk;
use crate::view::Reader;
use crate::{layout, lock, options, QueueRun, Storage, StorageError};

/// Bytes a queue chunk adds to an enqueue's write batch beyond its value (key and framing).
const ENQUEUE_BATCH_BYTES_PER_CHUNK: usize = 32;
/// Bytes an ingest key adds to an enqueue's write batch (32-byte key, 8-byte value, framing).
const ENQUEUE_BATCH_BYTES_PER_KEY: usize = 64;
/// Bytes of an enqueue's write batch beyond its chunks and keys.
const ENQUEUE_BATCH_BASE_BYTES: usize = 256;

/// The ingest queue's bookkeeping, in memory. Its mutex is held only to read or update these
/// numbers, never across a database write: a block commit (which dequeues) writes tens of
/// megabytes, and the ingest writer, the batcher and admission must not wait for it.
#[derive(Debug)]
pub(crate) struct QueueState {
    /// Entries in the queue. Counted from the chunks at open (not persisted: enqueue and dequeue
    /// would then both write one counter, and their writes would have to be serialized).
    pub(crate) len: u64,
    /// Entries below this sequence are dequeued (a chunk may still hold some, with later
    /// entries). Persisted, so that the counter stays exact across a restart.
    pub(crate) floor: u64,
    /// No chunk begins below this sequence: scans start here, not at the range tombstones of
    /// dequeued chunks.
    pub(crate) base: u64,
    /// No entry sorts at or above this sequence: an item enqueued there is new without a lookup
    /// (the ingest writer only ever appends above the last sequence it gave out).
    pub(crate) ceiling: u64,
}

impl QueueState {
    /// The numbers agree: the live entries lie in `floor..ceiling`, so there are at most that
    /// many (fewer where a run skipped sequences). The floor passes the ceiling only when a
    /// dequeue went past the queue's end, which leaves nothing live.
    pub(crate) fn debug_check(&self) {
        debug_assert!(
            self.len <= self.ceiling.saturating_sub(self.floor),
            "queue numbers disagree: {self:?}"
        );
    }
}

/// What a dequeue changes in [`QueueState`], applied once its batch is written.
#[derive(Debug)]
pub(crate) struct Dequeued {
    /// Entries removed.
    count: u64,
    /// The new floor (persisted in the same batch).
    floor: u64,
    /// The new base: where the first chunk that stays begins.
    base: u64,
}

impl Dequeued {
    pub(crate) fn apply(&self, queue: &mut QueueState) {
        // Only this dequeue removes these entries (dequeues are serialized by the commit lock).
        debug_assert!(queue.len >= self.count, "dequeued {} of {} entries", self.count, queue.len);
        queue.len = queue.len.saturating_sub(self.count);
        queue.floor = queue.floor.max(self.floor);
        queue.base = queue.base.max(self.base);
        queue.debug_check();
    }
}

/// Puts a queue run's chunks into `batch`, each under its first sequence.
pub(crate) fn put_run(batch: &mut WriteBatch, queue: &ColumnFamily, run: &QueueRun) {
    for (first, chunk) in run.chunks() {
        batch.put_cf(queue, layout::sequence_key(Sequence(*first)), chunk);
    }
}

impl Storage {
    /// Appends `run` to this node's durable ingest queue (sequence → opaque bytes; the node
    /// SCALE-encodes a queued CDR). Synced before returning.
    pub fn enqueue(&self, run: &QueueRun) -> Result<(), StorageError> {
        self.enqueue_keyed(run, &[])
    }

    /// [`Storage::enqueue`], recording in the same synced batch each item's ingest key (its
    /// identity in the source system) → sequence, for [`Storage::ingest_key`]. The queue only
    /// grows at its end: a run that starts below the end of the last one is refused
    /// ([`StorageError::QueueOrder`]) and nothing is written.
    pub fn enqueue_keyed(&self, run: &QueueRun, keys: &[([u8; 32], Sequence)]) -> Result<(), StorageError> {
        if run.is_empty() && keys.is_empty() {
            return Ok(());
        }
        let cf = self.column(layout::QUEUE)?;
        let keys_cf = self.column(layout::INGEST_KEYS)?;
        let _enqueue = lock(&self.enqueue_lock);
        let first = run.first().0;
        let next = {
            let queue = lock(&self.queue);
            queue.ceiling.max(queue.floor)
        };
        let end = match first.checked_add(run.len()) {
            Some(end) if run.is_empty() || first >= next => end,
            _ => {
                return Err(StorageError::QueueOrder {
                    first: run.first(),
                    count: run.len(),
                    next: Sequence(next),
                })
            }
        };
        // Sized up front: a group of 20,000 CDRs is ~6 MiB, regrown a dozen times otherwise.
        let bytes: usize =
            run.chunks().iter().map(|(_, value)| value.len() + ENQUEUE_BATCH_BYTES_PER_CHUNK).sum();
        let mut batch = WriteBatch::with_capacity_bytes(
            bytes + keys.len() * ENQUEUE_BATCH_BYTES_PER_KEY + ENQUEUE_BATCH_BASE_BYTES,
        );
        put_run(&mut batch, cf, run);
        self.put_ingest_keys(&mut batch, keys_cf, keys);
        self.db.write_opt(batch, &options::synced()).map_err(self.db_error(layout::QUEUE, "write"))?;
        if !run.is_empty() {
            let mut queue = lock(&self.queue);
            queue.len = queue.len.saturating_add(run.len());
            queue.base = queue.base.min(first);
            queue.ceiling = end;
            queue.debug_check();
        }
        Ok(())
    }

    /// Up to `limit` queued entries with sequence >= `from`, in sequence order.
    pub fn queued(&self, from: Sequence, limit: usize) -> Result<Vec<(Sequence, Vec<u8>)>, StorageError> {
        let mut items = Vec::new();
        self.visit_queued(from, |sequence, item| {
            items.push((sequence, item.to_vec()));
            items.len() < limit
        })?;
        Ok(items)
    }

    /// Visits the queued entries with sequence >= `from` in sequence order, until `visit`
    /// answers `false` (without copying them; [`Storage::queued`] collects them).
    pub fn visit_queued(
        &self,
        from: Sequence,
        mut visit: impl FnMut(Sequence, &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let (floor, base) = {
            let queue = lock(&self.queue);
            (queue.floor, queue.base)
        };
        let start = from.0.max(floor);
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(base.to_be_bytes());
        let mut iter = self.db.raw_iter(self.column(layout::QUEUE)?, options);
        // The chunk holding `start` may begin below it.
        iter.seek_for_prev(start.to_be_bytes());
        if !iter.valid() {
            iter.status().map_err(self.db_error(layout::QUEUE, "scan"))?;
            iter.seek(start.to_be_bytes());
        }
        let mut more = true;
        while more {
            let Some((key, value)) = iter.item() else { break };
            Chunk::parse(key, value)?.visit(start, |sequence, item| {
                more = visit(Sequence(sequence), item);
                more
            })?;
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::QUEUE, "scan"))
    }

    /// The highest queued sequence.
    pub fn last_queued(&self) -> Result<Option<Sequence>, StorageError> {
        let mut iter = self.db.raw_iter(self.column(layout::QUEUE)?, ReadOptions::default());
        iter.seek_to_last();
        let last = match iter.item() {
            Some((key, value)) => Some(Sequence(Chunk::parse(key, value)?.last())),
            None => None,
        };
        iter.status().map_err(self.db_error(layout::QUEUE, "scan"))?;
        Ok(last)
    }

    /// The number of queued entries (an exact counter kept with the queue).
    pub fn queue_len(&self) -> Result<u64, StorageError> {
        Ok(lock(&self.queue).len)
    }

    /// Deletes the queued entries with sequence <= `last`. Synced before returning.
    pub fn dequeue_through(&self, last: Sequence) -> Result<(), StorageError> {
        let _commit = lock(&self.commit_lock);
        let mut batch = WriteBatch::default();
        let dequeued = self.dequeue_into(&mut batch, last)?;
        self.db.write_opt(batch, &options::synced()).map_err(self.db_error(layout::QUEUE, "write"))?;
        dequeued.apply(&mut lock(&self.queue));
        Ok(())
    }

    /// Adds the deletion of queue entries <= `last` to `batch`; answers what to apply to the
    /// queue's numbers once the batch is written. Chunks wholly at or below `last` go (one range
    /// tombstone: scans skip it in one step); a chunk that also holds later entries stays, and the
    /// persisted floor says where its live entries begin. The caller holds the commit lock, so
    /// no other dequeue moves the floor meanwhile; enqueues may go on, above `last`.
    pub(crate) fn dequeue_into(
        &self,
        batch: &mut WriteBatch,
        last: Sequence,
    ) -> Result<Dequeued, StorageError> {
        let (floor, base) = {
            let queue = lock(&self.queue);
            (queue.floor, queue.base)
        };
        let unchanged = Dequeued { count: 0, floor, base };
        if last.0 < floor {
            return Ok(unchanged);
        }
        let cf = self.column(layout::QUEUE)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(base.to_be_bytes());
        if let Some(end) = last.0.checked_add(1) {
            options.set_iterate_upper_bound(end.to_be_bytes());
        }
        let mut iter = self.db.raw_iter(cf, options);
        iter.seek(base.to_be_bytes());
        let mut count = 0u64;
        // Where the chunks that stay begin: the one holding `last + 1`, else past `last`. A run
        // ends below u64::MAX (see `enqueue_keyed`), so every chunk key is below this end.
        let mut new_base = last.0.saturating_add(1);
        while let Some((key, value)) = iter.item() {
            let chunk = Chunk::parse(key, value)?;
            count += chunk.count_between(floor, last.0);
            if chunk.last() > last.0 {
                new_base = chunk.first;
            }
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::QUEUE, "scan"))?;
        if count == 0 && new_base <= base {
            return Ok(unchanged);
        }
        if new_base > base {
            batch.delete_range_cf(cf, base.to_be_bytes(), new_base.to_be_bytes());
        }
        let floor = last.0.saturating_add(1).max(floor);
        batch.put_cf(self.column(layout::META)?, layout::META_QUEUE_FLOOR, floor.encode());
        Ok(Dequeued { count, floor, base: new_base.max(base) })
    }
}
