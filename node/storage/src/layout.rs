//! The on-disk layout: column family names and key encodings (see the crate docs for the table).
//!
//! Public so that tools (and tests) can inspect a database with a raw RocksDB handle; the node
//! itself only goes through [`crate::Storage`].

use cdrchain_runtime::ids::{CallId, Height, OperatorId, Sequence};
use cdrchain_runtime::merkle::NodeId;
use cdrchain_runtime::party::PartyDigest;
use parity_scale_codec::{Decode, Encode};

/// Column family: metadata (schema version, genesis hash, head, log frontier, queue length, and
/// the node's own `user/…` keys).
pub const META: &str = "meta";
/// Column family: headers by height.
pub const HEADERS: &str = "headers";
/// Column family: block bodies (the transactions) by height.
pub const BODIES: &str = "bodies";
/// Column family: commit certificates by height.
pub const CERTIFICATES: &str = "certificates";
/// Column family: header hash → height.
pub const HASH_INDEX: &str = "hash_index";
/// Column family: CDRs by (recorder, sequence).
pub const CDRS: &str = "cdrs";
/// Column family: (call id, recorder, sequence), value empty.
pub const CALL_IDS: &str = "call_ids";
/// Column family: (partner pair, start time, recorder, sequence), value empty.
pub const PARTNERS: &str = "partners";
/// Column family: (party digest prefix, start time, recorder, sequence), value empty.
pub const PARTIES: &str = "parties";
/// Column family: perfect subtrees of the CDR log by (level, index).
pub const LOG_NODES: &str = "log_nodes";
/// Column family: the small state, encoded state key → encoded value.
pub const STATE: &str = "state";
/// Column family: the state tree's nodes, position (depth and path prefix, see
/// `cdrchain_runtime::smt::position_key`) → encoded `StoredNode`.
pub const STATE_TREE: &str = "state_tree";
/// Column family: this node's durable ingest queue, in chunks of consecutive sequences: first
/// sequence → the items (see `queue.rs`).
pub const QUEUE: &str = "queue";
/// Column family: the consensus write-ahead log, opaque key → opaque value.
pub const WAL: &str = "wal";
/// Column family: this node's ingest keys (a record's identity in its source) → the sequence
/// it was given, so that a re-submitted record is recognised.
pub const INGEST_KEYS: &str = "ingest_keys";

/// Every column family this schema uses.
pub const COLUMNS: [&str; 15] = [
    META,
    HEADERS,
    BODIES,
    CERTIFICATES,
    HASH_INDEX,
    CDRS,
    CALL_IDS,
    PARTNERS,
    PARTIES,
    LOG_NODES,
    STATE,
    STATE_TREE,
    QUEUE,
    WAL,
    INGEST_KEYS,
];

/// Metadata key: the schema version, SCALE `u32`.
pub const META_SCHEMA_VERSION: &[u8] = b"sys/schema_version";
/// Metadata key: the genesis hash, SCALE `Hash32`.
pub const META_GENESIS_HASH: &[u8] = b"sys/genesis_hash";
/// Metadata key: the head's height, SCALE `Height` (absent before block 1).
pub const META_HEAD: &[u8] = b"sys/head";
/// Metadata key: the CDR log frontier at the head, SCALE `Frontier`.
pub const META_LOG_FRONTIER: &[u8] = b"sys/log_frontier";
/// Metadata key: the number of entries in the ingest queue, SCALE `u64`, as builds before
/// this one kept it. Deleted at open: the count is taken from the queue's chunks.
pub const META_QUEUE_LEN: &[u8] = b"sys/queue_len";
/// Metadata key: the ingest queue's floor, SCALE `u64`: entries below it are dequeued, although
/// the chunk that holds the first live entry may still hold some of them.
pub const META_QUEUE_FLOOR: &[u8] = b"sys/queue_floor";
/// Metadata key: the height through which the `parties` index holds every CDR, SCALE `Height`
/// (absent: none yet). Written with the index's keys, after the blocks' commits.
pub const META_PARTIES_INDEXED: &[u8] = b"sys/parties_indexed";
/// Prefix of the node's own metadata keys (`meta_put`), so they never collide with `sys/…`.
pub const META_USER_PREFIX: &[u8] = b"user/";

/// Key of a height-indexed column: big-endian, so that keys sort by height.
pub fn height_key(height: Height) -> [u8; 8] {
    height.0.to_be_bytes()
}

/// Key of the ingest queue: big-endian sequence.
pub fn sequence_key(sequence: Sequence) -> [u8; 8] {
    sequence.0.to_be_bytes()
}

/// Key of [`CDRS`]: `SCALE(recorder) ‖ sequence BE`.
pub fn cdr_key(recorder: &OperatorId, sequence: Sequence) -> Vec<u8> {
    let mut key = Vec::with_capacity(recorder.as_str().len() + 9);
    recorder.encode_to(&mut key);
    key.extend_from_slice(&sequence.0.to_be_bytes());
    key
}

/// Key of [`CALL_IDS`]: `SCALE(call_id) ‖ SCALE(recorder) ‖ sequence BE`.
pub fn call_id_key(call_id: &CallId, recorder: &OperatorId, sequence: Sequence) -> Vec<u8> {
    let mut key = call_id.encode();
    recorder.encode_to(&mut key);
    key.extend_from_slice(&sequence.0.to_be_bytes());
    key
}

/// The partner pair in canonical order: the index does not care who called whom.
pub fn partner_pair<'a>(a: &'a OperatorId, b: &'a OperatorId) -> (&'a OperatorId, &'a OperatorId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Prefix of [`PARTNERS`] keys of one pair: `SCALE(min(a, b)) ‖ SCALE(max(a, b))`.
pub fn partner_prefix(a: &OperatorId, b: &OperatorId) -> Vec<u8> {
    let (low, high) = partner_pair(a, b);
    let mut key = Vec::with_capacity(low.as_str().len() + high.as_str().len() + 2 + 8 + 40);
    low.encode_to(&mut key);
    high.encode_to(&mut key);
    key
}

/// Key of [`PARTNERS`]: the pair prefix ‖ `start_ms BE ‖ SCALE(recorder) ‖ sequence BE`.
pub fn partner_key(
    a: &OperatorId,
    b: &OperatorId,
    start_ms: u64,
    recorder: &OperatorId,
    sequence: Sequence,
) -> Vec<u8> {
    let mut key = partner_prefix(a, b);
    key.extend_from_slice(&start_ms.to_be_bytes());
    recorder.encode_to(&mut key);
    key.extend_from_slice(&sequence.0.to_be_bytes());
    key
}

/// How many leading bytes of a party digest a [`PARTIES`] key holds. The whole digest is in the
/// CDR, which a lookup reads anyway (and compares): the index needs only to narrow the search.
/// Eight bytes keep two index entries per CDR at ~30 bytes each, where the whole digest would
/// make them ~54; among 10^9 distinct parties, a lookup meets another party's entries with a
/// probability of about 10^9 / 2^64 ≈ 5·10^-11.
pub const PARTY_KEY_PREFIX_BYTES: usize = 8;

/// Prefix of [`PARTIES`] keys of one party: the first [`PARTY_KEY_PREFIX_BYTES`] of its digest.
pub fn party_prefix(party: &PartyDigest) -> [u8; PARTY_KEY_PREFIX_BYTES] {
    let mut prefix = [0u8; PARTY_KEY_PREFIX_BYTES];
    prefix.copy_from_slice(&party.0.as_bytes()[..PARTY_KEY_PREFIX_BYTES]);
    prefix
}

/// Key of [`PARTIES`]: the party prefix ‖ `start_ms BE ‖ SCALE(recorder) ‖ sequence BE` (the
/// suffix has the shape of a partner key's, [`split_partner_suffix`]).
pub fn party_key(party: &PartyDigest, start_ms: u64, recorder: &OperatorId, sequence: Sequence) -> Vec<u8> {
    let mut key = Vec::with_capacity(PARTY_KEY_PREFIX_BYTES + 8 + recorder.as_str().len() + 1 + 8);
    key.extend_from_slice(&party_prefix(party));
    key.extend_from_slice(&start_ms.to_be_bytes());
    recorder.encode_to(&mut key);
    key.extend_from_slice(&sequence.0.to_be_bytes());
    key
}

/// Key of [`LOG_NODES`]: `level ‖ index BE`.
pub fn node_key(id: NodeId) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = id.level;
    key[1..].copy_from_slice(&id.index.to_be_bytes());
    key
}

/// Key of a `meta_put` entry.
pub fn user_meta_key(key: &str) -> Vec<u8> {
    let mut full = META_USER_PREFIX.to_vec();
    full.extend_from_slice(key.as_bytes());
    full
}

/// Reads a big-endian u64 that must be exactly the rest of `bytes`.
pub(crate) fn be_u64_exact(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

/// Splits `SCALE(recorder) ‖ sequence BE` (the tail of CDR, call-id and partner keys).
pub(crate) fn split_recorder_sequence(mut bytes: &[u8]) -> Option<(OperatorId, Sequence)> {
    let recorder = OperatorId::decode(&mut bytes).ok()?;
    let sequence = be_u64_exact(bytes)?;
    Some((recorder, Sequence(sequence)))
}

/// Splits the suffix of a partner key after its pair prefix (or of a party key after its party
/// prefix): `start_ms BE ‖ recorder ‖ sequence`.
pub(crate) fn split_partner_suffix(bytes: &[u8]) -> Option<(u64, OperatorId, Sequence)> {
    let (start, rest) = bytes.split_first_chunk::<8>()?;
    let (recorder, sequence) = split_recorder_sequence(rest)?;
    Some((u64::from_be_bytes(*start), recorder, sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str) -> OperatorId {
        OperatorId::new(name).unwrap()
    }

    #[test]
    fn keys_sort_numerically_and_are_prefix_free() {
        assert!(height_key(Height(255)) < height_key(Height(256)));
        assert!(cdr_key(&op("a"), Sequence(255)) < cdr_key(&op("a"), Sequence(256)));
        // Without a length prefix, "ab" ‖ seq and "a" ‖ … would interleave; with it, all keys of
        // one recorder are contiguous.
        let a = cdr_key(&op("a"), Sequence(u64::MAX));
        let ab = cdr_key(&op("ab"), Sequence(0));
        assert!(!ab.starts_with(&op("a").encode()));
        assert!(a < ab, "every key of `a` sorts before every key of `ab`");
        assert!(node_key(NodeId::new(0, 300)) < node_key(NodeId::new(1, 0)));
        assert!(node_key(NodeId::new(0, 255)) < node_key(NodeId::new(0, 256)));
    }

    #[test]
    fn partner_keys_ignore_direction_and_split_back() {
        let key = partner_key(&op("bob"), &op("alice"), 42, &op("bob"), Sequence(7));
        assert_eq!(key, partner_key(&op("alice"), &op("bob"), 42, &op("bob"), Sequence(7)));
        let prefix = partner_prefix(&op("bob"), &op("alice"));
        assert!(key.starts_with(&prefix));
        assert_eq!(split_partner_suffix(&key[prefix.len()..]), Some((42, op("bob"), Sequence(7))));
        assert_eq!(split_partner_suffix(&key[prefix.len()..key.len() - 1]), None);
        assert_eq!(split_partner_suffix(&[1, 2, 3]), None);
    }

    #[test]
    fn party_keys_sort_by_party_then_start_and_split_back() {
        let party = PartyDigest(cdrchain_runtime::Hash32([7; 32]));
        let other = PartyDigest(cdrchain_runtime::Hash32([8; 32]));
        let key = party_key(&party, 42, &op("bob"), Sequence(7));
        assert!(key.starts_with(&party_prefix(&party)));
        assert!(key < party_key(&party, 43, &op("alice"), Sequence(0)), "start time before recorder");
        assert!(
            party_key(&party, u64::MAX, &op("z"), Sequence(u64::MAX))
                < party_key(&other, 0, &op("a"), Sequence(0))
        );
        let suffix = &key[PARTY_KEY_PREFIX_BYTES..];
        assert_eq!(split_partner_suffix(suffix), Some((42, op("bob"), Sequence(7))));
    }
}
