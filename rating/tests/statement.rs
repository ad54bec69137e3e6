//! Statements from the example agreement: sums that add up, a net position, a day-wise summary in
//! the agreement's zone, and the same bytes whatever order the calls come in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_rating::rate::Direction;
use cdrchain_rating::{Agreement, Call, Rater, Statement};
use proptest::prelude::*;

fn example() -> (Agreement, Rater) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/agreement.json"))
            .unwrap();
    let agreement = Agreement::from_json(&text).unwrap();
    let rater = Rater::new(&agreement).unwrap();
    (agreement, rater)
}

const DECEMBER: (i64, i64) = (1_796_079_600_000, 1_798_758_000_000); // 2026-12-01 and 2027-01-01, Madrid
const DESTINATIONS: [&str; 4] = ["34612345678", "34911234567", "447700900123", "34811234567"];

/// Call `i` of a deterministic month: both directions, all hours, durations up to 10 minutes.
fn call(i: u64) -> Call<'static> {
    Call {
        direction: if i.is_multiple_of(3) { Direction::BToA } else { Direction::AToB },
        start_ms: DECEMBER.0 + (i as i64 * 7_777_777) % (DECEMBER.1 - DECEMBER.0),
        duration_ms: (i * 104_729) % 600_000,
        destination: DESTINATIONS[(i % 4) as usize],
    }
}

fn calls(n: u64) -> Vec<Call<'static>> {
    // b→a has no UK rate: those calls go a→b.
    (0..n)
        .map(call)
        .map(|c| if c.destination.starts_with("44") { Call { direction: Direction::AToB, ..c } } else { c })
        .collect()
}

#[test]
fn sums_add_up_and_the_net_is_the_difference() {
    let (agreement, rater) = example();
    let statement = Statement::make(&agreement, &rater, DECEMBER.0, DECEMBER.1, calls(2_000)).unwrap();
    for direction in [Direction::AToB, Direction::BToA] {
        let total = statement.totals[&direction];
        let lines = statement.lines.iter().filter(|l| l.direction == direction);
        let (calls, units) = lines.fold((0, 0), |(c, u), l| (c + l.sum.calls, u + l.sum.amount.units));
        assert_eq!((calls, units), (total.calls, total.amount.units), "{direction:?} lines");
        let days = statement.days.values().filter_map(|d| d.get(&direction));
        let (calls, units) = days.fold((0, 0), |(c, u), d| (c + d.calls, u + d.amount.units));
        assert_eq!((calls, units), (total.calls, total.amount.units), "{direction:?} days");
    }
    assert_eq!(statement.totals.values().map(|t| t.calls).sum::<u64>(), 2_000);
    let owed = |d| statement.totals[&d].amount.units;
    assert_eq!(statement.net_a_owes_b.units, owed(Direction::AToB) - owed(Direction::BToA));
    // Every day of December in Madrid, and only those.
    assert_eq!(statement.days.len(), 31);
    assert!(statement.days.keys().all(|d| d.starts_with("2026-12-")));
    // Both tariffs (the amendment of the 16th) appear.
    assert!(statement.lines.iter().any(|l| l.tariff == 0) && statement.lines.iter().any(|l| l.tariff == 1));
}

#[test]
fn calls_outside_the_period_are_not_its_and_unratable_ones_are_counted_by_reason() {
    let (agreement, rater) = example();
    let mut all = calls(100);
    all.push(Call { start_ms: DECEMBER.1, ..call(1) });
    all.push(Call { start_ms: DECEMBER.0 - 1, ..call(2) });
    let statement = Statement::make(&agreement, &rater, DECEMBER.0, DECEMBER.1, all.clone()).unwrap();
    assert_eq!(statement.totals.values().map(|t| t.calls).sum::<u64>(), 100);
    all.push(Call { destination: "1212", ..call(3) });
    all.push(Call { destination: "1212", ..call(4) });
    all.push(Call { destination: "", ..call(5) });
    let with_unrated = Statement::make(&agreement, &rater, DECEMBER.0, DECEMBER.1, all.clone()).unwrap();
    assert_eq!(with_unrated.totals, statement.totals, "an unrated call is never charged");
    let reasons: Vec<(String, u64)> =
        with_unrated.unrated.values().flat_map(|m| m.iter().map(|(r, n)| (r.clone(), *n))).collect();
    let count = |text: &str| reasons.iter().filter(|(r, _)| r.contains(text)).map(|(_, n)| n).sum::<u64>();
    assert_eq!(count("no rate for destination `1212`"), 2, "{reasons:?}");
    assert_eq!(count("has no destination"), 1, "{reasons:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The statement is a function of the set of calls: any order gives the same bytes.
    #[test]
    fn any_order_of_the_calls_gives_the_same_bytes(n in 1u64..400, seed in any::<u64>()) {
        let (agreement, rater) = example();
        let ordered = calls(n);
        let mut shuffled = ordered.clone();
        // A Fisher–Yates shuffle from `seed` (a fixed LCG: the test needs no randomness crate).
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let bytes = |calls: Vec<Call<'static>>| {
            Statement::make(&agreement, &rater, DECEMBER.0, DECEMBER.1, calls).unwrap().canonical_bytes().unwrap()
        };
        prop_assert_eq!(bytes(ordered), bytes(shuffled));
    }
}
