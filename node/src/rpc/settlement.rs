//! `settlement_summary`: the totals two interconnect partners settle on, at a stated block.

use cdrchain_runtime::block::Header;
use cdrchain_runtime::cdr::Cdr;
use cdrchain_runtime::ids::{Height, OperatorId};
use cdrchain_runtime::settlement::{summarize, Rounding};
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{json, Value};

use super::api::SettlementApiServer;
use super::{internal, invalid, pair_window, Handlers, RpcContext};

/// The most records `settlement_summary` reads for one answer (about 1 GiB of records in
/// memory): a wider window is refused with advice to settle day by day.
pub const MAX_SETTLEMENT_RECORDS: usize = 2_000_000;

impl SettlementApiServer for Handlers {
    /// The calls between `a` and `b` that started in `[from, to)`, committed at or below block
    /// `at` (default: the head), each call once ([`cdrchain_runtime::settlement`]), with the
    /// block's height, hash and roots.
    fn summary(
        &self,
        ext: &jsonrpsee::Extensions,
        a: String,
        b: String,
        from: Value,
        to: Value,
        rounding: Option<String>,
        at: Option<Value>,
    ) -> RpcResult<Value> {
        self.ctx.heavy.run("settlement_summary", || {
            let (a, b, from, to) = pair_window(a, b, &from, &to)?;
            super::cdr::partner_of_pair(super::RpcContext::scope(ext).as_ref(), &a, &b)?;
            if a == b {
                return Err(invalid(format!(
                    "operators a and b are both `{a}`: settlement is between two partners"
                )));
            }
            let rounding: Rounding =
                rounding.as_deref().unwrap_or("per-second").parse().map_err(|e| invalid(format!("{e}")))?;
            let storage = &self.ctx.chain.storage;
            let height = self.ctx.resolve(at)?.ok_or_else(|| invalid("the chain has no block yet"))?;
            let header = storage
                .header(height)
                .map_err(internal)?
                .ok_or_else(|| invalid(format!("no block #{} yet", height.0)))?;
            let cdrs = self.ctx.window_records(&a, &b, (from, to), height)?;
            let summary = summarize(&a, &b, &cdrs, rounding);
            let directions: Vec<Value> = summary
                .directions
                .iter()
                .map(|d| {
                    let mut value = serde_json::to_value(d).unwrap_or(Value::Null);
                    if let Value::Object(map) = &mut value {
                        map.insert("billed_minutes".into(), Value::String(d.totals.billed_minutes()));
                    }
                    value
                })
                .collect();
            Ok(json!({
                "a": a.to_string(),
                "b": b.to_string(),
                "from": from,
                "to": to,
                "rounding": summary.rounding,
                "at": at_json(&header),
                "records": summary.records,
                "calls": summary.calls,
                "directions": directions,
            }))
        })
    }
}

/// The block a summary was computed at: height, hash and roots.
fn at_json(header: &Header) -> Value {
    json!({
        "height": header.number.0,
        "block_hash": header.hash().to_string(),
        "state_root": header.state_root.to_string(),
        "cdr_log_root": header.cdr_log_root.to_string(),
        "cdr_log_size": header.cdr_log_size,
    })
}

impl RpcContext {
    /// The CDRs between `a` and `b` that started in `window` and were committed at or below
    /// `height`; refused beyond [`MAX_SETTLEMENT_RECORDS`].
    pub(super) fn window_records(
        &self,
        a: &OperatorId,
        b: &OperatorId,
        (from, to): (u64, u64),
        height: Height,
    ) -> Result<Vec<Cdr>, ErrorObjectOwned> {
        let storage = &self.chain.storage;
        let mut cdrs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = storage
                .query_partners(a, b, from, to, cursor.as_deref(), cdrchain_storage::MAX_PAGE)
                .map_err(internal)?;
            cdrs.extend(page.into_iter().filter(|s| s.height <= height).map(|s| s.cdr));
            if cdrs.len() > MAX_SETTLEMENT_RECORDS {
                return Err(invalid(format!(
                    "more than {MAX_SETTLEMENT_RECORDS} records between {a} and {b} in the window: settle a shorter \
                     window (a day at a time) and add the totals up"
                )));
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(cdrs),
            }
        }
    }
}
