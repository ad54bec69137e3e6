//! A block header as a peer sends it (in proposals and sync responses). Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_fuzz::round_trip;
use cdrchain_runtime::block::Header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| round_trip::<Header>(data));
