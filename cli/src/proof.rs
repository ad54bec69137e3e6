//! `cdrchain proof` (fetch an inclusion proof bundle from a node) and `cdrchain verify` (check
//! one with no network). See docs/proofs.md.
//!
//! `verify` exit codes: 0 every check passed against the given chain spec; 1 a check failed;
//! 2 the bundle is consistent but no `--chain` was given, so its authority set is unchecked.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cdrchain_chain_spec::ChainSpec;
use cdrchain_runtime::crypto::PublicKey;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::proof::{verify, verify_absence, AbsenceBundle, Expected, ProofBundle, Verdict};
use serde_json::{json, Value};

use crate::rpc_client::RpcClient;

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
    /// Write the bundle here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The bundle (a JSON file from `cdrchain proof`; an array of bundles is checked one by one).
    pub bundle: PathBuf,
    /// The chain spec to check the bundle's chain and authority set against (`dev`, `local`, or
    /// a file). Without it the verdict cannot be trusted (exit 2).
    #[arg(long, value_name = "dev|local|PATH")]
    pub chain: Option<String>,
}

pub fn proof(args: ProofArgs) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let value = runtime.block_on(async {
        let client = RpcClient::new(&args.rpc, None)?;
        match (&args.id, &args.call_id) {
            (Some(id), _) if args.absent => client
                .call("cdr_absenceProof", json!([id]))
                .await
                .with_context(|| format!("cdr_absenceProof({id})")),
            (Some(id), _) => {
                client.call("cdr_proof", json!([id])).await.with_context(|| format!("cdr_proof({id})"))
            }
            (None, Some(call_id)) => {
                let records = client.call("cdr_byCallId", json!([call_id])).await.context("cdr_byCallId")?;
                let mut bundles = Vec::new();
                for record in records.as_array().into_iter().flatten() {
                    let id = record["id"].as_str().context("a record without id")?;
                    bundles.push(
                        client
                            .call("cdr_proof", json!([id]))
                            .await
                            .with_context(|| format!("cdr_proof({id})"))?,
                    );
                }
                if bundles.is_empty() {
                    anyhow::bail!("no committed record of call id {call_id:?}");
                }
                Ok(Value::Array(bundles))
            }
            (None, None) => anyhow::bail!("give an id (operator:sequence) or --call-id"),
        }
    })?;
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

pub fn verify_command(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", args.bundle.display()))?;
    let values = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    let spec = match &args.chain {
        Some(chain) => Some(ChainSpec::load(chain).with_context(|| format!("loading chain spec `{chain}`"))?),
        None => None,
    };
    let authorities: Vec<(OperatorId, PublicKey)> = match &spec {
        Some(spec) => spec
            .authorities
            .iter()
            .map(|id| {
                spec.operators
                    .iter()
                    .find(|o| &o.id == id)
                    .map(|o| (id.clone(), o.ed25519))
                    .with_context(|| format!("authority `{id}` is not an operator of the spec"))
            })
            .collect::<anyhow::Result<_>>()?,
        None => Vec::new(),
    };
    let expected =
        spec.as_ref().map(|spec| Expected { genesis_hash: spec.genesis_hash(), authorities: &authorities });
    let mut worst = 0u8;
    for (index, value) in values.into_iter().enumerate() {
        if value["kind"] == "absence" {
            let bundle: AbsenceBundle = match serde_json::from_value(value) {
                Ok(bundle) => bundle,
                Err(e) => {
                    println!(
                        "bundle {index}: INVALID: not a {} absence bundle: {e}",
                        cdrchain_runtime::proof::FORMAT
                    );
                    worst = worst.max(1);
                    continue;
                }
            };
            let verdict = verify_absence(&bundle, expected.as_ref());
            println!(
                "bundle {index}: ABSENCE of {}:{} on chain `{}`",
                bundle.operator, bundle.sequence.0, bundle.chain.id
            );
            let code = report(&verdict, &format!("not recorded at block #{}", bundle.header.number.0));
            worst = if worst == 1 || code == 1 { 1 } else { worst.max(code) };
            continue;
        }
        let bundle: ProofBundle = match serde_json::from_value(value) {
            Ok(bundle) => bundle,
            Err(e) => {
                println!("bundle {index}: INVALID: not a {} bundle: {e}", cdrchain_runtime::proof::FORMAT);
                worst = worst.max(1);
                continue;
            }
        };
        let verdict = verify(&bundle, expected.as_ref());
        println!("bundle {index}: CDR {} on chain `{}`", bundle.cdr.id(), bundle.chain.id);
        let code = report(&verdict, &format!("included in block #{}", bundle.header.number.0));
        worst = if worst == 1 || code == 1 { 1 } else { worst.max(code) };
    }
    Ok(ExitCode::from(worst))
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
        println!("  VALID: {claim}, finalized by its authorities");
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
