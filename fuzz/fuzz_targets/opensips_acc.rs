//! OpenSIPS acc log lines: reading them never panics.
#![no_main]

use cdrchain_formats::{opensips, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = opensips::parse_log(text, &Context::new("alice"));
    }
});
