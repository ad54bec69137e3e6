//! `cdr_*`: submit, check, status and look-ups of CDRs; the proofs are built in `proofs`.

use cdrchain_runtime::ids::{CallId, OperatorId};
use cdrchain_runtime::input::CdrInput;
use cdrchain_runtime::party::PartyDigest;
use cdrchain_runtime::Hash32;
use jsonrpsee::core::async_trait;
use jsonrpsee::core::RpcResult;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

use super::api::{CdrApiServer, CheckError, CheckReport, Duplicate, PartyPage, QueryPage};
use super::{
    at_most_per_submission, cdr_id, cdr_json, error, ingest_error, internal, invalid, pair_window, Handlers,
    RpcContext, UNAUTHORIZED,
};
use crate::ingest::{IngestError, Status};
use cdrchain_storage::StoredCdr;

/// `cdr_query`'s page size when the caller gives none.
const DEFAULT_QUERY_CDRS: usize = 1_000;
/// The largest page `cdr_query` answers.
const MAX_QUERY_CDRS: usize = 10_000;
/// A `cdr_byParty` page when the caller names no limit (the storage clamps to its largest).
const DEFAULT_PARTY_CDRS: usize = 100;
const _: () = assert!(DEFAULT_PARTY_CDRS <= cdrchain_storage::MAX_PARTY_PAGE_CDRS);

#[async_trait]
impl CdrApiServer for Handlers {
    async fn submit(&self, cdrs: Vec<Value>) -> RpcResult<Vec<String>> {
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
        self.ctx.heavy.run("cdr_check", || {
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
        })
    }

    fn cdr_status(&self, ext: &Extensions, id: String) -> RpcResult<Value> {
        let id = cdr_id(&id)?;
        let storage = &self.ctx.chain.storage;
        let scope = RpcContext::scope(ext);
        let stored = storage.cdr(&id.recorder, id.sequence).map_err(internal)?;
        if let Some(stored) = stored.filter(|stored| visible(scope.as_ref(), stored)) {
            let hash = storage.header(stored.height).map_err(internal)?.map(|h| h.hash());
            return Ok(json!({
                "status": "committed",
                "height": stored.height.0,
                "block_hash": hash,
                "leaf_index": stored.leaf_index,
            }));
        }
        let ingest = &self.ctx.ingest;
        // A queued CDR's parties are not looked at: a partner's token is never told it is queued.
        if scope.is_none()
            && &id.recorder == ingest.operator()
            && ingest.status(id.sequence) == Status::Queued
        {
            return Ok(json!({"status": "queued"}));
        }
        Ok(json!({"status": "unknown"}))
    }

    fn cdr(&self, ext: &Extensions, id: String) -> RpcResult<Option<Value>> {
        let id = cdr_id(&id)?;
        let scope = RpcContext::scope(ext);
        let stored = self.ctx.chain.storage.cdr(&id.recorder, id.sequence).map_err(internal)?;
        Ok(stored.filter(|stored| visible(scope.as_ref(), stored)).map(|s| cdr_json(&s)))
    }

    fn by_call_id(&self, ext: &Extensions, call_id: String) -> RpcResult<Vec<Value>> {
        self.ctx.heavy.run("cdr_byCallId", || {
            let scope = RpcContext::scope(ext);
            let call_id = CallId::new(&call_id).map_err(|e| invalid(e.to_string()))?;
            let storage = &self.ctx.chain.storage;
            let mut out = Vec::new();
            for id in storage.cdrs_by_call_id(&call_id).map_err(internal)? {
                if let Some(stored) = storage.cdr(&id.recorder, id.sequence).map_err(internal)? {
                    if visible(scope.as_ref(), &stored) {
                        out.push(cdr_json(&stored));
                    }
                }
            }
            Ok(out)
        })
    }

    fn by_party(
        &self,
        ext: &Extensions,
        party: String,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> RpcResult<PartyPage> {
        self.ctx.heavy.run("cdr_byParty", || {
            let scope = RpcContext::scope(ext);
            let party = Hash32::from_hex(party.trim())
                .map(PartyDigest)
                .map_err(|e| invalid(format!("party: {e} (the party's keyed digest, 64 hex digits)")))?;
            let limit = limit.unwrap_or(DEFAULT_PARTY_CDRS);
            let storage = &self.ctx.chain.storage;
            let head = storage.height().0;
            let indexed_through = storage.parties_indexed().map_err(internal)?.0;
            let (cdrs, next) = storage
                .cdrs_by_party(&party, cursor.as_deref(), limit, |stored| visible(scope.as_ref(), stored))
                .map_err(page_error)?;
            Ok(PartyPage {
                cdrs: cdrs.iter().map(cdr_json).collect(),
                next_cursor: next,
                indexed_through,
                head,
            })
        })
    }

    fn query(
        &self,
        ext: &Extensions,
        a: String,
        b: String,
        from: Value,
        to: Value,
        cursor: Option<String>,
        limit: Option<usize>,
    ) -> RpcResult<QueryPage> {
        self.ctx.heavy.run("cdr_query", || {
            let (a, b, from, to) = pair_window(a, b, &from, &to)?;
            partner_of_pair(RpcContext::scope(ext).as_ref(), &a, &b)?;
            let limit = limit.unwrap_or(DEFAULT_QUERY_CDRS).clamp(1, MAX_QUERY_CDRS);
            let (cdrs, next) = self
                .ctx
                .chain
                .storage
                .query_partners(&a, &b, from, to, cursor.as_deref(), limit)
                .map_err(page_error)?;
            Ok(QueryPage { cdrs: cdrs.iter().map(cdr_json).collect(), next_cursor: next })
        })
    }

    fn proof(&self, ext: &Extensions, id: String) -> RpcResult<Value> {
        self.ctx.heavy.run("cdr_proof", || {
            let id = cdr_id(&id)?;
            if let Some(party) = RpcContext::scope(ext) {
                let stored = self.ctx.chain.storage.cdr(&id.recorder, id.sequence).map_err(internal)?;
                if !stored.is_some_and(|stored| visible(Some(&party), &stored)) {
                    // As for a CDR that is not committed: a partner learns nothing of others' CDRs.
                    return Err(invalid(format!(
                        "no committed CDR {id} that `{party}` recorded or is a party to"
                    )));
                }
            }
            self.ctx.inclusion_bundle(&id)
        })
    }

    fn absence_proof(&self, id: String) -> RpcResult<Value> {
        self.ctx.heavy.run("cdr_absenceProof", || self.ctx.absence_bundle(&cdr_id(&id)?))
    }

    fn declare_gap(&self, operator: String, from: u64, to: u64, reason: String) -> RpcResult<Value> {
        let operator = OperatorId::new(operator).map_err(|e| invalid(format!("operator: {e}")))?;
        let declared =
            self.ctx.ingest.declare_gap(&operator, from, to, &reason).map_err(|e| invalid(e.to_string()))?;
        let quarantined: Vec<Value> = declared
            .quarantined
            .iter()
            .map(|(sequence, what)| json!({"id": format!("{operator}:{}", sequence.0), "what": what}))
            .collect();
        Ok(json!({"from": declared.from.0, "to": declared.to.0, "quarantined": quarantined}))
    }

    fn consistency_proof(&self, old_size: u64, new_size: u64) -> RpcResult<Value> {
        self.ctx.heavy.run("cdr_consistencyProof", || self.ctx.consistency(old_size, new_size))
    }
}

/// Whether a request scoped to `party` (a partner's token) may see `stored`: that operator
/// recorded it or is its caller's or callee's operator. Unscoped requests see everything.
fn visible(party: Option<&OperatorId>, stored: &StoredCdr) -> bool {
    party.is_none_or(|party| {
        let body = &stored.cdr.body;
        &stored.cdr.recorder == party || &body.caller_operator == party || &body.callee_operator == party
    })
}

/// Refuses a pair that a partner's token is not part of.
pub(super) fn partner_of_pair(party: Option<&OperatorId>, a: &OperatorId, b: &OperatorId) -> RpcResult<()> {
    match party {
        Some(party) if party != a && party != b => Err(error(
            UNAUTHORIZED,
            format!("a token of partner `{party}` reads only pairs with `{party}`, not `{a}`–`{b}`"),
            None,
        )),
        _ => Ok(()),
    }
}

/// A paged read's error: a cursor the caller made up is theirs, anything else the node's.
fn page_error(error: cdrchain_storage::StorageError) -> jsonrpsee::types::ErrorObjectOwned {
    match error {
        cdrchain_storage::StorageError::BadCursor { .. } => invalid(error.to_string()),
        other => internal(other),
    }
}
