//! Helpers shared by the end-to-end tests: run the real `cdrchain` binary as a user would.
//!
//! These files are the integration tests of the `cdrchain-cli` package (declared in
//! `cli/Cargo.toml`), so cargo builds the binary before running them and tells us its path.

#![allow(dead_code, clippy::panic)] // Shared by several test binaries; a failure to start must fail the test.

pub mod anvil;
pub mod wan;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `cdrchain` binary that cargo built for these tests.
pub fn cdrchain_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cdrchain"))
}

/// Runs `cdrchain args…` to completion.
pub fn run(args: &[&str]) -> Output {
    match Command::new(cdrchain_binary()).args(args).output() {
        Ok(output) => output,
        Err(error) => panic!("could not start cdrchain {args:?}: {error}"),
    }
}

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A `cdrchain node` process on loopback, stopped (SIGKILL) when dropped.
pub struct Node {
    pub child: Child,
    pub rpc: String,
    /// Every line the node logged so far is sent here.
    pub log: mpsc::Receiver<String>,
    /// Lines logged before the RPC came up (not sent to `log`).
    pub early: Vec<String>,
    /// The bearer token of a node reached beyond loopback (`--rpc-token`), sent on every call.
    pub token: Option<String>,
}

impl Node {
    /// Starts `cdrchain node --dev --base-path BASE` (plus `extra`) on a free loopback port and
    /// waits until its RPC answers.
    pub fn start_dev(base: &std::path::Path, extra: &[&str]) -> Node {
        let mut args = vec![
            "node",
            "--dev",
            "--base-path",
            base.to_str().unwrap_or_default(),
            "--rpc-addr",
            "127.0.0.1:0",
            "--no-metrics",
        ];
        args.extend_from_slice(extra);
        Node::start(&args)
    }

    /// Starts alice's validator of the chain spec at `spec` (a temporary database, RPC on a
    /// free loopback port, no metrics), plus `extra`, and waits until its RPC answers.
    pub fn start_spec(spec: &std::path::Path, extra: &[&str]) -> Node {
        let mut args = vec![
            "node",
            "--chain",
            spec.to_str().unwrap_or_default(),
            "--dev-key",
            "alice",
            "--tmp",
            "--rpc-addr",
            "127.0.0.1:0",
            "--no-metrics",
        ];
        args.extend_from_slice(extra);
        Node::start(&args)
    }

    pub fn start(args: &[&str]) -> Node {
        Node::start_env(args, &[])
    }

    /// Like [`Node::start`], with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut command = Command::new(cdrchain_binary());
        command.args(args).envs(env.iter().copied());
        Node::spawn(command, args)
    }

    /// Like [`Node::start`], inside the network namespace `netns`.
    pub fn start_in(netns: &Netns, args: &[&str]) -> Node {
        Node::start_in_named(&netns.name, args, &[])
    }

    /// Like [`Node::start_env`], inside the network namespace called `netns`.
    pub fn start_in_named(netns: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns]).arg(cdrchain_binary()).args(args).envs(env.iter().copied());
        Node::spawn(command, args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> Node {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start cdrchain {args:?}: {e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let (send, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let rpc = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some(rest) = line.split("RPC listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        break format!("http://{addr}");
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("the node did not start its RPC; it logged:\n{}", seen.join("\n"));
                }
            }
        };
        Node { child, rpc, log, early: seen, token: None }
    }

    /// One JSON-RPC call; panics on transport errors, returns `Err(error object)` on RPC errors.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        rpc_call(&self.rpc, self.token.as_deref(), method, &params)
    }

    /// Many calls in JSON-RPC batches of the server's largest size; results in order.
    pub fn batch(&self, calls: &[(&str, Value)]) -> Vec<Value> {
        let mut out = Vec::with_capacity(calls.len());
        for chunk in calls.chunks(cdrchain_node::rpc::MAX_BATCH_CALLS as usize) {
            let requests: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, (method, params))| json!({"jsonrpc": "2.0", "id": i, "method": method, "params": params}))
                .collect();
            let mut answers: Vec<Value> = self
                .authorized(ureq::post(&self.rpc))
                .send_json(Value::Array(requests))
                .unwrap_or_else(|e| panic!("batch: {e}"))
                .into_json()
                .unwrap_or_else(|e| panic!("batch: {e}"));
            answers.sort_by_key(|a| a["id"].as_u64().unwrap_or(u64::MAX));
            assert_eq!(answers.len(), chunk.len());
            out.extend(
                answers.into_iter().map(|a| a.get("result").cloned().unwrap_or_else(|| a["error"].clone())),
            );
        }
        out
    }

    /// POSTs `body` to `path`; returns the status and the JSON answer.
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.rpc);
        match self.authorized(ureq::post(&url)).set("Content-Type", "application/x-ndjson").send_string(body)
        {
            Ok(response) => (response.status(), response.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(status, response)) => {
                (status, response.into_json().unwrap_or(Value::Null))
            }
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    /// `request` with this node's bearer token, if it has one.
    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// Waits until `cdr_status(id)` is committed; panics after `timeout`.
    pub fn wait_committed(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.call("cdr_status", json!([id])).unwrap_or_else(|e| panic!("cdr_status: {e}"));
            if status["status"] == "committed" {
                return status;
            }
            assert!(Instant::now() < deadline, "{id} not committed in {timeout:?}: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for the process; returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the node did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL), as a power cut would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Log lines received since the last call (the first call includes the early ones).
    pub fn drain_log(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.early);
        lines.extend(self.log.try_iter());
        lines
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A canonical CDR JSON with a unique call id from `n`.
pub fn cdr(n: u64) -> Value {
    let start = 1_795_000_000_000u64 + n * 1_000;
    let answered = n % 4 != 3;
    let mut value = json!({
        "call_id": format!("e2e-{n}@test.invalid"),
        "caller": format!("+4420794{:05}", n % 100_000),
        "callee": format!("sip:user{}@partner.example", n % 977),
        "caller_operator": "alice",
        "callee_operator": "bob",
        "system_id": "sbc-test",
        "start": start,
        "end": start + 5_000 + (n % 300) * 1_000,
        "disposition": if answered { "answered" } else { "busy" },
        "q850_cause": if answered { 16 } else { 17 },
        "sip_status": if answered { 200 } else { 486 },
    });
    if answered {
        value["answer"] = json!(start + 2_000);
        value["mos"] = json!(4.1);
    }
    value
}

use cdrchain_chain_spec::{DevAccount, DEV_ACCOUNT_NAMES};
use std::net::TcpListener;

/// The lowest port a test picks: above the well-known and registered services we might meet.
const TEST_PORTS_FROM: u16 = 10_000;

/// A free loopback port below the kernel's ephemeral range, so that no outgoing connection of a
/// test running alongside takes it between this pick and the node's bind (ports from `bind(:0)`
/// are ephemeral ones, shared with every client socket, and a CI run lost a validator that way).
/// Falls back to an ephemeral port where the range leaves no room below it.
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_from.saturating_sub(TEST_PORTS_FROM);
    if span < 1_000 {
        return TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    }
    loop {
        let mut bytes = [0u8; 2];
        getrandom::getrandom(&mut bytes).unwrap();
        let port = TEST_PORTS_FROM + u16::from_le_bytes(bytes) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The four validators' fixed settings: name, base path, p2p port.
/// Four validators of the `local` chain (dev keys alice, bob, charlie, dave), each a
/// `cdrchain node` on loopback, started one by one.
pub struct Net {
    _dir: tempfile::TempDir,
    pub base: PathBuf,
    pub ports: Vec<u16>,
    /// What the nodes get as `--chain`: `local`, or a spec file of the same four dev accounts.
    pub chain: String,
    /// How bootnode addresses name the host: `/ip4/127.0.0.1`, or e.g. `/dns4/localhost`.
    pub host: String,
    /// Fixed RPC ports (a restarted validator keeps its URL); `None`: a free one at each start.
    pub rpc_ports: Option<Vec<u16>>,
}

impl Net {
    pub fn new() -> Net {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        Net {
            _dir: dir,
            base,
            ports: (0..4).map(|_| free_port()).collect(),
            chain: "local".to_string(),
            host: "/ip4/127.0.0.1".to_string(),
            rpc_ports: None,
        }
    }

    pub fn bootnodes(&self, except: usize) -> String {
        (0..4)
            .filter(|j| *j != except)
            .map(|j| {
                format!(
                    "{}/tcp/{}/p2p/{}",
                    self.host,
                    self.ports[j],
                    DevAccount::derive(DEV_ACCOUNT_NAMES[j]).peer_id()
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts validator `i` (alice, bob, charlie, dave) with `env` set.
    pub fn start_with(&self, i: usize, env: &[(&str, &str)]) -> Node {
        self.start_full(i, env, &[])
    }

    /// Starts validator `i` with `env` set and `extra` arguments.
    pub fn start_full(&self, i: usize, env: &[(&str, &str)], extra: &[&str]) -> Node {
        let name = DEV_ACCOUNT_NAMES[i];
        let base = self.base.join(name);
        let listen = format!("/ip4/127.0.0.1/tcp/{}", self.ports[i]);
        let bootnodes = self.bootnodes(i);
        let rpc = format!("127.0.0.1:{}", self.rpc_ports.as_ref().map_or(0, |ports| ports[i]));
        let args = [
            "node",
            "--chain",
            &self.chain,
            "--dev-key",
            name,
            "--base-path",
            base.to_str().unwrap(),
            "--listen",
            &listen,
            "--bootnodes",
            &bootnodes,
            "--rpc-addr",
            &rpc,
            "--no-metrics",
        ];
        let args: Vec<&str> = args.iter().chain(extra).copied().collect();
        Node::start_env(&args, env)
    }

    pub fn start(&self, i: usize) -> Node {
        self.start_with(i, &[])
    }
}

/// `count` consecutive free loopback ports.
pub fn free_port_run(count: u16) -> u16 {
    loop {
        let base = free_port();
        if base < u16::MAX - count && (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

/// A network namespace joined to this one by a veth pair, so that a node inside listens on an
/// address that is not loopback (`inside`) and this process reaches it. Deleted when dropped.
/// Needs root (CAP_NET_ADMIN), as the suite runs.
pub struct Netns {
    pub name: String,
    /// The namespace's end of the pair, e.g. `10.213.7.2`.
    pub inside: String,
    host_link: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(status.success(), "ip {args:?} failed ({status}): the suite needs root for network namespaces");
}

impl Netns {
    pub fn new() -> Netns {
        // Unique per test process (nextest runs each test in its own): a /30 from the pid.
        let pid = std::process::id();
        let (third, fourth) = (pid % 250, (pid / 250 % 60) * 4);
        let name = format!("cdrchain-{pid}");
        let host_link = format!("cvh{pid}");
        let ns_link = format!("cvn{pid}");
        let (outside, inside) =
            (format!("10.213.{third}.{}", fourth + 1), format!("10.213.{third}.{}", fourth + 2));
        ip(&["netns", "add", &name]);
        let netns = Netns { name: name.clone(), inside: inside.clone(), host_link: host_link.clone() };
        ip(&["link", "add", &host_link, "type", "veth", "peer", "name", &ns_link]);
        ip(&["link", "set", &ns_link, "netns", &name]);
        ip(&["addr", "add", &format!("{outside}/30"), "dev", &host_link]);
        ip(&["link", "set", &host_link, "up"]);
        ip(&["netns", "exec", &name, "ip", "addr", "add", &format!("{inside}/30"), "dev", &ns_link]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &ns_link, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_link]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// One JSON-RPC call to `url`, with `Authorization: Bearer <token>` when given; panics on
/// transport errors, returns `Err(error object)` on RPC errors.
pub fn rpc_call(url: &str, token: Option<&str>, method: &str, params: &Value) -> Result<Value, Value> {
    let mut request = ureq::post(url);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let answer: Value = request
        .send_json(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .into_json()
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    match answer.get("error") {
        Some(error) => Err(error.clone()),
        None => Ok(answer["result"].clone()),
    }
}

/// Makes OPERATOR's keys in `dir` (`cdrchain key generate`: ed25519 `OPERATOR.key`, secp256k1
/// `OPERATOR-evm.key`) and its join request for `chain` (`cdrchain authority join-request`);
/// answers the ed25519 key file and the request file.
pub fn join_request(dir: &std::path::Path, operator: &str, chain: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{operator}.key"));
    let evm = dir.join(format!("{operator}-evm.key"));
    for (scheme, path) in [("ed25519", &key), ("secp256k1", &evm)] {
        let out = run(&["key", "generate", "--scheme", scheme, "--out", path.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
    }
    let request = dir.join(format!("{operator}-join.json"));
    let out = run(&[
        "authority",
        "join-request",
        "--operator",
        operator,
        "--key",
        key.to_str().unwrap(),
        "--evm-key",
        evm.to_str().unwrap(),
        "--chain",
        chain,
        "--out",
        request.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    (key, request)
}

/// `method [id]` on `node`, asked every 200 ms until `done` holds of the answer (panics after
/// `timeout`).
pub fn await_value(
    node: &Node,
    method: &str,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let value = node.call(method, json!([id])).unwrap_or_else(|e| panic!("{method} {id}: {e}"));
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{method} {id} on {}: {value}", node.rpc);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the portal's browser script `script` (in `tests/portal/`, Debian's Chromium through
/// playwright-core, both installed by `scripts/install-deps.sh`) with `config`; answers its
/// report once it says every step held.
pub fn browser_script(script: &str, config: &Value) -> Value {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/portal");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && scripts.join("node_modules/playwright-core").exists(),
        "Chromium or playwright-core is missing: run scripts/install-deps.sh"
    );
    let output = Command::new("node")
        .arg(script)
        .arg(config.to_string())
        .current_dir(&scripts)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let printed = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(printed.trim().lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("no report from {script} ({e}): {printed}\n{errors}"));
    assert_eq!(report["ok"], true, "{script}: {report:#}\n{errors}");
    report
}
