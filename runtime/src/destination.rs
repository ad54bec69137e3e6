//! The callee's destination, the one part of a called number that rating needs (issue #28).
//!
//! Rates are agreed per destination (E.164 country and network codes, the longest prefix of a
//! rate card winning), but a CDR carries only the keyed digest of the callee. So the node that
//! hashes the callee also records its destination, from the number before it is hashed:
//!
//! | version | what | example |
//! | --- | --- | --- |
//! | 1 | the E.164 country code followed by the national destination code, as libphonenumber's metadata splits the number (the geographic area code, or a mobile network's code), at most [`MAX_DESTINATION_DIGITS`] digits and never more than the number's digits less [`MIN_HIDDEN_DIGITS`] | `+442079460018` → `4420`; `+34612345678` → `34612`; `+12025550123` → `1202`; `+34912345678` → `34912` |
//!
//! A callee that is not an E.164 number (a SIP URI, a dial string, a number recorded as written)
//! has no destination. The field is versioned: a later rule gets a new version, and records keep
//! the one they were made with.

use parity_scale_codec::{Decode, Encode};
use rlibphonenumber::PHONE_NUMBER_UTIL;
use serde::{Deserialize, Serialize};

use crate::cdr::CdrError;

/// The most digits of a destination (country code and network code).
pub const MAX_DESTINATION_DIGITS: usize = 8;

/// The fewest digits of a number a destination leaves out (the subscriber's part stays hidden).
pub const MIN_HIDDEN_DIGITS: usize = 4;

/// One more than the largest destination code.
const DESTINATION_CODE_END: u32 = 100_000_000;
const _: () = assert!(DESTINATION_CODE_END as u64 == 10u64.pow(MAX_DESTINATION_DIGITS as u32));

/// A callee's destination (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode)]
pub enum Destination {
    /// Version 1: country code and national destination code, as the digits of a number (E.164
    /// never starts with 0, so no digit is lost).
    #[codec(index = 1)]
    CountryNetworkV1(u32),
}

impl Destination {
    /// The rule's version.
    pub fn version(&self) -> u8 {
        match self {
            Destination::CountryNetworkV1(_) => 1,
        }
    }

    /// The destination's digits, as rate cards' prefixes are written.
    pub fn digits(&self) -> String {
        match self {
            Destination::CountryNetworkV1(code) => code.to_string(),
        }
    }

    /// The rules a stored destination obeys: 1 to [`MAX_DESTINATION_DIGITS`] digits.
    pub fn check(&self) -> Result<(), CdrError> {
        match self {
            Destination::CountryNetworkV1(code) if (1..DESTINATION_CODE_END).contains(code) => Ok(()),
            Destination::CountryNetworkV1(code) => Err(CdrError::new(
                "destination",
                code,
                format!("a destination has 1 to {MAX_DESTINATION_DIGITS} digits"),
            )),
        }
    }

    /// The version-1 destination of an E.164 number (`+` and digits); `None` when libphonenumber
    /// cannot read it.
    pub fn of_e164(number: &str) -> Option<Destination> {
        let digits = number.strip_prefix('+')?;
        let parsed = PHONE_NUMBER_UTIL.parse(number, None).ok()?;
        let national = parsed.get_national_significant_number();
        let country_len = digits.len().checked_sub(national.len()).filter(|len| *len > 0)?;
        let network_len = PHONE_NUMBER_UTIL.get_length_of_national_destination_code(&parsed);
        let len = (country_len + network_len)
            .min(MAX_DESTINATION_DIGITS)
            .min(digits.len().saturating_sub(MIN_HIDDEN_DIGITS))
            .max(country_len.min(MAX_DESTINATION_DIGITS));
        let code: u32 = digits.get(..len)?.parse().ok()?;
        let destination = Destination::CountryNetworkV1(code);
        destination.check().ok().map(|()| destination)
    }
}

/// JSON: `{"version": 1, "digits": "4420"}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationJson {
    version: u8,
    digits: String,
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DestinationJson { version: self.version(), digits: self.digits() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = DestinationJson::deserialize(deserializer)?;
        if json.version != 1 {
            return Err(serde::de::Error::custom(format!(
                "destination version {}: this node reads version 1",
                json.version
            )));
        }
        let well_formed = !json.digits.is_empty()
            && json.digits.len() <= MAX_DESTINATION_DIGITS
            && json.digits.bytes().all(|b| b.is_ascii_digit())
            && !json.digits.starts_with('0');
        let code = well_formed.then(|| json.digits.parse::<u32>().ok()).flatten().ok_or_else(|| {
            serde::de::Error::custom(format!(
                "destination digits `{}`: 1 to {MAX_DESTINATION_DIGITS} digits, not starting with 0",
                json.digits
            ))
        })?;
        Ok(Destination::CountryNetworkV1(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(number: &str) -> Option<String> {
        Destination::of_e164(number).map(|d| d.digits())
    }

    #[test]
    fn country_and_network_codes_of_known_numbers() {
        assert_eq!(of("+442079460018").as_deref(), Some("4420"), "London");
        assert_eq!(of("+447700900123").as_deref(), Some("447700"), "a UK mobile range");
        assert_eq!(of("+12025550123").as_deref(), Some("1202"), "Washington DC");
        // Spain's numbers are grouped 9XX: the rule takes the group as libphonenumber writes it,
        // and a rate card's `3491` still matches by longest prefix.
        assert_eq!(of("+34912345678").as_deref(), Some("34912"), "Madrid");
        assert_eq!(of("+4930123456").as_deref(), Some("4930"), "Berlin");
        assert_eq!(of("not a number"), None);
        assert_eq!(of("+"), None);
    }

    #[test]
    fn a_destination_never_shows_the_subscriber_digits() {
        for number in
            ["+442079460018", "+447700900123", "+12025550123", "+4930123456", "+3612345678", "+29012345"]
        {
            if let Some(destination) = Destination::of_e164(number) {
                let digits = destination.digits();
                assert!(number[1..].starts_with(&digits), "{number}: {digits}");
                assert!(digits.len() + MIN_HIDDEN_DIGITS < number.len(), "{number}: {digits}");
                assert!(digits.len() <= MAX_DESTINATION_DIGITS);
            }
        }
    }

    #[test]
    fn json_and_scale_forms_are_checked() {
        let destination = Destination::CountryNetworkV1(4420);
        let json = serde_json::to_value(destination).unwrap();
        assert_eq!(json, serde_json::json!({"version": 1, "digits": "4420"}));
        assert_eq!(serde_json::from_value::<Destination>(json).unwrap(), destination);
        for bad in [
            r#"{"version":2,"digits":"44"}"#,
            r#"{"version":1,"digits":"044"}"#,
            r#"{"version":1,"digits":"123456789"}"#,
            r#"{"version":1,"digits":""}"#,
        ] {
            assert!(serde_json::from_str::<Destination>(bad).is_err(), "{bad}");
        }
        assert!(Destination::CountryNetworkV1(0).check().is_err());
        assert!(Destination::CountryNetworkV1(DESTINATION_CODE_END).check().is_err());
        assert!(Destination::CountryNetworkV1(99_999_999).check().is_ok());
        let bytes = destination.encode();
        assert_eq!(bytes, [1, 0x44, 0x11, 0, 0]);
        assert_eq!(Destination::decode(&mut &bytes[..]).unwrap(), destination);
    }
}
