//! Read views: the [`Reader`] seam between the live database and a snapshot, the runtime's
//! [`StateView`] and [`NodeStore`] over `state` and `log_nodes` (levels 1-3 folded from leaves),
//! and [`StorageSnapshot`], which stays at one head while blocks commit.

use cdrchain_runtime::apply::ParentRef;
use cdrchain_runtime::merkle::{Domain, Frontier, NodeId, NodeStore};
use cdrchain_runtime::state::{Pairs, StateView};
use cdrchain_runtime::Hash32;
use rocksdb::{ColumnFamily, DBPinnableSlice, DBRawIterator, ReadOptions, Snapshot, DB};

use crate::{layout, read, Head, Storage, StorageError};

/// Point reads and iterators, from the live database or from a snapshot.
pub(crate) trait Reader {
    fn pinned(&self, cf: &ColumnFamily, key: &[u8]) -> Result<Option<DBPinnableSlice<'_>>, rocksdb::Error>;
    fn raw_iter(&self, cf: &ColumnFamily, options: ReadOptions) -> DBRawIterator<'_>;
}

impl Reader for DB {
    fn pinned(&self, cf: &ColumnFamily, key: &[u8]) -> Result<Option<DBPinnableSlice<'_>>, rocksdb::Error> {
        self.get_pinned_cf(cf, key)
    }

    fn raw_iter(&self, cf: &ColumnFamily, options: ReadOptions) -> DBRawIterator<'_> {
        self.raw_iterator_cf_opt(cf, options)
    }
}

impl Reader for Snapshot<'_> {
    fn pinned(&self, cf: &ColumnFamily, key: &[u8]) -> Result<Option<DBPinnableSlice<'_>>, rocksdb::Error> {
        self.get_pinned_cf(cf, key)
    }

    fn raw_iter(&self, cf: &ColumnFamily, options: ReadOptions) -> DBRawIterator<'_> {
        self.raw_iterator_cf_opt(cf, options)
    }
}

/// Levels of the CDR log's perfect subtrees that are not stored: each is recomputed from the at
/// most 8 leaf hashes under it (one short range scan and 7 hashes), when a proof or a frontier
/// needs it. Storing every level put two log nodes per CDR; without levels 1-3 it is 1.125, and
/// the log-node column, which flushed twice the bytes of the CDRs themselves (hashes do not
/// compress), shrinks by 44 %. Databases written with every level read the same.
pub(crate) const DERIVED_LEVELS: std::ops::RangeInclusive<u8> = 1..=3;
/// Leaf hashes under the highest derived level: the most one derived node is folded from.
const MAX_FOLDED_LEAVES: usize = 1 << *DERIVED_LEVELS.end();
// Leaves (level 0) are what derived nodes are folded from: they must be stored.
const _: () = assert!(*DERIVED_LEVELS.start() >= 1);

impl Storage {
    /// A consistent read-only view at the current head that later commits do not change: use it
    /// to build or check a block, or to serve reads, while another thread commits.
    pub fn snapshot(&self) -> StorageSnapshot<'_> {
        // Under the read lock: commits write their batch and update the cache under the write
        // lock, so the RocksDB snapshot and the cached head/frontier describe the same block.
        let cached = read(&self.cached);
        StorageSnapshot {
            storage: self,
            snapshot: self.db.snapshot(),
            head: cached.head.clone(),
            frontier: cached.frontier.clone(),
        }
    }

    fn state_get(&self, reader: &impl Reader, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let value =
            reader.pinned(self.column(layout::STATE)?, key).map_err(self.db_error(layout::STATE, "get"))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn tree_get(&self, reader: &impl Reader, position: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let value = reader
            .pinned(self.column(layout::STATE_TREE)?, position)
            .map_err(self.db_error(layout::STATE_TREE, "get"))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn state_for_each(
        &self,
        reader: &impl Reader,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StorageError> {
        self.scan(reader, layout::STATE, visit)
    }

    fn scan(
        &self,
        reader: &impl Reader,
        column: &'static str,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StorageError> {
        let mut iter = reader.raw_iter(self.column(column)?, ReadOptions::default());
        iter.seek_to_first();
        while let Some((key, value)) = iter.item() {
            visit(key, value);
            iter.next();
        }
        iter.status().map_err(self.db_error(column, "scan"))
    }

    fn state_prefix(&self, reader: &impl Reader, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        let mut iter = reader.raw_iter(self.column(layout::STATE)?, ReadOptions::default());
        iter.seek(prefix);
        let mut pairs = Vec::new();
        while let Some((key, value)) = iter.item() {
            if pairs.len() >= limit || !key.starts_with(prefix) {
                break;
            }
            pairs.push((key.to_vec(), value.to_vec()));
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::STATE, "scan"))?;
        Ok(pairs)
    }

    /// Every stored node of the state tree at the head, by position (tools and tests: the runtime
    /// reads the nodes it needs one by one).
    pub fn for_each_tree_node(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
        self.scan(&self.db, layout::STATE_TREE, visit)
    }

    fn log_node(&self, reader: &impl Reader, id: NodeId) -> Result<Option<Hash32>, StorageError> {
        if DERIVED_LEVELS.contains(&id.level) {
            return self.derived_log_node(reader, id);
        }
        let key = layout::node_key(id);
        match reader
            .pinned(self.column(layout::LOG_NODES)?, &key)
            .map_err(self.db_error(layout::LOG_NODES, "get"))?
        {
            Some(bytes) => <[u8; 32]>::try_from(&bytes[..]).map(|hash| Some(Hash32(hash))).map_err(|_| {
                StorageError::corrupt(
                    layout::LOG_NODES,
                    &key,
                    format!("a node hash is 32 bytes, not {}", bytes.len()),
                )
            }),
            None => Ok(None),
        }
    }

    /// Perfect subtree `id` (level in [`DERIVED_LEVELS`]) folded from its stored leaf hashes;
    /// `None` if a leaf under it is not stored (the log is not that large).
    fn derived_log_node(&self, reader: &impl Reader, id: NodeId) -> Result<Option<Hash32>, StorageError> {
        debug_assert!(DERIVED_LEVELS.contains(&id.level), "level {} is stored, not derived", id.level);
        let width = 1u64 << id.level;
        let Some(first) = id.index.checked_mul(width) else { return Ok(None) };
        let column = self.column(layout::LOG_NODES)?;
        let mut iter = reader.raw_iter(column, ReadOptions::default());
        iter.seek(layout::node_key(NodeId::leaf(first)));
        let mut hashes = Vec::with_capacity(MAX_FOLDED_LEAVES);
        for offset in 0..width {
            let Some(index) = first.checked_add(offset) else { return Ok(None) };
            let key = layout::node_key(NodeId::leaf(index));
            match iter.item() {
                Some((found, bytes)) if found == key.as_slice() => {
                    let hash = <[u8; 32]>::try_from(bytes).map_err(|_| {
                        StorageError::corrupt(
                            layout::LOG_NODES,
                            &key,
                            format!("a node hash is 32 bytes, not {}", bytes.len()),
                        )
                    })?;
                    hashes.push(Hash32(hash));
                }
                _ => {
                    iter.status().map_err(self.db_error(layout::LOG_NODES, "scan"))?;
                    return Ok(None);
                }
            }
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::LOG_NODES, "scan"))?;
        while hashes.len() > 1 {
            hashes = hashes.chunks_exact(2).map(|pair| Domain::CDR_LOG.node(&pair[0], &pair[1])).collect();
        }
        Ok(hashes.pop())
    }
}

impl StateView for Storage {
    type Error = StorageError;

    /// The value under the encoded state key, at the head.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.state_get(&self.db, key)
    }

    /// Every state pair in ascending key order (RocksDB's bytewise comparator orders keys as
    /// `BTreeMap<Vec<u8>, _>` does).
    fn for_each_pair(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
        self.state_for_each(&self.db, visit)
    }

    /// A state tree node at the head.
    fn tree_node(&self, position: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.tree_get(&self.db, position)
    }

    fn pairs_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        self.state_prefix(&self.db, prefix, limit)
    }

    /// The CDR log's frontier at the head.
    fn cdr_log(&self) -> Result<Frontier, StorageError> {
        Ok(read(&self.cached).frontier.clone())
    }
}

impl NodeStore for Storage {
    type Error = StorageError;

    fn node(&self, id: NodeId) -> Result<Option<Hash32>, StorageError> {
        self.log_node(&self.db, id)
    }
}

/// A read-only view of the state, the log and the head at one block, unaffected by later
/// commits (a RocksDB snapshot). Made by [`Storage::snapshot`].
pub struct StorageSnapshot<'a> {
    /// The database the snapshot reads (column handles, the genesis hash, error context).
    storage: &'a Storage,
    /// The RocksDB snapshot all reads go through.
    snapshot: Snapshot<'a>,
    /// The head when the snapshot was taken.
    head: Option<Head>,
    /// The CDR log's frontier at that head.
    frontier: Frontier,
}

impl std::fmt::Debug for StorageSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSnapshot")
            .field("path", &self.storage.path)
            .field("head", &self.head.as_ref().map(|h| (h.header.number, h.hash)))
            .field("log_size", &self.frontier.size())
            .finish_non_exhaustive()
    }
}

impl StorageSnapshot<'_> {
    /// The head this snapshot was taken at.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// The parent reference for a block on top of this snapshot.
    pub fn parent_ref(&self) -> ParentRef {
        match &self.head {
            Some(head) => ParentRef::with_hash(&head.header, head.hash),
            None => ParentRef::genesis(self.storage.genesis_hash),
        }
    }
}

impl StateView for StorageSnapshot<'_> {
    type Error = StorageError;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.storage.state_get(&self.snapshot, key)
    }

    fn for_each_pair(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError> {
        self.storage.state_for_each(&self.snapshot, visit)
    }

    fn tree_node(&self, position: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.storage.tree_get(&self.snapshot, position)
    }

    fn pairs_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        self.storage.state_prefix(&self.snapshot, prefix, limit)
    }

    fn cdr_log(&self) -> Result<Frontier, StorageError> {
        Ok(self.frontier.clone())
    }
}

impl NodeStore for StorageSnapshot<'_> {
    type Error = StorageError;

    fn node(&self, id: NodeId) -> Result<Option<Hash32>, StorageError> {
        self.storage.log_node(&self.snapshot, id)
    }
}
