//! Starting what the `dev` and `localnet` suites load: this binary's `node --dev`, and its
//! `testnet` of four validators, each on free loopback ports under a temporary base path, and
//! stopped with SIGTERM when the suite ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::load::{peer_count, run_suite, Target};
use super::procfs::{children_of, Procs};
use super::Args;

/// The dev suite's default `--max-queue`, in blocks of its spec (see `Args::max_queue`).
const DEV_QUEUE_BLOCKS: u64 = 2;
/// The localnet suite's default `--max-queue`, in blocks of its spec.
const LOCALNET_QUEUE_BLOCKS: u64 = 1;
/// Validators of `cdrchain testnet` with the built-in local chain.
const LOCALNET_VALIDATORS: u16 = 4;
/// How long the dev node may take to log its RPC address.
const DEV_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the localnet may take until every validator has all its peers.
const LOCALNET_START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a starting validator is asked for its peers.
const PEER_POLL: Duration = Duration::from_millis(200);
/// Probe ports tried before giving up on finding consecutive free ones.
const MAX_PORT_PROBES: usize = 200;
/// The highest port a run of free ports may end at.
const HIGHEST_PORT: u16 = 65_000;

/// The log filter of the nodes a benchmark starts: `CDRCHAIN_BENCH_LOG` if set (to look into a
/// run, e.g. `warn,cdrchain::consensus=debug`; the dev node's log is then shown on stderr),
/// else warnings and cdrchain's info lines.
fn node_log_filter() -> String {
    std::env::var("CDRCHAIN_BENCH_LOG").unwrap_or_else(|_| "warn,cdrchain=info".to_string())
}

/// The `dev` suite: one `cdrchain node --dev` through HTTP ingest.
pub(super) async fn dev(args: &Args) -> anyhow::Result<Value> {
    let args = &args.with_block_queue(&cdrchain_chain_spec::ChainSpec::dev(), DEV_QUEUE_BLOCKS);
    let exe = std::env::current_exe().context("locating the cdrchain binary")?;
    let base =
        tempfile::Builder::new().prefix("cdrchain-bench-dev-").tempdir().context("creating a base path")?;
    let mut child = Command::new(exe)
        .args(["node", "--dev", "--base-path"])
        .arg(base.path())
        .args(["--rpc-addr", "127.0.0.1:0", "--no-metrics", "--log", &node_log_filter()])
        .args(args.max_queue.into_iter().flat_map(|q| ["--max-queue".to_string(), q.to_string()]))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the dev node")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (send, receive) = std::sync::mpsc::channel();
    // The node's log is read for its RPC address; shown too when CDRCHAIN_BENCH_LOG asks for it.
    let show = std::env::var_os("CDRCHAIN_BENCH_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if show {
                eprintln!("{line}");
            }
            if let Some(rest) = line.split("RPC listening on http://").nth(1) {
                let _ = send.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = receive.recv_timeout(DEV_START_TIMEOUT).context("the dev node did not start")?;
    let url = Target::local(format!("http://{addr}"));
    let procs = Procs { pids: vec![("dev".to_string(), child.id())], base: base.path().to_path_buf() };
    let result = run_suite("dev", &[url], args, &procs).await;
    terminate(&mut child);
    result
}

/// The `localnet` suite: `cdrchain testnet` (four validators) on loopback, load spread over all
/// four.
pub(super) async fn localnet(args: &Args) -> anyhow::Result<Value> {
    if !args.attach.is_empty() {
        return attached(args).await;
    }
    let args = &args.with_block_queue(&cdrchain_chain_spec::ChainSpec::local(), LOCALNET_QUEUE_BLOCKS);
    let exe = std::env::current_exe().context("locating the cdrchain binary")?;
    let base =
        tempfile::Builder::new().prefix("cdrchain-bench-").tempdir().context("creating a base path")?;
    let (p2p, rpc, metrics) = (
        free_port_run(LOCALNET_VALIDATORS)?,
        free_port_run(LOCALNET_VALIDATORS)?,
        free_port_run(LOCALNET_VALIDATORS)?,
    );
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
        .args(["--log", &node_log_filter()])
        .args(args.max_queue.into_iter().flat_map(|q| ["--max-queue".to_string(), q.to_string()]))
        .envs(args.flood.then_some(("CDRCHAIN_FAILPOINT", format!("flood:{FLOODING_MEMBER}"))))
        .stdout(Stdio::null())
        .spawn()
        .context("starting cdrchain testnet")?;
    let urls: Vec<Target> =
        (0..LOCALNET_VALIDATORS).map(|i| Target::local(format!("http://127.0.0.1:{}", rpc + i))).collect();
    let result = async {
        wait_for_peers(&urls).await?;
        let procs = Procs { pids: children_of(child.id()), base: base.path().join("alice") };
        if procs.pids.len() != usize::from(LOCALNET_VALIDATORS) {
            bail!(
                "found {} validator processes under cdrchain testnet, not {LOCALNET_VALIDATORS}",
                procs.pids.len()
            );
        }
        // With --flood the flooding member (the last validator) gets no load: what commits is
        // the honest operators' (every validator's memory is still sampled).
        let honest = if args.flood { &urls[..urls.len() - 1] } else { &urls[..] };
        let mut figures = run_suite("localnet", honest, args, &procs).await?;
        if args.flood {
            figures["flooding_member"] = FLOODING_MEMBER.into();
        }
        Ok(figures)
    }
    .await;
    terminate(&mut child);
    result
}

/// `bench localnet --attach`: the running validators given, loaded as the localnet's; their own
/// `--max-queue` and `--max-queue-wait` apply.
async fn attached(args: &Args) -> anyhow::Result<Value> {
    let urls: Vec<Target> =
        args.attach.iter().map(|url| Target { url: url.clone(), token: args.rpc_token.clone() }).collect();
    if urls.len() > LOCALNET_VALIDATORS.into() {
        bail!("--attach: at most {LOCALNET_VALIDATORS} validators (the local chain's dev accounts)");
    }
    wait_for_peers(&urls).await?;
    let empty = tempfile::tempdir().context("a temporary directory")?;
    let procs = Procs { pids: Vec::new(), base: empty.path().to_path_buf() };
    run_suite("localnet", &urls, args, &procs).await
}

/// The localnet member that floods with `bench localnet --flood`: the fourth validator.
const FLOODING_MEMBER: &str = "dave";

/// Waits until every validator at `urls` has all the others as peers.
async fn wait_for_peers(urls: &[Target]) -> anyhow::Result<()> {
    let deadline = Instant::now() + LOCALNET_START_TIMEOUT;
    let peers = urls.len() as u64 - 1;
    for url in urls {
        loop {
            let ready = match url.client() {
                Ok(client) => peer_count(&client).await,
                Err(_) => None,
            };
            if ready == Some(peers) {
                break;
            }
            if Instant::now() > deadline {
                bail!("the localnet did not come up (validator {} has no {peers} peers)", url.url);
            }
            tokio::time::sleep(PEER_POLL).await;
        }
    }
    Ok(())
}

/// SIGTERM (a clean stop), then waits for the process to exit.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A free loopback port base with `count` consecutive free ports.
pub(super) fn free_port_run(count: u16) -> anyhow::Result<u16> {
    for _ in 0..MAX_PORT_PROBES {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
        let base = probe.local_addr()?.port();
        drop(probe);
        if base > HIGHEST_PORT - count {
            continue;
        }
        if (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("found no {count} consecutive free loopback ports")
}
