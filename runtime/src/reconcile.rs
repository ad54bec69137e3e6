//! Reconciliation: an operator's own CDR export against the chain's records of the calls with one
//! partner. Both sides are first reduced to one record per call ([`count_once`]); calls are
//! matched by call key (the SIP Call-ID, or the id linking a call's legs), then, for what is left,
//! by the same parties and direction with start times within the tolerance (an SBC between the
//! partners may rewrite Call-IDs). Matched calls are compared field by field. Pure: the CLI reads
//! the file and the chain.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::cdr::Cdr;
use crate::ids::OperatorId;
use crate::settlement::{count_once, of_pair, summarize, Rounding, Totals};

/// One field that differs between the file's record of a call and the chain's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub field: String,
    pub mine: String,
    pub chain: String,
}

/// A call of the file found on the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    /// The file's line (or record number) of the call.
    pub line: u64,
    /// The chain's record (`operator:sequence`).
    pub id: String,
    pub call_id: String,
    /// How it was matched: `call-id`, or `parties+time` (no common Call-ID).
    pub by: String,
    /// Empty when the records agree.
    pub differences: Vec<Difference>,
}

/// A call on one side only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmatched {
    /// The file's line, for a call missing on the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The chain's record, for a call missing in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub call_id: String,
    pub start_ms: u64,
    pub from: OperatorId,
    pub to: OperatorId,
}

/// Totals of one direction on each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionTotals {
    pub from: OperatorId,
    pub to: OperatorId,
    pub mine: Totals,
    pub chain: Totals,
}

/// The reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub me: OperatorId,
    pub partner: OperatorId,
    pub tolerance_ms: u64,
    /// Calls on both sides that agree.
    pub matched: u64,
    /// Calls on both sides that differ.
    pub mismatched: Vec<Matched>,
    pub missing_on_chain: Vec<Unmatched>,
    pub missing_in_file: Vec<Unmatched>,
    /// `me → partner`, then `partner → me`.
    pub totals: [DirectionTotals; 2],
}

impl Report {
    /// How many calls differ: mismatched, missing on the chain, missing in the file.
    pub fn differences(&self) -> usize {
        self.mismatched.len() + self.missing_on_chain.len() + self.missing_in_file.len()
    }

    /// Whether no call matched and every mismatched one differs in both parties: the parties
    /// were most likely hashed with another consortium secret (or region) than the chain's.
    pub fn parties_differ_everywhere(&self) -> bool {
        let both =
            |m: &Matched| ["caller", "callee"].iter().all(|f| m.differences.iter().any(|d| d.field == *f));
        self.matched == 0 && !self.mismatched.is_empty() && self.mismatched.iter().all(both)
    }
}

/// Whether a record is one of the two partners' own records of a call between them (a third
/// operator's record of their call is not compared: see [`of_pair`]).
fn between(cdr: &Cdr, me: &OperatorId, partner: &OperatorId) -> bool {
    of_pair(cdr, me, partner)
}

fn compare(mine: &Cdr, chain: &Cdr, tolerance_ms: u64) -> Vec<Difference> {
    let (m, c) = (&mine.body, &chain.body);
    let mut out = Vec::new();
    let mut differ = |field: &str, mine: String, chain: String| {
        out.push(Difference { field: field.to_string(), mine, chain });
    };
    if (&m.caller_operator, &m.callee_operator) != (&c.caller_operator, &c.callee_operator) {
        differ(
            "direction",
            format!("{} -> {}", m.caller_operator, m.callee_operator),
            format!("{} -> {}", c.caller_operator, c.callee_operator),
        );
    }
    if m.caller != c.caller {
        differ("caller", m.caller.to_string(), c.caller.to_string());
    }
    if m.callee != c.callee {
        differ("callee", m.callee.to_string(), c.callee.to_string());
    }
    if m.start_ms.abs_diff(c.start_ms) > tolerance_ms {
        differ("start", format!("{} ms", m.start_ms), format!("{} ms", c.start_ms));
    }
    if m.disposition != c.disposition {
        differ("disposition", m.disposition.as_str().to_string(), c.disposition.as_str().to_string());
    }
    if m.billable_ms().abs_diff(c.billable_ms()) > tolerance_ms {
        let seconds = |ms: u64| format!("{}.{:03} s", ms / 1_000, ms % 1_000);
        differ("duration", seconds(m.billable_ms()), seconds(c.billable_ms()));
    }
    // A cause only one side reports is not a difference: sources differ in what they log.
    if let (Some(mc), Some(cc)) = (m.q850_cause, c.q850_cause) {
        if mc != cc {
            differ("cause", mc.value().to_string(), cc.value().to_string());
        }
    }
    out
}

/// Reconciles `mine` (the file's records, `recorder` = `me`, `sequence` = line) with `chain`
/// (the chain's records of the pair). Records outside `window` (`[from, to)` start times, ms) help
/// matching but are neither reported missing nor counted in the totals, so that a call near the
/// window's edge is not reported on one side only.
pub fn reconcile(
    me: &OperatorId,
    partner: &OperatorId,
    mine: &[Cdr],
    chain: &[Cdr],
    tolerance_ms: u64,
    window: (u64, u64),
) -> Report {
    let in_window = |cdr: &Cdr| window.0 <= cdr.body.start_ms && cdr.body.start_ms < window.1;
    let mine = count_once(mine.iter().filter(|c| between(c, me, partner)));
    let chain = count_once(chain.iter().filter(|c| between(c, me, partner)));
    let pairing = pair(&mine, &chain, tolerance_ms);
    let unmatched = |cdr: &Cdr, line: Option<u64>, id: Option<String>| Unmatched {
        line,
        id,
        call_id: cdr.body.call_id.as_str().to_string(),
        start_ms: cdr.body.start_ms,
        from: cdr.body.caller_operator.clone(),
        to: cdr.body.callee_operator.clone(),
    };
    let mut matched = 0;
    let mut mismatched = Vec::new();
    for (index, at, by) in pairing.pairs {
        let (m, c) = (mine[index], chain[at]);
        if !in_window(m) && !in_window(c) {
            continue;
        }
        let differences = compare(m, c, tolerance_ms);
        if differences.is_empty() {
            matched += 1;
        } else {
            mismatched.push(Matched {
                line: m.sequence.0,
                id: c.id().to_string(),
                call_id: c.body.call_id.as_str().to_string(),
                by: by.to_string(),
                differences,
            });
        }
    }
    let missing_on_chain = pairing
        .unmatched_mine
        .into_iter()
        .map(|index| mine[index])
        .filter(|c| in_window(c))
        .map(|c| unmatched(c, Some(c.sequence.0), None))
        .collect();
    let missing_in_file = chain
        .iter()
        .enumerate()
        .filter(|(at, c)| !pairing.taken[*at] && in_window(c))
        .map(|(_, c)| unmatched(c, None, Some(c.id().to_string())))
        .collect();
    let mine_in_window: Vec<&Cdr> = mine.iter().copied().filter(|c| in_window(c)).collect();
    let chain_in_window: Vec<&Cdr> = chain.iter().copied().filter(|c| in_window(c)).collect();
    let totals = totals(me, partner, &mine_in_window, &chain_in_window);
    Report {
        me: me.clone(),
        partner: partner.clone(),
        tolerance_ms,
        matched,
        mismatched,
        missing_on_chain,
        missing_in_file,
        totals,
    }
}

/// How the records of the two sides were paired.
struct Pairing {
    /// (index in mine, index in chain, how it was matched), in the order of mine.
    pairs: Vec<(usize, usize, &'static str)>,
    /// For each chain record, whether it was paired.
    taken: Vec<bool>,
    /// The indexes in mine of the records without a partner on the chain.
    unmatched_mine: Vec<usize>,
}

/// Pairs each of `mine` with a record of `chain`: by call key first, then, for what has no common
/// call key, by the same parties and direction with the nearest start within `tolerance_ms`
/// (ties: the chain's earlier record).
fn pair(mine: &[&Cdr], chain: &[&Cdr], tolerance_ms: u64) -> Pairing {
    let mut by_key: HashMap<&crate::ids::CallId, usize> = HashMap::new();
    for (index, cdr) in chain.iter().enumerate() {
        by_key.insert(cdr.body.call_key(), index);
    }
    let mut taken = vec![false; chain.len()];
    let mut pairs: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut left = Vec::new();
    for (index, cdr) in mine.iter().enumerate() {
        match by_key.get(cdr.body.call_key()) {
            Some(&at) if !taken[at] => {
                taken[at] = true;
                pairs.push((index, at, "call-id"));
            }
            _ => left.push(index),
        }
    }
    let mut unmatched_mine = Vec::new();
    for index in left {
        let m = &mine[index].body;
        let nearest = chain
            .iter()
            .enumerate()
            .filter(|(at, c)| {
                !taken[*at]
                    && c.body.caller == m.caller
                    && c.body.callee == m.callee
                    && c.body.caller_operator == m.caller_operator
                    && c.body.start_ms.abs_diff(m.start_ms) <= tolerance_ms
            })
            .min_by_key(|(at, c)| (c.body.start_ms.abs_diff(m.start_ms), *at))
            .map(|(at, _)| at);
        match nearest {
            Some(at) => {
                taken[at] = true;
                pairs.push((index, at, "parties+time"));
            }
            None => unmatched_mine.push(index),
        }
    }
    pairs.sort_by_key(|&(index, _, _)| index);
    Pairing { pairs, taken, unmatched_mine }
}

/// The totals of each direction on each side: `me → partner`, then `partner → me`.
fn totals(me: &OperatorId, partner: &OperatorId, mine: &[&Cdr], chain: &[&Cdr]) -> [DirectionTotals; 2] {
    let side =
        |records: &[&Cdr]| summarize(me, partner, records.iter().copied(), Rounding::PER_SECOND).directions;
    let [mine_out, mine_in] = side(mine);
    let [chain_out, chain_in] = side(chain);
    [
        DirectionTotals {
            from: me.clone(),
            to: partner.clone(),
            mine: mine_out.totals,
            chain: chain_out.totals,
        },
        DirectionTotals {
            from: partner.clone(),
            to: me.clone(),
            mine: mine_in.totals,
            chain: chain_in.totals,
        },
    ]
}

/// The window a file's calls with `partner` span, `[first start, last start + 1 ms)`, when the
/// user names none; `None` when the file holds no call with the partner.
pub fn window_of(mine: &[Cdr], partner: &OperatorId) -> Option<(u64, u64)> {
    let starts = mine
        .iter()
        .filter(|c| [&c.body.caller_operator, &c.body.callee_operator].contains(&partner))
        .map(|c| c.body.start_ms);
    let (from, last) = starts.fold(None, |span: Option<(u64, u64)>, start| match span {
        None => Some((start, start)),
        Some((low, high)) => Some((low.min(start), high.max(start))),
    })?;
    Some((from, last.saturating_add(1)))
}

/// A CDR as the node's `cdr_query` and `cdr_get` answer it: the record, with the node's
/// `id`, `height` and `leaf_index` beside it (dropped here).
pub fn from_node_answer(mut value: serde_json::Value) -> Result<Cdr, serde_json::Error> {
    if let serde_json::Value::Object(map) = &mut value {
        for extra in ["id", "height", "leaf_index"] {
            map.remove(extra);
        }
    }
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdr::{Disposition, Q850Cause};
    use crate::ids::{CallId, Sequence};
    use proptest::prelude::*;

    fn call(index: u64, from: &str, to: &str) -> Cdr {
        let (from, to) = (OperatorId::new(from).unwrap(), OperatorId::new(to).unwrap());
        let mut body = crate::sample::cdr_body(index, &from, &to);
        body.call_id = CallId::new(format!("call-{index}")).unwrap();
        body.linked_id = None;
        body.leg = None;
        body.start_ms = 1_000_000 + index * 10_000;
        body.answer_ms = Some(body.start_ms + 1_000);
        body.end_ms = body.start_ms + 1_000 + (30 + index) * 1_000;
        body.disposition = Disposition::Answered;
        body.q850_cause = Q850Cause::new(16);
        Cdr { recorder: from, sequence: Sequence(index), body }
    }

    /// `chain` as the file holds it: recorded by `me`, numbered by line.
    fn as_file(chain: &[Cdr], me: &str) -> Vec<Cdr> {
        chain
            .iter()
            .enumerate()
            .map(|(i, c)| Cdr {
                recorder: OperatorId::new(me).unwrap(),
                sequence: Sequence(i as u64 + 1),
                ..c.clone()
            })
            .collect()
    }

    fn ids() -> (OperatorId, OperatorId) {
        (OperatorId::new("bob").unwrap(), OperatorId::new("alice").unwrap())
    }

    #[test]
    fn three_altered_two_absent_one_extra_are_exactly_six_differences() {
        let (me, partner) = ids();
        let chain: Vec<Cdr> = (0..20)
            .map(|i| if i % 3 == 0 { call(i, "bob", "alice") } else { call(i, "alice", "bob") })
            .collect();
        let mut file = as_file(&chain, "bob");
        file[2].body.end_ms += 45_000; // longer
        file[5].body.disposition = Disposition::Failed; // and still "answered" times: one field
        file[8].body.q850_cause = Q850Cause::new(17);
        let extra = Cdr { sequence: Sequence(99), ..call(40, "alice", "bob") };
        file.remove(13);
        file.remove(11);
        file.push(extra);
        // A carrier's SBC rewrote one Call-ID: matched by parties and time instead.
        file[0].body.call_id = CallId::new("rewritten-by-sbc").unwrap();
        let report = reconcile(&me, &partner, &file, &chain, 2_000, (0, u64::MAX));
        assert_eq!(report.differences(), 6, "{report:#?}");
        let fields: Vec<(&str, &str)> =
            report.mismatched.iter().map(|m| (m.call_id.as_str(), m.differences[0].field.as_str())).collect();
        assert_eq!(fields, vec![("call-2", "duration"), ("call-5", "disposition"), ("call-8", "cause")]);
        let missing: Vec<&str> = report.missing_in_file.iter().map(|u| u.call_id.as_str()).collect();
        assert_eq!(missing, vec!["call-11", "call-13"]);
        assert_eq!(report.missing_on_chain.len(), 1);
        assert_eq!(report.missing_on_chain[0].call_id, "call-40");
        assert_eq!(report.matched, 15);
        // Totals: bob -> alice is calls 0, 3, 6, ..., 18 on both sides (7 calls).
        let [out, back] = &report.totals;
        assert_eq!((out.from.as_str(), out.mine.calls, out.chain.calls), ("bob", 7, 7));
        let chain_seconds: u64 = (1..20).filter(|i| i % 3 != 0).map(|i| 30 + i).sum();
        assert_eq!(back.chain.billable_seconds, chain_seconds);
        assert_eq!(back.mine.billable_seconds, chain_seconds + 45 - (30 + 11) - (30 + 13) + (30 + 40));
        assert_eq!(back.mine.calls, 12);
        assert_eq!(back.chain.calls, 13);
    }

    #[test]
    fn records_outside_the_window_match_but_are_not_reported() {
        let (me, partner) = ids();
        let chain: Vec<Cdr> = (0..4).map(|i| call(i, "alice", "bob")).collect();
        let mut file = as_file(&chain, "bob");
        file[0].body.start_ms += 1_500; // just before the window on the chain, inside in the file
        let window = (chain[0].body.start_ms + 1_000, u64::MAX);
        let report = reconcile(&me, &partner, &file[..3], &chain[1..], 2_000, window);
        // call-0 is only in the file, inside the window: missing on the chain. call-3 only on the
        // chain: missing in the file.
        assert_eq!(report.missing_on_chain.len(), 1);
        assert_eq!(report.missing_in_file.len(), 1);
        let narrow = (chain[1].body.start_ms, chain[3].body.start_ms);
        let report = reconcile(&me, &partner, &file[..3], &chain[1..], 2_000, narrow);
        assert_eq!(report.differences(), 0, "{report:#?}");
        assert_eq!(report.matched, 2);
    }

    #[test]
    fn a_third_operators_records_of_the_pairs_calls_are_not_compared() {
        let (me, partner) = ids();
        let chain: Vec<Cdr> = (0..5).map(|i| call(i, "alice", "bob")).collect();
        let file = as_file(&chain, "bob");
        let mut flooded = chain.clone();
        // eve claims ten more alice→bob calls, and a longer copy of call-2.
        flooded.extend(
            (10..20).map(|i| Cdr { recorder: OperatorId::new("eve").unwrap(), ..call(i, "alice", "bob") }),
        );
        let mut longer = Cdr { recorder: OperatorId::new("eve").unwrap(), ..chain[2].clone() };
        longer.body.end_ms += 600_000;
        flooded.push(longer);
        let clean = reconcile(&me, &partner, &file, &chain, 1_000, (0, u64::MAX));
        let report = reconcile(&me, &partner, &file, &flooded, 1_000, (0, u64::MAX));
        assert_eq!(report.differences(), 0, "{report:#?}");
        assert_eq!(report.totals, clean.totals);
    }

    proptest! {
        /// The chain's own records reconcile with themselves, in any order; dropping k of them
        /// from the file gives exactly k calls missing in the file.
        #[test]
        fn a_faithful_export_reconciles_and_each_dropped_call_is_named(
            count in 1u64..40, seed in any::<u64>(), drop in 0usize..5
        ) {
            let (me, partner) = ids();
            let chain: Vec<Cdr> = (0..count)
                .map(|i| if (seed >> (i % 64)) & 1 == 1 { call(i, "bob", "alice") } else { call(i, "alice", "bob") })
                .collect();
            let mut file = as_file(&chain, "bob");
            file.rotate_left((seed % count) as usize);
            let drop = drop.min(file.len());
            file.truncate(file.len() - drop);
            let report = reconcile(&me, &partner, &file, &chain, 1_000, (0, u64::MAX));
            prop_assert_eq!(report.mismatched.len(), 0);
            prop_assert_eq!(report.missing_on_chain.len(), 0);
            prop_assert_eq!(report.missing_in_file.len(), drop);
            prop_assert_eq!(report.matched as usize, chain.len() - drop);
        }
    }

    #[test]
    fn the_window_spans_the_files_calls_with_the_partner() {
        let calls = vec![call(3, "alice", "bob"), call(1, "bob", "alice"), call(7, "alice", "carol")];
        let bob = OperatorId::new("bob").unwrap();
        let (first, last) = (calls[1].body.start_ms, calls[0].body.start_ms);
        assert_eq!(window_of(&calls, &bob), Some((first, last + 1)));
        assert_eq!(window_of(&calls, &OperatorId::new("dave").unwrap()), None);
        let answer = serde_json::json!({ "id": "bob:1", "height": 3, "leaf_index": 9 });
        let mut value = serde_json::to_value(&calls[1]).unwrap();
        value.as_object_mut().unwrap().extend(answer.as_object().unwrap().clone());
        assert_eq!(from_node_answer(value).unwrap(), calls[1]);
    }
}
