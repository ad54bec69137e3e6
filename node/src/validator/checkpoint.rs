//! RSK checkpoint signing: once a committed block records its parent's checkpoint, this
//! validator signs it and pools the signature like its other transactions.

use cdrchain_runtime::block::Block;
use cdrchain_runtime::checkpoint::{Checkpoint, CheckpointSignature};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use parity_scale_codec::Encode;

use super::Driver;

impl Driver {
    /// When the committed block recorded its parent's checkpoint, signs it (once) and puts the
    /// signature transaction in the pool, which gossips it like our other transactions.
    pub(super) fn sign_checkpoint(&mut self, block: &Block) {
        let Some(signing) = self.settings.checkpoints.clone() else { return };
        let interval = self.chain.ctx.checkpoint_interval;
        let Some(height) = block.header.number.0.checked_sub(1) else { return };
        if interval == 0 || height == 0 || !height.is_multiple_of(interval) {
            return;
        }
        let height = Height(height);
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
            other => {
                tracing::error!(target: "cdrchain::checkpoint", "no readable checkpoint at #{height}: {other:?}");
                return;
            }
        };
        let digest = checkpoint.digest(self.chain.ctx.rsk_chain_id, &signing.contract);
        let signature = match cdrchain_runtime::checkpoint::sign_digest(&signing.evm_key, &digest) {
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
        let signed = SignedTransaction::sign(tx, &self.key, &genesis);
        match self.pool.add(signed.id(&genesis), signed) {
            Ok(()) => tracing::info!(
                target: "cdrchain::checkpoint",
                "signed checkpoint #{height} (block {}, log size {}) for contract {}",
                checkpoint.block_hash,
                checkpoint.cdr_log_size,
                signing.contract.to_hex()
            ),
            Err(e) => {
                tracing::warn!(target: "cdrchain::checkpoint", "checkpoint #{height} signature not pooled: {e}")
            }
        }
    }
}
