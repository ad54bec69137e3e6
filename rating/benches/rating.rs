//! Rating throughput (issue #28: a million calls in under 5 s on one core): the example
//! agreement's shape with 1,000 destination prefixes and an amendment, a million calls over a
//! month in both directions, peak and off-peak, rated one after the other on one thread.
//!
//! `cargo bench -p cdrchain-rating --bench rating` (figures in docs/benchmarks.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench setup: a failure must stop the bench

use cdrchain_rating::agreement::{
    DisputeTerms, PeakHours, Rate, RateCard, Rounding, Tariff, FORMAT, VERSION,
};
use cdrchain_rating::money::Price;
use cdrchain_rating::{Agreement, Call, Direction, Rater, RoundingMode};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CALLS: usize = 1_000_000;
const PREFIXES: usize = 1_000;

fn card(seed: i128) -> RateCard {
    RateCard {
        increment: "60/6".into(),
        connect_fee: Price(0),
        minimum_charge: Price(0),
        peak: Some(PeakHours {
            days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
            from: "08:00".into(),
            to: "20:00".into(),
        }),
        rates: (0..PREFIXES)
            .map(|i| Rate {
                prefix: format!("{}", 100 + i * 7),
                name: None,
                per_minute: Price(10_000_000 + seed + i as i128 * 1_000),
                off_peak_per_minute: Some(Price(8_000_000 + i as i128 * 1_000)),
            })
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let agreement = Agreement {
        format: FORMAT.into(),
        version: VERSION,
        a: "alice".into(),
        b: "bob".into(),
        currency: "EUR".into(),
        time_zone: "Europe/Madrid".into(),
        rounding: Rounding { decimals: 6, mode: RoundingMode::HalfUp },
        dispute: DisputeTerms {
            window_days: 30,
            volume_tolerance_percent: Price(1),
            minimum_amount: Price(0),
        },
        tariffs: vec![
            Tariff { effective_from: "2026-12-01T00:00:00+01:00".into(), a_to_b: card(0), b_to_a: card(1) },
            Tariff { effective_from: "2026-12-16T00:00:00+01:00".into(), a_to_b: card(2), b_to_a: card(3) },
        ],
    };
    let rater = Rater::new(&agreement).unwrap();
    let start = 1_796_083_200_000i64; // 2026-12-01T00:00:00Z
    let destinations: Vec<String> = (0..PREFIXES).map(|i| format!("{}{:07}", 100 + i * 7, i * 31)).collect();
    let calls: Vec<(Direction, i64, u64, usize)> = (0..CALLS)
        .map(|i| {
            let direction = if i % 2 == 0 { Direction::AToB } else { Direction::BToA };
            let at = start + (i as i64 * 2_591_000) % (30 * 86_400_000);
            (direction, at, (i as u64 * 7_919) % 600_000, i % PREFIXES)
        })
        .collect();
    let mut group = c.benchmark_group("rating");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CALLS as u64));
    group.bench_function("a million calls", |b| {
        b.iter(|| {
            let mut total = 0i128;
            for (direction, start_ms, duration_ms, d) in &calls {
                let call = Call {
                    direction: *direction,
                    start_ms: *start_ms,
                    duration_ms: *duration_ms,
                    destination: &destinations[*d],
                };
                total += rater.rate(&call).unwrap().amount.units;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
