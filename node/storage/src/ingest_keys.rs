//! Ingest keys (`ingest_keys`): a record's identity in its source switch → the sequence this
//! node gave it, so that a re-submitted record gets its first sequence back. Mirrored in memory
//! by a filter (`filter.rs`) that answers "absent" for nearly every new key without a read.

use std::sync::atomic::Ordering;

use cdrchain_runtime::ids::Sequence;
use rocksdb::{ColumnFamily, ReadOptions, WriteBatch};

use crate::view::Reader;
use crate::{layout, read, write, Storage, StorageError};

/// Keys [`Storage::load_ingest_filter`] inserts per hold of the filter's lock.
const FILTER_LOAD_STEP_KEYS: usize = 65_536;
const _: () = assert!(FILTER_LOAD_STEP_KEYS > 0);

/// The sequence stored under ingest key `key`.
fn ingest_sequence(key: &[u8; 32], value: &[u8]) -> Result<Sequence, StorageError> {
    layout::be_u64_exact(value)
        .map(Sequence)
        .ok_or_else(|| StorageError::corrupt(layout::INGEST_KEYS, key, "value is not an 8-byte sequence"))
}

impl Storage {
    /// The sequence this node gave the record with ingest key `key`, if it ingested one.
    pub fn ingest_key(&self, key: &[u8; 32]) -> Result<Option<Sequence>, StorageError> {
        if self.ingest_filter_ready.load(Ordering::Acquire) && !read(&self.ingest_filter).may_contain(key) {
            return Ok(None);
        }
        let cf = self.column(layout::INGEST_KEYS)?;
        match self.db.pinned(cf, key).map_err(self.db_error(layout::INGEST_KEYS, "get"))? {
            None => Ok(None),
            Some(value) => ingest_sequence(key, &value).map(Some),
        }
    }

    /// [`Storage::ingest_key`] of each of `keys`, answered in their order. One batched lookup:
    /// RocksDB probes each file's bloom filter for all keys at once, instead of walking the
    /// memtables and files once per key (the ingest writer looks up every CDR it is given).
    /// Sorted keys (as the ingest writer passes them) are looked up without sorting them again.
    /// Once [`Storage::load_ingest_filter`] has run, only the keys the in-memory filter may hold
    /// are looked up in the database: nearly all new keys are answered from memory.
    pub fn ingest_keys(&self, keys: &[[u8; 32]]) -> Result<Vec<Option<Sequence>>, StorageError> {
        if !self.ingest_filter_ready.load(Ordering::Acquire) {
            return self.lookup_ingest_keys(keys);
        }
        let maybe: Vec<usize> = {
            let filter = read(&self.ingest_filter);
            (0..keys.len()).filter(|&i| filter.may_contain(&keys[i])).collect()
        };
        let mut answers = vec![None; keys.len()];
        if maybe.is_empty() {
            return Ok(answers);
        }
        // A subsequence of sorted keys is sorted: no sort again.
        let candidates: Vec<[u8; 32]> = maybe.iter().map(|&i| keys[i]).collect();
        for (i, found) in maybe.into_iter().zip(self.lookup_ingest_keys(&candidates)?) {
            answers[i] = found;
        }
        Ok(answers)
    }

    /// Loads the keys stored in `ingest_keys` into the in-memory filter that
    /// [`Storage::ingest_keys`] and [`Storage::ingest_key`] consult before the database, and
    /// answers how many it loaded. Until it returns, lookups go to the database alone (correct,
    /// only slower); keys written meanwhile are not missed, as every write adds its keys to the
    /// filter first. A scan of the whole column (a few seconds per ten million keys, at ~1.5
    /// bytes of memory each): the node runs it on its own thread at start. A second call loads
    /// nothing.
    pub fn load_ingest_filter(&self) -> Result<u64, StorageError> {
        if self.ingest_filter_ready.load(Ordering::Acquire) {
            return Ok(0);
        }
        let cf = self.column(layout::INGEST_KEYS)?;
        let estimate = self
            .db
            .property_int_value_cf(cf, "rocksdb.estimate-num-keys")
            .map_err(self.db_error(layout::INGEST_KEYS, "estimate-num-keys"))?
            .unwrap_or(0);
        write(&self.ingest_filter).reserve(estimate);
        let mut options = ReadOptions::default();
        // One pass over the column: its blocks must not push the working set out of the cache.
        options.fill_cache(false);
        let mut iter = self.db.raw_iter(cf, options);
        iter.seek_to_first();
        let mut loaded = 0u64;
        // Inserted a slice at a time, so that the ingest writer is never kept waiting long.
        let mut pending: Vec<[u8; 32]> = Vec::with_capacity(FILTER_LOAD_STEP_KEYS);
        let mut insert = |pending: &mut Vec<[u8; 32]>| {
            let mut filter = write(&self.ingest_filter);
            for key in pending.iter() {
                filter.insert(key);
            }
            loaded += pending.len() as u64;
            pending.clear();
        };
        while let Some(key) = iter.key() {
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| StorageError::corrupt(layout::INGEST_KEYS, key, "the key is not 32 bytes"))?;
            pending.push(key);
            if pending.len() == FILTER_LOAD_STEP_KEYS {
                insert(&mut pending);
            }
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::INGEST_KEYS, "scan"))?;
        insert(&mut pending);
        self.ingest_filter_ready.store(true, Ordering::Release);
        Ok(loaded)
    }

    /// Bytes held by the in-memory ingest-key filter.
    pub fn ingest_filter_bytes(&self) -> u64 {
        read(&self.ingest_filter).bytes()
    }

    /// [`Storage::ingest_keys`] from the database alone.
    fn lookup_ingest_keys(&self, keys: &[[u8; 32]]) -> Result<Vec<Option<Sequence>>, StorageError> {
        let cf = self.column(layout::INGEST_KEYS)?;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        if !keys.is_sorted() {
            order.sort_unstable_by_key(|&i| keys[i]);
        }
        let sorted = order.iter().map(|&i| &keys[i]);
        let found = self.db.batched_multi_get_cf(cf, sorted, true);
        let mut answers = vec![None; keys.len()];
        for (&i, value) in order.iter().zip(found) {
            if let Some(value) = value.map_err(self.db_error(layout::INGEST_KEYS, "multi_get"))? {
                answers[i] = Some(ingest_sequence(&keys[i], &value)?);
            }
        }
        Ok(answers)
    }

    /// Puts `keys` (ingest key → sequence) into `batch` for [`Storage::enqueue_keyed`], and into
    /// the in-memory filter before the batch is written.
    pub(crate) fn put_ingest_keys(
        &self,
        batch: &mut WriteBatch,
        keys_cf: &ColumnFamily,
        keys: &[([u8; 32], Sequence)],
    ) {
        // In key order, as in `put_cdrs`: random digests, each inserted next to the previous.
        // The ingest writer passes them sorted already.
        let keys: std::borrow::Cow<'_, [([u8; 32], Sequence)]> = if keys.is_sorted_by_key(|(key, _)| key) {
            keys.into()
        } else {
            let mut sorted = keys.to_vec();
            sorted.sort_unstable_by_key(|(key, _)| *key);
            sorted.into()
        };
        for (key, sequence) in keys.iter() {
            batch.put_cf(keys_cf, key, layout::sequence_key(*sequence));
        }
        // Into the filter before the write: from the moment a key can be read from the database,
        // the filter does not call it absent. A failed write leaves it in, which costs a lookup.
        if !keys.is_empty() {
            let mut filter = write(&self.ingest_filter);
            for (key, _) in keys.iter() {
                filter.insert(key);
            }
        }
    }
}
