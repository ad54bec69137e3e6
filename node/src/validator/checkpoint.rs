//! RSK checkpoint signing: once a committed block records its parent's checkpoint, this
//! validator signs it and pools the signature like its other transactions, and keeps doing so
//! after every commit until the chain holds it.
//!
//! The state is the durable record of what is still to do: after each commit, the recent
//! checkpoints whose signature by this validator the state does not hold are signed again
//! (signatures are deterministic, so the transaction is the same). A signature lost with a full
//! pool, an eviction or a restart is therefore pooled again at the next commit; one still
//! waiting in the pool is not signed again (the driver remembers the ids it pooled).

use cdrchain_runtime::block::Block;
use cdrchain_runtime::checkpoint::{Checkpoint, CheckpointSignature};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use parity_scale_codec::Encode;

use super::Driver;
use crate::config::CheckpointSigning;
use crate::pool::PoolError;
use crate::NodeError;

/// How many of the latest checkpoints are signed again after each commit if the chain lacks this
/// validator's signature: the relayer submits the latest checkpoint with a quorum, so older ones
/// matter less; a few cover a restart or a busy spell.
pub const RESIGN_CHECKPOINTS: u64 = 4;

/// The latest checkpoint height a chain whose head is `head` holds: the highest multiple of
/// `interval` below the head (a block records its parent's checkpoint); 0 for none.
pub fn latest_checkpoint(head: u64, interval: u64) -> u64 {
    head.saturating_sub(1).checked_div(interval).map_or(0, |n| n * interval)
}

/// The checkpoint heights to look at after committing block `committed`: the latest
/// [`RESIGN_CHECKPOINTS`] multiples of `interval` below it (a block records its parent's
/// checkpoint), newest first.
pub fn recent_checkpoints(committed: u64, interval: u64) -> Vec<u64> {
    if interval == 0 {
        return Vec::new();
    }
    let latest = latest_checkpoint(committed, interval);
    (0..RESIGN_CHECKPOINTS).map_while(|k| latest.checked_sub(k * interval)).filter(|h| *h > 0).collect()
}

impl Driver {
    /// Signs the recent checkpoints the chain holds without this validator's signature and puts
    /// the signatures in the pool, which gossips them like our other transactions.
    pub(super) fn sign_checkpoint(&mut self, block: &Block) {
        let Some(signing) = self.settings.checkpoints.clone() else { return };
        let recent = recent_checkpoints(block.header.number.0, self.chain.ctx.checkpoint_interval);
        self.pooled_checkpoints.retain(|height, _| recent.contains(height));
        for height in recent {
            // Signed at an earlier commit and still waiting in the pool: nothing to redo.
            if self.pooled_checkpoints.get(&height).is_some_and(|id| self.pool.contains(id)) {
                continue;
            }
            self.sign_checkpoint_at(&signing, Height(height));
        }
    }

    /// This operator's secp256k1 and ed25519 keys the chain registers for the next block.
    fn keys_in_force(&self) -> Result<(k256::ecdsa::SigningKey, ed25519_dalek::SigningKey), NodeError> {
        let storage = &self.chain.storage;
        let registered = crate::keys::registered_next(storage, &self.me)?
            .ok_or_else(|| NodeError::Config(format!("the chain does not register `{}`", self.me)))?;
        let evm = self.keys.evm_for(&registered.evm_address).ok_or_else(|| {
            NodeError::Config(format!(
                "the chain registers the checkpoint address {} for `{}`, which none of this node's EVM keys has \
                 (--evm-key, or --next-evm-key during a rotation)",
                registered.evm_address.to_hex(),
                self.me
            ))
        })?;
        let key = self
            .keys
            .signing_for(&registered.signing_key)
            .ok_or_else(|| self.keys.not_held(&self.me, &registered))?;
        Ok((evm.clone(), key.clone()))
    }

    fn sign_checkpoint_at(&mut self, signing: &CheckpointSigning, height: Height) {
        let storage = &self.chain.storage;
        let read = |key: StateKey| storage.get(&key.encode());
        match read(StateKey::CheckpointSignature(height, self.me.clone())) {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(e) => {
                tracing::error!(target: "cdrchain::checkpoint", "reading checkpoint signatures: {e}");
                return;
            }
        }
        let checkpoint = match read(StateKey::Checkpoint(height))
            .map(|b| b.map(|b| decode_exact::<Checkpoint>(&b)))
        {
            Ok(Some(Ok(checkpoint))) => checkpoint,
            // Superseded and pruned, or not yet recorded: nothing to sign.
            Ok(None) => return,
            other => {
                tracing::error!(target: "cdrchain::checkpoint", "no readable checkpoint at #{height}: {other:?}");
                return;
            }
        };
        // The keys the chain registers for this operator in the block that will carry the
        // signature (a rotation in force there counts).
        let (evm_key, key) = match self.keys_in_force() {
            Ok(keys) => keys,
            Err(e) => {
                tracing::error!(target: "cdrchain::checkpoint", "not signing the checkpoint at #{height}: {e}");
                return;
            }
        };
        let digest = checkpoint.digest(self.chain.ctx.rsk_chain_id, &signing.contract);
        let signature = match cdrchain_runtime::checkpoint::sign_digest(&evm_key, &digest) {
            Ok(signature) => signature,
            Err(e) => {
                tracing::error!(target: "cdrchain::checkpoint", "signing the checkpoint at #{height}: {e}");
                return;
            }
        };
        let tx = Transaction::CheckpointSignature(CheckpointSignature {
            operator: self.me.clone(),
            height,
            contract: signing.contract,
            signature,
        });
        let genesis = self.chain.ctx.genesis_hash;
        let signed = SignedTransaction::sign(tx, &key, &genesis);
        let id = signed.id(&genesis);
        self.pooled_checkpoints.insert(height.0, id);
        match self.pool.add(id, signed) {
            Ok(()) => tracing::info!(
                target: "cdrchain::checkpoint",
                "signed checkpoint #{height} (block {}, log size {}) for contract {}",
                checkpoint.block_hash,
                checkpoint.cdr_log_size,
                signing.contract.to_hex()
            ),
            // Pooled at an earlier commit, still waiting for a block.
            Err(PoolError::Duplicate(_)) => {}
            Err(e) => tracing::warn!(
                target: "cdrchain::checkpoint",
                "checkpoint #{height} signature not pooled: {e}; trying again after the next block"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_checkpoints_below_the_committed_block_newest_first() {
        // Block 11 records checkpoint 10.
        assert_eq!(recent_checkpoints(11, 10), vec![10]);
        assert_eq!(recent_checkpoints(10, 10), Vec::<u64>::new());
        assert_eq!(recent_checkpoints(57, 10), vec![50, 40, 30, 20]);
        assert_eq!(recent_checkpoints(51, 10), vec![50, 40, 30, 20]);
        assert_eq!(recent_checkpoints(5, 1), vec![4, 3, 2, 1]);
        assert_eq!(recent_checkpoints(100, 0), Vec::<u64>::new());
        assert_eq!(recent_checkpoints(0, 10), Vec::<u64>::new());
    }
}
