//! Ingest adapters: the CDR formats switches already write, mapped onto the canonical CDR
//! ([`cdrchain_runtime::input::CdrInput`]).
//!
//! Every adapter is pure (text in, records out: no IO, clock or randomness) and never panics on
//! input. An adapter reads a whole document or file and answers an [`Outcome`]: the CDRs it read
//! (each with the line it came from), the records it skipped on purpose (a transaction event that
//! is not a call record), and the records it could not read, each with line, field and reason. A
//! file that is not of the format at all is a [`FormatError`]. What to do with bad records (skip
//! them or refuse the file) is the caller's policy, not the adapter's.
//!
//! Party identities (caller, callee) stay as the source wrote them: the node normalizes and
//! hashes them ([`cdrchain_runtime::party`]), and an identity that is not a number or SIP URI is
//! refused there, with the field named.
//!
//! The mapping of each format is documented in `docs/ingest.md`, and in each module.

pub mod asterisk;
pub mod canonical;
pub mod causes;
pub mod file;
pub mod freeswitch;
pub mod kamailio;
pub mod opensips;
pub mod reconciliation;

pub use cdrchain_runtime::input::CdrInput;

/// What a source does not say and the recording node supplies.
#[derive(Clone, Debug)]
pub struct Context {
    /// The recording operator: `caller_operator` and `callee_operator` default to it (an on-net
    /// call) when the source does not name the interconnect partners.
    pub operator: String,
    /// `system_id` when the source does not name its switch.
    pub system_id: Option<String>,
}

impl Context {
    pub fn new(operator: impl Into<String>) -> Context {
        Context { operator: operator.into(), system_id: None }
    }

    /// The system id: the context's, else the source's own, else `fallback`.
    pub fn system_id(&self, from_source: Option<&str>, fallback: &str) -> String {
        self.system_id
            .clone()
            .or_else(|| from_source.map(str::trim).filter(|s| !s.is_empty()).map(sanitize_token))
            .unwrap_or_else(|| fallback.to_string())
    }
}

/// A system id must be printable ASCII without spaces: other characters become `_`.
pub fn sanitize_token(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).take(64).collect()
}

/// One CDR read from a source.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub input: CdrInput,
    /// The 1-based line where the record starts (1 for a single document).
    pub line: usize,
}

/// A record deliberately not turned into a CDR (not an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub reason: String,
}

/// A record that could not be read: where, which field, why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {reason}", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct RecordError {
    pub line: usize,
    pub field: Option<String>,
    pub reason: String,
}

impl RecordError {
    pub fn new(line: usize, field: Option<&str>, reason: impl Into<String>) -> RecordError {
        RecordError { line, field: field.map(str::to_string), reason: reason.into() }
    }
}

/// What an adapter read from one document or file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub cdrs: Vec<Parsed>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<RecordError>,
}

/// Why a whole document or file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The input is not of this format (and, where it can tell, what it is instead).
    #[error("not {format}: {reason}")]
    NotThisFormat { format: &'static str, reason: String },
    /// The input is of this format but cannot be read as a whole.
    #[error("{format}: {reason}")]
    Unreadable { format: &'static str, reason: String },
}

/// The formats `cdrchain submit --format` knows, with their command-line names.
pub const FORMAT_NAMES: [&str; 6] =
    ["freeswitch-json", "kamailio-json", "kamailio-acc", "asterisk-csv", "opensips-acc", "canonical"];

/// Seconds (with an optional fraction, as `1795660125.168`) to whole milliseconds.
pub fn seconds_to_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    let mut millis = 0u64;
    for (i, digit) in fraction.bytes().take(3).enumerate() {
        millis += u64::from(digit - b'0') * [100, 10, 1][i];
    }
    seconds.checked_mul(1000)?.checked_add(millis)
}

/// A real-world fixture of `tests/fixtures/real-cdrs`, for the adapters' tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/real-cdrs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_with_fractions_become_milliseconds() {
        assert_eq!(seconds_to_ms("1795660125.168"), Some(1_795_660_125_168));
        assert_eq!(seconds_to_ms("1795660125.1704291"), Some(1_795_660_125_170));
        assert_eq!(seconds_to_ms("1795660125.1"), Some(1_795_660_125_100));
        assert_eq!(seconds_to_ms("1795660125"), Some(1_795_660_125_000));
        assert_eq!(seconds_to_ms(" 0 "), Some(0));
        for bad in ["", ".5", "1e9", "-1", "12.3.4", "abc", "99999999999999999999"] {
            assert_eq!(seconds_to_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn system_ids_are_tokens() {
        let ctx = Context::new("alice");
        assert_eq!(ctx.system_id(Some("my switch"), "x"), "my_switch");
        assert_eq!(ctx.system_id(Some("  "), "x"), "x");
        assert_eq!(ctx.system_id(None, "x"), "x");
        let ctx = Context { system_id: Some("pbx-1".into()), ..Context::new("alice") };
        assert_eq!(ctx.system_id(Some("other"), "x"), "pbx-1");
    }
}
