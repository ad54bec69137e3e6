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
//!
//! Files: `inproc.rs` (the runtime and storage suites, in this process), `spawn.rs` (starting
//! the dev node and the localnet), `load.rs` (the HTTP load generator, its pacing and latency
//! probe), `procfs.rs` (CPU and memory of the nodes, from /proc), `evm.rs` (the EVM baseline).

mod evm;
mod inproc;
mod load;
mod procfs;
mod spawn;

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};

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
    /// chain before it answers 503 (the load generator then retries after the Retry-After the
    /// node gave; paced load gives a batch up when the offer ends, counted as shed). Bounded, so
    /// that unbounded load finds the ceiling without a queue (and latency) that grows for the
    /// whole run. Default: dev two blocks of its spec (400,000): a queued CDR waits for the next
    /// proposal (up to one 500 ms interval) and then for its block's commit, so at the ceiling the
    /// queue holds about one block filling and one committing, and one block's worth refused
    /// submissions the chain could take. Localnet one block (50,000): two raised its peak memory
    /// near 1 GiB per node without more throughput.
    #[arg(long, value_name = "CDRS")]
    pub max_queue: Option<u64>,
    /// dev and localnet: find the committed ceiling R with unbounded load first, then offer
    /// 25%, 50%, 100% and 200% of R (paced), each for --duration, with its latency, CPU and
    /// memory.
    #[arg(long)]
    pub sweep: bool,
    /// localnet: the fourth validator (dave) floods the others as a hostile member would
    /// (batches of its own far and a little ahead of the chain, every consensus message it
    /// receives replayed with fresh nonces: the robustness tests' `CDRCHAIN_FAILPOINT=flood`),
    /// and the load goes to the three honest validators only: the committed rate is theirs.
    #[arg(long)]
    pub flood: bool,
    /// localnet: load these running validators (RPC URLs, validator i being the i-th dev account
    /// of the `local` chain, as `cdrchain testnet` starts them) instead of starting a testnet;
    /// no CPU or memory figures then. For a localnet across hosts or network namespaces (the WAN
    /// figures of docs/reliability.md).
    #[arg(long, value_delimiter = ',', value_name = "URL,...")]
    pub attach: Vec<String>,
    /// With --attach: the bearer token the validators' RPC wants.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub rpc_token: Option<String>,
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
    if !args.attach.is_empty() && (args.suite != Suite::Localnet || args.flood) {
        anyhow::bail!("--attach applies to the localnet suite only, without --flood");
    }
    if args.flood && args.suite != Suite::Localnet {
        anyhow::bail!("--flood applies to the localnet suite only (it needs other validators to flood)");
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let figures = match args.suite {
        Suite::Runtime => inproc::runtime_suite(&args)?,
        Suite::Storage => inproc::storage_suite(&args)?,
        Suite::Dev => runtime.block_on(spawn::dev(&args))?,
        Suite::Localnet => runtime.block_on(spawn::localnet(&args))?,
        Suite::EvmBaseline => runtime.block_on(evm::evm_baseline(&args))?,
        Suite::All => all(&args, &runtime)?,
    };
    print_figures(&figures);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Every suite in turn, and the ratios between their committed rates.
fn all(args: &Args, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Value> {
    let mut all = serde_json::Map::new();
    for (name, figures) in [
        ("runtime", inproc::runtime_suite(args)?),
        ("storage", inproc::storage_suite(args)?),
        ("dev", runtime.block_on(spawn::dev(args))?),
        ("localnet", runtime.block_on(spawn::localnet(args))?),
        ("evm-baseline", runtime.block_on(evm::evm_baseline(args))?),
    ] {
        eprintln!("{name}: {figures}");
        all.insert(name.to_string(), figures);
    }
    let rate =
        |suite: &str, figure: &str| all.get(suite).and_then(|f| f[figure].as_f64()).unwrap_or(f64::NAN);
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
    Ok(Value::Object(all))
}

/// The figures as a table on stdout, and a sweep's steps as a second table.
fn print_figures(figures: &Value) {
    println!("{:<28} {:>14}", "figure", "value");
    if let Value::Object(map) = figures {
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
}

/// The `q` quantile (0 to 1) of `sorted` (ascending), rounded to a tenth; NaN when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    (sorted[index.min(sorted.len() - 1)] * 10.0).round() / 10.0
}
