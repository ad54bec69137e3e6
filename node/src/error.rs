//! The node's error type.

use std::path::PathBuf;

use cdrchain_network::NetworkError;
use cdrchain_runtime::apply::ApplyError;
use cdrchain_runtime::block::CertificateError;
use cdrchain_storage::StorageError;

use crate::config::LimitError;
use crate::ingest::StartError;

/// What went wrong in the node, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("block {height} is invalid: {source}")]
    InvalidBlock { height: u64, source: ApplyError },
    #[error("block {height} has no valid commit certificate: {source}")]
    BadCertificate { height: u64, source: CertificateError },
    /// The operator's configuration (chain spec, keys, flags) does not work.
    #[error("configuration: {0}")]
    Config(String),
    /// Configured limits that contradict each other or the chain's (see
    /// [`crate::config::check_limits`]).
    #[error("configuration: {0}")]
    Limits(#[from] LimitError),
    /// The database directory cannot be created.
    #[error("cannot create the database directory {}: {source}", path.display())]
    DatabaseDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something the node stored does not decode: the database is damaged.
    #[error(
        "{what} does not decode ({source}); the database is damaged — restore it or purge the chain \
         and sync again"
    )]
    Corrupt {
        /// What was read, e.g. "the consensus WAL record".
        what: &'static str,
        #[source]
        source: parity_scale_codec::Error,
    },
    /// The p2p network did not start.
    #[error("cannot start the p2p network: {0}")]
    Network(#[source] NetworkError),
    /// Ingest did not start.
    #[error("ingest cannot start: {0}")]
    Ingest(#[from] StartError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    /// The validator's signing state file (its double-sign guard outside the database) cannot
    /// be read or written: the validator must not sign without it.
    #[error("signing state {}: {reason}", path.display())]
    SigningState { path: PathBuf, reason: String },
    #[error("a node task failed: {0}")]
    Task(String),
    /// The authority set cannot be read from the state.
    #[error("the authority set: {0}")]
    AuthoritySet(#[from] cdrchain_runtime::governance::SetError),
}
