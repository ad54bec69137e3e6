//! A submission body as `/ingest/cdrs` and `cdr_submit` read it (a JSON array, one object, or
//! NDJSON): reading never panics, and every CDR it yields either validates to a body that
//! round-trips or is refused with a reason.
#![no_main]

use cdrchain_formats::canonical::parse_documents;
use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::party::PartyHasher;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

fuzz_target!(|data: &[u8]| {
    let Ok(inputs) = parse_documents(data) else { return };
    let Ok(parties) = PartyHasher::new(b"fuzz consortium secret", Some("GB")) else { return };
    for (input, _line) in inputs {
        if let Ok(body) = input.to_body(&parties) {
            let again: CdrBody = decode_exact(&body.encode()).expect("an encoding decodes");
            assert_eq!(again, body);
        }
    }
});
