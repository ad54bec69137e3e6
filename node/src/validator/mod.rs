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

mod checkpoint;
mod gossip;
mod proposals;
mod status;
mod sync;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdrchain_consensus::{
    Consensus, ConsensusMessage, Decision, Input, Output, Params, Timeout, Validators, Verdict, WalRecord,
};
use cdrchain_network::{NetworkEvent, NetworkHandle, PeerId, Topic};
use cdrchain_runtime::apply::{apply_block, TxError};
use cdrchain_runtime::block::Block;
use cdrchain_runtime::codec::decode_exact;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use cdrchain_runtime::tx::{SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;
use tokio::sync::{mpsc, watch};

use self::gossip::{route_events, TxIntake};
use self::proposals::ProposalStore;
use self::status::load_evidence;
pub use self::status::{ConsensusStatus, PeerSummary, StatusInner};
use crate::chain::Chain;
use crate::pool::TxPool;
use crate::wire::ConsensusWire;
use crate::NodeError;

/// WAL key of the consensus state machine's record.
pub const WAL_KEY: &[u8] = b"consensus";
/// Metadata key of the evidence this node has seen.
pub const EVIDENCE_KEY: &str = "consensus-evidence";
/// Most evidence records kept.
pub const MAX_EVIDENCE: usize = 1_024;
/// A block whose timestamp is further ahead of our clock than this is refused.
const MAX_CLOCK_DRIFT_MS: u64 = 60_000;

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
    let proposals = ProposalStore::new(chain.spec.params.max_block_bytes as usize, chain.ctx.genesis_hash);
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
    /// Proposed blocks (ours and others') of the current and next height, through their
    /// lifecycle: compact, whole, executed.
    proposals: ProposalStore,
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
                // After a restart we may have signed a proposal whose block we no longer hold:
                // without it the proposal is useless to others.
                let Some(block) = self.proposals.next_send(&p.proposal.block_hash) else { return };
                Some(block)
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
        self.proposals.insert_built(built.block, self.machine.round(), built.changes);
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

    /// The machine's valid(v): does the proposed block apply on our head?
    fn execute(&mut self, height: Height, block_hash: Hash32) {
        if next_height(&self.chain) != height {
            // Storage is not where the machine is (a sync is under way): no verdict yet; the
            // machine cannot decide this block, and sync will bring it.
            return;
        }
        let verdict = match self.proposals.block(&block_hash) {
            None => {
                // Not held (never arrived, not kept, or still missing transactions): no verdict
                // yet, so never a decision on a block this node could not commit; it is checked
                // if it arrives while this height lasts.
                tracing::debug!(target: "cdrchain::consensus", "no block {block_hash} to check for height {height} yet");
                self.proposals.want(block_hash, height);
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
                self.proposals.record_execution(block_hash, changes);
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
        let Some((block, changes)) = self.proposals.take_for_commit(&block_hash) else {
            tracing::warn!(target: "cdrchain::consensus", "decided block #{height} {block_hash} is not held here; syncing it");
            self.start_sync(None, Duration::ZERO);
            return Ok(());
        };
        let chain = self.chain.clone();
        let me = self.me.clone();
        tokio::task::block_in_place(|| chain.commit_decided(&block, &changes, &certificate, &me))?;
        self.after_commit(&block, &changes.tx_ids);
        Ok(())
    }

    /// `ids`: the block's transaction ids, as its execution computed them.
    fn after_commit(&mut self, block: &Block, ids: &[Hash32]) {
        self.sign_checkpoint(block);
        self.pool.remove(ids);
        for id in ids {
            self.announced.remove(id);
        }
        let height = block.header.number;
        self.proposals.prune_through(height);
        self.last_commit = Instant::now();
        self.ready_sent = false;
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

    /// Completes the compact proposals whose transactions have all arrived, and checks those
    /// the machine is waiting for.
    async fn complete_proposals(&mut self) -> Result<(), NodeError> {
        let completion = self.proposals.complete_from(&self.pool);
        for (hash, error) in completion.dropped {
            tracing::warn!(target: "cdrchain::consensus", "dropping proposed block {hash}: {error}");
        }
        for hash in completion.completed {
            tracing::debug!(target: "cdrchain::consensus", "block {hash} complete: its last transactions arrived");
            self.execute_wanted(hash).await?;
        }
        Ok(())
    }

    /// Checks a block the machine asked about before it was complete here, now that it is.
    async fn execute_wanted(&mut self, hash: Hash32) -> Result<(), NodeError> {
        if let Some(height) = self.proposals.take_wanted(&hash) {
            self.execute(height, hash);
            self.carry_out(Vec::new()).await?;
        }
        Ok(())
    }
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
