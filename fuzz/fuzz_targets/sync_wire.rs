//! Block sync as peers speak it: a request, and a response of up to 256 blocks with their
//! commit certificates. Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_consensus::wire::{SyncRequest, SyncResponse};
use cdrchain_fuzz::round_trip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    round_trip::<SyncRequest>(data);
    round_trip::<SyncResponse>(data);
});
