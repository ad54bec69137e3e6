//! The deterministic simulator over many seeds: n = 4 and n = 7 validators, f of them Byzantine,
//! with loss, duplication, reordering, a partition that heals, crashes and restarts. CI runs
//! 1,000 seeds; the long mode is the `simulate` example (`--seeds N`).
//!
//! Every failure prints the seed and how to replay it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_consensus::sim::{run, Behaviour, SimConfig};

fn seeds(validators: usize, range: std::ops::Range<u64>) {
    run_seeds(validators, range, false);
}

/// Seeds whose authority set changes three times (add, remove, rotate) at drawn heights.
fn seeds_with_set_changes(validators: usize, range: std::ops::Range<u64>) {
    run_seeds(validators, range, true);
}

fn run_seeds(validators: usize, range: std::ops::Range<u64>, set_changes: bool) {
    let mut failures = Vec::new();
    for seed in range {
        let report = run(SimConfig { set_changes, ..SimConfig::new(seed, validators) });
        if !report.passed() {
            let flag = if set_changes { " --set-changes" } else { "" };
            failures.push(format!(
                "{}\n  replay: cargo run -p cdrchain-consensus --example simulate -- --seed {seed} --validators {validators}{flag}",
                report.summary()
            ));
        }
    }
    assert!(failures.is_empty(), "{} seed(s) failed:\n{}", failures.len(), failures.join("\n"));
}

// 500 seeds each for n = 4 and n = 7, split so that the test runner spreads them over the cores.
#[test]
fn n4_seeds_0_to_250() {
    seeds(4, 0..250);
}
#[test]
fn n4_seeds_250_to_500() {
    seeds(4, 250..500);
}
#[test]
fn n7_seeds_0_to_125() {
    seeds(7, 0..125);
}
#[test]
fn n7_seeds_125_to_250() {
    seeds(7, 125..250);
}
#[test]
fn n7_seeds_250_to_375() {
    seeds(7, 250..375);
}
#[test]
fn n7_seeds_375_to_500() {
    seeds(7, 375..500);
}

// 1,000 seeds whose authority set changes: 600 with n = 4 (5 after the add), 400 with n = 7.
#[test]
fn n4_set_changes_seeds_0_to_300() {
    seeds_with_set_changes(4, 0..300);
}
#[test]
fn n4_set_changes_seeds_300_to_600() {
    seeds_with_set_changes(4, 300..600);
}
#[test]
fn n7_set_changes_seeds_0_to_200() {
    seeds_with_set_changes(7, 0..200);
}
#[test]
fn n7_set_changes_seeds_200_to_400() {
    seeds_with_set_changes(7, 200..400);
}

/// Set changes happen as drawn: each kind occurs, every honest validator (the added one, the
/// removed one following as an observer) reaches a height past the last change.
#[test]
fn set_changes_are_exercised() {
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let report = run(SimConfig { set_changes: true, ..SimConfig::new(seed, 4) });
        assert!(report.passed(), "{}", report.summary());
        assert_eq!(report.sets.len(), 4, "{:?}", report.sets);
        for set in &report.sets[1..] {
            kinds.insert(set.split(' ').next().unwrap().to_string());
        }
        assert_eq!(report.committed.len(), 5, "the added validator runs too");
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for validators in [4, 7] {
        let a = run(SimConfig::new(42, validators));
        let b = run(SimConfig::new(42, validators));
        assert_eq!(a.trace_digest, b.trace_digest);
        assert_eq!(a.committed, b.committed);
        assert_eq!(a.events, b.events);
        let c = run(SimConfig::new(43, validators));
        assert_ne!(a.trace_digest, c.trace_digest);
    }
}

#[test]
fn without_faults_every_validator_commits_the_same_blocks() {
    for seed in 0..20 {
        let report =
            run(SimConfig { faults: false, byzantine: 0, target_height: 6, ..SimConfig::new(seed, 4) });
        assert!(report.passed(), "{}", report.summary());
        assert_eq!(report.crashes, 0);
        assert_eq!(report.equivocations, 0);
        let first = &report.committed[0][..6];
        for chain in &report.committed {
            assert_eq!(&chain[..6], first, "{}", report.summary());
        }
    }
}

/// The checkers are not vacuous: across seeds, every Byzantine behaviour occurs, equivocations
/// happen and are recorded as evidence, validators crash and restart, and chains still agree.
#[test]
fn the_faults_and_byzantine_behaviours_are_exercised() {
    let (mut equivocations, mut evidence, mut crashes) = (0, 0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..60 {
        let report = run(SimConfig::new(seed, 7));
        assert!(report.passed(), "{}", report.summary());
        equivocations += report.equivocations;
        evidence += report.evidence_recorded;
        crashes += report.crashes;
        for b in &report.behaviours {
            seen.insert(format!("{b:?}"));
        }
        assert_eq!(report.behaviours.iter().filter(|b| **b != Behaviour::Honest).count(), 2);
    }
    assert!(equivocations > 50 && evidence > 50 && crashes > 20, "{equivocations} {evidence} {crashes}");
    assert_eq!(seen.len(), 5, "{seen:?}");
}

/// With more than f faulty validators nothing is promised, and the checkers notice: two silent
/// validators of four stop all progress, which the progress checker reports.
#[test]
fn the_progress_checker_fails_when_too_many_are_faulty() {
    use Behaviour::*;
    let config = SimConfig {
        behaviours: Some(vec![Honest, Silent, Honest, Silent]),
        faults: false,
        ..SimConfig::new(3, 4)
    };
    let report = run(config.clone());
    assert!(!report.passed(), "two silent of four must stall: {}", report.summary());
    assert!(report.violations.iter().all(|v| v.starts_with("PROGRESS")), "{:?}", report.violations);
    assert!(report.committed.iter().all(Vec::is_empty));
    // One silent of four is within f: the chain goes on.
    let report = run(SimConfig { behaviours: Some(vec![Honest, Silent, Honest, Honest]), ..config });
    assert!(report.passed(), "{}", report.summary());
}

/// Review M2 in the simulator: validators that replay their own earlier votes and proposals with
/// every broadcast (old rounds and heights included) neither break agreement nor stop the chain,
/// with and without network faults.
#[test]
fn replayed_votes_and_proposals_change_nothing() {
    use Behaviour::*;
    for seed in 0..20 {
        let one = SimConfig {
            behaviours: Some(vec![Honest, Replayer, Honest, Honest]),
            faults: seed % 2 == 0,
            ..SimConfig::new(seed, 4)
        };
        let report = run(one);
        assert!(report.passed(), "seed {seed}: {}", report.summary());
        let two = SimConfig {
            behaviours: Some(vec![Replayer, Honest, Honest, Honest, Honest, Replayer, Honest]),
            ..SimConfig::new(seed, 7)
        };
        let report = run(two);
        assert!(report.passed(), "seed {seed}: {}", report.summary());
    }
}
