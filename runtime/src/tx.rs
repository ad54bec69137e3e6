//! Transactions: what operators sign and the chain orders.
//!
//! Each transaction is signed by one operator's ed25519 key. The signed message is the
//! transaction id, `BLAKE3-derive-key("… transaction v1", genesis_hash ‖ SCALE(tx))`, so a
//! signature binds the chain as well as the content and never replays on another chain.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::cdr::{leaf_hash, Cdr, CdrBody};
use crate::codec::BoundedVec;
use crate::crypto::{self, PublicKey, Signature, SignatureError};
use crate::hash::{context, Hash32};
use crate::ids::{CallId, OperatorId, ReasonText, Sequence};
use crate::merkle::{Domain, Frontier};

/// Most CDRs one batch may carry (checked when decoding).
pub const MAX_CDRS_PER_BATCH: usize = 10_000;

/// A batch's CDRs, shared: the pool, a proposal, the block being applied and the commit hold
/// the same batch, and cloning a transaction must not copy (and later free) thousands of CDRs;
/// that was ~9 % of a validator's CPU under load. The SCALE encoding is the vector's own.
pub type BatchCdrs = Arc<BoundedVec<CdrBody, MAX_CDRS_PER_BATCH>>;

/// Many CDRs of one recorder under one signature: the main path.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CdrBatch {
    pub operator: OperatorId,
    /// The sequence number of the first CDR; the rest follow contiguously.
    pub first_sequence: Sequence,
    #[serde(with = "shared")]
    pub cdrs: BatchCdrs,
}

/// Serde for an `Arc<T>` as `T` (serde's own needs its `rc` feature, for all of the workspace).
mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &Arc<T>, serializer: S) -> Result<S::Ok, S::Error> {
        T::serialize(value, serializer)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<T>, D::Error> {
        T::deserialize(deserializer).map(Arc::new)
    }
}

impl CdrBatch {
    /// The batch's CDRs with recorder and sequence filled in.
    pub fn cdrs(&self) -> impl Iterator<Item = Cdr> + '_ {
        self.cdrs.iter().zip(self.first_sequence.0..).map(|(body, sequence)| Cdr {
            recorder: self.operator.clone(),
            sequence: Sequence(sequence),
            body: body.clone(),
        })
    }

    /// The log leaf hashes of the batch's CDRs, in order.
    pub fn leaf_hashes(&self) -> impl Iterator<Item = Hash32> + '_ {
        let mut buffer = Vec::with_capacity(256);
        self.cdrs
            .iter()
            .zip(self.first_sequence.0..)
            .map(move |(body, sequence)| leaf_hash(&self.operator, Sequence(sequence), body, &mut buffer))
    }
}

/// An operator declares, in the open, that it cannot supply records `from..=to`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct SequenceGap {
    pub operator: OperatorId,
    pub from: Sequence,
    /// Inclusive.
    pub to: Sequence,
    pub reason: ReasonText,
}

/// The live state of a call.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CallState {
    #[codec(index = 0)]
    Setup,
    #[codec(index = 1)]
    Ringing,
    #[codec(index = 2)]
    Answered,
    #[codec(index = 3)]
    Ended,
}

impl CallState {
    /// The legal transitions: setup → ringing → answered → ended, ringing may be skipped, and any
    /// live state may end. `None` is a call the chain has not seen (or that already ended).
    pub fn may_follow(previous: Option<CallState>, next: CallState) -> bool {
        use CallState::*;
        matches!(
            (previous, next),
            (None, Setup)
                | (Some(Setup), Ringing | Answered | Ended)
                | (Some(Ringing), Answered | Ended)
                | (Some(Answered), Ended)
        )
    }
}

/// A live call-state update.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CallEvent {
    pub operator: OperatorId,
    pub call_id: CallId,
    pub state: CallState,
    pub at_ms: u64,
}

/// Everything the chain orders.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transaction {
    #[codec(index = 0)]
    CdrBatch(CdrBatch),
    #[codec(index = 1)]
    SequenceGap(SequenceGap),
    #[codec(index = 2)]
    CallEvent(CallEvent),
    /// A validator's signature over an RSK checkpoint ([`crate::checkpoint`]).
    #[codec(index = 3)]
    CheckpointSignature(crate::checkpoint::CheckpointSignature),
    /// An authority proposes an authority-set change ([`crate::governance`]).
    #[codec(index = 4)]
    ProposeChange(Box<crate::governance::ProposeChange>),
    /// An authority approves the open proposal.
    #[codec(index = 5)]
    ApproveChange(crate::governance::ApproveChange),
    /// A member of the set before a change signs the RSK contract's change
    /// ([`crate::governance::contract`]).
    #[codec(index = 6)]
    SetChangeSignature(crate::governance::contract::SetChangeSignature),
    /// Interconnect agreements between two operators, sealed to the pair
    /// ([`crate::interconnect`]).
    #[codec(index = 7)]
    Interconnect(Box<crate::interconnect::InterconnectTx>),
}

impl Transaction {
    /// The operator whose key must sign it.
    pub fn operator(&self) -> &OperatorId {
        match self {
            Transaction::CdrBatch(tx) => &tx.operator,
            Transaction::SequenceGap(tx) => &tx.operator,
            Transaction::CallEvent(tx) => &tx.operator,
            Transaction::CheckpointSignature(tx) => &tx.operator,
            Transaction::ProposeChange(tx) => &tx.operator,
            Transaction::ApproveChange(tx) => &tx.operator,
            Transaction::SetChangeSignature(tx) => &tx.operator,
            Transaction::Interconnect(tx) => &tx.operator,
        }
    }

    /// The transaction id on the chain with `genesis_hash`: the message its signature covers.
    pub fn id(&self, genesis_hash: &Hash32) -> Hash32 {
        let mut hasher = crate::hash::hasher(context::TRANSACTION);
        hasher.update(&genesis_hash.0);
        let encoded = self.encode();
        hasher.update(&encoded);
        Hash32(*hasher.finalize().as_bytes())
    }

    /// How many CDRs it adds to the log.
    pub fn cdr_count(&self) -> usize {
        match self {
            Transaction::CdrBatch(batch) => batch.cdrs.len(),
            _ => 0,
        }
    }
}

/// A transaction with its operator's signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub transaction: Transaction,
    pub signature: Signature,
}

impl SignedTransaction {
    pub fn sign(transaction: Transaction, key: &SigningKey, genesis_hash: &Hash32) -> Self {
        let id = transaction.id(genesis_hash);
        Self { signature: crypto::sign(key, &id), transaction }
    }

    pub fn id(&self, genesis_hash: &Hash32) -> Hash32 {
        self.transaction.id(genesis_hash)
    }

    /// Strict verification against the signer's registered key; answers the transaction's id
    /// (hashing a batch costs as much as checking its signature: callers need not do it again).
    pub fn verify(&self, key: &PublicKey, genesis_hash: &Hash32) -> Result<Hash32, SignatureError> {
        let id = self.id(genesis_hash);
        crypto::verify(key, &id, &self.signature)?;
        Ok(id)
    }
}

/// The transaction root of a block: an RFC 9162 tree over its transaction ids, in order.
pub fn tx_root(ids: &[Hash32]) -> Hash32 {
    let mut frontier = Frontier::new();
    for id in ids {
        // The transaction tree is rebuilt per block and never stored node by node. Appending
        // fails only past 2^64 leaves, which a block's bounded transaction list cannot reach.
        let appended = frontier.append(Domain::TX_ROOT, Domain::TX_ROOT.leaf(&id.0), &mut |_, _| {});
        debug_assert!(appended.is_ok());
    }
    frontier.root(Domain::TX_ROOT)
}
