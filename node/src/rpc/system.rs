//! `system_*`: the node's health, peers and properties.

use jsonrpsee::core::RpcResult;
use jsonrpsee::Extensions;
use serde_json::{json, Value};

use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::state::{GapRecord, StateKey, StateView};

use super::access::{Grant, Need};

use super::api::{Health, Properties, SystemApiServer};
use super::{internal, Handlers};

/// Most declared gaps the operator view lists (the newest). A gap is declared by hand for
/// records that can never be committed: a few a year.
pub const MAX_GAPS_SHOWN: usize = 1_000;
/// Most declared gaps read to choose the newest from (their keys do not sort by sequence).
pub const MAX_GAPS_READ: usize = 10 * MAX_GAPS_SHOWN;

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
        let (gaps, gaps_cut_off) = self.declared_gaps(&operator)?;
        let counts = ingest.stats();
        Ok(json!({
            "operator": operator,
            "queue_depth": ingest.queue_depth(),
            "commit_rate_per_s": ingest.commit_rate(),
            "admission_refusals": counts.admission_refusals,
            "sources": counts.sources,
            "gaps": gaps,
            "gaps_cut_off": gaps_cut_off,
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

impl Handlers {
    /// `operator`'s declared gaps at the head, newest first, at most [`MAX_GAPS_SHOWN`] of the
    /// first [`MAX_GAPS_READ`], and whether there were more. They are read by their keys'
    /// prefix (the gap's tag and the operator), not by a scan of the state.
    fn declared_gaps(&self, operator: &OperatorId) -> RpcResult<(Vec<Value>, bool)> {
        let prefix = StateKey::gap_prefix(operator);
        let pairs = self.ctx.chain.storage.pairs_with_prefix(&prefix, MAX_GAPS_READ).map_err(internal)?;
        let cut_off = pairs.len() > MAX_GAPS_SHOWN;
        let mut gaps: Vec<(u64, GapRecord)> = pairs
            .iter()
            .filter_map(|(key, value)| {
                match (decode_exact::<StateKey>(key), decode_exact::<GapRecord>(value)) {
                    (Ok(StateKey::Gap(of, from)), Ok(gap)) if of == *operator => Some((from.0, gap)),
                    _ => None,
                }
            })
            .collect();
        gaps.sort_by_key(|(from, _)| std::cmp::Reverse(*from));
        let gaps = gaps
            .into_iter()
            .take(MAX_GAPS_SHOWN)
            .map(|(from, gap)| {
                json!({
                    "from": from,
                    "to": gap.to.0,
                    "cdrs": gap.to.0.saturating_sub(from) + 1,
                    "reason": gap.reason.as_str(),
                    "declared_at": gap.declared_at.0,
                })
            })
            .collect();
        Ok((gaps, cut_off))
    }
}
