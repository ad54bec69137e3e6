//! Identifiers and small newtypes of the domain: operators, switches, calls, heights, sequences.

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use serde::{Deserialize, Serialize};

use crate::codec::{bounded_string, printable};

fn operator_chars(text: &str) -> Result<(), &'static str> {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_ascii_lowercase() => {}
        _ => return Err("must start with a lower-case ASCII letter"),
    }
    if chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        Ok(())
    } else {
        Err("may hold only lower-case ASCII letters, digits, '-' and '_'")
    }
}

fn token_chars(text: &str) -> Result<(), &'static str> {
    if text.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("may hold only printable ASCII without spaces")
    }
}

bounded_string!(
    /// An operator (a consortium member) by its short name, e.g. `alice`. Also names interconnect
    /// partners in `caller_operator` / `callee_operator`.
    OperatorId,
    max = 32,
    check = operator_chars
);

bounded_string!(
    /// Which switch of an operator wrote a CDR (`sbc-lon-1`, a FreeSWITCH `core-uuid`, ...).
    SystemId,
    max = 64,
    check = token_chars
);

bounded_string!(
    /// The SIP Call-ID (or the switch's call UUID). Kept in clear: it is a random token, and
    /// reconciliation and `cdr_byCallId` need it.
    CallId,
    max = 256,
    check = printable
);

bounded_string!(
    /// A free-text reason (a declared sequence gap).
    ReasonText,
    max = 256,
    check = printable
);

bounded_string!(
    /// A redirect reason token as in SIP `Diversion`/`History-Info` (`user-busy`, `no-answer`,
    /// `unconditional`, `deflection`, ...).
    RedirectReason,
    max = 32,
    check = token_chars
);

/// A block height. Height 0 is the genesis state; the first block is height 1.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    Encode,
    Decode,
    MaxEncodedLen,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Height(pub u64);

impl Height {
    pub fn next(self) -> Option<Height> {
        self.0.checked_add(1).map(Height)
    }
}

impl std::fmt::Display for Height {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A consensus round within a height.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    Encode,
    Decode,
    MaxEncodedLen,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Round(pub u32);

/// A recorder's CDR sequence number: contiguous from 0 per operator, so a gap is visible to all.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    Encode,
    Decode,
    MaxEncodedLen,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Sequence(pub u64);

impl std::fmt::Display for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A CDR's chain-wide id: `operator:sequence`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CdrId {
    pub recorder: OperatorId,
    pub sequence: Sequence,
}

impl std::fmt::Display for CdrId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.recorder, self.sequence)
    }
}

/// Why a text is not an `operator:sequence` id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a CDR id of the form operator:sequence: {reason}")]
pub struct CdrIdError {
    pub text: String,
    pub reason: String,
}

impl std::str::FromStr for CdrId {
    type Err = CdrIdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| CdrIdError { text: crate::codec::excerpt(text), reason };
        let (operator, sequence) = text.rsplit_once(':').ok_or_else(|| fail("no ':'".into()))?;
        let recorder = OperatorId::new(operator).map_err(|e| fail(e.to_string()))?;
        let sequence = sequence.parse::<u64>().map_err(|e| fail(format!("sequence `{sequence}`: {e}")))?;
        Ok(CdrId { recorder, sequence: Sequence(sequence) })
    }
}

impl Serialize for CdrId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CdrId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_ids() {
        assert!(OperatorId::new("alice").is_ok());
        assert!(OperatorId::new("op-2_x").is_ok());
        for bad in ["Alice", "1op", "a b", "", "a".repeat(33).as_str(), "ü"] {
            assert!(OperatorId::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn cdr_ids_parse_and_print() {
        let id: CdrId = "alice:42".parse().unwrap();
        assert_eq!(id.recorder.as_str(), "alice");
        assert_eq!(id.sequence, Sequence(42));
        assert_eq!(id.to_string(), "alice:42");
        let err = "alice:x".parse::<CdrId>().unwrap_err();
        assert!(err.to_string().contains("sequence `x`"), "{err}");
        assert!("alice".parse::<CdrId>().is_err());
        assert!("Alice:1".parse::<CdrId>().is_err());
    }
}
