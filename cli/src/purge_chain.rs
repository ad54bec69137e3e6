//! `cdrchain purge-chain`: delete a chain's database.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use cdrchain_chain_spec::ChainSpec;
use cdrchain_node::config::database_path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which chain's database: `dev`, `local`, or a spec file.
    #[arg(long, default_value = "dev", value_name = "dev|local|PATH")]
    pub chain: String,
    /// The node's base path.
    #[arg(long, value_name = "DIR")]
    pub base_path: PathBuf,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Delete even when acknowledged CDRs are still queued (not yet on the chain): they are
    /// lost, and the switches that sent them were told they were accepted.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let spec =
        ChainSpec::load(&args.chain).with_context(|| format!("loading chain spec `{}`", args.chain))?;
    let path = database_path(&args.base_path, &spec.id);
    if !path.exists() {
        println!("nothing to delete: {} does not exist", path.display());
        return Ok(());
    }
    let queued = queued_cdrs(&spec, &path)?;
    if queued > 0 && !args.force {
        bail!(
            "{queued} acknowledged CDRs of this node are queued and not yet on the chain: purging loses them \
             (their switches were told they were accepted). Start the node and let them commit first, \
             or pass --force to lose them"
        );
    }
    if !args.yes {
        print!("delete the database of chain `{}` at {}? [y/N] ", spec.id, path.display());
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).context("reading the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not deleted");
        }
    }
    std::fs::remove_dir_all(&path).with_context(|| format!("deleting {}", path.display()))?;
    println!("deleted {}", path.display());
    if queued > 0 {
        println!("lost {queued} queued CDRs that were acknowledged but not committed (--force)");
    }
    println!(
        "lost this node's idempotency keys: a switch that re-sends records already on the chain gets them \
         recorded again"
    );
    // The validator's record of what it signed is kept: without it a restarted validator could
    // sign again, differently, at a height it had already voted at.
    let signing_state = path.with_file_name("signing-state");
    if signing_state.exists() {
        println!(
            "kept {} (what this validator signed last: it signs nothing contradicting it after the purge)",
            signing_state.display()
        );
    }
    Ok(())
}

/// How many acknowledged CDRs wait in the database's ingest queue.
fn queued_cdrs(spec: &ChainSpec, path: &std::path::Path) -> anyhow::Result<u64> {
    let genesis = spec.genesis_state()?;
    let storage = cdrchain_storage::Storage::open(path, spec.genesis_hash(), &genesis)
        .with_context(|| format!("opening the database at {} (is a node running on it?)", path.display()))?;
    Ok(storage.queue_len()?)
}
