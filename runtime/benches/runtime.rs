//! Criterion benchmarks of the runtime's hot paths: CDR encode/decode, leaf hashing, Merkle
//! append, batch signature verification, `apply_block` of 10,000 CDRs in 10 batches, and party
//! hashing (parsed, and remembered).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

use cdrchain_runtime::cdr::{Cdr, CdrBody};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::crypto::{public_key, sign, verify_batch};
use cdrchain_runtime::hash::{context, hash_with};
use cdrchain_runtime::ids::{OperatorId, Sequence};
use cdrchain_runtime::merkle::{Domain, Frontier};
use cdrchain_runtime::sample::{cdr_body, operator_key, SampleChain};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use parity_scale_codec::Encode;

fn sample_cdr() -> Cdr {
    let alice = OperatorId::new("alice").unwrap();
    let bob = OperatorId::new("bob").unwrap();
    Cdr { recorder: alice.clone(), sequence: Sequence(42), body: cdr_body(42, &alice, &bob) }
}

fn codec(c: &mut Criterion) {
    let cdr = sample_cdr();
    let bytes = cdr.encode();
    let mut group = c.benchmark_group("cdr");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| b.iter(|| black_box(&cdr).encode()));
    group.bench_function("decode", |b| b.iter(|| decode_exact::<Cdr>(black_box(&bytes)).unwrap()));
    group.bench_function("leaf_hash", |b| b.iter(|| black_box(&cdr).leaf_hash()));
    group.finish();
}

fn merkle(c: &mut Criterion) {
    let leaves: Vec<_> = (0u64..10_000).map(|i| Domain::CDR_LOG.leaf(&i.to_le_bytes())).collect();
    let mut group = c.benchmark_group("merkle");
    group.throughput(Throughput::Elements(leaves.len() as u64));
    group.bench_function("append_10000", |b| {
        b.iter(|| {
            let mut frontier = Frontier::new();
            let mut nodes = 0usize;
            for leaf in &leaves {
                frontier.append(Domain::CDR_LOG, *leaf, &mut |_, _| nodes += 1).unwrap();
            }
            black_box((frontier.root(Domain::CDR_LOG), nodes))
        })
    });
    group.finish();
}

fn signatures(c: &mut Criterion) {
    let items: Vec<_> = (0u8..64)
        .map(|i| {
            let key = operator_key(&format!("op{i}"));
            let message = hash_with(context::TRANSACTION, &[&[i]]);
            (public_key(&key), message, sign(&key, &message))
        })
        .collect();
    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("verify_batch_64", |b| b.iter(|| verify_batch(black_box(&items)).unwrap()));
    group.bench_function("verify_strict_64", |b| {
        b.iter(|| {
            for (key, message, signature) in &items {
                cdrchain_runtime::crypto::verify(key, message, signature).unwrap();
            }
        })
    });
    group.finish();
}

fn apply(c: &mut Criterion) {
    let chain = SampleChain::new(&["alice", "bob"]);
    let txs: Vec<_> = (0..10).map(|i| chain.batch("alice", i * 1_000, 1_000)).collect();
    let (block, _, refused) = chain.build(txs, 1).unwrap();
    assert!(refused.is_empty());
    assert_eq!(block.cdr_count(), 10_000);
    let mut group = c.benchmark_group("apply_block");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    group.bench_function("10000_cdrs_in_10_batches", |b| {
        b.iter_batched(
            || chain.clone(),
            |mut chain| chain.import(block.clone()).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
    let body: &CdrBody = &block_first_body(&block);
    black_box(body);
}

fn block_first_body(block: &cdrchain_runtime::block::Block) -> CdrBody {
    match &block.transactions[0].transaction {
        cdrchain_runtime::tx::Transaction::CdrBatch(batch) => batch.cdrs[0].clone(),
        _ => unreachable!(),
    }
}

/// Party hashing as ingest does it: an E.164 number parsed and validated by libphonenumber (the
/// memo missed), and the same number again through the memo.
fn parties(c: &mut Criterion) {
    use cdrchain_runtime::party::PartyHasher;
    let plain = PartyHasher::new(b"bench consortium secret 0123456789", Some("GB")).unwrap();
    let memo = plain.clone().with_memo(1_000);
    let mut group = c.benchmark_group("party");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("digest_e164_parsed", |b| {
        b.iter(|| {
            n = (n + 1) % 10_000;
            plain.digest(black_box(&format!("+44207946{n:04}"))).unwrap()
        })
    });
    group.bench_function("digest_e164_remembered", |b| {
        b.iter(|| memo.digest(black_box("+442079460018")).unwrap())
    });
    group.finish();
}

criterion_group!(benches, codec, merkle, signatures, apply, parties);
criterion_main!(benches);
