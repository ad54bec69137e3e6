//! What the node tells the network at start: identity, addresses, the permissioned peer set, the
//! chain (genesis hash) and the limits.

use std::{collections::HashSet, fmt, time::Duration};

use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId};

use crate::NetworkError;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Start-up configuration of the network service.
#[derive(Clone)]
pub struct NetworkConfig {
    /// The ed25519 secret (32-byte seed) of this node's libp2p identity; the node persists it
    /// elsewhere. Its peer id is what the chain spec lists for this operator.
    pub secret: [u8; 32],
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/30333`; port 0 picks a free port.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and to redial whenever disconnected. Each address must end in
    /// `/p2p/<peer id>`, and that peer must be in `allowed_peers`. An entry naming this node
    /// itself is skipped, so every node can share one list.
    pub bootnodes: Vec<Multiaddr>,
    /// The permissioned set (from the chain spec): the only peers we accept or keep connections
    /// with, in either direction, and the only authors whose gossip we pass on.
    pub allowed_peers: Vec<PeerId>,
    /// The chain's genesis hash; it scopes every gossip topic and the sync protocol name.
    pub genesis_hash: [u8; 32],
    /// Sizes, queues and timeouts.
    pub limits: Limits,
}

impl fmt::Debug for NetworkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret never goes into logs.
        f.debug_struct("NetworkConfig")
            .field("secret", &"<redacted>")
            .field("listen", &self.listen)
            .field("bootnodes", &self.bootnodes)
            .field("allowed_peers", &self.allowed_peers)
            .field("genesis_hash", &hex::encode(self.genesis_hash))
            .field("limits", &self.limits)
            .finish()
    }
}

/// Bounds on everything the network holds or accepts. Every field is checked to be non-zero at
/// start. Memory held by a queue is bounded by its length times the largest message it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest transaction gossip payload. Default 4 MiB: a `CdrBatch` of a few thousand CDRs
    /// with room to spare, yet small enough that a flood of them cannot exhaust memory quickly.
    pub max_tx_message: usize,
    /// Largest consensus gossip payload. Default 20 MiB: a proposal's re-broadcast may carry a
    /// whole block (at most 16 MiB) plus header, certificate and signatures (its first sends
    /// carry the compact form, a few KiB).
    pub max_consensus_message: usize,
    /// Largest block-sync request. Default 64 KiB: requests name heights or hashes, never data.
    pub max_sync_request: usize,
    /// Largest block-sync response. Default 64 MiB: a few full blocks per round trip. Checked
    /// against the length prefix before any buffer is allocated.
    pub max_sync_response: usize,
    /// Capacity of the event channel to the node. When it is full, gossip and sync requests are
    /// dropped (and counted) rather than blocking the swarm. Default 256.
    pub event_queue: usize,
    /// Bytes of received gossip the node may hold at once, wherever it waits (the event channel,
    /// the node's queues, its checks), of which one relaying peer may hold half; beyond either,
    /// gossip is dropped before it is queued. Default 256 MiB. Half of it must hold the largest
    /// gossip message.
    pub gossip_held_bytes: usize,
    /// Capacity of the command channel from the handles. Default 1024.
    pub command_queue: usize,
    /// Concurrent sync streams (inbound plus outbound) per connection; with at most
    /// `max_connections_per_peer` connections this bounds the work one peer can cause. Default 8.
    pub max_concurrent_requests_per_peer: usize,
    /// A sync request (writing the request, the peer's work, reading the response) must finish
    /// within this. Default 30 s: 64 MiB takes about 5 s at 100 Mbit/s.
    pub request_timeout: Duration,
    /// Established connections per peer. Default 2: simultaneous dials in both directions may
    /// both succeed.
    pub max_connections_per_peer: u32,
    /// Established connections in total. Default 512: two per authority for the largest chain
    /// spec (256 authorities).
    pub max_established_connections: u32,
    /// Connections still in their handshake, per direction. Inbound ones are not yet
    /// authenticated, so this is what an outsider can occupy. Default 32.
    pub max_pending_connections: u32,
    /// Inbound connections in their handshake from one source address at once (review M11).
    /// Default 4: fewer than `max_pending_connections`, so one address cannot take them all.
    pub max_pending_per_ip: u32,
    /// A connection must be dialled and upgraded (multistream, Noise, yamux) within this, or it
    /// is dropped. Default 3 s: about five round trips, 1.5 s at 300 ms RTT; libp2p's 10 s let
    /// an outsider hold the few unauthenticated handshake slots three times as long (review M11).
    pub connection_timeout: Duration,
    /// How often disconnected bootnodes (and allowed peers whose address identify told us) are
    /// redialled. Default 2 s, so a restarted peer is found again quickly.
    pub redial_interval: Duration,
    /// A connection without any open stream is closed after this long. Default 60 s (gossipsub
    /// keeps connections to subscribed peers busy long before that).
    pub idle_connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tx_message: 4 * MIB,
            max_consensus_message: 20 * MIB,
            max_sync_request: 64 * KIB,
            max_sync_response: 64 * MIB,
            event_queue: 256,
            gossip_held_bytes: 256 * MIB,
            command_queue: 1024,
            max_concurrent_requests_per_peer: 8,
            request_timeout: Duration::from_secs(30),
            max_connections_per_peer: 2,
            max_established_connections: 512,
            max_pending_connections: 32,
            max_pending_per_ip: 4,
            connection_timeout: Duration::from_secs(3),
            redial_interval: Duration::from_secs(2),
            idle_connection_timeout: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// The largest gossip payload on any topic; gossipsub's transmit size is derived from it.
    pub fn max_gossip_message(&self) -> usize {
        self.max_tx_message.max(self.max_consensus_message)
    }

    fn check(&self) -> Result<(), NetworkError> {
        let sizes = [
            ("max_tx_message", self.max_tx_message),
            ("max_consensus_message", self.max_consensus_message),
            ("max_sync_request", self.max_sync_request),
            ("max_sync_response", self.max_sync_response),
            ("event_queue", self.event_queue),
            ("gossip_held_bytes", self.gossip_held_bytes),
            ("command_queue", self.command_queue),
            ("max_concurrent_requests_per_peer", self.max_concurrent_requests_per_peer),
        ];
        for (name, value) in sizes {
            if value == 0 {
                return Err(invalid(format!("limits.{name} must be positive")));
            }
        }
        let share = self.gossip_held_bytes / crate::budget::PEER_SHARE_DIVISOR;
        if share < self.max_gossip_message() {
            return Err(invalid(format!(
                "limits.gossip_held_bytes ({}) must be at least {} times the largest gossip message ({}): \
                 one peer's share must hold one",
                self.gossip_held_bytes,
                crate::budget::PEER_SHARE_DIVISOR,
                self.max_gossip_message()
            )));
        }
        // Frames carry a u32 length prefix.
        for (name, value) in
            [("max_sync_request", self.max_sync_request), ("max_sync_response", self.max_sync_response)]
        {
            if u32::try_from(value).is_err() {
                return Err(invalid(format!("limits.{name} must fit in a u32 length prefix")));
            }
        }
        let counts = [
            ("max_connections_per_peer", self.max_connections_per_peer),
            ("max_established_connections", self.max_established_connections),
            ("max_pending_connections", self.max_pending_connections),
            ("max_pending_per_ip", self.max_pending_per_ip),
        ];
        for (name, value) in counts {
            if value == 0 {
                return Err(invalid(format!("limits.{name} must be positive")));
            }
        }
        if self.max_pending_per_ip >= self.max_pending_connections {
            return Err(invalid(format!(
                "limits.max_pending_per_ip ({}) must be below max_pending_connections ({}), or one \
                 address can hold every handshake slot",
                self.max_pending_per_ip, self.max_pending_connections
            )));
        }
        let durations = [
            ("request_timeout", self.request_timeout),
            ("connection_timeout", self.connection_timeout),
            ("redial_interval", self.redial_interval),
            ("idle_connection_timeout", self.idle_connection_timeout),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err(invalid(format!("limits.{name} must be positive")));
            }
        }
        Ok(())
    }
}

/// The configuration after checking: what the swarm task works from.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) keypair: Keypair,
    pub(crate) listen: Vec<Multiaddr>,
    /// Bootnodes other than ourselves, split into peer id and address (without `/p2p`).
    pub(crate) bootnodes: Vec<(PeerId, Multiaddr)>,
    pub(crate) allowed: HashSet<PeerId>,
    pub(crate) genesis_hash: [u8; 32],
    pub(crate) limits: Limits,
}

impl NetworkConfig {
    pub(crate) fn check(self) -> Result<Checked, NetworkError> {
        self.limits.check()?;
        let keypair = keypair_from_secret(self.secret)?;
        let local = keypair.public().to_peer_id();
        let allowed: HashSet<PeerId> =
            self.allowed_peers.iter().copied().filter(|peer| *peer != local).collect();
        let mut bootnodes = Vec::with_capacity(self.bootnodes.len());
        for address in self.bootnodes {
            let (peer, address) = split_peer_address(address)?;
            if peer == local {
                continue;
            }
            if !allowed.contains(&peer) {
                return Err(invalid(format!(
                    "bootnode {peer} at {address} is not in allowed_peers; it would be refused"
                )));
            }
            bootnodes.push((peer, address));
        }
        Ok(Checked {
            keypair,
            listen: self.listen,
            bootnodes,
            allowed,
            genesis_hash: self.genesis_hash,
            limits: self.limits,
        })
    }
}

/// The libp2p peer id of the identity with this ed25519 secret (32-byte seed).
pub fn peer_id_from_secret(secret: [u8; 32]) -> Result<PeerId, NetworkError> {
    Ok(keypair_from_secret(secret)?.public().to_peer_id())
}

fn keypair_from_secret(mut secret: [u8; 32]) -> Result<Keypair, NetworkError> {
    // `ed25519_from_bytes` zeroes the buffer it is given (our copy).
    Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|error| NetworkError::InvalidSecret { reason: error.to_string() })
}

/// Splits `/ip4/…/tcp/…/p2p/<peer>` into the peer id and the address without its `/p2p` suffix.
fn split_peer_address(mut address: Multiaddr) -> Result<(PeerId, Multiaddr), NetworkError> {
    let original = address.clone();
    match address.pop() {
        Some(Protocol::P2p(peer)) if !address.is_empty() => Ok((peer, address)),
        _ => Err(invalid(format!(
            "bootnode address {original} must be a transport address ending in /p2p/<peer id>"
        ))),
    }
}

fn invalid(reason: String) -> NetworkError {
    NetworkError::InvalidConfig { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: u8) -> NetworkConfig {
        NetworkConfig {
            secret: [secret; 32],
            listen: vec![],
            bootnodes: vec![],
            allowed_peers: vec![],
            genesis_hash: [0; 32],
            limits: Limits::default(),
        }
    }

    #[test]
    fn peer_id_is_the_identity_multihash_of_the_protobuf_ed25519_key() {
        // The chain spec computes peer ids by hand in this form; the two must agree.
        let mut secret = [7u8; 32];
        let keypair = Keypair::ed25519_from_bytes(&mut secret).unwrap();
        let public = keypair.public().try_into_ed25519().unwrap().to_bytes();
        let mut expected = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        expected.extend_from_slice(&public);
        assert_eq!(peer_id_from_secret([7; 32]).unwrap().to_bytes(), expected);
    }

    #[test]
    fn bootnodes_need_a_peer_id_that_is_allowed() {
        let bob = peer_id_from_secret([2; 32]).unwrap();
        let address: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{bob}").parse().unwrap();

        let mut missing_peer = config(1);
        missing_peer.bootnodes = vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()];
        assert!(matches!(missing_peer.check(), Err(NetworkError::InvalidConfig { .. })));

        let mut not_allowed = config(1);
        not_allowed.bootnodes = vec![address.clone()];
        assert!(matches!(not_allowed.check(), Err(NetworkError::InvalidConfig { .. })));

        let mut fine = config(1);
        fine.bootnodes = vec![address];
        fine.allowed_peers = vec![bob];
        let checked = fine.check().unwrap();
        assert_eq!(checked.bootnodes, vec![(bob, "/ip4/127.0.0.1/tcp/1".parse().unwrap())]);
    }

    #[test]
    fn own_entry_in_the_bootnodes_is_skipped() {
        let alice = peer_id_from_secret([1; 32]).unwrap();
        let mut shared = config(1);
        shared.bootnodes = vec![format!("/ip4/127.0.0.1/tcp/1/p2p/{alice}").parse().unwrap()];
        shared.allowed_peers = vec![alice];
        let checked = shared.check().unwrap();
        assert!(checked.bootnodes.is_empty());
        assert!(checked.allowed.is_empty());
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut zero = config(1);
        zero.limits.event_queue = 0;
        assert!(matches!(zero.check(), Err(NetworkError::InvalidConfig { .. })));
        let mut zero = config(1);
        zero.limits.redial_interval = Duration::ZERO;
        assert!(matches!(zero.check(), Err(NetworkError::InvalidConfig { .. })));
    }

    #[test]
    fn a_gossip_budget_that_cannot_hold_the_largest_message_is_refused() {
        let mut small = config(1);
        small.limits.gossip_held_bytes = small.limits.max_gossip_message();
        let Err(NetworkError::InvalidConfig { reason }) = small.check() else {
            panic!("a budget of one message accepted")
        };
        assert!(reason.contains("gossip_held_bytes"), "{reason}");
        let mut enough = config(1);
        enough.limits.gossip_held_bytes = 2 * enough.limits.max_gossip_message();
        assert!(enough.check().is_ok());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let text = format!("{:?}", config(0xab));
        assert!(text.contains("<redacted>"));
        assert!(!text.contains("171, 171")); // 0xab bytes
    }
}
