//! Opening the database: create and initialize a new one, or check an existing one's schema
//! version and genesis, then load the head, the log frontier and the queue's numbers into memory.
//! Writes `meta` and `state` (genesis).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, RwLock};

use cdrchain_runtime::ids::Height;
use cdrchain_runtime::merkle::Frontier;
use cdrchain_runtime::state::MemoryState;
use cdrchain_runtime::Hash32;
use parity_scale_codec::Encode;
use rocksdb::{ColumnFamilyDescriptor, Options, ReadOptions, WriteBatch, DB};

use crate::filter::KeyFilter;
use crate::ingest_queue::QueueState;
use crate::queue::Chunk;
use crate::view::Reader;
use crate::{layout, lock, options, write, Cached, Head, Storage, StorageError, SCHEMA_VERSION};

impl Storage {
    /// Opens (creating if absent) the database at `path` for the chain with `genesis_hash`. A new
    /// database gets the metadata (schema version, genesis hash) and the `genesis` state pairs
    /// (and its empty log frontier) in one synced batch. An existing one must match both, else
    /// [`StorageError::WrongGenesis`] / [`StorageError::WrongSchema`] naming path, expected and
    /// found values.
    pub fn open(path: &Path, genesis_hash: Hash32, genesis: &MemoryState) -> Result<Storage, StorageError> {
        let db_options = options::db_options();
        let cache = options::block_cache();
        let open_error = |source| StorageError::Open { path: path.to_path_buf(), source };
        // A database of another schema version may hold column families this build does not
        // know, and RocksDB refuses to open a database without naming all of them: list them
        // first, so that such a database reaches the schema check and its clear message.
        let existing = if path.join("CURRENT").is_file() {
            DB::list_cf(&Options::default(), path).map_err(open_error)?
        } else {
            Vec::new()
        };
        let mut descriptors: Vec<ColumnFamilyDescriptor> = layout::COLUMNS
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, options::column_options(name, &cache)))
            .collect();
        for name in existing {
            if name != rocksdb::DEFAULT_COLUMN_FAMILY_NAME && !layout::COLUMNS.contains(&name.as_str()) {
                descriptors.push(ColumnFamilyDescriptor::new(name, Options::default()));
            }
        }
        let db = DB::open_cf_descriptors(&db_options, path, descriptors).map_err(|source| {
            // RocksDB names what it found damaged (the file, the record) in its message.
            if source.kind() == rocksdb::ErrorKind::Corruption {
                StorageError::Damaged { path: path.to_path_buf(), detail: source.to_string() }
            } else {
                open_error(source)
            }
        })?;
        crate::health::check_table_files(&db, path)?;
        let mut storage = Storage {
            db,
            path: path.to_path_buf(),
            genesis_hash,
            cached: RwLock::new(Cached { head: None, frontier: Frontier::new() }),
            commit_lock: Mutex::new(()),
            enqueue_lock: Mutex::new(()),
            queue: Mutex::new(QueueState { len: 0, floor: 0, base: 0, ceiling: 0 }),
            ingest_filter: RwLock::new(KeyFilter::default()),
            ingest_filter_ready: AtomicBool::new(false),
            upgraded: None,
        };
        match storage.get_decoded::<u32>(&storage.db, layout::META, layout::META_SCHEMA_VERSION)? {
            None => storage.initialize(genesis)?,
            Some(found) => {
                let upgrade = found == crate::parties::SCHEMA_BEFORE_PARTIES;
                if found != SCHEMA_VERSION && !upgrade {
                    return Err(StorageError::WrongSchema {
                        path: storage.path.clone(),
                        expected: SCHEMA_VERSION,
                        found,
                    });
                }
                let found_genesis = storage
                    .get_decoded::<Hash32>(&storage.db, layout::META, layout::META_GENESIS_HASH)?
                    .ok_or_else(|| {
                        StorageError::corrupt(
                            layout::META,
                            layout::META_GENESIS_HASH,
                            "the schema version is set but the genesis hash is missing",
                        )
                    })?;
                if found_genesis != genesis_hash {
                    return Err(StorageError::WrongGenesis {
                        path: storage.path.clone(),
                        expected: genesis_hash,
                        found: found_genesis,
                    });
                }
                if upgrade {
                    storage.upgrade_to_parties()?;
                    storage.upgraded = Some(found);
                }
            }
        }
        storage.load()?;
        Ok(storage)
    }

    /// Writes the metadata and the genesis state of a new database in one synced batch.
    fn initialize(&self, genesis: &MemoryState) -> Result<(), StorageError> {
        // No schema version: this must be a database we just created. One that holds data but no
        // version was damaged or written by something else; do not write over it.
        for column in layout::COLUMNS {
            let mut iter = self.db.raw_iter(self.column(column)?, ReadOptions::default());
            iter.seek_to_first();
            if let Some(key) = iter.key() {
                return Err(StorageError::corrupt(
                    column,
                    key,
                    "the database has no schema version but holds data",
                ));
            }
            iter.status().map_err(self.db_error(column, "scan"))?;
        }
        let meta = self.column(layout::META)?;
        let state = self.column(layout::STATE)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, layout::META_SCHEMA_VERSION, SCHEMA_VERSION.encode());
        batch.put_cf(meta, layout::META_GENESIS_HASH, self.genesis_hash.encode());
        batch.put_cf(meta, layout::META_LOG_FRONTIER, genesis.cdr_log.encode());
        batch.put_cf(meta, layout::META_QUEUE_FLOOR, 0u64.encode());
        for (key, value) in &genesis.pairs {
            batch.put_cf(state, key, value);
        }
        let tree = self.column(layout::STATE_TREE)?;
        for (position, node) in &genesis.tree {
            batch.put_cf(tree, position, node);
        }
        self.db.write_opt(batch, &options::synced()).map_err(self.db_error("*", "write"))
    }

    /// Loads the head, the frontier and the queue length into memory, checking they agree.
    fn load(&self) -> Result<(), StorageError> {
        let head = match self.get_decoded::<Height>(&self.db, layout::META, layout::META_HEAD)? {
            None => None,
            Some(height) => {
                let header = self.header(height)?.ok_or_else(|| {
                    StorageError::corrupt(
                        layout::HEADERS,
                        &layout::height_key(height),
                        format!("the head is at height {height} but its header is missing"),
                    )
                })?;
                Some(Head { hash: header.hash(), header })
            }
        };
        let frontier = self
            .get_decoded::<Frontier>(&self.db, layout::META, layout::META_LOG_FRONTIER)?
            .ok_or_else(|| {
                StorageError::corrupt(layout::META, layout::META_LOG_FRONTIER, "the log frontier is missing")
            })?;
        if let Some(head) = &head {
            if head.header.cdr_log_size != frontier.size() {
                return Err(StorageError::corrupt(
                    layout::META,
                    layout::META_LOG_FRONTIER,
                    format!(
                        "the frontier holds {} leaves but the head (height {}) says {}",
                        frontier.size(),
                        head.header.number,
                        head.header.cdr_log_size
                    ),
                ));
            }
        }
        let floor = self.get_decoded::<u64>(&self.db, layout::META, layout::META_QUEUE_FLOOR)?.unwrap_or(0);
        let (base, ceiling, len) = self.scan_queue(floor)?;
        // Builds before this one kept the count in metadata; the count is taken from the chunks
        // now, and a stale copy must not mislead an older build that opens this database again.
        let meta = self.column(layout::META)?;
        if self
            .db
            .get_pinned_cf(meta, layout::META_QUEUE_LEN)
            .map_err(self.db_error(layout::META, "get"))?
            .is_some()
        {
            self.db
                .delete_cf_opt(meta, layout::META_QUEUE_LEN, &options::synced())
                .map_err(self.db_error(layout::META, "delete"))?;
        }
        *write(&self.cached) = Cached { head, frontier };
        let queue = QueueState { len, floor, base, ceiling };
        queue.debug_check();
        *lock(&self.queue) = queue;
        Ok(())
    }

    /// Reads and checks the queue's chunks once (at open): where the first begins, where the last
    /// ends, and how many entries from `floor` up they hold.
    fn scan_queue(&self, floor: u64) -> Result<(u64, u64, u64), StorageError> {
        let mut iter = self.db.raw_iter(self.column(layout::QUEUE)?, ReadOptions::default());
        iter.seek_to_first();
        let (mut base, mut ceiling, mut count) = (None, 0, 0);
        while let Some((key, value)) = iter.item() {
            let chunk = Chunk::parse(key, value)?;
            // Walked whole, so that a damaged chunk is named now, not when the batcher meets it.
            chunk.visit(u64::MAX, |_, _| true)?;
            base.get_or_insert(chunk.first);
            ceiling = chunk.last().saturating_add(1);
            count += chunk.count_between(floor, u64::MAX);
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::QUEUE, "scan"))?;
        Ok((base.unwrap_or(floor), ceiling, count))
    }
}
