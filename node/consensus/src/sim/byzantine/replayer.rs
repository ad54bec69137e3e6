//! A validator that votes and proposes honestly but replays its own earlier messages, old rounds
//! and heights included, with every broadcast (review M2: on the network a replay is the same
//! signed message re-wrapped with a fresh nonce). Replays are not equivocations: the machines
//! must count each vote once and ignore what is stale, and the chain must go on.

use super::{Adversary, Context, Send};
use crate::messages::ConsensusMessage;

/// Own messages remembered for replay.
const REPLAY_HISTORY_MESSAGES: usize = 64;
/// Old messages replayed with each broadcast.
const REPLAYS_PER_BROADCAST: usize = 3;

#[derive(Debug, Default)]
pub struct Replayer {
    history: Vec<ConsensusMessage>,
}

impl Adversary for Replayer {
    fn on_broadcast(&mut self, ctx: &mut Context<'_>, message: ConsensusMessage) -> Vec<Send> {
        let mut sends = vec![Send { to: ctx.everyone(), message: message.clone() }];
        if !self.history.is_empty() {
            for _ in 0..REPLAYS_PER_BROADCAST {
                let old = self.history[ctx.rng.index(self.history.len())].clone();
                sends.push(Send { to: ctx.everyone(), message: old });
            }
        }
        if self.history.len() == REPLAY_HISTORY_MESSAGES {
            self.history.remove(0);
        }
        self.history.push(message);
        sends
    }
}
