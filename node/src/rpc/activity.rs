//! `chain_activity`: what the portal's Chain page charts (issue #29): blocks and CDRs committed
//! per bucket of the window before the head (block time, not the node's clock), and each
//! validator's liveness: the last height it signed a commit certificate for, and how many of the
//! window's blocks it signed. Read from the stored headers and certificates, newest first, at
//! most [`MAX_ACTIVITY_BLOCKS`] of them.

use std::collections::BTreeMap;

use cdrchain_runtime::block::{CommitCertificate, Header};
use cdrchain_runtime::ids::{Height, OperatorId};
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{json, Value};

use super::{internal, invalid, RpcContext};

/// The longest window the page may ask for, in seconds: a day.
pub const MAX_ACTIVITY_WINDOW_S: u64 = 24 * 3_600;
/// Most buckets of one answer.
pub const MAX_ACTIVITY_BUCKETS: u32 = 240;
/// Most blocks read for one answer (the window is cut short beyond it, and says so).
pub const MAX_ACTIVITY_BLOCKS: u64 = 20_000;

/// One block of the window: its height, time, CDRs, and who signed its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub height: u64,
    pub timestamp_ms: u64,
    pub cdrs: u64,
    pub signers: Vec<OperatorId>,
}

/// Blocks and CDRs of each bucket, oldest first.
pub type Buckets = Vec<(u64, u64)>;
/// Per signer: the last height it signed, and how many of the window's blocks.
pub type Signers = BTreeMap<OperatorId, (u64, u64)>;

/// Buckets of `window_ms` before `head_ms` (oldest first) with the blocks and CDRs committed in
/// each, and per signer: the last height signed and the number of blocks signed.
pub fn tally(blocks: &[Committed], head_ms: u64, window_ms: u64, buckets: u32) -> (Buckets, Signers) {
    let buckets = u64::from(buckets.max(1));
    let bucket_ms = window_ms.div_ceil(buckets).max(1);
    let start = head_ms.saturating_sub(bucket_ms * buckets);
    let mut counts = vec![(0u64, 0u64); usize::try_from(buckets).unwrap_or(1)];
    let mut signers = Signers::new();
    for block in blocks {
        if block.timestamp_ms < start || block.timestamp_ms > head_ms {
            continue;
        }
        // The head's own millisecond belongs to the last bucket.
        let index = ((block.timestamp_ms - start) / bucket_ms).min(buckets - 1);
        if let Some(slot) = counts.get_mut(usize::try_from(index).unwrap_or(usize::MAX)) {
            slot.0 += 1;
            slot.1 += block.cdrs;
        }
        for signer in &block.signers {
            let entry = signers.entry(signer.clone()).or_default();
            entry.0 = entry.0.max(block.height);
            entry.1 += 1;
        }
    }
    (counts, signers)
}

impl RpcContext {
    /// The window's blocks, newest first, read back from the head.
    fn recent_blocks(
        &self,
        head: &Header,
        window_ms: u64,
    ) -> Result<(Vec<Committed>, bool), ErrorObjectOwned> {
        let storage = &self.chain.storage;
        let since = head.timestamp_ms.saturating_sub(window_ms);
        let mut blocks = Vec::new();
        let mut header = head.clone();
        loop {
            let parent = match header.number.0.checked_sub(1).filter(|h| *h > 0) {
                Some(h) => storage.header(Height(h)).map_err(internal)?,
                None => None,
            };
            let certificate: Option<CommitCertificate> =
                storage.certificate(header.number).map_err(internal)?;
            blocks.push(Committed {
                height: header.number.0,
                timestamp_ms: header.timestamp_ms,
                cdrs: header.cdr_log_size
                    - parent.as_ref().map_or(0, |p| p.cdr_log_size.min(header.cdr_log_size)),
                signers: certificate
                    .map(|c| c.signatures.iter().map(|s| s.authority.clone()).collect())
                    .unwrap_or_default(),
            });
            let cut = blocks.len() as u64 >= MAX_ACTIVITY_BLOCKS;
            match parent {
                Some(parent) if parent.timestamp_ms >= since && !cut => header = parent,
                _ => return Ok((blocks, cut)),
            }
        }
    }

    /// The answer of `chain_activity`.
    pub(super) fn activity(
        &self,
        window_s: Option<u64>,
        buckets: Option<u32>,
    ) -> Result<Value, ErrorObjectOwned> {
        let window_s = window_s.unwrap_or(3_600);
        let buckets = buckets.unwrap_or(60);
        if window_s == 0 || window_s > MAX_ACTIVITY_WINDOW_S || buckets == 0 || buckets > MAX_ACTIVITY_BUCKETS
        {
            return Err(invalid(format!(
                "a window of 1 to {MAX_ACTIVITY_WINDOW_S} s in 1 to {MAX_ACTIVITY_BUCKETS} buckets"
            )));
        }
        let Some(head) = self.chain.storage.head().map(|h| h.header) else {
            return Ok(json!({ "head": null, "buckets": [], "validators": [] }));
        };
        let window_ms = window_s * 1_000;
        let (blocks, cut) = self.recent_blocks(&head, window_ms)?;
        let (counts, signers) = tally(&blocks, head.timestamp_ms, window_ms, buckets);
        let bucket_ms = window_ms.div_ceil(u64::from(buckets));
        let start = head.timestamp_ms.saturating_sub(bucket_ms * u64::from(buckets));
        let set = self.chain.authority_set_at(head.number).map_err(internal)?;
        let validators: Vec<Value> = set
            .members
            .iter()
            .map(|member| {
                let (last, signed) = signers.get(&member.id).copied().unwrap_or_default();
                json!({ "operator": member.id, "last_signed": (last > 0).then_some(last), "signed": signed })
            })
            .collect();
        Ok(json!({
            "head": head.number.0,
            "head_time_ms": head.timestamp_ms,
            "window_s": window_s,
            "bucket_ms": bucket_ms,
            "blocks_read": blocks.len(),
            "cut_short": cut,
            "buckets": counts.iter().enumerate().map(|(i, (blocks, cdrs))| json!({
                "from_ms": start + bucket_ms * i as u64, "blocks": blocks, "cdrs": cdrs,
            })).collect::<Vec<_>>(),
            "validators": validators,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str) -> OperatorId {
        OperatorId::new(name).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn blocks_and_cdrs_fall_in_their_buckets_and_signers_are_tallied() {
        let block = |height: u64, timestamp_ms: u64, cdrs: u64, signers: &[&str]| Committed {
            height,
            timestamp_ms,
            cdrs,
            signers: signers.iter().map(|s| op(s)).collect(),
        };
        let blocks = [
            block(10, 61_000, 500, &["alice", "bob", "charlie"]),
            block(9, 60_000, 100, &["alice", "bob", "dave"]),
            block(8, 2_000, 7, &["alice", "charlie", "dave"]),
            // Before the window (which starts at 1,000): neither counted nor tallied.
            block(7, 500, 1_000, &["bob"]),
        ];
        let (counts, signers) = tally(&blocks, 61_000, 60_000, 6);
        assert_eq!(counts, [(1, 7), (0, 0), (0, 0), (0, 0), (0, 0), (2, 600)]);
        assert_eq!(signers[&op("alice")], (10, 3));
        assert_eq!(signers[&op("bob")], (10, 2));
        assert_eq!(signers[&op("dave")], (9, 2));
        assert_eq!(signers[&op("charlie")], (10, 2));
    }
}
