//! The dispute toolkit end to end on four validators of the `local` chain: alice and bob record
//! the interconnect calls they originate (and bob also records one of alice's), charlie records
//! calls between them that they never made (which must change nothing), bob reconciles
//! his own export, in which three calls were altered, two are absent and one is extra, against
//! the chain, and both settle the same window at the same height.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Net, Node};
use serde_json::{json, Value};

const SECRET: &str = "e2e dispute consortium secret";
const BASE_MS: u64 = 1_793_000_000_000;

/// One interconnect call as the test defines it.
#[derive(Clone)]
struct Call {
    n: u64,
    from: &'static str,
    to: &'static str,
    /// Answered with this many billable seconds, or busy.
    seconds: Option<u64>,
    cause: u64,
}

impl Call {
    fn new(n: u64) -> Call {
        let (from, to) = if n % 3 == 2 { ("bob", "alice") } else { ("alice", "bob") };
        let seconds = (n % 5 != 4).then_some(20 + 7 * n);
        Call { n, from, to, seconds, cause: if seconds.is_some() { 16 } else { 17 } }
    }

    fn start(&self) -> u64 {
        BASE_MS + self.n * 60_000
    }

    fn json(&self) -> Value {
        let start = self.start();
        let mut value = json!({
            "call_id": format!("ic-{}@sbc.example", self.n),
            "caller": format!("+44207946{:04}", self.n),
            "callee": format!("+34911{:06}", 100 + self.n),
            "caller_operator": self.from,
            "callee_operator": self.to,
            "start": start,
            "disposition": if self.seconds.is_some() { "answered" } else { "busy" },
            "q850_cause": self.cause,
        });
        match self.seconds {
            Some(seconds) => {
                value["answer"] = json!(start + 3_000);
                value["end"] = json!(start + 3_000 + seconds * 1_000);
            }
            None => value["end"] = json!(start + 4_000),
        }
        value
    }
}

/// Calls, answered, billable seconds per direction (alice -> bob, bob -> alice), by hand.
fn by_hand(calls: &[Call]) -> [(u64, u64, u64); 2] {
    let mut out = [(0, 0, 0); 2];
    for call in calls {
        let t = &mut out[usize::from(call.from == "bob")];
        t.0 += 1;
        if let Some(seconds) = call.seconds {
            t.1 += 1;
            t.2 += seconds;
        }
    }
    out
}

fn submit(node: &Node, calls: &[Call]) -> Vec<String> {
    let cdrs: Vec<Value> = calls.iter().map(Call::json).collect();
    let ids = node.call("cdr_submit", json!([cdrs])).unwrap();
    ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn cdrchain(args: &[&str]) -> std::process::Output {
    Command::new(common::cdrchain_binary())
        .args(args)
        .env("CDRCHAIN_CONSORTIUM_SECRET", SECRET)
        .output()
        .unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn a_partner_export_reconciles_to_exactly_its_six_differences_and_both_sides_settle_alike() {
    let net = Net::new();
    let env = [("CDRCHAIN_CONSORTIUM_SECRET", SECRET)];
    let nodes: Vec<Node> = (0..4).map(|i| net.start_with(i, &env)).collect();
    let (alice, bob) = (&nodes[0], &nodes[1]);

    // Twenty interconnect calls: each side records the calls it originates; bob also records
    // call 0 (alice's), which settlement must count once.
    let calls: Vec<Call> = (0..20).map(Call::new).collect();
    let (from_alice, from_bob): (Vec<Call>, Vec<Call>) =
        calls.iter().cloned().partition(|c| c.from == "alice");
    let mut ids = submit(alice, &from_alice);
    ids.extend(submit(bob, &from_bob));
    ids.extend(submit(bob, &calls[..1]));
    // A third operator, charlie, records fifty alice -> bob calls that neither partner made, and
    // a copy of call 1 ten minutes longer: none of it may change the pair's reconciliation or
    // settlement below (review H4), which count only alice's and bob's own records.
    let mut forged: Vec<Value> = (0..50u64)
        .map(|k| {
            let mut call = Call::new(1).json();
            let start = BASE_MS + k * 20_000 + 500;
            call["call_id"] = json!(format!("forged-{k}@charlie.example"));
            call["start"] = json!(start);
            call["answer"] = json!(start + 1_000);
            call["end"] = json!(start + 601_000);
            call
        })
        .collect();
    let mut longer = Call::new(1).json();
    longer["end"] = json!(longer["end"].as_u64().unwrap() + 600_000);
    forged.push(longer);
    let charlie_ids = nodes[2].call("cdr_submit", json!([forged])).unwrap();
    ids.extend(charlie_ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    for node in &nodes {
        for id in &ids {
            node.wait_committed(id, Duration::from_secs(60));
        }
    }

    // Bob's own export: call 3 is 40 s longer, call 4 (busy) says no-answer, call 7 has another
    // cause; calls 10 and 15 are absent; call 20 exists only in his file.
    let mut export: Vec<Call> = calls.iter().filter(|c| c.n != 10 && c.n != 15).cloned().collect();
    let mut lines: Vec<Value> = export.iter().map(Call::json).collect();
    let at = |n: u64| export.iter().position(|c| c.n == n).unwrap();
    let (three, four, seven) = (at(3), at(4), at(7));
    lines[three]["end"] = json!(lines[three]["end"].as_u64().unwrap() + 40_000);
    lines[four]["disposition"] = json!("no-answer");
    lines[seven]["q850_cause"] = json!(31);
    let extra = Call::new(20);
    lines.push(extra.json());
    export[three].seconds = export[three].seconds.map(|s| s + 40);
    export.push(extra);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bob-export.ndjson");
    std::fs::write(&file, lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n") + "\n").unwrap();

    let (csv, report) = (dir.path().join("diff.csv"), dir.path().join("report.json"));
    // Bob reconciles his file against his own node.
    let reconcile = |mine: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["reconcile", "--partner", "alice", "--mine", mine.to_str().unwrap()];
        args.extend_from_slice(&["--format", "ndjson", "--rpc", &bob.rpc]);
        args.extend_from_slice(extra);
        cdrchain(&args)
    };
    let output = reconcile(&file, &["--csv", csv.to_str().unwrap(), "--json", report.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "differences exit 3: {}", text(&output));
    let table = text(&output);
    assert!(table.contains("matched 15, mismatched 3, missing on chain 1, missing in file 2"), "{table}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let mismatched: Vec<(String, String)> = report["mismatched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let fields: Vec<&str> =
                m["differences"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
            (m["call_id"].as_str().unwrap().to_string(), fields.join(","))
        })
        .collect();
    assert_eq!(
        mismatched,
        vec![
            ("ic-3@sbc.example".to_string(), "duration".to_string()),
            ("ic-4@sbc.example".to_string(), "disposition".to_string()),
            ("ic-7@sbc.example".to_string(), "cause".to_string()),
        ]
    );
    // Each with the chain's id: call 3 and 4 are alice's (she originated them).
    assert!(report["mismatched"][0]["id"].as_str().unwrap().starts_with("alice:"), "{report}");
    let missing_in_file: Vec<&str> = report["missing_in_file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(missing_in_file, vec!["ic-10@sbc.example", "ic-15@sbc.example"]);
    assert_eq!(report["missing_on_chain"][0]["call_id"], "ic-20@sbc.example");
    assert_eq!(report["missing_on_chain"].as_array().unwrap().len(), 1);
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 1 + 6, "{rows}");

    // Totals per direction, against a hand computation of both sides. The window is the
    // file's: calls 0..=20 by start time (call 20 is after every chain call).
    let chain_hand = by_hand(&calls);
    let mine_hand = by_hand(&export);
    let totals = report["totals"].as_array().unwrap();
    // totals[0] is bob -> alice (bob is "me"), totals[1] alice -> bob.
    for (index, hand_index) in [(0, 1), (1, 0)] {
        let t = &totals[index];
        let got = |side: &str| {
            (
                t[side]["calls"].as_u64().unwrap(),
                t[side]["answered"].as_u64().unwrap(),
                t[side]["billable_seconds"].as_u64().unwrap(),
            )
        };
        assert_eq!(got("chain"), chain_hand[hand_index], "chain side of {t}");
        assert_eq!(got("mine"), mine_hand[hand_index], "file side of {t}");
    }

    // A faithful export of the chain's calls reconciles with no difference (exit 0).
    let faithful = dir.path().join("faithful.ndjson");
    let all: Vec<String> = calls.iter().map(|c| c.json().to_string()).collect();
    std::fs::write(&faithful, all.join("\n")).unwrap();
    let output = reconcile(&faithful, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // Without the consortium secret the parties cannot be compared: a clear refusal.
    let output = Command::new(common::cdrchain_binary())
        .args(["reconcile", "--partner", "alice", "--mine", faithful.to_str().unwrap(), "--rpc", &bob.rpc])
        .env_remove("CDRCHAIN_CONSORTIUM_SECRET")
        .env_remove("CDRCHAIN_CONSORTIUM_SECRET_FILE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("consortium secret"), "{}", text(&output));

    // Settlement on both sides, same window, rounding and height: the same numbers.
    let height = alice.call("chain_getHeader", json!([])).unwrap()["number"].as_u64().unwrap();
    let (from, to) = (BASE_MS.to_string(), (BASE_MS + 20 * 60_000).to_string());
    let settlement = |node: &Node, extra: &[&str]| {
        let mut args = vec!["settlement", "--a", "alice", "--b", "bob", "--from", &from, "--to", &to];
        args.extend_from_slice(&["--rpc", &node.rpc]);
        args.extend_from_slice(extra);
        cdrchain(&args)
    };
    let at = height.to_string();
    let settle = |node: &Node| {
        let output = settlement(node, &["--rounding", "60/6", "--at", &at, "--json"]);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let (at_alice, at_bob) = (settle(alice), settle(bob));
    assert_eq!(at_alice, at_bob);
    assert_eq!(at_alice["at"]["height"], height);
    assert_eq!((at_alice["records"].as_u64(), at_alice["calls"].as_u64()), (Some(21), Some(20)));
    let billed = |s: u64| if s <= 60 { 60 } else { 60 + (s - 60).div_ceil(6) * 6 };
    for (index, from) in ["alice", "bob"].into_iter().enumerate() {
        let d = &at_alice["directions"][index];
        assert_eq!(d["from"], from);
        let mine: Vec<&Call> = calls.iter().filter(|c| c.from == from).collect();
        assert_eq!(d["calls"].as_u64().unwrap(), mine.len() as u64);
        assert_eq!(
            d["answered"].as_u64().unwrap(),
            mine.iter().filter(|c| c.seconds.is_some()).count() as u64
        );
        let hand: u64 = mine.iter().filter_map(|c| c.seconds).map(billed).sum();
        assert_eq!(d["billed_seconds"].as_u64().unwrap(), hand, "{d}");
        let busy = mine.iter().filter(|c| c.seconds.is_none()).count() as u64;
        assert_eq!(d["by_disposition"]["busy"].as_u64().unwrap_or(0), busy, "{d}");
    }
    // The table says where the numbers were computed.
    let output = settlement(alice, &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("computed at block #"), "{}", text(&output));
    assert!(text(&output).contains("alice -> bob"), "{}", text(&output));
    // A bad rounding rule is refused with the rule named.
    let output = settlement(alice, &["--rounding", "60/0"]);
    assert!(!output.status.success() && text(&output).contains("rounding rule"), "{}", text(&output));
}
