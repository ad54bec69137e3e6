//! A month of interconnect between alice and bob on the four-validator local chain, settled as
//! issue #28 asks: they agree rates (three destinations, 60/6) and amend them mid-month; 10,000
//! calls both ways are committed; both nodes make the same statement; bob's own export misses
//! 0.5 % of the calls, his day-wise comparison points at the day, and he disputes the volume;
//! alice answers with inclusion and absence bundles; they close at an agreed amount; the dispute
//! bundle verifies offline and any changed byte of it fails a named check; charlie and dave,
//! who validated all of it, read none of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use cdrchain_chain_spec::keys::{DevAccount, DEV_ACCOUNT_NAMES};
use cdrchain_chain_spec::sealing::{self, SealError};
use cdrchain_chain_spec::ChainSpec;
use cdrchain_runtime::interconnect::{Envelope, Sealed};
use cdrchain_runtime::proof::dispute::verify_dispute_text;
use cdrchain_runtime::proof::Expected;
use common::{Net, Node};
use serde_json::{json, Value};

const SECRET: &str = "e2e month consortium secret";
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/agreement.json");
/// 2026-11-01T00:00:00+01:00 (Madrid), the month's first millisecond.
const NOVEMBER: u64 = 1_793_487_600_000;
const DAY_MS: u64 = 86_400_000;
const CALLS: u64 = 10_000;
/// Calls spread evenly over the 30 days of November.
const SPACING_MS: u64 = 30 * DAY_MS / CALLS;
/// The day bob's switch lost calls: 2026-11-20 in Madrid.
const LOST_DAY: u64 = 19;
const LOST: usize = 50;

fn cdrchain(args: &[&str]) -> Output {
    Command::new(common::cdrchain_binary())
        .args(args)
        .env("CDRCHAIN_CONSORTIUM_SECRET", SECRET)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

/// Call `n` of the month: even calls alice's to a Spanish mobile or London, odd ones bob's to
/// Madrid; one in ten busy.
fn call(n: u64) -> Value {
    let from_alice = n.is_multiple_of(2);
    let callee = match (from_alice, n % 4) {
        (true, 0) => format!("+34612{:06}", n),
        (true, _) => format!("+44207946{:04}", n % 10_000),
        (false, _) => format!("+3491{:07}", 1_000_000 + n),
    };
    let start = NOVEMBER + n * SPACING_MS;
    let mut value = json!({
        "call_id": format!("nov-{n}@sbc.example"),
        "caller": format!("+4420794{:05}", n % 100_000),
        "callee": callee,
        "caller_operator": if from_alice { "alice" } else { "bob" },
        "callee_operator": if from_alice { "bob" } else { "alice" },
        "start": start,
        "disposition": "answered",
    });
    if n % 10 == 9 {
        value["disposition"] = json!("busy");
        value["end"] = json!(start + 4_000);
    } else {
        value["answer"] = json!(start + 2_000);
        value["end"] = json!(start + 2_000 + (20 + n * 7 % 300) * 1_000);
    }
    value
}

/// The example's terms moved to November, with a 0.2 % volume tolerance and a 1 EUR minimum:
/// version 1 holds the first tariff; the amendment adds the second from 2026-11-16.
fn agreements(dir: &Path) -> (String, String) {
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let moved = example
        .replace("2026-12-01T00:00:00+01:00", "2026-11-01T00:00:00+01:00")
        .replace("2026-12-16T00:00:00+01:00", "2026-11-16T00:00:00+01:00")
        .replace("\"volume_tolerance_percent\": \"1\"", "\"volume_tolerance_percent\": \"0.2\"")
        .replace("\"minimum_amount\": \"100\"", "\"minimum_amount\": \"1\"");
    let mut first: Value = serde_json::from_str(&moved).unwrap();
    first["tariffs"].as_array_mut().unwrap().truncate(1);
    let (v1, v2) = (dir.join("agreement-v1.json"), dir.join("agreement-v2.json"));
    std::fs::write(&v1, serde_json::to_string_pretty(&first).unwrap()).unwrap();
    std::fs::write(&v2, moved).unwrap();
    (v1.to_str().unwrap().to_string(), v2.to_str().unwrap().to_string())
}

/// `method [id]` on `node` once `done` holds of its answer.
fn await_value(node: &Node, method: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::await_value(node, method, id, Duration::from_secs(120), done)
}

/// The word after `after` in `printed` (an id the CLI prints).
fn word_after(printed: &str, after: &str) -> String {
    let id = printed.split(after).nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or_default();
    let id = id.trim_end_matches([';', ',', ':']);
    assert!(id.starts_with("0x"), "no id after {after:?} in: {printed}");
    id.to_string()
}

/// Alice proposes version 1, bob accepts; bob proposes the amendment, alice accepts.
fn agree(alice: &Node, bob: &Node, dir: &Path) {
    let (v1, v2) = agreements(dir);
    for (proposer, acceptor, file) in [(alice, bob, &v1), (bob, alice, &v2)] {
        let id =
            word_after(&ok(cdrchain(&["agreement", "propose", file, "--rpc", &proposer.rpc])), "agreement ");
        await_value(acceptor, "agreement_get", &id, |r| !r.is_null());
        ok(cdrchain(&["agreement", "accept", &id, "--rpc", &acceptor.rpc]));
        await_value(proposer, "agreement_get", &id, |r| r["accepted_at"].is_u64());
    }
    let list = alice.call("agreement_list", json!(["alice", "bob"])).unwrap();
    assert_eq!(list["in_force"]["version"], 2, "{list}");
}

/// Each partner records the calls it originates, a thousand per submission; answers the head
/// once both nodes committed every one.
fn record_month(alice: &Node, bob: &Node) -> u64 {
    let calls: Vec<Value> = (0..CALLS).map(call).collect();
    let mut last = Vec::new();
    for (node, who) in [(alice, "alice"), (bob, "bob")] {
        let own: Vec<Value> = calls.iter().filter(|c| c["caller_operator"] == who).cloned().collect();
        for chunk in own.chunks(1_000) {
            let ids = node.call("cdr_submit", json!([chunk])).unwrap();
            last.push(ids.as_array().unwrap().last().unwrap().as_str().unwrap().to_string());
        }
    }
    for id in &last {
        alice.wait_committed(id, Duration::from_secs(120));
        bob.wait_committed(id, Duration::from_secs(120));
    }
    alice.call("chain_getHeader", json!([])).unwrap()["number"].as_u64().unwrap()
}

/// Bob's own export of the month as his switch saw it: every call but fifty of alice's on
/// 2026-11-20, whose numbers (n) it answers too.
fn bob_export(dir: &Path) -> (std::path::PathBuf, Vec<u64>) {
    let day = NOVEMBER + LOST_DAY * DAY_MS..NOVEMBER + (LOST_DAY + 1) * DAY_MS;
    let lost: Vec<u64> = (0..CALLS)
        .filter(|n| n.is_multiple_of(2) && day.contains(&(NOVEMBER + n * SPACING_MS)))
        .take(LOST)
        .collect();
    assert_eq!(lost.len(), LOST);
    let lines: Vec<String> = (0..CALLS).filter(|n| !lost.contains(n)).map(|n| call(n).to_string()).collect();
    let file = dir.join("bob-november.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    (file, lost)
}

/// Every sealed envelope of the dispute, its statement and agreement, as charlie's node serves
/// them; none opens with charlie's or dave's key.
fn outsiders_cannot_open(charlie: &Node, dispute: &str) {
    let record = charlie.call("dispute_get", json!([dispute])).unwrap();
    let statement = charlie.call("statement_get", json!([record["statement"]])).unwrap();
    let agreement = charlie.call("agreement_get", json!([statement["agreement"]])).unwrap();
    let mut sealed: Vec<(Value, Value)> = vec![
        (agreement["commitment"].clone(), agreement["envelope"].clone()),
        (statement["commitment"].clone(), statement["envelope"].clone()),
    ];
    for step in record["steps"].as_array().unwrap() {
        assert!(step["opening"].is_null(), "charlie's node served an opening: {step}");
        if !step["envelope"].is_null() {
            sealed.push((step["commitment"].clone(), step["envelope"].clone()));
        }
    }
    assert!(agreement["opening"].is_null() && statement["opening"].is_null());
    assert_eq!(sealed.len(), 5, "agreement, statement, open, respond, propose-close");
    let genesis = ChainSpec::local().genesis_hash();
    for (commitment, envelope) in sealed {
        let envelope: Envelope = serde_json::from_value(envelope).unwrap();
        let sealed = Sealed { commitment: serde_json::from_value(commitment).unwrap(), envelope };
        for name in &DEV_ACCOUNT_NAMES[2..4] {
            let secret = DevAccount::derive(name).encryption;
            let refused = sealing::open(&genesis, &sealed, &secret);
            assert!(matches!(refused, Err(SealError::NotARecipient { .. })), "{name}: {refused:?}");
        }
    }
    let refused = charlie.call("dispute_bundle", json!([dispute])).unwrap_err();
    assert!(refused.to_string().contains("only their nodes"), "{refused}");
}

#[test]
fn a_month_is_rated_disputed_on_one_day_settled_and_proven_offline() {
    let net = Net::new();
    let env = [("CDRCHAIN_CONSORTIUM_SECRET", SECRET)];
    let nodes: Vec<Node> = (0..4).map(|i| net.start_with(i, &env)).collect();
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    agree(alice, bob, dir.path());
    let head = record_month(alice, bob);

    // Both partners' nodes make the same statement of November at the same block.
    let window = json!(["alice", "bob", "2026-11-01T00:00:00+01:00", "2026-12-01T00:00:00+01:00", head]);
    let mine = alice.call("statement_make", window.clone()).unwrap();
    let theirs = bob.call("statement_make", window).unwrap();
    assert_eq!(mine["canonical"], theirs["canonical"]);
    assert_eq!(mine["document"]["calls"], CALLS, "{}", mine["document"]);
    let statement = &mine["document"]["statement"];
    assert!(statement["unrated"].as_object().unwrap().is_empty(), "{statement}");
    let tariffs: Vec<u64> =
        statement["lines"].as_array().unwrap().iter().map(|l| l["tariff"].as_u64().unwrap()).collect();
    assert!(tariffs.contains(&0) && tariffs.contains(&1), "the amendment applies from the 16th: {tariffs:?}");
    assert_eq!(statement["days"].as_object().unwrap().len(), 30);
    let at = head.to_string();
    let proposed = ok(cdrchain(&[
        "statement",
        "make",
        "--a",
        "alice",
        "--b",
        "bob",
        "--from",
        "2026-11-01T00:00:00+01:00",
        "--to",
        "2026-12-01T00:00:00+01:00",
        "--at",
        &at,
        "--sign",
        "--rpc",
        &alice.rpc,
    ]));
    let statement_id = word_after(&proposed, "proposed statement ");
    await_value(bob, "statement_get", &statement_id, |s| !s.is_null());

    // Bob's day-wise comparison points at the 20th, alice's calls; reconciling that day names
    // the fifty calls his export lacks.
    let (export, lost) = bob_export(dir.path());
    let (days, reconcile) = (path("days.csv"), path("reconcile-20.json"));
    let export = export.to_str().unwrap();
    let reading = ["--mine", export, "--format", "ndjson", "--rpc", &bob.rpc];
    let mut args = vec!["statement", "compare", &statement_id, "--out", &days];
    args.extend_from_slice(&reading);
    let compared = cdrchain(&args);
    assert_eq!(compared.status.code(), Some(3), "{}", text(&compared));
    let printed = text(&compared);
    assert!(printed.contains("1 of 60 days and directions differ"), "{printed}");
    let day_line =
        printed.lines().find(|l| l.contains("2026-11-20 a-to-b")).unwrap_or_else(|| panic!("{printed}"));
    assert!(day_line.ends_with(&format!("-{LOST} calls")), "{day_line}");
    let mut args = vec!["reconcile", "--partner", "alice", "--from", "2026-11-20T00:00:00+01:00"];
    args.extend_from_slice(&["--to", "2026-11-21T00:00:00+01:00", "--json", &reconcile]);
    args.extend_from_slice(&reading);
    let reconciled = cdrchain(&args);
    assert_eq!(reconciled.status.code(), Some(3), "{}", text(&reconciled));
    assert!(text(&reconciled).contains(&format!("missing in file {LOST}")), "{}", text(&reconciled));

    // Bob disputes the volume: 0.1 % would be within the tolerance; 0.5 % is not.
    let open = |own: &str| {
        cdrchain(&[
            "dispute",
            "open",
            "--statement",
            &statement_id,
            "--category",
            "volume",
            "--claim",
            "2.50",
            "--own-calls",
            own,
            "--evidence",
            &path("days.csv"),
            &path("reconcile-20.json"),
            "--rpc",
            &bob.rpc,
        ])
    };
    let within = open("9990");
    assert!(text(&within).contains("within the agreement's volume tolerance of 0.2 %"), "{}", text(&within));
    let dispute = word_after(&ok(open("9950")), "opened dispute ");

    // Alice reads bob's reconciliation in the dispute and proves the fifty calls recorded, and
    // that she recorded nothing after them.
    let record = await_value(alice, "dispute_get", &dispute, |d| !d.is_null());
    let claim: Value =
        serde_json::from_str(record["steps"][0]["opening"]["document"].as_str().unwrap()).unwrap();
    let attached = &claim["evidence"][1];
    assert_eq!(attached["name"], "reconcile-20.json");
    let report = base64::engine::general_purpose::STANDARD
        .decode(attached["content_base64"].as_str().unwrap())
        .unwrap();
    let report: Value = serde_json::from_slice(&report).unwrap();
    let ids: Vec<String> = report["missing_in_file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), LOST);
    let mut calls: Vec<String> = report["missing_in_file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["call_id"].as_str().unwrap().to_string())
        .collect();
    let mut lost_calls: Vec<String> = lost.iter().map(|n| format!("nov-{n}@sbc.example")).collect();
    calls.sort();
    lost_calls.sort();
    assert_eq!(calls, lost_calls, "the fifty calls bob's switch lost");
    let bundles: Vec<Value> = ids.iter().map(|id| alice.call("cdr_proof", json!([id])).unwrap()).collect();
    std::fs::write(path("inclusion-20.json"), serde_json::to_string(&bundles).unwrap()).unwrap();
    ok(cdrchain(&["proof", "alice:5000", "--absent", "--out", &path("absence.json"), "--rpc", &alice.rpc]));
    ok(cdrchain(&[
        "dispute",
        "respond",
        &dispute,
        "--reject",
        "--evidence",
        &path("inclusion-20.json"),
        &path("absence.json"),
        "--note",
        "the fifty calls are recorded and certified",
        "--rpc",
        &alice.rpc,
    ]));
    await_value(bob, "dispute_get", &dispute, |d| d["steps_count"] == 2);
    ok(cdrchain(&["dispute", "close", &dispute, "--amount", "0.50", "--rpc", &bob.rpc]));
    await_value(alice, "dispute_get", &dispute, |d| d["steps_count"] == 3);
    assert!(ok(cdrchain(&["dispute", "close", &dispute, "--amount", "0.5", "--rpc", &alice.rpc]))
        .contains("confirmed"));
    await_value(bob, "dispute_get", &dispute, |d| d["closed_at"].is_u64());

    // The bundle verifies offline against the chain spec and tells the story.
    let bundle = path("dispute.json");
    ok(cdrchain(&["dispute", "bundle", &dispute, "--out", &bundle, "--rpc", &bob.rpc]));
    let verified = ok(cdrchain(&["verify", &bundle, "--chain", "local"]));
    for expected in [
        "VALID: dispute",
        "closed at 0.50 EUR",
        "`bob` opened a volume dispute claiming 2.50 EUR (its own records: 9950 calls); evidence: days.csv",
        "`alice` responded: reject; evidence: inclusion-20.json",
        "4 items match their BLAKE3 hashes; 51 proof bundles among them verify",
    ] {
        assert!(verified.contains(expected), "{expected:?} in:\n{verified}");
    }
    let untrusted = cdrchain(&["verify", &bundle]);
    assert_eq!(untrusted.status.code(), Some(2), "{}", text(&untrusted));

    // Changed bytes all over the file each fail a named check (every byte: runtime's tests).
    let spec = ChainSpec::local();
    let authorities = spec.authority_keys();
    let expected = Expected { genesis_hash: spec.genesis_hash(), authorities: &authorities };
    let mut bytes = std::fs::read(&bundle).unwrap();
    assert!(verify_dispute_text(std::str::from_utf8(&bytes).unwrap(), Some(&expected)).verdict.valid);
    let step = (bytes.len() / 400).max(1);
    for index in (0..bytes.len()).step_by(step) {
        bytes[index] ^= 0x01;
        if let Ok(changed) = std::str::from_utf8(&bytes) {
            let verdict = verify_dispute_text(changed, Some(&expected)).verdict;
            assert!(!verdict.valid && verdict.checks.iter().any(|c| c.outcome.is_err()), "byte {index}");
        }
        bytes[index] ^= 0x01;
    }
    let tampered = path("tampered.json");
    std::fs::write(&tampered, String::from_utf8(bytes).unwrap().replacen(r#"\"0.50\""#, r#"\"0.05\""#, 1))
        .unwrap();
    let refused = cdrchain(&["verify", &tampered, "--chain", "local"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("FAIL  steps"), "{}", text(&refused));

    outsiders_cannot_open(charlie, &dispute);
    in_the_portal(bob, dir.path());
}

/// Bob's node's portal lists the pair's records, and the dispute's bundle verifies in Debian's
/// Chromium (`tests/portal/disputes.mjs`), telling the same story as `cdrchain verify`.
fn in_the_portal(bob: &Node, dir: &Path) {
    let config = json!({
        "url": format!("{}/", bob.rpc),
        "partner": "alice",
        "dir": dir,
        "expected": [
            "settled: 0.50 EUR",
            "`bob` opened a volume dispute claiming 2.50 EUR (its own records: 9950 calls)",
            "51 proof bundles among them verify",
        ],
        "screenshots": std::env::var("CDRCHAIN_PORTAL_SCREENSHOTS").ok(),
    });
    common::browser_script("disputes.mjs", &config);
}
