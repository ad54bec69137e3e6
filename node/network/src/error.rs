//! The crate's one error type.

use std::io;

use libp2p::{request_response::OutboundFailure, Multiaddr, PeerId, TransportError};

use crate::Topic;

/// Everything that can go wrong starting the network or asking it to do something.
///
/// Remote misbehaviour (oversized frames, unsigned gossip, refused connections) is not an error of
/// the caller: it is logged and the offending message or connection is dropped. These variants
/// reach the caller only through [`crate::start`] and the [`crate::NetworkHandle`] methods.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// `start` was called outside a tokio runtime.
    #[error("the network must be started from within a tokio runtime")]
    NoRuntime,
    /// The configured secret is not a usable ed25519 secret key.
    #[error("the network secret is not a valid ed25519 secret key: {reason}")]
    InvalidSecret {
        /// What libp2p said about it.
        reason: String,
    },
    /// The configuration is inconsistent (a zero limit, a bootnode without a peer id, ...).
    #[error("invalid network configuration: {reason}")]
    InvalidConfig {
        /// What is wrong, naming the setting.
        reason: String,
    },
    /// The transport could not be built.
    #[error("could not build the TCP/Noise/Yamux transport: {reason}")]
    Transport {
        /// What libp2p said.
        reason: String,
    },
    /// A listen address could not be used.
    #[error("could not listen on {address}: {source}")]
    Listen {
        /// The address from the configuration.
        address: Multiaddr,
        /// Why.
        #[source]
        source: TransportError<io::Error>,
    },
    /// A message larger than its topic's limit was offered for publication.
    #[error("a {topic} message of {size} bytes exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// The topic it was meant for.
        topic: Topic,
        /// Its size in bytes.
        size: usize,
        /// The topic's limit in bytes.
        limit: usize,
    },
    /// Gossipsub refused to publish (signing failed, every peer's send queue is full, ...).
    #[error("could not publish a {topic} message: {reason}")]
    Publish {
        /// The topic.
        topic: Topic,
        /// What gossipsub said.
        reason: String,
    },
    /// A sync request was addressed to a peer outside the allowed set (or to ourselves).
    #[error("peer {peer} is not an allowed remote peer")]
    PeerNotAllowed {
        /// The peer.
        peer: PeerId,
    },
    /// A sync request larger than `Limits::max_sync_request` was offered.
    #[error("a sync request of {size} bytes exceeds the {limit}-byte limit")]
    RequestTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The peer announced a sync response larger than `Limits::max_sync_response`; it was refused
    /// before anything was allocated for it.
    #[error("peer {peer} announced a sync response of {size} bytes, over the {limit}-byte limit")]
    ResponseTooLarge {
        /// The responding peer.
        peer: PeerId,
        /// The announced size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// As many sync requests are in flight as `Limits::command_queue` allows.
    #[error("{limit} sync requests are already in flight")]
    TooManyRequests {
        /// The bound.
        limit: usize,
    },
    /// The peer did not answer within `Limits::request_timeout`.
    #[error("sync request to peer {peer} timed out")]
    RequestTimeout {
        /// The peer.
        peer: PeerId,
    },
    /// The sync request failed for another reason (dial failure, connection closed, the peer
    /// supports no compatible protocol, e.g. it is on another chain).
    #[error("sync request to peer {peer} failed: {source}")]
    RequestFailed {
        /// The peer.
        peer: PeerId,
        /// What request-response said.
        #[source]
        source: OutboundFailure,
    },
    /// The network task has stopped (after `shutdown`, or because it ended).
    #[error("the network service has stopped")]
    Stopped,
}
