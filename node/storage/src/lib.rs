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
//!   schema version, naming the path and both values. Schema 5 changed the CDR format (the
//!   as-written party flags), so older databases, which hold chains in the older format, are
//!   refused rather than upgraded.
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
//! | `meta`         | `sys/schema_version`, `sys/genesis_hash`, `sys/head`, `sys/log_frontier`, `sys/queue_floor`, `sys/parties_indexed`; `user/<key>` | `u32`, `Hash32`, `Height`, `Frontier`, `u64`, `Height`; opaque | what the database is (checked at open), where the chain is (head, frontier for the next block), where the queue's live entries begin (its length is counted from its chunks at open); the node's own settings (e.g. next ingest sequence) |
//! | `headers`      | height BE | `Header` | headers by height: sync, RPC, light clients |
//! | `bodies`       | height BE | `BoundedVec<StoredTx>`: CDR batches as (operator, first sequence, count, signature), other transactions whole | blocks for peers catching up, export and RPC, rebuilt with the batches' CDRs from `cdrs` (each CDR is stored once) and checked against the header's `tx_root` |
//! | `certificates` | height BE | `CommitCertificate` | proof of finality of each block, served with it |
//! | `hash_index`   | header hash | `Height` | block by hash (RPC, votes and proposals name hashes) |
//! | `cdrs`         | `SCALE(recorder) ‖ sequence BE` | [`StoredCdr`] | every CDR by its chain-wide id, with its block and log position (for proofs) |
//! | `call_ids`     | `SCALE(call_id) ‖ SCALE(recorder) ‖ sequence BE` | empty | all legs of a call, from any recorder (reconciliation, `cdr_byCallId`) |
//! | `parties`      | first 8 bytes of a party digest ‖ `start_ms BE ‖ SCALE(recorder) ‖ sequence BE` | empty | the CDRs of a telephone number or SIP address, as caller or callee (`cdr_byParty`; the CDR holds the whole digest, compared on read). Written behind the head, not with the block (`parties.rs`); `sys/parties_indexed` in `meta` says how far |
//! | `partners`     | `SCALE(min(a,b)) ‖ SCALE(max(a,b)) ‖ start_ms BE ‖ SCALE(recorder) ‖ sequence BE` | empty | CDRs between two interconnect partners in a time window, in start order (settlement) |
//! | `log_nodes`    | `level ‖ index BE` | `Hash32` | perfect subtrees of the CDR log at levels 0 and ≥ 4 (1-3 are folded from leaves on read): inclusion and consistency proofs at any size |
//! | `state`        | `SCALE(StateKey)` | its SCALE value | the small state the runtime reads through [`StateView`] |
//! | `state_tree`   | depth BE (2 bytes) ‖ path prefix | `StoredNode` | the sparse Merkle tree over `state` (ADR 0016): the state root is updated along the written keys' paths, and a pair's proof is its siblings |
//! | `queue`        | first sequence BE | a chunk: up to 1,024 consecutive entries, each opaque bytes (`queue.rs`) | CDRs this node accepted but that are not yet in a block: survives restarts. In chunks, not one entry per CDR: a tenth of the dev node's CPU went to per-entry memtable, flush and scan work |
//! | `wal`          | opaque | opaque | consensus write-ahead log: what this validator voted for (no double signing after a crash) |
//! | `ingest_keys`  | 32-byte digest of a record's source identity | sequence BE | this node's ingested records by their identity in the source switch: a re-submitted record gets its first sequence back instead of a second one. Mirrored by an in-memory filter (`filter.rs`, loaded by [`Storage::load_ingest_filter`]), so that a new record's key is found absent without reading the column |
//!
//! RocksDB options are chosen per column family in `options.rs` (compression, memtable sizes,
//! bloom filters, a shared block cache, a bounded number of open files); each choice says why.

//!
//! # Modules
//!
//! `impl Storage` is split by concern, one file each; every file below names the column
//! families it writes.
//!
//! | File | Concern |
//! |------|---------|
//! | `schema.rs` | [`Storage::open`]: create and initialize, or check schema version and genesis, load the head, frontier and queue numbers |
//! | `blocks.rs` | the block write path ([`Storage::commit_block`]) and block reads (`headers`, `bodies`, `certificates`, `hash_index`) |
//! | `cdrs.rs` | CDR queries: by id, by call id, by partner pair and time window with paging |
//! | `parties.rs` | CDRs by party, newest first with paging; the index written behind the head, step by step |
//! | `ingest_queue.rs` | the node's durable ingest queue (enqueue, visit, dequeue) and its in-memory numbers |
//! | `ingest_keys.rs` | ingest-key idempotency and its in-memory filter |
//! | `displaced.rs` | dequeue by content: own queued CDRs a block replaced go back to the queue's end (review M10) |
//! | `view.rs` | the state and log views ([`StateView`], [`NodeStore`]), [`StorageSnapshot`], derived log levels |
//! | `wal.rs` | the consensus WAL, the node's metadata, flush and size on disk |
//! | `layout.rs`, `queue.rs`, `filter.rs`, `options.rs` | key encodings, the queue's chunk codec, the ingest-key filter, RocksDB options |

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cdrchain_runtime::apply::ParentRef;
use cdrchain_runtime::block::Header;
use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::merkle::Frontier;
#[cfg(doc)]
use cdrchain_runtime::merkle::NodeStore;
#[cfg(doc)]
use cdrchain_runtime::state::StateView;
use cdrchain_runtime::Hash32;
use parity_scale_codec::{Decode, Encode};
use rocksdb::{ColumnFamily, DB};

mod blocks;
mod cdrs;
mod displaced;
mod error;
mod filter;
mod health;
mod ingest_keys;
mod ingest_queue;
pub mod layout;
mod options;
mod parties;
mod queue;
mod schema;
mod view;
mod wal;

pub use cdrs::{MAX_PAGE, MAX_PAGE_CDRS};
pub use displaced::Requeued;
pub use error::StorageError;
use filter::KeyFilter;
use ingest_queue::QueueState;
pub use parties::{MAX_PARTY_PAGE_CDRS, MAX_PARTY_SCAN_ENTRIES};
pub use queue::{QueueRun, CHUNK_BYTES, CHUNK_ITEMS};
use view::Reader;
pub use view::StorageSnapshot;

/// The version of the layout described in the crate docs. A database written with another
/// version is refused at open. 3: `bodies` keeps CDR batches without their CDRs (issue #7).
/// 4: the queue in chunks. 5: CDRs carry the as-written party flags (issue #25), a new CDR
/// format, so a database of 4 or older holds a chain this build cannot continue. 6: the state
/// root over a sparse Merkle tree whose nodes are stored (`state_tree`, ADR 0016). 7: CDRs carry
/// the callee's destination (issue #28), a new CDR format. 8: the `parties` index (issue #29);
/// a database of 7 is upgraded at open (its index then built behind the head, from block 1).
pub const SCHEMA_VERSION: u32 = 8;

/// A committed CDR with where it was committed: its block and its leaf in the CDR log.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredCdr {
    /// The CDR as its recorder signed it.
    pub cdr: Cdr,
    /// The block that committed it.
    pub height: Height,
    /// Its leaf in the CDR Merkle log, for inclusion proofs.
    pub leaf_index: u64,
}

/// The head: the best block, which is also the finalized one (the chain has instant finality).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The head block's header.
    pub header: Header,
    /// `header.hash()`, computed once.
    pub hash: Hash32,
}

/// What is cached in memory from the metadata: changed only after a commit's batch is written.
#[derive(Clone, Debug)]
struct Cached {
    /// The head; `None` before block 1.
    head: Option<Head>,
    /// The CDR log's frontier at the head.
    frontier: Frontier,
}

/// The node's database. See the crate docs for the layout and guarantees.
///
/// Thread-safe: reads run concurrently; commits are serialized; the queue has its own lock.
pub struct Storage {
    /// The RocksDB handle, opened with every column family of [`layout::COLUMNS`].
    db: DB,
    /// The database directory, named in every error.
    path: PathBuf,
    /// The chain the database belongs to: checked at open, and the parent of block 1.
    genesis_hash: Hash32,
    /// The head and log frontier, so that reads of them need no database lookup; replaced under
    /// its write lock together with each commit's write (read-your-writes).
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
    /// Set once [`Storage::load_ingest_filter`] has loaded the stored keys: from then on the
    /// filter's "absent" is trusted.
    ingest_filter_ready: AtomicBool,
    /// The schema version [`Storage::open`] upgraded the database from, if it did.
    upgraded: Option<u32>,
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

/// Decodes a stored value as exactly one `T`, or names the entry as corrupt.
fn decode<T: Decode>(column: &'static str, key: &[u8], bytes: &[u8]) -> Result<T, StorageError> {
    decode_exact(bytes)
        .map_err(|e| StorageError::corrupt(column, key, format!("{} bytes do not decode: {e}", bytes.len())))
}

impl Storage {
    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the open upgraded the database from (7: the party index is then built
    /// from block 1 behind the head), if it did; the node logs it.
    pub fn upgraded_at_open(&self) -> Option<u32> {
        self.upgraded
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
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn undecodable_values_are_corrupt_not_panics() {
        let error = decode::<Header>(layout::HEADERS, &[0, 1], &[1, 2, 3]).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StorageError::Corrupt { column: "headers", .. }), "{error:?}");
        assert!(text.contains("0001") && text.contains("headers"), "{text}");
    }
}
