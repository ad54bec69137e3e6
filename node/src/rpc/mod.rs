//! JSON-RPC 2.0 over HTTP and WebSocket on one port (jsonrpsee), and HTTP ingest on the same port.
//!
//! - [`api`]: the methods, one `#[rpc(server, client)]` trait per namespace (`system`, `chain`,
//!   `cdr`, `checkpoint`, `consensus`, `settlement`); the CLI calls the generated clients.
//! - One file per namespace implements its trait on [`RpcContext`]'s parts.
//! - `http_ingest`: the HTTP middleware in front of JSON-RPC: the bearer token, and
//!   `POST /ingest/…`.
//!
//! Parameters are positional, as in Substrate: `cdr_submit([cdr, …])`, `cdr_get("alice:42")`,
//! `chain_getHeader(number | hash | null)`, `settlement_summary(a, b, from, to, rounding?, at?)`.
//! Errors use JSON-RPC codes: -32602 (invalid params) with
//! a message that names the CDR and the field and `data: {index, field, line}`, -32603 (internal:
//! storage) and -32001 (unauthorized), -32002 (unavailable: retry), -32005 ([`BUSY`]).
//!
//! HTTP ingest (see `docs/ingest.md`):
//! - `POST /ingest/cdrs`: a JSON array, one object, or NDJSON of canonical CDRs;
//! - `POST /ingest/freeswitch`: a `mod_json_cdr` document (JSON, `cdr=<url-encoded>` or
//!   `cdr=<base64>`);
//! - `POST /ingest/kamailio`: an `acc_json` dialog CDR (or several as NDJSON; transaction events
//!   are acknowledged and skipped).
//!
//! Each answers `200 {"accepted", "ids", "duplicates"}` once the CDRs are durable (a record
//! ingested before is answered with its first id, listed in `duplicates`, and not stored again);
//! 400 with the reason (request, line, field) for bad data, nothing stored; 401 without the
//! bearer token when one is required; 503 when they could not be made durable, or when the node
//! has no consortium secret (the sender keeps the CDR and retries). When the RPC listens beyond
//! loopback, write methods and ingest need `Authorization: Bearer <token>`.

pub mod access;
mod activity;
mod agreement;
pub mod api;
mod authority;
mod browser;
mod budget;
mod cdr;
mod chain;
mod checkpoint;
mod consensus;
mod deadline;
mod dispute;
mod heavy;
mod http_ingest;
mod method_guard;
mod portal;
mod proofs;
mod settlement;
mod statement;
mod system;

use std::net::SocketAddr;
use std::sync::Arc;

use cdrchain_runtime::block::Header;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{CdrId, Height, OperatorId};
use cdrchain_runtime::input::time_ms;
use cdrchain_storage::StoredCdr;
use jsonrpsee::server::{BatchRequestConfig, RpcModule, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

use self::api::{
    AgreementApiServer, AuthorityApiServer, DisputeApiServer, SettlementApiServer, StatementApiServer,
    SystemApiServer,
};
use self::api::{CdrApiServer, ChainApiServer, CheckpointApiServer, ConsensusApiServer};
use crate::chain::Chain;
use crate::ingest::{self, Ingest, IngestError};
use crate::pool::TxPool;
use crate::NodeError;

pub use self::settlement::MAX_SETTLEMENT_RECORDS;

const INVALID_PARAMS: i32 = -32602;
const INTERNAL: i32 = -32603;
const UNAUTHORIZED: i32 = -32001;
const UNAVAILABLE: i32 = -32002;
/// The ingest queue is full ([`IngestError::Busy`]): send the same CDRs again shortly.
pub const BUSY: i32 = -32005;
/// A CDR's source identity belongs to a different record ([`IngestError::Conflict`]).
pub const CONFLICT: i32 = -32009;

/// The largest JSON-RPC answer the server sends: a page of 10,000 CDRs or a block of full
/// batches fits well within it.
pub const MAX_RESPONSE_BYTES: u32 = 64 * 1024 * 1024;
/// Concurrent HTTP and WebSocket connections the server accepts.
pub const MAX_CONNECTIONS: u32 = 512;
/// The largest JSON-RPC request of a caller without the `ingest` role, and the largest
/// parameters of a method that is not an ingest method: a look-up needs a few hundred bytes, and
/// only CDR submissions need [`ingest::MAX_SUBMISSION_BYTES`] (review H1).
pub const MAX_READ_REQUEST_BYTES: usize = 1024 * 1024;
/// How long a connection may take to send its first request's headers before it is closed.
pub const FIRST_REQUEST_TIMEOUT_S: u64 = 10;
/// How long a `/ingest/…` body may take to arrive whole (64 MiB at about 1 MiB/s), and a
/// JSON-RPC body of a caller with the `ingest` role (`cdr_submit`).
pub const INGEST_BODY_TIMEOUT_S: u64 = 60;
/// How long any other JSON-RPC body (at most [`MAX_READ_REQUEST_BYTES`]) may take to arrive whole.
pub const READ_BODY_TIMEOUT_S: u64 = 10;
const _: () = assert!(READ_BODY_TIMEOUT_S <= INGEST_BODY_TIMEOUT_S, "reads are small");
/// Subscriptions one WebSocket connection may hold.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 16;
const _: () = assert!(
    MAX_READ_REQUEST_BYTES < ingest::MAX_SUBMISSION_BYTES,
    "a read request must be smaller than a submission"
);
/// Calls in one JSON-RPC batch; a larger batch is refused whole, with an error naming the limit
/// (review H1: an unlimited batch let one request run thousands of heavy reads).
pub const MAX_BATCH_CALLS: u32 = 100;

/// What the RPC handlers read and write.
pub struct RpcContext {
    pub chain: Arc<Chain>,
    pub ingest: Arc<Ingest>,
    pub pool: Arc<TxPool>,
    /// Who may call what (none: everyone, on a loopback dev node).
    pub tokens: access::Tokens,
    /// Consensus position, peers and evidence, as the validator task last published them.
    pub status: Arc<crate::validator::ConsensusStatus>,
    /// The turns of heavy reads (see `heavy`).
    pub heavy: heavy::HeavyReads,
    /// This node's operator and its keys: the one the chain registers signs the governance
    /// transactions an admin asks for (`authority_propose`, `authority_approve`).
    pub signer: (cdrchain_runtime::ids::OperatorId, Arc<crate::keys::KeyRing>),
    /// The RSK anchor as the node last read it (`--rsk-rpc`; none: not read).
    pub anchor: Option<Arc<crate::anchor::AnchorView>>,
}

impl std::fmt::Debug for RpcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcContext").field("tokens_required", &!self.tokens.is_open()).finish_non_exhaustive()
    }
}

/// The handlers of every namespace: a cheap handle on the shared [`RpcContext`], one per
/// registered trait.
#[derive(Clone, Debug)]
struct Handlers {
    /// What the handlers read and write.
    ctx: Arc<RpcContext>,
}

fn error(code: i32, message: impl Into<String>, data: Option<Value>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), data)
}

fn invalid(message: impl Into<String>) -> ErrorObjectOwned {
    error(INVALID_PARAMS, message, None)
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    error(INTERNAL, e.to_string(), None)
}

fn ingest_error(e: &IngestError) -> ErrorObjectOwned {
    let data = match e {
        IngestError::Invalid { index, line, .. } => {
            Some(json!({"index": index, "line": line, "field": e.field()}))
        }
        IngestError::Malformed { line, .. } => Some(json!({"line": line})),
        IngestError::Conflict { index, existing } => Some(json!({"index": index, "existing": existing})),
        _ => e.retry_after_s().map(|seconds| json!({"retry_after_s": seconds})),
    };
    let code = match e {
        IngestError::Busy { .. } | IngestError::Slow { .. } => BUSY,
        IngestError::Conflict { .. } => CONFLICT,
        _ if e.is_retryable() => UNAVAILABLE,
        _ => INVALID_PARAMS,
    };
    error(code, e.to_string(), data)
}

/// Refuses more CDRs in one request than ingest takes.
fn at_most_per_submission(count: usize) -> Result<(), ErrorObjectOwned> {
    if count > ingest::MAX_CDRS_PER_SUBMISSION {
        return Err(ingest_error(&IngestError::TooMany { count, max: ingest::MAX_CDRS_PER_SUBMISSION }));
    }
    Ok(())
}

/// A CDR id argument (`operator:sequence`).
fn cdr_id(id: &str) -> Result<CdrId, ErrorObjectOwned> {
    id.parse().map_err(|e: cdrchain_runtime::ids::CdrIdError| invalid(e.to_string()))
}

/// A header as JSON, with its hash.
fn header_json(header: &Header) -> Value {
    let mut value = serde_json::to_value(header).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("hash".into(), Value::String(header.hash().to_string()));
    }
    value
}

/// A committed CDR as JSON, with its id, height and leaf index.
fn cdr_json(stored: &StoredCdr) -> Value {
    let mut value = serde_json::to_value(&stored.cdr).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("id".into(), Value::String(stored.cdr.id().to_string()));
        map.insert("height".into(), json!(stored.height.0));
        map.insert("leaf_index".into(), json!(stored.leaf_index));
    }
    value
}

impl RpcContext {
    /// A height from `number | "0x…hash" | null` (null: the head).
    fn resolve(&self, at: Option<Value>) -> Result<Option<Height>, ErrorObjectOwned> {
        let storage = &self.chain.storage;
        match at {
            None | Some(Value::Null) => Ok(storage.head().map(|h| h.header.number)),
            Some(Value::Number(n)) => {
                n.as_u64().map(|n| Some(Height(n))).ok_or_else(|| invalid("block number must be >= 0"))
            }
            Some(Value::String(text)) => {
                if let Ok(n) = text.parse::<u64>() {
                    return Ok(Some(Height(n)));
                }
                let hash = Hash32::from_hex(&text).map_err(|e| invalid(e.to_string()))?;
                storage.height_of(&hash).map_err(internal)
            }
            Some(other) => Err(invalid(format!("expected a block number or hash, got {other}"))),
        }
    }

    /// The operator whose CDRs alone this request may read (a partner's token); `None`: all.
    fn scope(ext: &Extensions) -> Option<OperatorId> {
        ext.get::<access::Grant>().and_then(|grant| grant.party().cloned())
    }
}

/// The JSON-RPC methods: every namespace's trait, on one module.
pub fn module(ctx: Arc<RpcContext>) -> Result<RpcModule<()>, NodeError> {
    let handlers = Handlers { ctx };
    let reg =
        |e: jsonrpsee::core::RegisterMethodError| NodeError::Task(format!("registering RPC methods: {e}"));
    let mut module = RpcModule::new(());
    module.merge(SystemApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(ChainApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(CdrApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(CheckpointApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(ConsensusApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(AuthorityApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(SettlementApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(AgreementApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(StatementApiServer::into_rpc(handlers.clone())).map_err(reg)?;
    module.merge(DisputeApiServer::into_rpc(handlers)).map_err(reg)?;
    Ok(module)
}

/// Starts the RPC server; returns its handle and the address it bound.
pub async fn start(addr: SocketAddr, ctx: Arc<RpcContext>) -> Result<(ServerHandle, SocketAddr), NodeError> {
    // The Host check guards a loopback node that takes requests without a token (see `browser`).
    let open_loopback = addr.ip().is_loopback() && ctx.tokens.is_open();
    let front = http_ingest::FrontLayer::new(ctx.clone(), open_loopback);
    let config = ServerConfig::builder()
        .max_request_body_size(u32::try_from(ingest::MAX_SUBMISSION_BYTES).unwrap_or(u32::MAX))
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(MAX_CONNECTIONS)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH_CALLS))
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .set_first_request_timeout(Some(std::time::Duration::from_secs(FIRST_REQUEST_TIMEOUT_S)))
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(front))
        .set_rpc_middleware(
            jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new()
                .layer_fn(|inner| method_guard::MethodGuard { inner }),
        )
        .build(addr)
        .await
        .map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?;
    let bound = server.local_addr().map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?;
    let handle = server.start(module(ctx)?);
    Ok((handle, bound))
}

/// The leading `(a, b, from, to)` of `cdr_query` and `settlement_summary`: two operators and a
/// window of start times (RFC 3339 or ms).
fn pair_window(
    a: String,
    b: String,
    from: &Value,
    to: &Value,
) -> Result<(OperatorId, OperatorId, u64, u64), ErrorObjectOwned> {
    let a = OperatorId::new(a).map_err(|e| invalid(format!("operator a: {e}")))?;
    let b = OperatorId::new(b).map_err(|e| invalid(format!("operator b: {e}")))?;
    let from = time_ms("from", from).map_err(|e| invalid(e.to_string()))?;
    let to = time_ms("to", to).map_err(|e| invalid(e.to_string()))?;
    Ok((a, b, from, to))
}

#[cfg(test)]
mod tests;
