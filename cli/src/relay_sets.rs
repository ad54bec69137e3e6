//! The relayer keeps the contract's validator set equal to the chain's (issue #27): before any
//! checkpoint, it submits `changeValidators` for each authority-set change the contract has not
//! had, in order, with a quorum of the set the contract holds (the chain's members sign each
//! change on chain: `cdrchain_runtime::governance::contract`). The contract's nonce counts the
//! changes it had, so it holds set `nonce`; the chain's set in force at its next height is the
//! target. A change still short of signatures stops the pass before the checkpoints: those of the
//! new set would be refused by the contract, and those of the old one are superseded.

use alloy::primitives::{Address, Bytes, B256, U256};
use anyhow::{bail, Context};
use cdrchain_node::rpc::api::AuthorityApiClient;
use cdrchain_runtime::checkpoint::EvmSignature;
use cdrchain_runtime::crypto::EvmAddress;
use cdrchain_runtime::governance::contract::ValidatorSetChange;
use serde_json::Value;

use crate::relay::Args;
use crate::rpc_client::RpcClient;
use crate::rsk::{CdrCheckpoint, Rsk};

/// Where the contract's set stands after [`follow`].
pub struct Sets {
    /// `changeValidators` submitted (or, with `--dry-run`, found ready).
    pub submitted: usize,
    /// The contract holds the chain's set in force: checkpoints may follow.
    pub current: bool,
}

type Contract<'a> = CdrCheckpoint::CdrCheckpointInstance<&'a alloy::providers::DynProvider>;

/// Submits the contract's missing set changes, in order, while each has a quorum of the set the
/// contract holds. `rsk_nonce` is the relayer account's next transaction nonce.
pub async fn follow(
    args: &Args,
    node: &RpcClient,
    rsk: &Rsk,
    contract: &Contract<'_>,
    chain_id: u64,
    rsk_nonce: &mut u64,
) -> anyhow::Result<Sets> {
    let chain_set =
        node.ask(node.api().authority_set(None)).await.context("asking the node for its authority set")?;
    let target = chain_set["id"].as_u64().context("the node's authority set has no numeric `id`")?;
    let mut sets = Sets { submitted: 0, current: false };
    loop {
        let held = u64::try_from(contract.nonce().call().await.context("reading the contract's nonce")?)
            .context("the contract's nonce does not fit")?;
        if held >= target {
            sets.current = true;
            return Ok(sets);
        }
        let next = held + 1;
        let value = node
            .ask(node.api().authority_contract_change(next))
            .await
            .with_context(|| format!("asking the node for the contract's change to set {next}"))?;
        if value.is_null() {
            bail!("the node does not know authority set {next} (the contract holds set {held})");
        }
        let change = read_change(&value)?;
        if change.nonce != held {
            bail!(
                "the chain's change to set {next} is for nonce {}, the contract is at {held}: the contract was not \
                 deployed with the genesis set",
                change.nonce
            );
        }
        check_digest(contract, &change, chain_id).await?;
        let validators: Vec<Address> =
            contract.validators().call().await.context("reading the contract's validators")?;
        let threshold = usize::try_from(contract.threshold().call().await.context("reading the threshold")?)
            .context("the contract's threshold does not fit")?;
        let signatures = signatures_for(&value, &change, contract.address(), chain_id, &validators);
        if signatures.len() < threshold {
            println!(
                "waiting: the change to authority set {next} has {} of the {threshold} signatures the contract needs; \
                 checkpoints wait for it",
                signatures.len()
            );
            return Ok(sets);
        }
        let chosen: Vec<Bytes> =
            signatures.iter().take(threshold).map(|(_, s)| Bytes::copy_from_slice(&s.0)).collect();
        if args.dry_run {
            println!("would submit the change to authority set {next} with {} signatures", chosen.len());
            sets.submitted += 1;
            // The contract does not move on a dry run: say what the next would be no further.
            return Ok(sets);
        }
        submit(args, rsk, contract, &change, next, chosen, *rsk_nonce).await?;
        *rsk_nonce += 1;
        sets.submitted += 1;
    }
}

/// The change as the node serves it.
fn read_change(value: &Value) -> anyhow::Result<ValidatorSetChange> {
    let validators = value["validators"]
        .as_array()
        .context("the node's set change has no `validators`")?
        .iter()
        .map(|a| {
            let text = a.as_str().context("a validator address is not text")?;
            EvmAddress::from_hex(text).map_err(|e| anyhow::anyhow!("validator address {text}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threshold = value["threshold"].as_u64().context("the node's set change has no `threshold`")?;
    let nonce = value["nonce"].as_u64().context("the node's set change has no `nonce`")?;
    Ok(ValidatorSetChange { validators, threshold, nonce })
}

/// Refuses a contract whose digest of the change differs from ours (not the expected contract).
async fn check_digest(
    contract: &Contract<'_>,
    change: &ValidatorSetChange,
    chain_id: u64,
) -> anyhow::Result<()> {
    let addresses: Vec<Address> = change.validators.iter().map(|a| Address::from(a.0)).collect();
    let theirs: B256 = contract
        .validatorSetChangeDigest(addresses, U256::from(change.threshold), U256::from(change.nonce))
        .call()
        .await
        .context("reading validatorSetChangeDigest")?;
    if theirs.0 != change.digest(chain_id, &EvmAddress(contract.address().0 .0)) {
        bail!("the contract's digest of the set change differs from ours: not the expected contract");
    }
    Ok(())
}

/// The signatures of the change for this contract that recover to their signers and whose
/// signers the contract holds as validators, ascending by signer (as the contract wants them).
fn signatures_for(
    value: &Value,
    change: &ValidatorSetChange,
    contract: &Address,
    chain_id: u64,
    validators: &[Address],
) -> Vec<(Address, EvmSignature)> {
    let ours = EvmAddress(contract.0 .0);
    let what = format!("the change to set {}", change.nonce + 1);
    let mut signatures =
        crate::relay::recovered_signatures(value, &change.digest(chain_id, &ours), &ours, &what);
    signatures.retain(|(signer, _)| validators.contains(signer));
    signatures
}

/// Sends one `changeValidators` at `nonce` and waits for its receipt and confirmations.
async fn submit(
    args: &Args,
    rsk: &Rsk,
    contract: &Contract<'_>,
    change: &ValidatorSetChange,
    set_id: u64,
    chosen: Vec<Bytes>,
    nonce: u64,
) -> anyhow::Result<()> {
    let addresses: Vec<Address> = change.validators.iter().map(|a| Address::from(a.0)).collect();
    let gas_price = rsk.gas_price().await?;
    let call = contract
        .changeValidators(addresses, U256::from(change.threshold), chosen)
        .gas_price(gas_price)
        .nonce(nonce);
    let what = format!("the change to authority set {set_id}");
    let gas = call.estimate_gas().await.with_context(|| format!("{what}: the contract refuses it"))?;
    let pending = call.gas(gas + gas / 5).send().await.with_context(|| format!("sending {what}"))?;
    let tx = *pending.tx_hash();
    let receipt = crate::rsk::receipt_within(
        pending,
        args.confirmations,
        args.receipt_timeout,
        &what,
        "the next pass starts from the contract's nonce either way",
    )
    .await?;
    if !receipt.status() {
        bail!("{what}: transaction {tx} reverted");
    }
    println!(
        "relayed {what} ({} validators, threshold {}) in RSK transaction {tx}, block {}, gas {}",
        change.validators.len(),
        change.threshold,
        receipt.block_number.unwrap_or_default(),
        receipt.gas_used
    );
    Ok(())
}
