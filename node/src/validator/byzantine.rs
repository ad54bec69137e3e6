//! A misbehaving member, for the robustness tests only. `CDRCHAIN_FAILPOINT=flood` makes this
//! validator, besides its honest work, flood the others with well-signed messages as the review
//! of `90ea16c` describes (H2, M2), on every housekeeping tick:
//! - batches of its own operator a little ahead of its committed sequence: they pass the
//!   intake's distance check and fill this operator's share of every pool, then are refused by
//!   the quota;
//! - batches far ahead: refused before their signature is checked;
//! - a chain of one-sequence gaps, each followed by a one-CDR batch, from its committed sequence
//!   on: valid, so they commit, and no gap merges into the one before it (H3: each opens a gap,
//!   up to the per-block quota);
//! - the last consensus message it received, re-wrapped with fresh nonces.
//!
//! Read once from the environment, like `exit-after-prevote`; never set in production.
//! `CDRCHAIN_FAILPOINT=flood:NAME` limits it to operator NAME's node (`cdrchain bench localnet`
//! passes its environment to the validators it starts).

use cdrchain_network::Topic;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::ids::{OperatorId, ReasonText, Sequence};
use cdrchain_runtime::tx::{CdrBatch, SequenceGap, SignedTransaction, Transaction};
use parity_scale_codec::Encode;

use super::Driver;
use crate::ingest::committed_next;
use crate::wire::{TxWire, MAX_TXS_PER_GOSSIP};

/// One-CDR batches sent per tick, near and far each.
const FLOOD_BATCHES_PER_TICK: u64 = MAX_TXS_PER_GOSSIP as u64;
/// Gaps (each with the one-CDR batch after it) in one message: twice the most a block takes
/// from one operator (`MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK`), sent every
/// `FLOOD_GAPS_EVERY_TICKS` ticks (a few times per block: the chain only has to be there when a
/// block is built, and more would only fill this node's own send queues).
const FLOOD_GAPS_PER_MESSAGE: u64 = 2 * cdrchain_runtime::bounds::MAX_NEW_GAPS_PER_OPERATOR_PER_BLOCK as u64;
const FLOOD_GAPS_EVERY_TICKS: u64 = 4;
/// Replays of the last consensus message per tick.
const FLOOD_REPLAYS_PER_TICK: usize = 32;
/// How far past the committed sequence the near batches start, and the span they cycle through
/// (inside the intake's distance limit for any chain whose blocks hold 1,000 CDRs or more).
const FLOOD_NEAR_OFFSET: u64 = 1_000;
const FLOOD_NEAR_SPAN: u64 = 2_000;
/// Where the far batches start.
const FLOOD_FAR_SEQUENCE: u64 = 1 << 40;

/// Whether this process, the node of operator `me`, plays the flooding member:
/// `CDRCHAIN_FAILPOINT=flood` (any node), or `flood:NAME` (only operator NAME's node, so that one
/// of the validators a `cdrchain testnet` starts floods the others).
pub(super) fn flood_enabled(me: &OperatorId) -> bool {
    match super::failpoint() {
        Some("flood") => true,
        Some(other) => other.strip_prefix("flood:") == Some(me.as_str()),
        None => false,
    }
}

impl Driver {
    /// One tick of the flood (see the module's text).
    pub(super) fn flood(&mut self) {
        let Some(net) = self.net.clone() else { return };
        let next = committed_next(&self.chain.storage, &self.me).map_or(0, |s| s.0);
        let tick = self.flood_ticks;
        self.flood_ticks = self.flood_ticks.wrapping_add(1);
        let genesis = self.chain.ctx.genesis_hash;
        let partner = self.chain.spec.operators.iter().map(|o| o.id.clone()).find(|id| *id != self.me);
        let partner = partner.unwrap_or_else(|| self.me.clone());
        let batch = |first: u64| {
            let body = cdrchain_runtime::sample::cdr_body(first, &self.me, &partner);
            let tx = Transaction::CdrBatch(CdrBatch {
                operator: self.me.clone(),
                first_sequence: Sequence(first),
                cdrs: BoundedVec::new(vec![body]).unwrap_or_default().into(),
            });
            SignedTransaction::sign(tx, self.keys.first(), &genesis)
        };
        let start = tick.wrapping_mul(FLOOD_BATCHES_PER_TICK);
        let near: Vec<SignedTransaction> = (0..FLOOD_BATCHES_PER_TICK)
            .map(|i| batch(next + FLOOD_NEAR_OFFSET + (start + i) % FLOOD_NEAR_SPAN))
            .collect();
        let far: Vec<SignedTransaction> = (0..FLOOD_BATCHES_PER_TICK)
            .map(|i| batch(FLOOD_FAR_SEQUENCE.saturating_add(start + i)))
            .collect();
        let Ok(reason) = ReasonText::new("flood") else { return };
        let gap = |at: u64| {
            let tx = Transaction::SequenceGap(SequenceGap {
                operator: self.me.clone(),
                from: Sequence(at),
                to: Sequence(at),
                reason: reason.clone(),
            });
            SignedTransaction::sign(tx, self.keys.first(), &genesis)
        };
        let gaps: Vec<SignedTransaction> = if tick.is_multiple_of(FLOOD_GAPS_EVERY_TICKS) {
            (0..FLOOD_GAPS_PER_MESSAGE).flat_map(|i| [gap(next + 2 * i), batch(next + 2 * i + 1)]).collect()
        } else {
            Vec::new()
        };
        let mut messages = Vec::new();
        for txs in [near, far, gaps] {
            if txs.is_empty() {
                continue;
            }
            if let Ok(txs) = BoundedVec::new(txs) {
                messages.push((Topic::Transactions, TxWire { nonce: self.next_nonce(), txs }.encode()));
            }
        }
        if let Some(last) = self.flood_last_consensus.clone() {
            for _ in 0..FLOOD_REPLAYS_PER_TICK {
                let mut replay = last.clone();
                let nonce = self.next_nonce().encode();
                if replay.len() >= nonce.len() {
                    replay[..nonce.len()].copy_from_slice(&nonce);
                    messages.push((Topic::Consensus, replay));
                }
            }
        }
        tokio::spawn(async move {
            for (topic, bytes) in messages {
                // Flooding: whatever does not go out does not matter.
                let _ = net.publish(topic, bytes).await;
            }
        });
    }
}
