//! Following the chain's authority-set changes (issue #27): after every commit, and at start,
//! the machine is told the set of its next height (sync may have carried storage past a change)
//! and the scheduled one, each with this node's identity in it, before it enters those heights.

use cdrchain_consensus::{Input, Validators};
use cdrchain_runtime::crypto::public_key;
use cdrchain_runtime::governance;
use cdrchain_runtime::ids::{Height, OperatorId};
use ed25519_dalek::SigningKey;

use super::{next_height, Driver};
use crate::NodeError;

impl Driver {
    /// Gives the machine every set it does not know yet, and keeps the set of the next height
    /// for restarting the machine. Fed straight in (not queued): a sync is announced to the
    /// machine right after, and it must enter the new height with the right set.
    pub(super) fn follow_set_changes(&mut self) -> Result<(), NodeError> {
        let next = next_height(&self.chain);
        let mut heights = vec![next];
        if let Some(scheduled) = governance::scheduled_change(&*self.chain.storage)? {
            if scheduled.set.from > next {
                heights.push(scheduled.set.from);
            }
        }
        for from in heights {
            let validators = self.chain.validators_at(from)?;
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
        self.validators = self.chain.validators_at(next)?;
        Ok(())
    }

    /// This validator's identity in `validators`, if it is a member with the key this node holds.
    pub(super) fn identity_in(
        &self,
        validators: &Validators,
        from: Height,
    ) -> Option<(OperatorId, SigningKey)> {
        identity_in(validators, &self.me, &self.key, from)
    }
}

/// `me` with `key` if `validators` has it with that key; a member whose key the chain rotated
/// to one this node does not hold follows without signing, and says so.
pub(super) fn identity_in(
    validators: &Validators,
    me: &OperatorId,
    key: &SigningKey,
    from: Height,
) -> Option<(OperatorId, SigningKey)> {
    let registered = validators.key_of(me)?;
    if *registered == public_key(key) {
        return Some((me.clone(), key.clone()));
    }
    tracing::error!(
        target: "cdrchain::consensus",
        "from height {from} the chain knows `{me}` by the key {registered}, not this node's {}: it follows \
         without signing; restart it with the new key (docs/operations.md, rotating keys)",
        public_key(key)
    );
    None
}
