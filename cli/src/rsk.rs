//! The RSK side: `CdrCheckpoint` bindings (alloy's `sol!` over the committed artifact), the
//! provider and signer setup, and RSK's transaction rules (legacy transactions, a gas price of at
//! least the latest block's `minimumGasPrice`).

use std::path::Path;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use anyhow::{bail, Context};
use cdrchain_chain_spec::keys::KeyFile;
use cdrchain_runtime::checkpoint::Checkpoint;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::Height;

/// Makes ring rustls's process-wide crypto provider, once; later calls do nothing.
///
/// alloy's HTTP transport (reqwest, built with `rustls-no-provider`) takes TLS from rustls's
/// process default and panics when a client is built without one, so `main` calls this before
/// any command runs, and so does every test that builds an RSK provider.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only if another provider is already the default: that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

alloy::sol!(
    #[sol(rpc)]
    #[allow(missing_docs, clippy::too_many_arguments)]
    CdrCheckpoint,
    "../contracts/artifacts/CdrCheckpoint.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[allow(missing_docs, clippy::too_many_arguments)]
    CdrBaseline,
    "../contracts/artifacts/CdrBaseline.json"
);

/// A provider that signs with `key` and talks to `url`.
pub struct Rsk {
    pub provider: DynProvider,
    pub signer: Address,
    pub chain_id: u64,
}

/// Reads a secp256k1 key file into a signer.
pub fn signer_from(path: &Path) -> anyhow::Result<PrivateKeySigner> {
    let shown = path.display().to_string();
    let key = KeyFile::read(path)?.secp256k1_key(&shown)?;
    let secret: [u8; 32] = key.to_bytes().into();
    PrivateKeySigner::from_bytes(&B256::from(secret))
        .with_context(|| format!("{shown}: not a usable secp256k1 key"))
}

/// An RSK node's JSON-RPC URL (`--rsk-rpc`): http:// or https://.
pub fn rsk_url(url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed: reqwest::Url = url.parse().with_context(|| format!("--rsk-rpc {url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("--rsk-rpc must be an http:// or https:// URL, not {}://", parsed.scheme());
    }
    Ok(parsed)
}

/// The RSK node's chain id, checked against `expected` when given.
pub async fn chain_id(provider: &DynProvider, expected: Option<u64>) -> anyhow::Result<u64> {
    let chain_id = provider.get_chain_id().await.context("asking the RSK node for its chain id")?;
    if let Some(expected) = expected.filter(|expected| *expected != chain_id) {
        bail!(
            "the RSK node is chain {chain_id}, but the chain spec anchors on chain {expected} \
             (30 mainnet, 31 testnet, 33 regtest)"
        );
    }
    Ok(chain_id)
}

impl Rsk {
    /// Connects, and checks the node's chain id against `expected_chain_id` when given.
    pub async fn connect(url: &str, key: &Path, expected_chain_id: Option<u64>) -> anyhow::Result<Rsk> {
        let signer = signer_from(key)?;
        let address = signer.address();
        let provider =
            ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(rsk_url(url)?).erased();
        let chain_id = chain_id(&provider, expected_chain_id).await?;
        Ok(Rsk { provider, signer: address, chain_id })
    }

    /// The gas price to pay: at least the latest block's `minimumGasPrice` (RSK refuses
    /// transactions below it), and at least what `eth_gasPrice` says.
    pub async fn gas_price(&self) -> anyhow::Result<u128> {
        let suggested = self.provider.get_gas_price().await.context("eth_gasPrice")?;
        let block: serde_json::Value = self
            .provider
            .raw_request("eth_getBlockByNumber".into(), ("latest", false))
            .await
            .context("eth_getBlockByNumber(latest)")?;
        let minimum = block
            .get("minimumGasPrice")
            .and_then(serde_json::Value::as_str)
            .and_then(|hex| u128::from_str_radix(hex.trim_start_matches("0x"), 16).ok());
        Ok(match minimum {
            Some(minimum) => minimum.max(suggested),
            None => suggested,
        })
    }

    /// The next nonce of the signer, counting its pending transactions.
    pub async fn pending_nonce(&self) -> anyhow::Result<u64> {
        self.provider
            .get_transaction_count(self.signer)
            .pending()
            .await
            .context("eth_getTransactionCount(pending)")
    }
}

/// A provider for reading only (no key): `verify` and `proof` read the contract, never write.
pub async fn reader(url: &str) -> anyhow::Result<(DynProvider, u64)> {
    let provider = ProviderBuilder::new().connect_http(rsk_url(url)?).erased();
    let chain_id = chain_id(&provider, None).await.with_context(|| format!("the RSK node at {url}"))?;
    Ok((provider, chain_id))
}

/// Converts the contract's checkpoint to the runtime's.
pub fn from_sol(checkpoint: &CdrCheckpoint::Checkpoint) -> Checkpoint {
    Checkpoint {
        genesis_hash: Hash32(checkpoint.genesisHash.0),
        height: Height(checkpoint.height),
        block_hash: Hash32(checkpoint.blockHash.0),
        state_root: Hash32(checkpoint.stateRoot.0),
        cdr_log_root: Hash32(checkpoint.cdrLogRoot.0),
        cdr_log_size: checkpoint.cdrLogSize,
    }
}

/// The checkpoint `contract` stores at `height` (`None` for the latest); `Ok(None)` when it
/// stores none there.
pub async fn stored_checkpoint(
    provider: &DynProvider,
    contract: Address,
    height: Option<u64>,
) -> anyhow::Result<Option<Checkpoint>> {
    let instance = CdrCheckpoint::new(contract, provider);
    let latest: u64 =
        instance.latestHeight().call().await.with_context(|| {
            format!("reading latestHeight from {contract}: is it a CdrCheckpoint contract?")
        })?;
    let height = height.unwrap_or(latest);
    if height == 0 || height > latest {
        return Ok(None);
    }
    match instance.checkpointAt(height).call().await {
        Ok(checkpoint) => Ok(Some(from_sol(&checkpoint))),
        // Heights between stored ones revert with UnknownCheckpoint.
        Err(e) if e.to_string().contains("revert") => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading checkpointAt({height}) from {contract}")),
    }
}

/// The RSK block in which `contract` stored the checkpoint of `height` (its `CheckpointStored`
/// event), and the node's current block number.
pub async fn stored_in_block(
    provider: &DynProvider,
    contract: Address,
    height: u64,
) -> anyhow::Result<(Option<u64>, u64)> {
    let filter = Filter::new()
        .address(contract)
        .event_signature(CdrCheckpoint::CheckpointStored::SIGNATURE_HASH)
        .topic1(B256::from(U256::from(height)))
        .from_block(0);
    let logs = provider.get_logs(&filter).await.context("eth_getLogs(CheckpointStored)")?;
    let current = provider.get_block_number().await.context("eth_blockNumber")?;
    Ok((logs.first().and_then(|log| log.block_number), current))
}

/// `pending`'s receipt once `confirmations` blocks are on top of it, waiting at most `timeout_s`
/// seconds: a transaction that is never mined (underpriced, dropped) must not hang a cron run.
/// `what` names the transaction in errors; `then` says what to do about a timeout.
pub async fn receipt_within(
    pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    confirmations: u64,
    timeout_s: u64,
    what: &str,
    then: &str,
) -> anyhow::Result<alloy::rpc::types::TransactionReceipt> {
    let hash = *pending.tx_hash();
    let wait = pending.with_required_confirmations(confirmations).get_receipt();
    match tokio::time::timeout(std::time::Duration::from_secs(timeout_s), wait).await {
        Ok(receipt) => receipt.with_context(|| format!("waiting for {what} (transaction {hash})")),
        Err(_) => bail!(
            "no receipt for {what} (transaction {hash}) within {timeout_s} s (--receipt-timeout); \
             it may still be mined: {then}"
        ),
    }
}

/// An EVM address from `0x…` text.
pub fn address(text: &str, what: &str) -> anyhow::Result<Address> {
    text.trim().parse().with_context(|| format!("{what} {text:?} is not a 0x-prefixed 20-byte address"))
}
