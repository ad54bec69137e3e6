//! Four real `cdrchain node` processes of the `local` chain on loopback (libp2p over TCP,
//! RocksDB each): agreement, a validator killed and caught up through sync, two of four down,
//! a node outside the chain spec, and a validator killed between its prevote and its precommit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::time::{Duration, Instant};

use common::{cdr, free_port, free_port_run, run, Net, Node};
use serde_json::{json, Value};

/// A free loopback TCP port (bound and released; the node binds it again a moment later).
fn height(node: &Node) -> u64 {
    node.call("chain_getHeader", json!([])).ok().and_then(|h| h["number"].as_u64()).unwrap_or(0)
}

fn hash_at(node: &Node, h: u64) -> String {
    node.call("chain_getHeader", json!([h])).unwrap()["hash"].as_str().unwrap_or_default().to_string()
}

/// Waits until every node is at least at `target`.
fn wait_height(nodes: &[&Node], target: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let heights: Vec<u64> = nodes.iter().map(|n| height(n)).collect();
        if heights.iter().all(|h| *h >= target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not all nodes reached height {target} in {timeout:?}: {heights:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every node reports the same block hash at every height they all have.
fn assert_same_chain(nodes: &[&Node]) -> u64 {
    let common = nodes.iter().map(|n| height(n)).min().unwrap();
    for h in 1..=common {
        let hashes: Vec<String> = nodes.iter().map(|n| hash_at(n, h)).collect();
        assert!(hashes.iter().all(|x| x == &hashes[0] && !x.is_empty()), "height {h}: {hashes:?}");
    }
    common
}

fn all(nodes: &[Option<Node>]) -> Vec<&Node> {
    nodes.iter().flatten().collect()
}

/// Submits `count` CDRs (call ids from `first`) to `node`; returns their ids.
fn submit(node: &Node, first: u64, count: u64) -> Vec<String> {
    let cdrs: Vec<Value> = (first..first + count).map(cdr).collect();
    let ids = node.call("cdr_submit", json!([cdrs])).unwrap();
    ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn wait_all_committed(nodes: &[&Node], ids: &[String], timeout: Duration) {
    for node in nodes {
        for id in ids {
            node.wait_committed(id, timeout);
        }
    }
}

fn log_contains(node: &mut Node, lines: &mut Vec<String>, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        lines.extend(node.drain_log());
        if lines.iter().any(|l| l.contains(needle)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn four_validators_agree_and_a_killed_one_catches_up() {
    let net = Net::new();
    let mut nodes: Vec<Option<Node>> = (0..4).map(|i| Some(net.start(i))).collect();

    // (a) CDRs submitted to different validators are committed everywhere.
    let mut ids = Vec::new();
    for (i, node) in all(&nodes).into_iter().enumerate() {
        ids.extend(submit(node, i as u64 * 1_000, 50));
    }
    assert!(ids.iter().any(|id| id.starts_with("alice:")) && ids.iter().any(|id| id.starts_with("dave:")));
    wait_all_committed(&all(&nodes), &ids, Duration::from_secs(90));
    let agreed = assert_same_chain(&all(&nodes));
    assert!(agreed >= 1);
    // Every validator is connected to the three others (connections may still be settling).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = all(&nodes)[0].call("system_health", json!([])).unwrap();
        let peers = all(&nodes)[0].call("system_peers", json!([])).unwrap();
        if health["peers"] == 3 && peers.as_array().unwrap().len() == 3 {
            let mut operators: Vec<&str> =
                peers.as_array().unwrap().iter().filter_map(|p| p["operator"].as_str()).collect();
            operators.sort_unstable();
            assert_eq!(operators, ["bob", "charlie", "dave"]);
            break;
        }
        assert!(Instant::now() < deadline, "alice does not see three peers: {health} {peers}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // (b) dave is killed; the other three go on committing.
    nodes[3].take().unwrap().kill9();
    let more = submit(all(&nodes)[0], 10_000, 40);
    wait_all_committed(&all(&nodes), &more, Duration::from_secs(90));
    let before = height(all(&nodes)[0]);

    // Restarted, dave catches up through block sync and has the same hashes.
    nodes[3] = Some(net.start(3));
    wait_height(&all(&nodes), before, Duration::from_secs(90));
    let dave = nodes[3].as_mut().unwrap();
    for id in &more {
        dave.wait_committed(id, Duration::from_secs(30));
    }
    let mut log = Vec::new();
    assert!(log_contains(dave, &mut log, "synced up to block", Duration::from_secs(5)), "{}", log.join("\n"));
    // And it takes part again: a CDR submitted to dave is committed by all.
    let last = submit(dave, 20_000, 5);
    wait_all_committed(&all(&nodes), &last, Duration::from_secs(90));
    assert_same_chain(&all(&nodes));
    for node in all(&nodes) {
        let evidence = node.call("consensus_evidence", json!([])).unwrap();
        assert_eq!(evidence, json!([]), "honest validators never equivocate");
    }
}

#[test]
fn with_two_of_four_down_nothing_commits_and_nothing_is_lost() {
    let net = Net::new();
    let alice = net.start(0);
    let bob = net.start(1);
    let charlie = net.start(2);
    let dave = net.start(3);
    let first = submit(&alice, 0, 10);
    wait_all_committed(&[&alice, &bob, &charlie, &dave], &first, Duration::from_secs(90));

    // (c) Two of four stop: no quorum.
    charlie.kill9();
    dave.kill9();
    std::thread::sleep(Duration::from_secs(2));
    let stuck = height(&alice);
    let pending = submit(&alice, 100, 20);
    let pending_bob = submit(&bob, 200, 20);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(height(&alice), stuck, "no block may be committed without a quorum");
    assert_eq!(height(&bob), stuck);
    let status = alice.call("cdr_status", json!([pending[0]])).unwrap();
    assert_eq!(status["status"], "queued", "acknowledged, durable, waiting: {status}");

    // They return: the acknowledged CDRs are committed, and all agree.
    let charlie = net.start(2);
    let dave = net.start(3);
    let nodes = [&alice, &bob, &charlie, &dave];
    wait_all_committed(&nodes, &pending, Duration::from_secs(120));
    wait_all_committed(&nodes, &pending_bob, Duration::from_secs(60));
    assert_same_chain(&nodes);
}

#[test]
fn a_node_outside_the_chain_spec_cannot_join() {
    let net = Net::new();
    let mut alice = net.start(0);
    let bob = net.start(1);
    // An intruder with charlie's operator key but a network key the spec does not list.
    let dir = tempfile::tempdir().unwrap();
    let node_key = dir.path().join("intruder-node-key.json");
    let out = common::run(&["key", "generate", "--scheme", "ed25519", "--out", node_key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut intruder = Node::start(&[
        "node",
        "--chain",
        "local",
        "--dev-key",
        "charlie",
        "--node-key",
        node_key.to_str().unwrap(),
        "--base-path",
        dir.path().join("db").to_str().unwrap(),
        "--listen",
        &listen,
        "--bootnodes",
        &net.bootnodes(2),
        "--rpc-addr",
        "127.0.0.1:0",
        "--no-metrics",
    ]);
    let mut intruder_log = Vec::new();
    assert!(
        log_contains(&mut intruder, &mut intruder_log, "is not in chain `local`", Duration::from_secs(10)),
        "the node warns that its key is not listed:\n{}",
        intruder_log.join("\n")
    );
    // Alice and bob see each other, never the intruder.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = alice.call("system_peers", json!([])).unwrap();
        if peers.as_array().unwrap().iter().any(|p| p["operator"] == "bob") {
            break;
        }
        assert!(Instant::now() < deadline, "alice and bob did not connect: {peers}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    for node in [&alice, &bob] {
        let peers = node.call("system_peers", json!([])).unwrap();
        for p in peers.as_array().unwrap() {
            assert!(p["operator"].is_string(), "only listed peers are connected: {peers}");
        }
    }
    let mut alice_log = Vec::new();
    assert!(
        log_contains(&mut alice, &mut alice_log, "not in the allowed set", Duration::from_secs(10)),
        "alice logs the refusal:\n{}",
        alice_log.iter().rev().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    // Whatever it signs never reaches the validators: its CDRs are never committed there.
    let ids = submit(&intruder, 0, 3);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(alice.call("cdr_status", json!([ids[0]])).unwrap()["status"], "unknown");
}

#[test]
fn a_validator_killed_between_prevote_and_precommit_signs_nothing_conflicting() {
    let net = Net::new();
    let alice = net.start(0);
    let bob = net.start(1);
    let charlie = net.start(2);
    // dave exits (like kill -9) right after sending its first prevote from height 2 on.
    let dave = net.start_with(3, &[("CDRCHAIN_FAILPOINT", "exit-after-prevote")]);
    let first = submit(&alice, 0, 5);
    wait_all_committed(&[&alice, &bob, &charlie], &first, Duration::from_secs(90));
    let more = submit(&bob, 100, 5);
    let mut dave = dave;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = dave.child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "the failpoint did not fire");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(137));
    let mut died = Vec::new();
    assert!(log_contains(&mut dave, &mut died, "failpoint exit-after-prevote", Duration::from_secs(2)));
    drop(dave);

    // Restarted from its WAL, it resumes the height with the prevote it signed.
    let mut dave = net.start(3);
    let mut log = Vec::new();
    // Its head is below the height it prevoted at, so it resumes that height from the WAL record
    // holding the prevote (and re-sends that prevote, never another).
    assert!(
        log_contains(&mut dave, &mut log, "from the WAL (", Duration::from_secs(30)),
        "{}",
        log.join("\n")
    );
    let nodes = [&alice, &bob, &charlie, &dave];
    wait_all_committed(&nodes, &more, Duration::from_secs(90));
    let last = submit(&dave, 200, 5);
    wait_all_committed(&nodes, &last, Duration::from_secs(90));
    assert_same_chain(&nodes);
    // No validator holds evidence against dave (or anyone).
    for node in nodes {
        assert_eq!(node.call("consensus_evidence", json!([])).unwrap(), json!([]));
    }
}

#[test]
fn testnet_command_runs_a_generated_three_validator_chain_and_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    // One run for all three kinds, so that they cannot overlap.
    let p2p = free_port_run(9);
    let (rpc, metrics) = (p2p + 3, p2p + 6);
    let mut testnet = std::process::Command::new(common::cdrchain_binary())
        .args(["testnet", "--validators", "3", "--base-path", dir.path().to_str().unwrap()])
        .args([
            "--p2p-port",
            &p2p.to_string(),
            "--rpc-port",
            &rpc.to_string(),
            "--metrics-port",
            &metrics.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let call = |port: u16, method: &str, params: Value| -> Option<Value> {
        let answer: Value = ureq::post(&format!("http://127.0.0.1:{port}"))
            .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .ok()?
            .into_json()
            .ok()?;
        answer.get("result").cloned()
    };
    // All three up with two peers each, then a CDR submitted to the third is committed by all.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..3 {
        while call(rpc + i, "system_health", json!([])).and_then(|h| h["peers"].as_u64()) != Some(2) {
            assert!(Instant::now() < deadline, "validator {i} did not get its two peers");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let ids = call(rpc + 2, "cdr_submit", json!([[cdr(1)]])).unwrap();
    let id = ids[0].as_str().unwrap().to_string();
    assert!(id.starts_with("validator-3:"), "{id}");
    for i in 0..3 {
        while call(rpc + i, "cdr_status", json!([id])).map(|s| s["status"].clone())
            != Some(json!("committed"))
        {
            assert!(Instant::now() < deadline, "{id} not committed at validator {i}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The generated spec, keys and secret are under the base path; keys are private.
    let spec = std::fs::read_to_string(dir.path().join("chain-spec.json")).unwrap();
    assert!(spec.contains("validator-1") && spec.contains("validator-3"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("validator-1/key.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "key files are not readable by others");
    // SIGTERM stops the testnet and every validator it started.
    let _ = std::process::Command::new("kill").args(["-TERM", &testnet.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while testnet.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the testnet did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..3 {
        assert!(call(rpc + i, "system_health", json!([])).is_none(), "validator {i} still answers");
    }
}

/// Resident memory of a process, from /proc, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    kib * 1024
}

/// Review H2 and M2 on four real nodes: dave's node floods the others with well-signed batches a
/// little and far ahead of its sequence, and replays consensus messages with fresh nonces; the
/// three honest operators' CDRs keep committing everywhere, and no validator's memory runs away.
#[test]
fn a_flooding_member_does_not_stop_the_honest_operators() {
    let net = Net::new();
    let mut honest: Vec<Node> = (0..3).map(|i| net.start(i)).collect();
    let dave = net.start_with(3, &[("CDRCHAIN_FAILPOINT", "flood")]);
    // The flood reaches the honest nodes: they ignore dave's far-ahead batches.
    let mut lines = Vec::new();
    assert!(
        log_contains(&mut honest[0], &mut lines, "start too far ahead of the chain", Duration::from_secs(30)),
        "the flood never reached alice"
    );
    // Three rounds of 1,000 CDRs from each honest operator, committed on every node.
    let started = Instant::now();
    for round in 0..3u64 {
        let mut ids = Vec::new();
        for (i, node) in honest.iter().enumerate() {
            ids.extend(submit(node, 100_000 * (i as u64 + 1) + round * 1_000, 1_000));
        }
        let everyone: Vec<&Node> = honest.iter().chain([&dave]).collect();
        wait_all_committed(&everyone, &ids, Duration::from_secs(60));
    }
    let elapsed = started.elapsed();
    for node in honest.iter().chain([&dave]) {
        let rss = rss_bytes(node.child.id());
        assert!(rss < 1 << 30, "a validator holds {} MiB", rss >> 20);
    }
    assert_same_chain(&honest.iter().chain([&dave]).collect::<Vec<_>>());
    eprintln!("9,000 honest CDRs committed on all four nodes under the flood in {elapsed:?}");
}

/// Review M1: bootnodes given by DNS name (as the production instructions write them) are
/// dialled, and one that cannot be reached is a warning with the reason, not a debug line.
#[test]
fn bootnodes_by_dns_name_connect_and_an_unreachable_one_is_a_warning() {
    let mut net = Net::new();
    net.host = "/dns4/localhost".to_string();
    // Alice first, alone: her bootnodes refuse connections.
    let mut alice = net.start(0);
    let mut lines = Vec::new();
    assert!(
        log_contains(&mut alice, &mut lines, "cannot reach bootnode", Duration::from_secs(15)),
        "no warning for unreachable bootnodes: {lines:?}"
    );
    let others: Vec<Node> = (1..4).map(|i| net.start(i)).collect();
    let nodes: Vec<&Node> = std::iter::once(&alice).chain(others.iter()).collect();
    // Connected by name: what alice and dave submit commits everywhere.
    let mut ids = submit(&alice, 0, 20);
    ids.extend(submit(&others[2], 1_000, 20));
    wait_all_committed(&nodes, &ids, Duration::from_secs(60));
    assert_same_chain(&nodes);
    let peers = alice.call("system_peers", json!([])).unwrap();
    assert_eq!(peers.as_array().map(Vec::len), Some(3), "{peers}");
}

/// Review H6: `purge-chain` used to erase the consensus WAL, so a validator restarted at a
/// height it had voted at could vote again, differently. Its signing state now lives outside the
/// database: after a purge the validator follows as an observer until synced, signs again only
/// past what it signed, and no peer ever records evidence against it.
#[test]
fn a_purged_validator_signs_nothing_that_contradicts_what_it_signed() {
    let net = Net::new();
    let mut nodes: Vec<Option<Node>> = (0..4).map(|i| Some(net.start(i))).collect();
    // A few heights of work, so that alice has signed well past height 1.
    for round in 0..4u64 {
        let mut ids = submit(all(&nodes)[0], round * 10, 10);
        ids.extend(submit(all(&nodes)[1], 1_000 + round * 10, 10));
        wait_all_committed(&all(&nodes), &ids, Duration::from_secs(90));
    }
    wait_height(&all(&nodes), 4, Duration::from_secs(60));
    let alice_base = net.base.join("alice");
    assert!(alice_base.join("chains/local/signing-state").exists(), "no signing state beside the database");

    // Alice stops, her database is purged, she starts again.
    assert!(nodes[0].take().unwrap().terminate().success());
    let output = run(&["purge-chain", "--chain", "local", "--base-path", alice_base.to_str().unwrap(), "-y"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(alice_base.join("chains/local/signing-state").exists(), "purge-chain deleted the signing state");
    let mut alice = net.start(0);
    let mut lines = Vec::new();
    assert!(
        log_contains(&mut alice, &mut lines, "is ahead of the database", Duration::from_secs(20)),
        "the restarted validator did not see its signing state: {lines:?}"
    );
    // CDRs sent to her at once are refused while she catches up (review M10: she would have
    // numbered them from her empty database, reusing ids the chain holds), then numbered after
    // her 40 committed ones.
    let body: String = (5_000..5_010u64).map(|n| format!("{}\n", cdr(n))).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let ids = loop {
        let (status, answer) = alice.post("/ingest/cdrs", &body);
        match status {
            200 => break answer["ids"].clone(),
            503 => assert!(answer.to_string().contains("catching up"), "{answer}"),
            _ => panic!("{status}: {answer}"),
        }
        assert!(Instant::now() < deadline, "alice never took CDRs again");
        std::thread::sleep(Duration::from_millis(200));
    };
    let ids: Vec<String> =
        ids.as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (40..50).map(|n| format!("alice:{n}")).collect();
    assert_eq!(ids, expected, "numbered after the chain's alice:0..=39");
    nodes[0] = Some(alice);
    // The chain goes on with her.
    let mut more = ids;
    more.extend(submit(all(&nodes)[1], 2_000, 30));
    more.extend(submit(all(&nodes)[2], 3_000, 30));
    wait_all_committed(&all(&nodes), &more, Duration::from_secs(120));
    let alice = nodes[0].as_mut().unwrap();
    assert!(
        log_contains(alice, &mut lines, "signing again", Duration::from_secs(30)),
        "alice never signed again: {lines:?}"
    );
    assert_same_chain(&all(&nodes));
    for node in all(&nodes) {
        let evidence = node.call("consensus_evidence", json!([])).unwrap();
        assert_eq!(evidence.as_array().map(Vec::len), Some(0), "{evidence}");
    }
    // The purge took her ingest keys too; the blocks she synced brought them back (from the
    // source digests the CDRs carry): a switch re-posting what she had acknowledged before the
    // purge is answered with the first ids, not recorded twice.
    let again = submit(all(&nodes)[0], 0, 10);
    let first: Vec<String> = (0..10).map(|n| format!("alice:{n}")).collect();
    assert_eq!(again, first, "re-posted records were numbered anew");
}

/// No node of `nodes` holds evidence of equivocation against anyone.
fn assert_no_evidence(nodes: &[&Node]) {
    for node in nodes {
        assert_eq!(
            node.call("consensus_evidence", json!([])).unwrap(),
            json!([]),
            "evidence on {}",
            node.rpc
        );
    }
}

/// Runs `cdrchain authority ARGS… --rpc URL`, asserting success; answers its standard output.
fn authority(node: &Node, args: &[&str]) -> String {
    let mut all: Vec<&str> = vec!["authority"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--rpc", &node.rpc]);
    let out = run(&all);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "authority {args:?}: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Submits CDRs to `driver` until `watch`'s `authority_pending` has a `what` (`proposal` or
/// `scheduled`); answers it.
fn pending(watch: &Node, driver: &Node, what: &str, first: &mut u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = watch.call("authority_pending", json!([])).unwrap();
        if !pending[what].is_null() {
            return pending[what].clone();
        }
        assert!(Instant::now() < deadline, "no {what} on {} after 60 s: {pending}", watch.rpc);
        submit(driver, *first, 2);
        *first += 2;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Who signed the commit certificate of a `chain_getBlock` answer.
fn certificate_signers(block: &Value) -> Vec<&str> {
    block["certificate"]["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["authority"].as_str().unwrap())
        .collect()
}

/// Submits CDRs to `node` until every node in `nodes` is at `target` or later.
fn drive_to(node: &Node, nodes: &[&Node], target: u64, first: &mut u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while nodes.iter().any(|n| height(n) < target) {
        assert!(
            Instant::now() < deadline,
            "not at height {target}: {:?}",
            nodes.iter().map(|n| height(n)).collect::<Vec<_>>()
        );
        submit(node, *first, 5);
        *first += 5;
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Issue #27 on real nodes: alice proposes removing dave, bob and charlie approve through their
/// own nodes; the change takes effect 4 blocks after the approving block; from then on the
/// three commit on their own (every certificate signed by the new set only), dave's node is
/// disconnected and refused, nobody is accused of equivocation, and every acknowledged CDR is
/// committed.
#[test]
fn an_authority_removed_by_a_quorum_stops_counting_and_the_chain_goes_on() {
    let net = Net::new();
    let nodes: Vec<Node> = (0..4).map(|i| net.start(i)).collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut ids = submit(alice, 0, 20);
    wait_all_committed(&refs, &ids, Duration::from_secs(90));

    let proposed = authority(alice, &["propose", "remove", "dave"]);
    let proposal = proposed.split("proposal ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let mut first = 1_000;
    // The proposal may not be committed yet when bob is asked; wait until it is.
    pending(bob, alice, "proposal", &mut first);
    // A second change while this one is open is refused at once, with the reason.
    let out = run(&["authority", "propose", "remove", "charlie", "--rpc", &bob.rpc]);
    assert!(
        !out.status.success(),
        "a second proposal was accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("one change at a time"), "{out:?}");
    authority(bob, &["approve", &proposal]);
    authority(charlie, &["approve", &proposal]);
    let scheduled = pending(alice, alice, "scheduled", &mut first);
    let effective = scheduled["set"]["from"].as_u64().unwrap();
    assert_eq!(effective, scheduled["approved_at"].as_u64().unwrap() + 4);
    assert!(authority(alice, &["show"]).contains("scheduled: remove `dave`"));

    drive_to(alice, &refs[..3], effective + 3, &mut first);
    let set = alice.call("authority_set", json!([])).unwrap();
    assert_eq!(
        (set["id"].as_u64(), set["from"].as_u64(), set["quorum"].as_u64()),
        (Some(1), Some(effective), Some(3))
    );
    let members: Vec<&str> =
        set["authorities"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(members, ["alice", "bob", "charlie"]);
    let text = authority(alice, &["show"]);
    assert!(
        text.starts_with(&format!("authority set 1 from height {effective} (3 authorities, quorum 3)")),
        "{text}"
    );
    // From the effective height, dave signs no certificate.
    for h in effective..effective + 3 {
        let block = alice.call("chain_getBlock", json!([h])).unwrap();
        let signers = certificate_signers(&block);
        assert!(!signers.contains(&"dave") && signers.len() == 3, "height {h}: {signers:?}");
    }
    // Dave's node is disconnected and refused by the others.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = alice.call("system_peers", json!([])).unwrap();
        if !peers.as_array().unwrap().iter().any(|p| p["operator"] == "dave") {
            break;
        }
        assert!(Instant::now() < deadline, "alice is still connected to dave: {peers}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The three go on; nobody was accused.
    let more = submit(bob, 50_000, 20);
    ids.extend(more.iter().cloned());
    wait_all_committed(&refs[..3], &more, Duration::from_secs(90));
    assert_same_chain(&refs);
    assert_no_evidence(&refs);
}

/// Starts the node of OPERATOR, which the genesis spec does not know, with its key file `key`
/// (also its node key), from the genesis spec, bootstrapping from `net`'s validators.
fn start_joiner(net: &Net, dir: &std::path::Path, operator: &str, key: &std::path::Path) -> Node {
    let port = free_port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let bootnodes = net.bootnodes(usize::MAX);
    let base = dir.join(format!("{operator}-db"));
    Node::start(&[
        "node",
        "--chain",
        "local",
        "--key",
        key.to_str().unwrap(),
        "--node-key",
        key.to_str().unwrap(),
        "--operator",
        operator,
        "--base-path",
        base.to_str().unwrap(),
        "--listen",
        &listen,
        "--bootnodes",
        &bootnodes,
        "--rpc-addr",
        "127.0.0.1:0",
        "--no-metrics",
    ])
}

/// Issue #27 on real nodes: erin, an operator the genesis spec does not know, makes a join
/// request with her own keys; alice proposes it, and erin's node (started from the genesis spec)
/// is let in to sync while the proposal is open; bob and charlie approve; from the effective
/// height erin's node signs precommits, proposes blocks and commits its own CDRs, and nobody
/// is accused.
#[test]
fn a_fifth_operator_joins_syncs_and_signs_from_the_effective_height() {
    let net = Net::new();
    let nodes: Vec<Node> = (0..4).map(|i| net.start(i)).collect();
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);
    let ids = submit(alice, 0, 20);
    wait_all_committed(&nodes.iter().collect::<Vec<_>>(), &ids, Duration::from_secs(90));

    let dir = tempfile::tempdir().unwrap();
    let (key, request) = common::join_request(dir.path(), "erin", "local");
    let proposed = authority(alice, &["propose", "add", request.to_str().unwrap()]);
    let proposal = proposed.split("proposal ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let mut first = 1_000;
    pending(bob, alice, "proposal", &mut first);

    // Erin's node, from the genesis spec: let in while the proposal is open, it syncs.
    let erin = start_joiner(&net, dir.path(), "erin", &key);
    let now = height(alice);
    drive_to(alice, &[&erin], now, &mut first);

    authority(bob, &["approve", &proposal]);
    authority(charlie, &["approve", &proposal]);
    let effective = pending(alice, alice, "scheduled", &mut first)["set"]["from"].as_u64().unwrap();
    let mut everyone: Vec<&Node> = nodes.iter().collect();
    everyone.push(&erin);
    // Twelve blocks: erin's turn comes at least twice (a turn that goes to a later round is
    // proposed by another).
    drive_to(alice, &everyone, effective + 12, &mut first);

    let set = erin.call("authority_set", json!([])).unwrap();
    let members: Vec<&str> =
        set["authorities"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!((members, set["quorum"].as_u64()), (vec!["alice", "bob", "charlie", "dave", "erin"], Some(4)));
    let (mut signed, mut proposed_by_erin) = (0, 0);
    for h in effective..effective + 12 {
        let block = alice.call("chain_getBlock", json!([h])).unwrap();
        let signers = certificate_signers(&block);
        assert!(signers.len() >= 4, "height {h}: {signers:?}");
        signed += usize::from(signers.contains(&"erin"));
        proposed_by_erin += usize::from(block["header"]["proposer"] == "erin");
    }
    assert!(
        signed >= 1 && proposed_by_erin >= 1,
        "erin signed {signed} and proposed {proposed_by_erin} of 12 blocks"
    );
    // Erin's own CDRs are committed; everyone agrees; nobody was accused.
    let hers = submit(&erin, 70_000, 10);
    assert!(hers[0].starts_with("erin:"), "{hers:?}");
    wait_all_committed(&everyone, &hers, Duration::from_secs(90));
    assert_same_chain(&everyone);
    assert_no_evidence(&everyone);
}

/// Generates a key file of `scheme` at `path`; answers what `cdrchain key generate` printed
/// after `label` (the public key, or the EVM address).
fn generate_key(path: &std::path::Path, scheme: &str, label: &str) -> String {
    let out = run(&["key", "generate", "--scheme", scheme, "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label} in {text}"));
    line[label.len()..].trim().to_string()
}

/// Issue #27 on real nodes: dave rotates both keys. His node runs with the next keys beside the
/// current ones (`--next-key`, `--next-evm-key`); he proposes the rotation through it, alice and
/// bob approve; from the effective height the chain knows him by the new keys, his node signs
/// certificates and batches with the new one without a restart, his CDRs submitted before,
/// across and after the change are all committed, and nobody is accused. A restart with the old
/// key alone is refused, naming the key the chain wants; with the next key given it goes on.
#[test]
fn an_operator_rotates_both_keys_and_signs_with_the_new_ones_from_the_effective_height() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let (new_key, new_evm) = (dir.path().join("dave-2.key"), dir.path().join("dave-2-evm.key"));
    let new_public = generate_key(&new_key, "ed25519", "public key");
    let new_address = generate_key(&new_evm, "secp256k1", "evm address");
    let next = ["--next-key", new_key.to_str().unwrap(), "--next-evm-key", new_evm.to_str().unwrap()];
    let mut nodes: Vec<Node> = (0..3).map(|i| net.start(i)).collect();
    nodes.push(net.start_full(3, &[], &next));
    let (alice, bob, dave) = (&nodes[0], &nodes[1], &nodes[3]);
    let mut ids = submit(dave, 0, 20);
    wait_all_committed(&nodes.iter().collect::<Vec<_>>(), &ids, Duration::from_secs(90));

    let mut first = 1_000;
    let rotation = rotation_args("dave", &new_key, &new_evm);
    let effective = pass_change(dave, &rotation, &[alice, bob], dave, &mut first);

    // Dave's CDRs across the change: every one is committed, at every node.
    let refs: Vec<&Node> = nodes.iter().collect();
    while refs.iter().any(|n| height(n) < effective + 6) {
        ids.extend(submit(dave, first, 5));
        first += 5;
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_all_committed(&refs, &ids, Duration::from_secs(90));
    let set = alice.call("authority_set", json!([])).unwrap();
    let entry = set["authorities"].as_array().unwrap().iter().find(|m| m["id"] == "dave").unwrap().clone();
    assert_eq!(set["from"].as_u64(), Some(effective));
    assert_eq!(
        entry["ed25519"].as_str().map(|k| k.trim_start_matches("0x")),
        Some(new_public.trim_start_matches("0x"))
    );
    assert_eq!(entry["evm_address"].as_str(), Some(new_address.as_str()));
    // Certificates from the effective height were checked against the new key by every node
    // that imported them; dave's node, holding both, signs some with it.
    let signed = (effective..effective + 6)
        .filter(|h| certificate_signers(&alice.call("chain_getBlock", json!([h])).unwrap()).contains(&"dave"))
        .count();
    assert!(signed >= 1, "dave signed none of the 6 blocks from {effective}");
    assert_same_chain(&refs);
    assert_no_evidence(&refs);

    // Restarted with the old key alone, dave's node refuses to start, naming the chain's key.
    nodes.pop().unwrap().terminate();
    let base = net.base.join("dave");
    let out = run(&[
        "node",
        "--chain",
        "local",
        "--dev-key",
        "dave",
        "--base-path",
        base.to_str().unwrap(),
        "--no-metrics",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a rotated-away key");
    assert!(stderr.contains(new_public.trim_start_matches("0x")), "{stderr}");
    // With the next key given, it rejoins and signs with it.
    let dave = net.start_full(3, &[], &next);
    let more = submit(&dave, first, 10);
    let mut refs: Vec<&Node> = nodes.iter().collect();
    refs.push(&dave);
    wait_all_committed(&refs, &more, Duration::from_secs(90));
}

/// Proposes removing `subject` through `nodes[0]`, has `approvers` approve, and drives the chain
/// until the change is in force at every node of `nodes` (those that stay); answers its first
/// height.
fn remove_authority(nodes: &[&Node], subject: &str, approvers: &[&Node], first: &mut u64) -> u64 {
    let effective = pass_change(nodes[0], &["remove", subject], approvers, nodes[0], first);
    drive_to(nodes[0], nodes, effective + 1, first);
    effective
}

/// Issue #27: a CDR committed after two set changes (dave removed, then charlie) has a proof
/// bundle that verifies offline with only the genesis spec: it carries both changes, each
/// certified by the set before it. Tampering with either step fails the named check `set
/// changes`, naming the step. `cdrchain light-sync` walks the same steps from the genesis spec
/// and checks the head against the set they lead to.
#[test]
fn a_proof_after_two_set_changes_verifies_with_the_genesis_spec_alone() {
    let net = Net::new();
    let nodes: Vec<Node> = (0..4).map(|i| net.start(i)).collect();
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut first = 1_000;
    let all: Vec<&Node> = nodes.iter().collect();
    remove_authority(&all[..3], "dave", &[bob, charlie], &mut first);
    remove_authority(&all[..2], "charlie", &[bob, charlie], &mut first);
    let ids = submit(alice, 90_000, 3);
    wait_all_committed(&[alice, bob], &ids, Duration::from_secs(90));
    assert_eq!(alice.call("authority_set", json!([])).unwrap()["id"], 2);

    let dir = tempfile::tempdir().unwrap();
    let bundle_path = dir.path().join("bundle.json");
    let out = run(&["proof", &ids[0], "--rpc", &alice.rpc, "--out", bundle_path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let verify = |bundle: &Value| {
        let path = dir.path().join("edited.json");
        std::fs::write(&path, bundle.to_string()).unwrap();
        let out = run(&["verify", path.to_str().unwrap(), "--chain", "local"]);
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle["set_changes"].as_array().map(Vec::len), Some(2), "{bundle}");
    let (code, text) = verify(&bundle);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ok    set changes") && text.contains("2 changes"), "{text}");
    // Each step tampered with: the scheduled set of step 1, a signature of step 2's certificate.
    let mut edited = bundle.clone();
    let value = edited["set_changes"][0]["entry"]["value_scale"].as_str().unwrap().to_string();
    let flipped = if value.ends_with('0') { "1" } else { "0" };
    edited["set_changes"][0]["entry"]["value_scale"] =
        json!(format!("{}{flipped}", &value[..value.len() - 1]));
    let (code, text) = verify(&edited);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  set changes") && text.contains("set change 1"), "{text}");
    let mut edited = bundle.clone();
    edited["set_changes"][1]["certificate"]["signatures"].as_array_mut().unwrap().truncate(1);
    let scale_free = edited["set_changes"][1]["certificate"].clone();
    assert!(!scale_free.is_null());
    let (code, text) = verify(&edited);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  set changes") && text.contains("set change 2"), "{text}");
    // Without the steps, the block's set is not the chain spec's.
    let mut edited = bundle.clone();
    edited.as_object_mut().unwrap().remove("set_changes");
    let (code, text) = verify(&edited);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  chain spec"), "{text}");

    let out = run(&["light-sync", "--rpc", &alice.rpc, "--chain", "local"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("authority set 2 from height") && text.contains("finalized by 2 of the 2"),
        "{text}"
    );
    assert!(text.contains("alice") && !text.contains("  dave "), "{text}");
}

/// Submits a CDR every 100 ms to each of `urls` in turn until `stop`; answers the acknowledged
/// ids. A refusal (a node busy or restarting) is not an acknowledgement and is not counted.
fn background_load(
    urls: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut ids = Vec::new();
        let mut n = 500_000;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let url = &urls[n as usize % urls.len()];
            if let Ok(answer) = common::rpc_call(url, None, "cdr_submit", &json!([[cdr(n)]])) {
                ids.extend(
                    answer.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)),
                );
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        ids
    })
}

/// `authority propose` arguments rotating both keys of dev account OPERATOR to the key files
/// `key` and `evm` (the old EVM key is the dev account's).
fn rotation_args(operator: &str, key: &std::path::Path, evm: &std::path::Path) -> Vec<String> {
    let old = format!("dev:{operator}");
    [
        "rotate-key",
        "--operator",
        operator,
        "--new-key",
        key.to_str().unwrap(),
        "--new-evm-key",
        evm.to_str().unwrap(),
        "--old-evm-key",
        &old,
        "--chain",
        "local",
    ]
    .map(String::from)
    .to_vec()
}

/// Proposes `change` through `proposer` and has `approvers` approve it; answers the height the
/// change takes effect (driving the chain through `driver` meanwhile).
fn pass_change<S: AsRef<str>>(
    proposer: &Node,
    change: &[S],
    approvers: &[&Node],
    driver: &Node,
    first: &mut u64,
) -> u64 {
    let mut args = vec!["propose"];
    args.extend(change.iter().map(AsRef::as_ref));
    let proposed = authority(proposer, &args);
    let proposal = proposed.split("proposal ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    pending(approvers[0], driver, "proposal", first);
    for node in approvers {
        authority(node, &["approve", &proposal]);
    }
    pending(driver, driver, "scheduled", first)["set"]["from"].as_u64().unwrap()
}

/// Issue #27's "done when", on real nodes under steady load: a fifth operator (erin) joins from
/// the genesis spec and signs after its effective height; then dave is removed; then bob rotates
/// both keys (his node holds the next ones). Every CDR acknowledged throughout is committed,
/// the nodes agree at every height, nobody is accused, and a proof of a CDR committed after the
/// three changes verifies with only the genesis spec.
#[test]
fn the_consortium_adds_removes_and_rotates_under_load_and_loses_nothing() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let (bob_key, bob_evm) = (dir.path().join("bob-2.key"), dir.path().join("bob-2-evm.key"));
    let bob_public = generate_key(&bob_key, "ed25519", "public key");
    generate_key(&bob_evm, "secp256k1", "evm address");
    let next = ["--next-key", bob_key.to_str().unwrap(), "--next-evm-key", bob_evm.to_str().unwrap()];
    let nodes: Vec<Node> =
        (0..4).map(|i| if i == 1 { net.start_full(1, &[], &next) } else { net.start(i) }).collect();
    let (alice, bob, charlie) = (&nodes[0], &nodes[1], &nodes[2]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = background_load(vec![alice.rpc.clone(), bob.rpc.clone(), charlie.rpc.clone()], stop.clone());
    let mut first = 1_000;

    // Erin joins.
    let (key, request) = common::join_request(dir.path(), "erin", "local");
    let add = ["add", request.to_str().unwrap()];
    let proposed = authority(alice, &["propose", add[0], add[1]]);
    let proposal = proposed.split("proposal ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    pending(bob, alice, "proposal", &mut first);
    let erin = start_joiner(&net, dir.path(), "erin", &key);
    authority(bob, &["approve", &proposal]);
    authority(charlie, &["approve", &proposal]);
    let joined = pending(alice, alice, "scheduled", &mut first)["set"]["from"].as_u64().unwrap();
    let five: Vec<&Node> = nodes.iter().chain(std::iter::once(&erin)).collect();
    drive_to(alice, &five, joined + 4, &mut first);

    // Dave leaves (the set of five needs four: alice proposes, three approve).
    let removed = pass_change(alice, &["remove", "dave"], &[bob, charlie, &erin], alice, &mut first);
    let four: Vec<&Node> = vec![alice, bob, charlie, &erin];
    drive_to(alice, &four, removed + 2, &mut first);

    // Bob rotates both keys.
    let rotation = rotation_args("bob", &bob_key, &bob_evm);
    let rotated = pass_change(bob, &rotation, &[alice, charlie], alice, &mut first);
    drive_to(alice, &four, rotated + 6, &mut first);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ids = load.join().unwrap();
    assert!(ids.len() > 20, "the load was not acknowledged: {} CDRs", ids.len());
    wait_all_committed(&four, &ids, Duration::from_secs(120));

    // The set: alice, bob (new key), charlie, erin; erin and bob's new key signed blocks.
    let set = alice.call("authority_set", json!([])).unwrap();
    assert_eq!(set["id"], 3, "{set}");
    let members: Vec<&str> =
        set["authorities"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(members, ["alice", "bob", "charlie", "erin"]);
    let bob_now = set["authorities"][1]["ed25519"].as_str().unwrap().trim_start_matches("0x").to_string();
    assert_eq!(bob_now, bob_public.trim_start_matches("0x"));
    let signed = |who: &str, from: u64, to: u64| {
        (from..to)
            .filter(|h| {
                certificate_signers(&alice.call("chain_getBlock", json!([h])).unwrap()).contains(&who)
            })
            .count()
    };
    assert!(signed("erin", joined, removed) >= 1, "erin signed nothing from #{joined}");
    let proposed_by_erin = (joined..removed)
        .filter(|h| alice.call("chain_getBlock", json!([h])).unwrap()["header"]["proposer"] == "erin")
        .count();
    assert!(proposed_by_erin >= 1, "erin proposed none of the blocks #{joined}..#{removed}");
    assert!(signed("bob", rotated, rotated + 6) >= 1, "bob's new key signed nothing from #{rotated}");
    assert_eq!(signed("dave", removed, rotated + 6), 0, "dave signed after his removal");
    assert_same_chain(&four);
    assert_no_evidence(&nodes.iter().chain(std::iter::once(&erin)).collect::<Vec<_>>());

    // A CDR committed after the three changes: its proof needs only the genesis spec.
    let last = submit(alice, 900_000, 1);
    wait_all_committed(&[alice], &last, Duration::from_secs(60));
    let bundle = dir.path().join("bundle.json");
    assert!(run(&["proof", &last[0], "--rpc", &alice.rpc, "--out", bundle.to_str().unwrap()])
        .status
        .success());
    let out = run(&["verify", bundle.to_str().unwrap(), "--chain", "local"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("3 changes from the genesis set"), "{text}");
}
