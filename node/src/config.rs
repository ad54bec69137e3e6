//! Node configuration, as the CLI assembles it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cdrchain_chain_spec::ChainSpec;
use cdrchain_runtime::ids::OperatorId;
use cdrchain_runtime::party::PartyHasher;
use ed25519_dalek::SigningKey;

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
