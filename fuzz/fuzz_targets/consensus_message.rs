//! A consensus message (proposal or vote) as signed and gossiped. Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_consensus::ConsensusMessage;
use cdrchain_fuzz::round_trip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| round_trip::<ConsensusMessage>(data));
