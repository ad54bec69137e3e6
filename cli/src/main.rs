//! `cdrchain`: the one binary operators, partners and relayers run.
//!
//! Each subcommand lives in its own module and returns `anyhow::Result`; `main` prints the error
//! chain (what failed, and why, down to the cause) and exits non-zero.

mod agreement;
mod agreement_chain;
mod anchor_reader;
mod authority;
mod bench;
mod blocks;
mod build_spec;
mod cdr;
mod contract;
mod dispute;
mod gap;
mod key;
mod light_sync;
mod node;
mod node_config;
mod party_secret;
mod proof;
mod purge_chain;
mod reconcile;
mod relay;
mod relay_metrics;
mod relay_sets;
mod rpc_client;
mod rsk;
mod settlement;
mod statement;
mod statement_days;
mod submit;
mod testnet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, and RocksDB's C++ on it too (see `cdrchain-alloc`).
#[global_allocator]
static ALLOCATOR: cdrchain_alloc::Allocator = cdrchain_alloc::ALLOCATOR;

/// cdrchain: a permissioned blockchain that makes VoIP call detail records tamper-evident, shared
/// and provable among the operators that run it.
#[derive(Debug, Parser)]
#[command(name = "cdrchain", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: storage, block production, JSON-RPC and HTTP ingest, metrics.
    Node(Box<node::Args>),
    /// Generate or inspect key files (ed25519 for transactions, votes and libp2p; secp256k1 for
    /// RSK checkpoints).
    #[command(subcommand)]
    Key(key::Command),
    /// Print a chain spec as JSON (the built-in `dev` or `local`, or a file to check), with its
    /// genesis hash on standard error.
    BuildSpec(build_spec::Args),
    /// Delete a chain's database from a base path.
    PurgeChain(purge_chain::Args),
    /// Write a chain's blocks with their commit certificates to a file (SCALE stream).
    ExportBlocks(blocks::ExportArgs),
    /// Read blocks from an export file into a database, verifying each one.
    ImportBlocks(blocks::ImportArgs),
    /// Fetch the inclusion proof bundle of a committed CDR from a node (docs/proofs.md).
    Proof(proof::ProofArgs),
    /// Check a proof bundle with no network: CDR bytes, inclusion path, header, commit
    /// certificate, and the authority set against a chain spec (exit 0 valid, 1 invalid, 2 no spec).
    Verify(proof::VerifyArgs),
    /// Follow the chain's authority-set changes from the genesis spec alone (each certified by
    /// the set before it), check the node's head against the set they lead to, and print it
    /// (exit 0 verified, 1 a step or the head fails).
    LightSync(light_sync::Args),
    /// Deploy the RSK checkpoint contract for a chain.
    #[command(subcommand)]
    Contract(contract::Command),
    /// Copy checkpoints with a quorum of validator signatures to the RSK contract (for cron:
    /// --once; exit 0 submitted, 10 nothing to do, 11 locked by another run, 1 error).
    Relay(relay::Args),
    /// Compare your own CDR export with the chain's records of your calls with a partner:
    /// matched, mismatched, missing on either side, totals per direction (exit 0 none differ,
    /// 3 differences, 1 error).
    Reconcile(reconcile::Args),
    /// Settlement totals between two partners per direction and disposition, with billed time
    /// under a rounding rule, stated with the block they were computed at.
    Settlement(settlement::Args),
    /// Submit CDR files (canonical JSON, NDJSON or CSV, FreeSWITCH, Kamailio, Asterisk, OpenSIPS) to a node.
    Submit(submit::Args),
    /// Look up committed CDRs.
    #[command(subcommand)]
    Cdr(cdr::Command),
    /// Declare queued CDRs that can never be committed a gap in the node's stream.
    #[command(subcommand)]
    Gap(gap::Command),
    /// The authority set and its changes: operators joining, leaving, rotating keys.
    #[command(subcommand)]
    Authority(authority::Command),
    /// Interconnect agreements: check one, rate a call under it, propose and accept them on the
    /// chain sealed to the pair, show them (docs/settlement.md).
    #[command(subcommand)]
    Agreement(agreement::Command),
    /// Statements of an interconnect pair's calls, rated under their agreement
    /// (docs/settlement.md).
    #[command(subcommand)]
    Statement(statement::Command),
    /// Disputes of a statement: open, respond, close (both sign), show (docs/settlement.md).
    #[command(subcommand)]
    Dispute(dispute::Command),
    /// Measure whole-system throughput (see docs/benchmarks.md).
    Bench(bench::Args),
    /// Start n local validators as child processes on loopback ports (4: the `local` chain with
    /// the INSECURE dev accounts; other n: a generated chain spec and keys under --base-path).
    Testnet(testnet::Args),
}

fn main() -> ExitCode {
    cdrchain_alloc::tune();
    rsk::install_tls_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(args) => node::run(*args),
        Command::Key(command) => key::run(command),
        Command::BuildSpec(args) => build_spec::run(args),
        Command::PurgeChain(args) => purge_chain::run(args),
        Command::ExportBlocks(args) => blocks::export(args),
        Command::ImportBlocks(args) => blocks::import(args),
        Command::Contract(command) => contract::run(command),
        Command::Proof(args) => proof::proof(args),
        Command::Verify(args) => match proof::verify_command(args) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::LightSync(args) => match light_sync::run(args) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::Relay(args) => match relay::run(args) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::Submit(args) => submit::run(args),
        Command::Reconcile(args) => match reconcile::run(args) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::Settlement(args) => settlement::run(args),
        Command::Cdr(command) => cdr::run(command),
        Command::Gap(command) => gap::run(command),
        Command::Authority(command) => authority::run(command),
        Command::Agreement(command) => match agreement::run(command) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::Statement(command) => match statement::run(command) {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
        Command::Dispute(command) => dispute::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Testnet(args) => testnet::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error; `filter` is a tracing filter such as `info` or `cdrchain=debug`.
pub fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("--log `{filter}` is not a valid filter: {e}"))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap's own checks of every subcommand (unique names, valid requirements), which it
    /// otherwise makes only when that subcommand is first used.
    #[test]
    fn every_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
