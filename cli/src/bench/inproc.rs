//! The suites that run in this process: `runtime` (`apply_block` in memory) and `storage`
//! (`commit_block` into a temporary database), on blocks of sample CDRs built beforehand.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{quantile, Args};

/// The sample operators whose batches make up a block: one batch each.
const BENCH_RECORDERS: [&str; 10] =
    ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"];
/// CDRs in each sample batch.
const CDRS_PER_BATCH: u64 = 1_000;
/// Milliseconds between the timestamps of consecutive sample blocks.
const BLOCK_SPACING_MS: u64 = 1_000;
/// Blocks prepared per second of `--duration`: a rough upper bound of what a suite gets through.
const PREPARED_BLOCKS_PER_S: usize = 4;
/// The fewest blocks prepared, however short the run.
const MIN_PREPARED_BLOCKS: usize = 5;
/// The most blocks prepared (they are held in memory), however long the run.
const MAX_PREPARED_BLOCKS: usize = 200;

/// Blocks of 10 batches of 1,000 sample CDRs, built (and applied) on a sample chain, with the
/// changes each makes; enough for `--duration` seconds is not known in advance, so `count`.
fn sample_blocks(
    count: usize,
) -> anyhow::Result<(
    cdrchain_runtime::sample::SampleChain,
    Vec<(cdrchain_runtime::block::Block, cdrchain_runtime::apply::StateChanges)>,
)> {
    use cdrchain_runtime::sample::SampleChain;
    let mut chain = SampleChain::new(&BENCH_RECORDERS);
    let start = chain.clone();
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let first = i as u64 * CDRS_PER_BATCH;
        let txs = BENCH_RECORDERS.iter().map(|r| chain.batch(r, first, CDRS_PER_BATCH)).collect();
        let (block, changes, refused) = chain
            .build(txs, BLOCK_SPACING_MS * (i as u64 + 1))
            .map_err(|e| anyhow::anyhow!("building a sample block: {e}"))?;
        if !refused.is_empty() {
            bail!("the sample block refused transactions: {refused:?}");
        }
        chain.import(block.clone()).map_err(|e| anyhow::anyhow!("applying a sample block: {e}"))?;
        chain.blocks.clear();
        blocks.push((block, changes));
    }
    Ok((start, blocks))
}

/// How many 10,000-CDR blocks to prepare for `--duration` seconds (a rough upper bound).
fn blocks_for(args: &Args) -> usize {
    (args.duration as usize * PREPARED_BLOCKS_PER_S).clamp(MIN_PREPARED_BLOCKS, MAX_PREPARED_BLOCKS)
}

pub(super) fn runtime_suite(args: &Args) -> anyhow::Result<Value> {
    let (start, blocks) = sample_blocks(blocks_for(args))?;
    let mut state = start.state.clone();
    let mut parent = start.parent.clone();
    let began = Instant::now();
    let deadline = began + Duration::from_secs(args.duration);
    let mut cdrs = 0usize;
    let mut applied = 0usize;
    for (block, _) in &blocks {
        let changes = cdrchain_runtime::apply::apply_block(&start.ctx, &state, &parent, block)
            .map_err(|e| anyhow::anyhow!("apply_block: {e}"))?;
        state.apply(&changes);
        parent = cdrchain_runtime::apply::ParentRef::of(&block.header);
        cdrs += block.cdr_count();
        applied += 1;
        if Instant::now() > deadline {
            break;
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    Ok(json!({
        "suite": "runtime",
        "blocks": applied,
        "cdrs_per_block": BENCH_RECORDERS.len() as u64 * CDRS_PER_BATCH,
        "applied_cdrs": cdrs,
        "apply_cdrs_per_s": (cdrs as f64 / seconds).round(),
        "ms_per_block": (seconds * 1000.0 / applied.max(1) as f64 * 10.0).round() / 10.0,
    }))
}

pub(super) fn storage_suite(args: &Args) -> anyhow::Result<Value> {
    let (start, blocks) = sample_blocks(blocks_for(args))?;
    let dir = tempfile::Builder::new()
        .prefix("cdrchain-bench-storage-")
        .tempdir()
        .context("creating a temp dir")?;
    let storage = cdrchain_storage::Storage::open(dir.path(), start.genesis_hash(), &start.state)
        .context("opening the benchmark database")?;
    let began = Instant::now();
    let deadline = began + Duration::from_secs(args.duration);
    let mut cdrs = 0usize;
    let mut committed = 0usize;
    let mut per_block = Vec::new();
    for (block, changes) in &blocks {
        let certificate = cdrchain_runtime::block::CommitCertificate {
            height: block.header.number,
            round: cdrchain_runtime::ids::Round(0),
            block_hash: block.hash(),
            signatures: cdrchain_runtime::codec::BoundedVec::default(),
        };
        let one = Instant::now();
        storage.commit_block(block, changes, &certificate, None).context("commit_block")?;
        per_block.push(one.elapsed().as_secs_f64() * 1000.0);
        cdrs += block.cdr_count();
        committed += 1;
        if Instant::now() > deadline {
            break;
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    storage.flush().context("flushing")?;
    per_block.sort_by(f64::total_cmp);
    Ok(json!({
        "suite": "storage",
        "blocks": committed,
        "cdrs_per_block": BENCH_RECORDERS.len() as u64 * CDRS_PER_BATCH,
        "committed_cdrs": cdrs,
        "committed_cdrs_per_s": (cdrs as f64 / seconds).round(),
        "commit_ms_p50": quantile(&per_block, 0.5),
        "commit_ms_p99": quantile(&per_block, 0.99),
        "bytes_on_disk_per_cdr": (storage.size_on_disk() as f64 / cdrs.max(1) as f64).round(),
    }))
}
