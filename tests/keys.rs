//! `cdrchain key generate|inspect`, run as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use common::run;

#[test]
fn generated_keys_are_private_files_whose_public_parts_inspect_back() {
    let dir = tempfile::tempdir().unwrap();
    for (scheme, public_label) in [("ed25519", "peer id"), ("secp256k1", "evm address")] {
        let path = dir.path().join(format!("{scheme}.json"));
        let path_text = path.to_str().unwrap();
        let output = run(&["key", "generate", "--scheme", scheme, "--out", path_text]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let generated = String::from_utf8(output.stdout).unwrap();
        assert!(generated.contains(public_label), "{generated}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        let output = run(&["key", "inspect", path_text]);
        assert!(output.status.success());
        let inspected = String::from_utf8(output.stdout).unwrap();
        let line = |text: &str| text.lines().find(|l| l.starts_with(public_label)).unwrap().to_string();
        assert_eq!(line(&inspected), line(&generated));
        let secret = std::fs::read_to_string(&path).unwrap();
        let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
        assert!(!inspected.contains(secret["secret"].as_str().unwrap()), "inspect never prints the secret");

        // Never overwrites.
        let output = run(&["key", "generate", "--scheme", scheme, "--out", path_text]);
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains(path_text));
    }
    // A fresh key is not an operator of the dev chain: the node says so.
    let key = dir.path().join("ed25519.json");
    let output = run(&[
        "node",
        "--chain",
        "dev",
        "--key",
        key.to_str().unwrap(),
        "--tmp",
        "--no-metrics",
        "--rpc-addr",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("registers no operator with key"));
}
