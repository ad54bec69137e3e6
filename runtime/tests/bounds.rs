//! The state stays bounded per operator: adjacent gaps merge, an operator opens at most a few
//! gaps per block, live calls have a quota and time out (review H3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::apply::{apply_block, ApplyError, PushError, TxError};
use cdrchain_runtime::bounds::{
    CALL_TIMEOUT_MS, MAX_LIVE_CALLS_PER_OPERATOR, MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK,
};
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::ids::{CallId, OperatorId, ReasonText, Sequence};
use cdrchain_runtime::sample::SampleChain;
use cdrchain_runtime::state::{CallRecord, GapRecord, StateKey};
use cdrchain_runtime::tx::{CallEvent, CallState, SequenceGap, SignedTransaction, Transaction};
use parity_scale_codec::Encode;

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
}

fn gap(chain: &SampleChain, from: u64, to: u64, reason: &str) -> SignedTransaction {
    chain.sign(Transaction::SequenceGap(SequenceGap {
        operator: op("alice"),
        from: Sequence(from),
        to: Sequence(to),
        reason: ReasonText::new(reason).unwrap(),
    }))
}

fn call(chain: &SampleChain, id: &str, state: CallState, at_ms: u64) -> SignedTransaction {
    chain.sign(Transaction::CallEvent(CallEvent {
        operator: op("alice"),
        call_id: CallId::new(id).unwrap(),
        state,
        at_ms,
    }))
}

/// Builds a block of `txs` at `timestamp_ms`, imports it, and returns what the builder left out.
fn commit(chain: &mut SampleChain, txs: Vec<SignedTransaction>, timestamp_ms: u64) -> Vec<PushError> {
    let (block, _, refused) = chain.build(txs, timestamp_ms).unwrap();
    chain.import(block).unwrap();
    refused
}

fn gaps_of_alice(chain: &SampleChain) -> Vec<(u64, u64)> {
    let mut gaps: Vec<(u64, u64)> = chain
        .state
        .pairs
        .iter()
        .filter_map(|(k, v)| match parity_scale_codec::Decode::decode(&mut &k[..]) {
            Ok(StateKey::Gap(operator, from)) if operator == op("alice") => {
                let record: GapRecord = parity_scale_codec::Decode::decode(&mut &v[..]).unwrap();
                Some((from.0, record.to.0))
            }
            _ => None,
        })
        .collect();
    gaps.sort();
    gaps
}

#[test]
fn adjacent_gaps_merge_into_one_entry_keeping_the_first_reason() {
    let mut chain = SampleChain::new(&["alice", "bob"]);
    let txs = vec![chain.batch("alice", 0, 3), gap(&chain, 3, 3, "first"), gap(&chain, 4, 4, "second")];
    assert!(commit(&mut chain, txs, 1_000).is_empty());
    // In the next block too: the merge reads the previous gap from the state.
    let txs = vec![gap(&chain, 5, 9, "third")];
    assert!(commit(&mut chain, txs, 2_000).is_empty());
    assert_eq!(gaps_of_alice(&chain), vec![(3, 9)]);
    let record: GapRecord = chain.state.typed(&StateKey::Gap(op("alice"), Sequence(3))).unwrap();
    assert_eq!(record.reason.as_str(), "first");
    // A CDR in between: the next gap is a new entry.
    let txs = vec![chain.batch("alice", 10, 1), gap(&chain, 11, 11, "fourth")];
    assert!(commit(&mut chain, txs, 3_000).is_empty());
    assert_eq!(gaps_of_alice(&chain), vec![(3, 9), (11, 11)]);
    let next: Sequence = chain.state.typed(&StateKey::NextSequence(op("alice"))).unwrap();
    assert_eq!(next, Sequence(12));
}

#[test]
fn an_operator_opens_a_bounded_number_of_gaps_per_block_and_the_rest_wait() {
    let mut chain = SampleChain::new(&["alice", "bob"]);
    let max = u64::from(MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK);
    // Gap, CDR, gap, CDR, ...: nothing merges, every gap opens an entry.
    let mut txs = Vec::new();
    for i in 0..=max {
        txs.push(gap(&chain, 2 * i, 2 * i, "spam"));
        txs.push(chain.batch("alice", 2 * i + 1, 1));
    }
    let refused = commit(&mut chain, txs.clone(), 1_000);
    // The builder keeps the gap over the quota for the next block (and its operator's later
    // transactions with it), it does not drop it.
    assert!(
        matches!(refused.first(), Some(PushError::Later(TxError::GapQuota { max: m, .. })) if u64::from(*m) == max),
        "{refused:?}"
    );
    assert_eq!(gaps_of_alice(&chain).len() as u64, max);
    let next: Sequence = chain.state.typed(&StateKey::NextSequence(op("alice"))).unwrap();
    assert_eq!(next, Sequence(2 * max));
    let refused = commit(&mut chain, txs[2 * max as usize..].to_vec(), 2_000);
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(gaps_of_alice(&chain).len() as u64, max + 1);

    // A proposer that puts more in one block has its block refused.
    let chain = SampleChain::new(&["alice", "bob"]);
    let (mut block, _, _) = chain.build(vec![], 1_000).unwrap();
    block.transactions = BoundedVec::new(txs).unwrap();
    let error = apply_block(&chain.ctx, &chain.state, &chain.parent, &block).unwrap_err();
    assert!(
        matches!(&error, ApplyError::Transaction { index, error: TxError::GapQuota { .. } } if *index == 2 * max as usize),
        "{error}"
    );
}

#[test]
fn a_call_without_events_for_the_timeout_is_closed_as_abandoned() {
    let mut chain = SampleChain::new(&["alice", "bob"]);
    let start = 1_000_000;
    let txs = vec![call(&chain, "c1", CallState::Setup, 10), call(&chain, "c2", CallState::Setup, 10)];
    assert!(commit(&mut chain, txs, start).is_empty());
    // c2 answers an hour later: its deadline moves on.
    let txs = vec![call(&chain, "c2", CallState::Answered, 20)];
    assert!(commit(&mut chain, txs, start + 3_600_000).is_empty());
    let live = |chain: &SampleChain| chain.state.typed::<u32>(&StateKey::LiveCalls(op("alice")));
    assert_eq!(live(&chain), Some(2));
    // Just before c1's deadline nothing is closed; at it, c1 is.
    assert!(commit(&mut chain, vec![], start + CALL_TIMEOUT_MS - 1).is_empty());
    assert_eq!(live(&chain), Some(2));
    assert!(commit(&mut chain, vec![], start + CALL_TIMEOUT_MS).is_empty());
    assert_eq!(live(&chain), Some(1));
    assert!(chain
        .state
        .typed::<CallRecord>(&StateKey::Call(op("alice"), CallId::new("c1").unwrap()))
        .is_none());
    let c2: CallRecord = chain.state.typed(&StateKey::Call(op("alice"), CallId::new("c2").unwrap())).unwrap();
    assert_eq!(c2.deadline_ms, start + 3_600_000 + CALL_TIMEOUT_MS);
    // An event for the closed call is refused: it is no longer live.
    let ended = call(&chain, "c1", CallState::Ended, 30);
    let refused = commit(&mut chain, vec![ended], start + CALL_TIMEOUT_MS + 1);
    assert!(
        matches!(refused.as_slice(), [PushError::Invalid(TxError::IllegalCallTransition { .. })]),
        "{refused:?}"
    );
    // c2 times out later; then the operator holds no call state at all.
    assert!(commit(&mut chain, vec![], start + 3_600_000 + CALL_TIMEOUT_MS).is_empty());
    assert_eq!(live(&chain), None);
    assert!(
        !chain.state.pairs.keys().any(|k| matches!(k.first(), Some(4 | 8 | 9))),
        "call state left behind"
    );
}

#[test]
fn an_operator_at_its_live_call_quota_cannot_open_another_call() {
    let mut chain = SampleChain::new(&["alice", "bob"]);
    let setup = call(&chain, "c1", CallState::Setup, 10);
    assert!(commit(&mut chain, vec![setup], 1_000).is_empty());
    // As if the operator held the most live calls (the count is what the quota reads).
    chain.state.pairs.insert(StateKey::LiveCalls(op("alice")).encode(), MAX_LIVE_CALLS_PER_OPERATOR.encode());
    let txs = vec![call(&chain, "c2", CallState::Setup, 20), call(&chain, "c1", CallState::Ended, 20)];
    let refused = commit(&mut chain, txs, 2_000);
    assert!(
        matches!(refused.as_slice(), [PushError::Invalid(TxError::LiveCallQuota { max, .. })] if *max == MAX_LIVE_CALLS_PER_OPERATOR),
        "{refused:?}"
    );
    // Ending a call frees a place.
    let live: u32 = chain.state.typed(&StateKey::LiveCalls(op("alice"))).unwrap();
    assert_eq!(live, MAX_LIVE_CALLS_PER_OPERATOR - 1);
    let setup = call(&chain, "c2", CallState::Setup, 30);
    assert!(commit(&mut chain, vec![setup], 3_000).is_empty());
}
