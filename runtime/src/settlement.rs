//! Settlement between two interconnect partners: calls, answers and billable time per direction,
//! with a call counted once however many records of it the chain holds, and billed seconds under
//! a stated rounding rule. Pure: the node feeds it the records of a pair and window as of one
//! height, and states that height and its roots beside the numbers, so both partners can compute
//! the same figures and compare.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::cdr::{Cdr, Disposition, Leg};
use crate::ids::OperatorId;

/// How billable time is rounded per call: a first block of `first_s` seconds (the minimum charge
/// of an answered call), then increments of `increment_s`. `1/1` is per second, `60/60` per
/// minute, `60/6` a minute's minimum and then six-second steps. Billable milliseconds are first
/// rounded up to whole seconds (a started second counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rounding {
    pub first_s: u64,
    pub increment_s: u64,
}

/// A rounding rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rounding rule {text:?}: {reason} (use per-second, per-minute, or FIRST/INCREMENT such as 60/6)")]
pub struct RoundingError {
    pub text: String,
    pub reason: String,
}

/// The longest block a rounding rule may name: one hour.
const MAX_BLOCK_S: u64 = 3_600;

impl Rounding {
    pub const PER_SECOND: Rounding = Rounding { first_s: 1, increment_s: 1 };
    pub const PER_MINUTE: Rounding = Rounding { first_s: 60, increment_s: 60 };

    /// The seconds billed for a call of `billable_ms` (0 for an unanswered call).
    pub fn billed_seconds(self, billable_ms: u64) -> u64 {
        if billable_ms == 0 {
            return 0;
        }
        let seconds = billable_ms.div_ceil(1_000);
        if seconds <= self.first_s {
            return self.first_s;
        }
        let rest = seconds - self.first_s;
        self.first_s + rest.div_ceil(self.increment_s.max(1)) * self.increment_s
    }
}

impl std::str::FromStr for Rounding {
    type Err = RoundingError;

    fn from_str(text: &str) -> Result<Rounding, RoundingError> {
        let bad = |reason: &str| RoundingError { text: text.to_string(), reason: reason.to_string() };
        match text.trim().to_ascii_lowercase().as_str() {
            "per-second" | "second" | "1" => return Ok(Rounding::PER_SECOND),
            "per-minute" | "minute" | "60" => return Ok(Rounding::PER_MINUTE),
            _ => {}
        }
        let (first, increment) = text.trim().split_once('/').ok_or_else(|| bad("no `/`"))?;
        let number = |part: &str, what: &str| -> Result<u64, RoundingError> {
            let value: u64 = part
                .trim()
                .parse()
                .map_err(|_| bad(&format!("the {what} is not a whole number of seconds")))?;
            if value == 0 || value > MAX_BLOCK_S {
                return Err(bad(&format!("the {what} must be 1 to {MAX_BLOCK_S} seconds")));
            }
            Ok(value)
        };
        Ok(Rounding { first_s: number(first, "first block")?, increment_s: number(increment, "increment")? })
    }
}

impl std::fmt::Display for Rounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.first_s, self.increment_s)
    }
}

/// The records a call is counted by: one per [`CdrBody::call_key`](crate::cdr::CdrBody::call_key),
/// chosen the same way on every node: the record of the originating operator (recorder = caller
/// operator) first, then a whole-call or A-leg record before a B-leg, then the lowest id. Returned
/// in start-time order (ties by id).
pub fn count_once<'a>(cdrs: impl IntoIterator<Item = &'a Cdr>) -> Vec<&'a Cdr> {
    let mut chosen: HashMap<&crate::ids::CallId, &'a Cdr> = HashMap::new();
    let rank = |cdr: &Cdr| {
        (
            cdr.recorder != cdr.body.caller_operator,
            cdr.body.leg == Some(Leg::B),
            cdr.recorder.clone(),
            cdr.sequence,
        )
    };
    for cdr in cdrs {
        chosen
            .entry(cdr.body.call_key())
            .and_modify(|current| {
                if rank(cdr) < rank(current) {
                    *current = cdr;
                }
            })
            .or_insert(cdr);
    }
    let mut out: Vec<&Cdr> = chosen.into_values().collect();
    out.sort_by(|x, y| {
        (x.body.start_ms, &x.recorder, x.sequence).cmp(&(y.body.start_ms, &y.recorder, y.sequence))
    });
    out
}

/// Calls in one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub calls: u64,
    pub answered: u64,
    /// Sum of answer-to-end times, exact.
    pub billable_ms: u64,
    /// Sum of each answered call's time rounded up to whole seconds.
    pub billable_seconds: u64,
    /// Sum of each answered call's billed seconds under the rounding rule.
    pub billed_seconds: u64,
    /// Calls per disposition (`answered`, `busy`, `no-answer`, `failed`, `cancelled`).
    pub by_disposition: BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, cdr: &Cdr, rounding: Rounding) {
        let billable = cdr.body.billable_ms();
        self.calls += 1;
        if cdr.body.disposition == Disposition::Answered {
            self.answered += 1;
        }
        self.billable_ms += billable;
        self.billable_seconds += billable.div_ceil(1_000);
        self.billed_seconds += rounding.billed_seconds(billable);
        *self.by_disposition.entry(cdr.body.disposition.as_str().to_string()).or_default() += 1;
    }

    /// Billed minutes for display: billed seconds / 60, to two decimals (rounded half up). The
    /// exact figure is `billed_seconds`.
    pub fn billed_minutes(&self) -> String {
        let hundredths = (self.billed_seconds * 100 + 30) / 60;
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

/// Calls from one operator to the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Direction {
    pub from: OperatorId,
    pub to: OperatorId,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Both directions between `a` and `b`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub rounding: String,
    /// Records counted from (every leg and both partners' copies; third operators' records of
    /// the pair's calls are not among them).
    pub records: u64,
    /// Calls counted (once each).
    pub calls: u64,
    /// `a → b`, then `b → a`.
    pub directions: [Direction; 2],
}

/// Whether `cdr` is one of the partners' own records of a call between `a` and `b`: the call goes
/// `a → b` or `b → a` and the recorder is `a` or `b`. A third operator's record of such a call (a
/// transit carrier's, or a forged one) never counts in the pair's settlement or reconciliation:
/// otherwise any member could change what two others bill each other.
pub fn of_pair(cdr: &Cdr, a: &OperatorId, b: &OperatorId) -> bool {
    let (from, to) = (&cdr.body.caller_operator, &cdr.body.callee_operator);
    let direction = (from == a && to == b) || (from == b && to == a);
    direction && (cdr.recorder == *a || cdr.recorder == *b)
}

/// Totals of the calls between `a` and `b` among `cdrs`, each call once, from the partners' own
/// records only (see [`of_pair`]; others are ignored).
pub fn summarize<'a>(
    a: &OperatorId,
    b: &OperatorId,
    cdrs: impl IntoIterator<Item = &'a Cdr>,
    rounding: Rounding,
) -> Summary {
    let direction = |from: &OperatorId, to: &OperatorId| Direction {
        from: from.clone(),
        to: to.clone(),
        totals: Totals::default(),
    };
    let mut directions = [direction(a, b), direction(b, a)];
    let mut records = 0;
    let between: Vec<&Cdr> =
        cdrs.into_iter().filter(|cdr| of_pair(cdr, a, b)).inspect(|_| records += 1).collect();
    let calls = count_once(between);
    for cdr in &calls {
        let index = usize::from(cdr.body.caller_operator != *a);
        directions[index].totals.add(cdr, rounding);
    }
    Summary { rounding: rounding.to_string(), records, calls: calls.len() as u64, directions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CallId, Sequence};
    use proptest::prelude::*;

    #[test]
    fn rounding_rules_bill_as_carriers_do() {
        let r: Rounding = "60/6".parse().unwrap();
        assert_eq!(r.billed_seconds(0), 0);
        assert_eq!(r.billed_seconds(1), 60);
        assert_eq!(r.billed_seconds(60_000), 60);
        assert_eq!(r.billed_seconds(60_001), 66);
        assert_eq!(r.billed_seconds(61_000), 66);
        assert_eq!(r.billed_seconds(67_000), 72);
        assert_eq!(Rounding::PER_SECOND.billed_seconds(30_200), 31);
        assert_eq!(Rounding::PER_MINUTE.billed_seconds(61_000), 120);
        assert_eq!("per-minute".parse::<Rounding>().unwrap(), Rounding::PER_MINUTE);
        assert_eq!("1/1".parse::<Rounding>().unwrap(), Rounding::PER_SECOND);
        assert_eq!("30/6".parse::<Rounding>().unwrap().to_string(), "30/6");
        for bad in ["", "0/6", "60/0", "60", "x/6", "60/6/1", "7200/6"] {
            if bad == "60" {
                continue; // an alias of per-minute
            }
            let error = bad.parse::<Rounding>().unwrap_err();
            assert!(error.to_string().contains("rounding rule"), "{bad}: {error}");
        }
    }

    proptest! {
        /// Billed time is never below the billable time, and less than one increment above it
        /// once past the first block.
        #[test]
        fn billed_time_covers_the_call_by_less_than_a_step(
            first in 1u64..=120, increment in 1u64..=60, ms in 1u64..=86_400_000
        ) {
            let r = Rounding { first_s: first, increment_s: increment };
            let billed = r.billed_seconds(ms);
            let seconds = ms.div_ceil(1000);
            prop_assert!(billed >= seconds && billed >= first);
            if seconds > first {
                prop_assert!(billed - seconds < increment);
                prop_assert_eq!((billed - first) % increment, 0);
            }
        }
    }

    fn cdr(recorder: &str, sequence: u64, from: &str, to: &str, call: &str, answer_s: Option<u64>) -> Cdr {
        let mut body =
            crate::sample::cdr_body(sequence, &OperatorId::new(from).unwrap(), &OperatorId::new(to).unwrap());
        body.call_id = CallId::new(call).unwrap();
        body.linked_id = None;
        body.leg = None;
        body.start_ms = 1_000_000 + sequence * 1_000;
        match answer_s {
            Some(seconds) => {
                body.answer_ms = Some(body.start_ms + 2_000);
                body.end_ms = body.start_ms + 2_000 + seconds * 1_000;
                body.disposition = Disposition::Answered;
            }
            None => {
                body.answer_ms = None;
                body.end_ms = body.start_ms + 5_000;
                body.disposition = Disposition::Busy;
            }
        }
        Cdr { recorder: OperatorId::new(recorder).unwrap(), sequence: Sequence(sequence), body }
    }

    #[test]
    fn a_call_recorded_by_both_partners_and_in_legs_counts_once() {
        let (a, b) = (OperatorId::new("alice").unwrap(), OperatorId::new("bob").unwrap());
        let mut legs = cdr("alice", 3, "alice", "bob", "leg-b", Some(90));
        legs.body.leg = Some(Leg::B);
        legs.body.linked_id = Some(CallId::new("call-3").unwrap());
        let records = vec![
            cdr("alice", 1, "alice", "bob", "call-1", Some(61)),
            // bob's copy of call-1, with a second more: alice (the originator) is counted.
            cdr("bob", 7, "alice", "bob", "call-1", Some(62)),
            cdr("alice", 2, "alice", "bob", "call-2", None),
            cdr("alice", 4, "alice", "bob", "call-3", Some(90)),
            legs,
            cdr("bob", 8, "bob", "alice", "call-4", Some(5)),
            // Not between alice and bob.
            cdr("alice", 9, "alice", "carol", "call-5", Some(100)),
        ];
        let summary = summarize(&a, &b, &records, "60/6".parse().unwrap());
        assert_eq!((summary.records, summary.calls), (6, 4));
        let [ab, ba] = &summary.directions;
        assert_eq!((ab.from.as_str(), ab.to.as_str()), ("alice", "bob"));
        assert_eq!((ab.totals.calls, ab.totals.answered), (3, 2));
        assert_eq!(ab.totals.billable_seconds, 61 + 90);
        assert_eq!(ab.totals.billed_seconds, 66 + 90);
        assert_eq!(ab.totals.by_disposition.get("busy"), Some(&1));
        assert_eq!((ba.totals.calls, ba.totals.billable_seconds, ba.totals.billed_seconds), (1, 5, 60));
        assert_eq!(ab.totals.billed_minutes(), "2.60");
        // The same records in any order give the same summary.
        let mut reversed = records.clone();
        reversed.reverse();
        assert_eq!(summarize(&a, &b, &reversed, "60/6".parse().unwrap()), summary);
    }

    #[test]
    fn a_third_operators_records_never_change_a_pairs_settlement() {
        let (a, b) = (OperatorId::new("alice").unwrap(), OperatorId::new("bob").unwrap());
        let honest = vec![
            cdr("alice", 1, "alice", "bob", "call-1", Some(61)),
            cdr("bob", 2, "bob", "alice", "call-2", Some(30)),
        ];
        let rounding: Rounding = "1/1".parse().unwrap();
        let before = summarize(&a, &b, &honest, rounding);
        let mut flooded = honest.clone();
        // eve invents alice→bob calls, and re-records call-2 with other durations under an id
        // that sorts before bob's.
        flooded.extend((10..60).map(|i| cdr("eve", i, "alice", "bob", &format!("eve-{i}"), Some(600))));
        flooded.push(cdr("aaa-carrier", 70, "bob", "alice", "call-2", Some(3_000)));
        assert_eq!(summarize(&a, &b, &flooded, rounding), before);
        assert!(!of_pair(&flooded[2], &a, &b));
        assert!(of_pair(&honest[1], &a, &b) && of_pair(&honest[1], &b, &a));
    }
}
