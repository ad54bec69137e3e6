//! A request body that must arrive whole before a deadline (review H1, slowloris): hyper reads
//! JSON-RPC bodies with no timeout of its own, so a client that sends headers and then a byte now
//! and then held a connection slot for good. The deadline is total, not per frame: a trickle
//! does not renew it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use jsonrpsee::core::BoxError;
use tokio::time::Sleep;

/// `body`, failing once `deadline` has passed since the request's headers were read.
pub(super) struct Deadline<B> {
    body: Pin<Box<B>>,
    expires: Pin<Box<Sleep>>,
    deadline: Duration,
}

impl<B> Deadline<B> {
    pub(super) fn new(body: B, deadline: Duration) -> Self {
        Self { body: Box::pin(body), expires: Box::pin(tokio::time::sleep(deadline)), deadline }
    }
}

/// The body did not arrive within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub(super) struct BodyTooSlow(Duration);

impl<B> Body for Deadline<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = self.get_mut();
        if this.expires.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTooSlow(this.deadline)))));
        }
        this.body.as_mut().poll_frame(cx).map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// A body that never sends.
    struct Never;

    impl Body for Never {
        type Data = hyper::body::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
            Poll::Pending
        }
    }

    /// The wrapper fails at its deadline.
    #[tokio::test]
    async fn a_body_that_never_arrives_fails_at_its_deadline() {
        let started = std::time::Instant::now();
        let result = Deadline::new(Never, Duration::from_millis(300)).collect().await;
        assert!(result.is_err());
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
