//! `cdrchain agreement check|rate` as a user runs them, on the example agreement of
//! docs/examples/agreement.json; `propose|accept|show` on the four-validator local chain, where
//! only the pair can read what they agreed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::time::{Duration, Instant};

use cdrchain_chain_spec::keys::{DevAccount, DEV_ACCOUNT_NAMES};
use cdrchain_chain_spec::sealing::{self, SealError};
use cdrchain_runtime::interconnect::{Envelope, Sealed};
use common::{run, Net, Node};
use serde_json::{json, Value};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/agreement.json");

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn the_example_agreement_checks_and_rates_a_call() {
    let out = run(&["agreement", "check", EXAMPLE]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("between `alice` and `bob` in EUR")
            && printed.contains("from 2026-12-16T00:00:00+01:00"),
        "{printed}"
    );
    assert!(printed.trim_end().ends_with("VALID"), "{printed}");
    // Wednesday 10:00 in Madrid to a Spanish mobile, for `seconds`.
    let rate = |seconds: &str| {
        run(&[
            "agreement",
            "rate",
            EXAMPLE,
            "--direction",
            "a-to-b",
            "--start",
            "2026-12-02T10:00:00+01:00",
            "--seconds",
            seconds,
            "--destination",
            "34612345678",
        ])
    };
    // 61.2 s bill as 66 s at 0.025/min.
    let out = rate("61.2");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("prefix 346, peak, 66 s billed: 0.0275 EUR"), "{}", text(&out));
    let out = rate("1.2345");
    assert!(!out.status.success() && text(&out).contains("--seconds `1.2345`"), "{}", text(&out));
}

#[test]
fn a_broken_agreement_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    std::fs::write(&broken, example.replacen("\"60/6\"", "\"60/0\"", 1)).unwrap();
    let out = run(&["agreement", "check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("INVALID: tariffs[0].a_to_b: increment `60/0`"), "{}", text(&out));
}

/// `cdrchain agreement ARGS… --rpc NODE`.
fn agreement(node: &Node, args: &[&str]) -> std::process::Output {
    let mut all = vec!["agreement"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--rpc", &node.rpc]);
    run(&all)
}

/// Agreement `id` as `node` answers it, once `done` holds of it.
fn await_agreement(node: &Node, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = node.call("agreement_get", json!([id])).unwrap();
        if !record.is_null() && done(&record) {
            return record;
        }
        assert!(Instant::now() < deadline, "agreement {id} on {}: {record}", node.rpc);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn agreement_id(out: &std::process::Output) -> String {
    let printed = text(out);
    assert!(out.status.success(), "{printed}");
    let id = printed.split_whitespace().skip_while(|w| *w != "agreement").nth(1).unwrap_or_default();
    assert!(id.starts_with("0x"), "{printed}");
    id.to_string()
}

#[test]
fn partners_agree_on_chain_and_the_other_validators_cannot_read_it() {
    let net = Net::new();
    let nodes: Vec<Node> = (0..4).map(|i| net.start(i)).collect();
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);

    let out = agreement(alice, &["propose", EXAMPLE]);
    let id = agreement_id(&out);
    assert!(text(&out).contains("(version 1) to `bob`"), "{}", text(&out));
    let proposed = await_agreement(charlie, &id, |_| true);
    assert_eq!((proposed["a"].as_str(), proposed["b"].as_str()), (Some("alice"), Some("bob")));
    assert!(proposed["accepted_at"].is_null());

    // Charlie validates it but cannot read it: its node serves no opening, and the envelope does
    // not open with charlie's key.
    assert!(proposed["opening"].is_null(), "{proposed}");
    let envelope: Envelope = serde_json::from_value(proposed["envelope"].clone()).unwrap();
    let commitment = serde_json::from_value(proposed["commitment"].clone()).unwrap();
    let sealed = Sealed { commitment, envelope };
    let genesis = cdrchain_chain_spec::ChainSpec::local().genesis_hash();
    for name in &DEV_ACCOUNT_NAMES[2..] {
        let secret = DevAccount::derive(name).encryption;
        assert!(matches!(sealing::open(&genesis, &sealed, &secret), Err(SealError::NotARecipient { .. })));
    }
    let rates = std::fs::read_to_string(EXAMPLE).unwrap();
    let bytes = sealed.envelope.0.as_slice();
    assert!(
        !bytes.windows(8).any(|w| rates.as_bytes().windows(8).any(|r| r == w)),
        "plaintext in the envelope"
    );
    let out = agreement(charlie, &["show", &id]);
    assert!(text(&out).contains("document: sealed to the pair"), "{}", text(&out));
    let out = agreement(charlie, &["accept", &id]);
    assert!(!out.status.success() && text(&out).contains("cannot open"), "{}", text(&out));

    // Bob reads it, checks it and accepts it; both see version 1 in force.
    let out = agreement(bob, &["show", &id]);
    assert!(text(&out).contains("between `alice` (a) and `bob` (b), in EUR"), "{}", text(&out));
    let out = agreement(alice, &["accept", &id]);
    assert!(!out.status.success() && text(&out).contains("only `bob` accepts it"), "{}", text(&out));
    let out = agreement(bob, &["accept", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let accepted = await_agreement(alice, &id, |r| r["accepted_at"].is_u64());
    assert_eq!(accepted["opening"]["document"].as_str(), Some(rates.as_str()));
    let out = agreement(charlie, &["show", "--a", "bob", "--b", "alice"]);
    assert!(text(&out).contains("`bob`–`alice`: version 1 in force"), "{}", text(&out));

    // An amendment from bob: version 2 takes over once alice accepts it.
    let dir = tempfile::tempdir().unwrap();
    let amended = dir.path().join("amended.json");
    std::fs::write(&amended, rates.replace("\"0.0150\"", "\"0.0140\"")).unwrap();
    let out = agreement(bob, &["propose", amended.to_str().unwrap()]);
    let second = agreement_id(&out);
    assert!(text(&out).contains("(version 2) to `alice`"), "{}", text(&out));
    await_agreement(alice, &second, |_| true);
    let out = agreement(alice, &["accept", &second]);
    assert!(out.status.success(), "{}", text(&out));
    await_agreement(bob, &second, |r| r["accepted_at"].is_u64());
    let list = bob.call("agreement_list", json!(["alice", "bob"])).unwrap();
    assert_eq!(list["in_force"]["version"], 2, "{list}");
    assert_eq!(list["agreements"].as_array().unwrap().len(), 2, "{list}");

    // A statement of a block before the amendment is made under version 1, at the head under 2,
    // and before any agreement not at all.
    let before = accepted["accepted_at"].as_u64().unwrap();
    let window = |at: u64| json!(["alice", "bob", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", at]);
    let head = bob.call("chain_getHeader", json!([])).unwrap()["number"].as_u64().unwrap();
    let old = bob.call("statement_make", window(before)).unwrap();
    assert_eq!(old["document"]["agreement"].as_str(), Some(id.as_str()), "{old}");
    assert_eq!(old["document"]["agreement_version"], 1, "{old}");
    let new = bob.call("statement_make", window(head)).unwrap();
    assert_eq!(new["document"]["agreement"].as_str(), Some(second.as_str()), "{new}");
    let refused = bob.call("statement_make", window(before - 1)).unwrap_err();
    assert!(refused.to_string().contains("no agreement in force at block"), "{refused}");
}

/// 2026-12-02T09:00:00Z: a Wednesday, 10:00 in Madrid (peak), under the example's first tariff.
const DECEMBER_2: u64 = 1_796_202_000_000;

/// Call `n` between alice and bob as the recorder's switch reports it: alice's calls go to a
/// Spanish mobile, a London number or a SIP URI (no destination); bob's to Madrid.
fn statement_call(n: u64) -> Value {
    let from_alice = n.is_multiple_of(2);
    let callee = match (from_alice, n % 3) {
        (true, 0) => "+34612345678".to_string(),
        (true, 1) => "+442079460018".to_string(),
        (true, _) => format!("sip:desk{n}@bob.example"),
        (false, _) => format!("+3491{:07}", 1_000_000 + n),
    };
    let start = DECEMBER_2 + n * 61_000;
    json!({
        "call_id": format!("stmt-{n}@e2e.invalid"),
        "caller": format!("+4420794{:05}", n),
        "callee": callee,
        "caller_operator": if from_alice { "alice" } else { "bob" },
        "callee_operator": if from_alice { "bob" } else { "alice" },
        "start": start,
        "answer": start + 1_000,
        "end": start + 1_000 + 30_000 + n * 1_000,
        "disposition": "answered",
    })
}

#[test]
fn both_partners_make_the_same_statement_and_no_one_else_can() {
    let net = Net::new();
    let (nodes, head, ids) = pair_with_calls(&net);
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);
    // The CDRs carry their callee's destination, never the number.
    let stored = alice.call("cdr_get", json!([ids[0]])).unwrap();
    assert_eq!(stored["destination"], json!({"version": 1, "digits": "34612"}), "{stored}");

    let make = |node: &Node| {
        node.call(
            "statement_make",
            json!(["alice", "bob", "2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z", head]),
        )
    };
    let (mine, theirs) = (make(alice).unwrap(), make(bob).unwrap());
    assert_eq!(mine["canonical"], theirs["canonical"], "both partners' nodes make the same bytes");
    assert_eq!(mine["hash"], theirs["hash"]);
    let statement = &mine["document"]["statement"];
    assert_eq!(mine["document"]["calls"], 12, "{mine}");
    // a→b: 2 calls to 346 and 2 to 44 rated, 2 to SIP URIs not; b→a: 6 calls to Madrid.
    assert_eq!(statement["totals"]["a-to-b"]["calls"], 4, "{statement}");
    assert_eq!(statement["totals"]["b-to-a"]["calls"], 6, "{statement}");
    let unrated = statement["unrated"]["a-to-b"].as_object().unwrap();
    assert_eq!(unrated.values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 2, "{statement}");
    let prefixes: Vec<&str> =
        statement["lines"].as_array().unwrap().iter().map(|l| l["prefix"].as_str().unwrap()).collect();
    assert_eq!(prefixes, ["346", "44", "3491"], "{statement}");

    // Charlie's node cannot open the agreement, so it cannot rate; a partner of neither cannot ask.
    let refused = make(charlie).unwrap_err();
    assert!(refused.to_string().contains("cannot open"), "{refused}");

    // The CLI writes the canonical bytes and the lines as CSV.
    let dir = tempfile::tempdir().unwrap();
    let (out, csv) = (dir.path().join("statement.json"), dir.path().join("lines.csv"));
    let at = head.to_string();
    let printed = run(&[
        "statement",
        "make",
        "--a",
        "alice",
        "--b",
        "bob",
        "--from",
        "2026-12-01T00:00:00Z",
        "--to",
        "2026-12-03T00:00:00Z",
        "--at",
        &at,
        "--out",
        out.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--rpc",
        &bob.rpc,
    ]);
    assert!(printed.status.success(), "{}", text(&printed));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), mine["canonical"].as_str().unwrap());
    assert!(text(&printed).contains("2 calls not rated"), "{}", text(&printed));
    let lines = std::fs::read_to_string(&csv).unwrap();
    assert!(
        lines.starts_with("direction,tariff,prefix,peak,calls,billed_seconds,amount\na-to-b,0,346,true,2,"),
        "{lines}"
    );

    // Alice proposes it on the chain; bob's node makes the same bytes and signs; it is final.
    let window =
        ["--a", "alice", "--b", "bob", "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-03T00:00:00Z"];
    let mut args = vec!["statement", "make"];
    args.extend_from_slice(&window);
    args.extend_from_slice(&["--at", &at, "--sign", "--rpc", &alice.rpc]);
    let proposed = run(&args);
    assert!(proposed.status.success(), "{}", text(&proposed));
    let printed = text(&proposed);
    let id = printed
        .split("proposed statement ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_string();
    let statement_of = |node: &Node| node.call("statement_get", json!([id])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while statement_of(bob).is_null() {
        assert!(Instant::now() < deadline, "statement {id} never committed: {printed}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let signed = run(&["statement", "sign", &id, "--rpc", &bob.rpc]);
    assert!(signed.status.success(), "{}", text(&signed));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !statement_of(alice)["signed_at"].is_u64() {
        assert!(Instant::now() < deadline, "statement {id} never signed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let on_chain = statement_of(bob);
    assert_eq!(on_chain["opening"]["document"], mine["canonical"], "{on_chain}");
    let shown = run(&["statement", "show", &id, "--rpc", &alice.rpc]);
    assert!(text(&shown).contains("final") && text(&shown).contains("statement hash"), "{}", text(&shown));
    // Charlie sees that a statement exists and is final, not what it says.
    assert!(statement_of(charlie)["opening"].is_null());
    let shown = run(&["statement", "show", &id, "--rpc", &charlie.rpc]);
    assert!(text(&shown).contains("document: sealed to the pair"), "{}", text(&shown));
    // The period is closed: a second statement overlapping it is refused before it is pooled.
    let mut again = vec!["statement", "make"];
    again.extend_from_slice(&window);
    again.extend_from_slice(&["--sign", "--rpc", &bob.rpc]);
    let refused = run(&again);
    assert!(!refused.status.success() && text(&refused).contains("final for"), "{}", text(&refused));
}

/// Four validators; alice and bob agree the example and record the twelve calls of
/// `statement_call`; answers the nodes, a height at which all are committed, and the CDRs' ids
/// (alice's first).
fn pair_with_calls(net: &Net) -> (Vec<Node>, u64, Vec<String>) {
    let env = [("CDRCHAIN_CONSORTIUM_SECRET", "e2e interconnect consortium secret")];
    let nodes: Vec<Node> = (0..4).map(|i| net.start_with(i, &env)).collect();
    let (alice, bob) = (&nodes[0], &nodes[1]);
    let id = agreement_id(&agreement(alice, &["propose", EXAMPLE]));
    await_agreement(bob, &id, |_| true);
    assert!(agreement(bob, &["accept", &id]).status.success());
    await_agreement(alice, &id, |r| r["accepted_at"].is_u64());
    let calls: Vec<Value> = (0..12).map(statement_call).collect();
    let mut ids = Vec::new();
    for (node, from) in [(alice, "alice"), (bob, "bob")] {
        let own: Vec<Value> = calls.iter().filter(|c| c["caller_operator"] == from).cloned().collect();
        let answer = node.call("cdr_submit", json!([own])).unwrap();
        ids.extend(answer.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    }
    for id in &ids {
        alice.wait_committed(id, Duration::from_secs(60));
        bob.wait_committed(id, Duration::from_secs(60));
    }
    let head = alice.call("chain_getHeader", json!([])).unwrap()["number"].as_u64().unwrap();
    (nodes, head, ids)
}

/// Waits until `node` answers `method [id]` with something `done` accepts.
fn await_value(node: &Node, method: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::await_value(node, method, id, Duration::from_secs(60), done)
}

#[test]
fn a_disputed_statement_is_argued_and_closed_by_both_and_others_see_only_that_it_was() {
    let net = Net::new();
    let (nodes, head, _) = pair_with_calls(&net);
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);
    let window = json!(["alice", "bob", "2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z", head]);
    let proposed = alice.call("statement_propose", window).unwrap();
    let statement = proposed["statement"].as_str().unwrap().to_string();
    await_value(bob, "statement_get", &statement, |s| !s.is_null());

    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("bob-export-summary.csv");
    std::fs::write(&evidence, "day,calls\n2026-12-02,11\n").unwrap();
    let dispute = |node: &Node, args: &[&str]| {
        let mut all = vec!["dispute"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--rpc", &node.rpc]);
        run(&all)
    };
    let open = |claim: &str, own: &str| {
        dispute(
            bob,
            &[
                "open",
                "--statement",
                &statement,
                "--category",
                "volume",
                "--claim",
                claim,
                "--own-calls",
                own,
                "--evidence",
                evidence.to_str().unwrap(),
            ],
        )
    };
    // The agreement's terms: a claim of at least 100 EUR, a volume difference beyond 1 %.
    let out = open("99.99", "11");
    assert!(
        !out.status.success() && text(&out).contains("below the agreement's minimum of 100"),
        "{}",
        text(&out)
    );
    let out = open("150", "12");
    assert!(
        !out.status.success() && text(&out).contains("within the agreement's volume tolerance"),
        "{}",
        text(&out)
    );
    let out = open("150", "11");
    assert!(out.status.success(), "{}", text(&out));
    let id = text(&out).split_whitespace().nth(2).unwrap().to_string();
    await_value(alice, "dispute_get", &id, |d| !d.is_null());
    // A disputed statement is closed by its dispute, not signed.
    let out = run(&["statement", "sign", &statement, "--rpc", &bob.rpc]);
    assert!(!out.status.success(), "{}", text(&out));

    let out = dispute(alice, &["respond", &id, "--counter", "100", "--evidence", evidence.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    await_value(bob, "dispute_get", &id, |d| d["steps_count"] == 2);
    let out = dispute(bob, &["close", &id, "--amount", "120"]);
    assert!(text(&out).contains("proposed to close"), "{}", text(&out));
    await_value(alice, "dispute_get", &id, |d| d["steps_count"] == 3);
    let out = dispute(alice, &["close", &id, "--amount", "120.00"]);
    assert!(text(&out).contains("confirmed"), "{}", text(&out));
    let closed = await_value(bob, "dispute_get", &id, |d| d["closed_at"].is_u64());
    let kinds: Vec<&str> =
        closed["steps"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["open", "respond", "propose-close", "confirm-close"]);
    let opened: Value =
        serde_json::from_str(closed["steps"][0]["opening"]["document"].as_str().unwrap()).unwrap();
    assert_eq!((opened["category"].as_str(), opened["claim"].as_str()), (Some("volume"), Some("150")));
    let list = bob.call("statement_list", json!(["alice", "bob"])).unwrap();
    assert_eq!(list["final"][0]["statement"], json!(statement), "{list}");
    let shown = dispute(bob, &["show", &id]);
    assert!(
        text(&shown).contains("volume claim of 150 EUR; evidence: bob-export-summary.csv"),
        "{}",
        text(&shown)
    );

    // Charlie validated every step and reads none of them.
    let seen = charlie.call("dispute_get", json!([id])).unwrap();
    assert!(seen["steps"].as_array().unwrap().iter().all(|s| s["opening"].is_null()), "{seen}");
    let shown = dispute(charlie, &["show", &id]);
    assert!(
        text(&shown).contains("sealed to the pair") && !text(&shown).contains("claim of"),
        "{}",
        text(&shown)
    );
}
