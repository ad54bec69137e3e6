//! A dispute bundle (issue #28) as an auditor receives it: reading and verifying never panics.
#![no_main]

use cdrchain_runtime::proof::dispute::verify_dispute_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = verify_dispute_text(text, None);
    }
});
