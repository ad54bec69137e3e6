//! `cdrchain bench SUITE`: whole-system throughput figures, printed as a table and optionally
//! written as JSON (`--json FILE`). Suites today: `dev` (the single-validator dev chain fed
//! through `POST /ingest/cdrs`). The others of issue #7 (`runtime`, `storage`, `localnet`,
//! `evm-baseline`) are not written yet; asking for them says so.

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
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let figures = match args.suite {
        Suite::Dev => runtime.block_on(dev(&args))?,
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
    let result = load(&url, args).await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

async fn load(url: &str, args: &Args) -> anyhow::Result<Value> {
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (next, acked, url, batch) =
            (next.clone(), acked.clone(), url.to_string(), args.batch.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            let client = RpcClient::new(&url, None)?;
            while Instant::now() < deadline {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                let body: Vec<String> = (first..first + batch).map(cdr_line).collect();
                let (status, answer) = client.post("/ingest/cdrs", body.join("\n").into_bytes()).await?;
                if status != 200 {
                    bail!("ingest answered {status}: {}", String::from_utf8_lossy(&answer));
                }
                acked.fetch_add(batch, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await.context("load task")??;
    }
    let offered_seconds = started.elapsed().as_secs_f64();
    let acked = acked.load(Ordering::Relaxed);
    let client = RpcClient::new(url, None)?;
    let last = format!("alice:{}", acked.saturating_sub(1));
    loop {
        let status = client.call("cdr_status", json!([last])).await?;
        if status["status"] == "committed" {
            break;
        }
        if started.elapsed() > Duration::from_secs(args.duration * 10 + 60) {
            bail!("{last} was not committed in time: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let committed_seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "suite": "dev",
        "connections": args.connections,
        "cdrs_per_request": args.batch,
        "acknowledged_cdrs": acked,
        "acknowledged_cdrs_per_s": (acked as f64 / offered_seconds).round(),
        "committed_cdrs_per_s": (acked as f64 / committed_seconds).round(),
        "seconds_until_all_committed": (committed_seconds * 100.0).round() / 100.0,
    }))
}
