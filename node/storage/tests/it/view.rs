//! The StateView, the snapshot and the NodeStore against the in-memory chain: state roots,
//! Merkle proofs, derived log levels.

use std::collections::{BTreeMap, BTreeSet};

use cdrchain_runtime::apply::{apply_block, BlockBuilder};
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::merkle::{
    consistency_proof, inclusion_proof, root_at, verify_consistency, verify_inclusion, Domain, NodeId,
    NodeStore, ProofError,
};
use cdrchain_runtime::state::{MemoryState, StateView};
use cdrchain_storage::{layout, Storage};

use crate::common::{certificate, Fixture};
use crate::{expected_cdrs, four_blocks, pairs, raw, tree};

#[test]
fn the_state_view_agrees_with_memory_state() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    drop(storage);
    let storage = fx.open();
    let chain = &fx.chain;
    let ctx = &chain.ctx;

    // The next block, built on the in-memory chain, applies identically on storage.
    let txs = vec![chain.batch("carol", 20, 15), chain.batch("alice", 80, 5)];
    let (next, built, refused) = chain.build(txs.clone(), 5_000).unwrap();
    assert!(refused.is_empty());
    let on_storage = apply_block(ctx, &storage, &storage.parent_ref(), &next).unwrap();
    let in_memory = apply_block(ctx, &chain.state, &chain.parent, &next).unwrap();
    assert_eq!(on_storage, in_memory);
    assert_eq!(on_storage, built);

    // The builder on storage seals the very same block.
    let proposer = chain.operators[0].clone();
    let mut builder = BlockBuilder::new(ctx, &storage, storage.parent_ref(), proposer, 5_000).unwrap();
    for tx in txs {
        builder.push(tx).unwrap();
    }
    let (from_storage, _) = builder.finish().unwrap();
    assert_eq!(from_storage, next);

    // State roots.
    let on_disk =
        MemoryState { pairs: pairs(&storage), tree: tree(&storage), cdr_log: storage.cdr_log().unwrap() };
    assert_eq!(on_disk.state_root(), chain.state.state_root());
    assert_eq!(on_disk.state_root(), storage.head().unwrap().header.state_root);

    // A snapshot stays at its block while the next one commits; the live view moves on.
    let snapshot = storage.snapshot();
    let parent = snapshot.parent_ref();
    storage.commit_block(&next, &on_storage, &certificate(&next), None).unwrap();
    assert_eq!(snapshot.parent_ref(), parent);
    assert_eq!(snapshot.head().unwrap().header.number, Height(4));
    assert_eq!(pairs(&snapshot), chain.state.pairs);
    assert_eq!(snapshot.cdr_log().unwrap(), chain.state.cdr_log);
    assert_eq!(apply_block(ctx, &snapshot, &parent, &next).unwrap(), built);
    assert_eq!(storage.parent_ref().number, Height(5));
    let mut after = chain.state.clone();
    after.apply(&built);
    assert_eq!(pairs(&storage), after.pairs);
    assert_eq!(storage.cdr_log().unwrap(), after.cdr_log);
    // The block's new log nodes are visible to the live store, not to the snapshot.
    let (id, hash) = *built.new_log_nodes.last().unwrap();
    assert_eq!(storage.node(id).unwrap(), Some(hash));
    assert_eq!(snapshot.node(id).unwrap(), None);
}

#[test]
fn inclusion_and_consistency_proofs_from_storage_verify() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    four_blocks(&mut fx, &storage);
    // One more with an odd size so that the head's tree is not perfect.
    let txs = vec![fx.chain.batch("carol", 20, 13)];
    fx.commit(&storage, txs, 5_000);
    drop(storage);
    let storage = fx.open();
    let all = expected_cdrs(&fx.chain);
    let headers: Vec<_> = fx.chain.blocks.iter().map(|b| b.header.clone()).collect();
    for header in &headers {
        let size = header.cdr_log_size;
        assert_eq!(root_at(&storage, Domain::CDR_LOG, size).unwrap(), header.cdr_log_root);
        for stored in all.iter().filter(|s| s.leaf_index < size) {
            let proof = inclusion_proof(&storage, Domain::CDR_LOG, stored.leaf_index, size).unwrap();
            verify_inclusion(Domain::CDR_LOG, &stored.cdr.leaf_hash(), &proof, &header.cdr_log_root)
                .unwrap_or_else(|e| panic!("leaf {} under header {}: {e}", stored.leaf_index, header.number));
            // And not for another leaf's hash.
            let other = &all[(stored.leaf_index as usize + 1) % size as usize];
            if other.leaf_index != stored.leaf_index {
                assert!(verify_inclusion(
                    Domain::CDR_LOG,
                    &other.cdr.leaf_hash(),
                    &proof,
                    &header.cdr_log_root
                )
                .is_err());
            }
        }
    }
    for old in headers.iter().filter(|h| h.cdr_log_size > 0) {
        for new in headers.iter().filter(|h| h.number >= old.number) {
            let proof =
                consistency_proof(&storage, Domain::CDR_LOG, old.cdr_log_size, new.cdr_log_size).unwrap();
            verify_consistency(Domain::CDR_LOG, &old.cdr_log_root, &new.cdr_log_root, &proof).unwrap();
        }
    }
    // Beyond the stored log there are no nodes.
    let size = headers.last().unwrap().cdr_log_size;
    assert_eq!(storage.node(NodeId::leaf(size)).unwrap(), None);
    assert!(matches!(
        inclusion_proof(&storage, Domain::CDR_LOG, 0, size + 1),
        Err(ProofError::MissingNode { .. })
    ));
}

#[test]
fn log_levels_one_to_three_are_folded_from_leaves_not_stored() {
    let mut fx = Fixture::new();
    let storage = fx.open();
    // 37 + 64 + 19 = 120 leaves: perfect subtrees at every level up to 6, and partial ones.
    let mut expected = BTreeMap::new();
    for (i, (operator, first, count)) in
        [("alice", 0, 37), ("bob", 0, 64), ("alice", 37, 19)].into_iter().enumerate()
    {
        let txs = vec![fx.chain.batch(operator, first, count)];
        let (block, changes) = fx.next_block(txs, 1_000 * (i as u64 + 1));
        storage.commit_block(&block, &changes, &certificate(&block), None).unwrap();
        expected.extend(changes.new_log_nodes.iter().copied());
    }
    assert!(expected.keys().any(|id| (1..=3).contains(&id.level)) && expected.keys().any(|id| id.level >= 4));
    let check = |storage: &Storage| {
        for (id, hash) in &expected {
            assert_eq!(storage.node(*id).unwrap(), Some(*hash), "node {id:?}");
        }
        // Past the log's end: leaves 120.. are not there, so (3, 15) = leaves 120-127 is not either.
        assert_eq!(storage.node(NodeId::new(3, 15)).unwrap(), None);
        assert_eq!(storage.node(NodeId::new(1, 60)).unwrap(), None);
        assert_eq!(storage.node(NodeId::new(3, u64::MAX)).unwrap(), None);
        // Proofs at every size still verify against the roots.
        for size in [1u64, 7, 8, 9, 16, 37, 101, 120] {
            let root = root_at(storage, Domain::CDR_LOG, size).unwrap();
            for leaf in [0, size / 2, size - 1] {
                let proof = inclusion_proof(storage, Domain::CDR_LOG, leaf, size).unwrap();
                let leaf_hash = storage.node(NodeId::leaf(leaf)).unwrap().unwrap();
                verify_inclusion(Domain::CDR_LOG, &leaf_hash, &proof, &root).unwrap();
            }
        }
    };
    check(&storage);
    drop(storage);
    // On disk: levels 0 and >= 4 only.
    {
        let db = raw(fx.dir.path());
        let levels: BTreeSet<u8> = db
            .iterator_cf(db.cf_handle(layout::LOG_NODES).unwrap(), rocksdb::IteratorMode::Start)
            .map(|item| item.unwrap().0[0])
            .collect();
        assert_eq!(levels, BTreeSet::from([0, 4, 5, 6]));
    }
    check(&fx.open());
}
