//! The durable ingest queue: order, counting, restarts, a model, atomic dequeue with a commit.

use cdrchain_runtime::ids::{Height, Sequence};
use cdrchain_storage::{layout, QueueRun, StorageError};
use parity_scale_codec::Encode;
use proptest::prelude::*;

use crate::common::{certificate, Fixture};
use crate::{item, raw, run_of};

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
