//! The TCP transport: framing limits, the server's handling of bad input, and a 3-node
//! controller quorum over real sockets on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use openraft::error::RPCError;
use openraft::network::RPCOption;
use openraft::raft::VoteRequest;
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory, ServerState, Vote};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::*;
use crate::controller::tests::{register, test_config};
use crate::controller::{
    CommandOutcome, Controller, ControllerError, MetadataCommand, MetadataState,
};
use crate::storage::StdFileSystem;

const WAIT: Duration = Duration::from_secs(10);

// ---- framing ----

#[tokio::test]
async fn frames_round_trip() {
    let frame = encode_frame(b"hello raft", FRAME_BYTES_MAX).unwrap();
    assert_eq!(frame.len(), FRAME_HEADER_BYTES + 10);
    let mut reader = &frame[..];
    let payload = read_frame(&mut reader, FRAME_BYTES_MAX).await.unwrap();
    assert_eq!(payload.as_deref(), Some(&b"hello raft"[..]));
    // A clean end between frames is not an error.
    assert!(read_frame(&mut reader, FRAME_BYTES_MAX)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn frame_with_a_wrong_crc_is_rejected() {
    let mut frame = encode_frame(b"hello raft", FRAME_BYTES_MAX).unwrap();
    let last = frame.len() - 1;
    frame[last] ^= 0x01;
    let error = read_frame(&mut &frame[..], FRAME_BYTES_MAX)
        .await
        .unwrap_err();
    assert!(matches!(error, FrameError::Crc { .. }), "{error}");
}

#[tokio::test]
async fn oversized_frame_length_is_rejected_before_allocating() {
    // Only a header: had the reader allocated and tried to read 4 GiB, it would have
    // reported a truncated frame (or run out of memory), not the limit.
    let mut header = Vec::new();
    header.extend_from_slice(&u32::MAX.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes());
    let error = read_frame(&mut &header[..], FRAME_BYTES_MAX)
        .await
        .unwrap_err();
    assert!(
        matches!(error, FrameError::TooLarge { length_bytes, limit_bytes }
            if length_bytes == u64::from(u32::MAX) && limit_bytes == FRAME_BYTES_MAX),
        "{error}"
    );

    // The limit is a parameter: one byte over a small limit is refused too, by the header
    // parser that runs before any buffer exists.
    let small = encode_frame(&[7; 17], FRAME_BYTES_MAX).unwrap();
    let header: [u8; FRAME_HEADER_BYTES] = small[..FRAME_HEADER_BYTES].try_into().unwrap();
    assert!(matches!(
        FrameHeader::parse(header, 16),
        Err(FrameError::TooLarge {
            length_bytes: 17,
            ..
        })
    ));
    assert!(FrameHeader::parse(header, 17).is_ok());
    assert!(matches!(
        encode_frame(&[7; 17], 16),
        Err(FrameError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn a_truncated_frame_is_an_error_not_a_clean_close() {
    let frame = encode_frame(b"hello raft", FRAME_BYTES_MAX).unwrap();
    for cut in [3, FRAME_HEADER_BYTES + 2] {
        let error = read_frame(&mut &frame[..cut], FRAME_BYTES_MAX)
            .await
            .unwrap_err();
        assert!(
            matches!(error, FrameError::Truncated),
            "cut at {cut}: {error}"
        );
    }
}

// ---- one server ----

/// A controller node serving Raft on its own 127.0.0.1 listener.
struct TcpNode {
    controller: Controller,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl TcpNode {
    /// Stop the node's server (closing its connections) and then its Raft.
    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("server stops")
            .expect("server task");
        self.controller.shutdown().await.unwrap();
    }
}

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

async fn start_node(root: &TempDir, id: NodeId, listener: TcpListener) -> TcpNode {
    let controller = Controller::open(
        id,
        Arc::new(StdFileSystem),
        &root.path().join(format!("node-{id}")),
        &test_config(),
        TcpRaftNetwork::new(TcpNetworkConfig::default()),
    )
    .await
    .unwrap();
    let (stop, shutdown) = watch::channel(false);
    let server = tokio::spawn(serve_raft(listener, controller.raft().clone(), shutdown));
    TcpNode {
        controller,
        stop,
        server,
    }
}

/// Read until the server closes the connection; fails if it is still open at the deadline.
async fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

fn vote_request() -> RaftRequest {
    RaftRequest::Vote(VoteRequest::new(Vote::new(1, 2), None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closes_connections_that_send_bad_frames_and_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let (listener, addr) = bind().await;
    let node = start_node(&root, 1, listener).await;

    // Wrong CRC.
    let mut bad_crc = encode_frame(b"{}", FRAME_BYTES_MAX).unwrap();
    bad_crc[FRAME_HEADER_BYTES] ^= 0xff;
    // A length over the limit, with no payload behind it.
    let mut oversized = u32::MAX.to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0; 4]);
    // A valid frame whose payload is not a request.
    let not_json = encode_frame(b"not a raft request", FRAME_BYTES_MAX).unwrap();
    for bad in [bad_crc, oversized, not_json] {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(&bad).await.unwrap();
        expect_closed(&mut stream).await;
    }

    // The server is still up and answers a well-formed request on a new connection.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = serde_json::to_vec(&vote_request()).unwrap();
    stream
        .write_all(&encode_frame(&request, FRAME_BYTES_MAX).unwrap())
        .await
        .unwrap();
    let answer = tokio::time::timeout(WAIT, read_frame(&mut stream, FRAME_BYTES_MAX))
        .await
        .expect("an answer")
        .unwrap()
        .expect("a frame");
    let answer: RaftResponse = serde_json::from_slice(&answer).unwrap();
    assert!(matches!(answer, RaftResponse::Vote(Ok(_))), "{answer:?}");

    node.stop().await;
}

#[tokio::test]
async fn a_peer_that_is_not_listening_is_unreachable() {
    let (listener, addr) = bind().await;
    drop(listener);
    let mut network = TcpRaftNetwork::new(TcpNetworkConfig::default());
    let mut client = network.new_client(2, &BasicNode::new(addr)).await;
    let RaftRequest::Vote(request) = vote_request() else {
        unreachable!()
    };
    let error = client
        .vote(request, RPCOption::new(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(error, RPCError::Unreachable(_)), "{error}");
}

// ---- a quorum ----

/// Wait until `nodes` all name the same leader, which is among them and knows it leads.
/// Wakes on metrics changes, never on a timer.
async fn agreed_leader(nodes: &BTreeMap<NodeId, TcpNode>) -> NodeId {
    let deadline = Instant::now() + WAIT;
    let mut watches: Vec<_> = nodes
        .values()
        .map(|node| node.controller.raft().metrics())
        .collect();
    loop {
        let leaders: Vec<Option<NodeId>> = watches
            .iter()
            .map(|metrics| metrics.borrow().current_leader)
            .collect();
        if let Some(Some(leader)) = leaders.first() {
            if leaders.iter().all(|l| l == &Some(*leader))
                && nodes.get(leader).is_some_and(|node| {
                    node.controller.raft().metrics().borrow().state == ServerState::Leader
                })
            {
                return *leader;
            }
        }
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        assert!(
            tokio::time::timeout_at(deadline, changed).await.is_ok(),
            "no agreed leader within {WAIT:?}: {leaders:?}"
        );
    }
}

/// Propose on whichever node leads, retrying (after the next metrics change) while
/// leadership moves. The command must succeed.
async fn submit(
    nodes: &BTreeMap<NodeId, TcpNode>,
    command: MetadataCommand,
) -> (u64, CommandOutcome) {
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = agreed_leader(nodes).await;
        match nodes[&leader].controller.submit(command.clone()).await {
            Ok((index, result)) => return (index, result.unwrap()),
            Err(ControllerError::NotController { .. }) => {
                assert!(Instant::now() < deadline, "no leader took {command:?}");
                let mut metrics = nodes[&leader].controller.raft().metrics();
                let _ = tokio::time::timeout_at(deadline, metrics.changed()).await;
            }
            Err(error) => panic!("submitting {command:?}: {error}"),
        }
    }
}

/// Wait until every node applied `index`, then return their (equal) metadata.
async fn converged(nodes: &BTreeMap<NodeId, TcpNode>, index: u64) -> MetadataState {
    for node in nodes.values() {
        node.controller
            .raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), "applied")
            .await
            .unwrap();
    }
    let states: Vec<MetadataState> = nodes
        .values()
        .map(|node| node.controller.metadata().read(Clone::clone))
        .collect();
    for state in &states[1..] {
        assert_eq!(state, &states[0], "nodes disagree on the metadata");
    }
    states[0].check_invariants().unwrap();
    states.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_over_tcp_elect_a_leader_and_fail_over_with_the_same_metadata() {
    let root = tempfile::tempdir().unwrap();
    let mut listeners = BTreeMap::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let (listener, addr) = bind().await;
        listeners.insert(id, listener);
        voters.insert(id, BasicNode::new(addr));
    }
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        nodes.insert(id, start_node(&root, id, listener).await);
    }
    nodes[&1].controller.initialize(voters).await.unwrap();
    let first_leader = agreed_leader(&nodes).await;

    for id in 1..=3 {
        let (_, outcome) = submit(&nodes, register(id)).await;
        let CommandOutcome::BrokerRegistered { broker_epoch, .. } = outcome else {
            panic!("{outcome:?}")
        };
        // A registered broker is fenced until it unfences with its epoch.
        submit(
            &nodes,
            MetadataCommand::UnfenceBroker {
                id,
                epoch: broker_epoch,
            },
        )
        .await;
    }
    let (index, outcome) = submit(
        &nodes,
        MetadataCommand::CreateTopic {
            name: "orders".into(),
            id: Uuid::from_u128(1),
            partitions: 6,
            replication_factor: 3,
            configs: BTreeMap::new(),
        },
    )
    .await;
    assert!(
        matches!(outcome, CommandOutcome::TopicCreated { .. }),
        "{outcome:?}"
    );
    let before = converged(&nodes, index).await;
    let orders = before.topic_by_name("orders").expect("orders").clone();
    assert_eq!(orders.partitions.len(), 6);
    for id in 1..=3 {
        assert!(before.broker(id).is_some(), "broker {id} registered");
    }

    // The active controller's server and Raft stop; the other two elect a new leader over
    // TCP that has everything.
    nodes
        .remove(&first_leader)
        .expect("the leader is a node")
        .stop()
        .await;
    let second_leader = agreed_leader(&nodes).await;
    assert_ne!(second_leader, first_leader);
    let after = converged(&nodes, index).await;
    assert_eq!(after, before);

    // And the new quorum of two still commits.
    let (index, _) = submit(&nodes, register(4)).await;
    let state = converged(&nodes, index).await;
    assert!(state.broker(4).is_some());
    assert_eq!(state.topic_by_name("orders"), Some(&orders));

    for (_, node) in nodes {
        node.stop().await;
    }
}

// ---- the broker's kept connections to controllers ----

/// A reader that hands out `bytes` and then fails with a connection reset.
struct ResetAfter {
    bytes: Vec<u8>,
}

impl tokio::io::AsyncRead for ResetAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if self.bytes.is_empty() {
            return std::task::Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let n = self.bytes.len().min(buf.remaining());
        buf.put_slice(&self.bytes[..n]);
        self.bytes.drain(..n);
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn read_frame_tells_a_failure_before_a_frame_from_one_inside_it() {
    let error = read_frame(&mut ResetAfter { bytes: Vec::new() }, FRAME_BYTES_MAX)
        .await
        .unwrap_err();
    assert!(matches!(error, FrameError::IoBeforeFrame(_)), "{error}");
    let error = read_frame(&mut ResetAfter { bytes: vec![0; 3] }, FRAME_BYTES_MAX)
        .await
        .unwrap_err();
    assert!(matches!(error, FrameError::Io(_)), "{error}");
}

#[test]
fn only_a_connection_dead_before_any_answer_counts_as_dead() {
    let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
    let dead = [
        TransportError::Write(io::ErrorKind::BrokenPipe.into()),
        TransportError::Closed,
        FrameError::IoBeforeFrame(reset()).into(),
        FrameError::IoBeforeFrame(io::ErrorKind::BrokenPipe.into()).into(),
    ];
    for error in dead {
        assert!(error.connection_was_dead(), "{error}");
    }
    let answered = [
        FrameError::Truncated.into(),
        FrameError::Crc {
            expected: 1,
            actual: 2,
        }
        .into(),
        FrameError::Io(reset()).into(),
        FrameError::IoBeforeFrame(io::ErrorKind::InvalidData.into()).into(),
        TransportError::Decode(serde_json::from_slice::<u8>(b"x").unwrap_err()),
        TransportError::Mismatched("controller"),
        TransportError::Timeout { timeout_ms: 1 },
    ];
    for error in answered {
        assert!(!error.connection_was_dead(), "{error}");
    }
}

/// What a [`FakeController`] has seen so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// Connections accepted.
    connections: usize,
    /// Connections the server has not closed yet.
    open: usize,
    /// Requests read, over all connections.
    requests: usize,
}

/// How a [`FakeController`] answers a request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// `NotController { leader: Some(n) }` for the `n`th request; the connection stays open.
    Good,
    /// The same good answer, then the server closes the connection.
    GoodThenClose,
    /// A whole frame whose payload is not a response.
    Undecodable,
    /// A good answer with a wrong CRC.
    BadCrc,
    /// Half a frame header, then the server closes the connection.
    Truncated,
}

/// A controller's internal listener that answers from a script, counting what reaches it.
struct FakeController {
    addr: String,
    seen: watch::Receiver<Seen>,
    server: JoinHandle<()>,
}

impl FakeController {
    /// Request `n` (from 1, over all connections) gets `script[n - 1]`, or the last entry.
    async fn start(script: &[Answer]) -> FakeController {
        let (listener, addr) = bind().await;
        let (seen_tx, seen) = watch::channel(Seen::default());
        let seen_tx = Arc::new(seen_tx);
        let script = script.to_vec();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                };
                seen_tx.send_modify(|seen| {
                    seen.connections += 1;
                    seen.open += 1;
                });
                let (seen_tx, script) = (seen_tx.clone(), script.clone());
                connections.spawn(async move {
                    answer_requests(stream, &seen_tx, &script).await;
                    // The stream is dropped (closed) by now.
                    seen_tx.send_modify(|seen| seen.open -= 1);
                });
            }
        });
        FakeController { addr, seen, server }
    }

    fn seen(&self) -> Seen {
        *self.seen.borrow()
    }

    /// Wait until what the server has seen satisfies `condition`.
    async fn wait_until(&mut self, condition: impl FnMut(&Seen) -> bool) {
        let met = tokio::time::timeout(WAIT, self.seen.wait_for(condition))
            .await
            .is_ok_and(|waited| waited.is_ok());
        assert!(
            met,
            "condition not met within {WAIT:?}: {:?}",
            *self.seen.borrow()
        );
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer_requests(mut stream: TcpStream, seen: &watch::Sender<Seen>, script: &[Answer]) {
    while let Ok(Some(payload)) = read_frame(&mut stream, FRAME_BYTES_MAX).await {
        let Ok(RaftRequest::Controller(_)) = serde_json::from_slice(&payload) else {
            return;
        };
        let mut n = 0;
        seen.send_modify(|seen| {
            seen.requests += 1;
            n = seen.requests;
        });
        let answer = script[(n - 1).min(script.len() - 1)];
        let good = RaftResponse::Controller(ControllerResponse::NotController {
            leader: Some(n as NodeId),
        });
        let mut good = encode_frame(&serde_json::to_vec(&good).unwrap(), FRAME_BYTES_MAX).unwrap();
        let (frame, close) = match answer {
            Answer::Good => (good, false),
            Answer::GoodThenClose => (good, true),
            Answer::Undecodable => (
                encode_frame(b"not a raft response", FRAME_BYTES_MAX).unwrap(),
                false,
            ),
            Answer::BadCrc => {
                let last = good.len() - 1;
                good[last] ^= 0x01;
                (good, false)
            }
            Answer::Truncated => (good[..FRAME_HEADER_BYTES / 2].to_vec(), true),
        };
        if stream.write_all(&frame).await.is_err() || close {
            return;
        }
    }
}

fn heartbeat() -> ControllerRequest {
    ControllerRequest::Heartbeat {
        id: 1,
        epoch: 1,
        applied_index: 0,
    }
}

/// The `NotController` leader a [`FakeController`] answered with: the request's number.
fn answered_request(answer: Result<ControllerResponse, String>) -> NodeId {
    match answer {
        Ok(ControllerResponse::NotController { leader: Some(n) }) => n,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn a_kept_connection_the_controller_closed_is_replaced_transparently() {
    let mut controller = FakeController::start(&[Answer::GoodThenClose]).await;
    let addr = controller.addr.clone();
    let pool = ControllerConnections::default();

    assert_eq!(
        answered_request(pool.call(&addr, heartbeat(), WAIT).await),
        1
    );
    assert_eq!(pool.idle_count(&addr), 1);
    // The server closes its end after answering; the pool still holds the connection.
    controller.wait_until(|seen| seen.open == 0).await;
    assert_eq!(pool.idle_count(&addr), 1);

    // The kept connection is dead before the request reaches anyone: the call goes out
    // once more on a new connection and succeeds.
    assert_eq!(
        answered_request(pool.call(&addr, heartbeat(), WAIT).await),
        2
    );
    let seen = controller.seen();
    assert_eq!((seen.connections, seen.requests), (2, 2), "{seen:?}");
}

#[tokio::test]
async fn a_bad_answer_on_a_kept_connection_is_returned_not_sent_again() {
    for (bad, says) in [
        (Answer::Undecodable, "decoding"),
        (Answer::BadCrc, "CRC"),
        (Answer::Truncated, "middle of a frame"),
    ] {
        let controller = FakeController::start(&[Answer::Good, bad]).await;
        let addr = controller.addr.clone();
        let pool = ControllerConnections::default();
        assert_eq!(
            answered_request(pool.call(&addr, heartbeat(), WAIT).await),
            1
        );
        assert_eq!(pool.idle_count(&addr), 1);

        // The peer read the request and answered: whatever came back, the request is not
        // sent again. The server counts each request before answering it, and a resent
        // request would have been answered before the call returned, so the count is final.
        let error = pool.call(&addr, heartbeat(), WAIT).await.unwrap_err();
        assert!(error.contains(says), "{bad:?}: {error}");
        let seen = controller.seen();
        assert_eq!(
            (seen.connections, seen.requests),
            (1, 2),
            "{bad:?}: {seen:?}"
        );
        // Nor is the connection kept: what follows on it cannot be trusted.
        assert_eq!(pool.idle_count(&addr), 0, "{bad:?}");
    }
}

#[tokio::test]
async fn a_burst_of_calls_leaves_at_most_two_idle_connections_per_controller() {
    const BURST: usize = 8;
    let mut controller = FakeController::start(&[Answer::Good]).await;
    let addr = controller.addr.clone();
    let pool = ControllerConnections::default();

    // All calls start before any answer can arrive, so each opens its own connection.
    let answers =
        futures::future::join_all((0..BURST).map(|_| pool.call(&addr, heartbeat(), WAIT))).await;
    for answer in answers {
        answered_request(answer);
    }
    assert_eq!(controller.seen().connections, BURST);
    assert_eq!(pool.idle_count(&addr), CONTROLLER_IDLE_CONNECTIONS_MAX);
    // The extras were closed, so the controller's server released their permits.
    controller
        .wait_until(|seen| seen.open == CONTROLLER_IDLE_CONNECTIONS_MAX)
        .await;

    // The kept ones are used: the next call opens nothing.
    answered_request(pool.call(&addr, heartbeat(), WAIT).await);
    assert_eq!(controller.seen().connections, BURST);
    assert_eq!(pool.idle_count(&addr), CONTROLLER_IDLE_CONNECTIONS_MAX);
}

#[tokio::test]
async fn connections_idle_too_long_are_closed_not_reused() {
    let mut controller = FakeController::start(&[Answer::Good]).await;
    let addr = controller.addr.clone();
    let pool = ControllerConnections::default();
    let idle_max = Duration::from_millis(CONTROLLER_IDLE_MS_MAX);

    // Within the limit a kept connection is reused.
    answered_request(pool.call(&addr, heartbeat(), WAIT).await);
    let stream = pool.take_idle(&addr, std::time::Instant::now() + idle_max / 2);
    assert!(stream.is_some());
    pool.put_idle(&addr, stream.unwrap(), std::time::Instant::now());

    // Past it, the connection is closed when a call looks for one.
    let later = std::time::Instant::now() + idle_max + Duration::from_secs(1);
    assert!(pool.take_idle(&addr, later).is_none());
    assert_eq!(pool.idle_count(&addr), 0);
    controller.wait_until(|seen| seen.open == 0).await;

    // And when another connection to the same address is returned.
    answered_request(pool.call(&addr, heartbeat(), WAIT).await);
    assert_eq!(pool.idle_count(&addr), 1);
    let returned = TcpStream::connect(&addr).await.unwrap();
    let later = std::time::Instant::now() + idle_max + Duration::from_secs(1);
    pool.put_idle(&addr, returned, later);
    assert_eq!(pool.idle_count(&addr), 1);
    controller
        .wait_until(|seen| seen.connections == 3 && seen.open == 1)
        .await;
}
