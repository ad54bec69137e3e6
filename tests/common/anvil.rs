//! anvil as RSK regtest, for the tests that anchor (tests/rsk.rs, the portal's Chain page):
//! foundry's binaries from npm (`contracts/node_modules`, `scripts/contracts.sh install`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A foundry tool (`anvil`, `cast`) installed by `scripts/contracts.sh install`.
pub fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-deps.sh (or scripts/contracts.sh install)",
        path.display()
    );
    path
}

/// Kills and reaps the child when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Deploys the `CdrCheckpoint` contract for `chain` (`dev`, `local` or a spec file) on `rsk` with
/// a funded throwaway deployer key made in `dir`; the contract's address.
pub fn deploy_contract(dir: &std::path::Path, rsk: &str, chain: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("deployer.json");
    assert!(super::run(&["key", "generate", "--scheme", "secp256k1", "--out", key.to_str().unwrap()])
        .status
        .success());
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let address = file["evm_address"].as_str().unwrap();
    let funded = ureq::post(rsk).send_json(serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance", "params": [address, "0x3635C9ADC5DEA00000"]
    }));
    assert!(funded.is_ok(), "anvil_setBalance: {funded:?}");
    let output = super::run(&[
        "contract",
        "deploy",
        "--rsk-rpc",
        rsk,
        "--key",
        key.to_str().unwrap(),
        "--chain",
        chain,
    ]);
    let contract = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        output.status.success() && contract.starts_with("0x") && contract.len() == 42,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    contract
}

/// anvil as RSK regtest (chain id 33, London rules) on a free loopback port; its URL.
pub fn anvil() -> (Guard, String) {
    let anvil_port = free_port();
    let mut anvil = Command::new(tool("anvil"))
        .args([
            "--chain-id",
            "33",
            "--host",
            "127.0.0.1",
            "--port",
            &anvil_port.to_string(),
            "--hardfork",
            "london",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = anvil.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines.next().expect("anvil stopped").unwrap();
        if line.contains("Listening on") {
            break;
        }
        assert!(Instant::now() < deadline, "anvil did not start");
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Guard(anvil), format!("http://127.0.0.1:{anvil_port}"))
}
