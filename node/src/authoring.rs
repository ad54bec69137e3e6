//! The consensus driver for a single-validator chain (n = 1): every block interval, if there are
//! transactions (or the idle heartbeat is due), build a block, precommit it, commit it.
//!
//! The precommit goes through the same safety rule the multi-validator engine will use: before a
//! vote is signed, its (height, round, block hash) is synced to the consensus WAL, and a node that
//! restarts never signs a different block at a (height, round) it already signed; it moves to the
//! next round instead.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdrchain_runtime::block::{CommitCertificate, CommitSignature, Vote, VoteKind};
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::crypto;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;
use tokio::sync::watch;

use crate::chain::{BuiltBlock, Chain};
use crate::pool::TxPool;
use crate::NodeError;

/// WAL key of the last precommit this validator signed.
const WAL_LAST_PRECOMMIT: &[u8] = b"last-precommit";

/// What one authoring step did.
#[derive(Debug)]
pub struct Authored {
    pub height: Height,
    pub cdrs: usize,
}

/// The single validator's authoring loop. Returns when `shutdown` turns true (after finishing the
/// block in flight) or on a storage failure (the node must stop: it cannot commit).
pub async fn run_solo(
    chain: Arc<Chain>,
    pool: Arc<TxPool>,
    operator: OperatorId,
    key: SigningKey,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let params = &chain.spec.params;
    let interval = Duration::from_millis(params.block_interval_ms);
    let idle = Duration::from_millis(params.idle_heartbeat_ms);
    let max_candidates = crate::MAX_TXS_PER_BUILD;
    let key = Arc::new(key);
    let mut last_block = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            tracing::info!(target: "cdrchain::authoring", "authoring stopped");
            return Ok(());
        }
        if pool.is_empty() && last_block.elapsed() < idle {
            continue;
        }
        let candidates = pool.snapshot(max_candidates);
        let (chain2, key2, operator2) = (chain.clone(), key.clone(), operator.clone());
        let step = tokio::task::spawn_blocking(move || author_once(&chain2, &operator2, &key2, candidates))
            .await
            .map_err(|e| NodeError::Task(format!("authoring: {e}")))?;
        let (built, _) = step?;
        let mut done: Vec<Hash32> = built.included.clone();
        for (id, error) in &built.refused {
            tracing::warn!(target: "cdrchain::authoring", "dropping transaction {id}: {error}");
            done.push(*id);
        }
        pool.remove(&done);
        last_block = Instant::now();
    }
}

/// Builds, precommits and commits one block on the head.
pub fn author_once(
    chain: &Chain,
    operator: &OperatorId,
    key: &SigningKey,
    candidates: Vec<(Hash32, cdrchain_runtime::tx::SignedTransaction)>,
) -> Result<(BuiltBlock, Authored), NodeError> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let built = chain.build(operator, candidates, u64::try_from(now_ms).unwrap_or(u64::MAX))?;
    let height = built.block.header.number;
    let hash = built.block.hash();
    let round = safe_round(chain, height, hash)?;
    let vote = Vote { kind: VoteKind::Precommit, height, round, block_hash: Some(hash) };
    // The vote is durable before it is signed: a crash after this line never leads to a
    // conflicting precommit at (height, round).
    chain.storage.wal_put(WAL_LAST_PRECOMMIT, &(height, round, hash).encode())?;
    let signature = crypto::sign(key, &vote.signing_message(&chain.ctx.genesis_hash));
    let signatures = BoundedVec::new(vec![CommitSignature { authority: operator.clone(), signature }])
        .map_err(|_| NodeError::Task("one signature exceeds the certificate limit".into()))?;
    let certificate = CommitCertificate { height, round, block_hash: hash, signatures };
    chain.commit_built(&built, &certificate, operator)?;
    let cdrs = built.block.cdr_count();
    Ok((built, Authored { height, cdrs }))
}

/// The round to precommit `hash` at `height` in: 0, unless the WAL shows this validator already
/// precommitted a different block at this height (it crashed before committing), in which case
/// the next round after that one.
fn safe_round(chain: &Chain, height: Height, hash: Hash32) -> Result<Round, NodeError> {
    let Some(bytes) = chain.storage.wal_get(WAL_LAST_PRECOMMIT)? else {
        return Ok(Round(0));
    };
    let (signed_height, signed_round, signed_hash): (Height, Round, Hash32) = decode_exact(&bytes)
        .map_err(|e| NodeError::Task(format!("consensus WAL record does not decode: {e}")))?;
    if signed_height != height {
        return Ok(Round(0));
    }
    if signed_hash == hash {
        return Ok(signed_round);
    }
    let next = signed_round.0.checked_add(1).ok_or_else(|| NodeError::Task("round overflow".into()))?;
    tracing::warn!(
        target: "cdrchain::authoring",
        "already precommitted {signed_hash} at height {height} round {}; moving to round {next}",
        signed_round.0
    );
    Ok(Round(next))
}
