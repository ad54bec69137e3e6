//! `cdrchain statement make`: the period's statement of an interconnect pair, rated by the
//! operator's own node under the pair's agreement in force (issue #28, docs/settlement.md). Both
//! partners run it with the same period and `--at` block and get the same bytes.

use std::path::PathBuf;

use anyhow::Context;
use cdrchain_node::rpc::api::StatementApiClient;
use serde_json::{json, Value};

use crate::rpc_client::ReadRpc;
use crate::settlement::time_param;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Rate the pair's committed calls of a period: amounts per direction and destination line,
    /// a day-wise summary in the agreement's time zone, totals, calls that could not be rated,
    /// and the net position. Each call counted once, from the two partners' own records.
    Make {
        /// One partner (an operator id of the chain).
        #[arg(long, value_name = "OP")]
        a: String,
        /// The other partner.
        #[arg(long, value_name = "OP")]
        b: String,
        /// Calls that started at or after this time (RFC 3339, or ms since the Unix epoch).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// ... and before this time (exclusive).
        #[arg(long, value_name = "TIME")]
        to: String,
        /// Count only calls committed at or below this block (default: the node's head); the
        /// statement names the block, so the partner can make the same one.
        #[arg(long, value_name = "HEIGHT")]
        at: Option<u64>,
        /// Write the statement document (canonical JSON, the bytes partners sign) to FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write the statement's lines as CSV to FILE.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Propose the statement on the chain as the node's operator, sealed to the pair: the
        /// other partner signs it (`statement sign ID`) or disputes it.
        #[arg(long)]
        sign: bool,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Sign the partner's statement ID as the node's operator: the node makes the statement of
    /// the same period at the same block itself and signs only if the bytes are the same. Signed
    /// by both, it is final for its period.
    Sign {
        /// The statement's id (`statement make --sign` and `statement show` print it).
        id: String,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Compare statement ID's day-wise summary with your own CDR export: the days (in the
    /// agreement's time zone) and directions whose rated calls differ, the first step of a
    /// dispute; then reconcile those days record by record. Exit 3 when days differ.
    Compare(crate::statement_days::Args),
    /// Show statement ID (its document when the node can open it), or every statement of a pair.
    Show {
        /// The statement's id.
        #[arg(required_unless_present = "a", conflicts_with_all = ["a", "b"])]
        id: Option<String>,
        /// One operator of the pair.
        #[arg(long, requires = "b")]
        a: Option<String>,
        /// The other operator of the pair.
        #[arg(long, requires = "a")]
        b: Option<String>,
        /// Write the statement document (the signed bytes) to FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Write the statement's lines as CSV to FILE.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        #[command(flatten)]
        rpc: ReadRpc,
    },
}

/// Runs a `statement` command; answers its exit code (`compare`: 3 when days differ).
pub fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    if let Command::Compare(args) = command {
        return crate::statement_days::run(args);
    }
    run_chain(command).map(|()| std::process::ExitCode::SUCCESS)
}

fn run_chain(command: Command) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    match command {
        Command::Make { a, b, from, to, at, out, csv, sign, rpc } => runtime.block_on(async {
            let client = rpc.client()?;
            let (from, to, at) = (time_param(&from), time_param(&to), at.map(Into::into));
            let answer = if sign {
                client
                    .ask(client.api().statement_propose(a, b, from, to, at))
                    .await
                    .context("proposing the statement")?
            } else {
                client
                    .ask(client.api().statement_make(a, b, from, to, at))
                    .await
                    .context("making the statement")?
            };
            if let Some(path) = &out {
                let canonical = answer["canonical"].as_str().unwrap_or_default();
                std::fs::write(path, canonical).with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = &csv {
                std::fs::write(path, lines_csv(&answer["document"]))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            print_summary(&answer);
            if let Some(id) = answer["statement"].as_str() {
                println!("proposed statement {id}; the partner signs it with `cdrchain statement sign {id}`");
            }
            Ok(())
        }),
        Command::Sign { id, rpc } => runtime.block_on(async {
            let client = rpc.client()?;
            let answer =
                client.ask(client.api().statement_sign(id.clone())).await.context("signing the statement")?;
            println!(
                "signed statement {id} (hash {}): final for its period once committed",
                text(&answer["hash"])
            );
            Ok(())
        }),
        Command::Show { id, a, b, out, csv, rpc } => runtime.block_on(async {
            let client = rpc.client()?;
            if let Some(id) = id {
                let record = client
                    .ask(client.api().statement_get(id.clone()))
                    .await
                    .context("reading the statement")?;
                anyhow::ensure!(!record.is_null(), "no statement {id} on the chain");
                print_record(&record);
                let Some(document) = record["opening"]["document"].as_str() else {
                    println!(
                        "  document: sealed to the pair ({})",
                        record["opening"]["error"].as_str().unwrap_or("this node or token cannot open it")
                    );
                    return Ok(());
                };
                if let Some(path) = &out {
                    std::fs::write(path, document).with_context(|| format!("writing {}", path.display()))?;
                }
                let document: Value = serde_json::from_str(document).context("the statement document")?;
                if let Some(path) = &csv {
                    std::fs::write(path, lines_csv(&document))
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                print_summary(&json!({ "document": document, "hash": record["opening"]["hash"] }));
                return Ok(());
            }
            let (Some(a), Some(b)) = (a, b) else {
                anyhow::bail!("name a statement ID, or a pair with --a and --b")
            };
            let list = client
                .ask(client.api().statement_list(a.clone(), b.clone()))
                .await
                .context("reading the pair")?;
            for record in list["statements"].as_array().into_iter().flatten() {
                print_record(record);
            }
            Ok(())
        }),
        Command::Compare(_) => anyhow::bail!("`statement compare` runs on its own"),
    }
}

fn print_record(record: &Value) {
    let signed =
        record["signed_at"].as_u64().map_or("not signed".to_string(), |h| format!("signed at #{h}: final"));
    println!(
        "statement {} of `{}` to `{}` for {} .. {}, under agreement {}, proposed at #{}, {signed}",
        text(&record["id"]),
        text(&record["a"]),
        text(&record["b"]),
        crate::settlement::when(record["from_ms"].as_u64().unwrap_or(0)),
        crate::settlement::when(record["to_ms"].as_u64().unwrap_or(0)),
        text(&record["agreement"]),
        record["proposed_at"]
    );
}

fn print_summary(answer: &Value) {
    let document = &answer["document"];
    let statement = &document["statement"];
    let currency = statement["currency"].as_str().unwrap_or("?");
    println!(
        "statement of `{}`–`{}` under agreement {} (version {}), calls committed at or below block #{} ({})",
        text(&statement["a"]),
        text(&statement["b"]),
        text(&document["agreement"]),
        document["agreement_version"],
        document["height"],
        text(&document["block_hash"])
    );
    println!("  {} records of the pair, {} calls counted", document["records"], document["calls"]);
    for (direction, sum) in statement["totals"].as_object().into_iter().flatten() {
        println!(
            "  {direction}: {} calls, {} s billed, {} {currency}",
            sum["calls"],
            sum["billed_seconds"],
            text(&sum["amount"])
        );
    }
    for (direction, reasons) in statement["unrated"].as_object().into_iter().flatten() {
        for (reason, calls) in reasons.as_object().into_iter().flatten() {
            println!("  {direction}: {calls} calls not rated: {reason}");
        }
    }
    println!(
        "  net: `{}` owes `{}` {} {currency}",
        text(&statement["a"]),
        text(&statement["b"]),
        text(&statement["net_a_owes_b"])
    );
    println!("  statement hash {}", text(&answer["hash"]));
}

/// `direction,tariff,prefix,peak,calls,billed_seconds,amount`, one line per statement line.
fn lines_csv(document: &Value) -> String {
    let mut out = String::from("direction,tariff,prefix,peak,calls,billed_seconds,amount\n");
    for line in document["statement"]["lines"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            text(&line["direction"]),
            line["tariff"],
            text(&line["prefix"]),
            line["peak"],
            line["calls"],
            line["billed_seconds"],
            text(&line["amount"])
        ));
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
