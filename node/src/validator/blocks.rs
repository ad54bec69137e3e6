//! What the machine's requests do to blocks: build one from the pool (getValue), check a
//! proposed one against our head (valid(v)), commit a decided one, and complete compact
//! proposals from the pool.

use std::time::{Duration, Instant};

use cdrchain_consensus::{Decision, Input};
use cdrchain_runtime::apply::{apply_block, ApplyError, TxError};
use cdrchain_runtime::block::Block;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, Round};

use super::{next_height, Driver, MAX_CLOCK_DRIFT_MS};
use crate::now_ms;
use crate::NodeError;

/// Why a proposed block is not valid(v) here.
#[derive(Debug, thiserror::Error)]
enum Invalid {
    #[error("its timestamp {timestamp_ms} is more than {} s ahead of this node's clock", MAX_CLOCK_DRIFT_MS / 1000)]
    Ahead { timestamp_ms: u64 },
    #[error(transparent)]
    Apply(ApplyError),
}

impl Driver {
    /// The proposer's getValue(): a block on the head from the pool.
    pub(super) fn build(&mut self, height: Height, round: Round) -> Result<(), NodeError> {
        if next_height(&self.chain) != height {
            return Ok(());
        }
        // Checkpoint signatures first, then per operator in sequence order (so that batches
        // gossiped out of order still chain), the operators interleaved from a lane that turns
        // with the height.
        let candidates = self.pool.candidates(crate::MAX_TXS_PER_BUILD, height.0);
        let parent_ts = self.chain.storage.parent_ref().timestamp_ms;
        let built =
            tokio::task::block_in_place(|| self.chain.build(&self.me, candidates, now_ms().max(parent_ts)))?;
        self.drop_refused(&built.refused, height);
        let hash = built.block.hash();
        tracing::info!(
            target: "cdrchain::consensus",
            "proposing block #{height} round {} {}… with {} CDRs in {} txs",
            round.0,
            &hash.to_hex()[..12],
            built.block.cdr_count(),
            built.block.transactions.len()
        );
        self.proposals.insert_built(built.block, self.machine.round(), built.changes);
        self.inputs.push(Input::Built { height, round, block_hash: hash });
        Ok(())
    }

    /// Drops transactions that can never apply (stale sequences, bad data); keeps those that only
    /// wait for an earlier one (a gap may close when the missing batch arrives), and starts their
    /// wait: [`crate::pool::TxPool::evict_waiting`] ends it.
    pub(super) fn drop_refused(&self, refused: &[(Hash32, TxError)], height: Height) {
        let (waiting, dead): (Vec<_>, Vec<_>) =
            refused.iter().partition(|(_, e)| matches!(e, TxError::SequenceGap { .. }));
        let dead: Vec<Hash32> = dead
            .into_iter()
            .map(|(id, e)| {
                tracing::warn!(target: "cdrchain::consensus", "dropping transaction {id}: {e}");
                *id
            })
            .collect();
        self.pool.remove(&dead);
        let waiting: Vec<Hash32> = waiting.into_iter().map(|(id, _)| *id).collect();
        self.pool.mark_waiting(&waiting, height.0);
    }

    /// The machine's valid(v): does the proposed block apply on our head?
    pub(super) fn execute(&mut self, height: Height, block_hash: Hash32) {
        if next_height(&self.chain) != height {
            // Storage is not where the machine is (a sync is under way): no verdict yet; the
            // machine cannot decide this block, and sync will bring it.
            return;
        }
        let verdict = match self.proposals.block(&block_hash) {
            None => {
                // Not held (never arrived, not kept, or still missing transactions): no verdict
                // yet, so never a decision on a block this node could not commit; it is checked
                // if it arrives while this height lasts.
                tracing::debug!(target: "cdrchain::consensus", "no block {block_hash} to check for height {height} yet");
                self.proposals.want(block_hash, height);
                return;
            }
            Some(block) if block.header.timestamp_ms > now_ms().saturating_add(MAX_CLOCK_DRIFT_MS) => {
                Err(Invalid::Ahead { timestamp_ms: block.header.timestamp_ms })
            }
            Some(block) => {
                let parent = self.chain.storage.parent_ref();
                tokio::task::block_in_place(|| {
                    apply_block(&self.chain.ctx, &*self.chain.storage, &parent, block).map_err(Invalid::Apply)
                })
            }
        };
        let valid = match verdict {
            Ok(changes) => {
                self.proposals.record_execution(block_hash, changes);
                true
            }
            Err(reason) => {
                tracing::warn!(target: "cdrchain::consensus", "proposed block #{height} {block_hash} is invalid: {reason}");
                false
            }
        };
        self.inputs.push(Input::Executed { height, block_hash, valid });
    }

    /// The machine decided: commits the block with its certificate, or syncs it when it was not
    /// executed here.
    pub(super) fn commit(&mut self, decision: Decision) -> Result<(), NodeError> {
        let Decision { height, block_hash, certificate, .. } = decision;
        let Some((block, changes)) = self.proposals.take_for_commit(&block_hash) else {
            tracing::warn!(target: "cdrchain::consensus", "decided block #{height} {block_hash} is not held here; syncing it");
            self.start_sync(None, Duration::ZERO);
            return Ok(());
        };
        let chain = self.chain.clone();
        let me = self.me.clone();
        tokio::task::block_in_place(|| chain.commit_decided(&block, &changes, &certificate, &me))?;
        self.after_commit(&block, &changes.tx_ids);
        Ok(())
    }

    /// After a block is committed (decided or synced): empties the pool of its transactions,
    /// signs the recent checkpoints still lacking our signature, forgets the proposals the block
    /// settles, and waits for work for the next height. `ids`: the block's transaction ids, as
    /// its execution computed them.
    pub(super) fn after_commit(&mut self, block: &Block, ids: &[Hash32]) {
        self.pool.remove(ids);
        self.sign_checkpoint(block);
        self.sign_contract_changes();
        for id in ids {
            self.announced.remove(id);
        }
        let height = block.header.number;
        let evicted = self.pool.evict_waiting(height.0);
        if !evicted.is_empty() {
            tracing::info!(
                target: "cdrchain::consensus",
                "evicted {} transactions that waited {} blocks for a sequence gap to close",
                evicted.len(),
                crate::pool::MAX_GAP_WAIT_BLOCKS
            );
        }
        self.proposals.prune_through(height);
        self.last_commit = Instant::now();
        self.ready_sent = false;
        if let Err(e) = self.follow_set_changes() {
            tracing::error!(target: "cdrchain::consensus", "cannot read the authority set after block #{height}: {e}");
        }
    }

    /// Completes the compact proposals whose transactions have all arrived, and checks those
    /// the machine is waiting for.
    pub(super) async fn complete_proposals(&mut self) -> Result<(), NodeError> {
        let completion = self.proposals.complete_from(&self.pool);
        for (hash, error) in completion.dropped {
            tracing::warn!(target: "cdrchain::consensus", "dropping proposed block {hash}: {error}");
        }
        for hash in completion.completed {
            tracing::debug!(target: "cdrchain::consensus", "block {hash} complete: its last transactions arrived");
            self.execute_wanted(hash).await?;
        }
        Ok(())
    }

    /// Checks a block the machine asked about before it was complete here, now that it is.
    pub(super) async fn execute_wanted(&mut self, hash: Hash32) -> Result<(), NodeError> {
        if let Some(height) = self.proposals.take_wanted(&hash) {
            self.execute(height, hash);
            self.carry_out(Vec::new()).await?;
        }
        Ok(())
    }
}
