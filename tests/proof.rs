//! Proof bundles end to end: `cdrchain proof` from a dev node, `cdrchain verify` offline against
//! the right spec, another spec, no spec, and with single bytes changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::path::Path;
use std::time::Duration;

use common::{cdr, run, Node};
use serde_json::Value;

fn verify(bundle: &Path, chain: Option<&str>) -> (Option<i32>, String) {
    let mut args = vec!["verify", bundle.to_str().unwrap()];
    if let Some(chain) = chain {
        args.extend(["--chain", chain]);
    }
    let output = run(&args);
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

/// Flips the lowest bit of the byte at `index` of a `0x…` hex field.
fn flip_hex(value: &mut Value, field: &str, index: usize) {
    let text = value[field].as_str().unwrap().trim_start_matches("0x").to_string();
    let mut bytes = hex::decode(text).unwrap();
    bytes[index] ^= 1;
    value[field] = Value::String(format!("0x{}", hex::encode(bytes)));
}

#[test]
fn a_bundle_verifies_offline_against_its_spec_only_and_any_changed_byte_is_named() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start_dev(base.path(), &[]);
    let lines: Vec<String> = (0..5).map(|n| cdr(n).to_string()).collect();
    let (status, _) = node.post("/ingest/cdrs", &lines.join("\n"));
    assert_eq!(status, 200);
    node.wait_committed("alice:4", Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("alice-3.json");
    let output = run(&["proof", "alice:3", "--rpc", &node.rpc, "--out", bundle.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Not committed: no inclusion bundle, and the reason; an absence bundle instead.
    let output = run(&["proof", "alice:99", "--rpc", &node.rpc]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a committed CDR"));
    let absent = dir.path().join("alice-99-absent.json");
    let output =
        run(&["proof", "alice:99", "--absent", "--rpc", &node.rpc, "--out", absent.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // A recorded one cannot be proven absent.
    let output = run(&["proof", "alice:2", "--absent", "--rpc", &node.rpc]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("alice:2 is recorded"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(node);
    let (code, text) = verify(&absent, Some("dev"));
    assert_eq!(code, Some(0), "{text}");
    for check in ["claim", "state inclusion", "state root", "finality", "chain spec"] {
        assert!(text.contains(&format!("ok    {check}")), "{check}: {text}");
    }
    assert!(text.contains("next sequence was 5") && text.contains("99 was not recorded"), "{text}");
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&absent).unwrap()).unwrap();
    value["sequence"] = Value::from(3);
    let lied = dir.path().join("lied.json");
    std::fs::write(&lied, value.to_string()).unwrap();
    let (code, text) = verify(&lied, Some("dev"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  claim"), "{text}");

    // Offline from here: the node is gone.
    let (code, text) = verify(&bundle, Some("dev"));
    assert_eq!(code, Some(0), "{text}");
    for check in ["format", "cdr", "header", "certificate encoding", "inclusion", "finality", "chain spec"] {
        assert!(text.contains(&format!("ok    {check}")), "{check}: {text}");
    }
    assert!(text.contains("VALID"), "{text}");
    let (code, text) = verify(&bundle, None);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("UNTRUSTED"), "{text}");
    let (code, text) = verify(&bundle, Some("local"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  chain spec"), "{text}");

    let original: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let changed = dir.path().join("changed.json");
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("cdr", Box::new(|v| flip_hex(v, "cdr_scale", 20))),
        ("header", Box::new(|v| flip_hex(v, "header_scale", 40))),
        ("certificate encoding", Box::new(|v| flip_hex(v, "certificate_scale", 60))),
        (
            "inclusion",
            Box::new(|v| {
                let first = v["inclusion"]["path"][0].as_str().unwrap().to_string();
                let flipped = if first.ends_with('0') {
                    format!("{}1", &first[..first.len() - 1])
                } else {
                    format!("{}0", &first[..first.len() - 1])
                };
                v["inclusion"]["path"][0] = Value::String(flipped);
            }),
        ),
    ];
    for (check, edit) in cases {
        let mut value = original.clone();
        edit(&mut value);
        std::fs::write(&changed, value.to_string()).unwrap();
        let (code, text) = verify(&changed, Some("dev"));
        assert_eq!(code, Some(1), "{check}: {text}");
        assert!(text.contains(&format!("FAIL  {check}")), "{check}: {text}");
    }
}
