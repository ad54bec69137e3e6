//! The transaction pool: bounded, de-duplicated, in arrival order.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::tx::SignedTransaction;

/// Why the pool did not take a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the transaction pool is full ({max} transactions)")]
    Full { max: usize },
    #[error("transaction {0} is already in the pool")]
    Duplicate(Hash32),
}

#[derive(Default)]
struct Inner {
    /// Ids in arrival order: what blocks take first.
    order: VecDeque<Hash32>,
    /// The transactions by id (the same set as `order`).
    txs: HashMap<Hash32, SignedTransaction>,
    /// CDRs over all transactions held, kept for the metrics without a walk of the pool.
    cdrs: usize,
}

impl Inner {
    /// The invariant (in part: the cheap half): `order` and `txs` hold the same ids.
    fn check(&self) {
        debug_assert_eq!(self.order.len(), self.txs.len(), "the pool's order and its map disagree");
    }
}

/// Transactions waiting for a block. Removal happens only once a block holding them is
/// committed (or they are found invalid), so a crash of the block author loses nothing here that
/// the durable ingest queue does not hold.
pub struct TxPool {
    /// The transactions; one lock, held only for map and queue operations.
    inner: Mutex<Inner>,
    /// Most transactions held: the pool's memory is bounded by this times the largest transaction.
    max_txs: usize,
}

impl std::fmt::Debug for TxPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxPool").field("len", &self.len()).field("max_txs", &self.max_txs).finish()
    }
}

impl TxPool {
    pub fn new(max_txs: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), max_txs }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock means a thread panicked mid-update of plain collections; the data is
        // still consistent enough to keep serving (entries are whole), so recover it.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add(&self, id: Hash32, tx: SignedTransaction) -> Result<(), PoolError> {
        let mut inner = self.lock();
        if inner.txs.contains_key(&id) {
            return Err(PoolError::Duplicate(id));
        }
        if inner.order.len() >= self.max_txs {
            return Err(PoolError::Full { max: self.max_txs });
        }
        inner.cdrs += tx.transaction.cdr_count();
        inner.order.push_back(id);
        inner.txs.insert(id, tx);
        inner.check();
        Ok(())
    }

    /// Up to `max` transactions, oldest first, left in the pool.
    pub fn snapshot(&self, max: usize) -> Vec<(Hash32, SignedTransaction)> {
        let inner = self.lock();
        inner.order.iter().take(max).filter_map(|id| inner.txs.get(id).map(|tx| (*id, tx.clone()))).collect()
    }

    pub fn remove(&self, ids: &[Hash32]) {
        if ids.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for id in ids {
            if let Some(tx) = inner.txs.remove(id) {
                inner.cdrs -= tx.transaction.cdr_count();
            }
        }
        let Inner { order, txs, .. } = &mut *inner;
        order.retain(|id| txs.contains_key(id));
        inner.check();
    }

    /// Ids of the transactions `keep` selects, oldest first (nothing is cloned but the ids).
    pub fn ids_where(&self, keep: impl Fn(&SignedTransaction) -> bool) -> Vec<Hash32> {
        let inner = self.lock();
        inner.order.iter().filter(|id| inner.txs.get(*id).is_some_and(&keep)).copied().collect()
    }

    /// The transactions with these ids that are still in the pool.
    pub fn get_many(&self, ids: &[Hash32]) -> Vec<SignedTransaction> {
        let inner = self.lock();
        ids.iter().filter_map(|id| inner.txs.get(id).cloned()).collect()
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

    pub fn has_space(&self) -> bool {
        self.len() < self.max_txs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::sample::SampleChain;

    #[test]
    fn bounded_deduplicated_ordered() {
        let chain = SampleChain::new(&["alice", "bob"]);
        let pool = TxPool::new(2);
        let a = chain.batch("alice", 0, 3);
        let b = chain.batch("alice", 3, 2);
        let c = chain.batch("bob", 0, 1);
        let g = chain.genesis_hash();
        pool.add(a.id(&g), a.clone()).unwrap();
        assert_eq!(pool.add(a.id(&g), a.clone()), Err(PoolError::Duplicate(a.id(&g))));
        pool.add(b.id(&g), b.clone()).unwrap();
        assert_eq!(pool.add(c.id(&g), c.clone()), Err(PoolError::Full { max: 2 }));
        assert_eq!(pool.cdr_count(), 5);
        let ids: Vec<_> = pool.snapshot(10).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![a.id(&g), b.id(&g)]);
        pool.remove(&[a.id(&g)]);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.cdr_count(), 2);
        pool.add(c.id(&g), c).unwrap();
        assert_eq!(pool.snapshot(1)[0].0, b.id(&g));
    }
}
