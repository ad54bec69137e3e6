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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let spec =
        ChainSpec::load(&args.chain).with_context(|| format!("loading chain spec `{}`", args.chain))?;
    let path = database_path(&args.base_path, &spec.id);
    if !path.exists() {
        println!("nothing to delete: {} does not exist", path.display());
        return Ok(());
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
    Ok(())
}
