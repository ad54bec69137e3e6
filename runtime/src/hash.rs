//! Hashing: BLAKE3 everywhere, with one domain-separation context per object kind.
//!
//! Every hash the chain commits to is computed through this module, so that a digest of one kind
//! (a transaction, a header, a Merkle node) can never be mistaken for a digest of another.

use std::fmt;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte BLAKE3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, MaxEncodedLen)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero digest; used only as the parent of the first block's parent (the genesis hash
    /// itself is never zero).
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    /// Lower-case hex, no prefix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits, with or without a `0x` prefix.
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        let mut out = [0u8; 32];
        hex::decode_to_slice(digits, &mut out).map_err(|source| HexError {
            text: text.chars().take(80).collect(),
            reason: source.to_string(),
        })?;
        Ok(Hash32(out))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A hex string that is not a 32-byte digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a 32-byte hex digest: {reason}")]
pub struct HexError {
    pub text: String,
    pub reason: String,
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("0x{}", self.to_hex()))
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hash32::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Domain-separation contexts (BLAKE3 `derive_key` mode). Changing one changes every hash of
/// that kind: the golden fixtures catch it.
pub mod context {
    pub const TRANSACTION: &str = "cdrchain 2026-11 transaction v1";
    pub const HEADER: &str = "cdrchain 2026-11 header v1";
    pub const VOTE: &str = "cdrchain 2026-11 vote v1";
    pub const PROPOSAL: &str = "cdrchain 2026-11 proposal v1";
    pub const CDR_LOG: &str = "cdrchain 2026-11 cdr log merkle v1";
    pub const STATE: &str = "cdrchain 2026-11 state merkle v1";
    /// The state tree (ADR 0016): paths, values, leaves and nodes, each with its own prefix byte.
    pub const STATE_TREE: &str = "cdrchain 2026-12 state tree v2";
    /// The state root over the CDR log and the state tree (v1 was over a rehashed sorted tree).
    pub const STATE_ROOT: &str = "cdrchain 2026-12 state root v2";
    pub const TX_ROOT: &str = "cdrchain 2026-11 transaction root v1";
    pub const GENESIS: &str = "cdrchain 2026-11 genesis v1";
    pub const PARTY: &str = "cdrchain 2026-11 party digest v1";
    /// A record's ingest key, from its source digest (node-local, for recognising
    /// re-submissions).
    pub const INGEST_KEY: &str = "cdrchain 2026-12 ingest key v2";
    /// A record's identity in its source system, as the chain keeps it (`source.rs`).
    pub const SOURCE: &str = "cdrchain 2026-12 source identity v1";
    /// A key's proof of possession (`governance::possession_message`).
    pub const POSSESSION: &str = "cdrchain 2026-12 proof of possession v1";
    /// An authority set's digest (`governance::AuthoritySet::hash`).
    pub const AUTHORITY_SET: &str = "cdrchain 2026-12 authority set v1";
    /// A sealed interconnect document's commitment (`interconnect::commitment_of`).
    pub const INTERCONNECT_COMMITMENT: &str = "cdrchain 2026-12 interconnect commitment v1";
}

/// BLAKE3 in derive-key mode over `parts`, concatenated.
pub fn hash_with(context: &str, parts: &[&[u8]]) -> Hash32 {
    let mut hasher = hasher(context);
    for part in parts {
        hasher.update(part);
    }
    Hash32(*hasher.finalize().as_bytes())
}

/// A fresh hasher for `context`, for callers that stream many parts.
///
/// The context keys of [`context`] are derived once per process: `new_derive_key` hashes the
/// context string first (one BLAKE3 compression), and the chain hashes several short inputs per
/// CDR (its leaf, its ingest key, a Merkle node), each only two to four compressions long. BLAKE3
/// builds the same hasher from the derived key (`hazmat::HasherExt::new_from_context_key`), so the
/// digests are the same (the golden fixtures check them).
pub fn hasher(context: &str) -> blake3::Hasher {
    use blake3::hazmat::HasherExt as _;
    match CONTEXT_KEYS.iter().find(|(known, _)| *known == context) {
        Some((_, key)) => blake3::Hasher::new_from_context_key(key),
        None => blake3::Hasher::new_derive_key(context),
    }
}

/// The derived keys of the chain's own contexts.
static CONTEXT_KEYS: std::sync::LazyLock<[(&str, blake3::hazmat::ContextKey); 13]> =
    std::sync::LazyLock::new(|| {
        // The most frequent first: a CDR's leaf and Merkle nodes, then its ingest key.
        [
            context::CDR_LOG,
            context::INGEST_KEY,
            context::SOURCE,
            context::TRANSACTION,
            context::STATE_TREE,
            context::STATE,
            context::TX_ROOT,
            context::STATE_ROOT,
            context::HEADER,
            context::VOTE,
            context::PROPOSAL,
            context::GENESIS,
            context::PARTY,
        ]
        .map(|context| (context, blake3::hazmat::hash_derive_key_context(context)))
    });

/// RFC 6962 / RFC 9162 leaf hash of a Merkle tree whose nodes use `context`: `H(0x00 || data)`.
pub fn merkle_leaf_hash(context: &str, data: &[u8]) -> Hash32 {
    hash_with(context, &[&[0x00], data])
}

/// RFC 6962 / RFC 9162 interior node hash: `H(0x01 || left || right)`.
pub fn merkle_node_hash(context: &str, left: &Hash32, right: &Hash32) -> Hash32 {
    hash_with(context, &[&[0x01], &left.0, &right.0])
}

/// RFC 9162's root of the empty tree: the hash of the empty string.
pub fn merkle_empty_root(context: &str) -> Hash32 {
    hash_with(context, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h = hash_with(context::HEADER, &[b"x"]);
        assert_eq!(Hash32::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(Hash32::from_hex(&format!("0x{}", h.to_hex())).unwrap(), h);
        let err = Hash32::from_hex("0x1234").unwrap_err();
        assert!(err.to_string().contains("0x1234"), "{err}");
        assert!(Hash32::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_prepared_context_hashes_as_a_fresh_one() {
        for context in [context::CDR_LOG, context::INGEST_KEY, context::PARTY, "not a chain context"] {
            for input in [&b""[..], b"x", &[7u8; 200], &[9u8; 5000]] {
                let mut fresh = blake3::Hasher::new_derive_key(context);
                fresh.update(input);
                let mut prepared = hasher(context);
                prepared.update(input);
                assert_eq!(prepared.finalize(), fresh.finalize(), "{context} over {} bytes", input.len());
                assert_eq!(hash_with(context, &[input]).0, blake3::derive_key(context, input));
            }
        }
    }

    #[test]
    fn contexts_separate_domains() {
        assert_ne!(hash_with(context::HEADER, &[b"same"]), hash_with(context::TRANSACTION, &[b"same"]));
        // Leaf and node prefixes keep a leaf from posing as a node.
        let a = hash_with(context::CDR_LOG, &[b"a"]);
        let mut joined = Vec::new();
        joined.extend_from_slice(&a.0);
        joined.extend_from_slice(&a.0);
        assert_ne!(merkle_leaf_hash(context::CDR_LOG, &joined), merkle_node_hash(context::CDR_LOG, &a, &a));
    }
}
