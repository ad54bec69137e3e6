//! The votes and senders seen at one height, per round, with equivocation detection.
//!
//! Votes are counted per value, as the paper counts messages: a value's tally is the number of
//! distinct validators that voted for it. An equivocating validator may so count towards two
//! values, which is safe (two quorums still share an honest validator) and needed for liveness:
//! honest validators that saw its two votes in different orders must still agree on the tallies.
//! At most two different votes are kept per validator and (round, step); the second is also
//! returned as the other half of the evidence.

use std::collections::{BTreeMap, BTreeSet};

use cdrchain_runtime::block::VoteKind;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{OperatorId, Round};

use crate::messages::SignedVote;

/// What adding a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Added {
    /// A first vote from this voter for this (round, step).
    New,
    /// The same vote again.
    Duplicate,
    /// A different vote from a voter who already voted: the first one is returned.
    Conflict(Box<SignedVote>),
}

#[derive(Debug, Default, Clone)]
pub(crate) struct RoundVotes {
    prevotes: BTreeMap<OperatorId, Vec<SignedVote>>,
    precommits: BTreeMap<OperatorId, Vec<SignedVote>>,
    /// Every validator that sent a valid message of any kind in this round (rule of line 55).
    senders: BTreeSet<OperatorId>,
}

impl RoundVotes {
    fn of(&self, kind: VoteKind) -> &BTreeMap<OperatorId, Vec<SignedVote>> {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }

    /// All votes of `kind`, whatever their value.
    pub(crate) fn count_any(&self, kind: VoteKind) -> usize {
        self.of(kind).len()
    }

    /// Validators that voted `kind` for exactly `value` (`None` is nil).
    pub(crate) fn count_for(&self, kind: VoteKind, value: &Option<Hash32>) -> usize {
        self.of(kind).values().filter(|votes| votes.iter().any(|v| &v.vote.block_hash == value)).count()
    }

    /// The block hashes that have at least `threshold` votes of `kind`.
    pub(crate) fn values_with(&self, kind: VoteKind, threshold: usize) -> Vec<Hash32> {
        let mut tally: BTreeMap<Hash32, usize> = BTreeMap::new();
        for votes in self.of(kind).values() {
            for vote in votes {
                if let Some(hash) = vote.vote.block_hash {
                    *tally.entry(hash).or_default() += 1;
                }
            }
        }
        tally.into_iter().filter(|(_, n)| *n >= threshold).map(|(h, _)| h).collect()
    }

    /// The votes of `kind` for `value`, in voter order.
    pub(crate) fn votes_for(&self, kind: VoteKind, value: &Option<Hash32>) -> Vec<&SignedVote> {
        self.of(kind)
            .values()
            .filter_map(|votes| votes.iter().find(|v| &v.vote.block_hash == value))
            .collect()
    }

    pub(crate) fn senders(&self) -> usize {
        self.senders.len()
    }
}

/// Votes of the current height.
#[derive(Debug, Default, Clone)]
pub(crate) struct VoteKeeper {
    rounds: BTreeMap<Round, RoundVotes>,
}

impl VoteKeeper {
    pub(crate) fn round(&self, round: Round) -> Option<&RoundVotes> {
        self.rounds.get(&round)
    }

    pub(crate) fn rounds(&self) -> impl Iterator<Item = (&Round, &RoundVotes)> {
        self.rounds.iter()
    }

    /// Records a vote whose signature the caller checked.
    pub(crate) fn add(&mut self, vote: SignedVote) -> Added {
        let entry = self.rounds.entry(vote.vote.round).or_default();
        entry.senders.insert(vote.voter.clone());
        let map = match vote.vote.kind {
            VoteKind::Prevote => &mut entry.prevotes,
            VoteKind::Precommit => &mut entry.precommits,
        };
        let votes = map.entry(vote.voter.clone()).or_default();
        if votes.iter().any(|v| v.vote == vote.vote) {
            return Added::Duplicate;
        }
        match votes.first().cloned() {
            None => {
                votes.push(vote);
                Added::New
            }
            Some(first) => {
                if votes.len() < 2 {
                    votes.push(vote);
                }
                Added::Conflict(Box::new(first))
            }
        }
    }

    /// Records that `sender` sent a valid proposal in `round`.
    pub(crate) fn add_sender(&mut self, round: Round, sender: &OperatorId) {
        self.rounds.entry(round).or_default().senders.insert(sender.clone());
    }

    pub(crate) fn clear(&mut self) {
        self.rounds.clear();
    }
}
