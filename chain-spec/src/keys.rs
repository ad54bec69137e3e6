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
        DevAccount { name, signing_key, network_secret, evm_key }
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
