//! `cdrchain build-spec`: print a chain spec, checked, with its genesis hash.

use std::path::PathBuf;

use anyhow::Context;
use cdrchain_chain_spec::ChainSpec;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which chain: `dev` (one validator, INSECURE well-known key), `local` (four validators
    /// alice, bob, charlie, dave; INSECURE keys), or the path of a JSON spec to validate.
    #[arg(long, default_value = "dev", value_name = "dev|local|PATH")]
    pub chain: String,

    /// Sign an RSK checkpoint every N blocks instead of the spec's interval (changes the genesis
    /// hash: a new chain).
    #[arg(long, value_name = "N")]
    pub checkpoint_interval: Option<u64>,

    /// Record the deployed `CdrCheckpoint` contract's address in the spec (deployment
    /// configuration: the genesis hash does not change).
    #[arg(long, value_name = "ADDRESS")]
    pub checkpoint_contract: Option<String>,

    /// Write the spec to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut spec =
        ChainSpec::load(&args.chain).with_context(|| format!("loading chain spec `{}`", args.chain))?;
    if let Some(interval) = args.checkpoint_interval {
        spec.params.checkpoint_interval = interval;
    }
    if let Some(text) = &args.checkpoint_contract {
        spec.params.checkpoint_contract = Some(
            cdrchain_runtime::crypto::EvmAddress::from_hex(text)
                .map_err(|e| anyhow::anyhow!("--checkpoint-contract {text:?}: {e}"))?,
        );
    }
    spec.validate().context("the chain spec")?;
    let state = spec.genesis_state().context("building the genesis state")?;
    let json = spec.to_json();
    match &args.out {
        Some(path) => std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("writing the spec to {}", path.display()))?,
        None => println!("{json}"),
    }
    eprintln!(
        "chain `{}` ({}): {} operator(s), {} authorit{}",
        spec.id,
        spec.name,
        spec.operators.len(),
        spec.authorities.len(),
        if spec.authorities.len() == 1 { "y" } else { "ies" }
    );
    eprintln!("genesis hash       {}", spec.genesis_hash());
    eprintln!("genesis state root {}", state.state_root());
    if spec.uses_dev_keys() {
        eprintln!("WARNING: this spec uses the public development keys; anyone can sign for its operators.");
    }
    Ok(())
}
