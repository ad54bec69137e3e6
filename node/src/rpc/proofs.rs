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

/// A key and value of the state, SCALE-encoded, in the state tree's order.
type Pair = (Vec<u8>, Vec<u8>);

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
        let bundle = ProofBundle::new(
            self.chain_ref(),
            &self.chain.authorities,
            stored.cdr,
            inclusion,
            header,
            certificate,
        );
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
        let mut pairs: Vec<Pair> = Vec::new();
        snapshot.for_each_pair(&mut |k, v| pairs.push((k.to_vec(), v.to_vec()))).map_err(internal)?;
        let index = absence_witness(&pairs, id)?;
        let entry = state_entry_proof(&pairs, index, &header)?;
        let bundle = AbsenceBundle::new(
            self.chain_ref(),
            &self.chain.authorities,
            id.recorder.clone(),
            id.sequence,
            entry,
            header,
            certificate,
        );
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

/// The index of the state entry that shows `id` absent: the operator's next sequence when `id`
/// is at or above it, else a declared gap that covers it.
fn absence_witness(pairs: &[Pair], id: &CdrId) -> Result<usize, ErrorObjectOwned> {
    let next_key = StateKey::NextSequence(id.recorder.clone()).encode();
    let Some(next_at) = pairs.iter().position(|(k, _)| *k == next_key) else {
        return Err(invalid(format!("`{}` is not an operator of this chain", id.recorder)));
    };
    let next: Sequence = decode_exact(&pairs[next_at].1).map_err(internal)?;
    if id.sequence.0 >= next.0 {
        return Ok(next_at);
    }
    // Below the next sequence: absent only inside a declared gap.
    let gap = pairs.iter().position(|(k, v)| match decode_exact::<StateKey>(k) {
        Ok(StateKey::Gap(operator, from)) if operator == id.recorder && from.0 <= id.sequence.0 => {
            decode_exact::<GapRecord>(v).is_ok_and(|g| id.sequence.0 <= g.to.0)
        }
        _ => false,
    });
    gap.ok_or_else(|| {
        invalid(format!(
            "{id} is recorded (`{}`'s next sequence is {}): no absence proof; ask for its inclusion proof",
            id.recorder, next.0
        ))
    })
}

/// The inclusion proof of state entry `index` in the state tree rebuilt from all `pairs`,
/// checked against `header`'s state root.
fn state_entry_proof(
    pairs: &[Pair],
    index: usize,
    header: &Header,
) -> Result<StateEntryProof, ErrorObjectOwned> {
    use cdrchain_runtime::merkle::{Frontier, MemoryNodeStore};
    use cdrchain_runtime::state::{kv_leaf, state_root};
    let mut frontier = Frontier::new();
    let mut store = MemoryNodeStore::new();
    for (key, value) in pairs {
        frontier
            .append(Domain::STATE, kv_leaf(key, value), &mut |node, hash| {
                store.insert(node, hash);
            })
            .map_err(internal)?;
    }
    let kv_root = frontier.root(Domain::STATE);
    let kv_count = frontier.size();
    if state_root(&header.cdr_log_root, header.cdr_log_size, &kv_root, kv_count) != header.state_root {
        return Err(internal("the state read does not give the head's state root"));
    }
    let inclusion = inclusion_proof(&store, Domain::STATE, index as u64, kv_count).map_err(internal)?;
    Ok(StateEntryProof {
        key_scale: format!("0x{}", hex::encode(&pairs[index].0)),
        value_scale: format!("0x{}", hex::encode(&pairs[index].1)),
        inclusion,
        kv_root,
        kv_count,
    })
}
