//! The governance rules inside the state transition: proposing, approving, scheduling, enacting
//! and expiring authority-set changes (the rules are listed in the parent module).

use crate::apply::{ApplyError, Executor, Failure, TxError};
use crate::block::MAX_AUTHORITIES;
use crate::checkpoint::{recover, EvmSignature};
use crate::codec::BoundedVec;
use crate::crypto::{self, EvmAddress, PublicKey, Signature};
use crate::hash::Hash32;
use crate::ids::{Height, OperatorId, Sequence};
use crate::state::{Authorities, OperatorRecord, StateKey, StateView};

use super::{
    possession_message, ApproveChange, AuthorityChange, AuthorityEntry, AuthoritySet, KeyRole, NewAuthority,
    PendingChange, ProposeChange, ScheduledChange, SetId, AUTHORITY_CHANGE_DELAY_BLOCKS,
    PROPOSAL_LIFETIME_MS,
};
use crate::governance::KeyRotation;

impl<V: StateView> Executor<'_, V> {
    /// At the start of a block: enacts the scheduled change whose height has come, and drops an
    /// open proposal whose time is up.
    pub(crate) fn enact_and_expire(&mut self) -> Result<(), ApplyError> {
        if let Some(scheduled) = self.read::<ScheduledChange>(&StateKey::ScheduledChange)? {
            if scheduled.set.from <= self.height {
                self.enact(scheduled)?;
            }
        }
        if let Some(pending) = self.read::<PendingChange>(&StateKey::PendingChange)? {
            if self.timestamp_ms >= pending.expires_at_ms {
                self.write::<()>(&StateKey::PendingChange, None);
            }
        }
        Ok(())
    }

    fn enact(&mut self, scheduled: ScheduledChange) -> Result<(), ApplyError> {
        // Every set is kept: the members of each sign the RSK contract's change to the next.
        let previous = self.governing_set()?;
        self.write(&StateKey::AuthoritySetById(previous.id), Some(&previous));
        self.write(&StateKey::AuthoritySetById(scheduled.set.id), Some(&scheduled.set));
        match &scheduled.change {
            AuthorityChange::Add(add) => {
                let key = StateKey::Operator(add.id.clone());
                if self.read::<OperatorRecord>(&key)?.is_none() {
                    let record =
                        OperatorRecord { signing_key: add.signing_key, evm_address: add.evm_address };
                    self.write(&key, Some(&record));
                    self.write(&StateKey::NextSequence(add.id.clone()), Some(&Sequence(0)));
                }
                self.write(&StateKey::NetworkKey(add.id.clone()), Some(&add.network_key));
            }
            AuthorityChange::Remove { id } => {
                self.write(&StateKey::Retired(id.clone()), Some(&scheduled.set.from));
            }
            AuthorityChange::RotateKeys(rotation) => {
                let key = StateKey::Operator(rotation.id.clone());
                let mut record: OperatorRecord =
                    self.read(&key)?.ok_or_else(|| ApplyError::CorruptState {
                        key: format!("{key:?}"),
                        reason: "an authority whose keys rotate has no operator record".to_string(),
                    })?;
                if let Some((signing_key, _)) = rotation.signing_key {
                    record.signing_key = signing_key;
                }
                if let Some(evm) = &rotation.evm {
                    record.evm_address = evm.address;
                }
                self.write(&key, Some(&record));
            }
        }
        let ids: Vec<OperatorId> = scheduled.set.members.iter().map(|m| m.id.clone()).collect();
        // The set is bounded by the same limit as the id list.
        let ids = Authorities::new(ids).unwrap_or_default();
        self.write(&StateKey::Authorities, Some(&ids));
        self.write(
            &StateKey::AuthoritySetId,
            Some(&SetId { id: scheduled.set.id, from: scheduled.set.from }),
        );
        self.write::<()>(&StateKey::ScheduledChange, None);
        Ok(())
    }

    /// The set in force at this block, keys included (through the block's own writes).
    pub(super) fn governing_set(&self) -> Result<AuthoritySet, ApplyError> {
        let set_id: SetId = self.read(&StateKey::AuthoritySetId)?.unwrap_or(SetId::GENESIS);
        super::assemble(
            &self.authorities()?,
            set_id,
            |id| self.read(&StateKey::Operator(id.clone())),
            |id| ApplyError::CorruptState {
                key: format!("{:?}", StateKey::Operator(id.clone())),
                reason: "an authority has no operator record".to_string(),
            },
        )
    }

    fn no_change_in_flight(&self) -> Result<(), Failure> {
        if let Some(pending) = self.read::<PendingChange>(&StateKey::PendingChange)? {
            return Err(TxError::ChangeInFlight { state: "open", proposal: pending.id }.into());
        }
        if let Some(scheduled) = self.read::<ScheduledChange>(&StateKey::ScheduledChange)? {
            return Err(TxError::ChangeInFlight { state: "scheduled", proposal: scheduled.proposal }.into());
        }
        Ok(())
    }

    pub(crate) fn propose_change(&mut self, tx: &ProposeChange, id: Hash32) -> Result<(), Failure> {
        let set = self.governing_set()?;
        if !set.contains(&tx.operator) {
            return Err(TxError::NotAGovernor(tx.operator.clone()).into());
        }
        self.no_change_in_flight()?;
        match &tx.change {
            AuthorityChange::Add(add) => self.check_add(&set, add)?,
            AuthorityChange::Remove { id } => {
                if !set.contains(id) {
                    return Err(TxError::NotInSet(id.clone()).into());
                }
                if set.len() == 1 {
                    return Err(TxError::LastAuthority(id.clone()).into());
                }
            }
            AuthorityChange::RotateKeys(rotation) => self.check_rotation(&set, &tx.operator, rotation)?,
        }
        let pending = PendingChange {
            id,
            proposer: tx.operator.clone(),
            change: tx.change.clone(),
            proposed_at: self.height,
            expires_at_ms: self.timestamp_ms.saturating_add(PROPOSAL_LIFETIME_MS),
            approvals: BoundedVec::new(vec![tx.operator.clone()]).unwrap_or_default(),
        };
        self.count_approvals(pending, &set)
    }

    pub(crate) fn approve_change(&mut self, tx: &ApproveChange) -> Result<(), Failure> {
        let set = self.governing_set()?;
        if !set.contains(&tx.operator) {
            return Err(TxError::NotAGovernor(tx.operator.clone()).into());
        }
        let mut pending = match self.read::<PendingChange>(&StateKey::PendingChange)? {
            Some(pending) if pending.id == tx.proposal => pending,
            _ => return Err(TxError::NoSuchProposal(tx.proposal).into()),
        };
        if pending.approvals.iter().any(|a| a == &tx.operator) {
            return Err(
                TxError::AlreadyApproved { operator: tx.operator.clone(), proposal: tx.proposal }.into()
            );
        }
        let mut approvals = pending.approvals.into_inner();
        approvals.push(tx.operator.clone());
        // Approvals come from distinct members of a bounded set.
        pending.approvals =
            BoundedVec::new(approvals).map_err(|_| TxError::SetFull { max: MAX_AUTHORITIES })?;
        self.count_approvals(pending, &set)
    }

    /// Keeps the proposal open, or, with more than two thirds of `set` behind it, schedules the
    /// set it makes.
    fn count_approvals(&mut self, pending: PendingChange, set: &AuthoritySet) -> Result<(), Failure> {
        if pending.approvals.len() < set.quorum() {
            self.write(&StateKey::PendingChange, Some(&pending));
            return Ok(());
        }
        let next = next_set(set, &pending.change, self.height)?;
        let scheduled = ScheduledChange {
            proposal: pending.id,
            change: pending.change,
            approved_at: self.height,
            set: next,
        };
        self.write(&StateKey::ScheduledChange, Some(&scheduled));
        self.write::<()>(&StateKey::PendingChange, None);
        Ok(())
    }

    fn check_add(&self, set: &AuthoritySet, add: &NewAuthority) -> Result<(), Failure> {
        let id = &add.id;
        if set.contains(id) {
            return Err(TxError::AlreadyAuthority(id.clone()).into());
        }
        if self.read::<Height>(&StateKey::Retired(id.clone()))?.is_some() {
            return Err(TxError::Retired(id.clone()).into());
        }
        if set.len() >= MAX_AUTHORITIES {
            return Err(TxError::SetFull { max: MAX_AUTHORITIES }.into());
        }
        if let Some(record) = self.read::<OperatorRecord>(&StateKey::Operator(id.clone()))? {
            if record.signing_key != add.signing_key {
                return Err(TxError::KeysDiffer { operator: id.clone(), what: "ed25519 key" }.into());
            }
            if record.evm_address != add.evm_address {
                return Err(TxError::KeysDiffer { operator: id.clone(), what: "EVM address" }.into());
            }
        }
        unique_keys(set, id, Some(&add.signing_key), Some(&add.evm_address))?;
        let genesis = &self.ctx.genesis_hash;
        ed25519_possession(genesis, KeyRole::Signing, id, &add.signing_key, &add.signing_proof, "ed25519")?;
        ed25519_possession(genesis, KeyRole::Network, id, &add.network_key, &add.network_proof, "network")?;
        let message = possession_message(genesis, KeyRole::Evm, id, &add.evm_address.0);
        evm_possession(&message, &add.evm_proof, &add.evm_address, id, "EVM")?;
        Ok(())
    }

    fn check_rotation(
        &self,
        set: &AuthoritySet,
        proposer: &OperatorId,
        rotation: &KeyRotation,
    ) -> Result<(), Failure> {
        let id = &rotation.id;
        if proposer != id {
            return Err(TxError::RotateOthers { proposer: proposer.clone(), subject: id.clone() }.into());
        }
        let current = set.get(id).ok_or_else(|| TxError::NotInSet(id.clone()))?;
        let new_signing = rotation.signing_key.as_ref().map(|(key, _)| key);
        let new_evm = rotation.evm.as_ref().map(|evm| &evm.address);
        let changes_signing = new_signing.is_some_and(|key| key != &current.signing_key);
        let changes_evm = new_evm.is_some_and(|address| address != &current.evm_address);
        let unchanged_named = new_signing.is_some() && !changes_signing || new_evm.is_some() && !changes_evm;
        if !(changes_signing || changes_evm) || unchanged_named {
            return Err(TxError::NothingToRotate(id.clone()).into());
        }
        unique_keys(set, id, new_signing, new_evm)?;
        let genesis = &self.ctx.genesis_hash;
        if let Some((key, proof)) = &rotation.signing_key {
            ed25519_possession(genesis, KeyRole::Signing, id, key, proof, "ed25519")?;
        }
        if let Some(evm) = &rotation.evm {
            let message = possession_message(genesis, KeyRole::Evm, id, &evm.address.0);
            evm_possession(&message, &evm.new_proof, &evm.address, id, "new EVM")?;
            let handover = [current.evm_address.0.as_slice(), evm.address.0.as_slice()].concat();
            let message = possession_message(genesis, KeyRole::EvmHandover, id, &handover);
            evm_possession(&message, &evm.old_proof, &current.evm_address, id, "old EVM hand-over")?;
        }
        Ok(())
    }
}

/// The set `change` makes of `set`, in force from `approved_at` + the delay.
fn next_set(
    set: &AuthoritySet,
    change: &AuthorityChange,
    approved_at: Height,
) -> Result<AuthoritySet, TxError> {
    let mut members = set.members.clone().into_inner();
    match change {
        AuthorityChange::Add(add) => members.push(AuthorityEntry {
            id: add.id.clone(),
            signing_key: add.signing_key,
            evm_address: add.evm_address,
        }),
        AuthorityChange::Remove { id } => members.retain(|m| &m.id != id),
        AuthorityChange::RotateKeys(rotation) => {
            for member in members.iter_mut().filter(|m| m.id == rotation.id) {
                if let Some((key, _)) = rotation.signing_key {
                    member.signing_key = key;
                }
                if let Some(evm) = &rotation.evm {
                    member.evm_address = evm.address;
                }
            }
        }
    }
    let members = BoundedVec::new(members).map_err(|_| TxError::SetFull { max: MAX_AUTHORITIES })?;
    Ok(AuthoritySet {
        id: set.id.saturating_add(1),
        from: Height(approved_at.0.saturating_add(AUTHORITY_CHANGE_DELAY_BLOCKS)),
        members,
    })
}

/// No other member holds the key or address `id` brings.
fn unique_keys(
    set: &AuthoritySet,
    id: &OperatorId,
    signing_key: Option<&PublicKey>,
    evm_address: Option<&EvmAddress>,
) -> Result<(), TxError> {
    for other in set.members.iter().filter(|m| &m.id != id) {
        if signing_key == Some(&other.signing_key) {
            return Err(TxError::KeyInUse {
                operator: id.clone(),
                other: other.id.clone(),
                what: "ed25519 key",
            });
        }
        if evm_address == Some(&other.evm_address) {
            return Err(TxError::KeyInUse {
                operator: id.clone(),
                other: other.id.clone(),
                what: "EVM address",
            });
        }
    }
    Ok(())
}

fn ed25519_possession(
    genesis_hash: &Hash32,
    role: KeyRole,
    id: &OperatorId,
    key: &PublicKey,
    proof: &Signature,
    what: &'static str,
) -> Result<(), TxError> {
    let message = possession_message(genesis_hash, role, id, &key.0);
    crypto::verify(key, &message, proof).map_err(|e| TxError::BadPossession {
        operator: id.clone(),
        what,
        reason: e.to_string(),
    })
}

fn evm_possession(
    message: &Hash32,
    proof: &EvmSignature,
    expected: &EvmAddress,
    id: &OperatorId,
    what: &'static str,
) -> Result<(), TxError> {
    let bad = |reason: String| TxError::BadPossession { operator: id.clone(), what, reason };
    let recovered = recover(&message.0, proof).map_err(|e| bad(e.to_string()))?;
    if &recovered != expected {
        return Err(bad(format!("signed by {recovered}, not {expected}")));
    }
    Ok(())
}
