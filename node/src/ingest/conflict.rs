//! Idempotency collisions (review M7). A CDR whose ingest key (its source identity) was given
//! to a record with different content is not a re-submission: two Asterisk servers that share a
//! `system_id`, or a corrected re-export. It used to be answered "duplicate" and dropped; its
//! whole submission is now refused with [`IngestError::Conflict`] (HTTP 409), naming both
//! records, and nothing of it is stored. Only CDRs whose key was seen before are compared, so
//! new CDRs cost nothing here.

use cdrchain_runtime::ids::{OperatorId, Sequence};
use cdrchain_storage::{Storage, StorageError};
use parity_scale_codec::Encode;

use super::writer::Earlier;
use super::{IngestError, Keyed};

/// Per submission with a collision, its index in the group and the first collision found.
pub(super) fn find_conflicts(
    storage: &Storage,
    operator: &OperatorId,
    submissions: &[Vec<Keyed>],
    earlier: &[Earlier],
) -> Result<Vec<(usize, IngestError)>, StorageError> {
    // Nearly every group holds only new CDRs: nothing to compare, nothing to build.
    if earlier.iter().all(|found| matches!(found, Earlier::New)) {
        return Ok(Vec::new());
    }
    // Each position of the group: (submission, index in it, the CDR).
    let flat: Vec<(usize, usize, &Keyed)> = submissions
        .iter()
        .enumerate()
        .flat_map(|(s, cdrs)| cdrs.iter().enumerate().map(move |(j, cdr)| (s, j, cdr)))
        .collect();
    let mut conflicts: Vec<(usize, IngestError)> = Vec::new();
    for (i, found) in earlier.iter().enumerate() {
        let (s, index, cdr) = flat[i];
        if conflicts.iter().any(|(refused, _)| *refused == s) {
            continue;
        }
        let existing = match *found {
            Earlier::New => continue,
            Earlier::Stored(sequence) => match stored_encoding(storage, operator, sequence)? {
                Some(stored) if stored != cdr.body.encode() => format!("{operator}:{}", sequence.0),
                // The same record sent again, or (never seen) a key whose record is gone.
                _ => continue,
            },
            Earlier::Repeats(first) => {
                let (first_submission, first_index, first_cdr) = flat[first];
                if first_cdr.body == cdr.body {
                    continue;
                }
                if first_submission == s {
                    format!("CDR {first_index} of the same submission")
                } else {
                    "a CDR of another submission received at the same moment".to_owned()
                }
            }
        };
        conflicts.push((s, IngestError::Conflict { index, existing }));
    }
    Ok(conflicts)
}

/// The encoded body of this operator's CDR `sequence`: committed, else still queued.
pub(super) fn stored_encoding(
    storage: &Storage,
    operator: &OperatorId,
    sequence: Sequence,
) -> Result<Option<Vec<u8>>, StorageError> {
    if let Some(stored) = storage.cdr(operator, sequence)? {
        return Ok(Some(stored.cdr.body.encode()));
    }
    if let Some((queued, bytes)) = storage.queued(sequence, 1)?.into_iter().next() {
        if queued == sequence {
            return Ok(Some(bytes));
        }
    }
    // Committed (and dequeued) between the two reads.
    Ok(storage.cdr(operator, sequence)?.map(|stored| stored.cdr.body.encode()))
}
