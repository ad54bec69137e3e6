//! The long mode of the consensus simulator.
//!
//! ```text
//! cargo run --release -p cdrchain-consensus --example simulate -- --seeds 100000 --validators 7
//! cargo run -p cdrchain-consensus --example simulate -- --seed 4242 --validators 4   # replay one
//! ```
//! Options: `--seeds N` (count, from `--first`), `--first S`, `--seed S` (one seed, full report),
//! `--validators N` (default 4), `--byzantine F` (default (n-1)/3), `--heights H` (default 4),
//! `--no-faults`, `--set-changes` (add, remove and rotate authorities at drawn heights). Exits 1
//! on the first failing seed, printing it.

use std::process::ExitCode;

use cdrchain_consensus::sim::{run, SimConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<u64> {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
    };
    let validators = value("--validators").unwrap_or(4) as usize;
    let template = {
        let mut c = SimConfig::new(0, validators);
        if let Some(f) = value("--byzantine") {
            c.byzantine = f as usize;
        }
        if let Some(h) = value("--heights") {
            c.target_height = h;
        }
        c.faults = !args.iter().any(|a| a == "--no-faults");
        c.set_changes = args.iter().any(|a| a == "--set-changes");
        c
    };
    if let Some(seed) = value("--seed") {
        let report = run(SimConfig { seed, ..template });
        println!("{}", report.summary());
        return if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let count = value("--seeds").unwrap_or(1_000);
    let first = value("--first").unwrap_or(0);
    let started = std::time::Instant::now();
    let mut events = 0u64;
    for seed in first..first + count {
        let report = run(SimConfig { seed, ..template.clone() });
        events += report.events;
        if !report.passed() {
            println!("{}", report.summary());
            println!("replay: cargo run -p cdrchain-consensus --example simulate -- --seed {seed} --validators {validators}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{count} seeds from {first} with {validators} validators passed ({events} events, {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
