//! The interconnect rules inside the state transition (listed in the parent module).

use crate::apply::{Executor, Failure, TxError};
use crate::hash::Hash32;
use crate::ids::{Height, OperatorId};
use crate::state::{OperatorRecord, StateKey, StateView};

use super::{
    pair_key, Action, AgreementRecord, EncryptionKey, FinalPeriod, InterconnectTx, PairAgreements,
    PairStatements, Sealed, StatementRecord,
};

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
    #[error("the signature of {document} names commitment {named}, the document's is {committed}")]
    CommitmentDiffers { document: Hash32, named: Hash32, committed: Hash32 },
    #[error("the envelope is empty")]
    EmptyEnvelope,
    #[error("agreement {0} is not accepted: statements are made under an accepted agreement")]
    AgreementNotAccepted(Hash32),
    #[error("`{signer}` is not a partner of agreement {agreement}")]
    NotAPartner { signer: OperatorId, agreement: Hash32 },
    #[error("the period {from_ms}..{to_ms} ms is empty or runs backwards")]
    EmptyPeriod { from_ms: u64, to_ms: u64 },
    #[error("the period overlaps statement {statement}, final for {from_ms}..{to_ms} ms")]
    PeriodFinal { statement: Hash32, from_ms: u64, to_ms: u64 },
    #[error("the pair `{a}`–`{b}` proposed {max} statements, its most")]
    TooManyStatements { a: OperatorId, b: OperatorId, max: usize },
    #[error("no statement {0}")]
    NoSuchStatement(Hash32),
    #[error("`{signer}` cannot sign statement {statement}: only `{partner}` signs it")]
    NotTheSigner { signer: OperatorId, statement: Hash32, partner: OperatorId },
    #[error("statement {0} was already signed")]
    AlreadySigned(Hash32),
    #[error("statement {statement} is disputed ({dispute}): the dispute closes it")]
    Disputed { statement: Hash32, dispute: Hash32 },
    #[error(transparent)]
    Dispute(#[from] super::dispute::DisputeError),
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
            Action::ProposeAgreement { counterparty, version, dispute_window_days, sealed } => {
                self.propose_agreement(signer, counterparty, (*version, *dispute_window_days), sealed, id)
            }
            Action::AcceptAgreement { agreement, commitment } => {
                self.accept_agreement(signer, *agreement, *commitment)
            }
            Action::ProposeStatement { agreement, from_ms, to_ms, sealed } => {
                self.propose_statement(signer, *agreement, (*from_ms, *to_ms), sealed, id)
            }
            Action::SignStatement { statement, commitment } => {
                self.sign_statement(signer, *statement, *commitment)
            }
            Action::OpenDispute { statement, sealed } => self.open_dispute(signer, *statement, sealed, id),
            Action::DisputeStep { dispute, step, sealed } => {
                self.dispute_step(signer, *dispute, *step, sealed)
            }
            Action::ConfirmClose { dispute, commitment } => self.confirm_close(signer, *dispute, *commitment),
        }
    }

    fn propose_agreement(
        &mut self,
        signer: &OperatorId,
        counterparty: &OperatorId,
        (version, dispute_window_days): (u32, u32),
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
            dispute_window_days,
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
                document: id,
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

    fn propose_statement(
        &mut self,
        signer: &OperatorId,
        agreement: Hash32,
        (from_ms, to_ms): (u64, u64),
        sealed: &Sealed,
        id: Hash32,
    ) -> Result<(), Failure> {
        let record: AgreementRecord = self
            .read(&StateKey::Agreement(agreement))?
            .ok_or_else(|| refused(InterconnectError::NoSuchAgreement(agreement)))?;
        if record.accepted_at.is_none() {
            return Err(refused(InterconnectError::AgreementNotAccepted(agreement)));
        }
        let partner = if &record.a == signer {
            record.b.clone()
        } else if &record.b == signer {
            record.a.clone()
        } else {
            return Err(refused(InterconnectError::NotAPartner { signer: signer.clone(), agreement }));
        };
        self.expect_member(&partner)?;
        if from_ms >= to_ms {
            return Err(refused(InterconnectError::EmptyPeriod { from_ms, to_ms }));
        }
        if sealed.envelope.0.is_empty() {
            return Err(refused(InterconnectError::EmptyEnvelope));
        }
        let (lo, hi) = pair_key(signer, &partner);
        let pair_state = StateKey::PairStatements(lo.clone(), hi.clone());
        let mut pair: PairStatements = self.read(&pair_state)?.unwrap_or_default();
        expect_open(&pair, from_ms, to_ms)?;
        let mut proposals = pair.proposals.into_inner();
        proposals.push(id);
        pair.proposals = crate::codec::BoundedVec::new(proposals).map_err(|_| {
            refused(InterconnectError::TooManyStatements {
                a: lo,
                b: hi,
                max: super::MAX_STATEMENTS_PER_PAIR,
            })
        })?;
        let statement = StatementRecord {
            agreement,
            a: signer.clone(),
            b: partner,
            from_ms,
            to_ms,
            proposed_at: self.height,
            proposed_at_ms: self.timestamp_ms,
            signed_at: None,
            dispute: None,
            sealed: sealed.clone(),
        };
        self.write(&StateKey::Statement(id), Some(&statement));
        self.write(&pair_state, Some(&pair));
        Ok(())
    }

    fn sign_statement(&mut self, signer: &OperatorId, id: Hash32, commitment: Hash32) -> Result<(), Failure> {
        let key = StateKey::Statement(id);
        let mut record: StatementRecord =
            self.read(&key)?.ok_or_else(|| refused(InterconnectError::NoSuchStatement(id)))?;
        if &record.b != signer {
            return Err(refused(InterconnectError::NotTheSigner {
                signer: signer.clone(),
                statement: id,
                partner: record.b.clone(),
            }));
        }
        if record.signed_at.is_some() {
            return Err(refused(InterconnectError::AlreadySigned(id)));
        }
        if let Some(dispute) = record.dispute {
            return Err(refused(InterconnectError::Disputed { statement: id, dispute }));
        }
        if commitment != record.sealed.commitment {
            return Err(refused(InterconnectError::CommitmentDiffers {
                document: id,
                named: commitment,
                committed: record.sealed.commitment,
            }));
        }
        self.make_final(id, &record)?;
        record.signed_at = Some(self.height);
        self.write(&key, Some(&record));
        Ok(())
    }

    /// Records statement `id`'s period as final for its pair, unless a final one overlaps it.
    pub(super) fn make_final(&mut self, id: Hash32, record: &StatementRecord) -> Result<(), Failure> {
        let (lo, hi) = pair_key(&record.a, &record.b);
        let pair_state = StateKey::PairStatements(lo, hi);
        let mut pair: PairStatements = self.read(&pair_state)?.unwrap_or_default();
        expect_open(&pair, record.from_ms, record.to_ms)?;
        let mut finals = pair.final_periods.into_inner();
        finals.push(FinalPeriod { from_ms: record.from_ms, to_ms: record.to_ms, statement: id });
        // As many final periods as proposals at most: the proposals' bound holds.
        pair.final_periods = crate::codec::BoundedVec::new(finals)
            .map_err(|_| refused(InterconnectError::AlreadySigned(id)))?;
        self.write(&pair_state, Some(&pair));
        Ok(())
    }

    /// `operator` is registered and was not removed.
    pub(super) fn expect_member(&self, operator: &OperatorId) -> Result<(), Failure> {
        let known = self.read::<OperatorRecord>(&StateKey::Operator(operator.clone()))?.is_some();
        if !known || self.read::<Height>(&StateKey::Retired(operator.clone()))?.is_some() {
            return Err(refused(InterconnectError::UnknownCounterparty(operator.clone())));
        }
        Ok(())
    }
}

/// No final statement of the pair covers any of `[from_ms, to_ms)`.
pub(super) fn expect_open(pair: &PairStatements, from_ms: u64, to_ms: u64) -> Result<(), Failure> {
    match pair.final_periods.iter().find(|period| period.overlaps(from_ms, to_ms)) {
        Some(period) => Err(refused(InterconnectError::PeriodFinal {
            statement: period.statement,
            from_ms: period.from_ms,
            to_ms: period.to_ms,
        })),
        None => Ok(()),
    }
}

pub(super) fn refused(error: InterconnectError) -> Failure {
    Failure::Tx(TxError::Interconnect(error))
}
