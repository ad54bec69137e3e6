//! The state tree: a sparse Merkle tree over the small state's pairs whose stored nodes are
//! updated per block in O(writes × depth), so the state root costs what a block changes, not what
//! the state holds (ADR 0016).
//!
//! A pair sits at the 256-bit path `H(0x02 ‖ key)`. The tree is canonical (its shape depends only
//! on the set of pairs): an empty subtree hashes to [`EMPTY`], a subtree with one pair is that
//! pair's leaf `H(0x00 ‖ path ‖ H(0x03 ‖ value))` at the subtree's own position (no chain of
//! single-child nodes below it), and a subtree with two or more pairs is the node
//! `H(0x01 ‖ left ‖ right)`. So the depth of a pair is the length of the shortest prefix of its
//! path that no other pair shares: about `log2(pairs)`.
//!
//! Nodes are stored by position (depth and path prefix, [`position_key`]): the runtime reads them
//! through [`TreeReader`] and returns the block's node writes for storage to persist with the
//! block. Blocks are only ever executed on the committed head, so one version of the tree is
//! stored.

use std::collections::BTreeMap;

use parity_scale_codec::{Decode, Encode};

use crate::codec::decode_exact;
use crate::hash::{context, hash_with, Hash32};

/// Bits of a path: the most levels below the root.
pub const PATH_BITS: usize = 256;
/// The hash of a subtree without pairs.
pub const EMPTY: Hash32 = Hash32::ZERO;

const LEAF: u8 = 0x00;
const NODE: u8 = 0x01;
const PATH: u8 = 0x02;
const VALUE: u8 = 0x03;

/// Where the pair of an encoded state key sits in the tree.
pub fn key_path(key: &[u8]) -> Hash32 {
    hash_with(context::STATE_TREE, &[&[PATH], key])
}

/// The hash of an encoded state value, as its leaf commits to it.
pub fn value_hash(value: &[u8]) -> Hash32 {
    hash_with(context::STATE_TREE, &[&[VALUE], value])
}

/// The leaf of the pair at `path` whose value hashes to `value_hash`.
pub fn leaf_hash(path: &Hash32, value_hash: &Hash32) -> Hash32 {
    hash_with(context::STATE_TREE, &[&[LEAF], &path.0, &value_hash.0])
}

/// An inner node over two subtrees.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    hash_with(context::STATE_TREE, &[&[NODE], &left.0, &right.0])
}

/// Bit `depth` of `path`, most significant first: 0 goes left, 1 right.
fn bit(path: &Hash32, depth: usize) -> bool {
    (path.0[depth / 8] >> (7 - depth % 8)) & 1 == 1
}

/// The storage key of the node at `depth` on `path`: the depth (2 bytes, big-endian) and the
/// path's first `depth` bits (whole bytes, the unused bits of the last one zero). Keys of
/// shallower nodes sort first.
pub fn position_key(depth: usize, path: &Hash32) -> Vec<u8> {
    debug_assert!(depth <= PATH_BITS);
    let bytes = depth.div_ceil(8);
    let mut key = Vec::with_capacity(2 + bytes);
    key.extend_from_slice(&(depth as u16).to_be_bytes());
    key.extend_from_slice(&path.0[..bytes]);
    if !depth.is_multiple_of(8) {
        if let Some(last) = key.last_mut() {
            *last &= 0xffu8 << (8 - depth % 8);
        }
    }
    key
}

/// A stored node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum StoredNode {
    /// The only pair of its subtree.
    #[codec(index = 0)]
    Leaf { path: Hash32, value_hash: Hash32 },
    /// A subtree of two or more pairs, by its hash.
    #[codec(index = 1)]
    Inner { hash: Hash32 },
}

impl StoredNode {
    pub fn hash(&self) -> Hash32 {
        match self {
            StoredNode::Leaf { path, value_hash } => leaf_hash(path, value_hash),
            StoredNode::Inner { hash } => *hash,
        }
    }
}

/// Why the tree could not be read or updated.
#[derive(Debug, thiserror::Error)]
pub enum TreeError<E: std::error::Error + 'static> {
    #[error("reading a state tree node failed: {0}")]
    Read(#[source] E),
    #[error("state tree node {position} does not decode: {reason}")]
    Corrupt { position: String, reason: String },
    #[error("two state keys share the path {0}")]
    PathCollision(Hash32),
}

/// Read access to the stored nodes at the parent state.
pub trait TreeReader {
    type Error: std::error::Error + 'static;

    /// The encoded [`StoredNode`] at the position key, if any.
    fn tree_node(&self, position: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
}

/// A tree node read through a [`TreeReader`], decoded.
pub fn read_node<R: TreeReader>(
    reader: &R,
    position: &[u8],
) -> Result<Option<StoredNode>, TreeError<R::Error>> {
    reader
        .tree_node(position)
        .map_err(TreeError::Read)?
        .map(|bytes| {
            decode_exact(&bytes)
                .map_err(|e| TreeError::Corrupt { position: hex::encode(position), reason: e.to_string() })
        })
        .transpose()
}

/// The root of the tree a reader holds.
pub fn root<R: TreeReader>(reader: &R) -> Result<Hash32, TreeError<R::Error>> {
    Ok(read_node(reader, &position_key(0, &Hash32::ZERO))?.map_or(EMPTY, |node| node.hash()))
}

/// The tree after a block: its root and the node writes (`None` deletes) that lead there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeUpdate {
    pub root: Hash32,
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// One change: the pair at `path` gets a value whose hash is given, or is removed (`None`).
pub type Change = (Hash32, Option<Hash32>);

/// Applies `changes` (sorted by path, one per path) to the tree `reader` holds.
pub fn update<R: TreeReader>(reader: &R, changes: &[Change]) -> Result<TreeUpdate, TreeError<R::Error>> {
    debug_assert!(changes.windows(2).all(|w| w[0].0 < w[1].0), "changes must be sorted and unique");
    let mut updater = Updater { reader, writes: BTreeMap::new() };
    let top = updater.node_at(0, &Hash32::ZERO)?;
    let result = updater.update_at(0, &Hash32::ZERO, top, changes)?;
    Ok(TreeUpdate { root: result.hash(), writes: updater.writes })
}

/// A subtree during an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sub {
    Empty,
    Leaf { path: Hash32, value_hash: Hash32 },
    Inner(Hash32),
}

impl Sub {
    fn hash(&self) -> Hash32 {
        match self {
            Sub::Empty => EMPTY,
            Sub::Leaf { path, value_hash } => leaf_hash(path, value_hash),
            Sub::Inner(hash) => *hash,
        }
    }

    fn stored(&self) -> Option<StoredNode> {
        match *self {
            Sub::Empty => None,
            Sub::Leaf { path, value_hash } => Some(StoredNode::Leaf { path, value_hash }),
            Sub::Inner(hash) => Some(StoredNode::Inner { hash }),
        }
    }
}

impl From<Option<StoredNode>> for Sub {
    fn from(node: Option<StoredNode>) -> Self {
        match node {
            None => Sub::Empty,
            Some(StoredNode::Leaf { path, value_hash }) => Sub::Leaf { path, value_hash },
            Some(StoredNode::Inner { hash }) => Sub::Inner(hash),
        }
    }
}

struct Updater<'a, R: TreeReader> {
    reader: &'a R,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<R: TreeReader> Updater<'_, R> {
    fn node_at(&self, depth: usize, path: &Hash32) -> Result<Sub, TreeError<R::Error>> {
        Ok(read_node(self.reader, &position_key(depth, path))?.into())
    }

    fn store(&mut self, depth: usize, path: &Hash32, sub: Sub) {
        self.writes.insert(position_key(depth, path), sub.stored().map(|node| node.encode()));
    }

    /// The subtree at `depth` on `path` (which was `current`) after `changes`, all of whose paths
    /// lie under it; stores it at its position.
    fn update_at(
        &mut self,
        depth: usize,
        path: &Hash32,
        current: Sub,
        changes: &[Change],
    ) -> Result<Sub, TreeError<R::Error>> {
        if changes.is_empty() {
            return Ok(current);
        }
        let Sub::Inner(_) = current else {
            // Nothing is stored below a leaf or an empty subtree: rebuild it from its pairs.
            let mut pairs: Vec<(Hash32, Hash32)> =
                changes.iter().filter_map(|(p, v)| v.map(|v| (*p, v))).collect();
            if let Sub::Leaf { path: old, value_hash } = current {
                if changes.binary_search_by(|(p, _)| p.cmp(&old)).is_err() {
                    let at = pairs.partition_point(|(p, _)| *p < old);
                    pairs.insert(at, (old, value_hash));
                }
            }
            return self.build(depth, path, &pairs);
        };
        let split = changes.partition_point(|(p, _)| !bit(p, depth));
        let (left_changes, right_changes) = changes.split_at(split);
        let left_path = *path;
        let mut right_path = *path;
        right_path.0[depth / 8] |= 0x80 >> (depth % 8);
        let left = self.child(depth + 1, &left_path, left_changes)?;
        let right = self.child(depth + 1, &right_path, right_changes)?;
        let result = match (left, right) {
            (Sub::Empty, Sub::Empty) => Sub::Empty,
            // A lone pair moves up to the shallowest position it has to itself.
            (leaf @ Sub::Leaf { .. }, Sub::Empty) => {
                self.store(depth + 1, &left_path, Sub::Empty);
                leaf
            }
            (Sub::Empty, leaf @ Sub::Leaf { .. }) => {
                self.store(depth + 1, &right_path, Sub::Empty);
                leaf
            }
            (left, right) => Sub::Inner(node_hash(&left.hash(), &right.hash())),
        };
        self.store(depth, path, result);
        Ok(result)
    }

    fn child(&mut self, depth: usize, path: &Hash32, changes: &[Change]) -> Result<Sub, TreeError<R::Error>> {
        let current = self.node_at(depth, path)?;
        self.update_at(depth, path, current, changes)
    }

    /// Builds the subtree at `depth` on `path` from its pairs (sorted by path) where nothing was
    /// stored below, and stores its nodes.
    fn build(
        &mut self,
        depth: usize,
        path: &Hash32,
        pairs: &[(Hash32, Hash32)],
    ) -> Result<Sub, TreeError<R::Error>> {
        let result = match pairs {
            [] => Sub::Empty,
            [(path, value_hash)] => Sub::Leaf { path: *path, value_hash: *value_hash },
            [first, ..] if depth >= PATH_BITS => return Err(TreeError::PathCollision(first.0)),
            _ => {
                let split = pairs.partition_point(|(p, _)| !bit(p, depth));
                let mut right_path = *path;
                right_path.0[depth / 8] |= 0x80 >> (depth % 8);
                let left = self.build(depth + 1, path, &pairs[..split])?;
                let right = self.build(depth + 1, &right_path, &pairs[split..])?;
                Sub::Inner(node_hash(&left.hash(), &right.hash()))
            }
        };
        self.store(depth, path, result);
        Ok(result)
    }
}

/// The siblings on the way from the root to the pair at `path`, root first; `None` if the tree
/// holds no pair there.
pub fn prove<R: TreeReader>(reader: &R, path: &Hash32) -> Result<Option<Vec<Hash32>>, TreeError<R::Error>> {
    let mut siblings = Vec::new();
    for depth in 0..=PATH_BITS {
        match read_node(reader, &position_key(depth, path))? {
            None => return Ok(None),
            Some(StoredNode::Leaf { path: found, .. }) => return Ok((found == *path).then_some(siblings)),
            Some(StoredNode::Inner { .. }) if depth < PATH_BITS => {
                let mut sibling = *path;
                sibling.0[depth / 8] ^= 0x80 >> (depth % 8);
                let hash = read_node(reader, &position_key(depth + 1, &sibling))?.map_or(EMPTY, |n| n.hash());
                siblings.push(hash);
            }
            Some(StoredNode::Inner { .. }) => break,
        }
    }
    Err(TreeError::Corrupt {
        position: hex::encode(position_key(PATH_BITS, path)),
        reason: "an inner node at the deepest level".to_string(),
    })
}

/// The root that the pair `(key, value)` and its siblings (root first) lead to.
pub fn root_from_path(key: &[u8], value: &[u8], siblings: &[Hash32]) -> Option<Hash32> {
    if siblings.len() > PATH_BITS {
        return None;
    }
    let path = key_path(key);
    let mut hash = leaf_hash(&path, &value_hash(value));
    for (depth, sibling) in siblings.iter().enumerate().rev() {
        hash = if bit(&path, depth) { node_hash(sibling, &hash) } else { node_hash(&hash, sibling) };
    }
    Some(hash)
}

/// Nodes in memory: the genesis state, tests, and [`crate::state::MemoryState`].
impl TreeReader for BTreeMap<Vec<u8>, Vec<u8>> {
    type Error = std::convert::Infallible;

    fn tree_node(&self, position: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.get(position).cloned())
    }
}

/// Applies an update's writes to nodes in memory.
pub fn apply_writes(nodes: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
    for (position, node) in writes {
        match node {
            Some(node) => nodes.insert(position.clone(), node.clone()),
            None => nodes.remove(position),
        };
    }
}

#[cfg(test)]
#[path = "smt_tests.rs"]
mod tests;
