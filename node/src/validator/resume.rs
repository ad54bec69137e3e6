//! Resuming from the WAL: the machine starts where its last record left it, or, when that
//! record is ahead of storage, as an observer that signs nothing until sync catches up.

use cdrchain_consensus::{Consensus, Output, Params, Validators, WalRecord};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::OperatorId;
use ed25519_dalek::SigningKey;

use super::{next_height, Driver, WAL_KEY};
use crate::chain::Chain;
use crate::NodeError;

/// The machine as the WAL left it, with its first outputs.
pub(super) struct Resumed {
    pub(super) machine: Consensus,
    pub(super) outputs: Vec<Output>,
    /// A WAL record ahead of storage (see the driver's `pending_wal`).
    pub(super) pending_wal: Option<WalRecord>,
}

/// Starts the machine at storage's next height, from the WAL record when there is one.
pub(super) fn resume(
    chain: &Chain,
    validators: &Validators,
    me: &(OperatorId, SigningKey),
    params: Params,
) -> Result<Resumed, NodeError> {
    let height = next_height(chain);
    let wal = match chain.storage.wal_get(WAL_KEY)? {
        Some(bytes) => Some(
            decode_exact::<WalRecord>(&bytes)
                .map_err(|source| NodeError::Corrupt { what: "the consensus WAL record", source })?,
        ),
        None => None,
    };
    if let Some(record) = wal.as_ref().filter(|record| record.height == height) {
        tracing::info!(
            target: "cdrchain::consensus",
            "resuming height {} round {} from the WAL ({} signed messages, lock {:?})",
            record.height,
            record.round.0,
            record.signed.len(),
            record.locked.map(|(r, h)| (r.0, h))
        );
    }
    // A WAL record of a later height than storage's next one: the machine decided a block the
    // node did not commit before it stopped. Until sync brings storage there, follow without
    // signing anything, so that nothing signed at those heights can be contradicted.
    let pending_wal = wal.as_ref().filter(|record| record.height > height).cloned();
    let (machine, outputs) = match &pending_wal {
        Some(record) => {
            tracing::warn!(
                target: "cdrchain::consensus",
                "the WAL is at height {} but storage at {}: following as an observer until synced",
                record.height,
                height.0 - 1
            );
            Consensus::new(validators.clone(), None, params, height, None)
        }
        None => Consensus::new(validators.clone(), Some(me.clone()), params, height, wal),
    };
    Ok(Resumed { machine, outputs, pending_wal })
}

impl Driver {
    /// Once storage reaches the WAL record the machine was ahead of, starts the machine again
    /// from that record, as a signer; returns its first outputs.
    pub(super) fn rejoin_when_synced(&mut self) -> Option<Vec<Output>> {
        let record = self.pending_wal.take_if(|r| r.height == next_height(&self.chain))?;
        tracing::info!(
            target: "cdrchain::consensus",
            "storage reached height {}: signing again, from the WAL",
            record.height.0 - 1
        );
        let me = Some((self.me.clone(), self.key.clone()));
        let (machine, outputs) =
            Consensus::new(self.validators.clone(), me, self.settings.params, record.height, Some(record));
        self.machine = machine;
        Some(outputs)
    }
}
