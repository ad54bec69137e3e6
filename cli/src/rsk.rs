//! The RSK side: `CdrCheckpoint` bindings (alloy's `sol!` over the committed artifact), the
//! provider and signer setup, and RSK's transaction rules (legacy transactions, a gas price of at
//! least the latest block's `minimumGasPrice`).

use std::path::Path;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context};
use cdrchain_chain_spec::keys::KeyFile;

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

impl Rsk {
    /// Connects, and checks the node's chain id against `expected_chain_id` when given.
    pub async fn connect(url: &str, key: &Path, expected_chain_id: Option<u64>) -> anyhow::Result<Rsk> {
        let signer = signer_from(key)?;
        let address = signer.address();
        let url = url.parse().with_context(|| format!("--rsk-rpc {url:?} is not a URL"))?;
        let provider = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(url).erased();
        let chain_id = provider.get_chain_id().await.context("asking the RSK node for its chain id")?;
        if let Some(expected) = expected_chain_id {
            if chain_id != expected {
                bail!(
                    "the RSK node is chain {chain_id}, but the chain spec anchors on chain {expected} \
                     (30 mainnet, 31 testnet, 33 regtest)"
                );
            }
        }
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

/// An EVM address from `0x…` text.
pub fn address(text: &str, what: &str) -> anyhow::Result<Address> {
    text.trim().parse().with_context(|| format!("{what} {text:?} is not a 0x-prefixed 20-byte address"))
}
