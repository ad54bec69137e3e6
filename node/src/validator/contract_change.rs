//! Signing the RSK contract's validator-set changes (issue #27; the message and the rules are in
//! `cdrchain_runtime::governance::contract`). After each commit, a validator that is a member of
//! the set before the scheduled set, or before the set in force, signs the contract's change to
//! it with the EVM key that set registers for it, unless the chain holds its signature already
//! or the pool still holds the transaction. Nothing is read beyond one key per candidate set once
//! signed.

use cdrchain_runtime::checkpoint::sign_digest;
use cdrchain_runtime::governance::contract::{change_and_signers, SetChangeSignature, ValidatorSetChange};
use cdrchain_runtime::governance::{self};
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use parity_scale_codec::Encode;

use super::Driver;
use crate::config::CheckpointSigning;
use crate::pool::PoolError;

impl Driver {
    /// Signs the contract's change to the scheduled set and to the set in force, where this
    /// validator is among the signers and has not signed yet.
    pub(super) fn sign_contract_changes(&mut self) {
        let Some(signing) = self.settings.checkpoints.clone() else { return };
        let chain = self.chain.clone();
        let storage = &*chain.storage;
        let candidates = match (governance::scheduled_change(storage), governance::set_id(storage)) {
            (Ok(scheduled), Ok(current)) => [scheduled.map(|s| s.set.id), current.map(|c| c.id)],
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(target: "cdrchain::checkpoint", "reading the authority sets: {e}");
                return;
            }
        };
        for set_id in candidates.into_iter().flatten() {
            if self.pooled_contract_change.is_some_and(|(id, tx)| id == set_id && self.pool.contains(&tx)) {
                continue;
            }
            match storage.get(&StateKey::SetChangeSignature(set_id, self.me.clone()).encode()) {
                Ok(None) => self.sign_contract_change(&signing, set_id),
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::error!(target: "cdrchain::checkpoint", "reading set-change signatures: {e}")
                }
            }
        }
    }

    fn sign_contract_change(&mut self, signing: &CheckpointSigning, set_id: u64) {
        let chain = self.chain.clone();
        let storage = &*chain.storage;
        let (target, signers) = match change_and_signers(storage, set_id) {
            Ok(Some(sets)) => sets,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(target: "cdrchain::checkpoint", "reading authority set {set_id}: {e}");
                return;
            }
        };
        // Not a member of the set before: others sign.
        let Some(entry) = signers.members.iter().find(|m| m.id == self.me) else { return };
        let Some(evm_key) = self.keys.evm_for(&entry.evm_address) else {
            tracing::warn!(
                target: "cdrchain::checkpoint",
                "cannot sign the RSK contract's change to authority set {set_id}: set {} registers {} for `{}`, \
                 which none of this node's EVM keys has",
                signers.id,
                entry.evm_address.to_hex(),
                self.me
            );
            return;
        };
        // Removed by the change (once in force) or unknown: nothing this node signs counts.
        let key = match self.keys.transaction_key(storage, &self.me) {
            Ok(Some(key)) => key.clone(),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(target: "cdrchain::checkpoint", "cannot sign the contract's change to set {set_id}: {e}");
                return;
            }
        };
        let change = ValidatorSetChange::of(&target);
        let digest = change.digest(self.chain.ctx.rsk_chain_id, &signing.contract);
        let signature = match sign_digest(evm_key, &digest) {
            Ok(signature) => signature,
            Err(e) => {
                tracing::error!(target: "cdrchain::checkpoint", "signing the contract's change to set {set_id}: {e}");
                return;
            }
        };
        let tx = Transaction::SetChangeSignature(SetChangeSignature {
            operator: self.me.clone(),
            set_id,
            contract: signing.contract,
            signature,
        });
        let genesis = self.chain.ctx.genesis_hash;
        let signed = SignedTransaction::sign(tx, &key, &genesis);
        let id = signed.id(&genesis);
        self.pooled_contract_change = Some((set_id, id));
        match self.pool.add(id, signed) {
            Ok(()) => tracing::info!(
                target: "cdrchain::checkpoint",
                "signed the RSK contract's change to authority set {set_id} ({} validators, threshold {}, nonce {}) \
                 for contract {}",
                change.validators.len(),
                change.threshold,
                change.nonce,
                signing.contract.to_hex()
            ),
            Err(PoolError::Duplicate(_)) => {}
            Err(e) => tracing::warn!(
                target: "cdrchain::checkpoint",
                "the signature of the contract's change to set {set_id} was not pooled: {e}; trying again after the \
                 next block"
            ),
        }
    }
}
