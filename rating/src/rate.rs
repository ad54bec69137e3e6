//! Rating calls under an agreement: the tariff in force at the call's start, the direction's
//! card, the longest prefix of the destination, peak or off-peak by local time in the agreement's
//! zone, the billed seconds by the card's increments, then connect fee, minimum charge and the
//! one rounding the agreement names. Pure and deterministic: integers only.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::agreement::{
    Agreement, AgreementError, PeakHours, RateCard, MAX_INCREMENT_S, MAX_PREFIX_DIGITS, MAX_RATES_PER_CARD,
};
use crate::money::{round_div, Amount, Price, RoundingMode, MAX_PRICE_UNITS, PRICE_SCALE};

/// Which way a call went between the agreement's two operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From `a`'s network, terminated by `b`.
    AToB,
    /// From `b`'s network, terminated by `a`.
    BToA,
}

/// What rating needs of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    pub direction: Direction,
    /// When the call started (set up), milliseconds since the Unix epoch, UTC.
    pub start_ms: i64,
    /// How long it was answered, in milliseconds; 0 for a call that was not answered.
    pub duration_ms: u64,
    /// The destination's digits (E.164 without `+`; at least its country and network code).
    pub destination: &'a str,
}

/// A rated call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rated {
    /// Which tariff of the agreement applied (0: the first; later: amendments).
    pub tariff: usize,
    /// The prefix whose rate applied.
    pub prefix: String,
    pub peak: bool,
    /// Seconds billed after the increments (0 for an unanswered call).
    pub billed_seconds: u64,
    pub amount: Amount,
}

/// Why a call cannot be rated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("the call starts before the agreement's first tariff")]
    BeforeAgreement,
    #[error("no rate for destination `{0}` (no prefix of it is in the card)")]
    NoRate(String),
    #[error("the call has no destination (its callee is not an E.164 number)")]
    NoDestination,
    #[error("the call's start {0} ms is not a time")]
    BadTime(i64),
    #[error("a call of {0} ms is longer than any call is rated")]
    TooLong(u64),
}

/// The longest call rated: 30 days (hung calls beyond it are a dispute, not a charge).
pub const MAX_RATED_CALL_MS: u64 = 30 * 24 * 3_600 * 1_000;

/// An agreement compiled for rating.
#[derive(Clone, Debug)]
pub struct Rater {
    zone: Tz,
    rounding: (u32, RoundingMode),
    /// Ascending by start: (effective from, ms; card a→b, card b→a).
    tariffs: Vec<(i64, [Card; 2])>,
}

#[derive(Clone, Debug)]
struct Card {
    first_s: u64,
    next_s: u64,
    connect: i128,
    minimum: i128,
    /// Bit `d` for weekday `d` (Monday 0); minutes from midnight, from and to.
    peak: Option<(u8, u32, u32)>,
    rates: HashMap<String, (i128, i128)>,
    longest: usize,
}

impl Rater {
    /// Checks and compiles `agreement`; an error names what is wrong.
    pub fn new(agreement: &Agreement) -> Result<Rater, AgreementError> {
        agreement.check_header()?;
        let invalid = |what: String| AgreementError::Invalid(what);
        let zone: Tz = agreement
            .time_zone
            .parse()
            .map_err(|_| invalid(format!("time_zone `{}`: not an IANA zone", agreement.time_zone)))?;
        let mut tariffs: Vec<(i64, [Card; 2])> = Vec::with_capacity(agreement.tariffs.len());
        for (i, tariff) in agreement.tariffs.iter().enumerate() {
            let from = DateTime::parse_from_rfc3339(&tariff.effective_from)
                .map_err(|e| {
                    invalid(format!("tariffs[{i}].effective_from `{}`: {e}", tariff.effective_from))
                })?
                .timestamp_millis();
            if tariffs.last().is_some_and(|(previous, _)| *previous >= from) {
                return Err(invalid(format!("tariffs[{i}] does not start after the tariff before it")));
            }
            let card = |card: &RateCard, name: &str| compile(card, &format!("tariffs[{i}].{name}"));
            tariffs.push((from, [card(&tariff.a_to_b, "a_to_b")?, card(&tariff.b_to_a, "b_to_a")?]));
        }
        Ok(Rater { zone, rounding: (agreement.rounding.decimals, agreement.rounding.mode), tariffs })
    }

    /// The agreement's time zone (peak hours, statement days).
    pub fn zone(&self) -> &Tz {
        &self.zone
    }

    /// The amount decimals of every [`Rated::amount`].
    pub fn decimals(&self) -> u32 {
        self.rounding.0
    }

    /// Rates one call.
    pub fn rate(&self, call: &Call<'_>) -> Result<Rated, RateError> {
        let index = self.tariffs.partition_point(|(from, _)| *from <= call.start_ms);
        let Some(tariff) = index.checked_sub(1) else { return Err(RateError::BeforeAgreement) };
        let card = &self.tariffs[tariff].1[match call.direction {
            Direction::AToB => 0,
            Direction::BToA => 1,
        }];
        let digits = call.destination;
        if digits.is_empty() {
            return Err(RateError::NoDestination);
        }
        let (prefix, (peak_rate, off_rate)) = (1..=card.longest.min(digits.len()))
            .rev()
            .find_map(|len| digits.get(..len).and_then(|p| card.rates.get_key_value(p)))
            .ok_or_else(|| RateError::NoRate(digits.to_string()))?;
        if call.duration_ms > MAX_RATED_CALL_MS {
            return Err(RateError::TooLong(call.duration_ms));
        }
        let peak = match card.peak {
            Some(window) => self.in_peak(call.start_ms, window)?,
            None => true,
        };
        let rate = if peak { *peak_rate } else { *off_rate };
        let (decimals, mode) = self.rounding;
        let seconds = call.duration_ms.div_ceil(1_000);
        let billed = billed_seconds(seconds, card.first_s, card.next_s);
        if billed == 0 {
            let amount = Amount::zero(decimals);
            return Ok(Rated { tariff, prefix: prefix.clone(), peak, billed_seconds: 0, amount });
        }
        // In 1/60 of a price unit: exact until the one rounding below.
        let charge = (card.connect * 60 + rate * i128::from(billed)).max(card.minimum * 60);
        let units = round_div(charge * 10i128.pow(decimals), 60 * PRICE_SCALE, mode);
        Ok(Rated {
            tariff,
            prefix: prefix.clone(),
            peak,
            billed_seconds: billed,
            amount: Amount { units, decimals },
        })
    }

    fn in_peak(&self, start_ms: i64, (days, from, to): (u8, u32, u32)) -> Result<bool, RateError> {
        let utc = DateTime::from_timestamp_millis(start_ms).ok_or(RateError::BadTime(start_ms))?;
        let local = self.zone.from_utc_datetime(&utc.naive_utc());
        let day = local.weekday().num_days_from_monday();
        let minute = local.hour() * 60 + local.minute();
        let on = |d: u32| days & (1 << d) != 0;
        Ok(if from < to {
            on(day) && from <= minute && minute < to
        } else {
            // Past midnight: the evening of a peak day, or the small hours after one.
            (on(day) && minute >= from) || (on((day + 6) % 7) && minute < to)
        })
    }
}

/// Seconds billed for an answered call of `seconds`: the first increment whole, then whole next
/// increments; nothing for a call of 0 seconds.
pub fn billed_seconds(seconds: u64, first: u64, next: u64) -> u64 {
    if seconds == 0 {
        0
    } else if seconds <= first {
        first
    } else {
        first + (seconds - first).div_ceil(next) * next
    }
}

fn compile(card: &RateCard, at: &str) -> Result<Card, AgreementError> {
    let invalid = |what: String| AgreementError::Invalid(format!("{at}: {what}"));
    let (first, next) = card
        .increment
        .split_once('/')
        .ok_or_else(|| invalid(format!("increment `{}`: `first/next`", card.increment)))?;
    let seconds = |text: &str| {
        text.parse::<u32>().ok().filter(|s| (1..=MAX_INCREMENT_S).contains(s)).ok_or_else(|| {
            invalid(format!("increment `{}`: seconds from 1 to {MAX_INCREMENT_S}", card.increment))
        })
    };
    let (first_s, next_s) = (u64::from(seconds(first)?), u64::from(seconds(next)?));
    let price = |p: Price, what: &str| {
        if p.0 < 0 || p.0 > MAX_PRICE_UNITS * PRICE_SCALE {
            Err(invalid(format!("{what} {p}: from 0 to {MAX_PRICE_UNITS}")))
        } else {
            Ok(p.0)
        }
    };
    let (connect, minimum) =
        (price(card.connect_fee, "connect_fee")?, price(card.minimum_charge, "minimum_charge")?);
    let peak = card.peak.as_ref().map(|p| peak_window(p).map_err(&invalid)).transpose()?;
    if card.rates.is_empty() || card.rates.len() > MAX_RATES_PER_CARD {
        return Err(invalid(format!("{} rates: from 1 to {MAX_RATES_PER_CARD}", card.rates.len())));
    }
    let mut rates = HashMap::with_capacity(card.rates.len());
    let mut longest = 0;
    for rate in &card.rates {
        let prefix = &rate.prefix;
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_DIGITS
            || !prefix.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid(format!("prefix `{prefix}`: 1 to {MAX_PREFIX_DIGITS} digits, no `+`")));
        }
        let peak_rate = price(rate.per_minute, "per_minute")?;
        let off = price(rate.off_peak_per_minute.unwrap_or(rate.per_minute), "off_peak_per_minute")?;
        if rates.insert(prefix.clone(), (peak_rate, off)).is_some() {
            return Err(invalid(format!("prefix `{prefix}` is rated twice")));
        }
        longest = longest.max(prefix.len());
    }
    Ok(Card { first_s, next_s, connect, minimum, peak, rates, longest })
}

fn peak_window(peak: &PeakHours) -> Result<(u8, u32, u32), String> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut days = 0u8;
    for day in &peak.days {
        let d = DAYS
            .iter()
            .position(|d| d == day)
            .ok_or_else(|| format!("peak day `{day}`: one of {}", DAYS.join(", ")))?;
        days |= 1 << d;
    }
    let minutes = |text: &str| -> Result<u32, String> {
        let (h, m) = text.split_once(':').ok_or_else(|| format!("peak time `{text}`: HH:MM"))?;
        match (h.parse::<u32>(), m.parse::<u32>()) {
            (Ok(h), Ok(m)) if h < 24 && m < 60 && h.to_string().len() <= 2 && m.to_string().len() <= 2 => {
                Ok(h * 60 + m)
            }
            _ => Err(format!("peak time `{text}`: HH:MM")),
        }
    };
    let (from, to) = (minutes(&peak.from)?, minutes(&peak.to)?);
    if from == to || days == 0 {
        return Err("peak hours need at least one day and a from before or after their to".to_string());
    }
    Ok((days, from, to))
}
