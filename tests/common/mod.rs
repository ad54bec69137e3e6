//! Helpers shared by the end-to-end tests: run the real `cdrchain` binary as a user would.
//!
//! These files are the integration tests of the `cdrchain-cli` package (declared in
//! `cli/Cargo.toml`), so cargo builds the binary before running them and tells us its path.

#![allow(dead_code, clippy::panic)] // Shared by several test binaries; a failure to start must fail the test.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `cdrchain` binary that cargo built for these tests.
pub fn cdrchain_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cdrchain"))
}

/// Runs `cdrchain args…` to completion.
pub fn run(args: &[&str]) -> Output {
    match Command::new(cdrchain_binary()).args(args).output() {
        Ok(output) => output,
        Err(error) => panic!("could not start cdrchain {args:?}: {error}"),
    }
}
