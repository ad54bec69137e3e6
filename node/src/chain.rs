//! Block building, import and commit: the seams consensus drives.
//!
//! - [`Chain::build`] builds a block on the head from pool transactions (the proposer's job);
//! - [`Chain::commit_decided`] commits a block consensus decided (built or checked here);
//! - [`Chain::import`] checks a block from elsewhere (`apply_block` and its commit certificate)
//!   and commits it: block sync and `import-blocks` use it.
//!
//! Each commit is one storage batch; afterwards the finalized head is announced to subscribers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use cdrchain_chain_spec::ChainSpec;
use cdrchain_consensus::Validators;
use cdrchain_runtime::apply::{apply_block, BlockBuilder, ChainContext, PushError, StateChanges, TxError};
use cdrchain_runtime::block::{Block, CommitCertificate, Header};
use cdrchain_runtime::crypto::PublicKey;
use cdrchain_runtime::governance::{self, AuthoritySet};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Sequence};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use cdrchain_storage::Storage;
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::NodeError;

/// A block built on the head, with what it changes and what happened to each pool transaction.
#[derive(Debug)]
pub struct BuiltBlock {
    pub block: Block,
    pub changes: StateChanges,
    /// Pool ids included, in block order.
    pub included: Vec<Hash32>,
    /// Pool ids found invalid against the head (to drop from the pool), with the reason.
    pub refused: Vec<(Hash32, TxError)>,
    pub build_seconds: f64,
}

/// Finalized heads a subscriber may fall behind by; one that falls further behind misses the
/// oldest (it reads the head from storage instead).
const MAX_UNREAD_HEADS: usize = 256;

/// The chain as this node holds it.
pub struct Chain {
    /// Blocks, state and the ingest queue; every commit is one batch of it.
    pub storage: Arc<Storage>,
    /// The chain spec this node runs (its genesis hash is storage's).
    pub spec: ChainSpec,
    /// What `apply_block` needs from the spec, derived once.
    pub ctx: ChainContext,
    /// Announces each committed header to the subscribers (RPC subscriptions).
    heads: broadcast::Sender<Header>,
    /// Build and import timings, heights, CDR counts.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("chain", &self.spec.id).finish_non_exhaustive()
    }
}

impl Chain {
    pub fn new(storage: Arc<Storage>, spec: ChainSpec, metrics: Arc<Metrics>) -> Self {
        let (heads, _) = broadcast::channel(MAX_UNREAD_HEADS);
        Self { ctx: spec.chain_context(), storage, spec, heads, metrics }
    }

    /// New finalized heads, as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Header> {
        self.heads.subscribe()
    }

    /// Builds a block on the current head from `candidates` (in order), skipping those that are
    /// invalid or do not fit; once one of an operator's batches or gaps is left out, its later
    /// ones are too (they could not chain on it).
    pub fn build(
        &self,
        proposer: &OperatorId,
        candidates: Vec<(Hash32, SignedTransaction)>,
        timestamp_ms: u64,
    ) -> Result<BuiltBlock, NodeError> {
        let started = Instant::now();
        let parent = self.storage.parent_ref();
        let height = parent.number.0 + 1;
        let mut builder =
            BlockBuilder::new(&self.ctx, &*self.storage, parent, proposer.clone(), timestamp_ms)
                .map_err(|source| NodeError::InvalidBlock { height, source })?;
        let mut included = Vec::new();
        let mut refused = Vec::new();
        // Operators whose sequenced transactions cannot go further in this block: one of theirs
        // did not fit or waits for a gap, so their later ones cannot chain on it. Others go on.
        let mut stalled: HashSet<OperatorId> = HashSet::new();
        for (id, tx) in candidates {
            let sequenced = matches!(tx.transaction, Transaction::CdrBatch(_) | Transaction::SequenceGap(_));
            let operator = tx.transaction.operator().clone();
            if sequenced && stalled.contains(&operator) {
                continue;
            }
            match builder.push(tx) {
                Ok(()) => included.push(id),
                Err(PushError::Invalid(error)) => {
                    if sequenced && matches!(error, TxError::SequenceGap { .. }) {
                        stalled.insert(operator);
                    }
                    refused.push((id, error));
                }
                // Not `break`: a smaller transaction, or another operator's, may still fit. Over
                // a per-block quota (gaps opened): the next block takes it.
                Err(PushError::Full | PushError::Later(_)) => {
                    if sequenced {
                        stalled.insert(operator);
                    }
                }
                Err(PushError::Fatal(source)) => return Err(NodeError::InvalidBlock { height, source }),
            }
        }
        let (block, changes) =
            builder.finish().map_err(|source| NodeError::InvalidBlock { height, source })?;
        let build_seconds = started.elapsed().as_secs_f64();
        self.metrics.block_build_seconds.observe(build_seconds);
        Ok(BuiltBlock { block, changes, included, refused, build_seconds })
    }

    /// Commits a block consensus decided, whose state changes this node already computed (it
    /// built the block or checked it with `apply_block` before voting for it).
    pub fn commit_decided(
        &self,
        block: &Block,
        changes: &StateChanges,
        certificate: &CommitCertificate,
        own: &OperatorId,
    ) -> Result<(), NodeError> {
        let started = Instant::now();
        let dequeue = last_sequence_of(block, own);
        let requeued = self.storage.commit_block_of(own, block, changes, certificate, dequeue)?;
        log_requeued(own, &requeued);
        crate::set_steps::record(&self.storage, block, certificate, changes);
        self.after_commit(block, certificate, None, started);
        Ok(())
    }

    /// The authority set that certifies block `height`, from the committed state: exact for
    /// every height up to the head's + `AUTHORITY_CHANGE_DELAY_BLOCKS` (the chain changes its set
    /// only that long after approving it), the set in force at the head before that.
    pub fn authority_set_at(&self, height: Height) -> Result<AuthoritySet, NodeError> {
        Ok(governance::authority_set_at(&*self.storage, height)?)
    }

    /// [`Chain::authority_set_at`] as the consensus machine takes it.
    pub fn validators_at(&self, height: Height) -> Result<Validators, NodeError> {
        let set = self.authority_set_at(height)?;
        Validators::new(self.ctx.genesis_hash, set.signing_keys())
            .ok_or_else(|| NodeError::Config(format!("the authority set at height {height} is empty")))
    }

    /// The key that signs `operator`'s transactions in the next block (a rotation in force there
    /// counts); `None` for an operator the chain does not know or removed.
    pub fn transaction_key(&self, operator: &OperatorId) -> Result<Option<PublicKey>, NodeError> {
        Ok(crate::keys::registered_next(&self.storage, operator)?.map(|record| record.signing_key))
    }

    /// Checks and commits a block from elsewhere: its transactions and roots through
    /// `apply_block`, its finality through the certificate against the authority set. Answers
    /// the block's transaction ids.
    pub fn import(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        own: &OperatorId,
    ) -> Result<Vec<Hash32>, NodeError> {
        let started = Instant::now();
        let height = block.header.number.0;
        // The set in force at the block's height, as the head's state knows it.
        let set = self.authority_set_at(block.header.number)?;
        certificate
            .verify(&block.header, &self.ctx.genesis_hash, &set.signing_keys())
            .map_err(|source| NodeError::BadCertificate { height, source })?;
        let parent = self.storage.parent_ref();
        let changes = apply_block(&self.ctx, &*self.storage, &parent, block)
            .map_err(|source| NodeError::InvalidBlock { height, source })?;
        let dequeue = last_sequence_of(block, own);
        let requeued = self.storage.commit_block_of(own, block, &changes, certificate, dequeue)?;
        log_requeued(own, &requeued);
        crate::set_steps::record(&self.storage, block, certificate, &changes);
        self.after_commit(block, certificate, Some(&set), started);
        Ok(changes.tx_ids)
    }

    /// Metrics and the log line of a committed block; `set` is the set that certified it, when
    /// the caller has read it already.
    fn after_commit(
        &self,
        block: &Block,
        certificate: &CommitCertificate,
        set: Option<&AuthoritySet>,
        started: Instant,
    ) {
        let header = &block.header;
        let cdrs = block.cdr_count();
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.block_import_seconds.observe(seconds);
        self.metrics.on_commit(header.number.0, cdrs as u64);
        // Per block, not per CDR: who is missing from the certificate, and declared gaps.
        let read;
        let set = match set {
            Some(set) => Some(set),
            None => {
                read = self.authority_set_at(header.number).ok();
                read.as_ref()
            }
        };
        if let Some(set) = set {
            let members: Vec<&OperatorId> = set.members.iter().map(|m| &m.id).collect();
            self.metrics.on_certificate(&members, certificate);
        }
        for tx in block.transactions.iter() {
            if let Transaction::SequenceGap(gap) = &tx.transaction {
                self.metrics
                    .on_sequence_gap(&gap.operator, gap.to.0.saturating_sub(gap.from.0).saturating_add(1));
            }
        }
        tracing::info!(
            target: "cdrchain::chain",
            "committed block #{} {}… with {} CDRs in {} txs ({:.1} ms)",
            header.number,
            &header.hash().to_hex()[..12],
            cdrs,
            block.transactions.len(),
            seconds * 1000.0,
        );
        // No subscribers is fine.
        let _ = self.heads.send(header.clone());
    }
}

/// Says loudly that the chain committed other CDRs at sequences this node had queued: another node
/// signs for the same operator (or a copy of this database runs elsewhere). The CDRs were queued
/// again at the end (review M10); their first ids were answered to their senders and are now
/// another record's.
fn log_requeued(own: &OperatorId, requeued: &[cdrchain_storage::Requeued]) {
    let (Some(first), Some(last)) = (requeued.first(), requeued.last()) else { return };
    tracing::error!(
        target: "cdrchain::chain",
        "the chain committed other CDRs than this node queued at {} of `{own}`'s sequences          ({own}:{}..={own}:{}): another node signs for `{own}`, or a copy of this database runs          elsewhere; stop it. This node's {} CDRs were queued again as {own}:{}..={own}:{}",
        requeued.len(),
        first.from.0,
        last.from.0,
        requeued.len(),
        first.to.0,
        last.to.0,
    );
}

/// The last sequence of `operator`'s CDR batches in `block`, if any: what the ingest queue may
/// drop once the block is committed.
pub fn last_sequence_of(block: &Block, operator: &OperatorId) -> Option<Sequence> {
    block
        .transactions
        .iter()
        .filter_map(|tx| match &tx.transaction {
            Transaction::CdrBatch(batch) if &batch.operator == operator => {
                let count = u64::try_from(batch.cdrs.len()).ok()?;
                batch.first_sequence.0.checked_add(count)?.checked_sub(1).map(Sequence)
            }
            Transaction::SequenceGap(gap) if &gap.operator == operator => Some(gap.to),
            _ => None,
        })
        .max()
}
