//! Ed25519 signatures for transactions and votes: strict single verification and batch
//! verification of all signatures in a block. Every signed message is a domain-separated digest
//! that includes the chain's genesis hash, so nothing signed for one chain replays on another.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::codec::hex_bytes;
use crate::hash::Hash32;

hex_bytes!(
    /// An ed25519 public key (32 bytes).
    PublicKey,
    32
);

hex_bytes!(
    /// An ed25519 signature (64 bytes).
    Signature,
    64
);

hex_bytes!(
    /// A 20-byte EVM address (RSK), derived from an operator's secp256k1 key.
    EvmAddress,
    20
);

/// A signature or key that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("public key {key} is not a valid ed25519 point or is of small order")]
    BadKey { key: PublicKey },
    #[error("signature by {key} does not verify")]
    Invalid { key: PublicKey },
    #[error("batch of {count} signatures does not verify")]
    BatchInvalid { count: usize },
}

impl PublicKey {
    /// The dalek key, refusing points that are not on the curve and weak (small-order) keys.
    pub fn verifying_key(&self) -> Result<VerifyingKey, SignatureError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::BadKey { key: *self })?;
        if key.is_weak() {
            return Err(SignatureError::BadKey { key: *self });
        }
        Ok(key)
    }
}

/// The public half of `key`.
pub fn public_key(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}

/// Signs a 32-byte message digest.
pub fn sign(key: &SigningKey, message: &Hash32) -> Signature {
    Signature(key.sign(&message.0).to_bytes())
}

/// Verifies one signature with `verify_strict` (no small-order keys or R, canonical S).
pub fn verify(key: &PublicKey, message: &Hash32, signature: &Signature) -> Result<(), SignatureError> {
    let verifying_key = key.verifying_key()?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    verifying_key.verify_strict(&message.0, &signature).map_err(|_| SignatureError::Invalid { key: *key })
}

/// Verifies many signatures at once (about twice as fast per signature as one by one). Keys are
/// checked as in [`verify`]; on failure, callers that need to know which one failed fall back to
/// [`verify`] per item. Batch verification in ed25519-dalek 2 is deterministic (no RNG).
pub fn verify_batch(items: &[(PublicKey, Hash32, Signature)]) -> Result<(), SignatureError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut messages: Vec<&[u8]> = Vec::with_capacity(items.len());
    for (key, message, signature) in items {
        keys.push(key.verifying_key()?);
        signatures.push(ed25519_dalek::Signature::from_bytes(&signature.0));
        messages.push(&message.0);
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys)
        .map_err(|_| SignatureError::BatchInvalid { count: items.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{context, hash_with};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn sign_and_verify() {
        let k = key(1);
        let msg = hash_with(context::TRANSACTION, &[b"m"]);
        let sig = sign(&k, &msg);
        verify(&public_key(&k), &msg, &sig).unwrap();
        let other = hash_with(context::TRANSACTION, &[b"n"]);
        assert_eq!(
            verify(&public_key(&k), &other, &sig),
            Err(SignatureError::Invalid { key: public_key(&k) })
        );
        assert!(verify(&public_key(&key(2)), &msg, &sig).is_err());
    }

    #[test]
    fn batch_verification_finds_a_bad_signature() {
        let mut items: Vec<_> = (1..=8u8)
            .map(|i| {
                let k = key(i);
                let msg = hash_with(context::TRANSACTION, &[&[i]]);
                (public_key(&k), msg, sign(&k, &msg))
            })
            .collect();
        verify_batch(&items).unwrap();
        items[5].2 .0[3] ^= 1;
        assert!(matches!(verify_batch(&items), Err(SignatureError::BatchInvalid { count: 8 })));
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point (small order) encoded: y = 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey(identity).verifying_key().is_err());
    }
}
