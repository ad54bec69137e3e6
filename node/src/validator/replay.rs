//! Replay filter for gossip (review M2): a peer may re-wrap any signed vote, proposal or
//! transaction it has seen with a fresh nonce, which makes it a new gossipsub message. Every wire
//! message starts with its 8-byte nonce, so the digest of the bytes after it names the signed
//! content. Once a content was processed with a verdict a replay would only repeat (accepted, or
//! refused for good), a replay within [`REPLAY_MEMORY_MS`] is ignored before it is decoded or any
//! signature is checked: a flood of replays costs a hash each, and a signature check per content
//! every few seconds at most.
//!
//! The memory is short on purpose: honest nodes re-send their own messages (votes every 1.5 s,
//! waiting transactions every 3 s) so that a peer that lost them gets them again; such a re-send
//! is processed again once the memory has ended.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use cdrchain_runtime::hash::{hash_with, Hash32};

/// Hash context of a gossiped content's digest (node-local: never part of the chain).
const GOSSIP_CONTENT: &str = "cdrchain 2026-12 gossip content v1";

/// How long a gossiped content is remembered.
pub const REPLAY_MEMORY_MS: u64 = 5_000;

/// Most contents remembered; the oldest are forgotten first beyond it.
pub const MAX_REMEMBERED_CONTENTS: usize = 65_536;

/// Bytes of the nonce every wire message starts with (a SCALE `u64`).
pub const NONCE_BYTES: usize = 8;

/// Contents seen recently, oldest first.
#[derive(Debug, Default)]
pub struct ReplayFilter {
    seen: HashSet<Hash32>,
    order: VecDeque<(Instant, Hash32)>,
}

impl ReplayFilter {
    /// Whether `message` (nonce first) carries a content remembered within the memory. A message
    /// too short for a nonce is never known (it fails to decode later).
    pub fn is_known(&mut self, message: &[u8], now: Instant) -> bool {
        self.forget_before(now.checked_sub(Duration::from_millis(REPLAY_MEMORY_MS)));
        content_digest(message).is_some_and(|digest| self.seen.contains(&digest))
    }

    /// Remembers `message`'s content from `now` on: call it once the content was processed with
    /// a verdict that a replay would only repeat (accepted, or refused for good).
    pub fn remember(&mut self, message: &[u8], now: Instant) {
        let Some(digest) = content_digest(message) else { return };
        if !self.seen.insert(digest) {
            return;
        }
        self.order.push_back((now, digest));
        if self.order.len() > MAX_REMEMBERED_CONTENTS {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        debug_assert_eq!(self.seen.len(), self.order.len(), "the replay filter's set and queue disagree");
    }

    fn forget_before(&mut self, cutoff: Option<Instant>) {
        let Some(cutoff) = cutoff else { return };
        while let Some((at, digest)) = self.order.front().copied() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&digest);
        }
    }

    /// Contents remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

/// The digest of what follows the nonce.
fn content_digest(message: &[u8]) -> Option<Hash32> {
    message.get(NONCE_BYTES..).map(|content| hash_with(GOSSIP_CONTENT, &[content]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(nonce: u64, content: &[u8]) -> Vec<u8> {
        let mut bytes = nonce.to_le_bytes().to_vec();
        bytes.extend_from_slice(content);
        bytes
    }

    /// `is_known`, then `remember` when new: what the intake does for an accepted message.
    fn replay(filter: &mut ReplayFilter, message: &[u8], now: Instant) -> bool {
        if filter.is_known(message, now) {
            return true;
        }
        filter.remember(message, now);
        false
    }

    #[test]
    fn the_same_content_under_a_fresh_nonce_is_a_replay_until_the_memory_ends() {
        let mut filter = ReplayFilter::default();
        let start = Instant::now();
        assert!(!replay(&mut filter, &wire(1, b"prevote"), start));
        assert!(replay(&mut filter, &wire(2, b"prevote"), start));
        assert!(replay(
            &mut filter,
            &wire(3, b"prevote"),
            start + Duration::from_millis(REPLAY_MEMORY_MS - 1)
        ));
        assert!(!replay(&mut filter, &wire(4, b"precommit"), start));
        // Past the memory the content is new again.
        let later = start + Duration::from_millis(REPLAY_MEMORY_MS + 1);
        assert!(!replay(&mut filter, &wire(5, b"prevote"), later));
        assert_eq!(filter.len(), 1, "the expired contents are forgotten");
        assert!(!replay(&mut filter, b"short", later));
        // Not remembered, not known: a message ignored for now may come again.
        assert!(!filter.is_known(&wire(6, b"future proposal"), later));
        assert!(!filter.is_known(&wire(7, b"future proposal"), later));
    }

    #[test]
    fn the_memory_is_bounded_by_count() {
        let mut filter = ReplayFilter::default();
        let now = Instant::now();
        for i in 0..(MAX_REMEMBERED_CONTENTS as u64 + 10) {
            assert!(!replay(&mut filter, &wire(0, &i.to_le_bytes()), now));
        }
        assert_eq!(filter.len(), MAX_REMEMBERED_CONTENTS);
        // The oldest were forgotten, the newest are remembered.
        assert!(!filter.is_known(&wire(9, &0u64.to_le_bytes()), now));
        assert!(filter.is_known(&wire(9, &(MAX_REMEMBERED_CONTENTS as u64 + 9).to_le_bytes()), now));
    }
}
