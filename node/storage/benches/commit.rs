//! Commit throughput: `commit_block` of a block of 10,000 CDRs in 10 batches (10 recorders of
//! 1,000 CDRs each), with the node's sync policy (one synced WriteBatch per block). Criterion
//! reports elements/s = CDRs/s. Building and applying the block is outside the measurement.
//! Also: `enqueue` of 1,000 queued CDRs per synced call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use cdrchain_runtime::block::CommitCertificate;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::ids::{Round, Sequence};
use cdrchain_runtime::sample::SampleChain;
use cdrchain_storage::Storage;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RECORDERS: [&str; 10] =
    ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"];
const PER_BATCH: u64 = 1_000;

fn commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_block");
    group.throughput(Throughput::Elements(PER_BATCH * RECORDERS.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("10k_cdrs_10_batches_synced", |b| {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = SampleChain::new(&RECORDERS);
        let storage = Storage::open(dir.path(), chain.genesis_hash(), &chain.state).unwrap();
        let mut next_sequence = 0u64;
        let mut timestamp = 1_000u64;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let txs = RECORDERS.iter().map(|r| chain.batch(r, next_sequence, PER_BATCH)).collect();
                next_sequence += PER_BATCH;
                timestamp += 1_000;
                let (block, _, refused) = chain.build(txs, timestamp).unwrap();
                assert!(refused.is_empty());
                let changes = chain.import(block.clone()).unwrap();
                chain.blocks.clear();
                let certificate = CommitCertificate {
                    height: block.header.number,
                    round: Round(0),
                    block_hash: block.hash(),
                    signatures: BoundedVec::default(),
                };
                let started = Instant::now();
                storage.commit_block(&block, &changes, &certificate, None).unwrap();
                total += started.elapsed();
            }
            total
        });
        eprintln!("database after the run: {} MiB on disk", storage.size_on_disk() / (1024 * 1024));
    });
    group.finish();
}

fn enqueue(c: &mut Criterion) {
    let mut group = c.benchmark_group("enqueue");
    group.throughput(Throughput::Elements(1_000));
    group.sample_size(10);
    group.bench_function("1k_items_synced", |b| {
        let dir = tempfile::tempdir().unwrap();
        let chain = SampleChain::new(&RECORDERS);
        let storage = Storage::open(dir.path(), chain.genesis_hash(), &chain.state).unwrap();
        let alice = chain.operators[0].clone();
        let bob = chain.operators[1].clone();
        let mut next = 0u64;
        b.iter(|| {
            let mut run = cdrchain_storage::QueueRun::new(Sequence(next));
            for i in next..next + 1_000 {
                let body = cdrchain_runtime::sample::cdr_body(i, &alice, &bob);
                run.push_with(|out| parity_scale_codec::Encode::encode_to(&body, out));
            }
            next += 1_000;
            storage.enqueue(&run).unwrap();
        });
    });
    group.finish();
}

criterion_group!(benches, commit, enqueue);
criterion_main!(benches);
