//! `cdrchain bench SUITE`: whole-system throughput figures, printed as a table and optionally
//! written as JSON (`--json FILE`). Suites today: `dev` (the single-validator dev chain fed
//! through `POST /ingest/cdrs`) and `localnet` (four validators of the `local` chain started by
//! `cdrchain testnet` on loopback, fed through all four, with a latency probe measuring
//! submit-to-final). The others of issue #7 (`runtime`, `storage`, `evm-baseline`) are not
//! written yet.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::rpc_client::RpcClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// The single-validator dev chain through HTTP ingest.
    Dev,
    /// Four validators (`cdrchain testnet`) on loopback, load spread over all four, plus a probe
    /// measuring submit-to-final latency.
    Localnet,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    pub suite: Suite,
    /// How long to offer load, in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// CDRs per NDJSON request.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Offer this many CDRs per second in total (paced), instead of as many as the chain takes.
    /// Latency figures mean something only below saturation: with unbounded load the ingest
    /// queue grows and the probe waits behind it.
    #[arg(long, value_name = "CDRS_PER_S")]
    pub rate: Option<u64>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let figures = match args.suite {
        Suite::Dev => runtime.block_on(dev(&args))?,
        Suite::Localnet => runtime.block_on(localnet(&args))?,
    };
    println!("{:<28} {:>14}", "figure", "value");
    if let Value::Object(map) = &figures {
        for (name, value) in map {
            println!("{name:<28} {value:>14}");
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One synthetic CDR as NDJSON; `n` makes it unique.
fn cdr_line(n: u64) -> String {
    let start = 1_795_000_000_000u64 + n;
    format!(
        concat!(
            r#"{{"call_id":"bench-{n}@load.invalid","caller":"+4420794{p:05}","callee":"+1415555{q:04}","#,
            r#""caller_operator":"alice","callee_operator":"bob","start":{s},"answer":{a},"end":{e},"#,
            r#""disposition":"answered","q850_cause":16,"sip_status":200}}"#
        ),
        n = n,
        p = n % 100_000,
        q = n % 10_000,
        s = start,
        a = start + 2_000,
        e = start + 62_000,
    )
}

async fn dev(args: &Args) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("locating the cdrchain binary")?;
    let mut child = Command::new(exe)
        .args([
            "node",
            "--dev",
            "--tmp",
            "--rpc-addr",
            "127.0.0.1:0",
            "--no-metrics",
            "--log",
            "warn,cdrchain=info",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the dev node")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("RPC listening on http://").nth(1) {
                let _ = send.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = receive.recv_timeout(Duration::from_secs(60)).context("the dev node did not start")?;
    let url = format!("http://{addr}");
    let result = load("dev", &[url], args).await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

/// A free loopback port base with `count` consecutive free ports.
fn free_port_run(count: u16) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
        let base = probe.local_addr()?.port();
        drop(probe);
        if base > 65_000 - count {
            continue;
        }
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("found no {count} consecutive free loopback ports")
}

async fn localnet(args: &Args) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("locating the cdrchain binary")?;
    let base =
        tempfile::Builder::new().prefix("cdrchain-bench-").tempdir().context("creating a base path")?;
    let (p2p, rpc, metrics) = (free_port_run(4)?, free_port_run(4)?, free_port_run(4)?);
    let mut child = Command::new(exe)
        .arg("testnet")
        .arg("--base-path")
        .arg(base.path())
        .args([
            "--p2p-port",
            &p2p.to_string(),
            "--rpc-port",
            &rpc.to_string(),
            "--metrics-port",
            &metrics.to_string(),
        ])
        .args(["--log", "warn,cdrchain=info"])
        .stdout(Stdio::null())
        .spawn()
        .context("starting cdrchain testnet")?;
    let urls: Vec<String> = (0..4).map(|i| format!("http://127.0.0.1:{}", rpc + i)).collect();
    let result = async {
        // Wait until every validator has its three peers.
        let deadline = Instant::now() + Duration::from_secs(120);
        for url in &urls {
            loop {
                let ready = match RpcClient::new(url, None) {
                    Ok(client) => {
                        client.call("system_health", json!([])).await.ok().and_then(|h| h["peers"].as_u64())
                    }
                    Err(_) => None,
                };
                if ready == Some(3) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the localnet did not come up (validator {url} has no three peers)");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        load("localnet", &urls, args).await
    }
    .await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

/// Offers load to the validators at `urls` (validator i is the i-th dev account) for
/// `--duration`, paced by `--rate` if given, with a latency probe beside it; then waits until the
/// highest sequence acknowledged at each validator is committed.
async fn load(suite: &str, urls: &[String], args: &Args) -> anyhow::Result<Value> {
    const OPERATORS: [&str; 4] = ["alice", "bob", "charlie", "dave"];
    let next = Arc::new(AtomicU64::new(0));
    let acked: Vec<Arc<AtomicU64>> = (0..urls.len()).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let highest: Vec<Arc<AtomicU64>> = (0..urls.len()).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for c in 0..args.connections.max(1) {
        let node = c % urls.len();
        let (next, acked, highest, url, batch) = (
            next.clone(),
            acked[node].clone(),
            highest[node].clone(),
            urls[node].clone(),
            args.batch.max(1) as u64,
        );
        // With --rate, each connection sends one batch every `interval`.
        let interval = args
            .rate
            .filter(|r| *r > 0)
            .map(|rate| Duration::from_secs_f64(batch as f64 * args.connections.max(1) as f64 / rate as f64));
        tasks.push(tokio::spawn(async move {
            let client = RpcClient::new(&url, None)?;
            let mut due = Instant::now();
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(due.into()).await;
                    due += interval;
                }
                let first = next.fetch_add(batch, Ordering::Relaxed);
                let body: Vec<String> = (first..first + batch).map(cdr_line).collect();
                let (status, answer) = client.post("/ingest/cdrs", body.join("\n").into_bytes()).await?;
                if status != 200 {
                    bail!("ingest at {url} answered {status}: {}", String::from_utf8_lossy(&answer));
                }
                acked.fetch_add(batch, Ordering::Relaxed);
                // The highest sequence number acknowledged: "operator:sequence".
                let answer: Value = serde_json::from_slice(&answer).context("ingest answer")?;
                let last =
                    answer["ids"].as_array().and_then(|ids| ids.last()).and_then(Value::as_str).unwrap_or("");
                if let Some(seq) = last.rsplit(':').next().and_then(|s| s.parse::<u64>().ok()) {
                    highest.fetch_max(seq, Ordering::Relaxed);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    // The latency probe: one CDR at a time, round robin over the validators, timed from submit
    // until cdr_status says committed (polled every 5 ms).
    let probe = {
        let urls = urls.to_vec();
        let next = next.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                let client = RpcClient::new(&urls[i % urls.len()], None)?;
                i += 1;
                let n = next.fetch_add(1, Ordering::Relaxed);
                let line: Value = serde_json::from_str(&cdr_line(n))?;
                let sent = Instant::now();
                let ids = client.call("cdr_submit", json!([[line]])).await?;
                let id = ids[0].as_str().context("cdr_submit returned no id")?.to_string();
                loop {
                    let status = client.call("cdr_status", json!([id])).await?;
                    if status["status"] == "committed" {
                        break;
                    }
                    if sent.elapsed() > Duration::from_secs(120) {
                        bail!("probe CDR {id} not committed in 120 s");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok::<_, anyhow::Error>(latencies)
        })
    };
    for task in tasks {
        task.await.context("load task")??;
    }
    let mut latencies = probe.await.context("probe task")??;
    let offered_seconds = started.elapsed().as_secs_f64();
    // Every acknowledged load CDR is committed once the highest sequence acknowledged at each
    // validator is (sequences commit in order).
    let mut total = 0;
    for (node, url) in urls.iter().enumerate() {
        let client = RpcClient::new(url, None)?;
        let count = acked[node].load(Ordering::Relaxed);
        total += count;
        if count == 0 {
            continue;
        }
        loop {
            let last = format!("{}:{}", OPERATORS[node], highest[node].load(Ordering::Relaxed));
            let status = client.call("cdr_status", json!([last])).await?;
            if status["status"] == "committed" {
                break;
            }
            if started.elapsed() > Duration::from_secs(args.duration * 10 + 120) {
                bail!("{last} was not committed in time: {status}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let committed_seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        (latencies[index.min(latencies.len() - 1)] * 10.0).round() / 10.0
    };
    Ok(json!({
        "suite": suite,
        "validators": urls.len(),
        "offered_cdrs_per_s": args.rate.map_or(json!("unbounded"), |r| json!(r)),
        "connections": args.connections,
        "cdrs_per_request": args.batch,
        "acknowledged_cdrs": total,
        "acknowledged_cdrs_per_s": (total as f64 / offered_seconds).round(),
        "committed_cdrs_per_s": (total as f64 / committed_seconds).round(),
        "seconds_until_all_committed": (committed_seconds * 100.0).round() / 100.0,
        "latency_probes": latencies.len(),
        "submit_to_final_ms_p50": pick(0.50),
        "submit_to_final_ms_p99": pick(0.99),
        "submit_to_final_ms_max": pick(1.0),
    }))
}
