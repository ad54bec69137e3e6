//! Storage for cdrchain on RocksDB: blocks, certificates, CDRs and their indexes, the CDR Merkle
//! log, the small state, the node's durable ingest queue, the consensus WAL and metadata.
//!
//! # Guarantees
//!
//! - **One synced `WriteBatch` per committed block** ([`Storage::commit_block`]): header, body,
//!   certificate, CDRs, indexes, log nodes, state writes, frontier and head land together or not at
//!   all, and are on disk when the call returns. Dequeuing the node's own ingest queue can ride in
//!   the same batch, so "committed" and "no longer queued" never disagree after a crash.
//! - **Right database or nothing**: [`Storage::open`] refuses a database of another genesis or
//!   schema version, naming the path and both values. Schema 3 (the previous one) is upgraded in
//!   place, in one synced batch, its queued CDRs kept.
//! - **No panics on stored data**: a value that does not decode (or contradicts its key) gives
//!   [`StorageError::Corrupt`] naming the column family, the key in hex and the reason.
//! - **Read-your-writes**: the cached head and log frontier change only after the batch is
//!   written, under the same lock, so whoever sees the new head also sees everything it wrote.
//!   [`Storage`] implements the runtime's [`StateView`] (the state at the head) and
//!   [`NodeStore`]; [`Storage::snapshot`] gives a view that stays at one head while blocks commit.
//!
//! # Layout
//!
//! Heights and sequences are big-endian `u64` in keys, so iteration follows numeric order.
//! Operator ids and call ids inside composite keys are SCALE-encoded (compact length prefix), so
//! no key is a prefix of another key of a different id. Values are SCALE-encoded unless noted.
//! Names are in [`layout`].
//!
//! | Column family  | Key | Value | Why |
//! |----------------|-----|-------|-----|
//! | `meta`         | `sys/schema_version`, `sys/genesis_hash`, `sys/head`, `sys/log_frontier`, `sys/queue_floor`; `user/<key>` | `u32`, `Hash32`, `Height`, `Frontier`, `u64`; opaque | what the database is (checked at open), where the chain is (head, frontier for the next block), where the queue's live entries begin (its length is counted from its chunks at open); the node's own settings (e.g. next ingest sequence) |
//! | `headers`      | height BE | `Header` | headers by height: sync, RPC, light clients |
//! | `bodies`       | height BE | `BoundedVec<StoredTx>`: CDR batches as (operator, first sequence, count, signature), other transactions whole | blocks for peers catching up, export and RPC, rebuilt with the batches' CDRs from `cdrs` (each CDR is stored once) and checked against the header's `tx_root` |
//! | `certificates` | height BE | `CommitCertificate` | proof of finality of each block, served with it |
//! | `hash_index`   | header hash | `Height` | block by hash (RPC, votes and proposals name hashes) |
//! | `cdrs`         | `SCALE(recorder) ‖ sequence BE` | [`StoredCdr`] | every CDR by its chain-wide id, with its block and log position (for proofs) |
//! | `call_ids`     | `SCALE(call_id) ‖ SCALE(recorder) ‖ sequence BE` | empty | all legs of a call, from any recorder (reconciliation, `cdr_byCallId`) |
//! | `partners`     | `SCALE(min(a,b)) ‖ SCALE(max(a,b)) ‖ start_ms BE ‖ SCALE(recorder) ‖ sequence BE` | empty | CDRs between two interconnect partners in a time window, in start order (settlement) |
//! | `log_nodes`    | `level ‖ index BE` | `Hash32` | perfect subtrees of the CDR log at levels 0 and ≥ 4 (1-3 are folded from leaves on read): inclusion and consistency proofs at any size |
//! | `state`        | `SCALE(StateKey)` | its SCALE value | the small state the runtime reads through [`StateView`] |
//! | `queue`        | first sequence BE | a chunk: up to 1,024 consecutive entries, each opaque bytes (`queue.rs`) | CDRs this node accepted but that are not yet in a block: survives restarts. In chunks, not one entry per CDR: a tenth of the dev node's CPU went to per-entry memtable, flush and scan work |
//! | `wal`          | opaque | opaque | consensus write-ahead log: what this validator voted for (no double signing after a crash) |
//! | `ingest_keys`  | 32-byte digest of a record's source identity | sequence BE | this node's ingested records by their identity in the source switch: a re-submitted record gets its first sequence back instead of a second one. Mirrored by an in-memory filter (`filter.rs`, loaded by [`Storage::load_ingest_filter`]), so that a new record's key is found absent without reading the column |
//!
//! RocksDB options are chosen per column family in `options.rs` (compression, memtable sizes,
//! bloom filters, a shared block cache, a bounded number of open files); each choice says why.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cdrchain_runtime::apply::{ParentRef, StateChanges};
use cdrchain_runtime::block::{Block, CommitCertificate, Header, MAX_TRANSACTIONS_PER_BLOCK};
use cdrchain_runtime::cdr::{Cdr, CdrBody};
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::crypto::Signature;
use cdrchain_runtime::ids::{CallId, CdrId, Height, OperatorId, Sequence};
use cdrchain_runtime::merkle::{Domain, Frontier, NodeId, NodeStore};
use cdrchain_runtime::state::{MemoryState, StateView};
use cdrchain_runtime::tx::{tx_root, CdrBatch, SignedTransaction, Transaction};
use cdrchain_runtime::Hash32;
use parity_scale_codec::{Decode, Encode};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBPinnableSlice, DBRawIterator, Options, ReadOptions, Snapshot,
    WriteBatch, DB,
};

mod error;
mod filter;
pub mod layout;
mod options;
mod queue;

pub use error::StorageError;
use filter::KeyFilter;
use queue::Chunk;
pub use queue::{QueueRun, CHUNK_BYTES, CHUNK_ITEMS};

/// The version of the layout described in the crate docs. A database written with another
/// version is refused at open. 3: `bodies` keeps CDR batches without their CDRs (issue #7).
pub const SCHEMA_VERSION: u32 = 4;
/// The oldest schema version [`Storage::open`] upgrades in place: 3 differs only in the queue's
/// form (one entry per item), which is rewritten in chunks.
pub const OLDEST_UPGRADABLE_SCHEMA: u32 = 3;

/// The most CDRs one [`Storage::query_partners`] page returns.
pub const MAX_PAGE: usize = 10_000;

/// Keys [`Storage::load_ingest_filter`] inserts per hold of the filter's lock.
const FILTER_LOAD_STEP: usize = 65_536;

/// A committed CDR with where it was committed: its block and its leaf in the CDR log.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredCdr {
    pub cdr: Cdr,
    pub height: Height,
    pub leaf_index: u64,
}

/// The head: the best block, which is also the finalized one (the chain has instant finality).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub header: Header,
    /// `header.hash()`, computed once.
    pub hash: Hash32,
}

/// What is cached in memory from the metadata: changed only after a commit's batch is written.
#[derive(Clone, Debug)]
struct Cached {
    head: Option<Head>,
    /// The CDR log's frontier at the head.
    frontier: Frontier,
}

/// The ingest queue's bookkeeping, in memory. Its mutex is held only to read or update these
/// numbers, never across a database write: a block commit (which dequeues) writes tens of
/// megabytes, and the ingest writer, the batcher and admission must not wait for it.
#[derive(Debug)]
struct QueueState {
    /// Entries in the queue. Counted from the chunks at open (not persisted: enqueue and dequeue
    /// would then both write one counter, and their writes would have to be serialized).
    len: u64,
    /// Entries below this sequence are dequeued (a chunk may still hold some, with later
    /// entries). Persisted, so that the counter stays exact across a restart.
    floor: u64,
    /// No chunk begins below this sequence: scans start here, not at the range tombstones of
    /// dequeued chunks.
    base: u64,
    /// No entry sorts at or above this sequence: an item enqueued there is new without a lookup
    /// (the ingest writer only ever appends above the last sequence it gave out).
    ceiling: u64,
}

/// What a dequeue changes in [`QueueState`], applied once its batch is written.
#[derive(Debug)]
struct Dequeued {
    /// Entries removed.
    count: u64,
    floor: u64,
    base: u64,
}

impl Dequeued {
    fn apply(&self, queue: &mut QueueState) {
        queue.len = queue.len.saturating_sub(self.count);
        queue.floor = queue.floor.max(self.floor);
        queue.base = queue.base.max(self.base);
    }
}

/// The node's database. See the crate docs for the layout and guarantees.
///
/// Thread-safe: reads run concurrently; commits are serialized; the queue has its own lock.
pub struct Storage {
    db: DB,
    path: PathBuf,
    genesis_hash: Hash32,
    cached: RwLock<Cached>,
    /// Serializes `commit_block` (the head check and the write must not interleave) and every
    /// dequeue (each reads the queue's floor and writes the next).
    commit_lock: Mutex<()>,
    /// Serializes enqueues: each checks the queue's end and writes past it.
    enqueue_lock: Mutex<()>,
    /// Taken last, and only briefly (see [`QueueState`]).
    queue: Mutex<QueueState>,
    /// The keys of `ingest_keys` in memory (`filter.rs`): every key written since open goes in
    /// before its write, and [`Storage::load_ingest_filter`] adds the stored ones. Lookups trust
    /// its "absent" once `ingest_filter_ready` is set, at the end of that load.
    ingest_filter: RwLock<KeyFilter>,
    ingest_filter_ready: AtomicBool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = read(&self.cached);
        f.debug_struct("Storage")
            .field("path", &self.path)
            .field("genesis_hash", &self.genesis_hash)
            .field("head", &cached.head.as_ref().map(|h| (h.header.number, h.hash)))
            .field("log_size", &cached.frontier.size())
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // The guarded data is replaced whole after each successful write, so a panic elsewhere
    // cannot leave it half-updated: poisoning carries no information here.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Puts a queue run's chunks into `batch`, each under its first sequence.
fn put_run(batch: &mut WriteBatch, queue: &ColumnFamily, run: &QueueRun) {
    for (first, chunk) in run.chunks() {
        batch.put_cf(queue, layout::sequence_key(Sequence(*first)), chunk);
    }
}

/// Point reads and iterators, from the live database or from a snapshot.
trait Reader {
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

/// Decodes a stored value as exactly one `T`, or names the entry as corrupt.
fn decode<T: Decode>(column: &'static str, key: &[u8], bytes: &[u8]) -> Result<T, StorageError> {
    decode_exact(bytes)
        .map_err(|e| StorageError::corrupt(column, key, format!("{} bytes do not decode: {e}", bytes.len())))
}

/// Appends `SCALE(StoredCdr { cdr: Cdr { recorder, sequence, body }, height, leaf_index })`
/// without cloning the body: a struct's encoding is its fields' encodings in order.
fn encode_stored_cdr(
    recorder: &OperatorId,
    sequence: Sequence,
    body: &CdrBody,
    height: Height,
    leaf_index: u64,
    out: &mut Vec<u8>,
) {
    recorder.encode_to(out);
    sequence.encode_to(out);
    body.encode_to(out);
    height.encode_to(out);
    leaf_index.encode_to(out);
}

/// A transaction as the `bodies` column keeps it. A CDR batch is stored without its CDRs, which
/// the `cdrs` column already holds (by recorder and sequence, with the same bodies): each CDR is
/// written once, not twice, and `block` puts the batch back together. Other transactions whole.
#[derive(Debug, Encode, Decode)]
enum StoredTx {
    Whole(SignedTransaction),
    CdrBatch { operator: OperatorId, first_sequence: Sequence, count: u32, signature: Signature },
}

impl StoredTx {
    fn of(tx: &SignedTransaction) -> StoredTx {
        match &tx.transaction {
            Transaction::CdrBatch(batch) => StoredTx::CdrBatch {
                operator: batch.operator.clone(),
                first_sequence: batch.first_sequence,
                // A batch holds at most MAX_CDRS_PER_BATCH (10,000) CDRs.
                count: u32::try_from(batch.cdrs.len()).unwrap_or(u32::MAX),
                signature: tx.signature,
            },
            _ => StoredTx::Whole(tx.clone()),
        }
    }
}

type Body = BoundedVec<StoredTx, MAX_TRANSACTIONS_PER_BLOCK>;

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
        let db = DB::open_cf_descriptors(&db_options, path, descriptors).map_err(open_error)?;
        let storage = Storage {
            db,
            path: path.to_path_buf(),
            genesis_hash,
            cached: RwLock::new(Cached { head: None, frontier: Frontier::new() }),
            commit_lock: Mutex::new(()),
            enqueue_lock: Mutex::new(()),
            queue: Mutex::new(QueueState { len: 0, floor: 0, base: 0, ceiling: 0 }),
            ingest_filter: RwLock::new(KeyFilter::default()),
            ingest_filter_ready: AtomicBool::new(false),
        };
        match storage.get_decoded::<u32>(&storage.db, layout::META, layout::META_SCHEMA_VERSION)? {
            None => storage.initialize(genesis)?,
            Some(found) => {
                if found == OLDEST_UPGRADABLE_SCHEMA {
                    storage.upgrade_from_v3()?;
                } else if found != SCHEMA_VERSION {
                    return Err(StorageError::WrongSchema {
                        path: storage.path.clone(),
                        expected: SCHEMA_VERSION,
                        found,
                    });
                }
                let found = storage
                    .get_decoded::<Hash32>(&storage.db, layout::META, layout::META_GENESIS_HASH)?
                    .ok_or_else(|| {
                        StorageError::corrupt(
                            layout::META,
                            layout::META_GENESIS_HASH,
                            "the schema version is set but the genesis hash is missing",
                        )
                    })?;
                if found != genesis_hash {
                    return Err(StorageError::WrongGenesis {
                        path: storage.path.clone(),
                        expected: genesis_hash,
                        found,
                    });
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
        *lock(&self.queue) = QueueState { len, floor, base, ceiling };
        Ok(())
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The genesis hash the database was opened (and created) for.
    pub fn genesis_hash(&self) -> Hash32 {
        self.genesis_hash
    }

    /// The best (= finalized; the chain has instant finality) block, None before block 1.
    pub fn head(&self) -> Option<Head> {
        read(&self.cached).head.clone()
    }

    /// The head's height; 0 (the genesis) before block 1.
    pub fn height(&self) -> Height {
        read(&self.cached).head.as_ref().map_or(Height(0), |h| h.header.number)
    }

    /// The parent reference for the next block (the genesis for height 1).
    pub fn parent_ref(&self) -> ParentRef {
        match &read(&self.cached).head {
            Some(head) => ParentRef::with_hash(&head.header, head.hash),
            None => ParentRef::genesis(self.genesis_hash),
        }
    }

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

    /// Writes everything a committed block changes, in ONE synced `WriteBatch`: header, body,
    /// certificate, hash → height, each CDR under (recorder, sequence) as [`StoredCdr`], the
    /// call-id index, the partner-pair/time index, the new Merkle log nodes, the state writes
    /// (`Some` = put, `None` = delete), the new log frontier and the head. Also deletes this
    /// node's ingest-queue entries with sequence <= `dequeue_through` (if `Some`) in the same
    /// batch, so committing and dequeuing are atomic.
    ///
    /// Refuses a block that does not extend the head ([`StorageError::NotNext`]), a certificate
    /// of another block ([`StorageError::CertificateMismatch`]) and changes that do not match the
    /// header or the stored log ([`StorageError::ChangesMismatch`]). Signatures are not checked:
    /// the caller has verified the certificate and applied the block.
    pub fn commit_block(
        &self,
        block: &Block,
        changes: &StateChanges,
        certificate: &CommitCertificate,
        dequeue_through: Option<Sequence>,
    ) -> Result<(), StorageError> {
        let _commit = lock(&self.commit_lock);
        let header = &block.header;
        let (head, head_hash, log_size) = {
            let cached = read(&self.cached);
            match &cached.head {
                Some(head) => (head.header.number, head.hash, cached.frontier.size()),
                None => (Height(0), self.genesis_hash, cached.frontier.size()),
            }
        };
        let expected = Height(head.0.saturating_add(1));
        if header.number != expected || header.parent_hash != head_hash || head.0 == u64::MAX {
            return Err(StorageError::NotNext {
                number: header.number,
                parent_hash: header.parent_hash,
                expected,
                head,
                head_hash,
            });
        }
        let hash = header.hash();
        if certificate.block_hash != hash || certificate.height != header.number {
            return Err(StorageError::CertificateMismatch {
                height: header.number,
                block_hash: hash,
                certificate_height: certificate.height,
                certificate_hash: certificate.block_hash,
            });
        }
        check_changes(header, changes, log_size, block.cdr_count())?;

        // Sized up front (about 450 bytes per CDR with its keys and index entries): a block of
        // 50,000 CDRs otherwise regrows and copies the batch's buffer a dozen times.
        let mut batch =
            WriteBatch::with_capacity_bytes(block.cdr_count().saturating_mul(448).saturating_add(64 * 1024));
        let height_key = layout::height_key(header.number);
        batch.put_cf(self.column(layout::HEADERS)?, height_key, header.encode());
        let body: Vec<StoredTx> = block.transactions.iter().map(StoredTx::of).collect();
        batch.put_cf(self.column(layout::BODIES)?, height_key, body.encode());
        batch.put_cf(self.column(layout::CERTIFICATES)?, height_key, certificate.encode());
        batch.put_cf(self.column(layout::HASH_INDEX)?, hash.0, header.number.encode());
        self.put_cdrs(&mut batch, block, changes.first_leaf_index)?;
        let log_nodes = self.column(layout::LOG_NODES)?;
        // Levels 1-3 are not stored (see `DERIVED_LEVELS`). The rest go in level by level, in
        // key order, for the memtable (see `put_cdrs`); the runtime hands them over leaf by leaf,
        // each followed by the subtrees it completes.
        let mut new_log_nodes: Vec<_> =
            changes.new_log_nodes.iter().filter(|(id, _)| !DERIVED_LEVELS.contains(&id.level)).collect();
        new_log_nodes.sort_unstable_by_key(|(id, _)| *id);
        for (id, node) in new_log_nodes {
            batch.put_cf(log_nodes, layout::node_key(*id), node.0);
        }
        let state = self.column(layout::STATE)?;
        for (key, value) in &changes.writes {
            match value {
                Some(value) => batch.put_cf(state, key, value),
                None => batch.delete_cf(state, key),
            }
        }
        let meta = self.column(layout::META)?;
        batch.put_cf(meta, layout::META_LOG_FRONTIER, changes.cdr_log.encode());
        batch.put_cf(meta, layout::META_HEAD, header.number.encode());

        // Under the commit lock, which serializes dequeues; the queue's own lock is not held
        // while the batch is written (enqueues go on meanwhile, above the dequeued range).
        let dequeued = match dequeue_through {
            Some(last) => Some(self.dequeue_into(&mut batch, last)?),
            None => None,
        };
        {
            let mut cached = write(&self.cached);
            self.db.write_opt(batch, &options::synced()).map_err(self.db_error("*", "write"))?;
            *cached = Cached {
                head: Some(Head { header: header.clone(), hash }),
                frontier: changes.cdr_log.clone(),
            };
        }
        if let Some(dequeued) = dequeued {
            dequeued.apply(&mut lock(&self.queue));
        }
        Ok(())
    }

    /// Puts each CDR of the block, and its two index entries, into `batch`.
    fn put_cdrs(
        &self,
        batch: &mut WriteBatch,
        block: &Block,
        first_leaf_index: u64,
    ) -> Result<(), StorageError> {
        let cdrs = self.column(layout::CDRS)?;
        let call_ids = self.column(layout::CALL_IDS)?;
        let partners = self.column(layout::PARTNERS)?;
        let height = block.header.number;
        let mut leaf_index = first_leaf_index;
        let mut value = Vec::with_capacity(512);
        let count = block.cdr_count();
        let mut call_id_keys = Vec::with_capacity(count);
        let mut partner_keys = Vec::with_capacity(count);
        for tx in block.transactions.iter() {
            let Transaction::CdrBatch(cdr_batch) = &tx.transaction else { continue };
            let recorder = &cdr_batch.operator;
            for (body, sequence) in cdr_batch.cdrs.iter().zip(cdr_batch.first_sequence.0..) {
                let sequence = Sequence(sequence);
                value.clear();
                encode_stored_cdr(recorder, sequence, body, height, leaf_index, &mut value);
                batch.put_cf(cdrs, layout::cdr_key(recorder, sequence), &value);
                call_id_keys.push(layout::call_id_key(&body.call_id, recorder, sequence));
                partner_keys.push(layout::partner_key(
                    &body.caller_operator,
                    &body.callee_operator,
                    body.start_ms,
                    recorder,
                    sequence,
                ));
                // check_changes made sure the log size fits: first + count = new size.
                leaf_index = leaf_index.saturating_add(1);
            }
        }
        // Index keys go in in key order: the memtable's skip list starts each insert from the
        // position of the previous one, so a key close to it is placed without a search from the
        // top (random-order inserts were ~8 % of a localnet validator's CPU; the storage bench
        // gained ~20 % from this).
        call_id_keys.sort_unstable();
        for key in &call_id_keys {
            batch.put_cf(call_ids, key, b"");
        }
        partner_keys.sort_unstable();
        for key in &partner_keys {
            batch.put_cf(partners, key, b"");
        }
        Ok(())
    }

    /// The header at `height`.
    pub fn header(&self, height: Height) -> Result<Option<Header>, StorageError> {
        let key = layout::height_key(height);
        let header = self.get_decoded::<Header>(&self.db, layout::HEADERS, &key)?;
        if let Some(header) = &header {
            if header.number != height {
                return Err(StorageError::corrupt(
                    layout::HEADERS,
                    &key,
                    format!("the header stored at height {height} says height {}", header.number),
                ));
            }
        }
        Ok(header)
    }

    /// The height of the block whose header hashes to `hash`.
    pub fn height_of(&self, hash: &Hash32) -> Result<Option<Height>, StorageError> {
        self.get_decoded(&self.db, layout::HASH_INDEX, &hash.0)
    }

    /// The block at `height`: its stored body with each CDR batch's CDRs read back from the
    /// `cdrs` column, checked against the header's transaction root.
    pub fn block(&self, height: Height) -> Result<Option<Block>, StorageError> {
        let Some(header) = self.header(height)? else { return Ok(None) };
        let key = layout::height_key(height);
        let body = self.get_decoded::<Body>(&self.db, layout::BODIES, &key)?.ok_or_else(|| {
            StorageError::corrupt(
                layout::BODIES,
                &key,
                format!("the body of stored header {height} is missing"),
            )
        })?;
        let mut transactions = Vec::with_capacity(body.len());
        for stored in body.into_inner() {
            transactions.push(match stored {
                StoredTx::Whole(tx) => tx,
                StoredTx::CdrBatch { operator, first_sequence, count, signature } => {
                    let cdrs = self.batch_cdrs(&operator, first_sequence, count, height)?;
                    let cdrs = BoundedVec::new(cdrs).map_err(|cdrs| {
                        StorageError::corrupt(layout::BODIES, &key, format!("a batch of {} CDRs", cdrs.len()))
                    })?;
                    let batch = CdrBatch { operator, first_sequence, cdrs: cdrs.into() };
                    SignedTransaction { transaction: Transaction::CdrBatch(batch), signature }
                }
            });
        }
        let ids: Vec<Hash32> = transactions.iter().map(|tx| tx.id(&self.genesis_hash)).collect();
        if tx_root(&ids) != header.tx_root {
            return Err(StorageError::corrupt(
                layout::BODIES,
                &key,
                format!(
                    "the transactions of block {height}, rebuilt from its body and the cdrs column, do not \
                     match its header's tx_root"
                ),
            ));
        }
        let transactions = BoundedVec::new(transactions).map_err(|txs| {
            StorageError::corrupt(layout::BODIES, &key, format!("{} transactions", txs.len()))
        })?;
        Ok(Some(Block { header, transactions }))
    }

    /// The bodies of `count` CDRs of `operator` from `first`, all committed in block `height`.
    fn batch_cdrs(
        &self,
        operator: &OperatorId,
        first: Sequence,
        count: u32,
        height: Height,
    ) -> Result<Vec<CdrBody>, StorageError> {
        let mut iter = self.db.raw_iter(self.column(layout::CDRS)?, ReadOptions::default());
        iter.seek(layout::cdr_key(operator, first));
        let mut bodies = Vec::with_capacity(count as usize);
        for sequence in (first.0..).take(count as usize) {
            let expected = layout::cdr_key(operator, Sequence(sequence));
            let Some((key, value)) = iter.item().filter(|(key, _)| *key == expected.as_slice()) else {
                iter.status().map_err(self.db_error(layout::CDRS, "scan"))?;
                return Err(StorageError::corrupt(
                    layout::CDRS,
                    &expected,
                    format!("CDR {operator}:{sequence} of block {height} is missing"),
                ));
            };
            let stored: StoredCdr = decode(layout::CDRS, key, value)?;
            if stored.height != height {
                return Err(StorageError::corrupt(
                    layout::CDRS,
                    key,
                    format!(
                        "CDR {operator}:{sequence} says block {}, its batch is in block {height}",
                        stored.height
                    ),
                ));
            }
            bodies.push(stored.cdr.body);
            iter.next();
        }
        Ok(bodies)
    }

    /// The commit certificate of the block at `height`.
    pub fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StorageError> {
        self.get_decoded(&self.db, layout::CERTIFICATES, &layout::height_key(height))
    }

    /// The CDR `recorder:sequence`, with its block height and log leaf index.
    pub fn cdr(&self, recorder: &OperatorId, sequence: Sequence) -> Result<Option<StoredCdr>, StorageError> {
        let key = layout::cdr_key(recorder, sequence);
        let stored = self.get_decoded::<StoredCdr>(&self.db, layout::CDRS, &key)?;
        if let Some(stored) = &stored {
            if &stored.cdr.recorder != recorder || stored.cdr.sequence != sequence {
                return Err(StorageError::corrupt(
                    layout::CDRS,
                    &key,
                    format!("the CDR stored as {recorder}:{sequence} is {}", stored.cdr.id()),
                ));
            }
        }
        Ok(stored)
    }

    /// Every CDR with this call id (several legs or recorders are possible), as ids, sorted (by
    /// recorder name, then sequence).
    pub fn cdrs_by_call_id(&self, call_id: &CallId) -> Result<Vec<CdrId>, StorageError> {
        let prefix = call_id.encode();
        let cf = self.column(layout::CALL_IDS)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(prefix.clone());
        let mut iter = self.db.raw_iter(cf, options);
        iter.seek(&prefix);
        let mut ids = Vec::new();
        while let Some(key) = iter.key() {
            let Some(rest) = key.strip_prefix(prefix.as_slice()) else { break };
            let (recorder, sequence) = layout::split_recorder_sequence(rest).ok_or_else(|| {
                StorageError::corrupt(layout::CALL_IDS, key, "key does not end in recorder ‖ sequence")
            })?;
            ids.push(CdrId { recorder, sequence });
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::CALL_IDS, "scan"))?;
        // Key order puts shorter recorder ids first (length prefix); callers expect names sorted.
        ids.sort();
        Ok(ids)
    }

    /// CDRs between partners `a` and `b` (either direction: caller/callee operator `a`/`b` or
    /// `b`/`a`) whose `start_ms` is in `[from_ms, to_ms)`, in start-time order (ties in index key
    /// order: SCALE-encoded recorder, then sequence), at most `limit` (clamped to
    /// `1..=MAX_PAGE`), after `cursor` (the opaque string the previous page returned). Returns the
    /// page and the cursor of the next page, `None` when nothing follows (a page that ends exactly
    /// at the last match has none). A cursor that does not parse, or lies outside the window,
    /// gives [`StorageError::BadCursor`]. Cursors are derived from index keys, so they stay valid
    /// across restarts and never repeat an entry; a CDR committed meanwhile whose start time sorts
    /// before the cursor is not seen by that paging (page within a snapshot of a past window).
    pub fn query_partners(
        &self,
        a: &OperatorId,
        b: &OperatorId,
        from_ms: u64,
        to_ms: u64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StoredCdr>, Option<String>), StorageError> {
        let prefix = layout::partner_prefix(a, b);
        let mut lower = prefix.clone();
        lower.extend_from_slice(&from_ms.to_be_bytes());
        if let Some(cursor) = cursor {
            let bad = |reason: &str| StorageError::BadCursor {
                cursor: cdrchain_runtime::codec::excerpt(cursor),
                reason: reason.to_string(),
            };
            let suffix = hex::decode(cursor).map_err(|_| bad("not a cursor returned by query_partners"))?;
            let (start_ms, _, _) = layout::split_partner_suffix(&suffix)
                .ok_or_else(|| bad("not a cursor returned by query_partners"))?;
            if start_ms < from_ms || start_ms >= to_ms {
                return Err(bad(&format!(
                    "it points at start time {start_ms} ms, outside the window [{from_ms}, {to_ms})"
                )));
            }
            // The smallest key after the cursor's: keys are prefix-free, so appending a zero byte
            // gives a key that sorts after it and before every following one.
            lower.truncate(prefix.len());
            lower.extend_from_slice(&suffix);
            lower.push(0);
        }
        if from_ms >= to_ms {
            return Ok((Vec::new(), None));
        }
        let mut upper = prefix.clone();
        upper.extend_from_slice(&to_ms.to_be_bytes());
        let limit = limit.clamp(1, MAX_PAGE);

        let cf = self.column(layout::PARTNERS)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(lower.clone());
        options.set_iterate_upper_bound(upper);
        let mut iter = self.db.raw_iter(cf, options);
        iter.seek(&lower);
        let mut page = Vec::new();
        let mut last_suffix = Vec::new();
        while let Some(key) = iter.key() {
            if page.len() == limit {
                break;
            }
            let corrupt = |reason: &str| StorageError::corrupt(layout::PARTNERS, key, reason);
            let suffix = key.strip_prefix(prefix.as_slice()).ok_or_else(|| corrupt("outside its pair"))?;
            let (_, recorder, sequence) = layout::split_partner_suffix(suffix)
                .ok_or_else(|| corrupt("key does not end in start ‖ recorder ‖ sequence"))?;
            let stored = self
                .cdr(&recorder, sequence)?
                .ok_or_else(|| corrupt(&format!("indexes {recorder}:{sequence}, which is not stored")))?;
            page.push(stored);
            last_suffix.clear();
            last_suffix.extend_from_slice(suffix);
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::PARTNERS, "scan"))?;
        // The loop stopped with the iterator on the first entry of the next page, if any.
        let next = (page.len() == limit && iter.valid()).then(|| hex::encode(&last_suffix));
        Ok((page, next))
    }

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
        let bytes: usize = run.chunks().iter().map(|(_, value)| value.len() + 32).sum();
        let mut batch = WriteBatch::with_capacity_bytes(bytes + keys.len() * 64 + 256);
        put_run(&mut batch, cf, run);
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
        self.db.write_opt(batch, &options::synced()).map_err(self.db_error(layout::QUEUE, "write"))?;
        if !run.is_empty() {
            let mut queue = lock(&self.queue);
            queue.len = queue.len.saturating_add(run.len());
            queue.base = queue.base.min(first);
            queue.ceiling = end;
        }
        Ok(())
    }

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
        let mut pending: Vec<[u8; 32]> = Vec::with_capacity(FILTER_LOAD_STEP);
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
            if pending.len() == FILTER_LOAD_STEP {
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
    fn dequeue_into(&self, batch: &mut WriteBatch, last: Sequence) -> Result<Dequeued, StorageError> {
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

    /// Schema 3 → 4 in one synced batch: the queue in chunks, its floor, the version.
    fn upgrade_from_v3(&self) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.chunk_v3_queue(&mut batch)?;
        let meta = self.column(layout::META)?;
        // Schema 3 kept the queue's length here; it is counted at open now (see `QueueState`).
        batch.delete_cf(meta, layout::META_QUEUE_LEN);
        batch.put_cf(meta, layout::META_QUEUE_FLOOR, 0u64.encode());
        batch.put_cf(meta, layout::META_SCHEMA_VERSION, SCHEMA_VERSION.encode());
        self.db.write_opt(batch, &options::synced()).map_err(self.db_error("*", "write"))
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

    /// Rewrites a schema-3 queue (one entry per item) as chunks in `batch`, so that the CDRs an
    /// older build acknowledged and had not yet committed are kept.
    fn chunk_v3_queue(&self, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let cf = self.column(layout::QUEUE)?;
        let mut iter = self.db.raw_iter(cf, ReadOptions::default());
        iter.seek_to_first();
        let mut run: Option<QueueRun> = None;
        while let Some((key, value)) = iter.item() {
            let sequence = layout::be_u64_exact(key)
                .ok_or_else(|| StorageError::corrupt(layout::QUEUE, key, "key is not an 8-byte sequence"))?;
            batch.delete_cf(cf, key);
            let continues =
                run.as_ref().is_some_and(|run| run.first().0.checked_add(run.len()) == Some(sequence));
            if !continues {
                if let Some(done) = run.take() {
                    put_run(batch, cf, &done);
                }
            }
            run.get_or_insert_with(|| QueueRun::new(Sequence(sequence))).push(value);
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::QUEUE, "scan"))?;
        if let Some(done) = run {
            put_run(batch, cf, &done);
        }
        Ok(())
    }

    /// Stores a consensus WAL record. Synced before returning.
    pub fn wal_put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.db
            .put_cf_opt(self.column(layout::WAL)?, key, value, &options::synced())
            .map_err(self.db_error(layout::WAL, "put"))
    }

    /// Reads a consensus WAL record.
    pub fn wal_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_bytes(layout::WAL, key)
    }

    /// Deletes a consensus WAL record (e.g. the votes of a height that is now committed). Synced.
    pub fn wal_delete(&self, key: &[u8]) -> Result<(), StorageError> {
        self.db
            .delete_cf_opt(self.column(layout::WAL)?, key, &options::synced())
            .map_err(self.db_error(layout::WAL, "delete"))
    }

    /// Stores a metadata value of the node (kept apart from storage's own metadata). Synced.
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.db
            .put_cf_opt(self.column(layout::META)?, layout::user_meta_key(key), value, &options::synced())
            .map_err(self.db_error(layout::META, "put"))
    }

    /// Reads a metadata value stored with [`Storage::meta_put`].
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_bytes(layout::META, &layout::user_meta_key(key))
    }

    /// Approximate bytes on disk (SST, WAL and other live files of the database directory), for
    /// metrics; 0 if the directory cannot be read.
    pub fn size_on_disk(&self) -> u64 {
        std::fs::read_dir(&self.path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| entry.metadata().ok())
                    .filter(|metadata| metadata.is_file())
                    .map(|metadata| metadata.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Flushes memtables to SST files and syncs the WAL (used at graceful shutdown, so the next
    /// start does not replay the WAL).
    pub fn flush(&self) -> Result<(), StorageError> {
        for column in layout::COLUMNS {
            self.db.flush_cf(self.column(column)?).map_err(self.db_error(column, "flush"))?;
        }
        self.db.flush_wal(true).map_err(self.db_error("*", "flush WAL"))
    }

    fn column(&self, name: &'static str) -> Result<&ColumnFamily, StorageError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::MissingColumn { path: self.path.clone(), column: name })
    }

    fn db_error(
        &self,
        column: &'static str,
        operation: &'static str,
    ) -> impl Fn(rocksdb::Error) -> StorageError + '_ {
        move |source| StorageError::Db { path: self.path.clone(), column, operation, source }
    }

    fn get_bytes(&self, column: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.db.pinned(self.column(column)?, key).map_err(self.db_error(column, "get"))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn get_decoded<T: Decode>(
        &self,
        reader: &impl Reader,
        column: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match reader.pinned(self.column(column)?, key).map_err(self.db_error(column, "get"))? {
            Some(bytes) => decode(column, key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn state_get(&self, reader: &impl Reader, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let value =
            reader.pinned(self.column(layout::STATE)?, key).map_err(self.db_error(layout::STATE, "get"))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn state_for_each(
        &self,
        reader: &impl Reader,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StorageError> {
        let mut iter = reader.raw_iter(self.column(layout::STATE)?, ReadOptions::default());
        iter.seek_to_first();
        while let Some((key, value)) = iter.item() {
            visit(key, value);
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::STATE, "scan"))
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
}

/// Levels of the CDR log's perfect subtrees that are not stored: each is recomputed from the at
/// most 8 leaf hashes under it (one short range scan and 7 hashes), when a proof or a frontier
/// needs it. Storing every level put two log nodes per CDR; without levels 1-3 it is 1.125, and
/// the log-node column, which flushed twice the bytes of the CDRs themselves (hashes do not
/// compress), shrinks by 44 %. Databases written with every level read the same.
const DERIVED_LEVELS: std::ops::RangeInclusive<u8> = 1..=3;

impl Storage {
    /// Perfect subtree `id` (level in [`DERIVED_LEVELS`]) folded from its stored leaf hashes;
    /// `None` if a leaf under it is not stored (the log is not that large).
    fn derived_log_node(&self, reader: &impl Reader, id: NodeId) -> Result<Option<Hash32>, StorageError> {
        let width = 1u64 << id.level;
        let Some(first) = id.index.checked_mul(width) else { return Ok(None) };
        let column = self.column(layout::LOG_NODES)?;
        let mut iter = reader.raw_iter(column, ReadOptions::default());
        iter.seek(layout::node_key(NodeId::leaf(first)));
        let mut hashes = Vec::with_capacity(8);
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

/// The sequence stored under ingest key `key`.
fn ingest_sequence(key: &[u8; 32], value: &[u8]) -> Result<Sequence, StorageError> {
    layout::be_u64_exact(value)
        .map(Sequence)
        .ok_or_else(|| StorageError::corrupt(layout::INGEST_KEYS, key, "value is not an 8-byte sequence"))
}

/// Checks that `changes` are the changes of a block with `header` on a log of `log_size` leaves.
fn check_changes(
    header: &Header,
    changes: &StateChanges,
    log_size: u64,
    cdr_count: usize,
) -> Result<(), StorageError> {
    let mismatch = |reason: String| StorageError::ChangesMismatch { height: header.number, reason };
    if changes.first_leaf_index != log_size {
        return Err(mismatch(format!(
            "they start the log at leaf {}, but the stored log holds {log_size} leaves",
            changes.first_leaf_index
        )));
    }
    let count = cdr_count as u64;
    if log_size.checked_add(count) != Some(changes.cdr_log.size())
        || changes.cdr_log.size() != header.cdr_log_size
    {
        return Err(mismatch(format!(
            "{log_size} stored leaves + {count} CDRs in the block, but the changes' log holds {} and the \
             header says {}",
            changes.cdr_log.size(),
            header.cdr_log_size
        )));
    }
    if changes.cdr_log_root != header.cdr_log_root || changes.state_root != header.state_root {
        return Err(mismatch("their log or state root differs from the header's".to_string()));
    }
    Ok(())
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
    storage: &'a Storage,
    snapshot: Snapshot<'a>,
    head: Option<Head>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::sample::cdr_body;

    #[test]
    fn manual_stored_cdr_encoding_matches_derive() {
        let recorder = OperatorId::new("alice").unwrap();
        let partner = OperatorId::new("bob").unwrap();
        let body = cdr_body(7, &recorder, &partner);
        let stored = StoredCdr {
            cdr: Cdr { recorder: recorder.clone(), sequence: Sequence(7), body: body.clone() },
            height: Height(3),
            leaf_index: 99,
        };
        let mut manual = Vec::new();
        encode_stored_cdr(&recorder, Sequence(7), &body, Height(3), 99, &mut manual);
        assert_eq!(manual, stored.encode());
        assert_eq!(decode::<StoredCdr>(layout::CDRS, b"k", &manual).unwrap(), stored);
    }

    #[test]
    fn undecodable_values_are_corrupt_not_panics() {
        let error = decode::<Header>(layout::HEADERS, &[0, 1], &[1, 2, 3]).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StorageError::Corrupt { column: "headers", .. }), "{error:?}");
        assert!(text.contains("0001") && text.contains("headers"), "{text}");
    }
}
