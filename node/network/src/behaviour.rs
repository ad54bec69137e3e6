//! The composed libp2p behaviour and the swarm built around it.
//!
//! Order matters: the allow list and the connection limits come first, so that a refused
//! connection is refused before any protocol handler is created for it.

use std::{collections::HashSet, iter};

use libp2p::{
    allow_block_list::{self, AllowedPeers},
    connection_limits::{self, ConnectionLimits},
    gossipsub, identify, noise, ping,
    request_response::{self, ProtocolSupport},
    swarm::NetworkBehaviour,
    tcp, yamux, PeerId, StreamProtocol, Swarm, SwarmBuilder,
};

use crate::{
    codec::SyncCodec,
    gossip::{self, Topics},
    Limits, NetworkError,
};

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Refuses every peer outside the chain spec's set, after Noise has authenticated its id.
    pub(crate) allowed: allow_block_list::Behaviour<AllowedPeers>,
    /// Bounds the handshakes one source address holds at once, before `limits` counts them.
    pub(crate) pending_per_ip: crate::pending::Behaviour,
    /// Bounds pending and established connections.
    pub(crate) limits: connection_limits::Behaviour,
    /// Exchanges listen addresses (used for redialling) and the chain's protocol version.
    pub(crate) identify: identify::Behaviour,
    /// Liveness and round-trip times.
    pub(crate) ping: ping::Behaviour,
    /// Transactions and consensus messages.
    pub(crate) gossip: gossipsub::Behaviour,
    /// Block sync.
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
}

/// `/cdrchain/<genesis hex>/1`: what identify announces; a peer announcing another is on
/// another chain.
pub(crate) fn protocol_version(genesis_hash: &[u8; 32]) -> String {
    format!("/cdrchain/{}/1", hex::encode(genesis_hash))
}

/// `/cdrchain/<genesis hex>/sync/1`: a peer on another chain does not speak it.
fn sync_protocol(genesis_hash: &[u8; 32]) -> Result<StreamProtocol, NetworkError> {
    StreamProtocol::try_from_owned(format!("/cdrchain/{}/sync/1", hex::encode(genesis_hash)))
        .map_err(|error| NetworkError::InvalidConfig { reason: format!("sync protocol name: {error}") })
}

pub(crate) fn build_swarm(
    keypair: libp2p::identity::Keypair,
    allowed: &HashSet<PeerId>,
    genesis_hash: &[u8; 32],
    topics: &Topics,
    limits: &Limits,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let mut behaviour = Behaviour {
        allowed: allow_block_list::Behaviour::default(),
        pending_per_ip: crate::pending::Behaviour::new(limits.max_pending_per_ip),
        limits: connection_limits::Behaviour::new(connection_limits(limits)),
        identify: identify::Behaviour::new(
            identify::Config::new(protocol_version(genesis_hash), keypair.public())
                .with_agent_version(format!("cdrchain/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        ),
        ping: ping::Behaviour::default(),
        gossip: gossip::behaviour(topics, limits)?,
        sync: request_response::Behaviour::with_codec(
            SyncCodec { max_request: limits.max_sync_request, max_response: limits.max_sync_response },
            iter::once((sync_protocol(genesis_hash)?, ProtocolSupport::Full)),
            request_response::Config::default()
                .with_request_timeout(limits.request_timeout)
                .with_max_concurrent_streams(limits.max_concurrent_requests_per_peer),
        ),
    };
    for peer in allowed {
        behaviour.allowed.allow_peer(*peer);
    }
    let idle = limits.idle_connection_timeout;
    let resolver = dns_resolver();
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|error| NetworkError::Transport { reason: error.to_string() })?
        .with_dns_config(resolver.0, resolver.1)
        .with_behaviour(|_| behaviour)
        .map_err(|error| NetworkError::Transport { reason: error.to_string() })?
        .with_swarm_config(|config| config.with_idle_connection_timeout(idle))
        .with_connection_timeout(limits.connection_timeout)
        .build();
    Ok(swarm)
}

/// How `/dns4/` and `/dns6/` addresses are resolved: the system's resolver configuration
/// (`/etc/resolv.conf`), or, where it cannot be read, the hosts file only (with a warning: a
/// node whose bootnodes are all IP addresses must not fail to start for want of DNS).
fn dns_resolver() -> (libp2p::dns::ResolverConfig, libp2p::dns::ResolverOpts) {
    match hickory_resolver::system_conf::read_system_conf() {
        Ok(system) => system,
        Err(error) => {
            tracing::warn!(
                %error,
                "cannot read the system's DNS configuration: /dns4/ and /dns6/ addresses resolve from the hosts file only"
            );
            (libp2p::dns::ResolverConfig::from_parts(None, Vec::new(), Vec::new()), Default::default())
        }
    }
}

fn connection_limits(limits: &Limits) -> ConnectionLimits {
    ConnectionLimits::default()
        .with_max_pending_incoming(Some(limits.max_pending_connections))
        .with_max_pending_outgoing(Some(limits.max_pending_connections))
        .with_max_established(Some(limits.max_established_connections))
        .with_max_established_per_peer(Some(limits.max_connections_per_peer))
}
