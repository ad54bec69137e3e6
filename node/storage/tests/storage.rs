//! Storage against the sample chain: blocks committed as the node commits them, read back after
//! reopening; the StateView and NodeStore against the in-memory chain; refusals; the ingest
//! queue; corruption.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cdrchain_runtime::apply::{apply_block, BlockBuilder};
use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::hash::{context, hash_with};
use cdrchain_runtime::ids::{CallId, CdrId, Height, OperatorId, ReasonText, Sequence};
use cdrchain_runtime::merkle::{
    consistency_proof, inclusion_proof, root_at, verify_consistency, verify_inclusion, Domain, NodeId,
    NodeStore, ProofError,
};
use cdrchain_runtime::sample::SampleChain;
use cdrchain_runtime::state::{MemoryState, StateKey, StateView};
use cdrchain_runtime::tx::{CallEvent, CallState, SequenceGap, Transaction};
use cdrchain_runtime::Hash32;
use cdrchain_storage::{layout, QueueRun, Storage, StorageError, StoredCdr, SCHEMA_VERSION};
use common::{certificate, Fixture};
use parity_scale_codec::Encode;
use proptest::prelude::*;

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
}

const BASE_MS: u64 = 1_795_000_000_000;

/// `start_ms` of the sample CDR with index `i` (see `sample::cdr_body`).
fn start(i: u64) -> u64 {
    BASE_MS + i * 1_000
}

fn call_event(operator: &str, call: &str, state: CallState, at_ms: u64) -> Transaction {
    Transaction::CallEvent(CallEvent {
        operator: op(operator),
        call_id: CallId::new(call).unwrap(),
        state,
        at_ms,
    })
}

/// Four blocks: CDR batches of three recorders, a call that starts and ends (a state write, then a
/// delete), a declared gap, and a block without CDRs.
fn four_blocks(fx: &mut Fixture, storage: &Storage) {
    let c = &fx.chain;
    let txs = vec![c.batch("alice", 0, 50), c.batch("bob", 0, 30)];
    fx.commit(storage, txs, 1_000);
    let c = &fx.chain;
    let setup = c.sign(call_event("alice", "call-1", CallState::Setup, 5));
    let txs = vec![c.batch("carol", 0, 20), c.batch("alice", 50, 30), setup];
    fx.commit(storage, txs, 2_000);
    let c = &fx.chain;
    let ended = c.sign(call_event("alice", "call-1", CallState::Ended, 9));
    let gap = c.sign(Transaction::SequenceGap(SequenceGap {
        operator: op("bob"),
        from: Sequence(30),
        to: Sequence(34),
        reason: ReasonText::new("switch lost its disk").unwrap(),
    }));
    fx.commit(storage, vec![ended, gap], 3_000);
    let c = &fx.chain;
    let txs = vec![c.batch("bob", 35, 10)];
    fx.commit(storage, txs, 4_000);
}

/// Every CDR of the chain's blocks as storage should hold it.
fn expected_cdrs(chain: &SampleChain) -> Vec<StoredCdr> {
    let mut leaf_index = 0;
    let mut all = Vec::new();
    for block in &chain.blocks {
        for tx in block.transactions.iter() {
            if let Transaction::CdrBatch(batch) = &tx.transaction {
                for cdr in batch.cdrs() {
                    all.push(StoredCdr { cdr, height: block.header.number, leaf_index });
                    leaf_index += 1;
                }
            }
        }
    }
    all
}

fn pairs(view: &impl StateView) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut pairs = BTreeMap::new();
    let mut previous: Option<Vec<u8>> = None;
    view.for_each_pair(&mut |key, value| {
        if let Some(previous) = &previous {
            assert!(previous.as_slice() < key, "for_each_pair must ascend");
        }
        previous = Some(key.to_vec());
        pairs.insert(key.to_vec(), value.to_vec());
    })
    .unwrap();
    pairs
}

#[test]
fn a_new_database_holds_the_genesis() {
    let fx = Fixture::new();
    let storage = fx.open();
    assert_eq!(storage.head(), None);
    assert_eq!(storage.height(), Height(0));
    assert_eq!(storage.parent_ref(), fx.chain.parent);
    assert_eq!(storage.genesis_hash(), fx.chain.genesis_hash());
    assert_eq!(storage.path(), fx.dir.path());
    assert_eq!(pairs(&storage), fx.genesis.pairs);
    assert_eq!(storage.cdr_log().unwrap().size(), 0);
    assert_eq!(storage.header(Height(1)).unwrap(), None);
    assert_eq!(storage.block(Height(0)).unwrap(), None);
    drop(storage);
    // Reopening an empty chain works too.
    let storage = fx.open();
    assert_eq!(storage.head(), None);
    assert_eq!(pairs(&storage), fx.genesis.pairs);
}

#[test]
fn committed_blocks_read_back_after_reopen() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    let last = fx.chain.blocks.last().unwrap().clone();
    // Visible before the reopen (read-your-writes), then again after it.
    assert_eq!(storage.head().unwrap().hash, last.hash());
    drop(storage);
    let storage = fx.open();
    let chain = &fx.chain;

    let head = storage.head().unwrap();
    assert_eq!(head.header, last.header);
    assert_eq!(head.hash, last.hash());
    assert_eq!(storage.parent_ref(), chain.parent);
    assert_eq!(storage.height(), Height(4));
    for block in &chain.blocks {
        let height = block.header.number;
        assert_eq!(storage.header(height).unwrap().as_ref(), Some(&block.header));
        assert_eq!(storage.height_of(&block.hash()).unwrap(), Some(height));
        assert_eq!(storage.block(height).unwrap().as_ref(), Some(block));
        assert_eq!(storage.certificate(height).unwrap(), Some(certificate(block)));
    }
    assert_eq!(storage.header(Height(5)).unwrap(), None);
    assert_eq!(storage.block(Height(5)).unwrap(), None);
    assert_eq!(storage.certificate(Height(5)).unwrap(), None);
    assert_eq!(storage.height_of(&Hash32([7; 32])).unwrap(), None);

    let all = expected_cdrs(chain);
    assert_eq!(all.len(), 50 + 30 + 20 + 30 + 10);
    for stored in &all {
        assert_eq!(storage.cdr(&stored.cdr.recorder, stored.cdr.sequence).unwrap().as_ref(), Some(stored));
    }
    assert_eq!(storage.cdr(&op("alice"), Sequence(80)).unwrap(), None);
    assert_eq!(storage.cdr(&op("bob"), Sequence(32)).unwrap(), None, "inside the declared gap");
    assert_eq!(storage.cdr(&op("dave"), Sequence(0)).unwrap(), None);
    assert_eq!(all.last().unwrap().leaf_index + 1, head.header.cdr_log_size);

    // Call ids: the sample gives CDR index i the same call id whatever the recorder.
    let ids = |i: u64| storage.cdrs_by_call_id(&all_with_index(&all, i)[0].body.call_id).unwrap();
    let id = |r: &str, s: u64| CdrId { recorder: op(r), sequence: Sequence(s) };
    assert_eq!(ids(5), vec![id("alice", 5), id("bob", 5), id("carol", 5)]);
    assert_eq!(ids(40), vec![id("alice", 40), id("bob", 40)]);
    assert_eq!(ids(79), vec![id("alice", 79)]);
    for stored in &all {
        assert!(storage.cdrs_by_call_id(&stored.cdr.body.call_id).unwrap().contains(&stored.cdr.id()));
    }
    assert!(storage.cdrs_by_call_id(&CallId::new("no-such-call").unwrap()).unwrap().is_empty());
    // A call id that is a prefix of stored ones must not match them.
    assert!(storage.cdrs_by_call_id(&CallId::new("0000000000000005").unwrap()).unwrap().is_empty());

    // The state: the call was removed when it ended, the gap is recorded.
    assert_eq!(pairs(&storage), chain.state.pairs);
    let call_key = StateKey::Call(op("alice"), CallId::new("call-1").unwrap()).encode();
    assert_eq!(storage.get(&call_key).unwrap(), None);
    assert!(storage.get(&StateKey::Gap(op("bob"), Sequence(30)).encode()).unwrap().is_some());
    assert_eq!(storage.cdr_log().unwrap(), chain.state.cdr_log);
}

fn all_with_index(all: &[StoredCdr], i: u64) -> Vec<Cdr> {
    all.iter().filter(|s| s.cdr.sequence.0 == i).map(|s| s.cdr.clone()).collect()
}

/// All pages of a partner query, checking the cursor protocol on the way.
fn all_pages(
    storage: &Storage,
    a: &str,
    b: &str,
    from: u64,
    to: u64,
    limit: usize,
) -> (Vec<StoredCdr>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) =
            storage.query_partners(&op(a), &op(b), from, to, cursor.as_deref(), limit).unwrap();
        pages += 1;
        assert!(page.len() <= limit);
        match next {
            Some(next) => {
                assert_eq!(page.len(), limit, "only a full page has a next page");
                cursor = Some(next);
            }
            None => {
                out.extend(page);
                return (out, pages);
            }
        }
        out.extend(page);
        assert!(pages < 1_000, "pagination does not end");
    }
}

/// The partner index's order: start time, then the encoded recorder, then the sequence.
fn index_order(cdrs: &mut [StoredCdr]) {
    cdrs.sort_by_key(|s| (s.cdr.body.start_ms, s.cdr.recorder.encode(), s.cdr.sequence));
}

#[test]
fn partner_queries_paginate_in_start_order() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    drop(storage);
    let storage = fx.open();
    let all = expected_cdrs(&fx.chain);
    let between = |x: &str, y: &str| -> Vec<StoredCdr> {
        let mut cdrs: Vec<StoredCdr> = all
            .iter()
            .filter(|s| {
                let (caller, callee) =
                    (s.cdr.body.caller_operator.as_str(), s.cdr.body.callee_operator.as_str());
                (caller, callee) == (x, y) || (caller, callee) == (y, x)
            })
            .cloned()
            .collect();
        index_order(&mut cdrs);
        cdrs
    };

    // alice ↔ bob: alice's 80 CDRs (alice → bob) and bob's 40 (bob → alice).
    let expected = between("alice", "bob");
    assert_eq!(expected.len(), 120);
    let (got, pages) = all_pages(&storage, "alice", "bob", 0, u64::MAX, 7);
    assert_eq!(pages, 120usize.div_ceil(7));
    assert_eq!(got, expected, "every CDR exactly once, in start-time order");
    let ids: BTreeSet<CdrId> = got.iter().map(|s| s.cdr.id()).collect();
    assert_eq!(ids.len(), 120);
    assert!(got.windows(2).all(|w| w[0].cdr.body.start_ms <= w[1].cdr.body.start_ms));
    // Either direction, any page size.
    assert_eq!(all_pages(&storage, "bob", "alice", 0, u64::MAX, 7).0, expected);
    assert_eq!(all_pages(&storage, "bob", "alice", 0, u64::MAX, 1).0, expected);
    assert_eq!(all_pages(&storage, "alice", "bob", 0, u64::MAX, 10_000), (expected.clone(), 1));
    // Carol's CDRs go to alice only.
    assert_eq!(all_pages(&storage, "carol", "alice", 0, u64::MAX, 6).0, between("alice", "carol"));
    assert_eq!(all_pages(&storage, "carol", "alice", 0, u64::MAX, 6).0.len(), 20);
    assert!(all_pages(&storage, "carol", "bob", 0, u64::MAX, 6).0.is_empty());

    // The window is half-open: [start(10), start(20)) holds indexes 10..=19 of alice and bob.
    let (window, pages) = all_pages(&storage, "alice", "bob", start(10), start(20), 3);
    assert_eq!(window.len(), 20);
    assert_eq!(pages, 7);
    assert_eq!(window.first().unwrap().cdr.body.start_ms, start(10));
    assert_eq!(window.last().unwrap().cdr.body.start_ms, start(19));
    let expected_window: Vec<StoredCdr> =
        expected.iter().filter(|s| (start(10)..start(20)).contains(&s.cdr.body.start_ms)).cloned().collect();
    assert_eq!(window, expected_window);
    // A page that ends exactly at the end of the results has no next cursor.
    let (page, next) =
        storage.query_partners(&op("alice"), &op("bob"), start(10), start(20), None, 20).unwrap();
    assert_eq!((page.len(), next), (20, None));
    // Empty and inverted windows.
    assert_eq!(
        storage.query_partners(&op("alice"), &op("bob"), start(5), start(5), None, 5).unwrap(),
        (vec![], None)
    );
    assert_eq!(
        storage.query_partners(&op("alice"), &op("bob"), start(9), start(5), None, 5).unwrap(),
        (vec![], None)
    );
    // A limit of 0 is taken as 1.
    let (page, next) = storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, None, 0).unwrap();
    assert_eq!(page.len(), 1);
    assert!(next.is_some());

    // A cursor survives a reopen (it is derived from keys, not from memory).
    let (first, cursor) = storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, None, 50).unwrap();
    drop(storage);
    let storage = fx.open();
    let (second, _) =
        storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, cursor.as_deref(), 50).unwrap();
    assert_eq!([first, second].concat(), expected[..100].to_vec());

    // Bad cursors.
    for bad in ["not hex", "00", "", &hex_of(b"\x00\x00\x00\x00\x00\x00\x00\x01garbage")] {
        let error = storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, Some(bad), 5).unwrap_err();
        assert!(matches!(error, StorageError::BadCursor { .. }), "{bad:?}: {error:?}");
    }
    let (_, cursor) =
        storage.query_partners(&op("alice"), &op("bob"), start(10), start(20), None, 3).unwrap();
    let cursor = cursor.unwrap();
    let error =
        storage.query_partners(&op("alice"), &op("bob"), start(30), start(40), Some(&cursor), 3).unwrap_err();
    assert!(matches!(error, StorageError::BadCursor { .. }), "{error:?}");
    assert!(error.to_string().contains("outside the window"), "{error}");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_state_view_agrees_with_memory_state() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    drop(storage);
    let storage = fx.open();
    let chain = &fx.chain;
    let ctx = &chain.ctx;

    // The next block, built on the in-memory chain, applies identically on storage.
    let txs = vec![chain.batch("carol", 20, 15), chain.batch("alice", 80, 5)];
    let (next, built, refused) = chain.build(txs.clone(), 5_000).unwrap();
    assert!(refused.is_empty());
    let on_storage = apply_block(ctx, &storage, &storage.parent_ref(), &next).unwrap();
    let in_memory = apply_block(ctx, &chain.state, &chain.parent, &next).unwrap();
    assert_eq!(on_storage, in_memory);
    assert_eq!(on_storage, built);

    // The builder on storage seals the very same block.
    let proposer = chain.operators[0].clone();
    let mut builder = BlockBuilder::new(ctx, &storage, storage.parent_ref(), proposer, 5_000).unwrap();
    for tx in txs {
        builder.push(tx).unwrap();
    }
    let (from_storage, _) = builder.finish().unwrap();
    assert_eq!(from_storage, next);

    // State roots.
    let on_disk = MemoryState { pairs: pairs(&storage), cdr_log: storage.cdr_log().unwrap() };
    assert_eq!(on_disk.state_root(), chain.state.state_root());
    assert_eq!(on_disk.state_root(), storage.head().unwrap().header.state_root);

    // A snapshot stays at its block while the next one commits; the live view moves on.
    let snapshot = storage.snapshot();
    let parent = snapshot.parent_ref();
    storage.commit_block(&next, &on_storage, &certificate(&next), None).unwrap();
    assert_eq!(snapshot.parent_ref(), parent);
    assert_eq!(snapshot.head().unwrap().header.number, Height(4));
    assert_eq!(pairs(&snapshot), chain.state.pairs);
    assert_eq!(snapshot.cdr_log().unwrap(), chain.state.cdr_log);
    assert_eq!(apply_block(ctx, &snapshot, &parent, &next).unwrap(), built);
    assert_eq!(storage.parent_ref().number, Height(5));
    let mut after = chain.state.clone();
    after.apply(&built);
    assert_eq!(pairs(&storage), after.pairs);
    assert_eq!(storage.cdr_log().unwrap(), after.cdr_log);
    // The block's new log nodes are visible to the live store, not to the snapshot.
    let (id, hash) = *built.new_log_nodes.last().unwrap();
    assert_eq!(storage.node(id).unwrap(), Some(hash));
    assert_eq!(snapshot.node(id).unwrap(), None);
}

#[test]
fn inclusion_and_consistency_proofs_from_storage_verify() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    // One more with an odd size so that the head's tree is not perfect.
    let txs = vec![fx.chain.batch("carol", 20, 13)];
    fx.commit(&storage, txs, 5_000);
    drop(storage);
    let storage = fx.open();
    let all = expected_cdrs(&fx.chain);
    let headers: Vec<_> = fx.chain.blocks.iter().map(|b| b.header.clone()).collect();
    for header in &headers {
        let size = header.cdr_log_size;
        assert_eq!(root_at(&storage, Domain::CDR_LOG, size).unwrap(), header.cdr_log_root);
        for stored in all.iter().filter(|s| s.leaf_index < size) {
            let proof = inclusion_proof(&storage, Domain::CDR_LOG, stored.leaf_index, size).unwrap();
            verify_inclusion(Domain::CDR_LOG, &stored.cdr.leaf_hash(), &proof, &header.cdr_log_root)
                .unwrap_or_else(|e| panic!("leaf {} under header {}: {e}", stored.leaf_index, header.number));
            // And not for another leaf's hash.
            let other = &all[(stored.leaf_index as usize + 1) % size as usize];
            if other.leaf_index != stored.leaf_index {
                assert!(verify_inclusion(
                    Domain::CDR_LOG,
                    &other.cdr.leaf_hash(),
                    &proof,
                    &header.cdr_log_root
                )
                .is_err());
            }
        }
    }
    for old in headers.iter().filter(|h| h.cdr_log_size > 0) {
        for new in headers.iter().filter(|h| h.number >= old.number) {
            let proof =
                consistency_proof(&storage, Domain::CDR_LOG, old.cdr_log_size, new.cdr_log_size).unwrap();
            verify_consistency(Domain::CDR_LOG, &old.cdr_log_root, &new.cdr_log_root, &proof).unwrap();
        }
    }
    // Beyond the stored log there are no nodes.
    let size = headers.last().unwrap().cdr_log_size;
    assert_eq!(storage.node(NodeId::leaf(size)).unwrap(), None);
    assert!(matches!(
        inclusion_proof(&storage, Domain::CDR_LOG, 0, size + 1),
        Err(ProofError::MissingNode { .. })
    ));
}

#[test]
fn another_genesis_is_refused_naming_both_hashes_and_the_path() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    let txs = vec![fx.chain.batch("alice", 0, 3)];
    fx.commit(&storage, txs, 1_000);
    drop(storage);
    let other = SampleChain::new(&["alice", "bob"]);
    let error = Storage::open(fx.dir.path(), other.genesis_hash(), &other.state).unwrap_err();
    match &error {
        StorageError::WrongGenesis { path, expected, found } => {
            assert_eq!(path, fx.dir.path());
            assert_eq!(*expected, other.genesis_hash());
            assert_eq!(*found, fx.chain.genesis_hash());
        }
        other => panic!("expected WrongGenesis, got {other:?}"),
    }
    let message = error.to_string();
    for needle in [other.genesis_hash().to_hex(), fx.chain.genesis_hash().to_hex(), path_text(fx.dir.path())]
    {
        assert!(message.contains(&needle), "`{message}` lacks `{needle}`");
    }
    // The refusal changed nothing: the right chain still opens.
    assert_eq!(fx.open().height(), Height(1));
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// Opens the database directory with plain RocksDB, every column family included.
fn raw(path: &Path) -> rocksdb::DB {
    let columns = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    rocksdb::DB::open_cf(&rocksdb::Options::default(), path, columns).unwrap()
}

#[test]
fn another_schema_version_is_refused_naming_both_versions_and_the_path() {
    let fx = Fixture::new();
    drop(fx.open());
    {
        let mut db = raw(fx.dir.path());
        let meta = db.cf_handle(layout::META).unwrap();
        db.put_cf(meta, layout::META_SCHEMA_VERSION, 7u32.encode()).unwrap();
        // A future schema may add column families: they must not hide the version check.
        db.create_cf("from_the_future", &rocksdb::Options::default()).unwrap();
    }
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err();
    match &error {
        StorageError::WrongSchema { path, expected, found } => {
            assert_eq!(path, fx.dir.path());
            assert_eq!((*expected, *found), (SCHEMA_VERSION, 7));
        }
        other => panic!("expected WrongSchema, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("version 7") && message.contains(&format!("version {SCHEMA_VERSION}")),
        "{message}"
    );
    assert!(message.contains(&path_text(fx.dir.path())), "{message}");
}

#[test]
fn a_database_with_data_but_no_metadata_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir.path(), layout::COLUMNS).unwrap();
        db.put_cf(db.cf_handle(layout::HEADERS).unwrap(), [0u8; 8], b"something").unwrap();
    }
    let chain = SampleChain::new(&common::OPERATORS);
    let error = Storage::open(dir.path(), chain.genesis_hash(), &chain.state).unwrap_err();
    assert!(matches!(error, StorageError::Corrupt { column: "headers", .. }), "{error:?}");
}

#[test]
fn commit_refuses_blocks_that_do_not_extend_the_head() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    // A fork of the same chain, diverging at block 1.
    let mut fork =
        Fixture { chain: fx.chain.clone(), genesis: fx.genesis.clone(), dir: tempfile::tempdir().unwrap() };
    let txs = vec![fx.chain.batch("alice", 0, 3)];
    let (b1, c1) = fx.next_block(txs, 1_000);
    let (b2, c2) = fx.next_block(vec![fx.chain.batch("bob", 0, 2)], 2_000);
    let (b3, c3) = fx.next_block(vec![fx.chain.batch("bob", 2, 2)], 3_000);
    let (f1, f1c) = fork.next_block(vec![fork.chain.batch("carol", 0, 4)], 1_500);
    let (f2, f2c) = fork.next_block(vec![fork.chain.batch("carol", 4, 1)], 2_500);

    let not_next = |result: Result<(), StorageError>| match result {
        Err(error @ StorageError::NotNext { .. }) => error,
        other => panic!("expected NotNext, got {other:?}"),
    };
    // Height 2 before height 1.
    let error = not_next(storage.commit_block(&b2, &c2, &certificate(&b2), None));
    assert!(error.to_string().contains("must be 1"), "{error}");
    storage.commit_block(&b1, &c1, &certificate(&b1), None).unwrap();
    // The same block twice, a block that skips one, a block of the right height on another parent.
    not_next(storage.commit_block(&b1, &c1, &certificate(&b1), None));
    not_next(storage.commit_block(&b3, &c3, &certificate(&b3), None));
    let error = not_next(storage.commit_block(&f2, &f2c, &certificate(&f2), None));
    assert!(error.to_string().contains(&b1.hash().to_hex()), "{error}");
    assert!(matches!(
        storage.commit_block(&f1, &f1c, &certificate(&f1), None),
        Err(StorageError::NotNext { .. })
    ));
    // A certificate of another block; changes of another block.
    let error = storage.commit_block(&b2, &c2, &certificate(&b1), None).unwrap_err();
    assert!(matches!(error, StorageError::CertificateMismatch { .. }), "{error:?}");
    let error = storage.commit_block(&b2, &c3, &certificate(&b2), None).unwrap_err();
    assert!(matches!(error, StorageError::ChangesMismatch { .. }), "{error:?}");
    // Nothing of the refused blocks was written.
    assert_eq!(storage.head().unwrap().hash, b1.hash());
    assert_eq!(storage.header(Height(2)).unwrap(), None);
    assert_eq!(storage.cdr(&op("carol"), Sequence(0)).unwrap(), None);
    storage.commit_block(&b2, &c2, &certificate(&b2), None).unwrap();
    storage.commit_block(&b3, &c3, &certificate(&b3), None).unwrap();
    assert_eq!(storage.height(), Height(3));
}

/// A queue run of `items` from `first`.
fn run_of(first: u64, items: &[&[u8]]) -> QueueRun {
    let mut run = QueueRun::new(Sequence(first));
    for item in items {
        run.push(item);
    }
    run
}

fn item(s: u64, text: &str) -> (Sequence, Vec<u8>) {
    (Sequence(s), text.as_bytes().to_vec())
}

#[test]
fn the_ingest_queue_is_durable_and_counted() -> Result<(), Box<dyn std::error::Error>> {
    let fx = Fixture::new();
    let storage = fx.open();
    assert_eq!(storage.queue_len()?, 0);
    assert_eq!(storage.last_queued()?, None);
    assert!(storage.queued(Sequence(0), 10)?.is_empty());
    storage.enqueue(&run_of(0, &[b"a", b"b", b"c"]))?;
    storage.enqueue(&run_of(3, &[b"d"]))?;
    storage.enqueue(&run_of(9, &[]))?;
    assert_eq!(storage.queue_len()?, 4);
    assert_eq!(
        storage.queued(Sequence(0), 10)?,
        vec![item(0, "a"), item(1, "b"), item(2, "c"), item(3, "d")]
    );
    // From inside a chunk, and across chunks.
    assert_eq!(storage.queued(Sequence(2), 1)?, vec![item(2, "c")]);
    assert_eq!(storage.queued(Sequence(1), 3)?, vec![item(1, "b"), item(2, "c"), item(3, "d")]);
    assert_eq!(storage.last_queued()?, Some(Sequence(3)));
    // The queue only grows at its end: a run over queued entries is refused, nothing written.
    let error = storage.enqueue(&run_of(3, &[b"D"])).unwrap_err();
    assert!(matches!(error, StorageError::QueueOrder { next: Sequence(4), .. }), "{error:?}");
    assert!(error.to_string().contains("from sequence 4 up"), "{error}");
    assert_eq!(storage.queued(Sequence(3), 10)?, vec![item(3, "d")]);
    // Dequeuing inside a chunk keeps the chunk's later entries.
    storage.dequeue_through(Sequence(1))?;
    assert_eq!(storage.queue_len()?, 2);
    assert_eq!(storage.queued(Sequence(0), 10)?, vec![item(2, "c"), item(3, "d")]);
    // Dequeuing what is already gone changes nothing.
    storage.dequeue_through(Sequence(1))?;
    assert_eq!(storage.queue_len()?, 2);
    drop(storage);

    // The counter, the floor inside the first chunk and the end survive a restart.
    let storage = fx.open();
    assert_eq!(storage.queue_len()?, 2);
    assert_eq!(storage.queued(Sequence(0), 10)?, vec![item(2, "c"), item(3, "d")]);
    assert_eq!(storage.last_queued()?, Some(Sequence(3)));
    assert!(storage.enqueue(&run_of(2, &[b"x"])).is_err());
    storage.dequeue_through(Sequence(2))?;
    assert_eq!(storage.queue_len()?, 1);
    storage.enqueue(&run_of(4, &[b"e", b"f"]))?;
    assert_eq!(storage.queue_len()?, 3);
    assert_eq!(storage.queued(Sequence(0), 10)?, vec![item(3, "d"), item(4, "e"), item(5, "f")]);
    // Below the floor nothing can be queued again, even into an empty queue.
    storage.dequeue_through(Sequence(5))?;
    assert_eq!(storage.queue_len()?, 0);
    assert_eq!(storage.last_queued()?, None);
    assert!(storage.enqueue(&run_of(5, &[b"again"])).is_err());
    // The end of the sequence space: a run must end below u64::MAX.
    storage.enqueue(&run_of(u64::MAX - 2, &[b"next to last", b"last"]))?;
    assert_eq!(storage.queue_len()?, 2);
    assert_eq!(storage.last_queued()?, Some(Sequence(u64::MAX - 1)));
    assert!(storage.enqueue(&run_of(u64::MAX, &[b"over"])).is_err());
    storage.dequeue_through(Sequence(u64::MAX))?;
    assert_eq!(storage.queue_len()?, 0);
    assert_eq!(storage.last_queued()?, None);
    drop(storage);
    assert_eq!(fx.open().queue_len()?, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Against a model (a map of live entries): any sequence of runs and dequeues, with restarts,
    /// reads back the live entries, counts them exactly and knows the last one.
    #[test]
    fn the_queue_matches_a_model(
        steps in proptest::collection::vec((0u8..4, 0u64..2_500, 0u64..3_000), 1..12),
    ) {
        let fail = |e: StorageError| TestCaseError::fail(e.to_string());
        let fx = Fixture::new();
        let mut storage = fx.open();
        let mut model = std::collections::BTreeMap::new();
        let mut next = 0u64;
        let mut floor = 0u64;
        for (kind, a, b) in steps {
            match kind {
                0 | 1 => {
                    // A run of `a` entries, `b % 3` sequences after the end of the last one.
                    let first = next.max(floor) + b % 3;
                    let mut run = QueueRun::new(Sequence(first));
                    for s in first..first + a {
                        let bytes = s.to_le_bytes().repeat(1 + (s % 5) as usize);
                        run.push(&bytes);
                        model.insert(s, bytes);
                    }
                    storage.enqueue(&run).map_err(fail)?;
                    if a > 0 {
                        next = first + a;
                    }
                }
                2 => {
                    let last = floor + b;
                    storage.dequeue_through(Sequence(last)).map_err(fail)?;
                    model.retain(|s, _| *s > last);
                    floor = floor.max(last + 1);
                }
                _ => {
                    drop(storage);
                    storage = fx.open();
                }
            }
            prop_assert_eq!(storage.queue_len().map_err(fail)?, model.len() as u64);
            prop_assert_eq!(storage.last_queued().map_err(fail)?, model.keys().next_back().map(|s| Sequence(*s)));
            let from = floor + b % 1_500;
            let expected: Vec<_> =
                model.range(from..).take(700).map(|(s, v)| (Sequence(*s), v.clone())).collect();
            prop_assert_eq!(storage.queued(Sequence(from), 700).map_err(fail)?, expected);
        }
    }
}

#[test]
fn a_schema_3_queue_is_rewritten_in_chunks_and_kept() -> Result<(), Box<dyn std::error::Error>> {
    let fx = Fixture::new();
    drop(fx.open());
    {
        // What a schema-3 build left: one queue entry per CDR, two runs.
        let db = raw(fx.dir.path());
        let queue = db.cf_handle(layout::QUEUE).ok_or("no such column family")?;
        let meta = db.cf_handle(layout::META).ok_or("no such column family")?;
        for s in (5..2_005).chain([3_000]) {
            db.put_cf(queue, (s as u64).to_be_bytes(), format!("cdr {s}"))?;
        }
        db.put_cf(meta, layout::META_QUEUE_LEN, 2_001u64.encode())?;
        db.delete_cf(meta, layout::META_QUEUE_FLOOR)?;
        db.put_cf(meta, layout::META_SCHEMA_VERSION, 3u32.encode())?;
    }
    let storage = fx.open();
    assert_eq!(storage.queue_len()?, 2_001);
    assert_eq!(storage.last_queued()?, Some(Sequence(3_000)));
    let all = storage.queued(Sequence(0), 10_000)?;
    assert_eq!(all.len(), 2_001);
    assert_eq!(all[0], item(5, "cdr 5"));
    assert_eq!(all[1_999], item(2_004, "cdr 2004"));
    assert_eq!(all[2_000], item(3_000, "cdr 3000"));
    storage.dequeue_through(Sequence(1_000))?;
    assert_eq!(storage.queue_len()?, 1_005);
    drop(storage);
    let storage = fx.open();
    assert_eq!(storage.queue_len()?, 1_005);
    assert_eq!(storage.queued(Sequence(0), 1)?, vec![item(1_001, "cdr 1001")]);
    drop(storage);
    let db = raw(fx.dir.path());
    let version =
        db.get_cf(db.cf_handle(layout::META).ok_or("no such column family")?, layout::META_SCHEMA_VERSION)?;
    assert_eq!(version, Some(SCHEMA_VERSION.encode()));
    Ok(())
}

#[test]
fn the_queue_length_is_counted_at_open_and_a_stored_count_is_dropped(
) -> Result<(), Box<dyn std::error::Error>> {
    let fx = Fixture::new();
    let storage = fx.open();
    storage.enqueue(&run_of(0, &[b"a", b"b", b"c"]))?;
    storage.dequeue_through(Sequence(0))?;
    drop(storage);
    {
        // What builds before this one kept: a count in metadata, here a wrong one.
        let db = raw(fx.dir.path());
        let meta = db.cf_handle(layout::META).ok_or("no such column family")?;
        db.put_cf(meta, layout::META_QUEUE_LEN, 99u64.encode())?;
    }
    let storage = fx.open();
    assert_eq!(storage.queue_len()?, 2);
    assert_eq!(storage.queued(Sequence(0), 10)?, vec![item(1, "b"), item(2, "c")]);
    drop(storage);
    let db = raw(fx.dir.path());
    let meta = db.cf_handle(layout::META).ok_or("no such column family")?;
    assert_eq!(db.get_cf(meta, layout::META_QUEUE_LEN)?, None, "the stale count was not removed");
    Ok(())
}

#[test]
fn a_damaged_queue_chunk_is_named_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
    let fx = Fixture::new();
    let storage = fx.open();
    storage.enqueue(&run_of(0, &[b"a", b"b"]))?;
    drop(storage);
    {
        let db = raw(fx.dir.path());
        let queue = db.cf_handle(layout::QUEUE).ok_or("no such column family")?;
        db.put_cf(queue, 7u64.to_be_bytes(), [3, 0, 0, 0, 9, 0])?;
    }
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err().to_string();
    assert!(error.contains("corrupt entry in column family `queue` under key 0000000000000007"), "{error}");
    Ok(())
}

#[test]
fn ingest_keys_are_written_with_the_queue_and_survive_the_commit() -> Result<(), Box<dyn std::error::Error>> {
    let mut fx = Fixture::new();
    let storage = fx.open();
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    assert_eq!(storage.ingest_key(&k1)?, None);
    storage.enqueue_keyed(&run_of(0, &[b"a", b"b"]), &[(k1, Sequence(0)), (k2, Sequence(1))])?;
    assert_eq!(storage.ingest_key(&k1)?, Some(Sequence(0)));
    assert_eq!(storage.ingest_key(&k2)?, Some(Sequence(1)));
    assert_eq!(storage.ingest_key(&[3u8; 32])?, None);
    assert_eq!(storage.queue_len()?, 2);
    // Committing the CDRs empties the queue but keeps the keys: a later re-post is still known.
    let (b1, c1) = fx.next_block(vec![fx.chain.batch("alice", 0, 2)], 1_000);
    storage.commit_block(&b1, &c1, &certificate(&b1), Some(Sequence(1)))?;
    assert_eq!(storage.queue_len()?, 0);
    drop(storage);
    let storage = fx.open();
    assert_eq!(storage.ingest_key(&k2)?, Some(Sequence(1)));
    // The batched lookup answers in the order asked, repeats and absent keys included, from the
    // memtable and (after a flush) from the files.
    let asked = [[3u8; 32], k2, k1, k2, [0u8; 32]];
    let expected = vec![None, Some(Sequence(1)), Some(Sequence(0)), Some(Sequence(1)), None];
    assert_eq!(storage.ingest_keys(&asked)?, expected);
    storage.flush()?;
    assert_eq!(storage.ingest_keys(&asked)?, expected);
    assert_eq!(storage.ingest_keys(&[])?, Vec::new());
    Ok(())
}

/// The ingest key of the `n`th record: a digest under the chain's ingest-key context, as the node
/// makes them.
fn digest(n: u64) -> [u8; 32] {
    hash_with(context::INGEST_KEY, &[&n.to_le_bytes()]).0
}

/// Enqueues keys `from..to` (key `digest(n)` at sequence `n`) as one keyed run.
fn enqueue_digests(storage: &Storage, from: u64, to: u64) -> Result<(), StorageError> {
    let mut run = QueueRun::new(Sequence(from));
    let mut keys = Vec::new();
    for n in from..to {
        run.push(b"x");
        keys.push((digest(n), Sequence(n)));
    }
    storage.enqueue_keyed(&run, &keys)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// The in-memory ingest-key filter changes how keys are looked up, never the answers: keys
    /// written before it is loaded (across a restart or not) and after it, asked one at a time
    /// and in batches, sorted or not, answer as a map of what was written.
    #[test]
    fn ingest_key_answers_do_not_depend_on_the_filter(
        before in 0u64..3_000,
        after in 0u64..3_000,
        reopen: bool,
        asked in proptest::collection::vec(0u64..8_000, 1..300),
    ) {
        let fail = |e: StorageError| TestCaseError::fail(e.to_string());
        let fx = Fixture::new();
        let mut storage = fx.open();
        enqueue_digests(&storage, 0, before).map_err(fail)?;
        if reopen {
            drop(storage);
            storage = fx.open();
        }
        let check = |storage: &Storage, written: u64| -> Result<(), TestCaseError> {
            let keys: Vec<[u8; 32]> = asked.iter().map(|&n| digest(n)).collect();
            let expected: Vec<Option<Sequence>> =
                asked.iter().map(|&n| (n < written).then_some(Sequence(n))).collect();
            prop_assert_eq!(storage.ingest_keys(&keys).map_err(fail)?, expected.clone());
            let mut sorted: Vec<([u8; 32], Option<Sequence>)> = keys.iter().copied().zip(expected.clone()).collect();
            sorted.sort_unstable();
            let sorted_keys: Vec<[u8; 32]> = sorted.iter().map(|(k, _)| *k).collect();
            let sorted_expected: Vec<Option<Sequence>> = sorted.iter().map(|(_, e)| *e).collect();
            prop_assert_eq!(storage.ingest_keys(&sorted_keys).map_err(fail)?, sorted_expected);
            for (key, expected) in keys.iter().zip(&expected).take(20) {
                prop_assert_eq!(storage.ingest_key(key).map_err(fail)?, *expected);
            }
            Ok(())
        };
        check(&storage, before)?;
        prop_assert_eq!(storage.load_ingest_filter().map_err(fail)?, before);
        prop_assert_eq!(storage.load_ingest_filter().map_err(fail)?, 0, "a second load loads nothing");
        check(&storage, before)?;
        enqueue_digests(&storage, before, before + after).map_err(fail)?;
        check(&storage, before + after)?;
        storage.flush().map_err(fail)?;
        check(&storage, before + after)?;
    }
}

/// Keys written while the filter loads (another thread) are found once it is ready: each write
/// puts its keys in the filter before the database has them.
#[test]
fn keys_written_while_the_filter_loads_are_not_missed() -> Result<(), Box<dyn std::error::Error>> {
    let fx = Fixture::new();
    let storage = std::sync::Arc::new(fx.open());
    let stored = 100_000;
    enqueue_digests(&storage, 0, stored)?;
    storage.flush()?;
    let loader = {
        let storage = storage.clone();
        std::thread::spawn(move || storage.load_ingest_filter())
    };
    let mut end = stored;
    for _ in 0..200 {
        enqueue_digests(&storage, end, end + 50)?;
        end += 50;
    }
    let loaded = loader.join().map_err(|_| "the loader panicked")??;
    assert!(loaded >= stored, "loaded {loaded} of {stored} keys stored before the load");
    let keys: Vec<[u8; 32]> = (0..end).map(digest).collect();
    let found = storage.ingest_keys(&keys)?;
    let missing = found.iter().zip(0..).filter(|(f, n)| **f != Some(Sequence(*n))).count();
    assert_eq!(missing, 0, "of {end} keys written");
    assert_eq!(storage.ingest_key(&digest(end))?, None);
    Ok(())
}

#[test]
fn committing_a_block_dequeues_atomically() -> Result<(), Box<dyn std::error::Error>> {
    let mut fx = Fixture::new();
    let storage = fx.open();
    let bytes: Vec<Vec<u8>> = (10..20).map(|s| vec![s as u8; 3]).collect();
    let mut run = QueueRun::new(Sequence(10));
    bytes.iter().for_each(|b| run.push(b));
    storage.enqueue(&run)?;
    let items: Vec<_> = (10..20).zip(bytes).map(|(s, b)| (Sequence(s), b)).collect();
    let (b1, c1) = fx.next_block(vec![fx.chain.batch("alice", 0, 5)], 1_000);
    let (b2, c2) = fx.next_block(vec![fx.chain.batch("alice", 5, 5)], 2_000);
    // A refused commit dequeues nothing.
    assert!(storage.commit_block(&b2, &c2, &certificate(&b2), Some(Sequence(14))).is_err());
    assert_eq!(storage.queue_len()?, 10);
    storage.commit_block(&b1, &c1, &certificate(&b1), Some(Sequence(14)))?;
    assert_eq!(storage.queue_len()?, 5);
    assert_eq!(storage.queued(Sequence(0), 100)?, items[5..].to_vec());
    storage.commit_block(&b2, &c2, &certificate(&b2), None)?;
    assert_eq!(storage.queue_len()?, 5);
    drop(storage);
    let storage = fx.open();
    assert_eq!(storage.height(), Height(2));
    assert_eq!(storage.queue_len()?, 5);
    assert_eq!(storage.queued(Sequence(0), 100)?, items[5..].to_vec());
    Ok(())
}

#[test]
fn wal_and_metadata_survive_reopen() {
    let fx = Fixture::new();
    let storage = fx.open();
    storage.wal_put(b"vote/5/0", b"prevote").unwrap();
    storage.wal_put(b"lock", b"round 2").unwrap();
    storage.meta_put("next_ingest_sequence", &42u64.to_le_bytes()).unwrap();
    // The node's keys cannot collide with storage's own (`sys/head` here).
    storage.meta_put("head", b"not the head").unwrap();
    storage.wal_delete(b"lock").unwrap();
    storage.flush().unwrap();
    assert!(storage.size_on_disk() > 0);
    drop(storage);
    let storage = fx.open();
    assert_eq!(storage.wal_get(b"vote/5/0").unwrap(), Some(b"prevote".to_vec()));
    assert_eq!(storage.wal_get(b"lock").unwrap(), None);
    assert_eq!(storage.meta_get("next_ingest_sequence").unwrap(), Some(42u64.to_le_bytes().to_vec()));
    assert_eq!(storage.meta_get("head").unwrap(), Some(b"not the head".to_vec()));
    assert_eq!(storage.meta_get("absent").unwrap(), None);
    assert_eq!(storage.head(), None);
}

#[test]
fn corrupt_values_are_errors_naming_the_column_not_panics() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    drop(storage);
    {
        let db = raw(fx.dir.path());
        let put = |column: &str, key: &[u8], value: &[u8]| {
            db.put_cf(db.cf_handle(column).unwrap(), key, value).unwrap()
        };
        put(layout::HEADERS, &layout::height_key(Height(2)), b"\xff garbage");
        put(layout::BODIES, &layout::height_key(Height(3)), b"\x01");
        put(layout::CERTIFICATES, &layout::height_key(Height(1)), b"");
        put(layout::HASH_INDEX, &fx.chain.blocks[0].hash().0, b"abc");
        put(layout::CDRS, &layout::cdr_key(&op("alice"), Sequence(10)), b"not a cdr");
        put(layout::LOG_NODES, &layout::node_key(NodeId::leaf(3)), &[1, 2, 3]);
        put(layout::CALL_IDS, b"\x0cabc", b"");
    }
    let storage = fx.open();
    let corrupt_in = |error: StorageError, column: &str| match &error {
        StorageError::Corrupt { column: c, key, reason } => {
            assert_eq!(*c, column, "{error}");
            assert!(!key.is_empty() && !reason.is_empty());
            let message = error.to_string();
            assert!(message.contains(column) && message.contains(key.as_str()), "{message}");
        }
        other => panic!("expected Corrupt in {column}, got {other:?}"),
    };
    corrupt_in(storage.header(Height(2)).unwrap_err(), "headers");
    match storage.header(Height(2)).unwrap_err() {
        StorageError::Corrupt { key, .. } => assert_eq!(key, "0000000000000002"),
        other => panic!("{other:?}"),
    }
    corrupt_in(storage.block(Height(2)).unwrap_err(), "headers");
    corrupt_in(storage.block(Height(3)).unwrap_err(), "bodies");
    corrupt_in(storage.certificate(Height(1)).unwrap_err(), "certificates");
    corrupt_in(storage.height_of(&fx.chain.blocks[0].hash()).unwrap_err(), "hash_index");
    corrupt_in(storage.cdr(&op("alice"), Sequence(10)).unwrap_err(), "cdrs");
    // Blocks are rebuilt with their CDRs from the cdrs column: block 1 reaches the corrupt one.
    corrupt_in(storage.block(Height(1)).unwrap_err(), "cdrs");
    // The partner query reaches the corrupt CDR.
    corrupt_in(storage.query_partners(&op("alice"), &op("bob"), 0, u64::MAX, None, 100).unwrap_err(), "cdrs");
    corrupt_in(storage.node(NodeId::leaf(3)).unwrap_err(), "log_nodes");
    assert!(matches!(
        inclusion_proof(&storage, Domain::CDR_LOG, 2, 10), // leaf 3 is on its path
        Err(ProofError::Store(StorageError::Corrupt { column: "log_nodes", .. }))
    ));
    corrupt_in(storage.cdrs_by_call_id(&CallId::new("abc").unwrap()).unwrap_err(), "call_ids");
    // Uncorrupted entries still read.
    assert!(storage.header(Height(1)).unwrap().is_some());
    assert!(storage.cdr(&op("alice"), Sequence(11)).unwrap().is_some());
    drop(storage);

    // A CDR stored under another CDR's key, and a corrupt head header: open refuses, no panic.
    {
        let db = raw(fx.dir.path());
        let cdrs = db.cf_handle(layout::CDRS).unwrap();
        let bob_1 = db.get_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(1))).unwrap().unwrap();
        db.put_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(2)), bob_1).unwrap();
        // Blocks are rebuilt from the cdrs column: a changed CDR body and a missing CDR.
        let bob_35 = db.get_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(35))).unwrap().unwrap();
        let mut changed: StoredCdr = decode_exact(&bob_35).unwrap();
        changed.cdr.body.end_ms += 1;
        db.put_cf(cdrs, layout::cdr_key(&op("bob"), Sequence(36)), {
            changed.cdr.sequence = Sequence(36);
            changed.encode()
        })
        .unwrap();
    }
    let storage = fx.open();
    let error = storage.cdr(&op("bob"), Sequence(2)).unwrap_err();
    assert!(error.to_string().contains("bob:1"), "{error}");
    let error = storage.block(Height(4)).unwrap_err();
    assert!(error.to_string().contains("tx_root"), "{error}");
    corrupt_in(error, "bodies");
    drop(storage);
    {
        let db = raw(fx.dir.path());
        db.delete_cf(db.cf_handle(layout::CDRS).unwrap(), layout::cdr_key(&op("bob"), Sequence(36))).unwrap();
    }
    let storage = fx.open();
    let error = storage.block(Height(4)).unwrap_err();
    assert!(error.to_string().contains("bob:36 of block 4 is missing"), "{error}");
    corrupt_in(error, "cdrs");
    drop(storage);
    {
        let db = raw(fx.dir.path());
        db.put_cf(db.cf_handle(layout::HEADERS).unwrap(), layout::height_key(Height(4)), b"\x00").unwrap();
    }
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err();
    corrupt_in(error, "headers");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let fx = Fixture::new();
    let _storage = fx.open();
    let error = Storage::open(fx.dir.path(), fx.chain.genesis_hash(), &fx.genesis).unwrap_err();
    assert!(matches!(error, StorageError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains(&path_text(fx.dir.path())), "{error}");
}

#[test]
fn storage_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Storage>();
}

#[test]
fn log_levels_one_to_three_are_folded_from_leaves_not_stored() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    // 37 + 64 + 19 = 120 leaves: perfect subtrees at every level up to 6, and partial ones.
    let mut expected = BTreeMap::new();
    for (i, (operator, first, count)) in
        [("alice", 0, 37), ("bob", 0, 64), ("alice", 37, 19)].into_iter().enumerate()
    {
        let txs = vec![fx.chain.batch(operator, first, count)];
        let (block, changes) = fx.next_block(txs, 1_000 * (i as u64 + 1));
        storage.commit_block(&block, &changes, &certificate(&block), None).unwrap();
        expected.extend(changes.new_log_nodes.iter().copied());
    }
    assert!(expected.keys().any(|id| (1..=3).contains(&id.level)) && expected.keys().any(|id| id.level >= 4));
    let check = |storage: &Storage| {
        for (id, hash) in &expected {
            assert_eq!(storage.node(*id).unwrap(), Some(*hash), "node {id:?}");
        }
        // Past the log's end: leaves 120.. are not there, so (3, 15) = leaves 120-127 is not either.
        assert_eq!(storage.node(NodeId::new(3, 15)).unwrap(), None);
        assert_eq!(storage.node(NodeId::new(1, 60)).unwrap(), None);
        assert_eq!(storage.node(NodeId::new(3, u64::MAX)).unwrap(), None);
        // Proofs at every size still verify against the roots.
        for size in [1u64, 7, 8, 9, 16, 37, 101, 120] {
            let root = root_at(storage, Domain::CDR_LOG, size).unwrap();
            for leaf in [0, size / 2, size - 1] {
                let proof = inclusion_proof(storage, Domain::CDR_LOG, leaf, size).unwrap();
                let leaf_hash = storage.node(NodeId::leaf(leaf)).unwrap().unwrap();
                verify_inclusion(Domain::CDR_LOG, &leaf_hash, &proof, &root).unwrap();
            }
        }
    };
    check(&storage);
    drop(storage);
    // On disk: levels 0 and >= 4 only.
    {
        let db = raw(fx.dir.path());
        let levels: BTreeSet<u8> = db
            .iterator_cf(db.cf_handle(layout::LOG_NODES).unwrap(), rocksdb::IteratorMode::Start)
            .map(|item| item.unwrap().0[0])
            .collect();
        assert_eq!(levels, BTreeSet::from([0, 4, 5, 6]));
    }
    check(&fx.open());
}
