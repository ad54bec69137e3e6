//! Proof and absence bundles as a partner receives them: reading and verifying never panics.
#![no_main]

use cdrchain_runtime::proof::{verify, verify_absence, AbsenceBundle, ProofBundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = serde_json::from_slice::<ProofBundle>(data) {
        let _ = verify(&bundle, None);
    }
    if let Ok(bundle) = serde_json::from_slice::<AbsenceBundle>(data) {
        let _ = verify_absence(&bundle, None);
    }
});
