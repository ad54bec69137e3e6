//! The node's JSON-RPC client for `submit`, `cdr get`, `proof`, `relay` and the rest: the
//! clients `#[rpc(client)]` generates from `cdrchain_node::rpc::api` (so the method names and
//! parameters are the node's own), over jsonrpsee's plain-HTTP client; and a POST to the node's
//! HTTP ingest. For a node behind TLS, put a TLS-terminating proxy in front of it or tunnel to it.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonrpsee::core::client::Error as ClientError;
use jsonrpsee_http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};

/// How long one call may take: long enough for the heaviest answer (a settlement summary over
/// millions of records); a node that has not answered by then is treated as gone.
const REQUEST_TIMEOUT_S: u64 = 3_600;

/// The node a reading command asks (`relay`, `light-sync`), and the token it needs.
#[derive(Debug, clap::Args)]
pub struct ReadRpc {
    /// The cdrchain node's JSON-RPC URL (any validator or full node of the chain).
    #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC", value_name = "URL")]
    pub rpc: String,
    /// Bearer token (a `read` role is enough), when the node requires one.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ReadRpc {
    /// A client of that node.
    pub fn client(&self) -> anyhow::Result<RpcClient> {
        RpcClient::new(&self.rpc, self.token.clone())
    }
}

/// A JSON-RPC error the node answered with.
#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// A "busy" refusal's `data.retry_after_s`: when to send again.
    pub retry_after_s: Option<u64>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (JSON-RPC error {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// For the node's "busy" answer (the chain is behind its ingest: the same CDRs may be sent
/// again, and ingest is idempotent, so a retry never stores a record twice): how long the node
/// asked to wait before sending again (1 s when it did not say). `None` for any other error.
pub fn busy_retry_after(error: &anyhow::Error) -> Option<Duration> {
    let refusal =
        error.downcast_ref::<RpcError>().filter(|e| e.code == i64::from(cdrchain_node::rpc::BUSY))?;
    Some(Duration::from_secs(refusal.retry_after_s.unwrap_or(1)))
}

/// A client for one node.
pub struct RpcClient {
    /// The node's RPC URL (`http://` only).
    url: hyper::Uri,
    /// Sent as `Authorization: Bearer <token>` on every request when set.
    token: Option<String>,
    /// For [`Self::post`] to the HTTP ingest endpoints.
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// For the generated JSON-RPC clients ([`Self::api`]).
    rpc: HttpClient,
}

impl RpcClient {
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let parsed: hyper::Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
        if parsed.scheme_str() != Some("http") {
            bail!("`{parsed}`: only http:// URLs are supported (use a TLS-terminating proxy for https)");
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = &token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the RPC token cannot be sent in an HTTP header")?;
            headers.insert(hyper::header::AUTHORIZATION, value);
        }
        // The node bounds requests and answers itself; the client adds no lower bound.
        let rpc = HttpClientBuilder::default()
            .set_headers(headers)
            .max_request_size(u32::MAX)
            .max_response_size(u32::MAX)
            .request_timeout(Duration::from_secs(REQUEST_TIMEOUT_S))
            .build(url)
            .with_context(|| format!("`{url}`: cannot make a JSON-RPC client for it"))?;
        Ok(Self { url: parsed, token, http: Client::builder(TokioExecutor::new()).build_http(), rpc })
    }

    /// The node's JSON-RPC methods: call them through the `cdrchain_node::rpc::api::…Client`
    /// traits, and pass the call to [`Self::ask`].
    pub fn api(&self) -> &HttpClient {
        &self.rpc
    }

    /// Awaits a call made through [`Self::api`]: the node's refusal as [`RpcError`] (see
    /// [`busy_retry_after`]), anything else naming the node's URL.
    pub async fn ask<T>(&self, call: impl Future<Output = Result<T, ClientError>>) -> anyhow::Result<T> {
        call.await.map_err(|e| match e {
            ClientError::Call(error) => {
                let retry_after_s = error
                    .data()
                    .and_then(|data| serde_json::from_str::<serde_json::Value>(data.get()).ok())
                    .and_then(|data| data["retry_after_s"].as_u64());
                anyhow!(RpcError {
                    code: i64::from(error.code()),
                    message: error.message().to_string(),
                    retry_after_s
                })
            }
            // The node's budget of large submissions in flight is spent: the same as a full queue.
            ClientError::Transport(e)
                if matches!(
                    e.downcast_ref::<jsonrpsee_http_client::transport::Error>(),
                    Some(jsonrpsee_http_client::transport::Error::Rejected { status_code: 503 })
                ) =>
            {
                anyhow!(RpcError {
                    code: i64::from(cdrchain_node::rpc::BUSY),
                    message: e.to_string(),
                    retry_after_s: Some(1),
                })
            }
            ClientError::ParseError(e) => anyhow!(e)
                .context(format!("the node at {} answered something this client cannot read", self.url)),
            other => anyhow!(other).context(format!("connecting to {}", self.url)),
        })
    }

    /// POSTs `body` to `path` on the node; returns the status and the body.
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut parts = self.url.clone().into_parts();
        parts.path_and_query = Some(path.parse().with_context(|| format!("bad path {path}"))?);
        let uri = hyper::Uri::from_parts(parts).context("building the request URL")?;
        let mut request = hyper::Request::post(uri).header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body.into())).context("building the request")?;
        let response =
            self.http.request(request).await.with_context(|| format!("connecting to {}", self.url))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.context("reading the answer")?.to_bytes();
        Ok((status, bytes.to_vec()))
    }
}
