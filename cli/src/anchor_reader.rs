//! `cdrchain node --rsk-rpc`: the node's reader of the `CdrCheckpoint` contract (the node's
//! `anchor` module schedules it and keeps what it reads). Each reading checks the RSK node's
//! chain id and the contract's genesis hash before it trusts the height the contract holds: an
//! anchor of another chain, or on another network, must not look like this chain's.

use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use anyhow::{bail, Context};
use cdrchain_node::anchor::{AnchorReader, ContractReading, ReadFuture};

use crate::rsk::CdrCheckpoint;

/// Reads one contract on one RSK node.
pub struct ContractReader {
    provider: DynProvider,
    /// The URL as given and as parsed: both are cut out of error texts, which the portal shows
    /// to partners (an RSK provider's URL often carries an API key).
    url_forms: [String; 2],
    contract: Address,
    genesis: B256,
    rsk_chain_id: u64,
}

impl ContractReader {
    /// A reader of `contract` on the RSK node at `url`, for the chain of `genesis` anchored on
    /// RSK chain `rsk_chain_id`. Connects lazily: an RSK node that is down at start is an error
    /// of the readings, not of the node's start.
    pub fn new(url: &str, contract: Address, genesis: B256, rsk_chain_id: u64) -> anyhow::Result<Self> {
        let parsed = crate::rsk::rsk_url(url)?;
        let provider = ProviderBuilder::new().connect_http(parsed.clone()).erased();
        Ok(ContractReader {
            provider,
            url_forms: [url.to_string(), parsed.to_string()],
            contract,
            genesis,
            rsk_chain_id,
        })
    }

    async fn read_once(&self) -> anyhow::Result<ContractReading> {
        crate::rsk::chain_id(&self.provider, Some(self.rsk_chain_id)).await?;
        let contract = CdrCheckpoint::new(self.contract, &self.provider);
        let genesis: B256 = contract.genesisHash().call().await.with_context(|| {
            format!("reading genesisHash from {}: is it a CdrCheckpoint contract?", self.contract)
        })?;
        if genesis != self.genesis {
            bail!("contract {} anchors chain {genesis}, not this chain ({})", self.contract, self.genesis);
        }
        let anchored_height: u64 = contract.latestHeight().call().await.context("reading latestHeight")?;
        let rsk_block = self.provider.get_block_number().await.context("eth_blockNumber")?;
        Ok(ContractReading { anchored_height, rsk_block })
    }

    /// `error`'s text without the RSK node's URL.
    fn said(&self, error: &anyhow::Error) -> String {
        let mut text = format!("{error:#}");
        for form in &self.url_forms {
            if !form.is_empty() {
                text = text.replace(form.as_str(), "<--rsk-rpc>");
            }
        }
        text
    }
}

impl AnchorReader for ContractReader {
    fn read(&self) -> ReadFuture<'_> {
        Box::pin(async move { self.read_once().await.map_err(|e| self.said(&e)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_node_is_an_error_of_the_reading_without_the_url() -> anyhow::Result<()> {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}/secret-api-key");
        crate::rsk::install_tls_provider();
        let reader = ContractReader::new(&url, Address::ZERO, B256::ZERO, 33)?;
        let error = reader.read().await.unwrap_err();
        assert!(error.contains("chain id") && !error.contains("secret-api-key"), "{error}");
        Ok(())
    }

    #[test]
    fn only_http_urls_are_taken() {
        assert!(ContractReader::new("ws://127.0.0.1:1", Address::ZERO, B256::ZERO, 33).is_err());
        assert!(ContractReader::new("not a url", Address::ZERO, B256::ZERO, 33).is_err());
    }
}
