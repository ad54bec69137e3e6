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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cdrchain_runtime::block::{CommitCertificate, CommitSignature, Vote, VoteKind};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use ed25519_dalek::SigningKey;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::messages::{
    ConsensusMessage, Evidence, MessageError, Proposal, SignedProposal, SignedVote, Validators,
};
use crate::votes::{Added, VoteKeeper};

/// Rounds further ahead of ours than this are ignored (bounds memory per height).
pub const MAX_ROUNDS_AHEAD: u32 = 1_024;
/// Distinct proposals kept per round: the first, and one conflicting (the evidence).
pub const MAX_PROPOSALS_PER_ROUND: usize = 2;

/// Timeouts, in milliseconds: `base + delta × round`, so that rounds lengthen until the network's
/// real delay fits in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub propose_ms: u64,
    pub propose_delta_ms: u64,
    pub prevote_ms: u64,
    pub prevote_delta_ms: u64,
    pub precommit_ms: u64,
    pub precommit_delta_ms: u64,
    /// How often own messages of the current round are sent again.
    pub rebroadcast_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            propose_ms: 2_000,
            propose_delta_ms: 500,
            prevote_ms: 1_000,
            prevote_delta_ms: 500,
            precommit_ms: 1_000,
            precommit_delta_ms: 500,
            rebroadcast_ms: 1_500,
        }
    }
}

impl Params {
    /// How long to wait for `kind` in `round`.
    pub fn duration_ms(&self, kind: TimeoutKind, round: Round) -> u64 {
        let r = u64::from(round.0);
        let (base, delta) = match kind {
            TimeoutKind::Propose => (self.propose_ms, self.propose_delta_ms),
            TimeoutKind::Prevote => (self.prevote_ms, self.prevote_delta_ms),
            TimeoutKind::Precommit => (self.precommit_ms, self.precommit_delta_ms),
            TimeoutKind::Rebroadcast => (self.rebroadcast_ms, 0),
        };
        base.saturating_add(delta.saturating_mul(r))
    }
}

/// The step within a round.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    #[codec(index = 0)]
    Propose,
    #[codec(index = 1)]
    Prevote,
    #[codec(index = 2)]
    Precommit,
}

/// Which timer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
    Rebroadcast,
}

/// A timer, named by what it is for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub struct Timeout {
    pub height: Height,
    pub round: Round,
    pub kind: TimeoutKind,
}

/// What the machine needs to survive a crash: its position, its lock and every message it signed
/// at this height (so that it sends the same ones again and never different ones).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct WalRecord {
    pub height: Height,
    pub round: Round,
    pub step: Step,
    pub locked: Option<(Round, Hash32)>,
    pub valid: Option<(Round, Hash32)>,
    pub signed: Vec<ConsensusMessage>,
    /// The quorum of prevotes for the valid value: the proof of lock this validator re-proposes
    /// it with. Without it a restarted, locked validator could not convince the others.
    pub polka: Vec<SignedVote>,
}

/// A block decided at a height, with the precommits that make it final.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Decision {
    pub height: Height,
    pub round: Round,
    pub block_hash: Hash32,
    pub certificate: CommitCertificate,
}

/// Something that happened to the machine.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    /// The node has work for a block (or the idle heartbeat is due): round 0 may start.
    Ready,
    /// A message from another validator (or one of ours, echoed back: it is a duplicate).
    Message(ConsensusMessage),
    /// A timer requested by [`Output::Schedule`] fired.
    Timeout(Timeout),
    /// The block this node was asked to build ([`Output::Build`]).
    Built { height: Height, round: Round, block_hash: Hash32 },
    /// The verdict on a proposed block ([`Output::Execute`]): did it apply on the head?
    Executed { height: Height, block_hash: Hash32, valid: bool },
    /// The node committed `height` by other means (block sync): move past it.
    Committed { height: Height },
}

/// What the driver must do, in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Output {
    /// Make this record durable (fsync) before carrying out any later output.
    Wal(WalRecord),
    /// Send a signed message to all validators.
    Broadcast(ConsensusMessage),
    /// Feed `Input::Timeout(timeout)` back after `after_ms`.
    Schedule { timeout: Timeout, after_ms: u64 },
    /// This validator proposes at (height, round): build a block on the head; answer `Built`.
    Build { height: Height, round: Round },
    /// Check the proposed block with this hash against the head; answer `Executed`.
    Execute { height: Height, block_hash: Hash32 },
    /// A block is final: commit it with the certificate. The machine has moved to the next height.
    Decide(Decision),
    /// A validator equivocated; the evidence verifies against the authority set.
    Evidence(Evidence),
    /// A validator is at a later height than ours: we are behind and should sync.
    Ahead { height: Height, from: OperatorId },
}

/// What became of an input message, for gossip validation: forward, drop quietly, or penalize.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Valid and new (or for a height we are not at yet): forward it.
    Accepted,
    /// Valid but of no use (an old height, a duplicate, a round too far ahead): do not forward.
    Ignored,
    /// Invalid (bad signature, not an authority, wrong proposer): do not forward.
    Rejected(MessageError),
}

/// The rules that fire only once per round ("for the first time").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Once {
    PrevoteTimer,
    Lock,
    PrecommitTimer,
}

/// One validator's consensus state. Observers (`me = None`) follow without signing.
#[derive(Debug)]
pub struct Consensus {
    validators: Validators,
    me: Option<(OperatorId, SigningKey)>,
    params: Params,

    height: Height,
    round: Round,
    step: Step,
    locked: Option<(Round, Hash32)>,
    valid: Option<(Round, Hash32)>,
    ready: bool,

    proposals: BTreeMap<Round, Vec<SignedProposal>>,
    validity: BTreeMap<Hash32, bool>,
    executing: BTreeSet<Hash32>,
    votes: VoteKeeper,
    signed: BTreeMap<(Round, u8), ConsensusMessage>,
    fired: BTreeSet<(Round, Once)>,
    evidence_seen: BTreeSet<(OperatorId, Round, u8)>,
    next_height: VecDeque<ConsensusMessage>,
    /// (validator, round) pairs we re-sent our messages of that round for, since the last
    /// re-broadcast timer.
    helped: BTreeSet<(OperatorId, Round)>,
}

const SLOT_PROPOSAL: u8 = 0;
const SLOT_PREVOTE: u8 = 1;
const SLOT_PRECOMMIT: u8 = 2;

fn slot(kind: VoteKind) -> u8 {
    match kind {
        VoteKind::Prevote => SLOT_PREVOTE,
        VoteKind::Precommit => SLOT_PRECOMMIT,
    }
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

    pub fn validators(&self) -> &Validators {
        &self.validators
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
                    self.signed.insert((p.proposal.round, SLOT_PROPOSAL), message.clone());
                    // Judged again like anyone's: the node may no longer hold the block it built,
                    // and must not decide a block it cannot commit.
                    self.record_proposal(p.clone(), out);
                }
                ConsensusMessage::Vote(v) => {
                    self.signed.insert((v.vote.round, slot(v.vote.kind)), message.clone());
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
            if let Some(message) = self.signed.get(&(self.round, SLOT_PROPOSAL)) {
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
        if !current || !self.is_proposer() || self.signed.contains_key(&(round, SLOT_PROPOSAL)) {
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
        self.signed.insert((self.round, SLOT_PROPOSAL), message.clone());
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
        if let Err(error) = self.validators.verify(&message) {
            return Verdict::Rejected(error);
        }
        if height > self.height {
            out.push(Output::Ahead { height, from: message.signer().clone() });
            if Some(height) != self.height.next() {
                // Further ahead: a reason to sync, not something to forward.
                return Verdict::Ignored;
            }
            let from_signer = self.next_height.iter().filter(|m| m.signer() == message.signer()).count();
            if from_signer >= 3 * 8 || self.next_height.contains(&message) {
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
        self.validators.len().saturating_mul(3 * 8)
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
            if self.evidence_seen.insert((proposal.proposer.clone(), round, SLOT_PROPOSAL)) {
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
                if self.evidence_seen.insert((voter, round, slot(kind))) {
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
        self.signed.range((round, 0)..=(round, u8::MAX)).map(|(_, m)| m.clone()).collect()
    }

    /// Signs and sends a vote for the current round, unless one of this kind was signed already:
    /// then the same one is sent again, and a different one is never signed.
    fn vote(&mut self, kind: VoteKind, block_hash: Option<Hash32>, out: &mut Vec<Output>) {
        let Some((id, key)) = &self.me else { return };
        let key_slot = (self.round, slot(kind));
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

    // ---------------------------------------------------------------------------------------
    // The upon-rules, evaluated until none fires.

    fn evaluate(&mut self, out: &mut Vec<Output>) {
        // Each rule returns true only when it changed the state, and none can fire forever, so
        // this terminates; the bound is a second guard.
        for _ in 0..64 {
            let fired = self.rule_decide(out)
                || self.rule_skip_round(out)
                || self.rule_prevote_proposal(out)
                || self.rule_prevote_pol(out)
                || self.rule_prevote_timer(out)
                || self.rule_lock(out)
                || self.rule_precommit_nil(out)
                || self.rule_precommit_timer(out);
            if !fired {
                return;
            }
        }
    }

    /// The first proposal of the current round, if its block has been judged.
    fn current_proposal(&self) -> Option<(&SignedProposal, Option<bool>)> {
        let proposal = self.proposals.get(&self.round)?.first()?;
        Some((proposal, self.validity.get(&proposal.proposal.block_hash).copied()))
    }

    /// Lines 49–54: upon PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)), decide v.
    fn rule_decide(&mut self, out: &mut Vec<Output>) -> bool {
        let quorum = self.validators.quorum();
        let mut found = None;
        for (round, votes) in self.votes.rounds() {
            for hash in votes.values_with(VoteKind::Precommit, quorum) {
                let proposed = self
                    .proposals
                    .get(round)
                    .is_some_and(|list| list.iter().any(|p| p.proposal.block_hash == hash));
                if proposed && self.validity.get(&hash) == Some(&true) {
                    let signatures: Vec<CommitSignature> = votes
                        .votes_for(VoteKind::Precommit, &Some(hash))
                        .into_iter()
                        .map(|v| CommitSignature { authority: v.voter.clone(), signature: v.signature })
                        .collect();
                    found = Some((*round, hash, signatures));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some((round, block_hash, signatures)) = found else { return false };
        let Ok(signatures) = BoundedVec::new(signatures) else { return false };
        let certificate = CommitCertificate { height: self.height, round, block_hash, signatures };
        out.push(Output::Decide(Decision { height: self.height, round, block_hash, certificate }));
        match self.height.next() {
            Some(next) => self.enter_height(next, out),
            None => return false,
        }
        true
    }

    /// Line 55: upon f+1 messages of a later round, StartRound(that round).
    fn rule_skip_round(&mut self, out: &mut Vec<Output>) -> bool {
        let threshold = self.validators.one_honest();
        let target = self
            .votes
            .rounds()
            .filter(|(round, votes)| **round > self.round && votes.senders() >= threshold)
            .map(|(round, _)| *round)
            .max();
        match target {
            Some(round) => {
                self.ready = true;
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }

    /// Lines 22–27: upon PROPOSAL(h, r, v, -1) while step = propose, prevote v if it is valid
    /// and we are unlocked or locked on v; otherwise prevote nil.
    fn rule_prevote_proposal(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((proposal, Some(valid))) = self.current_proposal() else { return false };
        if proposal.proposal.pol_round.is_some() {
            return false;
        }
        let v = proposal.proposal.block_hash;
        let acceptable = valid && self.locked.is_none_or(|(_, locked)| locked == v);
        self.vote(VoteKind::Prevote, acceptable.then_some(v), out);
        self.step = Step::Prevote;
        true
    }

    /// Lines 28–33: upon PROPOSAL(h, r, v, vr) and 2f+1 PREVOTE(h, vr, id(v)) while step =
    /// propose and 0 ≤ vr < r, prevote v if it is valid and our lock is no newer than vr (or is
    /// on v); otherwise prevote nil.
    fn rule_prevote_pol(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((proposal, Some(valid))) = self.current_proposal() else { return false };
        let Some(vr) = proposal.proposal.pol_round else { return false };
        if vr >= self.round {
            return false;
        }
        let v = proposal.proposal.block_hash;
        let quorum = self.validators.quorum();
        let polka = self.votes.round(vr).is_some_and(|r| r.count_for(VoteKind::Prevote, &Some(v)) >= quorum);
        if !polka {
            return false;
        }
        let acceptable =
            valid && self.locked.is_none_or(|(locked_round, locked)| locked_round <= vr || locked == v);
        self.vote(VoteKind::Prevote, acceptable.then_some(v), out);
        self.step = Step::Prevote;
        true
    }

    /// Lines 34–35: upon 2f+1 PREVOTE(h, r, *) while step = prevote for the first time, schedule
    /// OnTimeoutPrevote.
    fn rule_prevote_timer(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote || self.fired.contains(&(self.round, Once::PrevoteTimer)) {
            return false;
        }
        let count = self.votes.round(self.round).map_or(0, |r| r.count_any(VoteKind::Prevote));
        if count < self.validators.quorum() {
            return false;
        }
        self.fired.insert((self.round, Once::PrevoteTimer));
        self.schedule(TimeoutKind::Prevote, out);
        true
    }

    /// Lines 36–43: upon PROPOSAL(h, r, v, *) and 2f+1 PREVOTE(h, r, id(v)) while valid(v) and
    /// step ≥ prevote for the first time: if step = prevote, lock on v and precommit it; in any
    /// case v becomes the valid value.
    fn rule_lock(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote || self.fired.contains(&(self.round, Once::Lock)) {
            return false;
        }
        let quorum = self.validators.quorum();
        let Some(votes) = self.votes.round(self.round) else { return false };
        let Some(list) = self.proposals.get(&self.round) else { return false };
        let value = list.iter().map(|p| p.proposal.block_hash).find(|v| {
            self.validity.get(v) == Some(&true) && votes.count_for(VoteKind::Prevote, &Some(*v)) >= quorum
        });
        let Some(v) = value else { return false };
        self.fired.insert((self.round, Once::Lock));
        self.valid = Some((self.round, v));
        if self.step == Step::Prevote {
            self.locked = Some((self.round, v));
            // The WAL record written with the precommit carries the lock and the valid value.
            self.vote(VoteKind::Precommit, Some(v), out);
            self.step = Step::Precommit;
        } else {
            // Not needed for safety, but a restart must remember the valid value and its proof
            // so that it can re-propose it.
            out.push(Output::Wal(self.wal_record()));
        }
        true
    }

    /// Lines 44–46: upon 2f+1 PREVOTE(h, r, nil) while step = prevote, precommit nil.
    fn rule_precommit_nil(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote {
            return false;
        }
        let nil = self.votes.round(self.round).map_or(0, |r| r.count_for(VoteKind::Prevote, &None));
        if nil < self.validators.quorum() {
            return false;
        }
        self.vote(VoteKind::Precommit, None, out);
        self.step = Step::Precommit;
        true
    }

    /// Lines 47–48: upon 2f+1 PRECOMMIT(h, r, *) for the first time, schedule
    /// OnTimeoutPrecommit.
    fn rule_precommit_timer(&mut self, out: &mut Vec<Output>) -> bool {
        if self.fired.contains(&(self.round, Once::PrecommitTimer)) {
            return false;
        }
        let count = self.votes.round(self.round).map_or(0, |r| r.count_any(VoteKind::Precommit));
        if count < self.validators.quorum() {
            return false;
        }
        self.fired.insert((self.round, Once::PrecommitTimer));
        self.schedule(TimeoutKind::Precommit, out);
        true
    }
}
