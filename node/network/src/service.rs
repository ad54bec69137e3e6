//! The swarm task: owns the libp2p swarm, carries out the handles' commands, turns swarm events
//! into [`NetworkEvent`]s, and redials disconnected peers. Nothing in it blocks: the event channel
//! is only ever `try_send`-ed to, with a bounded backlog for connection events.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::{Duration, Instant, SystemTime},
};

use libp2p::{
    allow_block_list, connection_limits,
    core::ConnectedPoint,
    futures::StreamExt,
    gossipsub::{self, MessageAcceptance, PublishError},
    identify,
    request_response::{self, OutboundFailure, OutboundRequestId},
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        ConnectionDenied, DialError, ListenError, SwarmEvent,
    },
    Multiaddr, PeerId, Swarm,
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::MissedTickBehavior,
};

use crate::{
    behaviour::{self, Behaviour, BehaviourEvent},
    budget::GossipBudget,
    codec::{FrameKind, FrameTooLarge},
    config::Checked,
    gossip::Topics,
    handle::Command,
    Direction, Limits, MessageId, NetworkError, NetworkEvent, PeerInfo, Reply, Topic, Validation,
};

/// Listen addresses kept per peer from identify, for redialling.
const MAX_LEARNED_ADDRESSES: usize = 8;
/// A bootnode that cannot be dialled is logged at WARN at most this often.
const BOOTNODE_WARN_INTERVAL: Duration = Duration::from_secs(60);
/// A node with no peer for this long says so at INFO (and again every such interval).
const ALONE_NOTICE: Duration = Duration::from_secs(60);
/// Heartbeats in a row in which a peer's send queue overflowed before it is disconnected.
const SLOW_PEER_HEARTBEATS: u32 = 3;
/// Drops are logged at most this often (with running totals).
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct Service {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    shutdown: watch::Receiver<bool>,
    topics: Topics,
    /// What identify should hear from peers of our chain.
    protocol_version: String,
    limits: Limits,
    allowed: HashSet<PeerId>,
    /// Configured bootnode addresses: always redialled.
    bootnodes: HashMap<PeerId, Vec<Multiaddr>>,
    /// Listen addresses of allowed peers from identify (latest report wins).
    learned: HashMap<PeerId, Vec<Multiaddr>>,
    peers: HashMap<PeerId, Connected>,
    /// In-flight sync requests; each ends with a response or a failure event (at the latest
    /// after `request_timeout`). At most `limits.command_queue`.
    requests: HashMap<OutboundRequestId, PendingRequest>,
    /// Connection events the full event channel had no room for; at most `limits.event_queue`.
    backlog: VecDeque<NetworkEvent>,
    drops: Drops,
    /// Bytes of received gossip the node holds (see [`GossipBudget`]).
    budget: GossipBudget,
    /// Peers whose send queue overflowed, with when it last did and how many heartbeats in a row.
    slow: HashMap<PeerId, (Instant, u32)>,
    /// When each bootnode's last failed dial was logged at WARN.
    bootnode_warned: HashMap<PeerId, Instant>,
    /// Since when no peer is connected (from the start), and when that was last said.
    alone_since: Option<Instant>,
    alone_said: Option<Instant>,
}

struct Connected {
    address: Multiaddr,
    direction: Direction,
    since: SystemTime,
    connections: u32,
}

struct PendingRequest {
    peer: PeerId,
    done: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
}

/// Events dropped because the node was not keeping up.
#[derive(Default)]
struct Drops {
    gossip: u64,
    /// Gossip dropped because the node already held its budget of gossip bytes (or the relaying
    /// peer its share).
    gossip_over_budget: u64,
    sync_requests: u64,
    connection_events: u64,
    last_warning: Option<Instant>,
}

impl Drops {
    fn warn_now_and_then(&mut self) {
        let now = Instant::now();
        if self.last_warning.is_some_and(|last| now.duration_since(last) < DROP_WARN_INTERVAL) {
            return;
        }
        self.last_warning = Some(now);
        tracing::warn!(
            gossip = self.gossip,
            gossip_over_budget = self.gossip_over_budget,
            sync_requests = self.sync_requests,
            connection_events = self.connection_events,
            "network event queue full: events dropped so far"
        );
    }
}

impl Service {
    pub(crate) fn new(
        config: Checked,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetworkEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, NetworkError> {
        let topics = Topics::new(&config.genesis_hash);
        let mut swarm = behaviour::build_swarm(
            config.keypair,
            &config.allowed,
            &config.genesis_hash,
            &topics,
            &config.limits,
        )?;
        for address in config.listen {
            swarm.listen_on(address.clone()).map_err(|source| NetworkError::Listen { address, source })?;
        }
        let mut bootnodes: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for (peer, address) in config.bootnodes {
            swarm.add_peer_address(peer, address.clone());
            bootnodes.entry(peer).or_default().push(address);
        }
        Ok(Self {
            swarm,
            commands,
            events,
            shutdown,
            topics,
            protocol_version: behaviour::protocol_version(&config.genesis_hash),
            allowed: config.allowed,
            bootnodes,
            learned: HashMap::new(),
            peers: HashMap::new(),
            requests: HashMap::new(),
            backlog: VecDeque::new(),
            drops: Drops::default(),
            budget: GossipBudget::new(config.limits.gossip_held_bytes),
            slow: HashMap::new(),
            bootnode_warned: HashMap::new(),
            alone_since: Some(Instant::now()),
            alone_said: None,
            limits: config.limits,
        })
    }

    pub(crate) async fn run(mut self) {
        let mut redial = tokio::time::interval(self.limits.redial_interval);
        redial.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = self.shutdown.changed() => {
                    // An error means every handle is gone: nobody can use the network any more.
                    if changed.is_err() || *self.shutdown.borrow() {
                        break;
                    }
                }
                command = self.commands.recv() => match command {
                    // A command queued after `shutdown` is not carried out.
                    Some(command) if !*self.shutdown.borrow() => self.on_command(command),
                    _ => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = redial.tick() => {
                    self.redial();
                    self.say_if_alone();
                }
                // An owned permit (on a cheap clone of the sender) so no borrow of `self`
                // outlives the branch.
                permit = self.events.clone().reserve_owned(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                    // The node dropped its receiver; nothing will read these.
                    Err(_) => self.backlog.clear(),
                },
            }
        }
        tracing::info!(
            peer = %self.swarm.local_peer_id(),
            in_flight_requests = self.requests.len(),
            "network stopped"
        );
        // Dropping the swarm closes every connection; dropping the pending requests' senders
        // fails their callers with `NetworkError::Stopped`.
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, done } => {
                let _ = done.send(self.publish(topic, data));
            }
            Command::Report { id, source, verdict } => {
                let acceptance = match verdict {
                    Validation::Accept => MessageAcceptance::Accept,
                    Validation::Reject => MessageAcceptance::Reject,
                    Validation::Ignore => MessageAcceptance::Ignore,
                };
                self.validate(&id, &source, acceptance);
            }
            Command::Request { peer, request, done } => self.request(peer, request, done),
            Command::Respond { channel, response } => {
                if self.swarm.behaviour_mut().sync.send_response(channel, response).is_err() {
                    tracing::debug!("sync response not sent: the request timed out or closed");
                }
            }
            Command::Peers { done } => {
                let _ = done.send(self.peer_infos());
            }
            Command::ListenAddrs { done } => {
                let _ = done.send(self.swarm.listeners().cloned().collect());
            }
            Command::SetAllowed { peers } => self.set_allowed(peers),
        }
    }

    /// The allow list becomes `peers` (less this node): removed peers are disconnected now.
    fn set_allowed(&mut self, peers: Vec<PeerId>) {
        let me = *self.swarm.local_peer_id();
        let new: HashSet<PeerId> = peers.into_iter().filter(|peer| *peer != me).collect();
        let gone: Vec<PeerId> = self.allowed.difference(&new).copied().collect();
        let added: Vec<PeerId> = new.difference(&self.allowed).copied().collect();
        for peer in gone {
            self.swarm.behaviour_mut().allowed.disallow_peer(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            self.bootnodes.remove(&peer);
            tracing::info!(%peer, "peer no longer allowed: disconnected, and refused from now on");
        }
        for peer in added {
            self.swarm.behaviour_mut().allowed.allow_peer(peer);
            tracing::info!(%peer, "peer allowed");
        }
        self.allowed = new;
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) -> Result<(), NetworkError> {
        let size = data.len();
        let hash = self.topics.hash(topic);
        match self.swarm.behaviour_mut().gossip.publish(hash, data) {
            Ok(id) => {
                tracing::trace!(%topic, size, %id, "published");
                Ok(())
            }
            Err(PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!(%topic, size, "published to nobody: no peer subscribes yet");
                Ok(())
            }
            Err(PublishError::Duplicate) => {
                tracing::debug!(%topic, size, "not republishing a message already seen");
                Ok(())
            }
            Err(PublishError::MessageTooLarge) => {
                Err(NetworkError::MessageTooLarge { topic, size, limit: topic.limit(&self.limits) })
            }
            Err(error) => Err(NetworkError::Publish { topic, reason: error.to_string() }),
        }
    }

    fn validate(&mut self, id: &gossipsub::MessageId, source: &PeerId, verdict: MessageAcceptance) {
        let found = self.swarm.behaviour_mut().gossip.report_message_validation_result(id, source, verdict);
        if !found {
            tracing::debug!(%id, "validated message no longer cached; not forwarded");
        }
    }

    fn request(
        &mut self,
        peer: PeerId,
        request: Vec<u8>,
        done: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    ) {
        if !self.allowed.contains(&peer) {
            let _ = done.send(Err(NetworkError::PeerNotAllowed { peer }));
            return;
        }
        if self.requests.len() >= self.limits.command_queue {
            let _ = done.send(Err(NetworkError::TooManyRequests { limit: self.limits.command_queue }));
            return;
        }
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, PendingRequest { peer, done });
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        let subscriptions: HashMap<&PeerId, Vec<Topic>> = self
            .swarm
            .behaviour()
            .gossip
            .all_peers()
            .map(|(peer, hashes)| {
                let topics = hashes.into_iter().filter_map(|hash| self.topics.topic_of(hash)).collect();
                (peer, topics)
            })
            .collect();
        self.peers
            .iter()
            .map(|(peer, connected)| PeerInfo {
                peer_id: *peer,
                address: connected.address.clone(),
                direction: connected.direction,
                connected_since: connected.since,
                connections: connected.connections,
                topics: subscriptions.get(peer).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Dials every allowed peer we know an address of and are neither connected to nor dialling.
    fn redial(&mut self) {
        let mut targets: HashMap<PeerId, Vec<Multiaddr>> = self.bootnodes.clone();
        for (peer, addresses) in &self.learned {
            let known = targets.entry(*peer).or_default();
            for address in addresses {
                if !known.contains(address) {
                    known.push(address.clone());
                }
            }
        }
        for (peer, addresses) in targets {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            let dial = DialOpts::peer_id(peer)
                .addresses(addresses)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(dial) {
                Ok(()) => tracing::trace!(%peer, "dialling"),
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(error) => tracing::debug!(%peer, %error, "cannot dial"),
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => {
                if let Err(error) = event.result {
                    tracing::debug!(peer = %event.peer, %error, "ping failed");
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Allowed(never)) => match never {},
            SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                self.on_connected(peer_id, &endpoint, num_established.get())
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                    self.slow.remove(&peer_id);
                    if self.peers.is_empty() {
                        self.alone_since = Some(Instant::now());
                    }
                    tracing::info!(peer = %peer_id, cause = ?cause, "peer disconnected");
                    self.emit_connection_event(NetworkEvent::PeerDisconnected(peer_id));
                } else if let Some(connected) = self.peers.get_mut(&peer_id) {
                    connected.connections = num_established;
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.emit_connection_event(NetworkEvent::Listening(address));
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, peer_id, .. } => match error {
                ListenError::Denied { cause } => log_refusal(peer_id, Some(&send_back_addr), &cause),
                error => tracing::debug!(address = %send_back_addr, %error, "inbound connection failed"),
            },
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => match error {
                DialError::Denied { cause } => log_refusal(peer_id, None, &cause),
                DialError::WrongPeerId { obtained, address } => tracing::warn!(
                    expected = ?peer_id,
                    %obtained,
                    %address,
                    "dialled address belongs to another peer; check the bootnode configuration"
                ),
                error => self.on_dial_failure(peer_id, &error),
            },
            _ => {}
        }
    }

    /// A failed dial: at WARN, with the reason, for a configured bootnode (at most every
    /// [`BOOTNODE_WARN_INTERVAL`] per bootnode: it is redialled every few seconds), else at DEBUG.
    fn on_dial_failure(&mut self, peer: Option<PeerId>, error: &DialError) {
        let Some(peer) = peer.filter(|p| self.bootnodes.contains_key(p)) else {
            tracing::debug!(peer = ?peer, %error, "dial failed");
            return;
        };
        let now = Instant::now();
        if self.bootnode_warned.get(&peer).is_some_and(|at| now.duration_since(*at) < BOOTNODE_WARN_INTERVAL)
        {
            tracing::debug!(%peer, %error, "bootnode dial failed");
            return;
        }
        self.bootnode_warned.insert(peer, now);
        let addresses: Vec<String> =
            self.bootnodes.get(&peer).into_iter().flatten().map(ToString::to_string).collect();
        tracing::warn!(
            %peer,
            addresses = %addresses.join(", "),
            %error,
            "cannot reach bootnode (retrying every {:?})",
            self.limits.redial_interval
        );
    }

    /// Says at INFO, once a minute, that this node has had no peer for over [`ALONE_NOTICE`]:
    /// a validator alone cannot commit anything. Quiet where no other peer is allowed.
    fn say_if_alone(&mut self) {
        let Some(since) = self.alone_since else { return };
        if !self.peers.is_empty() {
            self.alone_since = None;
            self.alone_said = None;
            return;
        }
        let me = *self.swarm.local_peer_id();
        if !self.allowed.iter().any(|peer| *peer != me) {
            return;
        }
        let now = Instant::now();
        let alone_for = now.duration_since(since);
        if alone_for < ALONE_NOTICE || self.alone_said.is_some_and(|at| now.duration_since(at) < ALONE_NOTICE)
        {
            return;
        }
        self.alone_said = Some(now);
        tracing::info!(
            seconds = alone_for.as_secs(),
            bootnodes = self.bootnodes.len(),
            "no peer connected for {} s: this validator is alone; check --bootnodes and that the other validators are reachable",
            alone_for.as_secs()
        );
    }

    fn on_connected(&mut self, peer: PeerId, endpoint: &ConnectedPoint, connections: u32) {
        let (address, direction) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address.clone(), Direction::Outbound),
            ConnectedPoint::Listener { send_back_addr, .. } => (send_back_addr.clone(), Direction::Inbound),
        };
        let connected = self.peers.entry(peer).or_insert_with(|| Connected {
            address: address.clone(),
            direction,
            since: SystemTime::now(),
            connections,
        });
        connected.connections = connections;
        if connections == 1 {
            tracing::info!(%peer, %address, ?direction, "peer connected");
            self.emit_connection_event(NetworkEvent::PeerConnected(peer));
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                self.on_gossip_message(propagation_source, message_id, message)
            }
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                tracing::debug!(peer = %peer_id, %topic, "peer subscribed");
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::warn!(peer = %peer_id, "allowed peer does not speak gossipsub");
            }
            gossipsub::Event::SlowPeer { peer_id, failed_messages } => {
                self.on_slow_peer(peer_id, &failed_messages)
            }
            _ => {}
        }
    }

    /// A peer whose send queue overflowed in this heartbeat. One overflow is a burst; one in
    /// each of [`SLOW_PEER_HEARTBEATS`] heartbeats in a row is a peer that is not reading (stuck or
    /// hostile), and it is disconnected rather than buffered for (it is redialled later, like any
    /// peer that went away).
    fn on_slow_peer(&mut self, peer: PeerId, failed: &gossipsub::FailedMessages) {
        let now = Instant::now();
        let in_a_row = match self.slow.get(&peer) {
            Some((last, count)) if now.duration_since(*last) <= crate::gossip::HEARTBEAT * 2 => count + 1,
            _ => 1,
        };
        self.slow.insert(peer, (now, in_a_row));
        if in_a_row < SLOW_PEER_HEARTBEATS {
            tracing::debug!(%peer, ?failed, in_a_row, "peer is not keeping up with gossip");
            return;
        }
        self.slow.remove(&peer);
        tracing::warn!(
            %peer,
            ?failed,
            "peer has not kept up with gossip for {SLOW_PEER_HEARTBEATS} heartbeats: disconnecting it"
        );
        // Err only when it is no longer connected.
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// The network's checks on a message gossipsub has decoded (anonymous: no author field):
    /// our chain's topic, within the topic's size limit, relayed by an allowed peer. Whose it is
    /// the node decides from the payload's own signature before it reports it valid.
    fn on_gossip_message(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let Some(topic) = self.topics.topic_of(&message.topic) else {
            tracing::debug!(peer = %source, topic = %message.topic, "ignoring gossip on a foreign topic");
            self.validate(&id, &source, MessageAcceptance::Ignore);
            return;
        };
        let limit = topic.limit(&self.limits);
        if message.data.len() > limit {
            tracing::warn!(
                peer = %source,
                %topic,
                size = message.data.len(),
                limit,
                "rejecting gossip over its topic's size limit"
            );
            self.validate(&id, &source, MessageAcceptance::Reject);
            return;
        }
        if !self.allowed.contains(&source) {
            tracing::warn!(peer = %source, %topic, "rejecting gossip relayed by a peer outside the allowed set");
            self.validate(&id, &source, MessageAcceptance::Reject);
            return;
        }
        let data = match self.budget.hold(source, message.data) {
            Ok(data) => data,
            Err(over) => {
                tracing::debug!(peer = %source, %topic, ?over, "gossip dropped: the node holds its budget of gossip bytes");
                self.drops.gossip_over_budget += 1;
                self.drops.warn_now_and_then();
                self.validate(&id, &source, MessageAcceptance::Ignore);
                return;
            }
        };
        let event = NetworkEvent::Gossip { topic, source, id: MessageId(id.clone()), data };
        if !self.emit_droppable(event) {
            self.drops.gossip += 1;
            self.drops.warn_now_and_then();
            self.validate(&id, &source, MessageAcceptance::Ignore);
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let event = NetworkEvent::SyncRequest { peer, request, reply: Reply(channel) };
                    // A dropped request drops its reply token: the requester sees a failure.
                    if !self.emit_droppable(event) {
                        self.drops.sync_requests += 1;
                        self.drops.warn_now_and_then();
                    }
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(pending) = self.requests.remove(&request_id) {
                        let _ = pending.done.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(pending) = self.requests.remove(&request_id) {
                    let error = request_error(pending.peer, error);
                    tracing::debug!(%error, "sync request failed");
                    let _ = pending.done.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if info.protocol_version != self.protocol_version {
            tracing::warn!(
                peer = %peer_id,
                theirs = %info.protocol_version,
                ours = %self.protocol_version,
                "peer is on another chain (genesis hash differs); it shares no topic with us"
            );
        }
        if !self.allowed.contains(&peer_id) {
            return;
        }
        let addresses: Vec<Multiaddr> = info.listen_addrs.into_iter().take(MAX_LEARNED_ADDRESSES).collect();
        for address in &addresses {
            self.swarm.add_peer_address(peer_id, address.clone());
        }
        self.learned.insert(peer_id, addresses);
    }

    /// Gossip and sync requests: delivered if there is room right now, otherwise dropped (the
    /// caller counts it). Connection events waiting in the backlog go first.
    fn emit_droppable(&mut self, event: NetworkEvent) -> bool {
        if !self.backlog.is_empty() {
            return false;
        }
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            // The node no longer listens; not a drop worth warning about.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    /// Connection and listen events: kept in order in a bounded backlog when the channel is full.
    fn emit_connection_event(&mut self, event: NetworkEvent) {
        let event = if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(event)) => event,
            }
        } else {
            event
        };
        if self.backlog.len() >= self.limits.event_queue {
            self.backlog.pop_front();
            self.drops.connection_events += 1;
            self.drops.warn_now_and_then();
        }
        self.backlog.push_back(event);
    }
}

fn log_refusal(peer: Option<PeerId>, address: Option<&Multiaddr>, cause: &ConnectionDenied) {
    let peer = peer.map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
    let address = address.map_or_else(|| "unknown".to_owned(), |address| address.to_string());
    if cause.downcast_ref::<allow_block_list::NotAllowed>().is_some() {
        tracing::info!(%peer, %address, "refused connection: peer is not in the allowed set");
    } else if let Some(exceeded) = cause.downcast_ref::<connection_limits::Exceeded>() {
        tracing::warn!(
            %peer,
            %address,
            limit = exceeded.limit(),
            "refused connection: connection limit reached"
        );
    } else {
        tracing::debug!(%peer, %address, %cause, "connection denied");
    }
}

fn request_error(peer: PeerId, failure: OutboundFailure) -> NetworkError {
    match failure {
        OutboundFailure::Timeout => NetworkError::RequestTimeout { peer },
        OutboundFailure::Io(error) => match FrameTooLarge::find(&error) {
            Some(FrameTooLarge { kind: FrameKind::Response, size, limit }) => {
                NetworkError::ResponseTooLarge { peer, size, limit }
            }
            _ => NetworkError::RequestFailed { peer, source: OutboundFailure::Io(error) },
        },
        failure => NetworkError::RequestFailed { peer, source: failure },
    }
}
