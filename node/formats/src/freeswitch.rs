//! FreeSWITCH `mod_json_cdr`: one JSON document per channel (leg), POSTed to `/ingest/freeswitch`.
//!
//! # Body encodings ([`decode_body`])
//! | `encode` setting | body | read as |
//! | --- | --- | --- |
//! | unset / `false` | the JSON document | JSON |
//! | `true` | `cdr=<url-encoded JSON>` (form) | form-decoded, then JSON |
//! | `base64` | `cdr=<base64 JSON>` (form) | form-decoded, base64-decoded, then JSON |
//!
//! Values inside `variables` are URL-encoded when `encode-values` is on (the default): every
//! value read is percent-decoded (a `+` stays a `+`).
//!
//! # Mapping ([`parse_document`])
//! | canonical | FreeSWITCH |
//! | --- | --- |
//! | `call_id` | `variables.sip_call_id` (the leg's SIP Call-ID), else the channel `uuid` |
//! | `source_id` | `variables.uuid`: the channel; re-posting it is recognised |
//! | `leg`, `linked_id` | B leg when the channel was originated by another (`originating_leg_uuid`, or a caller profile with an `originator`): `linked_id` = that A-leg uuid (else `bridge_uuid`/`signal_bond`/`call_uuid`). A leg when it bridged to another channel (`bridge_uuid`, `signal_bond`, `last_bridge_to`, or a profile with `originatee`): `linked_id` = its own uuid. Neither: no leg (the whole call) |
//! | `caller` | `caller_id_number` of the original (last) `callflow` caller profile, else `variables.caller_id_number`; when that is not a number (`dan`), `sip:<sip_from_user>@<sip_from_host>` |
//! | `callee` | `destination_number` of that profile; when not a number, `sip:<sip_req_user>@<sip_req_host>` (or `sip_to_*`) |
//! | `start`, `answer`, `end` | `start_uepoch`, `answer_uepoch` (0: unanswered), `end_uepoch` (µs, to ms); else the `*_epoch` seconds |
//! | `q850_cause` | `hangup_cause_q850` (1..=127), else the Q.850 value of `hangup_cause` |
//! | `sip_status` | `sip_term_status`, else the `sip:NNN` of `proto_specific_hangup_cause` / `last_bridge_proto_specific_hangup_cause`, else 200 for an answered call |
//! | `disposition` | answered when `answer_uepoch` > 0; else cancelled for `ORIGINATOR_CANCEL`, else from the SIP status (486 busy, 480/408 no answer, 487 cancelled), else from the Q.850 cause (17 busy, 18/19 no answer), else failed |
//! | `mos` | `rtp_audio_in_mos` (answered calls, when 1.0 to 5.0) |
//! | `caller_operator`, `callee_operator` | channel variables `cdrchain_caller_operator`, `cdrchain_callee_operator` (set them in the dialplan on interconnect routes), else the recording operator |
//! | `system_id` | the node's configured system id, else `switchname`, else `core-uuid`, else `freeswitch` |

use base64::Engine as _;
use cdrchain_runtime::input::CdrInput;
use serde_json::{Map, Value};

use crate::causes;
use crate::{Context, FormatError, Outcome, Parsed, RecordError};

const FORMAT: &str = "FreeSWITCH mod_json_cdr";

/// The JSON text of a `mod_json_cdr` POST body, whatever its encoding.
pub fn decode_body(body: &[u8]) -> Result<String, FormatError> {
    let unreadable = |reason: String| FormatError::Unreadable { format: FORMAT, reason };
    let text = std::str::from_utf8(body).map_err(|e| unreadable(format!("the body is not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return Ok(text.to_string());
    }
    if trimmed.is_empty() {
        return Err(unreadable("the body is empty".into()));
    }
    // A form: `cdr=...` (possibly among other fields).
    let value = trimmed.split('&').find_map(|pair| pair.strip_prefix("cdr=")).ok_or_else(|| {
        FormatError::NotThisFormat {
            format: FORMAT,
            reason: "the body is neither a JSON document nor a form with a `cdr=` field".into(),
        }
    })?;
    let decoded = form_decode(value.trim_end())
        .ok_or_else(|| unreadable("the `cdr` form field is not valid URL-encoded UTF-8".into()))?;
    if decoded.trim_start().starts_with('{') {
        return Ok(decoded);
    }
    let compact: String = decoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.as_bytes()))
        .map_err(|e| unreadable(format!("the `cdr` form field is neither JSON nor base64: {e}")))?;
    let json = String::from_utf8(bytes)
        .map_err(|e| unreadable(format!("the base64 `cdr` field is not UTF-8: {e}")))?;
    if json.trim_start().starts_with('{') {
        Ok(json)
    } else {
        Err(unreadable("the base64 `cdr` field does not hold a JSON object".into()))
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|s| s.into_owned())
}

/// A value of `variables`, percent-decoded (`encode-values`); `+` is kept.
fn decode_value(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Reads one `mod_json_cdr` document (one channel) into one CDR.
pub fn parse_document(json: &str, ctx: &Context) -> Result<Outcome, FormatError> {
    let document: Value = serde_json::from_str(json).map_err(|e| FormatError::Unreadable {
        format: FORMAT,
        reason: format!("not JSON (line {}, column {}): {e}", e.line(), e.column()),
    })?;
    let Some(object) = document.as_object() else {
        return Err(FormatError::NotThisFormat {
            format: FORMAT,
            reason: "the document is not a JSON object".into(),
        });
    };
    let Some(variables) = object.get("variables").and_then(Value::as_object) else {
        return Err(FormatError::NotThisFormat {
            format: FORMAT,
            reason: "the document has no `variables` object (is it a mod_json_cdr CDR?)".into(),
        });
    };
    let mut outcome = Outcome::default();
    match read(object, variables, ctx) {
        Ok(input) => outcome.cdrs.push(Parsed { input, line: 1 }),
        Err(error) => outcome.errors.push(error),
    }
    Ok(outcome)
}

struct Document<'a> {
    object: &'a Map<String, Value>,
    variables: &'a Map<String, Value>,
}

impl Document<'_> {
    fn var(&self, name: &str) -> Option<String> {
        let value = match self.variables.get(name)? {
            Value::String(s) => decode_value(s),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let value = value.trim().to_string();
        (!value.is_empty()).then_some(value)
    }

    /// The caller profiles of `callflow`, newest first (an object in older versions).
    fn profiles(&self) -> Vec<&Map<String, Value>> {
        let flows: Vec<&Value> = match self.object.get("callflow") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(object @ Value::Object(_)) => vec![object],
            _ => Vec::new(),
        };
        flows.into_iter().filter_map(|flow| flow.get("caller_profile")?.as_object()).collect()
    }

    /// Microseconds variable `u` to ms, else seconds variable `s` to ms; `None` when absent.
    fn time_ms(&self, micros: &str, seconds: &str) -> Result<Option<u64>, RecordError> {
        if let Some(text) = self.var(micros) {
            let value: u64 = text.parse().map_err(|_| {
                RecordError::new(
                    1,
                    Some(&format!("variables.{micros}")),
                    format!("{text:?} is not microseconds since the epoch"),
                )
            })?;
            return Ok(Some(value / 1000));
        }
        if let Some(text) = self.var(seconds) {
            let value: u64 = text.parse().map_err(|_| {
                RecordError::new(
                    1,
                    Some(&format!("variables.{seconds}")),
                    format!("{text:?} is not seconds since the epoch"),
                )
            })?;
            return Ok(value.checked_mul(1000));
        }
        Ok(None)
    }
}

fn profile_text(profile: &Map<String, Value>, name: &str) -> Option<String> {
    let value = decode_value(profile.get(name)?.as_str()?);
    let value = value.trim().to_string();
    (!value.is_empty()).then_some(value)
}

/// Digits, `+`, `*`, `#` and visual separators: a number or dial string, not a user name.
fn looks_like_number(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty()
        && text.chars().any(|c| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_digit() || "+*#-. ()".contains(c))
}

fn sip_uri(user: Option<String>, host: Option<String>) -> Option<String> {
    match (user, host) {
        (Some(user), Some(host)) => Some(format!("sip:{user}@{host}")),
        _ => None,
    }
}

/// Reads one document (see the mapping in the module docs).
fn read(
    object: &Map<String, Value>,
    variables: &Map<String, Value>,
    ctx: &Context,
) -> Result<CdrInput, RecordError> {
    let doc = Document { object, variables };
    let profiles = doc.profiles();
    let original = profiles.last().copied();
    let uuid = doc
        .var("uuid")
        .or_else(|| original.and_then(|p| profile_text(p, "uuid")))
        .ok_or_else(|| RecordError::new(1, Some("variables.uuid"), "the channel has no uuid"))?;
    let call_id = doc.var("sip_call_id").unwrap_or_else(|| uuid.clone());
    let (leg, linked_id) = doc.leg(&profiles, &uuid)?;
    let caller = doc.caller(original)?;
    let callee = doc.callee(original)?;

    // Times.
    let start = doc
        .time_ms("start_uepoch", "start_epoch")?
        .ok_or_else(|| RecordError::new(1, Some("variables.start_uepoch"), "no start time"))?;
    let end = doc
        .time_ms("end_uepoch", "end_epoch")?
        .ok_or_else(|| RecordError::new(1, Some("variables.end_uepoch"), "no end time"))?;
    let answer = doc.time_ms("answer_uepoch", "answer_epoch")?.filter(|a| *a > 0);

    let ending = doc.ending(answer.is_some());
    let mos = answer
        .and(doc.var("rtp_audio_in_mos"))
        .and_then(|m| m.parse::<f64>().ok())
        .filter(|m| MOS_RANGE.contains(m));
    let system_id = ctx.system_id(
        object
            .get("switchname")
            .and_then(Value::as_str)
            .or_else(|| object.get("core-uuid").and_then(Value::as_str)),
        "freeswitch",
    );
    Ok(CdrInput {
        call_id,
        caller,
        callee,
        caller_operator: doc.var("cdrchain_caller_operator").unwrap_or_else(|| ctx.operator.clone()),
        callee_operator: doc.var("cdrchain_callee_operator").unwrap_or_else(|| ctx.operator.clone()),
        system_id: Some(system_id),
        start: Value::from(start),
        answer: answer.map(Value::from),
        end: Value::from(end),
        disposition: ending.disposition.to_string(),
        q850_cause: ending.q850.map(Value::from),
        sip_status: ending.sip_status.map(Value::from),
        mos: mos.map(Value::from),
        fault: None,
        redirect_reason: None,
        leg,
        linked_id,
        source_id: Some(uuid),
    })
}

/// Q.850 cause values (ITU-T Q.850 numbers them 1 to 127).
const Q850_RANGE: std::ops::RangeInclusive<u8> = 1..=127;
/// SIP status codes (RFC 3261: 1xx to 6xx).
const SIP_STATUS_RANGE: std::ops::RangeInclusive<u16> = 100..=699;
/// The lowest final SIP status that is a failure (3xx to 6xx).
const FIRST_FAILURE_SIP_STATUS: u16 = 300;
/// The status of an answered call whose document states none.
const ANSWERED_SIP_STATUS: u16 = 200;
/// Mean opinion scores (ITU-T P.800: 1 bad to 5 excellent).
const MOS_RANGE: std::ops::RangeInclusive<f64> = 1.0..=5.0;

/// How a call ended: its disposition, Q.850 cause and SIP status (see the module docs).
struct Ending {
    disposition: &'static str,
    q850: Option<u8>,
    sip_status: Option<u16>,
}

impl Document<'_> {
    /// The leg (`a`, `b` or none) and the id linking it to the other leg of its call.
    fn leg(
        &self,
        profiles: &[&Map<String, Value>],
        uuid: &str,
    ) -> Result<(Option<String>, Option<String>), RecordError> {
        let originator_uuid = profiles.iter().find_map(|p| {
            let originator = p.get("originator")?;
            let list = originator.get("originator_caller_profiles")?.as_array()?;
            list.iter().find_map(|o| o.get("uuid")?.as_str().map(decode_value))
        });
        let is_b = self.var("originating_leg_uuid").is_some() || originator_uuid.is_some();
        let bridged = ["bridge_uuid", "signal_bond", "last_bridge_to"].iter().any(|v| self.var(v).is_some())
            || profiles.iter().any(|p| p.contains_key("originatee"));
        if is_b {
            let a_leg = self
                .var("originating_leg_uuid")
                .or(originator_uuid)
                .or_else(|| self.var("bridge_uuid"))
                .or_else(|| self.var("signal_bond"))
                .or_else(|| self.var("call_uuid").filter(|c| c != uuid));
            let a_leg = a_leg.ok_or_else(|| {
                RecordError::new(1, Some("variables.originating_leg_uuid"), "a B leg that names no A leg")
            })?;
            Ok((Some("b".to_string()), Some(a_leg)))
        } else if bridged {
            Ok((Some("a".to_string()), Some(uuid.to_string())))
        } else {
            Ok((None, None))
        }
    }

    /// The caller number of the `original` profile, else a `sip:` URI of the From header.
    fn caller(&self, original: Option<&Map<String, Value>>) -> Result<String, RecordError> {
        let number = original
            .and_then(|p| profile_text(p, "caller_id_number"))
            .or_else(|| self.var("caller_id_number"));
        match number {
            Some(number) if looks_like_number(&number) => Ok(number),
            other => sip_uri(self.var("sip_from_user"), self.var("sip_from_host"))
                .or(other)
                .ok_or_else(|| RecordError::new(1, Some("caller_id_number"), "the document names no caller")),
        }
    }

    /// The destination number of the `original` profile, else a `sip:` URI of the request.
    fn callee(&self, original: Option<&Map<String, Value>>) -> Result<String, RecordError> {
        let destination = original
            .and_then(|p| profile_text(p, "destination_number"))
            .or_else(|| self.var("destination_number"));
        match destination {
            Some(number) if looks_like_number(&number) => Ok(number),
            other => sip_uri(self.var("sip_req_user"), self.var("sip_req_host"))
                .or_else(|| sip_uri(self.var("sip_to_user"), self.var("sip_to_host")))
                .or(other)
                .ok_or_else(|| {
                    RecordError::new(1, Some("destination_number"), "the document names no callee")
                }),
        }
    }

    /// How the call ended, from the hangup cause and SIP status variables.
    fn ending(&self, answered: bool) -> Ending {
        let hangup_cause = self.var("hangup_cause");
        let q850 = self
            .var("hangup_cause_q850")
            .and_then(|c| c.parse::<u8>().ok())
            .filter(|c| Q850_RANGE.contains(c))
            .or_else(|| hangup_cause.as_deref().and_then(causes::freeswitch_cause_q850));
        let sip_of = |name: &str| self.var(name).and_then(|c| c.strip_prefix("sip:").map(str::to_string));
        let stated_sip = self
            .var("sip_term_status")
            .or_else(|| sip_of("proto_specific_hangup_cause"))
            .or_else(|| sip_of("last_bridge_proto_specific_hangup_cause"))
            .and_then(|s| s.trim().parse::<u16>().ok())
            .filter(|s| SIP_STATUS_RANGE.contains(s));
        let cancelled = hangup_cause.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("ORIGINATOR_CANCEL"));
        let disposition = if answered {
            "answered"
        } else if cancelled {
            "cancelled"
        } else if let Some(status) = stated_sip.filter(|s| *s >= FIRST_FAILURE_SIP_STATUS) {
            causes::unanswered_disposition_for_sip(status).as_str()
        } else if let Some(cause) = q850 {
            causes::unanswered_disposition_for_q850(cause).as_str()
        } else {
            "failed"
        };
        let sip_status = stated_sip.or(answered.then_some(ANSWERED_SIP_STATUS));
        Ending { disposition, q850, sip_status }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    const FIXTURES: [&str; 6] = [
        "fs_json_cdr_cgrates_agents_fsevent_test_2018_a.json",
        "fs_json_cdr_cgrates_agents_fsevent_test_2018_b.json",
        "fs_json_cdr_cgrates_cdrs_fscdr_test_2013_b.json",
        "fs_json_cdr_cgrates_cdrs_fscdr_test_2013_urlencoded_values.json",
        "fs_json_cdr_cgrates_engine_fscdr_test_2015.json",
        "fs_json_cdr_cgrates_engine_fscdr_test_2018_callStats.json",
    ];

    fn one(json: &str) -> CdrInput {
        let outcome = parse_document(json, &Context::new("alice")).unwrap();
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(outcome.cdrs.len(), 1);
        outcome.cdrs[0].input.clone()
    }

    fn int(value: &Option<Value>) -> Option<u64> {
        value.as_ref().and_then(Value::as_u64)
    }

    struct Expected {
        file: &'static str,
        call_id: &'static str,
        caller: &'static str,
        callee: &'static str,
        start: u64,
        answer: u64,
        end: u64,
        billsec: u64,
        system: &'static str,
        mos: Option<f64>,
    }

    #[test]
    fn every_fixture_maps_to_one_answered_a_leg() {
        let expected = [
            Expected {
                file: FIXTURES[0],
                call_id: "985e365faa0ec79a7fa75d001ef2449f@0:0:0:0:0:0:0:0",
                caller: "1001",
                callee: "1002",
                start: 1_521_025_758_006,
                answer: 1_521_025_767_766,
                end: 1_521_025_788_366,
                billsec: 21,
                system: "teo",
                mos: Some(4.49),
            },
            Expected {
                file: FIXTURES[1],
                call_id: "b1acaf2198f12cc429ab8a615cac083d@0:0:0:0:0:0:0:0",
                caller: "1001",
                callee: "1002",
                start: 1_520_944_103_557,
                answer: 1_520_944_105_037,
                end: 1_520_944_164_057,
                billsec: 59,
                system: "teo",
                mos: Some(4.49),
            },
            Expected {
                file: FIXTURES[2],
                call_id: "ca9c5e20caeaa6596be8cf66261f13e5@0:0:0:0:0:0:0:0",
                // `dan` is a user name, not a number: the SIP From identity is used.
                caller: "sip:dan@ipbx.itsyscom.com",
                callee: "+4986517174963",
                start: 1_375_609_854_385,
                answer: 1_375_609_856_285,
                end: 1_375_609_860_205,
                billsec: 4,
                system: "844715f9-d8a1-44d6-a4bf-358bec5e10b8",
                mos: None,
            },
            Expected {
                file: FIXTURES[3],
                // encode-values: `%40`, `%3A` decoded.
                call_id: "774f3a8a01222f664e6edebd372eef3d@0:0:0:0:0:0:0:0",
                caller: "1001",
                callee: "1002",
                start: 1_368_707_608_847,
                answer: 1_368_707_611_310,
                end: 1_368_707_632_287,
                billsec: 21,
                system: "9b8ce609-6413-437b-8cf3-bbb92aaf720a",
                mos: None,
            },
            Expected {
                file: FIXTURES[4],
                call_id: "r3xaJ8CLpyTAIHWUZG7gtZQYgAPEGf9S",
                caller: "1001",
                callee: "1003",
                start: 1_436_280_728_471,
                answer: 1_436_280_728_971,
                end: 1_436_280_794_010,
                billsec: 66,
                system: "CgrDev1",
                mos: Some(4.5),
            },
            Expected {
                file: FIXTURES[5],
                call_id: "818e26f805701988c1a330175d7d2629@0:0:0:0:0:0:0:0",
                caller: "1001",
                callee: "1002",
                start: 1_515_666_344_534,
                answer: 1_515_666_347_954,
                end: 1_515_666_415_494,
                billsec: 68,
                system: "FSDev1",
                mos: Some(4.5),
            },
        ];
        for e in expected {
            let input = one(&fixture(e.file));
            let file = e.file;
            assert_eq!(input.call_id, e.call_id, "{file}");
            assert_eq!(input.caller, e.caller, "{file}");
            assert_eq!(input.callee, e.callee, "{file}");
            assert_eq!(input.start.as_u64(), Some(e.start), "{file}");
            assert_eq!(int(&input.answer), Some(e.answer), "{file}");
            assert_eq!(input.end.as_u64(), Some(e.end), "{file}");
            // FreeSWITCH's billsec is whole seconds of epoch differences: within one second.
            let billable = e.end - e.answer;
            assert!(
                billable.abs_diff(e.billsec * 1000) < 1000,
                "{file}: {billable} ms vs billsec {}",
                e.billsec
            );
            assert_eq!(input.disposition, "answered", "{file}");
            assert_eq!(int(&input.q850_cause), Some(16), "{file}");
            assert_eq!(int(&input.sip_status), Some(200), "{file}");
            assert_eq!(input.system_id.as_deref(), Some(e.system), "{file}");
            // Every fixture is an A leg that was bridged to a B leg.
            assert_eq!(input.leg.as_deref(), Some("a"), "{file}");
            assert_eq!(input.linked_id, input.source_id, "{file}");
            assert_eq!(input.mos.as_ref().and_then(Value::as_f64), e.mos, "{file}");
            assert_eq!((input.caller_operator.as_str(), input.callee_operator.as_str()), ("alice", "alice"));
        }
    }

    /// A B leg, made from a fixture's A leg as FreeSWITCH writes the bridged channel.
    fn b_leg_of(a_leg: &str) -> (String, String) {
        let mut doc: Value = serde_json::from_str(a_leg).unwrap();
        let a_uuid = doc["variables"]["uuid"].as_str().unwrap().to_string();
        let vars = doc["variables"].as_object_mut().unwrap();
        vars.insert("uuid".into(), "9c1afb4f-1d4a-4e45-84a3-d25721981bf5".into());
        vars.insert("sip_call_id".into(), "b-leg-call-id%40192.168.56.202".into());
        vars.insert("originating_leg_uuid".into(), a_uuid.clone().into());
        vars.insert("direction".into(), "outbound".into());
        vars.insert("cdrchain_callee_operator".into(), "bob".into());
        (doc.to_string(), a_uuid)
    }

    #[test]
    fn a_and_b_legs_are_linked() {
        let a_text = fixture(FIXTURES[0]);
        let a = one(&a_text);
        let (b_text, a_uuid) = b_leg_of(&a_text);
        let b = one(&b_text);
        assert_eq!(b.leg.as_deref(), Some("b"));
        assert_eq!(b.linked_id.as_deref(), Some(a_uuid.as_str()));
        assert_eq!(a.linked_id.as_deref(), Some(a_uuid.as_str()));
        assert_eq!(b.call_id, "b-leg-call-id@192.168.56.202");
        assert_ne!(a.source_key(), b.source_key());
        assert_eq!(b.callee_operator, "bob");
        assert_eq!(b.caller_operator, "alice");
    }

    #[test]
    fn unanswered_calls_get_their_disposition_and_cause() {
        let base = fixture(FIXTURES[5]);
        let cases = [
            // (hangup_cause, hangup_cause_q850, sip_term_status, disposition, q850, sip)
            ("USER_BUSY", Some("17"), Some("486"), "busy", Some(17u64), Some(486u64)),
            ("NO_ANSWER", Some("19"), None, "no-answer", Some(19), None),
            ("ORIGINATOR_CANCEL", Some("487"), Some("487"), "cancelled", None, Some(487)),
            ("UNALLOCATED_NUMBER", None, Some("404"), "failed", Some(1), Some(404)),
            ("NO_USER_RESPONSE", Some("18"), Some("480"), "no-answer", Some(18), Some(480)),
        ];
        for (name, q850, sip, disposition, want_q850, want_sip) in cases {
            let mut doc: Value = serde_json::from_str(&base).unwrap();
            let vars = doc["variables"].as_object_mut().unwrap();
            vars.insert("answer_uepoch".into(), "0".into());
            vars.insert("answer_epoch".into(), "0".into());
            vars.insert("hangup_cause".into(), name.into());
            vars.remove("hangup_cause_q850");
            vars.remove("sip_term_status");
            vars.remove("last_bridge_proto_specific_hangup_cause");
            if let Some(q850) = q850 {
                vars.insert("hangup_cause_q850".into(), q850.into());
            }
            if let Some(sip) = sip {
                vars.insert("sip_term_status".into(), sip.into());
            }
            let input = one(&doc.to_string());
            assert_eq!(input.disposition, disposition, "{name}");
            assert_eq!(input.answer, None, "{name}");
            assert_eq!(int(&input.q850_cause), want_q850, "{name}");
            assert_eq!(int(&input.sip_status), want_sip, "{name}");
            assert_eq!(input.mos, None, "{name}");
        }
    }

    #[test]
    fn the_three_body_encodings_decode_alike() {
        let json = fixture(FIXTURES[3]);
        let form: String = url_form(&json);
        let b64 = base64::engine::general_purpose::STANDARD.encode(json.as_bytes());
        for body in [
            json.clone(),
            format!("cdr={form}"),
            format!("cdr={}", url_form(&b64)),
            format!("uuid=x&cdr={form}"),
        ] {
            assert_eq!(decode_body(body.as_bytes()).unwrap(), json);
        }
        assert!(matches!(decode_body(b""), Err(FormatError::Unreadable { .. })));
        assert!(matches!(decode_body(b"hello=world"), Err(FormatError::NotThisFormat { .. })));
        assert!(decode_body(b"cdr=%%%").is_err());
        assert!(decode_body(b"cdr=bm90IGpzb24=").unwrap_err().to_string().contains("JSON object"));
    }

    fn url_form(text: &str) -> String {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn documents_that_are_not_cdrs_say_why() {
        let error = parse_document("[1]", &Context::new("alice")).unwrap_err();
        assert!(error.to_string().contains("not a JSON object"), "{error}");
        let error = parse_document("{\"a\": 1}", &Context::new("alice")).unwrap_err();
        assert!(error.to_string().contains("no `variables`"), "{error}");
        let error = parse_document("{\"variables\": ", &Context::new("alice")).unwrap_err();
        assert!(error.to_string().contains("not JSON"), "{error}");
        let mut doc: Value = serde_json::from_str(&fixture(FIXTURES[0])).unwrap();
        doc["variables"]["start_uepoch"] = "soon".into();
        let outcome = parse_document(&doc.to_string(), &Context::new("alice")).unwrap();
        assert_eq!(outcome.errors[0].field.as_deref(), Some("variables.start_uepoch"));
        assert!(outcome.errors[0].reason.contains("\"soon\""), "{:?}", outcome.errors);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(json) = decode_body(&body) {
                let _ = parse_document(&json, &Context::new("alice"));
            }
        }

        #[test]
        fn arbitrary_variables_never_panic(values in proptest::collection::vec("\\PC{0,12}", 12)) {
            let names = ["uuid", "sip_call_id", "start_uepoch", "answer_uepoch", "end_uepoch", "hangup_cause",
                "hangup_cause_q850", "sip_term_status", "rtp_audio_in_mos", "originating_leg_uuid", "bridge_uuid",
                "start_epoch"];
            let variables: Map<String, Value> =
                names.iter().zip(values).map(|(n, v)| (n.to_string(), Value::String(v))).collect();
            let doc = serde_json::json!({"variables": variables, "callflow": [{"caller_profile": {}}]});
            let _ = parse_document(&doc.to_string(), &Context::new("alice"));
        }
    }
}
