//! `cdrchain bench` suites run and report their figures (the figures themselves are measured, not
//! asserted: docs/benchmarks.md has them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use common::run;
use serde_json::Value;

fn suite(name: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.json");
    let mut args = vec!["bench", name, "--duration", "1", "--json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = run(&args);
    assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn the_runtime_storage_and_evm_baseline_suites_report_their_figures() {
    let runtime = suite("runtime", &[]);
    assert_eq!(runtime["suite"], "runtime");
    assert!(runtime["apply_cdrs_per_s"].as_f64().unwrap() > 0.0, "{runtime}");
    assert_eq!(runtime["applied_cdrs"].as_u64().unwrap() % 10_000, 0, "{runtime}");
    let storage = suite("storage", &[]);
    assert!(storage["committed_cdrs_per_s"].as_f64().unwrap() > 0.0, "{storage}");
    assert!(storage["bytes_on_disk_per_cdr"].as_f64().unwrap() > 0.0, "{storage}");
    let anvil =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/node_modules/.bin/anvil");
    assert!(anvil.exists(), "run scripts/install-deps.sh: {} is missing", anvil.display());
    let evm = suite("evm-baseline", &["--connections", "2", "--anvil", anvil.to_str().unwrap()]);
    // The contract's own count equals the transactions sent (the suite checks it), and some were.
    assert!(evm["committed_cdrs"].as_u64().unwrap() > 0, "{evm}");
    assert!(evm["resent_after_stall"].is_u64(), "{evm}");
}

#[test]
fn a_dev_sweep_steps_the_offered_load_from_the_measured_ceiling() {
    let dev = suite("dev", &["--sweep", "--connections", "2", "--batch", "200"]);
    let steps = dev["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5, "{dev}");
    assert_eq!(steps[0]["offered_cdrs_per_s"], "unbounded");
    let ceiling = dev["committed_cdrs_per_s"].as_f64().unwrap();
    assert!(ceiling > 0.0, "{dev}");
    for (step, fraction) in steps[1..].iter().zip([0.25, 0.5, 1.0, 2.0]) {
        let offered = step["offered_cdrs_per_s"].as_f64().unwrap();
        assert!((offered - (ceiling * fraction).round().max(1.0)).abs() < 1.0, "{step}");
        assert!(step["latency_probes"].as_u64().unwrap() > 0, "{step}");
        // Both latencies of the probe, and what paced load gave up when refused to the end.
        assert!(
            step["latency_after_ack_ms_p99"].as_f64().unwrap() <= step["latency_ms_p99"].as_f64().unwrap()
        );
        assert!(step["cdrs_shed_refused"].is_u64(), "{step}");
    }
    // One node watched: its CPU and memory, and the database per CDR.
    assert_eq!(dev["cpu_percent_per_node"].as_array().unwrap().len(), 1, "{dev}");
    assert!(dev["rss_mib_per_node"][0].as_u64().unwrap() > 0, "{dev}");
    assert!(dev["bytes_on_disk_per_cdr"].as_f64().unwrap() > 0.0, "{dev}");
}
