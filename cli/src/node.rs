//! `cdrchain node`: run a node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use cdrchain_chain_spec::keys::KeyFile;
use cdrchain_chain_spec::{ChainSpec, DevAccount, DEV_ACCOUNT_NAMES};
use cdrchain_node::NodeConfig;
use cdrchain_runtime::crypto::public_key;
use cdrchain_runtime::party::PartyHasher;

/// The consortium secret of the built-in dev and local chains: public knowledge, INSECURE.
const DEV_CONSORTIUM_SECRET: &[u8] = b"cdrchain dev consortium secret -- INSECURE, public";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run the single-validator development chain: `--chain dev`, alice's well-known INSECURE key,
    /// the public dev consortium secret, and a temporary database unless --base-path is given.
    #[arg(long)]
    pub dev: bool,

    /// Which chain: `dev`, `local`, or the path of a JSON chain spec.
    #[arg(long, value_name = "dev|local|PATH")]
    pub chain: Option<String>,

    /// Where the node keeps its database (`<base>/chains/<chain id>/db`).
    #[arg(long, value_name = "DIR", env = "CDRCHAIN_BASE_PATH")]
    pub base_path: Option<PathBuf>,

    /// Use a fresh temporary base path, deleted when the node stops.
    #[arg(long, conflicts_with = "base_path")]
    pub tmp: bool,

    /// The operator's ed25519 key file (from `cdrchain key generate`); the operator is the one the
    /// chain spec registers with this key. `dev:NAME` takes a built-in dev account's key (only on
    /// chains that use the dev keys).
    #[arg(long, value_name = "FILE|dev:NAME")]
    pub key: Option<String>,

    /// A joining operator's id, when its key is not in the chain spec: the node follows the chain
    /// without signing until the authorities add it (`cdrchain authority propose add`).
    #[arg(long, value_name = "ID")]
    pub operator: Option<String>,

    /// Run as a built-in development account (alice, bob, charlie, dave): its INSECURE operator key
    /// and node key. Only on the `dev` and `local` chains. Same as `--key dev:NAME`.
    #[arg(long, value_name = "NAME", conflicts_with = "key")]
    pub dev_key: Option<String>,

    /// The node's libp2p identity: an ed25519 key file from `cdrchain key generate --scheme
    /// ed25519`, whose peer id the chain spec lists for this operator. Default:
    /// `<base-path>/node-key.json`. The node never invents one.
    #[arg(long, value_name = "FILE")]
    pub node_key: Option<PathBuf>,

    /// The validator's secp256k1 key file (`cdrchain key generate --scheme secp256k1`) that signs
    /// RSK checkpoints; its address must be the one the chain registers for the operator.
    /// Default on dev and local chains: the dev account's key.
    #[arg(long, value_name = "FILE")]
    pub evm_key: Option<PathBuf>,

    /// The operator's encryption key file (`cdrchain key generate --scheme x25519`), whose
    /// public key the chain registers: the node opens the interconnect agreements sealed to its
    /// operator with it. Default on dev and local chains: the dev account's key.
    #[arg(long, value_name = "FILE")]
    pub encryption_key: Option<PathBuf>,

    /// During a key rotation: the operator's next ed25519 key file. The node keeps signing with
    /// --key until the height the chain's rotation takes effect, and with this key from there on,
    /// without a restart (docs/operations.md, rotating keys).
    #[arg(long, value_name = "FILE")]
    pub next_key: Option<PathBuf>,

    /// During a key rotation: the next secp256k1 key file, used for checkpoints from the height
    /// the chain's rotation takes effect.
    #[arg(long, value_name = "FILE")]
    pub next_evm_key: Option<PathBuf>,

    /// The `CdrCheckpoint` contract the checkpoint signatures are for (0x…; from `cdrchain
    /// contract deploy`). Default: the chain spec's `params.checkpoint_contract`. Without one the
    /// validator signs no checkpoints.
    #[arg(long, value_name = "ADDRESS")]
    pub checkpoint_contract: Option<String>,

    /// An RSK node's JSON-RPC URL (http:// or https://): the node then reads the checkpoint
    /// contract (--checkpoint-contract or the spec's) every --rsk-poll-interval and shows the
    /// latest anchored height and its lag behind the head (`checkpoint_anchor`, the portal's
    /// Chain page, metrics `cdrchain_rsk_anchor_*`). Reading only: relaying is `cdrchain relay`'s.
    #[arg(long, env = "CDRCHAIN_RSK_RPC", value_name = "URL")]
    pub rsk_rpc: Option<String>,

    /// Seconds between two readings of the RSK contract (1 to 3600).
    #[arg(long, default_value_t = cdrchain_node::anchor::DEFAULT_POLL_S, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(
              cdrchain_node::anchor::MIN_POLL_S..=cdrchain_node::anchor::MAX_POLL_S))]
    pub rsk_poll_interval: u64,

    /// p2p listen address (multiaddr), repeatable. Default on multi-validator chains:
    /// /ip4/0.0.0.0/tcp/30333. A single-validator chain runs without p2p unless this is given.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,

    /// Peers to connect to first: multiaddrs ending in /p2p/<peer id>, comma-separated or
    /// repeated; the host by IP (/ip4/, /ip6/) or by DNS name (/dns4/validator.example.net/tcp/
    /// 30333/p2p/…, resolved with the system's resolver, again at every redial). Only peers the
    /// chain spec lists are accepted, whatever is given here. One that cannot be reached is
    /// logged at WARN with the reason, and redialled.
    #[arg(long, value_name = "MULTIADDR", value_delimiter = ',')]
    pub bootnodes: Vec<String>,

    /// Address of JSON-RPC (HTTP and WebSocket) and HTTP ingest. Port 0 picks a free port (the
    /// log says which).
    #[arg(long, default_value = "127.0.0.1:9944", value_name = "IP:PORT")]
    pub rpc_addr: SocketAddr,

    /// Bearer token for write methods and ingest; required when --rpc-addr is not loopback.
    #[arg(long, env = "CDRCHAIN_RPC_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub rpc_token: Option<String>,

    /// Address of the Prometheus endpoint (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:9615", value_name = "IP:PORT")]
    pub metrics_addr: SocketAddr,

    /// Do not serve metrics.
    #[arg(long)]
    pub no_metrics: bool,

    /// File holding the consortium secret that keys party digests (at least 16 bytes; shared by
    /// all operators, never put in the chain spec). The environment variable
    /// CDRCHAIN_CONSORTIUM_SECRET may hold the secret itself instead. Without either, a node of a
    /// non-dev chain runs but refuses ingest; dev and local chains use a public dev secret.
    #[arg(long, env = "CDRCHAIN_CONSORTIUM_SECRET_FILE", value_name = "FILE")]
    pub consortium_secret_file: Option<PathBuf>,

    /// Region (ISO 3166 code such as GB, US, DE) for numbers written in national form.
    #[arg(long, value_name = "CC")]
    pub default_region: Option<String>,

    /// Configuration file (TOML) with per-source number rules (`[[number_rules]]`: how each
    /// switch or trunk writes numbers, so that they hash like their E.164 form; see
    /// docs/ingest.md). A number no rule reads is recorded as written and flagged, never refused.
    #[arg(long, env = "CDRCHAIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Remember the digests of about this many party identities, so that a number seen again
    /// is not parsed again (about 100 bytes each; 0: off).
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub party_cache: usize,

    /// Most CDRs in one signed batch [default: 2000, or a block's max_block_cdrs if fewer].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// How long a partial batch waits for more CDRs before it is signed.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub batch_linger_ms: u64,

    /// Most transactions waiting in the pool.
    #[arg(long, default_value_t = 4_096, value_name = "N")]
    pub pool_size: usize,

    /// Most mebibytes of transactions waiting in the pool; every other operator gets an equal
    /// share, so that one cannot fill it.
    #[arg(long, default_value_t = cdrchain_node::pool::DEFAULT_POOL_BYTES / (1024 * 1024), value_name = "MIB")]
    pub pool_mib: usize,

    /// Most CDRs acknowledged by ingest and not yet in a committed block (they wait, durable,
    /// in the queue on disk). Beyond it ingest refuses submissions whole with HTTP 503 and
    /// Retry-After (JSON-RPC error -32005) until blocks catch up, so a sender faster than the
    /// chain is slowed down rather than every queued CDR waiting longer. The default holds
    /// over an hour of 2,000 calls/s; --max-queue-wait usually refuses long before.
    #[arg(long, default_value_t = 10_000_000, value_name = "CDRS")]
    pub max_queue: u64,

    /// The longest an acknowledged CDR should wait for its block: ingest measures how fast the
    /// chain commits this operator's CDRs and refuses (HTTP 503 with a Retry-After of the time
    /// the queue needs to make room; JSON-RPC -32005) what would queue beyond 40 % of this
    /// (the rest is the block interval, the commit round and the estimate's error). It never refuses while
    /// fewer than 10,000 CDRs wait. 0 turns it off: the node then buffers up to --max-queue
    /// while the chain cannot commit (no quorum), instead of the switches buffering.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS", value_parser = parse_wait)]
    pub max_queue_wait: f64,

    /// Ingest refuses new CDRs (HTTP 503, Retry-After; JSON-RPC -32005) while the disk of the
    /// database has less free space than this, so that the CDRs it acknowledged can still be
    /// committed and the database never meets a full disk; it takes CDRs again as soon as space
    /// is freed. 0 turns the reserve off.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub min_free_disk: u64,

    /// Log filter: `info`, `debug`, `cdrchain=debug,info`, …
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::init_logging(&args.log)?;
    let chain = match (&args.chain, args.dev) {
        (Some(chain), _) => chain.clone(),
        (None, true) => "dev".to_string(),
        (None, false) => bail!("say which chain: --chain dev|local|PATH, or --dev"),
    };
    let spec = ChainSpec::load(&chain).with_context(|| format!("loading chain spec `{chain}`"))?;
    let dev_chain = spec.uses_dev_keys();

    let key_arg = key_arg(&args)?;
    let signing_key = load_key(&key_arg, dev_chain)?;
    let next_key = match &args.next_key {
        Some(path) => Some(KeyFile::read(path)?.ed25519_key(&path.display().to_string())?),
        None => None,
    };
    let operator = operator_of(&args, &spec, &signing_key, next_key.as_ref())?;
    let parties = party_hasher(&args, &spec)?;

    let (base_path, temporary) = base_path(&args)?;
    if dev_chain {
        tracing::warn!(
            "chain `{}` uses the public development keys and secret: for development only",
            spec.id
        );
    }
    tracing::info!("operator `{operator}`, base path {}", base_path.display());

    let network = network_settings(&args, &spec, &base_path, &key_arg)?;
    let (evm_key, next_evm_key) = evm_keys(&args, &spec, &key_arg)?;
    let checkpoints = checkpoint_signing(&args, &spec, evm_key.as_ref())?;
    let anchor = anchor_reading(&args, &spec)?;
    let encryption = encryption_secret(&args, &spec, &key_arg)?;
    let keys = cdrchain_node::keys::KeyRing::new(signing_key, next_key, evm_key, next_evm_key)
        .with_encryption(encryption);

    let batch_max_cdrs = args.batch_size.unwrap_or_else(|| cdrchain_node::config::default_batch_cdrs(&spec));
    let config_file = crate::node_config::load_or_default(args.config.as_deref())?;
    let number_rules =
        std::sync::Arc::new(crate::node_config::number_rules(&config_file, args.config.as_deref())?);
    let rpc_role_tokens = crate::node_config::rpc_tokens(&config_file)?;
    check_rpc_exposure(&args, !rpc_role_tokens.is_empty())?;
    let config = NodeConfig {
        spec,
        base_path,
        operator,
        keys,
        rpc_addr: args.rpc_addr,
        rpc_token: args.rpc_token.filter(|t| !t.is_empty()),
        rpc_role_tokens,
        metrics_addr: (!args.no_metrics).then_some(args.metrics_addr),
        parties,
        number_rules,
        batch_max_cdrs,
        batch_linger: Duration::from_millis(args.batch_linger_ms),
        pool_max_txs: args.pool_size,
        pool_max_bytes: args.pool_mib.saturating_mul(1024 * 1024),
        max_queue: args.max_queue,
        max_queue_wait: Duration::from_secs_f64(args.max_queue_wait),
        min_free_disk_bytes: args.min_free_disk.saturating_mul(1024 * 1024),
        network,
        consensus: cdrchain_consensus::Params::default(),
        // Next to the key file, so that it travels with the key and a restore of the base path
        // cannot roll it back; beside the database for dev keys.
        signing_state: key_arg.strip_prefix("dev:").is_none().then(|| signing_state_beside(&key_arg)),
        checkpoints,
        anchor,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    let result = runtime.block_on(cdrchain_node::service::run(config, shutdown_signal()));
    drop(temporary);
    result.map_err(|error| {
        // RocksDB takes no write after it met a full disk, until the database is reopened.
        let disk_full = format!("{error:#}").contains("No space left on device");
        let error = anyhow::Error::new(error).context("the node stopped with an error");
        if disk_full {
            error.context(
                "the disk holding the database is full: free space, then start the node again (what it \
                 acknowledged is durable; raise --min-free-disk so that ingest stops earlier)",
            )
        } else {
            error
        }
    })
}

/// The operator key to sign with, as `--key` takes it (`FILE` or `dev:NAME`).
fn key_arg(args: &Args) -> anyhow::Result<String> {
    let key_arg = match (&args.key, &args.dev_key) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(name)) => Some(format!("dev:{name}")),
        (None, None) => args.dev.then(|| "dev:alice".to_string()),
    };
    key_arg.context(
        "--key FILE is required: the operator key this node signs with (or --dev-key NAME on dev and local chains)",
    )
}

/// How parties are hashed: `None` (and a warning) without a consortium secret, which leaves the
/// node unable to take ingest.
fn party_hasher(args: &Args, spec: &ChainSpec) -> anyhow::Result<Option<PartyHasher>> {
    let Some(secret) = consortium_secret(args.consortium_secret_file.as_deref(), spec.uses_dev_keys())?
    else {
        tracing::warn!(
            "chain `{}`: no consortium secret (--consortium-secret-file, CDRCHAIN_CONSORTIUM_SECRET_FILE or \
             CDRCHAIN_CONSORTIUM_SECRET), so parties cannot be hashed the way the other operators hash them: \
             this node validates and serves the chain but REFUSES INGEST (503) until it is restarted with one",
            spec.id
        );
        return Ok(None);
    };
    Ok(Some(
        PartyHasher::new(&secret, args.default_region.as_deref())
            .context("setting up party hashing")?
            .with_memo(args.party_cache),
    ))
}

/// Refuses an RPC address reachable from other machines without a token.
fn check_rpc_exposure(args: &Args, role_tokens: bool) -> anyhow::Result<()> {
    let all_roles = args.rpc_token.as_deref().is_some_and(|t| !t.is_empty());
    if !args.rpc_addr.ip().is_loopback() && !all_roles && !role_tokens {
        bail!(
            "--rpc-addr {} is reachable beyond this machine: set --rpc-token (or CDRCHAIN_RPC_TOKEN), or \
             [[rpc_tokens]] in the --config file, so that every method but system_health needs \
             `Authorization: Bearer <token>` (docs/security.md)",
            args.rpc_addr
        );
    }
    Ok(())
}

/// The base path, and the temporary directory holding it (deleted when dropped) for `--tmp` and
/// `--dev` without `--base-path`.
fn base_path(args: &Args) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if args.tmp || (args.dev && args.base_path.is_none()) {
        let dir = tempfile::Builder::new()
            .prefix("cdrchain-")
            .tempdir()
            .context("creating a temporary base path")?;
        return Ok((dir.path().to_path_buf(), Some(dir)));
    }
    match &args.base_path {
        Some(path) => Ok((path.clone(), None)),
        None => bail!("--base-path DIR is required (or --tmp for a throwaway database)"),
    }
}

/// The p2p settings: `None` for a single-validator chain started without `--listen`.
fn network_settings(
    args: &Args,
    spec: &ChainSpec,
    base_path: &std::path::Path,
    key_arg: &str,
) -> anyhow::Result<Option<cdrchain_node::NetworkSettings>> {
    if spec.authorities.len() <= 1 && args.listen.is_empty() {
        return Ok(None);
    }
    let parse = |what: &str, text: &str| -> anyhow::Result<cdrchain_network::Multiaddr> {
        text.parse()
            .with_context(|| format!("{what} `{text}` is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/30333)"))
    };
    let listen = if args.listen.is_empty() {
        vec![parse("--listen", "/ip4/0.0.0.0/tcp/30333")?]
    } else {
        args.listen.iter().map(|a| parse("--listen", a)).collect::<anyhow::Result<_>>()?
    };
    let bootnodes = args.bootnodes.iter().map(|a| parse("--bootnodes", a)).collect::<anyhow::Result<_>>()?;
    let secret = match (&args.node_key, key_arg.strip_prefix("dev:")) {
        (None, Some(name)) => {
            let name = DEV_ACCOUNT_NAMES.iter().find(|n| **n == name).context("unknown dev account")?;
            DevAccount::derive(name).network_secret
        }
        (path, _) => {
            let path = path.clone().unwrap_or_else(|| base_path.join("node-key.json"));
            if !path.exists() {
                bail!(
                    "no node key at {}: a validator's network identity must be the one the chain spec lists. \
                     Create it with `cdrchain key generate --scheme ed25519 --out {}` and register its peer id \
                     in the chain spec, or pass --node-key FILE",
                    path.display(),
                    path.display()
                );
            }
            let file = KeyFile::read(&path)?;
            file.ed25519_key(&path.display().to_string())?.to_bytes()
        }
    };
    Ok(Some(cdrchain_node::NetworkSettings { secret, listen, bootnodes }))
}

/// The consortium secret parties are hashed with: `file`, else `CDRCHAIN_CONSORTIUM_SECRET`, else
/// the public development secret on a development chain; trailing newlines dropped.
pub(crate) fn consortium_secret(
    file: Option<&std::path::Path>,
    dev_chain: bool,
) -> anyhow::Result<Option<Vec<u8>>> {
    let from_env = std::env::var_os("CDRCHAIN_CONSORTIUM_SECRET").filter(|s| !s.is_empty());
    let secret = match (file, from_env, dev_chain) {
        (Some(path), _, _) => std::fs::read(path)
            .with_context(|| format!("reading the consortium secret from {}", path.display()))?,
        (None, Some(value), _) => value.into_encoded_bytes(),
        (None, None, true) => DEV_CONSORTIUM_SECRET.to_vec(),
        (None, None, false) => return Ok(None),
    };
    Ok(Some(trim_newline(&secret).to_vec()))
}

fn trim_newline(secret: &[u8]) -> &[u8] {
    let mut end = secret.len();
    while end > 0 && matches!(secret[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &secret[..end]
}

/// `<key file>.signing-state`: the validator's record of what it signed last (see the node's
/// `validator::SigningState`).
fn signing_state_beside(key_file: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{key_file}.signing-state"))
}

/// The secp256k1 keys held: `--evm-key` (on dev chains the dev account's by default) and
/// `--next-evm-key`.
fn evm_keys(
    args: &Args,
    spec: &ChainSpec,
    key_arg: &str,
) -> anyhow::Result<(Option<EvmKey>, Option<EvmKey>)> {
    let read = |path: &PathBuf| -> anyhow::Result<EvmKey> {
        Ok(KeyFile::read(path)?.secp256k1_key(&path.display().to_string())?)
    };
    let evm_key = match (&args.evm_key, key_arg.strip_prefix("dev:")) {
        (Some(path), _) => Some(read(path)?),
        (None, Some(name)) if spec.uses_dev_keys() => {
            DEV_ACCOUNT_NAMES.iter().find(|n| **n == name).map(|name| DevAccount::derive(name).evm_key)
        }
        (None, _) => None,
    };
    let next = args.next_evm_key.as_ref().map(read).transpose()?;
    Ok((evm_key, next))
}

type EvmKey = k256::ecdsa::SigningKey;

/// The encryption secret held: `--encryption-key` (on dev chains the dev account's by default).
fn encryption_secret(
    args: &Args,
    spec: &ChainSpec,
    key_arg: &str,
) -> anyhow::Result<Option<cdrchain_chain_spec::sealing::EncryptionSecret>> {
    Ok(match (&args.encryption_key, key_arg.strip_prefix("dev:")) {
        (Some(path), _) => Some(KeyFile::read(path)?.encryption_secret(&path.display().to_string())?),
        (None, Some(name)) if spec.uses_dev_keys() => {
            DEV_ACCOUNT_NAMES.iter().find(|n| **n == name).map(|name| DevAccount::derive(name).encryption)
        }
        (None, _) => None,
    })
}

/// The checkpoint contract: `--checkpoint-contract`, else the chain spec's.
fn checkpoint_contract(
    args: &Args,
    spec: &ChainSpec,
) -> anyhow::Result<Option<cdrchain_runtime::crypto::EvmAddress>> {
    Ok(match (&args.checkpoint_contract, spec.params.checkpoint_contract) {
        (Some(text), _) => Some(
            cdrchain_runtime::crypto::EvmAddress::from_hex(text)
                .map_err(|e| anyhow::anyhow!("--checkpoint-contract {text:?}: {e}"))?,
        ),
        (None, from_spec) => from_spec,
    })
}

/// With `--rsk-rpc`, how the node reads the RSK anchor.
fn anchor_reading(
    args: &Args,
    spec: &ChainSpec,
) -> anyhow::Result<Option<cdrchain_node::anchor::AnchorSettings>> {
    let Some(url) = &args.rsk_rpc else { return Ok(None) };
    let Some(contract) = checkpoint_contract(args, spec)? else {
        bail!(
            "--rsk-rpc reads the checkpoint contract, and this chain has none: give --checkpoint-contract \
             ADDRESS (from `cdrchain contract deploy`) or set the spec's params.checkpoint_contract"
        );
    };
    let reader = crate::anchor_reader::ContractReader::new(
        url,
        alloy::primitives::Address::from(contract.0),
        alloy::primitives::B256::from(spec.genesis_hash().0),
        spec.params.rsk_chain_id,
    )?;
    Ok(Some(cdrchain_node::anchor::AnchorSettings {
        contract,
        poll: Duration::from_secs(args.rsk_poll_interval),
        reader: std::sync::Arc::new(reader),
    }))
}

/// The contract this validator signs checkpoints for, if it has one and an EVM key. Which key
/// signs is the node's choice at each height (the one the chain registers); the node checks at
/// start that it holds it.
fn checkpoint_signing(
    args: &Args,
    spec: &ChainSpec,
    evm_key: Option<&EvmKey>,
) -> anyhow::Result<Option<cdrchain_node::CheckpointSigning>> {
    match (evm_key, checkpoint_contract(args, spec)?) {
        (Some(evm_key), Some(contract)) => {
            tracing::info!(
                "signing RSK checkpoints every {} blocks for contract {} (chain id {}) as {}",
                spec.params.checkpoint_interval,
                contract.to_hex(),
                spec.params.rsk_chain_id,
                cdrchain_runtime::checkpoint::evm_address(evm_key.verifying_key()).to_hex()
            );
            Ok(Some(cdrchain_node::CheckpointSigning { contract }))
        }
        (None, Some(contract)) => {
            tracing::warn!(
                "checkpoint contract {} is set but there is no --evm-key: this validator signs no checkpoints",
                contract.to_hex()
            );
            Ok(None)
        }
        (Some(_), None) => {
            tracing::info!(
                "no checkpoint contract yet (--checkpoint-contract or the spec's checkpoint_contract): \
                 signing no checkpoints"
            );
            Ok(None)
        }
        (None, None) => Ok(None),
    }
}

/// The operator this node runs as: the one the spec registers with `--key` (or `--next-key`),
/// or the one `--operator` names. A named operator the spec registers with other keys is taken
/// as is (governance may have rotated them): the node checks the chain's keys at start.
fn operator_of(
    args: &Args,
    spec: &ChainSpec,
    key: &ed25519_dalek::SigningKey,
    next_key: Option<&ed25519_dalek::SigningKey>,
) -> anyhow::Result<cdrchain_runtime::ids::OperatorId> {
    let publics: Vec<_> = std::iter::once(key).chain(next_key).map(public_key).collect();
    let registered = spec.operators.iter().find(|o| publics.contains(&o.ed25519));
    match (registered, &args.operator) {
        (Some(registered), Some(named)) if registered.id.as_str() != named => {
            bail!("chain `{}` registers this key for `{}`, not `{named}`", spec.id, registered.id)
        }
        (Some(registered), _) => Ok(registered.id.clone()),
        (None, Some(named)) => cdrchain_runtime::ids::OperatorId::new(named.clone())
            .with_context(|| format!("--operator `{named}`")),
        (None, None) => bail!(
            "chain `{}` registers no operator with key {} (a joining operator, or one whose keys the chain \
             rotated, names itself with --operator ID)",
            spec.id,
            publics[0]
        ),
    }
}

fn load_key(key: &str, dev_chain: bool) -> anyhow::Result<ed25519_dalek::SigningKey> {
    if let Some(name) = key.strip_prefix("dev:") {
        if !dev_chain {
            bail!("--key dev:{name}: dev keys are only for chains that use them (dev, local)");
        }
        let name = DEV_ACCOUNT_NAMES.iter().find(|n| **n == name).with_context(|| {
            format!("no dev account `{name}`; there are {}", DEV_ACCOUNT_NAMES.join(", "))
        })?;
        return Ok(DevAccount::derive(name).signing_key);
    }
    let file = KeyFile::read(std::path::Path::new(key))?;
    Ok(file.ed25519_key(key)?)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received");
}

/// `--max-queue-wait`: seconds, 0 to 3,600.
fn parse_wait(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..=3_600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!("`{text}` is not a number of seconds from 0 to 3600")),
    }
}
