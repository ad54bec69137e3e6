//! RSK checkpoints from the node's side: validators sign the checkpoint of every
//! `checkpoint_interval`-th block for the configured contract, and `checkpoint_get` /
//! `checkpoint_latest` return it with the signatures gathered so far.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::time::{Duration, Instant};

use common::{cdr, run, Node};
use serde_json::{json, Value};

const CONTRACT: &str = "0x5fbdb2315678afecb367f032d93f642f64180aa3";

#[test]
fn a_dev_validator_signs_every_checkpoint_for_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("dev-3.json");
    let output =
        run(&["build-spec", "--chain", "dev", "--checkpoint-interval", "3", "--out", spec.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let node = Node::start(&[
        "node",
        "--chain",
        spec.to_str().unwrap(),
        "--dev-key",
        "alice",
        "--tmp",
        "--rpc-addr",
        "127.0.0.1:0",
        "--no-metrics",
        "--checkpoint-contract",
        CONTRACT,
    ]);
    assert!(
        node.early.iter().any(|l| l.contains("signing RSK checkpoints every 3 blocks")),
        "{:?}",
        node.early
    );
    assert_eq!(node.call("checkpoint_latest", json!([])).unwrap(), Value::Null);

    // Blocks come with work: submit until checkpoint 6 has alice's signature.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    let six = loop {
        let (status, _) = node.post("/ingest/cdrs", &cdr(n).to_string());
        assert_eq!(status, 200);
        n += 1;
        std::thread::sleep(Duration::from_millis(300));
        let six = node.call("checkpoint_get", json!([6])).unwrap();
        if six["signatures"].as_array().is_some_and(|s| !s.is_empty()) {
            break six;
        }
        assert!(Instant::now() < deadline, "no signed checkpoint #6: {six}");
    };
    let header = node.call("chain_getHeader", json!([6])).unwrap();
    assert_eq!(six["height"], 6);
    assert_eq!(six["block_hash"], header["hash"]);
    assert_eq!(six["state_root"], header["state_root"]);
    assert_eq!(six["cdr_log_root"], header["cdr_log_root"]);
    assert_eq!(six["cdr_log_size"], header["cdr_log_size"]);
    assert_eq!(six["rsk_chain_id"], 33);
    assert_eq!((six["validators"].as_u64(), six["quorum"].as_u64()), (Some(1), Some(1)));
    let signature = &six["signatures"][0];
    assert_eq!(signature["operator"], "alice");
    assert_eq!(signature["contract"], CONTRACT);
    assert_eq!(signature["signature"].as_str().unwrap().len(), 2 + 130);
    // Checkpoint 3 was signed too, and nothing exists at a height that is no checkpoint.
    assert_eq!(node.call("checkpoint_get", json!([3])).unwrap()["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(node.call("checkpoint_get", json!([4])).unwrap(), Value::Null);
    let latest = node.call("checkpoint_latest", json!([])).unwrap();
    assert!(latest["height"].as_u64().unwrap() >= 6, "{latest}");
}
