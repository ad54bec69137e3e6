//! The block write path ([`Storage::commit_block`]: one synced batch per block across `headers`,
//! `bodies`, `certificates`, `hash_index`, `cdrs`, `call_ids`, `partners`, `log_nodes`, `state`
//! and `meta`, with the dequeue) and block reads.

use cdrchain_runtime::apply::StateChanges;
use cdrchain_runtime::block::{Block, CommitCertificate, Header, MAX_TRANSACTIONS_PER_BLOCK};
use cdrchain_runtime::cdr::CdrBody;
use cdrchain_runtime::codec::BoundedVec;
use cdrchain_runtime::crypto::Signature;
use cdrchain_runtime::ids::{Height, OperatorId, Sequence};
use cdrchain_runtime::tx::{tx_root, CdrBatch, SignedTransaction, Transaction, MAX_CDRS_PER_BATCH};
use cdrchain_runtime::Hash32;
use parity_scale_codec::{Decode, Encode};
use rocksdb::{ReadOptions, WriteBatch};

use crate::view::{Reader, DERIVED_LEVELS};
use crate::{decode, layout, lock, options, read, write, Cached, Head, Storage, StorageError, StoredCdr};

/// Bytes a committed CDR adds to its block's write batch, about: its value, its keys and its two
/// index entries. Sizes the batch up front.
const COMMIT_BATCH_BYTES_PER_CDR: usize = 448;
/// Bytes of a block's write batch beyond its CDRs: header, body, certificate, log nodes, state.
const COMMIT_BATCH_BASE_BYTES: usize = 64 * 1024;
/// Capacity of the buffer each CDR's value is encoded into (a sample CDR is ~300 bytes).
const STORED_CDR_BUFFER_BYTES: usize = 512;
// A stored CDR batch keeps its CDR count as a `u32`.
const _: () = assert!(MAX_CDRS_PER_BATCH <= u32::MAX as usize);

/// Appends `SCALE(StoredCdr { cdr: Cdr { recorder, sequence, body }, height, leaf_index })`
/// without cloning the body: a struct's encoding is its fields' encodings in order.
fn encode_stored_cdr(
    recorder: &OperatorId,
    sequence: Sequence,
    body: &CdrBody,
    height: Height,
    leaf_index: u64,
    out: &mut Vec<u8>,
) -> std::ops::Range<usize> {
    recorder.encode_to(out);
    sequence.encode_to(out);
    let start = out.len();
    body.encode_to(out);
    let body = start..out.len();
    height.encode_to(out);
    leaf_index.encode_to(out);
    body
}

/// A transaction as the `bodies` column keeps it. A CDR batch is stored without its CDRs, which
/// the `cdrs` column already holds (by recorder and sequence, with the same bodies): each CDR is
/// written once, not twice, and `block` puts the batch back together. Other transactions whole.
#[derive(Debug, Encode, Decode)]
enum StoredTx {
    Whole(SignedTransaction),
    CdrBatch { operator: OperatorId, first_sequence: Sequence, count: u32, signature: Signature },
}

impl StoredTx {
    fn of(tx: &SignedTransaction) -> StoredTx {
        match &tx.transaction {
            Transaction::CdrBatch(batch) => {
                debug_assert!(batch.cdrs.len() <= MAX_CDRS_PER_BATCH, "a batch decodes bounded");
                StoredTx::CdrBatch {
                    operator: batch.operator.clone(),
                    first_sequence: batch.first_sequence,
                    // A batch holds at most MAX_CDRS_PER_BATCH (10,000) CDRs.
                    count: u32::try_from(batch.cdrs.len()).unwrap_or(u32::MAX),
                    signature: tx.signature,
                }
            }
            _ => StoredTx::Whole(tx.clone()),
        }
    }
}

type Body = BoundedVec<StoredTx, MAX_TRANSACTIONS_PER_BLOCK>;

/// Checks that `changes` are the changes of a block with `header` on a log of `log_size` leaves.
fn check_changes(
    header: &Header,
    changes: &StateChanges,
    log_size: u64,
    cdr_count: usize,
) -> Result<(), StorageError> {
    let mismatch = |reason: String| StorageError::ChangesMismatch { height: header.number, reason };
    if changes.first_leaf_index != log_size {
        return Err(mismatch(format!(
            "they start the log at leaf {}, but the stored log holds {log_size} leaves",
            changes.first_leaf_index
        )));
    }
    let count = cdr_count as u64;
    if log_size.checked_add(count) != Some(changes.cdr_log.size())
        || changes.cdr_log.size() != header.cdr_log_size
    {
        return Err(mismatch(format!(
            "{log_size} stored leaves + {count} CDRs in the block, but the changes' log holds {} and the \
             header says {}",
            changes.cdr_log.size(),
            header.cdr_log_size
        )));
    }
    if changes.cdr_log_root != header.cdr_log_root || changes.state_root != header.state_root {
        return Err(mismatch("their log or state root differs from the header's".to_string()));
    }
    Ok(())
}

impl Storage {
    /// The ingest keys of `own`'s CDRs in `block` at sequences this database's queue never
    /// reached: CDRs it acknowledged before a restore or a purge, or that another node recorded
    /// under its key. Below the queue's end the keys were written with the queue.
    fn unqueued_keys(&self, block: &Block, own: &OperatorId) -> Vec<([u8; 32], Sequence)> {
        let end = {
            let queue = lock(&self.queue);
            queue.ceiling.max(queue.floor)
        };
        let mut keys = Vec::new();
        for tx in block.transactions.iter() {
            if let Transaction::CdrBatch(batch) = &tx.transaction {
                if &batch.operator == own {
                    for (cdr, sequence) in batch.cdrs.iter().zip(batch.first_sequence.0..) {
                        if sequence >= end {
                            keys.push((cdr.source.ingest_key(), Sequence(sequence)));
                        }
                    }
                }
            }
        }
        keys
    }

    /// The state's pair writes and its tree's node writes (`None` deletes).
    fn put_state(&self, batch: &mut WriteBatch, changes: &StateChanges) -> Result<(), StorageError> {
        for (column, writes) in [(layout::STATE, &changes.writes), (layout::STATE_TREE, &changes.tree_writes)]
        {
            let cf = self.column(column)?;
            for (key, value) in writes {
                match value {
                    Some(value) => batch.put_cf(cf, key, value),
                    None => batch.delete_cf(cf, key),
                }
            }
        }
        Ok(())
    }

    /// Writes everything a committed block changes, in ONE synced `WriteBatch`: header, body,
    /// certificate, hash → height, each CDR under (recorder, sequence) as [`StoredCdr`], the
    /// call-id index, the partner-pair/time index, the new Merkle log nodes, the state writes
    /// (`Some` = put, `None` = delete), the new log frontier and the head. Also deletes this
    /// node's ingest-queue entries with sequence <= `dequeue_through` (if `Some`) in the same
    /// batch, so committing and dequeuing are atomic.
    ///
    /// Refuses a block that does not extend the head ([`StorageError::NotNext`]), a certificate
    /// of another block ([`StorageError::CertificateMismatch`]) and changes that do not match the
    /// header or the stored log ([`StorageError::ChangesMismatch`]). Signatures are not checked:
    /// the caller has verified the certificate and applied the block.
    pub fn commit_block(
        &self,
        block: &Block,
        changes: &StateChanges,
        certificate: &CommitCertificate,
        dequeue_through: Option<Sequence>,
    ) -> Result<(), StorageError> {
        self.commit(block, changes, certificate, dequeue_through, None).map(|_| ())
    }

    /// [`Storage::commit_block`] on the node of operator `own`: also records the ingest keys of
    /// `own`'s CDRs in the block that this database never queued (sequences at or past its
    /// queue's end), from the source digests they carry. So a node whose database was restored
    /// from a backup, or purged, knows again every record it had acknowledged once it has synced
    /// the blocks, and a switch's re-import is answered "duplicate" (review H6). And dequeues by
    /// content (review M10): a queued CDR of `own` whose sequence the block gave to another CDR is
    /// queued again at the end, in the same batch; the answer lists them.
    pub fn commit_block_of(
        &self,
        own: &OperatorId,
        block: &Block,
        changes: &StateChanges,
        certificate: &CommitCertificate,
        dequeue_through: Option<Sequence>,
    ) -> Result<Vec<crate::Requeued>, StorageError> {
        self.commit(block, changes, certificate, dequeue_through, Some(own))
    }

    fn commit(
        &self,
        block: &Block,
        changes: &StateChanges,
        certificate: &CommitCertificate,
        dequeue_through: Option<Sequence>,
        own: Option<&OperatorId>,
    ) -> Result<Vec<crate::Requeued>, StorageError> {
        let _commit = lock(&self.commit_lock);
        let header = &block.header;
        let (head, head_hash, log_size) = {
            let cached = read(&self.cached);
            match &cached.head {
                Some(head) => (head.header.number, head.hash, cached.frontier.size()),
                None => (Height(0), self.genesis_hash, cached.frontier.size()),
            }
        };
        let expected = Height(head.0.saturating_add(1));
        if header.number != expected || header.parent_hash != head_hash || head.0 == u64::MAX {
            return Err(StorageError::NotNext {
                number: header.number,
                parent_hash: header.parent_hash,
                expected,
                head,
                head_hash,
            });
        }
        let hash = header.hash();
        if certificate.block_hash != hash || certificate.height != header.number {
            return Err(StorageError::CertificateMismatch {
                height: header.number,
                block_hash: hash,
                certificate_height: certificate.height,
                certificate_hash: certificate.block_hash,
            });
        }
        check_changes(header, changes, log_size, block.cdr_count())?;

        // Sized up front (about 450 bytes per CDR with its keys and index entries): a block of
        // 50,000 CDRs otherwise regrows and copies the batch's buffer a dozen times.
        let mut batch = WriteBatch::with_capacity_bytes(
            block
                .cdr_count()
                .saturating_mul(COMMIT_BATCH_BYTES_PER_CDR)
                .saturating_add(COMMIT_BATCH_BASE_BYTES),
        );
        let height_key = layout::height_key(header.number);
        batch.put_cf(self.column(layout::HEADERS)?, height_key, header.encode());
        let body: Vec<StoredTx> = block.transactions.iter().map(StoredTx::of).collect();
        batch.put_cf(self.column(layout::BODIES)?, height_key, body.encode());
        batch.put_cf(self.column(layout::CERTIFICATES)?, height_key, certificate.encode());
        batch.put_cf(self.column(layout::HASH_INDEX)?, hash.0, header.number.encode());
        // The node's own CDRs as encoded for the `cdrs` column, kept for dequeue by content.
        let own_bodies = self.put_cdrs(&mut batch, block, changes.first_leaf_index, own)?;
        let log_nodes = self.column(layout::LOG_NODES)?;
        // Levels 1-3 are not stored (see `DERIVED_LEVELS`). The rest go in level by level, in
        // key order, for the memtable (see `put_cdrs`); the runtime hands them over leaf by leaf,
        // each followed by the subtrees it completes.
        let mut new_log_nodes: Vec<_> =
            changes.new_log_nodes.iter().filter(|(id, _)| !DERIVED_LEVELS.contains(&id.level)).collect();
        new_log_nodes.sort_unstable_by_key(|(id, _)| *id);
        for (id, node) in new_log_nodes {
            batch.put_cf(log_nodes, layout::node_key(*id), node.0);
        }
        self.put_state(&mut batch, changes)?;
        if let Some(own) = own {
            let keys = self.unqueued_keys(block, own);
            if !keys.is_empty() {
                self.put_ingest_keys(&mut batch, self.column(layout::INGEST_KEYS)?, &keys);
            }
        }
        let meta = self.column(layout::META)?;
        batch.put_cf(meta, layout::META_LOG_FRONTIER, changes.cdr_log.encode());
        batch.put_cf(meta, layout::META_HEAD, header.number.encode());

        // Under the commit lock, which serializes dequeues; the queue's own lock is not held
        // while the batch is written (enqueues go on meanwhile, above the dequeued range).
        let dequeued = match dequeue_through {
            Some(last) => Some(self.dequeue_into(&mut batch, last)?),
            None => None,
        };
        let requeue = match (own, dequeue_through) {
            (Some(_), Some(last)) => self.requeue_displaced(&mut batch, &own_bodies, last)?,
            _ => None,
        };
        {
            let mut cached = write(&self.cached);
            self.db.write_opt(batch, &options::synced()).map_err(self.db_error("*", "write"))?;
            *cached = Cached {
                head: Some(Head { header: header.clone(), hash }),
                frontier: changes.cdr_log.clone(),
            };
        }
        if let Some(dequeued) = dequeued {
            dequeued.apply(&mut lock(&self.queue));
        }
        Ok(requeue.map_or_else(Vec::new, |requeue| requeue.applied(&self.queue)))
    }

    /// Puts each CDR of the block, and its two index entries, into `batch` (the `parties` index is
    /// written after the commit, off its path: `parties.rs`).
    fn put_cdrs(
        &self,
        batch: &mut WriteBatch,
        block: &Block,
        first_leaf_index: u64,
        own: Option<&OperatorId>,
    ) -> Result<crate::displaced::OwnBodies, StorageError> {
        let mut own_bodies = crate::displaced::OwnBodies::default();
        let cdrs = self.column(layout::CDRS)?;
        let call_ids = self.column(layout::CALL_IDS)?;
        let partners = self.column(layout::PARTNERS)?;
        let height = block.header.number;
        let mut leaf_index = first_leaf_index;
        let mut value = Vec::with_capacity(STORED_CDR_BUFFER_BYTES);
        let count = block.cdr_count();
        let mut call_id_keys = Vec::with_capacity(count);
        let mut partner_keys = Vec::with_capacity(count);
        for tx in block.transactions.iter() {
            let Transaction::CdrBatch(cdr_batch) = &tx.transaction else { continue };
            let recorder = &cdr_batch.operator;
            for (body, sequence) in cdr_batch.cdrs.iter().zip(cdr_batch.first_sequence.0..) {
                let sequence = Sequence(sequence);
                value.clear();
                let body_bytes = encode_stored_cdr(recorder, sequence, body, height, leaf_index, &mut value);
                if own == Some(recorder) {
                    own_bodies.push(sequence, &value[body_bytes]);
                }
                batch.put_cf(cdrs, layout::cdr_key(recorder, sequence), &value);
                call_id_keys.push(layout::call_id_key(&body.call_id, recorder, sequence));
                partner_keys.push(layout::partner_key(
                    &body.caller_operator,
                    &body.callee_operator,
                    body.start_ms,
                    recorder,
                    sequence,
                ));
                // check_changes made sure the log size fits: first + count = new size.
                leaf_index = leaf_index.saturating_add(1);
            }
        }
        debug_assert_eq!(
            Some(leaf_index),
            first_leaf_index.checked_add(count as u64),
            "block {height}: the leaves put are not the block's CDRs"
        );
        // Index keys go in in key order: the memtable's skip list starts each insert from the
        // position of the previous one, so a key close to it is placed without a search from the
        // top (random-order inserts were ~8 % of a localnet validator's CPU; the storage bench
        // gained ~20 % from this).
        call_id_keys.sort_unstable();
        for key in &call_id_keys {
            batch.put_cf(call_ids, key, b"");
        }
        partner_keys.sort_unstable();
        for key in &partner_keys {
            batch.put_cf(partners, key, b"");
        }
        Ok(own_bodies)
    }

    /// The header at `height`.
    pub fn header(&self, height: Height) -> Result<Option<Header>, StorageError> {
        let key = layout::height_key(height);
        let header = self.get_decoded::<Header>(&self.db, layout::HEADERS, &key)?;
        if let Some(header) = &header {
            if header.number != height {
                return Err(StorageError::corrupt(
                    layout::HEADERS,
                    &key,
                    format!("the header stored at height {height} says height {}", header.number),
                ));
            }
        }
        Ok(header)
    }

    /// The height of the block whose header hashes to `hash`.
    pub fn height_of(&self, hash: &Hash32) -> Result<Option<Height>, StorageError> {
        self.get_decoded(&self.db, layout::HASH_INDEX, &hash.0)
    }

    /// The block at `height`: its stored body with each CDR batch's CDRs read back from the
    /// `cdrs` column, checked against the header's transaction root.
    pub fn block(&self, height: Height) -> Result<Option<Block>, StorageError> {
        let Some(header) = self.header(height)? else { return Ok(None) };
        let key = layout::height_key(height);
        let body = self.get_decoded::<Body>(&self.db, layout::BODIES, &key)?.ok_or_else(|| {
            StorageError::corrupt(
                layout::BODIES,
                &key,
                format!("the body of stored header {height} is missing"),
            )
        })?;
        let mut transactions = Vec::with_capacity(body.len());
        for stored in body.into_inner() {
            transactions.push(match stored {
                StoredTx::Whole(tx) => tx,
                StoredTx::CdrBatch { operator, first_sequence, count, signature } => {
                    let cdrs = self.batch_cdrs(&operator, first_sequence, count, height)?;
                    let cdrs = BoundedVec::new(cdrs).map_err(|cdrs| {
                        StorageError::corrupt(layout::BODIES, &key, format!("a batch of {} CDRs", cdrs.len()))
                    })?;
                    let batch = CdrBatch { operator, first_sequence, cdrs: cdrs.into() };
                    SignedTransaction { transaction: Transaction::CdrBatch(batch), signature }
                }
            });
        }
        let ids: Vec<Hash32> = transactions.iter().map(|tx| tx.id(&self.genesis_hash)).collect();
        if tx_root(&ids) != header.tx_root {
            return Err(StorageError::corrupt(
                layout::BODIES,
                &key,
                format!(
                    "the transactions of block {height}, rebuilt from its body and the cdrs column, do not \
                     match its header's tx_root"
                ),
            ));
        }
        let transactions = BoundedVec::new(transactions).map_err(|txs| {
            StorageError::corrupt(layout::BODIES, &key, format!("{} transactions", txs.len()))
        })?;
        Ok(Some(Block { header, transactions }))
    }

    /// Calls `visit` with each CDR of the block at `height` (its recorder, sequence and body),
    /// read from its stored body and the `cdrs` column without rebuilding the block (the party
    /// indexer's read: the block was checked when it was committed).
    pub(crate) fn visit_block_cdrs(
        &self,
        height: Height,
        mut visit: impl FnMut(&OperatorId, Sequence, &CdrBody),
    ) -> Result<(), StorageError> {
        let key = layout::height_key(height);
        let body = self.get_decoded::<Body>(&self.db, layout::BODIES, &key)?.ok_or_else(|| {
            StorageError::corrupt(layout::BODIES, &key, format!("the body of block {height} is missing"))
        })?;
        for stored in body.into_inner() {
            if let StoredTx::CdrBatch { operator, first_sequence, count, .. } = stored {
                let bodies = self.batch_cdrs(&operator, first_sequence, count, height)?;
                for (body, sequence) in bodies.iter().zip(first_sequence.0..) {
                    visit(&operator, Sequence(sequence), body);
                }
            }
        }
        Ok(())
    }

    /// The bodies of `count` CDRs of `operator` from `first`, all committed in block `height`.
    fn batch_cdrs(
        &self,
        operator: &OperatorId,
        first: Sequence,
        count: u32,
        height: Height,
    ) -> Result<Vec<CdrBody>, StorageError> {
        let mut iter = self.db.raw_iter(self.column(layout::CDRS)?, ReadOptions::default());
        iter.seek(layout::cdr_key(operator, first));
        let mut bodies = Vec::with_capacity(count as usize);
        for sequence in (first.0..).take(count as usize) {
            let expected = layout::cdr_key(operator, Sequence(sequence));
            let Some((key, value)) = iter.item().filter(|(key, _)| *key == expected.as_slice()) else {
                iter.status().map_err(self.db_error(layout::CDRS, "scan"))?;
                return Err(StorageError::corrupt(
                    layout::CDRS,
                    &expected,
                    format!("CDR {operator}:{sequence} of block {height} is missing"),
                ));
            };
            let stored: StoredCdr = decode(layout::CDRS, key, value)?;
            if stored.height != height {
                return Err(StorageError::corrupt(
                    layout::CDRS,
                    key,
                    format!(
                        "CDR {operator}:{sequence} says block {}, its batch is in block {height}",
                        stored.height
                    ),
                ));
            }
            bodies.push(stored.cdr.body);
            iter.next();
        }
        Ok(bodies)
    }

    /// The commit certificate of the block at `height`.
    pub fn certificate(&self, height: Height) -> Result<Option<CommitCertificate>, StorageError> {
        self.get_decoded(&self.db, layout::CERTIFICATES, &layout::height_key(height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::cdr::Cdr;
    use cdrchain_runtime::sample::cdr_body;

    #[test]
    fn manual_stored_cdr_encoding_matches_derive() {
        let recorder = OperatorId::new("alice").unwrap();
        let partner = OperatorId::new("bob").unwrap();
        let body = cdr_body(7, &recorder, &partner);
        let stored = StoredCdr {
            cdr: Cdr { recorder: recorder.clone(), sequence: Sequence(7), body: body.clone() },
            height: Height(3),
            leaf_index: 99,
        };
        let mut manual = Vec::new();
        encode_stored_cdr(&recorder, Sequence(7), &body, Height(3), 99, &mut manual);
        assert_eq!(manual, stored.encode());
        assert_eq!(decode::<StoredCdr>(layout::CDRS, b"k", &manual).unwrap(), stored);
    }
}
