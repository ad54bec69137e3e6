//! `cdrchain settlement`: the totals two interconnect partners settle on, from a node's
//! `settlement_summary` (docs/proofs.md, "Settlement"). Both partners run it with the same
//! window, rounding and `--at` height and get the same numbers, stated with the block they were
//! computed at.

use anyhow::Context;
use cdrchain_node::rpc::api::SettlementApiClient;
use serde_json::{json, Value};

use crate::rpc_client::RpcClient;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One partner (an operator id of the chain).
    #[arg(long, value_name = "OP")]
    pub a: String,
    /// The other partner.
    #[arg(long, value_name = "OP")]
    pub b: String,
    /// Calls that started at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z, or ms since
    /// the Unix epoch).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// ... and before this time (exclusive).
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Billing increments per answered call: per-second (1/1), per-minute (60/60), or
    /// FIRST/INCREMENT in seconds such as 60/6 (a minute's minimum, then six-second steps) or
    /// 30/6. A started second counts.
    #[arg(long, default_value = "per-second", value_name = "RULE")]
    pub rounding: String,
    /// Count only CDRs committed at or below this block (default: the node's head). Give both
    /// partners' runs the same height to compare their numbers.
    #[arg(long, value_name = "HEIGHT")]
    pub at: Option<u64>,
    /// The node's RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
    pub rpc: String,
    /// Bearer token (a `read` role is enough), when the node requires one.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A time argument as the RPC takes it: integer milliseconds, or RFC 3339 text.
pub fn time_param(text: &str) -> Value {
    match text.trim().parse::<u64>() {
        Ok(ms) => json!(ms),
        Err(_) => json!(text.trim()),
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC, for people.
pub fn when(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let summary = runtime.block_on(async {
        let client = RpcClient::new(&args.rpc, args.token.clone())?;
        let call = client.api().summary(
            args.a.clone(),
            args.b.clone(),
            time_param(&args.from),
            time_param(&args.to),
            Some(args.rounding.clone()),
            args.at.map(Value::from),
        );
        client.ask(call).await.context("asking the node for the settlement summary")
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    print!("{}", table(&summary));
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "0".to_string(),
        other => other.to_string(),
    }
}

/// The summary as a readable table.
pub fn table(summary: &Value) -> String {
    let at = &summary["at"];
    let mut out = format!(
        "settlement {} <-> {}: calls started in [{}, {}), rounding {}\n\
         computed at block #{} {}\n  state root {}\n  CDR log root {} ({} CDRs)\n\n",
        text(&summary["a"]),
        text(&summary["b"]),
        when(summary["from"].as_u64().unwrap_or_default()),
        when(summary["to"].as_u64().unwrap_or_default()),
        text(&summary["rounding"]),
        text(&at["height"]),
        text(&at["block_hash"]),
        text(&at["state_root"]),
        text(&at["cdr_log_root"]),
        text(&at["cdr_log_size"]),
    );
    out.push_str(&format!(
        "{:<28} {:>8} {:>9} {:>12} {:>10} {:>11}   {:>5} {:>9} {:>6} {:>9}\n",
        "direction",
        "calls",
        "answered",
        "billable s",
        "billed s",
        "billed min",
        "busy",
        "no-answer",
        "failed",
        "cancelled"
    ));
    for d in summary["directions"].as_array().into_iter().flatten() {
        let by = &d["by_disposition"];
        out.push_str(&format!(
            "{:<28} {:>8} {:>9} {:>12} {:>10} {:>11}   {:>5} {:>9} {:>6} {:>9}\n",
            format!("{} -> {}", text(&d["from"]), text(&d["to"])),
            text(&d["calls"]),
            text(&d["answered"]),
            text(&d["billable_seconds"]),
            text(&d["billed_seconds"]),
            text(&d["billed_minutes"]),
            text(&by["busy"]),
            text(&by["no-answer"]),
            text(&by["failed"]),
            text(&by["cancelled"]),
        ));
    }
    out.push_str(&format!(
        "\n{} records read, {} calls counted (each call once, however many records it has)\n",
        text(&summary["records"]),
        text(&summary["calls"])
    ));
    out
}
