//! The canonical CDR as switches and tools post it: JSON to a CDR body never panics, and a body
//! that validates encodes to bytes that decode to it.
#![no_main]

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::input::CdrInput;
use cdrchain_runtime::party::PartyHasher;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(input) = CdrInput::from_json(text) else { return };
    let Ok(parties) = PartyHasher::new(b"fuzz consortium secret", Some("GB")) else { return };
    if let Ok(body) = input.to_body(&parties) {
        let again: CdrBody = decode_exact(&body.encode()).expect("an encoding decodes");
        assert_eq!(again, body);
        let _ = input.source_key();
    }
});
