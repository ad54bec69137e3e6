//! Canonical JSON CDR input, as operators and tools submit it, and its validation into a
//! [`CdrBody`] with errors that say which field, which value, and why.
//!
//! ```json
//! {"call_id": "a84b4c76e66710@pc33.example.com", "caller": "+442079460018",
//!  "callee": "sip:bob@example.net", "caller_operator": "alice", "callee_operator": "bob",
//!  "system_id": "sbc-lon-1", "start": "2026-11-26T10:00:00Z", "answer": 1795687205000,
//!  "end": "2026-11-26T10:03:20.500Z", "disposition": "answered", "q850_cause": 16,
//!  "sip_status": 200, "mos": 4.3}
//! ```
//! Times are RFC 3339 text (any offset, converted to UTC) or integer milliseconds since the Unix
//! epoch. `system_id` defaults to `default`; `answer`, `q850_cause`, `sip_status`, `mos`, `fault`,
//! `redirect_reason`, `leg` (`a`/`b`), `linked_id` and `source_id` are optional. Unknown fields
//! are refused, so a misspelt field is caught.

use serde::{Deserialize, Serialize};

use crate::cdr::{CdrBody, CdrError, Disposition, Fault, Leg, Mos, Q850Cause, SipStatus};
use crate::codec::excerpt;
use crate::ids::{CallId, OperatorId, RedirectReason, SystemId};
use crate::numbering::SourceRules;
use crate::party::{PartiesAsWritten, PartyHasher};

/// The largest canonical JSON document (one CDR) accepted, in bytes.
pub const MAX_CDR_JSON_BYTES: usize = 16 * 1024;

/// One CDR as submitted. Field types are loose on purpose (times and numbers as JSON values) so
/// that validation, not the JSON parser, names the field and the rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrInput {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub caller_operator: String,
    pub callee_operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
    pub start: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<serde_json::Value>,
    pub end: serde_json::Value,
    pub disposition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q850_cause: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_status: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mos: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_reason: Option<String>,
    /// `a` or `b` when the source reports the legs of a call separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
    /// What links the records of one call (stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_id: Option<String>,
    /// This record's identity in its source system (a FreeSWITCH channel uuid, an Asterisk
    /// `uniqueid`); with `system_id` it makes a re-submitted record recognisable. Defaults to
    /// `call_id` and the leg. The chain stores only its digest (`CdrBody::source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

/// Why a submitted CDR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Not JSON, or not an object of the canonical shape.
    #[error("malformed CDR JSON{}: {reason}", field_suffix(.field))]
    Malformed { field: Option<String>, reason: String },
    /// A field's value breaks a rule.
    #[error(transparent)]
    Field(#[from] CdrError),
}

fn field_suffix(field: &Option<String>) -> String {
    match field {
        Some(field) => format!(" at `{field}`"),
        None => String::new(),
    }
}

impl InputError {
    /// The offending field, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            InputError::Malformed { field, .. } => field.as_deref(),
            InputError::Field(error) => Some(error.field),
        }
    }
}

impl CdrInput {
    /// Parses one JSON document.
    pub fn from_json(text: &str) -> Result<CdrInput, InputError> {
        if text.len() > MAX_CDR_JSON_BYTES {
            return Err(InputError::Malformed {
                field: None,
                reason: format!("{} bytes, more than the limit of {MAX_CDR_JSON_BYTES}", text.len()),
            });
        }
        // Well-formed records (nearly all) take serde_json alone; only a failure is parsed again
        // with the path tracking that names the offending field, which cost about a third of
        // ingest parsing in a profile of the four-validator benchmark (docs/benchmarks.md).
        if let Ok(input) = serde_json::from_str::<CdrInput>(text) {
            return Ok(input);
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let input: CdrInput = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| malformed(error.path(), error.inner()))?;
        deserializer.end().map_err(|error| InputError::Malformed {
            field: None,
            reason: format!("trailing characters after the CDR object: {error}"),
        })?;
        Ok(input)
    }

    /// Parses a JSON value (an element of a submitted array).
    pub fn from_value(value: serde_json::Value) -> Result<CdrInput, InputError> {
        serde_path_to_error::deserialize(value).map_err(|error| malformed(error.path(), error.inner()))
    }

    /// The source system the record names (`default` when it names none): whose number rules
    /// apply.
    pub fn source_system(&self) -> &str {
        self.system_id.as_deref().map_or("default", str::trim)
    }

    /// The record's identity in its source, for recognising a re-submission: `system_id`,
    /// then `source_id` or else `call_id` and the leg. Two submissions with the same key are
    /// the same record.
    pub fn source_key(&self) -> String {
        let system = self.system_id.as_deref().map_or("default", str::trim);
        match &self.source_id {
            Some(source) => format!("{system}\u{1f}id\u{1f}{}", source.trim()),
            None => format!(
                "{system}\u{1f}call\u{1f}{}\u{1f}{}",
                self.call_id.trim(),
                self.leg.as_deref().map_or("", str::trim)
            ),
        }
    }

    /// Validates every field and hashes the parties.
    pub fn to_body(&self, parties: &PartyHasher) -> Result<CdrBody, InputError> {
        self.to_body_with(parties, None)
    }

    /// Like [`CdrInput::to_body`], with the number rules of the record's source applied to
    /// both parties before they are hashed.
    pub fn to_body_with(
        &self,
        parties: &PartyHasher,
        rules: Option<&SourceRules>,
    ) -> Result<CdrBody, InputError> {
        let call_id = CallId::new(self.call_id.trim())
            .map_err(|e| CdrError::new("call_id", quoted(&self.call_id), e.to_string()))?;
        let party = |field: &'static str, raw: &str| {
            let rewritten = rules.map_or(std::borrow::Cow::Borrowed(raw), |rules| rules.rewrite(raw));
            parties
                .digest_with_destination(&rewritten)
                .map_err(|e| CdrError::new(field, quoted(raw), e.to_string()))
        };
        let (caller, caller_as_written, _) = party("caller", &self.caller)?;
        let (callee, callee_as_written, destination) = party("callee", &self.callee)?;
        let caller_operator = operator("caller_operator", &self.caller_operator)?;
        let callee_operator = operator("callee_operator", &self.callee_operator)?;
        let system_id = system_id(self.system_id.as_deref())?;
        let start_ms = time_ms("start", &self.start)?;
        let answer_ms = match &self.answer {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(time_ms("answer", value)?),
        };
        let end_ms = time_ms("end", &self.end)?;
        let disposition = Disposition::parse(&self.disposition).ok_or_else(|| {
            CdrError::new(
                "disposition",
                quoted(&self.disposition),
                "unknown disposition; expected one of answered, busy, no-answer, failed, cancelled",
            )
        })?;
        let q850_cause = optional_integer("q850_cause", self.q850_cause.as_ref(), 1, 127)?
            .and_then(|v| u8::try_from(v).ok())
            .and_then(Q850Cause::new);
        let sip_status = optional_integer("sip_status", self.sip_status.as_ref(), 100, 699)?
            .and_then(|v| u16::try_from(v).ok())
            .and_then(SipStatus::new);
        let mos = mos(self.mos.as_ref())?;
        let fault = match &self.fault {
            None => None,
            Some(text) => Some(Fault::parse(text).ok_or_else(|| {
                CdrError::new(
                    "fault",
                    quoted(text),
                    "unknown fault; expected one of unallocated-number, user-busy, temporary-failure, \
                     service-not-implemented, not-found, temporarily-unavailable, redirect, call-split, \
                     national-use",
                )
            })?),
        };
        let redirect_reason = match &self.redirect_reason {
            None => None,
            Some(text) => Some(
                RedirectReason::new(text.trim())
                    .map_err(|e| CdrError::new("redirect_reason", quoted(text), e.to_string()))?,
            ),
        };
        let leg = match &self.leg {
            None => None,
            Some(text) => Some(
                Leg::parse(text)
                    .ok_or_else(|| CdrError::new("leg", quoted(text), "unknown leg; expected `a` or `b`"))?,
            ),
        };
        let linked_id = match &self.linked_id {
            None => None,
            Some(text) => Some(
                CallId::new(text.trim())
                    .map_err(|e| CdrError::new("linked_id", quoted(text), e.to_string()))?,
            ),
        };
        let body = CdrBody {
            leg,
            linked_id,
            system_id,
            call_id,
            caller,
            callee,
            caller_operator,
            callee_operator,
            destination,
            start_ms,
            answer_ms,
            end_ms,
            disposition,
            q850_cause,
            sip_status,
            mos,
            fault,
            redirect_reason,
            as_written: PartiesAsWritten { caller: caller_as_written, callee: callee_as_written },
            source: crate::source::SourceDigest::of_key(&self.source_key()),
        };
        body.validate()?;
        Ok(body)
    }
}

/// A parse error with the field it concerns: the path where serde stopped, or, for a missing or
/// unknown field (reported at the object itself), the field the message names.
fn malformed(path: &serde_path_to_error::Path, error: &serde_json::Error) -> InputError {
    let reason = error.to_string();
    let path = path.to_string();
    let field = if path != "." && !path.is_empty() {
        Some(path)
    } else {
        ["missing field `", "unknown field `"].iter().find_map(|prefix| {
            let rest = reason.split(prefix).nth(1)?;
            rest.split('`').next().map(str::to_string)
        })
    };
    InputError::Malformed { field, reason }
}

fn quoted(text: &str) -> String {
    format!("{:?}", excerpt(text))
}

fn operator(field: &'static str, text: &str) -> Result<OperatorId, CdrError> {
    OperatorId::new(text.trim()).map_err(|e| CdrError::new(field, quoted(text), e.to_string()))
}

/// The switch's id, `default` when the record names none.
fn system_id(text: Option<&str>) -> Result<SystemId, CdrError> {
    let text = text.map_or("default", str::trim);
    SystemId::new(text).map_err(|e| CdrError::new("system_id", quoted(text), e.to_string()))
}

/// Milliseconds since the Unix epoch from RFC 3339 text or a non-negative integer; errors name
/// `field`.
pub fn time_ms(field: &'static str, value: &serde_json::Value) -> Result<u64, CdrError> {
    match value {
        serde_json::Value::Number(number) => number.as_u64().ok_or_else(|| {
            CdrError::new(field, number, "expected integer milliseconds since the Unix epoch (>= 0)")
        }),
        serde_json::Value::String(text) => {
            let parsed = chrono::DateTime::parse_from_rfc3339(text.trim())
                .map_err(|e| CdrError::new(field, quoted(text), format!("not an RFC 3339 time: {e}")))?;
            u64::try_from(parsed.timestamp_millis())
                .map_err(|_| CdrError::new(field, quoted(text), "before the Unix epoch"))
        }
        other => Err(CdrError::new(
            field,
            other,
            "expected RFC 3339 text or integer milliseconds since the Unix epoch",
        )),
    }
}

fn optional_integer(
    field: &'static str,
    value: Option<&serde_json::Value>,
    min: u64,
    max: u64,
) -> Result<Option<u64>, CdrError> {
    let number = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(number)) => number.as_u64(),
        Some(serde_json::Value::String(text)) => text.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match number {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(CdrError::new(
            field,
            value.map_or_else(String::new, |v| v.to_string()),
            format!("expected an integer from {min} to {max}"),
        )),
    }
}

fn mos(value: Option<&serde_json::Value>) -> Result<Option<Mos>, CdrError> {
    let score = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(number)) => number.as_f64(),
        Some(serde_json::Value::String(text)) => text.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    let shown = value.map_or_else(String::new, |v| v.to_string());
    let score = score.ok_or_else(|| CdrError::new("mos", &shown, "expected a number from 1.0 to 5.0"))?;
    if !(1.0..=5.0).contains(&score) {
        return Err(CdrError::new("mos", &shown, "MOS is outside 1.0 to 5.0"));
    }
    // In range, so the product is within 100..=500 and the cast is exact after rounding.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let hundredths = (score * 100.0).round() as u16;
    Ok(Mos::from_hundredths(hundredths))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PartyHasher {
        PartyHasher::new(b"cdrchain input test secret 0123", Some("GB")).unwrap()
    }

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "call_id": "a84b4c76e66710@pc33.example.com",
            "caller": "+44 20 7946 0018",
            "callee": "sip:bob@Example.NET",
            "caller_operator": "alice",
            "callee_operator": "bob",
            "system_id": "sbc-lon-1",
            "start": "2026-11-26T10:00:00Z",
            "answer": "2026-11-26T11:00:05+01:00",
            "end": 1_795_687_400_500u64,
            "disposition": "Answered",
            "q850_cause": 16,
            "sip_status": "200",
            "mos": 4.31
        })
    }

    fn check(edit: impl FnOnce(&mut serde_json::Value)) -> Result<CdrBody, InputError> {
        let mut value = valid();
        edit(&mut value);
        CdrInput::from_json(&value.to_string())?.to_body(&hasher())
    }

    #[test]
    fn a_valid_cdr_becomes_a_body() {
        let body = check(|_| {}).unwrap();
        assert_eq!(body.start_ms, 1_795_687_200_000);
        assert_eq!(body.answer_ms, Some(1_795_687_205_000));
        assert_eq!(body.end_ms, 1_795_687_400_500);
        assert_eq!(body.billable_ms(), 195_500);
        assert_eq!(body.disposition, Disposition::Answered);
        assert_eq!(body.q850_cause.map(Q850Cause::value), Some(16));
        assert_eq!(body.sip_status.map(SipStatus::value), Some(200));
        assert_eq!(body.mos.map(Mos::hundredths), Some(431));
        assert_eq!(body.caller, hasher().digest("+442079460018").unwrap());
        assert_eq!(body.callee, hasher().digest("sip:bob@example.net").unwrap());
        assert_eq!(body.system_id.as_str(), "sbc-lon-1");
        // Defaults.
        let body = check(|v| {
            let object = v.as_object_mut().unwrap();
            for field in ["system_id", "q850_cause", "sip_status", "mos"] {
                object.remove(field);
            }
        })
        .unwrap();
        assert_eq!(body.system_id.as_str(), "default");
        assert_eq!((body.q850_cause, body.sip_status, body.mos), (None, None, None));
    }

    #[test]
    fn each_bad_field_is_named_with_its_reason() {
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(Edit, &str, &str)> = vec![
            (Box::new(|v| v["end"] = "2026-11-26T09:00:00Z".into()), "end", "end is before start"),
            (Box::new(|v| v["answer"] = "2026-11-26T12:00:00Z".into()), "answer", "outside [start, end]"),
            (
                Box::new(|v| v["answer"] = serde_json::Value::Null),
                "answer",
                "answered call needs an answer time",
            ),
            (Box::new(|v| v["end"] = "2026-11-27T10:00:01Z".into()), "end", "more than 24 h"),
            (Box::new(|v| v["disposition"] = "hung-up".into()), "disposition", "unknown disposition"),
            (Box::new(|v| v["mos"] = 5.5.into()), "mos", "outside 1.0 to 5.0"),
            (Box::new(|v| v["mos"] = 0.2.into()), "mos", "outside 1.0 to 5.0"),
            (Box::new(|v| v["mos"] = "good".into()), "mos", "expected a number"),
            (Box::new(|v| v["call_id"] = "  ".into()), "call_id", "empty"),
            (Box::new(|v| v["call_id"] = "x".repeat(300).into()), "call_id", "more than the limit of 256"),
            (Box::new(|v| v["start"] = "yesterday".into()), "start", "not an RFC 3339 time"),
            (Box::new(|v| v["start"] = (-5).into()), "start", "integer milliseconds"),
            (Box::new(|v| v["start"] = 1.5.into()), "start", "integer milliseconds"),
            (Box::new(|v| v["start"] = true.into()), "start", "RFC 3339 text or integer"),
            (Box::new(|v| v["q850_cause"] = 200.into()), "q850_cause", "from 1 to 127"),
            (Box::new(|v| v["sip_status"] = "OK".into()), "sip_status", "from 100 to 699"),
            (Box::new(|v| v["caller_operator"] = "Alice Corp".into()), "caller_operator", "lower-case"),
            (Box::new(|v| v["caller"] = "".into()), "caller", ""),
            (Box::new(|v| v["callee"] = "\u{7}".into()), "callee", "control character"),
            (Box::new(|v| v["fault"] = "gremlins".into()), "fault", "unknown fault"),
            (Box::new(|v| v["disposition"] = "busy".into()), "answer", "has no answer time"),
        ];
        for (edit, field, reason) in cases {
            let error = check(edit).expect_err(field);
            assert_eq!(error.field(), Some(field), "{error}");
            assert!(error.to_string().contains(reason), "`{error}` should say `{reason}`");
        }
    }

    #[test]
    fn malformed_documents_say_where() {
        let error = CdrInput::from_json("{\"call_id\": ").unwrap_err();
        assert!(matches!(error, InputError::Malformed { .. }), "{error}");
        let mut value = valid();
        value.as_object_mut().unwrap().remove("end");
        let error = CdrInput::from_json(&value.to_string()).unwrap_err();
        assert!(error.to_string().contains("missing field `end`"), "{error}");
        assert_eq!(error.field(), Some("end"));
        let mut value = valid();
        value["dispostion"] = "busy".into();
        let error = CdrInput::from_json(&value.to_string()).unwrap_err();
        assert!(error.to_string().contains("unknown field `dispostion`"), "{error}");
        let mut value = valid();
        value["caller"] = 5.into();
        let error = CdrInput::from_json(&value.to_string()).unwrap_err();
        assert_eq!(error.field(), Some("caller"), "{error}");
        let error = CdrInput::from_json(&format!("{} {{}}", valid())).unwrap_err();
        assert!(error.to_string().contains("trailing"), "{error}");
        let huge = format!("{{\"call_id\": \"{}\"}}", "x".repeat(MAX_CDR_JSON_BYTES));
        assert!(CdrInput::from_json(&huge).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn dispositions_parse_leniently_but_only_known_names() {
        for (text, expected) in [
            ("answered", Disposition::Answered),
            ("NO ANSWER", Disposition::NoAnswer),
            ("no_answer", Disposition::NoAnswer),
            ("Canceled", Disposition::Cancelled),
            ("busy", Disposition::Busy),
            ("FAILED", Disposition::Failed),
        ] {
            assert_eq!(Disposition::parse(text), Some(expected), "{text}");
        }
        assert_eq!(Disposition::parse("congestion"), None);
        for d in Disposition::ALL {
            assert_eq!(Disposition::parse(d.as_str()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }
}
