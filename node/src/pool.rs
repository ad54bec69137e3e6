//! The transaction pool: bounded by count and by bytes, in total and per operator, de-duplicated,
//! and drawn from per operator in sequence order.
//!
//! Any registered operator may gossip well-signed transactions, so the pool must hold against one
//! that floods it: each operator other than this node's own has a quota (count and bytes), so one
//! operator can fill only its share; [`TxPool::candidates`] interleaves the operators' lanes, so
//! no operator's stuck batches keep another's out of a block; and a transaction that waits for a
//! sequence nobody fills is evicted after [`MAX_GAP_WAIT_BLOCKS`] blocks
//! ([`TxPool::evict_waiting`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::tx::{SignedTransaction, Transaction, MAX_CDRS_PER_BATCH};
use parity_scale_codec::Encode;

/// Blocks a transaction refused for a sequence gap may wait for the gap to close before it is
/// evicted: long enough for gossip arriving out of order (a second or two), short enough that a
/// batch waiting for a sequence nobody will fill does not hold its operator's quota for long.
/// Its sender re-gossips it if it is still wanted.
pub const MAX_GAP_WAIT_BLOCKS: u64 = 30;

/// Blocks' worth of CDRs an operator's batcher keeps in flight (signed, not yet committed): one
/// being committed, one being built.
pub const IN_FLIGHT_BLOCKS: u64 = 2;

/// Blocks' worth of slack in [`max_sequences_ahead`]: this node may be a block behind the sender.
pub const AHEAD_SLACK_BLOCKS: u64 = 1;

/// How far past an operator's committed next sequence a gossiped batch or gap may start: what an
/// honest batcher may have in flight, with slack. Beyond it the transaction is not pooled nor
/// forwarded (it would only wait for a gap).
pub fn max_sequences_ahead(max_block_cdrs: u32) -> u64 {
    (IN_FLIGHT_BLOCKS + AHEAD_SLACK_BLOCKS) * u64::from(max_block_cdrs) + MAX_CDRS_PER_BATCH as u64
}

/// Default byte budget of the whole pool (encoded transactions).
pub const DEFAULT_POOL_BYTES: usize = 256 * 1024 * 1024;

/// The least count quota an operator gets, however many operators share the pool.
pub const MIN_OPERATOR_TXS: usize = 64;

const _: () = assert!(IN_FLIGHT_BLOCKS >= 1 && AHEAD_SLACK_BLOCKS >= 1);
const _: () = assert!(MAX_GAP_WAIT_BLOCKS >= 2, "a gap must be able to close with the next block");
const _: () = assert!(MIN_OPERATOR_TXS >= 1);

/// Why the pool did not take a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the transaction pool is full ({max} transactions)")]
    Full { max: usize },
    #[error("the transaction pool is full ({max_bytes} bytes)")]
    FullBytes { max_bytes: usize },
    #[error("operator `{operator}` has its quota of the pool ({max_txs} transactions, {max_bytes} bytes)")]
    Quota { operator: OperatorId, max_txs: usize, max_bytes: usize },
    #[error("transaction {0} is already in the pool")]
    Duplicate(Hash32),
}

/// How much the pool holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// Most transactions of one operator other than `own`.
    pub operator_max_txs: usize,
    /// Most encoded bytes of one operator other than `own`.
    pub operator_max_bytes: usize,
    /// This node's operator: its own batcher bounds what it puts in flight, so it has no quota
    /// (only the pool's totals).
    pub own: Option<OperatorId>,
}

impl PoolLimits {
    /// Limits for a pool of `max_txs` and `max_bytes` shared by `operators` registered operators:
    /// each gets an equal share (at least [`MIN_OPERATOR_TXS`] transactions), `own` none.
    pub fn shared(max_txs: usize, max_bytes: usize, operators: usize, own: Option<OperatorId>) -> Self {
        let operators = operators.max(1);
        PoolLimits {
            max_txs,
            max_bytes,
            operator_max_txs: (max_txs / operators).max(MIN_OPERATOR_TXS).min(max_txs),
            operator_max_bytes: max_bytes / operators,
            own,
        }
    }
}

/// One operator's transactions for a block: its batches and gaps with their first sequences,
/// and its call events in arrival order.
type Lane = (Vec<(u64, Hash32)>, Vec<Hash32>);

#[derive(Debug)]
struct Entry {
    tx: SignedTransaction,
    /// Encoded size, counted against the byte limits.
    bytes: usize,
    /// The height at which a block first refused it for a sequence gap.
    waiting_since: Option<u64>,
}

/// What one operator holds.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    txs: usize,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Ids in arrival order.
    order: VecDeque<Hash32>,
    /// The transactions by id (the same set as `order`).
    txs: HashMap<Hash32, Entry>,
    /// Encoded bytes over all transactions held.
    bytes: usize,
    /// What each operator holds (operators holding nothing are absent).
    usage: HashMap<OperatorId, Usage>,
    /// CDRs over all transactions held, kept for the metrics without a walk of the pool.
    cdrs: usize,
}

impl Inner {
    /// The invariant (in part: the cheap half): `order` and `txs` hold the same ids.
    fn check(&self) {
        debug_assert_eq!(self.order.len(), self.txs.len(), "the pool's order and its map disagree");
    }

    fn take(&mut self, id: &Hash32) -> Option<Entry> {
        let entry = self.txs.remove(id)?;
        self.bytes -= entry.bytes;
        self.cdrs -= entry.tx.transaction.cdr_count();
        let operator = entry.tx.transaction.operator();
        if let Some(usage) = self.usage.get_mut(operator) {
            usage.txs -= 1;
            usage.bytes -= entry.bytes;
            if usage.txs == 0 {
                self.usage.remove(operator);
            }
        }
        Some(entry)
    }
}

/// Transactions waiting for a block. Removal happens once a block holding them is committed, when
/// they are found invalid, or when they waited too long for a gap; a crash of the block author
/// loses nothing here that the durable ingest queue does not hold.
pub struct TxPool {
    /// The transactions; one lock, held only for map and queue operations.
    inner: Mutex<Inner>,
    limits: PoolLimits,
}

impl std::fmt::Debug for TxPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxPool").field("len", &self.len()).field("limits", &self.limits).finish()
    }
}

impl TxPool {
    /// A pool of at most `max_txs` transactions and [`DEFAULT_POOL_BYTES`], with no quotas.
    pub fn new(max_txs: usize) -> Self {
        Self::with_limits(PoolLimits {
            max_txs,
            max_bytes: DEFAULT_POOL_BYTES,
            operator_max_txs: max_txs,
            operator_max_bytes: DEFAULT_POOL_BYTES,
            own: None,
        })
    }

    pub fn with_limits(limits: PoolLimits) -> Self {
        Self { inner: Mutex::new(Inner::default()), limits }
    }

    pub fn limits(&self) -> &PoolLimits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock means a thread panicked mid-update of plain collections; the data is
        // still consistent enough to keep serving (entries are whole), so recover it.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add(&self, id: Hash32, tx: SignedTransaction) -> Result<(), PoolError> {
        let bytes = tx.encoded_size();
        let mut inner = self.lock();
        if inner.txs.contains_key(&id) {
            return Err(PoolError::Duplicate(id));
        }
        let limits = &self.limits;
        let operator = tx.transaction.operator();
        // This node's checkpoint signatures always have room: they are small, a few at a time
        // (the latest checkpoints without our signature), and anchoring must not stop because
        // batches fill the pool.
        let reserved = limits.own.as_ref() == Some(operator)
            && matches!(tx.transaction, Transaction::CheckpointSignature(_));
        if !reserved && inner.order.len() >= limits.max_txs {
            return Err(PoolError::Full { max: limits.max_txs });
        }
        if !reserved && inner.bytes + bytes > limits.max_bytes {
            return Err(PoolError::FullBytes { max_bytes: limits.max_bytes });
        }
        let usage = inner.usage.get(operator).copied().unwrap_or_default();
        if limits.own.as_ref() != Some(operator)
            && (usage.txs >= limits.operator_max_txs || usage.bytes + bytes > limits.operator_max_bytes)
        {
            return Err(PoolError::Quota {
                operator: operator.clone(),
                max_txs: limits.operator_max_txs,
                max_bytes: limits.operator_max_bytes,
            });
        }
        let usage = inner.usage.entry(operator.clone()).or_default();
        usage.txs += 1;
        usage.bytes += bytes;
        inner.bytes += bytes;
        inner.cdrs += tx.transaction.cdr_count();
        inner.order.push_back(id);
        inner.txs.insert(id, Entry { tx, bytes, waiting_since: None });
        inner.check();
        Ok(())
    }

    /// Up to `max` transactions, oldest first, left in the pool.
    pub fn snapshot(&self, max: usize) -> Vec<(Hash32, SignedTransaction)> {
        let inner = self.lock();
        inner.order.iter().take(max).filter_map(|id| inner.txs.get(id).map(|e| (*id, e.tx.clone()))).collect()
    }

    /// Up to `max` transactions in the order a block should try them: governance transactions
    /// first (in arrival order), then checkpoint signatures (lowest height first: they are small and anchoring must not starve under load), then
    /// the operators' lanes interleaved, one transaction per lane in turn, starting at lane
    /// `rotate % lanes` (so no operator always comes first). A lane holds one operator's
    /// sequenced transactions (batches and gaps) in sequence order, then its call events in
    /// arrival order.
    pub fn candidates(&self, max: usize, rotate: u64) -> Vec<(Hash32, SignedTransaction)> {
        let inner = self.lock();
        let mut checkpoints = Vec::new();
        let mut governance = Vec::new();
        let mut lanes: BTreeMap<&OperatorId, Lane> = BTreeMap::new();
        for id in &inner.order {
            let Some(entry) = inner.txs.get(id) else { continue };
            let tx = &entry.tx.transaction;
            match tx {
                Transaction::CheckpointSignature(c) => checkpoints.push((c.height.0, *id)),
                Transaction::CdrBatch(b) => {
                    lanes.entry(tx.operator()).or_default().0.push((b.first_sequence.0, *id))
                }
                Transaction::SequenceGap(g) => {
                    lanes.entry(tx.operator()).or_default().0.push((g.from.0, *id))
                }
                Transaction::CallEvent(_) => lanes.entry(tx.operator()).or_default().1.push(*id),
                // Governance and interconnect agreements are rare: with the checkpoints, ahead
                // of the lanes, in arrival order (a proposal before what names it).
                Transaction::ProposeChange(_)
                | Transaction::ApproveChange(_)
                | Transaction::SetChangeSignature(_)
                | Transaction::Interconnect(_) => governance.push(*id),
            }
        }
        checkpoints.sort_unstable();
        let mut lanes: VecDeque<std::vec::IntoIter<Hash32>> = lanes
            .into_values()
            .map(|(mut sequenced, events)| {
                sequenced.sort_unstable();
                sequenced.into_iter().map(|(_, id)| id).chain(events).collect::<Vec<_>>().into_iter()
            })
            .collect();
        if !lanes.is_empty() {
            let start = usize::try_from(rotate % lanes.len() as u64).unwrap_or(0);
            lanes.rotate_left(start);
        }
        let mut out: Vec<Hash32> =
            governance.into_iter().chain(checkpoints.into_iter().map(|(_, id)| id)).take(max).collect();
        while out.len() < max {
            let Some(mut lane) = lanes.pop_front() else { break };
            if let Some(id) = lane.next() {
                out.push(id);
                lanes.push_back(lane);
            }
        }
        out.into_iter().filter_map(|id| inner.txs.get(&id).map(|e| (id, e.tx.clone()))).collect()
    }

    /// Notes that a block at `height` refused these transactions for a sequence gap: each starts
    /// its wait the first time.
    pub fn mark_waiting(&self, ids: &[Hash32], height: u64) {
        let mut inner = self.lock();
        for id in ids {
            if let Some(entry) = inner.txs.get_mut(id) {
                entry.waiting_since.get_or_insert(height);
            }
        }
    }

    /// Evicts the transactions that have waited for a gap more than [`MAX_GAP_WAIT_BLOCKS`] blocks
    /// by `height`; answers their ids.
    pub fn evict_waiting(&self, height: u64) -> Vec<Hash32> {
        let expired: Vec<Hash32> = {
            let inner = self.lock();
            inner
                .txs
                .iter()
                .filter(|(_, e)| e.waiting_since.is_some_and(|since| height >= since + MAX_GAP_WAIT_BLOCKS))
                .map(|(id, _)| *id)
                .collect()
        };
        self.remove(&expired);
        expired
    }

    pub fn remove(&self, ids: &[Hash32]) {
        if ids.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for id in ids {
            inner.take(id);
        }
        let Inner { order, txs, .. } = &mut *inner;
        order.retain(|id| txs.contains_key(id));
        inner.check();
    }

    /// Ids of the transactions `keep` selects, oldest first (nothing is cloned but the ids).
    pub fn ids_where(&self, keep: impl Fn(&SignedTransaction) -> bool) -> Vec<Hash32> {
        let inner = self.lock();
        inner.order.iter().filter(|id| inner.txs.get(*id).is_some_and(|e| keep(&e.tx))).copied().collect()
    }

    /// The transactions with these ids that are still in the pool.
    pub fn get_many(&self, ids: &[Hash32]) -> Vec<SignedTransaction> {
        let inner = self.lock();
        ids.iter().filter_map(|id| inner.txs.get(id).map(|e| e.tx.clone())).collect()
    }

    pub fn contains(&self, id: &Hash32) -> bool {
        self.lock().txs.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn cdr_count(&self) -> usize {
        self.lock().cdrs
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Whether a transaction of up to `bytes` would fit the pool's totals (the batcher asks before
    /// it signs a batch).
    pub fn has_space(&self, bytes: usize) -> bool {
        let inner = self.lock();
        inner.order.len() < self.limits.max_txs && inner.bytes + bytes <= self.limits.max_bytes
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
