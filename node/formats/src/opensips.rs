//! OpenSIPS `acc` log lines (the syslog backend), imported with `cdrchain submit --format
//! opensips-acc`.
//!
//! | line | becomes |
//! | --- | --- |
//! | `ACC: call ended: created=..;call_start_time=..;duration=..;ms_duration=..;setuptime=..;…` (CDR mode, `cdr_flag`) | an answered call: `start` = `created`, `answer` = `call_start_time`, `end` = `answer` + `ms_duration` (else `duration` s) |
//! | `ACC: transaction answered:` / `ACC: call missed:` | paired per Call-ID as for Kamailio: an INVITE 2xx and its BYE make an answered call, a failed INVITE an unanswered one (`start` = `created` where logged) |
//!
//! Parties come from the `caller`/`callee` extras, else `src_user@src_domain` and
//! `dst_ouser@dst_domain`; a line naming no caller or callee is refused with that reason, as is
//! a line that gives a field twice. Lines wrapped with a trailing `\` are joined first.
//! Causes and dispositions as for Kamailio (the `code` of the line; `Q.850` of a `reason_header`
//! extra where logged).

use std::collections::HashSet;

use serde_json::Value;

use crate::kamailio::{acc_lines, acc_parties, event_input, pair_transactions, AccLine, EventCall, LineKind};
use crate::{causes, seconds_to_ms, Context, FormatError, Outcome, Parsed, RecordError};

/// Reads an OpenSIPS log for its accounting lines.
pub fn parse_log(text: &str, ctx: &Context) -> Result<Outcome, FormatError> {
    let mut outcome = Outcome::default();
    let lines = acc_lines(text, &mut outcome);
    if lines.is_empty() && outcome.errors.is_empty() {
        return Err(FormatError::NotThisFormat {
            format: "OpenSIPS acc log",
            reason: "no `ACC:` line in the input".into(),
        });
    }
    let mut recorded = HashSet::new();
    for line in lines.iter().filter(|l| l.kind == LineKind::Ended) {
        if let Some(call_id) = line.fields.get("call_id").map(|c| c.trim()).filter(|c| !c.is_empty()) {
            recorded.insert(call_id.to_string());
        }
        match call_ended(line, ctx) {
            Ok(input) => outcome.cdrs.push(Parsed { input, line: line.line }),
            Err(error) => outcome.errors.push(error),
        }
    }
    for line in lines.iter().filter(|l| l.kind == LineKind::DialogCdr) {
        outcome.errors.push(RecordError::new(
            line.line,
            None,
            "a Kamailio `log_write_cdr()` line in an OpenSIPS log: import it with --format kamailio-acc",
        ));
    }
    let events: Vec<&AccLine> =
        lines.iter().filter(|l| matches!(l.kind, LineKind::Answered | LineKind::Missed)).collect();
    pair_transactions(&events, &recorded, ctx, "opensips", &mut outcome);
    outcome.cdrs.sort_by_key(|p| p.line);
    outcome.errors.sort_by_key(|e| e.line);
    Ok(outcome)
}

fn seconds(line: &AccLine, name: &str) -> Result<u64, RecordError> {
    let text = line.fields.get(name).map(|s| s.trim()).unwrap_or("");
    if text.is_empty() {
        return Err(RecordError::new(line.line, Some(name), "missing or empty"));
    }
    seconds_to_ms(text).ok_or_else(|| {
        RecordError::new(line.line, Some(name), format!("{text:?} is not seconds since the epoch"))
    })
}

fn call_ended(line: &AccLine, ctx: &Context) -> Result<crate::CdrInput, RecordError> {
    let fields = &line.fields;
    let call_id = fields.get("call_id").map(|c| c.trim()).unwrap_or("");
    if call_id.is_empty() || call_id.chars().any(char::is_whitespace) {
        return Err(RecordError::new(
            line.line,
            Some("call_id"),
            format!("{call_id:?} is not a SIP Call-ID"),
        ));
    }
    let start = seconds(line, "created")?;
    let answer = seconds(line, "call_start_time")?;
    if answer < start {
        return Err(RecordError::new(
            line.line,
            Some("call_start_time"),
            "the call starts before it was created",
        ));
    }
    let length_ms = match fields.get("ms_duration").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(ms) => ms.parse::<u64>().map_err(|_| {
            RecordError::new(line.line, Some("ms_duration"), format!("{ms:?} is not milliseconds"))
        })?,
        None => seconds(line, "duration")?,
    };
    let code_text = fields.get("code").map(|c| c.trim()).unwrap_or("");
    let code = code_text.parse::<u16>().ok().filter(|c| (200..300).contains(c)).ok_or_else(|| {
        RecordError::new(
            line.line,
            Some("code"),
            format!("{code_text:?}: a `call ended` line needs a 2xx code"),
        )
    })?;
    let (caller, callee) = acc_parties(fields, line.line)?;
    let q850 =
        fields.get("reason_header").and_then(|r| causes::reason_q850(r)).unwrap_or(causes::NORMAL_CLEARING);
    let mut input = event_input(EventCall {
        call_id,
        caller,
        callee,
        start,
        answer: Some(answer),
        end: answer.saturating_add(length_ms),
        code,
        q850: Some(q850),
        disposition: "answered",
        fields,
        ctx,
        system_fallback: "opensips",
    });
    input.end = Value::from(answer.saturating_add(length_ms));
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn the_documentation_lines_are_refused_each_for_its_reason() {
        let outcome = parse_log(
            &fixture("opensips_acc_log_dariusstefan_opensips-docs_tutorials-advanced-accounting_blocks.log"),
            &Context::new("alice"),
        )
        .unwrap();
        assert!(outcome.cdrs.is_empty(), "{:?}", outcome.cdrs);
        let errors: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
        let expected = [
            "line 1, field `call_id`: a BYE of call \"ezUcDyVPC9jgwtk35eamdhmIo31RSScI\" without its INVITE",
            "line 5, field `call_id`: call \"vonxx1.d4qh9nfPmFBpu46u7Vvq5c8re\" was answered but its BYE is not in this input",
            "line 9, field `caller`: the line names no caller",
            "line 12, field `caller`: the line names no caller",
            "line 16, field `caller`: the line names no caller",
            "line 24, field `caller`: the field appears twice",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, want) in errors.iter().zip(expected) {
            assert!(error.starts_with(want), "{error}\n  should start with\n{want}");
        }
        // The 408 branch of call 604787970, which has a `call ended` record, is not a call of its own.
        assert!(
            outcome.skipped.iter().any(|s| s.line == 20 && s.reason.contains("604787970")),
            "{:?}",
            outcome.skipped
        );
    }

    #[test]
    fn a_call_ended_line_with_parties_is_a_call() {
        let log = "Sep 26 14:17:28 host opensips[99]: ACC: call ended: created=1474899444;call_start_time=1474899448;\\\n  duration=5;ms_duration=4762;setuptime=4;method=INVITE;from_tag=1766231375;to_tag=2826210.0.0.1351;call_id=604787970;code=200;reason=OK;\\\n  src_ip=10.0.0.101;caller=+442079460018;callee=sip:bob@example.net\n";
        let outcome = parse_log(log, &Context::new("alice")).unwrap();
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let input = &outcome.cdrs[0].input;
        assert_eq!(input.call_id, "604787970");
        assert_eq!((input.caller.as_str(), input.callee.as_str()), ("+442079460018", "sip:bob@example.net"));
        assert_eq!(input.start.as_u64(), Some(1_474_899_444_000));
        assert_eq!(input.answer.as_ref().and_then(Value::as_u64), Some(1_474_899_448_000));
        assert_eq!(input.end.as_u64(), Some(1_474_899_448_000 + 4_762));
        assert_eq!(input.disposition, "answered");
        assert_eq!(input.system_id.as_deref(), Some("opensips"));
    }

    #[test]
    fn a_missed_call_with_parties_is_an_unanswered_call() {
        let log = "ACC: call missed: timestamp=1474899448;created=1474899444;setuptime=4;method=INVITE;from_tag=1;to_tag=;call_id=77;code=408;reason=Request Timeout;caller=+442079460018;callee=+442079460019";
        let outcome = parse_log(log, &Context::new("alice")).unwrap();
        let input = &outcome.cdrs[0].input;
        assert_eq!(
            (input.start.as_u64(), input.end.as_u64()),
            (Some(1_474_899_444_000), Some(1_474_899_448_000))
        );
        assert_eq!(input.disposition, "no-answer");
        assert_eq!(input.q850_cause.as_ref().and_then(Value::as_u64), Some(102));
        assert_eq!(input.sip_status.as_ref().and_then(Value::as_u64), Some(408));
    }

    #[test]
    fn a_log_without_accounting_lines_is_not_this_format() {
        assert!(matches!(
            parse_log("hello\nworld", &Context::new("alice")),
            Err(FormatError::NotThisFormat { .. })
        ));
    }
}
