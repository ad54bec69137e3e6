//! Consensus for cdrchain: round-robin-proposer BFT of the Tendermint family ("The latest gossip
//! on BFT consensus", Buchman, Kwon, Milosevic 2018), written as a sans-IO state machine.
//!
//! - [`machine`]: one validator's state machine ([`Consensus`]): inputs are messages, timeouts
//!   and answers to its requests; outputs are messages to send, timers, WAL records (durable
//!   before anything after them leaves the node), blocks to build or check, decisions, evidence.
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
mod votes;

pub use machine::{
    Consensus, Decision, Input, Output, Params, Step, Timeout, TimeoutKind, Verdict, WalRecord,
};
pub use messages::{
    ConsensusMessage, Evidence, MessageError, Proposal, SignedProposal, SignedVote, Validators,
};

use cdrchain_runtime::ids::{Height, OperatorId, Round};

/// The proposer of `(height, round)`: `authorities[(height + round) mod n]`. `None` only for an
/// empty authority set, which a valid chain spec never has.
pub fn proposer(authorities: &[OperatorId], height: Height, round: Round) -> Option<&OperatorId> {
    let n = u64::try_from(authorities.len()).ok().filter(|n| *n > 0)?;
    let slot = (height.0 % n + u64::from(round.0) % n) % n;
    authorities.get(usize::try_from(slot).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<OperatorId> {
        names.iter().map(|n| OperatorId::new(*n).unwrap()).collect()
    }

    #[test]
    fn proposers_rotate_by_height_and_round() {
        let set = ids(&["alice", "bob", "charlie", "dave"]);
        let at = |h, r| proposer(&set, Height(h), Round(r)).unwrap().as_str();
        assert_eq!(at(0, 0), "alice");
        assert_eq!(at(1, 0), "bob");
        assert_eq!(at(1, 1), "charlie");
        assert_eq!(at(3, 2), "bob");
        assert_eq!(
            at(u64::MAX, u32::MAX),
            set[((u64::MAX % 4 + u64::from(u32::MAX) % 4) % 4) as usize].as_str()
        );
        assert!(proposer(&[], Height(1), Round(0)).is_none());
    }
}
