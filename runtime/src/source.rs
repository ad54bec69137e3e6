//! A record's identity in its source system, as the chain keeps it: a 16-byte digest of
//! [`crate::input::CdrInput::source_key`] (the switch's `system_id` with its own record id, or the
//! call id and leg).
//!
//! The recording node recognises a re-submitted record by it (its ingest key is derived from the
//! digest). It is on the chain so that a node whose database was restored from a backup, or
//! purged, rebuilds the ingest keys of its operator's committed CDRs from the blocks it syncs, and
//! a switch's re-import after the restore is answered "duplicate" instead of recorded twice
//! (review H6). The digest reveals nothing but equality of source identities; 128 bits make an
//! accidental collision among 2^40 records about 2^-49 likely.

use std::fmt;

use parity_scale_codec::{Decode, Encode, MaxEncodedLen};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{context, hash_with};

/// Bytes of a [`SourceDigest`].
pub const SOURCE_DIGEST_BYTES: usize = 16;

/// The digest of a record's source identity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode, MaxEncodedLen)]
pub struct SourceDigest(pub [u8; SOURCE_DIGEST_BYTES]);

impl SourceDigest {
    /// The digest of a source key ([`crate::input::CdrInput::source_key`]).
    pub fn of_key(source_key: &str) -> SourceDigest {
        let hash = hash_with(context::SOURCE, &[source_key.as_bytes()]);
        let mut digest = [0u8; SOURCE_DIGEST_BYTES];
        digest.copy_from_slice(&hash.0[..SOURCE_DIGEST_BYTES]);
        SourceDigest(digest)
    }

    /// The recording node's ingest key of this record (the key of its `ingest_keys` column).
    pub fn ingest_key(&self) -> [u8; 32] {
        hash_with(context::INGEST_KEY, &[&self.0]).0
    }
}

impl fmt::Debug for SourceDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceDigest(0x{})", hex::encode(self.0))
    }
}

impl Serialize for SourceDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("0x{}", hex::encode(self.0)))
    }
}

impl<'de> Deserialize<'de> for SourceDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(text.trim_start_matches("0x")).map_err(serde::de::Error::custom)?;
        let digest = <[u8; SOURCE_DIGEST_BYTES]>::try_from(bytes.as_slice()).map_err(|_| {
            serde::de::Error::custom(format!(
                "a source digest is {SOURCE_DIGEST_BYTES} bytes, not {}",
                bytes.len()
            ))
        })?;
        Ok(SourceDigest(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_give_equal_digests_and_json_round_trips() {
        let a = SourceDigest::of_key("fs1\u{1f}id\u{1f}uuid-1");
        assert_eq!(a, SourceDigest::of_key("fs1\u{1f}id\u{1f}uuid-1"));
        assert_ne!(a, SourceDigest::of_key("fs1\u{1f}id\u{1f}uuid-2"));
        assert_ne!(a.ingest_key(), SourceDigest::of_key("fs2\u{1f}id\u{1f}uuid-1").ingest_key());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<SourceDigest>(&json).unwrap(), a);
        assert!(serde_json::from_str::<SourceDigest>("\"0x0102\"").is_err());
    }
}
