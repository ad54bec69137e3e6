//! The bytes of received gossip the node holds, bounded in total and per relaying peer.
//!
//! Channels bounded by a count of messages do not bound memory: gossip messages range from a
//! 200-byte vote to a whole block (`Limits::max_consensus_message`). Every gossip payload the
//! network hands the node is a [`GossipData`] that holds its length against a shared budget
//! until the node drops it (after its verdict), wherever it waits in between: the event
//! channel, the node's routing and intake queues, the blocking pool. When the budget is spent,
//! new gossip is dropped (reported `Ignore`) before it is queued.
//!
//! Fairness: one peer may hold at most `per_peer` bytes (half the budget, so one relaying peer
//! flooding cannot crowd out the others), and at least one message of the largest size always
//! fits in a peer's share ([`crate::Limits`] checks the relation).

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use libp2p::PeerId;

/// Bytes held, in total and per relaying peer.
#[derive(Default)]
struct Held {
    total: usize,
    by_peer: HashMap<PeerId, usize>,
}

/// The shared budget (cheap to clone: one `Arc`).
#[derive(Clone)]
pub(crate) struct GossipBudget {
    held: Arc<Mutex<Held>>,
    max_bytes: usize,
    per_peer_bytes: usize,
}

/// Why a payload was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OverBudget {
    /// All peers together already hold `max_bytes`.
    #[error("the node holds its budget of received gossip bytes")]
    Total,
    /// This peer already holds its share.
    #[error("the relaying peer holds its share of the received gossip bytes")]
    Peer,
}

impl GossipBudget {
    /// A budget of `max_bytes` in all, of which one peer may hold half.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { held: Arc::default(), max_bytes, per_peer_bytes: max_bytes / PEER_SHARE_DIVISOR }
    }

    /// Holds `data` against the budget as relayed by `peer`, or says why not.
    pub(crate) fn hold(&self, peer: PeerId, data: Vec<u8>) -> Result<GossipData, OverBudget> {
        let len = data.len();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let by_peer = held.by_peer.get(&peer).copied().unwrap_or(0);
        if by_peer.saturating_add(len) > self.per_peer_bytes {
            return Err(OverBudget::Peer);
        }
        if held.total.saturating_add(len) > self.max_bytes {
            return Err(OverBudget::Total);
        }
        held.total += len;
        held.by_peer.insert(peer, by_peer + len);
        drop(held);
        Ok(GossipData { data, ticket: Some(Ticket { held: self.held.clone(), peer, len }) })
    }

    /// Bytes held now, in all.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

/// One peer's share is the budget divided by this.
pub(crate) const PEER_SHARE_DIVISOR: usize = 2;

/// Gives a payload's bytes back to the budget when dropped.
struct Ticket {
    held: Arc<Mutex<Held>>,
    peer: PeerId,
    len: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.total = held.total.saturating_sub(self.len);
        if let Some(by_peer) = held.by_peer.get_mut(&self.peer) {
            *by_peer = by_peer.saturating_sub(self.len);
            if *by_peer == 0 {
                held.by_peer.remove(&self.peer);
            }
        }
    }
}

/// A received gossip payload. Reads as `[u8]`; its bytes count against the network's gossip
/// budget until it is dropped (or turned into a plain vector with [`GossipData::into_vec`]).
pub struct GossipData {
    data: Vec<u8>,
    ticket: Option<Ticket>,
}

impl GossipData {
    /// A payload held against no budget (for tests and for payloads the node made itself).
    pub fn unbudgeted(data: Vec<u8>) -> Self {
        Self { data, ticket: None }
    }

    /// The bytes, released from the budget.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.ticket = None;
        std::mem::take(&mut self.data)
    }
}

impl Deref for GossipData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl AsRef<[u8]> for GossipData {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl fmt::Debug for GossipData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GossipData({} bytes)", self.data.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_held_until_the_payload_is_dropped() -> Result<(), Box<dyn std::error::Error>> {
        let budget = GossipBudget::new(100);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let first = budget.hold(a, vec![0; 30])?;
        let second = budget.hold(b, vec![0; 50])?;
        assert_eq!(budget.held_bytes(), 80);
        // Within c's share, over the total.
        assert_eq!(budget.hold(c, vec![0; 21]).err(), Some(OverBudget::Total));
        assert!(budget.hold(c, vec![0; 20]).is_ok());
        drop(first);
        assert_eq!(budget.held_bytes(), 50);
        let third = budget.hold(a, vec![0; 50])?;
        assert_eq!(&*third, &[0u8; 50][..]);
        // Turned into a plain vector: released, bytes kept.
        assert_eq!(third.into_vec().len(), 50);
        assert_eq!(budget.held_bytes(), 50);
        drop(second);
        assert_eq!(budget.held_bytes(), 0);
        Ok(())
    }

    #[test]
    fn one_peer_holds_at_most_its_share() -> Result<(), Box<dyn std::error::Error>> {
        let budget = GossipBudget::new(100);
        let (flooder, honest) = (PeerId::random(), PeerId::random());
        let mut kept = Vec::new();
        for _ in 0..5 {
            kept.push(budget.hold(flooder, vec![0; 10])?);
        }
        assert_eq!(budget.hold(flooder, vec![0; 10]).err(), Some(OverBudget::Peer));
        // The other half is still there for everyone else.
        let honest_data = budget.hold(honest, vec![0; 50])?;
        assert_eq!(budget.held_bytes(), 100);
        drop(kept.pop());
        assert!(budget.hold(flooder, vec![0; 10]).is_ok(), "a released share is usable again");
        drop(honest_data);
        Ok(())
    }

    #[test]
    fn an_unbudgeted_payload_holds_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let data = GossipData::unbudgeted(vec![1, 2, 3]);
        assert_eq!(data.len(), 3);
        assert_eq!(data.into_vec(), vec![1, 2, 3]);
        Ok(())
    }
}
