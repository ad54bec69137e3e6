//! The node's side: a cheap, cloneable handle that turns calls into commands for the swarm task.

use std::sync::Arc;

use libp2p::{gossipsub, request_response::ResponseChannel, Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Limits, MessageId, NetworkError, PeerInfo, Reply, Topic, Validation};

/// What a handle asks of the swarm task.
#[derive(Debug)]
pub(crate) enum Command {
    Publish { topic: Topic, data: Vec<u8>, done: oneshot::Sender<Result<(), NetworkError>> },
    Report { id: gossipsub::MessageId, source: PeerId, verdict: Validation },
    Request { peer: PeerId, request: Vec<u8>, done: oneshot::Sender<Result<Vec<u8>, NetworkError>> },
    Respond { channel: ResponseChannel<Vec<u8>>, response: Vec<u8> },
    Peers { done: oneshot::Sender<Vec<PeerInfo>> },
    ListenAddrs { done: oneshot::Sender<Vec<Multiaddr>> },
    SetAllowed { peers: Vec<PeerId> },
}

/// Handle to the running network. Cloning is cheap; the swarm task stops on
/// [`NetworkHandle::shutdown`] or when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    /// Shared so that the task notices when the last handle is gone (the sender drops).
    shutdown: Arc<watch::Sender<bool>>,
    limits: Arc<Limits>,
}

impl NetworkHandle {
    pub(crate) fn new(
        local_peer_id: PeerId,
        commands: mpsc::Sender<Command>,
        shutdown: watch::Sender<bool>,
        limits: Limits,
    ) -> Self {
        Self { local_peer_id, commands, shutdown: Arc::new(shutdown), limits: Arc::new(limits) }
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The largest payload `publish` accepts on `topic`.
    pub fn limit(&self, topic: Topic) -> usize {
        topic.limit(&self.limits)
    }

    /// Publishes `data` on `topic` (an anonymous gossipsub envelope: the payload carries its own
    /// signature).
    ///
    /// `Ok` also when there is nobody to send to yet, or when identical bytes were already
    /// published or received on this topic within the duplicate window (ids are content
    /// hashes); both are logged at debug. Retransmission is the caller's protocol's business.
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetworkError> {
        let limit = topic.limit(&self.limits);
        if data.len() > limit {
            return Err(NetworkError::MessageTooLarge { topic, size: data.len(), limit });
        }
        let (done, result) = oneshot::channel();
        self.send(Command::Publish { topic, data, done }).await?;
        result.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Reports the node's verdict on a received gossip message. Only `Accept` forwards it;
    /// `Reject` and `Ignore` drop it from the cache. Must be called within about 5 s of
    /// receipt (see the crate docs); a later report finds nothing to forward.
    pub fn report(&self, id: MessageId, source: PeerId, verdict: Validation) {
        self.try_send(Command::Report { id: id.0, source, verdict }, "validation report");
    }

    /// Sends a block-sync request and waits for the response (at most
    /// `Limits::request_timeout`). Dials the peer if needed and its address is known.
    pub async fn request(&self, peer: PeerId, request: Vec<u8>) -> Result<Vec<u8>, NetworkError> {
        let limit = self.limits.max_sync_request;
        if request.len() > limit {
            return Err(NetworkError::RequestTooLarge { size: request.len(), limit });
        }
        let (done, result) = oneshot::channel();
        self.send(Command::Request { peer, request, done }).await?;
        result.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Answers a [`crate::NetworkEvent::SyncRequest`]. A response over
    /// `Limits::max_sync_response` is not sent (logged at warn); the requester then sees its
    /// request fail.
    pub fn respond(&self, reply: Reply, response: Vec<u8>) {
        if response.len() > self.limits.max_sync_response {
            tracing::warn!(
                size = response.len(),
                limit = self.limits.max_sync_response,
                "not sending a sync response over the limit"
            );
            return;
        }
        self.try_send(Command::Respond { channel: reply.0, response }, "sync response");
    }

    /// The peers we are connected to.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let (done, result) = oneshot::channel();
        if self.send(Command::Peers { done }).await.is_err() {
            return Vec::new();
        }
        result.await.unwrap_or_default()
    }

    /// The addresses we listen on (with actual ports when 0 was configured).
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let (done, result) = oneshot::channel();
        if self.send(Command::ListenAddrs { done }).await.is_err() {
            return Vec::new();
        }
        result.await.unwrap_or_default()
    }

    /// Replaces the peers allowed to connect (the chain's members change by governance): peers
    /// no longer allowed are disconnected at once and refused from then on; new ones may connect
    /// and are dialled when an address of theirs is known.
    pub async fn set_allowed(&self, peers: Vec<PeerId>) -> Result<(), NetworkError> {
        self.send(Command::SetAllowed { peers }).await
    }

    /// Stops the swarm task: connections close, the event channel ends, and later calls fail
    /// with [`NetworkError::Stopped`].
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    async fn send(&self, command: Command) -> Result<(), NetworkError> {
        if *self.shutdown.borrow() {
            return Err(NetworkError::Stopped);
        }
        self.commands.send(command).await.map_err(|_| NetworkError::Stopped)
    }

    /// For the synchronous calls: never block the caller; a full queue means the swarm task is
    /// far behind, and the dropped command is logged.
    fn try_send(&self, command: Command, what: &'static str) {
        match self.commands.try_send(command) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(what, "network command queue full; dropping");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(what, "network stopped; dropping");
            }
        }
    }
}
