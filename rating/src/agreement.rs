//! Interconnect agreements, format `cdrchain-agreement` version 1 (docs/settlement.md): the two
//! operators, the currency, the agreement's time zone (peak hours are local time there), how
//! amounts round, the dispute terms, and the tariffs in force from their times on (an amendment
//! is a later tariff; history is kept). Each tariff has a rate card per direction: billing
//! increment, connect fee, minimum charge, optional peak hours, and per-minute rates by
//! destination prefix (longest prefix wins).

use serde::{Deserialize, Serialize};

use crate::money::{Price, RoundingMode, MAX_AMOUNT_DECIMALS};

/// The format's name.
pub const FORMAT: &str = "cdrchain-agreement";
/// The version this code reads and writes.
pub const VERSION: u32 = 1;
/// The longest first or next billing increment, in seconds.
pub const MAX_INCREMENT_S: u32 = 3_600;
/// The most digits of a destination prefix (E.164 numbers have at most 15).
pub const MAX_PREFIX_DIGITS: usize = 15;
/// The most rates of one card: every dial code of a large carrier's list.
pub const MAX_RATES_PER_CARD: usize = 100_000;
/// The most tariffs (the first one and its amendments) of one agreement.
pub const MAX_TARIFFS: usize = 1_000;

/// An interconnect agreement between operators `a` and `b`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    pub format: String,
    pub version: u32,
    pub a: String,
    pub b: String,
    /// ISO 4217 code of every price and amount.
    pub currency: String,
    /// IANA time zone of peak hours (e.g. `Europe/Madrid`).
    pub time_zone: String,
    pub rounding: Rounding,
    pub dispute: DisputeTerms,
    /// Ascending by `effective_from`: each applies to calls that start at or after its time and
    /// before the next one's.
    pub tariffs: Vec<Tariff>,
}

/// How each call's amount is rounded (sums of rounded amounts are never rounded again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rounding {
    pub decimals: u32,
    pub mode: RoundingMode,
}

/// When a partner may dispute a statement, and what is worth disputing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeTerms {
    /// Days after a statement is proposed during which it may be disputed.
    pub window_days: u32,
    /// A volume difference below this percentage of the calls is within tolerance.
    pub volume_tolerance_percent: Price,
    /// A claim below this amount is not a dispute.
    pub minimum_amount: Price,
}

/// The rates in force from `effective_from` (RFC 3339) on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    pub effective_from: String,
    /// Calls from `a`'s network terminated by `b` (`a` pays `b`).
    pub a_to_b: RateCard,
    /// Calls from `b`'s network terminated by `a`.
    pub b_to_a: RateCard,
}

/// One direction's prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCard {
    /// `"first/next"` seconds: `"60/6"` bills the first minute whole, then per 6 seconds.
    pub increment: String,
    #[serde(default)]
    pub connect_fee: Price,
    #[serde(default)]
    pub minimum_charge: Price,
    /// When `per_minute` applies; outside, `off_peak_per_minute` (where a rate has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<PeakHours>,
    pub rates: Vec<Rate>,
}

/// Peak hours, local time in the agreement's zone: on `days`, from `from` (inclusive) to `to`
/// (exclusive), `HH:MM`; `to` before `from` runs past midnight into the next day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakHours {
    /// `mon` … `sun`.
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

/// The rate of the destinations starting with `prefix` (E.164 digits, no `+`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub per_minute: Price,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_peak_per_minute: Option<Price>,
}

/// Why an agreement is refused; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgreementError {
    #[error("`{format}` version {version}: this node reads {FORMAT} version {VERSION}")]
    Format { format: String, version: u32 },
    #[error("{0}")]
    Invalid(String),
}

impl Agreement {
    /// Reads an agreement from JSON and checks it whole (see [`crate::rate::Rater::new`]).
    pub fn from_json(text: &str) -> Result<Agreement, AgreementError> {
        let agreement: Agreement = serde_json::from_str(text)
            .map_err(|e| AgreementError::Invalid(format!("not an agreement: {e}")))?;
        crate::rate::Rater::new(&agreement)?;
        Ok(agreement)
    }

    /// The checks that need no compiling: format, parties, currency, rounding, tariff count.
    pub(crate) fn check_header(&self) -> Result<(), AgreementError> {
        let invalid = |what: String| Err(AgreementError::Invalid(what));
        if self.format != FORMAT || self.version != VERSION {
            return Err(AgreementError::Format { format: self.format.clone(), version: self.version });
        }
        if self.a.is_empty() || self.b.is_empty() || self.a == self.b {
            return invalid(format!("the parties `{}` and `{}` must be two operators", self.a, self.b));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return invalid(format!("currency `{}`: an ISO 4217 code of three capitals", self.currency));
        }
        if self.rounding.decimals > MAX_AMOUNT_DECIMALS {
            return invalid(format!(
                "rounding.decimals {}: at most {MAX_AMOUNT_DECIMALS}",
                self.rounding.decimals
            ));
        }
        if self.tariffs.is_empty() || self.tariffs.len() > MAX_TARIFFS {
            return invalid(format!("{} tariffs: from 1 to {MAX_TARIFFS}", self.tariffs.len()));
        }
        Ok(())
    }
}
