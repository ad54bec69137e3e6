//! Dispositions and release causes: SIP status codes, Q.850 causes, the SIP `Reason` header
//! (RFC 3326, RFC 6432) and the SIP to Q.850 mapping of RFC 3398.
//!
//! Precedence, for every adapter: a Q.850 cause the source states (a `Reason: Q.850;cause=N`
//! header, FreeSWITCH's `hangup_cause_q850`) wins over one derived from the SIP status.

use cdrchain_runtime::cdr::Disposition;

/// Q.850 16, normal call clearing: the cause of an answered call that ended normally.
pub const NORMAL_CLEARING: u8 = 16;

/// The Q.850 cause RFC 3398 (section 8.2.6.1) maps a final SIP failure response to. 487
/// (request terminated: the caller cancelled) has no entry, nor has a 2xx.
pub fn sip_to_q850(status: u16) -> Option<u8> {
    Some(match status {
        400 => 41,
        401..=403 | 407 => 21,
        404 | 485 | 604 => 1,
        405 => 63,
        406 | 415 | 501 => 79,
        408 | 504 => 102,
        410 => 22,
        413 | 414 | 416 | 420 | 481..=483 | 488 | 505 | 513 => 127,
        480 => 18,
        484 => 28,
        486 | 600 => 17,
        500 | 503 => 41,
        502 => 38,
        603 => 21,
        606 => 58,
        _ => return None,
    })
}

/// The Q.850 cause of a SIP `Reason` header value, e.g. `Q.850;cause=17;text="User busy"`. A
/// header may list several reasons separated by commas (`SIP;cause=487, Q.850;cause=16`): the
/// Q.850 one is taken. Causes outside 1..=127 are ignored.
pub fn reason_q850(header: &str) -> Option<u8> {
    split_outside_quotes(header, ',').into_iter().find_map(|reason| {
        let mut parts = split_outside_quotes(reason, ';').into_iter();
        let protocol = parts.next()?.trim();
        if !protocol.eq_ignore_ascii_case("Q.850") {
            return None;
        }
        parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("cause") {
                return None;
            }
            let cause: u8 = value.trim().trim_matches('"').parse().ok()?;
            (1..=127).contains(&cause).then_some(cause)
        })
    })
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The disposition of a call that was not answered, from its final SIP status: 486 and 600 busy;
/// 408 and 480 no answer; 487 cancelled; any other failure failed.
pub fn unanswered_disposition_for_sip(status: u16) -> Disposition {
    match status {
        486 | 600 => Disposition::Busy,
        408 | 480 => Disposition::NoAnswer,
        487 => Disposition::Cancelled,
        _ => Disposition::Failed,
    }
}

/// The disposition of a call that was not answered, from its Q.850 cause: 17 busy; 18 and 19 no
/// answer; others failed. (A cancelled call has no Q.850 cause of its own: see the adapters.)
pub fn unanswered_disposition_for_q850(cause: u8) -> Disposition {
    match cause {
        17 => Disposition::Busy,
        18 | 19 => Disposition::NoAnswer,
        _ => Disposition::Failed,
    }
}

/// The Q.850 cause of a FreeSWITCH hangup cause name (`switch_cause_t`), for documents that
/// carry only `hangup_cause`. FreeSWITCH's own causes outside Q.850 (`ORIGINATOR_CANCEL` = 487,
/// `LOSE_RACE` = 502, ...) have none.
pub fn freeswitch_cause_q850(name: &str) -> Option<u8> {
    Some(match name.trim().to_ascii_uppercase().as_str() {
        "UNALLOCATED_NUMBER" => 1,
        "NO_ROUTE_TRANSIT_NET" => 2,
        "NO_ROUTE_DESTINATION" => 3,
        "CHANNEL_UNACCEPTABLE" => 6,
        "CALL_AWARDED_DELIVERED" => 7,
        "NORMAL_CLEARING" => 16,
        "USER_BUSY" => 17,
        "NO_USER_RESPONSE" => 18,
        "NO_ANSWER" => 19,
        "SUBSCRIBER_ABSENT" => 20,
        "CALL_REJECTED" => 21,
        "NUMBER_CHANGED" => 22,
        "REDIRECTION_TO_NEW_DESTINATION" => 23,
        "EXCHANGE_ROUTING_ERROR" => 25,
        "DESTINATION_OUT_OF_ORDER" => 27,
        "INVALID_NUMBER_FORMAT" => 28,
        "FACILITY_REJECTED" => 29,
        "RESPONSE_TO_STATUS_ENQUIRY" => 30,
        "NORMAL_UNSPECIFIED" => 31,
        "NORMAL_CIRCUIT_CONGESTION" => 34,
        "NETWORK_OUT_OF_ORDER" => 38,
        "NORMAL_TEMPORARY_FAILURE" => 41,
        "SWITCH_CONGESTION" => 42,
        "ACCESS_INFO_DISCARDED" => 43,
        "REQUESTED_CHAN_UNAVAIL" => 44,
        "PRE_EMPTED" => 45,
        "FACILITY_NOT_SUBSCRIBED" => 50,
        "OUTGOING_CALL_BARRED" => 52,
        "INCOMING_CALL_BARRED" => 54,
        "BEARERCAPABILITY_NOTAUTH" => 57,
        "BEARERCAPABILITY_NOTAVAIL" => 58,
        "SERVICE_UNAVAILABLE" => 63,
        "BEARERCAPABILITY_NOTIMPL" => 65,
        "CHAN_NOT_IMPLEMENTED" => 66,
        "FACILITY_NOT_IMPLEMENTED" => 69,
        "SERVICE_NOT_IMPLEMENTED" => 79,
        "INVALID_CALL_REFERENCE" => 81,
        "INCOMPATIBLE_DESTINATION" => 88,
        "INVALID_MSG_UNSPECIFIED" => 95,
        "MANDATORY_IE_MISSING" => 96,
        "MESSAGE_TYPE_NONEXIST" => 97,
        "WRONG_MESSAGE" => 98,
        "IE_NONEXIST" => 99,
        "INVALID_IE_CONTENTS" => 100,
        "WRONG_CALL_STATE" => 101,
        "RECOVERY_ON_TIMER_EXPIRE" => 102,
        "MANDATORY_IE_LENGTH_ERROR" => 103,
        "PROTOCOL_ERROR" => 111,
        "INTERWORKING" => 127,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3398_mapping_of_the_notes() {
        for (sip, q850) in [(404, 1), (408, 102), (480, 18), (486, 17), (503, 41), (603, 21)] {
            assert_eq!(sip_to_q850(sip), Some(q850), "{sip}");
        }
        assert_eq!(sip_to_q850(487), None);
        assert_eq!(sip_to_q850(200), None);
    }

    #[test]
    fn reason_headers() {
        assert_eq!(reason_q850("Q.850;cause=17;text=\"User busy\""), Some(17));
        assert_eq!(reason_q850("q.850 ; cause = 16"), Some(16));
        assert_eq!(reason_q850("SIP;cause=487;text=\"a, b\", Q.850;cause=31"), Some(31));
        assert_eq!(reason_q850("SIP;cause=200;text=\"Call completed elsewhere\""), None);
        assert_eq!(reason_q850("Q.850;cause=300"), None);
        assert_eq!(reason_q850("Q.850;cause=abc"), None);
        assert_eq!(reason_q850(""), None);
        assert_eq!(reason_q850("Q.850;text=\"cause=17\""), None);
    }

    #[test]
    fn dispositions() {
        assert_eq!(unanswered_disposition_for_sip(486), Disposition::Busy);
        assert_eq!(unanswered_disposition_for_sip(480), Disposition::NoAnswer);
        assert_eq!(unanswered_disposition_for_sip(487), Disposition::Cancelled);
        assert_eq!(unanswered_disposition_for_sip(404), Disposition::Failed);
        assert_eq!(unanswered_disposition_for_q850(17), Disposition::Busy);
        assert_eq!(unanswered_disposition_for_q850(19), Disposition::NoAnswer);
        assert_eq!(unanswered_disposition_for_q850(1), Disposition::Failed);
        assert_eq!(freeswitch_cause_q850("normal_clearing"), Some(16));
        assert_eq!(freeswitch_cause_q850("ORIGINATOR_CANCEL"), None);
    }
}
