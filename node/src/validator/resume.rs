//! Resuming from the WAL: the machine starts where its last record left it, or, when that
//! record is ahead of storage, as an observer that signs nothing until sync catches up.
//!
//! The WAL also keeps the blocks of the machine's locked and valid values, written with the
//! record that first names them: a validator locked on a block can only ever prevote that block
//! again at that height (or re-propose it), so a restart that lost the block would stall the
//! height for good; on a single-validator chain, nobody else holds it.

use cdrchain_consensus::{Consensus, Output, Params, Validators, WalRecord};
use cdrchain_runtime::block::Block;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{OperatorId, Round};
use parity_scale_codec::Encode;

use super::guard::position;
use super::{next_height, Driver, SigningState, WAL_KEY};
use crate::chain::Chain;
use crate::NodeError;

/// WAL key of the blocks of the machine's locked and valid values (SCALE `Vec<Block>`).
pub(super) const WAL_BLOCKS_KEY: &[u8] = b"consensus-blocks";

/// The machine as the WAL left it, with its first outputs.
pub(super) struct Resumed {
    pub(super) machine: Consensus,
    pub(super) outputs: Vec<Output>,
    /// A WAL record ahead of storage (see the driver's `pending_wal`).
    pub(super) pending_wal: Option<WalRecord>,
    /// The locked and valid blocks the WAL kept for the machine's height, with their rounds.
    pub(super) blocks: Vec<(Block, Round)>,
}

/// Starts the machine at storage's next height, from the WAL record when there is one.
pub(super) fn resume(
    chain: &Chain,
    validators: &Validators,
    me: &(OperatorId, std::sync::Arc<crate::keys::KeyRing>),
    params: Params,
    solo: bool,
    signing_state: &SigningState,
) -> Result<Resumed, NodeError> {
    let height = next_height(chain);
    let in_database = match chain.storage.wal_get(WAL_KEY)? {
        Some(bytes) => Some(
            decode_exact::<WalRecord>(&bytes)
                .map_err(|source| NodeError::Corrupt { what: "the consensus WAL record", source })?,
        ),
        None => None,
    };
    let mut outside = signing_state.load()?;
    if solo && outside.as_ref().is_some_and(|r| r.height > height) {
        // Nobody can sync the missing heights to a chain of one validator, and nobody saw what it
        // signed: a purged dev chain starts again.
        tracing::warn!(
            target: "cdrchain::consensus",
            "the signing state {} is at height {} but this chain of one validator starts again at {}: ignored",
            signing_state.path().display(),
            outside.as_ref().map_or(0, |r| r.height.0),
            height
        );
        outside = None;
    }
    if outside.as_ref().map(position) > in_database.as_ref().map(position) {
        // Purged, restored from an older backup, or moved to a new database: what the file
        // says this validator signed is what it must not contradict.
        tracing::warn!(
            target: "cdrchain::consensus",
            "the signing state {} is ahead of the database (height {} round {} against {:?}): the database \
             was purged or restored; this validator signs nothing it could contradict",
            signing_state.path().display(),
            outside.as_ref().map_or(0, |r| r.height.0),
            outside.as_ref().map_or(0, |r| r.round.0),
            in_database.as_ref().map(|r| r.height.0)
        );
    }
    let mut wal = super::guard::newer(in_database, outside);
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
    let blocks = match wal.as_mut().filter(|record| record.height == height) {
        Some(record) => {
            let blocks = kept_blocks(chain, record)?;
            if solo {
                forget_lost_lock(record, &blocks);
            }
            blocks
        }
        None => Vec::new(),
    };
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
        None => {
            let signer = super::sets::identity_in(validators, &me.0, &me.1, height);
            if !validators.contains(&me.0) {
                tracing::warn!(
                    target: "cdrchain::consensus",
                    "`{}` is not an authority at height {height}: following the chain without signing until the \
                     chain adds it (docs/operations.md, joining)",
                    me.0
                );
            }
            Consensus::new(validators.clone(), signer, params, height, wal)
        }
    };
    Ok(Resumed { machine, outputs, pending_wal, blocks })
}

/// Writes `record` and the blocks of its lock in one synced batch.
fn store_with_blocks(
    storage: &cdrchain_storage::Storage,
    record: &[u8],
    blocks: &[&Block],
) -> Result<(), NodeError> {
    let blocks_bytes = blocks.encode();
    storage.wal_put_all(&[(WAL_KEY, record), (WAL_BLOCKS_KEY, &blocks_bytes)])?;
    Ok(())
}

/// A chain of one validator that sends nothing: its messages are seen by no one.
pub(super) fn is_solo(validators: &Validators, networked: bool) -> bool {
    validators.len() == 1 && !networked
}

/// The hashes of `record`'s locked and valid values, each once.
fn kept_hashes(record: &WalRecord) -> Vec<(Hash32, Round)> {
    let mut kept: Vec<(Hash32, Round)> = Vec::with_capacity(2);
    for (round, hash) in [record.locked, record.valid].into_iter().flatten() {
        if !kept.iter().any(|(h, _)| *h == hash) {
            kept.push((hash, round));
        }
    }
    kept
}

/// On a chain of one validator without a network (`solo`) the WAL keeps no blocks (see
/// `write_wal`): a lock on a block the restarted node no longer holds is dropped. Safe there
/// alone: the only quorum is this validator's own vote, the block was not committed (storage is
/// below its height), and no message left the node, so no decision can exist to conflict with.
fn forget_lost_lock(record: &mut WalRecord, blocks: &[(Block, Round)]) {
    let held = |hash: &Hash32| blocks.iter().any(|(block, _)| block.hash() == *hash);
    let lost = [record.locked, record.valid].into_iter().flatten().any(|(_, hash)| !held(&hash));
    if lost {
        tracing::info!(
            target: "cdrchain::consensus",
            "the only validator restarted locked on a block it no longer holds at height {}: the lock is dropped (nobody else voted)",
            record.height
        );
        record.locked = None;
        record.valid = None;
        record.polka.clear();
    }
}

/// The blocks the WAL kept for `record`'s locked and valid values, at its height.
fn kept_blocks(chain: &Chain, record: &WalRecord) -> Result<Vec<(Block, Round)>, NodeError> {
    let Some(bytes) = chain.storage.wal_get(WAL_BLOCKS_KEY)? else { return Ok(Vec::new()) };
    let blocks = decode_exact::<Vec<Block>>(&bytes)
        .map_err(|source| NodeError::Corrupt { what: "the consensus WAL's locked blocks", source })?;
    let wanted = kept_hashes(record);
    let kept: Vec<(Block, Round)> = blocks
        .into_iter()
        .filter(|block| block.header.number == record.height)
        .filter_map(|block| {
            let hash = block.hash();
            wanted.iter().find(|(h, _)| *h == hash).map(|(_, round)| (block, *round))
        })
        .collect();
    if !kept.is_empty() {
        tracing::info!(target: "cdrchain::consensus", "the WAL kept {} locked block(s) of height {}", kept.len(), record.height);
    }
    Ok(kept)
}

impl Driver {
    /// Makes `record` durable, with the blocks of its locked and valid values when it is the
    /// first record to name them (one synced write: the record never names a block the WAL
    /// lacks). Not on a chain of one validator without a network, where the block is decided in
    /// the same step and the extra write of every block cost 7 % of `bench dev`; see
    /// `forget_lost_lock`.
    pub(super) fn write_wal(&mut self, record: &WalRecord) -> Result<(), NodeError> {
        let kept =
            if is_solo(&self.validators, self.net.is_some()) { Vec::new() } else { kept_hashes(record) };
        let storage = self.chain.storage.clone();
        let encoded = record.encode();
        let new = kept.iter().any(|(hash, _)| !self.wal_blocks.contains(hash));
        let blocks: Vec<&Block> = if new {
            kept.iter().filter_map(|(hash, _)| self.proposals.block(hash)).collect()
        } else {
            Vec::new()
        };
        if blocks.len() < kept.len() && new {
            // The machine only locks on a block it executed here, which the store keeps.
            tracing::warn!(target: "cdrchain::consensus", "a locked block of height {} is not held: the WAL keeps it without its body", record.height);
        }
        let signing_state = &self.settings.signing_state;
        tokio::task::block_in_place(|| {
            if new {
                store_with_blocks(&storage, &encoded, &blocks)?;
            } else {
                storage.wal_put(WAL_KEY, &encoded)?;
            }
            // Also outside the database, where purge-chain or a restore cannot reach it.
            signing_state.store(&encoded)
        })?;
        self.wal_blocks = kept.into_iter().map(|(hash, _)| hash).collect();
        Ok(())
    }

    /// Once storage reaches the WAL record the machine was ahead of, starts the machine again
    /// from that record, as a signer; returns its first outputs.
    /// Sync may bring storage past the record's height in one response (a purged or restored
    /// database is many heights behind): then nothing signed at the heights ahead can be
    /// contradicted, and the machine starts at storage's next height without the record.
    pub(super) fn rejoin_when_synced(&mut self) -> Option<Vec<Output>> {
        let next = next_height(&self.chain);
        let record = self.pending_wal.take_if(|r| r.height <= next)?;
        let me = self.identity_in(&self.validators, next);
        let (machine, outputs) = if record.height == next {
            match kept_blocks(&self.chain, &record) {
                Ok(blocks) => self.restore_blocks(blocks),
                Err(e) => {
                    tracing::warn!(target: "cdrchain::consensus", "the WAL's locked blocks are not readable: {e}")
                }
            }
            tracing::info!(
                target: "cdrchain::consensus",
                "storage reached height {}: signing again, from the WAL",
                record.height.0 - 1
            );
            Consensus::new(self.validators.clone(), me, self.settings.params, record.height, Some(record))
        } else {
            tracing::info!(
                target: "cdrchain::consensus",
                "storage is past height {} where this validator last signed: signing again from height {}",
                record.height.0,
                next.0
            );
            Consensus::new(self.validators.clone(), me, self.settings.params, next, None)
        };
        self.machine = machine;
        Some(outputs)
    }

    /// Puts the blocks the WAL kept back in the proposal store.
    pub(super) fn restore_blocks(&mut self, blocks: Vec<(Block, Round)>) {
        for (block, round) in blocks {
            self.wal_blocks.push(block.hash());
            self.proposals.restore(block, round);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cdrchain_chain_spec::{ChainSpec, DevAccount};
    use cdrchain_consensus::Step;
    use cdrchain_storage::Storage;

    use super::*;
    use crate::keys::KeyRing;
    use crate::metrics::Metrics;

    /// `spec`'s chain on a fresh database, its authorities, and alice's signing identity.
    fn chain(spec: ChainSpec) -> (tempfile::TempDir, Chain, Validators, (OperatorId, Arc<KeyRing>)) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = Arc::new(
            Storage::open(dir.path(), spec.genesis_hash(), &spec.genesis_state().expect("a genesis"))
                .expect("a fresh database"),
        );
        let chain = Chain::new(storage, spec, Arc::new(Metrics::new()));
        let key = DevAccount::derive("alice").signing_key;
        let me = (OperatorId::new("alice").expect("a name"), Arc::new(KeyRing::new(key, None, None, None)));
        let validators = chain.validators_at(cdrchain_runtime::ids::Height(1)).expect("authorities");
        (dir, chain, validators, me)
    }

    /// A signing state that was never written.
    fn nowhere() -> SigningState {
        SigningState::new(std::path::PathBuf::from("/nonexistent/cdrchain-test/signing-state"))
    }

    fn locked_on(hash: Hash32) -> WalRecord {
        WalRecord {
            height: cdrchain_runtime::ids::Height(1),
            round: Round(0),
            step: Step::Precommit,
            locked: Some((Round(0), hash)),
            valid: Some((Round(0), hash)),
            signed: Vec::new(),
            polka: Vec::new(),
        }
    }

    #[test]
    fn a_networked_validator_resumes_with_the_block_it_is_locked_on() -> Result<(), NodeError> {
        let (_dir, chain, validators, me) = chain(ChainSpec::local());
        let block = chain.build(&me.0, Vec::new(), 1_000)?.block;
        let record = locked_on(block.hash());
        store_with_blocks(&chain.storage, &record.encode(), &[&block])?;

        let resumed = resume(&chain, &validators, &me, Params::default(), false, &nowhere())?;
        assert_eq!(resumed.blocks, vec![(block.clone(), Round(0))]);
        assert_eq!(resumed.machine.locked(), Some((Round(0), block.hash())));
        Ok(())
    }

    #[test]
    fn only_a_solo_validator_drops_a_lock_on_a_block_it_lost() -> Result<(), NodeError> {
        let (_dir, chain, validators, me) = chain(ChainSpec::dev());
        let lost = Hash32([7; 32]);
        chain.storage.wal_put(WAL_KEY, &locked_on(lost).encode())?;

        let networked = resume(&chain, &validators, &me, Params::default(), false, &nowhere())?;
        assert_eq!(networked.machine.locked(), Some((Round(0), lost)), "a lock others may have seen stays");
        let solo = resume(&chain, &validators, &me, Params::default(), true, &nowhere())?;
        assert_eq!(solo.machine.locked(), None);
        assert_eq!(solo.machine.valid(), None);
        assert!(solo.blocks.is_empty());
        Ok(())
    }

    #[test]
    fn a_signing_state_ahead_of_storage_makes_an_observer_unless_solo() -> Result<(), NodeError> {
        let (dir, chain, validators, me) = chain(ChainSpec::dev());
        let state = SigningState::new(dir.path().join("signing-state"));
        let ahead = WalRecord { height: cdrchain_runtime::ids::Height(5), ..locked_on(Hash32([7; 32])) };
        state.store(&ahead.encode())?;

        let networked = resume(&chain, &validators, &me, Params::default(), false, &state)?;
        assert_eq!(networked.pending_wal, Some(ahead), "it signs nothing until synced to height 5");
        let solo = resume(&chain, &validators, &me, Params::default(), true, &state)?;
        assert_eq!(solo.pending_wal, None, "a purged dev chain starts again");
        Ok(())
    }
}
