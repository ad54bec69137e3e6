//! The dev chain end to end: the real `cdrchain node` process, RocksDB, JSON-RPC and HTTP ingest
//! on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdrchain_runtime::party::PartyHasher;
use common::{cdr, run, Node};
use serde_json::{json, Value};

/// The dev chain's public consortium secret (cli/src/node.rs).
const DEV_SECRET: &[u8] = b"cdrchain dev consortium secret -- INSECURE, public";

fn digest(party: &str) -> String {
    PartyHasher::new(DEV_SECRET, None).unwrap().digest(party).unwrap().0.to_string()
}

fn ndjson(range: std::ops::Range<u64>) -> String {
    range.map(|n| cdr(n).to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn twenty_thousand_cdrs_are_committed_and_returned_as_submitted() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let mut ids: Vec<String> = Vec::new();
    // 10,000 through cdr_submit, in chunks.
    for start in (0..10_000u64).step_by(2_500) {
        let cdrs: Vec<Value> = (start..start + 2_500).map(cdr).collect();
        let answer = node.call("cdr_submit", json!([cdrs])).unwrap();
        ids.extend(answer.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    }
    // 10,000 through POST /ingest/cdrs as NDJSON.
    for start in (10_000..20_000u64).step_by(5_000) {
        let (status, answer) = node.post("/ingest/cdrs", &ndjson(start..start + 5_000));
        assert_eq!(status, 200, "{answer}");
        ids.extend(answer["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    }
    let expected: Vec<String> = (0..20_000).map(|n| format!("alice:{n}")).collect();
    assert_eq!(ids, expected, "ids are the recorder's contiguous sequence numbers");
    node.wait_committed("alice:19999", Duration::from_secs(120));

    let gets: Vec<(&str, Value)> = ids.iter().map(|id| ("cdr_get", json!([id]))).collect();
    let by_call: Vec<(&str, Value)> =
        (0..20_000u64).map(|n| ("cdr_byCallId", json!([format!("e2e-{n}@test.invalid")]))).collect();
    let got = node.batch(&gets);
    let by_call_id = node.batch(&by_call);
    for n in 0..20_000u64 {
        let submitted = cdr(n);
        let stored = &got[n as usize];
        assert_eq!(stored["id"], format!("alice:{n}"));
        assert_eq!(stored["call_id"], submitted["call_id"]);
        assert_eq!(
            stored["caller"],
            digest(submitted["caller"].as_str().unwrap()),
            "caller of {n} is its keyed digest"
        );
        assert_eq!(stored["callee"], digest(submitted["callee"].as_str().unwrap()));
        assert_eq!(stored["start_ms"], submitted["start"]);
        assert_eq!(stored["end_ms"], submitted["end"]);
        assert_eq!(stored["answer_ms"], submitted.get("answer").cloned().unwrap_or(Value::Null));
        assert_eq!(stored["disposition"], submitted["disposition"]);
        assert_eq!(stored["q850_cause"], submitted["q850_cause"]);
        assert_eq!(stored["sip_status"], submitted["sip_status"]);
        assert_eq!(stored["caller_operator"], "alice");
        assert_eq!(stored["callee_operator"], "bob");
        assert_eq!(stored["leaf_index"], n, "the log holds them in sequence order");
        let legs = by_call_id[n as usize].as_array().unwrap();
        assert_eq!(legs.len(), 1, "call {n}");
        assert_eq!(legs[0], *stored);
    }
    // The head commits to all of them.
    let head = node.call("chain_getHeader", json!([])).unwrap();
    assert_eq!(head["cdr_log_size"], 20_000);
    assert_eq!(node.call("chain_getFinalizedHead", json!([])).unwrap(), head["hash"]);
    let block = node.call("chain_getBlock", json!([head["number"]])).unwrap();
    assert_eq!(block["certificate"]["block_hash"], head["hash"]);
    // A partner query pages through the window.
    let mut cursor = Value::Null;
    let mut seen = 0;
    loop {
        let page = node
            .call(
                "cdr_query",
                json!([
                    "bob",
                    "alice",
                    1_795_000_000_000u64,
                    1_795_000_000_000u64 + 500 * 1_000,
                    cursor,
                    200
                ]),
            )
            .unwrap();
        seen += page["cdrs"].as_array().unwrap().len();
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, 500);
    assert!(node.terminate().success(), "SIGTERM stops the node cleanly with exit 0");
}

#[test]
fn acknowledged_cdrs_survive_kill_9_exactly_once() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &["--batch-linger-ms", "20"]);
    let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(Mutex::new(0u64));
    let rpc = node.rpc.clone();
    let (acked2, sent2) = (acked.clone(), sent.clone());
    let submitter = std::thread::spawn(move || {
        for chunk in 0..200u64 {
            let range = chunk * 300..(chunk + 1) * 300;
            *sent2.lock().unwrap() = range.end;
            let body = ndjson(range.clone());
            match ureq::post(&format!("{rpc}/ingest/cdrs")).send_string(&body) {
                Ok(response) if response.status() == 200 => {
                    let answer: Value = response.into_json().unwrap();
                    assert_eq!(answer["accepted"], 300);
                    acked2.lock().unwrap().extend(range);
                }
                _ => return, // the node died mid-request: this chunk was not acknowledged
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1_500));
    node.kill9();
    submitter.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let sent = *sent.lock().unwrap();
    assert!(acked.len() >= 300, "some submissions were acknowledged before the kill");

    let node = Node::start_dev(base.path(), &[]);
    let last = *acked.iter().max().unwrap();
    // Sequence numbers follow submission order, so the last acknowledged CDR has the highest id.
    let calls: Vec<(&str, Value)> =
        (0..sent).map(|n| ("cdr_byCallId", json!([format!("e2e-{n}@test.invalid")]))).collect();
    node.wait_committed(&format!("alice:{}", acked.len() - 1), Duration::from_secs(60));
    let found = node.batch(&calls);
    let mut committed = BTreeMap::new();
    for (n, legs) in found.iter().enumerate() {
        let legs = legs.as_array().unwrap();
        assert!(legs.len() <= 1, "call {n} committed {} times", legs.len());
        if let Some(leg) = legs.first() {
            committed.insert(n as u64, leg["id"].as_str().unwrap().to_string());
        }
    }
    for n in &acked {
        assert!(committed.contains_key(n), "acknowledged CDR {n} (of {last}) is not committed after kill -9");
    }
    // Nothing unacknowledged was numbered before the acknowledged ones: ids stay contiguous.
    let ids: BTreeSet<u64> =
        committed.values().map(|id| id.trim_start_matches("alice:").parse().unwrap()).collect();
    assert_eq!(ids, (0..committed.len() as u64).collect::<BTreeSet<_>>());
}

#[test]
fn a_validator_that_dies_locked_on_a_block_commits_it_after_restart() {
    // The dev chain's only validator exits (as if killed) right after the WAL record of its lock
    // on a block, before committing it. Locked, it could only ever vote for that block again at
    // that height, which it no longer holds: the chain stalled for good. Alone and unheard, it
    // may drop the lock (a networked validator keeps the block in its WAL instead).
    let base = tempfile::tempdir().unwrap();
    let base_path = base.path().to_str().unwrap();
    let args = ["node", "--dev", "--base-path", base_path, "--rpc-addr", "127.0.0.1:0", "--no-metrics"];
    let mut node = Node::start_env(&args, &[("CDRCHAIN_FAILPOINT", "exit-after-lock")]);
    let mut acked = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = node.child.try_wait() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the failpoint did not fire");
        let url = format!("{}/ingest/cdrs", node.rpc);
        if let Ok(response) = ureq::post(&url).send_string(&ndjson(acked..acked + 50)) {
            assert_eq!(response.status(), 200);
            acked += 50;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(137), "the failpoint's exit status");
    assert!(acked > 0, "some CDRs were acknowledged before the exit");
    let died = node.drain_log().join("\n");
    assert!(died.contains("failpoint exit-after-lock"), "{died}");
    drop(node);
    // The locked block's CDRs were acknowledged, not committed: purge-chain will not lose them
    // unless told to.
    let output = run(&["purge-chain", "--chain", "dev", "--base-path", base_path, "-y"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("acknowledged CDRs of this node are queued") && stderr.contains("--force"),
        "{stderr}"
    );

    let mut node = Node::start_dev(base.path(), &[]);
    node.wait_committed(&format!("alice:{}", acked - 1), Duration::from_secs(60));
    let log = node.drain_log().join("\n");
    assert!(log.contains("the lock is dropped (nobody else voted)"), "{log}");
    let calls: Vec<(&str, Value)> =
        (0..acked).map(|n| ("cdr_byCallId", json!([format!("e2e-{n}@test.invalid")]))).collect();
    for (n, legs) in node.batch(&calls).iter().enumerate() {
        assert_eq!(legs.as_array().map(Vec::len), Some(1), "call {n} is committed exactly once");
    }
    assert!(node.terminate().success());
    // Everything committed: nothing queued to lose.
    let output = run(&["purge-chain", "--chain", "dev", "--base-path", base_path, "-y"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_different_record_under_a_known_source_identity_is_a_409_naming_both() {
    // Review M7: the same (system_id, call_id, leg) with different content used to be answered
    // "duplicate" and dropped.
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let first = cdr(1);
    let (status, answer) = node.post("/ingest/cdrs", &first.to_string());
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:0"])), "{answer}");
    let mut corrected = first.clone();
    corrected["end"] = json!(first["end"].as_u64().unwrap() + 1_000);
    let (status, answer) = node.post("/ingest/cdrs", &format!("{}\n{}", cdr(2), corrected));
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["index"], 1, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("alice:0") && error.contains("different content"), "{error}");
    // Nothing of that submission was stored: CDR 2 comes next as alice:1.
    let (status, answer) = node.post("/ingest/cdrs", &cdr(2).to_string());
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:1"])), "{answer}");
    // The same record again is still a duplicate, answered with its first id.
    let (status, answer) = node.post("/ingest/cdrs", &first.to_string());
    assert_eq!(
        (status, answer["duplicates"].clone()),
        (200, json!([{"index": 0, "id": "alice:0"}])),
        "{answer}"
    );
    // Two versions of one record in one submission.
    let (status, answer) = node.post(
        "/ingest/cdrs",
        &format!("{}\n{}", cdr(3), {
            let mut other = cdr(3);
            other["disposition"] = json!("failed");
            other.as_object_mut().unwrap().remove("answer");
            other
        }),
    );
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("CDR 0 of the same submission"), "{answer}");
    // JSON-RPC: cdr_check reports it as an error, cdr_submit refuses it with -32009.
    let check = node.call("cdr_check", json!([[corrected]])).unwrap();
    assert!(check["errors"][0]["message"].as_str().unwrap().contains("alice:0"), "{check}");
    let refused = node.call("cdr_submit", json!([[corrected]])).unwrap_err();
    assert_eq!(refused["code"], -32009, "{refused}");
    assert!(node.terminate().success());
}

#[test]
fn export_then_import_gives_the_same_chain() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    for start in [0u64, 1_000, 2_000] {
        let (status, answer) = node.post("/ingest/cdrs", &ndjson(start..start + 1_000));
        assert_eq!(status, 200, "{answer}");
        node.wait_committed(&format!("alice:{}", start + 999), Duration::from_secs(60));
    }
    let head = node.call("chain_getHeader", json!([])).unwrap();
    assert!(node.terminate().success());

    let export = base.path().join("blocks.bin");
    let base_path = base.path().to_str().unwrap();
    let output = run(&[
        "export-blocks",
        "--chain",
        "dev",
        "--base-path",
        base_path,
        "--out",
        export.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let fresh = tempfile::tempdir().unwrap();
    let output = run(&[
        "import-blocks",
        "--chain",
        "dev",
        "--base-path",
        fresh.path().to_str().unwrap(),
        "--in",
        export.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(head["hash"].as_str().unwrap()), "{stdout} should end at {}", head["hash"]);

    let node = Node::start_dev(fresh.path(), &[]);
    let imported = node.call("chain_getHeader", json!([])).unwrap();
    assert_eq!(imported["hash"], head["hash"]);
    assert_eq!(imported["state_root"], head["state_root"]);
    assert_eq!(node.call("cdr_get", json!(["alice:2999"])).unwrap()["call_id"], "e2e-2999@test.invalid");
    drop(node);

    // A corrupted export is refused, with the block named.
    let mut bytes = std::fs::read(&export).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 0x55;
    std::fs::write(&export, &bytes).unwrap();
    let other = tempfile::tempdir().unwrap();
    let output = run(&[
        "import-blocks",
        "--chain",
        "dev",
        "--base-path",
        other.path().to_str().unwrap(),
        "--in",
        export.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("block"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let (status, _) = node.post("/ingest/cdrs", &ndjson(0..10));
    assert_eq!(status, 200);
    node.wait_committed("alice:9", Duration::from_secs(60));

    let mut missing = cdr(100);
    missing.as_object_mut().unwrap().remove("end");
    let mut backwards = cdr(101);
    backwards["end"] = json!(1_000);
    let mut unknown = cdr(102);
    unknown["disposition"] = json!("hung-up");
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{\"call_id\": ".to_string(), 400, "line 1"),
        ("missing field", format!("{}\n{}", cdr(99), missing), 400, "missing field `end`"),
        ("end before start", backwards.to_string(), 400, "end is before start"),
        ("unknown disposition", unknown.to_string(), 400, "unknown disposition"),
        ("too many CDRs", ndjson(1_000_000..1_100_001), 400, "more than the limit of 100000"),
    ];
    for (what, body, expected_status, expected) in cases {
        let (status, answer) = node.post("/ingest/cdrs", &body);
        assert_eq!(status, expected_status, "{what}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{what}: `{message}` should contain `{expected}`");
    }
    let (status, answer) = node.post("/ingest/cdrs", &format!("{}\n{}", cdr(99), missing));
    assert_eq!((status, answer["line"].clone(), answer["field"].clone()), (400, json!(2), json!("end")));

    // Over JSON-RPC, with the field named in the error data.
    let error = node.call("cdr_submit", json!([[cdr(200), backwards]])).unwrap_err();
    assert_eq!(error["code"], -32602);
    assert_eq!(error["data"]["index"], 1);
    assert_eq!(error["data"]["field"], "end");
    assert!(error["message"].as_str().unwrap().contains("end is before start"), "{error}");
    let error = node.call("cdr_submit", json!(["not an array"])).unwrap_err();
    assert_eq!(error["code"], -32602);

    // A JSON-RPC batch over the limit is refused whole, naming the limit; one at it is served.
    let limit = cdrchain_node::rpc::MAX_BATCH_CALLS as usize;
    let calls = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "cdr_get", "params": ["alice:0"]}))
            .collect()
    };
    let answer: Value = ureq::post(&node.rpc).send_json(calls(limit + 1)).unwrap().into_json().unwrap();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    let data = answer["error"]["data"].to_string();
    assert!(message.contains("batch") && data.contains(&limit.to_string()), "{answer}");
    let answers: Value = ureq::post(&node.rpc).send_json(calls(limit)).unwrap().into_json().unwrap();
    assert_eq!(answers.as_array().map(Vec::len), Some(limit));

    // Nothing of the refused submissions was numbered or stored.
    assert_eq!(node.call("cdr_status", json!(["alice:10"])).unwrap()["status"], "unknown");
    let (status, answer) = node.post("/ingest/cdrs", &cdr(300).to_string());
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:10"])));
    assert!(node.terminate().success());

    // A database of another chain (same id `dev`, different genesis) is refused, naming both.
    let mut spec: Value = serde_json::from_slice(&run(&["build-spec", "--chain", "dev"]).stdout).unwrap();
    spec["name"] = json!("Another dev chain");
    let spec_path = base.path().join("other-dev.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let output = run(&[
        "node",
        "--chain",
        spec_path.to_str().unwrap(),
        "--key",
        "dev:alice",
        "--base-path",
        base.path().to_str().unwrap(),
        "--rpc-addr",
        "127.0.0.1:0",
        "--no-metrics",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let dev_genesis = cdrchain_chain_spec::ChainSpec::dev().genesis_hash().to_string();
    assert!(stderr.contains(&dev_genesis) && stderr.contains("genesis"), "{stderr}");
}

#[test]
fn writes_need_a_token_beyond_loopback_and_bad_flags_are_explained() {
    let output = run(&["node", "--dev", "--rpc-addr", "0.0.0.0:0", "--no-metrics"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--rpc-token"));
    // Multi-validator chains: a listen address that is not a multiaddr, and a missing node key.
    let local = ["node", "--chain", "local", "--tmp", "--rpc-addr", "127.0.0.1:0", "--no-metrics"];
    let output = run(&[&local[..], &["--dev-key", "bob", "--listen", "127.0.0.1:30333"]].concat());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a multiaddr"), "{stderr}");
    let output = run(&[
        &local[..],
        &["--dev-key", "bob", "--listen", "/ip4/127.0.0.1/tcp/0", "--node-key", "/nonexistent/node-key.json"],
    ]
    .concat());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no node key at /nonexistent/node-key.json") && stderr.contains("key generate"),
        "{stderr}"
    );

    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &["--rpc-token", "s3cret"]);
    let error = node.call("cdr_submit", json!([[cdr(1)]])).unwrap_err();
    assert_eq!(error["code"], -32001);
    let (status, _) = node.post("/ingest/cdrs", &cdr(1).to_string());
    assert_eq!(status, 401);
    let answer = ureq::post(&format!("{}/ingest/cdrs", node.rpc))
        .set("Authorization", "Bearer s3cret")
        .send_string(&cdr(1).to_string())
        .unwrap();
    assert_eq!(answer.status(), 200);
    // Reads stay open.
    assert!(node.call("system_health", json!([])).is_ok());
}

#[test]
fn metrics_report_heights_and_commits() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "node",
        "--dev",
        "--base-path",
        base.path().to_str().unwrap(),
        "--rpc-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let metrics_url = loop {
        let line = node.log.recv_timeout(Duration::from_secs(30)).expect("the node logs its metrics address");
        if let Some(rest) = line.split("metrics on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let (status, _) = node.post("/ingest/cdrs", &ndjson(0..25));
    assert_eq!(status, 200);
    node.wait_committed("alice:24", Duration::from_secs(60));
    let text = ureq::get(&metrics_url).call().unwrap().into_string().unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
    };
    assert!(value("cdrchain_best_height") >= 1.0);
    assert_eq!(value("cdrchain_best_height"), value("cdrchain_finalized_height"));
    assert_eq!(value("cdrchain_cdrs_committed_total"), 25.0);
    assert!(value("cdrchain_blocks_committed_total") >= 1.0);
    assert_eq!(value("cdrchain_ingest_queue_depth"), 0.0);
    assert!(value("cdrchain_rocksdb_size_bytes") > 0.0);
    assert!(text.contains("cdrchain_block_build_seconds_bucket"), "{text}");
    // Ingest per source, and the only validator in every certificate.
    assert_eq!(value("cdrchain_ingest_cdrs_total{system_id=\"sbc-test\",outcome=\"accepted\"}"), 25.0);
    assert_eq!(
        value("cdrchain_validator_last_signed_height{validator=\"alice\"}"),
        value("cdrchain_best_height")
    );
    assert!(!text.contains("cdrchain_validator_missed_precommits_total{"), "{text}");

    // The partners' traffic is counted behind the head, with the party index: 25 calls alice →
    // bob, 19 answered (every fourth is busy), 279 billable seconds (3 s + n s for each).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = ureq::get(&metrics_url).call().unwrap().into_string().unwrap();
        if text.contains("cdrchain_party_index_lag_blocks 0")
            && text.contains("cdrchain_partner_calls_total{")
        {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the party index did not reach the head:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let direction = "{from=\"alice\",to=\"bob\",recorder=\"alice\"}";
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
        line.and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
    };
    assert_eq!(value(&format!("cdrchain_partner_calls_total{direction}")), 25.0);
    assert_eq!(value(&format!("cdrchain_partner_answered_calls_total{direction}")), 19.0);
    assert_eq!(value(&format!("cdrchain_partner_billable_seconds_total{direction}")), 279.0);
}

/// A chain whose blocks hold fewer CDRs than the default batch (review H5): the node sizes its
/// batches to the block, so everything submitted is committed, block after block.
#[test]
fn a_chain_with_blocks_smaller_than_the_default_batch_commits_everything_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-blocks.json");
    let output = run(&["build-spec", "--chain", "dev", "--out", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["params"]["max_block_cdrs"] = json!(1_000);
    std::fs::write(&path, spec.to_string()).unwrap();
    let node = Node::start_spec(&path, &[]);
    let (status, answer) = node.post("/ingest/cdrs", &ndjson(0..1_500));
    assert_eq!(status, 200, "{answer}");
    node.wait_committed("alice:1499", Duration::from_secs(10));
    let head = node.call("chain_getHeader", json!([])).unwrap();
    assert!(head["number"].as_u64().unwrap() >= 2, "1,500 CDRs need two blocks of 1,000: {head}");
}

/// Review H1: idle connections (opened, nothing sent, or half a request) do not lock out an
/// authorised client: with 600 of them open, a POST to `/ingest/cdrs` is answered within 2 s.
#[test]
fn idle_connections_do_not_delay_an_ingest_post() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let address = node.rpc.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for i in 0..600 {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        if i % 2 == 1 {
            use std::io::Write;
            // Half a request: a header line and no end of headers.
            let _ = stream.write_all(b"POST /ingest/cdrs HTTP/1.1\r\nHost: x\r\n");
        }
        idle.push(stream);
    }
    let started = std::time::Instant::now();
    let (status, answer) = node.post("/ingest/cdrs", &cdr(0).to_string());
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(took < Duration::from_secs(2), "the POST took {took:?} with 600 idle connections open");
    let rss = rss_mib(&node);
    assert!(rss < 1024, "RSS {rss} MiB with 600 idle connections");
    // A connection that never finishes its first request is closed (FIRST_REQUEST_TIMEOUT_S).
    {
        use std::io::Read;
        let half = &mut idle[1];
        half.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let waited = std::time::Instant::now();
        let closed = matches!(half.read(&mut [0u8; 64]), Ok(0) | Err(_));
        assert!(closed, "the half-sent request was answered instead of closed");
        assert!(waited.elapsed() < Duration::from_secs(20), "closed only after {:?}", waited.elapsed());
    }
    drop(idle);
    // A JSON-RPC request whose body never arrives whole does not hold its connection for good
    // (READ_BODY_TIMEOUT_S): the node answers it, or closes it, within the deadline.
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
            .unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let waited = std::time::Instant::now();
        let mut answer = [0u8; 256];
        let read = stream.read(&mut answer);
        let took = waited.elapsed();
        assert!(
            !matches!(read, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "the half-sent body held the connection for {took:?}"
        );
        assert!(took < Duration::from_secs(20), "released only after {took:?}");
        assert!(took >= Duration::from_secs(5), "released after {took:?}, before the body's deadline");
    }
}

/// Review M4: a web page open on the node's machine cannot use a token-less loopback node:
/// another site's Origin and a Host that is not a loopback name are refused with 403 (ingest and
/// JSON-RPC alike); switches and the CLI, which send neither, are served.
#[test]
fn pages_of_other_sites_are_refused_by_a_loopback_node() {
    use std::io::{Read, Write};
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let body = cdr(0).to_string();
    let cross = ureq::post(&format!("{}/ingest/cdrs", node.rpc))
        .set("Origin", "https://evil.example")
        .send_string(&body);
    match cross {
        Err(ureq::Error::Status(403, response)) => {
            let answer: Value = response.into_json().unwrap();
            assert!(answer["error"].as_str().unwrap().contains("cross-origin"), "{answer}");
        }
        other => panic!("a cross-origin POST was not refused: {:?}", other.map(|r| r.status())),
    }
    let rpc = ureq::post(&node.rpc)
        .set("Origin", "https://evil.example")
        .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []}));
    assert!(matches!(rpc, Err(ureq::Error::Status(403, _))), "a cross-origin JSON-RPC call was served");
    // DNS rebinding: the request names another host.
    let address = node.rpc.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let request = format!(
        "POST /ingest/cdrs HTTP/1.1\r\nHost: evil.example:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        address.rsplit(':').next().unwrap(),
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // Nothing was taken; a switch's POST (no Origin, Host 127.0.0.1) is.
    let (status, answer) = node.post("/ingest/cdrs", &body);
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:0"])), "{answer}");
}

/// Every JSON-RPC method with parameters it accepts, for the access table.
fn every_method() -> Vec<(&'static str, Value)> {
    vec![
        ("system_health", json!([])),
        ("system_peers", json!([])),
        ("system_properties", json!([])),
        ("chain_getHeader", json!([])),
        ("chain_getBlock", json!([1])),
        ("chain_getFinalizedHead", json!([])),
        ("chain_subscribeFinalizedHeads", json!([])),
        ("cdr_submit", json!([[cdr(900)]])),
        ("cdr_check", json!([[cdr(901)]])),
        ("cdr_status", json!(["alice:0"])),
        ("cdr_get", json!(["alice:0"])),
        ("cdr_byCallId", json!(["e2e-0@test.invalid"])),
        ("cdr_query", json!(["alice", "bob", 0, 9_999_999_999_999u64])),
        ("cdr_proof", json!(["alice:0"])),
        ("cdr_absenceProof", json!(["alice:99999"])),
        ("cdr_consistencyProof", json!([1, 2])),
        ("checkpoint_latest", json!([])),
        ("checkpoint_get", json!([1])),
        ("settlement_summary", json!(["alice", "bob", 0, 9_999_999_999_999u64])),
        ("consensus_status", json!([])),
        ("consensus_evidence", json!([])),
    ]
}

use common::rpc_call as call_with;

/// POSTs `body` to `path` with `token`; the status.
fn post_with(url: &str, token: Option<&str>, path: &str, body: &str) -> u16 {
    let mut request = ureq::post(&format!("{url}{path}"));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    match request.send_string(body) {
        Ok(response) => response.status(),
        Err(ureq::Error::Status(status, _)) => status,
        Err(e) => panic!("POST {path}: {e}"),
    }
}

#[test]
fn beyond_loopback_every_method_and_route_needs_a_token_with_its_role() {
    // Review H1: reads needed no token, so anyone who reached the port read every CDR.
    let netns = common::Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let tokens = [
        ("ingest", "switches-ingest-token-0001"),
        ("read", "operator-read-token-00001"),
        ("bob", "partner-bob-token-000001"),
    ];
    for (name, secret) in tokens {
        std::fs::write(dir.path().join(format!("{name}.token")), secret).unwrap();
    }
    let config = dir.path().join("node.toml");
    let file = |name: &str| dir.path().join(format!("{name}.token")).display().to_string();
    std::fs::write(
        &config,
        format!(
            "[[rpc_tokens]]\nname = \"switches\"\nroles = [\"ingest\"]\ntoken_file = \"{}\"\n\n\
             [[rpc_tokens]]\nname = \"tools\"\nroles = [\"read\"]\ntoken_file = \"{}\"\n\n\
             [[rpc_tokens]]\nname = \"partner-bob\"\nroles = [\"read\"]\nparty = \"bob\"\ntoken_file = \"{}\"\n",
            file("ingest"),
            file("read"),
            file("bob")
        ),
    )
    .unwrap();
    let base = tempfile::tempdir().unwrap();
    let rpc_addr = format!("{}:0", netns.inside);
    let admin = "node-admin-token-000000001";
    let node = Node::start_in(
        &netns,
        &[
            "node",
            "--dev",
            "--base-path",
            base.path().to_str().unwrap(),
            "--rpc-addr",
            &rpc_addr,
            "--rpc-token",
            admin,
            "--config",
            config.to_str().unwrap(),
            "--no-metrics",
        ],
    );
    assert!(node.rpc.contains(&netns.inside), "{}", node.rpc);
    let url = node.rpc.clone();
    // Two CDRs: alice–bob (bob may see it) and alice–charlie (bob may not).
    let mut charlie = cdr(1);
    charlie["callee_operator"] = json!("charlie");
    assert_eq!(post_with(&url, Some(tokens[0].1), "/ingest/cdrs", &format!("{}\n{charlie}", cdr(0))), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while call_with(&url, Some(admin), "cdr_status", &json!(["alice:1"])).unwrap()["status"] != "committed" {
        assert!(std::time::Instant::now() < deadline, "the CDRs were not committed");
        std::thread::sleep(Duration::from_millis(100));
    }

    // (who, token): what each may call, by the README's "who may call".
    let callers = [
        ("nobody", None),
        ("a wrong token", Some("not-a-token-of-this-node")),
        ("ingest", Some(tokens[0].1)),
        ("read", Some(tokens[1].1)),
        ("partner bob", Some(tokens[2].1)),
        ("admin", Some(admin)),
    ];
    let may = |who: &str, need: &str| -> bool {
        match (who, need) {
            ("admin", _) | (_, "anyone") => true,
            ("ingest", "ingest") => true,
            ("read", need) => need.starts_with("read"),
            ("partner bob", need) => need == "read" || need == "read (a partner: its CDRs)",
            _ => false,
        }
    };
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let who_of = |method: &str| -> String {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{method}")))
            .unwrap_or_else(|| panic!("{method} not in README"));
        row.trim_matches('|').rsplit('|').next().unwrap().trim().to_string()
    };
    let methods = every_method();
    let documented =
        readme.lines().filter(|l| l.starts_with("| `") && l.contains('_') && !l.contains("cdrchain")).count();
    assert!(methods.len() >= documented.min(21), "the table must cover every documented method");
    for (who, token) in callers {
        for (method, params) in &methods {
            let need = who_of(method);
            let answer = call_with(&url, token, method, params);
            let refused = matches!(&answer, Err(e) if e["code"] == -32001);
            assert_eq!(!refused, may(who, &need), "{who} calling {method} (needs {need}): {answer:?}");
        }
        for route in ["/ingest/cdrs", "/ingest/freeswitch", "/ingest/kamailio"] {
            let status = post_with(&url, token, route, "{}");
            let refused = status == 401 || status == 403;
            assert_eq!(!refused, may(who, "ingest"), "{who} posting to {route}: {status}");
        }
    }
    // The partner sees its own CDRs and pairs, never others'.
    let bob = Some(tokens[2].1);
    assert_eq!(call_with(&url, bob, "cdr_get", &json!(["alice:0"])).unwrap()["id"], "alice:0");
    assert_eq!(call_with(&url, bob, "cdr_get", &json!(["alice:1"])).unwrap(), Value::Null);
    assert_eq!(call_with(&url, bob, "cdr_status", &json!(["alice:1"])).unwrap()["status"], "unknown");
    let query = call_with(&url, bob, "cdr_query", &json!(["alice", "charlie", 0, 9_999_999_999_999u64]));
    assert_eq!(query.unwrap_err()["code"], -32001);
    assert!(call_with(&url, bob, "cdr_proof", &json!(["alice:1"])).is_err());
    assert!(call_with(&url, bob, "cdr_proof", &json!(["alice:0"])).is_ok());
    let read = Some(tokens[1].1);
    assert_eq!(call_with(&url, read, "cdr_get", &json!(["alice:1"])).unwrap()["id"], "alice:1");
    // A batch cannot smuggle a call past its need.
    let batch: Value = ureq::post(&url)
        .set("Authorization", &format!("Bearer {}", tokens[0].1))
        .send_json(json!([
            {"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "cdr_get", "params": ["alice:0"]},
        ]))
        .unwrap()
        .into_json()
        .unwrap();
    let by_id = |id: u64| batch.as_array().unwrap().iter().find(|a| a["id"] == id).cloned().unwrap();
    assert!(by_id(1).get("result").is_some(), "{batch}");
    assert_eq!(by_id(2)["error"]["code"], -32001, "{batch}");
    // And each call of a batch carries its caller's grant: a read token's batch reads.
    let batch: Value = ureq::post(&url)
        .set("Authorization", &format!("Bearer {}", tokens[1].1))
        .send_json(json!([
            {"jsonrpc": "2.0", "id": 1, "method": "cdr_get", "params": ["alice:0"]},
            {"jsonrpc": "2.0", "id": 2, "method": "cdr_submit", "params": [[cdr(950)]]},
        ]))
        .unwrap()
        .into_json()
        .unwrap();
    let by_id = |id: u64| batch.as_array().unwrap().iter().find(|a| a["id"] == id).cloned().unwrap();
    assert_eq!(by_id(1)["result"]["id"], "alice:0", "{batch}");
    assert_eq!(by_id(2)["error"]["code"], -32001, "{batch}");
    // Large requests are for the ingest role, large parameters for ingest methods.
    let big = "x".repeat(2 * 1024 * 1024);
    {
        // Refused from its headers, before the body is read: send them alone.
        use std::io::{Read, Write};
        let host = url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            tokens[1].1,
            2 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = vec![0u8; 4096];
        let read = stream.read(&mut answer).unwrap();
        let text = String::from_utf8_lossy(&answer[..read]);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.contains("1048576") && text.contains("ingest role"), "{text}");
    }
    let error = call_with(&url, Some(admin), "cdr_get", &json!([big])).unwrap_err();
    assert_eq!(error["code"], -32602, "{error}");
    assert!(error["message"].as_str().unwrap().contains("more than its limit of 1048576"), "{error}");
    drop(node);
}

/// The node's resident memory, in MiB.
fn rss_mib(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.child.id())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib / 1024
}

#[test]
fn large_submissions_beyond_the_in_flight_budget_are_told_to_retry_unread() {
    // Review M5: fifty switches re-sending 64 MiB each were all parsed side by side.
    use std::io::{Read, Write};
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let host = node.rpc.trim_start_matches("http://").to_string();
    let large = 60 * 1024 * 1024;
    let open = |length: usize| -> std::net::TcpStream {
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /ingest/cdrs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream
    };
    // Two large submissions arrive slowly: they hold 120 MiB of the 128 MiB budget.
    let mut slow: Vec<std::net::TcpStream> = (0..2).map(|_| open(large)).collect();
    for stream in &mut slow {
        stream.write_all(&vec![b' '; 1024 * 1024]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    // A third is refused from its headers, unread, with Retry-After.
    let mut third = open(large);
    let mut answer = vec![0u8; 4096];
    let read = third.read(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1") && text.contains("send it again shortly"),
        "{text}"
    );
    // Small submissions are not held up, and the chain goes on.
    let (status, answer) = node.post("/ingest/cdrs", &ndjson(0..100));
    assert_eq!(status, 200, "{answer}");
    node.wait_committed("alice:99", Duration::from_secs(60));
    let rss = rss_mib(&node);
    assert!(rss < 1024, "RSS {rss} MiB under the attack");
    // Once the slow ones are gone, a large submission is taken.
    drop(slow);
    drop(third);
    std::thread::sleep(Duration::from_millis(300));
    let body = ndjson(100..8_100);
    assert!(body.len() > 2 * 1024 * 1024, "{} bytes", body.len());
    let (status, answer) = node.post("/ingest/cdrs", &body);
    assert_eq!((status, answer["accepted"].clone()), (200, json!(8_000)), "{answer}");
    assert!(node.terminate().success());
}

#[test]
fn a_queued_cdr_that_can_never_be_committed_is_declared_a_gap_and_the_stream_goes_on() {
    // Review M8: one undecodable queued CDR blocked its operator's stream for good.
    use cdrchain_chain_spec::ChainSpec;
    use cdrchain_runtime::ids::Sequence;
    use cdrchain_storage::{QueueRun, Storage};
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    assert_eq!(node.post("/ingest/cdrs", &ndjson(0..10)).0, 200);
    node.wait_committed("alice:9", Duration::from_secs(60));
    assert!(node.terminate().success());
    {
        // Damage: the queue's next item (alice:10) does not decode.
        let spec = ChainSpec::dev();
        let storage = Storage::open(
            &base.path().join("chains/dev/db"),
            spec.genesis_hash(),
            &spec.genesis_state().unwrap(),
        )
        .unwrap();
        let mut run = QueueRun::new(Sequence(10));
        run.push(b"\xff\xfe not a CDR");
        storage.enqueue(&run).unwrap();
    }
    let node = Node::start_dev(base.path(), &[]);
    let (status, answer) = node.post("/ingest/cdrs", &ndjson(10..15));
    assert_eq!((status, answer["ids"][0].clone()), (200, json!("alice:11")), "{answer}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        node.call("cdr_status", json!(["alice:11"])).unwrap()["status"],
        "queued",
        "stuck behind alice:10"
    );
    // A probe sees it, with where, why and what to do.
    let health = node.call("system_health", json!([])).unwrap();
    let stuck = &health["ingestStuck"];
    assert_eq!(stuck["at"], "alice:10", "{health}");
    let reason = stuck["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("does not decode") && reason.contains("gap declare"), "{health}");

    let base_args = ["gap", "declare", "--rpc", node.rpc.as_str()];
    let output = run(&[&base_args[..], &["alice", "9", "10", "--reason", "x"]].concat());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("next sequence is 10"), "{output:?}");
    let output = run(&[&base_args[..], &["bob", "10", "10", "--reason", "x"]].concat());
    assert!(String::from_utf8_lossy(&output.stderr).contains("gaps in `alice`'s stream only"), "{output:?}");
    let output =
        run(&[&base_args[..], &["alice", "10", "10", "--reason", "queue entry damaged on disk"]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("alice:10") && stdout.contains("does not decode"), "{stdout}");

    node.wait_committed("alice:15", Duration::from_secs(60));
    assert_eq!(node.call("cdr_status", json!(["alice:10"])).unwrap()["status"], "unknown");
    // The operator view (the portal's Operator page) lists the gap with its reason.
    let stats = node.call("system_ingestStats", json!([])).unwrap();
    let gaps = stats["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{stats}");
    assert_eq!(
        (&gaps[0]["from"], &gaps[0]["to"], &gaps[0]["cdrs"]),
        (&json!(10), &json!(10), &json!(1)),
        "{stats}"
    );
    assert!(gaps[0]["reason"].as_str().unwrap().contains("damaged on disk"), "{stats}");
    assert!(gaps[0]["declared_at"].as_u64().unwrap() > 0 && stats["gaps_cut_off"] == false, "{stats}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node.call("system_health", json!([])).unwrap().get("ingestStuck").is_some() {
        assert!(std::time::Instant::now() < deadline, "still reported stuck after the gap");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Later CDRs follow as usual.
    assert_eq!(node.post("/ingest/cdrs", &ndjson(15..16)).1["ids"], json!(["alice:16"]));
    node.wait_committed("alice:16", Duration::from_secs(60));
    assert!(node.terminate().success());
}

/// `cdrchain authority show` reads the set and the change in flight from a node: the dev chain's
/// one authority, alice with her key, nothing proposed; a height before the set is refused.
#[test]
fn authority_show_prints_the_set_and_the_change_in_flight() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let out = run(&["authority", "show", "--rpc", &node.rpc]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let key = node.call("authority_set", json!([])).unwrap()["authorities"][0]["ed25519"].clone();
    assert!(text.starts_with("authority set 0 from height 1 (1 authorities, quorum 1)\n"), "{text}");
    assert!(text.contains(&format!("  alice            ed25519 {}", key.as_str().unwrap())), "{text}");
    assert!(text.contains("no open proposal\n") && text.ends_with("no scheduled change\n"), "{text}");
    let out = run(&["authority", "show", "--json", "--rpc", &node.rpc]);
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["pending"], json!({"proposal": null, "scheduled": null}));
    let out = run(&["authority", "show", "--at", "0", "--rpc", &node.rpc]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("height 0 is the genesis"), "{out:?}");
}

/// An operator makes a join request with its own keys (`cdrchain key generate`, `authority
/// join-request`); the dev chain's one authority proposes it, which on a chain of one is already
/// more than two thirds: the add is scheduled 4 blocks on. A request whose proof was tampered
/// with is refused at once, naming the proof.
#[test]
fn a_join_request_made_with_the_joiners_keys_is_proposed_and_scheduled() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("erin");
    std::fs::create_dir_all(&dir).unwrap();
    let (_, request) = common::join_request(&dir, "erin", "dev");
    let node = Node::start_dev(&base.path().join("node"), &[]);
    // Tampered: the network key's proof replaced by the signing key's.
    let mut document: Value = serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    assert_eq!(document["kind"], "add");
    let tampered = dir.join("tampered.json");
    document["network_proof"] = json!("0x".to_string() + &"00".repeat(64));
    std::fs::write(&tampered, document.to_string()).unwrap();
    let out = run(&["authority", "propose", "add", tampered.to_str().unwrap(), "--rpc", &node.rpc]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("network proof of possession"), "{out:?}");
    let out = run(&["authority", "propose", "add", request.to_str().unwrap(), "--rpc", &node.rpc]);
    assert!(out.status.success(), "{out:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let scheduled = loop {
        let pending = node.call("authority_pending", json!([])).unwrap();
        if !pending["scheduled"].is_null() {
            break pending["scheduled"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never scheduled: {pending}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(scheduled["change"]["id"], "erin");
    let members: Vec<&str> = scheduled["set"]["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["alice", "erin"]);
    assert!(scheduled["change"]["peer_id"].as_str().unwrap().starts_with("12D3KooW"), "{scheduled}");
}
