//! A commit certificate as sync responses and blocks carry it. Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_fuzz::round_trip;
use cdrchain_runtime::block::CommitCertificate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| round_trip::<CommitCertificate>(data));
