//! Wiring and lifecycle: open storage, start ingest, RPC, metrics and authoring; on shutdown,
//! stop taking work, finish the block in flight, flush, and return.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cdrchain_storage::Storage;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::chain::Chain;
use crate::config::check_limits;
use crate::ingest::{self, Ingest, IngestSettings};
use crate::metrics::Metrics;
use crate::pool::TxPool;
use crate::rpc::{self, RpcContext};
use crate::validator::{self, ConsensusStatus, Net, ValidatorSettings};
use crate::{NodeConfig, NodeError};

/// Opens the database for `config`'s chain (creating it with the genesis state if new).
pub fn open_storage(config: &NodeConfig) -> Result<Storage, NodeError> {
    let genesis = config.spec.genesis_state().map_err(|e| NodeError::Config(e.to_string()))?;
    let path = config.database_path();
    std::fs::create_dir_all(&path)
        .map_err(|source| NodeError::DatabaseDirectory { path: path.clone(), source })?;
    let storage = Storage::open(&path, config.spec.genesis_hash(), &genesis)?;
    if let Some(from) = storage.upgraded_at_open() {
        tracing::info!(
            target: "cdrchain::storage",
            path = %path.display(),
            "upgraded the database from schema {from} to {}: the party index (search by number) is \
             built from block 1 behind the head",
            cdrchain_storage::SCHEMA_VERSION
        );
    }
    Ok(storage)
}

/// Loads the stored ingest keys into storage's in-memory filter, on a thread of its own: a scan
/// of the whole column, seconds per ten million records. Ingest goes on meanwhile, its duplicate
/// checks answered by the database alone until the filter is ready (slower, not wrong). A failure
/// leaves it so, and says why.
fn load_ingest_filter(storage: Arc<Storage>) {
    let spawned = std::thread::Builder::new().name("ingest-filter".into()).spawn(move || {
        let started = std::time::Instant::now();
        match storage.load_ingest_filter() {
            Ok(keys) => tracing::info!(
                target: "cdrchain::storage",
                "ingest-key filter ready: {keys} stored keys loaded in {:.1} s ({:.1} MiB); duplicate \
                 checks of new records no longer read the database",
                started.elapsed().as_secs_f64(),
                storage.ingest_filter_bytes() as f64 / (1024.0 * 1024.0)
            ),
            Err(error) => tracing::warn!(
                target: "cdrchain::storage",
                "ingest-key filter not loaded ({error}); duplicate checks read the database for \
                 every record, which is correct but slower"
            ),
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(
            target: "cdrchain::storage",
            "cannot start the thread that loads the ingest-key filter ({error}); duplicate checks \
             read the database for every record, which is correct but slower"
        );
    }
}

/// Runs the node until `shutdown` resolves, then stops it cleanly.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let spec = &config.spec;
    check_operator(&config)?;
    let network_limits = check_limits(&config)?;
    let (storage, metrics) = open_chain(&config)?;
    check_keys(&config, &storage)?;
    let chain = Arc::new(Chain::new(storage.clone(), spec.clone(), metrics.clone()));
    let pool = Arc::new(TxPool::with_limits(crate::pool::PoolLimits::shared(
        config.pool_max_txs,
        config.pool_max_bytes,
        spec.operators.len(),
        Some(config.operator.clone()),
    )));
    let (stop, stopping) = watch::channel(false);
    let anchor = start_anchor(&config, &storage, &metrics, &stopping);
    // Set by the validator while it catches up with what it signed (see `IngestSettings`).
    let catching_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ingest::Started { ingest, writer, batcher } = Ingest::start(
        storage.clone(),
        pool.clone(),
        ingest_settings(&config, &metrics, &catching_up),
        stopping.clone(),
    )?;
    let status = Arc::new(ConsensusStatus::default());
    let net =
        config.network.as_ref().map(|net| start_network(&config, &chain, net, network_limits)).transpose()?;
    let resumed = Arc::new(tokio::sync::Notify::new());
    let settings = validator_settings(&config, catching_up, resumed.clone());
    let keys = Arc::new(config.keys.clone());
    let me = (config.operator.clone(), keys.clone());
    let mut authoring = tokio::spawn(validator::run(
        chain.clone(),
        pool.clone(),
        me,
        settings,
        net,
        status.clone(),
        stopping.clone(),
    ));
    // The RPC (and ingest with it) opens once the validator has read its WAL and signing state,
    // so that no CDR is numbered before the node knows where its stream stands (review M10).
    let early = tokio::select! {
        () = resumed.notified() => None,
        result = &mut authoring => Some(result),
    };
    let (rpc_handle, metrics_task) = match early {
        Some(_) => (None, None),
        None => {
            let context = RpcContext {
                chain: chain.clone(),
                ingest: ingest.clone(),
                pool: pool.clone(),
                tokens: config.rpc_tokens(),
                status: status.clone(),
                heavy: Default::default(),
                signer: (config.operator.clone(), keys.clone()),
                anchor,
            };
            let (handle, task) = open_rpc(&config, context, &metrics, &storage, &stopping).await?;
            (Some(handle), task)
        }
    };

    // Run until asked to stop, or until authoring fails (a node that cannot commit must stop).
    let failure = match early {
        Some(result) => Some(result),
        None => tokio::select! {
            () = shutdown => None,
            result = &mut authoring => Some(result),
        },
    };
    tracing::info!(target: "cdrchain::node", "shutting down: no new requests; finishing the block in flight");
    let _ = stop.send(true);
    if let Some(rpc_handle) = rpc_handle {
        let _ = rpc_handle.stop();
        rpc_handle.stopped().await;
    }
    let authoring_result = match failure {
        Some(result) => result,
        None => authoring.await,
    };
    let _ = batcher.await;
    // The writer's thread ends once the last handle is gone. Not joined: a handle still held
    // elsewhere would hold up the shutdown, and a group being written when the process exits
    // was not acknowledged, so nothing acknowledged is lost.
    drop(ingest);
    drop(writer);
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    storage.flush()?;
    match authoring_result {
        Ok(Ok(())) => {
            tracing::info!(target: "cdrchain::node", "stopped cleanly at block #{}", storage.head().map_or(0, |h| h.header.number.0));
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(join) => Err(NodeError::Task(format!("consensus task: {join}"))),
    }
}

/// Starts reading the RSK anchor, if the node was given an RSK node (`--rsk-rpc`).
fn start_anchor(
    config: &NodeConfig,
    storage: &Arc<Storage>,
    metrics: &Arc<Metrics>,
    stopping: &watch::Receiver<bool>,
) -> Option<Arc<crate::anchor::AnchorView>> {
    let settings = config.anchor.clone()?;
    let view = Arc::new(crate::anchor::AnchorView::new(settings.contract, settings.poll));
    tokio::spawn(crate::anchor::follow(
        settings,
        view.clone(),
        storage.clone(),
        metrics.anchor.clone(),
        config.spec.params.checkpoint_interval,
        stopping.clone(),
    ));
    Some(view)
}

/// What the validator takes from the node's configuration.
fn validator_settings(
    config: &NodeConfig,
    catching_up: Arc<std::sync::atomic::AtomicBool>,
    resumed: Arc<tokio::sync::Notify>,
) -> ValidatorSettings {
    ValidatorSettings {
        params: config.consensus,
        block_interval: Duration::from_millis(config.spec.params.block_interval_ms),
        idle_heartbeat: Duration::from_millis(config.spec.params.idle_heartbeat_ms),
        checkpoints: config.checkpoints.clone(),
        signing_state: validator::SigningState::new(config.signing_state_path()),
        catching_up,
        resumed,
    }
}

/// Starts the RPC server and, if configured, the metrics endpoint.
async fn open_rpc(
    config: &NodeConfig,
    context: RpcContext,
    metrics: &Arc<Metrics>,
    storage: &Arc<Storage>,
    stopping: &watch::Receiver<bool>,
) -> Result<(jsonrpsee::server::ServerHandle, Option<tokio::task::JoinHandle<()>>), NodeError> {
    let (pool, ingest) = (context.pool.clone(), context.ingest.clone());
    let (handle, rpc_addr) = rpc::start(config.rpc_addr, Arc::new(context)).await?;
    tracing::info!(target: "cdrchain::node", "RPC listening on http://{rpc_addr} (JSON-RPC over HTTP and ws://{rpc_addr}, POST /ingest/cdrs)");
    let metrics_task = match config.metrics_addr {
        Some(addr) => Some(serve_metrics(addr, metrics, storage, &pool, &ingest, stopping).await?),
        None => None,
    };
    Ok((handle, metrics_task))
}

/// Checks that this node is an authority of its chain, with the key the chain registers, and
/// has the network a chain of several authorities needs.
fn check_operator(config: &NodeConfig) -> Result<(), NodeError> {
    let spec = &config.spec;
    if spec.operator(&config.operator).is_none() {
        // A joining operator: it syncs as an observer once a proposal to add it is open, and
        // signs from the height the chain adds it (docs/operations.md, joining).
        tracing::warn!(
            target: "cdrchain::node",
            "operator `{}` is not in chain `{}`'s spec: this node follows the chain without signing until \
             the authorities add it (`cdrchain authority propose add`)",
            config.operator,
            spec.id
        );
        return Ok(());
    };
    if !spec.authorities.contains(&config.operator) {
        tracing::warn!(
            target: "cdrchain::node",
            "operator `{}` is not a genesis authority of chain `{}` (authorities: {}): this node signs only \
             once the chain adds it",
            config.operator,
            spec.id,
            spec.authorities.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    if spec.authorities.len() > 1 && config.network.is_none() {
        return Err(NodeError::Config(format!(
            "chain `{}` has {} authorities: this validator needs the p2p network (a node key and --listen)",
            spec.id,
            spec.authorities.len()
        )));
    }
    Ok(())
}

/// Checks the keys held against what the chain registers for this node's operator in the next
/// block (the spec's keys at genesis; governance may have rotated them since): a node that holds
/// neither the key in force nor the next would only follow, so it refuses to start and names the
/// key the chain wants. A scheduled rotation to a key it lacks is a warning: it signs until then.
fn check_keys(config: &NodeConfig, storage: &Storage) -> Result<(), NodeError> {
    let (operator, keys) = (&config.operator, &config.keys);
    // A joiner not added yet, or a removed operator: it follows without signing.
    let Some(registered) = crate::keys::registered_next(storage, operator)? else { return Ok(()) };
    if keys.signing_for(&registered.signing_key).is_none() {
        return Err(keys.not_held(operator, &registered));
    }
    if config.checkpoints.is_some() && keys.has_evm() && keys.evm_for(&registered.evm_address).is_none() {
        return Err(NodeError::Config(format!(
            "the chain registers the checkpoint address {} for `{operator}`, which none of this node's EVM keys \
             has (--evm-key, or --next-evm-key during a rotation)",
            registered.evm_address.to_hex()
        )));
    }
    check_encryption_key(operator, keys, storage)?;
    if let Some(scheduled) = cdrchain_runtime::governance::scheduled_change(storage)? {
        let next = scheduled.set.members.iter().find(|m| &m.id == operator);
        if let Some(next) = next.filter(|m| keys.signing_for(&m.signing_key).is_none()) {
            tracing::warn!(
                target: "cdrchain::node",
                "from height {} the chain registers {} for `{operator}`, which this node does not hold: restart \
                 it with --next-key before then, or it stops signing there",
                scheduled.set.from,
                next.signing_key
            );
        }
    }
    Ok(())
}

/// Says whether the node can open what is sealed to its operator (interconnect agreements): not a
/// reason to stop, as validating and ingest never need it.
fn check_encryption_key(
    operator: &cdrchain_runtime::ids::OperatorId,
    keys: &crate::keys::KeyRing,
    storage: &Storage,
) -> Result<(), NodeError> {
    use cdrchain_runtime::interconnect::EncryptionKey;
    use cdrchain_runtime::state::{StateKey, StateView};
    let key = StateKey::EncryptionKey(operator.clone()).to_bytes();
    let registered = storage
        .get(&key)?
        .map(|bytes| cdrchain_runtime::codec::decode_exact::<EncryptionKey>(&bytes))
        .transpose()
        .map_err(|e| NodeError::Config(format!("the registered encryption key of `{operator}`: {e}")))?;
    match (registered, keys.encryption().map(|secret| secret.public())) {
        (Some(registered), Some(held)) if registered != held => tracing::warn!(
            target: "cdrchain::node",
            "the chain registers the encryption key {registered} for `{operator}`, but --encryption-key holds              {held}: this node cannot open the operator's agreements (register the held key, or start with the              registered one)"
        ),
        (Some(registered), None) => tracing::info!(
            target: "cdrchain::node",
            "no --encryption-key: this node cannot open agreements sealed to `{operator}` ({registered})"
        ),
        _ => {}
    }
    Ok(())
}

/// Opens storage (starting the ingest-key filter's load) and the metrics, set to its head.
fn open_chain(config: &NodeConfig) -> Result<(Arc<Storage>, Arc<Metrics>), NodeError> {
    let spec = &config.spec;
    let storage = Arc::new(open_storage(config)?);
    tracing::info!(
        target: "cdrchain::node",
        "chain `{}` genesis {}; database {}; best block #{}",
        spec.id,
        spec.genesis_hash(),
        storage.path().display(),
        storage.head().map_or(0, |h| h.header.number.0)
    );
    load_ingest_filter(storage.clone());
    let metrics = Arc::new(Metrics::new());
    crate::party_index::spawn(&storage, metrics.clone());
    if let Some(head) = storage.head() {
        metrics.best_height.set(i64::try_from(head.header.number.0).unwrap_or(i64::MAX));
        metrics.finalized_height.set(i64::try_from(head.header.number.0).unwrap_or(i64::MAX));
    }
    Ok((storage, metrics))
}

/// What ingest takes from the node's configuration.
fn ingest_settings(
    config: &NodeConfig,
    metrics: &Arc<Metrics>,
    catching_up: &Arc<std::sync::atomic::AtomicBool>,
) -> IngestSettings {
    IngestSettings {
        operator: config.operator.clone(),
        keys: Arc::new(config.keys.clone()),
        parties: config.parties.clone(),
        number_rules: config.number_rules.clone(),
        metrics: Some(metrics.clone()),
        catching_up: catching_up.clone(),
        genesis_hash: config.spec.genesis_hash(),
        batch_max: config.batch_max_cdrs,
        batch_max_bytes: crate::config::batch_max_bytes(&config.spec),
        linger: config.batch_linger,
        max_in_flight: crate::pool::IN_FLIGHT_BLOCKS * u64::from(config.spec.params.max_block_cdrs),
        max_queue: config.max_queue,
        max_queue_wait: config.max_queue_wait,
        min_free_disk_bytes: config.min_free_disk_bytes,
        nominal_rate_per_s: nominal_rate_per_s(&config.spec),
    }
}

/// A full block every block interval, shared by the authorities: what the chain should commit of
/// one operator's CDRs per second when every operator offers more than it takes.
fn nominal_rate_per_s(spec: &cdrchain_chain_spec::ChainSpec) -> f64 {
    let interval_s = (spec.params.block_interval_ms.max(1) as f64) / 1000.0;
    f64::from(spec.params.max_block_cdrs) / interval_s / spec.authorities.len().max(1) as f64
}

/// Serves Prometheus metrics on `addr` until `stopping`; the gauges that are read rather than
/// counted (pool, queue, database size) are refreshed at each scrape.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: &Arc<Metrics>,
    storage: &Arc<Storage>,
    pool: &Arc<TxPool>,
    ingest: &Arc<Ingest>,
    stopping: &watch::Receiver<bool>,
) -> Result<JoinHandle<()>, NodeError> {
    let (gauges, storage, pool, ingest) = (metrics.clone(), storage.clone(), pool.clone(), ingest.clone());
    let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        gauges.tx_pool_depth.set(i64::try_from(pool.len()).unwrap_or(i64::MAX));
        gauges.tx_pool_bytes.set(i64::try_from(pool.bytes()).unwrap_or(i64::MAX));
        gauges.ingest_queue_depth.set(i64::try_from(ingest.queue_depth()).unwrap_or(i64::MAX));
        gauges.rocksdb_size_bytes.set(i64::try_from(storage.size_on_disk()).unwrap_or(i64::MAX));
    });
    let (bound, task) = crate::metrics::serve(addr, metrics.clone(), refresh, stopping.clone()).await?;
    tracing::info!(target: "cdrchain::node", "metrics on http://{bound}/metrics");
    Ok(task)
}

/// Starts libp2p with the spec's operators as the only peers allowed, within `limits` (from
/// [`check_limits`]).
fn start_network(
    config: &NodeConfig,
    chain: &Chain,
    settings: &crate::NetworkSettings,
    limits: cdrchain_network::Limits,
) -> Result<Net, NodeError> {
    use cdrchain_network::NetworkConfig;
    let spec = &config.spec;
    // The spec's operators as governance changed them (added, removed, joining).
    let operators = crate::validator::allowed_peers(chain)?;
    let local = cdrchain_network::peer_id_from_secret(settings.secret)
        .map_err(|e| NodeError::Config(format!("the node key is not a valid ed25519 secret: {e}")))?;
    match operators.get(&local) {
        Some(op) if *op == config.operator => {}
        Some(op) => tracing::warn!(
            target: "cdrchain::network",
            "this node's peer id {local} belongs to operator `{op}` in the chain spec, not to `{}`",
            config.operator
        ),
        None => tracing::error!(
            target: "cdrchain::network",
            "this node's peer id {local} is not in chain `{}`: the other validators will refuse its connections \
             (register it as operator `{}`'s peer_id, or use that operator's node key; a joining operator is let \
             in once a proposal to add it is open)",
            spec.id,
            config.operator
        ),
    }
    let network_config = NetworkConfig {
        secret: settings.secret,
        listen: settings.listen.clone(),
        bootnodes: settings.bootnodes.clone(),
        allowed_peers: operators.keys().copied().collect(),
        genesis_hash: spec.genesis_hash().0,
        limits,
    };
    let (handle, events) = cdrchain_network::start(network_config).map_err(NodeError::Network)?;
    tracing::info!(target: "cdrchain::network", "local peer id {local}");
    Ok(Net { handle, events, operators })
}
