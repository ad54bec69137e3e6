//! A voter that signs two different votes for every (height, round, step): the honest one to half
//! of the validators and a conflicting one (nil for a block, a made-up block for nil) to the other
//! half; when it sends again, both go to everyone.

use std::collections::BTreeMap;

use cdrchain_runtime::block::VoteKind;
use cdrchain_runtime::ids::{Height, Round};

use super::{Adversary, Context, Send};
use crate::messages::ConsensusMessage;

#[derive(Debug, Default)]
pub struct EquivocatingVoter {
    twins: BTreeMap<(Height, Round, VoteKind), ConsensusMessage>,
}

impl Adversary for EquivocatingVoter {
    fn on_broadcast(&mut self, ctx: &mut Context<'_>, message: ConsensusMessage) -> Vec<Send> {
        let ConsensusMessage::Vote(honest) = &message else {
            return vec![Send { to: ctx.everyone(), message }];
        };
        let key = (honest.vote.height, honest.vote.round, honest.vote.kind);
        if let Some(twin) = self.twins.get(&key) {
            return vec![
                Send { to: ctx.everyone(), message: message.clone() },
                Send { to: ctx.everyone(), message: twin.clone() },
            ];
        }
        let mut other = honest.vote.clone();
        other.block_hash = match honest.vote.block_hash {
            Some(_) => None,
            None => Some(ctx.values.fresh(ctx.rng.chance(500))),
        };
        let twin = ConsensusMessage::Vote(ctx.validators.sign_vote(ctx.key, ctx.id, other));
        self.twins.insert(key, twin.clone());
        ctx.equivocations.push((message.clone(), twin.clone()));
        let (left, right) = ctx.halves();
        vec![Send { to: left, message }, Send { to: right, message: twin }]
    }
}
