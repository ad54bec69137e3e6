//! The JSON-RPC middleware that holds every call to [`access::METHODS`]: a call whose grant
//! (put on the request by the HTTP front, from its bearer token) does not meet the method's need
//! is answered -32001 without reaching the method, alone or inside a batch.

use jsonrpsee::core::middleware::{Batch, BatchEntry, BatchEntryErr, Notification};
use jsonrpsee::server::middleware::rpc::RpcServiceT;
use jsonrpsee::types::{ErrorObjectOwned, Request};
use jsonrpsee::{Extensions, MethodResponse};

use super::access::{need_of, Grant, Need};
use super::{INVALID_PARAMS, MAX_READ_REQUEST_BYTES, UNAUTHORIZED};

/// The bytes of a call's parameters.
fn size(params: &Option<std::borrow::Cow<'_, serde_json::value::RawValue>>) -> usize {
    params.as_ref().map_or(0, |params| params.get().len())
}

/// Wraps the JSON-RPC service.
#[derive(Clone, Debug)]
pub(super) struct MethodGuard<S> {
    pub(super) inner: S,
}

/// Why `method` is refused to the request with `extensions`, if it is: a grant short of its
/// need, or parameters larger than a method that is not an ingest method takes.
fn refusal(method: &str, params: usize, extensions: &Extensions) -> Option<ErrorObjectOwned> {
    let need = need_of(method);
    if need != Need::Ingest && params > MAX_READ_REQUEST_BYTES {
        let why = format!("the parameters of `{method}` are {params} bytes, more than its limit of {MAX_READ_REQUEST_BYTES}");
        return Some(ErrorObjectOwned::owned(INVALID_PARAMS, why, None::<()>));
    }
    // No grant on the request: it did not come through the HTTP front (never in the node).
    let nothing = Grant::nothing(false);
    let grant = extensions.get::<Grant>().unwrap_or(&nothing);
    (!grant.allows(need)).then(|| {
        // Debug level: an outsider's requests must not flood the log.
        tracing::debug!(target: "cdrchain::rpc", method, token_presented = grant.presented, "call refused: needs {}", need.who());
        ErrorObjectOwned::owned(UNAUTHORIZED, grant.refusal(&format!("`{method}`"), need), None::<()>)
    })
}

impl<S> RpcServiceT for MethodGuard<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            NotificationResponse = MethodResponse,
            BatchResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let refused = refusal(request.method_name(), size(&request.params), request.extensions());
        let inner = self.inner.clone();
        async move {
            match refused {
                Some(error) => MethodResponse::error(request.id().into_owned(), error),
                None => inner.call(request).await,
            }
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        // Each call of a batch carries the HTTP request's extensions, its grant among them.
        let entries = batch
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(BatchEntry::Call(request)) => {
                    Some(match refusal(request.method_name(), size(&request.params), request.extensions()) {
                        Some(error) => Err(BatchEntryErr::new(request.id().into_owned(), error)),
                        None => Ok(BatchEntry::Call(request)),
                    })
                }
                // A refused notification is dropped: notifications get no answer.
                Ok(BatchEntry::Notification(notification)) => {
                    refusal(notification.method_name(), size(&notification.params), notification.extensions())
                        .is_none()
                        .then_some(Ok(BatchEntry::Notification(notification)))
                }
                Err(error) => Some(Err(error)),
            })
            .collect();
        self.inner.batch(Batch::from(entries))
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let refused =
            refusal(notification.method_name(), size(&notification.params), notification.extensions())
                .is_some();
        let inner = self.inner.clone();
        async move {
            if refused {
                MethodResponse::notification()
            } else {
                inner.notification(notification).await
            }
        }
    }
}
