//! The four switches' CDR formats, read from the same bytes: FreeSWITCH (raw, form and base64
//! bodies), Kamailio acc_json and acc log lines, Asterisk CSV, OpenSIPS log lines. None panics.
#![no_main]

use cdrchain_formats::{asterisk, freeswitch, kamailio, opensips, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = Context::new("alice");
    if let Ok(json) = freeswitch::decode_body(data) {
        let _ = freeswitch::parse_document(&json, &ctx);
    }
    let _ = asterisk::parse(data, &ctx, &asterisk::Options { timezone: chrono_tz::UTC });
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kamailio::parse_json(text, &ctx);
        let _ = kamailio::parse_log(text, &ctx);
        let _ = opensips::parse_log(text, &ctx);
    }
});
