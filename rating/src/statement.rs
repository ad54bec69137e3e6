//! Statements (issue #28, item 3): the calls of one operator pair in a period, rated under their
//! agreement, summed per direction and destination line and per local day, with the net position
//! (ITU-T D.170 net settlement). A statement is a function of the agreement and the set of calls:
//! the order the calls come in does not change a byte of its canonical JSON, so two partners who
//! read the same committed calls produce the same statement.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;

use crate::agreement::Agreement;
use crate::money::Amount;
use crate::rate::{Call, Direction, RateError, Rater};

/// The key of a statement line: direction, tariff, prefix, peak.
type LineKey = (Direction, usize, String, bool);

/// Calls, billed seconds and amount of a line or a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sum {
    pub calls: u64,
    pub billed_seconds: u64,
    pub amount: Amount,
}

impl Sum {
    fn zero(decimals: u32) -> Sum {
        Sum { calls: 0, billed_seconds: 0, amount: Amount::zero(decimals) }
    }

    fn add(&mut self, billed_seconds: u64, amount: Amount) {
        self.calls += 1;
        self.billed_seconds += billed_seconds;
        self.amount = self.amount.plus(amount);
    }
}

/// One line: the calls of one direction rated at one prefix, tariff and peak flag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    pub direction: Direction,
    /// The tariff of the agreement (0: the first; later ones are amendments).
    pub tariff: usize,
    pub prefix: String,
    pub peak: bool,
    #[serde(flatten)]
    pub sum: Sum,
}

/// A statement of the pair's calls in a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub a: String,
    pub b: String,
    pub currency: String,
    /// The period's first and last millisecond bounds: calls that start in `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Sorted by direction, tariff, prefix, peak.
    pub lines: Vec<Line>,
    /// Per local date (`YYYY-MM-DD` in the agreement's zone) and direction: the day-wise summary
    /// partners compare first.
    pub days: BTreeMap<String, BTreeMap<Direction, Sum>>,
    pub totals: BTreeMap<Direction, Sum>,
    /// Calls of the period that could not be rated, by direction and reason (a destination
    /// without a rate, a call before the agreement): counted, never charged, never dropped
    /// silently; they are what the partners settle by hand or dispute.
    pub unrated: BTreeMap<Direction, BTreeMap<String, u64>>,
    /// What `a` owes `b` net: `b`'s charges for `a→b` calls less `a`'s for `b→a` (negative: `b`
    /// owes `a`).
    pub net_a_owes_b: Amount,
}

/// Why calls cannot make a statement: the call (by its index in the input) whose start is not a
/// time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call {index} of the period: {error}")]
pub struct StatementError {
    pub index: usize,
    pub error: RateError,
}

impl Statement {
    /// Rates `calls` (those starting in `[from_ms, to_ms)`; the rest are not the period's) under
    /// `agreement` and sums them; a call that cannot be rated is counted in `unrated`.
    pub fn make<'a>(
        agreement: &Agreement,
        rater: &Rater,
        from_ms: i64,
        to_ms: i64,
        calls: impl IntoIterator<Item = Call<'a>>,
    ) -> Result<Statement, StatementError> {
        let decimals = rater.decimals();
        let zone = rater.zone();
        let mut lines: BTreeMap<LineKey, Sum> = BTreeMap::new();
        let mut days: BTreeMap<String, BTreeMap<Direction, Sum>> = BTreeMap::new();
        let mut totals: BTreeMap<Direction, Sum> =
            [Direction::AToB, Direction::BToA].into_iter().map(|d| (d, Sum::zero(decimals))).collect();
        let mut unrated: BTreeMap<Direction, BTreeMap<String, u64>> = BTreeMap::new();
        for (index, call) in calls.into_iter().enumerate() {
            if call.start_ms < from_ms || call.start_ms >= to_ms {
                continue;
            }
            let rated = match rater.rate(&call) {
                Ok(rated) => rated,
                Err(error @ RateError::BadTime(_)) => return Err(StatementError { index, error }),
                Err(error) => {
                    *unrated.entry(call.direction).or_default().entry(error.to_string()).or_default() += 1;
                    continue;
                }
            };
            let key = (call.direction, rated.tariff, rated.prefix, rated.peak);
            lines.entry(key).or_insert_with(|| Sum::zero(decimals)).add(rated.billed_seconds, rated.amount);
            let day = local_date(zone, call.start_ms)
                .ok_or(StatementError { index, error: RateError::BadTime(call.start_ms) })?;
            days.entry(day)
                .or_default()
                .entry(call.direction)
                .or_insert_with(|| Sum::zero(decimals))
                .add(rated.billed_seconds, rated.amount);
            if let Some(total) = totals.get_mut(&call.direction) {
                total.add(rated.billed_seconds, rated.amount);
            }
        }
        let owed = |d: Direction| totals.get(&d).map_or(0, |s| s.amount.units);
        let net_a_owes_b = Amount { units: owed(Direction::AToB) - owed(Direction::BToA), decimals };
        Ok(Statement {
            a: agreement.a.clone(),
            b: agreement.b.clone(),
            currency: agreement.currency.clone(),
            from_ms,
            to_ms,
            lines: lines
                .into_iter()
                .map(|((direction, tariff, prefix, peak), sum)| Line { direction, tariff, prefix, peak, sum })
                .collect(),
            days,
            totals,
            unrated,
            net_a_owes_b,
        })
    }

    /// The canonical bytes both partners sign: compact JSON, maps in key order, amounts as
    /// decimal strings.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

fn local_date(zone: &Tz, start_ms: i64) -> Option<String> {
    let utc = DateTime::from_timestamp_millis(start_ms)?;
    Some(zone.from_utc_datetime(&utc.naive_utc()).format("%Y-%m-%d").to_string())
}

/// The format name of a statement document.
pub const STATEMENT_FORMAT: &str = "cdrchain-statement";
/// The version of the statement document format.
pub const STATEMENT_VERSION: u32 = 1;

/// A statement as partners exchange and sign it: the statement, the agreement it was rated
/// under, and the block whose committed calls it counts. Its canonical bytes are the same on any
/// node that reads the same chain at the same block under the same agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatementDocument {
    pub format: &'static str,
    pub version: u32,
    /// The agreement's id on the chain and its version.
    pub agreement: String,
    pub agreement_version: u32,
    /// The block the calls were read at: committed at or below it.
    pub height: u64,
    pub block_hash: String,
    /// Records of the pair read, and calls counted (each call once).
    pub records: u64,
    pub calls: u64,
    pub statement: Statement,
}

impl StatementDocument {
    /// The canonical bytes (compact JSON, maps in key order).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}
