//! The operator keys a node holds (issue #27, rotating keys): the ones it runs with and, while
//! a rotation is under way, the next ones (`cdrchain node --next-key`, `--next-evm-key`). At each
//! height the node signs with the key the chain registers for its operator at that height, so a
//! rotation takes effect at its height without a restart, and the old key signs nothing from
//! then on (the chain would refuse it anyway).
//!
//! What the chain registers "next" is read from the committed state, or from the scheduled change
//! once that is in force at the next height: the block that enacts a rotation is built and
//! checked with the new keys, and this node's batches for it are signed with them.

use cdrchain_chain_spec::sealing::EncryptionSecret;
use cdrchain_runtime::crypto::{public_key, EvmAddress, PublicKey};
use cdrchain_runtime::governance::{self, AuthorityChange, AUTHORITY_CHANGE_DELAY_BLOCKS};
use cdrchain_runtime::ids::{Height, OperatorId};
use cdrchain_runtime::state::{OperatorRecord, StateKey, StateView};
use cdrchain_storage::Storage;
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;

use crate::NodeError;

/// Most keys of one kind a node holds: the one in force and the next.
pub const MAX_RING_KEYS: usize = 2;

/// The ed25519 and secp256k1 keys of this node's operator that the node holds.
#[derive(Clone)]
pub struct KeyRing {
    signing: Vec<SigningKey>,
    evm: Vec<k256::ecdsa::SigningKey>,
    /// Opens interconnect documents sealed to the operator (`--encryption-key`).
    encryption: Option<EncryptionSecret>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("signing", &self.signing_publics()).finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The keys the node runs with and, optionally, the next ones.
    pub fn new(
        signing: SigningKey,
        next_signing: Option<SigningKey>,
        evm: Option<k256::ecdsa::SigningKey>,
        next_evm: Option<k256::ecdsa::SigningKey>,
    ) -> KeyRing {
        let ring = KeyRing {
            signing: std::iter::once(signing).chain(next_signing).collect(),
            evm: evm.into_iter().chain(next_evm).collect(),
            encryption: None,
        };
        debug_assert!(ring.signing.len() <= MAX_RING_KEYS && ring.evm.len() <= MAX_RING_KEYS);
        ring
    }

    /// The ring with the operator's encryption secret.
    pub fn with_encryption(mut self, encryption: Option<EncryptionSecret>) -> KeyRing {
        self.encryption = encryption;
        self
    }

    /// The operator's encryption secret, if the node holds it.
    pub fn encryption(&self) -> Option<&EncryptionSecret> {
        self.encryption.as_ref()
    }

    /// The key the node was started with (`--key`).
    pub fn first(&self) -> &SigningKey {
        &self.signing[0]
    }

    /// The held ed25519 key whose public key is `registered`.
    pub fn signing_for(&self, registered: &PublicKey) -> Option<&SigningKey> {
        self.signing.iter().find(|key| public_key(key) == *registered)
    }

    /// The held secp256k1 key with the address `registered`.
    pub fn evm_for(&self, registered: &EvmAddress) -> Option<&k256::ecdsa::SigningKey> {
        self.evm
            .iter()
            .find(|key| cdrchain_runtime::checkpoint::evm_address(key.verifying_key()) == *registered)
    }

    /// Whether the node holds any secp256k1 key.
    pub fn has_evm(&self) -> bool {
        !self.evm.is_empty()
    }

    /// The public keys held, for messages.
    pub fn signing_publics(&self) -> Vec<PublicKey> {
        self.signing.iter().map(public_key).collect()
    }

    /// The key that signs `operator`'s transactions in the next block: `Ok(None)` when the chain
    /// does not register the operator (yet), an error naming the keys when it registers one
    /// this node does not hold.
    pub fn transaction_key(
        &self,
        storage: &Storage,
        operator: &OperatorId,
    ) -> Result<Option<&SigningKey>, NodeError> {
        let Some(registered) = registered_next(storage, operator)? else { return Ok(None) };
        self.signing_for(&registered.signing_key)
            .map(Some)
            .ok_or_else(|| self.not_held(operator, &registered))
    }

    /// Why a node cannot sign for its operator: the chain registers another key.
    pub fn not_held(&self, operator: &OperatorId, registered: &OperatorRecord) -> NodeError {
        NodeError::Config(format!(
            "the chain registers {} for `{operator}`, and this node holds {}: start it with that key \
             (--key, or --next-key during a rotation; docs/operations.md, rotating keys)",
            registered.signing_key,
            self.signing_publics().iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
        ))
    }
}

/// The next block's height on `storage`.
pub fn next_height(storage: &Storage) -> Height {
    Height(storage.height().0 + 1)
}

/// What the chain registers for `operator` in the next block: the scheduled change's entry once
/// that change, about this operator, is in force there (a rotation's or an add's keys; nothing
/// after a removal), else the committed state's record. `None`: unknown or removed.
pub fn registered_next(
    storage: &Storage,
    operator: &OperatorId,
) -> Result<Option<OperatorRecord>, NodeError> {
    registered_at(storage, operator, next_height(storage))
}

/// [`registered_next`] for a next block `next`.
pub fn registered_at(
    storage: &Storage,
    operator: &OperatorId,
    next: Height,
) -> Result<Option<OperatorRecord>, NodeError> {
    if let Some(scheduled) = governance::scheduled_change(storage)? {
        if scheduled.set.from <= next && scheduled.change.subject() == operator {
            if let AuthorityChange::Remove { .. } = scheduled.change {
                return Ok(None);
            }
            let entry = scheduled.set.members.iter().find(|m| &m.id == operator);
            return Ok(
                entry.map(|m| OperatorRecord { signing_key: m.signing_key, evm_address: m.evm_address })
            );
        }
    }
    let read = |key: StateKey| storage.get(&key.encode());
    if read(StateKey::Retired(operator.clone()))?.is_some() {
        return Ok(None);
    }
    let Some(bytes) = read(StateKey::Operator(operator.clone()))? else { return Ok(None) };
    let record = cdrchain_runtime::codec::decode_exact(&bytes)
        .map_err(|source| NodeError::Corrupt { what: "an operator record of the state", source })?;
    Ok(Some(record))
}

/// Whether the chain's keys may be changing around the next block `next`: a change is scheduled,
/// or one took effect less than [`AUTHORITY_CHANGE_DELAY_BLOCKS`] ago. A transaction a peer
/// signed with a key this node does not (or no longer) expect is then not proof of misbehaviour:
/// the peer may be a block or two from here.
pub fn keys_in_flux(storage: &Storage, next: Height) -> Result<bool, NodeError> {
    if governance::scheduled_change(storage)?.is_some() {
        return Ok(true);
    }
    Ok(governance::set_id(storage)?
        .is_some_and(|set| set.from.0.saturating_add(AUTHORITY_CHANGE_DELAY_BLOCKS) > next.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use cdrchain_chain_spec::DevAccount;

    #[test]
    fn the_ring_answers_the_held_key_the_chain_registers_and_names_both_when_it_holds_neither() {
        let (dave, next_account, other) =
            (DevAccount::derive("dave"), DevAccount::derive("alice"), DevAccount::derive("bob"));
        let ring = KeyRing::new(
            dave.signing_key.clone(),
            Some(next_account.signing_key.clone()),
            Some(dave.evm_key.clone()),
            None,
        );
        let next = public_key(&next_account.signing_key);
        assert_eq!(ring.signing_for(&next).map(public_key), Some(next));
        assert_eq!(public_key(ring.first()), public_key(&dave.signing_key));
        assert!(ring.signing_for(&public_key(&other.signing_key)).is_none());
        let address = cdrchain_runtime::checkpoint::evm_address(dave.evm_key.verifying_key());
        assert!(ring.evm_for(&address).is_some());
        assert!(ring
            .evm_for(&cdrchain_runtime::checkpoint::evm_address(next_account.evm_key.verifying_key()))
            .is_none());
        let record = OperatorRecord { signing_key: public_key(&other.signing_key), evm_address: address };
        let message = ring.not_held(&OperatorId::new("dave").unwrap(), &record).to_string();
        for key in [public_key(&other.signing_key), public_key(&dave.signing_key), next] {
            assert!(message.contains(&key.to_string()), "{message}");
        }
    }
}
