//! `chain_*`: headers, blocks, the finalized head and its subscription.

use jsonrpsee::core::async_trait;
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::server::{PendingSubscriptionSink, SubscriptionMessage};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::api::ChainApiServer;
use super::{header_json, internal, Handlers};

#[async_trait]
impl ChainApiServer for Handlers {
    fn header(&self, at: Option<Value>) -> RpcResult<Option<Value>> {
        let Some(height) = self.ctx.resolve(at)? else { return Ok(None) };
        Ok(self.ctx.chain.storage.header(height).map_err(internal)?.map(|h| header_json(&h)))
    }

    fn block(&self, at: Option<Value>) -> RpcResult<Option<Value>> {
        self.ctx.heavy.run("chain_getBlock", || {
            let Some(height) = self.ctx.resolve(at)? else { return Ok(None) };
            let storage = &self.ctx.chain.storage;
            let Some(block) = storage.block(height).map_err(internal)? else { return Ok(None) };
            let certificate = storage.certificate(height).map_err(internal)?;
            Ok(Some(json!({
                "header": header_json(&block.header),
                "transactions": block.transactions,
                "certificate": certificate,
            })))
        })
    }

    fn finalized_head(&self) -> RpcResult<String> {
        let chain = &self.ctx.chain;
        Ok(chain.storage.head().map_or(chain.ctx.genesis_hash, |h| h.hash).to_string())
    }

    fn activity(&self, window_s: Option<u64>, buckets: Option<u32>) -> RpcResult<Value> {
        self.ctx.heavy.run("chain_activity", || self.ctx.activity(window_s, buckets))
    }

    async fn subscribe_finalized_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut heads = self.ctx.chain.subscribe();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                head = heads.recv() => match head {
                    Ok(header) => {
                        let raw = serde_json::value::to_raw_value(&header_json(&header))?;
                        sink.send(SubscriptionMessage::from(raw)).await?;
                    }
                    // A slow subscriber skips heads it missed rather than stalling the node.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return Ok(()),
                }
            }
        }
    }
}
