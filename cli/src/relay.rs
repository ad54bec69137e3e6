//! `cdrchain relay`: copies checkpoints that have a quorum of validator signatures from a node to
//! the `CdrCheckpoint` contract on RSK, after the chain's authority-set changes the contract has
//! not had (`relay_sets`). The relayer holds no power: the contract checks the
//! signatures; the relayer only pays gas. Made for cron: one pass with `--once`, a lock so that
//! overlapping runs cannot submit twice, and exit codes that say what happened.
//!
//! | exit code | meaning |
//! | --- | --- |
//! | 0 | submitted at least one checkpoint or set change (or, with `--dry-run`, found one) |
//! | 10 | nothing to do: the contract is up to date, or nothing newer has a quorum yet |
//! | 11 | another relay run holds the lock |
//! | 1 | error (node or RSK unreachable, a transaction failed, bad arguments) |

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, B256};
use anyhow::{bail, Context};
use cdrchain_node::rpc::api::{CheckpointApiClient, SystemApiClient};
use cdrchain_runtime::checkpoint::{recover, Checkpoint, EvmSignature};
use cdrchain_runtime::crypto::EvmAddress;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::Height;
use serde_json::Value;

use crate::relay_metrics::AnchorStatus;
use crate::rpc_client::RpcClient;
use crate::rsk::{address, CdrCheckpoint, Rsk};

/// Exit code: nothing to do.
pub const NOTHING_TO_DO: u8 = 10;
/// Exit code: another run holds the lock.
pub const LOCKED: u8 = 11;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub node: crate::rpc_client::ReadRpc,
    /// The RSK node's JSON-RPC URL.
    #[arg(long, env = "CDRCHAIN_RSK_RPC", value_name = "URL")]
    pub rsk_rpc: String,
    /// The `CdrCheckpoint` contract's address.
    #[arg(long, value_name = "ADDRESS")]
    pub contract: String,
    /// The relayer's secp256k1 key file: the account that pays the gas.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// One pass, then exit (for cron). Without it, a pass every --interval seconds.
    #[arg(long)]
    pub once: bool,
    /// Seconds between passes when not --once.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub interval: u64,
    /// Blocks to wait on top of each submission's block before the next.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub confirmations: u64,
    /// Seconds to wait for a submission's receipt (and confirmations) before the pass fails. The
    /// transaction may still be mined later; the next pass starts from the contract's latest
    /// height either way. A run that waited forever would hold the lock and stop every later run.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub receipt_timeout: u64,
    /// Say what would be submitted; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The lock file (default: <temp dir>/cdrchain-relay-<contract>.lock).
    #[arg(long, value_name = "FILE")]
    pub lock_file: Option<PathBuf>,
    /// After each pass, write the anchor's state (the height the contract holds, the node's
    /// latest checkpoint, when the pass ended and whether it succeeded) as Prometheus text to
    /// FILE, for node_exporter's textfile collector (docs/monitoring.md).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// What one pass did.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    Submitted(usize),
    NothingToDo,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let contract = address(&args.contract, "--contract")?;
    let lock_path = args.lock_file.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cdrchain-relay-{}.lock", contract.to_string().to_lowercase()))
    });
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening the lock file {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!("another relay run holds {}: not running twice", lock_path.display());
            return Ok(ExitCode::from(LOCKED));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock_path.display()));
        }
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let result = runtime.block_on(async {
        if args.once {
            return reported_pass(&args, contract).await;
        }
        let stop = crate::node::shutdown_signal();
        tokio::pin!(stop);
        loop {
            match reported_pass(&args, contract).await {
                Ok(_) => {}
                Err(e) => eprintln!("relay pass failed: {e:#}"),
            }
            tokio::select! {
                () = &mut stop => return Ok(Pass::NothingToDo),
                () = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            }
        }
    });
    drop(lock);
    Ok(match result? {
        Pass::Submitted(_) => ExitCode::SUCCESS,
        Pass::NothingToDo => ExitCode::from(NOTHING_TO_DO),
    })
}

fn hash(value: &Value, field: &str) -> anyhow::Result<Hash32> {
    let text = value[field].as_str().with_context(|| format!("the node's checkpoint has no `{field}`"))?;
    Hash32::from_hex(text).map_err(|e| anyhow::anyhow!("the node's checkpoint `{field}`: {e}"))
}

fn number(value: &Value, field: &str) -> anyhow::Result<u64> {
    value[field].as_u64().with_context(|| format!("the node's checkpoint has no numeric `{field}`"))
}

/// A checkpoint the node serves, with the signatures for `contract` that recover to their
/// validators, ascending by signer.
fn read_checkpoint(
    value: &Value,
    contract: &Address,
    chain_id: u64,
) -> anyhow::Result<(Checkpoint, Vec<(Address, EvmSignature)>)> {
    let checkpoint = Checkpoint {
        genesis_hash: hash(value, "genesis_hash")?,
        height: Height(number(value, "height")?),
        block_hash: hash(value, "block_hash")?,
        state_root: hash(value, "state_root")?,
        cdr_log_root: hash(value, "cdr_log_root")?,
        cdr_log_size: number(value, "cdr_log_size")?,
    };
    let ours = EvmAddress(contract.0 .0);
    let digest = checkpoint.digest(chain_id, &ours);
    let what = format!("checkpoint #{}", checkpoint.height);
    Ok((checkpoint, recovered_signatures(value, &digest, &ours, &what)))
}

/// The `signatures` entries of a node's answer that are for `contract` and recover, over
/// `digest`, to the EVM address the entry names; ascending by signer and one per signer, as the
/// contract wants them. What is skipped is said, with `what` the signatures are of.
pub(crate) fn recovered_signatures(
    value: &Value,
    digest: &[u8; 32],
    contract: &EvmAddress,
    what: &str,
) -> Vec<(Address, EvmSignature)> {
    let mut signatures = Vec::new();
    for entry in value["signatures"].as_array().into_iter().flatten() {
        if entry["contract"].as_str().map(str::to_lowercase) != Some(contract.to_hex()) {
            continue;
        }
        let Some(signature) = entry["signature"].as_str().and_then(|s| EvmSignature::from_hex(s).ok()) else {
            eprintln!("skipping an unreadable signature of {} of {what}", entry["operator"]);
            continue;
        };
        match recover(digest, &signature) {
            Ok(signer) if Some(signer.to_hex()) == entry["evm_address"].as_str().map(str::to_lowercase) => {
                signatures.push((Address::from(signer.0), signature));
            }
            other => eprintln!(
                "skipping the signature of {} of {what}: it does not recover to its signer ({other:?})",
                entry["operator"]
            ),
        }
    }
    signatures.sort_by_key(|(signer, _)| *signer);
    signatures.dedup_by_key(|(signer, _)| *signer);
    signatures
}

fn to_sol(checkpoint: &Checkpoint) -> CdrCheckpoint::Checkpoint {
    CdrCheckpoint::Checkpoint {
        genesisHash: B256::from(checkpoint.genesis_hash.0),
        height: checkpoint.height.0,
        blockHash: B256::from(checkpoint.block_hash.0),
        stateRoot: B256::from(checkpoint.state_root.0),
        cdrLogRoot: B256::from(checkpoint.cdr_log_root.0),
        cdrLogSize: checkpoint.cdr_log_size,
    }
}

/// Checkpoints with enough signatures to submit, ascending, and the newest one still short of
/// them (height, signatures).
struct Due {
    ready: Vec<(Checkpoint, Vec<(Address, EvmSignature)>)>,
    waiting: Option<(u64, usize)>,
}

/// A pass, then, with `--metrics-file`, what it learnt of the anchor.
async fn reported_pass(args: &Args, contract_address: Address) -> anyhow::Result<Pass> {
    let mut status = AnchorStatus::default();
    let result = pass(args, contract_address, &mut status).await;
    if let Some(path) = &args.metrics_file {
        let contract = contract_address.to_string().to_lowercase();
        if let Err(e) = crate::relay_metrics::write(path, &status, &contract, result.is_ok()) {
            eprintln!("relay metrics not written: {e:#}");
        }
    }
    result
}

async fn pass(args: &Args, contract_address: Address, status: &mut AnchorStatus) -> anyhow::Result<Pass> {
    let node = args.node.client()?;
    let properties = node.ask(node.api().properties()).await.context("asking the node about its chain")?;
    let interval = properties.checkpoint_interval;
    status.interval = Some(interval);
    let rsk_chain_id = properties.rsk_chain_id;
    let rsk = Rsk::connect(&args.rsk_rpc, &args.key, Some(rsk_chain_id)).await?;
    let contract = CdrCheckpoint::new(contract_address, &rsk.provider);
    let genesis: B256 = contract.genesisHash().call().await.context("reading the contract's genesisHash")?;
    let node_genesis = properties.genesis_hash.to_lowercase();
    if genesis.to_string().to_lowercase() != node_genesis {
        bail!("the contract anchors chain {genesis}, but the node serves chain {node_genesis}");
    }
    // The contract's validator set first: checkpoints of a new set need it.
    let mut nonce = rsk.pending_nonce().await?;
    let sets = crate::relay_sets::follow(args, &node, &rsk, &contract, rsk_chain_id, &mut nonce).await?;
    if !sets.current {
        return Ok(if sets.submitted > 0 { Pass::Submitted(sets.submitted) } else { Pass::NothingToDo });
    }
    let on_chain: u64 =
        contract.latestHeight().call().await.context("reading the contract's latestHeight")?;
    status.anchored = Some(on_chain);
    let threshold =
        usize::try_from(contract.threshold().call().await.context("reading the contract's threshold")?)
            .context("the contract's threshold does not fit")?;
    let validators: Vec<Address> =
        contract.validators().call().await.context("reading the contract's validators")?;
    let latest = node
        .ask(node.api().latest_checkpoint())
        .await
        .context("asking the node for its latest checkpoint")?;
    let latest_height = latest["height"].as_u64();
    status.node_checkpoint = Some(latest_height.unwrap_or(0));
    let Some(latest_height) = latest_height else {
        println!("nothing to do: the node has no checkpoint yet (one every {interval} blocks)");
        return Ok(if sets.submitted > 0 { Pass::Submitted(sets.submitted) } else { Pass::NothingToDo });
    };
    let heights = ((on_chain / interval + 1) * interval..=latest_height).step_by(usize::try_from(interval)?);
    let due = due(&node, heights, &contract_address, rsk_chain_id, threshold, &validators).await?;
    if due.ready.is_empty() && sets.submitted > 0 {
        return Ok(Pass::Submitted(sets.submitted));
    }
    if due.ready.is_empty() {
        match due.waiting {
            Some((height, count)) => println!(
                "nothing to do: the contract is at #{on_chain}; checkpoint #{height} has {count} of the {threshold} \
                 signatures it needs"
            ),
            None => println!("nothing to do: the contract is at #{on_chain}, the node's latest checkpoint"),
        }
        return Ok(Pass::NothingToDo);
    }
    let mut submitted = sets.submitted;
    for (checkpoint, signatures) in due.ready {
        let sol = to_sol(&checkpoint);
        let digest: B256 =
            contract.checkpointDigest(sol.clone()).call().await.context("reading checkpointDigest")?;
        let ours = checkpoint.digest(rsk_chain_id, &EvmAddress(contract_address.0 .0));
        if digest.0 != ours {
            bail!(
                "the contract's digest of checkpoint #{} differs from ours: not the expected contract",
                checkpoint.height
            );
        }
        let chosen: Vec<Bytes> =
            signatures.iter().take(threshold).map(|(_, s)| Bytes::copy_from_slice(&s.0)).collect();
        if args.dry_run {
            println!(
                "would submit checkpoint #{} (block {}, CDR log size {}) with {} signatures",
                checkpoint.height,
                checkpoint.block_hash,
                checkpoint.cdr_log_size,
                chosen.len()
            );
        } else {
            submit(args, &rsk, &contract, &checkpoint, chosen, nonce).await?;
            status.anchored = Some(checkpoint.height.0);
            nonce += 1;
        }
        submitted += 1;
    }
    Ok(Pass::Submitted(submitted))
}

/// The checkpoints at `heights` the node serves, sorted into those with `threshold` signatures
/// that recover to their validators, and the last one without.
async fn due(
    node: &RpcClient,
    heights: impl Iterator<Item = u64>,
    contract_address: &Address,
    rsk_chain_id: u64,
    threshold: usize,
    validators: &[Address],
) -> anyhow::Result<Due> {
    let mut due = Due { ready: Vec::new(), waiting: None };
    for height in heights {
        let value = node
            .ask(node.api().checkpoint(height))
            .await
            .with_context(|| format!("asking the node for checkpoint #{height}"))?;
        if value.is_null() {
            continue;
        }
        let (checkpoint, mut signatures) = read_checkpoint(&value, contract_address, rsk_chain_id)?;
        // Only the contract's validators count (a checkpoint of a set the contract does not hold
        // waits, and a removed validator's signature is never sent).
        signatures.retain(|(signer, _)| validators.contains(signer));
        if signatures.len() >= threshold {
            due.ready.push((checkpoint, signatures));
        } else {
            due.waiting = Some((height, signatures.len()));
        }
    }
    Ok(due)
}

/// Sends one checkpoint with its chosen signatures at `nonce` and waits for its receipt and
/// confirmations.
async fn submit(
    args: &Args,
    rsk: &Rsk,
    contract: &CdrCheckpoint::CdrCheckpointInstance<&alloy::providers::DynProvider>,
    checkpoint: &Checkpoint,
    chosen: Vec<Bytes>,
    nonce: u64,
) -> anyhow::Result<()> {
    let signatures = chosen.len();
    let gas_price = rsk.gas_price().await?;
    let call = contract.submitCheckpoint(to_sol(checkpoint), chosen).gas_price(gas_price).nonce(nonce);
    let gas = call
        .estimate_gas()
        .await
        .with_context(|| format!("checkpoint #{}: the contract refuses it", checkpoint.height))?;
    let pending = call
        .gas(gas + gas / 5)
        .send()
        .await
        .with_context(|| format!("sending checkpoint #{}", checkpoint.height))?;
    let tx = *pending.tx_hash();
    let receipt = crate::rsk::receipt_within(
        pending,
        args.confirmations,
        args.receipt_timeout,
        &format!("checkpoint #{}", checkpoint.height),
        "the next pass starts from the contract's latest height either way",
    )
    .await?;
    if !receipt.status() {
        bail!("checkpoint #{}: transaction {tx} reverted", checkpoint.height);
    }
    println!(
        "relayed checkpoint #{} (block {}, CDR log size {}, {signatures} signatures) in RSK transaction {tx}, block {}, gas {}",
        checkpoint.height,
        checkpoint.block_hash,
        checkpoint.cdr_log_size,
        receipt.block_number.unwrap_or_default(),
        receipt.gas_used
    );
    Ok(())
}
