//! A validator that never sends anything (crashed for good, or withholding its votes).

use super::{Adversary, Context, Send};
use crate::messages::ConsensusMessage;

#[derive(Debug, Default)]
pub struct Silent;

impl Adversary for Silent {
    fn on_broadcast(&mut self, _ctx: &mut Context<'_>, _message: ConsensusMessage) -> Vec<Send> {
        Vec::new()
    }

    fn is_silent(&self) -> bool {
        true
    }
}
