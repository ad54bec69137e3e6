//! `cdrchain submit`: send CDR files to a node over JSON-RPC (`cdr_submit`), in chunks, with a
//! progress bar and a summary. Formats: canonical JSON (an array or one object), NDJSON, CSV with
//! the canonical field names as header.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use crate::rpc_client::{RpcClient, RpcError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Decide from the file's extension (.json, .ndjson/.jsonl, .csv).
    Auto,
    Json,
    Ndjson,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Stop at the first refused CDR (CDRs of earlier chunks stay submitted).
    Abort,
    /// Report refused CDRs and submit the rest.
    Skip,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The files to submit.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The node's RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:9944", env = "CDRCHAIN_RPC")]
    pub rpc: String,
    /// Bearer token, when the node requires one.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// What to do with a CDR the node refuses.
    #[arg(long, value_enum, default_value = "abort")]
    pub on_error: OnError,
    /// CDRs per request.
    #[arg(long, default_value_t = 5_000)]
    pub chunk: usize,
}

/// One record and where it came from.
struct Record {
    value: Value,
    line: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(submit(args))
}

async fn submit(args: Args) -> anyhow::Result<()> {
    let client = RpcClient::new(&args.rpc, args.token.clone())?;
    let mut files = Vec::new();
    for path in &args.files {
        let records = read(path, args.format)?;
        files.push((path.clone(), records));
    }
    let total: usize = files.iter().map(|(_, r)| r.len()).sum();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} CDRs {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut accepted, mut refused) = (0usize, Vec::<String>::new());
    let (mut first_id, mut last_id) = (None::<String>, None::<String>);
    for (path, records) in &files {
        for chunk in records.chunks(args.chunk.max(1)) {
            let mut pending: Vec<&Record> = chunk.iter().collect();
            while !pending.is_empty() {
                let values: Vec<&Value> = pending.iter().map(|r| &r.value).collect();
                match client.call("cdr_submit", json!([values])).await {
                    Ok(ids) => {
                        let ids: Vec<String> =
                            serde_json::from_value(ids).context("the node's answer is not a list of ids")?;
                        accepted += ids.len();
                        first_id = first_id.or_else(|| ids.first().cloned());
                        last_id = ids.last().cloned().or(last_id);
                        bar.inc(ids.len() as u64);
                        break;
                    }
                    Err(error) => {
                        let Some(rpc) = error.downcast_ref::<RpcError>() else { return Err(error) };
                        let index = rpc
                            .data
                            .get("index")
                            .and_then(Value::as_u64)
                            .and_then(|i| usize::try_from(i).ok());
                        let Some(index) = index.filter(|i| *i < pending.len()) else {
                            bail!("{}: the node refused the submission: {}", path.display(), rpc.message);
                        };
                        let record = pending.remove(index);
                        let reason = rpc.message.split_once(": ").map_or(rpc.message.as_str(), |(_, r)| r);
                        let report = format!("{}:{}: {reason}", path.display(), record.line);
                        if args.on_error == OnError::Abort {
                            bar.abandon();
                            bail!("{report} (nothing of this chunk was stored; --on-error skip submits the rest)");
                        }
                        bar.println(format!("refused {report}"));
                        bar.inc(1);
                        refused.push(report);
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "submitted {total} CDRs from {} file(s): {accepted} accepted{}, {} refused",
        files.len(),
        match (&first_id, &last_id) {
            (Some(first), Some(last)) => format!(" ({first} … {last})"),
            _ => String::new(),
        },
        refused.len()
    );
    for report in &refused {
        println!("  refused {report}");
    }
    if !refused.is_empty() {
        bail!("{} CDRs were refused", refused.len());
    }
    Ok(())
}

fn detect(path: &Path, format: Format) -> anyhow::Result<Format> {
    if format != Format::Auto {
        return Ok(format);
    }
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Ok(Format::Json),
        Some("ndjson" | "jsonl") => Ok(Format::Ndjson),
        Some("csv") => Ok(Format::Csv),
        _ => bail!(
            "{}: cannot tell the format from the extension; use --format json|ndjson|csv",
            path.display()
        ),
    }
}

fn read(path: &Path, format: Format) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match detect(path, format)? {
        Format::Json => {
            let value: Value =
                serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
            match value {
                Value::Array(items) => Ok(items
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| Record { value, line: i + 1 })
                    .collect()),
                object @ Value::Object(_) => Ok(vec![Record { value: object, line: 1 }]),
                _ => bail!("{}: expected a JSON array of CDR objects or one object", path.display()),
            }
        }
        Format::Ndjson | Format::Auto => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .map(|value| Record { value, line: i + 1 })
                    .with_context(|| format!("{}:{}: not a JSON object", path.display(), i + 1))
            })
            .collect(),
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
            let headers =
                reader.headers().with_context(|| format!("{}: no CSV header", path.display()))?.clone();
            let mut out = Vec::new();
            for (i, row) in reader.records().enumerate() {
                let row = row.with_context(|| format!("{}:{}: bad CSV row", path.display(), i + 2))?;
                let mut object = Map::new();
                for (name, cell) in headers.iter().zip(row.iter()) {
                    let cell = cell.trim();
                    if cell.is_empty() {
                        continue;
                    }
                    let value = match cell.parse::<u64>() {
                        Ok(n)
                            if name != "call_id"
                                && name != "caller"
                                && name != "callee"
                                && name != "system_id" =>
                        {
                            json!(n)
                        }
                        _ => Value::String(cell.to_string()),
                    };
                    object.insert(name.to_string(), value);
                }
                out.push(Record { value: Value::Object(object), line: i + 2 });
            }
            Ok(out)
        }
    }
}
