//! Block sync: the client (asking a peer for the committed blocks after our head, importing
//! them with their certificates) and the server (answering peers' requests from storage).

use std::time::{Duration, Instant};

use cdrchain_consensus::Input;
use cdrchain_network::{NetworkError, PeerId};
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::ids::Height;
use parity_scale_codec::Encode;

use super::{next_height, Driver, SYNC_BATCH_BLOCKS, SYNC_RESPONSE_BUDGET_BYTES};
use crate::chain::Chain;
use crate::wire::{SyncRequest, SyncResponse, MAX_BLOCKS_PER_SYNC};
use crate::NodeError;

/// A sync request's outcome, from the task that sent it to the driver.
#[derive(Debug)]
pub(super) struct SyncResponseFrom {
    /// The peer asked.
    pub(super) peer: PeerId,
    /// Its encoded [`SyncResponse`], or why none came.
    pub(super) response: Result<Vec<u8>, NetworkError>,
}

impl Driver {
    /// Asks `peer` (or any connected peer) for the blocks after our head, unless a request is in
    /// flight or one was sent less than `spacing` ago.
    pub(super) fn start_sync(&mut self, peer: Option<PeerId>, spacing: Duration) {
        let Some(net) = self.net.clone() else { return };
        if self.sync_in_flight || self.last_sync.is_some_and(|at| at.elapsed() < spacing) {
            return;
        }
        let peer = match peer.filter(|p| self.connected.contains(p)) {
            Some(peer) => peer,
            None => {
                // Rotate through the connected peers.
                let list: Vec<PeerId> = self.connected.iter().copied().collect();
                if list.is_empty() {
                    return;
                }
                self.sync_turn = self.sync_turn.wrapping_add(1);
                let index = self.sync_turn % list.len();
                list[index]
            }
        };
        self.sync_in_flight = true;
        self.last_sync = Some(Instant::now());
        let request = SyncRequest { from: next_height(&self.chain), max: SYNC_BATCH_BLOCKS }.encode();
        let tx = self.sync_tx.clone();
        tokio::spawn(async move {
            let response = net.request(peer, request).await;
            let _ = tx.send(SyncResponseFrom { peer, response }).await;
        });
    }

    /// Imports the blocks of a sync response that follow our head, and asks the same peer for
    /// more when the batch was full.
    pub(super) async fn on_sync_response(&mut self, from: SyncResponseFrom) -> Result<(), NodeError> {
        let SyncResponseFrom { peer, response } = from;
        self.sync_in_flight = false;
        let bytes = match response {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(target: "cdrchain::network", "sync request to {peer} failed: {e}");
                return Ok(());
            }
        };
        let response: SyncResponse = match decode_exact(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "cdrchain::network", "sync response from {peer} does not decode: {e}");
                return Ok(());
            }
        };
        let count = response.blocks.len();
        let mut imported = None;
        for (block, certificate) in response.blocks.into_inner() {
            let expected = next_height(&self.chain);
            if block.header.number < expected {
                continue;
            }
            if block.header.number != expected {
                break;
            }
            let chain = self.chain.clone();
            let me = self.me.clone();
            match tokio::task::block_in_place(|| chain.import(&block, &certificate, &me)) {
                Ok(ids) => {
                    self.after_commit(&block, &ids);
                    imported = Some(block.header.number);
                }
                Err(NodeError::Storage(e)) => return Err(NodeError::Storage(e)),
                Err(e) => {
                    tracing::warn!(target: "cdrchain::network", "refused block #{} from {peer}: {e}", block.header.number);
                    break;
                }
            }
        }
        if let Some(height) = imported {
            tracing::info!(target: "cdrchain::network", "synced up to block #{height} from {peer}");
            self.feed(Input::Committed { height }).await?;
            if count >= SYNC_BATCH_BLOCKS as usize {
                // There may be more.
                self.start_sync(Some(peer), Duration::ZERO);
            }
        }
        Ok(())
    }
}

/// Answers a peer's sync request from storage.
pub(super) fn serve_sync(chain: &Chain, peer: PeerId, request: &[u8]) -> Vec<u8> {
    let empty = || SyncResponse { blocks: BoundedVec::default() }.encode();
    let Ok(request) = decode_exact::<SyncRequest>(request) else {
        tracing::warn!(target: "cdrchain::network", "malformed sync request from {peer}");
        return empty();
    };
    let max = (request.max as usize).min(MAX_BLOCKS_PER_SYNC);
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    let mut height = request.from;
    while blocks.len() < max && height.0 > 0 {
        let (Ok(Some(block)), Ok(Some(certificate))) =
            (chain.storage.block(height), chain.storage.certificate(height))
        else {
            break;
        };
        bytes += block.encoded_size();
        if !blocks.is_empty() && bytes > SYNC_RESPONSE_BUDGET_BYTES {
            break;
        }
        blocks.push((block, certificate));
        height = Height(height.0 + 1);
    }
    tracing::debug!(target: "cdrchain::network", "serving {} blocks from #{} to {peer}", blocks.len(), request.from);
    match BoundedVec::new(blocks) {
        Ok(blocks) => SyncResponse { blocks }.encode(),
        Err(blocks) => {
            // At most MAX_BLOCKS_PER_SYNC were read: this always fits.
            debug_assert!(false, "{} blocks read for one sync response", blocks.len());
            empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::check_limits;

    #[test]
    fn the_sync_response_budget_fits_the_network_default_limit() {
        assert!(check_limits(&cdrchain_network::Limits::default()));
        let tight = cdrchain_network::Limits { max_sync_response: 32 * 1024 * 1024, ..Default::default() };
        assert!(!check_limits(&tight), "half the limit is left for certificates and framing");
    }
}
