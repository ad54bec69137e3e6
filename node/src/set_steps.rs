//! The proofs of authority-set changes a node keeps for bundles and light clients (issue #27;
//! the format is `cdrchain_runtime::proof::sets`). When a committed block schedules a set, the
//! node records, from the state it just committed, the block's header and certificate and the
//! `ScheduledChange` entry with its path to the block's state root. The state itself keeps only
//! the current change, so the proof is taken then or never: every node takes it, also when it
//! imports the block by sync.

use cdrchain_runtime::apply::StateChanges;
use cdrchain_runtime::block::{Block, CommitCertificate};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::governance::ScheduledChange;
use cdrchain_runtime::proof::sets::SetStep;
use cdrchain_runtime::proof::StateEntryProof;
use cdrchain_runtime::state::{prove_pair, state_root, StateKey};
use cdrchain_storage::Storage;
use parity_scale_codec::Encode;

use crate::NodeError;

/// The metadata key of set `k`'s step.
fn meta_key(set_id: u64) -> String {
    format!("set-step/{set_id:020}")
}

/// Records the step of the set `block` scheduled, if it scheduled one. A failure is logged, not
/// returned: the block is committed either way, and only proofs across this change would lack
/// the step (they say so).
pub fn record(storage: &Storage, block: &Block, certificate: &CommitCertificate, changes: &StateChanges) {
    let key = StateKey::ScheduledChange.encode();
    if !matches!(changes.writes.get(&key), Some(Some(_))) {
        return;
    }
    let header = &block.header;
    let step = match prove_pair(storage, &key) {
        Ok(Some((value, siblings, tree_root)))
            if state_root(&header.cdr_log_root, header.cdr_log_size, &tree_root) == header.state_root =>
        {
            decode_exact::<ScheduledChange>(&value)
                .map(|scheduled| {
                    let entry = StateEntryProof {
                        key_scale: format!("0x{}", hex::encode(&key)),
                        value_scale: format!("0x{}", hex::encode(&value)),
                        siblings,
                        tree_root,
                    };
                    SetStep::new(scheduled.set.id, header.clone(), certificate.clone(), entry)
                })
                .map_err(|e| e.to_string())
        }
        Ok(_) => Err("the state read does not give the block's state root".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let stored = step.and_then(|step| {
        let bytes = serde_json::to_vec(&step).map_err(|e| e.to_string())?;
        storage.meta_put(&meta_key(step.set_id), &bytes).map_err(|e| e.to_string())?;
        Ok(step.set_id)
    });
    match stored {
        Ok(set_id) => tracing::info!(
            target: "cdrchain::governance",
            "block #{} schedules authority set {set_id}: its proof is kept for bundles",
            header.number.0
        ),
        Err(e) => tracing::error!(
            target: "cdrchain::governance",
            "block #{} schedules an authority set, but its proof was not kept ({e}): proofs across this change \
             will lack it",
            header.number.0
        ),
    }
}

/// The steps from genesis to set `set_id` (none for the genesis set).
pub fn steps_to(storage: &Storage, set_id: u64) -> Result<Vec<SetStep>, NodeError> {
    let mut steps = Vec::new();
    for k in 1..=set_id {
        let bytes = storage.meta_get(&meta_key(k))?.ok_or_else(|| {
            NodeError::Config(format!("this node has no proof of the change to authority set {k}"))
        })?;
        let step: SetStep = serde_json::from_slice(&bytes)
            .map_err(|e| NodeError::Config(format!("the kept proof of set {k} does not read: {e}")))?;
        steps.push(step);
    }
    Ok(steps)
}
