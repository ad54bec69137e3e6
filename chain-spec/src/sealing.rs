//! Sealing interconnect documents to the two partners of an agreement (issue #28).
//!
//! An operator's encryption key is an X25519 key pair derived from 32 secret bytes by HPKE's
//! `DeriveKeyPair` (RFC 9180 §7.1.3) under `DHKEM(X25519, HKDF-SHA256)`; the chain holds its
//! public half ([`EncryptionKey`]). A document is sealed once for both partners:
//!
//! 1. the [`Opening`] is the document's bytes and a fresh random 32-byte salt; the chain keeps
//!    its commitment (`interconnect::commitment_of`);
//! 2. a fresh random 32-byte content key encrypts the SCALE-encoded opening with
//!    ChaCha20-Poly1305 (nonce zero: the key is used once; associated data: the commitment);
//! 3. the content key is sealed to each partner with HPKE base mode
//!    (`DHKEM(X25519, HKDF-SHA256)`, `HKDF-SHA256`, `ChaCha20-Poly1305`), `info` =
//!    [`SEAL_INFO`] ‖ genesis hash (so an envelope never opens on another chain), associated
//!    data: the commitment.
//!
//! The envelope is the SCALE encoding of [`EnvelopeV1`]. Opening it checks the opening against
//! the commitment, so an opening that [`open`] returns is the one the chain committed to.

use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::interconnect::{EncryptionKey, Envelope, Opening, Sealed, MAX_SEALED_BYTES};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use parity_scale_codec::{Decode, Encode};

/// HPKE's `info` prefix (the genesis hash follows).
pub const SEAL_INFO: &[u8] = b"cdrchain 2026-12 sealed to a pair v1";

/// The envelope format this code writes.
pub const ENVELOPE_VERSION: u8 = 1;

/// Most recipients an envelope names (the two partners).
pub const MAX_RECIPIENTS: usize = 2;

type HpkeAead = hpke::aead::ChaCha20Poly1305;
type HpkeKdf = hpke::kdf::HkdfSha256;

/// Why a document cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("cannot read randomness from the operating system: {0}")]
    Randomness(String),
    #[error("{0} is not an X25519 public key")]
    BadKey(EncryptionKey),
    #[error("the sealed document is {size} bytes, over the chain's limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("the envelope cannot be read: {0}")]
    Malformed(String),
    #[error("the envelope is sealed to {sealed_to:?}, not to this key {mine}")]
    NotARecipient { mine: EncryptionKey, sealed_to: Vec<EncryptionKey> },
    #[error("the envelope does not open with this key: {0}")]
    Decrypt(String),
    #[error("the opened document does not match the commitment {committed} (it commits to {opened})")]
    CommitmentMismatch { committed: Hash32, opened: Hash32 },
}

/// An operator's encryption secret: the 32 bytes its key pair is derived from.
#[derive(Clone)]
pub struct EncryptionSecret([u8; 32]);

impl std::fmt::Debug for EncryptionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EncryptionSecret").field(&self.public()).finish()
    }
}

impl EncryptionSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> EncryptionSecret {
        EncryptionSecret(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public key the chain registers.
    pub fn public(&self) -> EncryptionKey {
        let (_, public) = X25519HkdfSha256::derive_keypair(&self.0);
        let mut key = [0u8; 32];
        key.copy_from_slice(&public.to_bytes());
        EncryptionKey(key)
    }
}

/// One partner's copy of the content key.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Recipient {
    pub key: EncryptionKey,
    /// HPKE's encapsulated key.
    pub encapped: [u8; 32],
    /// The content key, sealed (32 bytes and a 16-byte tag).
    pub wrapped: BoundedVec<u8, 64>,
}

/// What [`Envelope`]'s bytes decode to.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct EnvelopeV1 {
    pub version: u8,
    pub recipients: BoundedVec<Recipient, MAX_RECIPIENTS>,
    /// The opening, encrypted under the content key.
    pub body: BoundedVec<u8, MAX_SEALED_BYTES>,
}

fn info(genesis: &Hash32) -> Vec<u8> {
    [SEAL_INFO, &genesis.0].concat()
}

fn random() -> Result<[u8; 32], SealError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| SealError::Randomness(e.to_string()))?;
    Ok(bytes)
}

/// Seals `content` to `recipients` on the chain with `genesis`: the sealed form for the chain
/// and the opening (which only the recipients, and whoever they hand it to, will see).
pub fn seal(
    genesis: &Hash32,
    recipients: &[EncryptionKey],
    content: &[u8],
) -> Result<(Sealed, Opening), SealError> {
    let opening = Opening { salt: random()?, content: content.to_vec() };
    let commitment = opening.commitment();
    let content_key = random()?;
    let cipher =
        ChaCha20Poly1305::new_from_slice(&content_key).map_err(|e| SealError::Decrypt(e.to_string()))?;
    let body = cipher
        .encrypt(&Default::default(), Payload { msg: &opening.encode(), aad: &commitment.0 })
        .map_err(|e| SealError::Decrypt(e.to_string()))?;
    let mut sealed_to = Vec::with_capacity(recipients.len());
    for key in recipients {
        let public = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(&key.0)
            .map_err(|_| SealError::BadKey(*key))?;
        let (encapped, wrapped) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, X25519HkdfSha256>(
            &OpModeS::Base,
            &public,
            &info(genesis),
            &content_key,
            &commitment.0,
        )
        .map_err(|e| SealError::Decrypt(e.to_string()))?;
        let mut encapped_bytes = [0u8; 32];
        encapped_bytes.copy_from_slice(&encapped.to_bytes());
        let wrapped = BoundedVec::new(wrapped)
            .map_err(|w| SealError::Malformed(format!("{} bytes wrapped", w.len())))?;
        sealed_to.push(Recipient { key: *key, encapped: encapped_bytes, wrapped });
    }
    let too_large = |size| SealError::TooLarge { size, max: MAX_SEALED_BYTES };
    let envelope = EnvelopeV1 {
        version: ENVELOPE_VERSION,
        recipients: BoundedVec::new(sealed_to)
            .map_err(|r| SealError::Malformed(format!("{} recipients", r.len())))?,
        body: BoundedVec::new(body).map_err(|b| too_large(b.len()))?,
    };
    let bytes = envelope.encode();
    let size = bytes.len();
    let envelope = Envelope(BoundedVec::new(bytes).map_err(|_| too_large(size))?);
    Ok((Sealed { commitment, envelope }, opening))
}

/// The keys an envelope is sealed to (anyone can read them).
pub fn recipients(sealed: &Sealed) -> Result<Vec<EncryptionKey>, SealError> {
    Ok(read_envelope(sealed)?.recipients.iter().map(|r| r.key).collect())
}

fn read_envelope(sealed: &Sealed) -> Result<EnvelopeV1, SealError> {
    let envelope: EnvelopeV1 =
        decode_exact(sealed.envelope.0.as_slice()).map_err(|e| SealError::Malformed(e.to_string()))?;
    if envelope.version != ENVELOPE_VERSION {
        return Err(SealError::Malformed(format!(
            "envelope version {}, this node reads version {ENVELOPE_VERSION}",
            envelope.version
        )));
    }
    Ok(envelope)
}

/// Opens `sealed` with `secret` and checks the opening against the commitment.
pub fn open(genesis: &Hash32, sealed: &Sealed, secret: &EncryptionSecret) -> Result<Opening, SealError> {
    let envelope = read_envelope(sealed)?;
    let mine = secret.public();
    let Some(recipient) = envelope.recipients.iter().find(|r| r.key == mine) else {
        return Err(SealError::NotARecipient {
            mine,
            sealed_to: envelope.recipients.iter().map(|r| r.key).collect(),
        });
    };
    let (private, _) = X25519HkdfSha256::derive_keypair(secret.bytes());
    let encapped = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&recipient.encapped)
        .map_err(|e| SealError::Malformed(format!("encapsulated key: {e}")))?;
    let content_key = hpke::single_shot_open::<HpkeAead, HpkeKdf, X25519HkdfSha256>(
        &OpModeR::Base,
        &private,
        &encapped,
        &info(genesis),
        recipient.wrapped.as_slice(),
        &sealed.commitment.0,
    )
    .map_err(|e| SealError::Decrypt(format!("content key: {e}")))?;
    let cipher =
        ChaCha20Poly1305::new_from_slice(&content_key).map_err(|e| SealError::Decrypt(e.to_string()))?;
    let plain = cipher
        .decrypt(&Default::default(), Payload { msg: envelope.body.as_slice(), aad: &sealed.commitment.0 })
        .map_err(|e| SealError::Decrypt(format!("body: {e}")))?;
    let opening: Opening = decode_exact(&plain).map_err(|e| SealError::Malformed(format!("opening: {e}")))?;
    let opened = opening.commitment();
    if opened != sealed.commitment {
        return Err(SealError::CommitmentMismatch { committed: sealed.commitment, opened });
    }
    Ok(opening)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(seed: u8) -> EncryptionSecret {
        EncryptionSecret::from_bytes([seed; 32])
    }

    #[test]
    fn both_partners_open_what_was_sealed_and_no_one_else() {
        let genesis = Hash32([1; 32]);
        let (alice, bob, charlie) = (secret(1), secret(2), secret(3));
        let (sealed, opening) = seal(&genesis, &[alice.public(), bob.public()], b"rates: secret").unwrap();
        assert_eq!(opening.content, b"rates: secret");
        assert_eq!(sealed.commitment, opening.commitment());
        for partner in [&alice, &bob] {
            assert_eq!(open(&genesis, &sealed, partner).unwrap(), opening);
        }
        assert!(matches!(open(&genesis, &sealed, &charlie), Err(SealError::NotARecipient { .. })));
        assert_eq!(recipients(&sealed).unwrap(), vec![alice.public(), bob.public()]);
        // The ciphertext does not contain the plaintext.
        let bytes = sealed.envelope.0.as_slice();
        assert!(!bytes.windows(6).any(|w| w == b"secret"));
        // Another chain's envelope does not open here.
        assert!(matches!(open(&Hash32([2; 32]), &sealed, &alice), Err(SealError::Decrypt(_))));
    }

    #[test]
    fn any_changed_byte_or_commitment_is_refused() {
        let genesis = Hash32([1; 32]);
        let alice = secret(1);
        let (sealed, _) = seal(&genesis, &[alice.public(), secret(2).public()], b"document").unwrap();
        let bytes = sealed.envelope.0.as_slice().to_vec();
        // The version, alice's key, encapsulated key and wrapped key, the body and its tag (bob's
        // copy, in the middle, is not alice's to open).
        for position in [0, 5, 40, 100, bytes.len() - 30, bytes.len() - 1] {
            let mut changed = bytes.clone();
            changed[position] ^= 0x01;
            let tampered = Sealed {
                commitment: sealed.commitment,
                envelope: Envelope(BoundedVec::new(changed).unwrap()),
            };
            assert!(open(&genesis, &tampered, &alice).is_err(), "byte {position}");
        }
        let other = Sealed { commitment: Hash32([9; 32]), envelope: sealed.envelope.clone() };
        assert!(open(&genesis, &other, &alice).is_err());
    }

    #[test]
    fn sealing_is_fresh_each_time() {
        let genesis = Hash32([1; 32]);
        let keys = [secret(1).public(), secret(2).public()];
        let (one, _) = seal(&genesis, &keys, b"same").unwrap();
        let (two, _) = seal(&genesis, &keys, b"same").unwrap();
        assert_ne!(one.commitment, two.commitment, "the salt hides equal documents");
        assert_ne!(one.envelope, two.envelope);
    }
}
