//! RSK anchoring end to end: anvil with RSK's regtest chain id (33), `cdrchain contract deploy`, a
//! four-validator localnet (`cdrchain testnet`) that signs checkpoints every 4 blocks for the
//! contract, `cdrchain relay --once` twice (the second has nothing to do), and the stored
//! checkpoint read back with an independent client (`cast call`, from npm's foundry packages).
//! A checkpoint with a forged or missing signature is refused by the contract. A proof bundle
//! made with `--rsk-rpc` verifies against the anchor, and an edited one does not.
//!
//! Needs `contracts/node_modules` (`scripts/contracts.sh install`, run by scripts/install-deps.sh).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::anvil::{anvil, tool, Guard};
use common::{cdr, free_port_run, run};
use serde_json::{json, Value};

fn rpc(url: &str, method: &str, params: Value) -> Value {
    let answer: Value = ureq::post(url)
        .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .into_json()
        .unwrap();
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn cast(args: &[&str]) -> Output {
    Command::new(tool("cast")).args(args).output().unwrap()
}

fn key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.json"));
    assert!(run(&["key", "generate", "--scheme", "secp256k1", "--out", path.to_str().unwrap()])
        .status
        .success());
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, file["evm_address"].as_str().unwrap().to_string())
}

/// `cdrchain testnet` of `local`'s four validators under `base`, signing a checkpoint every 4
/// blocks for `contract` and reading it on `rsk` every second; the first validator's RPC URL,
/// the first RPC port (validator i serves on it + i) and the first validator's metrics URL.
fn testnet(base: &Path, contract: &str, rsk: &str) -> (Guard, String, u16, String) {
    // One run for all three kinds, so that they cannot overlap.
    let p2p = free_port_run(12);
    let (rpc_port, metrics) = (p2p + 4, p2p + 8);
    let testnet = Command::new(common::cdrchain_binary())
        .args(["testnet", "--validators", "4", "--base-path", base.to_str().unwrap()])
        .args([
            "--p2p-port",
            &p2p.to_string(),
            "--rpc-port",
            &rpc_port.to_string(),
            "--metrics-port",
            &metrics.to_string(),
        ])
        .args(["--checkpoint-interval", "4", "--checkpoint-contract", contract])
        .args(["--rsk-rpc", rsk, "--rsk-poll-interval", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = format!("http://127.0.0.1:{metrics}/metrics");
    (Guard(testnet), format!("http://127.0.0.1:{rpc_port}"), rpc_port, metrics)
}

/// `cdrchain relay --once` from `node` to `contract` on `rsk`, paid by `relayer`, with `extra`.
fn relay(dir: &Path, node: &str, rsk: &str, contract: &str, relayer: &Path, extra: &[&str]) -> Output {
    let lock = dir.join("relay.lock");
    let mut args = vec![
        "relay",
        "--once",
        "--rpc",
        node,
        "--rsk-rpc",
        rsk,
        "--contract",
        contract,
        "--key",
        relayer.to_str().unwrap(),
        "--lock-file",
        lock.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// What [`deploy`] made: funded deployer and relayer keys, the chain spec and the contract.
struct Deployed {
    deployer: PathBuf,
    relayer: PathBuf,
    spec: PathBuf,
    contract: String,
}

/// `local`'s four validators with a checkpoint every 4 blocks (`cdrchain build-spec`), and its
/// contract deployed on `rsk` (`cdrchain contract deploy`) by a funded deployer.
fn deploy(dir: &Path, rsk: &str) -> Deployed {
    // A deployer and a relayer with funds: they have no power over the contract.
    let (deployer, deployer_address) = key(dir, "deployer");
    let (relayer, relayer_address) = key(dir, "relayer");
    for address in [&deployer_address, &relayer_address] {
        rpc(rsk, "anvil_setBalance", json!([address, "0x3635C9ADC5DEA00000"]));
    }

    // The chain: `local`'s four validators with a checkpoint every 4 blocks.
    let spec = dir.join("spec.json");
    let output = run(&[
        "build-spec",
        "--chain",
        "local",
        "--checkpoint-interval",
        "4",
        "--out",
        spec.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let output = run(&[
        "contract",
        "deploy",
        "--rsk-rpc",
        rsk,
        "--key",
        deployer.to_str().unwrap(),
        "--chain",
        spec.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let contract = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(contract.starts_with("0x") && contract.len() == 42, "{}", text(&output));
    Deployed { deployer, relayer, spec, contract }
}

/// The node's `checkpoint_anchor` once it has read `height` from the contract (it reads every
/// second).
fn anchor_reaching(node: &str, height: u64) -> Value {
    await_anchor(|| rpc(node, "checkpoint_anchor", json!([])), |a| a["anchored_height"] == height)
}

/// `read()` once `done` holds of it, asked four times a second for at most 30 s.
fn await_anchor(read: impl Fn() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let anchor = read();
        if done(&anchor) {
            return anchor;
        }
        assert!(Instant::now() < deadline, "the anchor never became as expected: {anchor}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

const CHECKPOINT_TUPLE: &str = "(bytes32,uint64,bytes32,bytes32,bytes32,uint64)";

#[test]
fn checkpoints_are_relayed_to_the_contract_once_and_read_back_independently() {
    let dir = tempfile::tempdir().unwrap();

    // anvil as RSK regtest.
    let (_anvil, rsk) = anvil();

    let Deployed { deployer, relayer, spec, contract } = deploy(dir.path(), &rsk);
    let threshold = cast(&["call", &contract, "threshold()(uint256)", "--rpc-url", &rsk]);
    assert_eq!(String::from_utf8_lossy(&threshold.stdout).trim(), "3", "{}", text(&threshold));
    // A deployment for another chain id is refused before anything is sent.
    let mut other = serde_json::from_str::<Value>(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    other["params"]["rsk_chain_id"] = json!(31);
    let other_path = dir.path().join("spec-31.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let output = run(&[
        "contract",
        "deploy",
        "--rsk-rpc",
        &rsk,
        "--key",
        deployer.to_str().unwrap(),
        "--chain",
        other_path.to_str().unwrap(),
    ]);
    assert!(!output.status.success() && text(&output).contains("chain 33"), "{}", text(&output));

    // Four validators signing for the contract.
    let (_testnet, node, _, metrics_url) = testnet(&dir.path().join("net"), &contract, &rsk);
    let deadline = Instant::now() + Duration::from_secs(90);
    while ureq::post(&node)
        .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []}))
        .is_err()
    {
        assert!(Instant::now() < deadline, "the testnet did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The validators read the contract (`--rsk-rpc`): nothing anchored yet.
    let anchor = anchor_reaching(&node, 0);
    assert_eq!((&anchor["watching"], &anchor["contract"]), (&json!(true), &json!(contract.to_lowercase())));

    // Relaying before any checkpoint has a quorum: nothing to do (exit 10).
    let relay = |extra: &[&str]| relay(dir.path(), &node, &rsk, &contract, &relayer, extra);
    let output = relay(&[]);
    assert_eq!(output.status.code(), Some(10), "{}", text(&output));

    // Work makes blocks; wait for checkpoint 8 to have all four signatures.
    let mut n = 0;
    let checkpoint = loop {
        let _ = ureq::post(&node)
            .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "cdr_submit", "params": [[cdr(n)]]}));
        n += 1;
        std::thread::sleep(Duration::from_millis(400));
        let eight = rpc(&node, "checkpoint_get", json!([8]));
        if eight["signatures"].as_array().is_some_and(|s| s.len() == 4) {
            break eight;
        }
        assert!(Instant::now() < deadline, "checkpoint 8 did not gather four signatures: {eight}");
    };
    assert_eq!(checkpoint["quorum"], 3);

    // A dry run says what it would send and sends nothing.
    let output = relay(&["--dry-run"]);
    assert!(
        output.status.success() && text(&output).contains("would submit checkpoint #4"),
        "{}",
        text(&output)
    );
    let height = cast(&["call", &contract, "latestHeight()(uint64)", "--rpc-url", &rsk]);
    assert_eq!(String::from_utf8_lossy(&height.stdout).trim(), "0");

    // An RSK node that stops mining: the pass gives up after --receipt-timeout, naming the
    // transaction, and frees the lock (the next run is not refused as locked).
    rpc(&rsk, "evm_setAutomine", json!([false]));
    let output = relay(&["--receipt-timeout", "3"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("no receipt for checkpoint #4") && text(&output).contains("within 3 s"),
        "{}",
        text(&output)
    );
    // Mining again, that transaction lands; the next pass starts after it.
    rpc(&rsk, "evm_setAutomine", json!([true]));
    rpc(&rsk, "evm_mine", json!([]));

    // The relay submits every checkpoint with a quorum, in order; a second run has nothing to do.
    let output = relay(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        !text(&output).contains("relayed checkpoint #4") && text(&output).contains("relayed checkpoint #8"),
        "{}",
        text(&output)
    );
    let latest: u64 = String::from_utf8_lossy(
        &cast(&["call", &contract, "latestHeight()(uint64)", "--rpc-url", &rsk]).stdout,
    )
    .trim()
    .parse()
    .unwrap();
    assert!(latest >= 8, "{latest}");
    // The node's own reading of the anchor (the portal's Chain page, metrics) agrees with the
    // contract, and counts the lag from it.
    let anchor = anchor_reaching(&node, latest);
    let head = anchor["head"].as_u64().unwrap();
    assert_eq!(anchor["lag_blocks"], head - latest, "{anchor}");
    let node_checkpoint = anchor["latest_checkpoint"].as_u64().unwrap();
    assert!(node_checkpoint >= latest && node_checkpoint.is_multiple_of(4), "{anchor}");
    assert_eq!(anchor["lag_checkpoints"], (node_checkpoint - latest) / 4, "{anchor}");
    assert_eq!(anchor["error"], Value::Null, "{anchor}");
    let exported = ureq::get(&metrics_url).call().unwrap().into_string().unwrap();
    let anchored_line = format!("cdrchain_rsk_anchored_height {latest}");
    assert!(exported.lines().any(|l| l == anchored_line), "{anchored_line} in {exported}");
    assert!(exported.lines().any(|l| l == "cdrchain_checkpoint_interval_blocks 4"), "{exported}");
    // With --metrics-file, the pass leaves the anchor's state for node_exporter's textfile
    // collector: the contract's height, the node's latest checkpoint, the interval, success.
    let prom = dir.path().join("relay.prom");
    let output = relay(&["--metrics-file", prom.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(10), "{}", text(&output));
    assert!(text(&output).contains("nothing to do"), "{}", text(&output));
    let metrics = std::fs::read_to_string(&prom).unwrap();
    let gauge = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("{name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(gauge("cdrchain_relay_anchored_height"), latest, "{metrics}");
    assert!(gauge("cdrchain_relay_node_checkpoint_height") >= latest, "{metrics}");
    assert_eq!(gauge("cdrchain_relay_checkpoint_interval_blocks"), 4, "{metrics}");
    assert_eq!(gauge("cdrchain_relay_last_pass_success"), 1, "{metrics}");

    // The crontab example runs the same pass, mapping "nothing to do" to success for cron.
    let cron = Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/relayer-cron.sh"))
        .env("CDRCHAIN_BIN", common::cdrchain_binary())
        .env("CDRCHAIN_RPC", &node)
        .env("CDRCHAIN_RSK_RPC", &rsk)
        .env("CDRCHAIN_CONTRACT", &contract)
        .env("CDRCHAIN_RELAYER_KEY", &relayer)
        .env("CDRCHAIN_CONFIRMATIONS", "1")
        .output()
        .unwrap();
    assert!(cron.status.success() && text(&cron).contains("nothing to do"), "{}", text(&cron));

    // A run while another holds the lock exits 11 and sends nothing.
    let lock = dir.path().join("relay.lock");
    let mut looping = Command::new(common::cdrchain_binary())
        .args([
            "relay",
            "--rpc",
            &node,
            "--rsk-rpc",
            &rsk,
            "--contract",
            &contract,
            "--key",
            relayer.to_str().unwrap(),
        ])
        .args(["--interval", "3600", "--lock-file", lock.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let output = relay(&[]);
    let _ = looping.kill();
    let _ = looping.wait();
    assert_eq!(output.status.code(), Some(11), "{}", text(&output));
    assert!(text(&output).contains("another relay run holds"), "{}", text(&output));

    // cast reads checkpoint 8 back: equal to the node's, field by field.
    let stored = cast(&[
        "call",
        &contract,
        &format!("checkpointAt(uint64){CHECKPOINT_TUPLE}"),
        "8",
        "--rpc-url",
        &rsk,
    ]);
    assert!(stored.status.success(), "{}", text(&stored));
    let printed = String::from_utf8_lossy(&stored.stdout)
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .to_string();
    // cast prints a returned struct one field per line (or as a tuple, by version).
    let fields: Vec<&str> = printed
        .split(['\n', ','])
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| f.split_whitespace().next().unwrap_or_default())
        .collect();
    let expected = [
        checkpoint["genesis_hash"].as_str().unwrap().to_string(),
        checkpoint["height"].to_string(),
        checkpoint["block_hash"].as_str().unwrap().to_string(),
        checkpoint["state_root"].as_str().unwrap().to_string(),
        checkpoint["cdr_log_root"].as_str().unwrap().to_string(),
        checkpoint["cdr_log_size"].to_string(),
    ];
    assert_eq!(fields.len(), 6, "{printed}");
    for (got, want) in fields.iter().zip(&expected) {
        assert_eq!(got.to_lowercase(), want.to_lowercase(), "cast read {printed}");
    }

    // A proof bundle anchored on RSK verifies against the contract; edited, it does not.
    let operator = rpc(&node, "system_properties", json!([]))["operator"].as_str().unwrap().to_string();
    let id = format!("{operator}:0");
    let spec_arg = spec.to_str().unwrap();
    let anchored = dir.path().join("anchored.json");
    let output = run(&[
        "proof",
        &id,
        "--rpc",
        &node,
        "--rsk-rpc",
        &rsk,
        "--contract",
        &contract,
        "--out",
        anchored.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&anchored).unwrap()).unwrap();
    let anchor_height = bundle["anchor"]["checkpoint"]["height"].as_u64().unwrap();
    assert_eq!(anchor_height, latest, "{bundle}");
    assert_eq!(bundle["anchor"]["rsk_chain_id"], 33);
    let verify = |path: &Path| {
        run(&[
            "verify",
            path.to_str().unwrap(),
            "--chain",
            spec_arg,
            "--rsk-rpc",
            &rsk,
            "--contract",
            &contract,
        ])
    };
    let output = verify(&anchored);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("ok    anchor consistency"), "{}", text(&output));
    assert!(text(&output).contains("at RSK block"), "{}", text(&output));
    let committed_at = bundle["header"]["number"].as_u64().unwrap();
    assert!(text(&output).contains("was never rewritten"), "{}", text(&output));
    assert_eq!(
        committed_at > anchor_height,
        text(&output).contains("not anchored itself yet"),
        "{}",
        text(&output)
    );
    // The anchored root edited in the bundle: the contract says otherwise.
    let mut edited = bundle.clone();
    edited["anchor"]["checkpoint"]["cdr_log_root"] = json!(format!("0x{}", "11".repeat(32)));
    let edited_path = dir.path().join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).unwrap();
    let output = verify(&edited_path);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("FAIL  anchor "), "{}", text(&output));
    // A bundle made without --rsk-rpc has no anchor to check.
    let plain = dir.path().join("plain.json");
    assert!(run(&["proof", &id, "--rpc", &node, "--out", plain.to_str().unwrap()]).status.success());
    let output = verify(&plain);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("carries no anchor"), "{}", text(&output));
    // ... and without --rsk-rpc, the anchored bundle is still an ordinary valid bundle.
    let output = run(&["verify", anchored.to_str().unwrap(), "--chain", spec_arg]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // The contract itself refuses a checkpoint with a forged signature or one signature short.
    let next = (latest / 4 + 1) * 4;
    let deadline = Instant::now() + Duration::from_secs(60);
    let twelve = loop {
        let _ = ureq::post(&node)
            .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "cdr_submit", "params": [[cdr(n)]]}));
        n += 1;
        std::thread::sleep(Duration::from_millis(400));
        let twelve = rpc(&node, "checkpoint_get", json!([next]));
        if twelve["signatures"].as_array().is_some_and(|s| s.len() >= 3) {
            break twelve;
        }
        assert!(Instant::now() < deadline, "checkpoint {next} did not gather signatures: {twelve}");
    };
    let tuple = format!(
        "({},{},{},{},{},{})",
        twelve["genesis_hash"].as_str().unwrap(),
        twelve["height"],
        twelve["block_hash"].as_str().unwrap(),
        twelve["state_root"].as_str().unwrap(),
        twelve["cdr_log_root"].as_str().unwrap(),
        twelve["cdr_log_size"]
    );
    let mut signatures: Vec<(String, String)> = twelve["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["evm_address"].as_str().unwrap().to_lowercase(), s["signature"].as_str().unwrap().to_string())
        })
        .collect();
    signatures.sort();
    let submit = |sigs: &[String]| {
        cast(&[
            "send",
            &contract,
            &format!("submitCheckpoint({CHECKPOINT_TUPLE},bytes[])"),
            &tuple,
            &format!("[{}]", sigs.join(",")),
            "--rpc-url",
            &rsk,
            "--private-key",
            // anvil's first well-known account.
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            "--legacy",
        ])
    };
    let short: Vec<String> = signatures.iter().take(2).map(|(_, s)| s.clone()).collect();
    let output = submit(&short);
    assert!(!output.status.success(), "two signatures were accepted: {}", text(&output));
    assert!(
        text(&output).contains("NotEnoughSignatures") || text(&output).contains("revert"),
        "{}",
        text(&output)
    );
    let mut forged: Vec<String> = signatures.iter().take(3).map(|(_, s)| s.clone()).collect();
    // Flip a byte of r in the last signature: it recovers to some other address.
    let mut bytes = forged[2].clone().into_bytes();
    bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
    forged[2] = String::from_utf8(bytes).unwrap();
    let output = submit(&forged);
    assert!(!output.status.success(), "a forged signature was accepted: {}", text(&output));
    let after: u64 = String::from_utf8_lossy(
        &cast(&["call", &contract, "latestHeight()(uint64)", "--rpc-url", &rsk]).stdout,
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(after, latest, "a refused checkpoint changed the contract");
    // With the three real signatures it is accepted.
    let good: Vec<String> = signatures.iter().take(3).map(|(_, s)| s.clone()).collect();
    let output = submit(&good);
    assert!(output.status.success(), "{}", text(&output));
}

/// `cast call` (a simulation: nothing is sent) of `submitCheckpoint` for a checkpoint of the
/// chain at a height far above the contract's, signed by the dev accounts `signers`.
fn simulate_checkpoint(rsk: &str, contract: &str, genesis: &str, signers: &[&'static str]) -> Output {
    use cdrchain_runtime::checkpoint::{evm_address, sign_digest, Checkpoint};
    use cdrchain_runtime::crypto::EvmAddress;
    use cdrchain_runtime::hash::Hash32;
    let checkpoint = Checkpoint {
        genesis_hash: Hash32::from_hex(genesis).unwrap(),
        height: cdrchain_runtime::ids::Height(1_000_000),
        block_hash: Hash32([7; 32]),
        state_root: Hash32([8; 32]),
        cdr_log_root: Hash32([9; 32]),
        cdr_log_size: 1,
    };
    let digest = checkpoint.digest(33, &EvmAddress::from_hex(contract).unwrap());
    let mut signatures: Vec<(EvmAddress, String)> = signers
        .iter()
        .map(|name| {
            let key = cdrchain_chain_spec::DevAccount::derive(name).evm_key;
            (evm_address(key.verifying_key()), sign_digest(&key, &digest).unwrap().to_hex())
        })
        .collect();
    signatures.sort_by_key(|(address, _)| address.0);
    let tuple =
        format!("({genesis},1000000,0x{},0x{},0x{},1)", "07".repeat(32), "08".repeat(32), "09".repeat(32));
    let list: Vec<String> = signatures.into_iter().map(|(_, s)| s).collect();
    cast(&[
        "call",
        contract,
        &format!("submitCheckpoint({CHECKPOINT_TUPLE},bytes[])"),
        &tuple,
        &format!("[{}]", list.join(",")),
        "--rpc-url",
        rsk,
    ])
}

/// Issue #27: the contract follows the chain's authority set. Alice, bob and charlie remove dave;
/// the set before the change (dave too, while it is scheduled) signs the contract's change on
/// the chain; one relay pass submits `changeValidators` with three of those signatures, then the
/// checkpoints, counting only the new set's signatures. The contract then holds the three
/// addresses at nonce 1 and refuses a checkpoint that dave's key signs, while the same
/// checkpoint signed by the three would be accepted. Then erin is added: the contract follows
/// again, to nonce 2.
#[test]
fn the_contract_follows_a_removal_and_an_add_and_refuses_the_removed_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_anvil, rsk) = anvil();
    let Deployed { relayer, contract, spec, .. } = deploy(dir.path(), &rsk);
    let (_testnet, node, rpc_port, _) = testnet(&dir.path().join("net"), &contract, &rsk);
    let url = |i: u16| format!("http://127.0.0.1:{}", rpc_port + i);
    let mut n = 0;
    let mut work = |until: &dyn Fn() -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !until() {
            let _ = ureq::post(&node)
                .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "cdr_submit", "params": [[cdr(n)]]}));
            n += 1;
            std::thread::sleep(Duration::from_millis(300));
            assert!(Instant::now() < deadline, "{what} did not happen in 120 s");
        }
    };
    let up = |i: u16| {
        ureq::post(&url(i))
            .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []}))
            .is_ok()
    };
    work(&|| (0..4).all(up), "the testnet coming up");
    let authority = |i: u16, args: &[&str]| {
        let mut all = vec!["authority"];
        all.extend_from_slice(args);
        let rpc = url(i);
        all.extend_from_slice(&["--rpc", &rpc]);
        let output = run(&all);
        assert!(output.status.success(), "{}", text(&output));
        text(&output)
    };
    let proposed = authority(0, &["propose", "remove", "dave"]);
    let proposal = proposed.split("proposal ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    work(&|| !rpc(&url(1), "authority_pending", json!([]))["proposal"].is_null(), "the proposal");
    authority(1, &["approve", &proposal]);
    authority(2, &["approve", &proposal]);
    // The new set in force, its change signed by three of the old set, and a checkpoint of the
    // new set signed by its three members.
    let ready = || {
        let set = rpc(&node, "authority_set", json!([]));
        let Some(from) = set["from"].as_u64().filter(|_| set["id"] == 1) else { return false };
        let change = rpc(&node, "authority_contractChange", json!([1]));
        let latest = rpc(&node, "checkpoint_latest", json!([]));
        change["signatures"].as_array().is_some_and(|s| s.len() >= 3)
            && latest["height"].as_u64().is_some_and(|h| h >= from)
            && latest["signatures"].as_array().is_some_and(|s| s.len() >= 3)
    };
    work(&ready, "the change and a checkpoint of the new set");
    let change = rpc(&node, "authority_contractChange", json!([1]));
    assert_eq!((change["threshold"].as_u64(), change["nonce"].as_u64()), (Some(3), Some(0)), "{change}");

    let output = relay(dir.path(), &node, &rsk, &contract, &relayer, &[]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let at = printed.find("relayed the change to authority set 1").unwrap_or_else(|| panic!("{printed}"));
    assert!(printed[at..].contains("relayed checkpoint #"), "no checkpoint after the change: {printed}");
    let call = |signature: &str| {
        String::from_utf8_lossy(&cast(&["call", &contract, signature, "--rpc-url", &rsk]).stdout)
            .trim()
            .to_string()
    };
    assert_eq!((call("nonce()(uint256)"), call("threshold()(uint256)")), ("1".to_string(), "3".to_string()));
    let held = call("validators()(address[])").to_lowercase();
    for (name, member) in [("alice", true), ("bob", true), ("charlie", true), ("dave", false)] {
        let key = cdrchain_chain_spec::DevAccount::derive(name).evm_key;
        let address = cdrchain_runtime::checkpoint::evm_address(key.verifying_key()).to_hex();
        assert_eq!(held.contains(&address), member, "{name} in {held}");
    }
    // Dave's key no longer counts; the three do.
    let genesis = rpc(&node, "system_properties", json!([]))["genesisHash"].as_str().unwrap().to_string();
    let refused = simulate_checkpoint(&rsk, &contract, &genesis, &["alice", "bob", "dave"]);
    let selector = alloy::primitives::keccak256("NotAValidator(address)");
    let selector = alloy::hex::encode(&selector[..4]);
    assert!(!refused.status.success(), "a checkpoint signed by dave was accepted: {}", text(&refused));
    assert!(
        text(&refused).contains("NotAValidator") || text(&refused).contains(&selector),
        "{}",
        text(&refused)
    );
    let accepted = simulate_checkpoint(&rsk, &contract, &genesis, &["alice", "bob", "charlie"]);
    assert!(accepted.status.success(), "{}", text(&accepted));
    // A second change, an add: erin joins (her node need not run for the set change: the set
    // before it signs); the contract follows again, to nonce 2, with erin's address.
    let (_, request) = common::join_request(dir.path(), "erin", spec.to_str().unwrap());
    let proposed = authority(0, &["propose", "add", request.to_str().unwrap()]);
    let proposal = proposed.split("proposal ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    work(&|| !rpc(&url(1), "authority_pending", json!([]))["proposal"].is_null(), "erin's proposal");
    authority(1, &["approve", &proposal]);
    authority(2, &["approve", &proposal]);
    let ready = || {
        let set = rpc(&node, "authority_set", json!([]));
        let Some(from) = set["from"].as_u64().filter(|_| set["id"] == 2) else { return false };
        let change = rpc(&node, "authority_contractChange", json!([2]));
        let latest = rpc(&node, "checkpoint_latest", json!([]));
        change["signatures"].as_array().is_some_and(|s| s.len() >= 3)
            && latest["height"].as_u64().is_some_and(|h| h >= from)
            && latest["signatures"].as_array().is_some_and(|s| s.len() >= 3)
    };
    work(&ready, "erin's change and a checkpoint of the set of four");
    let output = relay(dir.path(), &node, &rsk, &contract, &relayer, &[]);
    let printed = text(&output);
    assert!(
        output.status.success() && printed.contains("relayed the change to authority set 2"),
        "{printed}"
    );
    assert_eq!(call("nonce()(uint256)"), "2");
    let erin: Value = serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    let erin_address = erin["evm_address"].as_str().unwrap().to_lowercase();
    assert!(call("validators()(address[])").to_lowercase().contains(&erin_address), "{erin}");

    // Up to date: the next pass has nothing to do.
    let output = relay(dir.path(), &node, &rsk, &contract, &relayer, &[]);
    assert!(matches!(output.status.code(), Some(0 | 10)), "{}", text(&output));
    assert!(!text(&output).contains("relayed the change"), "{}", text(&output));
}

/// A node given an RSK node (`--rsk-rpc`) says why it cannot read the anchor, on the Chain page's
/// RPC: a contract of another chain is not taken for this chain's anchor, and an RSK node that
/// stops answering leaves the last good reading standing beside the error.
#[test]
fn a_node_reads_its_anchor_and_says_why_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (rsk_node, rsk) = anvil();
    let local_contract = common::anvil::deploy_contract(&dir.path().join("local"), &rsk, "local");
    let dev_contract = common::anvil::deploy_contract(&dir.path().join("dev"), &rsk, "dev");

    let poll = ["--rsk-rpc", &rsk, "--rsk-poll-interval", "1"];
    let wrong = common::Node::start_dev(
        &dir.path().join("wrong"),
        &[&["--checkpoint-contract", &local_contract][..], &poll].concat(),
    );
    let anchor =
        await_anchor(|| wrong.call("checkpoint_anchor", json!([])).unwrap(), |a| !a["error"].is_null());
    let error = anchor["error"]["message"].as_str().unwrap();
    assert!(error.contains("anchors chain") && error.contains("not this chain"), "{anchor}");
    assert_eq!(anchor["anchored_height"], Value::Null, "{anchor}");
    drop(wrong);

    let node = common::Node::start_dev(
        &dir.path().join("right"),
        &[&["--checkpoint-contract", &dev_contract][..], &poll].concat(),
    );
    let anchor =
        await_anchor(|| node.call("checkpoint_anchor", json!([])).unwrap(), |a| a["anchored_height"] == 0);
    assert_eq!(anchor["error"], Value::Null, "{anchor}");
    assert!(anchor["rsk_block"].as_u64().is_some(), "{anchor}");
    // RSK goes away: the error is said, the last reading stays.
    drop(rsk_node);
    let anchor =
        await_anchor(|| node.call("checkpoint_anchor", json!([])).unwrap(), |a| !a["error"].is_null());
    assert_eq!(anchor["anchored_height"], 0, "{anchor}");
    assert!(!anchor["error"]["message"].as_str().unwrap().contains(&rsk), "the URL is not shown: {anchor}");
}
