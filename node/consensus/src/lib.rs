//! Consensus for cdrchain: round-robin-proposer BFT of the Tendermint family ("The latest gossip
//! on BFT consensus", Buchman, Kwon, Milosevic 2018), written as a sans-IO state machine.
//!
//! - [`machine`]: one validator's state machine ([`Consensus`]): inputs are messages, timeouts
//!   and answers to its requests; outputs are messages to send, timers, WAL records (durable
//!   before anything after them leaves the node), blocks to build or check, decisions, evidence.
//!   Its inputs, outputs and WAL record are defined in `types.rs` and re-exported from it.
//! - [`messages`]: signed proposals and votes, evidence of equivocation, the authority set.
//! - [`sim`]: a deterministic simulator that drives n machines over a seeded lossy network with
//!   crashes, restarts and Byzantine validators, and checks agreement, validity, progress and
//!   evidence.
//!
//! Nothing here reads a clock, draws randomness or does IO: time and messages are inputs, effects
//! are outputs.

pub mod machine;
pub mod messages;
pub mod sim;
mod types;
mod votes;
pub mod wire;

pub use machine::{
    Consensus, Decision, Input, Output, Params, Step, Timeout, TimeoutKind, Verdict, WalRecord,
};
pub use messages::{
    ConsensusMessage, Evidence, MessageError, Proposal, SignedProposal, SignedVote, Validators,
};

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::hash::Hash32;
    use cdrchain_runtime::ids::{Height, OperatorId, Round};

    #[test]
    fn proposers_rotate_by_height_and_round() {
        let list = ["alice", "bob", "charlie", "dave"]
            .iter()
            .map(|n| (OperatorId::new(*n).unwrap(), cdrchain_runtime::crypto::PublicKey([0; 32])))
            .collect::<Vec<_>>();
        let set = Validators::new(Hash32::ZERO, list.clone()).unwrap();
        let at = |h, r| set.proposer(Height(h), Round(r)).as_str();
        assert_eq!(at(0, 0), "alice");
        assert_eq!(at(1, 0), "bob");
        assert_eq!(at(1, 1), "charlie");
        assert_eq!(at(3, 2), "bob");
        assert_eq!(
            at(u64::MAX, u32::MAX),
            list[((u64::MAX % 4 + u64::from(u32::MAX) % 4) % 4) as usize].0.as_str()
        );
        assert!(Validators::new(Hash32::ZERO, Vec::new()).is_none());
    }
}
