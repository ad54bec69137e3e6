//! Gossip topics scoped by the genesis hash, content-addressed message ids, and the gossipsub
//! configuration (sizes, mesh parameters for small permissioned networks, validation mode).

use std::{fmt, time::Duration};

use libp2p::gossipsub::{self, IdentTopic, TopicHash};

use crate::{Limits, NetworkError};

/// A gossip topic. On the wire each is scoped by the chain's genesis hash:
/// `/cdrchain/<genesis hex>/tx/2` and `/cdrchain/<genesis hex>/consensus/2` (version 2: unsigned
/// gossipsub envelopes, see [`behaviour`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Signed transactions (`CdrBatch` and friends) on their way to the pools.
    Transactions,
    /// Proposals and votes.
    Consensus,
}

impl Topic {
    /// Every topic, in a fixed order.
    pub const ALL: [Topic; 2] = [Topic::Transactions, Topic::Consensus];

    /// The largest payload accepted on this topic.
    pub fn limit(self, limits: &Limits) -> usize {
        match self {
            Topic::Transactions => limits.max_tx_message,
            Topic::Consensus => limits.max_consensus_message,
        }
    }

    /// The topic's wire name for the chain with this genesis hash.
    pub fn name(self, genesis_hash: &[u8; 32]) -> String {
        let kind = match self {
            Topic::Transactions => "tx",
            Topic::Consensus => "consensus",
        };
        format!("/cdrchain/{}/{kind}/2", hex::encode(genesis_hash))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topic::Transactions => "transactions",
            Topic::Consensus => "consensus",
        })
    }
}

/// Maps our two topics to their gossipsub hashes for one chain, and back.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    transactions: IdentTopic,
    consensus: IdentTopic,
}

impl Topics {
    pub(crate) fn new(genesis_hash: &[u8; 32]) -> Self {
        Self {
            transactions: IdentTopic::new(Topic::Transactions.name(genesis_hash)),
            consensus: IdentTopic::new(Topic::Consensus.name(genesis_hash)),
        }
    }

    pub(crate) fn ident(&self, topic: Topic) -> &IdentTopic {
        match topic {
            Topic::Transactions => &self.transactions,
            Topic::Consensus => &self.consensus,
        }
    }

    pub(crate) fn hash(&self, topic: Topic) -> TopicHash {
        self.ident(topic).hash()
    }

    /// `None` for any topic not of this chain.
    pub(crate) fn topic_of(&self, hash: &TopicHash) -> Option<Topic> {
        Topic::ALL.into_iter().find(|topic| self.hash(*topic) == *hash)
    }
}

/// Room for gossipsub's envelope around a payload (author, sequence number, topic name,
/// signature) and for control messages: generous, since the exact payload limit is checked by
/// the service on receipt.
const ENVELOPE_ALLOWANCE: usize = 16 * 1024;

/// Gossipsub heartbeat: mesh maintenance and IHAVE gossip. Short, so that small networks mesh
/// within a second of connecting.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(700);

/// Heartbeats a message stays in the message cache. A received message must be reported
/// (`NetworkHandle::report`) within `HISTORY_LENGTH × HEARTBEAT` (5.6 s) or it is never forwarded.
pub(crate) const HISTORY_LENGTH: usize = 8;

/// A message's id is a BLAKE3 hash of its topic and payload, not of author and sequence number:
/// the same transaction gossiped by two nodes is one message, and it is forwarded once.
pub(crate) fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(topic.len() as u64).to_be_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    gossipsub::MessageId::new(hasher.finalize().as_bytes())
}

/// Mesh parameters for 3 to 10 validators. Every node with `n - 1 < MESH_N_LOW` peers puts all
/// of them in its mesh (so 3 or 4 nodes form a full mesh); larger networks keep 4 to 10 mesh
/// peers. One outbound mesh peer is enough: in a permissioned network an inbound peer is as
/// trustworthy as an outbound one.
const MESH_N: usize = 5;
const MESH_N_LOW: usize = 4;
const MESH_N_HIGH: usize = 10;
const MESH_OUTBOUND_MIN: usize = 1;

/// Messages waiting to be sent to one peer (gossipsub's default is 5,000, each a separate copy:
/// up to gigabytes for a peer that stops reading). A healthy peer drains its queue within a
/// heartbeat; one that overflows it heartbeat after heartbeat is disconnected (`SlowPeer`).
const SEND_QUEUE_MESSAGES: usize = 128;

/// Gossipsub in anonymous mode: envelopes carry no author, sequence number or signature.
///
/// Every payload is already signed by whoever it speaks for (a transaction by its operator's
/// ed25519 key, a proposal or vote by its validator's), bound to the genesis hash, and checked by
/// the node before it is reported valid and forwarded; only allowed peers (authenticated by the
/// Noise handshake) can hold a connection at all. A gossipsub signature on top cost an ed25519
/// signature over every published payload and a verification of every received one, SHA-512 over
/// whole blocks and batches included: about 13 % of a validator's CPU under load in the
/// four-validator benchmark (`docs/benchmarks.md`), for no authentication the payload lacks.
pub(crate) fn behaviour(topics: &Topics, limits: &Limits) -> Result<gossipsub::Behaviour, NetworkError> {
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(limits.max_gossip_message() + ENVELOPE_ALLOWANCE)
        .mesh_n(MESH_N)
        .mesh_n_low(MESH_N_LOW)
        .mesh_n_high(MESH_N_HIGH)
        .mesh_outbound_min(MESH_OUTBOUND_MIN)
        .gossip_lazy(MESH_N)
        .heartbeat_interval(HEARTBEAT)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .history_length(HISTORY_LENGTH)
        .history_gossip(3)
        .flood_publish(true)
        .connection_handler_queue_len(SEND_QUEUE_MESSAGES);
    for topic in Topic::ALL {
        builder.max_transmit_size_for_topic(topic.limit(limits) + ENVELOPE_ALLOWANCE, topics.hash(topic));
    }
    let config = builder
        .build()
        .map_err(|error| NetworkError::InvalidConfig { reason: format!("gossipsub: {error}") })?;
    let mut behaviour = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
        .map_err(|reason| NetworkError::InvalidConfig { reason: format!("gossipsub: {reason}") })?;
    let (params, thresholds) = peer_score(topics);
    behaviour.with_peer_score(params, thresholds).map_err(|reason| NetworkError::InvalidConfig {
        reason: format!("gossipsub peer score: {reason}"),
    })?;
    for topic in Topic::ALL {
        behaviour.subscribe(topics.ident(topic)).map_err(|error| NetworkError::InvalidConfig {
            reason: format!("gossipsub: cannot subscribe to {topic}: {error}"),
        })?;
    }
    Ok(behaviour)
}

/// Score lost per invalid message, squared over the count: [`GRAYLIST_SCORE`] is crossed at the
/// tenth rejected message held in the count at once.
const INVALID_MESSAGE_WEIGHT: f64 = -1.0;
/// The count of invalid messages is multiplied by this every [`SCORE_DECAY_INTERVAL`]: a peer
/// that stops sending them is back to zero within seconds.
const INVALID_MESSAGE_DECAY: f64 = 0.5;
/// How often scores decay.
const SCORE_DECAY_INTERVAL: Duration = Duration::from_secs(1);
/// Below this score, a peer's messages are ignored entirely (gossipsub's default).
const GRAYLIST_SCORE: f64 = -80.0;
/// Penalty weight for broken gossip promises and grafts during backoff (gossipsub's default is
/// -10; one broken IWANT promise under load must not silence an honest member).
const BEHAVIOUR_PENALTY_WEIGHT: f64 = -1.0;

const _: () =
    assert!(INVALID_MESSAGE_WEIGHT < 0.0 && INVALID_MESSAGE_DECAY > 0.0 && INVALID_MESSAGE_DECAY < 1.0);

/// Peer scoring that counts only what the node judged (review M2): a message the node reports
/// `Reject` (bad signature, malformed, over a limit, a proposal fault: never a state-dependent
/// judgement, which is `Ignore`) costs its relaying peer score; a peer that keeps sending them
/// is graylisted (its messages ignored before they are decoded) until its score decays.
/// Everything that scores public networks' peers by delivery (time in mesh, first deliveries,
/// mesh delivery rates, IP colocation: all members of a localnet share 127.0.0.1) is off: in a
/// consortium every member is allowed by key, and a quiet member is not a faulty one.
fn peer_score(topics: &Topics) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: INVALID_MESSAGE_DECAY,
        ..Default::default()
    };
    let params = gossipsub::PeerScoreParams {
        topics: Topic::ALL.into_iter().map(|t| (topics.hash(t), topic.clone())).collect(),
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: BEHAVIOUR_PENALTY_WEIGHT,
        decay_interval: SCORE_DECAY_INTERVAL,
        ..Default::default()
    };
    let thresholds =
        gossipsub::PeerScoreThresholds { graylist_threshold: GRAYLIST_SCORE, ..Default::default() };
    (params, thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_scoped_by_the_genesis_hash() {
        let genesis = [0xab; 32];
        let hex = "ab".repeat(32);
        assert_eq!(Topic::Transactions.name(&genesis), format!("/cdrchain/{hex}/tx/2"));
        assert_eq!(Topic::Consensus.name(&genesis), format!("/cdrchain/{hex}/consensus/2"));

        let ours = Topics::new(&genesis);
        let theirs = Topics::new(&[0xac; 32]);
        for topic in Topic::ALL {
            assert_eq!(ours.topic_of(&ours.hash(topic)), Some(topic));
            assert_eq!(ours.topic_of(&theirs.hash(topic)), None);
        }
    }

    #[test]
    fn message_ids_depend_on_topic_and_payload_only() {
        let topics = Topics::new(&[1; 32]);
        let message = |source, sequence_number, topic, data: &[u8]| gossipsub::Message {
            source,
            data: data.to_vec(),
            sequence_number,
            topic,
        };
        let tx = topics.hash(Topic::Transactions);
        let consensus = topics.hash(Topic::Consensus);
        let a = message_id(&message(None, Some(1), tx.clone(), b"batch"));
        let b = message_id(&message(Some(libp2p::PeerId::random()), Some(9), tx.clone(), b"batch"));
        assert_eq!(a, b);
        assert_ne!(a, message_id(&message(None, Some(1), consensus, b"batch")));
        assert_ne!(a, message_id(&message(None, Some(1), tx, b"batch2")));
    }

    #[test]
    fn the_gossipsub_configuration_is_accepted() {
        let limits = Limits::default();
        behaviour(&Topics::new(&[0; 32]), &limits).unwrap();
    }
}
