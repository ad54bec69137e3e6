//! Exact money: decimal amounts as integers of a fixed number of decimal places, and the one
//! place where an amount is rounded (to the agreement's decimals, in its mode). No floating
//! point anywhere.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimal places of rates, fees and minimum charges as agreements write them: a rate of
/// `0.012345678` per minute is exact; a tenth decimal is refused, not rounded.
pub const PRICE_DECIMALS: u32 = 9;
/// 10^[`PRICE_DECIMALS`].
pub const PRICE_SCALE: i128 = 1_000_000_000;
/// The most decimal places an agreement may round amounts to (no more than its prices have).
pub const MAX_AMOUNT_DECIMALS: u32 = PRICE_DECIMALS;
/// The largest price magnitude accepted, in whole currency units: far above any per-minute
/// rate or fee, and small enough that a year of calls cannot overflow the sums.
pub const MAX_PRICE_UNITS: i128 = 1_000_000_000;

const _: () = assert!(MAX_AMOUNT_DECIMALS <= PRICE_DECIMALS);
const _: () = assert!(PRICE_SCALE == 10i128.pow(PRICE_DECIMALS));

/// Why a decimal text is not a price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal number (digits, one optional `.`, an optional leading `-`)")]
    NotDecimal(String),
    #[error("`{text}` has {decimals} decimal places; prices have at most {PRICE_DECIMALS}")]
    TooPrecise { text: String, decimals: usize },
    #[error("`{0}` is beyond the largest price ({MAX_PRICE_UNITS} units)")]
    TooLarge(String),
}

/// A price (a rate per minute, a fee, a minimum charge) in units of 10^-[`PRICE_DECIMALS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(pub i128);

impl Price {
    pub const ZERO: Price = Price(0);

    /// Parses `"0.0123"`, `"12"`, `"-1.5"`: exactly, or not at all.
    pub fn parse(text: &str) -> Result<Price, MoneyError> {
        let not = || MoneyError::NotDecimal(text.to_string());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || (digits.contains('.') && fraction.is_empty())
        {
            return Err(not());
        }
        if fraction.len() > PRICE_DECIMALS as usize {
            return Err(MoneyError::TooPrecise { text: text.to_string(), decimals: fraction.len() });
        }
        let whole: i128 = whole.parse().map_err(|_| MoneyError::TooLarge(text.to_string()))?;
        if whole > MAX_PRICE_UNITS {
            return Err(MoneyError::TooLarge(text.to_string()));
        }
        let padded = format!("{fraction:0<width$}", width = PRICE_DECIMALS as usize);
        let fraction: i128 = padded.parse().map_err(|_| not())?;
        let units = whole * PRICE_SCALE + fraction;
        Ok(Price(if negative { -units } else { units }))
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Amount { units: self.0, decimals: PRICE_DECIMALS })
    }
}

impl Serialize for Price {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Price, D::Error> {
        let text = String::deserialize(deserializer)?;
        Price::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An amount rounded as an agreement says: `units` of 10^-`decimals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Amount {
    pub units: i128,
    pub decimals: u32,
}

impl Amount {
    pub fn zero(decimals: u32) -> Amount {
        Amount { units: 0, decimals }
    }

    /// The sum of two amounts of the same decimals (sums never round).
    pub fn plus(self, other: Amount) -> Amount {
        debug_assert_eq!(self.decimals, other.decimals, "amounts of one agreement share their decimals");
        Amount { units: self.units + other.units, decimals: self.decimals }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10i128.pow(self.decimals);
        let sign = if self.units < 0 { "-" } else { "" };
        let magnitude = self.units.unsigned_abs();
        let (whole, fraction) = (magnitude / scale.unsigned_abs(), magnitude % scale.unsigned_abs());
        if self.decimals == 0 {
            write!(f, "{sign}{whole}")
        } else {
            write!(f, "{sign}{whole}.{fraction:0width$}", width = self.decimals as usize)
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// How an amount is rounded to the agreement's decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundingMode {
    /// Halves away from zero (commercial rounding).
    HalfUp,
    /// Halves to the even neighbour (banker's rounding).
    HalfEven,
    /// Away from zero (never under-charges).
    Up,
    /// Toward zero (truncation).
    Down,
}

/// `numerator / denominator` (denominator > 0) rounded to an integer in `mode`: the only
/// rounding of money there is.
pub fn round_div(numerator: i128, denominator: i128, mode: RoundingMode) -> i128 {
    debug_assert!(denominator > 0);
    let (quotient, remainder) = (numerator / denominator, numerator % denominator);
    if remainder == 0 {
        return quotient;
    }
    let away = if numerator < 0 { quotient - 1 } else { quotient + 1 };
    let twice = remainder.abs() * 2;
    match mode {
        RoundingMode::Down => quotient,
        RoundingMode::Up => away,
        RoundingMode::HalfUp if twice >= denominator => away,
        RoundingMode::HalfEven if twice > denominator || (twice == denominator && quotient % 2 != 0) => away,
        RoundingMode::HalfUp | RoundingMode::HalfEven => quotient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_exactly_or_not_at_all() {
        assert_eq!(Price::parse("0.0123"), Ok(Price(12_300_000)));
        assert_eq!(Price::parse("12"), Ok(Price(12 * PRICE_SCALE)));
        assert_eq!(Price::parse("-1.5"), Ok(Price(-1_500_000_000)));
        assert_eq!(Price::parse("0.000000001"), Ok(Price(1)));
        assert!(matches!(Price::parse("0.0000000001"), Err(MoneyError::TooPrecise { .. })));
        for bad in ["", ".5", "1.", "1,5", "1e3", "--1", "0x10", " 1"] {
            assert!(matches!(Price::parse(bad), Err(MoneyError::NotDecimal(_))), "{bad}");
        }
        assert!(matches!(Price::parse("1000000001"), Err(MoneyError::TooLarge(_))));
        assert_eq!(Price(12_300_000).to_string(), "0.012300000");
    }

    #[test]
    fn rounding_modes_on_halves_and_signs() {
        use RoundingMode::*;
        let cases = [
            (25, 10, [3, 2, 3, 2]),
            (35, 10, [4, 4, 4, 3]),
            (21, 10, [2, 2, 3, 2]),
            (-25, 10, [-3, -2, -3, -2]),
            (-21, 10, [-2, -2, -3, -2]),
            (20, 10, [2, 2, 2, 2]),
        ];
        for (n, d, expected) in cases {
            let got = [HalfUp, HalfEven, Up, Down].map(|mode| round_div(n, d, mode));
            assert_eq!(got, expected, "{n}/{d}");
        }
    }

    #[test]
    fn amounts_print_with_their_decimals() {
        assert_eq!(Amount { units: 12345, decimals: 4 }.to_string(), "1.2345");
        assert_eq!(Amount { units: -5, decimals: 2 }.to_string(), "-0.05");
        assert_eq!(Amount { units: 7, decimals: 0 }.to_string(), "7");
    }
}
