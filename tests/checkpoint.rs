//! RSK checkpoints from the node's side: validators sign the checkpoint of every
//! `checkpoint_interval`-th block for the configured contract, and `checkpoint_get` /
//! `checkpoint_latest` return it with the signatures gathered so far.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::time::{Duration, Instant};

use common::{cdr, run, Node};
use serde_json::{json, Value};

const CONTRACT: &str = "0x5fbdb2315678afecb367f032d93f642f64180aa3";

/// The dev chain's spec with a checkpoint every `interval` blocks, written into `dir`.
fn dev_spec(dir: &std::path::Path, interval: u64) -> std::path::PathBuf {
    let spec = dir.join(format!("dev-{interval}.json"));
    let interval = interval.to_string();
    let output = run(&[
        "build-spec",
        "--chain",
        "dev",
        "--checkpoint-interval",
        &interval,
        "--out",
        spec.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    spec
}

#[test]
fn a_dev_validator_signs_every_checkpoint_for_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dev_spec(dir.path(), 3);
    let node = Node::start_spec(&spec, &["--checkpoint-contract", CONTRACT]);
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

/// Review M9: a checkpoint signature used to be made once and lost when the pool was full. With
/// a pool of one transaction, always full of batches under continuous load, every checkpoint
/// still gets this validator's signature.
#[test]
fn every_checkpoint_is_signed_while_batches_fill_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dev_spec(dir.path(), 2);
    let node = Node::start_spec(
        &spec,
        &["--checkpoint-contract", CONTRACT, "--pool-size", "1", "--batch-size", "1"],
    );
    // One CDR per batch and a pool of one: a batch waits in the pool at almost every commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    loop {
        let body: Vec<String> = (n..n + 20).map(|i| cdr(i).to_string()).collect();
        let (status, _) = node.post("/ingest/cdrs", &body.join("\n"));
        assert_eq!(status, 200);
        n += 20;
        std::thread::sleep(Duration::from_millis(100));
        let head = node.call("chain_getHeader", json!([])).unwrap()["number"].as_u64().unwrap_or(0);
        if head >= 14 {
            break;
        }
        assert!(Instant::now() < deadline, "the chain reached only #{head}");
    }
    // Checkpoints 2..=10 are older than RESIGN_CHECKPOINTS intervals or close to it: each must
    // hold alice's signature within a few more blocks.
    for height in (2..=10).step_by(2) {
        let signed = loop {
            let checkpoint = node.call("checkpoint_get", json!([height])).unwrap();
            if checkpoint["signatures"].as_array().is_some_and(|s| !s.is_empty()) {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            let (status, _) = node.post("/ingest/cdrs", &cdr(n).to_string());
            assert_eq!(status, 200);
            n += 1;
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(signed, "checkpoint #{height} never got alice's signature");
    }
}

/// Review H5 and M9 on four real validators: under a sustained backlog every block is full of
/// batches, and checkpoint signatures used to sort last and starve, so anchoring stopped exactly
/// when the chain was busy. Now every checkpoint gathers a quorum while the backlog lasts.
#[test]
fn under_a_sustained_backlog_every_checkpoint_gathers_a_quorum() {
    let mut net = common::Net::new();
    let spec = net.base.join("local-10.json");
    let output = run(&[
        "build-spec",
        "--chain",
        "local",
        "--checkpoint-interval",
        "10",
        "--out",
        spec.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    net.chain = spec.to_str().unwrap().to_string();
    let nodes: Vec<Node> = (0..4)
        .map(|i| net.start_full(i, &[], &["--checkpoint-contract", CONTRACT, "--max-queue", "200000"]))
        .collect();
    // Four senders, one per validator, offering more than the chain commits until block 25 (35 to
    // 75 s on two cores): each node's queue (four blocks' worth) stays full, its 503s are retried,
    // and blocks are full of batches.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let (rpc, stop) = (node.rpc.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 1_000_000 * (i as u64 + 1);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body: Vec<String> = (n..n + 5_000).map(|k| cdr(k).to_string()).collect();
                    if ureq::post(&format!("{rpc}/ingest/cdrs")).send_string(&body.join("\n")).is_ok() {
                        n += 5_000;
                    } else {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    // Until block 25 (checkpoints 10 and 20 recorded and five blocks for their signatures).
    let deadline = Instant::now() + Duration::from_secs(240);
    let head = loop {
        let head = nodes[0].call("chain_getHeader", json!([])).unwrap()["number"].as_u64().unwrap_or(0);
        if head >= 25 || Instant::now() > deadline {
            break head;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }
    assert!(head >= 25, "only {head} blocks in 240 s");
    // Every checkpoint at least five blocks old got a quorum (3 of 4) while the backlog lasted.
    for height in (10..=head.saturating_sub(5)).step_by(10) {
        let checkpoint = nodes[0].call("checkpoint_get", json!([height])).unwrap();
        let signatures = checkpoint["signatures"].as_array().map_or(0, Vec::len);
        assert!(signatures >= 3, "checkpoint #{height} has {signatures} signatures: {checkpoint}");
    }
}
