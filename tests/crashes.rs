//! kill -9 under load (issue #26): four validators of the `local` chain on loopback, four
//! switches (one per operator, each posting to its own validator as a switch does), and random
//! SIGKILLs of random validators, never more than one (f) down at once, each restarted on its
//! database. Afterwards every acknowledged CDR is committed exactly once and all validators
//! have the same chain.
//!
//! CI runs `CDRCHAIN_KILLS` kills (default 8); `scripts/kill-loop.sh 100` runs the long one,
//! whose result is in docs/reliability.md. `CDRCHAIN_KILL_SEED` replays a run's choices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cdr, free_port, Net, Node};
use serde_json::{json, Value};

/// Validators of the local chain; one may be down at a time (f = 1).
const VALIDATORS: usize = 4;
/// CDRs per switch post, and the pause between a switch's posts (about 400 CDRs/s each).
const POST_CDRS: u64 = 40;
const POST_PAUSE: Duration = Duration::from_millis(100);
/// How long a switch keeps offering one post to its validator before the test fails.
const POST_PATIENCE: Duration = Duration::from_secs(180);

/// A tiny deterministic generator (xorshift64) for the kill schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// What the switches had acknowledged: id → call id.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Switch `i`: posts NDJSON batches of new CDRs to validator `i` at `url` until `stop`; a post
/// that fails (the validator is down, or answers 503) is offered again, the same CDRs, until
/// acknowledged (ingest is idempotent per validator). Returns the posts it made.
fn switch(i: usize, url: String, stop: Arc<AtomicBool>, acked: Acked) -> u64 {
    let mut n = i as u64 * 10_000_000;
    let mut posts = 0;
    while !stop.load(Ordering::Relaxed) {
        let cdrs: Vec<Value> = (n..n + POST_CDRS).map(cdr).collect();
        let body = cdrs.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
        let first_try = Instant::now();
        let ids: Vec<String> = loop {
            let answer = ureq::post(&format!("{url}/ingest/cdrs"))
                .timeout(Duration::from_secs(10))
                .set("Content-Type", "application/x-ndjson")
                .send_string(&body);
            if let Ok(response) = answer {
                let answer: Value = response.into_json().unwrap();
                break answer["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
            }
            assert!(first_try.elapsed() < POST_PATIENCE, "switch {i}: not acknowledged in time: {answer:?}");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(ids.len(), cdrs.len());
        let mut acked = acked.lock().unwrap();
        for (id, cdr) in ids.into_iter().zip(&cdrs) {
            let call = cdr["call_id"].as_str().unwrap().to_string();
            if let Some(before) = acked.insert(id.clone(), call.clone()) {
                panic!("{id} acknowledged for {call} and before for {before}");
            }
        }
        drop(acked);
        n += POST_CDRS;
        posts += 1;
        std::thread::sleep(POST_PAUSE);
    }
    posts
}

fn height(node: &Node) -> u64 {
    node.call("chain_getHeader", json!([])).ok().and_then(|h| h["number"].as_u64()).unwrap_or(0)
}

#[test]
fn random_kills_under_load_lose_nothing_duplicate_nothing_and_split_nothing() {
    let kills: usize = std::env::var("CDRCHAIN_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(8);
    let seed: u64 =
        std::env::var("CDRCHAIN_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
    eprintln!("kill loop: {kills} kills, CDRCHAIN_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let mut net = Net::new();
    let ports: Vec<u16> = (0..VALIDATORS).map(|_| free_port()).collect();
    net.rpc_ports = Some(ports.clone());
    let mut nodes: Vec<Option<Node>> = (0..VALIDATORS).map(|i| Some(net.start(i))).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let switches: Vec<_> = (0..VALIDATORS)
        .map(|i| {
            let (url, stop, acked) = (format!("http://127.0.0.1:{}", ports[i]), stop.clone(), acked.clone());
            std::thread::spawn(move || switch(i, url, stop, acked))
        })
        .collect();

    let started = Instant::now();
    let mut killed_per_validator = [0usize; VALIDATORS];
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(500 + rng.next(2_500)));
        let victim = rng.next(VALIDATORS as u64) as usize;
        nodes[victim].take().unwrap().kill9();
        killed_per_validator[victim] += 1;
        std::thread::sleep(Duration::from_millis(200 + rng.next(2_000)));
        nodes[victim] = Some(net.start(victim));
    }
    stop.store(true, Ordering::Relaxed);
    let posts: u64 = switches.into_iter().map(|s| s.join().unwrap()).sum();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    eprintln!(
        "kill loop: {kills} kills {killed_per_validator:?} in {:?}; {posts} posts, {} CDRs acknowledged",
        started.elapsed(),
        acked.len()
    );

    // Every acknowledged CDR is committed, at every validator.
    let nodes: Vec<Node> = nodes.into_iter().map(Option::unwrap).collect();
    let last_per_operator: BTreeMap<&str, &String> = acked
        .keys()
        .map(|id| (id.split(':').next().unwrap(), id))
        .fold(BTreeMap::new(), |mut last, (op, id)| {
            let seq = |id: &str| id.rsplit(':').next().unwrap().parse::<u64>().unwrap();
            if last.get(op).is_none_or(|known: &&String| seq(known) < seq(id)) {
                last.insert(op, id);
            }
            last
        });
    for node in &nodes {
        for id in last_per_operator.values() {
            node.wait_committed(id, Duration::from_secs(180));
        }
    }
    // Exactly once: the log holds as many CDRs as were acknowledged (every post was retried
    // until acknowledged, so nothing was stored unacknowledged), and each id is its call.
    let head = nodes[0].call("chain_getHeader", json!([])).unwrap();
    assert_eq!(head["cdr_log_size"].as_u64().unwrap(), acked.len() as u64, "{head}");
    let calls: BTreeSet<&String> = acked.values().collect();
    assert_eq!(calls.len(), acked.len(), "a call was acknowledged twice");
    let ids: Vec<(&str, Value)> = acked.keys().map(|id| ("cdr_get", json!([id]))).collect();
    for (answer, (id, call)) in nodes[1].batch(&ids).iter().zip(&acked) {
        assert_eq!(&answer["call_id"], call, "{id}: {answer}");
    }
    // And all agree: the same block at every height.
    let top = nodes.iter().map(height).min().unwrap();
    let headers: Vec<(&str, Value)> = (1..=top).map(|h| ("chain_getHeader", json!([h]))).collect();
    let first: Vec<Value> = nodes[0].batch(&headers).into_iter().map(|h| h["hash"].clone()).collect();
    for node in &nodes[1..] {
        let hashes: Vec<Value> = node.batch(&headers).into_iter().map(|h| h["hash"].clone()).collect();
        assert_eq!(hashes, first, "the validators disagree");
    }
    for node in &nodes {
        assert_eq!(
            node.call("consensus_evidence", json!([])).unwrap(),
            json!([]),
            "honest validators never equivocate"
        );
    }
}
