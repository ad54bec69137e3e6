//! `cdrchain reconcile`: an operator's own CDR export (any ingest format) against the chain's
//! records of the calls with one partner (docs/proofs.md, "Reconciliation"). The file is read
//! and its parties hashed locally, exactly as ingest does, with the consortium secret; the chain's
//! records come from the node (`cdr_query`). Exit 0: no differences; 3: differences reported;
//! 1: an error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use cdrchain_node::rpc::api::{CdrApiClient, SystemApiClient};
use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::reconcile::{from_node_answer, reconcile, window_of, Report};
use serde_json::Value;

use crate::rpc_client::RpcClient;
use crate::settlement::{time_param, when};
use crate::submit::{self, Format};

/// Exit code when differences were found.
pub const DIFFERENCES: u8 = 3;

/// CDRs asked for per `cdr_query` page (the node's largest page).
const QUERY_PAGE_CDRS: usize = 10_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The interconnect partner whose calls with you are compared.
    #[arg(long, value_name = "OP")]
    pub partner: String,
    #[command(flatten)]
    pub export: Export,
    /// Calls that started at or after this time (RFC 3339 or ms since the Unix epoch); default:
    /// the file's first call between you and the partner.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// ... and before this time; default: just after the file's last call.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Start times and billable durations that differ by at most this many seconds agree.
    #[arg(long, default_value_t = 2)]
    pub tolerance_s: u64,
    /// You (the operator whose export this is); default: the node's operator.
    #[arg(long, value_name = "OP")]
    pub operator: Option<String>,
    /// The node's RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
    pub rpc: String,
    /// Bearer token (a `read` role is enough), when the node requires one.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Also write every difference as CSV (kind, line, chain id, call id, field, mine, chain).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also write the whole report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// An operator's own CDR export and how to read it as ingest would (shared by `reconcile` and
/// `statement compare`).
#[derive(Debug, clap::Args)]
pub struct Export {
    /// Your own CDR export.
    #[arg(long, value_name = "FILE")]
    pub mine: PathBuf,
    /// The export's format (as `cdrchain submit --format`).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    #[command(flatten)]
    pub parties: crate::party_secret::PartySecret,
    /// The time zone of local times in the file (Asterisk; see `submit --timezone`).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// The switch's system id, for sources that do not name themselves.
    #[arg(long, value_name = "ID")]
    pub system_id: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let report = runtime.block_on(compare(&args))?;
    print!("{}", table(&report));
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&report)?).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(if report.differences() == 0 { ExitCode::SUCCESS } else { ExitCode::from(DIFFERENCES) })
}

async fn compare(args: &Args) -> anyhow::Result<Report> {
    let client = RpcClient::new(&args.rpc, args.token.clone())?;
    let properties = client.ask(client.api().properties()).await.context("asking the node who it is")?;
    let me = args.operator.clone().unwrap_or(properties.operator);
    let me = OperatorId::new(&me).with_context(|| format!("operator {me:?}"))?;
    let partner = OperatorId::new(&args.partner).with_context(|| format!("--partner {:?}", args.partner))?;
    if me == partner {
        bail!("--partner is `{partner}`, which is you: name the other operator");
    }
    let mine = read_mine(&args.export, &me, properties.chain == "dev")?;
    let (from, to) = window(args, &mine, &me, &partner)?;

    // The chain's records of the pair, a tolerance wider on each side so that edge calls match.
    let tolerance_ms = args.tolerance_s.saturating_mul(1_000);
    let window = (from.saturating_sub(tolerance_ms), to.saturating_add(tolerance_ms));
    let chain = chain_records(&client, &me, &partner, window).await?;
    let report = reconcile(&me, &partner, &mine, &chain, tolerance_ms, (from, to));
    eprintln!(
        "compared {} record(s) of {} with {} chain record(s) between {me} and {partner}, calls started in [{}, {})",
        mine.len(),
        args.export.mine.display(),
        chain.len(),
        when(from),
        when(to)
    );
    if report.parties_differ_everywhere() {
        eprintln!(
            "hint: every matched call differs in both parties: is the consortium secret (and --default-region) the chain's?"
        );
    }
    Ok(report)
}

/// The file, read and its parties hashed as ingest would; what does not read is reported on
/// standard error and left out.
pub fn read_mine(args: &Export, me: &OperatorId, dev_chain: bool) -> anyhow::Result<Vec<Cdr>> {
    let hasher =
        args.parties.hasher(dev_chain, "parties are compared as digests keyed with the consortium secret")?;
    let timezone = submit::timezone(args.timezone.as_deref())?;
    let format = submit::detect(&args.mine, args.format)?;
    let ctx = cdrchain_formats::Context { operator: me.to_string(), system_id: args.system_id.clone() };
    let file = submit::read(&args.mine, format, &ctx, timezone)?;
    let (mine, unreadable) = cdrchain_formats::file::hashed(file.records, me, &hasher);
    for line in file.refused {
        eprintln!("not reconciled (unreadable): {line}");
    }
    for error in unreadable {
        eprintln!("not reconciled (unreadable): {}:{}: {}", args.mine.display(), error.line, error.reason);
    }
    Ok(mine)
}

/// The window of start times compared, `[from, to)` in ms: given, or the file's calls with the
/// partner.
fn window(args: &Args, mine: &[Cdr], me: &OperatorId, partner: &OperatorId) -> anyhow::Result<(u64, u64)> {
    let span = window_of(mine, partner);
    let bound = |given: &Option<String>, what: &'static str, fallback: Option<u64>| -> anyhow::Result<u64> {
        match given {
            Some(text) => cdrchain_runtime::input::time_ms(what, &time_param(text))
                .map_err(|e| anyhow::anyhow!("--{what}: {e}")),
            None => fallback.with_context(|| {
                format!("the file holds no call between {me} and {partner}: give --from and --to")
            }),
        }
    };
    let from = bound(&args.from, "from", span.map(|(from, _)| from))?;
    let to = bound(&args.to, "to", span.map(|(_, to)| to))?;
    if from >= to {
        bail!("the window [{from}, {to}) ms is empty");
    }
    Ok((from, to))
}

/// Every CDR the node holds between `me` and `partner` that started in `[from, to)`, page by
/// page.
async fn chain_records(
    client: &RpcClient,
    me: &OperatorId,
    partner: &OperatorId,
    (from, to): (u64, u64),
) -> anyhow::Result<Vec<Cdr>> {
    let mut chain = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let call = client.api().query(
            me.to_string(),
            partner.to_string(),
            Value::from(from),
            Value::from(to),
            cursor.clone(),
            Some(QUERY_PAGE_CDRS),
        );
        let page = client.ask(call).await.context("asking the node for the pair's CDRs")?;
        for value in page.cdrs {
            chain.push(from_node_answer(value).context("the node returned a CDR that does not parse")?);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(chain),
        }
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1_000, ms % 1_000)
}

/// The report as a readable text.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "reconciliation of {} with {} (tolerance {} s)\n  matched {}, mismatched {}, missing on chain {}, missing in file {}\n",
        report.me,
        report.partner,
        seconds(report.tolerance_ms),
        report.matched,
        report.mismatched.len(),
        report.missing_on_chain.len(),
        report.missing_in_file.len()
    );
    if !report.mismatched.is_empty() {
        out.push_str("\nmismatched (line, chain id, call id: field mine / chain)\n");
        for m in &report.mismatched {
            let fields: Vec<String> =
                m.differences.iter().map(|d| format!("{} {} / {}", d.field, d.mine, d.chain)).collect();
            out.push_str(&format!(
                "  line {:<6} {:<16} {}: {}\n",
                m.line,
                m.id,
                m.call_id,
                fields.join("; ")
            ));
        }
    }
    if !report.missing_on_chain.is_empty() {
        out.push_str("\nmissing on chain (in your file only)\n");
        for u in &report.missing_on_chain {
            out.push_str(&format!(
                "  line {:<6} {} ({} -> {}, started {})\n",
                u.line.unwrap_or_default(),
                u.call_id,
                u.from,
                u.to,
                when(u.start_ms)
            ));
        }
    }
    if !report.missing_in_file.is_empty() {
        out.push_str("\nmissing in file (on the chain only)\n");
        for u in &report.missing_in_file {
            out.push_str(&format!(
                "  {:<16} {} ({} -> {}, started {})\n",
                u.id.as_deref().unwrap_or_default(),
                u.call_id,
                u.from,
                u.to,
                when(u.start_ms)
            ));
        }
    }
    out.push_str(&format!(
        "\n{:<28} {:>12} {:>12} {:>14} {:>14} {:>16} {:>16}\n",
        "direction",
        "calls mine",
        "calls chain",
        "answered mine",
        "answered chain",
        "billable s mine",
        "billable s chain"
    ));
    for t in &report.totals {
        out.push_str(&format!(
            "{:<28} {:>12} {:>12} {:>14} {:>14} {:>16} {:>16}\n",
            format!("{} -> {}", t.from, t.to),
            t.mine.calls,
            t.chain.calls,
            t.mine.answered,
            t.chain.answered,
            t.mine.billable_seconds,
            t.chain.billable_seconds
        ));
    }
    out
}

/// Every difference, one per CSV row (the portal's download is the same file).
pub fn csv(report: &Report) -> anyhow::Result<Vec<u8>> {
    cdrchain_formats::reconciliation::report_csv(report).context("writing CSV")
}
