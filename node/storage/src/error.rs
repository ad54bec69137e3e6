//! [`StorageError`]: every way storage can fail, each with the context needed to act on it (the
//! database path, the column family, the key in hex, the block height).

use std::path::PathBuf;

use cdrchain_runtime::ids::{Height, Sequence};
use cdrchain_runtime::Hash32;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB could not open (or create) the database: missing permissions, another process
    /// holding its lock, a damaged manifest.
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },

    /// RocksDB found the database damaged when opening it (a truncated or corrupted SST file, a
    /// write-ahead log corrupted before its tail, a damaged manifest), or the check of the table
    /// files found one that is not whole ([`crate::Storage::open`]).
    #[error(
        "the database at {path} is damaged: {detail}. The node does not start on a damaged \
         database (it cannot know what was lost). To repair it: stop the node, move {path} aside \
         (keep it for diagnosis) or run `cdrchain purge-chain`, and start the node again: it \
         syncs the chain from its peers, and its signing state, kept apart from the database, \
         keeps it from signing anything that contradicts what it signed before \
         (docs/reliability.md)"
    )]
    Damaged { path: PathBuf, detail: String },

    /// The database was created for another chain.
    #[error(
        "the database at {path} belongs to another chain: expected genesis hash {expected}, found \
         {found}; use the data directory of this chain or another directory"
    )]
    WrongGenesis { path: PathBuf, expected: Hash32, found: Hash32 },

    /// The database was written by a build with another storage layout.
    #[error(
        "the database at {path} has storage schema version {found}, this build reads version \
         {expected}; it cannot be opened by this build (a database of version 6 or older holds a \
         chain in an older format (CDRs or state root), version 7 is upgraded at open: keep the \
         build that wrote it, or start a new chain)"
    )]
    WrongSchema { path: PathBuf, expected: u32, found: u32 },

    /// A RocksDB read or write failed (I/O error, corruption detected by RocksDB's checksums).
    #[error("RocksDB {operation} on column family `{column}` of the database at {path} failed: {source}")]
    Db {
        path: PathBuf,
        column: &'static str,
        operation: &'static str,
        #[source]
        source: rocksdb::Error,
    },

    /// A stored value (or key) does not decode, or contradicts its key or another column.
    #[error("corrupt entry in column family `{column}` under key {key}: {reason}")]
    Corrupt { column: &'static str, key: String, reason: String },

    /// `commit_block` was given a block that does not extend the head.
    #[error(
        "block {number} (parent {parent_hash}) is not the next block: the head is at height {head} \
         ({head_hash}), so the next block must be {expected} with parent {head_hash}"
    )]
    NotNext { number: Height, parent_hash: Hash32, expected: Height, head: Height, head_hash: Hash32 },

    /// `commit_block` was given a certificate of another block.
    #[error(
        "the certificate is for block {certificate_hash} at height {certificate_height}, but block \
         {height} hashes to {block_hash}"
    )]
    CertificateMismatch {
        height: Height,
        block_hash: Hash32,
        certificate_height: Height,
        certificate_hash: Hash32,
    },

    /// `commit_block` was given `StateChanges` that do not belong to the block or the head.
    #[error("the state changes given for block {height} do not fit: {reason}")]
    ChangesMismatch { height: Height, reason: String },

    /// The ingest queue only grows at its end.
    #[error(
        "cannot queue {count} entries from sequence {first}: the ingest queue takes new entries from \
         sequence {next} up (it only grows at its end)"
    )]
    QueueOrder { first: Sequence, count: u64, next: Sequence },

    /// A pagination cursor that this storage did not hand out (or for another window).
    #[error("invalid cursor `{cursor}`: {reason}")]
    BadCursor { cursor: String, reason: String },

    /// A column family this build needs is absent although `open` creates them all.
    #[error("the database at {path} has no column family `{column}`")]
    MissingColumn { path: PathBuf, column: &'static str },
}

impl StorageError {
    /// A corrupt entry, the key printed in hex.
    pub(crate) fn corrupt(column: &'static str, key: &[u8], reason: impl Into<String>) -> Self {
        StorageError::Corrupt { column, key: hex::encode(key), reason: reason.into() }
    }
}
