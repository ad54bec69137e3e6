//! `cdrchain proof` (fetch an inclusion proof bundle from a node) and `cdrchain verify` (check
//! one with no network). See docs/proofs.md.
//!
//! `verify` exit codes: 0 every check passed against the given chain spec; 1 a check failed;
//! 2 the bundle is consistent but no `--chain` was given, so its authority set is unchecked.
//!
//! With `--rsk-rpc URL --contract ADDR`, `proof` adds the contract's latest checkpoint and a
//! consistency proof to each inclusion bundle, and `verify` reads that checkpoint back from the
//! contract and checks the proof: the history up to the anchor was never rewritten.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cdrchain_chain_spec::ChainSpec;
use cdrchain_node::rpc::api::CdrApiClient;
use cdrchain_runtime::crypto::EvmAddress;
use cdrchain_runtime::crypto::PublicKey;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::proof::{
    verify, verify_absence, verify_anchored, AbsenceBundle, Anchor, Expected, OnChain, ProofBundle, Verdict,
};
use serde_json::Value;

use crate::rpc_client::RpcClient;
use crate::rsk;

#[derive(Debug, clap::Args)]
pub struct ProofArgs {
    /// The CDR, as `operator:sequence`.
    #[arg(required_unless_present = "call_id", conflicts_with = "call_id")]
    pub id: Option<String>,
    /// Prove that the id is NOT recorded (at the node's head): its operator's next sequence, or
    /// a declared gap, from the head's state root. Refused for a recorded id.
    #[arg(long, conflicts_with = "call_id")]
    pub absent: bool,
    /// Every committed record of this call id instead (a JSON array of bundles).
    #[arg(long, value_name = "ID")]
    pub call_id: Option<String>,
    /// The node's RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
    pub rpc: String,
    /// Bearer token (a `read` role is enough), when the node requires one.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Write the bundle here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Anchor the bundle on RSK: add the latest checkpoint stored in `--contract` and a
    /// consistency proof between its CDR log and the bundle's, for `verify --rsk-rpc`.
    #[arg(long, value_name = "URL", requires = "contract", conflicts_with = "absent")]
    pub rsk_rpc: Option<String>,
    /// The `CdrCheckpoint` contract's address (with `--rsk-rpc`).
    #[arg(long, value_name = "ADDR", requires = "rsk_rpc")]
    pub contract: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The bundle: a JSON file from `cdrchain proof` (an array of bundles is checked one by
    /// one) or from `cdrchain dispute bundle`.
    pub bundle: PathBuf,
    /// The chain spec to check the bundle's chain and authority set against (`dev`, `local`, or
    /// a file). Without it the verdict cannot be trusted (exit 2).
    #[arg(long, value_name = "dev|local|PATH")]
    pub chain: Option<String>,
    /// Also check the bundle's RSK anchor: read the checkpoint from the contract on this RSK
    /// node, and the consistency of the bundle's CDR log with the anchored one.
    #[arg(long, value_name = "URL", requires = "contract")]
    pub rsk_rpc: Option<String>,
    /// The `CdrCheckpoint` contract to trust (with `--rsk-rpc`).
    #[arg(long, value_name = "ADDR", requires = "rsk_rpc")]
    pub contract: Option<String>,
}

pub fn proof(args: ProofArgs) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let value = runtime.block_on(fetch_bundles(&args))?;
    let value = match (&args.rsk_rpc, &args.contract) {
        (Some(rsk_rpc), Some(contract)) => {
            runtime.block_on(anchor_bundles(&args.rpc, args.token.clone(), rsk_rpc, contract, value))?
        }
        _ => value,
    };
    let text = serde_json::to_string_pretty(&value)? + "\n";
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// The bundle(s) `args` ask for, from the node: an inclusion or absence bundle of one id, or
/// an array of the inclusion bundles of a call id's records.
async fn fetch_bundles(args: &ProofArgs) -> anyhow::Result<Value> {
    let client = RpcClient::new(&args.rpc, args.token.clone())?;
    let node = client.api();
    match (&args.id, &args.call_id) {
        (Some(id), _) if args.absent => client
            .ask(node.absence_proof(id.clone()))
            .await
            .with_context(|| format!("asking the node for the absence proof of {id}")),
        (Some(id), _) => client
            .ask(node.proof(id.clone()))
            .await
            .with_context(|| format!("asking the node for the inclusion proof of {id}")),
        (None, Some(call_id)) => {
            let records = client
                .ask(node.by_call_id(call_id.clone()))
                .await
                .with_context(|| format!("asking the node for the records of call id {call_id:?}"))?;
            let mut bundles = Vec::new();
            for record in &records {
                let id = record["id"].as_str().context("a record without id")?;
                bundles.push(
                    client
                        .ask(node.proof(id.to_string()))
                        .await
                        .with_context(|| format!("asking the node for the inclusion proof of {id}"))?,
                );
            }
            if bundles.is_empty() {
                anyhow::bail!("no committed record of call id {call_id:?}");
            }
            Ok(Value::Array(bundles))
        }
        (None, None) => anyhow::bail!("give an id (operator:sequence) or --call-id"),
    }
}

/// Adds the contract's latest checkpoint and a consistency proof from the node to each bundle.
async fn anchor_bundles(
    rpc: &str,
    token: Option<String>,
    rsk_rpc: &str,
    contract: &str,
    value: Value,
) -> anyhow::Result<Value> {
    let address = rsk::address(contract, "--contract")?;
    let (provider, rsk_chain_id) = rsk::reader(rsk_rpc).await?;
    let checkpoint = rsk::stored_checkpoint(&provider, address, None).await?.with_context(|| {
        format!("contract {address} on RSK chain {rsk_chain_id} stores no checkpoint yet: run `cdrchain relay` first")
    })?;
    let client = RpcClient::new(rpc, token)?;
    let one = !value.is_array();
    let mut out = Vec::new();
    for item in into_items(value) {
        let mut bundle: ProofBundle =
            serde_json::from_value(item).context("the node's bundle does not parse")?;
        if checkpoint.genesis_hash != bundle.chain.genesis_hash {
            anyhow::bail!(
                "contract {address} anchors chain {}, the node serves {}",
                checkpoint.genesis_hash,
                bundle.chain.genesis_hash
            );
        }
        let (a, b) = (checkpoint.cdr_log_size, bundle.header.cdr_log_size);
        let (old_size, new_size) = (a.min(b), a.max(b));
        let proof =
            client.ask(client.api().consistency_proof(old_size, new_size)).await.with_context(|| {
                format!("asking the node for a consistency proof from {old_size} to {new_size} CDRs")
            })?;
        bundle.anchor = Some(Anchor {
            rsk_chain_id,
            contract: EvmAddress(address.0 .0),
            checkpoint,
            consistency: serde_json::from_value(proof)
                .context("the node's consistency proof does not parse")?,
        });
        eprintln!(
            "anchored {} to checkpoint #{} (log of {} CDRs) in {address} on RSK chain {rsk_chain_id}",
            bundle.cdr.id(),
            checkpoint.height.0,
            checkpoint.cdr_log_size
        );
        out.push(serde_json::to_value(&bundle)?);
    }
    Ok(if one { out.pop().unwrap_or(Value::Null) } else { Value::Array(out) })
}

fn into_items(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        one => vec![one],
    }
}

/// What `verify --rsk-rpc` read from RSK for one bundle: the contract's checkpoint at the
/// bundle's anchor height, and the RSK block that stored it with the node's current block.
struct RskReading {
    onchain: Result<OnChain, String>,
    block: Option<(u64, u64)>,
}

async fn read_anchor(
    provider: &alloy::providers::DynProvider,
    rsk_chain_id: u64,
    contract: alloy::primitives::Address,
    bundle: &ProofBundle,
) -> anyhow::Result<RskReading> {
    let Some(anchor) = &bundle.anchor else {
        return Ok(RskReading { onchain: Err("no anchor".into()), block: None });
    };
    let height = anchor.checkpoint.height.0;
    let onchain = match rsk::stored_checkpoint(provider, contract, Some(height)).await? {
        Some(checkpoint) => Ok(OnChain { rsk_chain_id, contract: EvmAddress(contract.0 .0), checkpoint }),
        None => {
            Err(format!("contract {contract} on RSK chain {rsk_chain_id} stores no checkpoint #{height}"))
        }
    };
    let block = match rsk::stored_in_block(provider, contract, height).await? {
        (Some(block), current) => Some((block, current)),
        (None, _) => None,
    };
    Ok(RskReading { onchain, block })
}

/// The RSK node and contract `verify --rsk-rpc` reads anchors from, with the runtime to read.
struct RskReader {
    runtime: tokio::runtime::Runtime,
    provider: alloy::providers::DynProvider,
    rsk_chain_id: u64,
    contract: alloy::primitives::Address,
}

pub fn verify_command(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", args.bundle.display()))?;
    let values = into_items(value);
    let spec = match &args.chain {
        Some(chain) => Some(ChainSpec::load(chain).with_context(|| format!("loading chain spec `{chain}`"))?),
        None => None,
    };
    let authorities = match &spec {
        Some(spec) => authorities(spec)?,
        None => Vec::new(),
    };
    let expected =
        spec.as_ref().map(|spec| Expected { genesis_hash: spec.genesis_hash(), authorities: &authorities });
    let rsk = match (&args.rsk_rpc, &args.contract) {
        (Some(url), Some(contract)) => {
            let contract = rsk::address(contract, "--contract")?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting tokio")?;
            let (provider, rsk_chain_id) = runtime.block_on(rsk::reader(url))?;
            Some(RskReader { runtime, provider, rsk_chain_id, contract })
        }
        _ => None,
    };
    let mut worst = 0u8;
    for (index, value) in values.into_iter().enumerate() {
        let code = if value["format"] == cdrchain_runtime::proof::dispute::DISPUTE_FORMAT {
            verify_dispute_bundle(index, value, expected.as_ref())
        } else if value["kind"] == "absence" {
            verify_absence_bundle(index, value, expected.as_ref(), rsk.is_some())
        } else {
            verify_inclusion_bundle(index, value, expected.as_ref(), rsk.as_ref())?
        };
        worst = if worst == 1 || code == 1 { 1 } else { worst.max(code) };
    }
    Ok(ExitCode::from(worst))
}

/// The spec's authorities with their keys.
pub fn authorities(spec: &ChainSpec) -> anyhow::Result<Vec<(OperatorId, PublicKey)>> {
    // A loaded spec is checked: every authority is one of its operators.
    Ok(spec.authority_keys())
}

/// Checks and reports one absence bundle; its exit code (see [`report`]).
fn verify_absence_bundle(index: usize, value: Value, expected: Option<&Expected<'_>>, anchored: bool) -> u8 {
    let bundle: AbsenceBundle = match serde_json::from_value(value) {
        Ok(bundle) => bundle,
        Err(e) => {
            println!(
                "bundle {index}: INVALID: not a {} absence bundle: {e}",
                cdrchain_runtime::proof::FORMAT
            );
            return 1;
        }
    };
    let verdict = verify_absence(&bundle, expected);
    if anchored {
        println!("  note  absence is proven at the node's head, which no RSK anchor covers yet");
    }
    println!(
        "bundle {index}: ABSENCE of {}:{} on chain `{}`",
        bundle.operator, bundle.sequence.0, bundle.chain.id
    );
    report(
        &verdict,
        &format!("not recorded at block #{}, finalized by its authorities", bundle.header.number.0),
    )
}

/// Checks and reports one dispute bundle, then what its verified documents say; its exit code
/// (see [`report`]).
fn verify_dispute_bundle(index: usize, value: Value, expected: Option<&Expected<'_>>) -> u8 {
    use cdrchain_runtime::proof::dispute::{verify_dispute, DisputeBundle, DISPUTE_FORMAT};
    let bundle: DisputeBundle = match serde_json::from_value(value) {
        Ok(bundle) => bundle,
        Err(e) => {
            println!("bundle {index}: INVALID: not a {DISPUTE_FORMAT} bundle: {e}");
            return 1;
        }
    };
    println!("bundle {index}: DISPUTE {} proven at block #{}", bundle.dispute, bundle.header.number.0);
    let checked = verify_dispute(&bundle, expected);
    let settled = match &checked.settled {
        Some(amount) => format!("closed at {amount}"),
        None => "still open: nothing settled yet".to_string(),
    };
    let claim = format!(
        "dispute {} {settled}; the agreement, the statement and every step are the ones on chain at block #{}, finalized by its authorities",
        bundle.dispute, bundle.header.number.0
    );
    let code = report(&checked.verdict, &claim);
    if code != 1 {
        println!("  what the verified documents say:");
        for line in &checked.story {
            println!("    {line}");
        }
    }
    code
}

/// Checks and reports one inclusion bundle, against its RSK anchor with `rsk`; its exit code
/// (see [`report`]).
fn verify_inclusion_bundle(
    index: usize,
    value: Value,
    expected: Option<&Expected<'_>>,
    rsk: Option<&RskReader>,
) -> anyhow::Result<u8> {
    let bundle: ProofBundle = match serde_json::from_value(value) {
        Ok(bundle) => bundle,
        Err(e) => {
            println!("bundle {index}: INVALID: not a {} bundle: {e}", cdrchain_runtime::proof::FORMAT);
            return Ok(1);
        }
    };
    println!("bundle {index}: CDR {} on chain `{}`", bundle.cdr.id(), bundle.chain.id);
    let included = format!("included in block #{}, finalized by its authorities", bundle.header.number.0);
    let Some(rsk) = rsk else { return Ok(report(&verify(&bundle, expected), &included)) };
    let reading =
        rsk.runtime.block_on(read_anchor(&rsk.provider, rsk.rsk_chain_id, rsk.contract, &bundle))?;
    let verdict = verify_anchored(&bundle, expected, reading.onchain.as_ref().map_err(Clone::clone));
    let at = match reading.block {
        Some((block, current)) => {
            format!("RSK block {block} ({} confirmations)", current.saturating_sub(block) + 1)
        }
        None => "RSK (its CheckpointStored event was not found)".to_string(),
    };
    let height = bundle.anchor.as_ref().map_or(0, |a| a.checkpoint.height.0);
    let claim = if bundle.anchor_covers_cdr() {
        format!("{included}; the history up to block #{height}, anchored at {at}, was never rewritten")
    } else {
        format!("{included}; the history up to block #{height}, anchored at {at}, was never rewritten (the CDR came after it and is not anchored itself yet)")
    };
    Ok(report(&verdict, &claim))
}

/// Prints every check and the verdict; answers the exit code (0 valid, 1 invalid, 2 untrusted).
fn report(verdict: &Verdict, claim: &str) -> u8 {
    for check in &verdict.checks {
        match &check.outcome {
            Ok(detail) => println!("  ok    {:<20} {detail}", check.name),
            Err(reason) => println!("  FAIL  {:<20} {reason}", check.name),
        }
    }
    if verdict.valid {
        println!("  VALID: {claim}");
        0
    } else if !verdict.trusted
        && verdict.checks.iter().filter(|c| c.outcome.is_err()).all(|c| c.name == "chain spec")
    {
        println!(
            "  UNTRUSTED: consistent, but checked only against its own authority set (give --chain SPEC)"
        );
        2
    } else {
        println!("  INVALID");
        1
    }
}
