//! A delaying TCP relay for the fault tests (test harness only, not product code).
//!
//! This kernel has no `netem` qdisc, so delay, jitter and partitions between validators come
//! from here: each validator reaches each other one only through its own listener of the relay
//! (one per ordered pair), which forwards every chunk of bytes after the link's one-way delay
//! plus a jitter (never reordering a stream: a chunk leaves no earlier than the one before it).
//! A partitioned link goes silent, as a cut cable does: nothing is read from it (so nothing is
//! delivered and TCP's windows fill) and a new connection is held without being forwarded, so
//! the nodes see their handshakes and pings time out rather than a reset. Healing lets the
//! bytes flow again. Packet loss is the kernel's (`tc ... gact drop`, see `wan.rs`).
//!
//! Threads with blocking sockets: every loop ends when the relay is dropped (a stop flag, read
//! between short timeouts) or its sockets close.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a waiting loop looks at the stop flag and the partition.
const POLL: Duration = Duration::from_millis(20);
/// Bytes read at once.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight on one direction of one connection (the delay line's length).
const MAX_CHUNKS_IN_FLIGHT: usize = 4_096;

/// What every link of the relay does now; changed by the test while it runs.
#[derive(Default)]
pub struct Rules {
    one_way_ms: AtomicU64,
    jitter_ms: AtomicU64,
    /// Links `(from, to)` that are cut.
    cut: Mutex<HashSet<(usize, usize)>>,
    stop: AtomicBool,
}

impl Rules {
    pub fn set_delay(&self, one_way_ms: u64, jitter_ms: u64) {
        self.one_way_ms.store(one_way_ms, Ordering::Relaxed);
        self.jitter_ms.store(jitter_ms.min(one_way_ms), Ordering::Relaxed);
    }

    /// Cuts every link between two different groups; links inside a group stay.
    pub fn partition(&self, groups: &[&[usize]]) {
        let mut cut = self.cut.lock().unwrap();
        cut.clear();
        for (g, group) in groups.iter().enumerate() {
            for (h, other) in groups.iter().enumerate() {
                if g != h {
                    for &a in *group {
                        for &b in *other {
                            cut.insert((a, b));
                        }
                    }
                }
            }
        }
    }

    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }

    fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut.lock().unwrap().contains(&(from, to))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// When a chunk read now on a link leaves: after the delay, plus or minus the jitter.
    fn due(&self, seed: &mut u64) -> Instant {
        let one_way = self.one_way_ms.load(Ordering::Relaxed);
        let jitter = self.jitter_ms.load(Ordering::Relaxed);
        // xorshift64: a deterministic spread, per direction of a connection.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let spread = if jitter == 0 { 0 } else { *seed % (2 * jitter + 1) };
        Instant::now() + Duration::from_millis(one_way + spread - jitter)
    }
}

/// The relay: one listener per ordered pair of validators.
pub struct Relay {
    pub rules: Arc<Rules>,
    /// `(from, to)` → the address validator `from` dials to reach `to`.
    pub entries: Vec<((usize, usize), SocketAddr)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// For every ordered pair `(i, j)`, i ≠ j: a listener on `listen_on[i]` (an address only
    /// validator i reaches) forwarding to `targets[j]`.
    pub fn start(listen_on: &[String], targets: &[SocketAddr]) -> Relay {
        let rules = Arc::new(Rules::default());
        let mut entries = Vec::new();
        let mut threads = Vec::new();
        for (i, host) in listen_on.iter().enumerate() {
            for (j, target) in targets.iter().enumerate() {
                if i == j {
                    continue;
                }
                let listener = TcpListener::bind((host.as_str(), 0)).unwrap();
                listener.set_nonblocking(true).unwrap();
                entries.push(((i, j), listener.local_addr().unwrap()));
                let (rules, target) = (rules.clone(), *target);
                threads.push(std::thread::spawn(move || accept_loop(listener, i, j, target, rules)));
            }
        }
        Relay { rules, entries, threads }
    }

    /// The address validator `from` dials to reach validator `to`.
    pub fn entry(&self, from: usize, to: usize) -> SocketAddr {
        self.entries.iter().find(|(pair, _)| *pair == (from, to)).map(|(_, addr)| *addr).unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.rules.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, from: usize, to: usize, target: SocketAddr, rules: Arc<Rules>) {
    let mut connections = Vec::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ ((from as u64) << 8 | to as u64);
    while !rules.stopped() {
        match listener.accept() {
            Ok((stream, _)) => {
                seed = seed.wrapping_add(0x2545_F491_4F6C_DD1D);
                let (rules, seed) = (rules.clone(), seed);
                connections
                    .push(std::thread::spawn(move || connection(stream, from, to, target, rules, seed)));
            }
            Err(_) => std::thread::sleep(POLL),
        }
        connections.retain(|c: &std::thread::JoinHandle<()>| !c.is_finished());
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// One connection from validator `from` to `to`: held while the link is cut, then forwarded
/// both ways, each way with its own link's rules.
fn connection(inbound: TcpStream, from: usize, to: usize, target: SocketAddr, rules: Arc<Rules>, seed: u64) {
    while rules.is_cut(from, to) {
        if rules.stopped() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let Ok(outbound) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else { return };
    for stream in [&inbound, &outbound] {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(POLL));
    }
    let (a, b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
    let rules_back = rules.clone();
    let forth = std::thread::spawn(move || pump(inbound, outbound, (from, to), rules, seed));
    pump(b, a, (to, from), rules_back, seed.rotate_left(17));
    let _ = forth.join();
}

/// Bytes from `source` to `sink` over `link`, through a delay line; both sockets shut when
/// either side ends or the relay stops.
fn pump(source: TcpStream, sink: TcpStream, link: (usize, usize), rules: Arc<Rules>, mut seed: u64) {
    let (send, receive) = sync_channel::<(Instant, Vec<u8>)>(MAX_CHUNKS_IN_FLIGHT);
    let writer_rules = rules.clone();
    let writer = std::thread::spawn(move || deliver(sink, receive, writer_rules));
    let mut source = source;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut last_due = Instant::now();
    while !rules.stopped() {
        if rules.is_cut(link.0, link.1) {
            std::thread::sleep(POLL);
            continue;
        }
        match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                last_due = rules.due(&mut seed).max(last_due);
                if send.send((last_due, buffer[..n].to_vec())).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    drop(send);
    let _ = writer.join();
    let _ = source.shutdown(Shutdown::Both);
}

/// The delay line's far end: each chunk written to `sink` when it is due.
fn deliver(mut sink: TcpStream, chunks: Receiver<(Instant, Vec<u8>)>, rules: Arc<Rules>) {
    loop {
        match chunks.recv_timeout(POLL) {
            Ok((due, bytes)) => {
                let wait = due.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                if sink.write_all(&bytes).is_err() {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) if !rules.stopped() => {}
            Err(_) => break,
        }
    }
    let _ = sink.shutdown(Shutdown::Both);
}
