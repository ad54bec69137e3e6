//! RSK checkpoints: what validators sign (an EIP-712 digest the `CdrCheckpoint` contract checks)
//! and how a signature is recovered to its signer's EVM address.
//!
//! Every `checkpoint_interval` blocks the chain records, in its state, the checkpoint of block
//! `h` (written while executing block `h + 1`, when `h`'s hash is known): genesis hash, height,
//! block hash, state root, CDR log root and size. Each validator then signs it with its secp256k1
//! key over the contract's EIP-712 digest and publishes the signature in a `CheckpointSignature`
//! transaction; the runtime checks that the signature recovers to the validator's registered
//! EVM address. A relayer copies checkpoints with a quorum of signatures to the contract.
//!
//! The typed data, exactly as `contracts/src/CdrCheckpoint.sol` hashes it:
//! ```text
//! EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
//!   name "CdrCheckpoint", version "1", chainId = the spec's rsk_chain_id, verifyingContract
//! Checkpoint(bytes32 genesisHash,uint64 height,bytes32 blockHash,bytes32 stateRoot,bytes32 cdrLogRoot,uint64 cdrLogSize)
//! digest = keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(checkpoint))
//! ```
//! Signatures are 65 bytes `r ‖ s ‖ v` with `v` 27 or 28 and a low `s` (EIP-2), as the contract
//! requires. Everything here is pure: signing is deterministic (RFC 6979).

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use crate::codec::hex_bytes;
use crate::crypto::EvmAddress;
use crate::hash::Hash32;
use crate::ids::{Height, OperatorId};

hex_bytes!(
    /// A secp256k1 signature in Ethereum's 65-byte form `r ‖ s ‖ v` (v = 27 or 28).
    EvmSignature,
    65
);

/// The EIP-712 domain name of the contract.
pub const DOMAIN_NAME: &str = "CdrCheckpoint";
/// The EIP-712 domain version of the contract.
pub const DOMAIN_VERSION: &str = "1";
const DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
const CHECKPOINT_TYPE: &str = "Checkpoint(bytes32 genesisHash,uint64 height,bytes32 blockHash,bytes32 stateRoot,bytes32 cdrLogRoot,uint64 cdrLogSize)";

/// What the chain anchors on RSK for block `height`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Checkpoint {
    pub genesis_hash: Hash32,
    pub height: Height,
    pub block_hash: Hash32,
    pub state_root: Hash32,
    pub cdr_log_root: Hash32,
    pub cdr_log_size: u64,
}

/// A validator's signature over a checkpoint, for one contract.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CheckpointSignature {
    /// The validator (its ed25519 key signs the transaction, its EVM key the checkpoint).
    pub operator: OperatorId,
    pub height: Height,
    /// The contract the signature is for (EIP-712 `verifyingContract`).
    pub contract: EvmAddress,
    pub signature: EvmSignature,
}

/// A stored signature: the contract it is for, and the signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct StoredSignature {
    pub contract: EvmAddress,
    pub signature: EvmSignature,
}

/// Why a checkpoint signature does not recover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("v is {0}, expected 27 or 28")]
    BadV(u8),
    #[error("s is in the upper half of the curve order (EIP-2): a malleated signature")]
    HighS,
    #[error("not a valid secp256k1 signature")]
    Invalid,
}

pub(crate) fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

pub(crate) fn word_u64(value: u64) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[24..].copy_from_slice(&value.to_be_bytes());
    word
}

pub(crate) fn word_address(address: &EvmAddress) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&address.0);
    word
}

/// The EIP-712 domain separator of the contract at `contract` on RSK chain `chain_id`.
pub fn domain_separator(chain_id: u64, contract: &EvmAddress) -> [u8; 32] {
    keccak(&[
        &keccak(&[DOMAIN_TYPE.as_bytes()]),
        &keccak(&[DOMAIN_NAME.as_bytes()]),
        &keccak(&[DOMAIN_VERSION.as_bytes()]),
        &word_u64(chain_id),
        &word_address(contract),
    ])
}

impl Checkpoint {
    /// EIP-712 `hashStruct(checkpoint)`.
    pub fn struct_hash(&self) -> [u8; 32] {
        keccak(&[
            &keccak(&[CHECKPOINT_TYPE.as_bytes()]),
            &self.genesis_hash.0,
            &word_u64(self.height.0),
            &self.block_hash.0,
            &self.state_root.0,
            &self.cdr_log_root.0,
            &word_u64(self.cdr_log_size),
        ])
    }

    /// The digest validators sign for the contract at `contract` on RSK chain `chain_id`.
    pub fn digest(&self, chain_id: u64, contract: &EvmAddress) -> [u8; 32] {
        keccak(&[&[0x19, 0x01], &domain_separator(chain_id, contract), &self.struct_hash()])
    }
}

/// Signs `digest` (deterministically) in the contract's form: low `s`, `v` 27 or 28.
pub fn sign_digest(key: &SigningKey, digest: &[u8; 32]) -> Result<EvmSignature, CheckpointError> {
    let (signature, recovery) = key.sign_prehash_recoverable(digest).map_err(|_| CheckpointError::Invalid)?;
    let (signature, recovery) = match signature.normalize_s() {
        Some(low) => (low, RecoveryId::from_byte(recovery.to_byte() ^ 1).ok_or(CheckpointError::Invalid)?),
        None => (signature, recovery),
    };
    let mut bytes = [0u8; 65];
    bytes[..64].copy_from_slice(&signature.to_bytes());
    bytes[64] = 27 + recovery.to_byte();
    Ok(EvmSignature(bytes))
}

/// The EVM address whose key made `signature` over `digest`.
pub fn recover(digest: &[u8; 32], signature: &EvmSignature) -> Result<EvmAddress, CheckpointError> {
    let v = signature.0[64];
    let recovery = match v {
        27 | 28 => RecoveryId::from_byte(v - 27).ok_or(CheckpointError::BadV(v))?,
        other => return Err(CheckpointError::BadV(other)),
    };
    let ecdsa = EcdsaSignature::from_slice(&signature.0[..64]).map_err(|_| CheckpointError::Invalid)?;
    if ecdsa.normalize_s().is_some() {
        return Err(CheckpointError::HighS);
    }
    let key =
        VerifyingKey::recover_from_prehash(digest, &ecdsa, recovery).map_err(|_| CheckpointError::Invalid)?;
    Ok(evm_address(&key))
}

/// The EVM address of a secp256k1 key: the last 20 bytes of keccak256 of the uncompressed point.
pub fn evm_address(key: &VerifyingKey) -> EvmAddress {
    let point = key.to_encoded_point(false);
    let hash = keccak(&[&point.as_bytes()[1..]]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&hash[12..]);
    EvmAddress(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            genesis_hash: Hash32([0x11; 32]),
            height: Height(600),
            block_hash: Hash32([0x22; 32]),
            state_root: Hash32([0x33; 32]),
            cdr_log_root: Hash32([0x44; 32]),
            cdr_log_size: 12_345,
        }
    }

    #[test]
    fn signatures_recover_to_the_signer_and_only_for_their_digest() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let contract = EvmAddress([0x5f; 20]);
        let digest = sample().digest(33, &contract);
        let signature = sign_digest(&key, &digest).unwrap();
        assert_eq!(recover(&digest, &signature).unwrap(), evm_address(key.verifying_key()));
        // Another chain id, contract or field: another digest, another (wrong) signer.
        for other in [
            sample().digest(31, &contract),
            sample().digest(33, &EvmAddress([0x60; 20])),
            Checkpoint { cdr_log_size: 12_346, ..sample() }.digest(33, &contract),
        ] {
            assert_ne!(other, digest);
            assert_ne!(recover(&other, &signature).ok(), Some(evm_address(key.verifying_key())));
        }
        // Malformed: v, high s.
        let mut bad_v = signature;
        bad_v.0[64] = 29;
        assert_eq!(recover(&digest, &bad_v), Err(CheckpointError::BadV(29)));
        let ecdsa = EcdsaSignature::from_slice(&signature.0[..64]).unwrap();
        let high = EcdsaSignature::from_scalars(ecdsa.r(), -*ecdsa.s()).unwrap();
        let mut high_s = signature;
        high_s.0[..64].copy_from_slice(&high.to_bytes());
        high_s.0[64] = 55 - high_s.0[64];
        assert_eq!(recover(&digest, &high_s), Err(CheckpointError::HighS));
    }

    /// The vector `contracts/README.md` records and the forge test `test_TestVector` asserts:
    /// the contract, `cast wallet sign` and this module agree on digest and signature.
    #[test]
    fn the_contracts_test_vector() {
        let contract = EvmAddress::from_hex("0x5FbDB2315678afecb367f032d93F642f64180aa3").unwrap();
        assert_eq!(
            hex::encode(domain_separator(33, &contract)),
            "ed4045da7bf91e132a43f28c61741910404e36d0c051b5cde2f5aaa728753f91"
        );
        let digest = sample().digest(33, &contract);
        assert_eq!(hex::encode(digest), "aecfe10b1fd0f442aea8733cfcfe080f44e85aee931e578812b8a3c0bd80dfcf");
        let mut one = [0u8; 32];
        one[31] = 1;
        let signature = sign_digest(&SigningKey::from_slice(&one).unwrap(), &digest).unwrap();
        assert_eq!(
            hex::encode(&signature.0[..32]),
            "9e4db2f327f2f5d78271901b26e7604fb9bd5b1419ad24c15bf2675a33a1b135"
        );
        assert_eq!(
            hex::encode(&signature.0[32..64]),
            "2c9d77456b580d9a53652c75149bacfbc661b9991bc6fed8add395716bb2b257"
        );
        assert_eq!(signature.0[64], 28);
    }

    #[test]
    fn a_known_key_has_its_known_address() {
        // Private key 1: the well-known address 0x7e5f…bdf.
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = SigningKey::from_slice(&one).unwrap();
        assert_eq!(evm_address(key.verifying_key()).to_hex(), "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
    }
}
