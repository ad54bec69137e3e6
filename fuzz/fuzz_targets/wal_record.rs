//! A record of the consensus write-ahead log, as read back after a crash (a torn or damaged file). Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_consensus::WalRecord;
use cdrchain_fuzz::round_trip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| round_trip::<WalRecord>(data));
