//! Storage's integration tests, one binary with a module per concern (as malachite's
//! `wal/tests/it/`): blocks committed as the node commits them and read back after reopening;
//! partner and call-id queries; the StateView and NodeStore against the in-memory chain; the
//! ingest queue; ingest keys; schema and genesis checks; corruption; the consensus WAL and
//! metadata; and a conformance test that pins the on-disk layout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod blocks;
mod conformance;
mod corruption;
mod ingest_keys;
mod parties;
mod queries;
mod queue;
mod schema;
mod view;
mod wal;

use std::collections::BTreeMap;
use std::path::Path;

use cdrchain_runtime::ids::{CallId, OperatorId, ReasonText, Sequence};
use cdrchain_runtime::sample::SampleChain;
use cdrchain_runtime::state::StateView;
use cdrchain_runtime::tx::{CallEvent, CallState, SequenceGap, Transaction};
use cdrchain_storage::{QueueRun, Storage, StoredCdr};
use common::{tree, Fixture};

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

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// Opens the database directory with plain RocksDB, every column family included.
fn raw(path: &Path) -> rocksdb::DB {
    let columns = rocksdb::DB::list_cf(&rocksdb::Options::default(), path).unwrap();
    rocksdb::DB::open_cf(&rocksdb::Options::default(), path, columns).unwrap()
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
