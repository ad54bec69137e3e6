//! The partner portal (issue #29) in Debian's Chromium, driven by playwright-core
//! (`tests/portal/portal.mjs`): a dev node with a token and committed CDRs serves the page; the
//! browser signs in, reads the Chain page (with the RSK anchor the node reads from anvil), the
//! operator view (per source: accepted, duplicates, refused), searches by id, by call id and by
//! telephone number (hashed in the page; the number and the secret are never sent), downloads a CDR's proof bundle and verifies
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
/// Partners' read tokens: each sees only the CDRs its operator recorded or is a party to.
const PARTNER_TOKENS: [(&str, &str); 2] =
    [("bob", "portal-e2e-bob-partner-token"), ("charlie", "portal-e2e-charlie-partner-token")];
/// The telephone number the browser searches for, as the switch wrote it.
const NUMBER_AS_WRITTEN: &str = "+44 (20) 7946-0999";

#[test]
fn a_partner_signs_in_finds_a_call_and_verifies_its_proof_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("node");
    // Partners' tokens besides the operator's: bob is a party to the calls, charlie to none.
    let mut config_file = String::new();
    for (partner, token) in PARTNER_TOKENS {
        let path = dir.path().join(format!("{partner}.token"));
        std::fs::write(&path, token).unwrap();
        config_file += &format!(
            "[[rpc_tokens]]\nname = \"partner-{partner}\"\nroles = [\"read\"]\nparty = \"{partner}\"\ntoken_file = \"{}\"\n\n",
            path.display()
        );
    }
    let config_path = dir.path().join("node.toml");
    std::fs::write(&config_path, config_file).unwrap();
    // anvil as RSK regtest holds the dev chain's checkpoint contract, which the node reads (the
    // Chain page's anchor card).
    let (_rsk_node, rsk) = common::anvil::anvil();
    let contract = common::anvil::deploy_contract(&dir.path().join("rsk"), &rsk, "dev");
    let mut node = Node::start_dev(
        &base,
        &["--rpc-token", TOKEN, "--config", config_path.to_str().unwrap()]
            .into_iter()
            .chain(["--checkpoint-contract", &contract, "--rsk-rpc", &rsk, "--rsk-poll-interval", "1"])
            .collect::<Vec<_>>(),
    );
    node.token = Some(TOKEN.to_string());
    let mut cdrs: Vec<Value> = (0..20).map(common::cdr).collect();
    // A day later (outside the settlement's day), one number in three calls: caller, callee, caller.
    for (n, role) in [(20, "caller"), (21, "callee"), (22, "caller")] {
        let mut cdr = common::cdr(n);
        cdr[role] = json!(NUMBER_AS_WRITTEN);
        for field in ["start", "answer", "end"] {
            if let Some(ms) = cdr[field].as_u64() {
                cdr[field] = json!(ms + 86_400_000);
            }
        }
        cdrs.push(cdr);
    }
    let ids = node.call("cdr_submit", json!([cdrs])).unwrap();
    let id = ids[7].as_str().unwrap().to_string();
    node.wait_committed(ids[22].as_str().unwrap(), Duration::from_secs(60));
    let of_number: Vec<String> = [22, 21, 20].iter().map(|&i| ids[i].as_str().unwrap().to_string()).collect();

    // The party index follows the head on a thread of its own: wait until it has the last block.
    let digest = "0x".to_string() + &"00".repeat(32);
    common::await_value(&node, "cdr_byParty", &digest, Duration::from_secs(30), |page| {
        page["indexed_through"].as_u64().is_some_and(|h| h > 0) && page["indexed_through"] == page["head"]
    });
    // The CLI finds the number's calls as the page must, newest first.
    let found = Command::new(common::cdrchain_binary())
        .args(["cdr", "get", "--number", "020 7946 0999", "--default-region", "GB", "--rpc", &node.rpc])
        .args(["--token", TOKEN])
        .output()
        .unwrap();
    assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
    let found: Value = serde_json::from_slice(&found.stdout).unwrap();
    let found_ids: Vec<&str> = found.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(found_ids, of_number, "{found}");

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

    // For the operator view: two records sent again (duplicates), and a submission refused for
    // a record that ends before it starts.
    let again = node.call("cdr_submit", json!([[common::cdr(0), common::cdr(1)]])).unwrap();
    assert_eq!(again[0], ids[0], "a duplicate is answered with its first id");
    let mut bad = common::cdr(500);
    bad["end"] = json!(bad["start"].as_u64().unwrap() - 1_000);
    assert!(node.call("cdr_submit", json!([[bad]])).is_err());
    let stats = node.call("system_ingestStats", json!([])).unwrap();
    let source = &stats["sources"]["sbc-test"];
    assert_eq!((&source["accepted"], &source["duplicates"]), (&json!(23), &json!(2)), "{stats}");
    let refused = source["refused"].as_object().unwrap();
    assert_eq!(refused.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 1, "{stats}");
    let refused_as = format!("1 × {}", refused.keys().next().unwrap());

    // Alice's own export of the day, with differences planted: two calls missing, one longer, one
    // to another callee, and one the chain never saw. The CLI's reconciliation of it is what the
    // page must show and let download.
    let export = planted_export(ids.as_array().unwrap());
    let export_path = dir.path().join("alice-export.ndjson");
    std::fs::write(&export_path, &export.text).unwrap();
    let cli_csv = dir.path().join("cli-reconciliation.csv");
    let reconciled = Command::new(common::cdrchain_binary())
        .args(["reconcile", "--partner", "bob", "--mine"])
        .arg(&export_path)
        .arg("--csv")
        .arg(&cli_csv)
        .args(["--rpc", &node.rpc, "--token", TOKEN])
        .output()
        .unwrap();
    assert_eq!(reconciled.status.code(), Some(3), "{}", String::from_utf8_lossy(&reconciled.stderr));
    let cli_csv = std::fs::read_to_string(&cli_csv).unwrap();

    let config = json!({
        "url": format!("{}/", node.rpc),
        "token": TOKEN,
        "operator": "alice",
        "chain": "dev",
        "cdrs": 23,
        "contract": contract.to_lowercase(),
        "id": id,
        "callId": "e2e-11@test.invalid",
        "number": {
            "written": "+44 20 7946 0999",
            "canonical": "tel:+442079460999",
            "secret": "cdrchain dev consortium secret -- INSECURE, public",
            "records": of_number,
            "roles": ["caller", "callee", "caller"],
        },
        // Neither the number (in any form) nor the consortium secret leaves the page.
        "neverSent": ["7946 0999", "7946%200999", "442079460999", "INSECURE", PLANTED_CALL, PLANTED_CALLEE],
        "partners": { "bob": PARTNER_TOKENS[0].1, "charlie": PARTNER_TOKENS[1].1 },
        "operatorView": { "source": "sbc-test", "accepted": 23, "duplicates": 2, "refused": refused_as },
        "reconcile": {
            "file": export_path,
            "partner": "bob",
            "matched": export.matched,
            "mismatched": export.mismatched,
            "missingOnChain": export.missing_on_chain,
            "missingInFile": export.missing_in_file,
            "csv": cli_csv,
        },
        "dir": dir.path(),
        "settlement": {
            "partner": "bob", "from": "2026-11-18", "to": "2026-11-19", "rounding": "60/6",
            "expected": settled["directions"],
        },
        "screenshots": std::env::var("CDRCHAIN_PORTAL_SCREENSHOTS").ok(),
    });
    let report = common::browser_script("portal.mjs", &config);
    assert_eq!(report["steps"].as_array().unwrap().len(), 10, "{report}");
}

/// A call only the export holds, and a callee only the export names: neither may leave the page.
const PLANTED_CALL: &str = "e2e-planted@test.invalid";
const PLANTED_CALLEE: &str = "sip:planted-callee@partner.example";

/// Alice's export of the first day's 20 calls and what reconciling it must report.
struct Export {
    text: String,
    matched: u64,
    /// `[line, chain id, field]` of each difference.
    mismatched: Vec<(u64, String, &'static str)>,
    missing_on_chain: Vec<u64>,
    missing_in_file: Vec<String>,
}

fn planted_export(ids: &[Value]) -> Export {
    let id = |n: usize| ids[n].as_str().unwrap().to_string();
    let mut lines = Vec::new();
    let mut mismatched = Vec::new();
    for n in (0..20).filter(|n| ![3, 5].contains(n)) {
        let mut cdr = common::cdr(n);
        let line = lines.len() as u64 + 1;
        match n {
            8 => {
                cdr["end"] = json!(cdr["end"].as_u64().unwrap() + 60_000);
                mismatched.push((line, id(8), "duration"));
            }
            9 => {
                cdr["callee"] = json!(PLANTED_CALLEE);
                mismatched.push((line, id(9), "callee"));
            }
            _ => {}
        }
        lines.push(cdr.to_string());
    }
    let mut extra = common::cdr(10);
    extra["call_id"] = json!(PLANTED_CALL);
    extra["start"] = json!(extra["start"].as_u64().unwrap() + 500);
    lines.push(extra.to_string());
    Export {
        text: lines.join("\n") + "\n",
        matched: 16,
        mismatched,
        missing_on_chain: vec![lines.len() as u64],
        missing_in_file: vec![id(3), id(5)],
    }
}
