//! `cdrchain bench SUITE`: throughput figures, printed as a table and optionally written as
//! JSON (`--json FILE`). Suites:
//! - `runtime`: `apply_block` on one core, blocks of 10 batches of 1,000 CDRs, in memory;
//! - `storage`: the ceiling: the same blocks written with `commit_block` (the node's column
//!   layout, one synced WriteBatch per block), no consensus, network or ingest;
//! - `dev`: the single-validator dev chain fed through `POST /ingest/cdrs`;
//! - `localnet`: four validators (`cdrchain testnet`) on loopback, fed through all four, with a
//!   latency probe measuring submit-to-final.
//! - `evm-baseline`: the original proof of concept's approach, one contract transaction per call
//!   storing its fields as strings (`contracts/src/CdrBaseline.sol`), against anvil with RSK's
//!   regtest chain id, from several accounts with their own nonces, until every one is mined.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::rpc_client::{is_busy, RpcClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// `apply_block` CDRs/s on one core (in memory; no IO).
    Runtime,
    /// The storage ceiling: `commit_block` of the same blocks, synced, no consensus or network.
    Storage,
    /// The single-validator dev chain through HTTP ingest.
    Dev,
    /// Four validators (`cdrchain testnet`) on loopback, load spread over all four, plus a probe
    /// measuring submit-to-final latency.
    Localnet,
    /// One contract transaction per call (the proof of concept's design) on anvil, chain id 33.
    EvmBaseline,
    /// Every suite in turn on this machine, and the ratios between them.
    All,
}

#[derive(Debug, Clone, clap::Args)]
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
    /// Latency figures mean something only below saturation: with unbounded load each node's
    /// queue stays full (--max-queue) and the probe waits for room in it and then behind it.
    #[arg(long, value_name = "CDRS_PER_S")]
    pub rate: Option<u64>,
    /// dev and localnet: each node's `--max-queue`, the most CDRs it acknowledges ahead of the
    /// chain before it answers 503 (the load generator then retries after 50 ms). Bounded, so
    /// that unbounded load finds the ceiling without a queue (and latency) that grows for the
    /// whole run. Default: dev two blocks of its spec (400,000): a queued CDR waits for the next
    /// proposal (up to one 500 ms interval) and then for its block's commit, so at the ceiling the
    /// queue holds about one block filling and one committing, and one block's worth refused
    /// submissions the chain could take. Localnet one block (50,000): two raised its peak memory
    /// near 1 GiB per node without more throughput.
    #[arg(long, value_name = "CDRS")]
    pub max_queue: Option<u64>,
    /// dev and localnet: find the committed ceiling R with unbounded load first, then offer
    /// 25%, 50% and 100% of R (paced), each for --duration, with its latency, CPU and memory.
    #[arg(long)]
    pub sweep: bool,
    /// evm-baseline: the anvil binary (default: contracts/node_modules/.bin/anvil under the
    /// current directory, else `anvil` on PATH).
    #[arg(long, value_name = "FILE")]
    pub anvil: Option<PathBuf>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl Args {
    /// These arguments with `--max-queue` defaulted to `blocks` blocks of `spec`.
    fn with_block_queue(&self, spec: &cdrchain_chain_spec::ChainSpec, blocks: u64) -> Args {
        Args {
            max_queue: Some(
                self.max_queue.unwrap_or(blocks.saturating_mul(u64::from(spec.params.max_block_cdrs))),
            ),
            ..self.clone()
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let figures = match args.suite {
        Suite::Runtime => runtime_suite(&args)?,
        Suite::Storage => storage_suite(&args)?,
        Suite::Dev => runtime.block_on(dev(&args))?,
        Suite::Localnet => runtime.block_on(localnet(&args))?,
        Suite::EvmBaseline => runtime.block_on(evm_baseline(&args))?,
        Suite::All => {
            let mut all = serde_json::Map::new();
            for (name, figures) in [
                ("runtime", runtime_suite(&args)?),
                ("storage", storage_suite(&args)?),
                ("dev", runtime.block_on(dev(&args))?),
                ("localnet", runtime.block_on(localnet(&args))?),
                ("evm-baseline", runtime.block_on(evm_baseline(&args))?),
            ] {
                eprintln!("{name}: {figures}");
                all.insert(name.to_string(), figures);
            }
            let rate = |suite: &str, figure: &str| {
                all.get(suite).and_then(|f| f[figure].as_f64()).unwrap_or(f64::NAN)
            };
            let localnet = rate("localnet", "committed_cdrs_per_s");
            let ratio = |x: f64| (x * 100.0).round() / 100.0;
            all.insert(
                "ratios".into(),
                json!({
                    "localnet_over_storage": ratio(localnet / rate("storage", "committed_cdrs_per_s")),
                    "localnet_over_evm_baseline": ratio(localnet / rate("evm-baseline", "committed_cdrs_per_s")),
                    "dev_over_storage": ratio(rate("dev", "committed_cdrs_per_s") / rate("storage", "committed_cdrs_per_s")),
                }),
            );
            Value::Object(all)
        }
    };
    println!("{:<28} {:>14}", "figure", "value");
    if let Value::Object(map) = &figures {
        for (name, value) in map.iter().filter(|(name, _)| name.as_str() != "steps") {
            println!("{name:<28} {value:>14}");
        }
    }
    if let Some(steps) = figures["steps"].as_array() {
        println!(
            "\n{:>12} {:>12} {:>10} {:>10} {:>24} {:>20}",
            "offered/s", "committed/s", "p50 ms", "p99 ms", "CPU % per node", "RSS MiB per node"
        );
        for step in steps {
            println!(
                "{:>12} {:>12} {:>10} {:>10} {:>24} {:>20}",
                step["offered_cdrs_per_s"].to_string().trim_matches('"'),
                step["committed_cdrs_per_s"].to_string(),
                step["latency_ms_p50"].to_string(),
                step["latency_ms_p99"].to_string(),
                step["cpu_percent_per_node"].to_string(),
                step["rss_mib_per_node"].to_string()
            );
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

const BENCH_RECORDERS: [&str; 10] =
    ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"];
const CDRS_PER_BATCH: u64 = 1_000;

/// Blocks of 10 batches of 1,000 sample CDRs, built (and applied) on a sample chain, with the
/// changes each makes; enough for `--duration` seconds is not known in advance, so `count`.
fn sample_blocks(
    count: usize,
) -> anyhow::Result<(
    cdrchain_runtime::sample::SampleChain,
    Vec<(cdrchain_runtime::block::Block, cdrchain_runtime::apply::StateChanges)>,
)> {
    use cdrchain_runtime::sample::SampleChain;
    let mut chain = SampleChain::new(&BENCH_RECORDERS);
    let start = chain.clone();
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let first = i as u64 * CDRS_PER_BATCH;
        let txs = BENCH_RECORDERS.iter().map(|r| chain.batch(r, first, CDRS_PER_BATCH)).collect();
        let (block, changes, refused) = chain
            .build(txs, 1_000 * (i as u64 + 1))
            .map_err(|e| anyhow::anyhow!("building a sample block: {e}"))?;
        if !refused.is_empty() {
            bail!("the sample block refused transactions: {refused:?}");
        }
        chain.import(block.clone()).map_err(|e| anyhow::anyhow!("applying a sample block: {e}"))?;
        chain.blocks.clear();
        blocks.push((block, changes));
    }
    Ok((start, blocks))
}

/// How many 10,000-CDR blocks to prepare for `--duration` seconds (a rough upper bound).
fn blocks_for(args: &Args) -> usize {
    (args.duration as usize * 4).clamp(5, 200)
}

fn runtime_suite(args: &Args) -> anyhow::Result<Value> {
    let (start, blocks) = sample_blocks(blocks_for(args))?;
    let mut state = start.state.clone();
    let mut parent = start.parent.clone();
    let began = Instant::now();
    let deadline = began + Duration::from_secs(args.duration);
    let mut cdrs = 0usize;
    let mut applied = 0usize;
    for (block, _) in &blocks {
        let changes = cdrchain_runtime::apply::apply_block(&start.ctx, &state, &parent, block)
            .map_err(|e| anyhow::anyhow!("apply_block: {e}"))?;
        state.apply(&changes);
        parent = cdrchain_runtime::apply::ParentRef::of(&block.header);
        cdrs += block.cdr_count();
        applied += 1;
        if Instant::now() > deadline {
            break;
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    Ok(json!({
        "suite": "runtime",
        "blocks": applied,
        "cdrs_per_block": BENCH_RECORDERS.len() as u64 * CDRS_PER_BATCH,
        "applied_cdrs": cdrs,
        "apply_cdrs_per_s": (cdrs as f64 / seconds).round(),
        "ms_per_block": (seconds * 1000.0 / applied.max(1) as f64 * 10.0).round() / 10.0,
    }))
}

fn storage_suite(args: &Args) -> anyhow::Result<Value> {
    let (start, blocks) = sample_blocks(blocks_for(args))?;
    let dir = tempfile::Builder::new()
        .prefix("cdrchain-bench-storage-")
        .tempdir()
        .context("creating a temp dir")?;
    let storage = cdrchain_storage::Storage::open(dir.path(), start.genesis_hash(), &start.state)
        .context("opening the benchmark database")?;
    let began = Instant::now();
    let deadline = began + Duration::from_secs(args.duration);
    let mut cdrs = 0usize;
    let mut committed = 0usize;
    let mut per_block = Vec::new();
    for (block, changes) in &blocks {
        let certificate = cdrchain_runtime::block::CommitCertificate {
            height: block.header.number,
            round: cdrchain_runtime::ids::Round(0),
            block_hash: block.hash(),
            signatures: cdrchain_runtime::codec::BoundedVec::default(),
        };
        let one = Instant::now();
        storage.commit_block(block, changes, &certificate, None).context("commit_block")?;
        per_block.push(one.elapsed().as_secs_f64() * 1000.0);
        cdrs += block.cdr_count();
        committed += 1;
        if Instant::now() > deadline {
            break;
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    storage.flush().context("flushing")?;
    per_block.sort_by(f64::total_cmp);
    let p = |q: f64| (per_block[((per_block.len() as f64 - 1.0) * q).round() as usize] * 10.0).round() / 10.0;
    Ok(json!({
        "suite": "storage",
        "blocks": committed,
        "cdrs_per_block": BENCH_RECORDERS.len() as u64 * CDRS_PER_BATCH,
        "committed_cdrs": cdrs,
        "committed_cdrs_per_s": (cdrs as f64 / seconds).round(),
        "commit_ms_p50": p(0.5),
        "commit_ms_p99": p(0.99),
        "bytes_on_disk_per_cdr": (storage.size_on_disk() as f64 / cdrs.max(1) as f64).round(),
    }))
}

async fn evm_baseline(args: &Args) -> anyhow::Result<Value> {
    use alloy::network::EthereumWallet;
    use alloy::providers::ProviderBuilder;
    use alloy::signers::local::PrivateKeySigner;
    use alloy::sol_types::SolCall;

    use crate::rsk::CdrBaseline;

    let anvil = args.anvil.clone().unwrap_or_else(|| {
        let local = PathBuf::from("contracts/node_modules/.bin/anvil");
        if local.exists() {
            local
        } else {
            PathBuf::from("anvil")
        }
    });
    let anvil = Anvil::start(&anvil)?;
    let url = anvil.url.clone();
    let result = async {
        let accounts: Vec<PrivateKeySigner> =
            (0..args.connections.max(1)).map(|_| PrivateKeySigner::random()).collect();
        let plain = ProviderBuilder::new().connect_http(url.parse()?);
        for account in &accounts {
            let _: Value = plain
                .raw_request("anvil_setBalance".into(), (account.address(), "0x3635C9ADC5DEA00000"))
                .await
                .context("funding a benchmark account")?;
        }
        let deployer = ProviderBuilder::new()
            .wallet(EthereumWallet::from(accounts[0].clone()))
            .connect_http(url.parse()?);
        let gas_price = plain.get_gas_price().await?;
        eprintln!("evm-baseline: anvil up at {url}; deploying CdrBaseline");
        let contract = CdrBaseline::deploy(&deployer).await.context("deploying CdrBaseline")?;
        eprintln!(
            "evm-baseline: deployed at {}; {} accounts sending for {} s",
            contract.address(),
            args.connections.max(1),
            args.duration
        );
        let address: Address = *contract.address();
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.duration);
        let mut tasks = Vec::new();
        for account in accounts {
            let (next, url) = (next.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let from = account.address();
                let provider = ProviderBuilder::new()
                    .disable_recommended_fillers()
                    .wallet(EthereumWallet::from(account))
                    .connect_http(url.parse()?);
                let first = provider.get_transaction_count(from).pending().await?;
                let mut sender = BaselineSender::new(from, address, gas_price, first);
                while Instant::now() < deadline {
                    // At most this many unmined transactions per account: the offered load
                    // follows what the node mines instead of queueing without bound.
                    while sender.unmined.len() >= 32 {
                        sender.settle(&provider).await?;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let start = 1_795_000_000_000u64 + n;
                    let input = CdrBaseline::recordCallCall {
                        callId: format!("bench-{n}@load.invalid"),
                        caller: format!("+4420794{:05}", n % 100_000),
                        callee: format!("+1415555{:04}", n % 10_000),
                        startTime: start.to_string(),
                        endTime: (start + 62_000).to_string(),
                        disposition: "answered".into(),
                    }
                    .abi_encode();
                    sender.send(&provider, input.into()).await?;
                }
                while !sender.unmined.is_empty() {
                    sender.settle(&provider).await?;
                }
                Ok::<_, anyhow::Error>((sender.sent, sender.resent))
            }));
        }
        let (mut total, mut resent) = (0u64, 0u64);
        for task in tasks {
            let (sent, again) = task.await.context("load task")??;
            total += sent;
            resent += again;
        }
        let seconds = started.elapsed().as_secs_f64();
        let stored: U256 = contract.count().call().await.context("reading the contract's count")?;
        if stored != U256::from(total) {
            bail!("the contract counted {stored} calls, {total} were sent");
        }
        Ok(json!({
            "suite": "evm-baseline",
            "accounts": args.connections.max(1),
            "committed_cdrs": total,
            "committed_cdrs_per_s": (total as f64 / seconds).round(),
            "resent_after_stall": resent,
            "seconds_until_all_mined": (seconds * 100.0).round() / 100.0,
        }))
    }
    .await;
    drop(anvil);
    result
}

/// An anvil with RSK's regtest chain id on a free loopback port, killed when dropped.
struct Anvil {
    child: std::process::Child,
    url: String,
}

impl Anvil {
    fn start(anvil: &std::path::Path) -> anyhow::Result<Anvil> {
        let port = free_port_run(1)?;
        let mut child = Command::new(anvil)
            .args([
                "--chain-id",
                "33",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--hardfork",
                "london",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {} (scripts/contracts.sh install provides it)", anvil.display())
            })?;
        let stdout = child.stdout.take().context("no anvil stdout")?;
        let anvil = Anvil { child, url: format!("http://127.0.0.1:{port}") };
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Listening on") {
                    let _ = send.send(());
                }
            }
        });
        receive.recv_timeout(Duration::from_secs(30)).context("anvil did not start")?;
        Ok(anvil)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No progress for this long means anvil lost or parked a transaction (below).
const STALL: Duration = Duration::from_secs(3);
/// Resend rounds before the suite gives up with an error instead of waiting forever.
const MAX_RESENDS: u32 = 8;

/// One evm-baseline account's transactions, tracked by nonce rather than by hash.
///
/// Anvil's automine (1.7.1 here) races with concurrent submissions: now and then a transaction
/// is parked in the pool's queue although its nonce is next (foundry-rs/foundry#10122), or a
/// block whose receipts were already served is lost, and the account never advances. Waiting on
/// receipts then waits forever (it hung CI for 600 s). So "mined" means the account's mined
/// transaction count passed the nonce, and after `STALL` without progress every unmined
/// transaction is sent again as a replacement with twice the gas price, which puts the next
/// nonce back in the ready queue. `resent` counts the resends anvil accepted; the contract's own
/// count still has to equal what was sent, once each.
struct BaselineSender {
    from: Address,
    to: Address,
    gas_price: u128,
    next_nonce: u64,
    /// Sent and not yet mined, oldest first: (nonce, calldata).
    unmined: std::collections::VecDeque<(u64, Bytes)>,
    progress_at: Instant,
    rounds: u32,
    sent: u64,
    resent: u64,
}

impl BaselineSender {
    fn new(from: Address, to: Address, gas_price: u128, nonce: u64) -> Self {
        BaselineSender {
            from,
            to,
            gas_price,
            next_nonce: nonce,
            unmined: std::collections::VecDeque::new(),
            progress_at: Instant::now(),
            rounds: 0,
            sent: 0,
            resent: 0,
        }
    }

    fn request(&self, nonce: u64, input: Bytes) -> TransactionRequest {
        TransactionRequest::default()
            .with_from(self.from)
            .with_to(self.to)
            .with_input(input)
            .with_nonce(nonce)
            .with_gas_limit(400_000)
            .with_gas_price(self.gas_price)
            .with_chain_id(33)
            .with_value(U256::ZERO)
    }

    async fn send(&mut self, provider: &impl Provider, input: Bytes) -> anyhow::Result<()> {
        let nonce = self.next_nonce;
        let _pending = provider
            .send_transaction(self.request(nonce, input.clone()))
            .await
            .with_context(|| format!("sending call transaction nonce {nonce} from {}", self.from))?;
        self.unmined.push_back((nonce, input));
        self.next_nonce += 1;
        self.sent += 1;
        Ok(())
    }

    /// Drops what is mined; after a stall, resends the rest; gives up after `MAX_RESENDS` rounds.
    async fn settle(&mut self, provider: &impl Provider) -> anyhow::Result<()> {
        let mined = provider
            .get_transaction_count(self.from)
            .latest()
            .await
            .with_context(|| format!("reading the mined nonce of {}", self.from))?;
        let before = self.unmined.len();
        while self.unmined.front().is_some_and(|(nonce, _)| *nonce < mined) {
            self.unmined.pop_front();
        }
        if self.unmined.len() < before {
            self.progress_at = Instant::now();
            return Ok(());
        }
        if self.progress_at.elapsed() < STALL {
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Ok(());
        }
        if self.rounds == MAX_RESENDS {
            bail!(
                "anvil left nonce {mined} of {} unmined ({} transactions waiting) through {MAX_RESENDS} resends {} s apart",
                self.from,
                self.unmined.len(),
                STALL.as_secs()
            );
        }
        self.rounds += 1;
        self.gas_price *= 2;
        let (mut accepted, mut refused, mut last_error) = (0u64, 0u64, None);
        for (nonce, input) in &self.unmined {
            // A transaction mined meanwhile is refused ("nonce too low"); the next settle sees it.
            match provider.send_transaction(self.request(*nonce, input.clone())).await {
                Ok(_) => accepted += 1,
                Err(error) => {
                    refused += 1;
                    last_error = Some(error.to_string());
                }
            }
        }
        self.resent += accepted;
        eprintln!(
            "evm-baseline: {} stuck at nonce {mined} for {} s; resent its {} unmined transactions at {} wei gas: {accepted} accepted, {refused} refused (last: {})",
            self.from,
            STALL.as_secs(),
            self.unmined.len(),
            self.gas_price,
            last_error.as_deref().unwrap_or("none")
        );
        self.progress_at = Instant::now();
        Ok(())
    }
}

/// The ids an ingest answer acknowledges (the rest of the answer is not needed here).
#[derive(serde::Deserialize)]
struct Acknowledged<'a> {
    #[serde(borrow)]
    ids: Vec<&'a str>,
}

/// Synthetic CDRs `range` as one NDJSON body, written into one buffer.
fn ndjson(range: std::ops::Range<u64>) -> String {
    let mut body = String::with_capacity(300 * range.clone().count());
    for n in range {
        if !body.is_empty() {
            body.push('\n');
        }
        write_cdr_line(&mut body, n);
    }
    body
}

/// One synthetic CDR as NDJSON; `n` makes it unique.
fn write_cdr_line(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    let start = 1_795_000_000_000u64 + n;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
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
    );
}

/// Whether an ingest answer says the node's queue is full (`retry_after_s` in a 503).
fn queue_full(answer: &[u8]) -> bool {
    serde_json::from_slice::<Value>(answer).is_ok_and(|v| v["retry_after_s"].is_u64())
}

/// The log filter of the nodes a benchmark starts: `CDRCHAIN_BENCH_LOG` if set (to look into a
/// run, e.g. `warn,cdrchain::consensus=debug`; the dev node's log is then shown on stderr),
/// else warnings and cdrchain's info lines.
fn node_log_filter() -> String {
    std::env::var("CDRCHAIN_BENCH_LOG").unwrap_or_else(|_| "warn,cdrchain=info".to_string())
}

async fn dev(args: &Args) -> anyhow::Result<Value> {
    let args = &args.with_block_queue(&cdrchain_chain_spec::ChainSpec::dev(), 2);
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
    let addr = receive.recv_timeout(Duration::from_secs(60)).context("the dev node did not start")?;
    let url = format!("http://{addr}");
    let procs = Procs { pids: vec![("dev".to_string(), child.id())], base: base.path().to_path_buf() };
    let result = run_suite("dev", &[url], args, &procs).await;
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
    let args = &args.with_block_queue(&cdrchain_chain_spec::ChainSpec::local(), 1);
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
        .args(["--log", &node_log_filter()])
        .args(args.max_queue.into_iter().flat_map(|q| ["--max-queue".to_string(), q.to_string()]))
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
        let procs = Procs { pids: children_of(child.id()), base: base.path().join("alice") };
        if procs.pids.len() != 4 {
            bail!("found {} validator processes under cdrchain testnet, not 4", procs.pids.len());
        }
        run_suite("localnet", &urls, args, &procs).await
    }
    .await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

/// Offers load to the validators at `urls` (validator i is the i-th dev account) for
/// `--duration`, paced by `--rate` if given, with a latency probe beside it; then waits until the
/// highest sequence acknowledged at each validator is committed.
async fn load(
    suite: &str,
    urls: &[String],
    args: &Args,
    rate: Option<u64>,
    next: &Arc<AtomicU64>,
    procs: &Procs,
) -> anyhow::Result<Value> {
    const OPERATORS: [&str; 4] = ["alice", "bob", "charlie", "dave"];
    let before = procs.sample();
    let acked: Vec<Arc<AtomicU64>> = (0..urls.len()).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let highest: Vec<Arc<AtomicU64>> = (0..urls.len()).map(|_| Arc::new(AtomicU64::new(0))).collect();
    // Requests answered 503 (queue full) and sent again.
    let busy = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    // Paced load sends about 4 requests per second per connection (each waits for its fsync),
    // so that a low rate is not a few big bursts.
    let batch_size = match rate {
        Some(rate) => (rate / (args.connections.max(1) as u64 * 4)).clamp(10, args.batch.max(1) as u64),
        None => args.batch.max(1) as u64,
    };
    for c in 0..args.connections.max(1) {
        let node = c % urls.len();
        let (next, acked, highest, url, batch, busy) = (
            next.clone(),
            acked[node].clone(),
            highest[node].clone(),
            urls[node].clone(),
            batch_size,
            busy.clone(),
        );
        // With --rate, each connection sends one batch every `interval`.
        let interval = rate
            .filter(|r| *r > 0)
            .map(|rate| Duration::from_secs_f64(batch as f64 * args.connections.max(1) as f64 / rate as f64));
        tasks.push(tokio::spawn(async move {
            let client = Arc::new(RpcClient::new(&url, None)?);
            // One request: a batch of new CDRs, counted once acknowledged (durable).
            let send = move |first: u64| {
                let (client, acked, highest, url, busy) =
                    (client.clone(), acked.clone(), highest.clone(), url.clone(), busy.clone());
                async move {
                    // Shared, so that a re-offer does not copy the batch.
                    let body = hyper::body::Bytes::from(ndjson(first..first + batch));
                    let (status, answer) = loop {
                        let (status, answer) = client.post("/ingest/cdrs", body.clone()).await?;
                        // 503 with Retry-After: the node's queue is full; offer the same batch
                        // again soon (sooner than Retry-After asks: a benchmark looks for the
                        // ceiling, and ingest is idempotent).
                        if status == 503 && queue_full(&answer) {
                            busy.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        break (status, answer);
                    };
                    if status != 200 {
                        bail!("ingest at {url} answered {status}: {}", String::from_utf8_lossy(&answer));
                    }
                    acked.fetch_add(batch, Ordering::Relaxed);
                    // The highest sequence number acknowledged: "operator:sequence".
                    // Typed and borrowed: the generator shares the machine with the nodes.
                    let answer: Acknowledged<'_> =
                        serde_json::from_slice(&answer).context("ingest answer")?;
                    let last = answer.ids.last().copied().unwrap_or("");
                    if let Some(seq) = last.rsplit(':').next().and_then(|s| s.parse::<u64>().ok()) {
                        highest.fetch_max(seq, Ordering::Relaxed);
                    }
                    Ok::<_, anyhow::Error>(())
                }
            };
            let mut due = Instant::now();
            // Paced requests do not wait for each other (the offered rate must not depend on
            // the answer time); unbounded load sends the next when the last is answered.
            let mut paced = tokio::task::JoinSet::new();
            while Instant::now() < deadline {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                match interval {
                    Some(interval) => {
                        tokio::time::sleep_until(due.into()).await;
                        due += interval;
                        paced.spawn(send(first));
                    }
                    None => send(first).await?,
                }
            }
            while let Some(result) = paced.join_next().await {
                result.context("a paced request")??;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    // The latency probe: every 100 ms one CDR, round robin over the validators, timed from
    // submit until cdr_status says committed (polled every 10 ms); at most 20 overlap.
    let probe = {
        let urls = urls.to_vec();
        let next = next.clone();
        tokio::spawn(async move {
            let mut probes = Vec::new();
            let mut i = 0usize;
            // At most this many probes wait at once, so that the probe's own polling (every
            // 10 ms each) stays a small load when latency grows.
            let outstanding = Arc::new(tokio::sync::Semaphore::new(20));
            while Instant::now() < deadline {
                let (url, next) = (urls[i % urls.len()].clone(), next.clone());
                i += 1;
                let Ok(permit) = outstanding.clone().try_acquire_owned() else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                probes.push(tokio::spawn(async move {
                    let _permit = permit;
                    let client = RpcClient::new(&url, None)?;
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let line: Value = serde_json::from_str(&ndjson(n..n + 1))?;
                    let sent = Instant::now();
                    // Latency counts from the first attempt: a refusal (queue full) is part of
                    // what a sender waits.
                    let ids = loop {
                        match client.call("cdr_submit", json!([[line.clone()]])).await {
                            Err(e) if is_busy(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
                            other => break other?,
                        }
                    };
                    let id = ids[0].as_str().context("cdr_submit returned no id")?.to_string();
                    loop {
                        let status = client.call("cdr_status", json!([id])).await?;
                        if status["status"] == "committed" {
                            break;
                        }
                        if sent.elapsed() > Duration::from_secs(300) {
                            bail!("probe CDR {id} not committed in 300 s");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok::<_, anyhow::Error>(sent.elapsed().as_secs_f64() * 1000.0)
                }));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut latencies = Vec::with_capacity(probes.len());
            for probe in probes {
                latencies.push(probe.await.context("probe")??);
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
    let after = procs.sample();
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
        "offered_cdrs_per_s": rate.map_or(json!("unbounded"), |r| json!(r)),
        "connections": args.connections,
        "cdrs_per_request": batch_size,
        "acknowledged_cdrs": total,
        "max_queue_per_node": args.max_queue,
        "requests_refused_busy": busy.load(Ordering::Relaxed),
        "acknowledged_cdrs_per_s": (total as f64 / offered_seconds).round(),
        "committed_cdrs_per_s": (total as f64 / committed_seconds).round(),
        "seconds_until_all_committed": (committed_seconds * 100.0).round() / 100.0,
        "latency_probes": latencies.len(),
        "latency_ms_p50": pick(0.50),
        "latency_ms_p99": pick(0.99),
        "latency_ms_max": pick(1.0),
        "cpu_percent_per_node": Procs::cpu_percent(&before, &after, committed_seconds),
        "rss_mib_per_node": after.iter().map(|p| p.rss_kib / 1024).collect::<Vec<_>>(),
        "peak_rss_mib_per_node": after.iter().map(|p| p.peak_kib / 1024).collect::<Vec<_>>(),
        "bytes_on_disk_per_cdr": (dir_size(&procs.base) as f64 / next.load(Ordering::Relaxed).max(1) as f64).round(),
    }))
}

/// One load run (`--rate` or unbounded), or with `--sweep` the ceiling and then 25%, 50% and
/// 100% of it: `{"steps": [...], ...the ceiling's figures}`.
async fn run_suite(suite: &str, urls: &[String], args: &Args, procs: &Procs) -> anyhow::Result<Value> {
    let next = Arc::new(AtomicU64::new(0));
    if !args.sweep {
        return load(suite, urls, args, args.rate, &next, procs).await;
    }
    let ceiling = load(suite, urls, args, None, &next, procs).await?;
    eprintln!("{suite}: unbounded: {ceiling}");
    let rate = ceiling["committed_cdrs_per_s"].as_f64().context("no committed rate")?;
    let mut steps = vec![ceiling.clone()];
    for fraction in [0.25, 0.5, 1.0] {
        let offered = (rate * fraction).round().max(1.0) as u64;
        let step = load(suite, urls, args, Some(offered), &next, procs).await?;
        eprintln!("{suite}: offered {offered}/s: {step}");
        steps.push(step);
    }
    let mut figures = ceiling;
    figures["steps"] = Value::Array(steps);
    Ok(figures)
}

/// Node processes to watch (name, pid) and one node's base path (for bytes on disk).
struct Procs {
    pids: Vec<(String, u32)>,
    base: PathBuf,
}

/// One process's CPU time and memory, from /proc.
struct ProcSample {
    cpu_ticks: u64,
    rss_kib: u64,
    peak_kib: u64,
}

impl Procs {
    fn sample(&self) -> Vec<ProcSample> {
        self.pids.iter().map(|(_, pid)| ProcSample::read(*pid)).collect()
    }

    /// CPU use of each process between two samples, in percent of one core (clock ticks of
    /// 1/100 s, the Linux USER_HZ).
    fn cpu_percent(before: &[ProcSample], after: &[ProcSample], seconds: f64) -> Vec<f64> {
        before
            .iter()
            .zip(after)
            .map(|(b, a)| {
                let used = a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 / 100.0;
                (used / seconds.max(1e-9) * 1000.0).round() / 10.0
            })
            .collect()
    }
}

impl ProcSample {
    fn read(pid: u32) -> ProcSample {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at field 3: utime is
        // field 14 and stime 15.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ProcSample { cpu_ticks: field(14) + field(15), rss_kib: kib("VmRSS:"), peak_kib: kib("VmHWM:") }
    }
}

/// The child processes of `parent` (name from /proc/PID/comm), in pid order.
fn children_of(parent: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push((format!("node-{pid}"), pid));
        }
    }
    out.sort_by_key(|(_, pid)| *pid);
    out
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => total += dir_size(&entry.path()),
            Ok(meta) => total += meta.len(),
            Err(_) => {}
        }
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure must fail the test
mod tests {
    use super::*;

    use alloy::network::EthereumWallet;
    use alloy::providers::ProviderBuilder;
    use alloy::signers::local::PrivateKeySigner;

    /// A transaction anvil never got (as when it loses a block) leaves the next one queued behind
    /// a nonce gap forever: the sender notices the stall, resends both and sees them mined.
    #[test]
    fn a_lost_transaction_is_resent_after_a_stall() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/node_modules/.bin/anvil");
        assert!(path.exists(), "run scripts/install-deps.sh: {} is missing", path.display());
        let anvil = Anvil::start(&path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let account = PrivateKeySigner::random();
            let from = account.address();
            let provider = ProviderBuilder::new()
                .disable_recommended_fillers()
                .wallet(EthereumWallet::from(account))
                .connect_http(anvil.url.parse().unwrap());
            let _: Value = provider
                .raw_request("anvil_setBalance".into(), (from, "0x3635C9ADC5DEA00000"))
                .await
                .unwrap();
            let gas_price = provider.get_gas_price().await.unwrap();
            let mut sender = BaselineSender::new(from, Address::repeat_byte(0x42), gas_price, 0);
            // Nonce 0 "sent" but lost; nonce 1 really sent, and parked behind the gap.
            sender.unmined.push_back((0, Bytes::from_static(b"lost")));
            sender.next_nonce = 1;
            sender.sent = 1;
            sender.send(&provider, Bytes::from_static(b"parked")).await.unwrap();
            let started = Instant::now();
            while !sender.unmined.is_empty() {
                sender.settle(&provider).await.unwrap();
                // Generous: CI runs this beside other tests on two cores.
                assert!(started.elapsed() < STALL * 6, "not recovered: {:?}", sender.unmined);
            }
            assert!(started.elapsed() >= STALL, "resent before a stall");
            // Nonce 0 is accepted; nonce 1's replacement too, unless the original was mined first.
            assert!(sender.rounds >= 1 && sender.resent >= 1, "{} {}", sender.rounds, sender.resent);
            assert_eq!(provider.get_transaction_count(from).latest().await.unwrap(), 2);
        });
    }
}
