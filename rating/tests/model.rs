//! Rating against a plain reference model: random rate cards (prefixes, increments, fees,
//! minimums, peak hours across midnight), amendments, and calls around midnight and the DST
//! changes of the agreement's zone. The model does everything the slow, obvious way: a scan of
//! the tariffs and of every prefix, billing by adding increments, peak hours as a set of
//! (weekday, minute) pairs walked minute by minute, and rounding by comparing remainders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use std::collections::HashSet;

use cdrchain_rating::agreement::{
    DisputeTerms, PeakHours, Rate, RateCard, Rounding, Tariff, FORMAT, VERSION,
};
use cdrchain_rating::money::{Price, PRICE_SCALE};
use cdrchain_rating::{Agreement, Call, Direction, RateError, Rater, RoundingMode};
use chrono::{Datelike, TimeZone, Timelike};
use proptest::prelude::*;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// 2026-03-29 01:00Z and 2026-10-25 01:00Z: Madrid's DST changes; 2026-12-01T00:00Z.
const INSTANTS: [i64; 3] = [1_774_746_000_000, 1_792_890_000_000, 1_796_083_200_000];

fn card() -> impl Strategy<Value = RateCard> {
    let increments = prop::sample::select(vec![(1, 1), (60, 60), (60, 6), (30, 6), (6, 6), (60, 1)]);
    let peak =
        prop::option::of((1u8..128, 0u32..1440, 0u32..1440).prop_filter("a window", |(_, f, t)| f != t));
    let rates = prop::collection::vec(
        ("[0-9]{1,5}", 0i128..100_000_000, prop::option::of(0i128..100_000_000)),
        1..12,
    );
    (increments, 0i128..10_000_000, 0i128..50_000_000, peak, rates).prop_map(
        |((first, next), connect, minimum, peak, rates)| {
            let mut seen = HashSet::new();
            RateCard {
                increment: format!("{first}/{next}"),
                connect_fee: Price(connect),
                minimum_charge: Price(minimum),
                peak: peak.map(|(days, from, to)| PeakHours {
                    days: (0..7).filter(|d| days & (1 << d) != 0).map(|d| DAYS[d].to_string()).collect(),
                    from: format!("{:02}:{:02}", from / 60, from % 60),
                    to: format!("{:02}:{:02}", to / 60, to % 60),
                }),
                rates: rates
                    .into_iter()
                    .filter(|(prefix, _, _)| seen.insert(prefix.clone()))
                    .map(|(prefix, rate, off)| Rate {
                        prefix,
                        name: None,
                        per_minute: Price(rate),
                        off_peak_per_minute: off.map(Price),
                    })
                    .collect(),
            }
        },
    )
}

fn agreement() -> impl Strategy<Value = Agreement> {
    let modes = prop::sample::select(vec![
        RoundingMode::HalfUp,
        RoundingMode::HalfEven,
        RoundingMode::Up,
        RoundingMode::Down,
    ]);
    let tariffs = prop::collection::vec((card(), card(), 0i64..40 * 86_400), 1..4);
    (modes, 0u32..7, tariffs).prop_map(|(mode, decimals, tariffs)| {
        // Tariffs an amendment apart, from 2026-03-01, in seconds after it.
        let mut starts: Vec<i64> = tariffs.iter().map(|(_, _, s)| *s).collect();
        starts.sort_unstable();
        starts.dedup();
        let base = 1_772_323_200i64; // 2026-03-01T00:00:00Z
        let tariffs = tariffs
            .into_iter()
            .zip(starts)
            .map(|((a_to_b, b_to_a, _), start)| Tariff {
                effective_from: chrono::DateTime::from_timestamp(base + start, 0).unwrap().to_rfc3339(),
                a_to_b,
                b_to_a,
            })
            .collect();
        Agreement {
            format: FORMAT.to_string(),
            version: VERSION,
            a: "alice".into(),
            b: "bob".into(),
            currency: "EUR".into(),
            time_zone: "Europe/Madrid".into(),
            rounding: Rounding { decimals, mode },
            dispute: DisputeTerms {
                window_days: 30,
                volume_tolerance_percent: Price(PRICE_SCALE),
                minimum_amount: Price(0),
            },
            tariffs,
        }
    })
}

/// The model's rounding: floor by Euclidean division, then up by one where the mode says.
fn model_round(numerator: i128, denominator: i128, mode: RoundingMode) -> i128 {
    let floor = numerator.div_euclid(denominator);
    let rest = numerator.rem_euclid(denominator); // 0 ≤ rest < denominator: value = floor + rest/d
    if rest == 0 {
        return floor;
    }
    let positive = numerator > 0;
    let up = match mode {
        RoundingMode::Down => !positive,
        RoundingMode::Up => positive,
        RoundingMode::HalfUp => 2 * rest > denominator || (2 * rest == denominator && positive),
        RoundingMode::HalfEven => 2 * rest > denominator || (2 * rest == denominator && floor % 2 != 0),
    };
    floor + i128::from(up)
}

fn model_peak(peak: &Option<PeakHours>, start_ms: i64) -> bool {
    let Some(peak) = peak else { return true };
    let minutes = |t: &str| t[..2].parse::<u32>().unwrap() * 60 + t[3..].parse::<u32>().unwrap();
    let mut window = HashSet::new();
    for day in &peak.days {
        let d = DAYS.iter().position(|x| x == day).unwrap() as u32;
        let (mut at, end) = (d * 1440 + minutes(&peak.from), minutes(&peak.to));
        loop {
            window.insert(at % (7 * 1440));
            at += 1;
            if at % 1440 == end {
                break;
            }
        }
    }
    let local = chrono_tz::Europe::Madrid.timestamp_millis_opt(start_ms).unwrap();
    window.contains(&(local.weekday().num_days_from_monday() * 1440 + local.hour() * 60 + local.minute()))
}

/// The model: (tariff, prefix, peak, billed seconds, amount units), or the error.
fn model(agreement: &Agreement, call: &Call<'_>) -> Result<(usize, String, bool, u64, i128), RateError> {
    let mut tariff = None;
    for (i, t) in agreement.tariffs.iter().enumerate() {
        if chrono::DateTime::parse_from_rfc3339(&t.effective_from).unwrap().timestamp_millis()
            <= call.start_ms
        {
            tariff = Some(i);
        }
    }
    let tariff = tariff.ok_or(RateError::BeforeAgreement)?;
    let card = match call.direction {
        Direction::AToB => &agreement.tariffs[tariff].a_to_b,
        Direction::BToA => &agreement.tariffs[tariff].b_to_a,
    };
    let rate = card
        .rates
        .iter()
        .filter(|r| call.destination.starts_with(&r.prefix))
        .max_by_key(|r| r.prefix.len())
        .ok_or_else(|| RateError::NoRate(call.destination.to_string()))?;
    let peak = model_peak(&card.peak, call.start_ms);
    let per_minute = if peak { rate.per_minute } else { rate.off_peak_per_minute.unwrap_or(rate.per_minute) };
    let (first, next) = card.increment.split_once('/').unwrap();
    let (first, next): (u64, u64) = (first.parse().unwrap(), next.parse().unwrap());
    let mut seconds = call.duration_ms / 1_000;
    if !call.duration_ms.is_multiple_of(1_000) {
        seconds += 1;
    }
    let billed = if seconds == 0 {
        0
    } else {
        let mut billed = first;
        while billed < seconds {
            billed += next;
        }
        billed
    };
    let decimals = agreement.rounding.decimals;
    if billed == 0 {
        return Ok((tariff, rate.prefix.clone(), peak, 0, 0));
    }
    // Price units per minute × seconds / 60, plus the fee, at least the minimum: as a fraction
    // over 60 × 10^9, in units of 10^-decimals.
    let sixtieths = card.connect_fee.0 * 60 + per_minute.0 * i128::from(billed);
    let sixtieths = sixtieths.max(card.minimum_charge.0 * 60);
    let units = model_round(sixtieths * 10i128.pow(decimals), 60 * PRICE_SCALE, agreement.rounding.mode);
    Ok((tariff, rate.prefix.clone(), peak, billed, units))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn rating_agrees_with_the_model(
        agreement in agreement(),
        calls in prop::collection::vec(
            (any::<bool>(), 0usize..3, -3 * 86_400_000i64..3 * 86_400_000, 0u64..4_000_000, "[0-9]{1,8}", any::<prop::sample::Index>()),
            1..40,
        ),
    ) {
        let rater = Rater::new(&agreement).unwrap();
        for (to_b, near, offset, duration_ms, digits, pick) in calls {
            // Half the destinations extend one of the card's prefixes; the rest are random.
            let card = &agreement.tariffs[0].a_to_b;
            let destination = if to_b { format!("{}{digits}", pick.get(&card.rates).prefix) } else { digits };
            let call = Call {
                direction: if offset % 2 == 0 { Direction::AToB } else { Direction::BToA },
                start_ms: INSTANTS[near] + offset,
                duration_ms,
                destination: &destination,
            };
            let got = rater.rate(&call).map(|r| (r.tariff, r.prefix, r.peak, r.billed_seconds, r.amount.units));
            prop_assert_eq!(got, model(&agreement, &call), "{:?}", call);
        }
    }
}
