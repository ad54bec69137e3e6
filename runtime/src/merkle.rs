//! Append-only Merkle trees: the CDR log and the state tree, with inclusion and consistency proofs.
//!
//! # Tree shape
//!
//! The tree is the one of RFC 6962 / RFC 9162 (section 2.1), hashed with BLAKE3 in derive-key
//! mode under a per-tree context (a [`Domain`]):
//!
//! * the root of the empty tree is the hash of the empty string;
//! * a leaf hash is `H(0x00 || data)`;
//! * the root of `n > 1` leaves is `H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`, where `k` is the
//!   largest power of two strictly below `n`.
//!
//! The `0x00` / `0x01` prefixes keep a leaf from posing as an interior node (second-preimage
//! attacks); the derive-key context keeps a CDR-log node from posing as a state-tree node.
//!
//! # Node addressing
//!
//! A [`NodeId`] `{ level, index }` names the *perfect* subtree covering leaves
//! `[index << level, (index + 1) << level)`: level 0 is a leaf hash, level 1 the hash of two
//! leaves, and so on. Perfect subtrees never change once all their leaves exist, so they are
//! exactly what storage keeps ([`NodeStore`]); [`Frontier::append`] hands each one over as it
//! completes. A tree of `size` leaves is the left-to-right sequence of perfect subtrees given by
//! the binary decomposition of `size` (its "peaks", held by [`Frontier`]); its root folds the
//! peaks from the right. The hash of any range that the RFC 9162 proof recursion asks for starts
//! at an offset aligned to its own size rounded up to a power of two, so it is built from
//! O(log n) stored perfect subtrees.
//!
//! # Security note: the tree size comes from the header, not from the proof
//!
//! A proof carries `leaf_index` / `tree_size` (or `old_size` / `new_size`) only to say how to
//! fold its path. The size of a tree is authenticated by the signed block header that commits to
//! its root, never by the proof: RFC 9162 verification accepts some *other* `(leaf_index,
//! tree_size)` pairs whose path has the same shape (for example leaf 1 of a 2-leaf tree and leaf
//! 2 of a 3-leaf tree fold their one-element path identically). Callers must therefore take
//! `tree_size` from the header whose root they verify against, and check that the proof's sizes
//! equal it, rather than trusting the sizes in the proof.
//!
//! This module is pure: no IO, no clock, no randomness, and no panics on any input.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;

use parity_scale_codec::{Compact, Decode, Encode, EncodeLike, Input, Output};
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::hash::{self, Hash32};

/// The longest proof path that decodes. An inclusion path in a tree of `n` leaves has at most
/// `ceil(log2 n)` elements, so 64 covers every inclusion proof; a consistency proof can exceed it
/// only in a tree of more than 2^63 leaves.
pub const MAX_PROOF_PATH: usize = 64;

/// Which tree: the hash context. Same code serves the CDR log and the state tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain(pub &'static str);

impl Domain {
    pub const CDR_LOG: Domain = Domain(hash::context::CDR_LOG);
    pub const STATE: Domain = Domain(hash::context::STATE);
    pub const TX_ROOT: Domain = Domain(hash::context::TX_ROOT);

    /// Leaf hash: `H(0x00 || data)`.
    pub fn leaf(self, data: &[u8]) -> Hash32 {
        hash::merkle_leaf_hash(self.0, data)
    }

    /// Interior node hash: `H(0x01 || left || right)`.
    pub fn node(self, left: &Hash32, right: &Hash32) -> Hash32 {
        hash::merkle_node_hash(self.0, left, right)
    }

    /// Root of the empty tree: the hash of the empty string.
    pub fn empty_root(self) -> Hash32 {
        hash::merkle_empty_root(self.0)
    }
}

/// A perfect subtree: covers leaves `[index << level, (index + 1) << level)`. Level 0 = a leaf
/// hash. Perfect subtrees never change once complete, so storage keeps exactly these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The level-0 node of leaf `index`.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }
}

/// Read access to stored perfect subtrees.
pub trait NodeStore {
    type Error: std::error::Error + 'static;

    /// The hash of perfect subtree `id`, or `None` if it is not stored.
    fn node(&self, id: NodeId) -> Result<Option<Hash32>, Self::Error>;
}

impl<S: NodeStore + ?Sized> NodeStore for &S {
    type Error = S::Error;

    fn node(&self, id: NodeId) -> Result<Option<Hash32>, Self::Error> {
        (**self).node(id)
    }
}

/// In-memory store for tests, benches, and small trees.
#[derive(Default, Clone, Debug)]
pub struct MemoryNodeStore {
    nodes: HashMap<NodeId, Hash32>,
}

impl MemoryNodeStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `hash` as node `id`; returns the hash it replaced, if any.
    pub fn insert(&mut self, id: NodeId, hash: Hash32) -> Option<Hash32> {
        self.nodes.insert(id, hash)
    }

    pub fn get(&self, id: NodeId) -> Option<Hash32> {
        self.nodes.get(&id).copied()
    }

    pub fn remove(&mut self, id: NodeId) -> Option<Hash32> {
        self.nodes.remove(&id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All stored nodes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, Hash32)> + '_ {
        self.nodes.iter().map(|(id, hash)| (*id, *hash))
    }
}

impl NodeStore for MemoryNodeStore {
    type Error = Infallible;

    fn node(&self, id: NodeId) -> Result<Option<Hash32>, Infallible> {
        Ok(self.get(id))
    }
}

impl Extend<(NodeId, Hash32)> for MemoryNodeStore {
    fn extend<T: IntoIterator<Item = (NodeId, Hash32)>>(&mut self, iter: T) {
        self.nodes.extend(iter);
    }
}

/// Errors of tree maintenance ([`Frontier`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("cannot append a leaf: the tree already holds {size} leaves, the most a u64 can count")]
    SizeOverflow { size: u64 },
    #[error(
        "invalid frontier: a tree of {size} leaves has {expected} peaks (one per set bit of its \
         size), but {actual} were given"
    )]
    PeakCountMismatch { size: u64, expected: u32, actual: usize },
}

/// Errors of reading roots, frontiers and proofs out of a [`NodeStore`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    #[error("node store read failed: {0}")]
    Store(#[source] E),
    #[error(
        "node store has no perfect subtree at level {level}, index {index}: the tree is not \
         stored up to the requested size"
    )]
    MissingNode { level: u8, index: u64 },
    #[error("no inclusion proof: leaf index {leaf_index} is outside a tree of {tree_size} leaves")]
    LeafIndexOutOfRange { leaf_index: u64, tree_size: u64 },
    #[error(
        "no consistency proof from size {old_size} to size {new_size}: RFC 9162 requires \
         0 < old_size <= new_size"
    )]
    InvalidSizes { old_size: u64, new_size: u64 },
}

/// Why a proof did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("inclusion proof rejected: leaf index {leaf_index} is outside a tree of {tree_size} leaves")]
    LeafIndexOutOfRange { leaf_index: u64, tree_size: u64 },
    #[error(
        "consistency proof rejected: sizes {old_size} -> {new_size} are not provable \
         (need 0 < old_size <= new_size)"
    )]
    InvalidSizes { old_size: u64, new_size: u64 },
    #[error("proof rejected: path has {actual} elements, more than the maximum {max}")]
    PathTooLong { max: usize, actual: usize },
    #[error("proof rejected: these sizes need a path of {expected} elements, the proof has {actual}")]
    PathLength { expected: usize, actual: usize },
    #[error("proof rejected: path folds to root {computed}, expected {expected}")]
    RootMismatch { expected: Hash32, computed: Hash32 },
    #[error("consistency proof rejected: path folds to old root {computed}, expected {expected}")]
    OldRootMismatch { expected: Hash32, computed: Hash32 },
    #[error(
        "consistency proof rejected: both trees have {size} leaves but their roots differ \
         ({old_root} vs {new_root})"
    )]
    SameSizeRootsDiffer { size: u64, old_root: Hash32, new_root: Hash32 },
}

/// The compact frontier: roots of the perfect subtrees making up a tree of `size` leaves, left
/// to right (the binary decomposition of size), enough to append in O(log n) and compute the
/// root.
///
/// Invariant, checked by every constructor and decoder: `peaks.len() == size.count_ones()`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "FrontierRepr")]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash32>,
}

#[derive(Deserialize)]
struct FrontierRepr {
    size: u64,
    #[serde(deserialize_with = "deserialize_hashes")]
    peaks: Vec<Hash32>,
}

impl TryFrom<FrontierRepr> for Frontier {
    type Error = MerkleError;

    fn try_from(repr: FrontierRepr) -> Result<Self, MerkleError> {
        Frontier::from_parts(repr.size, repr.peaks)
    }
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from its parts; fails unless there is one peak per set bit of `size`.
    pub fn from_parts(size: u64, peaks: Vec<Hash32>) -> Result<Self, MerkleError> {
        check_peak_count(size, peaks.len())?;
        Ok(Frontier { size, peaks })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Roots of the perfect subtrees, left (largest) to right (smallest).
    pub fn peaks(&self) -> &[Hash32] {
        &self.peaks
    }

    /// RFC 9162 MTH of the tree; the empty tree gives `domain.empty_root()`.
    pub fn root(&self, domain: Domain) -> Hash32 {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => domain.empty_root(),
            Some(last) => peaks.fold(*last, |acc, peak| domain.node(peak, &acc)),
        }
    }

    /// Appends a leaf hash; hands every newly completed perfect subtree (including the level-0
    /// leaf node itself) to `sink`, for storage to persist. On error nothing changes and `sink`
    /// is not called.
    pub fn append(
        &mut self,
        domain: Domain,
        leaf_hash: Hash32,
        sink: &mut impl FnMut(NodeId, Hash32),
    ) -> Result<(), MerkleError> {
        let new_size = self.size.checked_add(1).ok_or(MerkleError::SizeOverflow { size: self.size })?;
        check_peak_count(self.size, self.peaks.len())?;
        // The new leaf completes one perfect subtree per trailing one bit of the old size.
        let merges = self.size.trailing_ones() as usize;
        let keep = self.peaks.len().checked_sub(merges).ok_or(MerkleError::PeakCountMismatch {
            size: self.size,
            expected: self.size.count_ones(),
            actual: self.peaks.len(),
        })?;
        let merged = self.peaks.split_off(keep);
        let mut id = NodeId::leaf(self.size);
        let mut hash = leaf_hash;
        sink(id, hash);
        for left in merged.iter().rev() {
            hash = domain.node(left, &hash);
            // merges <= 63, so the level stays below 64.
            id = NodeId::new(id.level.saturating_add(1), id.index >> 1);
            sink(id, hash);
        }
        self.peaks.push(hash);
        self.size = new_size;
        Ok(())
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored perfect subtrees. The store
    /// may hold a bigger tree.
    pub fn from_store<S: NodeStore>(store: &S, size: u64) -> Result<Frontier, ProofError<S::Error>> {
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        let mut offset = 0u64;
        for level in (0..64u8).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                peaks.push(fetch(store, NodeId::new(level, offset >> level))?);
                // offset + width <= size: the set bits of size above and at `level`.
                offset |= width;
            }
        }
        Ok(Frontier { size, peaks })
    }
}

fn check_peak_count(size: u64, actual: usize) -> Result<(), MerkleError> {
    let expected = size.count_ones();
    if usize::try_from(expected).ok() == Some(actual) {
        Ok(())
    } else {
        Err(MerkleError::PeakCountMismatch { size, expected, actual })
    }
}

impl Encode for Frontier {
    fn size_hint(&self) -> usize {
        self.size.size_hint().saturating_add(self.peaks.size_hint())
    }

    fn encode_to<T: Output + ?Sized>(&self, dest: &mut T) {
        self.size.encode_to(dest);
        self.peaks.encode_to(dest);
    }
}

impl EncodeLike for Frontier {}

impl Decode for Frontier {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let size = u64::decode(input)?;
        let count = Compact::<u32>::decode(input)?.0;
        if count != size.count_ones() {
            return Err("Frontier: peak count differs from the number of set bits of size".into());
        }
        Ok(Frontier { size, peaks: decode_hashes(input, count)? })
    }
}

/// Decodes `count` hashes; callers bound `count` (by at most 64) before calling.
fn decode_hashes<I: Input>(input: &mut I, count: u32) -> Result<Vec<Hash32>, parity_scale_codec::Error> {
    let mut hashes = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(MAX_PROOF_PATH));
    for _ in 0..count {
        hashes.push(Hash32::decode(input)?);
    }
    Ok(hashes)
}

/// Decodes a SCALE `Vec<Hash32>` of at most [`MAX_PROOF_PATH`] elements, checking the length
/// prefix before allocating.
fn decode_path<I: Input>(input: &mut I) -> Result<Vec<Hash32>, parity_scale_codec::Error> {
    let count = Compact::<u32>::decode(input)?.0;
    if usize::try_from(count).map_or(true, |count| count > MAX_PROOF_PATH) {
        return Err("Merkle proof path longer than MAX_PROOF_PATH (64)".into());
    }
    decode_hashes(input, count)
}

/// Serde: a sequence of at most [`MAX_PROOF_PATH`] hashes, rejected as soon as it grows past it.
fn deserialize_hashes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Hash32>, D::Error> {
    struct BoundedHashes;

    impl<'de> Visitor<'de> for BoundedHashes {
        type Value = Vec<Hash32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a sequence of at most {MAX_PROOF_PATH} hashes")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut hashes = Vec::new();
            while let Some(hash) = seq.next_element::<Hash32>()? {
                if hashes.len() >= MAX_PROOF_PATH {
                    return Err(A::Error::invalid_length(hashes.len().saturating_add(1), &self));
                }
                hashes.push(hash);
            }
            Ok(hashes)
        }
    }

    deserializer.deserialize_seq(BoundedHashes)
}

/// RFC 9162 section 2.1.3 inclusion proof: the audit path of leaf `leaf_index` in the tree of
/// `tree_size` leaves, leaf to root. `tree_size` must come from the signed header (see the
/// module docs).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Serialize, Deserialize)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    #[serde(deserialize_with = "deserialize_hashes")]
    pub path: Vec<Hash32>,
}

impl Decode for InclusionProof {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        Ok(InclusionProof {
            leaf_index: u64::decode(input)?,
            tree_size: u64::decode(input)?,
            path: decode_path(input)?,
        })
    }
}

/// RFC 9162 section 2.1.4 consistency proof: the tree of `new_size` leaves extends the tree of
/// `old_size` leaves. Both sizes must come from signed headers (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    #[serde(deserialize_with = "deserialize_hashes")]
    pub path: Vec<Hash32>,
}

impl Decode for ConsistencyProof {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        Ok(ConsistencyProof {
            old_size: u64::decode(input)?,
            new_size: u64::decode(input)?,
            path: decode_path(input)?,
        })
    }
}

/// The leaf range `[start, start + len)`, `len >= 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeafRange {
    start: u64,
    len: u64,
}

/// The largest power of two strictly below `n`, for `n >= 2` (1 otherwise).
fn split_point(n: u64) -> u64 {
    1u64 << 63u32.saturating_sub(n.saturating_sub(1).leading_zeros())
}

/// Calls `visit` with the range whose MTH is each element of the RFC 9162 PATH(m, D[n]), from
/// the root down (the reverse of the proof's order). Requires `leaf_index < tree_size`.
fn walk_inclusion(leaf_index: u64, tree_size: u64, mut visit: impl FnMut(LeafRange)) {
    // Invariant: start + n <= tree_size and m < n, so nothing below overflows or underflows.
    let (mut m, mut start, mut n) = (leaf_index, 0u64, tree_size);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            visit(LeafRange { start: start.saturating_add(k), len: n.saturating_sub(k) });
            n = k;
        } else {
            visit(LeafRange { start, len: k });
            m = m.saturating_sub(k);
            start = start.saturating_add(k);
            n = n.saturating_sub(k);
        }
    }
}

/// Calls `visit` with the range whose MTH is each element of the RFC 9162 PROOF(m, D[n]), from
/// the root down (the reverse of the proof's order). Requires `0 < old_size <= new_size`.
fn walk_consistency(old_size: u64, new_size: u64, mut visit: impl FnMut(LeafRange)) {
    // Invariant: start + n <= new_size and 0 < m <= n.
    let (mut m, mut start, mut n, mut whole) = (old_size, 0u64, new_size, true);
    loop {
        if m >= n || n < 2 {
            if !whole {
                visit(LeafRange { start, len: n });
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            visit(LeafRange { start: start.saturating_add(k), len: n.saturating_sub(k) });
            n = k;
        } else {
            visit(LeafRange { start, len: k });
            m = m.saturating_sub(k);
            start = start.saturating_add(k);
            n = n.saturating_sub(k);
            whole = false;
        }
    }
}

fn inclusion_path_len(leaf_index: u64, tree_size: u64) -> usize {
    let mut len = 0usize;
    walk_inclusion(leaf_index, tree_size, |_| len = len.saturating_add(1));
    len
}

fn consistency_path_len(old_size: u64, new_size: u64) -> usize {
    let mut len = 0usize;
    walk_consistency(old_size, new_size, |_| len = len.saturating_add(1));
    len
}

fn fetch<S: NodeStore>(store: &S, id: NodeId) -> Result<Hash32, ProofError<S::Error>> {
    store
        .node(id)
        .map_err(ProofError::Store)?
        .ok_or(ProofError::MissingNode { level: id.level, index: id.index })
}

/// MTH of a leaf range, from stored perfect subtrees. For the ranges of the RFC 9162 recursion
/// (whose start is aligned to their length rounded up to a power of two) this reads one perfect
/// subtree per set bit of the length; any other range is still hashed correctly, just with more
/// reads.
fn range_hash<S: NodeStore>(
    store: &S,
    domain: Domain,
    range: LeafRange,
) -> Result<Hash32, ProofError<S::Error>> {
    let LeafRange { start, len } = range;
    if len == 0 {
        return Ok(domain.empty_root());
    }
    if len.is_power_of_two() && start % len == 0 {
        // trailing_zeros of a nonzero u64 is at most 63.
        let level = len.trailing_zeros() as u8;
        return fetch(store, NodeId::new(level, start >> level));
    }
    let k = split_point(len);
    let left = range_hash(store, domain, LeafRange { start, len: k })?;
    let right =
        range_hash(store, domain, LeafRange { start: start.saturating_add(k), len: len.saturating_sub(k) })?;
    Ok(domain.node(&left, &right))
}

/// Hashes the ranges a walk visits, returned in proof order (leaf to root).
fn hash_walk<S: NodeStore>(
    store: &S,
    domain: Domain,
    walk: impl FnOnce(&mut dyn FnMut(LeafRange)),
) -> Result<Vec<Hash32>, ProofError<S::Error>> {
    let mut ranges = Vec::new();
    walk(&mut |range| ranges.push(range));
    ranges.into_iter().rev().map(|range| range_hash(store, domain, range)).collect()
}

/// Root of the first `size` leaves, from stored perfect subtrees (the store may hold a bigger
/// tree).
pub fn root_at<S: NodeStore>(store: &S, domain: Domain, size: u64) -> Result<Hash32, ProofError<S::Error>> {
    Ok(Frontier::from_store(store, size)?.root(domain))
}

/// RFC 9162 section 2.1.3.1: the inclusion proof of leaf `leaf_index` in the tree of the first
/// `tree_size` leaves.
pub fn inclusion_proof<S: NodeStore>(
    store: &S,
    domain: Domain,
    leaf_index: u64,
    tree_size: u64,
) -> Result<InclusionProof, ProofError<S::Error>> {
    if leaf_index >= tree_size {
        return Err(ProofError::LeafIndexOutOfRange { leaf_index, tree_size });
    }
    let path = hash_walk(store, domain, |visit| walk_inclusion(leaf_index, tree_size, visit))?;
    Ok(InclusionProof { leaf_index, tree_size, path })
}

/// RFC 9162 section 2.1.3.2: checks that `leaf_hash` is leaf `proof.leaf_index` of the tree of
/// `proof.tree_size` leaves whose root is `root`. The caller must check that `proof.tree_size`
/// is the size the signed header gives for `root` (see the module docs).
pub fn verify_inclusion(
    domain: Domain,
    leaf_hash: &Hash32,
    proof: &InclusionProof,
    root: &Hash32,
) -> Result<(), VerifyError> {
    let InclusionProof { leaf_index, tree_size, ref path } = *proof;
    if leaf_index >= tree_size {
        return Err(VerifyError::LeafIndexOutOfRange { leaf_index, tree_size });
    }
    if path.len() > MAX_PROOF_PATH {
        return Err(VerifyError::PathTooLong { max: MAX_PROOF_PATH, actual: path.len() });
    }
    let expected = inclusion_path_len(leaf_index, tree_size);
    let wrong_length = VerifyError::PathLength { expected, actual: path.len() };
    if path.len() != expected {
        return Err(wrong_length);
    }
    // leaf_index < tree_size, so tree_size >= 1.
    let (mut fnode, mut snode) = (leaf_index, tree_size.saturating_sub(1));
    let mut computed = *leaf_hash;
    for sibling in path {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            computed = domain.node(sibling, &computed);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            computed = domain.node(&computed, sibling);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if computed != *root {
        return Err(VerifyError::RootMismatch { expected: *root, computed });
    }
    Ok(())
}

/// RFC 9162 section 2.1.4.1: the consistency proof between the trees of the first `old_size`
/// and the first `new_size` leaves. `old_size == 0` is not provable; `old_size == new_size`
/// gives an empty path.
pub fn consistency_proof<S: NodeStore>(
    store: &S,
    domain: Domain,
    old_size: u64,
    new_size: u64,
) -> Result<ConsistencyProof, ProofError<S::Error>> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::InvalidSizes { old_size, new_size });
    }
    let path = hash_walk(store, domain, |visit| walk_consistency(old_size, new_size, visit))?;
    Ok(ConsistencyProof { old_size, new_size, path })
}

/// RFC 9162 section 2.1.4.2: checks that the tree of `proof.new_size` leaves with root
/// `new_root` extends the tree of `proof.old_size` leaves with root `old_root`. Equal sizes need
/// an empty path and equal roots. The caller must check both sizes against the signed headers
/// (see the module docs).
pub fn verify_consistency(
    domain: Domain,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &ConsistencyProof,
) -> Result<(), VerifyError> {
    let ConsistencyProof { old_size, new_size, ref path } = *proof;
    if old_size == 0 || old_size > new_size {
        return Err(VerifyError::InvalidSizes { old_size, new_size });
    }
    if path.len() > MAX_PROOF_PATH {
        return Err(VerifyError::PathTooLong { max: MAX_PROOF_PATH, actual: path.len() });
    }
    let expected = consistency_path_len(old_size, new_size);
    let wrong_length = VerifyError::PathLength { expected, actual: path.len() };
    if path.len() != expected {
        return Err(wrong_length);
    }
    if old_size == new_size {
        if old_root != new_root {
            return Err(VerifyError::SameSizeRootsDiffer {
                size: old_size,
                old_root: *old_root,
                new_root: *new_root,
            });
        }
        return Ok(());
    }
    let mut rest = path.iter();
    // An old tree that is a perfect subtree is the proof's implicit first element.
    let first = if old_size.is_power_of_two() {
        *old_root
    } else {
        match rest.next() {
            Some(first) => *first,
            None => return Err(wrong_length),
        }
    };
    // 0 < old_size < new_size.
    let (mut fnode, mut snode) = (old_size.saturating_sub(1), new_size.saturating_sub(1));
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut old_computed, mut new_computed) = (first, first);
    for element in rest {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            old_computed = domain.node(element, &old_computed);
            new_computed = domain.node(element, &new_computed);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            new_computed = domain.node(&new_computed, element);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(wrong_length);
    }
    if old_computed != *old_root {
        return Err(VerifyError::OldRootMismatch { expected: *old_root, computed: old_computed });
    }
    if new_computed != *new_root {
        return Err(VerifyError::RootMismatch { expected: *new_root, computed: new_computed });
    }
    Ok(())
}

#[cfg(test)]
// Tests index leaves and prefix roots by size on purpose, to mirror the RFC's D[m:n] notation.
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: Domain = Domain::CDR_LOG;

    // ---------------------------------------------------------------- reference implementation

    /// Largest power of two strictly below n (n >= 2), the slow way.
    fn naive_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn naive_mth(d: Domain, leaves: &[Hash32]) -> Hash32 {
        match leaves.len() {
            0 => d.empty_root(),
            1 => leaves[0],
            n => {
                let k = naive_split(n);
                d.node(&naive_mth(d, &leaves[..k]), &naive_mth(d, &leaves[k..]))
            }
        }
    }

    fn naive_path(d: Domain, m: usize, leaves: &[Hash32]) -> Vec<Hash32> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = naive_split(n);
        if m < k {
            let mut p = naive_path(d, m, &leaves[..k]);
            p.push(naive_mth(d, &leaves[k..]));
            p
        } else {
            let mut p = naive_path(d, m - k, &leaves[k..]);
            p.push(naive_mth(d, &leaves[..k]));
            p
        }
    }

    fn naive_proof(d: Domain, m: usize, leaves: &[Hash32]) -> Vec<Hash32> {
        naive_subproof(d, m, leaves, true)
    }

    fn naive_subproof(d: Domain, m: usize, leaves: &[Hash32], whole: bool) -> Vec<Hash32> {
        let n = leaves.len();
        if m == n {
            return if whole { vec![] } else { vec![naive_mth(d, leaves)] };
        }
        let k = naive_split(n);
        if m <= k {
            let mut p = naive_subproof(d, m, &leaves[..k], whole);
            p.push(naive_mth(d, &leaves[k..]));
            p
        } else {
            let mut p = naive_subproof(d, m - k, &leaves[k..], false);
            p.push(naive_mth(d, &leaves[..k]));
            p
        }
    }

    // ---------------------------------------------------------------- helpers

    fn leaf(d: Domain, i: u64) -> Hash32 {
        d.leaf(format!("call record {i}").as_bytes())
    }

    fn leaves(d: Domain, n: u64) -> Vec<Hash32> {
        (0..n).map(|i| leaf(d, i)).collect()
    }

    /// Appends `leaves` to a fresh frontier and store; returns them with every prefix root
    /// (`roots[n]` = root of the first n leaves).
    fn build(d: Domain, leaves: &[Hash32]) -> (Frontier, MemoryNodeStore, Vec<Hash32>) {
        let mut frontier = Frontier::new();
        let mut store = MemoryNodeStore::new();
        let mut roots = vec![frontier.root(d)];
        for h in leaves {
            frontier
                .append(d, *h, &mut |id, hash| {
                    assert!(store.insert(id, hash).is_none(), "{id:?} sunk twice");
                })
                .unwrap();
            roots.push(frontier.root(d));
        }
        (frontier, store, roots)
    }

    fn flip(h: &Hash32, bit: usize) -> Hash32 {
        let mut bytes = h.0;
        bytes[bit / 8] ^= 1 << (bit % 8);
        Hash32(bytes)
    }

    /// splitmix64, for deterministic sampling inside proptest cases.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn hash(&mut self) -> Hash32 {
            let mut b = [0u8; 32];
            for chunk in b.chunks_mut(8) {
                chunk.copy_from_slice(&self.next().to_le_bytes());
            }
            Hash32(b)
        }
    }

    /// The sequence of fold directions the RFC 9162 inclusion verifier uses for these sizes
    /// (true = sibling on the left), computed independently of `verify_inclusion`. Two
    /// (leaf_index, tree_size) pairs with the same signature fold any path identically.
    fn inclusion_signature(leaf_index: u64, tree_size: u64) -> Vec<bool> {
        let mut sig = vec![];
        let (mut f, mut s) = (leaf_index, tree_size - 1);
        while s > 0 {
            if f % 2 == 1 || f == s {
                sig.push(true);
                while f % 2 == 0 && f != 0 {
                    f /= 2;
                    s /= 2;
                }
            } else {
                sig.push(false);
            }
            f /= 2;
            s /= 2;
        }
        sig
    }

    /// Same for consistency: (old tree is perfect, fold directions).
    fn consistency_signature(old: u64, new: u64) -> (bool, Vec<bool>) {
        if old == new {
            return (true, vec![]);
        }
        let (mut f, mut s) = (old - 1, new - 1);
        while f % 2 == 1 {
            f /= 2;
            s /= 2;
        }
        let mut sig = vec![];
        while s > 0 {
            if f % 2 == 1 || f == s {
                sig.push(true);
                while f % 2 == 0 && f != 0 {
                    f /= 2;
                    s /= 2;
                }
            } else {
                sig.push(false);
            }
            f /= 2;
            s /= 2;
        }
        (old.is_power_of_two(), sig)
    }

    /// Every single-bit flip of a path element, the leaf and the root must fail; so must
    /// adding or removing a path element, and changing the sizes unless the fold shape
    /// coincides (the security note).
    fn tamper_inclusion(
        rng: &mut Rng,
        d: Domain,
        leaf_hash: &Hash32,
        proof: &InclusionProof,
        root: &Hash32,
        every_bit: bool,
    ) {
        assert_eq!(verify_inclusion(d, leaf_hash, proof, root), Ok(()));
        let bits: Vec<usize> = if every_bit { (0..256).collect() } else { vec![rng.below(256) as usize] };
        for i in 0..proof.path.len() {
            for &bit in &bits {
                let mut bad = proof.clone();
                bad.path[i] = flip(&bad.path[i], bit);
                assert!(matches!(
                    verify_inclusion(d, leaf_hash, &bad, root),
                    Err(VerifyError::RootMismatch { .. })
                ));
            }
        }
        for &bit in &bits {
            assert!(verify_inclusion(d, &flip(leaf_hash, bit), proof, root).is_err());
            assert!(verify_inclusion(d, leaf_hash, proof, &flip(root, bit)).is_err());
        }
        // Extra or missing elements.
        let mut longer = proof.clone();
        let at = rng.below(proof.path.len() as u64 + 1) as usize;
        longer.path.insert(at, rng.hash());
        assert!(matches!(verify_inclusion(d, leaf_hash, &longer, root), Err(VerifyError::PathLength { .. })));
        if !proof.path.is_empty() {
            let mut shorter = proof.clone();
            shorter.path.remove(rng.below(proof.path.len() as u64) as usize);
            assert!(matches!(
                verify_inclusion(d, leaf_hash, &shorter, root),
                Err(VerifyError::PathLength { .. })
            ));
        }
        let sig = inclusion_signature(proof.leaf_index, proof.tree_size);
        // Another leaf index of the same tree.
        if proof.tree_size > 1 {
            let mut other = proof.clone();
            while other.leaf_index == proof.leaf_index {
                other.leaf_index = rng.below(proof.tree_size);
            }
            let same_shape = inclusion_signature(other.leaf_index, other.tree_size) == sig;
            assert!(!same_shape, "two leaves of one tree folded alike");
            assert!(verify_inclusion(d, leaf_hash, &other, root).is_err());
        }
        // Another tree size: accepted exactly when the fold shape coincides.
        for _ in 0..4 {
            let mut other = proof.clone();
            other.tree_size = proof.leaf_index + 1 + rng.below(2 * proof.tree_size + 2);
            if other.tree_size == proof.tree_size {
                continue;
            }
            let same_shape = inclusion_signature(other.leaf_index, other.tree_size) == sig;
            assert_eq!(verify_inclusion(d, leaf_hash, &other, root).is_ok(), same_shape, "{other:?}");
        }
    }

    fn tamper_consistency(
        rng: &mut Rng,
        d: Domain,
        old_root: &Hash32,
        new_root: &Hash32,
        proof: &ConsistencyProof,
    ) {
        assert_eq!(verify_consistency(d, old_root, new_root, proof), Ok(()));
        for i in 0..proof.path.len() {
            let mut bad = proof.clone();
            bad.path[i] = flip(&bad.path[i], rng.below(256) as usize);
            assert!(verify_consistency(d, old_root, new_root, &bad).is_err());
        }
        let bit = rng.below(256) as usize;
        assert!(verify_consistency(d, &flip(old_root, bit), new_root, proof).is_err());
        assert!(verify_consistency(d, old_root, &flip(new_root, bit), proof).is_err());
        let mut longer = proof.clone();
        let at = rng.below(proof.path.len() as u64 + 1) as usize;
        longer.path.insert(at, rng.hash());
        assert!(matches!(
            verify_consistency(d, old_root, new_root, &longer),
            Err(VerifyError::PathLength { .. })
        ));
        if !proof.path.is_empty() {
            let mut shorter = proof.clone();
            shorter.path.remove(rng.below(proof.path.len() as u64) as usize);
            assert!(matches!(
                verify_consistency(d, old_root, new_root, &shorter),
                Err(VerifyError::PathLength { .. })
            ));
        }
        let sig = consistency_signature(proof.old_size, proof.new_size);
        for _ in 0..4 {
            let mut other = proof.clone();
            other.old_size = 1 + rng.below(proof.new_size);
            other.new_size = other.old_size + rng.below(proof.new_size + 2);
            if (other.old_size, other.new_size) == (proof.old_size, proof.new_size) {
                continue;
            }
            let same_shape = consistency_signature(other.old_size, other.new_size) == sig;
            assert_eq!(
                verify_consistency(d, old_root, new_root, &other).is_ok(),
                same_shape,
                "{proof:?} as {other:?}"
            );
        }
    }

    // ---------------------------------------------------------------- known small cases

    #[test]
    fn known_small_roots() {
        for d in [Domain::CDR_LOG, Domain::STATE] {
            let l = leaves(d, 7);
            // Independent of hash.rs: BLAKE3 derive-key with the RFC prefixes.
            let raw = |parts: &[&[u8]]| {
                let mut h = blake3::Hasher::new_derive_key(d.0);
                for p in parts {
                    h.update(p);
                }
                Hash32(*h.finalize().as_bytes())
            };
            assert_eq!(d.empty_root(), raw(&[]));
            assert_eq!(d.leaf(b"call record 0"), raw(&[&[0], b"call record 0"]));
            assert_eq!(d.node(&l[0], &l[1]), raw(&[&[1], &l[0].0, &l[1].0]));

            let root = |n: usize| build(d, &l[..n]).0.root(d);
            let n = |a: &Hash32, b: &Hash32| d.node(a, b);
            assert_eq!(root(0), d.empty_root());
            assert_eq!(Frontier::new().root(d), d.empty_root());
            assert_eq!(root(1), l[0]);
            assert_eq!(root(2), n(&l[0], &l[1]));
            assert_eq!(root(3), n(&n(&l[0], &l[1]), &l[2]));
            let left = n(&n(&l[0], &l[1]), &n(&l[2], &l[3]));
            let right = n(&n(&l[4], &l[5]), &l[6]);
            assert_eq!(root(7), n(&left, &right));

            // RFC 9162's 7-leaf examples, composed by hand.
            let (_, store, _) = build(d, &l);
            let p = inclusion_proof(&store, d, 6, 7).unwrap();
            assert_eq!(p.path, vec![n(&l[4], &l[5]), left]);
            let p = inclusion_proof(&store, d, 3, 7).unwrap();
            assert_eq!(p.path, vec![l[2], n(&l[0], &l[1]), right]);
            let p = consistency_proof(&store, d, 3, 7).unwrap();
            assert_eq!(
                p.path,
                vec![l[2], l[3], n(&l[0], &l[1]), right],
                "RFC 9162 2.1.5: PROOF(3, D[7]) = [c, d, g, l]"
            );
            let p = consistency_proof(&store, d, 4, 7).unwrap();
            assert_eq!(p.path, vec![right]);
            let p = consistency_proof(&store, d, 6, 7).unwrap();
            assert_eq!(p.path, vec![n(&l[4], &l[5]), l[6], left]);
        }
        assert_ne!(Domain::CDR_LOG.empty_root(), Domain::STATE.empty_root());
        assert_ne!(Domain::CDR_LOG.leaf(b"x"), Domain::STATE.leaf(b"x"));
    }

    #[test]
    fn security_note_other_sizes_with_same_shape_verify() {
        // Leaf 1 of a 2-leaf tree and leaf 2 of a 3-leaf tree fold a one-element path alike:
        // only the header's tree size tells them apart.
        let l = leaves(D, 2);
        let (_, store, roots) = build(D, &l);
        let mut proof = inclusion_proof(&store, D, 1, 2).unwrap();
        assert_eq!(verify_inclusion(D, &l[1], &proof, &roots[2]), Ok(()));
        proof.leaf_index = 2;
        proof.tree_size = 3;
        assert_eq!(verify_inclusion(D, &l[1], &proof, &roots[2]), Ok(()));
        assert_eq!(inclusion_signature(1, 2), inclusion_signature(2, 3));
    }

    // ---------------------------------------------------------------- exhaustive 1..=64

    #[test]
    fn exhaustive_up_to_64() {
        let all = leaves(D, 64);
        let mut frontier = Frontier::new();
        let mut store = MemoryNodeStore::new();
        let mut frontiers = vec![frontier.clone()];
        let mut roots = vec![D.empty_root()];
        for n in 1..=64usize {
            frontier
                .append(D, all[n - 1], &mut |id, hash| {
                    assert!(store.insert(id, hash).is_none(), "{id:?} sunk twice");
                })
                .unwrap();
            frontiers.push(frontier.clone());
            let l = &all[..n];
            let root = naive_mth(D, l);
            roots.push(root);
            assert_eq!(frontier.size(), n as u64);
            assert_eq!(frontier.peaks().len(), n.count_ones() as usize);
            assert_eq!(frontier.root(D), root, "size {n}");
            // The store holds exactly the perfect subtrees of n leaves, each correct.
            let expected_nodes: usize = (0..7).map(|lvl| n >> lvl).sum();
            assert_eq!(store.len(), expected_nodes, "size {n}");
            for (id, hash) in store.iter() {
                let first = (id.index as usize) << id.level;
                let end = first + (1usize << id.level);
                assert!(end <= n);
                assert_eq!(hash, naive_mth(D, &l[first..end]), "{id:?}");
            }
            // Everything below reads only the nodes of an n-leaf tree.
            let n64 = n as u64;
            assert_eq!(root_at(&store, D, n64), Ok(root));
            assert_eq!(Frontier::from_store(&store, n64).as_ref(), Ok(&frontier));
            for m in 0..n {
                let proof = inclusion_proof(&store, D, m as u64, n64).unwrap();
                assert_eq!(proof.path, naive_path(D, m, l), "leaf {m} of {n}");
                assert_eq!(proof.path.len(), inclusion_path_len(m as u64, n64));
                assert_eq!(verify_inclusion(D, &l[m], &proof, &root), Ok(()));
            }
            for m in 1..=n {
                let proof = consistency_proof(&store, D, m as u64, n64).unwrap();
                assert_eq!(proof.path, naive_proof(D, m, l), "consistency {m} -> {n}");
                assert_eq!(proof.path.len(), consistency_path_len(m as u64, n64));
                assert_eq!(verify_consistency(D, &roots[m], &root, &proof), Ok(()));
            }
        }
        // A store holding a bigger tree serves every prefix.
        for n in 0..=64usize {
            assert_eq!(root_at(&store, D, n as u64), Ok(roots[n]));
            assert_eq!(Frontier::from_store(&store, n as u64), Ok(frontiers[n].clone()));
            for m in 1..=n {
                let proof = consistency_proof(&store, D, m as u64, n as u64).unwrap();
                assert_eq!(verify_consistency(D, &roots[m], &roots[n], &proof), Ok(()));
            }
        }
        // Tampering, exhaustively over shapes (one random bit per element).
        let mut rng = Rng(7);
        for n in 1..=64u64 {
            for m in 0..n {
                let proof = inclusion_proof(&store, D, m, n).unwrap();
                tamper_inclusion(&mut rng, D, &all[m as usize], &proof, &roots[n as usize], false);
            }
            for m in 1..=n {
                let proof = consistency_proof(&store, D, m, n).unwrap();
                tamper_consistency(&mut rng, D, &roots[m as usize], &roots[n as usize], &proof);
            }
        }
    }

    // ---------------------------------------------------------------- random big trees

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn random_trees(size in 1u64..=10_000, seed in any::<u64>()) {
            let mut rng = Rng(seed);
            let l = leaves(D, size);
            let (frontier, store, roots) = build(D, &l);
            let root = naive_mth(D, &l);
            prop_assert_eq!(frontier.root(D), root);
            prop_assert_eq!(roots[size as usize], root);
            prop_assert_eq!(root_at(&store, D, size), Ok(root));
            prop_assert_eq!(Frontier::from_store(&store, size), Ok(frontier));

            // Every leaf's proof verifies.
            for m in 0..size {
                let proof = inclusion_proof(&store, D, m, size).unwrap();
                prop_assert_eq!(verify_inclusion(D, &l[m as usize], &proof, &root), Ok(()));
            }
            // A sample is checked against the reference and tampered with.
            for i in 0..200 {
                let m = rng.below(size);
                let proof = inclusion_proof(&store, D, m, size).unwrap();
                if i < 2 {
                    prop_assert_eq!(&proof.path, &naive_path(D, m as usize, &l));
                }
                tamper_inclusion(&mut rng, D, &l[m as usize], &proof, &root, i < 3);
            }
            // Random consistency pairs, checked against prefix roots from the frontier.
            for i in 0..60 {
                let n = 1 + rng.below(size);
                let m = 1 + rng.below(n);
                let proof = consistency_proof(&store, D, m, n).unwrap();
                if i < 2 {
                    prop_assert_eq!(
                        &proof.path,
                        &naive_proof(D, m as usize, &l[..n as usize])
                    );
                    prop_assert_eq!(root_at(&store, D, m), Ok(roots[m as usize]));
                }
                tamper_consistency(&mut rng, D, &roots[m as usize], &roots[n as usize], &proof);
            }
        }

        /// Verification never panics, whatever the sizes and path.
        #[test]
        fn verify_never_panics(
            a in any::<u64>(),
            b in any::<u64>(),
            small in 0u64..200,
            len in 0usize..70,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng(seed);
            let path: Vec<Hash32> = (0..len).map(|_| rng.hash()).collect();
            let h = rng.hash();
            for (x, y) in [(a, b), (small, b), (a, small), (small, small / 2 + 1), (b / 2, b)] {
                let proof = InclusionProof { leaf_index: x, tree_size: y, path: path.clone() };
                let _ = verify_inclusion(D, &h, &proof, &h);
                let proof = ConsistencyProof { old_size: x, new_size: y, path: path.clone() };
                let _ = verify_consistency(D, &h, &h, &proof);
            }
        }
    }

    // ---------------------------------------------------------------- encodings

    #[test]
    fn scale_and_serde_round_trips() {
        use parity_scale_codec::DecodeAll;
        let l = leaves(D, 21);
        let (frontier, store, _) = build(D, &l);
        let inclusion = inclusion_proof(&store, D, 13, 21).unwrap();
        let consistency = consistency_proof(&store, D, 5, 21).unwrap();
        assert!(!inclusion.path.is_empty() && !consistency.path.is_empty());

        let bytes = inclusion.encode();
        assert_eq!(bytes, (13u64, 21u64, inclusion.path.clone()).encode());
        assert_eq!(InclusionProof::decode_all(&mut &bytes[..]), Ok(inclusion.clone()));
        let bytes = consistency.encode();
        assert_eq!(ConsistencyProof::decode_all(&mut &bytes[..]), Ok(consistency.clone()));
        let bytes = frontier.encode();
        assert_eq!(bytes, (21u64, frontier.peaks().to_vec()).encode());
        assert!(frontier.size_hint() >= bytes.len());
        assert_eq!(Frontier::decode_all(&mut &bytes[..]), Ok(frontier.clone()));
        let empty = Frontier::new();
        assert_eq!(Frontier::decode_all(&mut &empty.encode()[..]), Ok(empty.clone()));
        let id = NodeId::new(3, 9);
        assert_eq!(NodeId::decode_all(&mut &id.encode()[..]), Ok(id));

        let json = serde_json::to_string(&inclusion).unwrap();
        assert!(json.contains("\"leaf_index\":13"), "{json}");
        assert_eq!(serde_json::from_str::<InclusionProof>(&json).unwrap(), inclusion);
        let json = serde_json::to_string(&consistency).unwrap();
        assert_eq!(serde_json::from_str::<ConsistencyProof>(&json).unwrap(), consistency);
        let json = serde_json::to_string(&frontier).unwrap();
        assert!(json.contains("\"size\":21"), "{json}");
        assert_eq!(serde_json::from_str::<Frontier>(&json).unwrap(), frontier);
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(serde_json::from_str::<Frontier>(&json).unwrap(), empty);
    }

    #[test]
    fn decoding_rejects_bad_frontiers_and_long_paths() {
        use parity_scale_codec::DecodeAll;
        let h = leaf(D, 0);
        // Wrong peak counts: 3 leaves need 2 peaks.
        for peaks in [0usize, 1, 3, 64] {
            let bytes = (3u64, vec![h; peaks]).encode();
            let err = Frontier::decode_all(&mut &bytes[..]).unwrap_err();
            assert!(err.to_string().contains("peak count"), "{err}");
            let json = serde_json::to_string(&serde_json::json!({
                "size": 3,
                "peaks": vec![h; peaks],
            }))
            .unwrap();
            let err = serde_json::from_str::<Frontier>(&json).unwrap_err();
            assert!(err.to_string().contains("peaks"), "{err}");
            assert!(matches!(
                Frontier::from_parts(3, vec![h; peaks]),
                Err(MerkleError::PeakCountMismatch { size: 3, expected: 2, .. })
            ));
        }
        assert!(Frontier::from_parts(3, vec![h; 2]).is_ok());

        // Paths: 64 elements decode, 65 do not, whatever the encoding.
        for (len, ok) in [(MAX_PROOF_PATH, true), (MAX_PROOF_PATH + 1, false)] {
            let bytes = (1u64, 2u64, vec![h; len]).encode();
            assert_eq!(InclusionProof::decode_all(&mut &bytes[..]).is_ok(), ok);
            assert_eq!(ConsistencyProof::decode_all(&mut &bytes[..]).is_ok(), ok);
            let proof = InclusionProof { leaf_index: 1, tree_size: 2, path: vec![h; len] };
            let json = serde_json::to_string(&proof).unwrap();
            assert_eq!(serde_json::from_str::<InclusionProof>(&json).is_ok(), ok);
            let proof = ConsistencyProof { old_size: 1, new_size: 2, path: vec![h; len] };
            let json = serde_json::to_string(&proof).unwrap();
            assert_eq!(serde_json::from_str::<ConsistencyProof>(&json).is_ok(), ok);
            if !ok {
                let proof = InclusionProof { leaf_index: 1, tree_size: 2, path: vec![h; len] };
                assert_eq!(
                    verify_inclusion(D, &h, &proof, &h),
                    Err(VerifyError::PathTooLong { max: 64, actual: 65 })
                );
            }
        }
        // A huge length prefix fails at once, without allocating.
        let mut bytes = (1u64, 2u64).encode();
        Compact(u32::MAX).encode_to(&mut bytes);
        assert!(InclusionProof::decode_all(&mut &bytes[..]).is_err());
        let mut bytes = 3u64.encode();
        Compact(u32::MAX).encode_to(&mut bytes);
        assert!(Frontier::decode_all(&mut &bytes[..]).is_err());
        // Truncated input.
        let bytes = (1u64, 2u64, vec![h; 2]).encode();
        assert!(InclusionProof::decode_all(&mut &bytes[..bytes.len() - 1]).is_err());
    }

    // ---------------------------------------------------------------- errors

    #[derive(Debug, thiserror::Error)]
    #[error("disk on fire")]
    struct DiskError;

    struct FailingStore;
    impl NodeStore for FailingStore {
        type Error = DiskError;
        fn node(&self, _: NodeId) -> Result<Option<Hash32>, DiskError> {
            Err(DiskError)
        }
    }

    #[test]
    fn error_cases() {
        let l = leaves(D, 8);
        let (_, mut store, roots) = build(D, &l);

        assert_eq!(
            inclusion_proof(&store, D, 8, 8),
            Err(ProofError::LeafIndexOutOfRange { leaf_index: 8, tree_size: 8 })
        );
        assert_eq!(
            inclusion_proof(&store, D, 0, 0),
            Err(ProofError::LeafIndexOutOfRange { leaf_index: 0, tree_size: 0 })
        );
        assert_eq!(
            consistency_proof(&store, D, 5, 4),
            Err(ProofError::InvalidSizes { old_size: 5, new_size: 4 })
        );
        assert_eq!(
            consistency_proof(&store, D, 0, 4),
            Err(ProofError::InvalidSizes { old_size: 0, new_size: 4 })
        );
        let err = consistency_proof(&store, D, 0, 4).unwrap_err().to_string();
        assert!(err.contains("size 0") && err.contains("size 4"), "{err}");

        // Equal sizes: empty path, roots must match.
        let same = consistency_proof(&store, D, 8, 8).unwrap();
        assert!(same.path.is_empty());
        assert_eq!(verify_consistency(D, &roots[8], &roots[8], &same), Ok(()));
        assert!(matches!(
            verify_consistency(D, &roots[7], &roots[8], &same),
            Err(VerifyError::SameSizeRootsDiffer { size: 8, .. })
        ));

        // Verification of impossible sizes.
        let h = l[0];
        let bad = InclusionProof { leaf_index: 3, tree_size: 3, path: vec![] };
        assert_eq!(
            verify_inclusion(D, &h, &bad, &h),
            Err(VerifyError::LeafIndexOutOfRange { leaf_index: 3, tree_size: 3 })
        );
        for (old_size, new_size) in [(0, 0), (0, 5), (6, 5)] {
            let bad = ConsistencyProof { old_size, new_size, path: vec![h] };
            assert_eq!(
                verify_consistency(D, &h, &h, &bad),
                Err(VerifyError::InvalidSizes { old_size, new_size })
            );
        }
        let good = inclusion_proof(&store, D, 2, 8).unwrap();
        let wrong = verify_inclusion(D, &h, &good, &roots[8]).unwrap_err();
        assert!(matches!(wrong, VerifyError::RootMismatch { expected, .. } if expected == roots[8]));
        assert!(wrong.to_string().contains(&roots[8].to_hex()), "{wrong}");

        // Missing nodes: reported with their address, never a panic.
        assert_eq!(root_at(&store, D, 9), Err(ProofError::MissingNode { level: 0, index: 8 }));
        assert_eq!(inclusion_proof(&store, D, 0, 9), Err(ProofError::MissingNode { level: 0, index: 8 }));
        store.remove(NodeId::new(2, 1));
        assert_eq!(inclusion_proof(&store, D, 0, 8), Err(ProofError::MissingNode { level: 2, index: 1 }));
        assert_eq!(consistency_proof(&store, D, 4, 8), Err(ProofError::MissingNode { level: 2, index: 1 }));
        // Size 7 = peaks (2,0), (1,2), (0,6): it does not need the removed node.
        assert!(Frontier::from_store(&store, 7).is_ok());
        store.remove(NodeId::new(1, 2));
        assert_eq!(Frontier::from_store(&store, 7), Err(ProofError::MissingNode { level: 1, index: 2 }));
        assert!(root_at(&store, D, 4).is_ok());
        let err = inclusion_proof(&MemoryNodeStore::new(), D, 0, 2).unwrap_err();
        assert!(err.to_string().contains("level 0, index 1"), "{err}");

        // Store failures pass through with their source.
        let err = root_at(&FailingStore, D, 3).unwrap_err();
        assert!(matches!(err, ProofError::Store(DiskError)));
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(root_at(&FailingStore, D, 0).ok(), Some(D.empty_root()));
    }

    #[test]
    fn frontier_edges() {
        // Appending at the u64 limit fails and changes nothing.
        let h = leaf(D, 0);
        let mut full = Frontier::from_parts(u64::MAX, vec![h; 64]).unwrap();
        let before = full.clone();
        let mut calls = 0;
        assert_eq!(
            full.append(D, h, &mut |_, _| calls += 1),
            Err(MerkleError::SizeOverflow { size: u64::MAX })
        );
        assert_eq!((full, calls), (before, 0));
        // The step to the limit works: no merge at an even size.
        let mut almost = Frontier::from_parts(u64::MAX - 1, vec![h; 63]).unwrap();
        let mut sunk = vec![];
        almost.append(D, h, &mut |id, _| sunk.push(id)).unwrap();
        assert_eq!(sunk, vec![NodeId::leaf(u64::MAX - 1)]);
        assert_eq!(almost.peaks().len(), 64);
        let _ = almost.root(D);
        // A big merge: appending leaf 2^k - 1 completes k + 1 nodes.
        let mut f = build(D, &leaves(D, 15)).0;
        let mut sunk = vec![];
        f.append(D, leaf(D, 15), &mut |id, _| sunk.push(id)).unwrap();
        assert_eq!(sunk, (0..5u8).map(|lvl| NodeId::new(lvl, 15 >> lvl)).collect::<Vec<_>>());
        assert_eq!(f.peaks().len(), 1);
        // A huge size with nothing stored: a missing node, not a panic.
        assert_eq!(
            inclusion_proof(&MemoryNodeStore::new(), D, u64::MAX - 1, u64::MAX),
            Err(ProofError::MissingNode { level: 1, index: (u64::MAX - 3) >> 1 })
        );
        // Extend works as a sink target.
        let mut store = MemoryNodeStore::new();
        store.extend([(NodeId::leaf(0), h)]);
        assert_eq!(root_at(&store, D, 1), Ok(h));
    }
}
