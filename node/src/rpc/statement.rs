//! `statement_*`: a pair's calls rated under its agreement (issue #28). The node opens the
//! agreement (it must be one of the pair) and rates the committed calls at a stated block, so
//! both partners' nodes produce the same bytes; it proposes a statement sealed to the pair, and
//! signs the partner's only if it makes the very same bytes.

use cdrchain_chain_spec::sealing;
use cdrchain_rating::rate::{Call, Direction};
use cdrchain_rating::statement::{STATEMENT_FORMAT, STATEMENT_VERSION};
use cdrchain_rating::{Agreement, Rater, Statement, StatementDocument};
use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId};
use cdrchain_runtime::interconnect::{
    pair_key, Action, AgreementRecord, InterconnectTx, PairAgreements, PairStatements, StatementRecord,
};
use cdrchain_runtime::settlement::{count_once, of_pair};
use cdrchain_runtime::state::StateKey;
use cdrchain_runtime::tx::Transaction;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

use super::api::StatementApiServer;
use super::{internal, invalid, pair_window, Handlers, RpcContext};

/// A statement this node made: the document, its canonical bytes, and the agreement's id.
struct Made {
    document: StatementDocument,
    bytes: Vec<u8>,
    agreement: Hash32,
}

impl Made {
    fn json(&self) -> Result<Value, ErrorObjectOwned> {
        Ok(json!({
            "document": serde_json::to_value(&self.document).map_err(internal)?,
            "canonical": String::from_utf8_lossy(&self.bytes),
            "hash": hash_of(&self.bytes).to_string(),
        }))
    }
}

pub(super) fn hash_of(bytes: &[u8]) -> Hash32 {
    Hash32(*blake3::hash(bytes).as_bytes())
}

impl StatementApiServer for Handlers {
    fn statement_make(
        &self,
        ext: &Extensions,
        a: String,
        b: String,
        from: Value,
        to: Value,
        at: Option<Value>,
    ) -> RpcResult<Value> {
        self.ctx.heavy.run("statement_make", || {
            let (a, b, from, to) = pair_window(a, b, &from, &to)?;
            super::cdr::partner_of_pair(RpcContext::scope(ext).as_ref(), &a, &b)?;
            let height = self.ctx.resolve(at)?.ok_or_else(|| invalid("the chain has no block yet"))?;
            self.make(&a, &b, (from, to), height)?.json()
        })
    }

    fn statement_propose(
        &self,
        a: String,
        b: String,
        from: Value,
        to: Value,
        at: Option<Value>,
    ) -> RpcResult<Value> {
        let (a, b, from, to) = pair_window(a, b, &from, &to)?;
        let me = self.ctx.signer.0.clone();
        if me != a && me != b {
            return Err(invalid(format!("this node's operator `{me}` is neither `{a}` nor `{b}`")));
        }
        let height = self.ctx.resolve(at)?.ok_or_else(|| invalid("the chain has no block yet"))?;
        let made = self.ctx.heavy.run("statement_propose", || self.make(&a, &b, (from, to), height))?;
        let keys = [self.encryption_key(&a)?, self.encryption_key(&b)?];
        let genesis = self.ctx.chain.ctx.genesis_hash;
        let (sealed, _) = sealing::seal(&genesis, &keys, &made.bytes).map_err(|e| invalid(e.to_string()))?;
        let commitment = sealed.commitment;
        let action = Action::ProposeStatement { agreement: made.agreement, from_ms: from, to_ms: to, sealed };
        let id =
            self.sign_and_pool(Transaction::Interconnect(Box::new(InterconnectTx { operator: me, action })))?;
        tracing::info!(target: "cdrchain::interconnect", "proposed statement {id} of `{a}`–`{b}` at block #{}", height.0);
        let mut answer = made.json()?;
        answer["statement"] = json!(id.to_string());
        answer["commitment"] = json!(commitment.to_string());
        Ok(answer)
    }

    fn statement_sign(&self, id: String) -> RpcResult<Value> {
        let id = super::agreement::hash(&id)?;
        let me = self.ctx.signer.0.clone();
        let record = self.statement(id)?.ok_or_else(|| invalid(format!("no statement {id}")))?;
        if record.b != me {
            return Err(invalid(format!(
                "statement {id} was proposed by `{}` to `{}`: only `{}` signs it",
                record.a, record.b, record.b
            )));
        }
        let opening = self.open(&record.sealed)?;
        let theirs: Value = serde_json::from_slice(&opening.content)
            .map_err(|e| invalid(format!("statement {id} is not a statement document: {e}")))?;
        let height =
            theirs["height"].as_u64().ok_or_else(|| invalid(format!("statement {id} names no block")))?;
        let made = self.ctx.heavy.run("statement_sign", || {
            self.make(&record.a, &record.b, (record.from_ms, record.to_ms), Height(height))
        })?;
        if made.bytes != opening.content || made.agreement != record.agreement {
            return Err(invalid(format!(
                "statement {id} (hash {}) differs from this node's statement of the same period at block #{height} \
                 (hash {}): compare them (statement_get, statement_make) and dispute it",
                hash_of(&opening.content),
                hash_of(&made.bytes)
            )));
        }
        let action = Action::SignStatement { statement: id, commitment: record.sealed.commitment };
        self.sign_and_pool(Transaction::Interconnect(Box::new(InterconnectTx { operator: me, action })))?;
        tracing::info!(target: "cdrchain::interconnect", "signed statement {id} of `{}`", record.a);
        Ok(json!({ "statement": id.to_string(), "hash": hash_of(&made.bytes).to_string() }))
    }

    fn statement_get(&self, ext: &Extensions, id: String) -> RpcResult<Value> {
        let id = super::agreement::hash(&id)?;
        let Some(record) = self.statement(id)? else { return Ok(Value::Null) };
        let mut value = record_json(id, &record);
        value["envelope"] = json!(record.sealed.envelope);
        let readable = self.may_read(ext, [&record.a, &record.b]);
        value["opening"] = self.opening_json(readable, &record.sealed);
        Ok(value)
    }

    fn statement_list(&self, a: String, b: String) -> RpcResult<Value> {
        let a = OperatorId::new(a).map_err(|e| invalid(e.to_string()))?;
        let b = OperatorId::new(b).map_err(|e| invalid(e.to_string()))?;
        let (lo, hi) = pair_key(&a, &b);
        let pair: PairStatements =
            self.read(&StateKey::PairStatements(lo.clone(), hi.clone()))?.unwrap_or_default();
        let mut statements = Vec::with_capacity(pair.proposals.len());
        for id in pair.proposals.iter() {
            if let Some(record) = self.statement(*id)? {
                statements.push(record_json(*id, &record));
            }
        }
        Ok(
            json!({ "a": lo.to_string(), "b": hi.to_string(), "final": pair.final_periods, "statements": statements }),
        )
    }
}

impl Handlers {
    pub(super) fn statement(&self, id: Hash32) -> Result<Option<StatementRecord>, ErrorObjectOwned> {
        self.read(&StateKey::Statement(id))
    }

    /// The pair's agreement in force at `height`: the highest version accepted at or below it
    /// (records keep their acceptance height, so a statement of an earlier block is made under
    /// the agreement of that block, on any node and at any later time).
    fn agreement_at(
        &self,
        a: &OperatorId,
        b: &OperatorId,
        height: Height,
    ) -> Result<(Hash32, u32, AgreementRecord), ErrorObjectOwned> {
        let (lo, hi) = pair_key(a, b);
        let pair: PairAgreements = self.read(&StateKey::PairAgreements(lo, hi))?.unwrap_or_default();
        let mut in_force: Option<(Hash32, AgreementRecord)> = None;
        for id in pair.proposals.iter() {
            let record = self.agreement(*id)?.ok_or_else(|| internal(format!("agreement {id} is gone")))?;
            let accepted = record.accepted_at.is_some_and(|at| at <= height);
            if accepted && in_force.as_ref().is_none_or(|(_, best)| record.version > best.version) {
                in_force = Some((*id, record));
            }
        }
        let (id, record) = in_force.ok_or_else(|| {
            invalid(format!("`{a}` and `{b}` had no agreement in force at block #{}", height.0))
        })?;
        Ok((id, record.version, record))
    }

    /// The statement of `a`–`b`'s calls in `window`, committed at or below `height`, under the
    /// pair's agreement in force at that block.
    fn make(
        &self,
        a: &OperatorId,
        b: &OperatorId,
        window: (u64, u64),
        height: Height,
    ) -> Result<Made, ErrorObjectOwned> {
        if a == b {
            return Err(invalid(format!(
                "operators a and b are both `{a}`: a statement is between two partners"
            )));
        }
        let (id, version, record) = self.agreement_at(a, b, height)?;
        let opening = self.open(&record.sealed)?;
        let text = std::str::from_utf8(&opening.content)
            .map_err(|e| invalid(format!("agreement {id} is not UTF-8 text: {e}")))?;
        let agreement = Agreement::from_json(text).map_err(|e| invalid(format!("agreement {id}: {e}")))?;
        let rater = Rater::new(&agreement).map_err(|e| invalid(format!("agreement {id}: {e}")))?;
        let header = self
            .ctx
            .chain
            .storage
            .header(height)
            .map_err(internal)?
            .ok_or_else(|| invalid(format!("no block #{} yet", height.0)))?;
        let cdrs = self.ctx.window_records(a, b, window, height)?;
        let between: Vec<&Cdr> = cdrs.iter().filter(|cdr| of_pair(cdr, a, b)).collect();
        let records = between.len() as u64;
        let calls = count_once(between);
        let destinations: Vec<String> =
            calls.iter().map(|cdr| cdr.body.destination.map(|d| d.digits()).unwrap_or_default()).collect();
        let rated = calls.iter().zip(&destinations).map(|(cdr, destination)| Call {
            direction: if cdr.body.caller_operator.as_str() == agreement.a {
                Direction::AToB
            } else {
                Direction::BToA
            },
            start_ms: i64::try_from(cdr.body.start_ms).unwrap_or(i64::MAX),
            duration_ms: cdr.body.billable_ms(),
            destination,
        });
        let ms = |ms: u64| i64::try_from(ms).map_err(|_| invalid(format!("{ms} ms is not a time")));
        let statement = Statement::make(&agreement, &rater, ms(window.0)?, ms(window.1)?, rated)
            .map_err(|e| invalid(e.to_string()))?;
        let document = StatementDocument {
            format: STATEMENT_FORMAT,
            version: STATEMENT_VERSION,
            agreement: id.to_string(),
            agreement_version: version,
            height: header.number.0,
            block_hash: header.hash().to_string(),
            records,
            calls: calls.len() as u64,
            statement,
        };
        let bytes = document.canonical_bytes().map_err(internal)?;
        Ok(Made { document, bytes, agreement: id })
    }
}

fn record_json(id: Hash32, record: &StatementRecord) -> Value {
    json!({
        "id": id.to_string(),
        "agreement": record.agreement.to_string(),
        "a": record.a.to_string(),
        "b": record.b.to_string(),
        "from_ms": record.from_ms,
        "to_ms": record.to_ms,
        "proposed_at": record.proposed_at.0,
        "signed_at": record.signed_at.map(|h| h.0),
        "dispute": record.dispute.map(|d| d.to_string()),
        "commitment": record.sealed.commitment.to_string(),
        "envelope_bytes": record.sealed.envelope.0.len(),
    })
}
