//! `cdrchain agreement`: interconnect agreements (issue #28). `check FILE` reads an agreement
//! (format `cdrchain-agreement` v1, docs/schemas/agreement.schema.json) with every rule the node
//! applies, and prints what it says; `rate FILE` rates one call under it, as a statement would.
//! `propose`, `accept` and `show` put agreements on the chain, sealed to the pair
//! (`agreement_chain`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cdrchain_rating::{Agreement, Call, Direction, Rater};

use crate::agreement_chain;
use crate::rpc_client::ReadRpc;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check an agreement file and summarize it (exit 0 valid, 1 refused with the reason).
    Check {
        /// The agreement (JSON, `cdrchain-agreement` version 1).
        file: PathBuf,
    },
    /// Rate one call under an agreement: the tariff, prefix, peak or off-peak, billed seconds and
    /// amount.
    Rate {
        /// The agreement (JSON).
        file: PathBuf,
        /// `a-to-b` (a's network to b's) or `b-to-a`.
        #[arg(long, value_parser = ["a-to-b", "b-to-a"])]
        direction: String,
        /// When the call started (RFC 3339, e.g. 2026-12-02T10:00:00+01:00).
        #[arg(long)]
        start: String,
        /// How long it was answered, in seconds, to the millisecond (`61.2`; 0: not answered).
        #[arg(long)]
        seconds: String,
        /// The destination number's digits (E.164 without `+`).
        #[arg(long)]
        destination: String,
    },
    /// Propose the agreement FILE to its other party, as the node's operator: the node seals it
    /// to both partners' encryption keys (only they can read it) and signs it. The other party
    /// accepts it with `agreement accept ID`; from then on it is the pair's agreement in force.
    Propose {
        /// The agreement (JSON, `cdrchain-agreement` version 1), naming the node's operator as
        /// `a` or `b`.
        file: PathBuf,
        /// The agreement's version on the chain: above the one in force (default: one above).
        #[arg(long, value_name = "N")]
        agreement_version: Option<u32>,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Accept agreement ID as the node's operator (the party it was proposed to), after opening
    /// it and checking it against every rule.
    Accept {
        /// The agreement's id (`agreement propose` and `agreement show` print it).
        id: String,
        #[command(flatten)]
        rpc: ReadRpc,
    },
    /// Show agreement ID (its terms when the node can open it), or every agreement of a pair.
    Show {
        /// The agreement's id.
        #[arg(required_unless_present = "a", conflicts_with_all = ["a", "b"])]
        id: Option<String>,
        /// One operator of the pair.
        #[arg(long, requires = "b")]
        a: Option<String>,
        /// The other operator of the pair.
        #[arg(long, requires = "a")]
        b: Option<String>,
        /// Print the node's JSON answer as it is.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: ReadRpc,
    },
}

/// `61.2` seconds as 61,200 ms: digits, and at most three decimals.
fn milliseconds(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (text.contains('.') && !digits(fraction)) || fraction.len() > 3 {
        return None;
    }
    let fraction: u64 = format!("{fraction:0<3}").parse().ok()?;
    whole.parse::<u64>().ok()?.checked_mul(1_000)?.checked_add(fraction)
}

fn load(file: &PathBuf) -> anyhow::Result<Result<(Agreement, Rater), String>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(Agreement::from_json(&text)
        .and_then(|agreement| Rater::new(&agreement).map(|rater| (agreement, rater)))
        .map_err(|e| e.to_string()))
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let on_chain = |work: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>| {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
        runtime.block_on(work).map(|()| ExitCode::SUCCESS)
    };
    match command {
        Command::Propose { file, agreement_version, rpc } => {
            on_chain(Box::pin(agreement_chain::propose(file, agreement_version, rpc)))
        }
        Command::Accept { id, rpc } => on_chain(Box::pin(agreement_chain::accept(id, rpc))),
        Command::Show { id, a, b, json, rpc } => {
            on_chain(Box::pin(agreement_chain::show(id, a.zip(b), json, rpc)))
        }
        Command::Check { file } => {
            let (agreement, _) = match load(&file)? {
                Ok(loaded) => loaded,
                Err(e) => {
                    println!("INVALID: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            println!(
                "agreement between `{}` and `{}` in {}, time zone {}, amounts to {} decimals ({:?})",
                agreement.a,
                agreement.b,
                agreement.currency,
                agreement.time_zone,
                agreement.rounding.decimals,
                agreement.rounding.mode
            );
            agreement_chain::print_tariffs(&agreement);
            println!(
                "disputes within {} days; volume tolerance {} %; minimum claim {} {}",
                agreement.dispute.window_days,
                agreement.dispute.volume_tolerance_percent,
                agreement.dispute.minimum_amount,
                agreement.currency
            );
            println!("VALID");
            Ok(ExitCode::SUCCESS)
        }
        Command::Rate { file, direction, start, seconds, destination } => {
            let (agreement, rater) = match load(&file)? {
                Ok(loaded) => loaded,
                Err(e) => anyhow::bail!("the agreement is refused: {e}"),
            };
            let start_ms = chrono::DateTime::parse_from_rfc3339(&start)
                .map_err(|e| anyhow::anyhow!("--start `{start}`: not an RFC 3339 time ({e})"))?
                .timestamp_millis();
            let duration_ms = milliseconds(&seconds)
                .with_context(|| format!("--seconds `{seconds}`: seconds to the millisecond"))?;
            let direction = if direction == "a-to-b" { Direction::AToB } else { Direction::BToA };
            let rated = rater.rate(&Call { direction, start_ms, duration_ms, destination: &destination })?;
            println!(
                "tariff {} (from {}), prefix {}, {}, {} s billed: {} {}",
                rated.tariff,
                agreement.tariffs[rated.tariff].effective_from,
                rated.prefix,
                if rated.peak { "peak" } else { "off-peak" },
                rated.billed_seconds,
                rated.amount,
                agreement.currency
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
