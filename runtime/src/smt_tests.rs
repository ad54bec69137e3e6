use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

type Nodes = BTreeMap<Vec<u8>, Vec<u8>>;

fn changes_of(batch: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Vec<Change> {
    let mut changes: Vec<Change> =
        batch.iter().map(|(k, v)| (key_path(k), v.as_deref().map(value_hash))).collect();
    changes.sort_by_key(|(path, _)| *path);
    changes
}

/// The nodes of a tree built in one go from `pairs`.
fn built(pairs: &BTreeMap<Vec<u8>, Vec<u8>>) -> (Hash32, Nodes) {
    let batch = pairs.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
    let update = update(&Nodes::new(), &changes_of(&batch)).unwrap();
    let mut nodes = Nodes::new();
    apply_writes(&mut nodes, &update.writes);
    (update.root, nodes)
}

#[test]
fn the_empty_tree_has_the_empty_root_and_no_nodes() {
    let (root, nodes) = built(&BTreeMap::new());
    assert_eq!(root, EMPTY);
    assert!(nodes.is_empty());
    assert_eq!(super::root(&nodes).unwrap(), EMPTY);
}

#[test]
fn one_pair_is_its_leaf_at_the_root() {
    let pairs = BTreeMap::from([(b"k".to_vec(), b"v".to_vec())]);
    let (root, nodes) = built(&pairs);
    assert_eq!(root, leaf_hash(&key_path(b"k"), &value_hash(b"v")));
    assert_eq!(nodes.len(), 1);
    assert_eq!(prove(&nodes, &key_path(b"k")).unwrap(), Some(vec![]));
}

#[test]
fn a_changed_value_changes_the_root_and_a_removed_pair_restores_it() {
    let one = BTreeMap::from([(b"a".to_vec(), b"1".to_vec())]);
    let two = BTreeMap::from([(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
    let changed = BTreeMap::from([(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"3".to_vec())]);
    assert_ne!(built(&two).0, built(&changed).0);
    let (_, mut nodes) = built(&two);
    let removal = BTreeMap::from([(b"b".to_vec(), None)]);
    let update = update(&nodes, &changes_of(&removal)).unwrap();
    apply_writes(&mut nodes, &update.writes);
    assert_eq!((update.root, nodes), built(&one));
}

#[test]
fn a_proof_fails_for_another_value_or_a_changed_sibling() {
    let pairs: BTreeMap<_, _> = (0u8..20).map(|i| (vec![i], vec![i, i])).collect();
    let (root, nodes) = built(&pairs);
    let siblings = prove(&nodes, &key_path(&[7])).unwrap().unwrap();
    assert!(!siblings.is_empty());
    assert_eq!(root_from_path(&[7], &[7, 7], &siblings), Some(root));
    assert_ne!(root_from_path(&[7], &[7, 8], &siblings), Some(root));
    assert_ne!(root_from_path(&[8], &[7, 7], &siblings), Some(root));
    let mut changed = siblings.clone();
    changed[0].0[0] ^= 1;
    assert_ne!(root_from_path(&[7], &[7, 7], &changed), Some(root));
    assert_eq!(prove(&nodes, &key_path(&[99])).unwrap(), None);
}

#[test]
fn depth_grows_with_the_log_of_the_pairs() {
    let pairs: BTreeMap<_, _> = (0u32..4096).map(|i| (i.to_le_bytes().to_vec(), vec![1])).collect();
    let (_, nodes) = built(&pairs);
    let deepest = pairs.keys().map(|k| prove(&nodes, &key_path(k)).unwrap().unwrap().len()).max().unwrap();
    // 4,096 random paths: 12 bits on average, rarely more than 2 × 12 + 8.
    assert!((12..=32).contains(&deepest), "deepest pair at {deepest}");
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    (0u8..40).prop_map(|k| vec![k])
}

fn batch() -> impl Strategy<Value = BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
    prop::collection::btree_map(key(), prop::option::of(prop::collection::vec(any::<u8>(), 0..4)), 0..12)
}

proptest! {
    /// Updating block by block gives the root and exactly the stored nodes of building the
    /// final set in one go (no stale node is left behind), and every pair proves.
    #[test]
    fn updates_match_a_tree_built_from_scratch(batches in prop::collection::vec(batch(), 1..12)) {
        let mut pairs = BTreeMap::new();
        let mut nodes = Nodes::new();
        for batch in &batches {
            let update = update(&nodes, &changes_of(batch)).unwrap();
            apply_writes(&mut nodes, &update.writes);
            for (k, v) in batch {
                match v {
                    Some(v) => pairs.insert(k.clone(), v.clone()),
                    None => pairs.remove(k),
                };
            }
            let (root, expected) = built(&pairs);
            prop_assert_eq!(update.root, root);
            prop_assert_eq!(&nodes, &expected);
            prop_assert_eq!(super::root(&nodes).unwrap(), root);
        }
        let root = super::root(&nodes).unwrap();
        for (k, v) in &pairs {
            let siblings = prove(&nodes, &key_path(k)).unwrap().expect("a stored pair proves");
            prop_assert_eq!(root_from_path(k, v, &siblings), Some(root));
        }
        for k in 40u8..45 {
            prop_assert_eq!(prove(&nodes, &key_path(&[k])).unwrap(), None);
        }
    }
}
