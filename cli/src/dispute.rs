//! `cdrchain dispute open|respond|close|show|list`: disputes of a statement, through the
//! operator's own node, sealed to the pair (issue #28, docs/settlement.md). Each step is a small
//! JSON document (`cdrchain-dispute-step` v1) with its evidence files inside, by name, BLAKE3 hash
//! and content; the chain keeps them sealed and in order.

use std::path::PathBuf;

use anyhow::{bail, Context};
use base64::Engine as _;
use cdrchain_node::rpc::api::{AgreementApiClient, DisputeApiClient, StatementApiClient, SystemApiClient};
use cdrchain_rating::{Agreement, Price};
use serde_json::{json, Value};

use crate::rpc_client::{ReadRpc, RpcClient};

/// The format name of a dispute step's document.
pub const STEP_FORMAT: &str = "cdrchain-dispute-step";

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Dispute statement ID (one proposed to the node's operator) instead of signing it, within
    /// the agreement's dispute window: a claim of at least the agreement's minimum amount, with
    /// evidence (reconcile reports, day-wise summaries, proof and absence bundles).
    Open {
        #[arg(long, value_name = "ID")]
        statement: String,
        #[arg(long, value_parser = ["volume", "rate", "duration", "missing"])]
        category: String,
        /// The amount claimed, in the agreement's currency (an exact decimal).
        #[arg(long, value_name = "AMOUNT")]
        claim: String,
        /// For a volume dispute: the calls of the period in the operator's own records. Refused
        /// when the difference with the statement's is within the agreement's volume tolerance.
        #[arg(long, value_name = "N")]
        own_calls: Option<u64>,
        #[arg(long, value_name = "FILE", num_args = 1..)]
        evidence: Vec<PathBuf>,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Respond to dispute ID: accept the claim, reject it, or counter with an amount.
    Respond {
        id: String,
        #[arg(long, conflicts_with_all = ["reject", "counter"])]
        accept: bool,
        #[arg(long, conflicts_with = "counter")]
        reject: bool,
        #[arg(long, value_name = "AMOUNT")]
        counter: Option<String>,
        #[arg(long, value_name = "FILE", num_args = 1..)]
        evidence: Vec<PathBuf>,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Close dispute ID at AMOUNT: proposes it, or confirms the other side's proposal of the
    /// same amount (both sign). Closed, the statement's period is final.
    Close {
        id: String,
        #[arg(long, value_name = "AMOUNT")]
        amount: String,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Show dispute ID and every step (their documents when the node can open them).
    Show {
        id: String,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Write dispute ID's bundle to FILE: the agreement, the statement and every step with its
    /// evidence, opened, and each proven into the head's finalized header. Anyone it is handed to
    /// checks it offline with `cdrchain verify FILE --chain SPEC`. Only the pair's nodes can.
    Bundle {
        id: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// The disputes of a pair's statements.
    List {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
        #[command(flatten)]
        rpc: ReadRpc,
    },
}

pub fn run(command: Command) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        match command {
            Command::Open { statement, category, claim, own_calls, evidence, note, rpc } => {
                let client = rpc.client()?;
                let (document, agreement) = statement_and_terms(&client, &statement).await?;
                let claimed = amount(&claim)?;
                if claimed < agreement.dispute.minimum_amount {
                    bail!(
                        "the claim {claim} {} is below the agreement's minimum of {}",
                        agreement.currency,
                        agreement.dispute.minimum_amount
                    );
                }
                if let (Some(own), "volume") = (own_calls, category.as_str()) {
                    check_volume(&document, own, &agreement)?;
                }
                let step = json!({
                    "format": STEP_FORMAT, "version": 1, "kind": "open", "statement": statement,
                    "category": category, "claim": claim, "currency": agreement.currency,
                    "own_calls": own_calls, "note": note, "evidence": evidence_json(&evidence)?,
                });
                let answer = client.ask(client.api().dispute_open(statement.clone(), step.to_string())).await.context("opening the dispute")?;
                let id = answer["dispute"].as_str().unwrap_or("?");
                println!("opened dispute {id} of statement {statement}: {category}, claim {claim} {}", agreement.currency);
                Ok(())
            }
            Command::Respond { id, accept, reject, counter, evidence, note, rpc } => {
                let answer = match (accept, reject, &counter) {
                    (true, _, _) => "accept",
                    (_, true, _) => "reject",
                    (_, _, Some(amount_text)) => {
                        amount(amount_text)?;
                        "counter"
                    }
                    _ => bail!("say --accept, --reject or --counter AMOUNT"),
                };
                let step = json!({
                    "format": STEP_FORMAT, "version": 1, "kind": "respond", "answer": answer,
                    "amount": counter, "note": note, "evidence": evidence_json(&evidence)?,
                });
                let client = rpc.client()?;
                client.ask(client.api().dispute_step(id.clone(), "respond".into(), step.to_string())).await.context("responding")?;
                println!("responded to dispute {id}: {answer}");
                Ok(())
            }
            Command::Close { id, amount: text, rpc } => {
                amount(&text)?;
                let client = rpc.client()?;
                let record = client.ask(client.api().dispute_get(id.clone())).await.context("reading the dispute")?;
                anyhow::ensure!(!record.is_null(), "no dispute {id} on the chain");
                let me = client.ask(client.api().properties()).await.context("asking the node who it is")?.operator;
                let last = record["steps"].as_array().and_then(|steps| steps.last()).cloned().unwrap_or(Value::Null);
                let proposed: Option<Value> = last["opening"]["document"].as_str().and_then(|d| serde_json::from_str(d).ok());
                let theirs = last["kind"] == "propose-close" && last["by"] != me.as_str();
                if theirs && proposed.as_ref().is_some_and(|d| same_amount(&d["amount"], &text)) {
                    client.ask(client.api().dispute_confirm(id.clone())).await.context("confirming the close")?;
                    println!("confirmed: dispute {id} closes at {text}; the statement's period is final");
                } else {
                    let step = json!({ "format": STEP_FORMAT, "version": 1, "kind": "propose-close", "amount": text });
                    client.ask(client.api().dispute_step(id.clone(), "propose-close".into(), step.to_string())).await.context("proposing to close")?;
                    println!("proposed to close dispute {id} at {text}; the other side confirms with `cdrchain dispute close {id} --amount {text}`");
                }
                Ok(())
            }
            Command::Show { id, rpc } => {
                let client = rpc.client()?;
                let record = client.ask(client.api().dispute_get(id.clone())).await.context("reading the dispute")?;
                anyhow::ensure!(!record.is_null(), "no dispute {id} on the chain");
                let closed = record["closed_at"].as_u64().map_or("open".to_string(), |h| format!("closed at #{h}"));
                println!("dispute {id} of statement {} by `{}` against `{}`: {closed}", text(&record["statement"]), text(&record["opener"]), text(&record["respondent"]));
                for step in record["steps"].as_array().into_iter().flatten() {
                    let summary = step["opening"]["document"].as_str().map_or_else(
                        || "sealed to the pair".to_string(),
                        |d| serde_json::from_str::<Value>(d).map(|d| summarize(&d)).unwrap_or_else(|_| d.to_string()),
                    );
                    println!("  #{} `{}` {}: {summary}", step["at"], text(&step["by"]), text(&step["kind"]));
                }
                Ok(())
            }
            Command::Bundle { id, out, rpc } => write_bundle(&rpc.client()?, &id, &out).await,
            Command::List { a, b, rpc } => {
                let client = rpc.client()?;
                let list = client.ask(client.api().dispute_list(a, b)).await.context("reading the pair's disputes")?;
                for record in list["disputes"].as_array().into_iter().flatten() {
                    let closed = record["closed_at"].as_u64().map_or("open".to_string(), |h| format!("closed at #{h}"));
                    println!("dispute {} of statement {} by `{}`: {} steps, {closed}", text(&record["id"]), text(&record["statement"]), text(&record["opener"]), record["steps_count"]);
                }
                Ok(())
            }
        }
    })
}

/// Writes dispute `id`'s bundle from the node to `out`.
async fn write_bundle(client: &RpcClient, id: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let bundle = client
        .ask(client.api().dispute_bundle(id.to_string()))
        .await
        .context("asking the node for the dispute's bundle")?;
    let text = serde_json::to_string_pretty(&bundle)? + "\n";
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    let steps = bundle["step_openings"].as_array().map_or(0, Vec::len);
    let (path, height) = (out.display(), &bundle["header"]["number"]);
    println!(
        "wrote {path}: dispute {id}, {steps} steps, proven at block #{height} ({} bytes); check it with \
         `cdrchain verify {path} --chain SPEC`",
        text.len()
    );
    Ok(())
}

/// The statement's opened document and the agreement it was made under, opened by the node.
pub(crate) async fn statement_and_terms(
    client: &RpcClient,
    statement: &str,
) -> anyhow::Result<(Value, Agreement)> {
    let record = client
        .ask(client.api().statement_get(statement.to_string()))
        .await
        .context("reading the statement")?;
    anyhow::ensure!(!record.is_null(), "no statement {statement} on the chain");
    let Some(document) = record["opening"]["document"].as_str() else {
        bail!("the node cannot open statement {statement}")
    };
    let document: Value = serde_json::from_str(document).context("the statement document")?;
    let agreement_id = text(&record["agreement"]);
    let agreement = client
        .ask(client.api().agreement_get(agreement_id.clone()))
        .await
        .context("reading the agreement")?;
    let Some(terms) = agreement["opening"]["document"].as_str() else {
        bail!("the node cannot open agreement {agreement_id}")
    };
    Ok((document, Agreement::from_json(terms).context("the agreement")?))
}

/// A volume dispute must show a difference beyond the agreement's tolerance.
fn check_volume(statement: &Value, own: u64, agreement: &Agreement) -> anyhow::Result<()> {
    let stated = statement["calls"].as_u64().unwrap_or(0);
    let difference = stated.abs_diff(own);
    // difference / stated > tolerance / 100, in integers of the price scale (10^-9).
    let tolerance = agreement.dispute.volume_tolerance_percent.0;
    let beyond = i128::from(difference) * 100 * 1_000_000_000 > tolerance * i128::from(stated.max(1));
    if !beyond {
        bail!(
            "the statement counts {stated} calls and your records {own}: a difference of {difference}, within the \
             agreement's volume tolerance of {} %",
            trimmed(&agreement.dispute.volume_tolerance_percent)
        );
    }
    Ok(())
}

fn evidence_json(files: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    files
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading evidence {}", path.display()))?;
            Ok(json!({
                "name": path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
                "blake3": format!("0x{}", blake3::hash(&bytes).to_hex()),
                "bytes": bytes.len(),
                "content_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }))
        })
        .collect()
}

fn amount(text: &str) -> anyhow::Result<Price> {
    Price::parse(text).map_err(|e| anyhow::anyhow!("amount `{text}`: {e}"))
}

/// A price as the agreement wrote it: without the trailing zeros of its nine decimals.
fn trimmed(price: &Price) -> String {
    let text = price.to_string();
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn same_amount(value: &Value, text: &str) -> bool {
    match (value.as_str().map(Price::parse), Price::parse(text)) {
        (Some(Ok(a)), Ok(b)) => a == b,
        _ => false,
    }
}

fn summarize(step: &Value) -> String {
    let evidence: Vec<String> = step["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{} ({} bytes, {})", text(&e["name"]), e["bytes"], text(&e["blake3"])))
        .collect();
    let evidence =
        if evidence.is_empty() { String::new() } else { format!("; evidence: {}", evidence.join(", ")) };
    match step["kind"].as_str() {
        Some("open") => format!(
            "{} claim of {} {}{evidence}",
            text(&step["category"]),
            text(&step["claim"]),
            text(&step["currency"])
        ),
        Some("respond") => {
            format!("{} {}{evidence}", text(&step["answer"]), step["amount"].as_str().unwrap_or(""))
        }
        Some("propose-close") => format!("close at {}", text(&step["amount"])),
        _ => step.to_string(),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
