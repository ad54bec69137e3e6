//! `cdrchain testnet`: n validators on this machine, as child processes on loopback ports.
//!
//! Four validators run the built-in `local` chain with the dev accounts alice, bob, charlie and
//! dave (INSECURE keys). Any other number gets a generated chain spec, operator keys, node keys
//! and a consortium secret under the base path (kept, so a second run restarts the same chain).
//! Every validator logs to `<base>/<name>/node.log`. Ctrl-C (or SIGTERM) stops them all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use cdrchain_chain_spec::keys::{evm_address, peer_id_of_ed25519, KeyFile};
use cdrchain_chain_spec::{ChainParams, ChainSpec, OperatorSpec, DEV_ACCOUNT_NAMES};
use cdrchain_runtime::crypto::PublicKey;
use cdrchain_runtime::ids::OperatorId;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many validators (1 to 32). 4 runs the built-in `local` chain.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub validators: usize,

    /// Where the validators keep their databases, keys and logs.
    #[arg(long, value_name = "DIR")]
    pub base_path: PathBuf,

    /// First p2p port; validator i listens on this + i (127.0.0.1).
    #[arg(long, default_value_t = 30333, value_name = "PORT")]
    pub p2p_port: u16,

    /// First JSON-RPC port; validator i serves on this + i (127.0.0.1).
    #[arg(long, default_value_t = 9944, value_name = "PORT")]
    pub rpc_port: u16,

    /// First metrics port; validator i serves on this + i (127.0.0.1).
    #[arg(long, default_value_t = 9615, value_name = "PORT")]
    pub metrics_port: u16,

    /// Sign an RSK checkpoint every N blocks (a chain parameter: the chain gets its own spec
    /// file, `<base>/chain-spec.json`). Default: the spec's (600).
    #[arg(long, value_name = "N")]
    pub checkpoint_interval: Option<u64>,

    /// The `CdrCheckpoint` contract the validators sign checkpoints for (from `cdrchain contract
    /// deploy`). Without it they sign none.
    #[arg(long, value_name = "ADDRESS")]
    pub checkpoint_contract: Option<String>,

    /// Passed to every validator (`cdrchain node --rsk-rpc`): each reads the checkpoint
    /// contract on this RSK node and shows the anchor's lag.
    #[arg(long, value_name = "URL")]
    pub rsk_rpc: Option<String>,

    /// Passed to every validator with --rsk-rpc (`cdrchain node --rsk-poll-interval`).
    #[arg(long, value_name = "SECONDS", requires = "rsk_rpc")]
    pub rsk_poll_interval: Option<u64>,

    /// Passed to every validator (`cdrchain node --max-queue`): most CDRs acknowledged and not
    /// yet committed before ingest answers 503. Default: the node's.
    #[arg(long, value_name = "CDRS")]
    pub max_queue: Option<u64>,

    /// Log filter passed to every validator.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log: String,
}

/// Most validators `cdrchain testnet` starts.
const MAX_VALIDATORS: usize = 32;
/// How often the running validators are checked for an exit.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a validator has to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How one validator is started.
struct Validator {
    /// Its operator name, also the name of its directory under the base path.
    name: String,
    /// The arguments that give it its keys.
    key_args: Vec<String>,
    /// Its libp2p peer id, for the other validators' bootnodes.
    peer_id: String,
}

/// The chain the validators run and how each is started.
struct Chain {
    /// `--chain`: `local`, or the path of a chain spec file.
    chain: String,
    validators: Vec<Validator>,
    /// Arguments every validator gets.
    common: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_ranges(&args)?;
    std::fs::create_dir_all(&args.base_path)
        .with_context(|| format!("creating the base path {}", args.base_path.display()))?;
    let Chain { chain, validators, mut common } = if args.validators == 4 {
        dev_accounts_chain(&args)?
    } else {
        generated_chain(&args.base_path, args.validators, args.checkpoint_interval)?
    };
    if let Some(contract) = &args.checkpoint_contract {
        common.extend(["--checkpoint-contract".to_string(), contract.clone()]);
    }
    let exe = std::env::current_exe().context("finding the cdrchain executable")?;
    common.extend(["--log".to_string(), args.log.clone()]);
    if let Some(url) = &args.rsk_rpc {
        common.extend(["--rsk-rpc".to_string(), url.clone()]);
    }
    if let Some(seconds) = args.rsk_poll_interval {
        common.extend(["--rsk-poll-interval".to_string(), seconds.to_string()]);
    }
    if let Some(max_queue) = args.max_queue {
        common.extend(["--max-queue".to_string(), max_queue.to_string()]);
    }

    let mut children: Vec<(String, Child)> = Vec::new();
    println!(
        "starting {} validators of chain `{chain}` under {}",
        validators.len(),
        args.base_path.display()
    );
    for i in 0..validators.len() {
        let child = start_validator(&args, &exe, &chain, &validators, i, &common)?;
        children.push((validators[i].name.clone(), child));
    }
    println!("Ctrl-C stops them all.");

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(supervise(&args.base_path, &mut children));
    stop_all(&mut children);
    Ok(())
}

/// Refuses a validator count or port ranges out of range.
fn check_ranges(args: &Args) -> anyhow::Result<()> {
    if args.validators == 0 || args.validators > MAX_VALIDATORS {
        bail!("--validators must be between 1 and {MAX_VALIDATORS}, not {}", args.validators);
    }
    let last = u16::try_from(args.validators - 1).unwrap_or(u16::MAX);
    for (what, base) in
        [("--p2p-port", args.p2p_port), ("--rpc-port", args.rpc_port), ("--metrics-port", args.metrics_port)]
    {
        if base == 0 || base.checked_add(last).is_none() {
            bail!("{what} {base}: the ports {base}..{base}+{last} must be real port numbers");
        }
    }
    Ok(())
}

/// The four dev accounts on the built-in `local` chain, or on a copy of its spec with another
/// `--checkpoint-interval`.
fn dev_accounts_chain(args: &Args) -> anyhow::Result<Chain> {
    let chain = match args.checkpoint_interval {
        None => "local".to_string(),
        Some(interval) => {
            let mut spec = ChainSpec::local();
            spec.params.checkpoint_interval = interval;
            spec.validate().context("the local chain spec with --checkpoint-interval")?;
            let path = args.base_path.join("chain-spec.json");
            std::fs::write(&path, spec.to_json()).with_context(|| format!("writing {}", path.display()))?;
            path.display().to_string()
        }
    };
    let validators = DEV_ACCOUNT_NAMES
        .iter()
        .map(|name| Validator {
            name: (*name).to_string(),
            key_args: vec!["--dev-key".into(), (*name).to_string()],
            peer_id: cdrchain_chain_spec::DevAccount::derive(name).peer_id(),
        })
        .collect();
    Ok(Chain { chain, validators, common: Vec::new() })
}

/// Starts validator `i` of `validators`, logging to `<base>/<name>/node.log`, with the others as
/// its bootnodes.
fn start_validator(
    args: &Args,
    exe: &Path,
    chain: &str,
    validators: &[Validator],
    i: usize,
    common: &[String],
) -> anyhow::Result<Child> {
    let v = &validators[i];
    let p2p = |i: usize| format!("/ip4/127.0.0.1/tcp/{}", args.p2p_port as usize + i);
    let dir = args.base_path.join(&v.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = dir.join("node.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let bootnodes: Vec<String> = validators
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(j, other)| format!("{}/p2p/{}", p2p(j), other.peer_id))
        .collect();
    let rpc = format!("127.0.0.1:{}", args.rpc_port as usize + i);
    let metrics = format!("127.0.0.1:{}", args.metrics_port as usize + i);
    let mut command = Command::new(exe);
    command
        .arg("node")
        .args(["--chain", chain])
        .args(&v.key_args)
        .arg("--base-path")
        .arg(&dir)
        .args(["--listen", &p2p(i), "--rpc-addr", &rpc, "--metrics-addr", &metrics])
        .args(common)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file handle")?)
        .stderr(log);
    if !bootnodes.is_empty() {
        command.arg("--bootnodes").arg(bootnodes.join(","));
    }
    let child = command.spawn().with_context(|| format!("starting validator {}", v.name))?;
    println!(
        "  {:<10} rpc http://{rpc}  metrics http://{metrics}/metrics  p2p {}  log {}",
        v.name,
        p2p(i),
        log_path.display()
    );
    Ok(child)
}

/// Waits for Ctrl-C or SIGTERM, or until every validator has exited (each exit is reported with
/// the end of its log, which says why).
async fn supervise(base: &Path, children: &mut Vec<(String, Child)>) {
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let stop = crate::node::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = poll.tick() => {
                for (name, child) in children.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        let log = base.join(name.as_str()).join("node.log");
                        eprintln!("validator {name} exited ({status}); the end of {}:", log.display());
                        eprintln!("{}", log_tail(&log, EXIT_LOG_LINES));
                    }
                }
                children.retain_mut(|(_, child)| !matches!(child.try_wait(), Ok(Some(_))));
                if children.is_empty() {
                    break;
                }
            }
        }
    }
}

/// How many lines of a validator's log are shown when it exits.
const EXIT_LOG_LINES: usize = 8;

/// The last `lines` lines of a log file, or why it cannot be read.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read it: {e})"),
    }
}

/// SIGTERM to each (a clean stop: the block in flight finishes), then SIGKILL after
/// `STOP_GRACE`.
fn stop_all(children: &mut [(String, Child)]) {
    for (name, child) in children.iter() {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        println!("stopping {name}");
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    for (name, child) in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    eprintln!("{name} did not stop in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}

/// A chain of `n` validators with fresh keys, under `base` (reused when already there).
fn generated_chain(base: &Path, n: usize, checkpoint_interval: Option<u64>) -> anyhow::Result<Chain> {
    let spec_path = base.join("chain-spec.json");
    let secret_path = base.join("consortium-secret");
    let names: Vec<String> = (1..=n).map(|i| format!("validator-{i}")).collect();
    if !spec_path.exists() {
        generate(base, &names, checkpoint_interval, &spec_path, &secret_path)?;
    }
    let spec = ChainSpec::from_file(&spec_path)?;
    if let Some(interval) = checkpoint_interval.filter(|i| *i != spec.params.checkpoint_interval) {
        bail!(
            "{} has checkpoint_interval {}, not {interval}: a chain's parameters are fixed at genesis \
             (use a new --base-path for another interval)",
            spec_path.display(),
            spec.params.checkpoint_interval
        );
    }
    let validators = names
        .iter()
        .map(|name| {
            let operator = spec
                .operators
                .iter()
                .find(|o| o.id.as_str() == name)
                .with_context(|| format!("{} has no operator `{name}`", spec_path.display()))?;
            let dir = base.join(name);
            Ok(Validator {
                name: name.clone(),
                key_args: vec![
                    "--key".into(),
                    dir.join("key.json").display().to_string(),
                    "--node-key".into(),
                    dir.join("node-key.json").display().to_string(),
                    "--evm-key".into(),
                    dir.join("evm-key.json").display().to_string(),
                    "--encryption-key".into(),
                    dir.join("encryption-key.json").display().to_string(),
                ],
                peer_id: operator.peer_id.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let common = vec!["--consortium-secret-file".to_string(), secret_path.display().to_string()];
    Ok(Chain { chain: spec_path.display().to_string(), validators, common })
}

/// Fresh keys for each of `names` under `base/<name>/`, a chain spec registering them at
/// `spec_path`, and a consortium secret at `secret_path`.
fn generate(
    base: &Path,
    names: &[String],
    checkpoint_interval: Option<u64>,
    spec_path: &Path,
    secret_path: &Path,
) -> anyhow::Result<()> {
    let n = names.len();
    let mut operators = Vec::new();
    for name in names {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let operator_key = fresh_secret()?;
        let node_key = fresh_secret()?;
        let evm_key = loop {
            if let Ok(key) = k256::ecdsa::SigningKey::from_bytes(&fresh_secret()?.into()) {
                break key;
            }
        };
        KeyFile::ed25519(&operator_key).write_new(&dir.join("key.json"))?;
        KeyFile::ed25519(&node_key).write_new(&dir.join("node-key.json"))?;
        KeyFile::secp256k1(&evm_key).write_new(&dir.join("evm-key.json"))?;
        let encryption = cdrchain_chain_spec::sealing::EncryptionSecret::from_bytes(fresh_secret()?);
        KeyFile::x25519(&encryption).write_new(&dir.join("encryption-key.json"))?;
        let public = ed25519_dalek::SigningKey::from_bytes(&operator_key).verifying_key().to_bytes();
        let node_public = ed25519_dalek::SigningKey::from_bytes(&node_key).verifying_key().to_bytes();
        operators.push(OperatorSpec {
            id: OperatorId::new(name.as_str()).map_err(|e| anyhow::anyhow!("{e}"))?,
            ed25519: PublicKey(public),
            peer_id: peer_id_of_ed25519(&node_public),
            evm_address: evm_address(evm_key.verifying_key()),
            encryption_key: Some(encryption.public()),
        });
    }
    let spec = ChainSpec {
        name: format!("Local testnet of {n} validators"),
        id: format!("local{n}"),
        authorities: operators.iter().map(|o| o.id.clone()).collect(),
        operators,
        params: ChainParams {
            checkpoint_interval: checkpoint_interval.unwrap_or(ChainParams::default().checkpoint_interval),
            ..ChainParams::default()
        },
    };
    spec.validate().context("the generated chain spec")?;
    std::fs::write(spec_path, spec.to_json()).with_context(|| format!("writing {}", spec_path.display()))?;
    let secret = hex::encode(fresh_secret()?);
    std::fs::write(secret_path, secret).with_context(|| format!("writing {}", secret_path.display()))?;
    println!("generated chain spec {} and keys for {n} validators", spec_path.display());
    Ok(())
}

fn fresh_secret() -> anyhow::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).context("reading randomness from the operating system")?;
    Ok(secret)
}
