//! The HTTP middleware in front of JSON-RPC: reads the bearer token into the request's
//! [`Grant`] (which `method_guard` holds every JSON-RPC call to), and serves `POST /ingest/…`
//! itself (see the module docs of [`super`] for the answers).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cdrchain_formats::{FormatError, Outcome};
use cdrchain_runtime::input::CdrInput;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::StatusCode;
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tower::{Layer, Service};

use super::access::{Grant, Need, ROUTES};
use super::budget::{IngestBudget, Spent};
use super::{RpcContext, INGEST_BODY_TIMEOUT_S, MAX_READ_REQUEST_BYTES};
use crate::ingest::{self, IngestError};

/// Puts [`Front`] in front of the JSON-RPC service.
#[derive(Clone, Debug)]
pub(super) struct FrontLayer {
    /// Whom ingest hands the CDRs to, and the token to check.
    ctx: Arc<RpcContext>,
    /// Whether the server listens on a loopback address without a token (see
    /// [`super::browser`]).
    loopback: bool,
    /// The bytes of large submissions in flight (see `budget`).
    budget: IngestBudget,
}

impl FrontLayer {
    pub(super) fn new(ctx: Arc<RpcContext>, loopback: bool) -> Self {
        Self { ctx, loopback, budget: IngestBudget::default() }
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Front { inner, ctx: self.ctx.clone(), loopback: self.loopback, budget: self.budget.clone() }
    }
}

/// Refuses other sites' pages ([`super::browser`]), checks the bearer token, and serves
/// `/ingest/…`; passes everything else to `inner`.
#[derive(Clone, Debug)]
pub(super) struct Front<S> {
    /// The JSON-RPC service.
    inner: S,
    /// Whom ingest hands the CDRs to, and the token to check.
    ctx: Arc<RpcContext>,
    /// Whether the server listens on a loopback address without a token.
    loopback: bool,
    /// The bytes of large submissions in flight.
    budget: IngestBudget,
}

impl<S, B> Service<HttpRequest<B>> for Front<S>
where
    S: Service<HttpRequest, Response = HttpResponse> + Send + Clone + 'static,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: HttpRequest<B>) -> Self::Future {
        if let Some(why) = super::browser::refusal(self.loopback, request.headers()) {
            tracing::debug!(target: "cdrchain::rpc", path = %request.uri().path(), "{why}");
            return Box::pin(
                async move { Ok(json_response(StatusCode::FORBIDDEN, &json!({ "error": why }))) },
            );
        }
        // The portal's files hold no data: served to anyone who reaches the port (the page asks
        // for a token before it reads anything).
        if super::portal::is_portal(request.method(), request.uri().path()) {
            let response = super::portal::serve(request.uri().path());
            return Box::pin(async move { Ok(response) });
        }
        let authorization = request.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let grant = self.ctx.tokens.grant(authorization);
        let declared = request
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let ingest_route = request.uri().path().starts_with("/ingest/");
        // Only callers that may submit CDRs send large JSON-RPC requests (review H1).
        let limit =
            if grant.allows(Need::Ingest) { ingest::MAX_SUBMISSION_BYTES } else { MAX_READ_REQUEST_BYTES };
        if !ingest_route {
            if let Some(length) = declared.filter(|length| *length > limit) {
                let why = format!(
                    "a request of {length} bytes, more than the {limit} this caller may send (only the ingest role sends more)"
                );
                return Box::pin(async move {
                    Ok(json_response(StatusCode::PAYLOAD_TOO_LARGE, &json!({ "error": why })))
                });
            }
        }
        // A large request from a caller that may ingest is read only within the budget (its
        // permit lives as long as the answer takes), else answered 503 unread. Others spend none:
        // they are refused, or small.
        let permit = match grant.allows(Need::Ingest).then(|| self.budget.reserve(declared)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(permit))) => Some(permit),
            Some(Err(spent)) => return Box::pin(async move { Ok(busy_response(&spent)) }),
        };
        if !ingest_route {
            request.extensions_mut().insert(grant);
            // A small body (declared, or all this caller may send) has the short deadline.
            let small =
                limit <= MAX_READ_REQUEST_BYTES || declared.is_some_and(|l| l <= MAX_READ_REQUEST_BYTES);
            let deadline = std::time::Duration::from_secs(if small {
                super::READ_BODY_TIMEOUT_S
            } else {
                INGEST_BODY_TIMEOUT_S
            });
            let future = self.inner.call(request.map(|body| {
                HttpBody::new(super::deadline::Deadline::new(
                    http_body_util::Limited::new(body, limit),
                    deadline,
                ))
            }));
            return Box::pin(async move {
                let _permit = permit;
                future.await.map_err(Into::into)
            });
        }
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let _permit = permit;
            Ok(serve_ingest(&ctx, &grant, request).await)
        })
    }
}

/// One `/ingest/…` request: POST only, with a token of the `ingest` role when the node has
/// tokens, a body within [`ingest::MAX_SUBMISSION_BYTES`], to one of the three endpoints.
async fn serve_ingest<B>(ctx: &RpcContext, grant: &Grant, request: HttpRequest<B>) -> HttpResponse
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if request.method() != hyper::Method::POST {
        return json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "use POST"}));
    }
    let path = request.uri().path().to_string();
    let need = ROUTES.iter().find(|(route, _)| *route == path).map_or(Need::Ingest, |(_, need)| *need);
    if !grant.allows(need) {
        let status = if grant.presented { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
        tracing::debug!(target: "cdrchain::rpc", path, token_presented = grant.presented, "ingest refused: needs {}", need.who());
        return json_response(status, &json!({"error": grant.refusal(&format!("POST {path}"), need)}));
    }
    let limited = http_body_util::Limited::new(request.into_body(), ingest::MAX_SUBMISSION_BYTES);
    let timeout = std::time::Duration::from_secs(INGEST_BODY_TIMEOUT_S);
    let body = match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": format!("could not read the body (limit {} bytes): {e}", ingest::MAX_SUBMISSION_BYTES)}),
            )
        }
        Err(_) => {
            return json_response(
                StatusCode::REQUEST_TIMEOUT,
                &json!({"error": format!("the body did not arrive within {INGEST_BODY_TIMEOUT_S} s")}),
            )
        }
    };
    let adapter_context = || cdrchain_formats::Context::new(ctx.ingest.operator().to_string());
    match path.as_str() {
        "/ingest/cdrs" => {
            let prepared = off_the_workers(body.len(), || ctx.ingest.prepare_body(&body));
            submitted_response(match prepared {
                Ok(cdrs) => ctx.ingest.submit(cdrs).await,
                Err(error) => Err(error),
            })
        }
        // A FreeSWITCH request is one (pretty-printed) CDR; a Kamailio one is NDJSON, a
        // record per line.
        "/ingest/freeswitch" => {
            ingest_document(ctx, 1, body.len(), || {
                cdrchain_formats::freeswitch::decode_body(&body)
                    .and_then(|json| cdrchain_formats::freeswitch::parse_document(&json, &adapter_context()))
            })
            .await
        }
        "/ingest/kamailio" => {
            ingest_document(ctx, ingest::estimated_records(&body), body.len(), || {
                std::str::from_utf8(&body)
                    .map_err(|e| FormatError::Unreadable {
                        format: "Kamailio acc_json",
                        reason: format!("the body is not UTF-8: {e}"),
                    })
                    .and_then(|text| cdrchain_formats::kamailio::parse_json(text, &adapter_context()))
            })
            .await
        }
        other => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!(
                "no ingest endpoint {other}; this node serves /ingest/cdrs, /ingest/freeswitch and /ingest/kamailio"
            )}),
        ),
    }
}

/// One adapter request of about `records` CDRs: admitted before `parse` reads it (see
/// `Ingest::admit`), then durably queued; the HTTP answer, a refusal naming the format's
/// error if the document did not read.
async fn ingest_document(
    ctx: &RpcContext,
    records: u64,
    bytes: usize,
    parse: impl FnOnce() -> Result<Outcome, FormatError>,
) -> HttpResponse {
    if let Err(e) = ctx.ingest.admit(records) {
        return submitted_response(Err(e));
    }
    match off_the_workers(bytes, || prepare_document(ctx, parse)) {
        Ok(cdrs) => submitted_response(ctx.ingest.submit(cdrs).await),
        Err(response) => *response,
    }
}

/// Runs `work` (parsing and validating a submission of `bytes`) so that a large one does not
/// hold one of the async workers every connection, the swarm and consensus share (review M5): on
/// the multi-threaded runtime the worker hands its other tasks over while it works
/// (`block_in_place`). The in-flight budget bounds how many large ones run at once; small ones
/// (the switches' usual posts) stay inline, where the hand-over would cost more than the work.
pub(super) fn off_the_workers<T>(bytes: usize, work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let threaded =
        Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
    if bytes > MAX_READ_REQUEST_BYTES && threaded {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Parses an adapter's document and validates its CDRs: the CDRs, or the HTTP answer that
/// refuses the document.
fn prepare_document(
    ctx: &RpcContext,
    parse: impl FnOnce() -> Result<Outcome, FormatError>,
) -> Result<Vec<ingest::Keyed>, Box<HttpResponse>> {
    let outcome = match parse() {
        Ok(outcome) => outcome,
        Err(e) => {
            ctx.ingest.count_unread_refusal("unreadable document");
            return Err(Box::new(json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}))));
        }
    };
    if let Some(first) = outcome.errors.first() {
        ctx.ingest.count_unread_refusal(&match &first.field {
            Some(field) => format!("field `{field}`"),
            None => "malformed".to_string(),
        });
        return Err(Box::new(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("{first}"), "line": first.line, "field": first.field}),
        )));
    }
    if outcome.cdrs.is_empty() {
        let reasons: Vec<&str> = outcome.skipped.iter().map(|s| s.reason.as_str()).collect();
        return Err(Box::new(json_response(
            StatusCode::OK,
            &json!({"accepted": 0, "ids": [], "skipped": reasons}),
        )));
    }
    let inputs: Vec<(CdrInput, Option<usize>)> =
        outcome.cdrs.into_iter().map(|p| (p.input, Some(p.line))).collect();
    ctx.ingest.prepare_inputs(&inputs).map_err(|e| Box::new(submitted_response(Err(e))))
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// The HTTP answer to a submission: 200 with the ids once durable; 400 for bad data; 503 when
/// the node could not store them (the sender retries), with a `Retry-After` when the chain is
/// behind (the queue's count or time limit): the seconds the queue needs to make room.
fn submitted_response(result: Result<Vec<ingest::Submitted>, IngestError>) -> HttpResponse {
    let e = match result {
        Ok(submitted) => return accepted_response(&submitted),
        Err(e) => e,
    };
    let status = match &e {
        IngestError::Conflict { .. } => StatusCode::CONFLICT,
        _ if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let (index, line) = match &e {
        IngestError::Invalid { index, line, .. } => (Some(*index), *line),
        IngestError::Conflict { index, .. } => (Some(*index), None),
        IngestError::Malformed { line, .. } => (None, *line),
        _ => (None, None),
    };
    let retry_after = e.retry_after_s();
    let mut body = json!({"error": e.to_string(), "index": index, "line": line, "field": e.field()});
    if let Some(seconds) = retry_after {
        body["retry_after_s"] = json!(seconds);
    }
    let mut response = json_response(status, &body);
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from(seconds));
    }
    response
}

/// 503 with `Retry-After: 1`: the in-flight budget is spent; the request was not read.
fn busy_response(spent: &Spent) -> HttpResponse {
    tracing::debug!(target: "cdrchain::rpc", "large request refused unread: {}", spent.message());
    let mut response = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": spent.message(), "retry_after_s": 1}),
    );
    response.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
    response
}

/// 200 with the ids of durable CDRs, and which of them were ingested before.
fn accepted_response(submitted: &[ingest::Submitted]) -> HttpResponse {
    let duplicates: Vec<Value> = submitted
        .iter()
        .enumerate()
        .filter(|(_, s)| s.duplicate)
        .map(|(index, s)| json!({"index": index, "id": s.id.to_string()}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "accepted": submitted.len() - duplicates.len(),
            "ids": submitted.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
            "duplicates": duplicates,
        }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Review M5: two large submissions parsed on the two async workers of a 2-core validator
    /// held every other task (other connections, the swarm, consensus) until they were done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_submissions_do_not_hold_the_async_workers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let work = Duration::from_secs(3);
        let running = Arc::new(AtomicUsize::new(0));
        let busy: Vec<_> = (0..2)
            .map(|_| {
                let running = running.clone();
                tokio::spawn(async move {
                    off_the_workers(MAX_READ_REQUEST_BYTES + 1, || {
                        running.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(work)
                    })
                })
            })
            .collect();
        // Both run, one on each worker (this test's own thread is not a worker).
        while running.load(Ordering::SeqCst) < 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        // Another task (a probe's request, a vote) still runs at once.
        tokio::spawn(async {}).await.unwrap();
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(1), "another task waited {waited:?} for the workers");
        for task in busy {
            task.await.unwrap();
        }
        // Off a multi-threaded runtime (tests, tools) the work simply runs.
        assert_eq!(
            std::thread::spawn(|| off_the_workers(MAX_READ_REQUEST_BYTES + 1, || 7)).join().unwrap(),
            7
        );
    }
}
