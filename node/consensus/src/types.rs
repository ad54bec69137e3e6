//! The vocabulary of the consensus state machine ([`crate::machine::Consensus`]): its timeouts
//! ([`Params`], [`Timeout`]), its position ([`Step`]), what it must remember across a crash
//! ([`WalRecord`]), what goes in ([`Input`]) and what comes out ([`Output`], [`Decision`],
//! [`Verdict`]). Re-exported from [`crate::machine`] and the crate root; the transitions live in
//! `machine.rs`.
//!
//! `WalRecord` (with the `Step` in it) is SCALE-encoded into the node's database and read back
//! after a restart: changing its encoding would make a restarted validator unable to resume.

use cdrchain_runtime::block::CommitCertificate;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use ed25519_dalek::SigningKey;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::messages::{ConsensusMessage, Evidence, MessageError, SignedVote, Validators};

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
    /// The chain approved a new authority set, in force from height `from`: feed it when the
    /// approving block is committed, before [`Input::Committed`] of any later height. `me` is
    /// this node's identity and key in that set (`None`: it follows without signing from then).
    SetChange { from: Height, validators: Validators, me: Option<(OperatorId, SigningKey)> },
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
