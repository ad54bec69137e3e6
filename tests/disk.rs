//! The database's disk under faults (issue #26): a disk that fills up (a size-limited tmpfs the
//! test mounts), and table and log files damaged while the node was down. Needs root (mount).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{cdr, Node};
use serde_json::{json, Value};

/// A tmpfs of `size` mounted on a temporary directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs failed: the disk tests need root");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Frees space: the filesystem grows to `size`.
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn start(base: &Path, extra: &[&str]) -> Node {
    Node::start_dev(base, extra)
}

/// Posts batches of 500 new CDRs (numbered from `*next`) until one is refused for another reason
/// than the chain being behind; returns the ids acknowledged and the refusal (status, answer).
fn fill(node: &Node, next: &mut u64, most_batches: usize) -> (Vec<String>, (u16, Value)) {
    let mut acked = Vec::new();
    for _ in 0..most_batches {
        let body: Vec<String> = (*next..*next + 500).map(|n| big_cdr(n).to_string()).collect();
        let (status, answer) = post(node, &body.join("\n"));
        let error = answer["error"].as_str().unwrap_or_default();
        if status == 503 && !error.contains("disk") && !error.contains("No space") {
            // The chain is behind (the queue's limits): the disk is not the reason; wait.
            std::thread::sleep(Duration::from_secs(answer["retry_after_s"].as_u64().unwrap_or(1)));
            continue;
        }
        if status != 200 {
            return (acked, (status, answer));
        }
        *next += 500;
        acked.extend(answer["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    }
    panic!("{} CDRs taken and the disk is still not full", acked.len());
}

/// A CDR with a long call id, so that a small disk fills in a few batches.
fn big_cdr(n: u64) -> Value {
    let mut value = cdr(n);
    value["call_id"] = json!(format!("{}-{}@disk.test.invalid", n, "x".repeat(160)));
    value
}

/// POSTs to /ingest/cdrs; (status, answer), or status 0 when the node does not answer.
fn post(node: &Node, body: &str) -> (u16, Value) {
    let url = format!("{}/ingest/cdrs", node.rpc);
    match ureq::post(&url).set("Content-Type", "application/x-ndjson").send_string(body) {
        Ok(response) => (response.status(), response.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(status, response)) => (status, response.into_json().unwrap_or(Value::Null)),
        Err(e) => (0, json!(e.to_string())),
    }
}

fn log_size(node: &Node) -> u64 {
    node.call("chain_getHeader", json!([])).unwrap()["cdr_log_size"].as_u64().unwrap()
}

#[test]
fn a_filling_disk_refuses_ingest_keeps_what_it_acknowledged_and_takes_more_once_freed() {
    let disk = Tmpfs::new("48m");
    let base = disk.path().join("node");
    let node = start(&base, &["--min-free-disk", "16"]);
    let mut next = 0;
    let (acked, (status, refusal)) = fill(&node, &mut next, 400);
    assert_eq!(status, 503, "{refusal}");
    let error = refusal["error"].as_str().unwrap();
    assert!(
        error.contains("MiB free, less than the 16 MiB kept") && error.contains("--min-free-disk"),
        "{error}"
    );
    assert_eq!(refusal["retry_after_s"], 10, "{refusal}");
    // The node goes on: everything it acknowledged is committed from the reserve.
    node.wait_committed(acked.last().unwrap(), Duration::from_secs(60));
    assert_eq!(log_size(&node), acked.len() as u64);

    // Space freed: it takes CDRs again, without a restart.
    disk.grow("160m");
    let (status, answer) = post(&node, &big_cdr(next).to_string());
    assert_eq!(status, 200, "{answer}");
    let last = answer["ids"][0].as_str().unwrap().to_string();
    node.wait_committed(&last, Duration::from_secs(60));
    // Restarted on the same database: all there.
    assert!(node.terminate().success());
    let node = start(&base, &["--min-free-disk", "16"]);
    assert_eq!(log_size(&node), acked.len() as u64 + 1);
    let status = node.call("cdr_status", json!([acked[0]])).unwrap();
    assert_eq!(status["status"], "committed", "{status}");
}

#[test]
fn a_disk_full_without_a_reserve_stops_the_node_with_the_reason_and_loses_nothing() {
    let disk = Tmpfs::new("40m");
    let base = disk.path().join("node");
    let mut node = start(&base, &["--min-free-disk", "0"]);
    let mut next = 0;
    let (acked, (status, refusal)) = fill(&node, &mut next, 400);
    // RocksDB met the full disk: the submission was refused (or the node had already stopped).
    assert!(status == 503 || status == 0, "{status} {refusal}");
    // The node stops, saying why and what to do.
    let mut lines = node.drain_log();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while node.child.try_wait().unwrap().is_none() {
        // Blocks still commit (empty ones too): one of them meets the full disk.
        assert!(std::time::Instant::now() < deadline, "the node did not stop on a full disk");
        std::thread::sleep(Duration::from_millis(200));
    }
    lines.extend(node.drain_log());
    std::thread::sleep(Duration::from_millis(200));
    lines.extend(node.drain_log());
    let log = lines.join("\n");
    assert!(
        log.contains("the disk holding the database is full: free space, then start the node again"),
        "{log}"
    );

    // Space freed and started again: every acknowledged CDR is there, and the chain goes on.
    disk.grow("160m");
    let node = start(&base, &["--min-free-disk", "16"]);
    for id in [&acked[0], acked.last().unwrap()] {
        node.wait_committed(id, Duration::from_secs(60));
    }
    assert!(log_size(&node) >= acked.len() as u64);
    let (status, answer) = post(&node, &big_cdr(next + 1_000).to_string());
    assert_eq!(status, 200, "{answer}");
}

/// A stopped dev node's database directory, holding committed CDRs in table files (a clean stop
/// flushes) and, when `then_kill` adds more after a restart, in its write-ahead log.
fn database_with_cdrs(base: &Path, then_kill: bool) -> PathBuf {
    let node = start(base, &[]);
    let body: Vec<String> = (0..2_000).map(|n| cdr(n).to_string()).collect();
    let (status, answer) = post(&node, &body.join("\n"));
    assert_eq!(status, 200, "{answer}");
    node.wait_committed("alice:1999", Duration::from_secs(60));
    assert!(node.terminate().success());
    if then_kill {
        let node = start(base, &[]);
        let body: Vec<String> = (2_000..4_000).map(|n| cdr(n).to_string()).collect();
        let (status, answer) = post(&node, &body.join("\n"));
        assert_eq!(status, 200, "{answer}");
        node.wait_committed("alice:3999", Duration::from_secs(60));
        node.kill9();
    }
    base.join("chains/dev/db")
}

/// The database's files whose name ends with `suffix`, largest first.
fn files(db: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    found
}

/// Starts a node on `base` and expects it to refuse: returns what it said.
fn refused_start(base: &Path) -> String {
    let output = common::run(&[
        "node",
        "--dev",
        "--base-path",
        base.to_str().unwrap(),
        "--rpc-addr",
        "127.0.0.1:0",
        "--no-metrics",
    ]);
    assert!(!output.status.success(), "the node started on a damaged database");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn damaged_table_and_log_files_stop_the_start_naming_the_file_and_the_repair() {
    // A table file cut short.
    let dir = tempfile::tempdir().unwrap();
    let db = database_with_cdrs(dir.path(), false);
    let sst = files(&db, ".sst").remove(0);
    let bytes = std::fs::read(&sst).unwrap();
    std::fs::write(&sst, &bytes[..bytes.len() / 2]).unwrap();
    let said = refused_start(dir.path());
    let name = sst.file_name().unwrap().to_string_lossy().to_string();
    assert!(said.contains("is damaged") && said.contains(&name) && said.contains("purge-chain"), "{said}");

    // A table file whose end is overwritten (same size).
    let dir = tempfile::tempdir().unwrap();
    let db = database_with_cdrs(dir.path(), false);
    let sst = files(&db, ".sst").remove(0);
    let mut bytes = std::fs::read(&sst).unwrap();
    let end = bytes.len();
    bytes[end - 64..].fill(0xA5);
    std::fs::write(&sst, &bytes).unwrap();
    let said = refused_start(dir.path());
    let name = sst.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        said.contains("is damaged")
            && said.contains(&name)
            && said.contains("syncs the chain from its peers"),
        "{said}"
    );

    // The write-ahead log damaged before its end (acknowledged writes, not a torn tail).
    let dir = tempfile::tempdir().unwrap();
    let db = database_with_cdrs(dir.path(), true);
    let log = files(&db, ".log").remove(0);
    let mut bytes = std::fs::read(&log).unwrap();
    assert!(bytes.len() > 64 * 1024, "{} bytes of log", bytes.len());
    let middle = bytes.len() / 3;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0xFF;
    }
    std::fs::write(&log, &bytes).unwrap();
    let said = refused_start(dir.path());
    assert!(
        said.contains("is damaged") && said.contains("Corruption") && said.contains("purge-chain"),
        "{said}"
    );
}
