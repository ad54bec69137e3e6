//! Headers, blocks, votes and commit certificates.
//!
//! A header commits to its parent, the transactions (`tx_root`), the CDR log after the block
//! (`cdr_log_root`, `cdr_log_size`) and the whole state (`state_root`). The log size lives in the
//! signed header because Merkle proofs alone do not authenticate a tree's size. A block is final
//! when more than two thirds of the authorities precommit its hash; those signatures are its
//! [`CommitCertificate`].

use std::collections::BTreeSet;

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::codec::{decode_exact, BoundedVec};
use crate::crypto::{self, PublicKey, Signature, SignatureError};
use crate::hash::{context, hash_with, Hash32};
use crate::ids::{Height, OperatorId, Round};
use crate::tx::SignedTransaction;

/// Most transactions one block may carry (checked when decoding).
pub const MAX_TRANSACTIONS_PER_BLOCK: usize = 65_536;
/// Most authorities a chain may have (checked when decoding certificates).
pub const MAX_AUTHORITIES: usize = 256;
/// The hard ceiling on an encoded block, whatever a chain spec says: 64 MiB.
pub const MAX_BLOCK_BYTES_CEILING: usize = 64 * 1024 * 1024;

/// A block header.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Header {
    /// The parent header's hash; for height 1, the genesis hash.
    pub parent_hash: Hash32,
    pub number: Height,
    /// The proposer's wall clock when it built the block, ms since the Unix epoch. An input to the
    /// runtime, never read by it; never lower than the parent's.
    pub timestamp_ms: u64,
    pub proposer: OperatorId,
    pub tx_root: Hash32,
    pub cdr_log_root: Hash32,
    pub cdr_log_size: u64,
    pub state_root: Hash32,
}

impl Header {
    pub fn hash(&self) -> Hash32 {
        hash_with(context::HEADER, &[&self.encode()])
    }
}

/// A header and its transactions.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Block {
    pub header: Header,
    pub transactions: BoundedVec<SignedTransaction, MAX_TRANSACTIONS_PER_BLOCK>,
}

/// Why block bytes were refused before or while decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockDecodeError {
    #[error("block of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("block bytes do not decode: {reason}")]
    Malformed { reason: String },
}

impl Block {
    pub fn hash(&self) -> Hash32 {
        self.header.hash()
    }

    /// Decodes a block from `bytes`, refusing more than `max_bytes` (capped by
    /// [`MAX_BLOCK_BYTES_CEILING`]) before decoding anything.
    pub fn decode_bounded(bytes: &[u8], max_bytes: usize) -> Result<Block, BlockDecodeError> {
        let max = max_bytes.min(MAX_BLOCK_BYTES_CEILING);
        if bytes.len() > max {
            return Err(BlockDecodeError::TooLarge { len: bytes.len(), max });
        }
        decode_exact(bytes).map_err(|e| BlockDecodeError::Malformed { reason: e.to_string() })
    }

    pub fn cdr_count(&self) -> usize {
        self.transactions.iter().map(|tx| tx.transaction.cdr_count()).sum()
    }
}

/// The two voting steps of a round.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum VoteKind {
    #[codec(index = 0)]
    Prevote,
    #[codec(index = 1)]
    Precommit,
}

/// A prevote or precommit for a block hash (or for nothing: `nil`).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Vote {
    pub kind: VoteKind,
    pub height: Height,
    pub round: Round,
    pub block_hash: Option<Hash32>,
}

impl Vote {
    /// The message a validator signs: bound to the chain by its genesis hash.
    pub fn signing_message(&self, genesis_hash: &Hash32) -> Hash32 {
        hash_with(context::VOTE, &[&genesis_hash.0, &self.encode()])
    }
}

/// One authority's precommit signature within a certificate.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CommitSignature {
    pub authority: OperatorId,
    pub signature: Signature,
}

/// Precommits from more than two thirds of the authorities for one block: proof of finality.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct CommitCertificate {
    pub height: Height,
    pub round: Round,
    pub block_hash: Hash32,
    pub signatures: BoundedVec<CommitSignature, MAX_AUTHORITIES>,
}

/// Why a commit certificate does not prove finality.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate is for block {certificate} but the header hashes to {header}")]
    WrongBlock { certificate: Hash32, header: Hash32 },
    #[error("certificate is for height {certificate} but the header is at height {header}")]
    WrongHeight { certificate: Height, header: Height },
    #[error("`{authority}` signed the certificate but is not an authority")]
    NotAnAuthority { authority: OperatorId },
    #[error("`{authority}` signed the certificate twice")]
    DuplicateSigner { authority: OperatorId },
    #[error("{signed} of {total} authorities signed; more than two thirds ({needed}) are needed")]
    NoQuorum { signed: usize, total: usize, needed: usize },
    #[error("precommit signature of `{authority}` does not verify: {source}")]
    BadSignature { authority: OperatorId, source: SignatureError },
}

/// The smallest number of votes that is more than two thirds of `n`.
pub fn quorum(n: usize) -> usize {
    n * 2 / 3 + 1
}

impl CommitCertificate {
    /// The precommit each signature covers.
    pub fn vote(&self) -> Vote {
        Vote {
            kind: VoteKind::Precommit,
            height: self.height,
            round: self.round,
            block_hash: Some(self.block_hash),
        }
    }

    /// Checks that this certificate finalizes `header` under `authorities`: distinct signers, all
    /// authorities, more than two thirds of them, every signature valid.
    pub fn verify(
        &self,
        header: &Header,
        genesis_hash: &Hash32,
        authorities: &[(OperatorId, PublicKey)],
    ) -> Result<(), CertificateError> {
        let header_hash = header.hash();
        if self.block_hash != header_hash {
            return Err(CertificateError::WrongBlock { certificate: self.block_hash, header: header_hash });
        }
        if self.height != header.number {
            return Err(CertificateError::WrongHeight { certificate: self.height, header: header.number });
        }
        let message = self.vote().signing_message(genesis_hash);
        let mut seen = BTreeSet::new();
        for entry in &self.signatures {
            let key = authorities
                .iter()
                .find(|(id, _)| id == &entry.authority)
                .map(|(_, key)| *key)
                .ok_or_else(|| CertificateError::NotAnAuthority { authority: entry.authority.clone() })?;
            if !seen.insert(&entry.authority) {
                return Err(CertificateError::DuplicateSigner { authority: entry.authority.clone() });
            }
            // Strict, one by one: a certificate holds at most one signature per authority, and
            // offline verifiers must reach exactly the verdict the validators reached.
            crypto::verify(&key, &message, &entry.signature).map_err(|source| {
                CertificateError::BadSignature { authority: entry.authority.clone(), source }
            })?;
        }
        let needed = quorum(authorities.len());
        if seen.len() < needed {
            return Err(CertificateError::NoQuorum { signed: seen.len(), total: authorities.len(), needed });
        }
        Ok(())
    }
}
