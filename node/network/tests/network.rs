//! Real nodes on 127.0.0.1 (port 0): gossip delivery after validation, the permissioned peer set,
//! no forwarding of rejected messages, block-sync round trips and limits, topic limits, and topic
//! scoping by genesis hash. Every test runs under a timeout so that nothing hangs.
//!
//! Logs: `RUST_LOG=cdrchain_network=debug cargo test -p cdrchain-network -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashSet, future::Future, time::Duration};

use cdrchain_network::{
    peer_id_from_secret, start, Limits, Multiaddr, NetworkConfig, NetworkError, NetworkEvent, NetworkHandle,
    PeerId, Topic, Validation,
};
use tokio::{sync::mpsc, time::timeout};

const GENESIS: [u8; 32] = [0x11; 32];
const OTHER_GENESIS: [u8; 32] = [0x22; 32];
/// How long to keep listening when asserting that something does *not* arrive.
const QUIET: Duration = Duration::from_millis(1500);

struct Node {
    handle: NetworkHandle,
    events: mpsc::Receiver<NetworkEvent>,
    /// Listen address with `/p2p/<peer id>`, for others' bootnode lists.
    address: Multiaddr,
}

fn peer(index: u8) -> PeerId {
    peer_id_from_secret([index; 32]).unwrap()
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn spawn(index: u8, allowed: &[u8], bootnodes: &[&Node], genesis: [u8; 32], limits: Limits) -> Node {
    let config = NetworkConfig {
        secret: [index; 32],
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootnodes: bootnodes.iter().map(|node| node.address.clone()).collect(),
        allowed_peers: allowed.iter().map(|index| peer(*index)).collect(),
        genesis_hash: genesis,
        limits,
    };
    let (handle, events) = start(config).unwrap();
    assert_eq!(handle.local_peer_id(), peer(index));
    let address = loop {
        if let Some(address) = handle.listen_addrs().await.into_iter().next() {
            break format!("{address}/p2p/{}", handle.local_peer_id()).parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    Node { handle, events, address }
}

/// Waits until `node` is connected to exactly `expected` and each of them subscribes to
/// `topics` of our chain (so that gossip has somewhere to go).
async fn wait_for_peers(node: &Node, expected: &[u8], topics: usize) {
    let expected: HashSet<PeerId> = expected.iter().map(|index| peer(*index)).collect();
    loop {
        let peers = node.handle.peers().await;
        let connected: HashSet<PeerId> = peers.iter().map(|info| info.peer_id).collect();
        if connected == expected && peers.iter().all(|info| info.topics.len() == topics) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next gossip event, skipping connection events; `None` if none arrives within `wait`.
async fn next_gossip(
    node: &mut Node,
    wait: Duration,
) -> Option<(Topic, PeerId, cdrchain_network::MessageId, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, node.events.recv()).await {
            Ok(Some(NetworkEvent::Gossip { topic, source, id, data })) => {
                return Some((topic, source, id, data.into_vec()))
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Receives the next gossip, checks it, and reports `verdict` on it.
async fn expect_gossip(node: &mut Node, topic: Topic, data: &[u8], verdict: Validation) -> PeerId {
    let (got_topic, source, id, got) =
        next_gossip(node, Duration::from_secs(5)).await.expect("gossip expected");
    assert_eq!(got_topic, topic);
    assert_eq!(got, data);
    node.handle.report(id, source, verdict);
    source
}

async fn within<F: Future<Output = ()>>(seconds: u64, test: F) {
    init_logs();
    timeout(Duration::from_secs(seconds), test).await.expect("test timed out");
}

#[tokio::test]
async fn three_allowed_nodes_deliver_gossip_after_accept() {
    within(20, async {
        let all = [1, 2, 3];
        let mut a = spawn(1, &all, &[], GENESIS, Limits::default()).await;
        let mut b = spawn(2, &all, &[&a], GENESIS, Limits::default()).await;
        let mut c = spawn(3, &all, &[&a, &b], GENESIS, Limits::default()).await;
        wait_for_peers(&a, &[2, 3], 2).await;
        wait_for_peers(&b, &[1, 3], 2).await;
        wait_for_peers(&c, &[1, 2], 2).await;

        a.handle.publish(Topic::Consensus, b"proposal h=1".to_vec()).await.unwrap();
        for node in [&mut b, &mut c] {
            let source = expect_gossip(node, Topic::Consensus, b"proposal h=1", Validation::Accept).await;
            assert!([peer(1), peer(2), peer(3)].contains(&source));
        }
        b.handle.publish(Topic::Transactions, b"cdr batch".to_vec()).await.unwrap();
        for node in [&mut a, &mut c] {
            expect_gossip(node, Topic::Transactions, b"cdr batch", Validation::Accept).await;
        }
        // Each message arrives once, although B forwarded A's message to C as well.
        assert!(next_gossip(&mut c, Duration::from_millis(500)).await.is_none());

        // Republishing identical bytes is a no-op, not an error (ids are content hashes).
        a.handle.publish(Topic::Consensus, b"proposal h=1".to_vec()).await.unwrap();
        // Over the topic limit: refused locally.
        let big = vec![0; Limits::default().max_tx_message + 1];
        assert!(matches!(
            a.handle.publish(Topic::Transactions, big).await,
            Err(NetworkError::MessageTooLarge { topic: Topic::Transactions, .. })
        ));

        let info = a.handle.peers().await;
        assert_eq!(info.len(), 2);
        assert!(info.iter().all(|peer| peer.connections >= 1 && peer.topics.len() == 2));
        a.handle.shutdown();
        assert!(matches!(
            a.handle.publish(Topic::Consensus, b"late".to_vec()).await,
            Err(NetworkError::Stopped)
        ));
    })
    .await;
}

#[tokio::test]
async fn a_peer_outside_the_allowed_set_cannot_connect_or_gossip() {
    within(20, async {
        let mut a = spawn(1, &[1, 2], &[], GENESIS, Limits::default()).await;
        let mut b = spawn(2, &[1, 2], &[&a], GENESIS, Limits::default()).await;
        // The outsider allows everyone and dials both; they must refuse it.
        let x = spawn(9, &[1, 2], &[&a, &b], GENESIS, Limits::default()).await;
        wait_for_peers(&a, &[2], 2).await;
        wait_for_peers(&b, &[1], 2).await;

        // Keep publishing while X redials (every 2 s) for a while.
        for round in 0..6u8 {
            x.handle.publish(Topic::Transactions, vec![round; 32]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for node in [&mut a, &mut b] {
            while let Ok(event) = node.events.try_recv() {
                match event {
                    NetworkEvent::PeerConnected(peer_id) => assert_ne!(peer_id, peer(9)),
                    NetworkEvent::Gossip { source, .. } => {
                        panic!("gossip from {source} reached an allowed node")
                    }
                    _ => {}
                }
            }
            let peers: Vec<PeerId> = node.handle.peers().await.into_iter().map(|info| info.peer_id).collect();
            assert!(!peers.contains(&peer(9)));
        }
        // The allowed pair still gossips.
        a.handle.publish(Topic::Consensus, b"vote".to_vec()).await.unwrap();
        expect_gossip(&mut b, Topic::Consensus, b"vote", Validation::Accept).await;
    })
    .await;
}

#[tokio::test]
async fn a_rejected_message_is_not_forwarded() {
    within(20, async {
        // Line A – B – C: everyone allows everyone, but A and C only know B's address, and
        // nothing tells them each other's.
        let all = [1, 2, 3];
        let b = spawn(2, &all, &[], GENESIS, Limits::default()).await;
        let a = spawn(1, &all, &[&b], GENESIS, Limits::default()).await;
        let mut c = spawn(3, &all, &[&b], GENESIS, Limits::default()).await;
        let mut b = b;
        wait_for_peers(&b, &[1, 3], 2).await;
        wait_for_peers(&a, &[2], 2).await;
        wait_for_peers(&c, &[2], 2).await;

        a.handle.publish(Topic::Transactions, b"invalid batch".to_vec()).await.unwrap();
        expect_gossip(&mut b, Topic::Transactions, b"invalid batch", Validation::Reject).await;
        a.handle.publish(Topic::Transactions, b"valid batch".to_vec()).await.unwrap();
        expect_gossip(&mut b, Topic::Transactions, b"valid batch", Validation::Accept).await;

        // C gets the accepted message from B, and never the rejected one.
        let source = expect_gossip(&mut c, Topic::Transactions, b"valid batch", Validation::Accept).await;
        assert_eq!(source, peer(2));
        assert!(next_gossip(&mut c, QUIET).await.is_none());

        // The topology held: A and C never connected directly.
        let a_peers: Vec<PeerId> = a.handle.peers().await.into_iter().map(|info| info.peer_id).collect();
        assert_eq!(a_peers, vec![peer(2)]);
    })
    .await;
}

#[tokio::test]
async fn sync_requests_round_trip_and_oversized_responses_fail() {
    within(20, async {
        let small_responses = Limits { max_sync_response: 64 * 1024, ..Limits::default() };
        let a = spawn(1, &[1, 2], &[], GENESIS, small_responses).await;
        let mut b = spawn(2, &[1, 2], &[&a], GENESIS, Limits::default()).await;
        wait_for_peers(&a, &[2], 2).await;

        // B answers "small" with a block and "big" with 1 MiB, within its own (default) limit.
        let responder = b.handle.clone();
        tokio::spawn(async move {
            while let Some(event) = b.events.recv().await {
                if let NetworkEvent::SyncRequest { peer: from, request, reply } = event {
                    assert_eq!(from, peer(1));
                    let response = match request.as_slice() {
                        b"small" => b"block 7".to_vec(),
                        b"big" => vec![0xbb; 1024 * 1024],
                        _ => Vec::new(),
                    };
                    responder.respond(reply, response);
                }
            }
        });

        assert_eq!(a.handle.request(peer(2), b"small".to_vec()).await.unwrap(), b"block 7");
        match a.handle.request(peer(2), b"big".to_vec()).await {
            Err(NetworkError::ResponseTooLarge { peer: from, size, limit }) => {
                assert_eq!((from, size, limit), (peer(2), 1024 * 1024, 64 * 1024));
            }
            other => panic!("expected ResponseTooLarge, got {other:?}"),
        }
        // The connection survives; the next request works.
        assert_eq!(a.handle.request(peer(2), b"small".to_vec()).await.unwrap(), b"block 7");
        assert_eq!(a.handle.request(peer(2), b"unknown".to_vec()).await.unwrap(), b"");

        let too_big = vec![0; Limits::default().max_sync_request + 1];
        assert!(matches!(
            a.handle.request(peer(2), too_big).await,
            Err(NetworkError::RequestTooLarge { .. })
        ));
        assert!(matches!(
            a.handle.request(peer(9), b"small".to_vec()).await,
            Err(NetworkError::PeerNotAllowed { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn gossip_over_the_topic_limit_is_not_delivered() {
    within(20, async {
        // The sender is configured with a larger limit than the receiver, so it does send.
        let generous = Limits { max_tx_message: 64 * 1024, ..Limits::default() };
        let strict = Limits { max_tx_message: 4 * 1024, ..Limits::default() };
        let mut b = spawn(2, &[1, 2], &[], GENESIS, strict).await;
        let a = spawn(1, &[1, 2], &[&b], GENESIS, generous).await;
        wait_for_peers(&a, &[2], 2).await;
        wait_for_peers(&b, &[1], 2).await;

        a.handle.publish(Topic::Transactions, vec![0xaa; 8 * 1024]).await.unwrap();
        a.handle.publish(Topic::Transactions, vec![0xcc; 4 * 1024]).await.unwrap();
        // Only the message within B's limit arrives (exactly at the limit is fine).
        expect_gossip(&mut b, Topic::Transactions, &[0xcc; 4 * 1024], Validation::Accept).await;
        assert!(next_gossip(&mut b, QUIET).await.is_none());
        // Consensus has its own, larger limit.
        a.handle.publish(Topic::Consensus, vec![0xdd; 8 * 1024]).await.unwrap();
        expect_gossip(&mut b, Topic::Consensus, &[0xdd; 8 * 1024], Validation::Accept).await;
    })
    .await;
}

#[tokio::test]
async fn another_chains_topics_are_not_received() {
    within(20, async {
        let all = [1, 2, 3];
        let a = spawn(1, &all, &[], GENESIS, Limits::default()).await;
        let mut other = spawn(2, &all, &[&a], OTHER_GENESIS, Limits::default()).await;
        let mut c = spawn(3, &all, &[&a], GENESIS, Limits::default()).await;
        wait_for_peers(&c, &[1], 2).await;
        // A is connected to both, but the other chain's node subscribes to none of our topics.
        loop {
            let peers = a.handle.peers().await;
            if peers.len() == 2 && peers.iter().any(|info| info.peer_id == peer(3) && info.topics.len() == 2)
            {
                let foreign = peers.iter().find(|info| info.peer_id == peer(2)).unwrap();
                assert!(foreign.topics.is_empty());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        a.handle.publish(Topic::Consensus, b"our vote".to_vec()).await.unwrap();
        expect_gossip(&mut c, Topic::Consensus, b"our vote", Validation::Accept).await;
        // Publishing to a chain nobody else is on is not an error.
        other.handle.publish(Topic::Consensus, b"their vote".to_vec()).await.unwrap();
        assert!(next_gossip(&mut other, QUIET).await.is_none());
        assert!(next_gossip(&mut c, Duration::from_millis(300)).await.is_none());
        // Nor do the chains share the sync protocol.
        assert!(matches!(
            a.handle.request(peer(2), b"blocks".to_vec()).await,
            Err(NetworkError::RequestFailed { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn a_restarted_bootnode_is_found_again() {
    within(20, async {
        let mut b = spawn(2, &[1, 2], &[], GENESIS, Limits::default()).await;
        let mut a = spawn(1, &[1, 2], &[&b], GENESIS, Limits::default()).await;
        wait_for_peers(&a, &[2], 2).await;

        // Stop B and wait until its task has ended (its event channel closes).
        b.handle.shutdown();
        while b.events.recv().await.is_some() {}
        loop {
            match a.events.recv().await {
                Some(NetworkEvent::PeerDisconnected(gone)) if gone == peer(2) => break,
                Some(_) => continue,
                None => panic!("A stopped"),
            }
        }

        // Restart B on the same address; A redials it without being told.
        let port_address: Multiaddr = b.address.iter().take(2).collect();
        let (handle, _events) = start(NetworkConfig {
            secret: [2; 32],
            listen: vec![port_address],
            bootnodes: vec![],
            allowed_peers: vec![peer(1), peer(2)],
            genesis_hash: GENESIS,
            limits: Limits::default(),
        })
        .unwrap();
        loop {
            match a.events.recv().await {
                Some(NetworkEvent::PeerConnected(back)) if back == peer(2) => break,
                Some(_) => continue,
                None => panic!("A stopped"),
            }
        }
        handle.shutdown();
    })
    .await;
}

#[tokio::test]
async fn a_full_event_queue_drops_gossip_without_blocking() {
    within(20, async {
        let tiny_queue = Limits { event_queue: 4, ..Limits::default() };
        let a = spawn(1, &[1, 2], &[], GENESIS, Limits::default()).await;
        let mut b = spawn(2, &[1, 2], &[&a], GENESIS, tiny_queue).await;
        wait_for_peers(&a, &[2], 2).await;
        wait_for_peers(&b, &[1], 2).await;

        // B does not read while 20 messages arrive: at most 4 events fit, the rest are dropped.
        for index in 0..20u8 {
            a.handle.publish(Topic::Transactions, vec![index; 16]).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut queued = 0;
        while let Ok(event) = b.events.try_recv() {
            if let NetworkEvent::Gossip { id, source, .. } = event {
                b.handle.report(id, source, Validation::Accept);
            }
            queued += 1;
        }
        assert!((1..=4).contains(&queued), "{queued} events were queued");
        // The swarm kept running: B still answers and receives.
        assert!(!b.handle.peers().await.is_empty());
        a.handle.publish(Topic::Transactions, b"after the burst".to_vec()).await.unwrap();
        expect_gossip(&mut b, Topic::Transactions, b"after the burst", Validation::Accept).await;
    })
    .await;
}

#[tokio::test]
async fn held_gossip_bytes_are_bounded_per_peer_and_freed_when_dropped() {
    within(30, async {
        // B's budget: 256 KiB in all, 128 KiB per relaying peer; messages of 60 KiB.
        const MESSAGE: usize = 60 * 1024;
        let small = Limits {
            max_tx_message: 64 * 1024,
            max_consensus_message: 64 * 1024,
            gossip_held_bytes: 256 * 1024,
            ..Limits::default()
        };
        let a = spawn(1, &[1, 2], &[], GENESIS, Limits::default()).await;
        let mut b = spawn(2, &[1, 2], &[&a], GENESIS, small).await;
        wait_for_peers(&a, &[2], 2).await;
        wait_for_peers(&b, &[1], 2).await;

        // B holds what it receives (reports, but keeps the payloads) while A sends ten messages:
        // only two fit A's share; the others are dropped before they are queued.
        for index in 0..10u8 {
            a.handle.publish(Topic::Transactions, vec![index; MESSAGE]).await.expect("published");
        }
        let mut held = Vec::new();
        while let Some((_, source, id, data)) = next_gossip_held(&mut b, QUIET).await {
            b.handle.report(id, source, Validation::Ignore);
            held.push(data);
        }
        assert_eq!(held.len(), 2, "{} messages of {MESSAGE} bytes held against a 128 KiB share", held.len());
        // Still over the share: the next one is dropped too.
        a.handle.publish(Topic::Transactions, vec![0xee; MESSAGE]).await.expect("published");
        assert!(next_gossip_held(&mut b, QUIET).await.is_none());
        // Dropping the payloads gives the bytes back.
        held.clear();
        a.handle.publish(Topic::Transactions, vec![0xff; MESSAGE]).await.expect("published");
        expect_gossip(&mut b, Topic::Transactions, &[0xff; MESSAGE], Validation::Accept).await;
    })
    .await;
}

/// Like [`next_gossip`], but keeps the payload as received (its bytes still held).
async fn next_gossip_held(
    node: &mut Node,
    wait: Duration,
) -> Option<(Topic, PeerId, cdrchain_network::MessageId, cdrchain_network::GossipData)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, node.events.recv()).await {
            Ok(Some(NetworkEvent::Gossip { topic, source, id, data })) => {
                return Some((topic, source, id, data))
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_peer_that_keeps_sending_rejected_messages_is_ignored_until_its_score_recovers() {
    within(30, async {
        let a = spawn(1, &[1, 2], &[], GENESIS, Limits::default()).await;
        let mut b = spawn(2, &[1, 2], &[&a], GENESIS, Limits::default()).await;
        wait_for_peers(&a, &[2], 2).await;
        wait_for_peers(&b, &[1], 2).await;

        // Messages B judges invalid, one at a time: each is delivered and rejected until A's
        // score falls below the graylist threshold (about ten while the count is held), after
        // which A's messages are not even delivered.
        let mut rejected = 0;
        loop {
            let data = format!("invalid {rejected}").into_bytes();
            a.handle.publish(Topic::Transactions, data).await.expect("published");
            match next_gossip(&mut b, Duration::from_millis(500)).await {
                Some((_, source, id, _)) => {
                    b.handle.report(id, source, Validation::Reject);
                    rejected += 1;
                }
                None => break,
            }
            assert!(rejected < 40, "A was never graylisted");
        }
        assert!(rejected >= 9, "graylisted after only {rejected} rejected messages");
        // The count decays (halved every second): a few seconds later A is heard again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut index = 0u32;
        loop {
            index += 1;
            let data = format!("after the penalty {index}").into_bytes();
            a.handle.publish(Topic::Transactions, data).await.expect("published");
            // (The graylisted message itself may come too, by IHAVE/IWANT, once A is heard.)
            if let Some((_, source, id, _)) = next_gossip(&mut b, Duration::from_millis(500)).await {
                b.handle.report(id, source, Validation::Accept);
                assert_eq!(source, peer(1));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "A was never heard again");
        }
    })
    .await;
}

#[tokio::test]
async fn a_bootnode_given_by_dns_name_is_dialled() {
    within(20, async {
        let a = spawn(1, &[1, 2], &[], GENESIS, Limits::default()).await;
        // A's address with its IP replaced by a name: /dns4/localhost/tcp/<port>/p2p/<id>.
        let by_name: Multiaddr = a
            .address
            .iter()
            .map(|protocol| match protocol {
                libp2p::multiaddr::Protocol::Ip4(_) => libp2p::multiaddr::Protocol::Dns4("localhost".into()),
                other => other,
            })
            .collect();
        assert!(by_name.to_string().starts_with("/dns4/localhost/tcp/"), "{by_name}");
        let named = Node { handle: a.handle.clone(), events: mpsc::channel(1).1, address: by_name };
        let b = spawn(2, &[1, 2], &[&named], GENESIS, Limits::default()).await;
        wait_for_peers(&b, &[1], 2).await;
        wait_for_peers(&a, &[2], 2).await;
    })
    .await;
}

/// Review M11: an outsider kept every pending-connection slot busy with half-done handshakes
/// (renewed as they time out), so an allowed validator that only dials in could not connect.
#[tokio::test]
async fn handshakes_held_open_from_one_address_cannot_keep_an_allowed_peer_out() {
    within(40, async {
        // A long connection timeout, so that only the per-address limit can let B in.
        let patient = Limits { connection_timeout: Duration::from_secs(30), ..Limits::default() };
        let a = spawn(1, &[1, 2], &[], GENESIS, patient).await;
        let port = tcp_port(&a);
        // 40 connections from 127.0.0.2 (more than the 32 pending slots) that begin the
        // protocol negotiation (one byte of a length prefix that says "more follows") and never
        // finish it: A waits for the rest until its connection timeout (30 s here).
        let mut held = Vec::new();
        for _ in 0..40 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            if let Ok(stream) = socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await {
                held.push(stream);
            }
        }
        let trickle = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for stream in &mut held {
                let _ = stream.write_all(&[0x80]).await;
            }
            std::future::pending::<()>().await;
            drop(held);
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        // B dials A (A knows no address of B, so the connection is inbound at A), well before the
        // held handshakes time out.
        let _b = spawn(2, &[1, 2], &[&a], GENESIS, Limits::default()).await;
        timeout(Duration::from_secs(6), wait_for_peers(&a, &[2], 2))
            .await
            .expect("the allowed peer could not connect while one address held handshakes open");
        trickle.abort();
    })
    .await;
}

/// Review M11: a handshake that never finishes holds its slot only for `connection_timeout`
/// (3 s by default; libp2p's own 10 s before).
#[tokio::test]
async fn a_handshake_that_never_finishes_is_dropped_after_the_connection_timeout() {
    within(30, async {
        let a = spawn(1, &[1, 2], &[], GENESIS, Limits::default()).await;
        let port = tcp_port(&a);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
        stream.write_all(&[0x80]).await.unwrap();
        let started = std::time::Instant::now();
        let mut buffer = [0u8; 256];
        // A may answer its side of the negotiation; it must then close the connection.
        let closed = timeout(Duration::from_secs(8), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the silent handshake was still open after 8 s");
        let held = started.elapsed();
        assert!(held >= Duration::from_secs(2), "closed after {held:?}, before the timeout");
    })
    .await;
}

/// The TCP port a node listens on.
fn tcp_port(node: &Node) -> u16 {
    node.address
        .iter()
        .find_map(|protocol| match protocol {
            cdrchain_network::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .expect("a TCP listen address")
}
