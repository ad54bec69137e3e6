//! Block sync: the client (asking a peer for the committed blocks after our head, importing
//! them with their certificates) and the server (answering peers' requests from storage).

use std::time::{Duration, Instant};

use cdrchain_consensus::Input;
use cdrchain_network::PeerId;
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::ids::Height;
use parity_scale_codec::Encode;

use super::{next_height, Driver};
use crate::chain::Chain;
use crate::wire::{SyncRequest, SyncResponse, MAX_BLOCKS_PER_SYNC};
use crate::NodeError;

/// Blocks asked for in one sync request.
const SYNC_BATCH: u32 = 64;

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
        let request = SyncRequest { from: next_height(&self.chain), max: SYNC_BATCH }.encode();
        let tx = self.sync_tx.clone();
        tokio::spawn(async move {
            let response = net.request(peer, request).await.map_err(|e| e.to_string());
            let _ = tx.send((peer, response)).await;
        });
    }

    pub(super) async fn on_sync_response(
        &mut self,
        peer: PeerId,
        response: Result<Vec<u8>, String>,
    ) -> Result<(), NodeError> {
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
            if count as u32 >= SYNC_BATCH {
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
    let budget = 32 * 1024 * 1024;
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
        if !blocks.is_empty() && bytes > budget {
            break;
        }
        blocks.push((block, certificate));
        height = Height(height.0 + 1);
    }
    tracing::debug!(target: "cdrchain::network", "serving {} blocks from #{} to {peer}", blocks.len(), request.from);
    match BoundedVec::new(blocks) {
        Ok(blocks) => SyncResponse { blocks }.encode(),
        Err(_) => empty(),
    }
}
