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

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdrchain_consensus::{
    Consensus, ConsensusMessage, Decision, Evidence, Input, Output, Params, Timeout, Validators, Verdict,
    WalRecord,
};
use cdrchain_network::{NetworkEvent, NetworkHandle, PeerId, Topic, Validation};
use cdrchain_runtime::apply::{apply_block, StateChanges, TxError};
use cdrchain_runtime::block::Block;
use cdrchain_runtime::checkpoint::{Checkpoint, CheckpointSignature};
use cdrchain_runtime::codec::{decode_exact, BoundedVec};
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use cdrchain_runtime::state::{StateKey, StateView};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::chain::Chain;
use crate::pool::TxPool;
use crate::wire::{
    BlockWire, CompactBlock, ConsensusWire, SyncRequest, SyncResponse, TxWire, MAX_BLOCKS_PER_SYNC,
    MAX_TXS_PER_GOSSIP,
};
use crate::NodeError;

/// WAL key of the consensus state machine's record.
pub const WAL_KEY: &[u8] = b"consensus";
/// Metadata key of the evidence this node has seen.
pub const EVIDENCE_KEY: &str = "consensus-evidence";
/// Most evidence records kept.
pub const MAX_EVIDENCE: usize = 1_024;
/// Blocks asked for in one sync request.
const SYNC_BATCH: u32 = 64;
/// A proposal's first sends carry its block compact (header and transaction ids); later
/// re-broadcasts carry it whole, for a validator that still lacks some of its transactions.
const COMPACT_SENDS: u32 = 2;
/// A block whose timestamp is further ahead of our clock than this is refused.
const MAX_CLOCK_DRIFT_MS: u64 = 60_000;

/// What the RPC and metrics read about consensus and peers.
#[derive(Debug, Default)]
pub struct ConsensusStatus {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInner {
    pub height: u64,
    pub round: u32,
    pub step: String,
    pub is_syncing: bool,
    pub peers: Vec<PeerSummary>,
    #[serde(skip)]
    pub evidence: Vec<Evidence>,
}

/// A connected peer, for `system_peers`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSummary {
    pub peer_id: String,
    pub operator: Option<String>,
    pub address: String,
    pub direction: String,
}

impl ConsensusStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> StatusInner {
        self.lock().clone()
    }

    pub fn peer_count(&self) -> usize {
        self.lock().peers.len()
    }

    pub fn evidence(&self) -> Vec<Evidence> {
        self.lock().evidence.clone()
    }
}

/// How the driver paces blocks.
#[derive(Debug, Clone)]
pub struct ValidatorSettings {
    pub params: Params,
    pub block_interval: Duration,
    pub idle_heartbeat: Duration,
    /// Sign RSK checkpoints with this key, for this contract.
    pub checkpoints: Option<crate::config::CheckpointSigning>,
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
    me: (OperatorId, SigningKey),
    settings: ValidatorSettings,
    net: Option<Net>,
    status: Arc<ConsensusStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let validators = Validators::new(chain.ctx.genesis_hash, chain.authorities.clone())
        .ok_or_else(|| NodeError::Config("the chain spec has no authorities".into()))?;
    let height = next_height(&chain);
    let wal = match chain.storage.wal_get(WAL_KEY)? {
        Some(bytes) => Some(decode_exact::<WalRecord>(&bytes).map_err(|e| {
            NodeError::Config(format!(
                "the consensus WAL record does not decode ({e}); the database is damaged — restore it or \
                 purge the chain and sync again"
            ))
        })?),
        None => None,
    };
    if let Some(record) = &wal {
        if record.height == height {
            tracing::info!(
                target: "cdrchain::consensus",
                "resuming height {} round {} from the WAL ({} signed messages, lock {:?})",
                record.height,
                record.round.0,
                record.signed.len(),
                record.locked.map(|(r, h)| (r.0, h))
            );
        }
    }
    let evidence = load_evidence(&chain)?;
    status.lock().evidence = evidence;
    // A WAL record of a later height than storage's next one: the machine decided a block the
    // node did not commit before it stopped. Until sync brings storage there, follow without
    // signing anything, so that nothing signed at those heights can be contradicted.
    let ahead = wal.as_ref().filter(|record| record.height > height).cloned();
    let (machine, outputs) = match &ahead {
        Some(record) => {
            tracing::warn!(
                target: "cdrchain::consensus",
                "the WAL is at height {} but storage at {}: following as an observer until synced",
                record.height,
                height.0 - 1
            );
            Consensus::new(validators.clone(), None, settings.params, height, None)
        }
        None => Consensus::new(validators.clone(), Some(me.clone()), settings.params, height, wal),
    };
    let (net_handle, events, operators) = match net {
        Some(net) => (Some(net.handle), Some(net.events), net.operators),
        None => (None, None, HashMap::new()),
    };
    // Transaction gossip is checked beside consensus, not on its task: a proposal or vote never
    // waits behind megabytes of batches being decoded and verified.
    let pooled = Arc::new(tokio::sync::Notify::new());
    let mut events = match (events, &net_handle) {
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
    let (sync_tx, mut sync_rx) = mpsc::channel::<(PeerId, Result<Vec<u8>, String>)>(4);
    let mut driver = Driver {
        chain,
        pool,
        me: me.0.clone(),
        key: me.1,
        validators,
        pending_wal: ahead,
        settings,
        net: net_handle,
        operators,
        machine,
        timers: BinaryHeap::new(),
        timer_seq: 0,
        blocks: HashMap::new(),
        incomplete: HashMap::new(),
        wanted: HashMap::new(),
        sent: HashMap::new(),
        held: HashMap::new(),
        executed: HashMap::new(),
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
    };
    driver.carry_out(outputs).await?;
    driver.refresh_status();
    let mut housekeeping = tokio::time::interval(Duration::from_millis(50));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_timer = driver.timers.peek().map(|Reverse((at, _, _))| *at);
        let sleep = tokio::time::sleep_until(
            next_timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)).into(),
        );
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    tracing::info!(target: "cdrchain::consensus", "consensus stopped at height {}", driver.machine.height());
                    if let Some(net) = &driver.net {
                        net.shutdown();
                    }
                    return Ok(());
                }
            }
            event = recv(&mut events) => match event {
                Some(event) => driver.on_network(event).await?,
                None => {
                    events = None;
                    tracing::error!(target: "cdrchain::consensus", "the network stopped; this validator is cut off");
                }
            },
            Some((peer, response)) = sync_rx.recv() => driver.on_sync_response(peer, response).await?,
            _ = sleep, if next_timer.is_some() => driver.fire_timers().await?,
            _ = housekeeping.tick() => driver.housekeeping().await?,
            _ = pooled.notified() => driver.complete_proposals().await?,
        }
    }
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
    static SET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SET.get_or_init(|| std::env::var("CDRCHAIN_FAILPOINT").is_ok_and(|v| v == "exit-after-prevote"))
}

fn next_height(chain: &Chain) -> Height {
    Height(chain.storage.head().map_or(0, |h| h.header.number.0) + 1)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Nonces start at the clock in microseconds, so a restarted node does not reuse its earlier
/// gossip ids.
fn initial_nonce() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0))
}

fn load_evidence(chain: &Chain) -> Result<Vec<Evidence>, NodeError> {
    match chain.storage.meta_get(EVIDENCE_KEY)? {
        Some(bytes) => decode_exact::<Vec<Evidence>>(&bytes)
            .map_err(|e| NodeError::Config(format!("stored consensus evidence does not decode: {e}"))),
        None => Ok(Vec::new()),
    }
}

struct Driver {
    chain: Arc<Chain>,
    pool: Arc<TxPool>,
    me: OperatorId,
    key: SigningKey,
    validators: Validators,
    /// A WAL record ahead of storage: the machine runs as an observer until storage reaches it.
    pending_wal: Option<WalRecord>,
    settings: ValidatorSettings,
    net: Option<NetworkHandle>,
    operators: HashMap<PeerId, OperatorId>,
    machine: Consensus,
    timers: BinaryHeap<Reverse<(Instant, u64, Timeout)>>,
    timer_seq: u64,
    /// Proposed blocks by hash (ours and others'), for the current and next height.
    blocks: HashMap<Hash32, Block>,
    /// Proposals that arrived compact while some of their transactions were not in the pool:
    /// completed when the transactions arrive by gossip, or a whole copy of the block does.
    incomplete: HashMap<Hash32, CompactBlock>,
    /// Blocks the machine asked to execute before they were complete here: executed on arrival.
    wanted: HashMap<Hash32, Height>,
    /// Our proposals' blocks in compact form, and how often each was sent.
    sent: HashMap<Hash32, (u32, CompactBlock)>,
    /// The (height, round) each held block was proposed for: at most two per slot from peers.
    held: HashMap<Hash32, (Height, Round)>,
    /// State changes of blocks that were built or checked, ready to commit.
    executed: HashMap<Hash32, StateChanges>,
    last_commit: Instant,
    /// When this node last started a height's round 0 (fed `Ready`): the block interval counts
    /// from there, so a height whose work took longer than the interval is followed at once.
    last_ready: Instant,
    ready_sent: bool,
    nonce: u64,
    connected: BTreeSet<PeerId>,
    sync_in_flight: bool,
    sync_turn: usize,
    last_sync: Option<Instant>,
    sync_tx: mpsc::Sender<(PeerId, Result<Vec<u8>, String>)>,
    /// Our own pool transactions and when they were last gossiped.
    announced: HashMap<Hash32, Instant>,
    /// The task publishing the last announcement, while it runs.
    announcing: Option<tokio::task::JoinHandle<()>>,
    status: Arc<ConsensusStatus>,
    /// Inputs produced while carrying out outputs (answers to Build and Execute).
    inputs: Vec<Input>,
}

impl Driver {
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

    async fn carry_out(&mut self, outputs: Vec<Output>) -> Result<(), NodeError> {
        let mut queue = std::collections::VecDeque::from(outputs);
        loop {
            while let Some(output) = queue.pop_front() {
                self.carry_out_one(output).await?;
            }
            if let Some(record) = self.pending_wal.take_if(|r| r.height == next_height(&self.chain)) {
                tracing::info!(
                    target: "cdrchain::consensus",
                    "storage reached height {}: signing again, from the WAL",
                    record.height.0 - 1
                );
                let me = Some((self.me.clone(), self.key.clone()));
                let (machine, outputs) = Consensus::new(
                    self.validators.clone(),
                    me,
                    self.settings.params,
                    record.height,
                    Some(record),
                );
                self.machine = machine;
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
        self.refresh_status();
        Ok(())
    }

    async fn carry_out_one(&mut self, output: Output) -> Result<(), NodeError> {
        match output {
            Output::Wal(record) => {
                // Synced before anything after it leaves the node.
                let storage = self.chain.storage.clone();
                tokio::task::block_in_place(|| storage.wal_put(WAL_KEY, &record.encode()))?;
            }
            Output::Broadcast(message) => {
                let own_prevote = matches!(&message, ConsensusMessage::Vote(v)
                    if v.voter == self.me && v.vote.kind == cdrchain_runtime::block::VoteKind::Prevote && v.vote.height.0 >= 2);
                self.broadcast(message).await;
                if own_prevote && failpoint_exit_after_prevote() {
                    tracing::warn!(target: "cdrchain::consensus", "failpoint exit-after-prevote: stopping dead after sending a prevote");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    std::process::exit(137);
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
                self.start_sync(None, Duration::from_millis(500));
            }
        }
        Ok(())
    }

    async fn broadcast(&mut self, message: ConsensusMessage) {
        let Some(net) = self.net.clone() else { return };
        let block = match &message {
            ConsensusMessage::Proposal(p) => {
                let hash = p.proposal.block_hash;
                // After a restart we may have signed a proposal whose block we no longer hold:
                // without it the proposal is useless to others.
                let Some(block) = self.blocks.get(&hash) else { return };
                let genesis = self.chain.ctx.genesis_hash;
                let executed = self.executed.get(&hash);
                let entry = self.sent.entry(hash).or_insert_with(|| {
                    // Our own block: its build computed the ids (else hash each batch again).
                    let ids = match executed {
                        Some(changes) if changes.tx_ids.len() == block.transactions.len() => {
                            changes.tx_ids.clone()
                        }
                        _ => block.transactions.iter().map(|tx| tx.id(&genesis)).collect(),
                    };
                    let tx_ids = BoundedVec::new(ids).unwrap_or_else(|_| BoundedVec::default());
                    (0, CompactBlock { header: block.header.clone(), tx_ids })
                });
                entry.0 += 1;
                let complete = entry.1.tx_ids.len() == block.transactions.len();
                Some(if entry.0 <= COMPACT_SENDS && complete {
                    BlockWire::Compact(entry.1.clone())
                } else {
                    BlockWire::Full(block.clone())
                })
            }
            ConsensusMessage::Vote(_) => None,
        };
        tracing::debug!(target: "cdrchain::consensus", "sending {}", message.describe());
        let wire = ConsensusWire { nonce: self.next_nonce(), message, block };
        if let Err(e) = net.publish(Topic::Consensus, wire.encode()).await {
            tracing::debug!(target: "cdrchain::consensus", "consensus message not sent: {e}");
        }
    }

    /// The proposer's getValue(): a block on the head from the pool.
    fn build(&mut self, height: Height, round: Round) -> Result<(), NodeError> {
        if next_height(&self.chain) != height {
            return Ok(());
        }
        let mut candidates = self.pool.snapshot(crate::MAX_TXS_PER_BUILD);
        // Per operator in sequence order, so that batches gossiped out of order still chain.
        candidates.sort_by_key(|(_, a)| sequence_key(a));
        let parent_ts = self.chain.storage.parent_ref().timestamp_ms;
        let built =
            tokio::task::block_in_place(|| self.chain.build(&self.me, candidates, now_ms().max(parent_ts)))?;
        self.drop_refused(&built.refused);
        let hash = built.block.hash();
        tracing::info!(
            target: "cdrchain::consensus",
            "proposing block #{height} round {} {}… with {} CDRs in {} txs",
            round.0,
            &hash.to_hex()[..12],
            built.block.cdr_count(),
            built.block.transactions.len()
        );
        self.hold_block(built.block);
        self.executed.insert(hash, built.changes);
        self.inputs.push(Input::Built { height, round, block_hash: hash });
        Ok(())
    }

    /// Drops transactions that can never apply (stale sequences, bad data); keeps those that only
    /// wait for an earlier one (a gap may close when the missing batch arrives).
    fn drop_refused(&self, refused: &[(Hash32, TxError)]) {
        let dead: Vec<Hash32> = refused
            .iter()
            .filter(|(_, e)| !matches!(e, TxError::SequenceGap { .. }))
            .map(|(id, e)| {
                tracing::warn!(target: "cdrchain::consensus", "dropping transaction {id}: {e}");
                *id
            })
            .collect();
        self.pool.remove(&dead);
    }

    fn hold_block(&mut self, block: Block) {
        let hash = block.hash();
        self.held.insert(hash, (block.header.number, self.machine.round()));
        self.blocks.insert(hash, block);
    }

    /// The machine's valid(v): does the proposed block apply on our head?
    fn execute(&mut self, height: Height, block_hash: Hash32) {
        if next_height(&self.chain) != height {
            // Storage is not where the machine is (a sync is under way): no verdict yet; the
            // machine cannot decide this block, and sync will bring it.
            return;
        }
        let verdict = match self.blocks.get(&block_hash) {
            None => {
                // Not held (never arrived, not kept, or still missing transactions): no verdict
                // yet, so never a decision on a block this node could not commit; it is checked
                // if it arrives while this height lasts.
                tracing::debug!(target: "cdrchain::consensus", "no block {block_hash} to check for height {height} yet");
                self.wanted.insert(block_hash, height);
                return;
            }
            Some(block) if block.header.timestamp_ms > now_ms().saturating_add(MAX_CLOCK_DRIFT_MS) => {
                Err(format!(
                    "its timestamp {} is more than {} s ahead of this node's clock",
                    block.header.timestamp_ms,
                    MAX_CLOCK_DRIFT_MS / 1000
                ))
            }
            Some(block) => {
                let parent = self.chain.storage.parent_ref();
                tokio::task::block_in_place(|| {
                    apply_block(&self.chain.ctx, &*self.chain.storage, &parent, block)
                        .map_err(|e| e.to_string())
                })
            }
        };
        let valid = match verdict {
            Ok(changes) => {
                self.executed.insert(block_hash, changes);
                true
            }
            Err(reason) => {
                tracing::warn!(target: "cdrchain::consensus", "proposed block #{height} {block_hash} is invalid: {reason}");
                false
            }
        };
        self.inputs.push(Input::Executed { height, block_hash, valid });
    }

    fn commit(&mut self, decision: Decision) -> Result<(), NodeError> {
        let Decision { height, block_hash, certificate, .. } = decision;
        let (Some(block), Some(changes)) = (self.blocks.get(&block_hash), self.executed.remove(&block_hash))
        else {
            tracing::warn!(target: "cdrchain::consensus", "decided block #{height} {block_hash} is not held here; syncing it");
            self.start_sync(None, Duration::ZERO);
            return Ok(());
        };
        let block = block.clone();
        let chain = self.chain.clone();
        let me = self.me.clone();
        tokio::task::block_in_place(|| chain.commit_decided(&block, &changes, &certificate, &me))?;
        self.after_commit(&block, &changes.tx_ids);
        Ok(())
    }

    /// When the committed block recorded its parent's checkpoint, signs it (once) and puts the
    /// signature transaction in the pool, which gossips it like our other transactions.
    fn sign_checkpoint(&mut self, block: &Block) {
        let Some(signing) = self.settings.checkpoints.clone() else { return };
        let interval = self.chain.ctx.checkpoint_interval;
        let Some(height) = block.header.number.0.checked_sub(1) else { return };
        if interval == 0 || height == 0 || !height.is_multiple_of(interval) {
            return;
        }
        let height = Height(height);
        let storage = &self.chain.storage;
        let read = |key: StateKey| storage.get(&key.encode());
        match read(StateKey::CheckpointSignature(height, self.me.clone())) {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(e) => {
                tracing::error!(target: "cdrchain::checkpoint", "reading checkpoint signatures: {e}");
                return;
            }
        }
        let checkpoint = match read(StateKey::Checkpoint(height))
            .map(|b| b.map(|b| decode_exact::<Checkpoint>(&b)))
        {
            Ok(Some(Ok(checkpoint))) => checkpoint,
            other => {
                tracing::error!(target: "cdrchain::checkpoint", "no readable checkpoint at #{height}: {other:?}");
                return;
            }
        };
        let digest = checkpoint.digest(self.chain.ctx.rsk_chain_id, &signing.contract);
        let signature = match cdrchain_runtime::checkpoint::sign_digest(&signing.evm_key, &digest) {
            Ok(signature) => signature,
            Err(e) => {
                tracing::error!(target: "cdrchain::checkpoint", "signing the checkpoint at #{height}: {e}");
                return;
            }
        };
        let tx = Transaction::CheckpointSignature(CheckpointSignature {
            operator: self.me.clone(),
            height,
            contract: signing.contract,
            signature,
        });
        let genesis = self.chain.ctx.genesis_hash;
        let signed = SignedTransaction::sign(tx, &self.key, &genesis);
        match self.pool.add(signed.id(&genesis), signed) {
            Ok(()) => tracing::info!(
                target: "cdrchain::checkpoint",
                "signed checkpoint #{height} (block {}, log size {}) for contract {}",
                checkpoint.block_hash,
                checkpoint.cdr_log_size,
                signing.contract.to_hex()
            ),
            Err(e) => {
                tracing::warn!(target: "cdrchain::checkpoint", "checkpoint #{height} signature not pooled: {e}")
            }
        }
    }

    /// `ids`: the block's transaction ids, as its execution computed them.
    fn after_commit(&mut self, block: &Block, ids: &[Hash32]) {
        self.sign_checkpoint(block);
        self.pool.remove(ids);
        for id in ids {
            self.announced.remove(id);
        }
        let height = block.header.number;
        self.blocks.retain(|_, b| b.header.number > height);
        self.incomplete.retain(|_, c| c.header.number > height);
        self.wanted.retain(|_, h| *h > height);
        self.sent.retain(|_, (_, c)| c.header.number > height);
        self.held.retain(|_, (h, _)| *h > height);
        self.executed.clear();
        self.last_commit = Instant::now();
        self.ready_sent = false;
    }

    fn record_evidence(&mut self, evidence: Evidence) -> Result<(), NodeError> {
        tracing::warn!(
            target: "cdrchain::consensus",
            "EQUIVOCATION: `{}` signed two different {}s at height {} round {}; evidence kept",
            evidence.offender(),
            evidence.step(),
            evidence.height(),
            evidence.round().0
        );
        self.chain.metrics.equivocations.inc();
        let all = {
            let mut status = self.status.lock();
            if !status.evidence.contains(&evidence) {
                status.evidence.push(evidence);
                let excess = status.evidence.len().saturating_sub(MAX_EVIDENCE);
                status.evidence.drain(..excess);
            }
            status.evidence.clone()
        };
        self.chain.storage.meta_put(EVIDENCE_KEY, &all.encode())?;
        Ok(())
    }

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
        // Nothing committed for a while although others may have: ask a peer.
        let stalled = self.last_commit.elapsed() > Duration::from_secs(3);
        if stalled && !self.connected.is_empty() {
            self.start_sync(None, Duration::from_secs(2));
        }
        Ok(())
    }

    /// Gossips our own pool transactions: new ones at once, waiting ones again every few seconds.
    fn announce_transactions(&mut self) {
        let Some(net) = self.net.clone() else { return };
        if self.connected.is_empty() || self.announcing.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let now = Instant::now();
        let me = self.me.clone();
        let ids: Vec<Hash32> = self
            .pool
            .ids_where(|tx| tx.transaction.operator() == &me)
            .into_iter()
            .filter(|id| {
                self.announced.get(id).is_none_or(|at| now.duration_since(*at) > Duration::from_secs(3))
            })
            .collect();
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            self.announced.insert(*id, now);
        }
        let due = self.pool.get_many(&ids);
        let messages: Vec<(u64, Vec<SignedTransaction>)> = gossip_chunks(due, net.limit(Topic::Transactions))
            .into_iter()
            .map(|chunk| (self.next_nonce(), chunk))
            .collect();
        // Published from their own task: the consensus task never waits for the network to take
        // megabytes of batches (one announcement at a time; the next tick skips while it runs).
        self.announcing = Some(tokio::spawn(async move {
            for (nonce, chunk) in messages {
                let Ok(txs) = BoundedVec::new(chunk) else { continue };
                let bytes = TxWire { nonce, txs }.encode();
                if let Err(e) = net.publish(Topic::Transactions, bytes).await {
                    tracing::warn!(target: "cdrchain::consensus", "transactions not gossiped: {e}");
                }
            }
        }));
    }

    async fn on_network(&mut self, event: NetworkEvent) -> Result<(), NodeError> {
        match event {
            NetworkEvent::Gossip { topic: Topic::Consensus, source, id, data } => {
                let verdict = self.on_consensus_gossip(&data).await?;
                if let Some(net) = &self.net {
                    net.report(id, source, verdict);
                }
            }
            NetworkEvent::Gossip { topic: Topic::Transactions, source, id, .. } => {
                // `route_events` sends these to the transaction intake; none should come here.
                if let Some(net) = &self.net {
                    net.report(id, source, Validation::Ignore);
                }
            }
            NetworkEvent::SyncRequest { peer, request, reply } => {
                // Reading blocks can take a while: not on the consensus task.
                if let Some(net) = self.net.clone() {
                    let chain = self.chain.clone();
                    tokio::task::spawn_blocking(move || {
                        let response = serve_sync(&chain, peer, &request);
                        net.respond(reply, response);
                    });
                }
            }
            NetworkEvent::PeerConnected(peer) => {
                tracing::info!(target: "cdrchain::network", "peer connected: {peer} ({})", self.operator_name(&peer));
                self.connected.insert(peer);
                // Let it have our waiting transactions soon.
                self.announced.clear();
                self.refresh_peers().await;
            }
            NetworkEvent::PeerDisconnected(peer) => {
                tracing::info!(target: "cdrchain::network", "peer disconnected: {peer} ({})", self.operator_name(&peer));
                self.connected.remove(&peer);
                self.refresh_peers().await;
            }
            NetworkEvent::Listening(address) => {
                tracing::info!(target: "cdrchain::network", "p2p listening on {address}");
            }
        }
        Ok(())
    }

    fn operator_name(&self, peer: &PeerId) -> String {
        self.operators
            .get(peer)
            .map_or_else(|| "not in the chain spec".to_string(), |op| format!("operator `{op}`"))
    }

    async fn on_consensus_gossip(&mut self, data: &[u8]) -> Result<Validation, NodeError> {
        let wire: ConsensusWire = match decode_exact(data) {
            Ok(wire) => wire,
            Err(e) => {
                tracing::warn!(target: "cdrchain::consensus", "refused a consensus message of {} bytes: {e}", data.len());
                return Ok(Validation::Reject);
            }
        };
        let mut held = None;
        let mut arrived = None;
        if let ConsensusMessage::Proposal(p) = &wire.message {
            let (h, r) = (p.proposal.height, p.proposal.round);
            let current = self.machine.height();
            let useful = (h == current && r.0 <= self.machine.round().0.saturating_add(1))
                || (Some(h) == current.next() && r.0 == 0);
            let already = self.blocks.contains_key(&p.proposal.block_hash)
                || self.incomplete.contains_key(&p.proposal.block_hash);
            let same_slot = self.held.values().filter(|slot| **slot == (h, r)).count();
            if !already && (!useful || same_slot >= 2) {
                // A proposal we could not use now (too far ahead) or a third block for one
                // (height, round): not kept; the proposer re-sends when it matters.
                return Ok(Validation::Ignore);
            }
            let hash = p.proposal.block_hash;
            match wire.block {
                Some(block) if block.header().number != h => {
                    tracing::warn!(target: "cdrchain::consensus", "refused {}: its block is for height {}", wire.message.describe(), block.header().number);
                    return Ok(Validation::Reject);
                }
                Some(block) if block.header().hash() != hash => {
                    tracing::warn!(target: "cdrchain::consensus", "refused {}: the attached block has another hash", wire.message.describe());
                    return Ok(Validation::Reject);
                }
                Some(BlockWire::Full(block)) => {
                    if let Err(reason) = self.fits(&block) {
                        tracing::warn!(target: "cdrchain::consensus", "refused {}: {reason}", wire.message.describe());
                        return Ok(Validation::Reject);
                    }
                    if !self.blocks.contains_key(&hash) {
                        self.incomplete.remove(&hash);
                        if !already {
                            held = Some(hash);
                            self.held.insert(hash, (h, r));
                        }
                        self.blocks.insert(hash, block);
                    }
                }
                Some(BlockWire::Compact(compact)) => {
                    if !already {
                        self.incomplete.insert(hash, compact);
                        match self.complete(hash) {
                            Err(reason) => {
                                tracing::warn!(target: "cdrchain::consensus", "refused {}: {reason}", wire.message.describe());
                                return Ok(Validation::Reject);
                            }
                            Ok(false) => {
                                tracing::debug!(target: "cdrchain::consensus", "{}: waiting for some of its transactions", wire.message.describe());
                            }
                            Ok(true) => {}
                        }
                        held = Some(hash);
                        self.held.insert(hash, (h, r));
                    }
                }
                None => return Ok(Validation::Reject),
            }
            arrived = Some(hash);
        }
        let description = wire.message.describe();
        let verdict = self.feed(Input::Message(wire.message)).await?;
        if let Some(hash) = arrived {
            // A re-sent proposal the machine already had, whose block only now became complete.
            self.execute_wanted(hash).await?;
        }
        Ok(match verdict {
            Verdict::Accepted => Validation::Accept,
            Verdict::Ignored => Validation::Ignore,
            Verdict::Rejected(error) => {
                tracing::warn!(target: "cdrchain::consensus", "refused {description}: {error}");
                if let Some(hash) = held {
                    self.blocks.remove(&hash);
                    self.incomplete.remove(&hash);
                    self.held.remove(&hash);
                }
                Validation::Reject
            }
        })
    }

    /// Moves the incomplete proposal `hash` to the held blocks once the pool has all its
    /// transactions: `Ok(true)` when it did, `Ok(false)` while one is missing (it stays
    /// incomplete), `Err` when the rebuilt block is over the size limit (it is dropped).
    fn complete(&mut self, hash: Hash32) -> Result<bool, String> {
        let Some(compact) = self.incomplete.get(&hash) else { return Ok(self.blocks.contains_key(&hash)) };
        // Checked before anything is cloned: batches are large.
        if !compact.tx_ids.iter().all(|id| self.pool.contains(id)) {
            return Ok(false);
        }
        let txs = self.pool.get_many(&compact.tx_ids);
        if txs.len() != compact.tx_ids.len() {
            // Evicted between the two looks: it stays incomplete until it arrives again.
            return Ok(false);
        }
        let Some(compact) = self.incomplete.remove(&hash) else { return Ok(false) };
        // As many transactions as the compact block's (bounded) ids: this always fits.
        let transactions = BoundedVec::new(txs)
            .map_err(|txs| format!("{} transactions, more than a block holds", txs.len()))?;
        let block = Block { header: compact.header, transactions };
        self.fits(&block)?;
        self.blocks.insert(hash, block);
        Ok(true)
    }

    /// Whether a proposed block is within the chain's size limit.
    fn fits(&self, block: &Block) -> Result<(), String> {
        let size = block.encoded_size();
        let max = self.chain.spec.params.max_block_bytes as usize;
        if size > max {
            return Err(format!("its block is {size} bytes, over the chain's {max}"));
        }
        Ok(())
    }

    /// Completes the compact proposals whose transactions have all arrived, and checks those
    /// the machine is waiting for.
    async fn complete_proposals(&mut self) -> Result<(), NodeError> {
        let waiting: Vec<Hash32> = self.incomplete.keys().copied().collect();
        for hash in waiting {
            match self.complete(hash) {
                Ok(true) => {
                    tracing::debug!(target: "cdrchain::consensus", "block {hash} complete: its last transactions arrived");
                    self.execute_wanted(hash).await?;
                }
                Ok(false) => {}
                Err(reason) => {
                    tracing::warn!(target: "cdrchain::consensus", "dropping proposed block {hash}: {reason}")
                }
            }
        }
        Ok(())
    }

    /// Checks a block the machine asked about before it was complete here, now that it is.
    async fn execute_wanted(&mut self, hash: Hash32) -> Result<(), NodeError> {
        if !self.blocks.contains_key(&hash) {
            return Ok(());
        }
        if let Some(height) = self.wanted.remove(&hash) {
            self.execute(height, hash);
            self.carry_out(Vec::new()).await?;
        }
        Ok(())
    }

    /// Asks `peer` (or any connected peer) for the blocks after our head, unless a request is in
    /// flight or one was sent less than `spacing` ago.
    fn start_sync(&mut self, peer: Option<PeerId>, spacing: Duration) {
        let Some(net) = self.net.clone() else { return };
        if self.sync_in_flight || self.last_sync.is_some_and(|at| at.elapsed() < spacing) {
            return;
        }
        let peer = match peer.filter(|p| self.connected.contains(p)) {
            Some(peer) => peer,
            None => {
                // Rotate through the connected peers.
                let list: Vec<PeerId> = self.connected.iter().copied().collect();
                if list.is_empty() {
                    return;
                }
                self.sync_turn = self.sync_turn.wrapping_add(1);
                let index = self.sync_turn % list.len();
                list[index]
            }
        };
        self.sync_in_flight = true;
        self.last_sync = Some(Instant::now());
        let request = SyncRequest { from: next_height(&self.chain), max: SYNC_BATCH }.encode();
        let tx = self.sync_tx.clone();
        tokio::spawn(async move {
            let response = net.request(peer, request).await.map_err(|e| e.to_string());
            let _ = tx.send((peer, response)).await;
        });
    }

    async fn on_sync_response(
        &mut self,
        peer: PeerId,
        response: Result<Vec<u8>, String>,
    ) -> Result<(), NodeError> {
        self.sync_in_flight = false;
        let bytes = match response {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(target: "cdrchain::network", "sync request to {peer} failed: {e}");
                return Ok(());
            }
        };
        let response: SyncResponse = match decode_exact(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "cdrchain::network", "sync response from {peer} does not decode: {e}");
                return Ok(());
            }
        };
        let count = response.blocks.len();
        let mut imported = None;
        for (block, certificate) in response.blocks.into_inner() {
            let expected = next_height(&self.chain);
            if block.header.number < expected {
                continue;
            }
            if block.header.number != expected {
                break;
            }
            let chain = self.chain.clone();
            let me = self.me.clone();
            match tokio::task::block_in_place(|| chain.import(&block, &certificate, &me)) {
                Ok(ids) => {
                    self.after_commit(&block, &ids);
                    imported = Some(block.header.number);
                }
                Err(NodeError::Storage(e)) => return Err(NodeError::Storage(e)),
                Err(e) => {
                    tracing::warn!(target: "cdrchain::network", "refused block #{} from {peer}: {e}", block.header.number);
                    break;
                }
            }
        }
        if let Some(height) = imported {
            tracing::info!(target: "cdrchain::network", "synced up to block #{height} from {peer}");
            self.feed(Input::Committed { height }).await?;
            if count as u32 >= SYNC_BATCH {
                // There may be more.
                self.start_sync(Some(peer), Duration::ZERO);
            }
        }
        Ok(())
    }

    async fn refresh_peers(&mut self) {
        let Some(net) = &self.net else { return };
        let peers = net.peers().await;
        let summaries = peers
            .into_iter()
            .map(|p| PeerSummary {
                peer_id: p.peer_id.to_string(),
                operator: self.operators.get(&p.peer_id).map(ToString::to_string),
                address: p.address.to_string(),
                direction: format!("{:?}", p.direction).to_lowercase(),
            })
            .collect::<Vec<_>>();
        self.chain.metrics.peers.set(i64::try_from(summaries.len()).unwrap_or(i64::MAX));
        self.status.lock().peers = summaries;
    }

    fn refresh_status(&self) {
        let mut status = self.status.lock();
        status.height = self.machine.height().0;
        status.round = self.machine.round().0;
        status.step = format!("{:?}", self.machine.step()).to_lowercase();
        status.is_syncing = self.sync_in_flight;
        self.chain.metrics.consensus_round.set(i64::from(self.machine.round().0));
    }
}

/// Answers a peer's sync request from storage.
fn serve_sync(chain: &Chain, peer: PeerId, request: &[u8]) -> Vec<u8> {
    let empty = || SyncResponse { blocks: BoundedVec::default() }.encode();
    let Ok(request) = decode_exact::<SyncRequest>(request) else {
        tracing::warn!(target: "cdrchain::network", "malformed sync request from {peer}");
        return empty();
    };
    let max = (request.max as usize).min(MAX_BLOCKS_PER_SYNC);
    let budget = 32 * 1024 * 1024;
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    let mut height = request.from;
    while blocks.len() < max && height.0 > 0 {
        let (Ok(Some(block)), Ok(Some(certificate))) =
            (chain.storage.block(height), chain.storage.certificate(height))
        else {
            break;
        };
        bytes += block.encoded_size();
        if !blocks.is_empty() && bytes > budget {
            break;
        }
        blocks.push((block, certificate));
        height = Height(height.0 + 1);
    }
    tracing::debug!(target: "cdrchain::network", "serving {} blocks from #{} to {peer}", blocks.len(), request.from);
    match BoundedVec::new(blocks) {
        Ok(blocks) => SyncResponse { blocks }.encode(),
        Err(_) => empty(),
    }
}

/// Where the transaction gossip goes: checked off the consensus task, into the pool.
struct TxIntake {
    chain: Arc<Chain>,
    pool: Arc<TxPool>,
    net: NetworkHandle,
    /// Told when transactions entered the pool (a compact proposal may now be complete).
    pooled: Arc<tokio::sync::Notify>,
}

/// Transaction gossip messages waiting to be checked; beyond this they are dropped (the owner
/// gossips waiting transactions again every few seconds).
const TX_INTAKE_QUEUE: usize = 64;

/// Splits the network's events: transaction gossip to a task that checks it (decoding and
/// signature checks on the blocking pool), everything else to the consensus driver, which gets
/// the returned receiver.
fn route_events(mut events: mpsc::Receiver<NetworkEvent>, intake: TxIntake) -> mpsc::Receiver<NetworkEvent> {
    let (to_driver, driver_events) = mpsc::channel(1024);
    let (to_intake, mut intake_events) =
        mpsc::channel::<(PeerId, cdrchain_network::MessageId, Vec<u8>)>(TX_INTAKE_QUEUE);
    let net = intake.net.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::Gossip { topic: Topic::Transactions, source, id, data } => {
                    if let Err(mpsc::error::TrySendError::Full((source, id, _))) =
                        to_intake.try_send((source, id, data))
                    {
                        tracing::debug!(target: "cdrchain::consensus", "transaction gossip queue full: a message from {source} dropped");
                        net.report(id, source, Validation::Ignore);
                    }
                }
                other => {
                    if to_driver.send(other).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let intake = Arc::new(intake);
        while let Some((source, id, data)) = intake_events.recv().await {
            let checker = intake.clone();
            let verdict =
                tokio::task::spawn_blocking(move || check_tx_gossip(&checker.chain, &checker.pool, &data))
                    .await
                    .unwrap_or(Validation::Ignore);
            intake.net.report(id, source, verdict);
            if verdict == Validation::Accept {
                intake.pooled.notify_one();
            }
        }
    });
    driver_events
}

/// Decodes gossiped transactions, checks each one's signature against its registered operator,
/// and pools them. One bad transaction rejects the message.
fn check_tx_gossip(chain: &Chain, pool: &TxPool, data: &[u8]) -> Validation {
    let wire: TxWire = match decode_exact(data) {
        Ok(wire) => wire,
        Err(e) => {
            tracing::warn!(target: "cdrchain::consensus", "refused gossiped transactions ({} bytes): {e}", data.len());
            return Validation::Reject;
        }
    };
    let genesis = chain.ctx.genesis_hash;
    let mut added = 0;
    for tx in wire.txs.into_inner() {
        let operator = tx.transaction.operator().clone();
        let Some((_, key)) = chain.authorities_and_operators().find(|(id, _)| *id == operator) else {
            tracing::warn!(target: "cdrchain::consensus", "refused a gossiped transaction of unknown operator `{operator}`");
            return Validation::Reject;
        };
        let id = match tx.verify(&key, &genesis) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(target: "cdrchain::consensus", "refused a gossiped transaction of `{operator}`: {e}");
                return Validation::Reject;
            }
        };
        if pool.add(id, tx).is_ok() {
            added += 1;
        }
    }
    if added > 0 {
        Validation::Accept
    } else {
        Validation::Ignore
    }
}

/// Splits transactions into gossip messages of at most `limit` bytes and [`MAX_TXS_PER_GOSSIP`]
/// transactions each, in order. A transaction too large for any message is left out with a
/// warning (the batcher keeps batches far below the limit, so this is a misconfiguration).
fn gossip_chunks(txs: Vec<SignedTransaction>, limit: usize) -> Vec<Vec<SignedTransaction>> {
    // A TxWire is a u64 nonce and a compact length prefix (at most 5 bytes) before the list.
    let room = limit.saturating_sub(16);
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0usize;
    for tx in txs {
        let size = tx.encoded_size();
        if size > room {
            tracing::warn!(
                target: "cdrchain::consensus",
                "a transaction of `{}` is {size} bytes, over the gossip limit of {room}: other validators get it only in a block this node proposes",
                tx.transaction.operator()
            );
            continue;
        }
        if !chunk.is_empty() && (bytes + size > room || chunk.len() == MAX_TXS_PER_GOSSIP) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(tx);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Sorts transactions of one operator by sequence; call events keep their place at the end.
fn sequence_key(tx: &SignedTransaction) -> (u8, OperatorId, u64) {
    match &tx.transaction {
        Transaction::CdrBatch(b) => (0, b.operator.clone(), b.first_sequence.0),
        Transaction::SequenceGap(g) => (0, g.operator.clone(), g.from.0),
        Transaction::CallEvent(e) => (1, e.operator.clone(), 0),
        Transaction::CheckpointSignature(c) => (2, c.operator.clone(), c.height.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdrchain_runtime::sample::SampleChain;

    #[test]
    fn gossip_chunks_respect_the_byte_limit_and_keep_order() {
        let chain = SampleChain::new(&["alice"]);
        let txs: Vec<SignedTransaction> = (0..7).map(|i| chain.batch("alice", i * 100, 100)).collect();
        let size = txs[0].encoded_size();
        assert!(txs.iter().all(|tx| tx.encoded_size() == size), "equal-size batches for this test");
        // Room for two transactions per message.
        let limit = 2 * size + 16;
        let chunks = gossip_chunks(txs.clone(), limit);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2, 1]);
        for chunk in &chunks {
            let wire = TxWire { nonce: u64::MAX, txs: BoundedVec::new(chunk.clone()).unwrap() };
            assert!(wire.encoded_size() <= limit, "{} > {limit}", wire.encoded_size());
        }
        assert_eq!(chunks.concat(), txs);
        // A transaction over the limit is left out; the others still go.
        let mut mixed = vec![txs[0].clone(), chain.batch("alice", 700, 1_000), txs[1].clone()];
        let big = mixed[1].encoded_size();
        assert!(big > limit);
        assert_eq!(
            gossip_chunks(std::mem::take(&mut mixed), limit),
            vec![vec![txs[0].clone(), txs[1].clone()]]
        );
        // Many small ones: at most MAX_TXS_PER_GOSSIP per message.
        let small: Vec<SignedTransaction> =
            (0..(MAX_TXS_PER_GOSSIP as u64 + 3)).map(|i| chain.batch("alice", i, 1)).collect();
        let counts: Vec<usize> = gossip_chunks(small, usize::MAX).iter().map(Vec::len).collect();
        assert_eq!(counts, vec![MAX_TXS_PER_GOSSIP, 3]);
    }
}
