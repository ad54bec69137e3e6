//! Stage 1 of ingest: a submission body in, validated CDRs with their ingest keys out.
//!
//! [`parse_documents`] reads a JSON array, one JSON object, or NDJSON; [`validate`] turns every
//! CDR into its canonical body ([`CdrInput::to_body`]) before any is accepted. A submission is
//! all or nothing, and an error names the CDR (index, NDJSON line) and the field. Nothing here
//! touches storage: the writer ([`super::writer`]) is the first stage with IO.

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::ids::CdrId;
use cdrchain_runtime::input::{CdrInput, InputError};
use cdrchain_runtime::numbering::NumberRules;
use cdrchain_runtime::party::PartyHasher;

pub use cdrchain_formats::canonical::estimated_records;
use cdrchain_formats::canonical::{self, DocumentError};

/// Why a submission was refused. Nothing of a refused submission is stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("CDR {index}{}: {error}", line_suffix(*.line))]
    Invalid { index: usize, line: Option<usize>, error: InputError },
    #[error("malformed submission{}: {reason}", line_suffix(*.line))]
    Malformed { line: Option<usize>, reason: String },
    #[error("{count} CDRs in one submission, more than the limit of {max}")]
    TooMany { count: usize, max: usize },
    #[error("the submission is empty")]
    Empty,
    #[error("CDRs were not stored: {0}")]
    Unavailable(String),
    #[error(
        "CDRs were not stored: {queued} CDRs acknowledged here wait for the chain (limit {max}, \
         --max-queue); send them again in {retry_after_s} s"
    )]
    Busy { queued: u64, max: u64, retry_after_s: u64 },
    #[error(
        "CDRs were not stored: {queued} CDRs acknowledged here wait for the chain, which commits \
         about {rate_per_s} of them per second: more would not be committed within {max_wait_s} s \
         (--max-queue-wait); send them again in {retry_after_s} s"
    )]
    Slow { queued: u64, rate_per_s: u64, max_wait_s: f64, retry_after_s: u64 },
    #[error(
        "CDRs were not stored: the disk of this node's database has {free_mib} MiB free, less \
         than the {reserve_mib} MiB kept for committing what it acknowledged (--min-free-disk); \
         send them again once the operator has freed space"
    )]
    DiskFull { free_mib: u64, reserve_mib: u64 },
    #[error(
        "this node has no consortium secret, so it cannot hash parties the way the other operators do: \
         ingest is off (start it with --consortium-secret-file or CDRCHAIN_CONSORTIUM_SECRET_FILE)"
    )]
    NoSecret,
    #[error(
        "CDR {index} has the source identity (system_id with source_id, or call_id and leg) of \
         {existing}, but different content: not stored. Give each switch its own system_id, or a \
         corrected record its own source_id"
    )]
    Conflict { index: usize, existing: String },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl IngestError {
    /// Whether the client may retry the same submission (the node, not the data, failed).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            IngestError::Unavailable(_)
                | IngestError::NoSecret
                | IngestError::Busy { .. }
                | IngestError::Slow { .. }
                | IngestError::DiskFull { .. }
        )
    }

    /// For a refusal because the chain is behind (the queue's count or time limit): in how many
    /// seconds to send again.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            IngestError::Busy { retry_after_s, .. } | IngestError::Slow { retry_after_s, .. } => {
                Some(*retry_after_s)
            }
            IngestError::DiskFull { .. } => Some(super::admission::MAX_RETRY_AFTER_S),
            _ => None,
        }
    }

    /// The offending field, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            IngestError::Invalid { error, .. } => error.field(),
            _ => None,
        }
    }
}

/// Reads a submission body: a JSON array of CDR objects, a single object, or NDJSON
/// ([`cdrchain_formats::canonical::parse_documents`]).
pub fn parse_documents(body: &[u8]) -> Result<Vec<(CdrInput, Option<usize>)>, IngestError> {
    Ok(canonical::parse_documents(body)?)
}

fn check_count(count: usize) -> Result<(), IngestError> {
    Ok(canonical::check_count(count)?)
}

impl From<DocumentError> for IngestError {
    fn from(error: DocumentError) -> IngestError {
        match error {
            DocumentError::Invalid { index, line, error } => IngestError::Invalid { index, line, error },
            DocumentError::Malformed { line, reason } => IngestError::Malformed { line, reason },
            DocumentError::TooMany { count, max } => IngestError::TooMany { count, max },
            DocumentError::Empty => IngestError::Empty,
        }
    }
}

/// A validated CDR with its ingest key.
#[derive(Clone, Debug)]
pub struct Keyed {
    /// The canonical body, as it will be queued and batched.
    pub body: CdrBody,
    /// Its ingest key ([`ingest_key`]): how a re-submission of the same record is recognised.
    pub key: [u8; 32],
}

/// The ingest key of a canonical input: from the digest of [`CdrInput::source_key`] that its
/// CDR carries on the chain (so a restored node rebuilds it from the blocks).
pub fn ingest_key(input: &CdrInput) -> [u8; 32] {
    cdrchain_runtime::source::SourceDigest::of_key(&input.source_key()).ingest_key()
}

/// Validates every CDR of a submission; the first bad one refuses the whole submission.
pub fn validate(
    inputs: &[(CdrInput, Option<usize>)],
    parties: &PartyHasher,
    rules: &NumberRules,
) -> Result<Vec<Keyed>, IngestError> {
    if inputs.is_empty() {
        return Err(IngestError::Empty);
    }
    check_count(inputs.len())?;
    // A loop, not `collect`: a collect of `Result`s cannot size its vector up front.
    let mut cdrs = Vec::with_capacity(inputs.len());
    for (index, (input, line)) in inputs.iter().enumerate() {
        let body = input
            .to_body_with(parties, rules.for_source(input.source_system()))
            .map_err(|error| IngestError::Invalid { index, line: *line, error })?;
        cdrs.push(Keyed { key: body.source.ingest_key(), body });
    }
    Ok(cdrs)
}

/// Where a submitted CDR went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub id: CdrId,
    /// The record had been ingested before: `id` is its first id, and nothing was queued.
    pub duplicate: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn records_are_estimated_by_lines() {
        assert_eq!(estimated_records(b""), 1);
        assert_eq!(estimated_records(b"{}"), 1);
        assert_eq!(estimated_records(b"{}\n"), 1);
        assert_eq!(estimated_records(b"{}\n{}\n{}"), 3);
        assert_eq!(estimated_records(b"{}\n{}\n{}\n"), 3);
        assert_eq!(estimated_records(b"[{}, {}]"), 1);
    }
}
