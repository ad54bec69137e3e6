//! Following the chain's authority-set changes (issue #27): after every commit, and at start,
//! the machine is told the set of its next height (sync may have carried storage past a change)
//! and the scheduled one, each with this node's identity in it, before it enters those heights;
//! and the network lets in exactly the chain's members (`allowed_peers`).

use std::collections::HashMap;

use cdrchain_chain_spec::keys::peer_id_of_ed25519;
use cdrchain_consensus::{Input, Validators};
use cdrchain_network::PeerId;
use cdrchain_runtime::block::MAX_AUTHORITIES;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::crypto::PublicKey;
use cdrchain_runtime::governance::{self, AuthorityChange, SetId};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId};
use cdrchain_runtime::state::{StateKey, StateView};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;

use super::{next_height, Driver};
use crate::chain::Chain;
use crate::keys::KeyRing;
use crate::NodeError;

/// What the node last saw of the chain's governance: the set in force, the scheduled change
/// (and whether it is in force at the next height) and the open proposal. While it stays the same
/// after a commit, neither the machine's sets nor the allow list can have changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GovernanceSeen {
    set_id: Option<SetId>,
    scheduled: Option<(Hash32, bool)>,
    pending: Option<Hash32>,
}

impl Driver {
    /// Gives the machine every set it does not know yet, keeps the set of the next height for
    /// restarting the machine, and the allow list equal to the members. Fed straight in (not
    /// queued): a sync is announced to the machine right after, and it must enter the new height
    /// with the right set. After most commits nothing changed, and three state reads say so.
    pub(super) fn follow_set_changes(&mut self) -> Result<(), NodeError> {
        let storage = &*self.chain.storage;
        let next = next_height(&self.chain);
        let scheduled = governance::scheduled_change(storage)?;
        let seen = GovernanceSeen {
            set_id: governance::set_id(storage)?,
            scheduled: scheduled.as_ref().map(|s| (s.proposal, s.set.from <= next)),
            pending: governance::pending_change(storage)?.map(|p| p.id),
        };
        if self.governance_seen.as_ref() == Some(&seen) {
            return Ok(());
        }
        let current = self.chain.validators_at(next)?;
        let mut sets = vec![(next, current.clone())];
        if let Some(scheduled) = scheduled.filter(|s| s.set.from > next) {
            let validators = Validators::new(self.chain.ctx.genesis_hash, scheduled.set.signing_keys())
                .ok_or_else(|| NodeError::Config("the scheduled authority set is empty".into()))?;
            sets.push((scheduled.set.from, validators));
        }
        for (from, validators) in sets {
            if self.machine.validators_at(from) == &validators {
                continue;
            }
            tracing::info!(
                target: "cdrchain::consensus",
                "the authority set from height {from}: {}",
                validators.ids().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
            let me = self.identity_in(&validators, from);
            let (outputs, _) = self.machine.handle(Input::SetChange { from, validators, me });
            debug_assert!(outputs.is_empty(), "learning a set produces no outputs");
        }
        self.validators = current;
        self.follow_members()?;
        self.governance_seen = Some(seen);
        Ok(())
    }

    /// This validator's identity in `validators`, if it is a member with the key this node holds.
    pub(super) fn identity_in(
        &self,
        validators: &Validators,
        from: Height,
    ) -> Option<(OperatorId, SigningKey)> {
        identity_in(validators, &self.me, &self.keys, from)
    }
}

/// `me` with the key of `keys` that `validators` has for it; a member whose key the chain
/// rotated to one this node does not hold follows without signing, and says so.
pub(super) fn identity_in(
    validators: &Validators,
    me: &OperatorId,
    keys: &KeyRing,
    from: Height,
) -> Option<(OperatorId, SigningKey)> {
    let registered = validators.key_of(me)?;
    if let Some(key) = keys.signing_for(registered) {
        return Some((me.clone(), key.clone()));
    }
    tracing::error!(
        target: "cdrchain::consensus",
        "from height {from} the chain knows `{me}` by the key {registered}, not this node's {}: it follows \
         without signing; restart it with that key (--key, or --next-key before a rotation; \
         docs/operations.md, rotating keys)",
        keys.signing_publics().iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ")
    );
    None
}

/// The peers the chain lets in now, by operator: the chain spec's operators and those added by
/// governance, less the removed ones, plus the joiner of an open or scheduled add (so that its
/// node can sync before its votes count).
pub fn allowed_peers(chain: &Chain) -> Result<HashMap<PeerId, OperatorId>, NodeError> {
    let storage = &*chain.storage;
    let retired = |id: &OperatorId| -> Result<bool, NodeError> {
        Ok(storage.get(&StateKey::Retired(id.clone()).encode())?.is_some())
    };
    let mut peers = HashMap::new();
    for operator in &chain.spec.operators {
        if retired(&operator.id)? {
            continue;
        }
        match operator.peer_id.parse::<PeerId>() {
            Ok(peer) => {
                peers.insert(peer, operator.id.clone());
            }
            Err(e) => {
                tracing::warn!(target: "cdrchain::network", "operator `{}`'s peer id does not parse: {e}", operator.id)
            }
        }
    }
    let mut joiners: Vec<(OperatorId, PublicKey)> = Vec::new();
    let prefix = [NETWORK_KEY_TAG];
    for (key, value) in storage.pairs_with_prefix(&prefix, MAX_AUTHORITIES * 4)? {
        let (Ok(StateKey::NetworkKey(id)), Ok(network_key)) =
            (decode_exact::<StateKey>(&key), decode_exact::<PublicKey>(&value))
        else {
            continue;
        };
        if !retired(&id)? {
            joiners.push((id, network_key));
        }
    }
    let in_flight = [
        governance::pending_change(storage)?.map(|p| p.change),
        governance::scheduled_change(storage)?.map(|s| s.change),
    ];
    for change in in_flight.into_iter().flatten() {
        if let AuthorityChange::Add(add) = change {
            joiners.push((add.id, add.network_key));
        }
    }
    for (id, network_key) in joiners {
        match peer_id_of_ed25519(&network_key.0).parse::<PeerId>() {
            Ok(peer) => {
                peers.insert(peer, id);
            }
            Err(e) => {
                tracing::warn!(target: "cdrchain::network", "the network key of `{id}` is not a peer id: {e}")
            }
        }
    }
    Ok(peers)
}

/// The first byte of every [`StateKey::NetworkKey`] key: its SCALE variant index.
const NETWORK_KEY_TAG: u8 = 13;

impl Driver {
    /// Keeps the network's allow list and the peer-to-operator map equal to the chain's members.
    pub(super) fn follow_members(&mut self) -> Result<(), NodeError> {
        let Some(net) = self.net.clone() else { return Ok(()) };
        let peers = allowed_peers(&self.chain)?;
        if peers == self.operators {
            return Ok(());
        }
        let names = |map: &HashMap<PeerId, OperatorId>| -> Vec<String> {
            let mut names: Vec<String> = map.values().map(ToString::to_string).collect();
            names.sort_unstable();
            names
        };
        tracing::info!(
            target: "cdrchain::network",
            "the chain's members changed: peers of {} allowed (were {})",
            names(&peers).join(", "),
            names(&self.operators).join(", ")
        );
        let list: Vec<PeerId> = peers.keys().copied().collect();
        self.operators = peers;
        tokio::spawn(async move {
            if let Err(e) = net.set_allowed(list).await {
                tracing::warn!(target: "cdrchain::network", "the allow list was not updated: {e}");
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use cdrchain_runtime::ids::OperatorId;
    use cdrchain_runtime::state::StateKey;
    use parity_scale_codec::Encode;

    #[test]
    fn the_network_key_tag_is_the_variant_index() {
        let key = StateKey::NetworkKey(OperatorId::new("erin").unwrap()).encode();
        assert_eq!(key[0], super::NETWORK_KEY_TAG);
    }
}
