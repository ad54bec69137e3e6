//! The consensus state machine of one validator at one height at a time: Algorithm 1 of "The
//! latest gossip on BFT consensus" (Buchman, Kwon, Milosevic 2018), sans IO.
//!
//! [`Consensus::handle`] takes an [`Input`] (a message, a timeout, the answer to a request) and
//! returns [`Output`]s for the driver to carry out **in order**: a [`Output::Wal`] record must be
//! durable (synced) before any output after it leaves the node, which is what makes a restarted
//! validator unable to sign a conflicting message. Nothing here reads a clock, draws randomness
//! or does IO; timeouts are requested as outputs and come back as inputs.
//!
//! Departures from the paper, each for a reason:
//! - Proposals carry a block hash; the node attaches the block on the wire and asks the machine to
//!   judge it only through [`Output::Execute`] / [`Input::Executed`] (the paper's `valid(v)`).
//! - Round 0 of a height waits for [`Input::Ready`] (the node has transactions, or the idle
//!   heartbeat is due) or for another validator's message at this height, so that an idle chain
//!   does not build empty blocks back to back. Later rounds start at once.
//! - Own messages are re-broadcast on a timer ([`TimeoutKind::Rebroadcast`]) because gossip may
//!   lose them and a restarted peer has forgotten them, and a round's messages are re-sent to a
//!   validator seen still in that round; re-sending a signed message is always safe.
//! - Messages for the next height are kept (bounded) and replayed after the decision; messages
//!   further ahead only raise [`Output::Ahead`] so the node can sync.
//!
//! This file holds the state and the transitions on each input; the upon-rules are in
//! `machine/rules.rs`, the types that go in and out in `types.rs` (re-exported here).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cdrchain_runtime::block::{Vote, VoteKind};
use cdrchain_runtime::governance::AUTHORITY_CHANGE_DELAY_BLOCKS;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use ed25519_dalek::SigningKey;

use crate::messages::{ConsensusMessage, Evidence, Proposal, SignedProposal, SignedVote, Validators};
use crate::votes::{Added, VoteKeeper};

mod rules;

pub use crate::types::{Decision, Input, Output, Params, Step, Timeout, TimeoutKind, Verdict, WalRecord};

/// Rounds further ahead of ours than this are ignored (bounds memory per height).
pub const MAX_ROUNDS_AHEAD: u32 = 1_024;
/// Distinct proposals kept per round: the first, and one conflicting (the evidence).
pub const MAX_PROPOSALS_PER_ROUND: usize = 2;
/// Rounds of the next height whose messages are kept until we get there: a few, so that a
/// validator that finishes a height a little before us does not have to resend its first rounds.
pub const NEXT_HEIGHT_BUFFER_ROUNDS: usize = 8;
/// Messages one validator signs per round: a proposal, a prevote and a precommit.
const MESSAGES_PER_VALIDATOR_ROUND: usize = 3;
/// Next-height messages kept per signer; the whole buffer holds this many per validator.
pub const MAX_NEXT_HEIGHT_MESSAGES_PER_VALIDATOR: usize =
    MESSAGES_PER_VALIDATOR_ROUND * NEXT_HEIGHT_BUFFER_ROUNDS;
/// Passes of the upon-rules per input. Each rule fires only when it changes the state and none
/// can fire forever, so evaluation ends by itself well before; this is a second guard.
const MAX_RULE_PASSES: usize = 64;

const _: () = assert!(MAX_PROPOSALS_PER_ROUND >= 2, "a conflicting proposal is kept as evidence");

/// The rules that fire only once per round ("for the first time").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Once {
    PrevoteTimer,
    Lock,
    PrecommitTimer,
}

/// The message a validator signs at most once per round: the key of what it signed. The order
/// (proposal, prevote, precommit) is the order `WalRecord::signed` lists a round's messages in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Slot {
    Proposal,
    Prevote,
    Precommit,
}

impl Slot {
    fn of_vote(kind: VoteKind) -> Slot {
        match kind {
            VoteKind::Prevote => Slot::Prevote,
            VoteKind::Precommit => Slot::Precommit,
        }
    }
}

/// One validator's consensus state. Observers (`me = None`) follow without signing.
#[derive(Debug)]
pub struct Consensus {
    /// The authority set at this height: who may sign, who proposes when, and the quorums.
    validators: Validators,
    /// This validator's identity and signing key; `None` for an observer, which never signs.
    me: Option<(OperatorId, SigningKey)>,
    /// Sets the chain approved for later heights, by first height, with this node's identity in
    /// each ([`Input::SetChange`]); the machine moves to one when it enters that height.
    scheduled: BTreeMap<Height, (Validators, Option<(OperatorId, SigningKey)>)>,
    /// Timeout durations.
    params: Params,

    /// The height being decided (the paper's h_p).
    height: Height,
    /// The round within it (round_p).
    round: Round,
    /// The step within the round (step_p).
    step: Step,
    /// The value this validator is locked on and the round it locked in (lockedValue/Round_p).
    locked: Option<(Round, Hash32)>,
    /// The last value seen with a quorum of prevotes, and its round (validValue/Round_p): what
    /// this validator re-proposes.
    valid: Option<(Round, Hash32)>,
    /// Whether round 0 may start: the node has work, or another validator has started.
    ready: bool,

    /// Proposals received per round of this height: the first, and at most one conflicting.
    proposals: BTreeMap<Round, Vec<SignedProposal>>,
    /// The node's verdict on each proposed block (the paper's valid(v)).
    validity: BTreeMap<Hash32, bool>,
    /// Blocks handed to the node for execution whose verdict has not come back.
    executing: BTreeSet<Hash32>,
    /// Every vote of this height, by round.
    votes: VoteKeeper,
    /// What this validator signed at this height, at most one per (round, slot): it re-sends
    /// these and never signs a different one.
    signed: BTreeMap<(Round, Slot), ConsensusMessage>,
    /// The once-per-round rules that have fired.
    fired: BTreeSet<(Round, Once)>,
    /// Equivocations already reported, so that each gives one piece of evidence.
    evidence_seen: BTreeSet<(OperatorId, Round, Slot)>,
    /// Messages of the next height, replayed once we get there (bounded, see
    /// `MAX_NEXT_HEIGHT_MESSAGES_PER_VALIDATOR`).
    next_height: VecDeque<ConsensusMessage>,
    /// (validator, round) pairs we re-sent our messages of that round for, since the last
    /// re-broadcast timer.
    helped: BTreeSet<(OperatorId, Round)>,
}

impl Consensus {
    /// A machine at `height`, resuming from `wal` if it is a record of that height (a restart in
    /// the middle of a height). Returns the outputs of starting (re-broadcasts, timers).
    pub fn new(
        validators: Validators,
        me: Option<(OperatorId, SigningKey)>,
        params: Params,
        height: Height,
        wal: Option<WalRecord>,
    ) -> (Self, Vec<Output>) {
        let mut machine = Consensus {
            validators,
            me,
            scheduled: BTreeMap::new(),
            params,
            height,
            round: Round(0),
            step: Step::Propose,
            locked: None,
            valid: None,
            ready: false,
            proposals: BTreeMap::new(),
            validity: BTreeMap::new(),
            executing: BTreeSet::new(),
            votes: VoteKeeper::default(),
            signed: BTreeMap::new(),
            fired: BTreeSet::new(),
            evidence_seen: BTreeSet::new(),
            next_height: VecDeque::new(),
            helped: BTreeSet::new(),
        };
        let mut out = Vec::new();
        match wal {
            Some(record) if record.height == height => machine.resume(record, &mut out),
            _ => machine.start_round(Round(0), &mut out),
        }
        (machine, out)
    }

    pub fn height(&self) -> Height {
        self.height
    }

    pub fn round(&self) -> Round {
        self.round
    }

    pub fn step(&self) -> Step {
        self.step
    }

    pub fn locked(&self) -> Option<(Round, Hash32)> {
        self.locked
    }

    /// The latest value seen with a polka, and its round (validValue/Round_p).
    pub fn valid(&self) -> Option<(Round, Hash32)> {
        self.valid
    }

    /// The set at the current height.
    pub fn validators(&self) -> &Validators {
        &self.validators
    }

    /// The set that signs at `height` (the current one or later) as far as this machine knows:
    /// exact below the current height + [`AUTHORITY_CHANGE_DELAY_BLOCKS`] (a change in force by
    /// then was approved in a committed block and fed in), a guess beyond. Every scheduled set is
    /// for a later height than the current one (`enter_height` takes those that came).
    pub fn validators_at(&self, height: Height) -> &Validators {
        self.scheduled
            .range(..=height)
            .next_back()
            .map_or(&self.validators, |(_, (validators, _))| validators)
    }

    /// Whether the set at `height` is certainly known (see [`Consensus::validators_at`]).
    fn knows_set_at(&self, height: Height) -> bool {
        height.0 < self.height.0.saturating_add(AUTHORITY_CHANGE_DELAY_BLOCKS)
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether this node is the proposer of the current round.
    pub fn is_proposer(&self) -> bool {
        self.me.as_ref().is_some_and(|(id, _)| id == self.validators.proposer(self.height, self.round))
    }

    /// The record a restart would resume from.
    pub fn wal_record(&self) -> WalRecord {
        // Everything signed at this height is kept (a few hundred bytes per round): a validator
        // that fell behind may need any of it again (see `help_laggard`).
        WalRecord {
            height: self.height,
            round: self.round,
            step: self.step,
            locked: self.locked,
            valid: self.valid,
            signed: self.signed.values().cloned().collect(),
            polka: self
                .valid
                .map(|(round, value)| {
                    self.polka(round, value)
                        .into_iter()
                        .filter_map(|m| match m {
                            ConsensusMessage::Vote(v) => Some(v),
                            ConsensusMessage::Proposal(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Feeds one input; returns what the driver must do, in order, and (for messages) the verdict.
    pub fn handle(&mut self, input: Input) -> (Vec<Output>, Verdict) {
        let mut out = Vec::new();
        let verdict = match input {
            Input::Ready => {
                self.on_ready(&mut out);
                Verdict::Accepted
            }
            Input::Message(message) => self.on_message(message, &mut out),
            Input::Timeout(timeout) => {
                self.on_timeout(timeout, &mut out);
                Verdict::Accepted
            }
            Input::Built { height, round, block_hash } => {
                self.on_built(height, round, block_hash, &mut out);
                Verdict::Accepted
            }
            Input::Executed { height, block_hash, valid } => {
                if height == self.height {
                    self.executing.remove(&block_hash);
                    self.validity.insert(block_hash, valid);
                    self.evaluate(&mut out);
                }
                Verdict::Accepted
            }
            Input::SetChange { from, validators, me } => {
                if from > self.height {
                    self.scheduled.insert(from, (validators, me));
                    Verdict::Accepted
                } else {
                    // The machine was built with the set of its height; a set for an earlier
                    // height is of no use now.
                    Verdict::Ignored
                }
            }
            Input::Committed { height } => {
                if height >= self.height {
                    if let Some(next) = height.next() {
                        self.enter_height(next, &mut out);
                    }
                }
                Verdict::Accepted
            }
        };
        (out, verdict)
    }

    // ---------------------------------------------------------------------------------------
    // Starting heights and rounds.

    fn resume(&mut self, record: WalRecord, out: &mut Vec<Output>) {
        self.round = record.round;
        self.step = record.step;
        self.locked = record.locked;
        self.valid = record.valid;
        self.ready = true;
        for vote in record.polka {
            self.votes.add(vote);
        }
        for message in record.signed {
            match &message {
                ConsensusMessage::Proposal(p) => {
                    self.signed.insert((p.proposal.round, Slot::Proposal), message.clone());
                    // Judged again like anyone's: the node may no longer hold the block it built,
                    // and must not decide a block it cannot commit.
                    self.record_proposal(p.clone(), out);
                }
                ConsensusMessage::Vote(v) => {
                    self.signed.insert((v.vote.round, Slot::of_vote(v.vote.kind)), message.clone());
                    self.votes.add(v.clone());
                }
            }
        }
        // Send again what we signed in this round: peers may not have it.
        for message in self.own_messages_of(self.round) {
            out.push(Output::Broadcast(message));
        }
        match self.step {
            // As at the start of the round: propose (the same proposal again, or build one), or
            // wait for the proposer.
            Step::Propose => self.round_actions(out),
            // Re-arm the timer of the step we were in; each leads only to a nil vote or the next
            // round, which is always safe.
            Step::Prevote => {
                self.schedule(TimeoutKind::Rebroadcast, out);
                self.schedule(TimeoutKind::Prevote, out);
            }
            Step::Precommit => {
                self.schedule(TimeoutKind::Rebroadcast, out);
                self.schedule(TimeoutKind::Precommit, out);
            }
        }
        self.evaluate(out);
    }

    fn enter_height(&mut self, height: Height, out: &mut Vec<Output>) {
        self.height = height;
        // The set in force from this height on, if the chain changed it.
        while let Some(entry) = self.scheduled.first_entry() {
            if *entry.key() > height {
                break;
            }
            let (validators, me) = entry.remove();
            self.validators = validators;
            self.me = me;
        }
        self.round = Round(0);
        self.step = Step::Propose;
        self.locked = None;
        self.valid = None;
        self.ready = false;
        self.proposals.clear();
        self.validity.clear();
        self.executing.clear();
        self.votes.clear();
        self.signed.clear();
        self.fired.clear();
        self.evidence_seen.clear();
        self.helped.clear();
        self.start_round(Round(0), out);
        let buffered: Vec<ConsensusMessage> = self.next_height.drain(..).collect();
        for message in buffered {
            if message.height() == height {
                self.accept_verified(message, out);
            }
        }
        self.evaluate(out);
    }

    /// Algorithm 1, lines 11–21: StartRound(round).
    fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        self.round = round;
        self.step = Step::Propose;
        if round == Round(0) && !self.ready {
            // Round 0 waits for work (see the module docs).
            return;
        }
        self.round_actions(out);
    }

    fn round_actions(&mut self, out: &mut Vec<Output>) {
        self.schedule(TimeoutKind::Rebroadcast, out);
        if self.is_proposer() {
            if let Some(message) = self.signed.get(&(self.round, Slot::Proposal)) {
                // Already proposed in this round (before a restart): the same proposal again.
                out.push(Output::Broadcast(message.clone()));
            } else if let Some((valid_round, value)) = self.valid {
                // Line 15: re-propose the valid value with its proof-of-lock round.
                self.propose(value, Some(valid_round), out);
            } else {
                // Line 18: getValue().
                out.push(Output::Build { height: self.height, round: self.round });
            }
        }
        // Line 21, for the proposer too: if its own block never comes (the node could not build
        // it), it prevotes nil like everyone else instead of waiting forever. Always safe.
        self.schedule(TimeoutKind::Propose, out);
    }

    fn on_ready(&mut self, out: &mut Vec<Output>) {
        if self.ready {
            return;
        }
        self.ready = true;
        if self.round == Round(0) && self.step == Step::Propose {
            self.round_actions(out);
            self.evaluate(out);
        }
    }

    fn on_built(&mut self, height: Height, round: Round, block_hash: Hash32, out: &mut Vec<Output>) {
        let current = height == self.height && round == self.round && self.step == Step::Propose;
        if !current || !self.is_proposer() || self.signed.contains_key(&(round, Slot::Proposal)) {
            return;
        }
        // We built it on our head, so it is valid.
        self.validity.insert(block_hash, true);
        // Lines 16–19: broadcast PROPOSAL(h, r, v, validRound = -1).
        self.propose(block_hash, None, out);
        self.evaluate(out);
    }

    fn propose(&mut self, block_hash: Hash32, pol_round: Option<Round>, out: &mut Vec<Output>) {
        let Some((id, key)) = &self.me else { return };
        let proposal = Proposal { height: self.height, round: self.round, block_hash, pol_round };
        let signed = self.validators.sign_proposal(key, id, proposal);
        let message = ConsensusMessage::Proposal(signed.clone());
        self.signed.insert((self.round, Slot::Proposal), message.clone());
        out.push(Output::Wal(self.wal_record()));
        out.push(Output::Broadcast(message));
        if let Some(vr) = pol_round {
            // The proof of lock goes with the proposal: validators that missed the prevotes of
            // round vr could not otherwise accept it (line 28), and the chain could stall.
            out.extend(self.polka(vr, block_hash).into_iter().map(Output::Broadcast));
        }
        self.record_proposal(signed, out);
    }

    /// The prevotes of `round` for `block_hash` that we hold (a quorum, when called for a
    /// proof-of-lock round).
    fn polka(&self, round: Round, block_hash: Hash32) -> Vec<ConsensusMessage> {
        self.votes.round(round).map_or_else(Vec::new, |votes| {
            votes
                .votes_for(VoteKind::Prevote, &Some(block_hash))
                .into_iter()
                .map(|v| ConsensusMessage::Vote(v.clone()))
                .collect()
        })
    }

    // ---------------------------------------------------------------------------------------
    // Messages.

    fn on_message(&mut self, message: ConsensusMessage, out: &mut Vec<Output>) -> Verdict {
        let height = message.height();
        if height < self.height {
            return Verdict::Ignored;
        }
        if let Err(error) = self.validators_at(height).verify(&message) {
            // Beyond the heights whose set is known, a signer we cannot check may be a member of
            // a set we have not learnt yet: not a reason to penalize its sender.
            return if self.knows_set_at(height) { Verdict::Rejected(error) } else { Verdict::Ignored };
        }
        if height > self.height {
            out.push(Output::Ahead { height, from: message.signer().clone() });
            if Some(height) != self.height.next() {
                // Further ahead: a reason to sync, not something to forward.
                return Verdict::Ignored;
            }
            let from_signer = self.next_height.iter().filter(|m| m.signer() == message.signer()).count();
            if from_signer >= MAX_NEXT_HEIGHT_MESSAGES_PER_VALIDATOR || self.next_height.contains(&message) {
                return Verdict::Ignored;
            }
            if self.next_height.len() < self.next_height_capacity() {
                self.next_height.push_back(message);
            }
            return Verdict::Accepted;
        }
        if message.round().0 > self.round.0.saturating_add(MAX_ROUNDS_AHEAD) {
            return Verdict::Ignored;
        }
        self.help_laggard(&message, out);
        let verdict = self.accept_verified(message, out);
        self.evaluate(out);
        verdict
    }

    /// A validator still in an earlier round of this height may be waiting for our messages of
    /// that round (gossip lost them, or it restarted): send them again, once per validator and
    /// round per re-broadcast period. Gossip in the paper is reliable; this is how we make it so.
    fn help_laggard(&mut self, message: &ConsensusMessage, out: &mut Vec<Output>) {
        let round = message.round();
        if round >= self.round || self.me.as_ref().is_none_or(|(id, _)| id == message.signer()) {
            return;
        }
        if self.helped.insert((message.signer().clone(), round)) {
            out.extend(self.own_messages_of(round).into_iter().map(Output::Broadcast));
        }
    }

    fn next_height_capacity(&self) -> usize {
        // A few rounds' worth of every validator's messages.
        let next = self.height.next().unwrap_or(self.height);
        self.validators_at(next).len().saturating_mul(MAX_NEXT_HEIGHT_MESSAGES_PER_VALIDATOR)
    }

    /// Records a message of the current height whose signature is checked.
    fn accept_verified(&mut self, message: ConsensusMessage, out: &mut Vec<Output>) -> Verdict {
        // Any validator's message at this height means it has work: round 0 may start.
        if !self.ready && self.me.as_ref().is_none_or(|(id, _)| id != message.signer()) {
            self.ready = true;
            if self.round == Round(0) && self.step == Step::Propose {
                self.round_actions(out);
            }
        }
        match message {
            ConsensusMessage::Proposal(p) => self.record_proposal(p, out),
            ConsensusMessage::Vote(v) => self.record_vote(v, out),
        }
    }

    fn record_proposal(&mut self, proposal: SignedProposal, out: &mut Vec<Output>) -> Verdict {
        let round = proposal.proposal.round;
        self.votes.add_sender(round, &proposal.proposer);
        let list = self.proposals.entry(round).or_default();
        if list.iter().any(|p| p == &proposal) {
            return Verdict::Ignored;
        }
        if let Some(first) = list.first().cloned() {
            // The proposer is fixed per round, so any other proposal is an equivocation.
            let evidence = Evidence::ConflictingProposals { first, second: proposal.clone() };
            if self.evidence_seen.insert((proposal.proposer.clone(), round, Slot::Proposal)) {
                out.push(Output::Evidence(evidence));
            }
            if list.len() >= MAX_PROPOSALS_PER_ROUND {
                return Verdict::Ignored;
            }
        }
        let block_hash = proposal.proposal.block_hash;
        list.push(proposal);
        if !self.validity.contains_key(&block_hash) && self.executing.insert(block_hash) {
            out.push(Output::Execute { height: self.height, block_hash });
        }
        Verdict::Accepted
    }

    fn record_vote(&mut self, vote: SignedVote, out: &mut Vec<Output>) -> Verdict {
        let (voter, round, kind) = (vote.voter.clone(), vote.vote.round, vote.vote.kind);
        match self.votes.add(vote.clone()) {
            Added::New => Verdict::Accepted,
            Added::Duplicate => Verdict::Ignored,
            Added::Conflict(first) => {
                if self.evidence_seen.insert((voter, round, Slot::of_vote(kind))) {
                    out.push(Output::Evidence(Evidence::ConflictingVotes { first: *first, second: vote }));
                    // Forward the first conflicting vote: others need to see the equivocation.
                    Verdict::Accepted
                } else {
                    // A third, fourth… vote of the same step proves nothing new.
                    Verdict::Ignored
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Timeouts.

    fn on_timeout(&mut self, timeout: Timeout, out: &mut Vec<Output>) {
        if timeout.height != self.height || timeout.round != self.round {
            return;
        }
        match timeout.kind {
            // Lines 57–60: OnTimeoutPropose.
            TimeoutKind::Propose if self.step == Step::Propose => {
                self.vote(VoteKind::Prevote, None, out);
                self.step = Step::Prevote;
            }
            // Lines 61–64: OnTimeoutPrevote.
            TimeoutKind::Prevote if self.step == Step::Prevote => {
                self.vote(VoteKind::Precommit, None, out);
                self.step = Step::Precommit;
            }
            // Lines 65–67: OnTimeoutPrecommit.
            TimeoutKind::Precommit => {
                let next = Round(self.round.0.saturating_add(1));
                self.start_round(next, out);
            }
            TimeoutKind::Rebroadcast => {
                let mut messages = self.own_messages_of(self.round);
                if self.round.0 > 0 {
                    messages.extend(self.own_messages_of(Round(self.round.0 - 1)));
                }
                // And the prevotes that justify our valid value, which a proposer will re-propose
                // with them as its proof of lock.
                if let Some((valid_round, value)) = self.valid {
                    if valid_round < self.round {
                        messages.extend(self.polka(valid_round, value));
                    }
                }
                out.extend(messages.into_iter().map(Output::Broadcast));
                self.helped.clear();
                self.schedule(TimeoutKind::Rebroadcast, out);
            }
            _ => {}
        }
        self.evaluate(out);
    }

    fn schedule(&self, kind: TimeoutKind, out: &mut Vec<Output>) {
        let timeout = Timeout { height: self.height, round: self.round, kind };
        out.push(Output::Schedule { timeout, after_ms: self.params.duration_ms(kind, self.round) });
    }

    fn own_messages_of(&self, round: Round) -> Vec<ConsensusMessage> {
        self.signed
            .range((round, Slot::Proposal)..=(round, Slot::Precommit))
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Signs and sends a vote for the current round, unless one of this kind was signed already:
    /// then the same one is sent again, and a different one is never signed.
    fn vote(&mut self, kind: VoteKind, block_hash: Option<Hash32>, out: &mut Vec<Output>) {
        let Some((id, key)) = &self.me else { return };
        let key_slot = (self.round, Slot::of_vote(kind));
        if let Some(existing) = self.signed.get(&key_slot) {
            // Only reachable after a restart that resumed mid-step: never sign a second,
            // different vote for the same (height, round, step).
            out.push(Output::Broadcast(existing.clone()));
            return;
        }
        let vote = Vote { kind, height: self.height, round: self.round, block_hash };
        let signed = self.validators.sign_vote(key, id, vote);
        let message = ConsensusMessage::Vote(signed.clone());
        self.signed.insert(key_slot, message.clone());
        // The record (with this vote and the lock) is durable before the vote leaves.
        let mut record = self.wal_record();
        record.step = match kind {
            VoteKind::Prevote => Step::Prevote,
            VoteKind::Precommit => Step::Precommit,
        };
        out.push(Output::Wal(record));
        out.push(Output::Broadcast(message));
        self.votes.add(signed);
    }
}
