//! An absence bundle (proof that a CDR was not recorded) as a partner receives it: reading and
//! verifying never panics.
#![no_main]

use cdrchain_runtime::proof::{verify_absence, AbsenceBundle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = serde_json::from_slice::<AbsenceBundle>(data) {
        let _ = verify_absence(&bundle, None);
    }
});
