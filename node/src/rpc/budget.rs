//! The in-flight ingest budget (review M5): the bytes of large submissions being read, parsed
//! and validated at once are bounded, so fifty switches re-sending 64 MiB each after an outage
//! are told to come back (503, `Retry-After: 1`) instead of parsing gigabytes side by side until
//! the validator is killed for memory. A submission costs several times its size while parsed,
//! so the budget is two of the largest ones. Small requests (under [`MAX_READ_REQUEST_BYTES`])
//! are not counted: the connection limit bounds them.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::MAX_READ_REQUEST_BYTES;
use crate::ingest::MAX_SUBMISSION_BYTES;

/// Bytes of large submissions in flight at once.
pub const MAX_INGEST_IN_FLIGHT_BYTES: usize = 2 * MAX_SUBMISSION_BYTES;
const _: () = assert!(
    MAX_INGEST_IN_FLIGHT_BYTES >= MAX_SUBMISSION_BYTES,
    "the largest submission must fit the budget, or it is refused forever"
);
const _: () = assert!(MAX_INGEST_IN_FLIGHT_BYTES <= u32::MAX as usize, "permits are counted in u32");

/// What the front reserves before it reads a large request.
#[derive(Clone, Debug)]
pub(super) struct IngestBudget {
    bytes: Arc<Semaphore>,
}

impl Default for IngestBudget {
    fn default() -> Self {
        IngestBudget { bytes: Arc::new(Semaphore::new(MAX_INGEST_IN_FLIGHT_BYTES)) }
    }
}

/// A request that may not be read now: the budget is spent.
#[derive(Debug)]
pub(super) struct Spent {
    pub(super) wanted: usize,
}

impl Spent {
    pub(super) fn message(&self) -> String {
        format!(
            "the node is processing as many large submissions as it takes at once ({} MiB): this one \
             ({} bytes) was not read; send it again shortly",
            MAX_INGEST_IN_FLIGHT_BYTES / (1024 * 1024),
            self.wanted
        )
    }
}

impl IngestBudget {
    /// Reserves the bytes of a request declaring `content_length` (none: chunked, counted as the
    /// largest submission) for as long as the permit lives; `Ok(None)` for a small request.
    pub(super) fn reserve(
        &self,
        content_length: Option<usize>,
    ) -> Result<Option<OwnedSemaphorePermit>, Spent> {
        let wanted = content_length.unwrap_or(MAX_SUBMISSION_BYTES).min(MAX_SUBMISSION_BYTES);
        if wanted <= MAX_READ_REQUEST_BYTES {
            return Ok(None);
        }
        let permits = u32::try_from(wanted).map_err(|_| Spent { wanted })?;
        self.bytes.clone().try_acquire_many_owned(permits).map(Some).map_err(|_| Spent { wanted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_requests_share_the_budget_and_small_ones_pass() {
        let budget = IngestBudget::default();
        assert!(budget.reserve(Some(1_000)).expect("small").is_none());
        let first = budget.reserve(Some(MAX_SUBMISSION_BYTES)).expect("fits").expect("counted");
        let second = budget.reserve(None).expect("fits").expect("counted");
        assert!(budget.reserve(Some(2 * MAX_READ_REQUEST_BYTES)).is_err(), "the budget is spent");
        assert!(budget.reserve(Some(1_000)).expect("small").is_none(), "small requests still pass");
        drop(first);
        assert!(budget.reserve(Some(2 * MAX_READ_REQUEST_BYTES)).is_ok(), "freed with the request");
        drop(second);
    }
}
