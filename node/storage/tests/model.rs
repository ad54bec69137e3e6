//! Property test: random sequences of blocks (batches, gaps, call events that start and end),
//! committed to storage with reopens in between, leave storage's state, log frontier, head and
//! CDRs equal to the in-memory chain's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cdrchain_runtime::apply::apply_block;
use cdrchain_runtime::ids::{CallId, OperatorId, ReasonText, Sequence};
use cdrchain_runtime::state::{MemoryState, StateView};
use cdrchain_runtime::tx::{CallEvent, CallState, SequenceGap, Transaction};
use common::{tree, Fixture, OPERATORS};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Batch {
        operator: usize,
        count: u8,
    },
    Gap {
        operator: usize,
        length: u8,
    },
    /// Starts the call if it is not live, ends it otherwise.
    Call {
        operator: usize,
        call: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 1..40u8).prop_map(|(operator, count)| Op::Batch { operator, count }),
        1 => (0..3usize, 0..3u8).prop_map(|(operator, length)| Op::Gap { operator, length }),
        2 => (0..3usize, 0..3u8).prop_map(|(operator, call)| Op::Call { operator, call }),
    ]
}

/// Blocks of operations, each followed by "reopen the database" or not.
fn blocks() -> impl Strategy<Value = Vec<(Vec<Op>, bool)>> {
    prop::collection::vec((prop::collection::vec(op(), 0..6), any::<bool>()), 1..8)
}

fn pairs(view: &impl StateView) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut pairs = BTreeMap::new();
    view.for_each_pair(&mut |k, v| {
        pairs.insert(k.to_vec(), v.to_vec());
    })
    .unwrap();
    pairs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn storage_follows_memory_state(blocks in blocks()) {
        let mut fx = Fixture::new();
        let mut storage = fx.open();
        let mut next = [0u64; 3];
        let mut live: BTreeSet<(usize, u8)> = BTreeSet::new();
        let mut at_ms = 0u64;
        for (index, (ops, reopen)) in blocks.into_iter().enumerate() {
            let mut txs = Vec::new();
            for op in ops {
                let tx = match op {
                    Op::Batch { operator, count } => {
                        let tx = fx.chain.batch(OPERATORS[operator], next[operator], u64::from(count));
                        next[operator] += u64::from(count);
                        tx
                    }
                    Op::Gap { operator, length } => {
                        let from = next[operator];
                        next[operator] += u64::from(length) + 1;
                        fx.chain.sign(Transaction::SequenceGap(SequenceGap {
                            operator: OperatorId::new(OPERATORS[operator]).unwrap(),
                            from: Sequence(from),
                            to: Sequence(from + u64::from(length)),
                            reason: ReasonText::new("test").unwrap(),
                        }))
                    }
                    Op::Call { operator, call } => {
                        at_ms += 1;
                        let state = if live.remove(&(operator, call)) {
                            CallState::Ended
                        } else {
                            live.insert((operator, call));
                            CallState::Setup
                        };
                        fx.chain.sign(Transaction::CallEvent(CallEvent {
                            operator: OperatorId::new(OPERATORS[operator]).unwrap(),
                            call_id: CallId::new(format!("call-{call}")).unwrap(),
                            state,
                            at_ms,
                        }))
                    }
                };
                txs.push(tx);
            }
            let (block, changes) = fx.next_block(txs, 1_000 * (index as u64 + 1));
            // Storage's view computes the same changes as the in-memory parent state did.
            let on_storage = apply_block(&fx.chain.ctx, &storage, &storage.parent_ref(), &block).unwrap();
            prop_assert_eq!(&on_storage, &changes);
            storage.commit_block(&block, &changes, &common::certificate(&block), None).unwrap();
            if reopen {
                drop(storage);
                storage = fx.open();
            }
            prop_assert_eq!(storage.head().map(|h| h.hash), Some(block.hash()));
        }
        drop(storage);
        let storage = fx.open();
        let on_disk = MemoryState { pairs: pairs(&storage), tree: tree(&storage), cdr_log: storage.cdr_log().unwrap() };
        prop_assert_eq!(&on_disk, &fx.chain.state);
        prop_assert_eq!(on_disk.state_root(), storage.head().unwrap().header.state_root);
        prop_assert_eq!(storage.parent_ref(), fx.chain.parent.clone());
        let mut leaf_index = 0;
        for block in &fx.chain.blocks {
            let stored = storage.block(block.header.number).unwrap();
            prop_assert_eq!(stored.as_ref(), Some(block));
            for tx in block.transactions.iter() {
                if let Transaction::CdrBatch(batch) = &tx.transaction {
                    for cdr in batch.cdrs() {
                        let stored = storage.cdr(&cdr.recorder, cdr.sequence).unwrap().unwrap();
                        prop_assert_eq!(stored.height, block.header.number);
                        prop_assert_eq!(stored.leaf_index, leaf_index);
                        prop_assert_eq!(stored.cdr, cdr);
                        leaf_index += 1;
                    }
                }
            }
        }
    }
}
