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
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInner {
    pub height: u64,
    pub round: u32,
    pub step: String,
    pub is_syncing: bool,
    pub peers: Vec<PeerSummary>,
    #[serde(skip)]
    pub evidence: Vec<Evidence>,
}

/// A connected peer, for `system_peers`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSummary {
    pub peer_id: String,
    pub operator: Option<String>,
    pub address: String,
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

pub(super) fn load_evidence(chain: &Chain) -> Result<Vec<Evidence>, NodeError> {
    match chain.storage.meta_get(EVIDENCE_KEY)? {
        Some(bytes) => decode_exact::<Vec<Evidence>>(&bytes)
            .map_err(|e| NodeError::Config(format!("stored consensus evidence does not decode: {e}"))),
        None => Ok(Vec::new()),
    }
}

impl Driver {
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

    pub(super) fn refresh_status(&self) {
        let mut status = self.status.lock();
        status.height = self.machine.height().0;
        status.round = self.machine.round().0;
        status.step = format!("{:?}", self.machine.step()).to_lowercase();
        status.is_syncing = self.sync_in_flight;
        self.chain.metrics.consensus_round.set(i64::from(self.machine.round().0));
    }

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
