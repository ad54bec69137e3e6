use super::*;
use cdrchain_runtime::checkpoint::{CheckpointSignature, EvmSignature};
use cdrchain_runtime::crypto::EvmAddress;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::sample::SampleChain;
use parity_scale_codec::Encode;

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).expect("a valid operator name")
}

#[test]
fn bounded_deduplicated_ordered() -> Result<(), Box<dyn std::error::Error>> {
    let chain = SampleChain::new(&["alice", "bob"]);
    let pool = TxPool::new(2);
    let a = chain.batch("alice", 0, 3);
    let b = chain.batch("alice", 3, 2);
    let c = chain.batch("bob", 0, 1);
    let g = chain.genesis_hash();
    pool.add(a.id(&g), a.clone())?;
    assert_eq!(pool.add(a.id(&g), a.clone()), Err(PoolError::Duplicate(a.id(&g))));
    pool.add(b.id(&g), b.clone())?;
    assert_eq!(pool.add(c.id(&g), c.clone()), Err(PoolError::Full { max: 2 }));
    assert_eq!(pool.cdr_count(), 5);
    assert_eq!(pool.bytes(), a.encoded_size() + b.encoded_size());
    let ids: Vec<_> = pool.snapshot(10).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![a.id(&g), b.id(&g)]);
    pool.remove(&[a.id(&g)]);
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.cdr_count(), 2);
    assert_eq!(pool.bytes(), b.encoded_size());
    pool.add(c.id(&g), c)?;
    assert_eq!(pool.snapshot(1)[0].0, b.id(&g));
    Ok(())
}

#[test]
fn one_operator_fills_only_its_share_and_own_transactions_have_no_quota(
) -> Result<(), Box<dyn std::error::Error>> {
    let chain = SampleChain::new(&["alice", "bob", "eve"]);
    let g = chain.genesis_hash();
    let one = chain.batch("eve", 0, 1).encoded_size();
    // Three operators share 30 transactions and room for about 30 one-CDR batches.
    let limits = PoolLimits::shared(30, 30 * one + 100, 3, Some(op("alice")));
    assert_eq!(limits.operator_max_txs, 30, "at least MIN_OPERATOR_TXS, at most the whole pool");
    let limits = PoolLimits { operator_max_txs: 10, ..limits };
    let pool = TxPool::with_limits(limits);
    let mut refused = None;
    for i in 0..100 {
        let tx = chain.batch("eve", 1_000_000 + i, 1);
        if let Err(e) = pool.add(tx.id(&g), tx) {
            refused = Some(e);
            break;
        }
    }
    assert!(
        matches!(refused, Some(PoolError::Quota { ref operator, .. }) if operator.as_str() == "eve"),
        "{refused:?}"
    );
    assert_eq!(pool.len(), 10, "eve holds exactly her share");
    // bob still gets in; alice (this node) is held only by the totals.
    let bob = chain.batch("bob", 0, 1);
    pool.add(bob.id(&g), bob)?;
    for i in 0..19 {
        let tx = chain.batch("alice", i, 1);
        pool.add(tx.id(&g), tx)?;
    }
    let tx = chain.batch("alice", 19, 1);
    assert_eq!(pool.add(tx.id(&g), tx), Err(PoolError::Full { max: 30 }));
    Ok(())
}

#[test]
fn this_nodes_checkpoint_signatures_get_in_when_batches_fill_the_pool(
) -> Result<(), Box<dyn std::error::Error>> {
    let chain = SampleChain::new(&["alice", "bob"]);
    let g = chain.genesis_hash();
    let pool = TxPool::with_limits(PoolLimits::shared(2, DEFAULT_POOL_BYTES, 2, Some(op("alice"))));
    for i in 0..2 {
        let tx = chain.batch("alice", i, 1);
        pool.add(tx.id(&g), tx)?;
    }
    let signature = |operator: &str| {
        chain.sign(Transaction::CheckpointSignature(CheckpointSignature {
            operator: op(operator),
            height: Height(10),
            contract: EvmAddress([7; 20]),
            signature: EvmSignature([1; 65]),
        }))
    };
    let ours = signature("alice");
    pool.add(ours.id(&g), ours)?;
    let theirs = signature("bob");
    assert_eq!(pool.add(theirs.id(&g), theirs), Err(PoolError::Full { max: 2 }));
    Ok(())
}

#[test]
fn the_byte_budget_holds_whatever_the_count() -> Result<(), Box<dyn std::error::Error>> {
    let chain = SampleChain::new(&["alice", "eve"]);
    let g = chain.genesis_hash();
    let big = chain.batch("eve", 0, 200);
    let budget = 3 * big.encoded_size();
    let pool = TxPool::with_limits(PoolLimits::shared(10_000, budget, 1, None));
    let mut taken = 0;
    for i in 0..50 {
        let tx = chain.batch("eve", 1_000 + i * 200, 200);
        if pool.add(tx.id(&g), tx).is_ok() {
            taken += 1;
        }
    }
    assert_eq!(taken, 3);
    assert!(pool.bytes() <= budget);
    assert!(!pool.has_space(big.encoded_size()));
    Ok(())
}

#[test]
fn candidates_interleave_the_lanes_in_sequence_order_with_checkpoint_signatures_first(
) -> Result<(), Box<dyn std::error::Error>> {
    let chain = SampleChain::new(&["alice", "bob"]);
    let g = chain.genesis_hash();
    let pool = TxPool::new(100);
    // bob's batches arrive out of order and before alice's.
    let b2 = chain.batch("bob", 10, 5);
    let b1 = chain.batch("bob", 0, 10);
    let b3 = chain.batch("bob", 15, 5);
    let a1 = chain.batch("alice", 0, 1);
    let a2 = chain.batch("alice", 1, 1);
    let sig = chain.sign(Transaction::CheckpointSignature(CheckpointSignature {
        operator: op("alice"),
        height: Height(10),
        contract: EvmAddress([7; 20]),
        signature: EvmSignature([1; 65]),
    }));
    for tx in [&b2, &b1, &b3, &a1, &a2, &sig] {
        pool.add(tx.id(&g), tx.clone())?;
    }
    let order =
        |rotate| -> Vec<Hash32> { pool.candidates(100, rotate).into_iter().map(|(id, _)| id).collect() };
    let id = |tx: &SignedTransaction| tx.id(&g);
    assert_eq!(order(0), vec![id(&sig), id(&a1), id(&b1), id(&a2), id(&b2), id(&b3)]);
    assert_eq!(order(1), vec![id(&sig), id(&b1), id(&a1), id(&b2), id(&a2), id(&b3)]);
    assert_eq!(pool.candidates(3, 0).len(), 3);
    Ok(())
}

#[test]
fn transactions_waiting_for_a_gap_are_evicted_after_the_bound() -> Result<(), Box<dyn std::error::Error>> {
    let chain = SampleChain::new(&["eve"]);
    let g = chain.genesis_hash();
    let pool = TxPool::new(100);
    let stuck = chain.batch("eve", 1_000, 1);
    let later = chain.batch("eve", 2_000, 1);
    pool.add(stuck.id(&g), stuck.clone())?;
    pool.add(later.id(&g), later.clone())?;
    pool.mark_waiting(&[stuck.id(&g)], 5);
    // A later refusal does not restart the wait.
    pool.mark_waiting(&[stuck.id(&g)], 20);
    assert!(pool.evict_waiting(5 + MAX_GAP_WAIT_BLOCKS - 1).is_empty());
    assert_eq!(pool.evict_waiting(5 + MAX_GAP_WAIT_BLOCKS), vec![stuck.id(&g)]);
    assert!(!pool.contains(&stuck.id(&g)));
    assert!(pool.contains(&later.id(&g)), "never refused: never evicted");
    Ok(())
}
