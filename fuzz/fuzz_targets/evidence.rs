//! Equivocation evidence as a validator stores and serves it. Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_consensus::Evidence;
use cdrchain_fuzz::round_trip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| round_trip::<Evidence>(data));
