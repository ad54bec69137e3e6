//! The small state: the key-value pairs the state transition reads and writes, and the state root
//! that commits to them and to the CDR log.
//!
//! Keys and values are SCALE-encoded [`StateKey`]s and their values. The state root is
//! `H("… state root v2", cdr_log_root ‖ cdr_log_size ‖ tree_root)`, where `tree_root` is the
//! root of the sparse Merkle tree over the pairs ([`crate::smt`], ADR 0016), whose stored nodes a
//! block updates along the paths of the keys it writes. So one pair (an operator's next sequence,
//! say) is proven by its siblings in the tree and the log's root and size.
//!
//! The state is bounded per operator: operators and authorities, one next-sequence per operator,
//! declared gaps (adjacent ones merge, a few new ones per block), live calls (a quota, and a
//! timeout after which a call is closed as abandoned), checkpoints and their signatures, and at
//! most one authority-set change in flight ([`crate::governance`]).

use std::collections::BTreeMap;

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::block::MAX_AUTHORITIES;
use crate::codec::{decode_exact, BoundedVec};
use crate::crypto::{EvmAddress, PublicKey};
use crate::hash::{context, hash_with, Hash32};
use crate::ids::{CallId, Height, OperatorId, ReasonText, Sequence};
use crate::merkle::{Domain, Frontier};
use crate::smt::{self, TreeReader};
use crate::tx::CallState;

/// What a state entry is about. Its SCALE encoding is the storage key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Encode, Decode, Serialize, Deserialize)]
pub enum StateKey {
    /// A consortium member's registration: [`OperatorRecord`].
    #[codec(index = 0)]
    Operator(OperatorId),
    /// The ordered authority set: [`Authorities`].
    #[codec(index = 1)]
    Authorities,
    /// The next sequence number a recorder must use: [`Sequence`].
    #[codec(index = 2)]
    NextSequence(OperatorId),
    /// A declared gap starting at `Sequence`: [`GapRecord`].
    #[codec(index = 3)]
    Gap(OperatorId, Sequence),
    /// A live call: [`CallRecord`].
    #[codec(index = 4)]
    Call(OperatorId, CallId),
    /// The checkpoint of a block: [`crate::checkpoint::Checkpoint`], written by the next block.
    #[codec(index = 5)]
    Checkpoint(Height),
    /// A validator's signature of a checkpoint: [`crate::checkpoint::StoredSignature`].
    #[codec(index = 6)]
    CheckpointSignature(Height, OperatorId),
    /// The first sequence of the operator's latest gap, so that an adjacent gap merges into it:
    /// [`Sequence`].
    #[codec(index = 7)]
    LastGap(OperatorId),
    /// How many calls of the operator are live: `u32`, at most
    /// [`crate::bounds::MAX_LIVE_CALLS_PER_OPERATOR`].
    #[codec(index = 8)]
    LiveCalls(OperatorId),
    /// When a live call is closed as abandoned: the deadline (milliseconds, big-endian, so that
    /// keys sort by time), the call. The value is empty.
    #[codec(index = 9)]
    CallDeadline([u8; 8], OperatorId, CallId),
    /// The open authority-set change proposal: [`crate::governance::PendingChange`].
    #[codec(index = 10)]
    PendingChange,
    /// The approved change and the set it makes, until its height:
    /// [`crate::governance::ScheduledChange`].
    #[codec(index = 11)]
    ScheduledChange,
    /// The id and first height of the set in force: [`crate::governance::SetId`] (absent until
    /// the first change: the genesis set).
    #[codec(index = 12)]
    AuthoritySetId,
    /// The libp2p identity key of an operator added by governance (genesis operators' peer ids
    /// are in the chain spec): [`crate::crypto::PublicKey`].
    #[codec(index = 13)]
    NetworkKey(OperatorId),
    /// An operator removed by governance, and the height from which it signs nothing: [`Height`].
    #[codec(index = 14)]
    Retired(OperatorId),
    /// Every authority set that has been in force, by id, from the first change on (the genesis
    /// set, id 0, is written then too): [`crate::governance::AuthoritySet`]. The members of set
    /// `k − 1` sign the RSK contract's change to set `k` ([`crate::governance::contract`]).
    #[codec(index = 15)]
    AuthoritySetById(u64),
    /// A member's signature of the RSK contract's change to set `u64`:
    /// [`crate::checkpoint::StoredSignature`].
    #[codec(index = 16)]
    SetChangeSignature(u64, OperatorId),
    /// An operator's encryption key, to which interconnect documents for it are sealed:
    /// [`crate::interconnect::EncryptionKey`].
    #[codec(index = 17)]
    EncryptionKey(OperatorId),
    /// An interconnect agreement by id (its proposing transaction's id):
    /// [`crate::interconnect::AgreementRecord`].
    #[codec(index = 18)]
    Agreement(Hash32),
    /// A pair's agreements, the lesser operator id first ([`crate::interconnect::pair_key`]):
    /// [`crate::interconnect::PairAgreements`].
    #[codec(index = 19)]
    PairAgreements(OperatorId, OperatorId),
    /// A statement by id (its proposing transaction's id):
    /// [`crate::interconnect::StatementRecord`].
    #[codec(index = 20)]
    Statement(Hash32),
    /// A pair's statements, the lesser operator id first:
    /// [`crate::interconnect::PairStatements`].
    #[codec(index = 21)]
    PairStatements(OperatorId, OperatorId),
    /// A dispute by id (its opening transaction's id): [`crate::interconnect::dispute::DisputeRecord`].
    #[codec(index = 22)]
    Dispute(Hash32),
}

impl StateKey {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }

    /// The prefix every [`StateKey::Gap`] key of `operator` starts with (the tag, then the
    /// operator; the sequence follows), to read an operator's gaps without a scan of the state.
    pub fn gap_prefix(operator: &OperatorId) -> Vec<u8> {
        let key = StateKey::Gap(operator.clone(), Sequence(0)).encode();
        key[..key.len() - Sequence(0).encoded_size()].to_vec()
    }
}

/// A consortium member as registered at genesis.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct OperatorRecord {
    /// Signs the operator's transactions and, for authorities, votes.
    pub signing_key: PublicKey,
    /// Signs RSK checkpoints.
    pub evm_address: EvmAddress,
}

/// The authority set, in proposer order.
pub type Authorities = BoundedVec<OperatorId, MAX_AUTHORITIES>;

/// A declared gap `from..=to` (the key holds `from`).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct GapRecord {
    pub to: Sequence,
    pub reason: ReasonText,
    pub declared_at: Height,
}

/// The latest state of a live call.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CallRecord {
    pub state: CallState,
    pub at_ms: u64,
    /// Block time after which the call is closed as abandoned (its [`StateKey::CallDeadline`]).
    pub deadline_ms: u64,
}

/// Encoded key-value pairs of the state, in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to the state at a block's parent. Storage implements it over RocksDB; tests and
/// the builder's simulations use [`MemoryState`].
pub trait StateView {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value stored under the encoded `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Every pair in ascending key order; `visit` is called once per pair (tools and tests: the
    /// state transition never scans the state).
    fn for_each_pair(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Self::Error>;

    /// The encoded state tree node at `position` ([`smt::position_key`]).
    fn tree_node(&self, position: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;

    /// At most `limit` pairs whose keys start with `prefix`, in ascending key order.
    fn pairs_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Pairs, Self::Error>;

    /// The CDR log's frontier at the parent.
    fn cdr_log(&self) -> Result<Frontier, Self::Error>;
}

/// An in-memory state: the genesis state, tests, and nodes that keep the small state in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    pub pairs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The state tree's nodes by position.
    pub tree: BTreeMap<Vec<u8>, Vec<u8>>,
    pub cdr_log: Frontier,
}

impl StateView for MemoryState {
    type Error = std::convert::Infallible;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.pairs.get(key).cloned())
    }

    fn for_each_pair(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Self::Error> {
        for (key, value) in &self.pairs {
            visit(key, value);
        }
        Ok(())
    }

    fn tree_node(&self, position: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.tree.get(position).cloned())
    }

    fn pairs_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Pairs, Self::Error> {
        Ok(self
            .pairs
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn cdr_log(&self) -> Result<Frontier, Self::Error> {
        Ok(self.cdr_log.clone())
    }
}

/// The state tree of a [`StateView`], for [`smt`]'s functions.
pub struct TreeOf<'a, V: StateView>(pub &'a V);

impl<V: StateView> std::fmt::Debug for TreeOf<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TreeOf(..)")
    }
}

impl<V: StateView> TreeReader for TreeOf<'_, V> {
    type Error = V::Error;

    fn tree_node(&self, position: &[u8]) -> Result<Option<Vec<u8>>, V::Error> {
        self.0.tree_node(position)
    }
}

/// The state tree changes of pair writes (`None` deletes), sorted by path as [`smt::update`]
/// takes them.
pub fn tree_changes(writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> Vec<smt::Change> {
    let mut changes: Vec<smt::Change> = writes
        .iter()
        .map(|(key, value)| (smt::key_path(key), value.as_deref().map(smt::value_hash)))
        .collect();
    changes.sort_unstable_by_key(|(path, _)| *path);
    changes
}

impl MemoryState {
    /// Applies a block's writes and log frontier.
    pub fn apply(&mut self, changes: &crate::apply::StateChanges) {
        for (key, value) in &changes.writes {
            match value {
                Some(value) => self.pairs.insert(key.clone(), value.clone()),
                None => self.pairs.remove(key),
            };
        }
        smt::apply_writes(&mut self.tree, &changes.tree_writes);
        self.cdr_log = changes.cdr_log.clone();
    }

    /// Rebuilds the state tree from the pairs (after pairs were set by hand: tools, tests and
    /// benchmarks that make a large state without blocks).
    pub fn rebuild_tree(&mut self) -> Result<(), smt::TreeError<std::convert::Infallible>> {
        let writes = self.pairs.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        let update = smt::update(&BTreeMap::new(), &tree_changes(&writes))?;
        self.tree.clear();
        smt::apply_writes(&mut self.tree, &update.writes);
        Ok(())
    }

    /// The root of the state tree.
    pub fn tree_root(&self) -> Hash32 {
        let top = self.tree.get(&smt::position_key(0, &Hash32::ZERO));
        // The nodes are this crate's own encodings (`apply`, `genesis_state`).
        let node = top.and_then(|bytes| decode_exact::<smt::StoredNode>(bytes).ok());
        debug_assert_eq!(top.is_some(), node.is_some(), "the state tree's top node does not decode");
        node.map_or(smt::EMPTY, |node| node.hash())
    }

    /// The state root of this state.
    pub fn state_root(&self) -> Hash32 {
        state_root(&self.cdr_log.root(Domain::CDR_LOG), self.cdr_log.size(), &self.tree_root())
    }

    /// Reads a typed value.
    pub fn typed<T: Decode>(&self, key: &StateKey) -> Option<T> {
        self.pairs.get(&key.encode()).and_then(|bytes| decode_exact(bytes).ok())
    }
}

/// A pair's value, its siblings in the state tree (root first) and the tree's root, from a view;
/// `None` if the state holds no value under `key`.
#[allow(clippy::type_complexity)]
pub fn prove_pair<V: StateView>(
    view: &V,
    key: &[u8],
) -> Result<Option<(Vec<u8>, Vec<Hash32>, Hash32)>, smt::TreeError<V::Error>> {
    let Some(value) = view.get(key).map_err(smt::TreeError::Read)? else { return Ok(None) };
    let tree = TreeOf(view);
    let Some(siblings) = smt::prove(&tree, &smt::key_path(key))? else {
        return Err(smt::TreeError::Corrupt {
            position: hex::encode(key),
            reason: "the state holds the pair but its tree has no leaf for it".to_string(),
        });
    };
    Ok(Some((value, siblings, smt::root(&tree)?)))
}

/// Combines the log and the state tree into the state root.
pub fn state_root(cdr_log_root: &Hash32, cdr_log_size: u64, tree_root: &Hash32) -> Hash32 {
    hash_with(context::STATE_ROOT, &[&cdr_log_root.0, &cdr_log_size.to_le_bytes(), &tree_root.0])
}

/// Why a genesis state cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("operator `{0}` is registered twice")]
    DuplicateOperator(OperatorId),
    #[error("authority `{0}` is not a registered operator")]
    UnknownAuthority(OperatorId),
    #[error("authority `{0}` is listed twice")]
    DuplicateAuthority(OperatorId),
    #[error("there must be at least one authority")]
    NoAuthorities,
    #[error("{count} authorities, more than the limit of {max}")]
    TooManyAuthorities { count: usize, max: usize },
    #[error("the genesis state tree cannot be built: {0}")]
    StateTree(String),
    #[error("an encryption key is given for `{0}`, which is not a registered operator")]
    UnknownOperatorKey(OperatorId),
}

/// The state at height 0: operators, the authority set, and every operator's next sequence at 0.
pub fn genesis_state(
    operators: &[(OperatorId, OperatorRecord)],
    authorities: &[OperatorId],
) -> Result<MemoryState, GenesisError> {
    genesis_state_with_keys(operators, authorities, &[])
}

/// [`genesis_state`] with operators' encryption keys ([`StateKey::EncryptionKey`]).
pub fn genesis_state_with_keys(
    operators: &[(OperatorId, OperatorRecord)],
    authorities: &[OperatorId],
    encryption_keys: &[(OperatorId, crate::interconnect::EncryptionKey)],
) -> Result<MemoryState, GenesisError> {
    let mut state = MemoryState::default();
    for (id, key) in encryption_keys {
        if !operators.iter().any(|(operator, _)| operator == id) {
            return Err(GenesisError::UnknownOperatorKey(id.clone()));
        }
        state.pairs.insert(StateKey::EncryptionKey(id.clone()).encode(), key.encode());
    }
    for (id, record) in operators {
        let key = StateKey::Operator(id.clone()).encode();
        if state.pairs.insert(key, record.encode()).is_some() {
            return Err(GenesisError::DuplicateOperator(id.clone()));
        }
        state.pairs.insert(StateKey::NextSequence(id.clone()).encode(), Sequence(0).encode());
    }
    if authorities.is_empty() {
        return Err(GenesisError::NoAuthorities);
    }
    let mut seen = std::collections::BTreeSet::new();
    for authority in authorities {
        if !operators.iter().any(|(id, _)| id == authority) {
            return Err(GenesisError::UnknownAuthority(authority.clone()));
        }
        if !seen.insert(authority) {
            return Err(GenesisError::DuplicateAuthority(authority.clone()));
        }
    }
    let set = Authorities::new(authorities.to_vec())
        .map_err(|v| GenesisError::TooManyAuthorities { count: v.len(), max: MAX_AUTHORITIES })?;
    state.pairs.insert(StateKey::Authorities.encode(), set.encode());
    state.rebuild_tree().map_err(|e| GenesisError::StateTree(e.to_string()))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_gap_keys_start_with_its_gap_prefix_and_no_other_keys_do() {
        let alice = OperatorId::new("alice").unwrap();
        let prefix = StateKey::gap_prefix(&alice);
        for from in [0, 1, 255, u64::MAX] {
            assert!(StateKey::Gap(alice.clone(), Sequence(from)).encode().starts_with(&prefix));
        }
        let alicia = OperatorId::new("alicia").unwrap();
        assert!(!StateKey::Gap(alicia, Sequence(3)).encode().starts_with(&prefix));
        assert!(!StateKey::LastGap(alice).encode().starts_with(&prefix));
    }
}
