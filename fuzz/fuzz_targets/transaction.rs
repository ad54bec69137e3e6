//! A signed transaction (a CDR batch, a gap, a checkpoint...) as gossiped. Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_fuzz::round_trip;
use cdrchain_runtime::tx::SignedTransaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| round_trip::<SignedTransaction>(data));
