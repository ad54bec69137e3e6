//! Dequeue by content (review M10): a committed block that holds, at a sequence this node queued,
//! a CDR other than the one it queued (another node signed for the same operator, or a database
//! was restored on a second host) does not silently drop the queued one. The commit compares the
//! two and puts each displaced CDR back at the queue's end, with its ingest key, in the same
//! synced batch.

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::Sequence;
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

/// The node's own CDRs of a block, encoded as the `cdrs` column stores them (collected while
/// the commit writes them, so the comparison encodes nothing again): runs of consecutive
/// sequences, their bodies back to back.
#[derive(Debug, Default)]
pub(crate) struct OwnBodies {
    /// (first sequence, index of its first body in `ends`) per run.
    runs: Vec<(u64, usize)>,
    /// Where each body ends in `bytes`.
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

/// One run of [`OwnBodies`].
struct Run<'a> {
    first: u64,
    /// Bodies' ends in `bytes`; the first body starts at `start`.
    ends: &'a [usize],
    start: usize,
    bytes: &'a [u8],
}

impl Run<'_> {
    fn end(&self) -> u64 {
        self.first.saturating_add(self.ends.len() as u64)
    }

    /// The committed body at `sequence`, if the run holds it.
    fn body(&self, sequence: u64) -> Option<&[u8]> {
        let index = usize::try_from(sequence.checked_sub(self.first)?).ok()?;
        let end = *self.ends.get(index)?;
        let start = if index == 0 { self.start } else { self.ends[index - 1] };
        self.bytes.get(start..end)
    }
}

impl OwnBodies {
    /// Appends the body committed at `sequence`.
    pub(crate) fn push(&mut self, sequence: Sequence, body: &[u8]) {
        let follows =
            self.runs.last().is_some_and(|(first, at)| first + (self.ends.len() - at) as u64 == sequence.0);
        if !follows {
            self.runs.push((sequence.0, self.ends.len()));
        }
        self.bytes.extend_from_slice(body);
        self.ends.push(self.bytes.len());
    }

    fn runs(&self) -> impl Iterator<Item = Run<'_>> + '_ {
        self.runs.iter().enumerate().map(|(i, &(first, at))| {
            let to = self.runs.get(i + 1).map_or(self.ends.len(), |(_, next)| *next);
            let start = if at == 0 { 0 } else { self.ends[at - 1] };
            Run { first, ends: &self.ends[at..to], start, bytes: &self.bytes }
        })
    }
}

impl Storage {
    /// The sequence the next queued CDR gets: past every entry queued and every one dequeued.
    pub fn queue_end(&self) -> Sequence {
        let queue = lock(&self.queue);
        Sequence(queue.ceiling.max(queue.floor))
    }

    /// The node's own CDRs of a block at sequences this database queued and has not dequeued,
    /// whose queued bytes differ from what the block committed: (sequence, the queued bytes).
    fn displaced(&self, own: &OwnBodies) -> Result<Vec<(Sequence, Vec<u8>)>, StorageError> {
        let (floor, ceiling) = {
            let queue = lock(&self.queue);
            (queue.floor, queue.ceiling)
        };
        let mut displaced = Vec::new();
        for run in own.runs() {
            let (low, high) = (run.first.max(floor), run.end().min(ceiling));
            if low >= high {
                continue;
            }
            let mut outside = None;
            self.visit_queued(Sequence(low), |sequence, item| {
                if sequence.0 >= high {
                    return false;
                }
                match run.body(sequence.0) {
                    Some(committed) if committed == item => {}
                    Some(_) => displaced.push((sequence, item.to_vec())),
                    None => {
                        outside = Some(sequence);
                        return false;
                    }
                }
                true
            })?;
            if let Some(sequence) = outside {
                return Err(StorageError::corrupt(
                    layout::QUEUE,
                    &layout::sequence_key(sequence),
                    "a queued sequence outside the run it was read for",
                ));
            }
        }
        Ok(displaced)
    }

    /// Puts the node's displaced CDRs of a block (`own`, its own CDRs as committed) back at the
    /// queue's end (past `after`, the last sequence this commit dequeues), with their ingest keys
    /// pointing at the new sequences, into `batch`; `None` when nothing was displaced (the normal
    /// case).
    pub(crate) fn requeue_displaced(
        &self,
        batch: &mut WriteBatch,
        own: &OwnBodies,
        after: Sequence,
    ) -> Result<Option<Requeue<'_>>, StorageError> {
        let displaced = self.displaced(own)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_bodies_split_into_runs_of_consecutive_sequences() {
        let mut own = OwnBodies::default();
        for (sequence, body) in [(3u64, &b"a"[..]), (4, b"bb"), (9, b"ccc"), (10, b""), (11, b"d")] {
            own.push(Sequence(sequence), body);
        }
        let runs: Vec<Run<'_>> = own.runs().collect();
        assert_eq!(runs.iter().map(|r| (r.first, r.end())).collect::<Vec<_>>(), vec![(3, 5), (9, 12)]);
        assert_eq!(runs[0].body(4), Some(&b"bb"[..]));
        assert_eq!(runs[1].body(9), Some(&b"ccc"[..]));
        assert_eq!(runs[1].body(10), Some(&b""[..]));
        assert_eq!(runs[1].body(11), Some(&b"d"[..]));
        assert_eq!(runs[0].body(5), None);
        assert_eq!(runs[1].body(8), None);
    }
}
