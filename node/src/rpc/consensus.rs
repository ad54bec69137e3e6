//! `consensus_*`: the validator's position and the equivocations it has seen.

use jsonrpsee::core::RpcResult;
use serde_json::{json, Value};

use super::api::{ConsensusApiServer, ConsensusStatus};
use super::Handlers;

impl ConsensusApiServer for Handlers {
    fn consensus_status(&self) -> RpcResult<ConsensusStatus> {
        let status = self.ctx.status.snapshot();
        Ok(ConsensusStatus {
            height: status.height,
            round: status.round,
            step: status.step,
            is_syncing: status.is_syncing,
            evidence: status.evidence.len(),
        })
    }

    fn evidence(&self) -> RpcResult<Vec<Value>> {
        Ok(self
            .ctx
            .status
            .evidence()
            .iter()
            .map(|e| {
                json!({
                    "offender": e.offender().to_string(),
                    "height": e.height().0,
                    "round": e.round().0,
                    "step": e.step(),
                    "evidence": e,
                })
            })
            .collect())
    }
}
