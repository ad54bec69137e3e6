//! `checkpoint_*`: RSK checkpoints with the validator signatures gathered so far.

use cdrchain_runtime::checkpoint::{Checkpoint, StoredSignature};
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::Height;
use cdrchain_runtime::state::{StateKey, StateView};
use jsonrpsee::core::RpcResult;
use parity_scale_codec::Encode;
use serde_json::{json, Value};

use super::api::CheckpointApiServer;
use super::{internal, Handlers};
use crate::validator::latest_checkpoint;

impl CheckpointApiServer for Handlers {
    /// The newest recorded checkpoint (of the highest checkpoint height below the head).
    fn latest_checkpoint(&self) -> RpcResult<Value> {
        let chain = &self.ctx.chain;
        let height = latest_checkpoint(chain.storage.height().0, chain.ctx.checkpoint_interval);
        if height == 0 {
            return Ok(Value::Null);
        }
        self.checkpoint(height)
    }

    fn anchor(&self) -> RpcResult<Value> {
        let chain = &self.ctx.chain;
        let interval = chain.ctx.checkpoint_interval;
        let head = chain.storage.height().0;
        let Some(view) = &self.ctx.anchor else {
            return Ok(json!({"watching": false, "head": head, "checkpoint_interval": interval}));
        };
        let snapshot = view.snapshot();
        let mut answer = json!({
            "watching": true,
            "contract": view.contract.to_hex(),
            "rsk_chain_id": chain.ctx.rsk_chain_id,
            "poll_interval_s": view.poll.as_secs(),
            "head": head,
            "checkpoint_interval": interval,
            "anchored_height": null,
            "error": null,
        });
        if let Some((reading, at_ms)) = snapshot.last {
            let lag = crate::anchor::lag(head, interval, reading.anchored_height);
            answer["anchored_height"] = json!(reading.anchored_height);
            answer["rsk_block"] = json!(reading.rsk_block);
            answer["checked_at_ms"] = json!(at_ms);
            answer["latest_checkpoint"] = json!(lag.latest_checkpoint);
            answer["lag_blocks"] = json!(lag.blocks);
            answer["lag_checkpoints"] = json!(lag.checkpoints);
        }
        if let Some((error, at_ms)) = snapshot.error {
            answer["error"] = json!({"message": error, "at_ms": at_ms});
        }
        Ok(answer)
    }

    /// The checkpoint of block `height` with the signatures gathered so far, or null.
    fn checkpoint(&self, height: u64) -> RpcResult<Value> {
        let height = Height(height);
        let chain = &self.ctx.chain;
        let read = |key: StateKey| chain.storage.get(&key.encode()).map_err(internal);
        let Some(bytes) = read(StateKey::Checkpoint(height))? else { return Ok(Value::Null) };
        let checkpoint: Checkpoint = decode_exact(&bytes).map_err(internal)?;
        let mut signatures = Vec::new();
        // The set in force at the checkpoint's height signs it.
        let set = chain.authority_set_at(height).map_err(internal)?;
        for member in set.members.iter() {
            let operator = &member.id;
            let Some(bytes) = read(StateKey::CheckpointSignature(height, operator.clone()))? else {
                continue;
            };
            let stored: StoredSignature = decode_exact(&bytes).map_err(internal)?;
            signatures.push(json!({
                "operator": operator.to_string(),
                "evm_address": member.evm_address.to_hex(),
                "contract": stored.contract.to_hex(),
                "signature": stored.signature.to_hex(),
            }));
        }
        let authorities = set.len();
        Ok(json!({
            "genesis_hash": checkpoint.genesis_hash.to_string(),
            "height": checkpoint.height.0,
            "block_hash": checkpoint.block_hash.to_string(),
            "state_root": checkpoint.state_root.to_string(),
            "cdr_log_root": checkpoint.cdr_log_root.to_string(),
            "cdr_log_size": checkpoint.cdr_log_size,
            "rsk_chain_id": chain.ctx.rsk_chain_id,
            "signatures": signatures,
            "validators": authorities,
            // More than 2/3 of the validators, as the contract requires.
            "quorum": authorities * 2 / 3 + 1,
        }))
    }
}
