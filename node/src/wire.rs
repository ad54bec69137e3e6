//! What validators send each other over the network, SCALE-encoded.
//!
//! Gossip payloads carry a sender-chosen `nonce` so that re-sending the same signed message (a
//! re-broadcast after loss or a peer's restart) is a new gossip message rather than a duplicate
//! that gossipsub would drop; receivers ignore the nonce. Every decode is bounded by the network's
//! per-topic byte limits and by the runtime's bounded collections.

use cdrchain_consensus::ConsensusMessage;
use cdrchain_runtime::block::{Block, CommitCertificate};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::tx::SignedTransaction;
use parity_scale_codec::{Decode, Encode};

/// Most transactions in one gossip message.
pub const MAX_TXS_PER_GOSSIP: usize = 256;
/// Most blocks in one sync response.
pub const MAX_BLOCKS_PER_SYNC: usize = 256;

/// A consensus message; a proposal carries its block.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ConsensusWire {
    pub nonce: u64,
    pub message: ConsensusMessage,
    pub block: Option<Block>,
}

/// Transactions for the pools of the other validators.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TxWire {
    pub nonce: u64,
    pub txs: BoundedVec<SignedTransaction, MAX_TXS_PER_GOSSIP>,
}

/// "Send me the committed blocks from `from`, at most `max`."
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SyncRequest {
    pub from: Height,
    pub max: u32,
}

/// Committed blocks with their commit certificates, in height order from the requested height.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SyncResponse {
    pub blocks: BoundedVec<(Block, CommitCertificate), MAX_BLOCKS_PER_SYNC>,
}
