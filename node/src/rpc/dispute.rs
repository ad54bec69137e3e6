//! `dispute_*`: disputes of a statement, sealed to the pair (issue #28). The node seals its
//! operator's steps, opens the other side's, and serves openings only to the pair.

use cdrchain_chain_spec::sealing;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::interconnect::dispute::{DisputeRecord, StepKind};
use cdrchain_runtime::interconnect::{
    pair_key, Action, AgreementRecord, InterconnectTx, PairStatements, Sealed, StatementRecord,
};
use cdrchain_runtime::state::StateKey;
use cdrchain_runtime::state::StateView;
use cdrchain_runtime::tx::Transaction;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

use super::agreement::hash;
use super::api::DisputeApiServer;
use super::{internal, invalid, Handlers};

impl DisputeApiServer for Handlers {
    fn dispute_open(&self, statement: String, document: String) -> RpcResult<Value> {
        let statement = hash(&statement)?;
        let me = self.ctx.signer.0.clone();
        let record =
            self.statement(statement)?.ok_or_else(|| invalid(format!("no statement {statement}")))?;
        if record.b != me {
            return Err(invalid(format!(
                "statement {statement} was proposed by `{}` to `{}`: only `{}` disputes it",
                record.a, record.b, record.b
            )));
        }
        let sealed = self.seal_for(&record.a, &record.b, &document)?;
        let commitment = sealed.commitment;
        let id = self.sign_interconnect(Action::OpenDispute { statement, sealed })?;
        tracing::info!(target: "cdrchain::interconnect", "opened dispute {id} of statement {statement}");
        Ok(json!({ "dispute": id.to_string(), "commitment": commitment.to_string() }))
    }

    fn dispute_step(&self, id: String, kind: String, document: String) -> RpcResult<Value> {
        let dispute = hash(&id)?;
        let step = match kind.as_str() {
            "respond" => StepKind::Respond,
            "propose-close" => StepKind::ProposeClose,
            other => return Err(invalid(format!("step `{other}`: `respond` or `propose-close`"))),
        };
        let record = self.dispute(dispute)?.ok_or_else(|| invalid(format!("no dispute {dispute}")))?;
        let sealed = self.seal_for(&record.opener, &record.respondent, &document)?;
        let commitment = sealed.commitment;
        self.sign_interconnect(Action::DisputeStep { dispute, step, sealed })?;
        tracing::info!(target: "cdrchain::interconnect", "added a `{kind}` step to dispute {dispute}");
        Ok(json!({ "dispute": dispute.to_string(), "commitment": commitment.to_string() }))
    }

    fn dispute_confirm(&self, id: String) -> RpcResult<Value> {
        let dispute = hash(&id)?;
        let me = self.ctx.signer.0.clone();
        let record = self.dispute(dispute)?.ok_or_else(|| invalid(format!("no dispute {dispute}")))?;
        let Some(last) =
            record.steps.iter().last().filter(|s| s.kind == StepKind::ProposeClose && s.by != me)
        else {
            return Err(invalid(format!(
                "dispute {dispute}: the latest step is not the other side's proposal to close"
            )));
        };
        let sealed = last.sealed.as_ref().ok_or_else(|| invalid("the proposal to close has no document"))?;
        let opening = self.open(sealed)?;
        let commitment = opening.commitment();
        self.sign_interconnect(Action::ConfirmClose { dispute, commitment })?;
        tracing::info!(target: "cdrchain::interconnect", "confirmed the close of dispute {dispute}");
        Ok(json!({ "dispute": dispute.to_string(), "document": String::from_utf8_lossy(&opening.content) }))
    }

    fn dispute_get(&self, ext: &Extensions, id: String) -> RpcResult<Value> {
        let id = hash(&id)?;
        let Some(record) = self.dispute(id)? else { return Ok(Value::Null) };
        let readable = self.may_read(ext, [&record.opener, &record.respondent]);
        let steps: Vec<Value> = record
            .steps
            .iter()
            .map(|step| {
                let opening = match &step.sealed {
                    Some(sealed) => self.opening_json(readable, sealed),
                    None => Value::Null,
                };
                json!({
                    "by": step.by.to_string(),
                    "kind": step.kind,
                    "at": step.at.0,
                    "at_ms": step.at_ms,
                    "commitment": step.commitment.to_string(),
                    "envelope": step.sealed.as_ref().map(|s| &s.envelope),
                    "opening": opening,
                })
            })
            .collect();
        let mut value = record_json(id, &record);
        value["steps"] = json!(steps);
        Ok(value)
    }

    fn dispute_list(&self, a: String, b: String) -> RpcResult<Value> {
        let a = OperatorId::new(a).map_err(|e| invalid(e.to_string()))?;
        let b = OperatorId::new(b).map_err(|e| invalid(e.to_string()))?;
        let (lo, hi) = pair_key(&a, &b);
        let pair: PairStatements =
            self.read(&StateKey::PairStatements(lo.clone(), hi.clone()))?.unwrap_or_default();
        let mut disputes = Vec::new();
        for statement in pair.proposals.iter() {
            let Some(id) = self.statement(*statement)?.and_then(|s| s.dispute) else { continue };
            if let Some(record) = self.dispute(id)? {
                disputes.push(record_json(id, &record));
            }
        }
        Ok(json!({ "a": lo.to_string(), "b": hi.to_string(), "disputes": disputes }))
    }

    fn dispute_bundle(&self, ext: &Extensions, id: String) -> RpcResult<Value> {
        let id = hash(&id)?;
        self.bundle(ext, id)
    }
}

impl Handlers {
    fn dispute(&self, id: Hash32) -> Result<Option<DisputeRecord>, ErrorObjectOwned> {
        self.read(&StateKey::Dispute(id))
    }

    /// `document` sealed to `a` and `b`'s registered keys.
    fn seal_for(&self, a: &OperatorId, b: &OperatorId, document: &str) -> Result<Sealed, ErrorObjectOwned> {
        let keys = [self.encryption_key(a)?, self.encryption_key(b)?];
        let genesis = self.ctx.chain.ctx.genesis_hash;
        let (sealed, _) =
            sealing::seal(&genesis, &keys, document.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        Ok(sealed)
    }

    /// Signs `action` as this node's operator, checked against the head, and pools it.
    pub(super) fn sign_interconnect(&self, action: Action) -> Result<Hash32, ErrorObjectOwned> {
        let operator = self.ctx.signer.0.clone();
        self.sign_and_pool(Transaction::Interconnect(Box::new(InterconnectTx { operator, action })))
    }
}

fn record_json(id: Hash32, record: &DisputeRecord) -> Value {
    json!({
        "id": id.to_string(),
        "statement": record.statement.to_string(),
        "opener": record.opener.to_string(),
        "respondent": record.respondent.to_string(),
        "steps_count": record.steps.len(),
        "opened_at": record.steps.iter().next().map(|s| s.at.0),
        "closed_at": record.closed_at.map(|h| h.0),
    })
}

impl Handlers {
    /// Dispute `id`'s bundle at the head: its three records proven under the head's state
    /// root from one snapshot, and their documents opened with this node's key.
    fn bundle(&self, ext: &Extensions, id: Hash32) -> Result<Value, ErrorObjectOwned> {
        use cdrchain_runtime::proof::dispute::{DisputeBundle, OpenedDocument, Proven, ProvenValue};
        let storage = &self.ctx.chain.storage;
        let snapshot = storage.snapshot();
        let header =
            snapshot.head().map(|h| h.header.clone()).ok_or_else(|| invalid("the chain has no block yet"))?;
        let read = |key: &StateKey| -> Result<Option<Vec<u8>>, ErrorObjectOwned> {
            snapshot.get(&key.to_bytes()).map_err(internal)
        };
        let Some(dispute) = read(&StateKey::Dispute(id))? else {
            return Err(invalid(format!("no dispute {id}")));
        };
        let dispute: DisputeRecord = decode_exact(&dispute).map_err(internal)?;
        if !self.may_read(ext, [&dispute.opener, &dispute.respondent]) {
            return Err(invalid(format!(
                "dispute {id} is between `{}` and `{}`: only their nodes and tokens can bundle it (the bundle carries its opened documents)",
                dispute.opener, dispute.respondent
            )));
        }
        let statement: StatementRecord = decode_exact(
            &read(&StateKey::Statement(dispute.statement))?
                .ok_or_else(|| internal("the disputed statement is gone"))?,
        )
        .map_err(internal)?;
        let agreement: AgreementRecord = decode_exact(
            &read(&StateKey::Agreement(statement.agreement))?
                .ok_or_else(|| internal("the statement's agreement is gone"))?,
        )
        .map_err(internal)?;
        let open = |sealed: &Sealed| -> Result<OpenedDocument, ErrorObjectOwned> {
            OpenedDocument::of(&self.open(sealed)?)
                .ok_or_else(|| invalid("a document of the dispute is not UTF-8 text"))
        };
        let step_openings = dispute
            .steps
            .iter()
            .map(|s| s.sealed.as_ref().map(&open).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let proven = |key: StateKey| -> Result<(ProvenValue, Hash32), ErrorObjectOwned> {
            let entry = super::proofs::state_entry_proof(&snapshot, &key.to_bytes(), &header)?;
            Ok((ProvenValue { value_scale: entry.value_scale, siblings: entry.siblings }, entry.tree_root))
        };
        let (dispute_entry, tree_root) = proven(StateKey::Dispute(id))?;
        let (statement_entry, _) = proven(StateKey::Statement(dispute.statement))?;
        let (agreement_entry, _) = proven(StateKey::Agreement(statement.agreement))?;
        let certificate = storage
            .certificate(header.number)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no commit certificate at #{}", header.number.0)))?;
        let set = self.ctx.chain.authority_set_at(header.number).map_err(internal)?;
        let mut bundle = DisputeBundle::new(
            self.ctx.chain.ctx.genesis_hash,
            &set.signing_keys(),
            header,
            certificate,
            id,
            Proven {
                tree_root,
                dispute: dispute_entry,
                statement: statement_entry,
                agreement: agreement_entry,
            },
            [open(&agreement.sealed)?, open(&statement.sealed)?],
            step_openings,
        );
        bundle.set_changes = crate::set_steps::steps_to(storage, set.id).map_err(internal)?;
        serde_json::to_value(&bundle).map_err(internal)
    }
}
