//! Property test of the state transition against a model: random sequences of batches, gaps and
//! call events (valid and invalid), grouped into blocks. The builder must accept exactly what the
//! model accepts, every built block must import through `apply_block` with the same roots, and
//! the state must end where the model says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use std::collections::BTreeMap;

use cdrchain_runtime::apply::{apply_block, PushError};
use cdrchain_runtime::ids::{CallId, OperatorId, ReasonText, Sequence};
use cdrchain_runtime::sample::SampleChain;
use cdrchain_runtime::state::{CallRecord, StateKey};
use cdrchain_runtime::tx::{CallEvent, CallState, SequenceGap, Transaction};
use proptest::prelude::*;

const OPERATORS: [&str; 3] = ["alice", "bob", "carol"];

#[derive(Clone, Debug)]
enum Op {
    /// A batch starting `offset` away from the expected sequence.
    Batch {
        operator: usize,
        offset: i8,
        count: u8,
    },
    Gap {
        operator: usize,
        offset: i8,
        length: u8,
    },
    Event {
        operator: usize,
        call: u8,
        state: CallState,
        step_ms: i8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let state = prop_oneof![
        Just(CallState::Setup),
        Just(CallState::Ringing),
        Just(CallState::Answered),
        Just(CallState::Ended)
    ];
    prop_oneof![
        4 => (0..3usize, prop_oneof![4 => Just(0i8), 1 => -2i8..=2], 1..6u8)
            .prop_map(|(operator, offset, count)| Op::Batch { operator, offset, count }),
        1 => (0..3usize, prop_oneof![3 => Just(0i8), 1 => -1i8..=1], 0..4u8)
            .prop_map(|(operator, offset, length)| Op::Gap { operator, offset, length }),
        3 => (0..3usize, 0..3u8, state, -1i8..4)
            .prop_map(|(operator, call, state, step_ms)| Op::Event { operator, call, state, step_ms }),
    ]
}

#[derive(Default, Clone)]
struct Model {
    next: [u64; 3],
    calls: BTreeMap<(usize, u8), (CallState, u64)>,
    clock_ms: u64,
}

impl Model {
    /// The transaction for `op`, and whether the model accepts it (updating itself if so).
    fn step(&mut self, chain: &SampleChain, op: &Op) -> (Transaction, bool) {
        match *op {
            Op::Batch { operator, offset, count } => {
                let first = self.next[operator].saturating_add_signed(i64::from(offset));
                let tx = chain.batch(OPERATORS[operator], first, u64::from(count)).transaction;
                let ok = first == self.next[operator];
                if ok {
                    self.next[operator] += u64::from(count);
                }
                (tx, ok)
            }
            Op::Gap { operator, offset, length } => {
                let from = self.next[operator].saturating_add_signed(i64::from(offset));
                let tx = Transaction::SequenceGap(SequenceGap {
                    operator: OperatorId::new(OPERATORS[operator]).unwrap(),
                    from: Sequence(from),
                    to: Sequence(from + u64::from(length)),
                    reason: ReasonText::new("lost").unwrap(),
                });
                let ok = from == self.next[operator];
                if ok {
                    self.next[operator] = from + u64::from(length) + 1;
                }
                (tx, ok)
            }
            Op::Event { operator, call, state, step_ms } => {
                let previous = self.calls.get(&(operator, call)).copied();
                let at_ms = match previous {
                    Some((_, at)) => at.saturating_add_signed(i64::from(step_ms)),
                    None => self.clock_ms,
                };
                self.clock_ms += 1;
                let tx = Transaction::CallEvent(CallEvent {
                    operator: OperatorId::new(OPERATORS[operator]).unwrap(),
                    call_id: CallId::new(format!("call-{call}")).unwrap(),
                    state,
                    at_ms,
                });
                let legal = CallState::may_follow(previous.map(|p| p.0), state);
                let in_order = previous.is_none_or(|(_, at)| at_ms >= at);
                let ok = legal && in_order;
                if ok {
                    if state == CallState::Ended {
                        self.calls.remove(&(operator, call));
                    } else {
                        self.calls.insert((operator, call), (state, at_ms));
                    }
                }
                (tx, ok)
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_runtime_agrees_with_the_model(blocks in proptest::collection::vec(proptest::collection::vec(op(), 0..6), 1..8)) {
        let mut chain = SampleChain::new(&OPERATORS);
        let mut model = Model::default();
        for (height, ops) in blocks.iter().enumerate() {
            let mut expected_ok = Vec::new();
            let mut txs = Vec::new();
            for op in ops {
                let (tx, ok) = model.step(&chain, op);
                expected_ok.push(ok);
                txs.push(chain.sign(tx));
            }
            let (block, built_changes, refused) = chain.build(txs, height as u64).unwrap();
            let expected_refusals = expected_ok.iter().filter(|ok| !**ok).count();
            prop_assert_eq!(refused.len(), expected_refusals, "ops {:?}, refused {:?}", ops, refused);
            prop_assert!(refused.iter().all(|r| matches!(r, PushError::Invalid(_))));
            prop_assert_eq!(block.transactions.len(), expected_ok.len() - expected_refusals);
            let imported = apply_block(&chain.ctx, &chain.state, &chain.parent, &block).unwrap();
            prop_assert_eq!(&imported, &built_changes);
            chain.import(block).unwrap();
            prop_assert_eq!(chain.state.state_root(), chain.blocks.last().unwrap().header.state_root);
        }
        for (i, name) in OPERATORS.iter().enumerate() {
            let next: Sequence = chain.state.typed(&StateKey::NextSequence(OperatorId::new(*name).unwrap())).unwrap();
            prop_assert_eq!(next, Sequence(model.next[i]));
        }
        let live = chain.state.pairs.keys().filter(|k| k.first() == Some(&4)).count();
        prop_assert_eq!(live, model.calls.len());
        for ((operator, call), (state, at_ms)) in &model.calls {
            let key = StateKey::Call(OperatorId::new(OPERATORS[*operator]).unwrap(), CallId::new(format!("call-{call}")).unwrap());
            let record: CallRecord = chain.state.typed(&key).unwrap();
            prop_assert_eq!((record.state, record.at_ms), (*state, *at_ms));
        }
        // Every live call has its deadline entry and is counted against its operator's quota.
        let deadlines = chain.state.pairs.keys().filter(|k| k.first() == Some(&cdrchain_runtime::bounds::CALL_DEADLINE_TAG)).count();
        prop_assert_eq!(deadlines, model.calls.len());
        for (i, name) in OPERATORS.iter().enumerate() {
            let counted: u32 = chain.state.typed(&StateKey::LiveCalls(OperatorId::new(*name).unwrap())).unwrap_or(0);
            prop_assert_eq!(counted as usize, model.calls.keys().filter(|(o, _)| *o == i).count());
        }
    }
}
