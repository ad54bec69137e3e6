//! Kamailio acc_json lines (one JSON object per accounting event): reading them never panics.
#![no_main]

use cdrchain_formats::{kamailio, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kamailio::parse_json(text, &Context::new("alice"));
    }
});
