//! Authority-set changes: operators join, leave and rotate keys by governance transactions.
//!
//! An authority proposes one change ([`ProposeChange`]): add an operator (its ed25519 signing
//! key, EVM address and libp2p network key, each with a proof of possession made by that key),
//! remove an authority, or rotate an authority's ed25519 and/or secp256k1 key (the old key and
//! the new key both sign). Authorities approve it ([`ApproveChange`]); the proposer's own
//! transaction counts as its approval. When more than two thirds of the set in force have
//! approved, the block that completes the quorum schedules the new set ([`ScheduledChange`]) to
//! take effect [`AUTHORITY_CHANGE_DELAY_BLOCKS`] blocks later; at that height the block's
//! execution enacts it before anything else, so the set that certifies each block is the set in
//! force at its height. A proposal not approved within [`PROPOSAL_LIFETIME_MS`] of block time
//! expires.
//!
//! The rules (each tested in `runtime/tests/governance.rs`):
//! 1. At most one change in flight: no proposal while another is open or scheduled, so a quorum
//!    is always counted against the set that will be replaced, and the sets form a chain.
//! 2. Each change alters one member, and thresholds are recomputed for the new size: a set of n
//!    tolerates f = ⌊(n − 1) / 3⌋ faulty members, f < n/3, at every height; a set never empties
//!    and never exceeds [`MAX_AUTHORITIES`].
//! 3. From the effective height a removed operator's key signs nothing the chain accepts
//!    (transactions, checkpoint signatures, votes, proposals), and neither does a rotated-away key.
//! 4. Keys are proven: every new key signs a [`possession_message`] bound to the chain's genesis
//!    hash and the operator, so nobody registers a key they do not hold (or someone else's).
//!
//! The scheduled change is a state entry holding the whole next set with its keys, so a verifier
//! that holds the set in force at a block can prove, from that block's certified header and one
//! state-tree proof, the next set: this is how proofs cross set changes (see `docs/proofs.md`).

pub mod contract;
mod rules;

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::block::{quorum, MAX_AUTHORITIES};
use crate::checkpoint::EvmSignature;
use crate::codec::{decode_exact, BoundedVec};
use crate::crypto::{EvmAddress, PublicKey, Signature};
use crate::hash::{context, hash_with, Hash32};
use crate::ids::{Height, OperatorId};
use crate::state::{Authorities, OperatorRecord, StateKey, StateView};

/// Blocks between the block that completes a change's approvals and the height it takes effect.
/// At least 2: a validator learns the next set when it commits the approving block, before it
/// starts the height after it (see `Consensus::schedule`).
pub const AUTHORITY_CHANGE_DELAY_BLOCKS: u64 = 4;
/// How long a proposal stays open, in block time: 7 days.
pub const PROPOSAL_LIFETIME_MS: u64 = 7 * 24 * 3_600 * 1_000;

const _: () = assert!(AUTHORITY_CHANGE_DELAY_BLOCKS >= 2);

/// One member of an authority set, with the keys a verifier needs.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct AuthorityEntry {
    pub id: OperatorId,
    /// Signs its votes, proposals and transactions.
    pub signing_key: PublicKey,
    /// Signs RSK checkpoints.
    pub evm_address: EvmAddress,
}

/// An authority set and the first height it certifies.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct AuthoritySet {
    /// 0 for the genesis set, one more for each change.
    pub id: u64,
    /// The first height whose block this set certifies (1 for the genesis set).
    pub from: Height,
    /// In proposer order.
    pub members: BoundedVec<AuthorityEntry, MAX_AUTHORITIES>,
}

impl AuthoritySet {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn get(&self, id: &OperatorId) -> Option<&AuthorityEntry> {
        self.members.iter().find(|m| &m.id == id)
    }

    pub fn contains(&self, id: &OperatorId) -> bool {
        self.get(id).is_some()
    }

    /// More than two thirds of the members.
    pub fn quorum(&self) -> usize {
        quorum(self.members.len())
    }

    /// Ids and signing keys, in proposer order: what certificates and votes are checked against.
    pub fn signing_keys(&self) -> Vec<(OperatorId, PublicKey)> {
        self.members.iter().map(|m| (m.id.clone(), m.signing_key)).collect()
    }

    /// The digest of the set: its SCALE encoding, hashed.
    pub fn hash(&self) -> Hash32 {
        hash_with(context::AUTHORITY_SET, &[&self.encode()])
    }
}

/// An operator joining the authority set.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct NewAuthority {
    pub id: OperatorId,
    pub signing_key: PublicKey,
    pub evm_address: EvmAddress,
    /// Its node's libp2p ed25519 identity key (the peer id is derived from it).
    pub network_key: PublicKey,
    /// [`possession_message`] of the signing key, signed by it.
    pub signing_proof: Signature,
    /// [`possession_message`] of the network key, signed by it.
    pub network_proof: Signature,
    /// [`possession_message`] of the EVM address, signed by its secp256k1 key.
    pub evm_proof: EvmSignature,
}

/// A new secp256k1 checkpoint key: the new key proves possession, the old key hands over.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct EvmRotation {
    pub address: EvmAddress,
    /// [`possession_message`] of the new address ([`KeyRole::Evm`]), signed by the new key.
    pub new_proof: EvmSignature,
    /// [`possession_message`] of old ‖ new address ([`KeyRole::EvmHandover`]), signed by the old key.
    pub old_proof: EvmSignature,
}

/// New keys for an authority. The old ed25519 key signs the proposing transaction (only the
/// operator itself proposes its rotation); each new key proves possession.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct KeyRotation {
    pub id: OperatorId,
    /// The new ed25519 key and its [`possession_message`] signed by it.
    pub signing_key: Option<(PublicKey, Signature)>,
    pub evm: Option<EvmRotation>,
}

/// One change to the authority set.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AuthorityChange {
    #[codec(index = 0)]
    Add(NewAuthority),
    /// The operator leaves the set and the consortium: from the effective height its
    /// transactions are refused (its records stay on chain and provable).
    #[codec(index = 1)]
    Remove { id: OperatorId },
    #[codec(index = 2)]
    RotateKeys(KeyRotation),
}

impl AuthorityChange {
    /// The operator the change is about.
    pub fn subject(&self) -> &OperatorId {
        match self {
            AuthorityChange::Add(add) => &add.id,
            AuthorityChange::Remove { id } => id,
            AuthorityChange::RotateKeys(rotation) => &rotation.id,
        }
    }

    /// `add`, `remove` or `rotate-keys`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthorityChange::Add(_) => "add",
            AuthorityChange::Remove { .. } => "remove",
            AuthorityChange::RotateKeys(_) => "rotate-keys",
        }
    }
}

/// An authority proposes a change (and approves it by proposing).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ProposeChange {
    pub operator: OperatorId,
    pub change: AuthorityChange,
}

/// An authority approves the open proposal `proposal` (its id: the proposing transaction's id).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ApproveChange {
    pub operator: OperatorId,
    pub proposal: Hash32,
}

/// The open proposal: [`StateKey::PendingChange`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct PendingChange {
    /// The proposing transaction's id.
    pub id: Hash32,
    pub proposer: OperatorId,
    pub change: AuthorityChange,
    pub proposed_at: Height,
    /// Block time from which the proposal is gone.
    pub expires_at_ms: u64,
    /// Who approved, in order (the proposer first).
    pub approvals: BoundedVec<OperatorId, MAX_AUTHORITIES>,
}

/// An approved change waiting for its height: [`StateKey::ScheduledChange`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct ScheduledChange {
    pub proposal: Hash32,
    pub change: AuthorityChange,
    /// The block whose transaction completed the quorum.
    pub approved_at: Height,
    /// The set from `set.from` = `approved_at` + [`AUTHORITY_CHANGE_DELAY_BLOCKS`].
    pub set: AuthoritySet,
}

/// The current set's id and first height: [`StateKey::AuthoritySetId`] (absent: the genesis set).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct SetId {
    pub id: u64,
    pub from: Height,
}

impl SetId {
    pub const GENESIS: SetId = SetId { id: 0, from: Height(1) };
}

/// What a proof of possession is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyRole {
    /// An ed25519 signing key.
    Signing,
    /// A libp2p ed25519 network key.
    Network,
    /// A secp256k1 key, named by its EVM address.
    Evm,
    /// An old secp256k1 key handing over to a new address (`old ‖ new`).
    EvmHandover,
}

impl KeyRole {
    fn tag(self) -> u8 {
        match self {
            KeyRole::Signing => 0,
            KeyRole::Network => 1,
            KeyRole::Evm => 2,
            KeyRole::EvmHandover => 3,
        }
    }
}

/// The message a key signs to prove that `operator` holds it on the chain `genesis_hash`:
/// `BLAKE3-derive-key("cdrchain 2026-12 proof of possession v1", genesis_hash ‖ role ‖
/// SCALE(operator) ‖ key)`, role 0 signing, 1 network, 2 EVM (key: the 20-byte address), 3 EVM
/// hand-over (key: old address ‖ new address). ed25519 keys sign it as is; secp256k1 keys sign
/// its 32 bytes as a prehashed digest (recoverable, `r ‖ s ‖ v`).
pub fn possession_message(genesis_hash: &Hash32, role: KeyRole, operator: &OperatorId, key: &[u8]) -> Hash32 {
    hash_with(context::POSSESSION, &[&genesis_hash.0, &[role.tag()], &operator.encode(), key])
}

/// Why the authority set could not be read from a state.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("reading the state failed: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("state entry {key} does not decode: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("authority `{0}` has no operator record")]
    MissingOperator(OperatorId),
}

fn read<T: Decode, V: StateView>(view: &V, key: &StateKey) -> Result<Option<T>, SetError> {
    view.get(&key.encode())
        .map_err(|e| SetError::Read(Box::new(e)))?
        .map(|bytes| {
            decode_exact(&bytes)
                .map_err(|e| SetError::Corrupt { key: format!("{key:?}"), reason: e.to_string() })
        })
        .transpose()
}

/// The set in force in `view` (the state after some block): ids from [`StateKey::Authorities`],
/// keys from their operator records.
pub fn current_set<V: StateView>(view: &V) -> Result<AuthoritySet, SetError> {
    let ids: Authorities = read(view, &StateKey::Authorities)?.unwrap_or_default();
    let set_id: SetId = read(view, &StateKey::AuthoritySetId)?.unwrap_or(SetId::GENESIS);
    assemble(
        &ids,
        set_id,
        |id| read(view, &StateKey::Operator(id.clone())),
        |id| SetError::MissingOperator(id.clone()),
    )
}

/// The set of `ids` with their keys from their operator records (`record` reads one; `missing`
/// is the error for an authority without one).
pub(crate) fn assemble<E>(
    ids: &Authorities,
    set_id: SetId,
    mut record: impl FnMut(&OperatorId) -> Result<Option<OperatorRecord>, E>,
    missing: impl Fn(&OperatorId) -> E,
) -> Result<AuthoritySet, E> {
    let mut members = Vec::with_capacity(ids.len());
    for id in ids.iter() {
        let record = record(id)?.ok_or_else(|| missing(id))?;
        members.push(AuthorityEntry {
            id: id.clone(),
            signing_key: record.signing_key,
            evm_address: record.evm_address,
        });
    }
    // `ids` is bounded by the same limit.
    let members = BoundedVec::new(members).unwrap_or_default();
    Ok(AuthoritySet { id: set_id.id, from: set_id.from, members })
}

/// The set that certifies the block at `height`, from the state after block `height − 1` (or
/// any later state before `height` is enacted): the scheduled set if it is in force by then,
/// the current set otherwise. Exact for any `height` ≤ the state's height +
/// [`AUTHORITY_CHANGE_DELAY_BLOCKS`]: a change in force by then was approved in the state. For a
/// height before the current set, the set in force then ([`StateKey::AuthoritySetById`]).
pub fn authority_set_at<V: StateView>(view: &V, height: Height) -> Result<AuthoritySet, SetError> {
    if let Some(scheduled) = read::<ScheduledChange, V>(view, &StateKey::ScheduledChange)? {
        if scheduled.set.from <= height {
            return Ok(scheduled.set);
        }
    }
    let current = current_set(view)?;
    if height >= current.from {
        return Ok(current);
    }
    // An earlier height: the sets that were in force are kept by id (one read per set back).
    let mut id = current.id;
    while let Some(before) = id.checked_sub(1) {
        match read::<AuthoritySet, V>(view, &StateKey::AuthoritySetById(before))? {
            Some(set) if set.from <= height => return Ok(set),
            Some(_) => id = before,
            None => break,
        }
    }
    Ok(current)
}

/// The scheduled change, if any.
pub fn scheduled_change<V: StateView>(view: &V) -> Result<Option<ScheduledChange>, SetError> {
    read(view, &StateKey::ScheduledChange)
}

/// The id and first height of the set in force; `None` for the genesis set.
pub fn set_id<V: StateView>(view: &V) -> Result<Option<SetId>, SetError> {
    read(view, &StateKey::AuthoritySetId)
}

/// The open proposal, if any.
pub fn pending_change<V: StateView>(view: &V) -> Result<Option<PendingChange>, SetError> {
    read(view, &StateKey::PendingChange)
}

/// Signs the proofs of possession of a change: what `cdrchain authority propose` and tests use.
pub mod prove {
    use ed25519_dalek::SigningKey;
    use k256::ecdsa::SigningKey as EvmKey;

    use super::{possession_message, EvmRotation, KeyRole, KeyRotation, NewAuthority};
    use crate::checkpoint::{evm_address, sign_digest, CheckpointError};
    use crate::crypto::{public_key, sign};
    use crate::hash::Hash32;
    use crate::ids::OperatorId;

    /// `id` joining with these keys, each proving possession on the chain `genesis_hash`.
    pub fn new_authority(
        genesis_hash: &Hash32,
        id: &OperatorId,
        signing: &SigningKey,
        network: &SigningKey,
        evm: &EvmKey,
    ) -> Result<NewAuthority, CheckpointError> {
        let signing_key = public_key(signing);
        let network_key = public_key(network);
        let evm_address = evm_address(evm.verifying_key());
        let message = |role, key: &[u8]| possession_message(genesis_hash, role, id, key);
        Ok(NewAuthority {
            id: id.clone(),
            signing_key,
            evm_address,
            network_key,
            signing_proof: sign(signing, &message(KeyRole::Signing, &signing_key.0)),
            network_proof: sign(network, &message(KeyRole::Network, &network_key.0)),
            evm_proof: sign_digest(evm, &message(KeyRole::Evm, &evm_address.0).0)?,
        })
    }

    /// `id` rotating to a new ed25519 key and/or a new secp256k1 key (`old_evm` hands over).
    pub fn rotation(
        genesis_hash: &Hash32,
        id: &OperatorId,
        new_signing: Option<&SigningKey>,
        evm: Option<(&EvmKey, &EvmKey)>,
    ) -> Result<KeyRotation, CheckpointError> {
        let signing_key = new_signing.map(|key| {
            let public = public_key(key);
            (public, sign(key, &possession_message(genesis_hash, KeyRole::Signing, id, &public.0)))
        });
        let evm = match evm {
            None => None,
            Some((old, new)) => {
                let old_address = evm_address(old.verifying_key());
                let address = evm_address(new.verifying_key());
                let handover = [old_address.0.as_slice(), address.0.as_slice()].concat();
                Some(EvmRotation {
                    address,
                    new_proof: sign_digest(
                        new,
                        &possession_message(genesis_hash, KeyRole::Evm, id, &address.0).0,
                    )?,
                    old_proof: sign_digest(
                        old,
                        &possession_message(genesis_hash, KeyRole::EvmHandover, id, &handover).0,
                    )?,
                })
            }
        };
        Ok(KeyRotation { id: id.clone(), signing_key, evm })
    }
}
