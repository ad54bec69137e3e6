//! `cdrchain build-spec`, run as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_chain_spec::ChainSpec;
mod common;

use common::run;

#[test]
fn prints_the_dev_spec_and_its_genesis_hash() {
    let output = run(&["build-spec", "--chain", "dev"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let spec = ChainSpec::from_json(&stdout, "stdout").unwrap();
    assert_eq!(spec, ChainSpec::dev());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&format!("genesis hash       {}", ChainSpec::dev().genesis_hash())), "{stderr}");
    assert!(stderr.contains("WARNING"), "dev keys must be called out: {stderr}");
}

#[test]
fn a_written_spec_loads_back_with_the_same_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.json");
    let path_text = path.to_str().unwrap();
    let output = run(&["build-spec", "--chain", "local", "--out", path_text]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = run(&["build-spec", "--chain", path_text]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(&ChainSpec::local().genesis_hash().to_string()), "{stderr}");
}

#[test]
fn a_broken_spec_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    let mut value = serde_json::to_value(ChainSpec::local()).unwrap();
    value["authorities"] = serde_json::json!(["alice", "mallory"]);
    std::fs::write(&path, value.to_string()).unwrap();
    let output = run(&["build-spec", "--chain", path.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing is printed for a broken spec");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("broken.json"), "{stderr}");
    assert!(stderr.contains("authority `mallory` is not a registered operator"), "{stderr}");

    let output = run(&["build-spec", "--chain", dir.path().join("absent.json").to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent.json"));
}

#[test]
fn help_explains_each_flag() {
    let output = run(&["build-spec", "--help"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("--chain") && text.contains("INSECURE") && text.contains("--out"), "{text}");
}
