//! CDRs by party (`parties`): every CDR a telephone number or SIP address took part in (as
//! caller or callee), newest first, paged by cursor. And the index's building, once, for a
//! database written before it existed (schema 7).
//!
//! The index holds only a prefix of each party digest ([`layout::PARTY_KEY_PREFIX_BYTES`]); a
//! lookup reads each CDR it finds and keeps those whose caller or callee is the whole digest.

use cdrchain_runtime::party::PartyDigest;
use parity_scale_codec::Encode;
use rocksdb::{ReadOptions, WriteBatch};

use crate::blocks::push_party_keys;
use crate::view::Reader;
use crate::{decode, layout, options, Storage, StorageError, StoredCdr, SCHEMA_VERSION};

/// The most CDRs one [`Storage::cdrs_by_party`] page returns.
pub const MAX_PARTY_PAGE_CDRS: usize = 1_000;
/// The most index entries one page reads. A page of a partner's token keeps only the CDRs its
/// operator may see, so it may read more entries than it returns; this bounds the work of one
/// call (the cursor then points where it stopped).
pub const MAX_PARTY_SCAN_ENTRIES: usize = 100_000;
const _: () = assert!(MAX_PARTY_PAGE_CDRS >= 1 && MAX_PARTY_SCAN_ENTRIES >= MAX_PARTY_PAGE_CDRS);

/// The schema version whose databases have no `parties` index yet: [`Storage::open`] builds it
/// from their CDRs and moves them to [`SCHEMA_VERSION`].
pub(crate) const SCHEMA_BEFORE_PARTIES: u32 = 7;
const _: () = assert!(SCHEMA_BEFORE_PARTIES + 1 == SCHEMA_VERSION);

/// How many index keys the upgrade writes per batch (~30 bytes each).
const UPGRADE_BATCH_KEYS: usize = 200_000;

impl Storage {
    /// The CDRs `party` took part in, newest start first (ties in reverse key order), at most
    /// `limit` (clamped to `1..=MAX_PARTY_PAGE_CDRS`) of those `keep` accepts, before `cursor`
    /// (what the previous page returned). Returns the page and the next page's cursor, `None`
    /// when the index holds nothing further. A cursor that does not parse gives
    /// [`StorageError::BadCursor`].
    pub fn cdrs_by_party(
        &self,
        party: &PartyDigest,
        cursor: Option<&str>,
        limit: usize,
        keep: impl Fn(&StoredCdr) -> bool,
    ) -> Result<(Vec<StoredCdr>, Option<String>), StorageError> {
        let prefix = layout::party_prefix(party);
        let mut upper = prefix.to_vec();
        match cursor {
            Some(cursor) => {
                let bad = || StorageError::BadCursor {
                    cursor: cdrchain_runtime::codec::excerpt(cursor),
                    reason: "not a cursor returned by cdr_byParty".to_string(),
                };
                let suffix = hex::decode(cursor).map_err(|_| bad())?;
                layout::split_partner_suffix(&suffix).ok_or_else(bad)?;
                // Exclusive: the page continues with the keys before the cursor's.
                upper.extend_from_slice(&suffix);
            }
            // Past every key of the prefix: a start of u64::MAX (eight 0xFF bytes) is followed by
            // the recorder's compact length prefix, which is never 0xFF.
            None => upper.extend_from_slice(&[u8::MAX; 9]),
        }
        let limit = limit.clamp(1, MAX_PARTY_PAGE_CDRS);
        let cf = self.column(layout::PARTIES)?;
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(prefix.to_vec());
        options.set_iterate_upper_bound(upper);
        let mut iter = self.db.raw_iter(cf, options);
        iter.seek_to_last();
        let mut page = Vec::new();
        let mut last_suffix = Vec::new();
        let mut scanned = 0;
        while let Some(key) = iter.key() {
            if page.len() == limit || scanned == MAX_PARTY_SCAN_ENTRIES {
                break;
            }
            scanned += 1;
            let corrupt = |reason: &str| StorageError::corrupt(layout::PARTIES, key, reason);
            let suffix = key.strip_prefix(prefix.as_slice()).ok_or_else(|| corrupt("outside its party"))?;
            let (_, recorder, sequence) = layout::split_partner_suffix(suffix)
                .ok_or_else(|| corrupt("key does not end in start ‖ recorder ‖ sequence"))?;
            let stored = self
                .cdr(&recorder, sequence)?
                .ok_or_else(|| corrupt(&format!("indexes {recorder}:{sequence}, which is not stored")))?;
            let body = &stored.cdr.body;
            if (&body.caller == party || &body.callee == party) && keep(&stored) {
                page.push(stored);
            }
            last_suffix.clear();
            last_suffix.extend_from_slice(suffix);
            iter.prev();
        }
        iter.status().map_err(self.db_error(layout::PARTIES, "scan"))?;
        let next = iter.valid().then(|| hex::encode(&last_suffix));
        Ok((page, next))
    }

    /// Builds the `parties` index from every stored CDR and sets the schema version to this
    /// build's, for a database of [`SCHEMA_BEFORE_PARTIES`]. Idempotent: interrupted, it starts
    /// over at the next open (the keys it wrote are written again, unchanged). Returns how many
    /// CDRs it indexed.
    pub(crate) fn index_parties(&self) -> Result<u64, StorageError> {
        let cdrs = self.column(layout::CDRS)?;
        let parties = self.column(layout::PARTIES)?;
        let write = |keys: &mut Vec<Vec<u8>>| -> Result<(), StorageError> {
            keys.sort_unstable();
            let mut batch = WriteBatch::default();
            for key in keys.drain(..) {
                batch.put_cf(parties, key, b"");
            }
            self.db.write(batch).map_err(self.db_error(layout::PARTIES, "write"))
        };
        let mut iter = self.db.raw_iter(cdrs, ReadOptions::default());
        iter.seek_to_first();
        let mut keys = Vec::with_capacity(UPGRADE_BATCH_KEYS + 2);
        let mut count = 0u64;
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let stored: StoredCdr = decode(layout::CDRS, key, value)?;
            push_party_keys(&mut keys, &stored.cdr.body, &stored.cdr.recorder, stored.cdr.sequence);
            count += 1;
            if keys.len() >= UPGRADE_BATCH_KEYS {
                write(&mut keys)?;
            }
            iter.next();
        }
        iter.status().map_err(self.db_error(layout::CDRS, "scan"))?;
        write(&mut keys)?;
        // Synced: the write-ahead log is sequential, so this also makes the index batches durable
        // before the version says they are there.
        let meta = self.column(layout::META)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, layout::META_SCHEMA_VERSION, SCHEMA_VERSION.encode());
        self.db.write_opt(batch, &options::synced()).map_err(self.db_error(layout::META, "write"))?;
        Ok(count)
    }
}
