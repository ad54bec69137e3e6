//! `apply_block` accepts valid blocks and refuses each kind of invalid one with the right error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure must fail the test

use cdrchain_runtime::apply::{apply_block, ApplyError, ParentRef, PushError, TxError};
use cdrchain_runtime::block::Block;
use cdrchain_runtime::cdr::Disposition;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::ids::{CallId, Height, OperatorId, ReasonText, Sequence};
use cdrchain_runtime::merkle::{inclusion_proof, verify_inclusion, Domain, MemoryNodeStore};
use cdrchain_runtime::sample::{cdr_body, operator_key, SampleChain};
use cdrchain_runtime::state::{prove_pair, state_root, StateKey};
use cdrchain_runtime::tx::{CallEvent, CallState, CdrBatch, SequenceGap, SignedTransaction, Transaction};
use parity_scale_codec::Encode;

fn chain() -> SampleChain {
    SampleChain::new(&["alice", "bob", "carol"])
}

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
}

/// Builds a block from `txs` (all must be accepted) and imports it.
fn commit(chain: &mut SampleChain, txs: impl FnOnce(&SampleChain) -> Vec<SignedTransaction>) -> Block {
    let txs = txs(chain);
    let (block, _, refused) = chain.build(txs, 1_000 + chain.blocks.len() as u64).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    chain.import(block.clone()).unwrap();
    block
}

/// Applies `block` to `chain`'s head and returns the error.
fn refuse(chain: &SampleChain, block: &Block) -> ApplyError {
    apply_block(&chain.ctx, &chain.state, &chain.parent, block).expect_err("block should be refused")
}

/// A block built by the builder, then edited (its header no longer matches, unless re-sealed).
fn built(chain: &SampleChain, txs: Vec<SignedTransaction>) -> Block {
    let (block, _, refused) = chain.build(txs, 5_000).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    block
}

fn tx_error(error: ApplyError) -> (usize, TxError) {
    match error {
        ApplyError::Transaction { index, error } => (index, error),
        other => panic!("expected a transaction error, got {other}"),
    }
}

/// Builds a block containing `txs` without checking them (as a faulty proposer would), with a
/// header whose roots are whatever the builder would compute for the valid prefix.
fn forged(chain: &SampleChain, txs: Vec<SignedTransaction>) -> Block {
    let mut block = built(chain, vec![]);
    block.transactions = BoundedVec::new(txs).unwrap();
    block
}

#[test]
fn valid_blocks_commit_cdrs_and_advance_sequences() {
    let mut chain = chain();
    let block = commit(&mut chain, |chain| vec![chain.batch("alice", 0, 100), chain.batch("bob", 0, 5)]);
    assert_eq!(block.header.number, Height(1));
    assert_eq!(block.header.cdr_log_size, 105);
    assert_eq!(block.header.parent_hash, chain.genesis_hash());
    let next: Sequence = chain.state.typed(&StateKey::NextSequence(op("alice"))).unwrap();
    assert_eq!(next, Sequence(100));
    let block = commit(&mut chain, |chain| vec![chain.batch("alice", 100, 50)]);
    assert_eq!(block.header.number, Height(2));
    assert_eq!(block.header.cdr_log_size, 155);
    assert_eq!(chain.state.state_root(), block.header.state_root);
    // An empty block (the idle heartbeat) is valid and changes only the height.
    let empty = commit(&mut chain, |_| vec![]);
    assert_eq!(empty.header.cdr_log_root, block.header.cdr_log_root);
    assert_eq!(empty.header.state_root, block.header.state_root);
}

#[test]
fn committed_cdrs_are_provable_against_the_header() {
    let mut chain = chain();
    let mut store = MemoryNodeStore::default();
    let mut leaves = Vec::new();
    for (i, txs) in
        [vec![chain.batch("alice", 0, 7)], vec![chain.batch("bob", 0, 3), chain.batch("alice", 7, 6)]]
            .into_iter()
            .enumerate()
    {
        let (block, _, _) = chain.build(txs, i as u64).unwrap();
        for tx in block.transactions.iter() {
            if let Transaction::CdrBatch(batch) = &tx.transaction {
                leaves.extend(batch.cdrs().map(|cdr| cdr.leaf_hash()));
            }
        }
        let changes = chain.import(block).unwrap();
        store.extend(changes.new_log_nodes.iter().copied());
    }
    let header = &chain.blocks.last().unwrap().header;
    assert_eq!(header.cdr_log_size, leaves.len() as u64);
    for (index, leaf) in leaves.iter().enumerate() {
        let proof = inclusion_proof(&store, Domain::CDR_LOG, index as u64, header.cdr_log_size).unwrap();
        verify_inclusion(Domain::CDR_LOG, leaf, &proof, &header.cdr_log_root).unwrap();
    }
}

#[test]
fn one_state_value_is_provable_against_the_state_root() {
    let mut chain = chain();
    commit(&mut chain, |chain| vec![chain.batch("alice", 0, 9)]);
    let header = chain.blocks.last().unwrap().header.clone();
    let key = StateKey::NextSequence(op("alice")).encode();
    let (value, siblings, tree_root) = prove_pair(&chain.state, &key).unwrap().unwrap();
    assert_eq!(cdrchain_runtime::smt::root_from_path(&key, &value, &siblings), Some(tree_root));
    assert_eq!(state_root(&header.cdr_log_root, header.cdr_log_size, &tree_root), header.state_root);
    // Another value does not lead to the root.
    let other = Sequence(10).encode();
    assert_ne!(cdrchain_runtime::smt::root_from_path(&key, &other, &siblings), Some(tree_root));
    assert_eq!(value, Sequence(9).encode());
}

#[test]
fn header_linkage_is_checked() {
    let mut chain = chain();
    let block = built(&chain, vec![chain.batch("alice", 0, 1)]);

    let mut wrong = block.clone();
    wrong.header.parent_hash.0[0] ^= 1;
    assert!(matches!(refuse(&chain, &wrong), ApplyError::WrongParent { .. }));

    let mut wrong = block.clone();
    wrong.header.number = Height(2);
    assert!(matches!(refuse(&chain, &wrong), ApplyError::WrongHeight { .. }));

    let mut wrong = block.clone();
    wrong.header.proposer = op("mallory");
    assert!(matches!(refuse(&chain, &wrong), ApplyError::ProposerNotAuthority(p) if p == op("mallory")));

    chain.import(block).unwrap();
    let mut late = built(&chain, vec![]);
    late.header.timestamp_ms = 10; // before the parent's 5_000
    assert!(matches!(refuse(&chain, &late), ApplyError::TimestampBeforeParent { parent: 5_000, got: 10 }));
}

#[test]
fn every_root_in_the_header_is_checked() {
    let chain = chain();
    let block = built(&chain, vec![chain.batch("alice", 0, 3)]);
    apply_block(&chain.ctx, &chain.state, &chain.parent, &block).unwrap();
    type Tamper = fn(&mut Block);
    let fields: [(&str, Tamper); 3] = [
        ("tx_root", |b| b.header.tx_root.0[5] ^= 1),
        ("cdr_log_root", |b| b.header.cdr_log_root.0[5] ^= 1),
        ("state_root", |b| b.header.state_root.0[5] ^= 1),
    ];
    for (name, tamper) in fields {
        let mut wrong = block.clone();
        tamper(&mut wrong);
        match refuse(&chain, &wrong) {
            ApplyError::RootMismatch { field, .. } => assert_eq!(field, name),
            other => panic!("{name}: {other}"),
        }
    }
    let mut wrong = block.clone();
    wrong.header.cdr_log_size += 1;
    assert!(matches!(refuse(&chain, &wrong), ApplyError::LogSizeMismatch { header: 4, computed: 3 }));
}

#[test]
fn signatures_are_checked_and_bound_to_the_chain() {
    let chain = chain();
    let mut tampered = chain.batch("alice", 0, 2);
    if let Transaction::CdrBatch(batch) = &mut tampered.transaction {
        let mut cdrs = (*batch.cdrs).clone().into_inner();
        cdrs[1].end_ms += 1; // alter one CDR after signing
        batch.cdrs = BoundedVec::new(cdrs).unwrap().into();
    }
    let block = forged(&chain, vec![chain.batch("bob", 0, 1), tampered]);
    let (index, error) = tx_error(refuse(&chain, &block));
    assert_eq!(index, 1);
    assert!(matches!(error, TxError::BadSignature(_)), "{error}");

    // Signed by the wrong operator's key.
    let tx = Transaction::CdrBatch(CdrBatch {
        operator: op("alice"),
        first_sequence: Sequence(0),
        cdrs: BoundedVec::new(vec![cdr_body(0, &op("alice"), &op("bob"))]).unwrap().into(),
    });
    let by_bob = SignedTransaction::sign(tx.clone(), &operator_key("bob"), &chain.genesis_hash());
    assert!(matches!(tx_error(refuse(&chain, &forged(&chain, vec![by_bob]))).1, TxError::BadSignature(_)));

    // Signed for another chain: the same bytes do not replay here.
    let other = SampleChain::new(&["alice", "bob"]);
    let replayed = other.sign(tx);
    assert!(matches!(tx_error(refuse(&chain, &forged(&chain, vec![replayed]))).1, TxError::BadSignature(_)));

    // An operator the chain does not know.
    let stranger = SampleChain::new(&["alice", "mallory"]).batch("mallory", 0, 1);
    assert_eq!(
        tx_error(refuse(&chain, &forged(&chain, vec![stranger]))).1,
        TxError::UnknownOperator(op("mallory"))
    );
}

#[test]
fn sequences_are_contiguous_per_recorder() {
    let mut chain = chain();
    commit(&mut chain, |chain| vec![chain.batch("alice", 0, 10)]);
    // Duplicate: a replay of records already committed.
    let (_, error) = tx_error(refuse(&chain, &forged(&chain, vec![chain.batch("alice", 5, 10)])));
    assert_eq!(
        error,
        TxError::DuplicateSequence { operator: op("alice"), expected: Sequence(10), got: Sequence(5) }
    );
    // Gap: records missing in between.
    let (_, error) = tx_error(refuse(&chain, &forged(&chain, vec![chain.batch("alice", 11, 1)])));
    assert_eq!(
        error,
        TxError::SequenceGap { operator: op("alice"), expected: Sequence(10), got: Sequence(11) }
    );
    // The same batch twice in one block.
    let batch = chain.batch("alice", 10, 1);
    let (index, error) = tx_error(refuse(&chain, &forged(&chain, vec![batch.clone(), batch])));
    assert_eq!(index, 1);
    assert!(matches!(error, TxError::Duplicate { .. } | TxError::DuplicateSequence { .. }), "{error}");
    // An empty batch.
    let empty = chain.sign(Transaction::CdrBatch(CdrBatch {
        operator: op("alice"),
        first_sequence: Sequence(10),
        cdrs: BoundedVec::default().into(),
    }));
    assert_eq!(tx_error(refuse(&chain, &forged(&chain, vec![empty]))).1, TxError::EmptyBatch);
}

#[test]
fn a_declared_gap_moves_the_sequence_openly() {
    let mut chain = chain();
    commit(&mut chain, |chain| vec![chain.batch("alice", 0, 3)]);
    let gap = chain.sign(Transaction::SequenceGap(SequenceGap {
        operator: op("alice"),
        from: Sequence(3),
        to: Sequence(9),
        reason: ReasonText::new("switch disk lost 7 records").unwrap(),
    }));
    commit(&mut chain, |chain| vec![gap, chain.batch("alice", 10, 2)]);
    let next: Sequence = chain.state.typed(&StateKey::NextSequence(op("alice"))).unwrap();
    assert_eq!(next, Sequence(12));
    let record: cdrchain_runtime::state::GapRecord =
        chain.state.typed(&StateKey::Gap(op("alice"), Sequence(3))).unwrap();
    assert_eq!(record.to, Sequence(9));
    assert_eq!(record.declared_at, Height(2));

    let backwards = chain.sign(Transaction::SequenceGap(SequenceGap {
        operator: op("alice"),
        from: Sequence(12),
        to: Sequence(11),
        reason: ReasonText::new("x").unwrap(),
    }));
    assert!(matches!(
        tx_error(refuse(&chain, &forged(&chain, vec![backwards]))).1,
        TxError::GapBackwards { .. }
    ));
}

#[test]
fn invalid_cdrs_are_refused_even_when_signed() {
    let chain = chain();
    let mut body = cdr_body(0, &op("alice"), &op("bob"));
    body.end_ms = body.start_ms - 1;
    let bad = chain.sign(Transaction::CdrBatch(CdrBatch {
        operator: op("alice"),
        first_sequence: Sequence(0),
        cdrs: BoundedVec::new(vec![cdr_body(1, &op("alice"), &op("bob")), body]).unwrap().into(),
    }));
    match tx_error(refuse(&chain, &forged(&chain, vec![bad]))).1 {
        TxError::InvalidCdr { index, error } => {
            assert_eq!(index, 1);
            assert_eq!(error.field, "end");
        }
        other => panic!("{other}"),
    }
    let mut unanswered = cdr_body(2, &op("alice"), &op("bob"));
    unanswered.disposition = Disposition::NoAnswer;
    let bad = chain.sign(Transaction::CdrBatch(CdrBatch {
        operator: op("alice"),
        first_sequence: Sequence(0),
        cdrs: BoundedVec::new(vec![unanswered]).unwrap().into(),
    }));
    assert!(matches!(
        tx_error(refuse(&chain, &forged(&chain, vec![bad]))).1,
        TxError::InvalidCdr { index: 0, .. }
    ));
}

fn event(chain: &SampleChain, call: &str, state: CallState, at_ms: u64) -> SignedTransaction {
    chain.sign(Transaction::CallEvent(CallEvent {
        operator: op("alice"),
        call_id: CallId::new(call).unwrap(),
        state,
        at_ms,
    }))
}

#[test]
fn call_events_follow_the_call_state_machine() {
    let mut chain = chain();
    commit(&mut chain, |chain| {
        vec![
            event(chain, "c1", CallState::Setup, 10),
            event(chain, "c1", CallState::Ringing, 11),
            event(chain, "c2", CallState::Setup, 10),
        ]
    });
    commit(&mut chain, |chain| {
        vec![event(chain, "c1", CallState::Answered, 15), event(chain, "c2", CallState::Ended, 12)]
    });
    let live: cdrchain_runtime::state::CallRecord =
        chain.state.typed(&StateKey::Call(op("alice"), CallId::new("c1").unwrap())).unwrap();
    assert_eq!(live.state, CallState::Answered);
    // Ended calls leave the state.
    assert!(!chain
        .state
        .pairs
        .contains_key(&StateKey::Call(op("alice"), CallId::new("c2").unwrap()).encode()));

    for (call, state, at, what) in [
        ("c1", CallState::Ringing, 20, "answered -> ringing"),
        ("c1", CallState::Setup, 20, "answered -> setup"),
        ("c3", CallState::Answered, 20, "(no call) -> answered"),
        ("c3", CallState::Ended, 20, "(no call) -> ended"),
    ] {
        let error = tx_error(refuse(&chain, &forged(&chain, vec![event(&chain, call, state, at)]))).1;
        assert!(matches!(error, TxError::IllegalCallTransition { .. }), "{what}: {error}");
        assert!(error.to_string().contains(what), "`{error}` should say `{what}`");
    }
    let error = tx_error(refuse(&chain, &forged(&chain, vec![event(&chain, "c1", CallState::Ended, 14)]))).1;
    assert!(matches!(error, TxError::CallEventBeforePrevious { at_ms: 14, previous_ms: 15, .. }), "{error}");
}

#[test]
fn block_limits_are_enforced() {
    let mut chain = chain();
    chain.ctx.max_block_cdrs = 10;
    let big = built(&SampleChain::new(&["alice", "bob", "carol"]), vec![chain.batch("alice", 0, 11)]);
    assert!(matches!(refuse(&chain, &big), ApplyError::TooManyCdrs { count: 11, max: 10 }));
    chain.ctx.max_block_cdrs = 1_000;
    chain.ctx.max_block_bytes = 1_000;
    assert!(matches!(refuse(&chain, &big), ApplyError::BlockTooLarge { max: 1_000, .. }));
}

#[test]
fn the_builder_drops_invalid_transactions_and_stops_when_full() {
    let mut chain = chain();
    chain.ctx.max_block_cdrs = 25;
    let (block, _, refused) = chain
        .build(
            vec![
                chain.batch("alice", 0, 10),
                chain.batch("alice", 5, 1),   // duplicate
                chain.batch("bob", 3, 1),     // gap
                chain.batch("alice", 10, 10), // fits: 20
                chain.batch("bob", 0, 10),    // would make 30: full
            ],
            1,
        )
        .unwrap();
    assert_eq!(block.cdr_count(), 20);
    assert_eq!(refused.len(), 3);
    assert!(matches!(refused[0], PushError::Invalid(TxError::DuplicateSequence { .. })));
    assert!(matches!(refused[1], PushError::Invalid(TxError::SequenceGap { .. })));
    assert!(matches!(refused[2], PushError::Full));
    // What the builder built imports.
    chain.import(block).unwrap();
    assert_eq!(chain.parent, ParentRef::of(&chain.blocks[0].header));
}
