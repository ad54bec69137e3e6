//! The partner portal (issue #29) in Debian's Chromium, driven by playwright-core
//! (`tests/portal/portal.mjs`): a dev node with a token and committed CDRs serves the page; the
//! browser signs in, searches by id and by call id, downloads a CDR's proof bundle and verifies
//! it, and a tampered copy, with cdrchain's own verifier compiled to WebAssembly; the settlement
//! page shows the totals `cdrchain settlement` prints; no request leaves the node's origin.
//! `scripts/install-deps.sh` installs Chromium and playwright-core.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::process::Command;
use std::time::Duration;

use common::Node;
use serde_json::{json, Value};

const TOKEN: &str = "portal-e2e-admin-token";

#[test]
fn a_partner_signs_in_finds_a_call_and_verifies_its_proof_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("node");
    let mut node = Node::start_dev(&base, &["--rpc-token", TOKEN]);
    node.token = Some(TOKEN.to_string());
    let cdrs: Vec<Value> = (0..20).map(common::cdr).collect();
    let ids = node.call("cdr_submit", json!([cdrs])).unwrap();
    let id = ids[7].as_str().unwrap().to_string();
    node.wait_committed(&id, Duration::from_secs(60));

    // The settlement the CLI computes, which the page must show.
    let settled = Command::new(common::cdrchain_binary())
        .args(["settlement", "--a", "alice", "--b", "bob", "--from", "2026-11-18T00:00:00Z"])
        .args(["--to", "2026-11-19T00:00:00Z", "--rounding", "60/6", "--json", "--rpc", &node.rpc])
        .args(["--token", TOKEN])
        .output()
        .unwrap();
    assert!(settled.status.success(), "{}", String::from_utf8_lossy(&settled.stderr));
    let settled: Value = serde_json::from_slice(&settled.stdout).unwrap();
    assert_eq!(settled["calls"], 20, "{settled}");

    let config = json!({
        "url": format!("{}/", node.rpc),
        "token": TOKEN,
        "operator": "alice",
        "chain": "dev",
        "cdrs": 20,
        "id": id,
        "callId": "e2e-11@test.invalid",
        "dir": dir.path(),
        "settlement": {
            "partner": "bob", "from": "2026-11-18", "to": "2026-11-19", "rounding": "60/6",
            "expected": settled["directions"],
        },
        "screenshots": std::env::var("CDRCHAIN_PORTAL_SCREENSHOTS").ok(),
    });
    let report = common::browser_script("portal.mjs", &config);
    assert_eq!(report["steps"].as_array().unwrap().len(), 6, "{report}");
}
