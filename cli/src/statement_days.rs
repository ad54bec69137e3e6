//! `cdrchain statement compare`: a statement's day-wise summary against the operator's own CDR
//! export, the first step the industry's dispute process takes (day-wise summaries first, then
//! the calls of the days that differ; docs/settlement.md). The export is read as `reconcile`
//! reads it; its calls with the partner are counted once each, by local day in the agreement's
//! time zone and direction, exactly as the statement counts them. Exit 0: every day agrees;
//! 3: days differ (printed, and written with `--out` as evidence for `dispute open`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use cdrchain_node::rpc::api::SystemApiClient;
use cdrchain_rating::money::Amount;
use cdrchain_rating::rate::{Call, Direction};
use cdrchain_rating::{Agreement, Rater};
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::settlement::{count_once, of_pair};
use chrono::TimeZone as _;
use serde_json::Value;

use crate::reconcile::{read_mine, Export, DIFFERENCES};
use crate::rpc_client::{ReadRpc, RpcClient};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The statement's id (`statement show --a A --b B` lists them).
    pub id: String,
    #[command(flatten)]
    pub export: Export,
    /// Write every day and direction (statement's calls, yours, the difference) as CSV: the
    /// day-wise summary to attach to `dispute open --evidence`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub rpc: ReadRpc,
}

/// One day and direction: the statement's rated calls and amount, and the export's.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    statement: u64,
    statement_amount: String,
    mine: u64,
    /// In units of the agreement's rounding.
    mine_units: i128,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let client = args.rpc.client()?;
    let (document, agreement, me, dev) = runtime.block_on(fetch(&client, &args.id))?;
    let body = &document["statement"];
    let mut days: BTreeMap<(String, String), Counts> = BTreeMap::new();
    for (day, directions) in body["days"].as_object().into_iter().flatten() {
        for (direction, sum) in directions.as_object().into_iter().flatten() {
            let counts = days.entry((day.clone(), direction.clone())).or_default();
            counts.statement = sum["calls"].as_u64().unwrap_or(0);
            counts.statement_amount = sum["amount"].as_str().unwrap_or("0").to_string();
        }
    }
    let (a, b) = (OperatorId::new(&agreement.a)?, OperatorId::new(&agreement.b)?);
    if me != a && me != b {
        bail!("this node's operator `{me}` is neither `{a}` nor `{b}`: compare on your own node");
    }
    let zone: chrono_tz::Tz =
        agreement.time_zone.parse().map_err(|e| anyhow::anyhow!("the agreement's time zone: {e}"))?;
    let period = (body["from_ms"].as_u64().unwrap_or(0), body["to_ms"].as_u64().unwrap_or(0));
    let mine = read_mine(&args.export, &me, dev)?;
    let of_period =
        mine.iter().filter(|c| of_pair(c, &a, &b) && (period.0..period.1).contains(&c.body.start_ms));
    let calls = count_once(of_period);
    let rater = Rater::new(&agreement).map_err(|e| anyhow::anyhow!("the agreement: {e}"))?;
    let mut unrated = 0u64;
    for call in &calls {
        let direction = if call.body.caller_operator == a { Direction::AToB } else { Direction::BToA };
        let destination = call.body.destination.map(|d| d.digits()).unwrap_or_default();
        let start_ms = i64::try_from(call.body.start_ms).unwrap_or(i64::MAX);
        let rated =
            Call { direction, start_ms, duration_ms: call.body.billable_ms(), destination: &destination };
        let (Ok(rated), Some(day)) = (rater.rate(&rated), zone.timestamp_millis_opt(start_ms).single())
        else {
            unrated += 1;
            continue;
        };
        let name = if direction == Direction::AToB { "a-to-b" } else { "b-to-a" };
        let counts = days.entry((day.format("%Y-%m-%d").to_string(), name.to_string())).or_default();
        counts.mine += 1;
        counts.mine_units += rated.amount.units;
    }
    let decimals = agreement.rounding.decimals;
    let differing: Vec<_> = days.iter().filter(|(_, c)| c.statement != c.mine).collect();
    let total = |f: fn(&Counts) -> u64| days.values().map(f).sum::<u64>();
    println!(
        "statement {} of `{a}`–`{b}`: {} calls; your export {}: {} calls of the pair in the period",
        args.id,
        total(|c| c.statement),
        args.export.mine.display(),
        total(|c| c.mine)
    );
    let currency = &agreement.currency;
    if unrated > 0 {
        println!("  {unrated} of your calls cannot be rated (as the statement, which counts its own apart, under `unrated`)");
    }
    for ((day, direction), counts) in &differing {
        let difference = i128::from(counts.mine) - i128::from(counts.statement);
        let amount = Amount { units: counts.mine_units, decimals };
        println!(
            "  {day} {direction}: statement {} calls ({} {currency}), yours {} ({amount} {currency}): {difference:+} calls",
            counts.statement, counts.statement_amount, counts.mine
        );
    }
    if differing.is_empty() {
        println!("every day agrees ({} days and directions)", days.len());
    } else {
        println!(
            "{} of {} days and directions differ: reconcile those days record by record (`cdrchain reconcile --from DAY --to NEXT-DAY`)",
            differing.len(),
            days.len()
        );
    }
    if let Some(path) = &args.out {
        let mut csv = String::from(
            "day,direction,statement_calls,statement_amount,your_calls,your_amount,difference\n",
        );
        for ((day, direction), c) in &days {
            let difference = i128::from(c.mine) - i128::from(c.statement);
            let amount = Amount { units: c.mine_units, decimals };
            csv.push_str(&format!(
                "{day},{direction},{},{},{},{amount},{difference}\n",
                c.statement, c.statement_amount, c.mine
            ));
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(if differing.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(DIFFERENCES) })
}

/// The statement's opened document, its agreement, this node's operator and whether it runs
/// the dev chain.
async fn fetch(client: &RpcClient, id: &str) -> anyhow::Result<(Value, Agreement, OperatorId, bool)> {
    let properties = client.ask(client.api().properties()).await.context("asking the node who it is")?;
    let (document, agreement) = crate::dispute::statement_and_terms(client, id).await?;
    let me = OperatorId::new(&properties.operator)
        .with_context(|| format!("operator {:?}", properties.operator))?;
    Ok((document, agreement, me, properties.chain == "dev"))
}
