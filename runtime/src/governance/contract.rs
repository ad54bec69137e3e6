//! The RSK contract follows the authority set (issue #27). The `CdrCheckpoint` contract replaces
//! its validator set only with a quorum of the set it holds, over the EIP-712
//! `ValidatorSetChange(address[] validators,uint256 threshold,uint256 nonce)`. So for each change
//! the members of the set before it sign, with their EVM keys, that message for the set after
//! it, and publish the signatures on the chain in [`SetChangeSignature`] transactions; a relayer
//! submits them to `changeValidators` before any checkpoint of the new set.
//!
//! The message of set `k` ([`ValidatorSetChange::of`]): its members' EVM addresses in ascending
//! order, the threshold the chain uses (more than two thirds), and nonce `k − 1`: the contract
//! counts its changes from 0, and the chain relays every change (one that rotates only ed25519
//! keys too, with the same addresses), so its nonce is always the chain's set id less one.
//!
//! Signatures for set `k` are taken from the moment `k` is scheduled, for as long as the chain
//! runs (a relayer that fell behind submits the changes in order), once per member of set
//! `k − 1`, each recovering to that member's EVM address in set `k − 1`; every set that has been
//! in force is kept ([`StateKey::AuthoritySetById`]) for it. A removed member signs while the
//! change that removes it is scheduled, not after (its transactions are refused from then on).

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::apply::{Executor, Failure, TxError};
use crate::checkpoint::{
    domain_separator, keccak, recover, word_address, word_u64, EvmSignature, StoredSignature,
};
use crate::crypto::EvmAddress;
use crate::ids::OperatorId;
use crate::state::{StateKey, StateView};

use super::{AuthoritySet, ScheduledChange};

const VALIDATOR_SET_CHANGE_TYPE: &str =
    "ValidatorSetChange(address[] validators,uint256 threshold,uint256 nonce)";

/// What the contract's `changeValidators` takes, less the signatures.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ValidatorSetChange {
    /// Strictly ascending (the contract refuses anything else).
    pub validators: Vec<EvmAddress>,
    pub threshold: u64,
    pub nonce: u64,
}

impl ValidatorSetChange {
    /// The change that makes the contract hold `set` (set id ≥ 1).
    pub fn of(set: &AuthoritySet) -> ValidatorSetChange {
        let mut validators: Vec<EvmAddress> = set.members.iter().map(|m| m.evm_address).collect();
        validators.sort_unstable_by_key(|a| a.0);
        validators.dedup();
        ValidatorSetChange { validators, threshold: set.quorum() as u64, nonce: set.id.saturating_sub(1) }
    }

    /// EIP-712 `hashStruct`.
    pub fn struct_hash(&self) -> [u8; 32] {
        let words: Vec<[u8; 32]> = self.validators.iter().map(word_address).collect();
        let packed: Vec<&[u8]> = words.iter().map(|w| w.as_slice()).collect();
        keccak(&[
            &keccak(&[VALIDATOR_SET_CHANGE_TYPE.as_bytes()]),
            &keccak(&packed),
            &word_u64(self.threshold),
            &word_u64(self.nonce),
        ])
    }

    /// The digest the old set signs for the contract at `contract` on RSK chain `chain_id`.
    pub fn digest(&self, chain_id: u64, contract: &EvmAddress) -> [u8; 32] {
        keccak(&[&[0x19, 0x01], &domain_separator(chain_id, contract), &self.struct_hash()])
    }
}

/// A member of the set before set `set_id` signs the contract's change to it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct SetChangeSignature {
    /// The signer (its ed25519 key signs the transaction, its EVM key the change).
    pub operator: OperatorId,
    pub set_id: u64,
    /// The contract the signature is for (EIP-712 `verifyingContract`).
    pub contract: EvmAddress,
    pub signature: EvmSignature,
}

/// Set `set_id`, if the chain has it: scheduled, in force, or in force before
/// ([`StateKey::AuthoritySetById`]).
pub fn set_by_id<V: StateView>(view: &V, set_id: u64) -> Result<Option<AuthoritySet>, super::SetError> {
    if let Some(scheduled) = super::read::<ScheduledChange, V>(view, &StateKey::ScheduledChange)? {
        if scheduled.set.id == set_id {
            return Ok(Some(scheduled.set));
        }
    }
    let current = super::current_set(view)?;
    if current.id == set_id {
        return Ok(Some(current));
    }
    super::read::<AuthoritySet, V>(view, &StateKey::AuthoritySetById(set_id))
}

/// Set `set_id` (≥ 1) and the set before it, whose members sign the contract's change to it.
pub fn change_and_signers<V: StateView>(
    view: &V,
    set_id: u64,
) -> Result<Option<(AuthoritySet, AuthoritySet)>, super::SetError> {
    let Some(before) = set_id.checked_sub(1) else { return Ok(None) };
    match (set_by_id(view, set_id)?, set_by_id(view, before)?) {
        (Some(target), Some(signers)) => Ok(Some((target, signers))),
        _ => Ok(None),
    }
}

impl<V: StateView> Executor<'_, V> {
    /// Records a member's signature of the contract's change to set `tx.set_id` (see the module).
    pub(crate) fn set_change_signature(&mut self, tx: &SetChangeSignature) -> Result<(), Failure> {
        let operator = &tx.operator;
        let (Some(before), Some(target)) = (tx.set_id.checked_sub(1), self.set_by_id(tx.set_id)?) else {
            return Err(TxError::UnknownSetChange(tx.set_id).into());
        };
        let Some(signers) = self.set_by_id(before)? else {
            return Err(TxError::UnknownSetChange(tx.set_id).into());
        };
        let Some(entry) = signers.members.iter().find(|m| &m.id == operator) else {
            return Err(TxError::NotASigner { operator: operator.clone(), set_id: tx.set_id }.into());
        };
        let key = StateKey::SetChangeSignature(tx.set_id, operator.clone());
        if self.read::<StoredSignature>(&key)?.is_some() {
            return Err(TxError::ChangeAlreadySigned { operator: operator.clone(), set_id: tx.set_id }.into());
        }
        let digest = ValidatorSetChange::of(&target).digest(self.ctx.rsk_chain_id, &tx.contract);
        let wrong = |recovered: String| TxError::WrongSetChangeSigner {
            operator: operator.clone(),
            set_id: tx.set_id,
            recovered,
            expected: entry.evm_address.to_hex(),
        };
        let recovered = recover(&digest, &tx.signature).map_err(|e| wrong(e.to_string()))?;
        if recovered != entry.evm_address {
            return Err(wrong(recovered.to_hex()).into());
        }
        self.write(&key, Some(&StoredSignature { contract: tx.contract, signature: tx.signature }));
        Ok(())
    }

    /// [`set_by_id`] through this block's own writes.
    fn set_by_id(&self, set_id: u64) -> Result<Option<AuthoritySet>, Failure> {
        if let Some(scheduled) = self.read::<ScheduledChange>(&StateKey::ScheduledChange)? {
            if scheduled.set.id == set_id {
                return Ok(Some(scheduled.set));
            }
        }
        let current = self.governing_set()?;
        if current.id == set_id {
            return Ok(Some(current));
        }
        Ok(self.read::<AuthoritySet>(&StateKey::AuthoritySetById(set_id))?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `contracts/README.md`, "ValidatorSetChange": the addresses of keys 4, 2, 3, 1, threshold
    /// 3, nonce 0, for the contract at 0x5FbD…0aa3 on chain 33.
    #[test]
    fn the_contracts_test_vector() {
        let validators = [
            "0x1efF47bc3a10a45D4B230B5d10E37751FE6AA718",
            "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF",
            "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69",
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
        ]
        .map(|a| EvmAddress::from_hex(a).unwrap())
        .to_vec();
        let change = ValidatorSetChange { validators, threshold: 3, nonce: 0 };
        let contract = EvmAddress::from_hex("0x5FbDB2315678afecb367f032d93F642f64180aa3").unwrap();
        let digest = change.digest(33, &contract);
        assert_eq!(hex::encode(digest), "94f3b1253aebb3e67c4abcc0a78f17525cdbbb28876554782fdcdb7cf50b2373");
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = k256::ecdsa::SigningKey::from_slice(&one).unwrap();
        let signature = crate::checkpoint::sign_digest(&key, &digest).unwrap();
        assert_eq!(
            hex::encode(signature.0),
            "16250f771c8af63722712ea04d0a3e8c336a2130f181bbf571c2a76e385a1e6c\
             25bc6b4498b531aa32df8852a7af83effe0d74bc7d01f5fa5ea8889d49be3c341c"
        );
    }
}
