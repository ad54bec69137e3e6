//! Layout conformance (commonware's `conformance.rs`): a fixed, deterministic workload touches
//! every column family, and a BLAKE3 digest of everything on disk afterwards is pinned. A change
//! to a key or value encoding, a column family added or renamed, or a write moved to another
//! column changes the digest, so the layout cannot change without someone deciding it did.
//!
//! The workload uses the runtime's sample chain (fixed operator keys, fixed CDR bodies, explicit
//! timestamps; ed25519 signatures are deterministic) and fixed queue items, ingest keys, WAL
//! records and metadata: no clock, no randomness.

use std::path::Path;

use cdrchain_runtime::hash::hash_with;
use cdrchain_runtime::ids::Sequence;
use cdrchain_runtime::tx::CallState;
use cdrchain_storage::{QueueRun, SCHEMA_VERSION};

use crate::common::{certificate, Fixture};
use crate::{call_event, raw};

/// The digest of the database [`workload`] leaves, for [`SCHEMA_VERSION`] 5.
const GOLDEN_DIGEST: &str = "a863c05721dc8a5cd2044f7df556f1f4396b412b48de5c24423e0c5c41ecf7a4";

/// BLAKE3 context (derive-key mode) of the digest and of the workload's ingest keys.
const CONTEXT: &str = "cdrchain storage layout conformance v1";

/// The ingest key of the `n`th record of the workload.
fn ingest_key(n: u64) -> [u8; 32] {
    hash_with(CONTEXT, &[&n.to_le_bytes()]).0
}

/// A keyed queue run of `count` items from `first`, item `s` being `"cdr s"`.
fn keyed_run(first: u64, count: u64) -> (QueueRun, Vec<([u8; 32], Sequence)>) {
    let mut run = QueueRun::new(Sequence(first));
    let mut keys = Vec::new();
    for s in first..first + count {
        run.push(format!("cdr {s}").as_bytes());
        keys.push((ingest_key(s), Sequence(s)));
    }
    (run, keys)
}

/// Writes the fixed workload into a new database at `fx.dir`: three blocks (CDR batches of three
/// recorders, a call that starts and ends, a dequeue with a commit), queue runs with ingest keys
/// across a chunk boundary, a dequeue inside a chunk, WAL records and node metadata.
fn workload(fx: &mut Fixture) {
    let storage = fx.open();
    let (run, keys) = keyed_run(0, 1_030);
    storage.enqueue_keyed(&run, &keys).unwrap();
    let (run, keys) = keyed_run(1_030, 5);
    storage.enqueue_keyed(&run, &keys).unwrap();

    let c = &fx.chain;
    let setup = c.sign(call_event("alice", "call-1", CallState::Setup, 5));
    let txs = vec![c.batch("alice", 0, 12), c.batch("bob", 0, 7), setup];
    let (block, changes) = fx.next_block(txs, 1_000);
    storage.commit_block(&block, &changes, &certificate(&block), Some(Sequence(18))).unwrap();
    let c = &fx.chain;
    let ended = c.sign(call_event("alice", "call-1", CallState::Ended, 9));
    let txs = vec![c.batch("carol", 0, 9), ended];
    let (block, changes) = fx.next_block(txs, 2_000);
    storage.commit_block(&block, &changes, &certificate(&block), None).unwrap();
    let txs = vec![fx.chain.batch("alice", 12, 3)];
    let (block, changes) = fx.next_block(txs, 3_000);
    storage.commit_block(&block, &changes, &certificate(&block), Some(Sequence(1_025))).unwrap();
    storage.dequeue_through(Sequence(1_027)).unwrap();
    // The party index, behind the head: block 1 (a step stops after the block that reaches its
    // count of CDRs), then the others.
    let indexed = storage.index_parties_step(1, |_, _| ()).expect("indexing block 1");
    assert_eq!(indexed.0, 1);
    storage.index_parties_step(usize::MAX, |_, _| ()).expect("indexing the other blocks");

    storage.wal_put(b"vote/3/0", b"precommit").unwrap();
    storage.wal_put(b"lock", b"round 0").unwrap();
    storage.wal_delete(b"lock").unwrap();
    storage.meta_put("next_ingest_sequence", &1_035u64.to_le_bytes()).unwrap();
    storage.flush().unwrap();
}

/// BLAKE3 (under [`CONTEXT`]) of every column family in name order, each as its length-prefixed
/// name, then each entry in key order as length-prefixed key and value, then the entry count.
fn layout_digest(path: &Path) -> String {
    let db = raw(path);
    let mut columns = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    columns.sort();
    let mut stream = Vec::new();
    let mut put = |bytes: &[u8]| {
        stream.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        stream.extend_from_slice(bytes);
    };
    for column in &columns {
        put(column.as_bytes());
        let mut entries = 0u64;
        for entry in db.iterator_cf(db.cf_handle(column).unwrap(), rocksdb::IteratorMode::Start) {
            let (key, value) = entry.unwrap();
            put(&key);
            put(&value);
            entries += 1;
        }
        put(&entries.to_le_bytes());
    }
    hash_with(CONTEXT, &[&stream]).to_hex()
}

#[test]
fn the_on_disk_layout_matches_its_golden_digest() {
    let digests: Vec<String> = (0..2)
        .map(|_| {
            let mut fx = Fixture::new();
            workload(&mut fx);
            layout_digest(fx.dir.path())
        })
        .collect();
    assert_eq!(digests[0], digests[1], "the conformance workload is not deterministic");
    assert_eq!(
        digests[0], GOLDEN_DIGEST,
        "the on-disk layout changed (schema version {SCHEMA_VERSION}); if on purpose, bump \
         SCHEMA_VERSION (with an upgrade or a refusal of older databases) and update GOLDEN_DIGEST \
         in tests/it/conformance.rs"
    );
}
