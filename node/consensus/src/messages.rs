//! Consensus messages: signed proposals and votes, the evidence of equivocation, and the
//! authority set that checks them.
//!
//! A proposal names its block by hash only; the block itself travels beside it (the node attaches
//! it on the wire and checks that it hashes to `block_hash` before the state machine sees the
//! proposal). Every signature covers a domain-separated digest that includes the genesis hash.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use cdrchain_runtime::block::{quorum, Vote, VoteKind};
use cdrchain_runtime::crypto::{self, PublicKey, Signature, SignatureError};
use cdrchain_runtime::hash::{context, hash_with, Hash32};
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use ed25519_dalek::SigningKey;

/// A proposer's offer of a block for `(height, round)`. `pol_round` is the round in which the
/// block got a quorum of prevotes (the paper's `validRound`), if it is re-proposed.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub block_hash: Hash32,
    pub pol_round: Option<Round>,
}

impl Proposal {
    /// The digest the proposer signs, bound to the chain by its genesis hash.
    pub fn signing_message(&self, genesis_hash: &Hash32) -> Hash32 {
        hash_with(context::PROPOSAL, &[&genesis_hash.0, &self.encode()])
    }
}

/// A proposal with its proposer's signature.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct SignedProposal {
    pub proposal: Proposal,
    pub proposer: OperatorId,
    pub signature: Signature,
}

/// A prevote or precommit with its voter's signature.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct SignedVote {
    pub vote: Vote,
    pub voter: OperatorId,
    pub signature: Signature,
}

/// What validators send each other.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsensusMessage {
    #[codec(index = 0)]
    Proposal(SignedProposal),
    #[codec(index = 1)]
    Vote(SignedVote),
}

impl ConsensusMessage {
    pub fn height(&self) -> Height {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.height,
            ConsensusMessage::Vote(v) => v.vote.height,
        }
    }

    pub fn round(&self) -> Round {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.round,
            ConsensusMessage::Vote(v) => v.vote.round,
        }
    }

    /// Who signed it.
    pub fn signer(&self) -> &OperatorId {
        match self {
            ConsensusMessage::Proposal(p) => &p.proposer,
            ConsensusMessage::Vote(v) => &v.voter,
        }
    }

    /// A short human description for logs: `prevote h=3 r=0 0xab12… by bob`.
    pub fn describe(&self) -> String {
        match self {
            ConsensusMessage::Proposal(p) => format!(
                "proposal h={} r={} {} by {}",
                p.proposal.height,
                p.proposal.round.0,
                short(&Some(p.proposal.block_hash)),
                p.proposer
            ),
            ConsensusMessage::Vote(v) => format!(
                "{} h={} r={} {} by {}",
                match v.vote.kind {
                    VoteKind::Prevote => "prevote",
                    VoteKind::Precommit => "precommit",
                },
                v.vote.height,
                v.vote.round.0,
                short(&v.vote.block_hash),
                v.voter
            ),
        }
    }
}

/// `0xab12cd34…` or `nil`.
pub fn short(hash: &Option<Hash32>) -> String {
    match hash {
        Some(h) => format!("0x{}…", &h.to_hex()[..8]),
        None => "nil".to_string(),
    }
}

/// Two signed messages by one validator for the same height, round and step with different
/// content: proof that the validator equivocated. Anyone holding the authority set can check it.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Evidence {
    #[codec(index = 0)]
    ConflictingVotes { first: SignedVote, second: SignedVote },
    #[codec(index = 1)]
    ConflictingProposals { first: SignedProposal, second: SignedProposal },
}

/// Why evidence does not prove an equivocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the two messages are not by the same validator, or not for the same height, round and step")]
    NotComparable,
    #[error("the two messages are identical")]
    Identical,
    #[error(transparent)]
    Message(#[from] MessageError),
}

impl Evidence {
    pub fn offender(&self) -> &OperatorId {
        match self {
            Evidence::ConflictingVotes { first, .. } => &first.voter,
            Evidence::ConflictingProposals { first, .. } => &first.proposer,
        }
    }

    pub fn height(&self) -> Height {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.height,
            Evidence::ConflictingProposals { first, .. } => first.proposal.height,
        }
    }

    pub fn round(&self) -> Round {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.round,
            Evidence::ConflictingProposals { first, .. } => first.proposal.round,
        }
    }

    /// `prevote`, `precommit` or `proposal`.
    pub fn step(&self) -> &'static str {
        match self {
            Evidence::ConflictingVotes { first, .. } => match first.vote.kind {
                VoteKind::Prevote => "prevote",
                VoteKind::Precommit => "precommit",
            },
            Evidence::ConflictingProposals { .. } => "proposal",
        }
    }

    /// Checks both signatures and that the messages conflict.
    pub fn verify(&self, validators: &Validators) -> Result<(), EvidenceError> {
        match self {
            Evidence::ConflictingVotes { first, second } => {
                let comparable = first.voter == second.voter
                    && first.vote.height == second.vote.height
                    && first.vote.round == second.vote.round
                    && first.vote.kind == second.vote.kind;
                if !comparable {
                    return Err(EvidenceError::NotComparable);
                }
                if first.vote == second.vote {
                    return Err(EvidenceError::Identical);
                }
                validators.verify_vote(first)?;
                validators.verify_vote(second)?;
            }
            Evidence::ConflictingProposals { first, second } => {
                let comparable = first.proposer == second.proposer
                    && first.proposal.height == second.proposal.height
                    && first.proposal.round == second.proposal.round;
                if !comparable {
                    return Err(EvidenceError::NotComparable);
                }
                if first.proposal == second.proposal {
                    return Err(EvidenceError::Identical);
                }
                validators.verify_proposal(first)?;
                validators.verify_proposal(second)?;
            }
        }
        Ok(())
    }
}

/// Why a consensus message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("`{signer}` is not an authority of this chain")]
    NotAnAuthority { signer: OperatorId },
    #[error("`{signer}` is not the proposer of height {height} round {round}; `{expected}` is")]
    NotTheProposer { signer: OperatorId, expected: OperatorId, height: Height, round: u32 },
    #[error("proposal for round {round} claims proof-of-lock round {pol_round}, which is not earlier")]
    BadPolRound { round: u32, pol_round: u32 },
    #[error("signature of `{signer}` does not verify: {source}")]
    BadSignature { signer: OperatorId, source: SignatureError },
}

/// The authority set of one chain, in the chain spec's order (which fixes the proposer
/// rotation), with the chain's genesis hash (which every signature covers) and the thresholds
/// derived from the set's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    genesis_hash: Hash32,
    list: Vec<(OperatorId, PublicKey)>,
}

impl Validators {
    /// `None` for an empty set.
    pub fn new(genesis_hash: Hash32, list: Vec<(OperatorId, PublicKey)>) -> Option<Self> {
        (!list.is_empty()).then_some(Self { genesis_hash, list })
    }

    pub fn genesis_hash(&self) -> &Hash32 {
        &self.genesis_hash
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn list(&self) -> &[(OperatorId, PublicKey)] {
        &self.list
    }

    pub fn ids(&self) -> impl Iterator<Item = &OperatorId> {
        self.list.iter().map(|(id, _)| id)
    }

    pub fn key_of(&self, id: &OperatorId) -> Option<&PublicKey> {
        self.list.iter().find(|(v, _)| v == id).map(|(_, key)| key)
    }

    pub fn contains(&self, id: &OperatorId) -> bool {
        self.key_of(id).is_some()
    }

    /// More than two thirds: the votes that make a decision (the paper's `2f + 1`).
    pub fn quorum(&self) -> usize {
        quorum(self.list.len())
    }

    /// More than one third: enough that at least one is honest (the paper's `f + 1`).
    pub fn one_honest(&self) -> usize {
        self.list.len() - self.quorum() + 1
    }

    /// `authorities[(height + round) mod n]`.
    pub fn proposer(&self, height: Height, round: Round) -> &OperatorId {
        let n = self.list.len() as u64;
        let slot = (height.0 % n + u64::from(round.0) % n) % n;
        // slot < n = list.len(), so the index is in range and fits usize.
        &self.list[slot as usize].0
    }

    /// Checks a vote's signer and signature.
    pub fn verify_vote(&self, vote: &SignedVote) -> Result<(), MessageError> {
        let key = self
            .key_of(&vote.voter)
            .ok_or_else(|| MessageError::NotAnAuthority { signer: vote.voter.clone() })?;
        crypto::verify(key, &vote.vote.signing_message(&self.genesis_hash), &vote.signature)
            .map_err(|source| MessageError::BadSignature { signer: vote.voter.clone(), source })
    }

    /// Checks a proposal's signer (the round's proposer), its proof-of-lock round and signature.
    pub fn verify_proposal(&self, proposal: &SignedProposal) -> Result<(), MessageError> {
        let p = &proposal.proposal;
        let key = self
            .key_of(&proposal.proposer)
            .ok_or_else(|| MessageError::NotAnAuthority { signer: proposal.proposer.clone() })?;
        let expected = self.proposer(p.height, p.round);
        if expected != &proposal.proposer {
            return Err(MessageError::NotTheProposer {
                signer: proposal.proposer.clone(),
                expected: expected.clone(),
                height: p.height,
                round: p.round.0,
            });
        }
        if let Some(pol) = p.pol_round {
            if pol >= p.round {
                return Err(MessageError::BadPolRound { round: p.round.0, pol_round: pol.0 });
            }
        }
        crypto::verify(key, &p.signing_message(&self.genesis_hash), &proposal.signature)
            .map_err(|source| MessageError::BadSignature { signer: proposal.proposer.clone(), source })
    }

    /// Checks any consensus message.
    pub fn verify(&self, message: &ConsensusMessage) -> Result<(), MessageError> {
        match message {
            ConsensusMessage::Proposal(p) => self.verify_proposal(p),
            ConsensusMessage::Vote(v) => self.verify_vote(v),
        }
    }

    /// Signs `vote` as `voter`.
    pub fn sign_vote(&self, key: &SigningKey, voter: &OperatorId, vote: Vote) -> SignedVote {
        let signature = crypto::sign(key, &vote.signing_message(&self.genesis_hash));
        SignedVote { vote, voter: voter.clone(), signature }
    }

    /// Signs `proposal` as `proposer`.
    pub fn sign_proposal(
        &self,
        key: &SigningKey,
        proposer: &OperatorId,
        proposal: Proposal,
    ) -> SignedProposal {
        let signature = crypto::sign(key, &proposal.signing_message(&self.genesis_hash));
        SignedProposal { proposal, proposer: proposer.clone(), signature }
    }
}
