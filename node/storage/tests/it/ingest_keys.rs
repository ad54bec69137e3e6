//! Ingest keys: written with the queue, kept past the commit, answered the same with or without
//! the in-memory filter.

use cdrchain_runtime::hash::{context, hash_with};
use cdrchain_runtime::ids::Sequence;
use cdrchain_storage::{QueueRun, Storage, StorageError};
use proptest::prelude::*;

use crate::common::{certificate, Fixture};
use crate::run_of;

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

/// Review H6: after a purge or a restore the database has no ingest keys of what its node had
/// acknowledged; the blocks it syncs bring them back, from the source digests the CDRs carry.
#[test]
fn committing_an_own_block_this_database_never_queued_records_its_ingest_keys(
) -> Result<(), Box<dyn std::error::Error>> {
    let mut fx = Fixture::new();
    let storage = fx.open();
    let alice = cdrchain_runtime::ids::OperatorId::new("alice")?;
    // Queued here: 0 and 1, with keys of the node's own making.
    storage
        .enqueue_keyed(&run_of(0, &[b"a", b"b"]), &[([1u8; 32], Sequence(0)), ([2u8; 32], Sequence(1))])?;
    let batch = fx.chain.batch("alice", 0, 5);
    let bodies = match &batch.transaction {
        cdrchain_runtime::tx::Transaction::CdrBatch(b) => b.cdrs.to_vec(),
        _ => unreachable!("a batch"),
    };
    let bob = fx.chain.batch("bob", 0, 3);
    let bob_bodies = match &bob.transaction {
        cdrchain_runtime::tx::Transaction::CdrBatch(b) => b.cdrs.to_vec(),
        _ => unreachable!("a batch"),
    };
    let (block, changes) = fx.next_block(vec![batch, bob], 1_000);
    storage.commit_block_of(&alice, &block, &changes, &certificate(&block), Some(Sequence(4)))?;
    // 0 and 1 keep the keys they were queued with; 2..=4 were never queued here: recorded now.
    assert_eq!(storage.ingest_key(&bodies[0].source.ingest_key())?, None);
    for (sequence, body) in bodies.iter().enumerate().skip(2) {
        assert_eq!(storage.ingest_key(&body.source.ingest_key())?, Some(Sequence(sequence as u64)));
    }
    assert_eq!(storage.ingest_key(&[1u8; 32])?, Some(Sequence(0)));
    // Another operator's CDRs are not this node's to recognise.
    for body in &bob_bodies {
        assert_eq!(storage.ingest_key(&body.source.ingest_key())?, None);
    }
    // Without an own operator (tools, tests), nothing is recorded.
    let (block, changes) = fx.next_block(vec![fx.chain.batch("alice", 5, 1)], 2_000);
    storage.commit_block(&block, &changes, &certificate(&block), None)?;
    let later = fx.chain.batch("alice", 5, 1);
    if let cdrchain_runtime::tx::Transaction::CdrBatch(b) = &later.transaction {
        assert_eq!(storage.ingest_key(&b.cdrs[0].source.ingest_key())?, None);
    }
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

/// Review M10: the queue used to be dequeued by sequence only, so a block holding other CDRs at
/// this node's queued sequences (another node signing for the same operator) silently dropped
/// the queued ones. They are now queued again at the end, with their ingest keys.
#[test]
fn a_block_with_other_cdrs_at_queued_sequences_requeues_the_queued_ones(
) -> Result<(), Box<dyn std::error::Error>> {
    use parity_scale_codec::Encode;
    let mut fx = Fixture::new();
    let storage = fx.open();
    let alice = cdrchain_runtime::ids::OperatorId::new("alice")?;
    let bodies = |tx: &cdrchain_runtime::tx::SignedTransaction| match &tx.transaction {
        cdrchain_runtime::tx::Transaction::CdrBatch(b) => b.cdrs.to_vec(),
        _ => unreachable!("a batch"),
    };
    // This node queued its own CDRs at 0..5 (the bodies of records 100..105).
    let ours = bodies(&fx.chain.batch("alice", 100, 5));
    let mut run = QueueRun::new(Sequence(0));
    let mut keys = Vec::new();
    for (i, body) in ours.iter().enumerate() {
        run.push(&body.encode());
        keys.push((body.source.ingest_key(), Sequence(i as u64)));
    }
    storage.enqueue_keyed(&run, &keys)?;
    // Another node's batch takes 0..=2.
    let theirs = fx.chain.batch("alice", 0, 3);
    let (block, changes) = fx.next_block(vec![theirs], 1_000);
    let requeued =
        storage.commit_block_of(&alice, &block, &changes, &certificate(&block), Some(Sequence(2)))?;
    let moved: Vec<(u64, u64)> = requeued.iter().map(|r| (r.from.0, r.to.0)).collect();
    assert_eq!(moved, vec![(0, 5), (1, 6), (2, 7)]);
    // The queue holds 3 and 4 where they were, then the displaced three, in order.
    let queued = storage.queued(Sequence(0), 10)?;
    let sequences: Vec<u64> = queued.iter().map(|(s, _)| s.0).collect();
    assert_eq!(sequences, vec![3, 4, 5, 6, 7]);
    assert_eq!(queued[2].1, ours[0].encode());
    assert_eq!(storage.queue_len()?, 5);
    assert_eq!(storage.queue_end(), Sequence(8));
    assert_eq!(storage.ingest_key(&ours[0].source.ingest_key())?, Some(Sequence(5)));
    assert_eq!(storage.ingest_key(&ours[3].source.ingest_key())?, Some(Sequence(3)));
    // A block of the very CDRs queued (the normal case) re-queues nothing.
    let same = fx.chain.sign(cdrchain_runtime::tx::Transaction::CdrBatch(cdrchain_runtime::tx::CdrBatch {
        operator: alice.clone(),
        first_sequence: Sequence(3),
        cdrs: cdrchain_runtime::codec::BoundedVec::new(ours[3..].to_vec()).map_err(|_| "too many")?.into(),
    }));
    let (block, changes) = fx.next_block(vec![same], 2_000);
    let requeued =
        storage.commit_block_of(&alice, &block, &changes, &certificate(&block), Some(Sequence(4)))?;
    assert!(requeued.is_empty(), "{requeued:?}");
    assert_eq!(storage.queue_len()?, 3);
    // Survives a reopen: the numbers are counted from the chunks again.
    drop(storage);
    let storage = fx.open();
    assert_eq!(storage.queue_len()?, 3);
    assert_eq!(storage.queue_end(), Sequence(8));
    Ok(())
}
