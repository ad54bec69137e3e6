//! A real Kamailio (Debian packages, `scripts/kamailio/kamailio.cfg`) relaying calls that sipp
//! makes and answers, posting its dialog CDRs to a dev node: the chain must hold exactly those
//! calls, with durations within a second and the right disposition and cause. The node is down
//! for the first call: Kamailio keeps the CDR and retries until the node takes it.
//!
//! Needs `kamailio`, `kamailio-extra-modules`, `kamailio-utils-modules` and `sip-tester` (sipp):
//! `scripts/install-deps.sh` installs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Node;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require(binary: &str) {
    let found = Command::new("sh").args(["-c", &format!("command -v {binary}")]).output().unwrap();
    assert!(
        found.status.success(),
        "`{binary}` is not installed: run scripts/install-deps.sh (Debian packages kamailio, \
         kamailio-extra-modules, kamailio-utils-modules, sip-tester)"
    );
}

/// Kills the child (and reaps it) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kamailio forks its worker processes: killing the main one would leave them running (a
/// previous version of this test leaked one per run). It runs in its own process group, and the
/// whole group is stopped: SIGTERM (Kamailio stops its children), then SIGKILL for stragglers.
struct GroupGuard(Child);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.0.wait();
    }
}

/// `count` consecutive free UDP ports on loopback (none of `avoid`).
fn free_udp_ports(count: u16, avoid: &[u16]) -> u16 {
    for _ in 0..500 {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base > 65_000 || (base..base + count).any(|p| avoid.contains(&p)) {
            continue;
        }
        let sockets: Vec<_> = (base..base + count).map(|p| UdpSocket::bind(("127.0.0.1", p))).collect();
        if sockets.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no {count} consecutive free UDP ports");
}

/// Waits until something is bound to UDP `port` on loopback.
fn wait_udp_bound(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before binding udp 127.0.0.1:{port}");
        }
        assert!(Instant::now() < deadline, "{what} did not bind udp 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sipp(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("sipp");
    command
        .current_dir(dir)
        .args(args)
        .args(["-i", "127.0.0.1", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// One call a sipp UAC makes: name (its Call-ID prefix), scenario, callee user, extra args.
struct Call {
    name: &'static str,
    scenario: &'static str,
    user: &'static str,
    extra: &'static [&'static str],
}

const CALLS: [Call; 6] = [
    Call { name: "answer2s", scenario: "uac-call.xml", user: "answer", extra: &["-d", "2000"] },
    Call { name: "answer4s", scenario: "uac-call.xml", user: "answer", extra: &["-d", "4000"] },
    Call { name: "busy", scenario: "uac-fail.xml", user: "busy", extra: &[] },
    Call { name: "nobody", scenario: "uac-fail.xml", user: "nobody", extra: &[] },
    Call { name: "away", scenario: "uac-fail.xml", user: "away", extra: &[] },
    Call { name: "cancel", scenario: "uac-cancel.xml", user: "ring", extra: &[] },
];

fn place_call(dir: &Path, sip_port: u16, call: &Call) -> Child {
    let sipp_dir = root().join("tests/sipp");
    let cid = format!("{}-%u@%s", call.name);
    let scenario = sipp_dir.join(call.scenario);
    let target = format!("127.0.0.1:{sip_port}");
    let mut args = vec!["-sf", scenario.to_str().unwrap(), "-s", call.user, "-m", "1", "-cid_str", &cid];
    args.extend_from_slice(call.extra);
    args.extend_from_slice(&["-timeout", "30", "-timeout_error", &target]);
    sipp(dir, &args).spawn().unwrap()
}

#[test]
fn kamailio_and_sipp_calls_land_on_the_chain_exactly_once() {
    require("kamailio");
    require("sipp");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::create_dir_all(dir.join("run")).unwrap();

    // The node's RPC port is chosen now; the node itself starts after the first call.
    let rpc_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sip_port = free_udp_ports(1, &[]);
    let uas_base = free_udp_ports(5, &[sip_port]);

    // sipp UAS: answer, busy (486), nobody (404), away (480), ring (then the caller cancels).
    let mut guards = Vec::new();
    for (i, scenario) in
        ["uas-answer.xml", "uas-486.xml", "uas-404.xml", "uas-480.xml", "uas-ring.xml"].iter().enumerate()
    {
        let port = (uas_base + i as u16).to_string();
        let file = root().join("tests/sipp").join(scenario);
        let mut child = sipp(dir, &["-sf", file.to_str().unwrap(), "-p", &port]).spawn().unwrap();
        wait_udp_bound(uas_base + i as u16, scenario, &mut child);
        guards.push(Guard(child));
    }

    let config = root().join("scripts/kamailio/kamailio.cfg");
    let log_path = dir.join("kamailio.log");
    let kamailio = Command::new("kamailio")
        .args(["-f", config.to_str().unwrap(), "-DD", "-E", "-m", "64", "-M", "8"])
        .args(["-w", dir.to_str().unwrap(), "-Y", dir.join("run").to_str().unwrap()])
        .args(["-P", dir.join("kamailio.pid").to_str().unwrap()])
        .args(["-A", &format!("SIP_PORT={sip_port}")])
        .args(["-A", &format!("CDR_URL=\"http://127.0.0.1:{rpc_port}/ingest/kamailio\"")])
        .args(["-A", &format!("UAS_BASE_PORT={uas_base}")])
        .args(["-A", "SYSTEM_ID=\"kamailio-e2e\""])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut kamailio = GroupGuard(kamailio);
    wait_udp_bound(sip_port, "kamailio", &mut kamailio.0);
    let kamailio_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The first call while the node is down: Kamailio must keep its CDR.
    let mut first = place_call(dir, sip_port, &CALLS[2]);
    assert!(first.wait().unwrap().success(), "sipp busy call failed; kamailio log:\n{}", kamailio_log());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kamailio_log().contains("re-queued") {
        assert!(Instant::now() < deadline, "kamailio did not report a re-queued CDR:\n{}", kamailio_log());
        std::thread::sleep(Duration::from_millis(200));
    }

    let base = tempfile::tempdir().unwrap();
    let rpc_addr = format!("127.0.0.1:{rpc_port}");
    let node = Node::start(&[
        "node",
        "--dev",
        "--base-path",
        base.path().to_str().unwrap(),
        "--rpc-addr",
        &rpc_addr,
        "--no-metrics",
    ]);
    let since_ms = 1_000
        * std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        - 120_000;

    // The other five calls, at once.
    let children: Vec<(usize, Child)> = CALLS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(i, call)| (i, place_call(dir, sip_port, call)))
        .collect();
    for (i, mut child) in children {
        assert!(
            child.wait().unwrap().success(),
            "sipp call {} failed; kamailio log:\n{}",
            CALLS[i].name,
            kamailio_log()
        );
    }

    // Exactly six records, one per call, committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let records: BTreeMap<String, Value> = loop {
        let until = since_ms + 3_600_000;
        let answer = node.call("cdr_query", json!(["alice", "alice", since_ms, until])).unwrap();
        let records: BTreeMap<String, Value> = answer["cdrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["call_id"].as_str().unwrap().split('-').next().unwrap().to_string(), r.clone()))
            .collect();
        let count = answer["cdrs"].as_array().unwrap().len();
        if count >= 6 {
            // A little longer, to catch a second copy of any call.
            std::thread::sleep(Duration::from_secs(3));
            let again = node.call("cdr_query", json!(["alice", "alice", since_ms, until])).unwrap();
            assert_eq!(again["cdrs"].as_array().unwrap().len(), 6, "{again:#}");
            assert_eq!(records.len(), 6, "one record per call: {records:#?}");
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "{count} of 6 calls on the chain; kamailio log:\n{}",
            kamailio_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };

    let billable = |r: &Value| r["answer_ms"].as_u64().map(|a| r["end_ms"].as_u64().unwrap() - a);
    let within_a_second = |got: Option<u64>, want: u64| got.is_some_and(|ms| ms.abs_diff(want) < 1_000);
    let answered2 = &records["answer2s"];
    assert!(within_a_second(billable(answered2), 2_000), "{answered2}");
    let answered4 = &records["answer4s"];
    assert!(within_a_second(billable(answered4), 4_000), "{answered4}");
    for r in [answered2, answered4] {
        assert_eq!(
            (r["disposition"].as_str(), r["sip_status"].as_u64(), r["q850_cause"].as_u64()),
            (Some("answered"), Some(200), Some(16)),
            "{r}"
        );
        // The UAS rings for a second before it answers: setup is not billed.
        assert!(r["answer_ms"].as_u64().unwrap() - r["start_ms"].as_u64().unwrap() >= 900, "{r}");
        assert_eq!(r["system_id"], "kamailio-e2e");
    }
    let expect = |name: &str, disposition: &str, sip: u64, q850: Option<u64>| {
        let r = &records[name];
        assert_eq!(
            (
                r["disposition"].as_str(),
                r["sip_status"].as_u64(),
                r["q850_cause"].as_u64(),
                r["answer_ms"].as_u64()
            ),
            (Some(disposition), Some(sip), q850, None),
            "{name}: {r}"
        );
        r.clone()
    };
    expect("busy", "busy", 486, Some(17));
    expect("nobody", "failed", 404, Some(1));
    // The 480 carries `Reason: Q.850;cause=20`, which wins over RFC 3398's 18.
    expect("away", "no-answer", 480, Some(20));
    // A caller cancel: 487 has no Q.850 cause; the call rang for about a second.
    let cancelled = expect("cancel", "cancelled", 487, None);
    let rang = cancelled["end_ms"].as_u64().unwrap() - cancelled["start_ms"].as_u64().unwrap();
    assert!((500..2_500).contains(&rang), "{cancelled}");
    drop(guards);
}
