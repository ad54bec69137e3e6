//! Every SCALE type a peer sends or a validator writes to its WAL, decoded from the same bytes:
//! headers, votes, certificates, transactions, blocks, consensus messages (proposals and votes as
//! gossiped), evidence and WAL records. A decoder never panics, and what decodes encodes back to
//! bytes that decode to the same value.
#![no_main]

use cdrchain_consensus::{ConsensusMessage, Evidence, WalRecord};
use cdrchain_runtime::block::{Block, CommitCertificate, Header, Vote};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::tx::SignedTransaction;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::{Decode, Encode};

fn round_trip<T: Decode + Encode + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = decode_exact::<T>(data) {
        let again: T = decode_exact(&value.encode()).expect("an encoding decodes");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Header>(data);
    round_trip::<Vote>(data);
    round_trip::<CommitCertificate>(data);
    round_trip::<SignedTransaction>(data);
    round_trip::<ConsensusMessage>(data);
    round_trip::<Evidence>(data);
    round_trip::<WalRecord>(data);
    if let Ok(block) = Block::decode_bounded(data, 1 << 24) {
        let again = Block::decode_bounded(&block.encode(), 1 << 24).expect("an encoding decodes");
        assert_eq!(again, block);
    }
});
