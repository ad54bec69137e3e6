//! FreeSWITCH mod_json_cdr posts, in every encoding the node accepts (raw JSON, a form with
//! `cdr=`, base64): decoding and reading the document never panics.
#![no_main]

use cdrchain_formats::{freeswitch, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = freeswitch::decode_body(data) {
        let _ = freeswitch::parse_document(&json, &Context::new("alice"));
    }
});
