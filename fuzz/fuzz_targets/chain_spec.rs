//! A chain spec as an operator receives it from the consortium: reading and checking it never
//! panics, and a spec that reads builds its genesis state or says why not.
#![no_main]

use cdrchain_chain_spec::ChainSpec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = ChainSpec::from_json(text, "fuzz") {
        let _ = spec.genesis_state();
        let _ = spec.genesis_hash();
    }
});
