//! Heavy reads (review H1): whole blocks, pages of up to 10,000 CDRs, proofs, settlements and
//! checks of up to 100,000 CDRs run on the blocking pool (`blocking` methods), never on the two
//! async workers that every connection shares, and at most [`MAX_CONCURRENT_HEAVY_READS`] at once:
//! the others wait their turn, up to [`HEAVY_READ_WAIT_S`], then are told to retry (-32005).

use std::time::Duration;

use jsonrpsee::core::RpcResult;
use tokio::sync::Semaphore;

use super::{error, BUSY};

/// Heavy reads running at once.
pub const MAX_CONCURRENT_HEAVY_READS: usize = 4;
/// How long a heavy read waits for its turn before it is refused.
pub const HEAVY_READ_WAIT_S: u64 = 10;

/// The turns of heavy reads.
#[derive(Debug)]
pub struct HeavyReads {
    turns: Semaphore,
    wait: Duration,
}

impl Default for HeavyReads {
    fn default() -> Self {
        HeavyReads {
            turns: Semaphore::new(MAX_CONCURRENT_HEAVY_READS),
            wait: Duration::from_secs(HEAVY_READ_WAIT_S),
        }
    }
}

impl HeavyReads {
    /// Runs `read` in its turn. Called from a `blocking` method (a thread of the blocking pool).
    pub(super) fn run<T>(&self, what: &str, read: impl FnOnce() -> RpcResult<T>) -> RpcResult<T> {
        let turn =
            tokio::runtime::Handle::current().block_on(tokio::time::timeout(self.wait, self.turns.acquire()));
        let _permit = match turn {
            Ok(Ok(permit)) => permit,
            _ => {
                return Err(error(
                    BUSY,
                    format!(
                        "`{what}` waited {:.1} s behind {MAX_CONCURRENT_HEAVY_READS} heavy reads: ask again shortly",
                        self.wait.as_secs_f32()
                    ),
                    None,
                ))
            }
        };
        read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_heavy_read_waits_its_turn_then_is_told_to_retry() {
        let heavy =
            std::sync::Arc::new(HeavyReads { wait: Duration::from_millis(200), ..HeavyReads::default() });
        let taken = heavy.turns.acquire_many(MAX_CONCURRENT_HEAVY_READS as u32).await.expect("open");
        let waiting = heavy.clone();
        let refused =
            tokio::task::spawn_blocking(move || waiting.run("cdr_query", || Ok(1))).await.expect("joined");
        let error = refused.expect_err("no turn was free");
        assert_eq!(error.code(), BUSY);
        assert!(error.message().contains("cdr_query"), "{}", error.message());
        drop(taken);
        let ran = heavy.clone();
        let answer =
            tokio::task::spawn_blocking(move || ran.run("cdr_query", || Ok(1))).await.expect("joined");
        assert_eq!(answer.expect("a free turn"), 1);
    }
}
