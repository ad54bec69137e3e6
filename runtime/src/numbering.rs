//! Per-source number rules: how a switch or a trunk writes numbers, as operators configure it in
//! their billing systems, so that its numbers reach E.164 before they are hashed.
//!
//! A PBX whose region is set writes `00 44 20 7946 0018` or `011 44 …`; a carrier trunk writes
//! `442079460018` (a country code without `+`); an Asterisk box in Germany writes `030 901820`.
//! Without rules such numbers are recorded as written (`party::NormalizedParty::AsWritten`) and
//! flagged: never refused, but their digests are not those of the E.164 numbers. With the rules of
//! their source they hash like `+442079460018`.
//!
//! Rules rewrite a number-like party (plain digits, `tel:` digits, or the digit user of a SIP URI;
//! visual separators ignored) in this order, stopping at the first that applies:
//!
//! | rule | example (`region = "GB"`) | result |
//! | --- | --- | --- |
//! | already `+…` | `+44 20 7946 0018` | unchanged |
//! | `international_prefixes`, longest first | `00442079460018`, `011 44…` | `+442079460018` |
//! | valid in `region` (national form, or the region's own IDD) | `020 7946 0018` | `+442079460018` |
//! | `country_code_without_plus`, when `+digits` is a valid number | `442079460018` | `+442079460018` |
//! | `national_prefix` with `region`: the region's country code replaces it, valid or not | `07700 900123` | `+447700900123` |
//! | anything else | `1001`, `ch1`, `sip:alice@…` | unchanged |
//!
//! Pure: no IO; the same rules and text always give the same result.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rlibphonenumber::enums::Region;
use rlibphonenumber::PHONE_NUMBER_UTIL;
use serde::{Deserialize, Serialize};

use crate::party::{e164, parse_region, PartyError, MAX_NUMBER_DIGITS, VISUAL_SEPARATORS};

/// The most digits a prefix (international or national) may have.
pub const MAX_PREFIX_DIGITS: usize = 4;

/// The most sources that may have rules of their own.
pub const MAX_RULE_SOURCES: usize = 4_096;

/// One `[[number_rules]]` entry of the node's configuration file, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRulesConfig {
    /// The sources (`system_id`s) these rules are for; `"*"` for every source without rules of
    /// its own.
    pub sources: Vec<String>,
    /// ISO 3166 alpha-2 region whose national form the source writes (`GB`, `US`, `DE`).
    #[serde(default)]
    pub region: Option<String>,
    /// Prefixes the source writes instead of `+` (`00`, `011`).
    #[serde(default)]
    pub international_prefixes: Vec<String>,
    /// The source writes international numbers as a country code without `+` (`4420…`).
    #[serde(default)]
    pub country_code_without_plus: bool,
    /// The trunk prefix of national numbers (`0` in GB and DE, `8` in RU); needs `region`.
    #[serde(default)]
    pub national_prefix: Option<String>,
}

/// The checked rules of one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRules {
    region: Option<Region>,
    /// Longest first.
    international_prefixes: Vec<String>,
    country_code_without_plus: bool,
    /// With the region's country code.
    national_prefix: Option<(String, i32)>,
}

/// Why number rules were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("number rules for {sources:?}: {source}")]
    Region { sources: Vec<String>, source: PartyError },
    #[error("number rules for {sources:?}: prefix {prefix:?} must be 1 to {MAX_PREFIX_DIGITS} digits")]
    Prefix { sources: Vec<String>, prefix: String },
    #[error("number rules for {sources:?}: a national prefix needs a region")]
    NationalPrefixWithoutRegion { sources: Vec<String> },
    #[error("number rules name no source: give `sources = [\"SYSTEM_ID\", …]` or `[\"*\"]`")]
    NoSource,
    #[error("source {name:?} has number rules twice")]
    Duplicate { name: String },
    #[error("number rules for more than {MAX_RULE_SOURCES} sources")]
    TooMany,
}

impl SourceRules {
    /// Checks one configured entry.
    pub fn new(config: &SourceRulesConfig) -> Result<SourceRules, RulesError> {
        let sources = || config.sources.clone();
        let region = match &config.region {
            Some(code) => {
                Some(parse_region(code).map_err(|source| RulesError::Region { sources: sources(), source })?)
            }
            None => None,
        };
        let prefix_ok =
            |p: &str| (1..=MAX_PREFIX_DIGITS).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        let mut international_prefixes = Vec::with_capacity(config.international_prefixes.len());
        for prefix in &config.international_prefixes {
            if !prefix_ok(prefix) {
                return Err(RulesError::Prefix { sources: sources(), prefix: prefix.clone() });
            }
            international_prefixes.push(prefix.clone());
        }
        international_prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let national_prefix = match (&config.national_prefix, region) {
            (None, _) => None,
            (Some(prefix), _) if !prefix_ok(prefix) => {
                return Err(RulesError::Prefix { sources: sources(), prefix: prefix.clone() })
            }
            (Some(_), None) => return Err(RulesError::NationalPrefixWithoutRegion { sources: sources() }),
            (Some(prefix), Some(region)) => {
                let code = PHONE_NUMBER_UTIL.get_country_code_for_region(region).unwrap_or_default();
                Some((prefix.clone(), code))
            }
        };
        Ok(SourceRules {
            region,
            international_prefixes,
            country_code_without_plus: config.country_code_without_plus,
            national_prefix,
        })
    }

    /// `raw` rewritten by these rules (see the module documentation), or unchanged.
    pub fn rewrite<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        let Some(digits) = number_part(raw) else { return Cow::Borrowed(raw) };
        match self.rewrite_digits(&digits) {
            Some(rewritten) => Cow::Owned(rewritten),
            None => Cow::Borrowed(raw),
        }
    }

    fn rewrite_digits(&self, digits: &str) -> Option<String> {
        if digits.is_empty() || digits.len() > MAX_NUMBER_DIGITS {
            return None;
        }
        if let Some(rest) = self.international_prefixes.iter().find_map(|p| digits.strip_prefix(p.as_str())) {
            return (!rest.is_empty()).then(|| format!("+{rest}"));
        }
        if let Some(number) = self.region.and_then(|region| e164(Some(region), digits)) {
            return Some(number);
        }
        if self.country_code_without_plus {
            if let Some(number) = e164(None, &format!("+{digits}")) {
                return Some(number);
            }
        }
        let (prefix, code) = self.national_prefix.as_ref()?;
        let rest = digits.strip_prefix(prefix.as_str()).filter(|rest| !rest.is_empty())?;
        Some(format!("+{code}{rest}"))
    }
}

/// The digits of a number-like party: plain text, `tel:` (parameters dropped) or the user part
/// of a SIP URI, visual separators removed; `None` for anything else (or a number with `+`).
fn number_part(raw: &str) -> Option<String> {
    let text = raw.trim();
    let scheme = |name: &str| text.get(..name.len()).is_some_and(|head| head.eq_ignore_ascii_case(name));
    let candidate = if scheme("sip:") || scheme("sips:") {
        let rest = text.split_once(':').map(|(_, rest)| rest)?;
        let (user, _) = rest.split_once('@')?;
        user.split(';').next()?
    } else if scheme("tel:") {
        text.get(4..)?.split(';').next()?
    } else {
        text
    };
    let digits: String = candidate.chars().filter(|c| !VISUAL_SEPARATORS.contains(c)).collect();
    digits.bytes().all(|b| b.is_ascii_digit()).then_some(digits)
}

/// The rules of every configured source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumberRules {
    by_source: BTreeMap<String, SourceRules>,
    fallback: Option<SourceRules>,
}

impl NumberRules {
    /// Checks the configured entries: each source at most once, `"*"` at most once.
    pub fn new(configs: &[SourceRulesConfig]) -> Result<NumberRules, RulesError> {
        let mut rules = NumberRules::default();
        for config in configs {
            if config.sources.is_empty() {
                return Err(RulesError::NoSource);
            }
            let checked = SourceRules::new(config)?;
            for source in &config.sources {
                let taken = if source == "*" {
                    rules.fallback.replace(checked.clone()).is_some()
                } else {
                    rules.by_source.insert(source.clone(), checked.clone()).is_some()
                };
                if taken {
                    return Err(RulesError::Duplicate { name: source.clone() });
                }
            }
            if rules.by_source.len() > MAX_RULE_SOURCES {
                return Err(RulesError::TooMany);
            }
        }
        Ok(rules)
    }

    /// The rules for records of `system_id`: its own, else those of `"*"`.
    pub fn for_source(&self, system_id: &str) -> Option<&SourceRules> {
        self.by_source.get(system_id).or(self.fallback.as_ref())
    }

    /// No source has rules.
    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty() && self.fallback.is_none()
    }
}

#[cfg(test)]
mod tests;
