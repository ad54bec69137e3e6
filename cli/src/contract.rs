//! `cdrchain contract deploy`: puts `CdrCheckpoint` on RSK for a chain, with the chain's genesis
//! hash, its validators' EVM addresses (ascending) and a threshold of more than 2/3 of them.

use std::path::PathBuf;

use alloy::primitives::{Address, B256, U256};
use anyhow::{bail, Context};
use cdrchain_chain_spec::ChainSpec;

use crate::rsk::{CdrCheckpoint, Rsk};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Deploy the checkpoint contract for a chain; prints its address.
    Deploy(DeployArgs),
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The RSK node's JSON-RPC URL (chain id 30 mainnet, 31 testnet, 33 regtest).
    #[arg(long, value_name = "URL")]
    pub rsk_rpc: String,
    /// The deployer's secp256k1 key file (`cdrchain key generate --scheme secp256k1`); it pays
    /// for the deployment and has no power over the contract.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The chain spec whose validators sign checkpoints (`dev`, `local` or a file).
    #[arg(long, value_name = "dev|local|PATH")]
    pub chain: String,
    /// Signatures a checkpoint needs (default and minimum: more than 2/3 of the validators).
    #[arg(long, value_name = "N")]
    pub threshold: Option<usize>,
    /// Blocks to wait on top of the deployment's block.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub confirmations: u64,
    /// Seconds to wait for the deployment's receipt (and confirmations) before giving up.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub receipt_timeout: u64,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    match command {
        Command::Deploy(args) => runtime.block_on(deploy(args)),
    }
}

/// The spec's validators' EVM addresses, ascending, and the default threshold.
pub fn validator_set(spec: &ChainSpec) -> anyhow::Result<(Vec<Address>, usize)> {
    let mut addresses = Vec::new();
    for authority in &spec.authorities {
        let operator = spec
            .operators
            .iter()
            .find(|o| &o.id == authority)
            .with_context(|| format!("authority `{authority}` is not an operator of the spec"))?;
        addresses.push(Address::from(operator.evm_address.0));
    }
    addresses.sort();
    addresses.dedup();
    let threshold = addresses.len() * 2 / 3 + 1;
    Ok((addresses, threshold))
}

async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let spec =
        ChainSpec::load(&args.chain).with_context(|| format!("loading chain spec `{}`", args.chain))?;
    let (validators, minimum) = validator_set(&spec)?;
    let threshold = args.threshold.unwrap_or(minimum);
    if threshold < minimum || threshold > validators.len() {
        bail!(
            "--threshold {threshold}: it must be more than 2/3 of the {} validators ({minimum} to {})",
            validators.len(),
            validators.len()
        );
    }
    let rsk = Rsk::connect(&args.rsk_rpc, &args.key, Some(spec.params.rsk_chain_id)).await?;
    let gas_price = rsk.gas_price().await?;
    let nonce = rsk.pending_nonce().await?;
    let genesis = B256::from(spec.genesis_hash().0);
    let builder =
        CdrCheckpoint::deploy_builder(&rsk.provider, genesis, validators.clone(), U256::from(threshold))
            .gas_price(gas_price)
            .nonce(nonce);
    let gas = builder.estimate_gas().await.context("estimating the deployment's gas")?;
    let pending =
        builder.gas(gas + gas / 5).send().await.context("sending the deployment (legacy transaction)")?;
    let hash = *pending.tx_hash();
    eprintln!(
        "deployment sent: transaction {hash}, gas price {gas_price} wei; waiting for {} confirmation(s)",
        args.confirmations
    );
    let receipt = crate::rsk::receipt_within(
        pending,
        args.confirmations,
        args.receipt_timeout,
        "the deployment",
        "look it up before deploying again",
    )
    .await?;
    if !receipt.status() {
        bail!("the deployment transaction {hash} failed (reverted) in block {:?}", receipt.block_number);
    }
    let address = receipt.contract_address.context("the receipt has no contract address")?;
    eprintln!(
        "CdrCheckpoint for chain `{}` (genesis {}) on RSK chain {}: {} validators, threshold {threshold}, \
         gas used {}, block {}",
        spec.id,
        spec.genesis_hash(),
        rsk.chain_id,
        validators.len(),
        receipt.gas_used,
        receipt.block_number.unwrap_or_default()
    );
    eprintln!(
        "validators (ascending): {}",
        validators.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    );
    eprintln!(
        "next: give the validators --checkpoint-contract {address} (or `cdrchain build-spec --chain SPEC \
         --checkpoint-contract {address}`), and run `cdrchain relay` from cron"
    );
    println!("{address}");
    Ok(())
}
