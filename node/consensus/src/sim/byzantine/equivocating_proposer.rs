//! A proposer that signs two different blocks for the same (height, round): the honest one to
//! half of the validators, another (valid or not, by the seed) to the other half. When it sends
//! again (re-broadcast), it sends both to everyone, so that honest validators see the conflict.

use std::collections::BTreeMap;

use cdrchain_runtime::ids::{Height, Round};

use super::{Adversary, Context, Send};
use crate::messages::{ConsensusMessage, Proposal};

#[derive(Debug, Default)]
pub struct EquivocatingProposer {
    twins: BTreeMap<(Height, Round), ConsensusMessage>,
}

impl Adversary for EquivocatingProposer {
    fn on_broadcast(&mut self, ctx: &mut Context<'_>, message: ConsensusMessage) -> Vec<Send> {
        let ConsensusMessage::Proposal(honest) = &message else {
            return vec![Send { to: ctx.everyone(), message }];
        };
        let key = (honest.proposal.height, honest.proposal.round);
        if let Some(twin) = self.twins.get(&key) {
            return vec![
                Send { to: ctx.everyone(), message: message.clone() },
                Send { to: ctx.everyone(), message: twin.clone() },
            ];
        }
        let valid = ctx.rng.chance(500);
        let other = Proposal { block_hash: ctx.values.fresh(valid), ..honest.proposal.clone() };
        let twin = ConsensusMessage::Proposal(ctx.validators.sign_proposal(ctx.key, ctx.id, other));
        self.twins.insert(key, twin.clone());
        ctx.equivocations.push((message.clone(), twin.clone()));
        let (left, right) = ctx.halves();
        vec![Send { to: left, message }, Send { to: right, message: twin }]
    }
}
