//! Blocks committed as the node commits them, read back after reopening; refusals of blocks that
//! do not extend the head.

use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::ids::{CallId, CdrId, Height, Sequence};
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::Hash32;
use cdrchain_storage::{Storage, StorageError, StoredCdr};
use parity_scale_codec::Encode;

use crate::common::{certificate, Fixture};
use crate::{expected_cdrs, four_blocks, op, pairs};

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

#[test]
fn storage_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Storage>();
}
