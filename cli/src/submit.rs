//! `cdrchain submit`: send CDR files to a node over JSON-RPC, in any ingest format.
//!
//! Each file is read by its adapter (`cdrchain-formats`) into canonical CDRs, locally; the node
//! then checks them (`cdr_check`: every refusal, and every record it already holds) before
//! anything is stored, so that `--on-error reject` really stores nothing of a bad file. The good
//! records are submitted in chunks (`cdr_submit`); a record the node already holds (same source
//! system and identity) is answered with its first id and not stored again, so re-running an
//! import changes nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cdrchain_formats::file::{self, FileError, FileFormat, FileRecord};
use cdrchain_formats::RecordError;
use cdrchain_node::rpc::api::{CdrApiClient, SystemApiClient};
use serde_json::Value;

use crate::rpc_client::{busy_retry_after, RpcClient};

/// How long one chunk is offered again while the node answers that its ingest queue is full.
const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

/// A file format on the command line: `auto`, or one the shared reader knows
/// ([`FileFormat::ALL`], with its help).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Decide from the file's extension (.json, .ndjson/.jsonl, .csv: canonical).
    Auto,
    Is(FileFormat),
}

/// `auto`, then every format of [`FileFormat::ALL`], in its order.
const FORMATS: [Format; FileFormat::ALL.len() + 1] = {
    let mut formats = [Format::Auto; FileFormat::ALL.len() + 1];
    let mut i = 0;
    while i < FileFormat::ALL.len() {
        formats[i + 1] = Format::Is(FileFormat::ALL[i].0);
        i += 1;
    }
    formats
};

impl clap::ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &FORMATS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let (name, help) = match self {
            Format::Auto => {
                ("auto", "Decide from the file's extension (.json, .ndjson/.jsonl, .csv: canonical)")
            }
            Format::Is(format) => {
                FileFormat::ALL.iter().find(|(f, _, _)| f == format).map(|(_, n, h)| (*n, *h))?
            }
        };
        Some(clap::builder::PossibleValue::new(name).help(help))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Refuse a file with any bad record: nothing of it is stored, every bad record is listed.
    #[value(alias = "abort")]
    Reject,
    /// Report bad records (file:line, field, reason) and submit the rest.
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
    /// What to do with a file that holds bad records.
    #[arg(long, value_enum, default_value = "reject")]
    pub on_error: OnError,
    /// The time zone of local times in the file (an IANA name such as Europe/Madrid, or UTC):
    /// required for Asterisk, whose Master.csv times carry no zone (UTC with usegmtime=yes).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// The switch's system id, for sources that do not name themselves (default: the format's
    /// name, e.g. `asterisk`).
    #[arg(long, value_name = "ID")]
    pub system_id: Option<String>,
    /// CDRs per request.
    #[arg(long, default_value_t = 5_000)]
    pub chunk: usize,
}

/// What a file holds, read locally.
pub(crate) struct FileRecords {
    pub(crate) path: PathBuf,
    pub(crate) records: Vec<FileRecord>,
    pub(crate) refused: Vec<String>,
    pub(crate) skipped: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(submit(args))
}

#[derive(Default)]
struct Totals {
    accepted: usize,
    duplicates: usize,
    refused: Vec<String>,
    skipped: usize,
    rejected_files: Vec<String>,
    first_id: Option<String>,
    last_id: Option<String>,
}

async fn submit(args: Args) -> anyhow::Result<()> {
    let client = RpcClient::new(&args.rpc, args.token.clone())?;
    let timezone = timezone(args.timezone.as_deref())?;
    // The recording operator, for sources that do not name the interconnect partners.
    let mut operator: Option<String> = None;
    let mut files = Vec::new();
    for path in &args.files {
        let format = detect(path, args.format)?;
        if format.is_adapter() && operator.is_none() {
            let properties =
                client.ask(client.api().properties()).await.context("asking the node who it is")?;
            operator = Some(properties.operator);
        }
        let ctx = cdrchain_formats::Context {
            operator: operator.clone().unwrap_or_default(),
            system_id: args.system_id.clone(),
        };
        files.push(read(path, format, &ctx, timezone)?);
    }
    let total: usize = files.iter().map(|f| f.records.len() + f.refused.len()).sum();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} CDRs {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut totals = Totals::default();
    let mut seen_ids = HashSet::new();
    for file in files {
        submit_file(&client, &args, file, &bar, &mut totals, &mut seen_ids).await?;
    }
    bar.finish_and_clear();
    println!(
        "submitted {total} CDRs from {} file(s): {} accepted{}, {} already recorded, {} refused, {} skipped",
        args.files.len(),
        totals.accepted,
        match (&totals.first_id, &totals.last_id) {
            (Some(first), Some(last)) => format!(" ({first} … {last})"),
            _ => String::new(),
        },
        totals.duplicates,
        totals.refused.len(),
        totals.skipped,
    );
    for report in &totals.refused {
        println!("  refused {report}");
    }
    if !totals.rejected_files.is_empty() {
        for report in &totals.refused {
            eprintln!("refused {report}");
        }
        bail!(
            "{} file(s) rejected, nothing of them stored: {} (--on-error skip submits the good records)",
            totals.rejected_files.len(),
            totals.rejected_files.join(", ")
        );
    }
    if !totals.refused.is_empty() {
        bail!("{} CDRs were refused", totals.refused.len());
    }
    Ok(())
}

async fn submit_file(
    client: &RpcClient,
    args: &Args,
    file: FileRecords,
    bar: &indicatif::ProgressBar,
    totals: &mut Totals,
    seen_ids: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let FileRecords { path, records, mut refused, skipped } = file;
    totals.skipped += skipped;
    // Check everything first: refusals by the node, and records it already holds.
    let mut bad = vec![false; records.len()];
    let mut duplicate = vec![false; records.len()];
    for (chunk_index, chunk) in records.chunks(args.chunk.max(1)).enumerate() {
        let offset = chunk_index * args.chunk.max(1);
        let values: Vec<Value> = chunk.iter().map(|r| r.value.clone()).collect();
        let answer = client.ask(client.api().check(values)).await.context("checking CDRs with the node")?;
        for error in &answer.errors {
            let Some(record) = chunk.get(error.index) else { continue };
            bad[offset + error.index] = true;
            refused.push(format!("{}:{}: {}", path.display(), record.line, error.message));
        }
        for found in &answer.duplicates {
            if found.index < chunk.len() {
                duplicate[offset + found.index] = true;
            }
        }
    }
    refused.sort_by_key(|report| line_of(report));
    if !refused.is_empty() && args.on_error == OnError::Reject {
        bar.inc((records.len() + refused.len()) as u64);
        totals.rejected_files.push(path.display().to_string());
        totals.refused.extend(refused);
        return Ok(());
    }
    for report in &refused {
        bar.println(format!("refused {report}"));
    }
    bar.inc(refused.len() as u64);
    totals.refused.extend(refused);
    let good: Vec<(usize, &FileRecord)> = records.iter().enumerate().filter(|(i, _)| !bad[*i]).collect();
    for chunk in good.chunks(args.chunk.max(1)) {
        let values: Vec<Value> = chunk.iter().map(|(_, r)| r.value.clone()).collect();
        let from_line = chunk.first().map_or(0, |(_, r)| r.line);
        let waited = std::time::Instant::now();
        let ids = loop {
            let answer = client.ask(client.api().submit(values.clone())).await;
            match answer.as_ref().err().and_then(busy_retry_after) {
                // The chain is behind: the node takes the chunk once blocks catch up, in about
                // the time it said.
                Some(retry_after) if waited.elapsed() < BUSY_PATIENCE => {
                    bar.set_message(format!(
                        "node busy (the chain is behind), retrying the chunk from line {from_line} in {} s",
                        retry_after.as_secs()
                    ));
                    tokio::time::sleep(retry_after).await;
                }
                _ => {
                    break answer.with_context(|| {
                        format!("{}: the node refused a chunk from line {from_line}", path.display())
                    })?
                }
            }
        };
        bar.set_message("");
        for ((index, _), id) in chunk.iter().zip(&ids) {
            if duplicate[*index] || !seen_ids.insert(id.clone()) {
                totals.duplicates += 1;
            } else {
                totals.accepted += 1;
                totals.first_id = totals.first_id.take().or_else(|| Some(id.clone()));
                totals.last_id = Some(id.clone());
            }
        }
        bar.inc(ids.len() as u64);
    }
    Ok(())
}

fn line_of(report: &str) -> usize {
    report.split(':').nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or(0)
}

/// The `--timezone` argument, read as an IANA zone name.
pub(crate) fn timezone(name: Option<&str>) -> anyhow::Result<Option<chrono_tz::Tz>> {
    name.map(|name| {
        name.parse::<chrono_tz::Tz>().map_err(|e| {
            anyhow::anyhow!("--timezone {name:?}: {e} (use an IANA name such as Europe/Madrid, or UTC)")
        })
    })
    .transpose()
}

pub(crate) fn detect(path: &Path, format: Format) -> anyhow::Result<FileFormat> {
    match format {
        Format::Is(format) => Ok(format),
        Format::Auto => path
            .file_name()
            .and_then(|name| FileFormat::from_file_name(&name.to_string_lossy()))
            .with_context(|| {
                format!(
                    "{}: cannot tell the format from the extension; use --format (see --help)",
                    path.display()
                )
            }),
    }
}

fn report(path: &Path, error: &RecordError) -> String {
    match &error.field {
        Some(field) => format!("{}:{}: field `{field}`: {}", path.display(), error.line, error.reason),
        None => format!("{}:{}: {}", path.display(), error.line, error.reason),
    }
}

/// Reads a whole file of `format` (with the shared reader, `cdrchain_formats::file`, which the
/// portal runs too).
pub(crate) fn read(
    path: &Path,
    format: FileFormat,
    ctx: &cdrchain_formats::Context,
    timezone: Option<chrono_tz::Tz>,
) -> anyhow::Result<FileRecords> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let contents = match file::read(&bytes, format, ctx, timezone) {
        Ok(contents) => contents,
        Err(FileError::NoTimezone) => bail!(
            "{}: Asterisk Master.csv times carry no time zone: pass --timezone (the switch's zone, \
             e.g. Europe/Madrid; UTC when cdr.conf has usegmtime=yes)",
            path.display()
        ),
        Err(e) => bail!("{}: {e}", path.display()),
    };
    let refused = contents.errors.iter().map(|e| report(path, e)).collect();
    Ok(FileRecords {
        path: path.to_path_buf(),
        records: contents.records,
        refused,
        skipped: contents.skipped,
    })
}
