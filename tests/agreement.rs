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
}
