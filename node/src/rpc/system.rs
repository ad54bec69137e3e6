//! `system_*`: the node's health, peers and properties.

use jsonrpsee::core::RpcResult;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

use cdrchain_runtime::ids::Sequence;
use cdrchain_runtime::state::{GapRecord, StateKey};

use super::access::{Grant, Need};

use super::api::{Health, Properties, SystemApiServer};
use super::Handlers;

impl SystemApiServer for Handlers {
    fn health(&self, ext: &Extensions) -> RpcResult<Health> {
        let operator = ext.get::<Grant>().is_some_and(|grant| grant.allows(Need::AllRecords));
        let best = self.ctx.chain.storage.head().map_or(0, |h| h.header.number.0);
        let status = self.ctx.status.snapshot();
        Ok(Health {
            peers: status.peers.len(),
            is_syncing: status.is_syncing,
            should_have_peers: self
                .ctx
                .chain
                .authority_set_at(cdrchain_runtime::ids::Height(best.saturating_add(1)))
                .is_ok_and(|set| set.len() > 1),
            best,
            finalized: best,
            ingest_stuck: if operator { self.ctx.ingest.stuck() } else { None },
        })
    }

    fn peers(&self) -> RpcResult<Value> {
        Ok(json!(self.ctx.status.snapshot().peers))
    }

    fn ingest_stats(&self) -> RpcResult<Value> {
        let ingest = &self.ctx.ingest;
        let operator = ingest.operator().clone();
        let latest_gap = match self.read::<Sequence>(&StateKey::LastGap(operator.clone()))? {
            Some(from) => self.read::<GapRecord>(&StateKey::Gap(operator.clone(), from))?.map(|gap| {
                json!({ "from": from.0, "to": gap.to.0, "reason": gap.reason.as_str(), "declared_at": gap.declared_at.0 })
            }),
            None => None,
        };
        let counts = ingest.stats();
        Ok(json!({
            "operator": operator,
            "queue_depth": ingest.queue_depth(),
            "commit_rate_per_s": ingest.commit_rate(),
            "admission_refusals": counts.admission_refusals,
            "sources": counts.sources,
            "latest_gap": latest_gap,
            "stuck": ingest.stuck(),
        }))
    }

    fn properties(&self) -> RpcResult<Properties> {
        let chain = &self.ctx.chain;
        Ok(Properties {
            chain: chain.spec.id.clone(),
            operator: self.ctx.ingest.operator().to_string(),
            genesis_hash: chain.storage.genesis_hash().to_string(),
            ingest: self.ctx.ingest.parties().is_ok(),
            checkpoint_interval: chain.ctx.checkpoint_interval,
            rsk_chain_id: chain.ctx.rsk_chain_id,
        })
    }
}
