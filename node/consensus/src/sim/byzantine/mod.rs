//! Byzantine validators for the simulator, one behaviour per file. Each wraps an honest state
//! machine and rewrites what it sends; the simulator records every equivocation it commits so
//! that the checkers can demand evidence of it.

mod equivocating_proposer;
mod equivocating_voter;
mod replayer;
mod silent;

pub use equivocating_proposer::EquivocatingProposer;
pub use equivocating_voter::EquivocatingVoter;
pub use replayer::Replayer;
pub use silent::Silent;

use cdrchain_runtime::ids::OperatorId;
use ed25519_dalek::SigningKey;

use super::rng::Rng;
use super::Values;
use crate::messages::{ConsensusMessage, Validators};

/// A message and the validators (by index) it goes to.
#[derive(Debug, Clone)]
pub struct Send {
    pub to: Vec<usize>,
    pub message: ConsensusMessage,
}

/// What an adversary can use.
#[derive(Debug)]
pub struct Context<'a> {
    pub validators: &'a Validators,
    pub id: &'a OperatorId,
    pub key: &'a SigningKey,
    /// This validator's index.
    pub me: usize,
    pub n: usize,
    pub rng: &'a mut Rng,
    pub values: &'a mut Values,
    /// Pairs of conflicting messages sent, for the evidence checker.
    pub equivocations: &'a mut Vec<(ConsensusMessage, ConsensusMessage)>,
}

impl Context<'_> {
    /// Every other validator.
    pub fn everyone(&self) -> Vec<usize> {
        (0..self.n).filter(|i| *i != self.me).collect()
    }

    /// The others split in two halves by index parity.
    pub fn halves(&self) -> (Vec<usize>, Vec<usize>) {
        self.everyone().into_iter().partition(|i| i % 2 == 0)
    }
}

/// A Byzantine behaviour.
pub trait Adversary: std::fmt::Debug {
    /// Rewrites one broadcast of the wrapped honest machine.
    fn on_broadcast(&mut self, ctx: &mut Context<'_>, message: ConsensusMessage) -> Vec<Send>;

    /// A silent validator runs nothing at all.
    fn is_silent(&self) -> bool {
        false
    }
}
