//! cdrchain chain specifications.
//!
//! A chain spec names the chain, lists its operators (ed25519 signing key, libp2p peer id, EVM
//! address), the authorities that validate (in proposer order), and the parameters (block
//! interval and limits, idle heartbeat, checkpoint interval, RSK chain id). Its canonical SCALE
//! encoding, hashed with BLAKE3, is the **genesis hash** that every signature on the chain is
//! bound to; the genesis state follows from it.
//!
//! Built in: `dev` (one validator, `alice`, with a well-known INSECURE key) and `local` (four
//! validators `alice`, `bob`, `charlie`, `dave`, same warning). Any other spec is a JSON file.
//!
//! This crate reads spec files (the one IO it does); it never writes, and never invents keys for a
//! spec: keys come from the spec or from the dev accounts of the built-in specs.

pub mod keys;
pub mod sealing;

use std::path::Path;

use cdrchain_runtime::apply::ChainContext;
use cdrchain_runtime::block::{MAX_AUTHORITIES, MAX_BLOCK_BYTES_CEILING};
use cdrchain_runtime::crypto::{EvmAddress, PublicKey};
use cdrchain_runtime::hash::{context, hash_with, Hash32};
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::interconnect::EncryptionKey;
use cdrchain_runtime::state::{genesis_state_with_keys, GenesisError, MemoryState, OperatorRecord};
use parity_scale_codec::Encode;
use serde::{Deserialize, Serialize};

pub use keys::{DevAccount, DEV_ACCOUNT_NAMES};

/// RSK regtest's chain id, used by the built-in specs (and by anvil in tests).
pub const RSK_REGTEST_CHAIN_ID: u64 = 33;
/// Smallest `max_block_bytes` a spec may set, so that a batch of CDRs fits in a block.
pub const MIN_BLOCK_BYTES: u32 = 64 * 1024;
/// Longest chain id, in characters.
pub const MAX_CHAIN_ID_CHARS: usize = 32;
/// The dev chain's blocks: the node's ceiling in bytes, and four times the default in CDRs (see
/// [`ChainSpec::dev`]).
const DEV_MAX_BLOCK_CDRS: u32 = 200_000;

// Some block size is valid: the smallest allowed is within the node's ceiling.
const _: () = assert!(MIN_BLOCK_BYTES as usize <= MAX_BLOCK_BYTES_CEILING);
// The ceiling is a valid `max_block_bytes` (a u32), so the dev chain can use it.
const _: () = assert!(MAX_BLOCK_BYTES_CEILING <= u32::MAX as usize);

/// A chain specification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Human-readable name.
    pub name: String,
    /// Short machine id (`dev`, `local`, `acme-consortium`): lower-case letters, digits, '-'.
    pub id: String,
    pub operators: Vec<OperatorSpec>,
    /// Operator ids of the validators, in proposer order.
    pub authorities: Vec<OperatorId>,
    pub params: ChainParams,
}

/// One consortium member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSpec {
    pub id: OperatorId,
    /// Signs its transactions and, if an authority, its votes.
    pub ed25519: PublicKey,
    /// Its node's libp2p peer id: only listed peers may connect.
    pub peer_id: String,
    /// Its secp256k1 checkpoint-signing address on RSK.
    pub evm_address: EvmAddress,
    /// Its X25519 encryption key (`cdrchain key generate --scheme x25519`): interconnect
    /// agreements, statements and disputes with it are sealed to this key. Without one, the
    /// operator registers a key on chain before its first agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<EncryptionKey>,
}

/// Chain parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode)]
#[serde(deny_unknown_fields)]
pub struct ChainParams {
    /// Target time between blocks while there is work: a height starts at most this long after
    /// the previous one started (at once if that one took longer).
    pub block_interval_ms: u64,
    /// Largest encoded block.
    pub max_block_bytes: u32,
    /// Most CDRs in one block.
    pub max_block_cdrs: u32,
    /// An empty block is built after this long without any, so liveness is visible.
    pub idle_heartbeat_ms: u64,
    /// Validators sign an RSK checkpoint every this many blocks.
    pub checkpoint_interval: u64,
    /// RSK chain id of the checkpoint contract (30 mainnet, 31 testnet, 33 regtest).
    pub rsk_chain_id: u64,
    /// Address of the deployed checkpoint contract. Deployment configuration, not genesis: it is
    /// left out of the genesis hash, so it can be filled in after the contract is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[codec(skip)]
    pub checkpoint_contract: Option<EvmAddress>,
}

impl Default for ChainParams {
    fn default() -> Self {
        Self {
            block_interval_ms: 500,
            max_block_bytes: 16 * 1024 * 1024,
            max_block_cdrs: 50_000,
            idle_heartbeat_ms: 30_000,
            checkpoint_interval: 600,
            rsk_chain_id: RSK_REGTEST_CHAIN_ID,
            checkpoint_contract: None,
        }
    }
}

/// What is wrong with a spec: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read chain spec {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("chain spec {origin} is not valid JSON for a spec at `{field}` (line {line}, column {column}): {reason}")]
    Json { origin: String, field: String, line: usize, column: usize, reason: String },
    #[error("chain spec `name` is empty")]
    EmptyName,
    #[error("chain spec `id` `{0}` must be 1 to {MAX_CHAIN_ID_CHARS} lower-case letters, digits or '-'")]
    BadId(String),
    #[error("operator `{operator}`: ed25519 key {key} is not usable: {reason}")]
    BadKey { operator: OperatorId, key: PublicKey, reason: String },
    #[error("operator `{operator}`: peer id `{peer_id}` is not a libp2p peer id: {reason}")]
    BadPeerId { operator: OperatorId, peer_id: String, reason: String },
    #[error("operators `{first}` and `{second}` share the {what} {value}")]
    SharedIdentity { first: OperatorId, second: OperatorId, what: &'static str, value: String },
    #[error("the chain needs at least one operator")]
    NoOperators,
    #[error("parameter `{name}` must not be zero")]
    ZeroParameter { name: &'static str },
    #[error("parameter `{name}` = {value} is out of range: {reason}")]
    ParameterOutOfRange { name: &'static str, value: u64, reason: String },
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
}

impl ChainSpec {
    /// The built-in spec `name` (`dev` or `local`), a path to a JSON spec otherwise.
    pub fn load(name_or_path: &str) -> Result<ChainSpec, SpecError> {
        match name_or_path {
            "dev" => Ok(ChainSpec::dev()),
            "local" => Ok(ChainSpec::local()),
            path => ChainSpec::from_file(Path::new(path)),
        }
    }

    pub fn from_file(path: &Path) -> Result<ChainSpec, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.display().to_string(), source })?;
        ChainSpec::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates a JSON spec; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<ChainSpec, SpecError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let spec: ChainSpec = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let field = error.path().to_string();
            let inner = error.into_inner();
            SpecError::Json {
                origin: origin.to_string(),
                field,
                line: inner.line(),
                column: inner.column(),
                reason: inner.to_string(),
            }
        })?;
        deserializer.end().map_err(|inner| SpecError::Json {
            origin: origin.to_string(),
            field: ".".into(),
            line: inner.line(),
            column: inner.column(),
            reason: inner.to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Every rule a spec obeys: names, keys, unique identities, authorities, parameters.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.name.trim().is_empty() {
            return Err(SpecError::EmptyName);
        }
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_CHAIN_ID_CHARS
            && self.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(SpecError::BadId(self.id.clone()));
        }
        if self.operators.is_empty() {
            return Err(SpecError::NoOperators);
        }
        for (index, operator) in self.operators.iter().enumerate() {
            operator.ed25519.verifying_key().map_err(|e| SpecError::BadKey {
                operator: operator.id.clone(),
                key: operator.ed25519,
                reason: e.to_string(),
            })?;
            keys::check_peer_id(&operator.peer_id).map_err(|reason| SpecError::BadPeerId {
                operator: operator.id.clone(),
                peer_id: operator.peer_id.clone(),
                reason,
            })?;
            for earlier in &self.operators[..index] {
                let shared = if earlier.id == operator.id {
                    Some(("id", operator.id.to_string()))
                } else if earlier.ed25519 == operator.ed25519 {
                    Some(("ed25519 key", operator.ed25519.to_hex()))
                } else if earlier.peer_id == operator.peer_id {
                    Some(("peer id", operator.peer_id.clone()))
                } else if earlier.evm_address == operator.evm_address {
                    Some(("EVM address", operator.evm_address.to_hex()))
                } else if let (Some(key), true) =
                    (operator.encryption_key, earlier.encryption_key == operator.encryption_key)
                {
                    Some(("encryption key", key.to_hex()))
                } else {
                    None
                };
                if let Some((what, value)) = shared {
                    return Err(SpecError::SharedIdentity {
                        first: earlier.id.clone(),
                        second: operator.id.clone(),
                        what,
                        value,
                    });
                }
            }
        }
        self.params.validate()?;
        // Authorities: at least one, known, distinct, bounded (the genesis state checks these).
        genesis_state_with_keys(&self.operator_records(), &self.authorities, &self.encryption_keys())?;
        if self.authorities.len() > MAX_AUTHORITIES {
            return Err(GenesisError::TooManyAuthorities {
                count: self.authorities.len(),
                max: MAX_AUTHORITIES,
            }
            .into());
        }
        Ok(())
    }

    fn operator_records(&self) -> Vec<(OperatorId, OperatorRecord)> {
        self.operators
            .iter()
            .map(|o| (o.id.clone(), OperatorRecord { signing_key: o.ed25519, evm_address: o.evm_address }))
            .collect()
    }

    /// The canonical SCALE encoding that the genesis hash covers. The checkpoint contract's
    /// address is not part of it (see [`ChainParams::checkpoint_contract`]).
    /// Encryption keys follow, when any operator has one (so specs from before keys existed keep
    /// their genesis hash).
    pub fn genesis_encoding(&self) -> Vec<u8> {
        let operators: Vec<_> =
            self.operators.iter().map(|o| (&o.id, &o.ed25519, o.peer_id.as_str(), &o.evm_address)).collect();
        let mut encoding =
            (self.name.as_str(), self.id.as_str(), operators, &self.authorities, &self.params).encode();
        let keys = self.encryption_keys();
        if !keys.is_empty() {
            keys.encode_to(&mut encoding);
        }
        encoding
    }

    /// BLAKE3 (genesis context) of [`ChainSpec::genesis_encoding`].
    pub fn genesis_hash(&self) -> Hash32 {
        hash_with(context::GENESIS, &[&self.genesis_encoding()])
    }

    /// The state at height 0.
    pub fn genesis_state(&self) -> Result<MemoryState, SpecError> {
        Ok(genesis_state_with_keys(&self.operator_records(), &self.authorities, &self.encryption_keys())?)
    }

    /// The operators' encryption keys, in the spec's order.
    pub fn encryption_keys(&self) -> Vec<(OperatorId, EncryptionKey)> {
        self.operators.iter().filter_map(|o| o.encryption_key.map(|key| (o.id.clone(), key))).collect()
    }

    /// What the runtime needs from the spec.
    pub fn chain_context(&self) -> ChainContext {
        ChainContext {
            genesis_hash: self.genesis_hash(),
            max_block_bytes: usize::try_from(self.params.max_block_bytes).unwrap_or(usize::MAX),
            max_block_cdrs: usize::try_from(self.params.max_block_cdrs).unwrap_or(usize::MAX),
            checkpoint_interval: self.params.checkpoint_interval,
            rsk_chain_id: self.params.rsk_chain_id,
        }
    }

    /// The authorities with their keys, in proposer order.
    pub fn authority_keys(&self) -> Vec<(OperatorId, PublicKey)> {
        self.authorities.iter().filter_map(|id| self.operator(id).map(|o| (id.clone(), o.ed25519))).collect()
    }

    pub fn operator(&self, id: &OperatorId) -> Option<&OperatorSpec> {
        self.operators.iter().find(|o| &o.id == id)
    }

    /// A spec whose operators are the given dev accounts, all of them authorities.
    fn from_dev_accounts(name: &str, id: &str, accounts: &[&'static str]) -> ChainSpec {
        let operators: Vec<OperatorSpec> = accounts
            .iter()
            .map(|name| {
                let account = DevAccount::derive(name);
                OperatorSpec {
                    // Dev account names are valid operator ids by construction (a test checks).
                    id: OperatorId::new(*name).unwrap_or_else(|_| unreachable_dev_name(name)),
                    ed25519: account.public_key(),
                    peer_id: account.peer_id(),
                    evm_address: account.evm_address(),
                    encryption_key: Some(account.encryption.public()),
                }
            })
            .collect();
        ChainSpec {
            name: name.to_string(),
            id: id.to_string(),
            authorities: operators.iter().map(|o| o.id.clone()).collect(),
            operators,
            params: ChainParams::default(),
        }
    }

    /// The single-validator development chain. Its key is public knowledge: INSECURE.
    ///
    /// Its blocks are four times larger than the default (200,000 CDRs, 64 MiB, the node's
    /// ceiling): with one validator nothing is gossiped or voted on, so a block costs only its
    /// commit, and 50,000 CDRs every 500 ms (100,000/s) capped the dev chain below what the
    /// node can store.
    pub fn dev() -> ChainSpec {
        let mut spec =
            ChainSpec::from_dev_accounts("Development (INSECURE well-known key)", "dev", &["alice"]);
        spec.params.max_block_cdrs = DEV_MAX_BLOCK_CDRS;
        spec.params.max_block_bytes = u32::try_from(MAX_BLOCK_BYTES_CEILING).unwrap_or(u32::MAX);
        spec
    }

    /// The four-validator local testnet (`alice`, `bob`, `charlie`, `dave`). INSECURE keys.
    pub fn local() -> ChainSpec {
        ChainSpec::from_dev_accounts("Local testnet (INSECURE well-known keys)", "local", &DEV_ACCOUNT_NAMES)
    }

    /// Whether this spec's operators use the public dev accounts' keys.
    pub fn uses_dev_keys(&self) -> bool {
        self.operators
            .iter()
            .any(|o| DEV_ACCOUNT_NAMES.iter().any(|name| DevAccount::derive(name).public_key() == o.ed25519))
    }
}

#[allow(clippy::panic)]
fn unreachable_dev_name(name: &str) -> ! {
    // DEV_ACCOUNT_NAMES are constants checked by a unit test; reaching this is a build defect.
    panic!("dev account name `{name}` is not a valid operator id")
}

impl ChainParams {
    fn validate(&self) -> Result<(), SpecError> {
        let nonzero = [
            ("block_interval_ms", self.block_interval_ms),
            ("max_block_bytes", u64::from(self.max_block_bytes)),
            ("max_block_cdrs", u64::from(self.max_block_cdrs)),
            ("idle_heartbeat_ms", self.idle_heartbeat_ms),
            ("checkpoint_interval", self.checkpoint_interval),
            ("rsk_chain_id", self.rsk_chain_id),
        ];
        for (name, value) in nonzero {
            if value == 0 {
                return Err(SpecError::ZeroParameter { name });
            }
        }
        let ceiling = u64::try_from(MAX_BLOCK_BYTES_CEILING).unwrap_or(u64::MAX);
        if u64::from(self.max_block_bytes) > ceiling {
            return Err(SpecError::ParameterOutOfRange {
                name: "max_block_bytes",
                value: u64::from(self.max_block_bytes),
                reason: format!("the node's ceiling is {ceiling} bytes"),
            });
        }
        if self.max_block_bytes < MIN_BLOCK_BYTES {
            return Err(SpecError::ParameterOutOfRange {
                name: "max_block_bytes",
                value: u64::from(self.max_block_bytes),
                reason: format!("at least {MIN_BLOCK_BYTES} bytes, so that a batch of CDRs fits"),
            });
        }
        if self.idle_heartbeat_ms < self.block_interval_ms {
            return Err(SpecError::ParameterOutOfRange {
                name: "idle_heartbeat_ms",
                value: self.idle_heartbeat_ms,
                reason: format!("must be at least block_interval_ms ({})", self.block_interval_ms),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
