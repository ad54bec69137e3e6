//! Networking for cdrchain on libp2p: TCP + Noise + Yamux, a permissioned peer set, gossipsub for
//! transactions and consensus messages, and request-response for block sync.
//!
//! The crate moves bytes. It never decodes a transaction, vote or block: payloads go to the node
//! as `Vec<u8>` and the node says whether they were valid. It does not depend on any other
//! workspace crate.
//!
//! # Tasks and entry points
//!
//! [`start`] builds the swarm, binds the listen addresses and spawns one task (the *swarm task*,
//! `service.rs`) on the current tokio runtime. The node talks to it through a cloneable
//! [`NetworkHandle`] (commands over a bounded channel) and hears from it through a bounded
//! `mpsc::Receiver<`[`NetworkEvent`]`>`. Files: `config.rs` (what the node passes in, limits),
//! `gossip.rs` (topics, message ids, gossipsub settings), `codec.rs` (sync framing),
//! `behaviour.rs` (the composed libp2p behaviour), `service.rs` (the swarm task), `handle.rs`.
//!
//! # Permission model
//!
//! Only the peers in [`NetworkConfig::allowed_peers`] (the chain's operators; the node replaces
//! the list with [`NetworkHandle::set_allowed`] as governance changes them) may hold a
//! connection, inbound or outbound. libp2p's allow list (`allow_block_list::Behaviour<AllowedPeers>`)
//! checks the peer id once the Noise handshake has authenticated it, before any protocol runs on
//! the connection; refused peers are logged at info with their id and address, and the node never
//! sees a [`NetworkEvent::PeerConnected`] for them. Gossip envelopes are anonymous (no
//! gossipsub author or signature): every payload carries its own signature by an operator or
//! validator of the chain, which the node checks before the message is forwarded, and gossip
//! from a connection outside the set is rejected. Connection counts are bounded per peer,
//! in total, and during handshakes ([`Limits`]). Bootnodes are dialled at start and redialled
//! every [`Limits::redial_interval`] while disconnected, as are allowed peers whose listen
//! addresses identify reported, so a restarted peer is found again. No peer discovery beyond
//! that: the set is small and known.
//!
//! # Topic scoping
//!
//! Gossip topics are `/cdrchain/<genesis hex>/tx/2` and `/cdrchain/<genesis hex>/consensus/2`,
//! the sync protocol is `/cdrchain/<genesis hex>/sync/1`, and identify announces
//! `/cdrchain/<genesis hex>/1`. A node of another chain (or a stale chain with the same peer ids)
//! may connect if allowed, but shares no topic or protocol with us: its messages never reach the
//! node, and a mismatch seen through identify is logged at warn.
//!
//! # Size limits
//!
//! Every message has a deliberate ceiling ([`Limits`], defaults in brackets): transaction gossip
//! [4 MiB], consensus gossip [20 MiB, since a proposal may carry a whole block of up to 16 MiB],
//! sync requests [64 KiB] and responses [64 MiB]. Gossipsub's own frame limit is the largest topic
//! limit plus an envelope allowance; on receipt the exact per-topic limit is checked and a message
//! over it is rejected with a warn log. Sync frames carry a u32 big-endian length prefix that is
//! checked against the limit before any buffer is allocated. Publishing or requesting over a
//! limit fails locally with an error. Queues are bounded too: the event channel (when it is full,
//! gossip and sync requests are dropped and counted rather than blocking the swarm; connection
//! events wait in a bounded backlog), the command channel, concurrent sync streams per
//! connection, and in-flight requests.
//!
//! # Validation before forwarding
//!
//! Gossipsub runs in anonymous mode (envelopes carry no author, sequence number or signature:
//! every payload is signed by the operator or validator it speaks for, see the permission model)
//! and with `validate_messages`: a received message is delivered to the node as
//! [`NetworkEvent::Gossip`] and forwarded to other peers only after the node calls
//! [`NetworkHandle::report`] with [`Validation::Accept`]. `Reject` and `Ignore` drop it. A message
//! not reported within about 5 s (`HISTORY_LENGTH` heartbeats) leaves the cache and is never
//! forwarded. Message ids are BLAKE3 hashes of topic and payload, so the same bytes published by
//! two nodes are one message.
//!
//! # What it does not do
//!
//! It does not persist anything (the node stores the identity secret), does not retransmit
//! gossip that found no peers, and does not judge payloads.

mod behaviour;
mod budget;
mod codec;
mod config;
mod error;
mod gossip;
mod handle;
mod pending;
mod service;

use std::{fmt, time::SystemTime};

pub use libp2p::multiaddr::Protocol;
use libp2p::{gossipsub, request_response::ResponseChannel};
pub use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, watch};

pub use crate::{
    budget::GossipData,
    config::{peer_id_from_secret, Limits, NetworkConfig},
    error::NetworkError,
    gossip::Topic,
    handle::NetworkHandle,
};

/// The node's verdict on a received gossip message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Valid: forward it to our mesh peers.
    Accept,
    /// Invalid: drop it and do not forward it.
    Reject,
    /// Neither (e.g. stale, or a duplicate the node already has): drop it without blame.
    Ignore,
}

/// Identifies a received gossip message when reporting on it. Opaque.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageId(gossipsub::MessageId);

impl MessageId {
    /// The id's bytes (a BLAKE3 hash), for logs and deduplication.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0 .0
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", hex::encode(self.as_bytes()))
    }
}

/// The token to answer a [`NetworkEvent::SyncRequest`] with ([`NetworkHandle::respond`]).
/// Dropping it without answering makes the requester's call fail.
#[derive(Debug)]
pub struct Reply(ResponseChannel<Vec<u8>>);

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message that passed the network's checks (signature, allowed author, size).
    /// The node must [`NetworkHandle::report`] on it; only `Accept` forwards it.
    Gossip {
        /// Its topic.
        topic: Topic,
        /// The peer that sent it to us (not necessarily its author); pass it back to `report`.
        source: PeerId,
        /// Its id; pass it back to `report`.
        id: MessageId,
        /// The payload; its bytes count against `Limits::gossip_held_bytes` until it is dropped.
        data: GossipData,
    },
    /// A peer asks for blocks; answer with [`NetworkHandle::respond`].
    SyncRequest {
        /// The requesting peer.
        peer: PeerId,
        /// The request bytes (at most `Limits::max_sync_request`).
        request: Vec<u8>,
        /// The token to answer with.
        reply: Reply,
    },
    /// The first connection to an allowed peer was established.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// We listen on a new address.
    Listening(Multiaddr),
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialled us.
    Inbound,
    /// We dialled the peer.
    Outbound,
}

/// A connected peer, as [`NetworkHandle::peers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its peer id.
    pub peer_id: PeerId,
    /// The remote address of its first open connection.
    pub address: Multiaddr,
    /// Who opened that connection.
    pub direction: Direction,
    /// When the peer became connected (first connection), by this machine's clock.
    pub connected_since: SystemTime,
    /// Open connections to it (at most `Limits::max_connections_per_peer`).
    pub connections: u32,
    /// Our chain's topics it subscribes to; empty for a peer of another chain.
    pub topics: Vec<Topic>,
}

/// Starts the network on the current tokio runtime: builds the swarm, binds the listen
/// addresses, spawns the swarm task (which dials the bootnodes at once), and returns the handle
/// and the event receiver.
pub fn start(config: NetworkConfig) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetworkError::NoRuntime)?;
    let _entered = runtime.enter();
    let config = config.check()?;
    let local_peer_id = config.keypair.public().to_peer_id();
    let (commands_tx, commands_rx) = mpsc::channel(config.limits.command_queue);
    let (events_tx, events_rx) = mpsc::channel(config.limits.event_queue);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let handle = NetworkHandle::new(local_peer_id, commands_tx, shutdown_tx, config.limits.clone());
    let service = service::Service::new(config, commands_rx, events_tx, shutdown_rx)?;
    tracing::info!(%local_peer_id, "network starting");
    runtime.spawn(service.run());
    Ok((handle, events_rx))
}
