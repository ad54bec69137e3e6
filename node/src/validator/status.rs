//! What the RPC and metrics read about consensus and peers, and the equivocation evidence kept
//! with it.

use std::sync::Mutex;

use cdrchain_consensus::Evidence;
use cdrchain_runtime::codec::decode_exact;
use parity_scale_codec::Encode;
use serde::Serialize;

use super::{Driver, EVIDENCE_KEY, MAX_EVIDENCE};
use crate::chain::Chain;
use crate::NodeError;

/// What the RPC and metrics read about consensus and peers.
#[derive(Debug, Default)]
pub struct ConsensusStatus {
    /// Written by the consensus task, read by the RPC and metrics.
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInner {
    /// The height the machine is deciding.
    pub height: u64,
    /// Its round at that height.
    pub round: u32,
    /// Its step in that round, lower case (`propose`, `prevote`, …).
    pub step: String,
    /// A sync request is out.
    pub is_syncing: bool,
    /// The peers connected now.
    pub peers: Vec<PeerSummary>,
    /// Equivocation evidence seen, oldest first, at most `MAX_EVIDENCE` (also in storage).
    #[serde(skip)]
    pub evidence: Vec<Evidence>,
}

/// A connected peer, for `system_peers`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSummary {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The operator the chain spec registers it for, if any.
    pub operator: Option<String>,
    /// The address of the connection.
    pub address: String,
    /// `inbound` (the peer dialled us) or `outbound` (we dialled it).
    pub direction: String,
}

impl ConsensusStatus {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> StatusInner {
        self.lock().clone()
    }

    pub fn peer_count(&self) -> usize {
        self.lock().peers.len()
    }

    pub fn evidence(&self) -> Vec<Evidence> {
        self.lock().evidence.clone()
    }
}

/// The evidence kept in storage by earlier runs.
pub(super) fn load_evidence(chain: &Chain) -> Result<Vec<Evidence>, NodeError> {
    match chain.storage.meta_get(EVIDENCE_KEY)? {
        Some(bytes) => decode_exact::<Vec<Evidence>>(&bytes)
            .map_err(|source| NodeError::Corrupt { what: "stored consensus evidence", source }),
        None => Ok(Vec::new()),
    }
}

impl Driver {
    /// Publishes the connected peers (`system_peers`, the peer gauge).
    pub(super) async fn refresh_peers(&mut self) {
        let Some(net) = &self.net else { return };
        let peers = net.peers().await;
        let summaries = peers
            .into_iter()
            .map(|p| PeerSummary {
                peer_id: p.peer_id.to_string(),
                operator: self.operators.get(&p.peer_id).map(ToString::to_string),
                address: p.address.to_string(),
                direction: format!("{:?}", p.direction).to_lowercase(),
            })
            .collect::<Vec<_>>();
        self.chain.metrics.peers.set(i64::try_from(summaries.len()).unwrap_or(i64::MAX));
        self.status.lock().peers = summaries;
    }

    /// Publishes the machine's height, round and step, and whether a sync is out.
    pub(super) fn refresh_status(&self) {
        let mut status = self.status.lock();
        status.height = self.machine.height().0;
        status.round = self.machine.round().0;
        status.step = format!("{:?}", self.machine.step()).to_lowercase();
        status.is_syncing = self.sync_in_flight;
        self.chain.metrics.consensus_round.set(i64::from(self.machine.round().0));
    }

    /// Keeps new equivocation evidence (at most [`MAX_EVIDENCE`], oldest dropped first) in the
    /// status and in storage, and counts it.
    pub(super) fn record_evidence(&mut self, evidence: Evidence) -> Result<(), NodeError> {
        tracing::warn!(
            target: "cdrchain::consensus",
            "EQUIVOCATION: `{}` signed two different {}s at height {} round {}; evidence kept",
            evidence.offender(),
            evidence.step(),
            evidence.height(),
            evidence.round().0
        );
        self.chain.metrics.equivocations.inc();
        let all = {
            let mut status = self.status.lock();
            if !status.evidence.contains(&evidence) {
                status.evidence.push(evidence);
                let excess = status.evidence.len().saturating_sub(MAX_EVIDENCE);
                status.evidence.drain(..excess);
            }
            status.evidence.clone()
        };
        self.chain.storage.meta_put(EVIDENCE_KEY, &all.encode())?;
        Ok(())
    }
}
