//! A small JSON-RPC 2.0 client over plain HTTP (hyper), for `submit`, `cdr get` and the tests.
//! For a node behind TLS, put a TLS-terminating proxy in front of it or tunnel to it.

use anyhow::{anyhow, bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// A JSON-RPC error the node answered with.
#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (JSON-RPC error {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// Whether `error` is the node's "ingest queue full" answer: the same CDRs may be sent again
/// shortly (ingest is idempotent, so a retry never stores a record twice).
pub fn is_busy(error: &anyhow::Error) -> bool {
    error.downcast_ref::<RpcError>().is_some_and(|e| e.code == i64::from(cdrchain_node::rpc::BUSY))
}

/// A client for one node.
pub struct RpcClient {
    url: hyper::Uri,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl RpcClient {
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let url: hyper::Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
        if url.scheme_str() != Some("http") {
            bail!("`{url}`: only http:// URLs are supported (use a TLS-terminating proxy for https)");
        }
        Ok(Self { url, token, client: Client::builder(TokioExecutor::new()).build_http() })
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
            self.client.request(request).await.with_context(|| format!("connecting to {}", self.url))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.context("reading the answer")?.to_bytes();
        Ok((status, bytes.to_vec()))
    }

    /// Calls `method` with positional `params`.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, body) = self.post("/", serde_json::to_vec(&request)?).await?;
        let answer: Value = serde_json::from_slice(&body)
            .with_context(|| format!("the node answered HTTP {status} with something that is not JSON"))?;
        if let Some(error) = answer.get("error") {
            return Err(anyhow!(RpcError {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error.get("message").and_then(Value::as_str).unwrap_or("unknown error").to_string(),
            }));
        }
        answer.get("result").cloned().ok_or_else(|| anyhow!("the node's answer has neither result nor error"))
    }
}
