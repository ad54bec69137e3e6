//! A whole block as proposals and sync carry it, through the size-bounded decoder the node
//! uses. Decoding never panics; what decodes round-trips.
#![no_main]

use cdrchain_runtime::block::Block;
use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;

/// The bound the fuzzer decodes under: larger than any input it makes (4 KiB).
const MAX_BYTES: usize = 1 << 24;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode_bounded(data, MAX_BYTES) {
        let again = Block::decode_bounded(&block.encode(), MAX_BYTES).expect("an encoding decodes");
        assert_eq!(again, block);
    }
});
