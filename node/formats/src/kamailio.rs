//! Kamailio accounting: `acc_json` documents POSTed to `/ingest/kamailio` ([`parse_json`]), and
//! acc / dialog-CDR log lines imported from syslog files ([`parse_log`]).
//!
//! A call record is a dialog CDR (`acc` with `cdr_enable=1` and the `dialog` module): one per
//! INVITE dialog, answered or not. Transaction events (`ACC: transaction answered`, `ACC: call
//! missed`, acc_json's per-transaction documents) describe single SIP transactions; the JSON
//! endpoint skips them (and says so), while a log import pairs them into calls for the calls
//! that have no dialog CDR line (see [`parse_log`]).
//!
//! # Mapping of a dialog CDR (JSON document or `log_write_cdr()` line)
//! | canonical | Kamailio |
//! | --- | --- |
//! | `call_id` | `callid` |
//! | `source_id` | `callid` and `from_tag` (when present) |
//! | `caller` | `caller` (the From URI in `scripts/kamailio/kamailio.cfg`); a bare user name is completed with the `src_domain` of the call's acc line, where a log has one |
//! | `callee` | `callee` (the original Request-URI), completed likewise with `dst_domain` |
//! | `start` | `start_time` (the INVITE, with `cdr_start_on_confirmed=0`, the default) |
//! | `answer` | `answer_time` (set from the 200 OK by the shipped config); without it, a 2xx call is taken as answered at `start_time` (so billable time is Kamailio's `duration`) |
//! | `end` | `end_time`; for a call not answered, `final_time` (the final reply, set by the shipped config) when later, as acc writes `end_time` = `start_time` for failed calls |
//! | `sip_status` | `sip_code` |
//! | `disposition` | 2xx answered; 486/600 busy; 408/480 no answer; 487 cancelled; else failed |
//! | `q850_cause` | the `Q.850` cause of `reason` (a `Reason:` header), else 16 for an answered call, else RFC 3398 from `sip_code` |
//! | `caller_operator`, `callee_operator` | `caller_operator`, `callee_operator` (set per route in the config), else the recording operator |
//! | `system_id` | the node's configured system id, else `system_id`, else `kamailio` |

use std::collections::{BTreeMap, HashMap, HashSet};

use cdrchain_runtime::input::CdrInput;
use serde_json::Value;

use crate::causes;
use crate::{seconds_to_ms, Context, FormatError, Outcome, Parsed, RecordError, Skipped};

const FORMAT: &str = "Kamailio acc_json";

/// A record's fields by name, with the line it came from.
type Fields = BTreeMap<String, String>;

/// Reads one acc_json document, or several as NDJSON (one per line).
pub fn parse_json(text: &str, ctx: &Context) -> Result<Outcome, FormatError> {
    let mut outcome = Outcome::default();
    if text.trim().is_empty() {
        return Err(FormatError::Unreadable { format: FORMAT, reason: "the body is empty".into() });
    }
    // One document, possibly spread over several lines, or NDJSON.
    let documents: Vec<(usize, Value)> = match serde_json::from_str::<Value>(text) {
        Ok(value) => vec![(1, value)],
        Err(_) => {
            let mut documents = Vec::new();
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(line) {
                    Ok(value) => documents.push((index + 1, value)),
                    Err(e) => {
                        outcome.errors.push(RecordError::new(index + 1, None, format!("not JSON: {e}")))
                    }
                }
            }
            documents
        }
    };
    for (line, document) in documents {
        let Value::Object(object) = document else {
            outcome.errors.push(RecordError::new(line, None, "not a JSON object"));
            continue;
        };
        let mut fields = Fields::new();
        for (name, value) in object {
            let text = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Null => continue,
                other => other.to_string(),
            };
            fields.insert(name, text);
        }
        if fields.contains_key("start_time") || fields.contains_key("end_time") {
            match dialog_cdr(&fields, line, ctx, &HashMap::new()) {
                Ok(input) => outcome.cdrs.push(Parsed { input, line }),
                Err(error) => outcome.errors.push(error),
            }
        } else if fields.contains_key("method") {
            outcome.skipped.push(Skipped {
                line,
                reason: format!(
                    "a {} transaction event (code {}), not a call record: calls come from dialog CDRs (acc cdr_enable)",
                    field(&fields, "method").unwrap_or("?"),
                    field(&fields, "sip_code").or_else(|| field(&fields, "code")).unwrap_or("?"),
                ),
            });
        } else {
            outcome.errors.push(RecordError::new(
                line,
                None,
                "neither a dialog CDR (start_time, end_time) nor a transaction event (method)",
            ));
        }
    }
    outcome.errors.sort_by_key(|e| e.line);
    Ok(outcome)
}

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Caller and callee domains learned from a call's acc lines, by Call-ID.
type Domains = HashMap<String, (Option<String>, Option<String>)>;

/// A bare user part (`sipp`, `15551234567`) with its domain, where known, becomes the SIP URI
/// the call used; the node's party rules then read a number in it (E.164 when valid).
fn complete(party: &str, domain: Option<&String>) -> String {
    let bare = !party.contains(':') && !party.contains('@');
    match domain {
        Some(domain) if bare => format!("sip:{party}@{domain}"),
        _ => party.to_string(),
    }
}

fn required<'a>(fields: &'a Fields, name: &str, line: usize) -> Result<&'a str, RecordError> {
    field(fields, name).ok_or_else(|| RecordError::new(line, Some(name), "missing or empty"))
}

fn time(fields: &Fields, name: &str, line: usize) -> Result<u64, RecordError> {
    let text = required(fields, name, line)?;
    seconds_to_ms(text)
        .ok_or_else(|| RecordError::new(line, Some(name), format!("{text:?} is not seconds since the epoch")))
}

fn sip_code(fields: &Fields, name: &str, line: usize) -> Result<u16, RecordError> {
    let text = required(fields, name, line)?;
    text.parse::<u16>()
        .ok()
        .filter(|c| (100..=699).contains(c))
        .ok_or_else(|| RecordError::new(line, Some(name), format!("{text:?} is not a SIP status code")))
}

/// A token that may not hold whitespace (a Call-ID, a tag): a damaged line is caught here.
fn token<'a>(fields: &'a Fields, name: &str, line: usize) -> Result<&'a str, RecordError> {
    let text = required(fields, name, line)?;
    if text.chars().any(char::is_whitespace) {
        return Err(RecordError::new(
            line,
            Some(name),
            format!("{text:?} contains whitespace, which a SIP {name} cannot (is the line damaged?)"),
        ));
    }
    Ok(text)
}

/// The outcome of a call from its final status, the `Reason` header, and whether it was answered.
fn outcome_of(code: u16, reason: Option<&str>) -> (&'static str, Option<u8>) {
    let stated = reason.and_then(causes::reason_q850);
    if (200..300).contains(&code) {
        ("answered", stated.or(Some(causes::NORMAL_CLEARING)))
    } else {
        (causes::unanswered_disposition_for_sip(code).as_str(), stated.or_else(|| causes::sip_to_q850(code)))
    }
}

fn dialog_cdr(
    fields: &Fields,
    line: usize,
    ctx: &Context,
    domains: &Domains,
) -> Result<CdrInput, RecordError> {
    let call_id = token(fields, "callid", line)?;
    let start = time(fields, "start_time", line)?;
    let end = time(fields, "end_time", line)?;
    let code = sip_code(fields, "sip_code", line)?;
    let (disposition, q850) = outcome_of(code, field(fields, "reason"));
    let answer = if disposition == "answered" {
        match field(fields, "answer_time") {
            Some(_) => Some(time(fields, "answer_time", line)?),
            None => Some(start),
        }
    } else {
        None
    };
    // acc gives a failed call end = start; the shipped config adds the final reply's time.
    let end = match (answer, field(fields, "final_time")) {
        (None, Some(_)) => end.max(time(fields, "final_time", line)?),
        _ => end,
    };
    let (caller_domain, callee_domain) = domains.get(call_id).cloned().unwrap_or_default();
    let caller = complete(required(fields, "caller", line)?, caller_domain.as_ref());
    let callee = complete(required(fields, "callee", line)?, callee_domain.as_ref());
    let source_id = match field(fields, "from_tag") {
        Some(tag) => format!("{call_id};{tag}"),
        None => call_id.to_string(),
    };
    Ok(CdrInput {
        call_id: call_id.to_string(),
        caller,
        callee,
        caller_operator: field(fields, "caller_operator").unwrap_or(&ctx.operator).to_string(),
        callee_operator: field(fields, "callee_operator").unwrap_or(&ctx.operator).to_string(),
        system_id: Some(ctx.system_id(field(fields, "system_id"), "kamailio")),
        start: Value::from(start),
        answer: answer.map(Value::from),
        end: Value::from(end),
        disposition: disposition.to_string(),
        q850_cause: q850.map(Value::from),
        sip_status: Some(Value::from(code)),
        mos: None,
        fault: None,
        redirect_reason: None,
        leg: None,
        linked_id: None,
        source_id: Some(source_id),
    })
}

/// The kind of an accounting log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// `ACC: transaction answered:` (a 2xx, or a failure logged after `call missed`).
    Answered,
    /// `ACC: call missed:` (a failed INVITE).
    Missed,
    /// OpenSIPS `ACC: call ended:` (a whole call).
    Ended,
    /// Kamailio `log_write_cdr():` (a dialog CDR).
    DialogCdr,
}

/// One accounting line: its kind, fields and line number.
#[derive(Clone, Debug)]
pub(crate) struct AccLine {
    pub kind: LineKind,
    pub fields: Fields,
    pub line: usize,
}

/// Splits a log into accounting lines, joining lines continued with a trailing `\`; other lines
/// are skipped with a reason.
pub(crate) fn acc_lines(text: &str, outcome: &mut Outcome) -> Vec<AccLine> {
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let piece = raw.trim();
        let (piece, continued) = match piece.strip_suffix('\\') {
            Some(rest) => (rest.trim_end(), true),
            None => (piece, false),
        };
        let entry = pending.get_or_insert_with(|| (index + 1, String::new()));
        entry.1.push_str(piece);
        if !continued {
            logical.extend(pending.take());
        }
    }
    logical.extend(pending.take());
    let mut lines = Vec::new();
    for (line, text) in logical {
        if text.trim().is_empty() {
            continue;
        }
        let (kind, rest, separator) = if let Some((_, rest)) = text.split_once("ACC: transaction answered:") {
            (LineKind::Answered, rest, ';')
        } else if let Some((_, rest)) = text.split_once("ACC: call missed:") {
            (LineKind::Missed, rest, ';')
        } else if let Some((_, rest)) = text.split_once("ACC: call ended:") {
            (LineKind::Ended, rest, ';')
        } else if let Some((_, rest)) = text.split_once("log_write_cdr():") {
            (LineKind::DialogCdr, rest, ';')
        } else {
            outcome.skipped.push(Skipped { line, reason: "not an accounting line".into() });
            continue;
        };
        match fields_of(rest, separator, line) {
            Ok(fields) => lines.push(AccLine { kind, fields, line }),
            Err(error) => outcome.errors.push(error),
        }
    }
    lines
}

/// `k=v;k=v` (values may be empty); a key with whitespace inside, or a key given twice, is an
/// error.
fn fields_of(text: &str, separator: char, line: usize) -> Result<Fields, RecordError> {
    let mut fields = Fields::new();
    for pair in text.split(separator) {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = pair.split_once('=') else {
            return Err(RecordError::new(line, None, format!("{:?} is not a name=value pair", pair.trim())));
        };
        let key = key.trim();
        if key.is_empty() || key.chars().any(|c| c.is_whitespace()) {
            return Err(RecordError::new(
                line,
                None,
                format!("malformed field name {key:?} (is the line damaged?)"),
            ));
        }
        if fields.insert(key.to_string(), value.trim().to_string()).is_some() {
            return Err(RecordError::new(line, Some(key), "the field appears twice on the line"));
        }
    }
    Ok(fields)
}

/// The caller and callee of an acc line: `caller`/`callee` extras, else `src_user@src_domain`
/// and `dst_ouser@dst_domain` (the original Request-URI user, else `dst_user`).
pub(crate) fn acc_parties(fields: &Fields, line: usize) -> Result<(String, String), RecordError> {
    let party = |explicit: &str, user: &[&str], domain: &str| -> Option<String> {
        if let Some(value) = field(fields, explicit) {
            return Some(value.to_string());
        }
        let user = user.iter().find_map(|u| field(fields, u))?;
        Some(complete(user, field(fields, domain).map(str::to_string).as_ref()))
    };
    let caller = party("caller", &["src_user"], "src_domain").ok_or_else(|| {
        RecordError::new(
            line,
            Some("caller"),
            "the line names no caller (log `src_user`/`src_domain` or `caller` in the acc extras)",
        )
    })?;
    let callee = party("callee", &["dst_ouser", "dst_user"], "dst_domain").ok_or_else(|| {
        RecordError::new(
            line,
            Some("callee"),
            "the line names no callee (log `dst_ouser`/`dst_domain` or `callee` in the acc extras)",
        )
    })?;
    Ok((caller, callee))
}

/// Builds calls from transaction events, for Call-IDs without a call record: a 2xx INVITE and
/// its BYE make an answered call (second precision: acc timestamps are whole seconds); a failed
/// INVITE makes an unanswered call. A BYE without its INVITE, or an answered INVITE without its
/// BYE, cannot make a call and is reported.
pub(crate) fn pair_transactions(
    events: &[&AccLine],
    recorded: &HashSet<String>,
    ctx: &Context,
    system_fallback: &str,
    outcome: &mut Outcome,
) {
    // Per Call-ID, in file order.
    let mut by_call: BTreeMap<String, Vec<&AccLine>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for event in events {
        let call_id = match token(&event.fields, "call_id", event.line) {
            Ok(id) => id.to_string(),
            Err(error) => {
                outcome.errors.push(error);
                continue;
            }
        };
        if recorded.contains(&call_id) {
            outcome.skipped.push(Skipped {
                line: event.line,
                reason: format!("a transaction of call {call_id:?}, which has a call record"),
            });
            continue;
        }
        if !by_call.contains_key(&call_id) {
            order.push(call_id.clone());
        }
        by_call.entry(call_id).or_default().push(event);
    }
    for call_id in order {
        let Some(events) = by_call.get(&call_id) else { continue };
        let method = |e: &AccLine| field(&e.fields, "method").unwrap_or("").to_ascii_uppercase();
        let code = |e: &AccLine| field(&e.fields, "code").and_then(|c| c.parse::<u16>().ok());
        let invite_ok =
            events.iter().find(|e| method(e) == "INVITE" && code(e).is_some_and(|c| (200..300).contains(&c)));
        let invite_failed =
            events.iter().find(|e| method(e) == "INVITE" && code(e).is_some_and(|c| c >= 300));
        let bye = events.iter().find(|e| method(e) == "BYE");
        let result = match (invite_ok, invite_failed, bye) {
            (Some(invite), _, Some(bye)) => answered_from_events(invite, bye, &call_id, ctx, system_fallback),
            (Some(invite), _, None) => Err(RecordError::new(
                invite.line,
                Some("call_id"),
                format!("call {call_id:?} was answered but its BYE is not in this input: its end is unknown"),
            )),
            (None, Some(failed), _) => failed_from_event(failed, &call_id, ctx, system_fallback),
            (None, None, Some(bye)) => Err(RecordError::new(
                bye.line,
                Some("call_id"),
                format!(
                    "a BYE of call {call_id:?} without its INVITE in this input: the call's start is unknown"
                ),
            )),
            (None, None, None) => {
                for event in events.iter() {
                    outcome.skipped.push(Skipped {
                        line: event.line,
                        reason: format!("a {} transaction, not part of a call", method(event)),
                    });
                }
                continue;
            }
        };
        match result {
            Ok((input, line)) => outcome.cdrs.push(Parsed { input, line }),
            Err(error) => outcome.errors.push(error),
        }
    }
}

fn event_time(event: &AccLine, name: &str) -> Result<u64, RecordError> {
    time(&event.fields, name, event.line)
}

fn answered_from_events(
    invite: &AccLine,
    bye: &AccLine,
    call_id: &str,
    ctx: &Context,
    system_fallback: &str,
) -> Result<(CdrInput, usize), RecordError> {
    let answer = event_time(invite, "timestamp")?;
    let end = event_time(bye, "timestamp")?;
    if end < answer {
        return Err(RecordError::new(
            bye.line,
            Some("timestamp"),
            "the BYE is logged before the INVITE was answered",
        ));
    }
    let (caller, callee) = acc_parties(&invite.fields, invite.line)?;
    let code = sip_code(&invite.fields, "code", invite.line)?;
    let start = match field(&invite.fields, "created") {
        Some(_) => event_time(invite, "created")?.min(answer),
        None => answer,
    };
    Ok((
        event_input(EventCall {
            call_id,
            caller,
            callee,
            start,
            answer: Some(answer),
            end,
            code,
            q850: Some(causes::NORMAL_CLEARING),
            disposition: "answered",
            fields: &invite.fields,
            ctx,
            system_fallback,
        }),
        invite.line,
    ))
}

fn failed_from_event(
    failed: &AccLine,
    call_id: &str,
    ctx: &Context,
    system_fallback: &str,
) -> Result<(CdrInput, usize), RecordError> {
    let end = event_time(failed, "timestamp")?;
    let start = match field(&failed.fields, "created") {
        Some(_) => event_time(failed, "created")?.min(end),
        None => end,
    };
    let code = sip_code(&failed.fields, "code", failed.line)?;
    let (caller, callee) = acc_parties(&failed.fields, failed.line)?;
    let (disposition, q850) = outcome_of(code, field(&failed.fields, "reason_header"));
    Ok((
        event_input(EventCall {
            call_id,
            caller,
            callee,
            start,
            answer: None,
            end,
            code,
            q850,
            disposition,
            fields: &failed.fields,
            ctx,
            system_fallback,
        }),
        failed.line,
    ))
}

pub(crate) struct EventCall<'a> {
    pub call_id: &'a str,
    pub caller: String,
    pub callee: String,
    pub start: u64,
    pub answer: Option<u64>,
    pub end: u64,
    pub code: u16,
    pub q850: Option<u8>,
    pub disposition: &'static str,
    pub fields: &'a Fields,
    pub ctx: &'a Context,
    pub system_fallback: &'a str,
}

pub(crate) fn event_input(call: EventCall<'_>) -> CdrInput {
    let fields = call.fields;
    let source_id = match field(fields, "from_tag") {
        Some(tag) => format!("{};{tag}", call.call_id),
        None => call.call_id.to_string(),
    };
    CdrInput {
        call_id: call.call_id.to_string(),
        caller: call.caller,
        callee: call.callee,
        caller_operator: field(fields, "caller_operator").unwrap_or(&call.ctx.operator).to_string(),
        callee_operator: field(fields, "callee_operator").unwrap_or(&call.ctx.operator).to_string(),
        system_id: Some(call.ctx.system_id(field(fields, "system_id"), call.system_fallback)),
        start: Value::from(call.start),
        answer: call.answer.map(Value::from),
        end: Value::from(call.end),
        disposition: call.disposition.to_string(),
        q850_cause: call.q850.map(Value::from),
        sip_status: Some(Value::from(call.code)),
        mos: None,
        fault: None,
        redirect_reason: None,
        leg: None,
        linked_id: None,
        source_id: Some(source_id),
    }
}

/// Reads a Kamailio log (syslog or stderr) for its accounting lines.
///
/// Dialog CDR lines (`log_write_cdr(): start_time=..; end_time=..; ...`) are the calls; a bare
/// caller or callee is completed with the domain of the call's acc line. Calls that have no
/// dialog CDR line are built from their transaction events (see `pair_transactions`). Lines
/// that are not accounting lines are skipped.
pub fn parse_log(text: &str, ctx: &Context) -> Result<Outcome, FormatError> {
    let mut outcome = Outcome::default();
    let lines = acc_lines(text, &mut outcome);
    if lines.is_empty() && outcome.errors.is_empty() {
        return Err(FormatError::NotThisFormat {
            format: "Kamailio acc log",
            reason: "no `ACC:` or `log_write_cdr()` line in the input".into(),
        });
    }
    let mut domains = Domains::new();
    for line in lines.iter().filter(|l| l.kind != LineKind::DialogCdr) {
        if let Some(call_id) = field(&line.fields, "call_id") {
            let entry = domains.entry(call_id.to_string()).or_default();
            entry.0 = entry.0.take().or_else(|| field(&line.fields, "src_domain").map(str::to_string));
            entry.1 = entry.1.take().or_else(|| field(&line.fields, "dst_domain").map(str::to_string));
        }
    }
    let mut recorded = HashSet::new();
    for line in lines.iter().filter(|l| l.kind == LineKind::DialogCdr) {
        match dialog_cdr(&line.fields, line.line, ctx, &domains) {
            Ok(input) => {
                recorded.insert(input.call_id.clone());
                outcome.cdrs.push(Parsed { input, line: line.line });
            }
            Err(error) => {
                if let Some(call_id) = field(&line.fields, "callid") {
                    recorded.insert(call_id.to_string());
                }
                outcome.errors.push(error);
            }
        }
    }
    let events: Vec<&AccLine> =
        lines.iter().filter(|l| matches!(l.kind, LineKind::Answered | LineKind::Missed)).collect();
    pair_transactions(&events, &recorded, ctx, "kamailio", &mut outcome);
    for line in lines.iter().filter(|l| l.kind == LineKind::Ended) {
        outcome.errors.push(RecordError::new(
            line.line,
            None,
            "an OpenSIPS `call ended` line in a Kamailio log: import it with --format opensips-acc",
        ));
    }
    outcome.cdrs.sort_by_key(|p| p.line);
    outcome.errors.sort_by_key(|e| e.line);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn int(value: &Option<Value>) -> Option<u64> {
        value.as_ref().and_then(Value::as_u64)
    }

    /// (call id, caller, callee, start, answer, end, disposition, q850, sip)
    type Call =
        (&'static str, &'static str, &'static str, u64, Option<u64>, u64, &'static str, Option<u64>, u64);

    fn check(outcome: &Outcome, expected: &[Call]) {
        assert_eq!(outcome.cdrs.len(), expected.len(), "{:#?}", outcome.cdrs);
        for (parsed, (call_id, caller, callee, start, answer, end, disposition, q850, sip)) in
            outcome.cdrs.iter().zip(expected)
        {
            let input = &parsed.input;
            assert_eq!(input.call_id, *call_id);
            assert_eq!((input.caller.as_str(), input.callee.as_str()), (*caller, *callee), "{call_id}");
            assert_eq!(input.start.as_u64(), Some(*start), "{call_id}");
            assert_eq!(int(&input.answer), *answer, "{call_id}");
            assert_eq!(input.end.as_u64(), Some(*end), "{call_id}");
            assert_eq!(input.disposition, *disposition, "{call_id}");
            assert_eq!(int(&input.q850_cause), *q850, "{call_id}");
            assert_eq!(int(&input.sip_status), Some(*sip), "{call_id}");
        }
    }

    #[test]
    fn the_captured_acc_json_bodies() {
        let outcome = parse_json(
            &fixture("kamailio_LOCAL_CAPTURE_5.6.3_acc_json_http_post_bodies.jsonl"),
            &Context::new("alice"),
        )
        .unwrap();
        // Four dialog CDRs (two answered calls, a 486, a 404); eight transaction events skipped.
        check(
            &outcome,
            &[
                (
                    "1-17779@127.0.0.1",
                    "sipp",
                    "15551234567",
                    1_795_660_125_168,
                    Some(1_795_660_125_168),
                    1_795_660_126_171,
                    "answered",
                    Some(16),
                    200,
                ),
                (
                    "2-17779@127.0.0.1",
                    "sipp",
                    "15551234567",
                    1_795_660_126_168,
                    Some(1_795_660_126_168),
                    1_795_660_127_179,
                    "answered",
                    Some(16),
                    200,
                ),
                (
                    "1-17792@127.0.0.1",
                    "sipp",
                    "busy",
                    1_795_660_127_299,
                    None,
                    1_795_660_127_299,
                    "busy",
                    Some(17),
                    486,
                ),
                (
                    "1-17794@127.0.0.1",
                    "sipp",
                    "nobody",
                    1_795_660_127_419,
                    None,
                    1_795_660_127_419,
                    "failed",
                    Some(1),
                    404,
                ),
            ],
        );
        assert_eq!(outcome.skipped.len(), 8);
        assert!(
            outcome.skipped.iter().all(|s| s.reason.contains("transaction event")),
            "{:?}",
            outcome.skipped
        );
        assert!(outcome.errors.is_empty());
    }

    #[test]
    fn the_captured_log_prefers_dialog_cdrs_and_completes_parties() {
        let outcome = parse_log(
            &fixture("kamailio_LOCAL_CAPTURE_5.6.3_acc_and_cdr_log_stderr.log"),
            &Context::new("alice"),
        )
        .unwrap();
        check(
            &outcome,
            &[
                (
                    "1-17779@127.0.0.1",
                    "sip:sipp@127.0.0.1",
                    "sip:15551234567@127.0.0.1",
                    1_795_660_125_168,
                    Some(1_795_660_125_168),
                    1_795_660_126_171,
                    "answered",
                    Some(16),
                    200,
                ),
                (
                    "2-17779@127.0.0.1",
                    "sip:sipp@127.0.0.1",
                    "sip:15551234567@127.0.0.1",
                    1_795_660_126_168,
                    Some(1_795_660_126_168),
                    1_795_660_127_179,
                    "answered",
                    Some(16),
                    200,
                ),
                (
                    "1-17792@127.0.0.1",
                    "sip:sipp@127.0.0.1",
                    "sip:busy@127.0.0.1",
                    1_795_660_127_299,
                    None,
                    1_795_660_127_299,
                    "busy",
                    Some(17),
                    486,
                ),
                (
                    "1-17794@127.0.0.1",
                    "sip:sipp@127.0.0.1",
                    "sip:nobody@127.0.0.1",
                    1_795_660_127_419,
                    None,
                    1_795_660_127_419,
                    "failed",
                    Some(1),
                    404,
                ),
            ],
        );
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(outcome.cdrs[0].line, 4);
    }

    #[test]
    fn transaction_events_alone_pair_into_calls() {
        let log = "\
 1(1) INFO: acc [acc.c:287]: acc_log_request(): ACC: transaction answered: timestamp=1795660125;method=INVITE;from_tag=f1;to_tag=t1;call_id=c1;code=200;reason=OK;src_user=alice;src_domain=example.com;dst_ouser=+442079460018;dst_user=x;dst_domain=example.net
 1(1) INFO: acc [acc.c:287]: acc_log_request(): ACC: call missed: timestamp=1795660126;method=INVITE;from_tag=f2;to_tag=t2;call_id=c2;code=480;reason=Temporarily Unavailable;src_user=alice;src_domain=example.com;dst_ouser=bob;dst_domain=example.net
 2(2) INFO: acc [acc.c:287]: acc_log_request(): ACC: transaction answered: timestamp=1795660126;method=INVITE;from_tag=f2;to_tag=t2;call_id=c2;code=480;reason=Temporarily Unavailable;src_user=alice;src_domain=example.com;dst_ouser=bob;dst_domain=example.net
 2(2) INFO: acc [acc.c:287]: acc_log_request(): ACC: transaction answered: timestamp=1795660185;method=BYE;from_tag=f1;to_tag=t1;call_id=c1;code=200;reason=OK;src_user=alice;src_domain=example.com;dst_ouser=+442079460018;dst_domain=example.net
";
        let outcome = parse_log(log, &Context::new("alice")).unwrap();
        check(
            &outcome,
            &[
                (
                    "c1",
                    "sip:alice@example.com",
                    "sip:+442079460018@example.net",
                    1_795_660_125_000,
                    Some(1_795_660_125_000),
                    1_795_660_185_000,
                    "answered",
                    Some(16),
                    200,
                ),
                (
                    "c2",
                    "sip:alice@example.com",
                    "sip:bob@example.net",
                    1_795_660_126_000,
                    None,
                    1_795_660_126_000,
                    "no-answer",
                    Some(18),
                    480,
                ),
            ],
        );
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    }

    #[test]
    fn a_bye_alone_is_refused_with_the_reason() {
        let outcome = parse_log(
            &fixture("kamailio_acc_log_altanai_blockchain_webrtc_voip_README_L81-87.log"),
            &Context::new("alice"),
        )
        .unwrap();
        assert!(outcome.cdrs.is_empty());
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
        assert_eq!(outcome.errors[0].line, 7);
        assert!(
            outcome.errors[0].reason.contains("BYE of call \"ub2ds9fg5jhuc0g9jinb\" without its INVITE"),
            "{}",
            outcome.errors[0]
        );
        assert_eq!(outcome.skipped.len(), 6, "{:?}", outcome.skipped);
    }

    #[test]
    fn damaged_lines_are_refused_with_the_damage() {
        let outcome = parse_log(
            &fixture("kamailio_acc_log_skeita96_Test-Kamailio_cours_L38_L76_L248_pdf_artifacts.log"),
            &Context::new("alice"),
        )
        .unwrap();
        assert!(outcome.cdrs.is_empty(), "{:?}", outcome.cdrs);
        let errors: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        // Line 3 has a hyphenated field name; lines 1 and 2 a Call-ID broken by a space.
        assert!(
            errors.iter().any(|e| e.starts_with("line 3") && e.contains("malformed field name \"to_- tag\"")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .filter(|e| e.contains("field `call_id`") && e.contains("contains whitespace"))
                .count()
                == 2,
            "{errors:?}"
        );
    }

    #[test]
    fn bad_documents_say_where_and_what() {
        let ctx = Context::new("alice");
        let good = r#"{"start_time": "1795660125.168", "end_time": "1795660126.171", "duration": "1.003", "callid": "c@h", "caller": "sip:a@h", "callee": "sip:b@h", "sip_code": "200", "answer_time": "1795660125.5", "reason": "Q.850;cause=31"}"#;
        let outcome = parse_json(good, &ctx).unwrap();
        let input = &outcome.cdrs[0].input;
        assert_eq!(int(&input.answer), Some(1_795_660_125_500));
        assert_eq!(int(&input.q850_cause), Some(31), "the Reason header wins");
        for (edit, field_name, reason) in [
            (("start_time", "soon"), "start_time", "not seconds"),
            (("sip_code", "2000"), "sip_code", "not a SIP status"),
            (("callid", ""), "callid", "missing or empty"),
            (("caller", ""), "caller", "missing or empty"),
        ] {
            let mut doc: Value = serde_json::from_str(good).unwrap();
            doc[edit.0] = edit.1.into();
            let outcome = parse_json(&doc.to_string(), &ctx).unwrap();
            assert_eq!(outcome.errors.len(), 1, "{edit:?}");
            assert_eq!(outcome.errors[0].field.as_deref(), Some(field_name));
            assert!(outcome.errors[0].reason.contains(reason), "{}", outcome.errors[0]);
        }
        let outcome = parse_json("{\"a\": 1}\nnot json\n[1]", &ctx).unwrap();
        assert_eq!(outcome.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(parse_json("  ", &ctx).is_err());
    }

    #[test]
    fn operators_and_system_come_from_the_document() {
        let doc = r#"{"start_time": "10.0", "end_time": "20.0", "callid": "c@h", "caller": "sip:a@h", "callee": "sip:b@h", "sip_code": "487", "caller_operator": "carol", "callee_operator": "", "system_id": "edge-1", "final_time": "25.5"}"#;
        let input = parse_json(doc, &Context::new("alice")).unwrap().cdrs.remove(0).input;
        assert_eq!((input.caller_operator.as_str(), input.callee_operator.as_str()), ("carol", "alice"));
        assert_eq!(input.system_id.as_deref(), Some("edge-1"));
        assert_eq!(input.disposition, "cancelled");
        assert_eq!(input.q850_cause, None, "487 has no RFC 3398 cause");
        assert_eq!(input.end.as_u64(), Some(25_500), "a failed call ends at its final reply");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = parse_json(&text, &Context::new("alice"));
            let _ = parse_log(&text, &Context::new("alice"));
            let _ = parse_log(&format!("ACC: transaction answered: {text}"), &Context::new("alice"));
            let _ = parse_log(&format!("log_write_cdr(): {text}"), &Context::new("alice"));
        }
    }
}
