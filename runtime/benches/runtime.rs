//! Criterion benchmarks of the runtime's hot paths: CDR encode/decode, leaf hashing, Merkle
//! append, batch signature verification, `apply_block` of 10,000 CDRs in 10 batches, `apply_block`
//! while a member files gaps at its quota (blocks 1 and 200, and on a million-gap state), and party
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

/// The blocks of a member that files the most gaps its quota allows, with an honest operator's
/// batch beside them: per block 15 × (one-sequence gap, one CDR), then one gap with
/// `MERGED_GAPS_PER_BLOCK` adjacent one-sequence gaps that merge into it, then bob's 1,000 CDRs.
fn gap_spam_block(chain: &SampleChain, block: u64) -> Vec<cdrchain_runtime::tx::SignedTransaction> {
    use cdrchain_runtime::bounds::MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK;
    use cdrchain_runtime::ids::ReasonText;
    use cdrchain_runtime::tx::{SequenceGap, Transaction};
    const MERGED_GAPS_PER_BLOCK: u64 = 1_000;
    let opened = u64::from(MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK);
    let per_block = 2 * (opened - 1) + 1 + MERGED_GAPS_PER_BLOCK;
    let mut sequence = block * per_block;
    let gap = |from: u64| {
        chain.sign(Transaction::SequenceGap(SequenceGap {
            operator: OperatorId::new("alice").unwrap(),
            from: Sequence(from),
            to: Sequence(from),
            reason: ReasonText::new("spam").unwrap(),
        }))
    };
    let mut txs = Vec::new();
    for _ in 1..opened {
        txs.push(gap(sequence));
        txs.push(chain.batch("alice", sequence + 1, 1));
        sequence += 2;
    }
    for _ in 0..=MERGED_GAPS_PER_BLOCK {
        txs.push(gap(sequence));
        sequence += 1;
    }
    txs.push(chain.batch("bob", block * 1_000, 1_000));
    txs
}

/// `apply_block` of block 1 and block 200 of a gap-spamming member, and of the same block on a
/// state that already holds a million gaps: the state root is updated along the written keys
/// (ADR 0016), so the cost does not grow with the state (review H3: it used to be linear).
fn state_growth(c: &mut Criterion) {
    use cdrchain_runtime::apply::apply_block;
    use cdrchain_runtime::state::{GapRecord, StateKey};
    let mut chain = SampleChain::new(&["alice", "bob", "carol"]);
    let mut at = Vec::new();
    for block in 0..200u64 {
        let (built, _, refused) = chain.build(gap_spam_block(&chain, block), 1_000 + block).unwrap();
        assert!(refused.is_empty(), "block {block}: {refused:?}");
        if block == 0 || block == 199 {
            at.push((chain.clone(), built.clone()));
        }
        chain.import(built).unwrap();
    }
    // Block 200's transactions on a state with a million more gaps (carol's).
    let (mut large, _) = at[1].clone();
    for i in 0..1_000_000u64 {
        let record = GapRecord {
            to: Sequence(2 * i),
            reason: cdrchain_runtime::ids::ReasonText::new("old").unwrap(),
            declared_at: cdrchain_runtime::ids::Height(1),
        };
        large.state.pairs.insert(
            StateKey::Gap(OperatorId::new("carol").unwrap(), Sequence(2 * i)).encode(),
            record.encode(),
        );
    }
    large.state.rebuild_tree().unwrap();
    let (built, _, refused) = large.build(gap_spam_block(&large, 199), 1_199).unwrap();
    assert!(refused.is_empty());
    at.push((large, built));
    let mut group = c.benchmark_group("apply_block_gap_spam");
    group.sample_size(20);
    for ((parent, block), name) in at.iter().zip(["block_1", "block_200", "block_200_on_1m_gaps"]) {
        group.bench_function(name, |b| {
            b.iter(|| apply_block(&parent.ctx, &parent.state, &parent.parent, black_box(block)).unwrap())
        });
    }
    group.finish();
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
    // International traffic: a mobile and a fixed example number of each of 48 countries, the
    // last two digits varied. libphonenumber's work depends on the country's metadata, and a
    // port that caches compiled regular expressions per country may thrash here.
    let mut i = 0usize;
    group.bench_function("digest_e164_parsed_48_countries", |b| {
        b.iter(|| {
            i = (i + 1) % (WORLD.len() * 100);
            let number = WORLD[i % WORLD.len()];
            let (head, _) = number.split_at(number.len() - 2);
            plain.digest(black_box(&format!("{head}{:02}", i / WORLD.len()))).unwrap()
        })
    });
    group.bench_function("digest_e164_remembered", |b| {
        b.iter(|| memo.digest(black_box("+442079460018")).unwrap())
    });
    // The memo as `cdrchain bench dev` fills it: 110,000 distinct numbers (100,000 callers and
    // 10,000 callees) in a memo of the node's default size; the callers are looked up in a
    // scattered order, so that most lookups miss the CPU caches as they do in a loaded node.
    let numbers: Vec<String> = (0..100_000u64)
        .map(|n| format!("+4420794{n:05}"))
        .chain((0..10_000u64).map(|n| format!("+1415555{n:04}")))
        .collect();
    let large = plain.clone().with_memo(200_000);
    for number in &numbers {
        large.digest(number).unwrap();
    }
    // Each number is written afresh, as a parsed submission hands it over (in the CPU caches).
    let mut k = 0u64;
    let mut number = String::with_capacity(16);
    group.bench_function("digest_e164_remembered_110k", |b| {
        b.iter(|| {
            use std::fmt::Write as _;
            k = (k + 7_919) % 100_000;
            number.clear();
            let _ = write!(number, "+4420794{k:05}");
            large.digest(black_box(&number)).unwrap()
        })
    });
    group.finish();
}

/// Example numbers (libphonenumber's own) of 48 countries, a mobile and a fixed line each.
const WORLD: [&str; 96] = [
    "+12015550123",
    "+12015550123",
    "+447400123456",
    "+441212345678",
    "+4915123456789",
    "+4930123456",
    "+33612345678",
    "+33123456789",
    "+34612345678",
    "+34810123456",
    "+393123456789",
    "+390212345678",
    "+31612345678",
    "+31101234567",
    "+32450001234",
    "+3212345678",
    "+41781234567",
    "+41212345678",
    "+43664123456",
    "+431234567890",
    "+46701234567",
    "+468123456",
    "+4740612345",
    "+4721234567",
    "+4534412345",
    "+4532123456",
    "+358412345678",
    "+358131234567",
    "+48512345678",
    "+48123456789",
    "+79123456789",
    "+73011234567",
    "+819012345678",
    "+81312345678",
    "+821020000000",
    "+8222123456",
    "+8613123456789",
    "+861012345678",
    "+918123456789",
    "+917410410123",
    "+61412345678",
    "+61212345678",
    "+64211234567",
    "+6432345678",
    "+5511961234567",
    "+551123456789",
    "+522221234567",
    "+522001234567",
    "+5491123456789",
    "+541123456789",
    "+573211234567",
    "+576012345678",
    "+27711234567",
    "+27101234567",
    "+201001234567",
    "+20234567890",
    "+2348021234567",
    "+2342033123456",
    "+254712123456",
    "+254202012345",
    "+971501234567",
    "+97122345678",
    "+966512345678",
    "+966112345678",
    "+905012345678",
    "+902123456789",
    "+380501234567",
    "+380311234567",
    "+420601123456",
    "+420212345678",
    "+36201234567",
    "+3612345678",
    "+306912345678",
    "+302123456789",
    "+351912345678",
    "+351212345678",
    "+353850123456",
    "+3532212345",
    "+37251234567",
    "+3723212345",
    "+6581234567",
    "+6561234567",
    "+60123456789",
    "+60323856789",
    "+62812345678",
    "+62218350123",
    "+639051234567",
    "+63232345678",
    "+66812345678",
    "+6621234567",
    "+84912345678",
    "+842101234567",
    "+923012345678",
    "+922123456789",
    "+8801812345678",
    "+88027111234",
];

criterion_group!(benches, codec, merkle, signatures, apply, state_growth, parties);
criterion_main!(benches);
