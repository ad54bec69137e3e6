//! The `evm-baseline` suite: the original proof of concept's design, one contract transaction
//! per call storing its fields as strings (`contracts/src/CdrBaseline.sol`), on anvil with RSK's
//! regtest chain id, sent from several accounts with their own nonces until every one is mined.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::load::{SYNTHETIC_CALL_MS, SYNTHETIC_EPOCH_MS};
use super::spawn::free_port_run;
use super::Args;
use crate::rsk::CdrBaseline;

/// RSK regtest's chain id, which anvil runs with.
const RSK_REGTEST_CHAIN_ID: u64 = 33;
/// What each sending account is funded with: 1,000 ether, in wei (hex, as anvil takes it).
const ACCOUNT_BALANCE_WEI_HEX: &str = "0x3635C9ADC5DEA00000";
/// Gas limit of one `recordCall` transaction (it stores six strings).
const CALL_GAS_LIMIT: u64 = 400_000;
/// At most this many unmined transactions per account: the offered load follows what the node
/// mines instead of queueing without bound.
const MAX_UNMINED_PER_ACCOUNT: usize = 32;
/// How long anvil may take to start listening.
const ANVIL_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `settle` waits before it looks at the mined nonce again.
const SETTLE_POLL: Duration = Duration::from_millis(5);

pub(super) async fn evm_baseline(args: &Args) -> anyhow::Result<Value> {
    let anvil = args.anvil.clone().unwrap_or_else(|| {
        let local = PathBuf::from("contracts/node_modules/.bin/anvil");
        if local.exists() {
            local
        } else {
            PathBuf::from("anvil")
        }
    });
    let anvil = Anvil::start(&anvil)?;
    let result = offer(args, &anvil.url).await;
    drop(anvil);
    result
}

/// Funds the accounts, deploys the contract, sends from every account for `--duration`, waits
/// until all is mined and checks the contract counted each call once.
async fn offer(args: &Args, url: &str) -> anyhow::Result<Value> {
    let accounts: Vec<PrivateKeySigner> =
        (0..args.connections.max(1)).map(|_| PrivateKeySigner::random()).collect();
    let plain = ProviderBuilder::new().connect_http(url.parse()?);
    for account in &accounts {
        let _: Value = plain
            .raw_request("anvil_setBalance".into(), (account.address(), ACCOUNT_BALANCE_WEI_HEX))
            .await
            .context("funding a benchmark account")?;
    }
    let deployer =
        ProviderBuilder::new().wallet(EthereumWallet::from(accounts[0].clone())).connect_http(url.parse()?);
    let gas_price = plain.get_gas_price().await?;
    eprintln!("evm-baseline: anvil up at {url}; deploying CdrBaseline");
    let contract = CdrBaseline::deploy(&deployer).await.context("deploying CdrBaseline")?;
    eprintln!(
        "evm-baseline: deployed at {}; {} accounts sending for {} s",
        contract.address(),
        args.connections.max(1),
        args.duration
    );
    let to: Address = *contract.address();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for account in accounts {
        let (next, url) = (next.clone(), url.to_string());
        tasks.push(tokio::spawn(send_from(account, url, to, gas_price, next, deadline)));
    }
    let (mut total, mut resent) = (0u64, 0u64);
    for task in tasks {
        let (sent, again) = task.await.context("load task")??;
        total += sent;
        resent += again;
    }
    let seconds = started.elapsed().as_secs_f64();
    let stored: U256 = contract.count().call().await.context("reading the contract's count")?;
    if stored != U256::from(total) {
        bail!("the contract counted {stored} calls, {total} were sent");
    }
    Ok(json!({
        "suite": "evm-baseline",
        "accounts": args.connections.max(1),
        "committed_cdrs": total,
        "committed_cdrs_per_s": (total as f64 / seconds).round(),
        "resent_after_stall": resent,
        "seconds_until_all_mined": (seconds * 100.0).round() / 100.0,
    }))
}

/// One account's load: a `recordCall` transaction for each next call number until `deadline`,
/// then until all are mined. Returns (sent, resent after a stall).
async fn send_from(
    account: PrivateKeySigner,
    url: String,
    to: Address,
    gas_price: u128,
    next: Arc<AtomicU64>,
    deadline: Instant,
) -> anyhow::Result<(u64, u64)> {
    let from = account.address();
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .wallet(EthereumWallet::from(account))
        .connect_http(url.parse()?);
    let first = provider.get_transaction_count(from).pending().await?;
    let mut sender = BaselineSender::new(from, to, gas_price, first);
    while Instant::now() < deadline {
        while sender.unmined.len() >= MAX_UNMINED_PER_ACCOUNT {
            sender.settle(&provider).await?;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        sender.send(&provider, record_call(n)).await?;
    }
    while !sender.unmined.is_empty() {
        sender.settle(&provider).await?;
    }
    Ok((sender.sent, sender.resent))
}

/// The calldata of `recordCall` for synthetic call `n` (the fields the load generator's CDR `n`
/// has, as strings).
fn record_call(n: u64) -> Bytes {
    let start = SYNTHETIC_EPOCH_MS + n;
    CdrBaseline::recordCallCall {
        callId: format!("bench-{n}@load.invalid"),
        caller: format!("+4420794{:05}", n % 100_000),
        callee: format!("+1415555{:04}", n % 10_000),
        startTime: start.to_string(),
        endTime: (start + SYNTHETIC_CALL_MS).to_string(),
        disposition: "answered".into(),
    }
    .abi_encode()
    .into()
}

/// An anvil with RSK's regtest chain id on a free loopback port, killed when dropped.
struct Anvil {
    /// The anvil process, killed on drop.
    child: std::process::Child,
    /// Its JSON-RPC endpoint.
    url: String,
}

impl Anvil {
    fn start(anvil: &std::path::Path) -> anyhow::Result<Anvil> {
        let port = free_port_run(1)?;
        let mut child = Command::new(anvil)
            .args([
                "--chain-id",
                &RSK_REGTEST_CHAIN_ID.to_string(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--hardfork",
                "london",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {} (scripts/contracts.sh install provides it)", anvil.display())
            })?;
        let stdout = child.stdout.take().context("no anvil stdout")?;
        let anvil = Anvil { child, url: format!("http://127.0.0.1:{port}") };
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Listening on") {
                    let _ = send.send(());
                }
            }
        });
        receive.recv_timeout(ANVIL_START_TIMEOUT).context("anvil did not start")?;
        Ok(anvil)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No progress for this long means anvil lost or parked a transaction (below).
const STALL: Duration = Duration::from_secs(3);
/// Resend rounds before the suite gives up with an error instead of waiting forever.
const MAX_RESENDS: u32 = 8;

/// One evm-baseline account's transactions, tracked by nonce rather than by hash.
///
/// Anvil's automine (1.7.1 here) races with concurrent submissions: now and then a transaction
/// is parked in the pool's queue although its nonce is next (foundry-rs/foundry#10122), or a
/// block whose receipts were already served is lost, and the account never advances. Waiting on
/// receipts then waits forever (it hung CI for 600 s). So "mined" means the account's mined
/// transaction count passed the nonce, and after `STALL` without progress every unmined
/// transaction is sent again as a replacement with twice the gas price, which puts the next
/// nonce back in the ready queue. `resent` counts the resends anvil accepted; the contract's own
/// count still has to equal what was sent, once each.
struct BaselineSender {
    /// The sending account.
    from: Address,
    /// The contract.
    to: Address,
    /// The gas price of the next (re)send, in wei; doubled by each resend round so that the
    /// resends replace the originals.
    gas_price: u128,
    /// The nonce of the next new transaction.
    next_nonce: u64,
    /// Sent and not yet mined, oldest first: (nonce, calldata).
    unmined: std::collections::VecDeque<(u64, Bytes)>,
    /// When the mined nonce last advanced (or the last resend): the start of a stall.
    progress_at: Instant,
    /// Resend rounds so far (at most `MAX_RESENDS`).
    rounds: u32,
    /// New transactions sent: what the contract must count.
    sent: u64,
    /// Resends anvil accepted.
    resent: u64,
}

impl BaselineSender {
    fn new(from: Address, to: Address, gas_price: u128, nonce: u64) -> Self {
        BaselineSender {
            from,
            to,
            gas_price,
            next_nonce: nonce,
            unmined: std::collections::VecDeque::new(),
            progress_at: Instant::now(),
            rounds: 0,
            sent: 0,
            resent: 0,
        }
    }

    fn request(&self, nonce: u64, input: Bytes) -> TransactionRequest {
        TransactionRequest::default()
            .with_from(self.from)
            .with_to(self.to)
            .with_input(input)
            .with_nonce(nonce)
            .with_gas_limit(CALL_GAS_LIMIT)
            .with_gas_price(self.gas_price)
            .with_chain_id(RSK_REGTEST_CHAIN_ID)
            .with_value(U256::ZERO)
    }

    async fn send(&mut self, provider: &impl Provider, input: Bytes) -> anyhow::Result<()> {
        let nonce = self.next_nonce;
        let _pending = provider
            .send_transaction(self.request(nonce, input.clone()))
            .await
            .with_context(|| format!("sending call transaction nonce {nonce} from {}", self.from))?;
        self.unmined.push_back((nonce, input));
        self.next_nonce += 1;
        self.sent += 1;
        Ok(())
    }

    /// Drops what is mined; after a stall, resends the rest; gives up after `MAX_RESENDS` rounds.
    async fn settle(&mut self, provider: &impl Provider) -> anyhow::Result<()> {
        let mined = provider
            .get_transaction_count(self.from)
            .latest()
            .await
            .with_context(|| format!("reading the mined nonce of {}", self.from))?;
        let before = self.unmined.len();
        while self.unmined.front().is_some_and(|(nonce, _)| *nonce < mined) {
            self.unmined.pop_front();
        }
        if self.unmined.len() < before {
            self.progress_at = Instant::now();
            return Ok(());
        }
        if self.progress_at.elapsed() < STALL {
            tokio::time::sleep(SETTLE_POLL).await;
            return Ok(());
        }
        if self.rounds == MAX_RESENDS {
            bail!(
                "anvil left nonce {mined} of {} unmined ({} transactions waiting) through {MAX_RESENDS} resends {} s apart",
                self.from,
                self.unmined.len(),
                STALL.as_secs()
            );
        }
        self.rounds += 1;
        self.gas_price *= 2;
        let (mut accepted, mut refused, mut last_error) = (0u64, 0u64, None);
        for (nonce, input) in &self.unmined {
            // A transaction mined meanwhile is refused ("nonce too low"); the next settle sees it.
            match provider.send_transaction(self.request(*nonce, input.clone())).await {
                Ok(_) => accepted += 1,
                Err(error) => {
                    refused += 1;
                    last_error = Some(error.to_string());
                }
            }
        }
        self.resent += accepted;
        eprintln!(
            "evm-baseline: {} stuck at nonce {mined} for {} s; resent its {} unmined transactions at {} wei gas: {accepted} accepted, {refused} refused (last: {})",
            self.from,
            STALL.as_secs(),
            self.unmined.len(),
            self.gas_price,
            last_error.as_deref().unwrap_or("none")
        );
        self.progress_at = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure must fail the test
mod tests {
    use super::*;

    /// A transaction anvil never got (as when it loses a block) leaves the next one queued behind
    /// a nonce gap forever: the sender notices the stall, resends both and sees them mined.
    #[test]
    fn a_lost_transaction_is_resent_after_a_stall() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contracts/node_modules/.bin/anvil");
        assert!(path.exists(), "run scripts/install-deps.sh: {} is missing", path.display());
        let anvil = Anvil::start(&path).unwrap();
        crate::rsk::install_tls_provider();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let account = PrivateKeySigner::random();
            let from = account.address();
            let provider = ProviderBuilder::new()
                .disable_recommended_fillers()
                .wallet(EthereumWallet::from(account))
                .connect_http(anvil.url.parse().unwrap());
            let _: Value = provider
                .raw_request("anvil_setBalance".into(), (from, ACCOUNT_BALANCE_WEI_HEX))
                .await
                .unwrap();
            let gas_price = provider.get_gas_price().await.unwrap();
            let mut sender = BaselineSender::new(from, Address::repeat_byte(0x42), gas_price, 0);
            // Nonce 0 "sent" but lost; nonce 1 really sent, and parked behind the gap.
            sender.unmined.push_back((0, Bytes::from_static(b"lost")));
            sender.next_nonce = 1;
            sender.sent = 1;
            sender.send(&provider, Bytes::from_static(b"parked")).await.unwrap();
            let started = Instant::now();
            while !sender.unmined.is_empty() {
                sender.settle(&provider).await.unwrap();
                // Generous: CI runs this beside other tests on two cores.
                assert!(started.elapsed() < STALL * 6, "not recovered: {:?}", sender.unmined);
            }
            assert!(started.elapsed() >= STALL, "resent before a stall");
            // Nonce 0 is accepted; nonce 1's replacement too, unless the original was mined first.
            assert!(sender.rounds >= 1 && sender.resent >= 1, "{} {}", sender.rounds, sender.resent);
            assert_eq!(provider.get_transaction_count(from).latest().await.unwrap(), 2);
        });
    }
}
