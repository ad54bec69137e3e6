//! Node configuration, as the CLI assembles it, and the start-up check of its limits
//! ([`check_limits`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cdrchain_chain_spec::ChainSpec;
use cdrchain_runtime::block::MAX_BLOCK_BYTES_CEILING;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::party::PartyHasher;
use cdrchain_runtime::tx::MAX_CDRS_PER_BATCH;
use ed25519_dalek::SigningKey;

use crate::ingest::MAX_BATCH_BYTES;

/// Everything a node needs to run.
pub struct NodeConfig {
    pub spec: ChainSpec,
    /// Where the database lives (`<base>/chains/<id>/db`).
    pub base_path: PathBuf,
    /// This node's operator, and its signing key (must match the spec).
    pub operator: OperatorId,
    pub signing_key: SigningKey,
    /// JSON-RPC + HTTP ingest address.
    pub rpc_addr: SocketAddr,
    /// Required on write methods and ingest when `rpc_addr` is not loopback.
    pub rpc_token: Option<String>,
    /// Prometheus address; `None` disables metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Normalizes and hashes parties; keyed by the consortium secret. `None`: the node has no
    /// secret and refuses ingest (it still validates and serves the chain).
    pub parties: Option<PartyHasher>,
    /// Most CDRs per signed batch.
    pub batch_max_cdrs: usize,
    /// How long the batcher waits to fill a batch.
    pub batch_linger: Duration,
    /// Most transactions waiting in the pool.
    pub pool_max_txs: usize,
    /// Most CDRs acknowledged by ingest and not yet committed; beyond it ingest answers 503.
    pub max_queue: u64,
    /// The p2p network; `None` runs without one (a single-validator chain only).
    pub network: Option<NetworkSettings>,
    /// Consensus timeouts.
    pub consensus: cdrchain_consensus::Params,
    /// Signs RSK checkpoints, when set: this validator's secp256k1 key and the contract the
    /// signatures are for.
    pub checkpoints: Option<CheckpointSigning>,
}

/// What a validator signs checkpoints with.
#[derive(Clone)]
pub struct CheckpointSigning {
    pub evm_key: k256::ecdsa::SigningKey,
    /// The `CdrCheckpoint` contract (EIP-712 `verifyingContract`).
    pub contract: cdrchain_runtime::crypto::EvmAddress,
}

impl std::fmt::Debug for CheckpointSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigning").field("contract", &self.contract).finish_non_exhaustive()
    }
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
    let batch_bytes = MAX_BATCH_BYTES + BATCH_ENVELOPE_BYTES;
    if u64::try_from(batch_bytes).unwrap_or(u64::MAX) > u64::from(params.max_block_bytes) {
        tracing::warn!(
            target: "cdrchain::node",
            "blocks of chain `{}` hold at most {} bytes, less than the {batch_bytes} bytes a batch of \
             large CDRs may take: such a batch would never be included (typical batches fit)",
            config.spec.id,
            params.max_block_bytes
        );
    }
    let limits = network_limits(config);
    if batch_bytes > limits.max_tx_message {
        return Err(LimitError::BatchOverGossip { batch_bytes, gossip_bytes: limits.max_tx_message });
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
    limits
}

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
            signing_key: DevAccount::derive("alice").signing_key,
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            rpc_token: None,
            metrics_addr: None,
            parties: None,
            batch_max_cdrs: 2_000,
            batch_linger: Duration::from_millis(100),
            pool_max_txs: 4_096,
            max_queue: 10_000_000,
            network: None,
            consensus: cdrchain_consensus::Params::default(),
            checkpoints: None,
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
    }
}
