//! The node's error type.

use cdrchain_runtime::apply::ApplyError;
use cdrchain_runtime::block::CertificateError;
use cdrchain_storage::StorageError;

/// What went wrong in the node, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("block {height} is invalid: {source}")]
    InvalidBlock { height: u64, source: ApplyError },
    #[error("block {height} has no valid commit certificate: {source}")]
    BadCertificate { height: u64, source: CertificateError },
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("a node task failed: {0}")]
    Task(String),
}
