//! `cdrchain`: the one binary operators, partners and relayers run.
//!
//! Each subcommand lives in its own module and returns `anyhow::Result`; `main` prints the error
//! chain (what failed, and why, down to the cause) and exits non-zero.

mod build_spec;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Print a chain spec as JSON (the built-in `dev` or `local`, or a file to check), with its
    /// genesis hash on standard error.
    BuildSpec(build_spec::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildSpec(args) => build_spec::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
