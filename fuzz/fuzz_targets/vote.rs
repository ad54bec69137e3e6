//! A signed prevote or precommit as gossiped. Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_fuzz::round_trip;
use cdrchain_runtime::block::Vote;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| round_trip::<Vote>(data));
