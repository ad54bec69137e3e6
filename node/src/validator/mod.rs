//! The consensus driver: the IO around the pure state machine of `cdrchain-consensus`.
//!
//! One task owns the machine. It feeds it network messages, timer expiries, and the answers to
//! its requests (blocks built from the pool, proposed blocks checked through `apply_block`), and
//! carries out its outputs **in order**: a WAL record is written and synced before anything after
//! it leaves the node, which is what keeps a restarted validator from ever signing a conflicting
//! vote. Decisions are committed to storage with their certificates.
//!
//! Around the machine, the driver also:
//! - gossips this operator's transactions (and again while they wait, since gossip can lose
//!   them) and puts other operators' transactions, once their signatures check, in the pool;
//! - starts a height's round 0 only when there is work (the pool is not empty and the block
//!   interval has passed since the previous height started) or the idle heartbeat is due;
//! - syncs: when a peer is at a later height, or nothing was committed for a while, it asks a
//!   peer for committed blocks with their certificates, checks each (`Chain::import`) and moves
//!   the machine past them; and it answers other nodes' sync requests from storage;
//! - records equivocation evidence (storage, metrics, `consensus_evidence`).
//!
//! A single-validator chain runs the same machine without a network.
//!
//! Files: this one has [`run`], the event loop and the carrying out of the machine's outputs,
//! with the driver's limits; `resume` starts the machine from the WAL; `blocks` builds, checks
//! and commits blocks for the machine; `proposals` is the pure store of proposed blocks;
//! `gossip` announces transactions, routes the network's events and takes consensus messages in;
//! `sync` is the block-sync client and server; `checkpoint` signs RSK checkpoints; `status` is
//! what the RPC and metrics read, with the equivocation evidence.

mod blocks;
mod byzantine;
mod checkpoint;
mod contract_change;
mod gossip;
mod guard;
mod proposals;
mod replay;
mod resume;
mod sets;
pub(crate) use checkpoint::latest_checkpoint;
pub(crate) use sets::allowed_peers;
mod status;
mod sync;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdrchain_consensus::{
    Consensus, ConsensusMessage, Input, Output, Params, Timeout, Validators, Verdict, WalRecord,
};
use cdrchain_network::{NetworkEvent, NetworkHandle, PeerId, Topic};
use cdrchain_runtime::block::VoteKind;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId};
use parity_scale_codec::Encode;
use tokio::sync::{mpsc, watch};

use self::gossip::{route_events, TxIntake};
pub use self::guard::SigningState;
use self::proposals::ProposalStore;
use self::resume::resume;
use self::status::load_evidence;
pub use self::status::{ConsensusStatus, PeerSummary, StatusInner};
use self::sync::SyncResponseFrom;
use crate::chain::Chain;
use crate::pool::TxPool;
use crate::wire::{ConsensusWire, MAX_BLOCKS_PER_SYNC};
use crate::NodeError;

/// WAL key of the consensus state machine's record.
pub const WAL_KEY: &[u8] = b"consensus";
/// Metadata key of the evidence this node has seen.
pub const EVIDENCE_KEY: &str = "consensus-evidence";
/// Most evidence records kept.
pub const MAX_EVIDENCE: usize = 1_024;

// Limits and periods of the driver, units last. The proposal store's rules
// (`MAX_BLOCKS_PER_SLOT`, `COMPACT_SENDS`) are in `proposals`.

/// A block whose timestamp is further ahead of our clock than this is refused.
const MAX_CLOCK_DRIFT_MS: u64 = 60_000;
/// How often the driver checks readiness, announces transactions and looks for a stall.
const HOUSEKEEPING_INTERVAL_MS: u64 = 50;
/// The timer branch's deadline while no timeout is scheduled: that branch is disabled then, so
/// this only has to be far off.
const IDLE_SLEEP_MS: u64 = 3_600_000;
/// Nothing committed for longer than this (while peers are connected): ask a peer for blocks,
/// since others may have committed without us.
const STALLED_AFTER_MS: u64 = 3_000;
/// Least time between two sync requests started because we stalled.
const STALLED_SYNC_SPACING_MS: u64 = 2_000;
/// Least time between two sync requests started because a peer signed at a later height.
const AHEAD_SYNC_SPACING_MS: u64 = 500;
/// Our own transactions still in the pool are gossiped again after this long (gossip can lose
/// them, and a peer that restarted lacks them).
const REANNOUNCE_AFTER_MS: u64 = 3_000;
/// Sync responses waiting for the driver (one request is in flight at a time).
const MAX_QUEUED_SYNC_RESPONSES: usize = 4;
/// Network events other than transaction gossip waiting for the driver; when full, the router
/// waits (consensus messages are never dropped here).
const MAX_QUEUED_DRIVER_EVENTS: usize = 1_024;
/// Transaction gossip messages waiting to be checked; beyond this they are dropped (the owner
/// gossips waiting transactions again every [`REANNOUNCE_AFTER_MS`]).
const MAX_QUEUED_TX_GOSSIP_MESSAGES: usize = 64;
/// Sync responses built at once (each reads up to [`SYNC_RESPONSE_BUDGET_BYTES`] of blocks and
/// encodes a copy); further requests wait their turn, holding only their few bytes. The network
/// bounds the requests in flight per peer.
const MAX_CONCURRENT_SYNC_SERVES: usize = 2;
/// Blocks asked for in one sync request.
const SYNC_BATCH_BLOCKS: u32 = 64;
/// Block bytes one sync response carries at most, unless its first block alone is larger (it
/// goes alone). Half the network's default `max_sync_response` (64 MiB, which the node only
/// raises): the other half is room for the blocks' certificates and the framing.
const SYNC_RESPONSE_BUDGET_BYTES: usize = 32 * 1024 * 1024;
/// The failpoint `exit-after-prevote` waits this long after the prevote, so that it leaves the
/// node, before it exits.
const FAILPOINT_EXIT_DELAY_MS: u64 = 300;
/// The failpoint's exit status: that of a process killed by SIGKILL (128 + 9).
const FAILPOINT_EXIT_STATUS: i32 = 137;

const _: () = assert!(
    SYNC_BATCH_BLOCKS as usize <= MAX_BLOCKS_PER_SYNC,
    "a full batch must be servable, or sync never asks for more"
);
const _: () = assert!(
    HOUSEKEEPING_INTERVAL_MS < AHEAD_SYNC_SPACING_MS
        && AHEAD_SYNC_SPACING_MS <= STALLED_SYNC_SPACING_MS
        && STALLED_SYNC_SPACING_MS <= STALLED_AFTER_MS
        && HOUSEKEEPING_INTERVAL_MS < REANNOUNCE_AFTER_MS,
    "housekeeping must tick more often than the periods it checks"
);

/// The relations between the driver's limits and the network's configurable ones; a mismatch is
/// a programming error, caught at start in debug builds, and by a unit test in `sync`.
fn check_limits(network: &cdrchain_network::Limits) -> bool {
    SYNC_RESPONSE_BUDGET_BYTES.saturating_mul(2) <= network.max_sync_response
}

/// How the driver paces blocks.
#[derive(Debug, Clone)]
pub struct ValidatorSettings {
    pub params: Params,
    pub block_interval: Duration,
    pub idle_heartbeat: Duration,
    /// Sign RSK checkpoints with this key, for this contract.
    pub checkpoints: Option<crate::config::CheckpointSigning>,
    /// What this validator signed last, kept outside the database (see `guard`).
    pub signing_state: SigningState,
    /// Set while the validator follows as an observer until storage reaches what it signed:
    /// ingest refuses meanwhile (see `IngestSettings::catching_up`).
    pub catching_up: Arc<std::sync::atomic::AtomicBool>,
    /// Notified once the validator has resumed (and set `catching_up`): the node opens its RPC
    /// then.
    pub resumed: Arc<tokio::sync::Notify>,
}

/// The network side, when there is one.
#[derive(Debug)]
pub struct Net {
    pub handle: NetworkHandle,
    pub events: mpsc::Receiver<NetworkEvent>,
    /// Operators by their nodes' peer ids (from the chain spec).
    pub operators: HashMap<PeerId, OperatorId>,
}

/// Runs consensus until `shutdown` turns true or storage fails (then the node must stop).
pub async fn run(
    chain: Arc<Chain>,
    pool: Arc<TxPool>,
    me: (OperatorId, Arc<crate::keys::KeyRing>),
    settings: ValidatorSettings,
    net: Option<Net>,
    status: Arc<ConsensusStatus>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    debug_assert!(
        check_limits(&cdrchain_network::Limits::default()),
        "the sync response budget does not fit the network's sync response limit"
    );
    let validators = chain.validators_at(next_height(&chain))?;
    let solo = resume::is_solo(&validators, net.is_some());
    let resumed = resume(&chain, &validators, &me, settings.params, solo, &settings.signing_state)?;
    status.lock().evidence = load_evidence(&chain)?;
    let (net_handle, events, operators) = match net {
        Some(net) => (Some(net.handle), Some(net.events), net.operators),
        None => (None, None, HashMap::new()),
    };
    // Transaction gossip is checked beside consensus, not on its task: a proposal or vote never
    // waits behind megabytes of batches being decoded and verified.
    let pooled = Arc::new(tokio::sync::Notify::new());
    let events = match (events, &net_handle) {
        (Some(events), Some(handle)) => Some(route_events(
            events,
            TxIntake {
                chain: chain.clone(),
                pool: pool.clone(),
                net: handle.clone(),
                pooled: pooled.clone(),
            },
        )),
        _ => None,
    };
    let (sync_tx, sync_rx) = mpsc::channel(MAX_QUEUED_SYNC_RESPONSES);
    let proposals = ProposalStore::new(chain.spec.params.max_block_bytes as usize, chain.ctx.genesis_hash);
    let mut driver = Driver {
        chain,
        pool,
        me: me.0,
        keys: me.1,
        validators,
        pending_wal: resumed.pending_wal,
        settings,
        net: net_handle,
        operators,
        machine: resumed.machine,
        timers: BinaryHeap::new(),
        timer_seq: 0,
        proposals,
        last_commit: Instant::now(),
        last_ready: Instant::now(),
        ready_sent: false,
        nonce: initial_nonce(),
        connected: BTreeSet::new(),
        sync_in_flight: false,
        sync_turn: 0,
        last_sync: None,
        sync_tx,
        announced: HashMap::new(),
        announcing: None,
        status,
        inputs: Vec::new(),
        replays: replay::ReplayFilter::default(),
        pooled_checkpoints: HashMap::new(),
        pooled_contract_change: None,
        sync_serving: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SYNC_SERVES)),
        flood_ticks: 0,
        flood_last_consensus: None,
        wal_blocks: Vec::new(),
        governance_seen: None,
    };
    driver.restore_blocks(resumed.blocks);
    driver.follow_set_changes()?;
    driver.settings.catching_up.store(driver.pending_wal.is_some(), std::sync::atomic::Ordering::Release);
    driver.settings.resumed.notify_one();
    driver.carry_out(resumed.outputs).await?;
    driver.refresh_status();
    driver.event_loop(events, sync_rx, pooled, shutdown).await
}

async fn recv(events: &mut Option<mpsc::Receiver<NetworkEvent>>) -> Option<NetworkEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Fault injection for the crash-safety test: `CDRCHAIN_FAILPOINT=exit-after-prevote` makes the
/// process exit, as if killed, right after it sends a prevote (from height 2 on), before it can
/// precommit. Read once; never set in production.
fn failpoint_exit_after_prevote() -> bool {
    failpoint() == Some("exit-after-prevote")
}

/// `CDRCHAIN_FAILPOINT=exit-after-lock`: exit, as if killed, as soon as the WAL record of a lock
/// (from height 2 on) is synced, before the precommit leaves and before the block is committed.
fn failpoint_exit_after_lock(record: &WalRecord) -> bool {
    record.locked.is_some() && record.height.0 >= 2 && failpoint() == Some("exit-after-lock")
}

/// The fault-injection setting, `CDRCHAIN_FAILPOINT`, read once (tests only; see
/// [`failpoint_exit_after_prevote`] and `byzantine::flood_enabled`).
fn failpoint() -> Option<&'static str> {
    static SET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    SET.get_or_init(|| std::env::var("CDRCHAIN_FAILPOINT").ok()).as_deref()
}

fn next_height(chain: &Chain) -> Height {
    Height(chain.storage.head().map_or(0, |h| h.header.number.0) + 1)
}

/// Nonces start at the clock in microseconds, so a restarted node does not reuse its earlier
/// gossip ids.
fn initial_nonce() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0))
}

/// The consensus task's state: the machine and everything around it.
struct Driver {
    /// Storage, the chain spec, block building and import: what the machine's decisions act on.
    chain: Arc<Chain>,
    /// Transactions waiting for a block: blocks are built from it, compact ones completed.
    pool: Arc<TxPool>,
    /// This validator's operator id, the authority it signs as.
    me: OperatorId,
    /// This validator's keys: the one the chain registers at a height signs there (votes,
    /// proposals, its transactions such as checkpoint signatures); see `crate::keys`.
    keys: Arc<crate::keys::KeyRing>,
    /// The authorities at the machine's height, kept to start it again (see `pending_wal`);
    /// refreshed from the state after each commit (`sets.rs`).
    validators: Validators,
    /// The chain's governance as last followed (`sets.rs`): unchanged, nothing to redo.
    governance_seen: Option<sets::GovernanceSeen>,
    /// A WAL record ahead of storage: the machine runs as an observer until storage reaches it.
    pending_wal: Option<WalRecord>,
    /// Block pacing, the machine's parameters and checkpoint signing.
    settings: ValidatorSettings,
    /// The p2p network; `None` on a single-validator chain.
    net: Option<NetworkHandle>,
    /// Operators by their nodes' peer ids (from the chain spec), to name peers.
    operators: HashMap<PeerId, OperatorId>,
    /// The consensus state machine, owned by this task alone.
    machine: Consensus,
    /// The machine's scheduled timeouts, earliest first.
    timers: BinaryHeap<Reverse<(Instant, u64, Timeout)>>,
    /// Counts scheduled timeouts, so that those due at the same instant fire in order.
    timer_seq: u64,
    /// Proposed blocks (ours and others') of the current and next height, through their
    /// lifecycle: compact, whole, executed.
    proposals: ProposalStore,
    /// When a block was last committed (decided or synced): the idle heartbeat and the stall
    /// check count from there.
    last_commit: Instant,
    /// When this node last started a height's round 0 (fed `Ready`): the block interval counts
    /// from there, so a height whose work took longer than the interval is followed at once.
    last_ready: Instant,
    /// `Ready` was fed for the current height (reset at each commit): round 0 starts once.
    ready_sent: bool,
    /// The last gossip nonce used (see [`initial_nonce`]).
    nonce: u64,
    /// The peers connected now: sync asks them, announcements wait for one.
    connected: BTreeSet<PeerId>,
    /// A sync request is out (one at a time); shown as `isSyncing`.
    sync_in_flight: bool,
    /// Rotates sync requests through the connected peers, so that one peer cannot stall us.
    sync_turn: usize,
    /// When the last sync request went out, to space them.
    last_sync: Option<Instant>,
    /// Where the sync request tasks send their responses, for the loop.
    sync_tx: mpsc::Sender<SyncResponseFrom>,
    /// Our own pool transactions and when they were last gossiped.
    announced: HashMap<Hash32, Instant>,
    /// The task publishing the last announcement, while it runs.
    announcing: Option<tokio::task::JoinHandle<()>>,
    /// What the RPC and metrics read, refreshed after every step of the machine.
    status: Arc<ConsensusStatus>,
    /// Inputs produced while carrying out outputs (answers to Build and Execute).
    inputs: Vec<Input>,
    /// Consensus contents already processed, so that re-wrapped replays cost a hash only.
    replays: replay::ReplayFilter,
    /// Our signatures of the recent checkpoints, by height, as pooled: not signed again while
    /// the pool still holds them (see `checkpoint`).
    pooled_checkpoints: HashMap<u64, Hash32>,
    /// Our signature of the RSK contract's change to a set (set id, transaction id), as pooled
    /// (see `contract_change`).
    pooled_contract_change: Option<(u64, Hash32)>,
    /// Sync responses being built; at most [`MAX_CONCURRENT_SYNC_SERVES`] at once.
    sync_serving: Arc<tokio::sync::Semaphore>,
    /// The flooding member (tests only, `byzantine`): ticks so far, and the last consensus
    /// message received, to replay.
    flood_ticks: u64,
    flood_last_consensus: Option<Vec<u8>>,
    /// The blocks the WAL holds for the machine's locked and valid values (see `write_wal`).
    wal_blocks: Vec<Hash32>,
}

impl Driver {
    /// Waits for whatever comes first (shutdown, a network event, a sync response, a timer, the
    /// housekeeping tick, transactions pooled) and handles it, until shutdown or an error.
    async fn event_loop(
        mut self,
        mut events: Option<mpsc::Receiver<NetworkEvent>>,
        mut sync_responses: mpsc::Receiver<SyncResponseFrom>,
        pooled: Arc<tokio::sync::Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let mut housekeeping = tokio::time::interval(Duration::from_millis(HOUSEKEEPING_INTERVAL_MS));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
            let sleep = tokio::time::sleep_until(
                next_timer.unwrap_or_else(|| Instant::now() + Duration::from_millis(IDLE_SLEEP_MS)).into(),
            );
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        tracing::info!(target: "cdrchain::consensus", "consensus stopped at height {}", self.machine.height());
                        if let Some(net) = &self.net {
                            net.shutdown();
                        }
                        return Ok(());
                    }
                }
                event = recv(&mut events) => match event {
                    Some(event) => self.on_network(event).await?,
                    None => {
                        events = None;
                        tracing::error!(target: "cdrchain::consensus", "the network stopped; this validator is cut off");
                    }
                },
                Some(response) = sync_responses.recv() => self.on_sync_response(response).await?,
                _ = sleep, if next_timer.is_some() => self.fire_timers().await?,
                _ = housekeeping.tick() => self.housekeeping().await?,
                _ = pooled.notified() => self.complete_proposals().await?,
            }
        }
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce = self.nonce.wrapping_add(1);
        self.nonce
    }

    /// Feeds an input and carries out everything that follows from it.
    async fn feed(&mut self, input: Input) -> Result<Verdict, NodeError> {
        let (outputs, verdict) = self.machine.handle(input);
        self.carry_out(outputs).await?;
        Ok(verdict)
    }

    /// Carries out `outputs` in order, then what follows from the inputs they produced (answers
    /// to Build and Execute), until nothing is left; then publishes the status.
    async fn carry_out(&mut self, outputs: Vec<Output>) -> Result<(), NodeError> {
        let mut queue = std::collections::VecDeque::from(outputs);
        loop {
            while let Some(output) = queue.pop_front() {
                self.carry_out_one(output).await?;
            }
            if let Some(outputs) = self.rejoin_when_synced() {
                self.settings.catching_up.store(false, std::sync::atomic::Ordering::Release);
                queue.extend(outputs);
                continue;
            }
            if self.inputs.is_empty() {
                break;
            }
            for input in std::mem::take(&mut self.inputs) {
                let (outputs, _) = self.machine.handle(input);
                queue.extend(outputs);
            }
        }
        self.prune_stale_rounds();
        self.refresh_status();
        Ok(())
    }

    /// Forgets the blocks of this height's rounds before the previous one, but the machine's
    /// locked and valid values: during a stall without quorum each round brings a new block (and
    /// its state changes), and memory must not grow with the length of the outage (review M6).
    fn prune_stale_rounds(&mut self) {
        let current = proposals::Slot { height: self.machine.height(), round: self.machine.round() };
        let keep: Vec<Hash32> = [self.machine.locked(), self.machine.valid()]
            .into_iter()
            .flatten()
            .map(|(_, hash)| hash)
            .collect();
        let pruned = self.proposals.prune_stale_rounds(current, &keep);
        if pruned > 0 {
            tracing::debug!(target: "cdrchain::consensus", "forgot {pruned} blocks of rounds before {}", current.round.0.saturating_sub(1));
        }
    }

    /// The one `match` where the machine's effects happen.
    async fn carry_out_one(&mut self, output: Output) -> Result<(), NodeError> {
        match output {
            Output::Wal(record) => {
                // Synced before anything after it leaves the node, and also outside the
                // database, where purge-chain or a restore cannot reach it.
                self.write_wal(&record)?;
                if failpoint_exit_after_lock(&record) {
                    tracing::warn!(target: "cdrchain::consensus", "failpoint exit-after-lock: stopping dead with a lock on height {}", record.height);
                    std::process::exit(FAILPOINT_EXIT_STATUS);
                }
            }
            Output::Broadcast(message) => {
                let own_prevote = matches!(&message, ConsensusMessage::Vote(v)
                    if v.voter == self.me && v.vote.kind == VoteKind::Prevote && v.vote.height.0 >= 2);
                self.broadcast(message).await;
                if own_prevote && failpoint_exit_after_prevote() {
                    tracing::warn!(target: "cdrchain::consensus", "failpoint exit-after-prevote: stopping dead after sending a prevote");
                    tokio::time::sleep(Duration::from_millis(FAILPOINT_EXIT_DELAY_MS)).await;
                    std::process::exit(FAILPOINT_EXIT_STATUS);
                }
            }
            Output::Schedule { timeout, after_ms } => {
                self.timer_seq += 1;
                let at = Instant::now() + Duration::from_millis(after_ms);
                self.timers.push(Reverse((at, self.timer_seq, timeout)));
            }
            Output::Build { height, round } => self.build(height, round)?,
            Output::Execute { height, block_hash } => self.execute(height, block_hash),
            Output::Decide(decision) => self.commit(decision)?,
            Output::Evidence(evidence) => self.record_evidence(evidence)?,
            Output::Ahead { height, from } => {
                tracing::debug!(target: "cdrchain::consensus", "`{from}` is at height {height}; we are at {}", self.machine.height());
                // Any connected peer, in rotation: the signer could be Byzantine and stall us.
                self.start_sync(None, Duration::from_millis(AHEAD_SYNC_SPACING_MS));
            }
        }
        Ok(())
    }

    /// Publishes a consensus message; a proposal carries its block (see `ProposalStore::next_send`).
    async fn broadcast(&mut self, message: ConsensusMessage) {
        let Some(net) = self.net.clone() else { return };
        let block = match &message {
            ConsensusMessage::Proposal(p) => match self.proposals.next_send(&p.proposal.block_hash) {
                Some(block) => Some(block),
                // After a restart we may have signed a proposal whose block we no longer hold:
                // without it the proposal is useless to others.
                None => return,
            },
            ConsensusMessage::Vote(_) => None,
        };
        tracing::debug!(target: "cdrchain::consensus", "sending {}", message.describe());
        let wire = ConsensusWire { nonce: self.next_nonce(), message, block };
        if let Err(e) = net.publish(Topic::Consensus, wire.encode()).await {
            tracing::debug!(target: "cdrchain::consensus", "consensus message not sent: {e}");
        }
    }

    /// Feeds the machine the timeouts that are due (those of past heights are dropped).
    async fn fire_timers(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        while let Some(Reverse((at, _, timeout))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if timeout.height < self.machine.height() {
                continue;
            }
            self.feed(Input::Timeout(timeout)).await?;
        }
        Ok(())
    }

    /// Every [`HOUSEKEEPING_INTERVAL_MS`]: starts round 0 when due, announces transactions and
    /// syncs when stalled.
    async fn housekeeping(&mut self) -> Result<(), NodeError> {
        // Readiness: round 0 starts when there is work, or for the idle heartbeat.
        if !self.ready_sent {
            let since = self.last_commit.elapsed();
            let work = !self.pool.is_empty() && self.last_ready.elapsed() >= self.settings.block_interval;
            if work || since >= self.settings.idle_heartbeat {
                self.ready_sent = true;
                self.last_ready = Instant::now();
                self.feed(Input::Ready).await?;
            }
        }
        self.announce_transactions();
        if byzantine::flood_enabled(&self.me) {
            self.flood();
        }
        // Nothing committed for a while although others may have: ask a peer.
        let stalled = self.last_commit.elapsed() > Duration::from_millis(STALLED_AFTER_MS);
        if stalled && !self.connected.is_empty() {
            self.start_sync(None, Duration::from_millis(STALLED_SYNC_SPACING_MS));
        }
        Ok(())
    }
}

#[cfg(test)]
mod flood_tests;
