//! The ingest queue's on-disk form: runs of consecutive sequences, stored as chunks.
//!
//! A chunk is one `queue` entry: key `first sequence BE`, value
//! `count: u32 LE ‖ (len: u32 LE ‖ bytes) × count`, holding the items `first .. first + count`.
//! One entry per chunk of up to [`CHUNK_ITEMS`] items (or [`CHUNK_BYTES`]) instead of one per
//! item: at 160,000 CDRs/s, one memtable insert, one flush entry and one scan step per CDR were
//! a tenth of the dev node's CPU. The ingest writer only appends (a run starts where the last
//! ended), so runs never overlap.

use crate::layout;
use crate::StorageError;

/// Most items in one chunk.
pub const CHUNK_ITEMS: usize = 1_024;
/// A chunk is closed once its value reaches this many bytes (a chunk holds at least one item).
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Bytes reserved per item when a chunk is opened: a typical CDR is ~300 bytes.
const CHUNK_RESERVE_BYTES_PER_ITEM: usize = 384;
// A chunk stores its item count as a `u32`.
const _: () = assert!(CHUNK_ITEMS <= u32::MAX as usize);

/// Items to append to the ingest queue: consecutive sequences from a first one, laid out in
/// chunks as they are pushed (no per-item allocation). See [`crate::Storage::enqueue_keyed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRun {
    /// The first item's sequence.
    first: u64,
    /// Items pushed.
    count: u64,
    /// (first sequence, value) per chunk; the last one is open.
    chunks: Vec<(u64, Vec<u8>)>,
}

impl QueueRun {
    /// An empty run whose first item will get sequence `first`.
    pub fn new(first: cdrchain_runtime::ids::Sequence) -> QueueRun {
        QueueRun { first: first.0, count: 0, chunks: Vec::new() }
    }

    /// Appends an item (a copy of `item`).
    pub fn push(&mut self, item: &[u8]) {
        self.push_with(|out| out.extend_from_slice(item));
    }

    /// Appends an item that `write` appends to the buffer it is given (encode into it); answers
    /// the item's length.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        let sequence = self.first.saturating_add(self.count);
        let open = match self.chunks.last() {
            Some((_, value)) => item_count(value) < CHUNK_ITEMS && value.len() < CHUNK_BYTES,
            None => false,
        };
        if !open {
            // Room for a full chunk of typical CDRs (~300 bytes): no regrowing. Pages that are
            // never written are never touched.
            let mut value = Vec::with_capacity(CHUNK_ITEMS * CHUNK_RESERVE_BYTES_PER_ITEM);
            value.extend_from_slice(&0u32.to_le_bytes());
            self.chunks.push((sequence, value));
        }
        let Some((_, value)) = self.chunks.last_mut() else {
            debug_assert!(false, "a chunk was opened above");
            return 0;
        };
        let at = value.len();
        value.extend_from_slice(&0u32.to_le_bytes());
        write(value);
        // Items are bounded far below 4 GiB (a CDR is a few hundred bytes, a submission 64 MiB).
        debug_assert!(u32::try_from(value.len() - at - 4).is_ok(), "an item of 4 GiB or more");
        let len = u32::try_from(value.len() - at - 4).unwrap_or(u32::MAX);
        value[at..at + 4].copy_from_slice(&len.to_le_bytes());
        let count = item_count(value) as u32 + 1;
        value[..4].copy_from_slice(&count.to_le_bytes());
        self.count += 1;
        len as usize
    }

    /// The number of items.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first item's sequence.
    pub fn first(&self) -> cdrchain_runtime::ids::Sequence {
        cdrchain_runtime::ids::Sequence(self.first)
    }

    pub(crate) fn chunks(&self) -> &[(u64, Vec<u8>)] {
        &self.chunks
    }
}

fn item_count(value: &[u8]) -> usize {
    value.get(..4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// A stored chunk, checked: its first sequence, its item count, and its items in order.
pub(crate) struct Chunk<'a> {
    /// The first item's sequence (the key).
    pub first: u64,
    /// Items it holds, at least one.
    pub count: u64,
    /// The stored key, named in errors.
    key: &'a [u8],
    /// The framed items after the count.
    items: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// Reads a `queue` entry's header; a key or value that is not a chunk is corrupt.
    pub fn parse(key: &'a [u8], value: &'a [u8]) -> Result<Chunk<'a>, StorageError> {
        let first = layout::be_u64_exact(key)
            .ok_or_else(|| StorageError::corrupt(layout::QUEUE, key, "key is not an 8-byte sequence"))?;
        let (count, items) = match value.split_first_chunk::<4>() {
            Some((count, items)) => (u64::from(u32::from_le_bytes(*count)), items),
            None => return Err(StorageError::corrupt(layout::QUEUE, key, "a chunk shorter than its count")),
        };
        if count == 0 || first.checked_add(count - 1).is_none() {
            return Err(StorageError::corrupt(
                layout::QUEUE,
                key,
                format!("a chunk of {count} items from sequence {first}"),
            ));
        }
        Ok(Chunk { first, count, key, items })
    }

    /// Its last sequence.
    pub fn last(&self) -> u64 {
        self.first + (self.count - 1)
    }

    /// How many of its items have a sequence in `from..=through`.
    pub fn count_between(&self, from: u64, through: u64) -> u64 {
        (self.last().min(through) + 1).saturating_sub(self.first.max(from))
    }

    /// Visits the items with sequence >= `from`, in order, until `visit` answers `false`.
    pub fn visit(&self, from: u64, mut visit: impl FnMut(u64, &'a [u8]) -> bool) -> Result<(), StorageError> {
        let mut rest = self.items;
        for sequence in self.first..=self.last() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(self.corrupt(sequence, "ends before the item's length"));
            };
            let len = u32::from_le_bytes(*len) as usize;
            if tail.len() < len {
                return Err(self.corrupt(sequence, "ends inside the item"));
            }
            let (item, tail) = tail.split_at(len);
            rest = tail;
            if sequence >= from && !visit(sequence, item) {
                return Ok(());
            }
        }
        if !rest.is_empty() {
            return Err(self.corrupt(self.last(), "has bytes after its last item"));
        }
        Ok(())
    }

    fn corrupt(&self, sequence: u64, what: &str) -> StorageError {
        StorageError::corrupt(
            layout::QUEUE,
            self.key,
            format!("the chunk of {} items from {} {what} (item {sequence})", self.count, self.first),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use cdrchain_runtime::ids::Sequence;
    use proptest::prelude::*;

    fn items_of(run: &QueueRun) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let mut out = Vec::new();
        for (first, value) in run.chunks() {
            let key = first.to_be_bytes();
            let chunk = Chunk::parse(&key, value)?;
            assert_eq!(chunk.first, *first);
            chunk.visit(0, |s, item| {
                out.push((s, item.to_vec()));
                true
            })?;
        }
        Ok(out)
    }

    proptest! {
        #[test]
        fn a_run_reads_back_as_pushed(
            first in 0u64..1_000_000,
            items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3_000), 0..2_500),
        ) {
            let mut run = QueueRun::new(Sequence(first));
            for item in &items {
                run.push(item);
            }
            prop_assert_eq!(run.len(), items.len() as u64);
            let expected: Vec<_> = items.iter().cloned().enumerate().map(|(i, v)| (first + i as u64, v)).collect();
            prop_assert_eq!(items_of(&run).map_err(|e| TestCaseError::fail(e.to_string()))?, expected);
            for (_, value) in run.chunks() {
                let count = item_count(value);
                prop_assert!((1..=CHUNK_ITEMS).contains(&count));
            }
        }
    }

    #[test]
    fn chunks_close_at_their_item_and_byte_limits() {
        let mut run = QueueRun::new(Sequence(7));
        for _ in 0..CHUNK_ITEMS + 1 {
            run.push(b"x");
        }
        assert_eq!(run.chunks().len(), 2);
        assert_eq!(run.chunks()[1].0, 7 + CHUNK_ITEMS as u64);
        let mut big = QueueRun::new(Sequence(0));
        big.push(&vec![1u8; CHUNK_BYTES]);
        big.push(b"next");
        assert_eq!(big.chunks().len(), 2);
    }

    #[test]
    fn damaged_chunks_are_corrupt_not_panics() -> Result<(), StorageError> {
        let key = 5u64.to_be_bytes();
        let mut run = QueueRun::new(Sequence(5));
        run.push(b"abc");
        run.push(b"de");
        let good = run.chunks()[0].1.clone();
        let visit_all = |value: &[u8]| {
            Chunk::parse(&key, value).and_then(|chunk| chunk.visit(0, |_, _| true)).map_err(|e| e.to_string())
        };
        assert!(visit_all(&good).is_ok());
        for cut in 0..good.len() {
            let error = visit_all(&good[..cut]).unwrap_err();
            assert!(error.contains("corrupt entry in column family `queue`"), "{error}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(visit_all(&longer).unwrap_err().contains("after its last item"));
        assert!(Chunk::parse(b"short", &good).is_err());
        let overflow = u64::MAX.to_be_bytes();
        assert!(Chunk::parse(&overflow, &good).is_err());
        // A visit may stop early and may start inside the chunk.
        let chunk = Chunk::parse(&key, &good)?;
        let mut seen = Vec::new();
        chunk.visit(6, |s, item| {
            seen.push((s, item.to_vec()));
            false
        })?;
        assert_eq!(seen, vec![(6, b"de".to_vec())]);
        Ok(())
    }
}
