//! What validators send each other over the network, SCALE-encoded.
//!
//! Gossip payloads carry a sender-chosen `nonce` so that re-sending the same signed message (a
//! re-broadcast after loss or a peer's restart) is a new gossip message rather than a duplicate
//! that gossipsub would drop; receivers ignore the nonce. Every decode is bounded by the network's
//! per-topic byte limits and by the runtime's bounded collections.

use cdrchain_consensus::ConsensusMessage;
use cdrchain_runtime::block::{Block, CommitCertificate, Header, MAX_TRANSACTIONS_PER_BLOCK};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::tx::SignedTransaction;
use parity_scale_codec::{Decode, Encode};

/// Most transactions in one gossip message.
pub const MAX_TXS_PER_GOSSIP: usize = 256;
/// Most blocks in one sync response.
pub const MAX_BLOCKS_PER_SYNC: usize = 256;

/// A consensus message; a proposal carries its block, compact or whole.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ConsensusWire {
    pub nonce: u64,
    pub message: ConsensusMessage,
    pub block: Option<BlockWire>,
}

/// A proposed block on the wire.
///
/// Validators already hold a block's transactions from transaction gossip, so a proposal first
/// travels compact: the header and the transaction ids, a few KiB instead of up to 16 MiB. A
/// receiver rebuilds the block from its pool; the header's `tx_root` (checked by `apply_block`)
/// and hash (the one the proposal signs) make a wrong assembly impossible to accept. A receiver
/// that lacks some transactions completes the block when they arrive by gossip, or from a later
/// re-broadcast, which carries the whole block (see the validator's `broadcast`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum BlockWire {
    Full(Block),
    Compact(CompactBlock),
}

/// A block's header and its transactions' ids, in block order.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CompactBlock {
    pub header: Header,
    pub tx_ids: BoundedVec<Hash32, MAX_TRANSACTIONS_PER_BLOCK>,
}

impl BlockWire {
    /// The header, whichever form.
    pub fn header(&self) -> &Header {
        match self {
            BlockWire::Full(block) => &block.header,
            BlockWire::Compact(compact) => &compact.header,
        }
    }
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
