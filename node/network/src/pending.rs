//! Pending inbound connections per source address (review M11). The chain's allow list applies
//! only once Noise has authenticated a peer, and the global limit of pending connections
//! (`Limits::max_pending_connections`) is shared: an outsider holding that many half-done
//! handshakes from one address, renewed as they time out, kept every inbound validator out.
//! This behaviour refuses a source address more than `Limits::max_pending_per_ip` handshakes at
//! once, before the global limit counts them, so one address (or a few) cannot fill the slots.
//! Many addresses still can: an allow list at the firewall (docs/security.md) closes that.

use std::collections::HashMap;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::behaviour::{ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Why an inbound connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {limit} connections in their handshake")]
struct TooManyFromAddress {
    ip: IpAddr,
    limit: u32,
}

/// Counts the pending inbound connections of each source address.
pub(crate) struct Behaviour {
    limit: u32,
    pending: HashMap<ConnectionId, IpAddr>,
}

impl Behaviour {
    pub(crate) fn new(limit: u32) -> Self {
        Self { limit, pending: HashMap::new() }
    }

    fn of_ip(&self, ip: IpAddr) -> usize {
        self.pending.values().filter(|pending| **pending == ip).count()
    }
}

/// The IP address of `/ip4/…/tcp/…` or `/ip6/…`.
fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    address.iter().find_map(|protocol| match protocol {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote_addr) else { return Ok(()) };
        if self.of_ip(ip) >= self.limit as usize {
            tracing::debug!(target: "cdrchain::network", %ip, "inbound connection refused: too many handshakes from it");
            return Err(ConnectionDenied::new(TooManyFromAddress { ip, limit: self.limit }));
        }
        self.pending.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending.remove(&connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. })
            | FromSwarm::ConnectionEstablished(ConnectionEstablished { connection_id, .. }) => {
                self.pending.remove(&connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
