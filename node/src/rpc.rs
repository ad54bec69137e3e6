//! JSON-RPC 2.0 over HTTP and WebSocket on one port (jsonrpsee), and HTTP ingest on the same port.
//!
//! Parameters are positional, as in Substrate: `cdr_submit([cdr, …])`, `cdr_get("alice:42")`,
//! `chain_getHeader(number | hash | null)`, `settlement_summary(a, b, from, to, rounding?, at?)`.
//! Errors use JSON-RPC codes: -32602 (invalid params) with
//! a message that names the CDR and the field and `data: {index, field, line}`, -32603 (internal:
//! storage) and -32001 (unauthorized), -32002 (unavailable: retry).
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

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cdrchain_runtime::block::Header;
use cdrchain_runtime::checkpoint::{Checkpoint, StoredSignature};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{CallId, CdrId, Height, OperatorId};
use cdrchain_runtime::input::{time_ms, CdrInput};
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_storage::StoredCdr;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{
    HttpBody, HttpRequest, HttpResponse, RpcModule, Server, ServerConfig, ServerHandle, SubscriptionMessage,
};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::Extensions;
use parity_scale_codec::Encode;
use serde_json::{json, Value};
use tower::{Layer, Service};

use crate::chain::Chain;
use crate::ingest::{self, Ingest, IngestError, Status};
use crate::pool::TxPool;
use crate::NodeError;

const INVALID_PARAMS: i32 = -32602;
const INTERNAL: i32 = -32603;
const UNAUTHORIZED: i32 = -32001;
const UNAVAILABLE: i32 = -32002;
/// The ingest queue is full ([`IngestError::Busy`]): send the same CDRs again shortly.
pub const BUSY: i32 = -32005;

/// What the RPC handlers read and write.
pub struct RpcContext {
    pub chain: Arc<Chain>,
    pub ingest: Arc<Ingest>,
    pub pool: Arc<TxPool>,
    /// Required on writes when set.
    pub token: Option<String>,
    /// Consensus position, peers and evidence, as the validator task last published them.
    pub status: Arc<crate::validator::ConsensusStatus>,
}

impl std::fmt::Debug for RpcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcContext").field("token_required", &self.token.is_some()).finish_non_exhaustive()
    }
}

/// Marks a request that carried the right bearer token (or needs none).
#[derive(Clone, Copy, Debug)]
struct Authorized;

fn error(code: i32, message: impl Into<String>, data: Option<Value>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), data)
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
        _ => None,
    };
    let code = match e {
        IngestError::Busy { .. } => BUSY,
        _ if e.is_retryable() => UNAVAILABLE,
        _ => INVALID_PARAMS,
    };
    error(code, e.to_string(), data)
}

fn header_json(header: &Header) -> Value {
    let mut value = serde_json::to_value(header).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("hash".into(), Value::String(header.hash().to_string()));
    }
    value
}

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
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|n| Some(Height(n)))
                .ok_or_else(|| error(INVALID_PARAMS, "block number must be >= 0", None)),
            Some(Value::String(text)) => {
                if let Ok(n) = text.parse::<u64>() {
                    return Ok(Some(Height(n)));
                }
                let hash = Hash32::from_hex(&text).map_err(|e| error(INVALID_PARAMS, e.to_string(), None))?;
                storage.height_of(&hash).map_err(internal)
            }
            Some(other) => {
                Err(error(INVALID_PARAMS, format!("expected a block number or hash, got {other}"), None))
            }
        }
    }

    fn header_at(&self, at: Option<Value>) -> Result<Option<Value>, ErrorObjectOwned> {
        let Some(height) = self.resolve(at)? else { return Ok(None) };
        Ok(self.chain.storage.header(height).map_err(internal)?.map(|h| header_json(&h)))
    }

    fn block_at(&self, at: Option<Value>) -> Result<Option<Value>, ErrorObjectOwned> {
        let Some(height) = self.resolve(at)? else { return Ok(None) };
        let storage = &self.chain.storage;
        let Some(block) = storage.block(height).map_err(internal)? else { return Ok(None) };
        let certificate = storage.certificate(height).map_err(internal)?;
        Ok(Some(json!({
            "header": header_json(&block.header),
            "transactions": block.transactions,
            "certificate": certificate,
        })))
    }

    fn cdr(&self, id: &str) -> Result<Option<Value>, ErrorObjectOwned> {
        let id: CdrId = id
            .parse()
            .map_err(|e: cdrchain_runtime::ids::CdrIdError| error(INVALID_PARAMS, e.to_string(), None))?;
        Ok(self.chain.storage.cdr(&id.recorder, id.sequence).map_err(internal)?.map(|s| cdr_json(&s)))
    }

    fn status(&self, id: &str) -> Result<Value, ErrorObjectOwned> {
        let id: CdrId = id
            .parse()
            .map_err(|e: cdrchain_runtime::ids::CdrIdError| error(INVALID_PARAMS, e.to_string(), None))?;
        if let Some(stored) = self.chain.storage.cdr(&id.recorder, id.sequence).map_err(internal)? {
            let hash = self.chain.storage.header(stored.height).map_err(internal)?.map(|h| h.hash());
            return Ok(
                json!({"status": "committed", "height": stored.height.0, "block_hash": hash, "leaf_index": stored.leaf_index}),
            );
        }
        if &id.recorder == self.ingest.operator() && self.ingest.status(id.sequence) == Status::Queued {
            return Ok(json!({"status": "queued"}));
        }
        Ok(json!({"status": "unknown"}))
    }

    /// Validates CDRs without storing them: every refusal (index, field, reason) and every
    /// record ingested before (index, its id).
    fn check(&self, values: Vec<Value>) -> Result<Value, ErrorObjectOwned> {
        if values.len() > ingest::MAX_CDRS_PER_SUBMISSION {
            return Err(ingest_error(&IngestError::TooMany {
                count: values.len(),
                max: ingest::MAX_CDRS_PER_SUBMISSION,
            }));
        }
        let parties = self.ingest.parties().map_err(|e| ingest_error(&e))?;
        let mut errors = Vec::new();
        let mut duplicates = Vec::new();
        for (index, value) in values.into_iter().enumerate() {
            let input = match CdrInput::from_value(value) {
                Ok(input) => input,
                Err(e) => {
                    errors.push(json!({"index": index, "field": e.field(), "message": e.to_string()}));
                    continue;
                }
            };
            if let Err(e) = input.to_body(parties) {
                errors.push(json!({"index": index, "field": e.field(), "message": e.to_string()}));
                continue;
            }
            if let Some(id) = self.ingest.already_ingested(&input).map_err(|e| ingest_error(&e))? {
                duplicates.push(json!({"index": index, "id": id.to_string()}));
            }
        }
        Ok(json!({"errors": errors, "duplicates": duplicates}))
    }

    /// One adapter request of about `records` CDRs: admitted before `parse` reads it (see
    /// `Ingest::admit`), then durably queued; the HTTP answer, a refusal naming the format's
    /// error if the document did not read.
    async fn ingest_document(
        &self,
        records: u64,
        parse: impl FnOnce() -> Result<cdrchain_formats::Outcome, cdrchain_formats::FormatError>,
    ) -> HttpResponse {
        if let Err(e) = self.ingest.admit(records) {
            return submitted_response(Err(e));
        }
        let outcome = match parse() {
            Ok(outcome) => outcome,
            Err(e) => return format_refused(&e),
        };
        if let Some(first) = outcome.errors.first() {
            return json_response(
                hyper::StatusCode::BAD_REQUEST,
                &json!({"error": format!("{first}"), "line": first.line, "field": first.field}),
            );
        }
        if outcome.cdrs.is_empty() {
            let reasons: Vec<&str> = outcome.skipped.iter().map(|s| s.reason.as_str()).collect();
            return json_response(
                hyper::StatusCode::OK,
                &json!({"accepted": 0, "ids": [], "skipped": reasons}),
            );
        }
        let inputs: Vec<(CdrInput, Option<usize>)> =
            outcome.cdrs.into_iter().map(|p| (p.input, Some(p.line))).collect();
        submitted_response(self.ingest.queue_inputs(&inputs).await)
    }

    /// The inclusion proof bundle of a committed CDR ([`cdrchain_runtime::proof`]): proven in
    /// the header of the block that committed it.
    fn proof(&self, id: &str) -> Result<Value, ErrorObjectOwned> {
        let id: CdrId = id
            .parse()
            .map_err(|e: cdrchain_runtime::ids::CdrIdError| error(INVALID_PARAMS, e.to_string(), None))?;
        let storage = &self.chain.storage;
        let Some(stored) = storage.cdr(&id.recorder, id.sequence).map_err(internal)? else {
            return Err(error(
                INVALID_PARAMS,
                format!("{id} is not a committed CDR (yet): no inclusion proof"),
                None,
            ));
        };
        let header = storage
            .header(stored.height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no header at #{}", stored.height.0)))?;
        let certificate = storage
            .certificate(stored.height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no commit certificate at #{}", stored.height.0)))?;
        let inclusion = cdrchain_runtime::merkle::inclusion_proof(
            &**storage,
            cdrchain_runtime::merkle::Domain::CDR_LOG,
            stored.leaf_index,
            header.cdr_log_size,
        )
        .map_err(internal)?;
        let bundle = cdrchain_runtime::proof::ProofBundle::new(
            cdrchain_runtime::proof::ChainRef {
                id: self.chain.spec.id.clone(),
                genesis_hash: self.chain.ctx.genesis_hash,
            },
            &self.chain.authorities,
            stored.cdr,
            inclusion,
            header,
            certificate,
        );
        serde_json::to_value(&bundle).map_err(internal)
    }

    /// The absence bundle of a CDR id that is not recorded at the head: the operator's next
    /// sequence (or a declared gap covering it) proven from the head's state root.
    fn absence(&self, id: &str) -> Result<Value, ErrorObjectOwned> {
        use cdrchain_runtime::merkle::{inclusion_proof, Domain, Frontier, MemoryNodeStore};
        use cdrchain_runtime::state::{kv_leaf, state_root, GapRecord};
        let id: CdrId = id
            .parse()
            .map_err(|e: cdrchain_runtime::ids::CdrIdError| error(INVALID_PARAMS, e.to_string(), None))?;
        let storage = &self.chain.storage;
        let snapshot = storage.snapshot();
        let Some(head) = snapshot.head().cloned() else {
            return Err(error(INVALID_PARAMS, "the chain has no block yet: nothing to prove from", None));
        };
        let header = head.header;
        let certificate = storage
            .certificate(header.number)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no commit certificate at #{}", header.number.0)))?;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        snapshot.for_each_pair(&mut |k, v| pairs.push((k.to_vec(), v.to_vec()))).map_err(internal)?;
        let next_key = StateKey::NextSequence(id.recorder.clone()).encode();
        let Some(next_at) = pairs.iter().position(|(k, _)| *k == next_key) else {
            return Err(error(
                INVALID_PARAMS,
                format!("`{}` is not an operator of this chain", id.recorder),
                None,
            ));
        };
        let next: cdrchain_runtime::ids::Sequence = decode_exact(&pairs[next_at].1).map_err(internal)?;
        let index = if id.sequence.0 >= next.0 {
            next_at
        } else {
            // Below the next sequence: absent only inside a declared gap.
            let gap = pairs.iter().position(|(k, v)| match decode_exact::<StateKey>(k) {
                Ok(StateKey::Gap(operator, from)) if operator == id.recorder && from.0 <= id.sequence.0 => {
                    decode_exact::<GapRecord>(v).is_ok_and(|g| id.sequence.0 <= g.to.0)
                }
                _ => false,
            });
            gap.ok_or_else(|| {
                error(
                    INVALID_PARAMS,
                    format!(
                        "{id} is recorded (`{}`'s next sequence is {}): no absence proof; ask for its inclusion proof",
                        id.recorder, next.0
                    ),
                    None,
                )
            })?
        };
        let mut frontier = Frontier::new();
        let mut store = MemoryNodeStore::new();
        for (key, value) in &pairs {
            frontier
                .append(Domain::STATE, kv_leaf(key, value), &mut |node, hash| {
                    store.insert(node, hash);
                })
                .map_err(internal)?;
        }
        let kv_root = frontier.root(Domain::STATE);
        let kv_count = frontier.size();
        if state_root(&header.cdr_log_root, header.cdr_log_size, &kv_root, kv_count) != header.state_root {
            return Err(internal("the state read does not give the head's state root"));
        }
        let inclusion = inclusion_proof(&store, Domain::STATE, index as u64, kv_count).map_err(internal)?;
        let entry = cdrchain_runtime::proof::StateEntryProof {
            key_scale: format!("0x{}", hex::encode(&pairs[index].0)),
            value_scale: format!("0x{}", hex::encode(&pairs[index].1)),
            inclusion,
            kv_root,
            kv_count,
        };
        let bundle = cdrchain_runtime::proof::AbsenceBundle::new(
            cdrchain_runtime::proof::ChainRef {
                id: self.chain.spec.id.clone(),
                genesis_hash: self.chain.ctx.genesis_hash,
            },
            &self.chain.authorities,
            id.recorder,
            id.sequence,
            entry,
            header,
            certificate,
        );
        serde_json::to_value(&bundle).map_err(internal)
    }

    /// The RFC 9162 consistency proof between the CDR log of `old_size` leaves and that of
    /// `new_size` (at most the head's), as [`cdrchain_runtime::merkle::ConsistencyProof`]
    /// JSON. From an empty log the proof is empty.
    fn consistency(&self, old_size: u64, new_size: u64) -> Result<Value, ErrorObjectOwned> {
        use cdrchain_runtime::merkle::{consistency_proof, ConsistencyProof, Domain};
        let snapshot = self.chain.storage.snapshot();
        let size = snapshot.head().map_or(0, |h| h.header.cdr_log_size);
        if old_size > new_size || new_size > size {
            return Err(error(
                INVALID_PARAMS,
                format!(
                    "no consistency proof from {old_size} to {new_size} CDRs: sizes must be ascending and at most the head's log ({size})"
                ),
                None,
            ));
        }
        let proof = if old_size == 0 {
            ConsistencyProof { old_size, new_size, path: Vec::new() }
        } else {
            consistency_proof(&snapshot, Domain::CDR_LOG, old_size, new_size).map_err(internal)?
        };
        serde_json::to_value(&proof).map_err(internal)
    }

    /// The checkpoint of block `height` with the signatures gathered so far, or null.
    fn checkpoint(&self, height: Height) -> Result<Value, ErrorObjectOwned> {
        let storage = &self.chain.storage;
        let read = |key: StateKey| storage.get(&key.encode()).map_err(internal);
        let Some(bytes) = read(StateKey::Checkpoint(height))? else { return Ok(Value::Null) };
        let checkpoint: Checkpoint = decode_exact(&bytes).map_err(internal)?;
        let mut signatures = Vec::new();
        for (operator, _) in &self.chain.authorities {
            let Some(bytes) = read(StateKey::CheckpointSignature(height, operator.clone()))? else {
                continue;
            };
            let stored: StoredSignature = decode_exact(&bytes).map_err(internal)?;
            let evm_address =
                self.chain.spec.operators.iter().find(|o| &o.id == operator).map(|o| o.evm_address.to_hex());
            signatures.push(json!({
                "operator": operator.to_string(),
                "evm_address": evm_address,
                "contract": stored.contract.to_hex(),
                "signature": stored.signature.to_hex(),
            }));
        }
        let authorities = self.chain.authorities.len();
        Ok(json!({
            "genesis_hash": checkpoint.genesis_hash.to_string(),
            "height": checkpoint.height.0,
            "block_hash": checkpoint.block_hash.to_string(),
            "state_root": checkpoint.state_root.to_string(),
            "cdr_log_root": checkpoint.cdr_log_root.to_string(),
            "cdr_log_size": checkpoint.cdr_log_size,
            "rsk_chain_id": self.chain.ctx.rsk_chain_id,
            "signatures": signatures,
            "validators": authorities,
            // More than 2/3 of the validators, as the contract requires.
            "quorum": authorities * 2 / 3 + 1,
        }))
    }

    /// The newest recorded checkpoint (of the highest checkpoint height below the head).
    fn checkpoint_latest(&self) -> Result<Value, ErrorObjectOwned> {
        let interval = self.chain.ctx.checkpoint_interval;
        let head = self.chain.storage.head().map_or(0, |h| h.header.number.0);
        if interval == 0 || head < 2 {
            return Ok(Value::Null);
        }
        let height = (head - 1) / interval * interval;
        if height == 0 {
            return Ok(Value::Null);
        }
        self.checkpoint(Height(height))
    }

    fn by_call_id(&self, call_id: &str) -> Result<Value, ErrorObjectOwned> {
        let call_id = CallId::new(call_id).map_err(|e| error(INVALID_PARAMS, e.to_string(), None))?;
        let storage = &self.chain.storage;
        let mut out = Vec::new();
        for id in storage.cdrs_by_call_id(&call_id).map_err(internal)? {
            if let Some(stored) = storage.cdr(&id.recorder, id.sequence).map_err(internal)? {
                out.push(cdr_json(&stored));
            }
        }
        Ok(Value::Array(out))
    }

    fn query(&self, params: Params<'_>) -> Result<Value, ErrorObjectOwned> {
        let mut seq = params.sequence();
        let (a, b, from, to) = pair_window(&mut seq)?;
        let cursor: Option<String> = seq.optional_next()?;
        let limit: Option<usize> = seq.optional_next()?;
        let limit = limit.unwrap_or(1_000).clamp(1, 10_000);
        let (cdrs, next) =
            self.chain.storage.query_partners(&a, &b, from, to, cursor.as_deref(), limit).map_err(
                |e| match e {
                    cdrchain_storage::StorageError::BadCursor { .. } => {
                        error(INVALID_PARAMS, e.to_string(), None)
                    }
                    other => internal(other),
                },
            )?;
        Ok(json!({"cdrs": cdrs.iter().map(cdr_json).collect::<Vec<_>>(), "next_cursor": next}))
    }
}

/// The most records `settlement_summary` reads for one answer (about 1 GiB of records in
/// memory): a wider window is refused with advice to settle day by day.
pub const MAX_SETTLEMENT_RECORDS: usize = 2_000_000;

impl RpcContext {
    /// `settlement_summary(a, b, from, to, rounding?, at?)`: the calls between `a` and `b` that
    /// started in `[from, to)`, committed at or below block `at` (default: the head), each call
    /// once ([`cdrchain_runtime::settlement`]), with the block's height, hash and roots.
    fn settlement(&self, params: Params<'_>) -> Result<Value, ErrorObjectOwned> {
        use cdrchain_runtime::settlement::{summarize, Rounding};
        let mut seq = params.sequence();
        let (a, b, from, to) = pair_window(&mut seq)?;
        let rounding: Option<String> = seq.optional_next()?;
        let at: Option<Value> = seq.optional_next()?;
        let invalid = |message: String| error(INVALID_PARAMS, message, None);
        if a == b {
            return Err(invalid(format!(
                "operators a and b are both `{a}`: settlement is between two partners"
            )));
        }
        let rounding: Rounding =
            rounding.as_deref().unwrap_or("per-second").parse().map_err(|e| invalid(format!("{e}")))?;
        let storage = &self.chain.storage;
        let height = self.resolve(at)?.ok_or_else(|| invalid("the chain has no block yet".to_string()))?;
        let header = storage
            .header(height)
            .map_err(internal)?
            .ok_or_else(|| invalid(format!("no block #{} yet", height.0)))?;
        let mut cdrs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = storage
                .query_partners(&a, &b, from, to, cursor.as_deref(), cdrchain_storage::MAX_PAGE)
                .map_err(internal)?;
            cdrs.extend(page.into_iter().filter(|s| s.height <= height).map(|s| s.cdr));
            if cdrs.len() > MAX_SETTLEMENT_RECORDS {
                return Err(invalid(format!(
                    "more than {MAX_SETTLEMENT_RECORDS} records between {a} and {b} in the window: settle a shorter \
                     window (a day at a time) and add the totals up"
                )));
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let summary = summarize(&a, &b, &cdrs, rounding);
        let directions: Vec<Value> = summary
            .directions
            .iter()
            .map(|d| {
                let mut value = serde_json::to_value(d).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("billed_minutes".into(), Value::String(d.totals.billed_minutes()));
                }
                value
            })
            .collect();
        Ok(json!({
            "a": a.to_string(),
            "b": b.to_string(),
            "from": from,
            "to": to,
            "rounding": summary.rounding,
            "at": {
                "height": header.number.0,
                "block_hash": header.hash().to_string(),
                "state_root": header.state_root.to_string(),
                "cdr_log_root": header.cdr_log_root.to_string(),
                "cdr_log_size": header.cdr_log_size,
            },
            "records": summary.records,
            "calls": summary.calls,
            "directions": directions,
        }))
    }
}

/// The leading `(a, b, from, to)` of `cdr_query` and `settlement_summary`: two operators and a
/// window of start times (RFC 3339 or ms).
fn pair_window(
    seq: &mut jsonrpsee::types::params::ParamsSequence<'_>,
) -> Result<(OperatorId, OperatorId, u64, u64), ErrorObjectOwned> {
    let invalid = |message: String| error(INVALID_PARAMS, message, None);
    let a: String = seq.next()?;
    let b: String = seq.next()?;
    let from: Value = seq.next()?;
    let to: Value = seq.next()?;
    let a = OperatorId::new(a).map_err(|e| invalid(format!("operator a: {e}")))?;
    let b = OperatorId::new(b).map_err(|e| invalid(format!("operator b: {e}")))?;
    let from = time_ms("from", &from).map_err(|e| invalid(e.to_string()))?;
    let to = time_ms("to", &to).map_err(|e| invalid(e.to_string()))?;
    Ok((a, b, from, to))
}

fn authorized(ctx: &RpcContext, ext: &Extensions) -> Result<(), ErrorObjectOwned> {
    if ctx.token.is_none() || ext.get::<Authorized>().is_some() {
        Ok(())
    } else {
        Err(error(UNAUTHORIZED, "this method needs `Authorization: Bearer <token>`", None))
    }
}

/// The JSON-RPC methods.
pub fn module(ctx: Arc<RpcContext>) -> Result<RpcModule<RpcContext>, NodeError> {
    let mut module = RpcModule::from_arc(ctx);
    let reg =
        |e: jsonrpsee::core::RegisterMethodError| NodeError::Task(format!("registering RPC methods: {e}"));
    module
        .register_method("system_health", |_, ctx, _| {
            let best = ctx.chain.storage.head().map_or(0, |h| h.header.number.0);
            let status = ctx.status.snapshot();
            json!({
                "peers": status.peers.len(),
                "isSyncing": status.is_syncing,
                "shouldHavePeers": ctx.chain.authorities.len() > 1,
                "best": best,
                "finalized": best,
            })
        })
        .map_err(reg)?;
    module.register_method("system_peers", |_, ctx, _| json!(ctx.status.snapshot().peers)).map_err(reg)?;
    module
        .register_method("consensus_status", |_, ctx, _| {
            let status = ctx.status.snapshot();
            json!({
                "height": status.height,
                "round": status.round,
                "step": status.step,
                "isSyncing": status.is_syncing,
                "evidence": status.evidence.len(),
            })
        })
        .map_err(reg)?;
    module
        .register_method("consensus_evidence", |_, ctx, _| {
            let list: Vec<Value> = ctx
                .status
                .evidence()
                .iter()
                .map(|e| {
                    json!({
                        "offender": e.offender().to_string(),
                        "height": e.height().0,
                        "round": e.round().0,
                        "step": e.step(),
                        "evidence": e,
                    })
                })
                .collect();
            json!(list)
        })
        .map_err(reg)?;
    module
        .register_method("chain_getHeader", |params, ctx, _| {
            let at: Option<Value> = params.sequence().optional_next()?;
            ctx.header_at(at)
        })
        .map_err(reg)?;
    module
        .register_method("chain_getBlock", |params, ctx, _| {
            let at: Option<Value> = params.sequence().optional_next()?;
            ctx.block_at(at)
        })
        .map_err(reg)?;
    module
        .register_method("chain_getFinalizedHead", |_, ctx, _| {
            Ok::<_, ErrorObjectOwned>(
                ctx.chain.storage.head().map_or(ctx.chain.ctx.genesis_hash, |h| h.hash).to_string(),
            )
        })
        .map_err(reg)?;
    module
        .register_subscription(
            "chain_subscribeFinalizedHeads",
            "chain_finalizedHead",
            "chain_unsubscribeFinalizedHeads",
            |_, pending, ctx, _| async move {
                let mut heads = ctx.chain.subscribe();
                let sink = pending.accept().await?;
                loop {
                    tokio::select! {
                        _ = sink.closed() => return Ok(()),
                        head = heads.recv() => match head {
                            Ok(header) => {
                                let raw = serde_json::value::to_raw_value(&header_json(&header))?;
                                sink.send(SubscriptionMessage::from(raw)).await?;
                            }
                            // A slow subscriber skips heads it missed rather than stalling the node.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                        }
                    }
                }
            },
        )
        .map_err(reg)?;
    module
        .register_async_method("cdr_submit", |params, ctx, ext| async move {
            authorized(&ctx, &ext)?;
            let values: Vec<Value> = params.sequence().next()?;
            if values.len() > ingest::MAX_CDRS_PER_SUBMISSION {
                return Err(ingest_error(&IngestError::TooMany {
                    count: values.len(),
                    max: ingest::MAX_CDRS_PER_SUBMISSION,
                }));
            }
            let mut inputs = Vec::with_capacity(values.len());
            for (index, value) in values.into_iter().enumerate() {
                let input = CdrInput::from_value(value)
                    .map_err(|error| ingest_error(&IngestError::Invalid { index, line: None, error }))?;
                inputs.push((input, None));
            }
            let submitted = ctx.ingest.submit_inputs(&inputs).await.map_err(|e| ingest_error(&e))?;
            Ok::<_, ErrorObjectOwned>(submitted.iter().map(|s| s.id.to_string()).collect::<Vec<_>>())
        })
        .map_err(reg)?;
    module
        .register_method("cdr_check", |params, ctx, _| {
            let values: Vec<Value> = params.sequence().next()?;
            ctx.check(values)
        })
        .map_err(reg)?;
    module
        .register_method("cdr_proof", |params, ctx, _| {
            let id: String = params.sequence().next()?;
            ctx.proof(&id)
        })
        .map_err(reg)?;
    module
        .register_method("cdr_absenceProof", |params, ctx, _| {
            let id: String = params.sequence().next()?;
            ctx.absence(&id)
        })
        .map_err(reg)?;
    module
        .register_method("cdr_consistencyProof", |params, ctx, _| {
            let mut params = params.sequence();
            let old_size: u64 = params.next()?;
            let new_size: u64 = params.next()?;
            ctx.consistency(old_size, new_size)
        })
        .map_err(reg)?;
    module.register_method("checkpoint_latest", |_, ctx, _| ctx.checkpoint_latest()).map_err(reg)?;
    module
        .register_method("checkpoint_get", |params, ctx, _| {
            let height: u64 = params.sequence().next()?;
            ctx.checkpoint(Height(height))
        })
        .map_err(reg)?;
    module
        .register_method("system_properties", |_, ctx, _| {
            json!({
                "chain": ctx.chain.spec.id,
                "operator": ctx.ingest.operator().to_string(),
                "genesisHash": ctx.chain.storage.genesis_hash().to_string(),
                "ingest": ctx.ingest.parties().is_ok(),
                "checkpointInterval": ctx.chain.ctx.checkpoint_interval,
                "rskChainId": ctx.chain.ctx.rsk_chain_id,
            })
        })
        .map_err(reg)?;
    module
        .register_method("cdr_status", |params, ctx, _| {
            let id: String = params.sequence().next()?;
            ctx.status(&id)
        })
        .map_err(reg)?;
    module
        .register_method("cdr_get", |params, ctx, _| {
            let id: String = params.sequence().next()?;
            ctx.cdr(&id)
        })
        .map_err(reg)?;
    module
        .register_method("cdr_byCallId", |params, ctx, _| {
            let call_id: String = params.sequence().next()?;
            ctx.by_call_id(&call_id)
        })
        .map_err(reg)?;
    module.register_method("cdr_query", |params, ctx, _| ctx.query(params)).map_err(reg)?;
    // A scan of a whole window: off the async workers.
    module
        .register_blocking_method("settlement_summary", |params, ctx, _| ctx.settlement(params))
        .map_err(reg)?;
    Ok(module)
}

/// Starts the RPC server; returns its handle and the address it bound.
pub async fn start(addr: SocketAddr, ctx: Arc<RpcContext>) -> Result<(ServerHandle, SocketAddr), NodeError> {
    let front = FrontLayer { ctx: ctx.clone() };
    let config = ServerConfig::builder()
        .max_request_body_size(u32::try_from(ingest::MAX_SUBMISSION_BYTES).unwrap_or(u32::MAX))
        .max_response_body_size(64 * 1024 * 1024)
        .max_connections(512)
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(front))
        .build(addr)
        .await
        .map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?;
    let bound = server.local_addr().map_err(|source| NodeError::Listen { addr: addr.to_string(), source })?;
    let handle = server.start(module(ctx)?);
    Ok((handle, bound))
}

/// HTTP middleware in front of JSON-RPC: checks the bearer token, and serves `/ingest/…`.
#[derive(Clone)]
struct FrontLayer {
    ctx: Arc<RpcContext>,
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Front { inner, ctx: self.ctx.clone() }
    }
}

#[derive(Clone)]
struct Front<S> {
    inner: S,
    ctx: Arc<RpcContext>,
}

fn json_response(status: hyper::StatusCode, body: &Value) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
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
        let authorized = match &self.ctx.token {
            None => true,
            Some(token) => request
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes())),
        };
        if authorized {
            request.extensions_mut().insert(Authorized);
        }
        if !request.uri().path().starts_with("/ingest/") {
            let request = request.map(HttpBody::new);
            let future = self.inner.call(request);
            return Box::pin(async move { future.await.map_err(Into::into) });
        }
        let ctx = self.ctx.clone();
        Box::pin(async move {
            if request.method() != hyper::Method::POST {
                return Ok(json_response(
                    hyper::StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": "use POST"}),
                ));
            }
            if !authorized {
                return Ok(json_response(
                    hyper::StatusCode::UNAUTHORIZED,
                    &json!({"error": "ingest needs `Authorization: Bearer <token>`"}),
                ));
            }
            let path = request.uri().path().to_string();
            let limited = http_body_util::Limited::new(request.into_body(), ingest::MAX_SUBMISSION_BYTES);
            let body = match limited.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    return Ok(json_response(
                        hyper::StatusCode::PAYLOAD_TOO_LARGE,
                        &json!({"error": format!("could not read the body (limit {} bytes): {e}", ingest::MAX_SUBMISSION_BYTES)}),
                    ))
                }
            };
            let adapter_context = || cdrchain_formats::Context::new(ctx.ingest.operator().to_string());
            Ok(match path.as_str() {
                "/ingest/cdrs" => submitted_response(ctx.ingest.submit_body(&body).await),
                // A FreeSWITCH request is one (pretty-printed) CDR; a Kamailio one is NDJSON, a
                // record per line.
                "/ingest/freeswitch" => {
                    ctx.ingest_document(1, || {
                        cdrchain_formats::freeswitch::decode_body(&body).and_then(|json| {
                            cdrchain_formats::freeswitch::parse_document(&json, &adapter_context())
                        })
                    })
                    .await
                }
                "/ingest/kamailio" => {
                    ctx.ingest_document(ingest::estimated_records(&body), || {
                        std::str::from_utf8(&body)
                            .map_err(|e| cdrchain_formats::FormatError::Unreadable {
                                format: "Kamailio acc_json",
                                reason: format!("the body is not UTF-8: {e}"),
                            })
                            .and_then(|text| cdrchain_formats::kamailio::parse_json(text, &adapter_context()))
                    })
                    .await
                }
                other => json_response(
                    hyper::StatusCode::NOT_FOUND,
                    &json!({"error": format!(
                        "no ingest endpoint {other}; this node serves /ingest/cdrs, /ingest/freeswitch and /ingest/kamailio"
                    )}),
                ),
            })
        })
    }
}

fn format_refused(e: &cdrchain_formats::FormatError) -> HttpResponse {
    json_response(hyper::StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}))
}

/// The HTTP answer to a submission: 200 with the ids once durable; 400 for bad data; 503 when
/// the node could not store them (the sender retries), with `Retry-After: 1` when its queue is
/// full.
fn submitted_response(result: Result<Vec<ingest::Submitted>, IngestError>) -> HttpResponse {
    match result {
        Ok(submitted) => {
            let duplicates: Vec<Value> = submitted
                .iter()
                .enumerate()
                .filter(|(_, s)| s.duplicate)
                .map(|(index, s)| json!({"index": index, "id": s.id.to_string()}))
                .collect();
            json_response(
                hyper::StatusCode::OK,
                &json!({
                    "accepted": submitted.len() - duplicates.len(),
                    "ids": submitted.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
                    "duplicates": duplicates,
                }),
            )
        }
        Err(e) => {
            let status = if e.is_retryable() {
                hyper::StatusCode::SERVICE_UNAVAILABLE
            } else {
                hyper::StatusCode::BAD_REQUEST
            };
            let (index, line) = match &e {
                IngestError::Invalid { index, line, .. } => (Some(*index), *line),
                IngestError::Malformed { line, .. } => (None, *line),
                _ => (None, None),
            };
            let busy = matches!(e, IngestError::Busy { .. });
            let mut body = json!({"error": e.to_string(), "index": index, "line": line, "field": e.field()});
            if busy {
                body["retry_after_s"] = json!(1);
            }
            let mut response = json_response(status, &body);
            if busy {
                // The queue drains a block at a time: a second is about one block.
                response
                    .headers_mut()
                    .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
            }
            response
        }
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
