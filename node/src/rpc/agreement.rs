//! `agreement_*`: interconnect agreements sealed to the pair (issue #28). The node seals what its
//! operator proposes, opens what is sealed to it, and serves openings only to the pair.

use cdrchain_chain_spec::sealing::{self, EncryptionSecret};
use cdrchain_rating::Agreement;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::interconnect::{
    pair_key, Action, AgreementRecord, EncryptionKey, InterconnectTx, Opening, PairAgreements, Sealed,
};
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::Transaction;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use parity_scale_codec::Decode;
use serde_json::{json, Value};

use super::api::AgreementApiServer;
use super::{internal, invalid, Handlers, RpcContext};

impl AgreementApiServer for Handlers {
    fn agreement_propose(&self, counterparty: String, version: u32, document: String) -> RpcResult<Value> {
        let counterparty = operator(&counterparty)?;
        let me = self.ctx.signer.0.clone();
        let terms =
            Agreement::from_json(&document).map_err(|e| invalid(format!("the agreement is refused: {e}")))?;
        let named = [terms.a.as_str(), terms.b.as_str()];
        if !named.contains(&me.as_str()) || !named.contains(&counterparty.as_str()) {
            return Err(invalid(format!(
                "the agreement is between `{}` and `{}`, not `{me}` and `{counterparty}`",
                terms.a, terms.b
            )));
        }
        let keys = [self.encryption_key(&me)?, self.encryption_key(&counterparty)?];
        let genesis = self.ctx.chain.ctx.genesis_hash;
        let (sealed, _) =
            sealing::seal(&genesis, &keys, document.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let commitment = sealed.commitment;
        let action = Action::ProposeAgreement {
            counterparty: counterparty.clone(),
            version,
            dispute_window_days: terms.dispute.window_days,
            sealed,
        };
        let id =
            self.sign_and_pool(Transaction::Interconnect(Box::new(InterconnectTx { operator: me, action })))?;
        tracing::info!(target: "cdrchain::interconnect", "proposed agreement {id} (version {version}) to `{counterparty}`");
        Ok(json!({ "agreement": id.to_string(), "commitment": commitment.to_string() }))
    }

    fn agreement_accept(&self, id: String) -> RpcResult<Value> {
        let id = hash(&id)?;
        let me = self.ctx.signer.0.clone();
        let record = self.agreement(id)?.ok_or_else(|| invalid(format!("no agreement {id}")))?;
        if record.b != me {
            return Err(invalid(format!(
                "agreement {id} was proposed by `{}` to `{}`: only `{}` accepts it",
                record.a, record.b, record.b
            )));
        }
        // Both partners must be able to open what this node's operator signs for.
        let expected = [self.encryption_key(&record.a)?, self.encryption_key(&record.b)?];
        let recipients = sealing::recipients(&record.sealed).map_err(|e| invalid(e.to_string()))?;
        if !expected.iter().all(|key| recipients.contains(key)) {
            return Err(invalid(format!(
                "agreement {id} is sealed to {recipients:?}, not to both partners' registered keys {expected:?}"
            )));
        }
        let opening = self.open(&record.sealed)?;
        let terms =
            std::str::from_utf8(&opening.content).map_err(|e| invalid(e.to_string())).and_then(|text| {
                Agreement::from_json(text).map_err(|e| invalid(format!("the agreement is refused: {e}")))
            })?;
        if terms.dispute.window_days != record.dispute_window_days {
            return Err(invalid(format!(
                "agreement {id} states a dispute window of {} days on chain, its document {} days",
                record.dispute_window_days, terms.dispute.window_days
            )));
        }
        let action = Action::AcceptAgreement { agreement: id, commitment: record.sealed.commitment };
        self.sign_and_pool(Transaction::Interconnect(Box::new(InterconnectTx { operator: me, action })))?;
        tracing::info!(target: "cdrchain::interconnect", "accepted agreement {id} of `{}`", record.a);
        Ok(json!({ "agreement": id.to_string(), "commitment": record.sealed.commitment.to_string() }))
    }

    fn agreement_get(&self, ext: &Extensions, id: String) -> RpcResult<Value> {
        let id = hash(&id)?;
        let Some(record) = self.agreement(id)? else { return Ok(Value::Null) };
        let mut value = record_json(id, &record);
        value["recipients"] = json!(sealing::recipients(&record.sealed).ok());
        value["envelope"] = json!(record.sealed.envelope);
        let readable = self.may_read(ext, [&record.a, &record.b]);
        value["opening"] = self.opening_json(readable, &record.sealed);
        Ok(value)
    }

    fn agreement_list(&self, a: String, b: String) -> RpcResult<Value> {
        let (a, b) = pair_key(&operator(&a)?, &operator(&b)?);
        let pair: PairAgreements =
            self.read(&StateKey::PairAgreements(a.clone(), b.clone()))?.unwrap_or_default();
        let mut agreements = Vec::with_capacity(pair.proposals.len());
        for id in pair.proposals.iter() {
            if let Some(record) = self.agreement(*id)? {
                agreements.push(record_json(*id, &record));
            }
        }
        Ok(json!({
            "a": a.to_string(),
            "b": b.to_string(),
            "in_force": pair.in_force.map(|(id, version)| json!({ "agreement": id.to_string(), "version": version })),
            "agreements": agreements,
        }))
    }
}

impl Handlers {
    pub(super) fn read<T: Decode>(&self, key: &StateKey) -> Result<Option<T>, ErrorObjectOwned> {
        let bytes = self.ctx.chain.storage.get(&key.to_bytes()).map_err(internal)?;
        bytes.map(|bytes| decode_exact(&bytes).map_err(internal)).transpose()
    }

    pub(super) fn agreement(&self, id: Hash32) -> Result<Option<AgreementRecord>, ErrorObjectOwned> {
        self.read(&StateKey::Agreement(id))
    }

    pub(super) fn encryption_key(&self, operator: &OperatorId) -> Result<EncryptionKey, ErrorObjectOwned> {
        self.read(&StateKey::EncryptionKey(operator.clone()))?.ok_or_else(|| {
            invalid(format!("`{operator}` has no encryption key on chain: it registers one first"))
        })
    }

    pub(super) fn secret(&self) -> Result<&EncryptionSecret, ErrorObjectOwned> {
        self.ctx.signer.1.encryption().ok_or_else(|| {
            invalid(format!(
                "this node holds no encryption key of `{}` (start it with --encryption-key)",
                self.ctx.signer.0
            ))
        })
    }

    /// Opens `sealed` with this node's encryption key, checking it against its commitment.
    pub(super) fn open(&self, sealed: &Sealed) -> Result<Opening, ErrorObjectOwned> {
        let genesis = self.ctx.chain.ctx.genesis_hash;
        sealing::open(&genesis, sealed, self.secret()?).map_err(|e| invalid(format!("cannot open: {e}")))
    }

    /// Whether this request may read what is sealed to `pair`: this node's operator is one of
    /// the pair (it holds the key) and the caller's token is not a third partner's.
    pub(super) fn may_read(&self, ext: &Extensions, pair: [&OperatorId; 2]) -> bool {
        let in_pair = |who: &OperatorId| pair.contains(&who);
        in_pair(&self.ctx.signer.0) && RpcContext::scope(ext).as_ref().is_none_or(in_pair)
    }

    /// The `opening` field of a sealed document's answer: its salt, document and the document's
    /// BLAKE3 hash when `readable`, the reason when it does not open, null when not readable.
    pub(super) fn opening_json(&self, readable: bool, sealed: &Sealed) -> Value {
        if !readable {
            return Value::Null;
        }
        match self.open(sealed) {
            Ok(opening) => json!({
                "salt": format!("0x{}", hex::encode(opening.salt)),
                "document": String::from_utf8_lossy(&opening.content),
                "hash": super::statement::hash_of(&opening.content).to_string(),
            }),
            Err(e) => json!({ "error": e.message() }),
        }
    }
}

fn record_json(id: Hash32, record: &AgreementRecord) -> Value {
    json!({
        "id": id.to_string(),
        "a": record.a.to_string(),
        "b": record.b.to_string(),
        "version": record.version,
        "dispute_window_days": record.dispute_window_days,
        "proposed_at": record.proposed_at.0,
        "accepted_at": record.accepted_at.map(|h| h.0),
        "commitment": record.sealed.commitment.to_string(),
        "envelope_bytes": record.sealed.envelope.0.len(),
    })
}

fn operator(text: &str) -> Result<OperatorId, ErrorObjectOwned> {
    OperatorId::new(text).map_err(|e| invalid(e.to_string()))
}

pub(super) fn hash(text: &str) -> Result<Hash32, ErrorObjectOwned> {
    Hash32::from_hex(text).map_err(|e| invalid(e.to_string()))
}
