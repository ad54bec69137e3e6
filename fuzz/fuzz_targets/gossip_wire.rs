//! The gossip envelopes: a consensus message with its block (compact or whole), read in the
//! node's two stages (message first, block only when the check passes), and a transaction
//! batch. Neither decoder panics; what decodes round-trips.
#![no_main]

use cdrchain_consensus::wire::{decode_consensus, TxWire};
use cdrchain_fuzz::round_trip;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    // A check that refuses by the first byte, so that both paths of the staged decode run.
    let refuse = data.first().is_some_and(|b| b & 1 == 1);
    if let Ok(wire) = decode_consensus(data, |_| if refuse { Err("refused".into()) } else { Ok(()) }) {
        let again = decode_consensus(&wire.encode(), |_| Ok(())).expect("an encoding decodes");
        assert_eq!(again, wire);
    }
    round_trip::<TxWire>(data);
});
