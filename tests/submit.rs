//! `cdrchain submit`, `cdr get` and `purge-chain` against a running dev node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::time::Duration;

use common::{cdr, run, Node};
use serde_json::json;

#[test]
fn submit_files_look_them_up_and_purge_the_chain() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let dir = tempfile::tempdir().unwrap();

    // NDJSON with a bad record on line 7: skipped and reported with file:line.
    let mut lines: Vec<String> = (0..30).map(|n| cdr(n).to_string()).collect();
    let mut bad = cdr(6);
    bad["disposition"] = json!("hung-up");
    lines[6] = bad.to_string();
    let ndjson = dir.path().join("calls.ndjson");
    std::fs::write(&ndjson, lines.join("\n")).unwrap();
    let output = run(&["submit", "--rpc", &node.rpc, "--on-error", "skip", ndjson.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "a refused CDR makes the exit status non-zero");
    assert!(stdout.contains("29 accepted") && stdout.contains("1 refused"), "{stdout}");
    assert!(stdout.contains("calls.ndjson:7") && stdout.contains("unknown disposition"), "{stdout}");

    // The default policy stops at the bad record, naming it.
    let output = run(&["submit", "--rpc", &node.rpc, ndjson.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("calls.ndjson:7"));

    // CSV with the canonical names as header.
    let csv = dir.path().join("calls.csv");
    std::fs::write(
        &csv,
        "call_id,caller,callee,caller_operator,callee_operator,start,answer,end,disposition,q850_cause,sip_status\n\
         csv-1@test,+442079460018,+14155550123,alice,bob,2026-11-26T10:00:00Z,2026-11-26T10:00:04Z,2026-11-26T10:03:00Z,answered,16,200\n\
         csv-2@test,+442079460019,+14155550124,alice,bob,1795687260000,,1795687265000,busy,17,486\n",
    )
    .unwrap();
    let output = run(&["submit", "--rpc", &node.rpc, csv.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 accepted (alice:29 … alice:30)"));

    node.wait_committed("alice:30", Duration::from_secs(60));
    let output = run(&["cdr", "get", "--rpc", &node.rpc, "alice:29"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["call_id"], "csv-1@test");
    assert_eq!(record["answer_ms"], 1_795_687_204_000u64);
    let output = run(&["cdr", "get", "--rpc", &node.rpc, "--call-id", "csv-2@test"]);
    assert!(output.status.success());
    let legs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(legs[0]["disposition"], "busy");
    let output = run(&["cdr", "get", "--rpc", &node.rpc, "alice:999"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no committed CDR alice:999"));
    assert!(node.terminate().success());

    // purge-chain deletes the database (and only with -y when not interactive).
    let db = base.path().join("chains/dev/db");
    assert!(db.exists());
    let output = run(&["purge-chain", "--chain", "dev", "--base-path", base.path().to_str().unwrap(), "-y"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!db.exists());
}
