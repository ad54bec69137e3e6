//! A sealed interconnect envelope as the chain holds it (issue #28), opened with a partner's key:
//! decoding and opening never panic; what decodes round-trips.
#![no_main]

use cdrchain_chain_spec::sealing::{open, EncryptionSecret, EnvelopeV1};
use cdrchain_fuzz::round_trip;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::interconnect::{Envelope, Sealed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    round_trip::<EnvelopeV1>(data);
    let envelope = Envelope(BoundedVec::new(data.to_vec()).unwrap_or_default());
    let sealed = Sealed { commitment: Hash32([0; 32]), envelope };
    let _ = open(&Hash32([1; 32]), &sealed, &EncryptionSecret::from_bytes([7; 32]));
});
