//! A deterministic simulator: n validators' state machines driven by a seeded scheduler over
//! simulated links with delay, loss, duplication, reordering and a partition that heals; honest
//! validators crash (sometimes between writing their WAL and sending) and restart from their WAL;
//! up to f validators are Byzantine ([`byzantine`]).
//!
//! Checkers (`checks.rs`), run as the simulation goes and at its end:
//! - **agreement**: no two validators commit different blocks at one height;
//! - **validity**: only blocks that execute correctly are committed, each with a certificate of
//!   more than 2/3 valid precommit signatures;
//! - **progress**: once the network has healed and every crashed validator is back, every honest
//!   validator reaches the target height;
//! - **evidence**: every emitted evidence verifies and accuses a Byzantine validator, and every
//!   equivocation whose two halves both reached an honest validator at that height is recorded
//!   by it.
//!
//! The same seed always produces the same trace digest (a BLAKE3 hash of every event handled and
//! every output produced). A failing run reports its seed; `cargo run -p cdrchain-consensus
//! --example simulate -- --seed N` replays it.

pub mod byzantine;
mod checks;
pub mod rng;
mod sets;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use cdrchain_runtime::block::CommitCertificate;
use cdrchain_runtime::hash::Hash32;
use cdrchain_runtime::ids::{Height, OperatorId, Round};
use ed25519_dalek::SigningKey;
use parity_scale_codec::Encode;

use crate::machine::{Consensus, Input, Output, Params, Timeout, WalRecord};
use crate::messages::{ConsensusMessage, Validators};
use byzantine::{Adversary, Context, EquivocatingProposer, EquivocatingVoter, Replayer, Silent};
use rng::Rng;

/// What a validator does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behaviour {
    Honest,
    EquivocatingProposer,
    EquivocatingVoter,
    Silent,
    /// Honest, but replays its own earlier votes and proposals with every broadcast.
    Replayer,
}

/// One simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub validators: usize,
    /// How many validators are Byzantine (at most f = (n - 1) / 3 for the progress check to
    /// apply); their behaviours are drawn from the seed.
    pub byzantine: usize,
    /// Honest validators must all reach this height.
    pub target_height: u64,
    /// Inject network faults (loss, duplication, a partition) and crashes.
    pub faults: bool,
    /// Fixed behaviours by validator index, instead of drawing `byzantine` of them from the seed.
    pub behaviours: Option<Vec<Behaviour>>,
    /// Change the authority set three times (add, remove, rotate a key, in a drawn order, at
    /// drawn heights); the target height is raised past the last change.
    pub set_changes: bool,
}

impl SimConfig {
    pub fn new(seed: u64, validators: usize) -> Self {
        let f = validators.saturating_sub(1) / 3;
        SimConfig {
            seed,
            validators,
            byzantine: f,
            target_height: 4,
            faults: true,
            behaviours: None,
            set_changes: false,
        }
    }
}

/// What a simulation found.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub behaviours: Vec<Behaviour>,
    /// BLAKE3 over every event and output, in order.
    pub trace_digest: Hash32,
    /// Block hashes each validator committed, by height.
    pub committed: Vec<Vec<Hash32>>,
    /// Safety or liveness violations; empty when the run passed.
    pub violations: Vec<String>,
    pub equivocations: usize,
    pub evidence_recorded: usize,
    pub crashes: usize,
    pub events: u64,
    pub sim_time_ms: u64,
    /// Each validator's final consensus position, for failure reports.
    pub states: Vec<String>,
    /// The authority sets of the run: what changed, approved at, in force from.
    pub sets: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A one-paragraph account, with the seed to replay.
    pub fn summary(&self) -> String {
        format!(
            "seed {} ({} validators, {:?}): {} — heights {:?}, {} equivocations, {} evidence records, {} crashes, \
             {} events, {} ms simulated, sets {:?}, trace {}{}",
            self.seed,
            self.behaviours.len(),
            self.behaviours,
            if self.passed() { "passed" } else { "FAILED" },
            self.committed.iter().map(Vec::len).collect::<Vec<_>>(),
            self.equivocations,
            self.evidence_recorded,
            self.crashes,
            self.events,
            self.sim_time_ms,
            self.sets,
            self.trace_digest,
            if self.passed() {
                String::new()
            } else {
                format!("\n  violations: {:#?}\n  states: {:#?}", self.violations, self.states)
            },
        )
    }
}

/// Block values of the simulation: opaque hashes whose validity the simulator decides.
#[derive(Debug, Default)]
pub struct Values {
    counter: u64,
    valid: BTreeSet<Hash32>,
}

impl Values {
    /// A new value, valid or not.
    pub fn fresh(&mut self, valid: bool) -> Hash32 {
        self.counter += 1;
        let hash = Hash32(*blake3::hash(&self.counter.to_le_bytes()).as_bytes());
        if valid {
            self.valid.insert(hash);
        }
        hash
    }

    pub fn is_valid(&self, hash: &Hash32) -> bool {
        self.valid.contains(hash)
    }
}

#[derive(Debug)]
enum Event {
    Deliver { to: usize, message: ConsensusMessage },
    Timer { node: usize, epoch: u64, timeout: Timeout },
    Ready { node: usize, epoch: u64 },
    Built { node: usize, epoch: u64, height: Height, round: Round, block_hash: Hash32 },
    Executed { node: usize, epoch: u64, height: Height, block_hash: Hash32 },
    Crash { node: usize },
    Restart { node: usize },
    SyncRequest { responder: usize, requester: usize, from: u64 },
    SyncResponse { requester: usize, entries: Vec<(Hash32, CommitCertificate)>, first: u64 },
}

/// One simulated validator.
#[derive(Debug)]
struct SimNode {
    id: OperatorId,
    key: SigningKey,
    behaviour: Behaviour,
    /// What a Byzantine validator does to its own broadcasts; `None` when honest.
    adversary: Option<Box<dyn Adversary>>,
    /// The state machine; `None` while crashed (and always for a silent validator).
    machine: Option<Consensus>,
    /// Counts boots and crashes: events scheduled in an earlier life are dropped.
    epoch: u64,
    /// Durable: the last WAL record and the committed chain.
    wal: Option<WalRecord>,
    chain: Vec<(Hash32, CommitCertificate)>,
    /// Simulated time before which it sends no other sync request.
    next_sync_at: u64,
    /// The evidence it emitted: (offender, height, round, step).
    evidence: BTreeSet<(OperatorId, Height, Round, &'static str)>,
    /// Digests of messages handled at their own height, per epoch (for the evidence checker).
    handled: BTreeSet<(u64, Hash32)>,
    /// The epoch each of those digests was last handled in.
    handled_epoch: BTreeMap<Hash32, u64>,
}

/// The timeouts of simulated validators: short, since simulated time is free but events are not.
pub fn sim_params() -> Params {
    Params {
        propose_ms: 300,
        propose_delta_ms: 100,
        prevote_ms: 200,
        prevote_delta_ms: 100,
        precommit_ms: 200,
        precommit_delta_ms: 100,
        rebroadcast_ms: 400,
    }
}

/// The whole simulation: the validators, the scheduler, the network model and the checkers.
struct World {
    config: SimConfig,
    /// The only source of randomness: the seed decides everything.
    rng: Rng,
    /// Simulated time, in ms.
    now: u64,
    /// Scheduling order among events due at the same time.
    seq: u64,
    /// Due events: (time, seq, index into `events`), earliest first.
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    /// The scheduled events; taken (`None`) once handled.
    events: Vec<Option<Event>>,
    nodes: Vec<SimNode>,
    /// The authority sets, the genesis set first ([`sets`]).
    sets: Vec<sets::SimSet>,
    values: Values,
    params: Params,
    /// BLAKE3 over every event handled and every output produced: the run's digest.
    trace: blake3::Hasher,
    /// Network model: delays of 1 to `max_delay` ms; `loss` and `duplicate` in thousandths.
    max_delay: u64,
    loss: u64,
    duplicate: u64,
    /// A partition: (from, until, the side of each validator).
    partition: Option<(u64, u64, Vec<bool>)>,
    /// When the network has healed and every crashed validator is back.
    heal_at: u64,
    /// When the run stops, done or not.
    deadline: u64,
    /// Checkers' state: the block first committed at each height.
    decided: BTreeMap<u64, Hash32>,
    /// Every equivocation a Byzantine validator sent.
    equivocations: Vec<(ConsensusMessage, ConsensusMessage)>,
    /// Every message an honest validator signed, across all its lives, by (validator, height,
    /// round, step): a second, different one is a safety violation even if nobody saw both.
    honest_signed: BTreeMap<(usize, u64, u32, u8), ConsensusMessage>,
    /// What the checkers found.
    violations: Vec<String>,
    /// Crashes injected.
    crashes: usize,
    /// Events handled.
    processed: u64,
}

/// Runs one simulation to its end and checks it.
pub fn run(config: SimConfig) -> Report {
    let mut world = match World::new(config.clone()) {
        Ok(world) => world,
        Err(reason) => {
            return Report {
                seed: config.seed,
                behaviours: Vec::new(),
                trace_digest: Hash32::ZERO,
                committed: Vec::new(),
                violations: vec![format!("cannot set up the simulation: {reason}")],
                equivocations: 0,
                evidence_recorded: 0,
                crashes: 0,
                events: 0,
                sim_time_ms: 0,
                states: Vec::new(),
                sets: Vec::new(),
            }
        }
    };
    world.start();
    world.run_loop();
    world.finish()
}

fn message_digest(message: &ConsensusMessage) -> Hash32 {
    Hash32(*blake3::hash(&message.encode()).as_bytes())
}

/// How long a run goes on after the network has healed before the progress check fails it.
const RUN_AFTER_HEAL_MS: u64 = 120_000;
/// Simulated ms between two sync requests of one validator.
const SYNC_SPACING_MS: u64 = 200;

/// Who is Byzantine, and how: `config.byzantine` validators drawn from the seed, each with a
/// drawn behaviour, unless `config.behaviours` fixes them.
fn draw_behaviours(rng: &mut Rng, n: usize, config: &SimConfig) -> Vec<Behaviour> {
    let mut behaviours = vec![Behaviour::Honest; n];
    let byzantine = config.byzantine.min(n);
    let mut chosen = BTreeSet::new();
    while chosen.len() < byzantine {
        chosen.insert(rng.index(n));
    }
    for i in chosen {
        behaviours[i] = match rng.range(0, 3) {
            0 => Behaviour::EquivocatingProposer,
            1 => Behaviour::EquivocatingVoter,
            2 => Behaviour::Replayer,
            _ => Behaviour::Silent,
        };
    }
    if let Some(forced) = &config.behaviours {
        for (slot, b) in behaviours.iter_mut().zip(forced) {
            *slot = *b;
        }
    }
    behaviours
}

impl SimNode {
    /// A validator before its first boot.
    fn new(id: OperatorId, key: SigningKey, behaviour: Behaviour) -> SimNode {
        SimNode {
            id,
            key,
            behaviour,
            adversary: match behaviour {
                Behaviour::Honest => None,
                Behaviour::EquivocatingProposer => Some(Box::new(EquivocatingProposer::default())),
                Behaviour::EquivocatingVoter => Some(Box::new(EquivocatingVoter::default())),
                Behaviour::Silent => Some(Box::new(Silent)),
                Behaviour::Replayer => Some(Box::new(Replayer::default())),
            },
            machine: None,
            epoch: 0,
            wal: None,
            chain: Vec::new(),
            next_sync_at: 0,
            evidence: BTreeSet::new(),
            handled: BTreeSet::new(),
            handled_epoch: BTreeMap::new(),
        }
    }
}

impl World {
    fn new(mut config: SimConfig) -> Result<World, String> {
        let mut rng = Rng::new(config.seed);
        let n = config.validators.max(1);
        // With set changes, one more validator: an observer until it is added.
        let total = n + usize::from(config.set_changes);
        let mut keys = Vec::new();
        for i in 0..total {
            let id = OperatorId::new(format!("v{i}")).map_err(|e| e.to_string())?;
            keys.push((id, sets::validator_key(i, 0)));
        }
        let genesis = Hash32(*blake3::hash(b"cdrchain simulator genesis").as_bytes());
        let list = keys[..n]
            .iter()
            .map(|(id, key)| (id.clone(), cdrchain_runtime::crypto::public_key(key)))
            .collect();
        let validators = Validators::new(genesis, list).ok_or("no validators")?;

        let mut behaviours = draw_behaviours(&mut rng, n, &config);
        behaviours.resize(total, Behaviour::Honest);
        let ids: Vec<OperatorId> = keys.iter().map(|(id, _)| id.clone()).collect();
        let nodes: Vec<SimNode> = keys
            .into_iter()
            .zip(behaviours)
            .map(|((id, key), behaviour)| SimNode::new(id, key, behaviour))
            .collect();

        let faults = config.faults;
        let max_delay = rng.range(2, if faults { 150 } else { 30 });
        let loss = if faults { rng.range(0, 150) } else { 0 };
        let duplicate = if faults { rng.range(0, 100) } else { 0 };
        let heal_at = if faults { rng.range(500, 6_000) } else { 0 };
        let partition = if faults && rng.chance(600) {
            let start = rng.range(0, heal_at / 2);
            let end = rng.range(start, heal_at);
            let sides = (0..total).map(|_| rng.chance(500)).collect();
            Some((start, end, sides))
        } else {
            None
        };
        let deadline = heal_at + RUN_AFTER_HEAL_MS;
        let behaviours: Vec<Behaviour> = nodes.iter().map(|n: &SimNode| n.behaviour).collect();
        let sets = sets::draw_sets(&mut rng, &ids, &validators, n, &behaviours, config.set_changes);
        if let Some(last) = sets.last() {
            config.target_height = config.target_height.max(last.from + 2);
        }
        Ok(World {
            config,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            nodes,
            sets,
            values: Values::default(),
            params: sim_params(),
            trace: blake3::Hasher::new_derive_key("cdrchain simulator trace v1"),
            max_delay,
            loss,
            duplicate,
            partition,
            heal_at,
            deadline,
            decided: BTreeMap::new(),
            equivocations: Vec::new(),
            honest_signed: BTreeMap::new(),
            violations: Vec::new(),
            crashes: 0,
            processed: 0,
        })
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Some(event));
        self.queue.push(Reverse((at, self.seq, self.events.len() - 1)));
    }

    fn honest(&self, i: usize) -> bool {
        self.nodes[i].behaviour == Behaviour::Honest
    }

    fn start(&mut self) {
        let n = self.nodes.len();
        for i in 0..n {
            self.boot(i);
        }
        if self.config.faults {
            // Crashes of honest validators, all restarted by the time the network heals.
            let honest: Vec<usize> = (0..n).filter(|i| self.honest(*i)).collect();
            let count = self.rng.range(0, n as u64);
            for _ in 0..count {
                let node = honest[self.rng.index(honest.len())];
                let at = self.rng.range(0, self.heal_at);
                let back = (at + self.rng.range(50, 2_000)).min(self.heal_at);
                self.push(at, Event::Crash { node });
                self.push(back, Event::Restart { node });
            }
        }
    }

    /// Starts (or restarts) validator `i` from its durable state.
    fn boot(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.epoch += 1;
        if node.adversary.as_ref().is_some_and(|a| a.is_silent()) {
            return;
        }
        let committed = node.chain.len() as u64;
        let wal = node.wal.clone();
        let set = self.set_index_at(committed + 1);
        let me = self.me_in(set, i);
        let validators = self.sets[set].validators.clone();
        let (machine, outputs) = Consensus::new(validators, me, self.params, Height(committed + 1), wal);
        self.nodes[i].machine = Some(machine);
        self.feed_sets(i, committed, true);
        let epoch = self.nodes[i].epoch;
        self.apply_outputs(i, outputs);
        let at = self.now + 10;
        self.push(at, Event::Ready { node: i, epoch });
    }

    fn run_loop(&mut self) {
        while let Some(Reverse((at, _, index))) = self.queue.pop() {
            if at > self.deadline || self.all_done() {
                break;
            }
            self.now = at;
            let Some(event) = self.events.get_mut(index).and_then(Option::take) else { continue };
            self.processed += 1;
            self.handle(event);
        }
    }

    fn all_done(&self) -> bool {
        let target = self.config.target_height as usize;
        self.now >= self.heal_at
            && self.nodes.iter().filter(|n| n.behaviour == Behaviour::Honest).all(|n| n.chain.len() >= target)
    }

    fn trace_event(&mut self, node: usize, tag: u8, bytes: &[u8]) {
        self.trace.update(&self.now.to_le_bytes());
        self.trace.update(&(node as u64).to_le_bytes());
        self.trace.update(&[tag]);
        self.trace.update(&(bytes.len() as u64).to_le_bytes());
        self.trace.update(bytes);
    }

    fn input(&mut self, i: usize, input: Input) {
        let Some(machine) = self.nodes[i].machine.as_mut() else { return };
        let (outputs, _) = machine.handle(input);
        self.apply_outputs(i, outputs);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, message } => {
                self.trace_event(to, 1, &message.encode());
                let node = &mut self.nodes[to];
                let Some(machine) = node.machine.as_mut() else { return };
                let at_height = machine.height() == message.height();
                let digest = message_digest(&message);
                let (outputs, _) = machine.handle(Input::Message(message));
                if at_height {
                    node.handled.insert((node.epoch, digest));
                    node.handled_epoch.insert(digest, node.epoch);
                }
                self.apply_outputs(to, outputs);
            }
            Event::Timer { node, epoch, timeout } => {
                if self.nodes[node].epoch == epoch {
                    self.trace_event(node, 2, &timeout.encode());
                    self.input(node, Input::Timeout(timeout));
                }
            }
            Event::Ready { node, epoch } => {
                if self.nodes[node].epoch == epoch {
                    self.trace_event(node, 3, &[]);
                    self.input(node, Input::Ready);
                }
            }
            Event::Built { node, epoch, height, round, block_hash } => {
                if self.nodes[node].epoch == epoch {
                    self.trace_event(node, 4, &block_hash.0);
                    self.input(node, Input::Built { height, round, block_hash });
                }
            }
            Event::Executed { node, epoch, height, block_hash } => {
                if self.nodes[node].epoch == epoch {
                    let valid = self.values.is_valid(&block_hash);
                    self.trace_event(node, 5, &[u8::from(valid)]);
                    self.input(node, Input::Executed { height, block_hash, valid });
                }
            }
            Event::Crash { node } => {
                if self.nodes[node].machine.is_some() {
                    self.trace_event(node, 6, &[]);
                    self.crash(node);
                }
            }
            Event::Restart { node } => {
                if self.nodes[node].machine.is_none() && self.honest(node) {
                    self.trace_event(node, 7, &[]);
                    self.boot(node);
                }
            }
            Event::SyncRequest { responder, requester, from } => {
                self.trace_event(responder, 8, &from.to_le_bytes());
                let chain = &self.nodes[responder].chain;
                if self.nodes[responder].machine.is_none() || from == 0 || from as usize > chain.len() {
                    return;
                }
                let entries = chain[(from as usize - 1)..].to_vec();
                let at = self.now + self.delay();
                self.push(at, Event::SyncResponse { requester, entries, first: from });
            }
            Event::SyncResponse { requester, entries, first } => {
                self.trace_event(requester, 9, &first.to_le_bytes());
                self.apply_sync(requester, entries, first);
            }
        }
    }

    fn crash(&mut self, node: usize) {
        self.crashes += 1;
        let n = &mut self.nodes[node];
        n.machine = None;
        n.epoch += 1;
    }

    fn delay(&mut self) -> u64 {
        self.rng.range(1, self.max_delay)
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            Some((start, end, sides)) if self.now >= *start && self.now < *end => sides[a] == sides[b],
            _ => true,
        }
    }

    /// Sends through the lossy, duplicating, reordering network.
    fn send(&mut self, from: usize, to: usize, message: &ConsensusMessage) {
        if from == to || !self.connected(from, to) || self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(self.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.delay();
            self.push(at, Event::Deliver { to, message: message.clone() });
        }
    }

    fn apply_outputs(&mut self, i: usize, outputs: Vec<Output>) {
        let epoch = self.nodes[i].epoch;
        for output in outputs {
            if self.nodes[i].epoch != epoch {
                // Crashed in the middle of carrying out its outputs.
                return;
            }
            match output {
                Output::Wal(record) => {
                    self.trace_event(i, 20, &record.encode());
                    for message in &record.signed {
                        self.check_signed_once(i, message);
                    }
                    self.nodes[i].wal = Some(record);
                    // Sometimes crash right after the WAL write, before the message leaves: the
                    // restart must send the same message, never a different one.
                    if self.config.faults && self.now < self.heal_at && self.honest(i) && self.rng.chance(20)
                    {
                        self.crash(i);
                        let back =
                            (self.now + self.rng.range(20, 1_000)).min(self.heal_at.max(self.now + 20));
                        self.push(back, Event::Restart { node: i });
                        return;
                    }
                }
                Output::Broadcast(message) => {
                    self.trace_event(i, 21, &message.encode());
                    if message.signer() == &self.nodes[i].id {
                        self.check_signed_once(i, &message);
                    }
                    self.broadcast(i, message);
                }
                Output::Schedule { timeout, after_ms } => {
                    self.trace_event(i, 22, &timeout.encode());
                    self.push(self.now + after_ms, Event::Timer { node: i, epoch, timeout });
                }
                Output::Build { height, round } => {
                    self.trace_event(i, 23, &height.encode());
                    let block_hash = self.values.fresh(true);
                    let at = self.now + 1;
                    self.push(at, Event::Built { node: i, epoch, height, round, block_hash });
                }
                Output::Execute { height, block_hash } => {
                    self.trace_event(i, 24, &block_hash.0);
                    let at = self.now + self.rng.range(1, 5);
                    self.push(at, Event::Executed { node: i, epoch, height, block_hash });
                }
                Output::Decide(decision) => {
                    self.trace_event(i, 25, &decision.block_hash.0);
                    self.commit(i, decision.height, decision.block_hash, decision.certificate, "consensus");
                }
                Output::Evidence(evidence) => {
                    self.trace_event(i, 26, &evidence.encode());
                    self.check_evidence_emitted(i, evidence);
                }
                Output::Ahead { height, from } => {
                    self.trace_event(i, 27, &height.encode());
                    self.request_sync(i, &from);
                }
            }
        }
    }

    /// Validator `i` is behind `from`: asks it for the blocks after its chain (at most once per
    /// `SYNC_SPACING_MS`, through the lossy network).
    fn request_sync(&mut self, i: usize, from: &OperatorId) {
        let Some(responder) = self.nodes.iter().position(|n| &n.id == from) else { return };
        if self.now >= self.nodes[i].next_sync_at {
            self.nodes[i].next_sync_at = self.now + SYNC_SPACING_MS;
            let next = self.nodes[i].chain.len() as u64 + 1;
            if self.connected(i, responder) && !self.rng.chance(self.loss) {
                let at = self.now + self.delay();
                self.push(at, Event::SyncRequest { responder, requester: i, from: next });
            }
        }
    }

    fn broadcast(&mut self, i: usize, message: ConsensusMessage) {
        let n = self.nodes.len();
        // An adversary twists only what it signs itself: the votes a proposal carries as its
        // proof of lock are other validators', and it cannot sign in their name.
        let own = message.signer() == &self.nodes[i].id;
        let sends = match self.nodes[i].adversary.take() {
            Some(adversary) if !own => {
                self.nodes[i].adversary = Some(adversary);
                vec![byzantine::Send { to: (0..n).filter(|j| *j != i).collect(), message }]
            }
            None => vec![byzantine::Send { to: (0..n).filter(|j| *j != i).collect(), message }],
            Some(mut adversary) => {
                let height = message.height().0;
                let (id, key) = (self.nodes[i].id.clone(), self.key_at(i, height));
                let validators = self.set_at(height).clone();
                let mut ctx = Context {
                    validators: &validators,
                    id: &id,
                    key: &key,
                    me: i,
                    n,
                    rng: &mut self.rng,
                    values: &mut self.values,
                    equivocations: &mut self.equivocations,
                };
                let sends = adversary.on_broadcast(&mut ctx, message);
                self.nodes[i].adversary = Some(adversary);
                sends
            }
        };
        for send in sends {
            for to in send.to {
                self.send(i, to, &send.message);
            }
        }
    }

    /// Block sync: commits the entries that follow the requester's chain and tells its machine.
    fn apply_sync(&mut self, i: usize, entries: Vec<(Hash32, CommitCertificate)>, first: u64) {
        if self.nodes[i].machine.is_none() {
            return;
        }
        let mut last = None;
        for (offset, (hash, certificate)) in entries.into_iter().enumerate() {
            let height = Height(first + offset as u64);
            if height.0 != self.nodes[i].chain.len() as u64 + 1 {
                continue;
            }
            // A real node would refuse a block that does not apply or a bad certificate.
            if !self.values.is_valid(&hash) || self.check_certificate(&certificate, height, hash).is_err() {
                break;
            }
            self.commit(i, height, hash, certificate, "sync");
            last = Some(height);
        }
        if let Some(height) = last {
            self.input(i, Input::Committed { height });
        }
    }

    fn finish(mut self) -> Report {
        self.check_progress();
        self.check_evidence();
        let evidence_recorded = self.nodes.iter().map(|n| n.evidence.len()).sum();
        Report {
            seed: self.config.seed,
            behaviours: self.nodes.iter().map(|n| n.behaviour).collect(),
            trace_digest: Hash32(*self.trace.finalize().as_bytes()),
            committed: self.nodes.iter().map(|n| n.chain.iter().map(|(h, _)| *h).collect()).collect(),
            violations: self.violations,
            equivocations: self.equivocations.len(),
            evidence_recorded,
            crashes: self.crashes,
            events: self.processed,
            sim_time_ms: self.now,
            states: self
                .nodes
                .iter()
                .map(|n| match &n.machine {
                    Some(m) => format!(
                        "{} h={} r={} {:?} locked={:?} wal_round={:?}",
                        n.id,
                        m.height(),
                        m.round().0,
                        m.step(),
                        m.locked().map(|(r, h)| (r.0, crate::messages::short(&Some(h)))),
                        n.wal.as_ref().map(|w| (w.height.0, w.round.0)),
                    ),
                    None => format!("{} down", n.id),
                })
                .collect(),
            sets: self
                .sets
                .iter()
                .map(|s| format!("{} (approved at {}, from {})", s.change, s.approved_at, s.from))
                .collect(),
        }
    }
}
