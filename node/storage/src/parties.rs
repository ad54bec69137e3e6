//! CDRs by party (`parties`): every CDR a telephone number or SIP address took part in (as
//! caller or callee), newest first, paged by cursor.
//!
//! The index is written **after** the commit, off its path: [`Storage::index_parties_step`]
//! indexes the blocks after the height it has reached (`sys/parties_indexed` in `meta`, written
//! in the same batch as the keys, so that the two never disagree) and the node calls it from a
//! low-priority thread. Written with each block, its two keys per CDR cost a fifth of the dev
//! chain's throughput (docs/benchmarks.md); behind the head, they cost what the machine has to
//! spare, and a search says how far the index has come. After a crash the index resumes from its
//! height: no block is skipped, and a block indexed twice writes the same keys.
//!
//! The index holds only a prefix of each party digest ([`layout::PARTY_KEY_PREFIX_BYTES`]); a
//! lookup reads each CDR it finds and keeps those whose caller or callee is the whole digest.

use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::ids::{Height, OperatorId, Sequence};
use cdrchain_runtime::party::PartyDigest;
use parity_scale_codec::Encode;
use rocksdb::{ReadOptions, WriteBatch};

use crate::view::Reader;
use crate::{layout, Storage, StorageError, StoredCdr, SCHEMA_VERSION};

/// The most CDRs one [`Storage::cdrs_by_party`] page returns.
pub const MAX_PARTY_PAGE_CDRS: usize = 1_000;
/// The most index entries one page reads. A page of a partner's token keeps only the CDRs its
/// operator may see, so it may read more entries than it returns; this bounds the work of one
/// call (the cursor then points where it stopped).
pub const MAX_PARTY_SCAN_ENTRIES: usize = 100_000;
const _: () = assert!(MAX_PARTY_PAGE_CDRS >= 1 && MAX_PARTY_SCAN_ENTRIES >= MAX_PARTY_PAGE_CDRS);

/// The schema version whose databases have no `parties` index yet: [`Storage::open`] moves them
/// to [`SCHEMA_VERSION`], and the index is built from block 1 like any other's.
pub(crate) const SCHEMA_BEFORE_PARTIES: u32 = 7;
const _: () = assert!(SCHEMA_BEFORE_PARTIES + 1 == SCHEMA_VERSION);

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
            // Exclusive: the page continues with the keys before the cursor's.
            Some(cursor) => upper.extend_from_slice(&crate::cdrs::decode_cursor(cursor, "cdr_byParty")?.0),
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
            let (suffix, stored) = self.indexed_cdr(layout::PARTIES, &prefix, key)?;
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

    /// The height through which the `parties` index holds every CDR (0: none yet).
    pub fn parties_indexed(&self) -> Result<Height, StorageError> {
        Ok(self
            .get_decoded::<Height>(&self.db, layout::META, layout::META_PARTIES_INDEXED)?
            .unwrap_or(Height(0)))
    }

    /// Indexes by party the CDRs of the blocks after [`Storage::parties_indexed`], in height
    /// order up to the head, stopping after the block that reaches `max_cdrs`; writes their keys
    /// and the new height in one batch. `visit` sees each CDR indexed (its recorder and body: the
    /// node counts the partners' traffic there, off the commit path). Returns the height reached
    /// (unchanged: nothing to do).
    pub fn index_parties_step(
        &self,
        max_cdrs: usize,
        mut visit: impl FnMut(&OperatorId, &CdrBody),
    ) -> Result<Height, StorageError> {
        let done = self.parties_indexed()?;
        let head = self.height();
        let mut height = done;
        let mut keys = Vec::new();
        let mut cdrs = 0usize;
        while height < head && cdrs < max_cdrs {
            height = Height(height.0 + 1);
            self.visit_block_cdrs(height, |recorder, sequence, body| {
                push_party_keys(&mut keys, body, recorder, sequence);
                visit(recorder, body);
                cdrs += 1;
            })?;
        }
        if height == done {
            return Ok(done);
        }
        keys.sort_unstable();
        let parties = self.column(layout::PARTIES)?;
        let mut batch = WriteBatch::default();
        for key in &keys {
            batch.put_cf(parties, key, b"");
        }
        batch.put_cf(self.column(layout::META)?, layout::META_PARTIES_INDEXED, height.encode());
        // Not synced: lost with a crash, the keys and the height are lost together, and the
        // blocks are indexed again.
        self.db.write(batch).map_err(self.db_error(layout::PARTIES, "write"))?;
        Ok(height)
    }

    /// Moves a database of [`SCHEMA_BEFORE_PARTIES`] to this build's version: it has no
    /// `parties` entries and no indexed height, so the index starts from block 1.
    pub(crate) fn upgrade_to_parties(&self) -> Result<(), StorageError> {
        let meta = self.column(layout::META)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, layout::META_SCHEMA_VERSION, SCHEMA_VERSION.encode());
        batch.delete_cf(meta, layout::META_PARTIES_INDEXED);
        self.db.write_opt(batch, &crate::options::synced()).map_err(self.db_error(layout::META, "write"))
    }
}

/// The [`layout::PARTIES`] keys of a CDR: its caller's and its callee's (one when they are the
/// same party).
pub(crate) fn push_party_keys(
    keys: &mut Vec<Vec<u8>>,
    body: &CdrBody,
    recorder: &OperatorId,
    sequence: Sequence,
) {
    keys.push(layout::party_key(&body.caller, body.start_ms, recorder, sequence));
    if body.callee != body.caller {
        keys.push(layout::party_key(&body.callee, body.start_ms, recorder, sequence));
    }
}
