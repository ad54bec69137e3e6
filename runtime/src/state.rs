//! The small state: the key-value pairs the state transition reads and writes, and the state root
//! that commits to them and to the CDR log.
//!
//! Keys and values are SCALE-encoded [`StateKey`]s and their values; pairs are committed in
//! ascending key-byte order. The state root is
//! `H("… state root v1", cdr_log_root ‖ cdr_log_size ‖ kv_root ‖ kv_count)`, where `kv_root` is an
//! RFC 9162 tree (domain [`Domain::STATE`]) over leaves `SCALE((key, value))`. So one pair (an
//! operator's next sequence, say) is proven by its leaf, an inclusion path, and the other three
//! values; the count is part of the commitment, as the log size is of the header.
//!
//! The small state stays small on purpose: operators and authorities, one next-sequence per
//! operator, declared gaps, and calls that are live (a call's entry is removed when it ends).
//! Recomputing `kv_root` per block is then cheaper than maintaining a sparse tree.

use std::collections::BTreeMap;

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::block::MAX_AUTHORITIES;
use crate::codec::{decode_exact, BoundedVec};
use crate::crypto::{EvmAddress, PublicKey};
use crate::hash::{context, hash_with, Hash32};
use crate::ids::{CallId, Height, OperatorId, ReasonText, Sequence};
use crate::merkle::{Domain, Frontier};
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
}

impl StateKey {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode()
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
}

/// Read access to the state at a block's parent. Storage implements it over RocksDB; tests and
/// the builder's simulations use [`MemoryState`].
pub trait StateView {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The value stored under the encoded `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Every pair in ascending key order; `visit` is called once per pair.
    fn for_each_pair(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Self::Error>;

    /// The CDR log's frontier at the parent.
    fn cdr_log(&self) -> Result<Frontier, Self::Error>;
}

/// An in-memory state: the genesis state, tests, and nodes that keep the small state in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    pub pairs: BTreeMap<Vec<u8>, Vec<u8>>,
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

    fn cdr_log(&self) -> Result<Frontier, Self::Error> {
        Ok(self.cdr_log.clone())
    }
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
        self.cdr_log = changes.cdr_log.clone();
    }

    /// The state root of this state.
    pub fn state_root(&self) -> Hash32 {
        let (kv_root, kv_count) = kv_root(self.pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        state_root(&self.cdr_log.root(Domain::CDR_LOG), self.cdr_log.size(), &kv_root, kv_count)
    }

    /// Reads a typed value.
    pub fn typed<T: Decode>(&self, key: &StateKey) -> Option<T> {
        self.pairs.get(&key.encode()).and_then(|bytes| decode_exact(bytes).ok())
    }
}

/// The leaf of one pair in the state tree.
pub fn kv_leaf(key: &[u8], value: &[u8]) -> Hash32 {
    Domain::STATE.leaf(&(key, value).encode())
}

/// The root and count of the state tree over `pairs`, which must come in ascending key order.
pub fn kv_root<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> (Hash32, u64) {
    let mut frontier = Frontier::new();
    for (key, value) in pairs {
        // Fails only past 2^64 leaves.
        let appended = frontier.append(Domain::STATE, kv_leaf(key, value), &mut |_, _| {});
        debug_assert!(appended.is_ok());
    }
    (frontier.root(Domain::STATE), frontier.size())
}

/// Combines the log and the key-value tree into the state root.
pub fn state_root(cdr_log_root: &Hash32, cdr_log_size: u64, kv_root: &Hash32, kv_count: u64) -> Hash32 {
    hash_with(
        context::STATE_ROOT,
        &[&cdr_log_root.0, &cdr_log_size.to_le_bytes(), &kv_root.0, &kv_count.to_le_bytes()],
    )
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
}

/// The state at height 0: operators, the authority set, and every operator's next sequence at 0.
pub fn genesis_state(
    operators: &[(OperatorId, OperatorRecord)],
    authorities: &[OperatorId],
) -> Result<MemoryState, GenesisError> {
    let mut state = MemoryState::default();
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
    Ok(state)
}
