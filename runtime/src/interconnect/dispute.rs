//! Disputes of a statement (issue #28): the partner a statement was proposed to opens one instead
//! of signing, within the agreement's dispute window (days from the statement's block, in the
//! open on the agreement). Each side then adds steps, sealed to the pair like everything else:
//! responses (accept, reject, counter-offer, evidence) and proposals to close at an amount. The
//! dispute closes when one side confirms the other's latest proposal to close, naming its
//! commitment; the statement's period is then final, as if signed. What is claimed, offered and
//! agreed is in the sealed steps: the chain orders and keeps them, and checks who may act when.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::apply::{Executor, Failure};
use crate::codec::BoundedVec;
use crate::hash::Hash32;
use crate::ids::{Height, OperatorId};
use crate::state::{StateKey, StateView};

use super::rules::refused;
use super::{AgreementRecord, InterconnectError, Sealed, StatementRecord};

/// Most steps of one dispute, its opening included.
pub const MAX_DISPUTE_STEPS: usize = 64;

/// A day of the dispute window, in milliseconds.
pub const DAY_MS: u64 = 24 * 3_600 * 1_000;

/// What a step of a dispute is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// The claim that opens the dispute.
    #[codec(index = 0)]
    Open,
    /// A response: accepting, rejecting or countering, with evidence.
    #[codec(index = 1)]
    Respond,
    /// A proposal to close the dispute at an amount.
    #[codec(index = 2)]
    ProposeClose,
    /// The other side's confirmation of the latest proposal to close (no document of its own).
    #[codec(index = 3)]
    ConfirmClose,
}

/// One step, as the chain keeps it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Step {
    pub by: OperatorId,
    pub kind: StepKind,
    pub at: Height,
    pub at_ms: u64,
    /// The step's commitment (for a confirmation: the commitment of the proposal it confirms).
    pub commitment: Hash32,
    /// The step's document; none for a confirmation.
    pub sealed: Option<Sealed>,
}

/// A dispute: [`crate::state::StateKey::Dispute`].
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct DisputeRecord {
    pub statement: Hash32,
    /// The partner the statement was proposed to, who disputes it.
    pub opener: OperatorId,
    /// The statement's proposer.
    pub respondent: OperatorId,
    /// Every step in order, the opening first.
    pub steps: BoundedVec<Step, MAX_DISPUTE_STEPS>,
    pub closed_at: Option<Height>,
}

/// Why a dispute transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisputeError {
    #[error(
        "`{signer}` cannot dispute statement {statement}: only `{partner}`, to whom it was proposed, can"
    )]
    NotTheOpener { signer: OperatorId, statement: Hash32, partner: OperatorId },
    #[error("statement {0} is signed: it is final and cannot be disputed")]
    StatementFinal(Hash32),
    #[error("statement {statement} is already disputed ({dispute})")]
    AlreadyDisputed { statement: Hash32, dispute: Hash32 },
    #[error("the dispute window of {days} days from statement {statement} closed at {closed_ms} ms (block time {now_ms} ms)")]
    WindowClosed { statement: Hash32, days: u32, closed_ms: u64, now_ms: u64 },
    #[error("no dispute {0}")]
    NoSuchDispute(Hash32),
    #[error("`{0}` is not a side of the dispute")]
    NotASide(OperatorId),
    #[error("dispute {0} is closed")]
    Closed(Hash32),
    #[error("a step of kind {0:?} cannot be added this way")]
    WrongKind(StepKind),
    #[error("dispute {0} has {max} steps, its most: close it", max = MAX_DISPUTE_STEPS)]
    TooManySteps(Hash32),
    #[error("dispute {dispute}: no proposal to close by the other side is the latest step")]
    NothingToConfirm { dispute: Hash32 },
    #[error("dispute {dispute}: the confirmation names {named}, the proposal to close is {proposed}")]
    WrongProposal { dispute: Hash32, named: Hash32, proposed: Hash32 },
}

fn no(error: DisputeError) -> Failure {
    refused(InterconnectError::Dispute(error))
}

impl<V: StateView> Executor<'_, V> {
    pub(super) fn open_dispute(
        &mut self,
        signer: &OperatorId,
        statement_id: Hash32,
        sealed: &Sealed,
        id: Hash32,
    ) -> Result<(), Failure> {
        let key = StateKey::Statement(statement_id);
        let mut statement: StatementRecord =
            self.read(&key)?.ok_or_else(|| refused(InterconnectError::NoSuchStatement(statement_id)))?;
        if &statement.b != signer {
            return Err(no(DisputeError::NotTheOpener {
                signer: signer.clone(),
                statement: statement_id,
                partner: statement.b.clone(),
            }));
        }
        if statement.signed_at.is_some() {
            return Err(no(DisputeError::StatementFinal(statement_id)));
        }
        if let Some(dispute) = statement.dispute {
            return Err(no(DisputeError::AlreadyDisputed { statement: statement_id, dispute }));
        }
        let agreement: AgreementRecord = self
            .read(&StateKey::Agreement(statement.agreement))?
            .ok_or_else(|| refused(InterconnectError::NoSuchAgreement(statement.agreement)))?;
        let days = agreement.dispute_window_days;
        let closed_ms = statement.proposed_at_ms.saturating_add(u64::from(days).saturating_mul(DAY_MS));
        if self.timestamp_ms > closed_ms {
            return Err(no(DisputeError::WindowClosed {
                statement: statement_id,
                days,
                closed_ms,
                now_ms: self.timestamp_ms,
            }));
        }
        if sealed.envelope.0.is_empty() {
            return Err(refused(InterconnectError::EmptyEnvelope));
        }
        let step = self.step(signer, StepKind::Open, sealed.commitment, Some(sealed.clone()));
        let record = DisputeRecord {
            statement: statement_id,
            opener: signer.clone(),
            respondent: statement.a.clone(),
            steps: BoundedVec::new(vec![step]).map_err(|_| no(DisputeError::TooManySteps(id)))?,
            closed_at: None,
        };
        statement.dispute = Some(id);
        self.write(&key, Some(&statement));
        self.write(&StateKey::Dispute(id), Some(&record));
        Ok(())
    }

    pub(super) fn dispute_step(
        &mut self,
        signer: &OperatorId,
        id: Hash32,
        kind: StepKind,
        sealed: &Sealed,
    ) -> Result<(), Failure> {
        if !matches!(kind, StepKind::Respond | StepKind::ProposeClose) {
            return Err(no(DisputeError::WrongKind(kind)));
        }
        if sealed.envelope.0.is_empty() {
            return Err(refused(InterconnectError::EmptyEnvelope));
        }
        let mut record = self.open_record(signer, id)?;
        let step = self.step(signer, kind, sealed.commitment, Some(sealed.clone()));
        self.push_step(&mut record, id, step)
    }

    pub(super) fn confirm_close(
        &mut self,
        signer: &OperatorId,
        id: Hash32,
        commitment: Hash32,
    ) -> Result<(), Failure> {
        let mut record = self.open_record(signer, id)?;
        let Some(last) =
            record.steps.iter().last().filter(|s| s.kind == StepKind::ProposeClose && &s.by != signer)
        else {
            return Err(no(DisputeError::NothingToConfirm { dispute: id }));
        };
        if last.commitment != commitment {
            return Err(no(DisputeError::WrongProposal {
                dispute: id,
                named: commitment,
                proposed: last.commitment,
            }));
        }
        let statement: StatementRecord = self
            .read(&StateKey::Statement(record.statement))?
            .ok_or_else(|| refused(InterconnectError::NoSuchStatement(record.statement)))?;
        self.make_final(record.statement, &statement)?;
        let step = self.step(signer, StepKind::ConfirmClose, commitment, None);
        record.closed_at = Some(self.height);
        self.push_step(&mut record, id, step)
    }

    /// Dispute `id`, open, with `signer` one of its sides.
    fn open_record(&self, signer: &OperatorId, id: Hash32) -> Result<DisputeRecord, Failure> {
        let record: DisputeRecord =
            self.read(&StateKey::Dispute(id))?.ok_or_else(|| no(DisputeError::NoSuchDispute(id)))?;
        if &record.opener != signer && &record.respondent != signer {
            return Err(no(DisputeError::NotASide(signer.clone())));
        }
        if record.closed_at.is_some() {
            return Err(no(DisputeError::Closed(id)));
        }
        Ok(record)
    }

    fn step(&self, by: &OperatorId, kind: StepKind, commitment: Hash32, sealed: Option<Sealed>) -> Step {
        Step { by: by.clone(), kind, at: self.height, at_ms: self.timestamp_ms, commitment, sealed }
    }

    fn push_step(&mut self, record: &mut DisputeRecord, id: Hash32, step: Step) -> Result<(), Failure> {
        let mut steps = std::mem::take(&mut record.steps).into_inner();
        steps.push(step);
        record.steps = BoundedVec::new(steps).map_err(|_| no(DisputeError::TooManySteps(id)))?;
        self.write(&StateKey::Dispute(id), Some(&*record));
        Ok(())
    }
}
