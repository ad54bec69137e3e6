//! Key material helpers shared by the spec and the CLI: libp2p peer ids of ed25519 network keys,
//! EVM addresses of secp256k1 keys, and the well-known, INSECURE development accounts.

use cdrchain_runtime::crypto::{EvmAddress, PublicKey};
use ed25519_dalek::SigningKey;
use sha3::{Digest, Keccak256};

/// The libp2p peer id of an ed25519 public key: base58 of the identity multihash of the
/// protobuf-encoded key (`08 01 12 20 ‖ key`), the `12D3KooW…` form.
pub fn peer_id_of_ed25519(public: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(38);
    bytes.extend_from_slice(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
    bytes.extend_from_slice(public);
    bs58::encode(bytes).into_string()
}

/// Checks that `text` is a libp2p peer id: base58 of an identity multihash of a protobuf public
/// key (at most 42 bytes inside) or of a SHA2-256 multihash.
pub fn check_peer_id(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > 128 {
        return Err("a peer id is 1 to 128 base58 characters".into());
    }
    let bytes = bs58::decode(text).into_vec().map_err(|e| format!("not base58: {e}"))?;
    match bytes.as_slice() {
        [0x00, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() <= 42 => {
            if rest.first() == Some(&0x08) {
                Ok(())
            } else {
                Err("identity multihash does not hold a protobuf public key".into())
            }
        }
        [0x12, 0x20, rest @ ..] if rest.len() == 32 => Ok(()),
        _ => Err("not an identity or SHA2-256 multihash".into()),
    }
}

/// The EVM address of a secp256k1 key: the last 20 bytes of keccak256 of the uncompressed point.
pub fn evm_address(key: &k256::ecdsa::VerifyingKey) -> EvmAddress {
    let point = key.to_encoded_point(false);
    let digest = Keccak256::digest(&point.as_bytes()[1..]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[12..]);
    EvmAddress(address)
}

/// A development account: every key derived from its name. Anyone can derive these keys, so a
/// chain that uses them is secure against nobody. Only the built-in `dev` and `local` specs do.
#[derive(Clone)]
pub struct DevAccount {
    pub name: &'static str,
    /// Signs transactions and votes.
    pub signing_key: SigningKey,
    /// The libp2p identity (ed25519 secret).
    pub network_secret: [u8; 32],
    /// Signs RSK checkpoints.
    pub evm_key: k256::ecdsa::SigningKey,
    /// Opens interconnect documents sealed to the account.
    pub encryption: crate::sealing::EncryptionSecret,
}

impl std::fmt::Debug for DevAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAccount").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The four development accounts, in the `local` spec's authority order.
pub const DEV_ACCOUNT_NAMES: [&str; 4] = ["alice", "bob", "charlie", "dave"];

impl DevAccount {
    /// Derives every key of `name` (INSECURE: for dev and local chains only).
    pub fn derive(name: &'static str) -> DevAccount {
        let seed = |purpose: &str| {
            blake3::derive_key(&format!("cdrchain dev account INSECURE {purpose} v1"), name.as_bytes())
        };
        let signing_key = SigningKey::from_bytes(&seed("ed25519"));
        let network_secret = seed("libp2p");
        // A BLAKE3 output is a valid secp256k1 scalar except with probability ~2^-128; the loop
        // makes the derivation total anyway.
        let mut material = seed("secp256k1");
        let evm_key = loop {
            match k256::ecdsa::SigningKey::from_bytes(&material.into()) {
                Ok(key) => break key,
                Err(_) => material = blake3::hash(&material).into(),
            }
        };
        let encryption = crate::sealing::EncryptionSecret::from_bytes(seed("x25519"));
        DevAccount { name, signing_key, network_secret, evm_key, encryption }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing_key.verifying_key().to_bytes())
    }

    pub fn peer_id(&self) -> String {
        let network = SigningKey::from_bytes(&self.network_secret);
        peer_id_of_ed25519(&network.verifying_key().to_bytes())
    }

    pub fn evm_address(&self) -> EvmAddress {
        evm_address(self.evm_key.verifying_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evm_address_matches_a_known_vector() {
        // The first account of the well-known "test test … junk" mnemonic used by anvil/hardhat.
        let secret = cdrchain_runtime::Hash32::from_hex(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .unwrap();
        let key = k256::ecdsa::SigningKey::from_bytes(&secret.0.into()).unwrap();
        assert_eq!(evm_address(key.verifying_key()).to_hex(), "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266");
    }

    #[test]
    fn peer_ids_have_the_libp2p_ed25519_form() {
        let alice = DevAccount::derive("alice");
        let peer = alice.peer_id();
        assert!(peer.starts_with("12D3KooW"), "{peer}");
        check_peer_id(&peer).unwrap();
        assert!(check_peer_id("not-base58-0OIl").is_err());
        assert!(check_peer_id("").is_err());
        // Base58 that is not a multihash.
        assert!(check_peer_id(&bs58::encode([1u8, 2, 3]).into_string()).is_err());
    }

    #[test]
    fn dev_accounts_are_distinct_and_stable() {
        let keys: Vec<_> = DEV_ACCOUNT_NAMES.iter().map(|n| DevAccount::derive(n).public_key()).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(DevAccount::derive("alice").public_key(), keys[0]);
    }
}

/// A key file as `cdrchain key generate` writes it (mode 0600) and the node reads it (`--key`).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// `ed25519` (transactions, votes, libp2p identity), `secp256k1` (RSK checkpoints) or `x25519`
    /// (encryption of interconnect documents).
    pub kind: KeyKind,
    /// The secret, 32 bytes as `0x` hex.
    pub secret: String,
    /// The public key, as hex (for ed25519) or the compressed SEC1 point (secp256k1).
    pub public: String,
    /// The libp2p peer id of an ed25519 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// The EVM address of a secp256k1 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evm_address: Option<EvmAddress>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("kind", &self.kind)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Which curve a key file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Ed25519,
    Secp256k1,
    /// An encryption key (interconnect documents sealed to the operator).
    X25519,
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write key file {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("key file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
    #[error("key file {path} holds a {found:?} key, but a {expected:?} key is needed")]
    WrongKind { path: String, expected: KeyKind, found: KeyKind },
}

impl KeyFile {
    /// A key file for an ed25519 secret.
    pub fn ed25519(secret: &[u8; 32]) -> KeyFile {
        let key = SigningKey::from_bytes(secret);
        let public = key.verifying_key().to_bytes();
        KeyFile {
            kind: KeyKind::Ed25519,
            secret: format!("0x{}", hex_encode(secret)),
            public: format!("0x{}", hex_encode(&public)),
            peer_id: Some(peer_id_of_ed25519(&public)),
            evm_address: None,
        }
    }

    /// A key file for a secp256k1 secret.
    pub fn secp256k1(key: &k256::ecdsa::SigningKey) -> KeyFile {
        let secret: [u8; 32] = key.to_bytes().into();
        let public = key.verifying_key().to_encoded_point(true);
        KeyFile {
            kind: KeyKind::Secp256k1,
            secret: format!("0x{}", hex_encode(&secret)),
            public: format!("0x{}", hex_encode(public.as_bytes())),
            peer_id: None,
            evm_address: Some(evm_address(key.verifying_key())),
        }
    }

    /// A key file for an encryption secret.
    pub fn x25519(secret: &crate::sealing::EncryptionSecret) -> KeyFile {
        KeyFile {
            kind: KeyKind::X25519,
            secret: format!("0x{}", hex_encode(secret.bytes())),
            public: secret.public().to_hex(),
            peer_id: None,
            evm_address: None,
        }
    }

    fn secret_bytes(&self, path: &str) -> Result<[u8; 32], KeyFileError> {
        let hash = cdrchain_runtime::Hash32::from_hex(&self.secret).map_err(|e| KeyFileError::Invalid {
            path: path.to_string(),
            reason: format!("`secret`: {e}"),
        })?;
        Ok(hash.0)
    }

    /// Reads a key file, checking that its public parts match its secret.
    pub fn read(path: &std::path::Path) -> Result<KeyFile, KeyFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| KeyFileError::Read { path: shown.clone(), source })?;
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| KeyFileError::Invalid { path: shown.clone(), reason: e.to_string() })?;
        let secret = file.secret_bytes(&shown)?;
        let again = match file.kind {
            KeyKind::Ed25519 => KeyFile::ed25519(&secret),
            KeyKind::Secp256k1 => {
                KeyFile::secp256k1(&k256::ecdsa::SigningKey::from_bytes(&secret.into()).map_err(|e| {
                    KeyFileError::Invalid {
                        path: shown.clone(),
                        reason: format!("`secret` is not a secp256k1 scalar: {e}"),
                    }
                })?)
            }
            KeyKind::X25519 => KeyFile::x25519(&crate::sealing::EncryptionSecret::from_bytes(secret)),
        };
        if again.public.to_lowercase() != file.public.to_lowercase() {
            return Err(KeyFileError::Invalid {
                path: shown,
                reason: format!(
                    "`public` {} does not belong to the secret (expected {})",
                    file.public, again.public
                ),
            });
        }
        Ok(again)
    }

    /// The ed25519 signing key, refusing other kinds.
    pub fn ed25519_key(&self, path: &str) -> Result<SigningKey, KeyFileError> {
        if self.kind != KeyKind::Ed25519 {
            return Err(KeyFileError::WrongKind {
                path: path.into(),
                expected: KeyKind::Ed25519,
                found: self.kind,
            });
        }
        Ok(SigningKey::from_bytes(&self.secret_bytes(path)?))
    }

    /// The secp256k1 signing key, refusing other kinds.
    pub fn secp256k1_key(&self, path: &str) -> Result<k256::ecdsa::SigningKey, KeyFileError> {
        if self.kind != KeyKind::Secp256k1 {
            return Err(KeyFileError::WrongKind {
                path: path.into(),
                expected: KeyKind::Secp256k1,
                found: self.kind,
            });
        }
        k256::ecdsa::SigningKey::from_bytes(&self.secret_bytes(path)?.into())
            .map_err(|e| KeyFileError::Invalid { path: path.into(), reason: e.to_string() })
    }

    /// The encryption secret, refusing other kinds.
    pub fn encryption_secret(&self, path: &str) -> Result<crate::sealing::EncryptionSecret, KeyFileError> {
        if self.kind != KeyKind::X25519 {
            return Err(KeyFileError::WrongKind {
                path: path.into(),
                expected: KeyKind::X25519,
                found: self.kind,
            });
        }
        Ok(crate::sealing::EncryptionSecret::from_bytes(self.secret_bytes(path)?))
    }

    /// Writes the key file with mode 0600, refusing to overwrite an existing file.
    pub fn write_new(&self, path: &std::path::Path) -> Result<(), KeyFileError> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let shown = path.display().to_string();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file =
            options.open(path).map_err(|source| KeyFileError::Write { path: shown.clone(), source })?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| KeyFileError::Invalid { path: shown.clone(), reason: e.to_string() })?;
        file.write_all(format!("{text}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| KeyFileError::Write { path: shown, source })
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod key_file_tests {
    use super::*;

    #[test]
    fn key_files_round_trip_with_mode_0600_and_refuse_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let alice = DevAccount::derive("alice");
        let ed = KeyFile::ed25519(&alice.signing_key.to_bytes());
        let path = dir.path().join("ed.json");
        ed.write_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(ed.write_new(&path).is_err(), "an existing key file is never overwritten");
        let read = KeyFile::read(&path).unwrap();
        assert_eq!(read.ed25519_key("x").unwrap().to_bytes(), alice.signing_key.to_bytes());
        assert_eq!(read.peer_id.as_deref(), Some(peer_id_of_ed25519(&alice.public_key().0).as_str()));
        assert!(matches!(read.secp256k1_key("x"), Err(KeyFileError::WrongKind { .. })));

        let secp = KeyFile::secp256k1(&alice.evm_key);
        let path = dir.path().join("secp.json");
        secp.write_new(&path).unwrap();
        let read = KeyFile::read(&path).unwrap();
        assert_eq!(read.evm_address, Some(alice.evm_address()));

        let mut tampered = ed.clone();
        tampered.public = KeyFile::ed25519(&[9; 32]).public;
        let path = dir.path().join("bad.json");
        std::fs::write(&path, serde_json::to_string(&tampered).unwrap()).unwrap();
        let error = KeyFile::read(&path).unwrap_err().to_string();
        assert!(error.contains("does not belong to the secret") && error.contains("bad.json"), "{error}");
    }
}
