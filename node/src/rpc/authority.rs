//! `authority_*`: the authority set in force at a height and the change in flight (issue #27).

use cdrchain_chain_spec::keys::peer_id_of_ed25519;
use cdrchain_runtime::governance::{self, AuthoritySet, PendingChange, ScheduledChange};
use cdrchain_runtime::ids::Height;
use jsonrpsee::core::RpcResult;
use serde_json::{json, Value};

use super::api::AuthorityApiServer;
use super::{internal, invalid, Handlers};

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
            // The state keeps the set in force and the next one, not history (proofs carry the
            // chain of changes instead).
            return Err(invalid(format!(
                "height {height} is before the current set's first height {}: this node answers from {} on",
                set.from.0, set.from.0
            )));
        }
        Ok(set_json(&set))
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
