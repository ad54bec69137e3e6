//! Node configuration, as the CLI assembles it, and the start-up check of its limits
//! ([`check_limits`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cdrchain_chain_spec::ChainSpec;
use cdrchain_runtime::block::MAX_BLOCK_BYTES_CEILING;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::numbering::NumberRules;
use cdrchain_runtime::party::PartyHasher;
use cdrchain_runtime::tx::MAX_CDRS_PER_BATCH;

use crate::ingest::MAX_BATCH_BYTES;

/// Everything a node needs to run.
pub struct NodeConfig {
    pub spec: ChainSpec,
    /// Where the database lives (`<base>/chains/<id>/db`).
    pub base_path: PathBuf,
    /// This node's operator, and the keys it holds for it: the chain registers one of them (a
    /// rotation in flight: the other is the next; see `keys`).
    pub operator: OperatorId,
    pub keys: crate::keys::KeyRing,
    /// JSON-RPC + HTTP ingest address.
    pub rpc_addr: SocketAddr,
    /// Required on write methods and ingest when `rpc_addr` is not loopback.
    pub rpc_token: Option<String>,
    /// Tokens with roles (the configuration file's `[[rpc_tokens]]`), besides `rpc_token`.
    pub rpc_role_tokens: Vec<crate::rpc::access::Token>,
    /// Prometheus address; `None` disables metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Normalizes and hashes parties; keyed by the consortium secret. `None`: the node has no
    /// secret and refuses ingest (it still validates and serves the chain).
    pub parties: Option<PartyHasher>,
    /// How each source writes numbers, applied before parties are hashed.
    pub number_rules: Arc<NumberRules>,
    /// Most CDRs per signed batch.
    pub batch_max_cdrs: usize,
    /// How long the batcher waits to fill a batch.
    pub batch_linger: Duration,
    /// Most transactions waiting in the pool.
    pub pool_max_txs: usize,
    /// Most encoded bytes waiting in the pool (each other operator gets an equal share).
    pub pool_max_bytes: usize,
    /// Most CDRs acknowledged by ingest and not yet committed; beyond it ingest answers 503.
    pub max_queue: u64,
    /// The longest an acknowledged CDR should wait for its block; beyond what the chain commits
    /// in 40 % of it, ingest answers 503 (see `ingest::admission`). Zero: no time limit.
    pub max_queue_wait: Duration,
    /// Ingest answers 503 while the database's disk has fewer bytes free (the rest is kept for
    /// committing what was acknowledged). Zero: no reserve.
    pub min_free_disk_bytes: u64,
    /// The p2p network; `None` runs without one (a single-validator chain only).
    pub network: Option<NetworkSettings>,
    /// Consensus timeouts.
    pub consensus: cdrchain_consensus::Params,
    /// The validator's signing state: its last consensus WAL record, outside the database
    /// (`validator::SigningState`). Default [`NodeConfig::default_signing_state`].
    pub signing_state: Option<PathBuf>,
    /// Signs RSK checkpoints, when set, for this contract, with the key ring's secp256k1 key that
    /// the chain registers.
    pub checkpoints: Option<CheckpointSigning>,
    /// Reads the RSK anchor, when set (`--rsk-rpc`; see `anchor`).
    pub anchor: Option<crate::anchor::AnchorSettings>,
}

/// What a validator signs checkpoints for (the key is the ring's secp256k1 key in force).
#[derive(Clone, Debug)]
pub struct CheckpointSigning {
    /// The `CdrCheckpoint` contract (EIP-712 `verifyingContract`).
    pub contract: cdrchain_runtime::crypto::EvmAddress,
}

/// How this node joins the validators' network.
#[derive(Clone)]
pub struct NetworkSettings {
    /// The ed25519 secret of the node's libp2p identity (its peer id is in the chain spec).
    pub secret: [u8; 32],
    pub listen: Vec<cdrchain_network::Multiaddr>,
    pub bootnodes: Vec<cdrchain_network::Multiaddr>,
}

impl std::fmt::Debug for NetworkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSettings")
            .field("listen", &self.listen)
            .field("bootnodes", &self.bootnodes)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("chain", &self.spec.id)
            .field("base_path", &self.base_path)
            .field("operator", &self.operator)
            .field("rpc_addr", &self.rpc_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

impl NodeConfig {
    /// The database directory for this chain under the base path.
    pub fn database_path(&self) -> PathBuf {
        database_path(&self.base_path, &self.spec.id)
    }

    /// Every token the RPC takes: `rpc_token` with every role, and the configured ones.
    pub fn rpc_tokens(&self) -> crate::rpc::access::Tokens {
        use crate::rpc::access::{Grant, Token, Tokens};
        let all = self.rpc_token.iter().map(|secret| Token {
            name: "--rpc-token".into(),
            secret: secret.as_bytes().to_vec(),
            grant: Grant::everything(),
        });
        Tokens::new(all.chain(self.rpc_role_tokens.iter().cloned()).collect())
    }

    /// Where the signing state is kept: as configured, else beside the database
    /// (`<base>/chains/<chain id>/signing-state`), which `purge-chain` does not delete.
    pub fn signing_state_path(&self) -> PathBuf {
        self.signing_state
            .clone()
            .unwrap_or_else(|| self.base_path.join("chains").join(&self.spec.id).join("signing-state"))
    }
}

/// `<base>/chains/<chain id>/db`.
pub fn database_path(base_path: &std::path::Path, chain_id: &str) -> PathBuf {
    base_path.join("chains").join(chain_id).join("db")
}

/// Room for a block's envelope around its encoded bytes in a consensus message or a sync
/// response: the proposal or the header again, the commit certificate, and the framing.
pub const BLOCK_ENVELOPE_BYTES: usize = 64 * 1024;
/// Room for a batch transaction's envelope around its CDRs in a transaction gossip message: the
/// operator, the first sequence, the signature, and the framing.
pub const BATCH_ENVELOPE_BYTES: usize = 64 * 1024;

// Sync frames carry a u32 length prefix: a response raised to hold the largest block still fits.
const _: () = assert!(MAX_BLOCK_BYTES_CEILING + BLOCK_ENVELOPE_BYTES <= u32::MAX as usize);

/// The largest transaction a peer may gossip: a batch of [`MAX_BATCH_BYTES`] with its envelope.
/// Honest batchers stay below it; a larger one is refused before its signature is checked.
pub const MAX_GOSSIPED_TX_BYTES: usize = MAX_BATCH_BYTES + BATCH_ENVELOPE_BYTES;

// The largest sealed interconnect document travels as one transaction too.
const _: () =
    assert!(cdrchain_runtime::interconnect::MAX_SEALED_BYTES + BATCH_ENVELOPE_BYTES <= MAX_GOSSIPED_TX_BYTES);

/// Most CDRs per batch when `--batch-size` is not given (fewer if a block holds fewer).
pub const DEFAULT_BATCH_CDRS: usize = 2_000;

/// The batch size when `--batch-size` is not given: [`DEFAULT_BATCH_CDRS`], or a whole block's
/// CDRs if a block of this chain holds fewer.
pub fn default_batch_cdrs(spec: &ChainSpec) -> usize {
    DEFAULT_BATCH_CDRS.min(usize::try_from(spec.params.max_block_cdrs).unwrap_or(usize::MAX)).max(1)
}

/// Most encoded CDR bytes per batch on this chain: [`MAX_BATCH_BYTES`], or half a block's bytes if
/// that is less, so that a batch always fits in a block beside the block's other transactions
/// (checkpoint signatures go first).
pub fn batch_max_bytes(spec: &ChainSpec) -> usize {
    MAX_BATCH_BYTES.min(usize::try_from(spec.params.max_block_bytes / 2).unwrap_or(usize::MAX))
}

/// A configuration whose limits cannot make progress, or contradict the chain's.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// A full batch would never fit in a block: the block builder stops at the first transaction
    /// that does not fit, so every transaction behind it would wait for ever too.
    #[error(
        "--batch-size {batch_cdrs} is more than the {block_cdrs} CDRs a block of chain `{chain}` holds \
         (max_block_cdrs): a full batch could never be included in a block; use --batch-size \
         {block_cdrs} or less"
    )]
    BatchOverBlock { batch_cdrs: usize, block_cdrs: u32, chain: String },
    /// A pool that holds nothing: no transaction would ever reach a block.
    #[error("--pool-size 0 leaves no room for any transaction; use at least 1 (the default is 4096)")]
    EmptyPool,
    /// A pool too small in bytes for two of this node's batches.
    #[error(
        "--pool-mib gives the pool {pool_bytes} bytes, less than two batches of {batch_bytes} bytes: \
         this node could not keep a batch in flight while the next is signed; use a larger --pool-mib"
    )]
    PoolUnderBatches { pool_bytes: usize, batch_bytes: usize },
    /// The largest batch could not be gossiped to the other validators.
    #[error(
        "a batch takes up to {batch_bytes} bytes, more than the network's transaction gossip limit \
         of {gossip_bytes} bytes: the other validators could not receive it"
    )]
    BatchOverGossip { batch_bytes: usize, gossip_bytes: usize },
}

/// Checks, once at start, the relations between the limits the operator configures and the
/// chain's, and answers the network's limits. Refuses what can never work ([`LimitError`],
/// naming both numbers); adjusts, and says so in the log, what the node has always adjusted:
/// the batch size into 1 to `MAX_CDRS_PER_BATCH`, and the network's consensus message and sync
/// response limits up to the chain's largest block (the dev chain's 64 MiB blocks are larger
/// than the network's defaults).
pub fn check_limits(config: &NodeConfig) -> Result<cdrchain_network::Limits, LimitError> {
    let params = &config.spec.params;
    if config.pool_max_txs == 0 {
        return Err(LimitError::EmptyPool);
    }
    let batch_bytes = batch_max_bytes(&config.spec) + BATCH_ENVELOPE_BYTES;
    if config.pool_max_bytes < 2 * batch_bytes {
        return Err(LimitError::PoolUnderBatches { pool_bytes: config.pool_max_bytes, batch_bytes });
    }
    let batch_cdrs = config.batch_max_cdrs.clamp(1, MAX_CDRS_PER_BATCH);
    if batch_cdrs != config.batch_max_cdrs {
        tracing::warn!(
            target: "cdrchain::node",
            "--batch-size {} taken as {batch_cdrs} (a batch holds 1 to {MAX_CDRS_PER_BATCH} CDRs)",
            config.batch_max_cdrs
        );
    }
    if u64::try_from(batch_cdrs).unwrap_or(u64::MAX) > u64::from(params.max_block_cdrs) {
        return Err(LimitError::BatchOverBlock {
            batch_cdrs,
            block_cdrs: params.max_block_cdrs,
            chain: config.spec.id.clone(),
        });
    }
    // A batch's bytes are half a block's at most (`batch_max_bytes`), so a batch always fits a
    // block; what must still hold is that the largest batch can be gossiped.
    let limits = network_limits(config);
    if MAX_GOSSIPED_TX_BYTES > limits.max_tx_message {
        return Err(LimitError::BatchOverGossip {
            batch_bytes: MAX_GOSSIPED_TX_BYTES,
            gossip_bytes: limits.max_tx_message,
        });
    }
    Ok(limits)
}

/// The network's limits for this chain: the defaults, with the consensus message and sync
/// response limits raised where the chain's largest block (with its envelope) would not fit: a
/// proposal carries a whole block, and so does a sync response (at least one block, with its
/// certificate, whatever the response budget).
fn network_limits(config: &NodeConfig) -> cdrchain_network::Limits {
    let mut limits = cdrchain_network::Limits::default();
    let block_room = usize::try_from(config.spec.params.max_block_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(BLOCK_ENVELOPE_BYTES);
    for (name, limit) in [
        ("consensus message", &mut limits.max_consensus_message),
        ("sync response", &mut limits.max_sync_response),
    ] {
        if *limit < block_room {
            if config.network.is_some() {
                tracing::info!(
                    target: "cdrchain::network",
                    "largest {name} raised from {} to {block_room} bytes: a whole block of chain `{}` \
                     (max_block_bytes {}) must fit",
                    *limit,
                    config.spec.id,
                    config.spec.params.max_block_bytes
                );
            }
            *limit = block_room;
        }
    }
    // One peer's share of the held gossip bytes (half) must hold the largest message.
    let held = limits.max_gossip_message().saturating_mul(GOSSIP_HELD_MESSAGES_OF_MAX_SIZE);
    if limits.gossip_held_bytes < held {
        if config.network.is_some() {
            tracing::info!(
                target: "cdrchain::network",
                "gossip bytes held at once raised from {} to {held}: {GOSSIP_HELD_MESSAGES_OF_MAX_SIZE} of the \
                 largest gossip message ({} bytes)",
                limits.gossip_held_bytes,
                limits.max_gossip_message()
            );
        }
        limits.gossip_held_bytes = held;
    }
    limits
}

/// The held-gossip budget holds at least this many of the largest gossip message (two per peer
/// share: the network requires one).
const GOSSIP_HELD_MESSAGES_OF_MAX_SIZE: usize = 4;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use cdrchain_chain_spec::{ChainSpec, DevAccount};

    fn config(spec: ChainSpec) -> NodeConfig {
        NodeConfig {
            spec,
            base_path: PathBuf::from("/nonexistent"),
            operator: "alice".parse().unwrap(),
            keys: crate::keys::KeyRing::new(DevAccount::derive("alice").signing_key, None, None, None),
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            rpc_token: None,
            rpc_role_tokens: Vec::new(),
            metrics_addr: None,
            parties: None,
            number_rules: Arc::default(),
            batch_max_cdrs: 2_000,
            batch_linger: Duration::from_millis(100),
            pool_max_txs: 4_096,
            pool_max_bytes: crate::pool::DEFAULT_POOL_BYTES,
            max_queue: 10_000_000,
            max_queue_wait: Duration::from_secs(5),
            min_free_disk_bytes: 0,
            network: None,
            consensus: cdrchain_consensus::Params::default(),
            signing_state: None,
            checkpoints: None,
            anchor: None,
        }
    }

    #[test]
    fn a_batch_leaves_half_the_default_transaction_gossip_limit_free() {
        assert!(MAX_BATCH_BYTES * 2 <= cdrchain_network::Limits::default().max_tx_message);
    }

    #[test]
    fn the_built_in_chains_pass_with_the_default_flags_and_get_room_for_their_blocks() {
        for spec in [ChainSpec::dev(), ChainSpec::local()] {
            let block_room = spec.params.max_block_bytes as usize + BLOCK_ENVELOPE_BYTES;
            let limits = check_limits(&config(spec)).unwrap();
            assert!(limits.max_consensus_message >= block_room);
            assert!(limits.max_sync_response >= block_room);
            // One peer's half of the held gossip bytes holds a whole-block proposal, twice.
            assert!(limits.gossip_held_bytes / 2 >= 2 * limits.max_gossip_message());
        }
        // The defaults are kept where a block fits them.
        let limits = check_limits(&config(ChainSpec::local())).unwrap();
        assert_eq!(limits, cdrchain_network::Limits::default());
    }

    #[test]
    fn a_batch_larger_than_a_block_is_refused_naming_both_numbers() {
        let mut spec = ChainSpec::local();
        spec.params.max_block_cdrs = 1_000;
        let error = check_limits(&config(spec)).unwrap_err();
        assert!(matches!(error, LimitError::BatchOverBlock { batch_cdrs: 2_000, block_cdrs: 1_000, .. }));
        let text = error.to_string();
        assert!(text.contains("2000") && text.contains("1000") && text.contains("--batch-size"), "{text}");
        // Clamped first: a batch never holds more than MAX_CDRS_PER_BATCH.
        let mut huge = config(ChainSpec::local());
        huge.batch_max_cdrs = usize::MAX;
        check_limits(&huge).unwrap();
    }

    #[test]
    fn an_empty_pool_is_refused() {
        let mut empty = config(ChainSpec::local());
        empty.pool_max_txs = 0;
        assert!(matches!(check_limits(&empty), Err(LimitError::EmptyPool)));
        let mut tiny = config(ChainSpec::local());
        tiny.pool_max_bytes = MAX_BATCH_BYTES;
        let error = check_limits(&tiny).unwrap_err();
        assert!(matches!(error, LimitError::PoolUnderBatches { .. }), "{error}");
        assert!(error.to_string().contains(&MAX_BATCH_BYTES.to_string()), "{error}");
    }

    #[test]
    fn defaults_follow_a_chain_with_small_blocks() {
        let mut spec = ChainSpec::local();
        spec.params.max_block_cdrs = 1_000;
        spec.params.max_block_bytes = 256 * 1024;
        assert_eq!(default_batch_cdrs(&spec), 1_000);
        assert_eq!(batch_max_bytes(&spec), 128 * 1024);
        let mut small = config(spec);
        small.batch_max_cdrs = default_batch_cdrs(&small.spec);
        check_limits(&small).expect("block-sized defaults pass");
        assert_eq!(default_batch_cdrs(&ChainSpec::local()), DEFAULT_BATCH_CDRS);
        assert_eq!(batch_max_bytes(&ChainSpec::dev()), MAX_BATCH_BYTES);
    }
}
