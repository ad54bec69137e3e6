//! The interconnect rules inside the state transition (listed in the parent module).

use crate::apply::{Executor, Failure, TxError};
use crate::hash::Hash32;
use crate::ids::{Height, OperatorId};
use crate::state::{OperatorRecord, StateKey, StateView};

use super::{pair_key, Action, AgreementRecord, EncryptionKey, InterconnectTx, PairAgreements, Sealed};

/// Why an interconnect transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterconnectError {
    #[error("`{0}` cannot make an agreement with itself")]
    SelfAgreement(OperatorId),
    #[error("`{0}` is not a member of the consortium (or was removed): no agreement with it")]
    UnknownCounterparty(OperatorId),
    #[error("`{0}` has no encryption key registered: documents cannot be sealed to it")]
    NoEncryptionKey(OperatorId),
    #[error("the agreement's version {version} is not above the pair's accepted version {in_force}")]
    StaleVersion { version: u32, in_force: u32 },
    #[error("the pair `{a}`–`{b}` made {max} agreement proposals, its most")]
    TooManyProposals { a: OperatorId, b: OperatorId, max: usize },
    #[error("no agreement {0}")]
    NoSuchAgreement(Hash32),
    #[error(
        "`{signer}` cannot accept agreement {agreement}: only its counterparty `{counterparty}` accepts"
    )]
    NotCounterparty { signer: OperatorId, agreement: Hash32, counterparty: OperatorId },
    #[error("agreement {0} was already accepted")]
    AlreadyAccepted(Hash32),
    #[error(
        "the acceptance of agreement {agreement} names commitment {named}, the agreement's is {committed}"
    )]
    CommitmentDiffers { agreement: Hash32, named: Hash32, committed: Hash32 },
    #[error("the envelope is empty")]
    EmptyEnvelope,
}

impl<V: StateView> Executor<'_, V> {
    /// An interconnect transaction whose signature was checked; `id` is its transaction id.
    pub(crate) fn interconnect(&mut self, tx: &InterconnectTx, id: Hash32) -> Result<(), Failure> {
        let signer = &tx.operator;
        match &tx.action {
            Action::RegisterKey { key } => {
                self.write(&StateKey::EncryptionKey(signer.clone()), Some(key));
                Ok(())
            }
            Action::ProposeAgreement { counterparty, version, sealed } => {
                self.propose_agreement(signer, counterparty, *version, sealed, id)
            }
            Action::AcceptAgreement { agreement, commitment } => {
                self.accept_agreement(signer, *agreement, *commitment)
            }
        }
    }

    fn propose_agreement(
        &mut self,
        signer: &OperatorId,
        counterparty: &OperatorId,
        version: u32,
        sealed: &Sealed,
        id: Hash32,
    ) -> Result<(), Failure> {
        if signer == counterparty {
            return Err(refused(InterconnectError::SelfAgreement(signer.clone())));
        }
        self.expect_member(counterparty)?;
        for party in [signer, counterparty] {
            if self.read::<EncryptionKey>(&StateKey::EncryptionKey(party.clone()))?.is_none() {
                return Err(refused(InterconnectError::NoEncryptionKey(party.clone())));
            }
        }
        if sealed.envelope.0.is_empty() {
            return Err(refused(InterconnectError::EmptyEnvelope));
        }
        let (lo, hi) = pair_key(signer, counterparty);
        let pair_state = StateKey::PairAgreements(lo.clone(), hi.clone());
        let mut pair: PairAgreements = self.read(&pair_state)?.unwrap_or_default();
        if let Some((_, in_force)) = pair.in_force {
            if version <= in_force {
                return Err(refused(InterconnectError::StaleVersion { version, in_force }));
            }
        }
        let mut proposals = pair.proposals.into_inner();
        proposals.push(id);
        pair.proposals = crate::codec::BoundedVec::new(proposals).map_err(|_| {
            refused(InterconnectError::TooManyProposals { a: lo, b: hi, max: super::MAX_AGREEMENTS_PER_PAIR })
        })?;
        let record = AgreementRecord {
            a: signer.clone(),
            b: counterparty.clone(),
            version,
            proposed_at: self.height,
            accepted_at: None,
            sealed: sealed.clone(),
        };
        self.write(&StateKey::Agreement(id), Some(&record));
        self.write(&pair_state, Some(&pair));
        Ok(())
    }

    fn accept_agreement(
        &mut self,
        signer: &OperatorId,
        id: Hash32,
        commitment: Hash32,
    ) -> Result<(), Failure> {
        let key = StateKey::Agreement(id);
        let mut record: AgreementRecord =
            self.read(&key)?.ok_or_else(|| refused(InterconnectError::NoSuchAgreement(id)))?;
        if &record.b != signer {
            return Err(refused(InterconnectError::NotCounterparty {
                signer: signer.clone(),
                agreement: id,
                counterparty: record.b.clone(),
            }));
        }
        if record.accepted_at.is_some() {
            return Err(refused(InterconnectError::AlreadyAccepted(id)));
        }
        if commitment != record.sealed.commitment {
            return Err(refused(InterconnectError::CommitmentDiffers {
                agreement: id,
                named: commitment,
                committed: record.sealed.commitment,
            }));
        }
        // The proposer may have left since.
        self.expect_member(&record.a)?;
        let (lo, hi) = pair_key(&record.a, &record.b);
        let pair_state = StateKey::PairAgreements(lo, hi);
        let mut pair: PairAgreements = self.read(&pair_state)?.unwrap_or_default();
        if let Some((_, in_force)) = pair.in_force {
            if record.version <= in_force {
                return Err(refused(InterconnectError::StaleVersion { version: record.version, in_force }));
            }
        }
        pair.in_force = Some((id, record.version));
        record.accepted_at = Some(self.height);
        self.write(&key, Some(&record));
        self.write(&pair_state, Some(&pair));
        Ok(())
    }

    /// `operator` is registered and was not removed.
    fn expect_member(&self, operator: &OperatorId) -> Result<(), Failure> {
        let known = self.read::<OperatorRecord>(&StateKey::Operator(operator.clone()))?.is_some();
        if !known || self.read::<Height>(&StateKey::Retired(operator.clone()))?.is_some() {
            return Err(refused(InterconnectError::UnknownCounterparty(operator.clone())));
        }
        Ok(())
    }
}

fn refused(error: InterconnectError) -> Failure {
    Failure::Tx(TxError::Interconnect(error))
}
