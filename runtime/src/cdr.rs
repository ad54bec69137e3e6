//! The call detail record as the chain stores it, and the rules every stored CDR obeys.
//!
//! A [`CdrBody`] is what a switch reported (normalized, parties hashed); a [`Cdr`] adds who
//! recorded it and its place in that recorder's sequence. Batches carry bodies; the Merkle log
//! commits to whole `Cdr`s, so a leaf proves recorder, sequence and content together.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::hash::Hash32;
use crate::ids::{CallId, CdrId, OperatorId, RedirectReason, Sequence, SystemId};
use crate::merkle::Domain;
use crate::party::{PartiesAsWritten, PartyDigest};

/// The longest call the chain accepts: 24 hours, in milliseconds.
pub const MAX_CALL_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

/// How a call ended, from the billing side.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    #[codec(index = 0)]
    Answered,
    #[codec(index = 1)]
    Busy,
    #[codec(index = 2)]
    NoAnswer,
    #[codec(index = 3)]
    Failed,
    #[codec(index = 4)]
    Cancelled,
}

impl Disposition {
    pub const ALL: [Disposition; 5] = [
        Disposition::Answered,
        Disposition::Busy,
        Disposition::NoAnswer,
        Disposition::Failed,
        Disposition::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no-answer",
            Disposition::Failed => "failed",
            Disposition::Cancelled => "cancelled",
        }
    }

    /// Reads the canonical names case-insensitively, with `_` or a space for `-` and the US
    /// spelling `canceled`.
    pub fn parse(text: &str) -> Option<Disposition> {
        let folded: String = text
            .trim()
            .chars()
            .map(|c| if c == '_' || c == ' ' { '-' } else { c.to_ascii_lowercase() })
            .collect();
        match folded.as_str() {
            "answered" => Some(Disposition::Answered),
            "busy" => Some(Disposition::Busy),
            "no-answer" => Some(Disposition::NoAnswer),
            "failed" => Some(Disposition::Failed),
            "cancelled" | "canceled" => Some(Disposition::Cancelled),
            _ => None,
        }
    }
}

/// Which leg of a call a record describes, when the switch reports the legs of one call
/// separately (FreeSWITCH writes one document per channel). A record without a leg is the whole
/// call. The legs of one call share [`CdrBody::linked_id`]; settlement counts a call once.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    /// The originating leg: the channel the call came in on.
    #[codec(index = 0)]
    A,
    /// An outgoing leg the switch bridged the A leg to.
    #[codec(index = 1)]
    B,
}

impl Leg {
    pub fn as_str(self) -> &'static str {
        match self {
            Leg::A => "a",
            Leg::B => "b",
        }
    }

    /// `a` or `b`, any case.
    pub fn parse(text: &str) -> Option<Leg> {
        match text.trim().to_ascii_lowercase().as_str() {
            "a" => Some(Leg::A),
            "b" => Some(Leg::B),
            _ => None,
        }
    }
}

/// An ITU-T Q.850 cause value, 1 to 127.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Serialize)]
#[serde(transparent)]
pub struct Q850Cause(u8);

impl Q850Cause {
    pub fn new(value: u8) -> Option<Self> {
        (1..=127).contains(&value).then_some(Self(value))
    }
    pub fn value(self) -> u8 {
        self.0
    }
}

/// A final SIP status code, 100 to 699.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Serialize)]
#[serde(transparent)]
pub struct SipStatus(u16);

impl SipStatus {
    pub fn new(value: u16) -> Option<Self> {
        (100..=699).contains(&value).then_some(Self(value))
    }
    pub fn value(self) -> u16 {
        self.0
    }
}

/// A mean opinion score in hundredths: 100 (1.00) to 500 (5.00).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Serialize)]
#[serde(transparent)]
pub struct Mos(u16);

impl Mos {
    pub fn from_hundredths(value: u16) -> Option<Self> {
        (100..=500).contains(&value).then_some(Self(value))
    }
    pub fn hundredths(self) -> u16 {
        self.0
    }
}

macro_rules! checked_decode {
    ($name:ident, $inner:ty, $ctor:path, $what:expr) => {
        impl Decode for $name {
            fn decode<I: parity_scale_codec::Input>(
                input: &mut I,
            ) -> Result<Self, parity_scale_codec::Error> {
                let raw = <$inner>::decode(input)?;
                $ctor(raw).ok_or_else(|| parity_scale_codec::Error::from($what))
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <$inner>::deserialize(deserializer)?;
                $ctor(raw).ok_or_else(|| serde::de::Error::custom($what))
            }
        }
    };
}
checked_decode!(Q850Cause, u8, Q850Cause::new, "Q.850 cause outside 1..=127");
checked_decode!(SipStatus, u16, SipStatus::new, "SIP status outside 100..=699");
checked_decode!(Mos, u16, Mos::from_hundredths, "MOS outside 100..=500 hundredths");

/// The failure classes of the consortium's original record format, kept so that its reports
/// still work. Each maps onto a Q.850 cause or SIP status (see DESIGN.md).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Q.850 1.
    #[codec(index = 0)]
    UnallocatedNumber,
    /// Q.850 17.
    #[codec(index = 1)]
    UserBusy,
    /// Q.850 41.
    #[codec(index = 2)]
    TemporaryFailure,
    /// Q.850 79.
    #[codec(index = 3)]
    ServiceNotImplemented,
    /// SIP 404.
    #[codec(index = 4)]
    NotFound,
    /// SIP 480.
    #[codec(index = 5)]
    TemporarilyUnavailable,
    #[codec(index = 6)]
    Redirect,
    #[codec(index = 7)]
    CallSplit,
    #[codec(index = 8)]
    NationalUse,
}

impl Fault {
    pub fn parse(text: &str) -> Option<Fault> {
        let folded: String = text
            .trim()
            .chars()
            .map(|c| if c == '_' || c == ' ' { '-' } else { c.to_ascii_lowercase() })
            .collect();
        Some(match folded.as_str() {
            "unallocated-number" => Fault::UnallocatedNumber,
            "user-busy" => Fault::UserBusy,
            "temporary-failure" => Fault::TemporaryFailure,
            "service-not-implemented" => Fault::ServiceNotImplemented,
            "not-found" => Fault::NotFound,
            "temporarily-unavailable" => Fault::TemporarilyUnavailable,
            "redirect" => Fault::Redirect,
            "call-split" => Fault::CallSplit,
            "national-use" => Fault::NationalUse,
            _ => return None,
        })
    }
}

/// What a switch reported about one call (or one leg), normalized and with parties hashed.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CdrBody {
    pub system_id: SystemId,
    pub call_id: CallId,
    pub caller: PartyDigest,
    pub callee: PartyDigest,
    pub caller_operator: OperatorId,
    pub callee_operator: OperatorId,
    /// The callee's country and network code, from the number before it was hashed, for
    /// rating ([`crate::destination`]); `None` for a callee that is not an E.164 number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<crate::destination::Destination>,
    /// Call setup (INVITE), ms since the Unix epoch, UTC.
    pub start_ms: u64,
    /// Answer (200 OK), if the call was answered.
    pub answer_ms: Option<u64>,
    /// Release (BYE, CANCEL or final failure).
    pub end_ms: u64,
    pub disposition: Disposition,
    pub q850_cause: Option<Q850Cause>,
    pub sip_status: Option<SipStatus>,
    pub mos: Option<Mos>,
    pub fault: Option<Fault>,
    pub redirect_reason: Option<RedirectReason>,
    /// The leg this record describes; `None`: the whole call.
    pub leg: Option<Leg>,
    /// What links the records of one call (FreeSWITCH's A-leg uuid, Asterisk's `linkedid`); the
    /// legs of a call share it, and `call_id` stays each leg's own SIP Call-ID.
    pub linked_id: Option<CallId>,
    /// Which parties were recorded as written, not normalized (a number the node could not
    /// read: see `party`). Omitted from JSON when neither was.
    #[serde(default, skip_serializing_if = "PartiesAsWritten::is_none")]
    pub as_written: PartiesAsWritten,
    /// The record's identity in its source system, as a digest ([`crate::source`]): how the
    /// recording node recognises a re-submission, also after its database was restored.
    pub source: crate::source::SourceDigest,
}

/// A rule a CDR breaks: which field, its value, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` = {value}: {reason}")]
pub struct CdrError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl CdrError {
    pub fn new(field: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Self { field, value: value.to_string(), reason: reason.into() }
    }
}

impl CdrBody {
    /// The rules every stored CDR obeys, whoever built it (ingest or a peer's block).
    pub fn validate(&self) -> Result<(), CdrError> {
        if let Some(destination) = &self.destination {
            destination.check()?;
        }
        if self.end_ms < self.start_ms {
            return Err(CdrError::new(
                "end",
                self.end_ms,
                format!("end is before start ({} ms)", self.start_ms),
            ));
        }
        let duration_ms = self.end_ms - self.start_ms;
        if duration_ms > MAX_CALL_DURATION_MS {
            return Err(CdrError::new(
                "end",
                self.end_ms,
                format!("the call lasts {duration_ms} ms, more than 24 h"),
            ));
        }
        match (self.disposition, self.answer_ms) {
            (_, Some(answer)) if answer < self.start_ms || answer > self.end_ms => {
                return Err(CdrError::new(
                    "answer",
                    answer,
                    format!("answer is outside [start, end] = [{}, {}]", self.start_ms, self.end_ms),
                ));
            }
            (Disposition::Answered, None) => {
                return Err(CdrError::new("answer", "none", "an answered call needs an answer time"));
            }
            (other, Some(answer)) if other != Disposition::Answered => {
                return Err(CdrError::new(
                    "answer",
                    answer,
                    format!("a call with disposition `{}` has no answer time", other.as_str()),
                ));
            }
            _ => {}
        }
        if self.leg == Some(Leg::B) && self.linked_id.is_none() {
            return Err(CdrError::new("linked_id", "none", "a B leg needs the linked_id of its call"));
        }
        Ok(())
    }

    /// The identity of the call this record belongs to: its `linked_id`, else its `call_id`.
    /// Settlement counts one call per (recorder, call key).
    pub fn call_key(&self) -> &CallId {
        self.linked_id.as_ref().unwrap_or(&self.call_id)
    }

    /// Billable time: answer to end, in ms (0 when unanswered).
    pub fn billable_ms(&self) -> u64 {
        self.answer_ms.map_or(0, |answer| self.end_ms.saturating_sub(answer))
    }
}

/// A CDR as committed: recorder, its sequence number, and the body.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Cdr {
    pub recorder: OperatorId,
    pub sequence: Sequence,
    #[serde(flatten)]
    pub body: CdrBody,
}

impl Cdr {
    pub fn id(&self) -> CdrId {
        CdrId { recorder: self.recorder.clone(), sequence: self.sequence }
    }

    /// A transit record: its recorder is neither the caller's nor the callee's operator (a
    /// carrier between them, or a member recording what it did not carry). The chain keeps it,
    /// since the node cannot judge whether the recorder carried the call, but settlement and
    /// reconciliation between the two operators never count it (docs/adr/0015).
    pub fn is_transit(&self) -> bool {
        self.recorder != self.body.caller_operator && self.recorder != self.body.callee_operator
    }

    /// The CDR log's leaf hash of this record.
    pub fn leaf_hash(&self) -> Hash32 {
        leaf_hash(&self.recorder, self.sequence, &self.body, &mut Vec::new())
    }
}

/// The leaf hash of `Cdr { recorder, sequence, body }` without building the `Cdr`: the SCALE
/// encoding of a struct is its fields' encodings in order. `buffer` is reused across calls so that
/// hashing a batch allocates once.
pub fn leaf_hash(recorder: &OperatorId, sequence: Sequence, body: &CdrBody, buffer: &mut Vec<u8>) -> Hash32 {
    buffer.clear();
    recorder.encode_to(buffer);
    sequence.encode_to(buffer);
    body.encode_to(buffer);
    Domain::CDR_LOG.leaf(buffer)
}
