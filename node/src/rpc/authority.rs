//! `authority_*`: the authority set in force at a height and the change in flight; proposing and
//! approving changes as this node's operator (issue #27).

use cdrchain_chain_spec::keys::peer_id_of_ed25519;
use cdrchain_runtime::apply::{BlockBuilder, PushError};
use cdrchain_runtime::checkpoint::StoredSignature;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::governance::contract;
use cdrchain_runtime::governance::{
    self, ApproveChange, AuthorityChange, AuthoritySet, PendingChange, ProposeChange, ScheduledChange,
};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use parity_scale_codec::Encode;
use serde_json::{json, Value};

use super::api::AuthorityApiServer;
use super::{internal, invalid, Handlers};
use crate::pool::PoolError;

impl AuthorityApiServer for Handlers {
    fn authority_set(&self, at: Option<u64>) -> RpcResult<Value> {
        let chain = &self.ctx.chain;
        let next = chain.storage.head().map_or(0, |h| h.header.number.0).saturating_add(1);
        let height = at.unwrap_or(next);
        if height == 0 {
            return Err(invalid("height 0 is the genesis: the first certified height is 1"));
        }
        let set = chain.authority_set_at(Height(height)).map_err(internal)?;
        if height < set.from.0 {
            // Every set that was in force is kept from the first change on: a node without it
            // (a database from before the sets were kept) cannot say.
            return Err(invalid(format!(
                "height {height} is before the current set's first height {}: this node answers from {} on",
                set.from.0, set.from.0
            )));
        }
        Ok(set_json(&set))
    }

    fn authority_propose(&self, change: Value) -> RpcResult<Value> {
        let change: AuthorityChange = serde_json::from_value(change)
            .map_err(|e| invalid(format!("not an authority change (add, remove or rotate-keys): {e}")))?;
        let operator = self.ctx.signer.0.clone();
        let summary = format!("{} `{}`", change.kind(), change.subject());
        let id =
            self.sign_and_pool(Transaction::ProposeChange(Box::new(ProposeChange { operator, change })))?;
        tracing::info!(target: "cdrchain::governance", "proposed {summary}: proposal {id}");
        Ok(json!({ "proposal": id.to_string() }))
    }

    fn authority_approve(&self, id: String) -> RpcResult<Value> {
        let proposal = Hash32::from_hex(&id).map_err(|e| invalid(e.to_string()))?;
        let operator = self.ctx.signer.0.clone();
        let tx = self.sign_and_pool(Transaction::ApproveChange(ApproveChange { operator, proposal }))?;
        tracing::info!(target: "cdrchain::governance", "approved proposal {proposal}");
        Ok(json!({ "proposal": proposal.to_string(), "transaction": tx.to_string() }))
    }

    fn authority_contract_change(&self, set_id: u64) -> RpcResult<Value> {
        let storage = &*self.ctx.chain.storage;
        let Some((target, signers)) = contract::change_and_signers(storage, set_id).map_err(internal)? else {
            return Ok(Value::Null);
        };
        let change = contract::ValidatorSetChange::of(&target);
        let mut signatures = Vec::new();
        for member in signers.members.iter() {
            let key = StateKey::SetChangeSignature(set_id, member.id.clone()).encode();
            let Some(bytes) = storage.get(&key).map_err(internal)? else { continue };
            let stored: StoredSignature = decode_exact(&bytes).map_err(internal)?;
            signatures.push(json!({
                "operator": member.id.to_string(),
                "evm_address": member.evm_address.to_hex(),
                "contract": stored.contract.to_hex(),
                "signature": stored.signature.to_hex(),
            }));
        }
        Ok(json!({
            "set_id": set_id,
            "from": target.from.0,
            "validators": change.validators.iter().map(|a| a.to_hex()).collect::<Vec<_>>(),
            "threshold": change.threshold,
            "nonce": change.nonce,
            "signers_set": signers.id,
            "signatures": signatures,
        }))
    }

    fn authority_set_changes(&self) -> RpcResult<Value> {
        let chain = &self.ctx.chain;
        let next = chain.storage.head().map_or(0, |h| h.header.number.0).saturating_add(1);
        let set = chain.authority_set_at(Height(next)).map_err(internal)?;
        let steps = crate::set_steps::steps_to(&chain.storage, set.id).map_err(internal)?;
        serde_json::to_value(&steps).map_err(internal)
    }

    fn authority_pending(&self) -> RpcResult<Value> {
        let storage = &*self.ctx.chain.storage;
        let pending = governance::pending_change(storage).map_err(internal)?;
        let scheduled = governance::scheduled_change(storage).map_err(internal)?;
        Ok(json!({
            "proposal": pending.as_ref().map(pending_json),
            "scheduled": scheduled.as_ref().map(scheduled_json),
        }))
    }
}

impl Handlers {
    /// Signs `transaction` as this node's operator, checks it against the head (so a bad proof
    /// or a change already in flight is answered now, not dropped later), and pools it: the
    /// validator gossips its operator's pooled transactions.
    pub(super) fn sign_and_pool(&self, transaction: Transaction) -> Result<Hash32, ErrorObjectOwned> {
        let chain = &self.ctx.chain;
        let (operator, keys) = &self.ctx.signer;
        if transaction.operator() != operator {
            return Err(internal("a governance transaction of another operator"));
        }
        let key = match keys.transaction_key(&chain.storage, operator) {
            Ok(Some(key)) => key,
            Ok(None) => {
                return Err(invalid(format!("the chain does not register `{operator}` (yet, or any more)")))
            }
            Err(e) => return Err(invalid(e.to_string())),
        };
        let genesis = chain.ctx.genesis_hash;
        let signed = SignedTransaction::sign(transaction, key, &genesis);
        let parent = chain.storage.parent_ref();
        let next = parent.number.next().ok_or_else(|| internal("the chain is at its last height"))?;
        let set = chain.authority_set_at(next).map_err(internal)?;
        let proposer =
            set.members.iter().next().map(|m| m.id.clone()).ok_or_else(|| internal("no authorities"))?;
        let mut builder =
            BlockBuilder::new(&chain.ctx, &*chain.storage, parent, proposer, 0).map_err(internal)?;
        match builder.push(signed.clone()) {
            Ok(()) => {}
            Err(PushError::Invalid(error)) | Err(PushError::Later(error)) => {
                return Err(invalid(format!("the chain would refuse it: {error}")))
            }
            Err(PushError::Full) => return Err(internal("an empty block has no room for it")),
            Err(PushError::Fatal(error)) => return Err(internal(error)),
        }
        let id = signed.id(&genesis);
        match self.ctx.pool.add(id, signed) {
            Ok(()) | Err(PoolError::Duplicate(_)) => Ok(id),
            Err(e) => Err(internal(e)),
        }
    }
}

fn set_json(set: &AuthoritySet) -> Value {
    json!({
        "id": set.id,
        "from": set.from.0,
        "quorum": set.quorum(),
        "hash": set.hash().to_string(),
        "authorities": set.members.iter().map(|m| json!({
            "id": m.id.to_string(),
            "ed25519": m.signing_key.to_hex(),
            "evm_address": m.evm_address.to_hex(),
        })).collect::<Vec<_>>(),
    })
}

fn change_json(change: &governance::AuthorityChange) -> Value {
    let mut value = serde_json::to_value(change).unwrap_or(Value::Null);
    if let (governance::AuthorityChange::Add(add), Value::Object(map)) = (change, &mut value) {
        map.insert("peer_id".into(), Value::String(peer_id_of_ed25519(&add.network_key.0)));
    }
    value
}

fn pending_json(pending: &PendingChange) -> Value {
    json!({
        "id": pending.id.to_string(),
        "proposer": pending.proposer.to_string(),
        "change": change_json(&pending.change),
        "proposed_at": pending.proposed_at.0,
        "expires_at_ms": pending.expires_at_ms,
        "approvals": pending.approvals.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn scheduled_json(scheduled: &ScheduledChange) -> Value {
    json!({
        "proposal": scheduled.proposal.to_string(),
        "change": change_json(&scheduled.change),
        "approved_at": scheduled.approved_at.0,
        "set": set_json(&scheduled.set),
    })
}
