//! What validators send each other over the network, SCALE-encoded.
//!
//! Gossip payloads carry a sender-chosen `nonce` so that re-sending the same signed message (a
//! re-broadcast after loss or a peer's restart) is a new gossip message rather than a duplicate
//! that gossipsub would drop; receivers ignore the nonce. Every decode is bounded by the network's
//! per-topic byte limits and by the runtime's bounded collections.

use crate::ConsensusMessage;
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

/// Why [`decode_consensus`] refused a payload.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusDecodeError {
    #[error("malformed: {0}")]
    Malformed(#[from] parity_scale_codec::Error),
    #[error("{0}")]
    Refused(String),
}

/// Decodes a [`ConsensusWire`] in two steps: the nonce and the signed message first, which
/// `check` judges (a proposal's signature), and only then the attached block, which may be
/// tens of MiB. A forged proposal never costs a block decode.
pub fn decode_consensus(
    data: &[u8],
    check: impl FnOnce(&ConsensusMessage) -> Result<(), String>,
) -> Result<ConsensusWire, ConsensusDecodeError> {
    let mut input = data;
    let nonce = u64::decode(&mut input)?;
    let message = ConsensusMessage::decode(&mut input)?;
    check(&message).map_err(ConsensusDecodeError::Refused)?;
    let block = Option::<BlockWire>::decode(&mut input)?;
    if !input.is_empty() {
        return Err(parity_scale_codec::Error::from("trailing bytes after the block").into());
    }
    Ok(ConsensusWire { nonce, message, block })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Proposal, SignedProposal};
    use cdrchain_runtime::crypto::Signature;
    use cdrchain_runtime::ids::{OperatorId, Round};

    fn proposal_wire() -> ConsensusWire {
        let proposal =
            Proposal { height: Height(3), round: Round(1), block_hash: Hash32([7; 32]), pol_round: None };
        let message = ConsensusMessage::Proposal(SignedProposal {
            proposal,
            proposer: OperatorId::new("alice").expect("a valid operator name"),
            signature: Signature([9; 64]),
        });
        ConsensusWire { nonce: 5, message, block: None }
    }

    #[test]
    fn a_message_the_check_refuses_is_refused_before_its_block_is_decoded() {
        // A block part that does not decode: the refusal, not a decode error, comes back.
        let mut data = proposal_wire().encode();
        let tag = data.len() - 1;
        data[tag] = 1;
        data.push(0xff);
        data.extend_from_slice(&[0xee; 64]);
        let refused = decode_consensus(&data, |_| Err("bad signature".into())).unwrap_err();
        assert!(
            matches!(refused, ConsensusDecodeError::Refused(ref why) if why == "bad signature"),
            "{refused}"
        );
        // Accepted by the check, the same bytes fail on the block.
        let malformed = decode_consensus(&data, |_| Ok(())).unwrap_err();
        assert!(matches!(malformed, ConsensusDecodeError::Malformed(_)), "{malformed}");
    }

    #[test]
    fn the_staged_decode_reads_what_encode_wrote_and_nothing_more() -> Result<(), ConsensusDecodeError> {
        let wire = proposal_wire();
        let mut checked = None;
        let decoded = decode_consensus(&wire.encode(), |m| {
            checked = Some(m.clone());
            Ok(())
        })?;
        assert_eq!(decoded, wire);
        assert_eq!(checked, Some(wire.message.clone()));
        let mut trailing = wire.encode();
        trailing.push(0);
        assert!(matches!(decode_consensus(&trailing, |_| Ok(())), Err(ConsensusDecodeError::Malformed(_))));
        Ok(())
    }
}
