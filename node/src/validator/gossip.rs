//! Gossip: announcing this operator's transactions, routing the network's events (transaction
//! gossip to its own intake task, the rest to the driver), and consensus messages in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cdrchain_consensus::{ConsensusMessage, Input, Verdict};
use cdrchain_network::{GossipData, NetworkEvent, NetworkHandle, PeerId, Topic, Validation};
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use parity_scale_codec::Encode;
use tokio::sync::mpsc;

use super::proposals::{Refusal, Slot};
use super::replay::ReplayFilter;
use super::sync::serve_sync;
use super::{Driver, MAX_QUEUED_DRIVER_EVENTS, MAX_QUEUED_TX_GOSSIP_MESSAGES, REANNOUNCE_AFTER_MS};
use crate::chain::Chain;
use crate::config::MAX_GOSSIPED_TX_BYTES;
use crate::ingest::committed_next;
use crate::pool::{max_sequences_ahead, TxPool};
use crate::wire::{decode_consensus, ConsensusWire, TxWire, MAX_TXS_PER_GOSSIP};
use crate::NodeError;

impl Driver {
    /// Gossips our own pool transactions: new ones at once, waiting ones again every few seconds.
    pub(super) fn announce_transactions(&mut self) {
        let Some(net) = self.net.clone() else { return };
        if self.connected.is_empty() || self.announcing.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let now = Instant::now();
        let me = self.me.clone();
        let ids: Vec<Hash32> = self
            .pool
            .ids_where(|tx| tx.transaction.operator() == &me)
            .into_iter()
            .filter(|id| {
                self.announced
                    .get(id)
                    .is_none_or(|at| now.duration_since(*at) > Duration::from_millis(REANNOUNCE_AFTER_MS))
            })
            .collect();
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            self.announced.insert(*id, now);
        }
        let due = self.pool.get_many(&ids);
        let messages: Vec<(u64, Vec<SignedTransaction>)> = gossip_chunks(due, net.limit(Topic::Transactions))
            .into_iter()
            .map(|chunk| (self.next_nonce(), chunk))
            .collect();
        // Published from their own task: the consensus task never waits for the network to take
        // megabytes of batches (one announcement at a time; the next tick skips while it runs).
        self.announcing = Some(tokio::spawn(async move {
            for (nonce, chunk) in messages {
                // `gossip_chunks` made at most MAX_TXS_PER_GOSSIP per chunk: this always fits.
                let Ok(txs) = BoundedVec::new(chunk) else {
                    debug_assert!(false, "a gossip chunk over {MAX_TXS_PER_GOSSIP} transactions");
                    continue;
                };
                let bytes = TxWire { nonce, txs }.encode();
                if let Err(e) = net.publish(Topic::Transactions, bytes).await {
                    tracing::warn!(target: "cdrchain::consensus", "transactions not gossiped: {e}");
                }
            }
        }));
    }

    pub(super) async fn on_network(&mut self, event: NetworkEvent) -> Result<(), NodeError> {
        match event {
            NetworkEvent::Gossip { topic: Topic::Consensus, source, id, data } => {
                if super::byzantine::flood_enabled(&self.me) {
                    self.flood_last_consensus = Some(data.to_vec());
                }
                let now = Instant::now();
                let verdict = if self.replays.is_known(&data, now) {
                    // A replay of a content already processed: no decode, no signature check.
                    Validation::Ignore
                } else {
                    let verdict = self.on_consensus_gossip(&data).await?;
                    // Ignored contents may be wanted later (a proposal too far ahead now).
                    if verdict != Validation::Ignore {
                        self.replays.remember(&data, now);
                    }
                    verdict
                };
                if let Some(net) = &self.net {
                    net.report(id, source, verdict);
                }
            }
            NetworkEvent::Gossip { topic: Topic::Transactions, source, id, .. } => {
                // `route_events` sends these to the transaction intake; none comes here.
                debug_assert!(false, "transaction gossip reached the consensus driver");
                if let Some(net) = &self.net {
                    net.report(id, source, Validation::Ignore);
                }
            }
            NetworkEvent::SyncRequest { peer, request, reply } => {
                // Reading blocks can take a while: not on the consensus task, and a few at a
                // time (a peer asking for many cannot make us build them all at once).
                if let Some(net) = self.net.clone() {
                    let chain = self.chain.clone();
                    let serving = self.sync_serving.clone();
                    tokio::spawn(async move {
                        let Ok(_permit) = serving.acquire_owned().await else { return };
                        let built =
                            tokio::task::spawn_blocking(move || serve_sync(&chain, peer, &request)).await;
                        // A panic while reading drops the reply: the requester sees a failure.
                        if let Ok(response) = built {
                            net.respond(reply, response);
                        }
                    });
                }
            }
            NetworkEvent::PeerConnected(peer) => {
                tracing::info!(target: "cdrchain::network", "peer connected: {peer} ({})", self.operator_name(&peer));
                self.connected.insert(peer);
                // Let it have our waiting transactions soon.
                self.announced.clear();
                self.refresh_peers().await;
            }
            NetworkEvent::PeerDisconnected(peer) => {
                tracing::info!(target: "cdrchain::network", "peer disconnected: {peer} ({})", self.operator_name(&peer));
                self.connected.remove(&peer);
                self.refresh_peers().await;
            }
            NetworkEvent::Listening(address) => {
                tracing::info!(target: "cdrchain::network", "p2p listening on {address}");
            }
        }
        Ok(())
    }

    pub(super) fn operator_name(&self, peer: &PeerId) -> String {
        self.operators
            .get(peer)
            .map_or_else(|| "not in the chain spec".to_string(), |op| format!("operator `{op}`"))
    }

    pub(super) async fn on_consensus_gossip(&mut self, data: &[u8]) -> Result<Validation, NodeError> {
        // A proposal's signature is checked before its block is decoded (the machine checks
        // every message again: this is only the cheap gate in front of the expensive decode).
        let validators = self.machine.validators();
        let check = |message: &ConsensusMessage| match message {
            ConsensusMessage::Proposal(p) => validators.verify_proposal(p).map_err(|e| e.to_string()),
            ConsensusMessage::Vote(_) => Ok(()),
        };
        let wire: ConsensusWire = match decode_consensus(data, check) {
            Ok(wire) => wire,
            Err(e) => {
                tracing::warn!(target: "cdrchain::consensus", "refused a consensus message of {} bytes: {e}", data.len());
                return Ok(Validation::Reject);
            }
        };
        let mut claimed = None;
        let mut arrived = None;
        if let ConsensusMessage::Proposal(p) = &wire.message {
            let slot = Slot { height: p.proposal.height, round: p.proposal.round };
            let current = Slot { height: self.machine.height(), round: self.machine.round() };
            let hash = p.proposal.block_hash;
            match self.proposals.on_wire(slot, hash, wire.block, current, &self.pool) {
                Ok(arrival) => {
                    if arrival.claimed {
                        if !arrival.complete {
                            tracing::debug!(target: "cdrchain::consensus", "{}: waiting for some of its transactions", wire.message.describe());
                        }
                        claimed = Some(hash);
                    }
                    arrived = Some(hash);
                }
                // A proposal we could not use now (too far ahead) or a third block for one
                // (height, round): not kept; the proposer re-sends when it matters.
                Err(refusal) if !refusal.is_fault() => return Ok(Validation::Ignore),
                Err(Refusal::NoBlock) => return Ok(Validation::Reject),
                Err(refusal) => {
                    tracing::warn!(target: "cdrchain::consensus", "refused {}: {refusal}", wire.message.describe());
                    return Ok(Validation::Reject);
                }
            }
        }
        let description = wire.message.describe();
        let verdict = self.feed(Input::Message(wire.message)).await?;
        if let Some(hash) = arrived {
            // A re-sent proposal the machine already had, whose block only now became complete.
            self.execute_wanted(hash).await?;
        }
        Ok(match verdict {
            Verdict::Accepted => Validation::Accept,
            Verdict::Ignored => Validation::Ignore,
            Verdict::Rejected(error) => {
                tracing::warn!(target: "cdrchain::consensus", "refused {description}: {error}");
                if let Some(hash) = claimed {
                    self.proposals.forget(&hash);
                }
                Validation::Reject
            }
        })
    }
}

/// Where the transaction gossip goes: checked off the consensus task, into the pool.
pub(super) struct TxIntake {
    /// The registered operators' keys, to check each transaction's signature.
    pub(super) chain: Arc<Chain>,
    /// Where checked transactions go.
    pub(super) pool: Arc<TxPool>,
    /// To report each message's verdict to gossipsub.
    pub(super) net: NetworkHandle,
    /// Told when transactions entered the pool (a compact proposal may now be complete).
    pub(super) pooled: Arc<tokio::sync::Notify>,
}

/// Splits the network's events: transaction gossip to a task that checks it (decoding and
/// signature checks on the blocking pool), everything else to the consensus driver, which gets
/// the returned receiver.
pub(super) fn route_events(
    mut events: mpsc::Receiver<NetworkEvent>,
    intake: TxIntake,
) -> mpsc::Receiver<NetworkEvent> {
    let (to_driver, driver_events) = mpsc::channel(MAX_QUEUED_DRIVER_EVENTS);
    let (to_intake, mut intake_events) =
        mpsc::channel::<(PeerId, cdrchain_network::MessageId, GossipData)>(MAX_QUEUED_TX_GOSSIP_MESSAGES);
    let net = intake.net.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::Gossip { topic: Topic::Transactions, source, id, data } => {
                    if let Err(mpsc::error::TrySendError::Full((source, id, _))) =
                        to_intake.try_send((source, id, data))
                    {
                        tracing::debug!(target: "cdrchain::consensus", "transaction gossip queue full: a message from {source} dropped");
                        net.report(id, source, Validation::Ignore);
                    }
                }
                other => {
                    if to_driver.send(other).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let intake = Arc::new(intake);
        let mut replays = ReplayFilter::default();
        while let Some((source, id, data)) = intake_events.recv().await {
            let now = Instant::now();
            if replays.is_known(&data, now) {
                // Transactions already checked, re-wrapped: no decode, no signature check.
                intake.net.report(id, source, Validation::Ignore);
                continue;
            }
            let checker = intake.clone();
            let checked = tokio::task::spawn_blocking(move || {
                let verdict = check_tx_gossip(&checker.chain, &checker.pool, &data);
                (verdict, data)
            })
            .await;
            let verdict = match checked {
                Ok((verdict, data)) => {
                    if verdict != Validation::Ignore {
                        replays.remember(&data, now);
                    }
                    verdict
                }
                Err(_) => Validation::Ignore,
            };
            intake.net.report(id, source, verdict);
            if verdict == Validation::Accept {
                intake.pooled.notify_one();
            }
        }
    });
    driver_events
}

/// Decodes gossiped transactions, checks each one's signature against its registered operator,
/// and pools them. One bad transaction rejects the message.
pub(super) fn check_tx_gossip(chain: &Chain, pool: &TxPool, data: &[u8]) -> Validation {
    let wire: TxWire = match decode_exact(data) {
        Ok(wire) => wire,
        Err(e) => {
            tracing::warn!(target: "cdrchain::consensus", "refused gossiped transactions ({} bytes): {e}", data.len());
            return Validation::Reject;
        }
    };
    let genesis = chain.ctx.genesis_hash;
    let ahead_limit = max_sequences_ahead(chain.spec.params.max_block_cdrs);
    let mut added = 0;
    let mut ahead = 0;
    // Each operator's committed next sequence, as read for this message (a few operators).
    let mut committed: Vec<(cdrchain_runtime::ids::OperatorId, u64)> = Vec::new();
    // Each operator's transaction key in the committed state (governance adds, removes and
    // rotates them), read once per operator and message.
    let mut keys: Vec<(cdrchain_runtime::ids::OperatorId, Option<cdrchain_runtime::crypto::PublicKey>)> =
        Vec::new();
    for tx in wire.txs.into_inner() {
        let operator = tx.transaction.operator().clone();
        let key = match keys.iter().find(|(id, _)| *id == operator) {
            Some((_, key)) => *key,
            None => match chain.transaction_key(&operator) {
                Ok(key) => {
                    keys.push((operator.clone(), key));
                    key
                }
                Err(e) => {
                    tracing::warn!(target: "cdrchain::consensus", "cannot read the key of `{operator}`: {e}");
                    return Validation::Ignore;
                }
            },
        };
        let Some(key) = key else {
            tracing::warn!(target: "cdrchain::consensus", "refused a gossiped transaction of `{operator}`, which the chain does not know or removed");
            return Validation::Reject;
        };
        // Cheap checks before the signature's: size, and how far ahead of the chain it starts.
        let size = tx.encoded_size();
        if size > MAX_GOSSIPED_TX_BYTES {
            tracing::warn!(target: "cdrchain::consensus", "refused a gossiped transaction of `{operator}`: {size} bytes, over {MAX_GOSSIPED_TX_BYTES}");
            return Validation::Reject;
        }
        if let Some(first) = first_sequence(&tx.transaction) {
            // An operator the state does not know yet (or a state read failure) counts from 0.
            // Read once per operator and message: a message holds up to MAX_TXS_PER_GOSSIP.
            let next = match committed.iter().find(|(id, _)| *id == operator) {
                Some((_, next)) => *next,
                None => {
                    let next = committed_next(&chain.storage, &operator).map_or(0, |s| s.0);
                    committed.push((operator.clone(), next));
                    next
                }
            };
            if first > next.saturating_add(ahead_limit) {
                ahead += 1;
                tracing::debug!(
                    target: "cdrchain::consensus",
                    "ignored a gossiped transaction of `{operator}` at sequence {first}: the chain is at {next}, \
                     more than {ahead_limit} behind"
                );
                continue;
            }
        }
        let id = match tx.verify(&key, &genesis) {
            Ok(id) => id,
            // Around a key rotation a peer a block away signs with the key in force there.
            Err(e)
                if crate::keys::keys_in_flux(&chain.storage, crate::keys::next_height(&chain.storage))
                    .unwrap_or(true) =>
            {
                tracing::debug!(target: "cdrchain::consensus", "ignored a gossiped transaction of `{operator}` while keys change: {e}");
                return Validation::Ignore;
            }
            Err(e) => {
                tracing::warn!(target: "cdrchain::consensus", "refused a gossiped transaction of `{operator}`: {e}");
                return Validation::Reject;
            }
        };
        if pool.add(id, tx).is_ok() {
            added += 1;
        }
    }
    if ahead > 0 {
        tracing::info!(target: "cdrchain::consensus", "ignored {ahead} gossiped transactions that start too far ahead of the chain");
    }
    if added > 0 {
        Validation::Accept
    } else {
        Validation::Ignore
    }
}

/// The sequence a batch or gap starts at (what must be the operator's next for it to apply).
fn first_sequence(tx: &Transaction) -> Option<u64> {
    match tx {
        Transaction::CdrBatch(batch) => Some(batch.first_sequence.0),
        Transaction::SequenceGap(gap) => Some(gap.from.0),
        Transaction::CallEvent(_)
        | Transaction::CheckpointSignature(_)
        | Transaction::ProposeChange(_)
        | Transaction::ApproveChange(_)
        | Transaction::SetChangeSignature(_)
        | Transaction::Interconnect(_) => None,
    }
}

/// What a [`TxWire`] holds besides its transactions: a u64 nonce and the list's compact length
/// prefix (at most 5 bytes), rounded up.
const TX_WIRE_OVERHEAD_BYTES: usize = 16;

const _: () = assert!(TX_WIRE_OVERHEAD_BYTES >= 8 + 5);

/// Splits transactions into gossip messages of at most `limit` bytes and [`MAX_TXS_PER_GOSSIP`]
/// transactions each, in order. A transaction too large for any message is left out with a
/// warning (the batcher keeps batches far below the limit, so this is a misconfiguration).
pub(super) fn gossip_chunks(txs: Vec<SignedTransaction>, limit: usize) -> Vec<Vec<SignedTransaction>> {
    let room = limit.saturating_sub(TX_WIRE_OVERHEAD_BYTES);
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0usize;
    for tx in txs {
        let size = tx.encoded_size();
        if size > room {
            tracing::warn!(
                target: "cdrchain::consensus",
                "a transaction of `{}` is {size} bytes, over the gossip limit of {room}: other validators get it only in a block this node proposes",
                tx.transaction.operator()
            );
            continue;
        }
        if !chunk.is_empty() && (bytes + size > room || chunk.len() == MAX_TXS_PER_GOSSIP) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(tx);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::sample::SampleChain;

    #[test]
    fn gossip_chunks_respect_the_byte_limit_and_keep_order() {
        let chain = SampleChain::new(&["alice"]);
        let txs: Vec<SignedTransaction> = (0..7).map(|i| chain.batch("alice", i * 100, 100)).collect();
        let size = txs[0].encoded_size();
        assert!(txs.iter().all(|tx| tx.encoded_size() == size), "equal-size batches for this test");
        // Room for two transactions per message.
        let limit = 2 * size + 16;
        let chunks = gossip_chunks(txs.clone(), limit);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2, 1]);
        for chunk in &chunks {
            let wire = TxWire { nonce: u64::MAX, txs: BoundedVec::new(chunk.clone()).unwrap() };
            assert!(wire.encoded_size() <= limit, "{} > {limit}", wire.encoded_size());
        }
        assert_eq!(chunks.concat(), txs);
        // A transaction over the limit is left out; the others still go.
        let mut mixed = vec![txs[0].clone(), chain.batch("alice", 700, 1_000), txs[1].clone()];
        let big = mixed[1].encoded_size();
        assert!(big > limit);
        assert_eq!(
            gossip_chunks(std::mem::take(&mut mixed), limit),
            vec![vec![txs[0].clone(), txs[1].clone()]]
        );
        // Many small ones: at most MAX_TXS_PER_GOSSIP per message.
        let small: Vec<SignedTransaction> =
            (0..(MAX_TXS_PER_GOSSIP as u64 + 3)).map(|i| chain.batch("alice", i, 1)).collect();
        let counts: Vec<usize> = gossip_chunks(small, usize::MAX).iter().map(Vec::len).collect();
        assert_eq!(counts, vec![MAX_TXS_PER_GOSSIP, 3]);
    }
}
