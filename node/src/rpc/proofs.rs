//! The proof bundles `cdr_proof`, `cdr_absenceProof` and `cdr_consistencyProof` answer
//! ([`cdrchain_runtime::proof`] verifies them).

use cdrchain_runtime::block::Header;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::{CdrId, Sequence};
use cdrchain_runtime::merkle::{inclusion_proof, Domain};
use cdrchain_runtime::proof::{AbsenceBundle, ChainRef, ProofBundle, StateEntryProof};
use cdrchain_runtime::state::{GapRecord, StateKey, StateView};
use jsonrpsee::types::ErrorObjectOwned;
use parity_scale_codec::Encode;
use serde_json::Value;

use super::{internal, invalid, RpcContext};

impl RpcContext {
    fn chain_ref(&self) -> ChainRef {
        ChainRef { id: self.chain.spec.id.clone(), genesis_hash: self.chain.ctx.genesis_hash }
    }

    /// The inclusion proof bundle of a committed CDR: proven in the header of the block that
    /// committed it.
    pub(super) fn inclusion_bundle(&self, id: &CdrId) -> Result<Value, ErrorObjectOwned> {
        let storage = &self.chain.storage;
        let Some(stored) = storage.cdr(&id.recorder, id.sequence).map_err(internal)? else {
            return Err(invalid(format!("{id} is not a committed CDR (yet): no inclusion proof")));
        };
        let header = storage
            .header(stored.height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no header at #{}", stored.height.0)))?;
        let certificate = storage
            .certificate(stored.height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no commit certificate at #{}", stored.height.0)))?;
        let inclusion = inclusion_proof(&**storage, Domain::CDR_LOG, stored.leaf_index, header.cdr_log_size)
            .map_err(internal)?;
        // The set that certified the block, and the changes from genesis to it (issue #27).
        let set = self.chain.authority_set_at(stored.height).map_err(internal)?;
        let mut bundle = ProofBundle::new(
            self.chain_ref(),
            &set.signing_keys(),
            stored.cdr,
            inclusion,
            header,
            certificate,
        );
        bundle.set_changes = crate::set_steps::steps_to(storage, set.id).map_err(internal)?;
        serde_json::to_value(&bundle).map_err(internal)
    }

    /// The absence bundle of a CDR id that is not recorded at the head: the operator's next
    /// sequence (or a declared gap covering it) proven from the head's state root.
    pub(super) fn absence_bundle(&self, id: &CdrId) -> Result<Value, ErrorObjectOwned> {
        let storage = &self.chain.storage;
        let snapshot = storage.snapshot();
        let Some(head) = snapshot.head().cloned() else {
            return Err(invalid("the chain has no block yet: nothing to prove from"));
        };
        let header = head.header;
        let certificate = storage
            .certificate(header.number)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no commit certificate at #{}", header.number.0)))?;
        let key = absence_witness(&snapshot, id)?;
        let entry = state_entry_proof(&snapshot, &key, &header)?;
        let set = self.chain.authority_set_at(header.number).map_err(internal)?;
        let mut bundle = AbsenceBundle::new(
            self.chain_ref(),
            &set.signing_keys(),
            id.recorder.clone(),
            id.sequence,
            entry,
            header,
            certificate,
        );
        bundle.set_changes = crate::set_steps::steps_to(storage, set.id).map_err(internal)?;
        serde_json::to_value(&bundle).map_err(internal)
    }

    /// The RFC 9162 consistency proof between the CDR log of `old_size` leaves and that of
    /// `new_size` (at most the head's), as [`cdrchain_runtime::merkle::ConsistencyProof`]
    /// JSON. From an empty log the proof is empty.
    pub(super) fn consistency(&self, old_size: u64, new_size: u64) -> Result<Value, ErrorObjectOwned> {
        use cdrchain_runtime::merkle::{consistency_proof, ConsistencyProof};
        let snapshot = self.chain.storage.snapshot();
        let size = snapshot.head().map_or(0, |h| h.header.cdr_log_size);
        if old_size > new_size || new_size > size {
            return Err(invalid(format!(
                "no consistency proof from {old_size} to {new_size} CDRs: sizes must be ascending and at most the head's log ({size})"
            )));
        }
        let proof = if old_size == 0 {
            ConsistencyProof { old_size, new_size, path: Vec::new() }
        } else {
            consistency_proof(&snapshot, Domain::CDR_LOG, old_size, new_size).map_err(internal)?
        };
        serde_json::to_value(&proof).map_err(internal)
    }
}

/// The key of the state entry that shows `id` absent: the operator's next sequence when `id` is
/// at or above it, else a declared gap that covers it.
fn absence_witness(view: &impl StateView, id: &CdrId) -> Result<Vec<u8>, ErrorObjectOwned> {
    let next_key = StateKey::NextSequence(id.recorder.clone()).encode();
    let Some(next) = view.get(&next_key).map_err(internal)? else {
        return Err(invalid(format!("`{}` is not an operator of this chain", id.recorder)));
    };
    let next: Sequence = decode_exact(&next).map_err(internal)?;
    if id.sequence.0 >= next.0 {
        return Ok(next_key);
    }
    // Below the next sequence: absent only inside a declared gap. Gaps are keyed by their first
    // sequence in SCALE (little-endian), which does not sort by number: look at each of the
    // recorder's.
    let gaps = view.pairs_with_prefix(&StateKey::gap_prefix(&id.recorder), usize::MAX).map_err(internal)?;
    let gap = gaps.into_iter().find_map(|(k, v)| match decode_exact::<StateKey>(&k) {
        Ok(StateKey::Gap(operator, from)) => {
            let covers = operator == id.recorder
                && from.0 <= id.sequence.0
                && decode_exact::<GapRecord>(&v).is_ok_and(|g| id.sequence.0 <= g.to.0);
            covers.then_some(k)
        }
        _ => None,
    });
    gap.ok_or_else(|| {
        invalid(format!(
            "{id} is recorded (`{}`'s next sequence is {}): no absence proof; ask for its inclusion proof",
            id.recorder, next.0
        ))
    })
}

/// The path of state entry `key` in the state tree, checked against `header`'s state root.
pub(super) fn state_entry_proof(
    view: &impl StateView,
    key: &[u8],
    header: &Header,
) -> Result<StateEntryProof, ErrorObjectOwned> {
    use cdrchain_runtime::state::{prove_pair, state_root};
    let (value, siblings, tree_root) = prove_pair(view, key)
        .map_err(internal)?
        .ok_or_else(|| internal("the state entry vanished while the proof was made"))?;
    if state_root(&header.cdr_log_root, header.cdr_log_size, &tree_root) != header.state_root {
        return Err(internal("the state read does not give the head's state root"));
    }
    Ok(StateEntryProof {
        key_scale: format!("0x{}", hex::encode(key)),
        value_scale: format!("0x{}", hex::encode(&value)),
        siblings,
        tree_root,
    })
}
