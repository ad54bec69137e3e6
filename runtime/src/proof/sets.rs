//! Proofs across authority-set changes (issue #27). A bundle whose block was certified by a set
//! other than the genesis one carries the chain of changes from genesis to that set: for each
//! set `k` ≥ 1, the block whose execution scheduled it (certified by set `k − 1`, since a change
//! takes effect `AUTHORITY_CHANGE_DELAY_BLOCKS` after its approving block) and the state entry
//! `ScheduledChange` under that block's state root, which holds set `k` whole (id, first height,
//! members with their keys). A verifier that trusts only the genesis spec walks the steps in
//! order and ends with the set that must have signed the bundle's block. Byte layout in
//! `docs/proofs.md`.

use serde::{Deserialize, Serialize};

use super::{bytes_of, decoded, hex_of, StateEntryProof};
use crate::block::{CommitCertificate, Header};
use crate::codec::decode_exact;
use crate::crypto::PublicKey;
use crate::governance::{ScheduledChange, AUTHORITY_CHANGE_DELAY_BLOCKS};
use crate::hash::Hash32;
use crate::ids::{Height, OperatorId};
use crate::state::StateKey;
use parity_scale_codec::Encode;

/// One authority-set change as a bundle carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStep {
    /// The set the step installs (1 for the first change).
    pub set_id: u64,
    /// The block that scheduled it, and its certificate by the set before.
    pub header: Header,
    pub header_scale: String,
    pub certificate: CommitCertificate,
    pub certificate_scale: String,
    /// `ScheduledChange` → the change and the whole new set, under `header`'s state root.
    pub entry: StateEntryProof,
}

impl SetStep {
    pub fn new(
        set_id: u64,
        header: Header,
        certificate: CommitCertificate,
        entry: StateEntryProof,
    ) -> SetStep {
        SetStep {
            set_id,
            header_scale: hex_of(&header.encode()),
            header,
            certificate_scale: hex_of(&certificate.encode()),
            certificate,
            entry,
        }
    }
}

/// The set a walk of the steps ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    pub id: u64,
    /// Its first height (1 for the genesis set).
    pub from: Height,
    pub authorities: Vec<(OperatorId, PublicKey)>,
}

/// Walks `steps` from the genesis set: each must be certified by the set before it and prove,
/// under its header's state root, the scheduling of the next set. An error names the step and
/// what failed.
pub fn follow(
    genesis: &Hash32,
    genesis_set: &[(OperatorId, PublicKey)],
    steps: &[SetStep],
) -> Result<Followed, String> {
    let mut current = Followed { id: 0, from: Height(1), authorities: genesis_set.to_vec() };
    for step in steps {
        let k = current.id + 1;
        let fail = |what: String| format!("set change {k}: {what}");
        if step.set_id != k {
            return Err(fail(format!("the step says set {}, the next is set {k}", step.set_id)));
        }
        let header = decoded(&step.header_scale, &step.header, "header").map_err(fail)?;
        let certificate = decoded(&step.certificate_scale, &step.certificate, "certificate").map_err(fail)?;
        certificate.verify(&header, genesis, &current.authorities).map_err(|e| {
            fail(format!("block #{} is not finalized by set {}: {e}", header.number.0, current.id))
        })?;
        let scheduled = scheduled_under(&step.entry, &header).map_err(fail)?;
        let set = &scheduled.set;
        if set.id != k || scheduled.approved_at != header.number {
            return Err(fail(format!(
                "the entry schedules set {} approved at #{}, not set {k} approved at #{}",
                set.id, scheduled.approved_at.0, header.number.0
            )));
        }
        if set.from.0 != header.number.0.saturating_add(AUTHORITY_CHANGE_DELAY_BLOCKS)
            || set.from <= current.from
        {
            return Err(fail(format!(
                "set {k} from #{} does not follow its approval at #{}",
                set.from.0, header.number.0
            )));
        }
        current = Followed { id: k, from: set.from, authorities: set.signing_keys() };
    }
    Ok(current)
}

/// The `ScheduledChange` entry, checked to lie under `header`'s state root.
fn scheduled_under(entry: &StateEntryProof, header: &Header) -> Result<ScheduledChange, String> {
    let key = bytes_of(&entry.key_scale, "key_scale")?;
    let value = bytes_of(&entry.value_scale, "value_scale")?;
    if decode_exact::<StateKey>(&key).ok() != Some(StateKey::ScheduledChange) {
        return Err("the state entry is not the scheduled change".to_string());
    }
    match crate::smt::root_from_path(&key, &value, &entry.siblings) {
        Some(root) if root == entry.tree_root => {}
        _ => return Err("the entry's path does not lead to its state tree root".to_string()),
    }
    let root = crate::state::state_root(&header.cdr_log_root, header.cdr_log_size, &entry.tree_root);
    if root != header.state_root {
        return Err(format!(
            "the state tree gives state root {root}, block #{} has {}",
            header.number.0, header.state_root
        ));
    }
    decode_exact(&value).map_err(|e| format!("the scheduled change does not decode: {e}"))
}
