//! `cdr_*`: submit, check, status and look-ups of CDRs; the proofs are built in `proofs`.

use cdrchain_runtime::ids::CallId;
use cdrchain_runtime::input::CdrInput;
use jsonrpsee::core::async_trait;
use jsonrpsee::core::RpcResult;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

use super::api::{CdrApiServer, CheckError, CheckReport, Duplicate, QueryPage};
use super::{
    at_most_per_submission, cdr_id, cdr_json, ingest_error, internal, invalid, pair_window, Handlers,
};
use crate::ingest::{IngestError, Status};

/// `cdr_query`'s page size when the caller gives none.
const DEFAULT_QUERY_CDRS: usize = 1_000;
/// The largest page `cdr_query` answers.
const MAX_QUERY_CDRS: usize = 10_000;

#[async_trait]
impl CdrApiServer for Handlers {
    async fn submit(&self, ext: &Extensions, cdrs: Vec<Value>) -> RpcResult<Vec<String>> {
        self.ctx.authorized(ext)?;
        at_most_per_submission(cdrs.len())?;
        let mut inputs = Vec::with_capacity(cdrs.len());
        for (index, value) in cdrs.into_iter().enumerate() {
            let input = CdrInput::from_value(value)
                .map_err(|error| ingest_error(&IngestError::Invalid { index, line: None, error }))?;
            inputs.push((input, None));
        }
        let submitted = self.ctx.ingest.submit_inputs(&inputs).await.map_err(|e| ingest_error(&e))?;
        Ok(submitted.iter().map(|s| s.id.to_string()).collect())
    }

    /// Every refusal (index, field, reason) and every record ingested before (index, its id).
    fn check(&self, cdrs: Vec<Value>) -> RpcResult<CheckReport> {
        at_most_per_submission(cdrs.len())?;
        let ingest = &self.ctx.ingest;
        let parties = ingest.parties().map_err(|e| ingest_error(&e))?;
        let mut report = CheckReport::default();
        let refused = |index: usize, field: Option<&str>, message: String| CheckError {
            index,
            field: field.map(str::to_string),
            message,
        };
        for (index, value) in cdrs.into_iter().enumerate() {
            let input = match CdrInput::from_value(value) {
                Ok(input) => input,
                Err(e) => {
                    report.errors.push(refused(index, e.field(), e.to_string()));
                    continue;
                }
            };
            let rules = ingest.number_rules().for_source(input.source_system());
            let body = match input.to_body_with(parties, rules) {
                Ok(body) => body,
                Err(e) => {
                    report.errors.push(refused(index, e.field(), e.to_string()));
                    continue;
                }
            };
            match ingest.ingested_as(&input, &body).map_err(|e| ingest_error(&e))? {
                Some((id, true)) => report.duplicates.push(Duplicate { index, id: id.to_string() }),
                Some((id, false)) => {
                    let conflict = IngestError::Conflict { index, existing: id.to_string() };
                    report.errors.push(refused(index, None, conflict.to_string()));
                }
                None => {}
            }
        }
        Ok(report)
    }

    fn cdr_status(&self, id: String) -> RpcResult<Value> {
        let id = cdr_id(&id)?;
        let storage = &self.ctx.chain.storage;
        if let Some(stored) = storage.cdr(&id.recorder, id.sequence).map_err(internal)? {
            let hash = storage.header(stored.height).map_err(internal)?.map(|h| h.hash());
            return Ok(json!({
                "status": "committed",
                "height": stored.height.0,
                "block_hash": hash,
                "leaf_index": stored.leaf_index,
            }));
        }
        let ingest = &self.ctx.ingest;
        if &id.recorder == ingest.operator() && ingest.status(id.sequence) == Status::Queued {
            return Ok(json!({"status": "queued"}));
        }
        Ok(json!({"status": "unknown"}))
    }

    fn cdr(&self, id: String) -> RpcResult<Option<Value>> {
        let id = cdr_id(&id)?;
        Ok(self.ctx.chain.storage.cdr(&id.recorder, id.sequence).map_err(internal)?.map(|s| cdr_json(&s)))
    }

    fn by_call_id(&self, call_id: String) -> RpcResult<Vec<Value>> {
        let call_id = CallId::new(&call_id).map_err(|e| invalid(e.to_string()))?;
        let storage = &self.ctx.chain.storage;
        let mut out = Vec::new();
        for id in storage.cdrs_by_call_id(&call_id).map_err(internal)? {
            if let Some(stored) = storage.cdr(&id.recorder, id.sequence).map_err(internal)? {
                out.push(cdr_json(&stored));
            }
        }
        Ok(out)
    }

    fn query(
        &self,
        a: String,
        b: String,
        from: Value,
        to: Value,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> RpcResult<QueryPage> {
        let (a, b, from, to) = pair_window(a, b, &from, &to)?;
        let limit = limit.unwrap_or(DEFAULT_QUERY_CDRS).clamp(1, MAX_QUERY_CDRS);
        let (cdrs, next) =
            self.ctx.chain.storage.query_partners(&a, &b, from, to, cursor.as_deref(), limit).map_err(
                |e| match e {
                    cdrchain_storage::StorageError::BadCursor { .. } => invalid(e.to_string()),
                    other => internal(other),
                },
            )?;
        Ok(QueryPage { cdrs: cdrs.iter().map(cdr_json).collect(), next_cursor: next })
    }

    fn proof(&self, id: String) -> RpcResult<Value> {
        self.ctx.inclusion_bundle(&cdr_id(&id)?)
    }

    fn absence_proof(&self, id: String) -> RpcResult<Value> {
        self.ctx.absence_bundle(&cdr_id(&id)?)
    }

    fn consistency_proof(&self, old_size: u64, new_size: u64) -> RpcResult<Value> {
        self.ctx.consistency(old_size, new_size)
    }
}
