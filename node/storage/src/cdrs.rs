//! CDR queries: by chain-wide id (`cdrs`), all legs of a call (`call_ids`), and CDRs between two
//! partners in a time window, paged by cursor (`partners`).

use cdrchain_runtime::ids::{CallId, CdrId, OperatorId, Sequence};
use parity_scale_codec::Encode;
use rocksdb::ReadOptions;

use crate::view::Reader;
use crate::{layout, Storage, StorageError, StoredCdr};

/// The most CDRs one [`Storage::query_partners`] page returns.
pub const MAX_PAGE_CDRS: usize = 10_000;
/// [`MAX_PAGE_CDRS`] under the name the node's RPC uses.
pub const MAX_PAGE: usize = MAX_PAGE_CDRS;
// `query_partners` clamps a page to `1..=MAX_PAGE_CDRS`, which panics on an empty range.
const _: () = assert!(MAX_PAGE_CDRS >= 1);

impl Storage {
    /// The CDR `recorder:sequence`, with its block height and log leaf index.
    pub fn cdr(&self, recorder: &OperatorId, sequence: Sequence) -> Result<Option<StoredCdr>, StorageError> {
        let key = layout::cdr_key(recorder, sequence);
        let stored = self.get_decoded::<StoredCdr>(&self.db, layout::CDRS, &key)?;
        if let Some(stored) = &stored {
            if &stored.cdr.recorder != recorder || stored.cdr.sequence != sequence {
                return Err(StorageError::corrupt(
                    layout::CDRS,
                    &key,
                    format!("the CDR stored as {recorder}:{sequence} is {}", stored.cdr.id()),
                ));
            }
        }
        Ok(stored)
    }

    /// Every CDR with this call id (several legs or recorders are possible), as ids, sorted (by
    /// recorder name, then sequence).
    pub fn cdrs_by_call_id(&self, call_id: &CallId) -> Result<Vec<CdrId>, StorageError> {
        let prefix = call_id.encode();
        let cf = self.column(layout::CALL_IDS)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(prefix.clone());
        let mut iter = self.db.raw_iter(cf, options);
        iter.seek(&prefix);
        let mut ids = Vec::new();
        while let Some(key) = iter.key() {
            let Some(rest) = key.strip_prefix(prefix.as_slice()) else { break };
            let (recorder, sequence) = layout::split_recorder_sequence(rest).ok_or_else(|| {
                StorageError::corrupt(layout::CALL_IDS, key, "key does not end in recorder ‖ sequence")
            })?;
            ids.push(CdrId { recorder, sequence });
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::CALL_IDS, "scan"))?;
        // Key order puts shorter recorder ids first (length prefix); callers expect names sorted.
        ids.sort();
        Ok(ids)
    }

    /// CDRs between partners `a` and `b` (either direction: caller/callee operator `a`/`b` or
    /// `b`/`a`) whose `start_ms` is in `[from_ms, to_ms)`, in start-time order (ties in index key
    /// order: SCALE-encoded recorder, then sequence), at most `limit` (clamped to
    /// `1..=MAX_PAGE_CDRS`), after `cursor` (the opaque string the previous page returned). Returns the
    /// page and the cursor of the next page, `None` when nothing follows (a page that ends exactly
    /// at the last match has none). A cursor that does not parse, or lies outside the window,
    /// gives [`StorageError::BadCursor`]. Cursors are derived from index keys, so they stay valid
    /// across restarts and never repeat an entry; a CDR committed meanwhile whose start time sorts
    /// before the cursor is not seen by that paging (page within a snapshot of a past window).
    pub fn query_partners(
        &self,
        a: &OperatorId,
        b: &OperatorId,
        from_ms: u64,
        to_ms: u64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StoredCdr>, Option<String>), StorageError> {
        let prefix = layout::partner_prefix(a, b);
        let mut lower = prefix.clone();
        lower.extend_from_slice(&from_ms.to_be_bytes());
        if let Some(cursor) = cursor {
            let (suffix, start_ms) = decode_cursor(cursor, "query_partners")?;
            if start_ms < from_ms || start_ms >= to_ms {
                return Err(StorageError::BadCursor {
                    cursor: cdrchain_runtime::codec::excerpt(cursor),
                    reason: format!(
                        "it points at start time {start_ms} ms, outside the window [{from_ms}, {to_ms})"
                    ),
                });
            }
            // The smallest key after the cursor's: keys are prefix-free, so appending a zero byte
            // gives a key that sorts after it and before every following one.
            lower.truncate(prefix.len());
            lower.extend_from_slice(&suffix);
            lower.push(0);
        }
        if from_ms >= to_ms {
            return Ok((Vec::new(), None));
        }
        let mut upper = prefix.clone();
        upper.extend_from_slice(&to_ms.to_be_bytes());
        let limit = limit.clamp(1, MAX_PAGE_CDRS);

        let cf = self.column(layout::PARTNERS)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(lower.clone());
        options.set_iterate_upper_bound(upper);
        let mut iter = self.db.raw_iter(cf, options);
        iter.seek(&lower);
        let mut page = Vec::new();
        let mut last_suffix = Vec::new();
        while let Some(key) = iter.key() {
            if page.len() == limit {
                break;
            }
            let (suffix, stored) = self.indexed_cdr(layout::PARTNERS, &prefix, key)?;
            page.push(stored);
            last_suffix.clear();
            last_suffix.extend_from_slice(suffix);
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::PARTNERS, "scan"))?;
        // The loop stopped with the iterator on the first entry of the next page, if any.
        let next = (page.len() == limit && iter.valid()).then(|| hex::encode(&last_suffix));
        Ok((page, next))
    }

    /// The CDR an entry of a time-ordered index (`partners`, `parties`: prefix ‖ `start_ms BE ‖
    /// SCALE(recorder) ‖ sequence BE`) points at, with the key's suffix after `prefix` (what
    /// cursors are made of). A key that does not have that shape, or names a CDR that is not
    /// stored, is [`StorageError::Corrupt`].
    pub(crate) fn indexed_cdr<'k>(
        &self,
        column: &'static str,
        prefix: &[u8],
        key: &'k [u8],
    ) -> Result<(&'k [u8], StoredCdr), StorageError> {
        let corrupt = |reason: &str| StorageError::corrupt(column, key, reason);
        let suffix = key.strip_prefix(prefix).ok_or_else(|| corrupt("outside its prefix"))?;
        let (_, recorder, sequence) = layout::split_partner_suffix(suffix)
            .ok_or_else(|| corrupt("key does not end in start ‖ recorder ‖ sequence"))?;
        let stored = self
            .cdr(&recorder, sequence)?
            .ok_or_else(|| corrupt(&format!("indexes {recorder}:{sequence}, which is not stored")))?;
        Ok((suffix, stored))
    }
}

/// A cursor `method` returned: the index key's suffix it holds, and the start time in it.
pub(crate) fn decode_cursor(cursor: &str, method: &str) -> Result<(Vec<u8>, u64), StorageError> {
    let bad = || StorageError::BadCursor {
        cursor: cdrchain_runtime::codec::excerpt(cursor),
        reason: format!("not a cursor returned by {method}"),
    };
    let suffix = hex::decode(cursor).map_err(|_| bad())?;
    let (start_ms, _, _) = layout::split_partner_suffix(&suffix).ok_or_else(bad)?;
    Ok((suffix, start_ms))
}
