//! `cdrchain agreement check|rate` as a user runs them, on the example agreement of
//! docs/examples/agreement.json.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

mod common;

use common::run;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/agreement.json");

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn the_example_agreement_checks_and_rates_a_call() {
    let out = run(&["agreement", "check", EXAMPLE]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("between `alice` and `bob` in EUR")
            && printed.contains("from 2026-12-16T00:00:00+01:00"),
        "{printed}"
    );
    assert!(printed.trim_end().ends_with("VALID"), "{printed}");
    // Wednesday 10:00 in Madrid to a Spanish mobile, for `seconds`.
    let rate = |seconds: &str| {
        run(&[
            "agreement",
            "rate",
            EXAMPLE,
            "--direction",
            "a-to-b",
            "--start",
            "2026-12-02T10:00:00+01:00",
            "--seconds",
            seconds,
            "--destination",
            "34612345678",
        ])
    };
    // 61.2 s bill as 66 s at 0.025/min.
    let out = rate("61.2");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("prefix 346, peak, 66 s billed: 0.0275 EUR"), "{}", text(&out));
    let out = rate("1.2345");
    assert!(!out.status.success() && text(&out).contains("--seconds `1.2345`"), "{}", text(&out));
}

#[test]
fn a_broken_agreement_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    std::fs::write(&broken, example.replacen("\"60/6\"", "\"60/0\"", 1)).unwrap();
    let out = run(&["agreement", "check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("INVALID: tariffs[0].a_to_b: increment `60/0`"), "{}", text(&out));
}
