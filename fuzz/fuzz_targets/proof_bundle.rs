//! A proof bundle as a partner receives it: reading and verifying never panics.
#![no_main]

use cdrchain_runtime::proof::{verify, ProofBundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = serde_json::from_slice::<ProofBundle>(data) {
        let _ = verify(&bundle, None);
    }
});
