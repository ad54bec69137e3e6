//! `system_*`: the node's health, peers and properties.

use jsonrpsee::core::RpcResult;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

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
