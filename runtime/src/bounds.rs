//! What keeps the state bounded per operator: declared gaps merge when adjacent and an operator
//! opens only a few per block; live calls have a quota and a timeout after which a call is closed
//! as abandoned (ADR 0016).
//!
//! Each rule is part of the state transition: every validator applies it the same way, at the
//! block's own timestamp.

use crate::apply::{ApplyError, Executor, Failure, TxError};
use crate::codec::decode_exact;
use crate::ids::{OperatorId, Sequence};
use crate::state::{CallRecord, GapRecord, StateKey, StateView};
use crate::tx::{CallEvent, CallState, SequenceGap};

/// Gaps one operator may open in one block; a gap adjacent to its previous one merges into it and
/// does not count. An honest operator declares a gap when a switch lost records, a few a day; a
/// member filing one-sequence gaps between single CDRs adds at most this many entries per block.
pub const MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK: u32 = 16;
/// Live calls one operator may hold: the stated peak of 2,000 calls per second with a mean
/// holding time of three minutes is 360,000 concurrent calls; 2^19 leaves room.
pub const MAX_LIVE_CALLS_PER_OPERATOR: u32 = 1 << 19;
/// A live call without an event for this long (block time) is closed as abandoned: Kamailio's
/// dialog module ends a dialog after 12 hours by default (`default_timeout` 43,200 s).
pub const CALL_TIMEOUT_MS: u64 = 12 * 3_600 * 1_000;
/// Abandoned calls closed per block at most; the rest are closed in the next blocks. Each costs
/// three state writes.
pub const MAX_CALL_EXPIRIES_PER_BLOCK: usize = 4_096;
/// The first byte of every [`StateKey::CallDeadline`] key: its SCALE variant index.
pub const CALL_DEADLINE_TAG: u8 = 9;

// An operator must be able to hold the live calls one block can open.
const _: () = assert!(MAX_LIVE_CALLS_PER_OPERATOR as usize >= crate::block::MAX_TRANSACTIONS_PER_BLOCK);
// Expiry must not be the larger part of a block's work: at most one write in eight per
// transaction slot.
const _: () = assert!(MAX_CALL_EXPIRIES_PER_BLOCK * 8 <= crate::block::MAX_TRANSACTIONS_PER_BLOCK);

impl<V: StateView> Executor<'_, V> {
    /// A declared gap: it merges into the operator's previous gap when that one ends right
    /// before it (the merged gap keeps the first declaration's reason and height; every
    /// declaration stays in its block), else it opens a new one, within the per-block quota.
    pub(crate) fn sequence_gap(&mut self, gap: &SequenceGap) -> Result<(), Failure> {
        let operator = &gap.operator;
        let from = self.expect_sequence(operator, gap.from)?;
        if gap.to < from {
            return Err(TxError::GapBackwards { from, to: gap.to }.into());
        }
        let next = gap
            .to
            .0
            .checked_add(1)
            .ok_or_else(|| TxError::SequenceOverflow { operator: operator.clone() })?;
        let previous = match self.read::<Sequence>(&StateKey::LastGap(operator.clone()))? {
            Some(start) => self
                .read::<GapRecord>(&StateKey::Gap(operator.clone(), start))?
                .filter(|record| record.to.0.checked_add(1) == Some(from.0))
                .map(|record| (start, record)),
            None => None,
        };
        match previous {
            Some((start, mut record)) => {
                record.to = gap.to;
                self.write(&StateKey::Gap(operator.clone(), start), Some(&record));
            }
            None => {
                let opened = self.new_gaps.get(operator).copied().unwrap_or(0);
                if opened >= MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK {
                    return Err(TxError::GapQuota {
                        operator: operator.clone(),
                        max: MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK,
                    }
                    .into());
                }
                self.new_gaps.insert(operator.clone(), opened + 1);
                let record = GapRecord { to: gap.to, reason: gap.reason.clone(), declared_at: self.height };
                self.write(&StateKey::Gap(operator.clone(), from), Some(&record));
                self.write(&StateKey::LastGap(operator.clone()), Some(&from));
            }
        }
        self.write(&StateKey::NextSequence(operator.clone()), Some(&Sequence(next)));
        Ok(())
    }

    /// A call-state update: a legal transition, not before the previous event; a new call counts
    /// against the operator's quota; each event moves the call's deadline to this block's time
    /// plus [`CALL_TIMEOUT_MS`].
    pub(crate) fn call_event(&mut self, event: &CallEvent) -> Result<(), Failure> {
        let operator = &event.operator;
        // The operator must exist even though a call event carries no sequence.
        self.next_sequence(operator)?;
        let key = StateKey::Call(operator.clone(), event.call_id.clone());
        let previous: Option<CallRecord> = self.read(&key)?;
        if !CallState::may_follow(previous.map(|p| p.state), event.state) {
            return Err(TxError::IllegalCallTransition {
                call_id: event.call_id.clone(),
                from: previous.map(|p| p.state),
                to: event.state,
            }
            .into());
        }
        if let Some(previous) = previous {
            if event.at_ms < previous.at_ms {
                return Err(TxError::CallEventBeforePrevious {
                    call_id: event.call_id.clone(),
                    at_ms: event.at_ms,
                    previous_ms: previous.at_ms,
                }
                .into());
            }
        }
        let live = self.live_calls(operator)?;
        if previous.is_none() && live >= MAX_LIVE_CALLS_PER_OPERATOR {
            return Err(TxError::LiveCallQuota {
                operator: operator.clone(),
                max: MAX_LIVE_CALLS_PER_OPERATOR,
            }
            .into());
        }
        // Checked: from here on the event applies.
        if let Some(previous) = previous {
            self.write::<()>(&deadline_key(previous.deadline_ms, operator, &event.call_id), None);
        }
        if event.state == CallState::Ended {
            // Ended calls leave the state: it holds live calls only.
            self.write::<CallRecord>(&key, None);
            self.set_live_calls(operator, live.saturating_sub(1));
        } else {
            let deadline_ms = self.timestamp_ms.saturating_add(CALL_TIMEOUT_MS);
            self.write(&key, Some(&CallRecord { state: event.state, at_ms: event.at_ms, deadline_ms }));
            self.write(&deadline_key(deadline_ms, operator, &event.call_id), Some(&()));
            if previous.is_none() {
                self.set_live_calls(operator, live + 1);
            }
        }
        Ok(())
    }

    /// Closes live calls whose deadline is at or before this block's time, oldest first, at most
    /// [`MAX_CALL_EXPIRIES_PER_BLOCK`]. Runs before the block's transactions, on the parent state.
    pub(crate) fn expire_calls(&mut self) -> Result<(), ApplyError> {
        let due = self
            .view
            .pairs_with_prefix(&[CALL_DEADLINE_TAG], MAX_CALL_EXPIRIES_PER_BLOCK)
            .map_err(|e| ApplyError::State(Box::new(e)))?;
        for (key, _) in due {
            let Ok(StateKey::CallDeadline(deadline, operator, call_id)) = decode_exact::<StateKey>(&key)
            else {
                return Err(ApplyError::CorruptState {
                    key: hex::encode(&key),
                    reason: "not a call deadline under the call deadline prefix".to_string(),
                });
            };
            if u64::from_be_bytes(deadline) > self.timestamp_ms {
                break;
            }
            self.write::<()>(&StateKey::CallDeadline(deadline, operator.clone(), call_id.clone()), None);
            self.write::<CallRecord>(&StateKey::Call(operator.clone(), call_id), None);
            let live = self.live_calls(&operator)?;
            self.set_live_calls(&operator, live.saturating_sub(1));
        }
        Ok(())
    }

    fn live_calls(&self, operator: &OperatorId) -> Result<u32, ApplyError> {
        Ok(self.read(&StateKey::LiveCalls(operator.clone()))?.unwrap_or(0))
    }

    /// Writes the count, removing the entry at zero (an operator without live calls has none).
    fn set_live_calls(&mut self, operator: &OperatorId, live: u32) {
        let key = StateKey::LiveCalls(operator.clone());
        if live == 0 {
            self.write::<u32>(&key, None);
        } else {
            self.write(&key, Some(&live));
        }
    }
}

/// The deadline key of a call.
fn deadline_key(deadline_ms: u64, operator: &OperatorId, call_id: &crate::ids::CallId) -> StateKey {
    StateKey::CallDeadline(deadline_ms.to_be_bytes(), operator.clone(), call_id.clone())
}

#[cfg(test)]
mod tests {
    use parity_scale_codec::Encode;

    use super::*;

    #[test]
    fn the_deadline_tag_is_the_first_byte_of_a_deadline_key() {
        let key = deadline_key(5, &OperatorId::new("alice").unwrap(), &crate::ids::CallId::new("c").unwrap());
        assert_eq!(key.encode()[0], CALL_DEADLINE_TAG);
        // Keys sort by deadline: big-endian milliseconds right after the tag.
        let later = deadline_key(256, &OperatorId::new("a").unwrap(), &crate::ids::CallId::new("c").unwrap());
        assert!(key.encode() < later.encode());
    }
}
