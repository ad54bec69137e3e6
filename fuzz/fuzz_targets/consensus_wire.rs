//! What validators send each other and write to their WAL: consensus messages (proposals and
//! votes as gossiped), evidence, and WAL records, decoded from the same bytes. A decoder never
//! panics, and what decodes encodes back to bytes that decode to the same value.
#![no_main]

use cdrchain_consensus::{ConsensusMessage, Evidence, WalRecord};
use cdrchain_runtime::codec::decode_exact;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::{Decode, Encode};

fn round_trip<T: Decode + Encode + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = decode_exact::<T>(data) {
        let again: T = decode_exact(&value.encode()).expect("an encoding decodes");
        assert_eq!(again, value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ConsensusMessage>(data);
    round_trip::<Evidence>(data);
    round_trip::<WalRecord>(data);
});
