//! The built-in specs' genesis hashes and genesis state roots are frozen in
//! `tests/fixtures/genesis.json`. They change only on purpose (`UPDATE_GOLDEN=1`): a changed dev or
//! local genesis means every existing dev database and test fixture is for another chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use std::collections::BTreeMap;

use cdrchain_chain_spec::ChainSpec;

#[test]
fn built_in_genesis_hashes_are_frozen() {
    let mut actual = BTreeMap::new();
    for spec in [ChainSpec::dev(), ChainSpec::local()] {
        actual.insert(format!("{}_genesis_hash", spec.id), spec.genesis_hash().to_string());
        actual.insert(
            format!("{}_genesis_state_root", spec.id),
            spec.genesis_state().unwrap().state_root().to_string(),
        );
        actual.insert(format!("{}_alice_peer_id", spec.id), spec.operators[0].peer_id.clone());
        actual.insert(format!("{}_alice_evm_address", spec.id), spec.operators[0].evm_address.to_hex());
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/genesis.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture missing: UPDATE_GOLDEN=1 once"))
            .unwrap();
    assert_eq!(expected, actual, "a built-in genesis changed");
}
