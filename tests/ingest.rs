//! Ingest from the switches' own formats, end to end: the real-world fixtures through `cdrchain
//! submit`, FreeSWITCH and Kamailio documents through HTTP, idempotent re-imports, and a node
//! without a consortium secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{run, Node};
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/real-cdrs").join(name)
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// Runs `cdrchain submit` and returns (success, stdout, stderr).
fn submit(node: &Node, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["submit", "--rpc", node.rpc.as_str()];
    all.extend_from_slice(args);
    let output = run(&all);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The one committed record of `call_id` (waits for it).
fn record(node: &Node, call_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = node.call("cdr_byCallId", json!([call_id])).unwrap();
        if let Some(first) = found.as_array().and_then(|a| a.first()) {
            assert_eq!(found.as_array().unwrap().len(), 1, "one record of {call_id}: {found}");
            return first.clone();
        }
        assert!(Instant::now() < deadline, "no committed record of {call_id}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The number of CDRs in the chain once everything queued is committed.
fn settled_log_size(node: &Node) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        std::thread::sleep(Duration::from_millis(1_500));
        let size = node.call("chain_getHeader", json!([])).unwrap()["cdr_log_size"].as_u64().unwrap_or(0);
        if last == Some(size) {
            return size;
        }
        last = Some(size);
        assert!(Instant::now() < deadline, "the chain did not settle");
    }
}

fn duration_ms(record: &Value) -> u64 {
    record["end_ms"].as_u64().unwrap()
        - record["answer_ms"].as_u64().unwrap_or(record["end_ms"].as_u64().unwrap())
}

#[test]
fn every_fixture_is_ingested_or_refused_for_its_reason_and_reimports_change_nothing() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);

    // FreeSWITCH: six answered A legs, three encodings of values among them.
    let fs_files = [
        "fs_json_cdr_cgrates_agents_fsevent_test_2018_a.json",
        "fs_json_cdr_cgrates_agents_fsevent_test_2018_b.json",
        "fs_json_cdr_cgrates_cdrs_fscdr_test_2013_b.json",
        "fs_json_cdr_cgrates_cdrs_fscdr_test_2013_urlencoded_values.json",
        "fs_json_cdr_cgrates_engine_fscdr_test_2015.json",
        "fs_json_cdr_cgrates_engine_fscdr_test_2018_callStats.json",
    ];
    let fs_paths: Vec<String> = fs_files.iter().map(|f| fixture(f).display().to_string()).collect();
    let mut args = vec!["--format", "freeswitch-json"];
    args.extend(fs_paths.iter().map(String::as_str));
    let (ok, stdout, stderr) = submit(&node, &args);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("6 accepted"), "{stdout}");
    let fs = record(&node, "818e26f805701988c1a330175d7d2629@0:0:0:0:0:0:0:0");
    assert_eq!(
        (fs["disposition"].as_str(), fs["q850_cause"].as_u64(), fs["sip_status"].as_u64()),
        (Some("answered"), Some(16), Some(200))
    );
    assert_eq!(
        (fs["start_ms"].as_u64(), fs["answer_ms"].as_u64()),
        (Some(1_515_666_344_534), Some(1_515_666_347_954))
    );
    assert_eq!(duration_ms(&fs), 67_540, "billsec 68 in FreeSWITCH's whole seconds");
    assert_eq!(
        (fs["leg"].as_str(), fs["linked_id"].as_str()),
        (Some("a"), Some("3da8bf84-c133-4959-9e24-e72875cb33a1"))
    );
    assert_eq!(fs["mos"].as_u64(), Some(450));
    assert_eq!(fs["system_id"], "FSDev1");
    // encode-values: the Call-ID was `%40`/`%3A`-encoded in the document.
    let encoded = record(&node, "774f3a8a01222f664e6edebd372eef3d@0:0:0:0:0:0:0:0");
    assert_eq!(duration_ms(&encoded), 20_977);

    // Kamailio's log: dialog CDRs (ms precision) with the parties completed from the acc lines.
    let (ok, stdout, stderr) = submit(
        &node,
        &[
            "--format",
            "kamailio-acc",
            fixture("kamailio_LOCAL_CAPTURE_5.6.3_acc_and_cdr_log_stderr.log").to_str().unwrap(),
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("4 accepted"), "{stdout}");
    let answered = record(&node, "1-17779@127.0.0.1");
    assert_eq!(
        (answered["disposition"].as_str(), answered["end_ms"].as_u64()),
        (Some("answered"), Some(1_795_660_126_171))
    );
    assert_eq!(answered["end_ms"].as_u64().unwrap() - answered["start_ms"].as_u64().unwrap(), 1_003);
    let busy = record(&node, "1-17792@127.0.0.1");
    assert_eq!(
        (
            busy["disposition"].as_str(),
            busy["q850_cause"].as_u64(),
            busy["sip_status"].as_u64(),
            busy["answer_ms"].as_u64()
        ),
        (Some("busy"), Some(17), Some(486), None)
    );
    let not_found = record(&node, "1-17794@127.0.0.1");
    assert_eq!(
        (
            not_found["disposition"].as_str(),
            not_found["q850_cause"].as_u64(),
            not_found["sip_status"].as_u64()
        ),
        (Some("failed"), Some(1), Some(404))
    );

    // acc_json bodies of the same capture name the caller `sipp`: a user name, not a number. It
    // is recorded as written and flagged, never refused (issue #25).
    let (ok, stdout, stderr) = submit(
        &node,
        &[
            "--format",
            "kamailio-json",
            "--on-error",
            "skip",
            fixture("kamailio_LOCAL_CAPTURE_5.6.3_acc_json_http_post_bodies.jsonl").to_str().unwrap(),
        ],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("4 accepted") && stdout.contains("0 refused"), "{stdout}");

    // A BYE alone (no call start); lines damaged by a PDF export.
    let (ok, stdout, stderr) = submit(
        &node,
        &[
            "--format",
            "kamailio-acc",
            fixture("kamailio_acc_log_altanai_blockchain_webrtc_voip_README_L81-87.log").to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains(
            "README_L81-87.log:7: field `call_id`: a BYE of call \"ub2ds9fg5jhuc0g9jinb\" without its INVITE"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("0 accepted"), "{stdout}");
    let (ok, stdout, _) = submit(
        &node,
        &[
            "--format",
            "kamailio-acc",
            "--on-error",
            "skip",
            fixture("kamailio_acc_log_skeita96_Test-Kamailio_cours_L38_L76_L248_pdf_artifacts.log")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(!ok);
    assert!(
        stdout.contains("3 refused")
            && stdout.contains("contains whitespace")
            && stdout.contains("\"to_- tag\""),
        "{stdout}"
    );

    // OpenSIPS documentation lines: none names its parties, one names them twice.
    let (ok, stdout, _) = submit(
        &node,
        &[
            "--format",
            "opensips-acc",
            "--on-error",
            "skip",
            fixture("opensips_acc_log_dariusstefan_opensips-docs_tutorials-advanced-accounting_blocks.log")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(!ok);
    assert!(
        stdout.contains("6 refused")
            && stdout.contains("names no caller")
            && stdout.contains("appears twice"),
        "{stdout}"
    );

    // Asterisk: cdr_custom's column order is refused for what it is; a time zone is required.
    let custom = fixture("asterisk_cdr-custom_Master_KelySaina_cdr.csv");
    let (ok, _, stderr) =
        submit(&node, &["--format", "asterisk-csv", "--timezone", "UTC", custom.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("cdr_custom"), "{stderr}");
    let buga = fixture("asterisk_Master_BugaDM_TelephonySwitching.csv");
    let (ok, _, stderr) = submit(&node, &["--format", "asterisk-csv", buga.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("--timezone"), "{stderr}");
    let mut asterisk_accepted = 0;
    for (file, accepted, refused) in ASTERISK_FILES {
        let path = fixture(file);
        let (_, stdout, stderr) = submit(
            &node,
            &["--format", "asterisk-csv", "--timezone", "UTC", "--on-error", "skip", path.to_str().unwrap()],
        );
        assert!(
            stdout.contains(&format!(" {accepted} accepted"))
                && stdout.contains(&format!("{refused} refused")),
            "{file}: {stdout}{stderr}"
        );
        // Only rows that name no dialled number at all are refused, never one for its number.
        for line in stdout.lines().chain(stderr.lines()).filter(|line| line.contains("refused /")) {
            assert!(line.contains("not a dialled number") || line.contains("no dialled number"), "{line}");
        }
        asterisk_accepted += accepted;
    }
    assert!(asterisk_accepted > 500, "{asterisk_accepted}");
    check_asterisk_records(&node);

    // Re-running imports stores nothing new: every record is answered with its first id.
    let before = settled_log_size(&node);
    let mut args = vec!["--format", "freeswitch-json"];
    args.extend(fs_paths.iter().map(String::as_str));
    let (ok, stdout, stderr) = submit(&node, &args);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("0 accepted, 6 already recorded"), "{stdout}");
    let (ok, stdout, _) = submit(
        &node,
        &[
            "--format",
            "kamailio-acc",
            fixture("kamailio_LOCAL_CAPTURE_5.6.3_acc_and_cdr_log_stderr.log").to_str().unwrap(),
        ],
    );
    assert!(ok && stdout.contains("0 accepted, 4 already recorded"), "{stdout}");
    let (_, stdout, _) = submit(
        &node,
        &[
            "--format",
            "asterisk-csv",
            "--timezone",
            "UTC",
            "--on-error",
            "skip",
            fixture(ASTERISK_FILES[0].0).to_str().unwrap(),
        ],
    );
    assert!(stdout.contains(&format!("0 accepted, {} already recorded", ASTERISK_FILES[0].1)), "{stdout}");
    assert_eq!(settled_log_size(&node), before, "a re-import added records");
}

/// (file, CDRs accepted, rows refused) with --timezone UTC --on-error skip, on a node without a
/// default region. The only refusals, each with file:line and field: calls into Asterisk's
/// special extensions (`s`, `t`, `i`) and empty destinations: the row names no dialled number. Dialplan names as
/// destinations (`hangup`) and national-form numbers (`8924…` in Russia, `1313…` in the US) are
/// recorded as written and flagged (they were refused before issue #25).
const ASTERISK_FILES: [(&str, usize, usize); 5] = [
    ("asterisk_Master_BugaDM_TelephonySwitching.csv", 90, 15),
    ("asterisk_Master_karthik0112_synk_bug_freepbx.csv", 608, 128),
    ("asterisk_Master_mineevburyat_dj-asterisk-cdr.csv", 84, 0),
    ("asterisk_Master_simularent_asterisk-for-speech-to-text.csv", 262, 7),
    ("asterisk_Master_tejdeepsingh_hackathon2025.csv", 18, 15),
];

fn check_asterisk_records(node: &Node) {
    // BugaDM line 1: `2015-03-24 15:44:40` answered at once, ended at `15:44:43` (billsec 3).
    let answered = record(node, "1427211880.0");
    assert_eq!(
        (answered["start_ms"].as_u64(), answered["answer_ms"].as_u64(), answered["end_ms"].as_u64()),
        (Some(1_427_211_880_000), Some(1_427_211_880_000), Some(1_427_211_883_000))
    );
    assert_eq!(
        (answered["disposition"].as_str(), answered["q850_cause"].as_u64()),
        (Some("answered"), Some(16))
    );
    assert_eq!(answered["system_id"], "asterisk");
    // FreePBX line 1: CONGESTION, a failed call with Q.850 34.
    let congested = record(node, "1655439214.5");
    assert_eq!(
        (
            congested["disposition"].as_str(),
            congested["q850_cause"].as_u64(),
            congested["answer_ms"].as_u64()
        ),
        (Some("failed"), Some(34), None)
    );
}

/// A B leg as FreeSWITCH writes the bridged channel of `a_leg`.
fn b_leg_of(a_leg: &str) -> (String, String) {
    let mut doc: Value = serde_json::from_str(a_leg).unwrap();
    let a_uuid = doc["variables"]["uuid"].as_str().unwrap().to_string();
    let vars = doc["variables"].as_object_mut().unwrap();
    vars.insert("uuid".into(), "9c1afb4f-1d4a-4e45-84a3-d25721981bf5".into());
    vars.insert("sip_call_id".into(), "b-leg%40192.168.56.202".into());
    vars.insert("originating_leg_uuid".into(), a_uuid.clone().into());
    vars.insert("cdrchain_callee_operator".into(), "bob".into());
    (doc.to_string(), a_uuid)
}

fn form(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[test]
fn freeswitch_and_kamailio_post_over_http_idempotently() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let a_leg = fixture_text("fs_json_cdr_cgrates_agents_fsevent_test_2018_a.json");

    // The three body encodings of mod_json_cdr.
    let (status, answer) = node.post("/ingest/freeswitch", &a_leg);
    assert_eq!(
        (status, answer["ids"].clone(), answer["accepted"].clone()),
        (200, json!(["alice:0"]), json!(1)),
        "{answer}"
    );
    let (status, answer) = node.post("/ingest/freeswitch", &format!("cdr={}", form(&a_leg)));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicates"], json!([{"index": 0, "id": "alice:0"}]), "a re-post is the same record");
    let other = fixture_text("fs_json_cdr_cgrates_engine_fscdr_test_2015.json");
    let b64 = base64(&other);
    let (status, answer) = node.post("/ingest/freeswitch", &format!("cdr={}", form(&b64)));
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:1"])), "{answer}");

    // The B leg of the first call: its own Call-ID, linked to the A leg.
    let (b_leg, a_uuid) = b_leg_of(&a_leg);
    let (status, answer) = node.post("/ingest/freeswitch", &b_leg);
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:2"])), "{answer}");
    node.wait_committed("alice:2", Duration::from_secs(60));
    let a = node.call("cdr_get", json!(["alice:0"])).unwrap();
    let b = node.call("cdr_get", json!(["alice:2"])).unwrap();
    assert_eq!((a["leg"].as_str(), b["leg"].as_str()), (Some("a"), Some("b")));
    assert_eq!(
        (a["linked_id"].as_str(), b["linked_id"].as_str()),
        (Some(a_uuid.as_str()), Some(a_uuid.as_str()))
    );
    assert_eq!(b["call_id"], "b-leg@192.168.56.202");
    assert_eq!((b["caller_operator"].as_str(), b["callee_operator"].as_str()), (Some("alice"), Some("bob")));

    // Bad documents: 400 with the reason, so FreeSWITCH keeps the file.
    let (status, answer) = node.post("/ingest/freeswitch", "hello=world");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("cdr="), "{answer}");
    let mut broken: Value = serde_json::from_str(&a_leg).unwrap();
    broken["variables"]["end_uepoch"] = json!("later");
    broken["variables"]["uuid"] = json!("another-channel");
    let (status, answer) = node.post("/ingest/freeswitch", &broken.to_string());
    assert_eq!((status, answer["field"].as_str()), (400, Some("variables.end_uepoch")), "{answer}");

    // Kamailio: a dialog CDR as scripts/kamailio/kamailio.cfg posts it; transaction events are skipped.
    let cdr = json!({
        "start_time": "1795660125.168", "end_time": "1795660129.480", "duration": "4.312",
        "callid": "k1@127.0.0.1", "from_tag": "tag1", "caller": "sip:alice@example.com",
        "callee": "sip:+442079460018@example.net", "sip_code": "200", "sip_reason": "OK",
        "answer_time": "1795660125.480", "reason": "", "system_id": "kamailio-1",
    });
    let (status, answer) = node.post("/ingest/kamailio", &cdr.to_string());
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:3"])), "{answer}");
    let (status, answer) = node.post("/ingest/kamailio", &cdr.to_string());
    assert_eq!(
        (status, answer["duplicates"].clone()),
        (200, json!([{"index": 0, "id": "alice:3"}])),
        "{answer}"
    );
    let event =
        json!({"time": 1795660125.17, "method": "INVITE", "callid": "k1@127.0.0.1", "sip_code": "200"});
    let (status, answer) = node.post("/ingest/kamailio", &event.to_string());
    assert_eq!((status, answer["accepted"].clone()), (200, json!(0)), "{answer}");
    assert!(answer["skipped"][0].as_str().unwrap().contains("transaction event"), "{answer}");
    let mut busy = cdr.clone();
    busy["callid"] = json!("k2@127.0.0.1");
    busy["sip_code"] = json!("486");
    busy["answer_time"] = json!("");
    busy["reason"] = json!("Q.850;cause=17;text=\"User busy\"");
    let (status, answer) = node.post("/ingest/kamailio", &busy.to_string());
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:4"])), "{answer}");
    node.wait_committed("alice:4", Duration::from_secs(60));
    let k1 = node.call("cdr_get", json!(["alice:3"])).unwrap();
    assert_eq!(
        (k1["answer_ms"].as_u64(), k1["end_ms"].as_u64()),
        (Some(1_795_660_125_480), Some(1_795_660_129_480))
    );
    assert_eq!(k1["system_id"], "kamailio-1");
    let k2 = node.call("cdr_get", json!(["alice:4"])).unwrap();
    assert_eq!((k2["disposition"].as_str(), k2["q850_cause"].as_u64()), (Some("busy"), Some(17)));
    let mut bad = cdr.clone();
    bad["callid"] = json!("k3@127.0.0.1");
    bad["end_time"] = json!("soon");
    let (status, answer) = node.post("/ingest/kamailio", &bad.to_string());
    assert_eq!((status, answer["field"].as_str()), (400, Some("end_time")), "{answer}");
    let (status, answer) = node.post("/ingest/asterisk", "x");
    assert_eq!(status, 404);
    assert!(answer["error"].as_str().unwrap().contains("/ingest/freeswitch"), "{answer}");
    // Nothing of the refused documents was numbered.
    assert_eq!(node.call("cdr_status", json!(["alice:5"])).unwrap()["status"], "unknown");
}

/// Standard base64 (RFC 4648), for the test's own encoding of a body.
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_node_without_the_consortium_secret_refuses_ingest_until_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.json");
    assert!(run(&["key", "generate", "--scheme", "ed25519", "--out", key.to_str().unwrap()])
        .status
        .success());
    let public: Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let mut spec: Value = serde_json::from_slice(&run(&["build-spec", "--chain", "dev"]).stdout).unwrap();
    spec["id"] = json!("acme");
    spec["name"] = json!("ACME consortium");
    spec["operators"][0]["id"] = json!("acme");
    spec["operators"][0]["ed25519"] = public["public"].clone();
    spec["authorities"] = json!(["acme"]);
    let spec_path = dir.path().join("acme.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let args = [
        "node",
        "--chain",
        spec_path.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--tmp",
        "--rpc-addr",
        "127.0.0.1:0",
        "--no-metrics",
    ];
    let node = Node::start_env(&args, &[("CDRCHAIN_CONSORTIUM_SECRET", "")]);
    assert!(node.early.iter().any(|l| l.contains("REFUSES INGEST")), "{:?}", node.early);
    assert_eq!(node.call("system_properties", json!([])).unwrap()["ingest"], false);
    let doc = fixture_text("fs_json_cdr_cgrates_engine_fscdr_test_2015.json");
    let (status, answer) = node.post("/ingest/freeswitch", &doc);
    assert_eq!(status, 503, "FreeSWITCH keeps the CDR and retries: {answer}");
    assert!(answer["error"].as_str().unwrap().contains("no consortium secret"), "{answer}");
    let error = node.call("cdr_submit", json!([[common::cdr(0)]])).unwrap_err();
    assert_eq!(error["code"], -32002, "{error}");
    drop(node);

    let node = Node::start_env(&args, &[("CDRCHAIN_CONSORTIUM_SECRET", "acme consortium secret, 32 bytes!")]);
    assert_eq!(node.call("system_properties", json!([])).unwrap()["ingest"], true);
    let (status, answer) = node.post("/ingest/freeswitch", &doc);
    assert_eq!((status, answer["ids"].clone()), (200, json!(["acme:0"])), "{answer}");
}

#[test]
fn national_numbers_become_e164_with_the_nodes_region() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &["--default-region", "RU"]);
    let file = fixture("asterisk_Master_mineevburyat_dj-asterisk-cdr.csv");
    let (_, stdout, _) = submit(
        &node,
        &["--format", "asterisk-csv", "--timezone", "UTC", "--on-error", "skip", file.to_str().unwrap()],
    );
    // Every row is recorded: the `8…` numbers as E.164 with RU, the `ch1`-`ch3` destinations
    // (dialplan names, not numbers) as written.
    assert!(stdout.contains(" 84 accepted") && stdout.contains("0 refused"), "{stdout}");
}

fn ndjson(range: std::ops::Range<u64>) -> String {
    range.map(|n| common::cdr(n).to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_takes_the_cdrs_once_blocks_commit() {
    // Alice alone has no quorum (one of four validators): nothing commits, so her queue fills.
    let net = common::Net::new();
    let alice = net.start_full(0, &[], &["--max-queue", "5"]);
    let (status, answer) = alice.post("/ingest/cdrs", &ndjson(0..4));
    assert_eq!(status, 200, "{answer}");

    let url = format!("{}/ingest/cdrs", alice.rpc);
    let refused = ureq::post(&url).set("Content-Type", "application/x-ndjson").send_string(&ndjson(4..6));
    let Err(ureq::Error::Status(503, response)) = refused else {
        panic!("a submission beyond --max-queue was not refused with 503: {refused:?}")
    };
    // No block commits (one validator of four): the time the queue needs is the longest answer.
    let retry_after: u64 = response.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let answer: Value = response.into_json().unwrap();
    assert_eq!(answer["retry_after_s"], retry_after, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("4 CDRs acknowledged here wait") && error.contains("limit 5"), "{error}");
    // JSON-RPC says the same with its own code; nothing of either refusal was numbered.
    let busy = alice.call("cdr_submit", json!([[common::cdr(4), common::cdr(5)]])).unwrap_err();
    assert_eq!(busy["code"], -32005, "{busy}");
    let (status, answer) = alice.post("/ingest/cdrs", &ndjson(4..5));
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:4"])), "{answer}");

    // With the other three up, blocks commit and the queue drains: the refused CDRs go in.
    let _others: Vec<Node> = (1..4).map(|i| net.start(i)).collect();
    alice.wait_committed("alice:4", Duration::from_secs(60));
    let (status, answer) = alice.post("/ingest/cdrs", &ndjson(5..7));
    assert_eq!((status, answer["ids"].clone()), (200, json!(["alice:5", "alice:6"])), "{answer}");
    alice.wait_committed("alice:6", Duration::from_secs(60));
}

#[test]
fn a_chain_that_commits_nothing_takes_no_more_than_the_minimum_queue_unless_told_to_buffer() {
    // Alice alone has no quorum: the rate she measures for her CDRs is zero.
    let net = common::Net::new();
    let alice = net.start(0);
    let (status, answer) = alice.post("/ingest/cdrs", &ndjson(0..9_990));
    assert_eq!(status, 200, "{answer}");
    // Five seconds later (nothing moved while CDRs waited) the chain counts as stalled: up to
    // the minimum queue (10,000) is still taken, beyond it is refused with the time limit's
    // reason.
    // (A rate sample every 3 s: the next one marks the start of a wait with CDRs queued.)
    std::thread::sleep(Duration::from_millis(3_200));
    let (status, answer) = alice.post("/ingest/cdrs", &ndjson(9_990..10_000));
    assert_eq!(status, 200, "{answer}");
    std::thread::sleep(Duration::from_millis(5_500));
    let url = format!("{}/ingest/cdrs", alice.rpc);
    let refused =
        ureq::post(&url).set("Content-Type", "application/x-ndjson").send_string(&ndjson(10_000..10_001));
    let Err(ureq::Error::Status(503, response)) = refused else {
        panic!("a chain that commits nothing took more than the minimum queue: {refused:?}")
    };
    assert_eq!(response.header("Retry-After"), Some("10"));
    let answer: Value = response.into_json().unwrap();
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("10000 CDRs acknowledged here wait")
            && error.contains("commits about 0 of them per second")
            && error.contains("within 5 s (--max-queue-wait)"),
        "{error}"
    );
    let busy = alice.call("cdr_submit", json!([[common::cdr(10_000)]])).unwrap_err();
    assert_eq!(
        (busy["code"].clone(), busy["data"]["retry_after_s"].clone()),
        (json!(-32005), json!(10)),
        "{busy}"
    );
    drop(alice);

    // `--max-queue-wait 0`: the node buffers while the chain cannot commit, up to --max-queue.
    let alice = net.start_full(0, &[], &["--max-queue-wait", "0"]);
    std::thread::sleep(Duration::from_millis(1_200));
    let (status, answer) = alice.post("/ingest/cdrs", &ndjson(10_000..10_100));
    assert_eq!((status, answer["ids"][0].clone()), (200, json!("alice:10000")), "{answer}");
}

/// The dev chain's public consortium secret (cli/src/node.rs).
const DEV_SECRET: &[u8] = b"cdrchain dev consortium secret -- INSECURE, public";

/// Number rules for every source: a GB PBX that writes `00` for `+`, `0` for national numbers,
/// and sometimes a country code without `+`.
const GB_RULES: &str = "[[number_rules]]\nsources = [\"*\"]\nregion = \"GB\"\n\
                        international_prefixes = [\"00\"]\nnational_prefix = \"0\"\n\
                        country_code_without_plus = true\n";

/// How a switch wrote the caller, what it is recorded as without rules, and with [`GB_RULES`]:
/// (written, canonical as written, canonical with the rules). The callee is always written
/// `00442079460018` (international with `00`).
const FORMS: [(&str, &str, &str); 3] = [
    // National form, and no region on the node.
    ("02079460018", "raw:02079460018", "tel:+442079460018"),
    // International without `+`.
    ("442079460018", "raw:442079460018", "tel:+442079460018"),
    // A range the metadata does not know (the UK drama range): recorded as written either way.
    ("07700900123", "raw:07700900123", "raw:+447700900123"),
];

/// Submits one CDR with `caller` (and the callee `00442079460018`) as `switch` writes it; its
/// call id is `call_id`.
fn submit_as(node: &Node, dir: &std::path::Path, switch: &str, call_id: &str, caller: &str) {
    let callee = "00442079460018";
    match switch {
        "freeswitch" => {
            let mut doc: Value =
                serde_json::from_str(&fixture_text("fs_json_cdr_cgrates_agents_fsevent_test_2018_a.json"))
                    .unwrap();
            fn set(value: &mut Value, caller: &str, callee: &str) {
                match value {
                    Value::Object(map) => {
                        for (key, inner) in map.iter_mut() {
                            match key.as_str() {
                                "caller_id_number" => *inner = caller.into(),
                                "destination_number" => *inner = callee.into(),
                                _ => set(inner, caller, callee),
                            }
                        }
                    }
                    Value::Array(items) => items.iter_mut().for_each(|item| set(item, caller, callee)),
                    _ => {}
                }
            }
            set(&mut doc, caller, callee);
            doc["variables"]["uuid"] = json!(call_id);
            doc["variables"]["sip_call_id"] = json!(call_id);
            let (status, answer) = node.post("/ingest/freeswitch", &doc.to_string());
            assert_eq!(status, 200, "{answer}");
        }
        "kamailio" => {
            let cdr = json!({
                "start_time": "1795660125.168", "end_time": "1795660129.480", "duration": "4.312",
                "callid": call_id, "from_tag": "tag1", "caller": caller, "callee": callee,
                "sip_code": "200", "sip_reason": "OK", "answer_time": "1795660125.480", "reason": "",
                "system_id": "kamailio-1",
            });
            let (status, answer) = node.post("/ingest/kamailio", &cdr.to_string());
            assert_eq!(status, 200, "{answer}");
        }
        "asterisk" => {
            let path = dir.join(format!("{call_id}.csv"));
            let row = format!(
                "\"\",\"{caller}\",\"{callee}\",\"from-internal\",\"\"\"Caller\"\" <{caller}>\",\"SIP/100-1\",\
                 \"SIP/trunk-2\",\"Dial\",\"SIP/trunk\",\"2026-11-26 10:00:00\",\"2026-11-26 10:00:05\",\
                 \"2026-11-26 10:03:20\",200,195,\"ANSWERED\",\"DOCUMENTATION\",\"{call_id}\",\"\"\n"
            );
            std::fs::write(&path, row).unwrap();
            let (ok, stdout, stderr) =
                submit(node, &["--format", "asterisk-csv", "--timezone", "UTC", path.to_str().unwrap()]);
            assert!(ok && stdout.contains("1 accepted"), "{stdout}{stderr}");
        }
        "opensips" => {
            let path = dir.join(format!("{call_id}.log"));
            let line = format!(
                "ACC: call ended: created=1474899444;call_start_time=1474899448;duration=5;ms_duration=4762;\
                 setuptime=4;method=INVITE;from_tag=f1;to_tag=t1;call_id={call_id};code=200;reason=OK;\
                 caller={caller};callee={callee}\n"
            );
            std::fs::write(&path, line).unwrap();
            let (ok, stdout, stderr) = submit(node, &["--format", "opensips-acc", path.to_str().unwrap()]);
            assert!(ok && stdout.contains("1 accepted"), "{stdout}{stderr}");
        }
        other => panic!("no switch {other}"),
    }
}

#[test]
fn numbers_as_switches_write_them_are_recorded_and_rules_bring_them_to_e164() {
    use cdrchain_runtime::party::{NormalizedParty, PartyHasher};
    let hasher = PartyHasher::new(DEV_SECRET, None).unwrap();
    let digest_of = |canonical: &str| {
        let party = match canonical.strip_prefix("raw:") {
            Some(text) => NormalizedParty::AsWritten(text.into()),
            None => hasher.normalize(canonical.trim_start_matches("tel:")).unwrap(),
        };
        assert_eq!(party.canonical(), canonical);
        hasher.digest_normalized(&party).0.to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, GB_RULES).unwrap();
    for with_rules in [false, true] {
        let base = tempfile::tempdir().unwrap();
        let extra: Vec<&str> = if with_rules { vec!["--config", config.to_str().unwrap()] } else { vec![] };
        let node = Node::start_dev(base.path(), &extra);
        for switch in ["freeswitch", "kamailio", "asterisk", "opensips"] {
            for (i, (written, as_written, ruled)) in FORMS.iter().enumerate() {
                let call_id = format!("{switch}-{i}-{with_rules}@numbers.test");
                submit_as(&node, dir.path(), switch, &call_id, written);
                let stored = record(&node, &call_id);
                let (caller, callee) = if with_rules {
                    (*ruled, "tel:+442079460018")
                } else {
                    (*as_written, "raw:00442079460018")
                };
                let context = format!("{switch} writing {written} (rules: {with_rules}): {stored}");
                assert_eq!(stored["caller"], digest_of(caller), "{context}");
                assert_eq!(stored["callee"], digest_of(callee), "{context}");
                let flags =
                    json!({"caller": caller.starts_with("raw:"), "callee": callee.starts_with("raw:")});
                assert_eq!(
                    stored.get("as_written").cloned().unwrap_or(json!({"caller": false, "callee": false})),
                    flags,
                    "{context}"
                );
            }
        }
    }
}
