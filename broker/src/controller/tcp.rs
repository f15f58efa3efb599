//! Raft messages between controller nodes over TCP (the brokers' internal listener).
//!
//! The same three RPCs as [`network`](super::network) (`append_entries`, `vote`,
//! `install_snapshot`), carried one at a time over a TCP connection per peer.
//!
//! # Wire format
//!
//! Each message is one frame:
//!
//! ```text
//! [u32 big-endian payload length][u32 big-endian crc32 of the payload][payload: JSON]
//! ```
//!
//! The payload is a [`RaftRequest`] from the caller or a [`RaftResponse`] from the callee.
//! The length is checked against a limit ([`FRAME_BYTES_MAX`] by default) *before* the
//! payload buffer is allocated, so a peer cannot make us allocate 4 GiB with eight bytes.
//! A frame that is too long or whose CRC is wrong closes the connection: after a bad frame
//! the stream's position can no longer be trusted.
//!
//! # Client ([`TcpRaftNetwork`], [`TcpRaftConnection`])
//!
//! openraft asks the factory for one client per peer; the client connects lazily to the
//! peer's [`BasicNode::addr`] on its first RPC, and reconnects on the next RPC after any
//! failure. One request is in flight per connection; the answer to it is the next frame.
//! The stream is taken out of the client for the duration of a call and put back only
//! after a complete answer, so a call that fails, times out, or is cancelled by openraft
//! (which drops the future at the RPC's hard TTL) drops its connection instead of leaving
//! an unread answer behind to be mistaken for the next call's.
//!
//! Each call is bounded by the RPC's soft TTL from openraft's [`RPCOption`] (which fires
//! before openraft's own hard TTL), or by [`TcpNetworkConfig::request_timeout_ms`] if that
//! is shorter. Errors: a peer that cannot be connected to is `Unreachable` (openraft backs
//! off before retrying); a failure on an established connection, a timeout or an
//! undecodable answer is a `Network` error (openraft retries); an error returned by the
//! peer's Raft is a `RemoteError`.
//!
//! # Broker-to-controller requests ([`ControllerConnections`])
//!
//! A broker's [`ControllerRequest`]s travel in the same frames to a controller's internal
//! listener, on a small pool of kept connections (at most
//! [`CONTROLLER_IDLE_CONNECTIONS_MAX`] idle per address, none idle for longer than
//! [`CONTROLLER_IDLE_MS_MAX`]). A request is sent again on a fresh connection only when the
//! kept one was dead before the peer answered anything, never after a bad answer.
//!
//! # Server ([`serve_raft`])
//!
//! An accept loop, one task per connection (at most [`TcpNetworkConfig::connections_max`]),
//! each reading a request, handing it to the local [`Raft`] and writing the answer. Nothing
//! a peer sends can panic the server: bad frames and undecodable requests are logged and
//! close that connection. Connections are counted in the `sluice_connections_*` metrics
//! with `listener="internal"`.
//!
//! # Left out
//!
//! Authentication and TLS (the internal listener is assumed private), pipelining several
//! requests on one connection, and streaming snapshots (a snapshot travels in openraft's
//! chunks, each well under the frame limit).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, RaftNetwork, RaftNetworkFactory};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::service::{ControllerRequest, ControllerResponse, ControllerService};
use super::{NodeId, TypeConfig};

/// Largest frame payload accepted or sent by default: 64 MiB.
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Bytes before the payload: length and CRC, each a big-endian `u32`.
pub const FRAME_HEADER_BYTES: usize = 8;

/// Limits and timeouts of the TCP transport. Tests shrink them.
#[derive(Debug, Clone)]
pub struct TcpNetworkConfig {
    /// Largest frame payload sent or accepted; a longer one closes the connection.
    pub frame_bytes_max: usize,
    /// Upper bound on one RPC (connect, send, answer), whatever openraft's TTL allows.
    pub request_timeout_ms: u64,
    /// Upper bound on establishing a connection to a peer.
    pub connect_timeout_ms: u64,
    /// Inbound connections served at once; more are closed on accept.
    pub connections_max: usize,
}

impl Default for TcpNetworkConfig {
    fn default() -> TcpNetworkConfig {
        TcpNetworkConfig {
            frame_bytes_max: FRAME_BYTES_MAX,
            request_timeout_ms: 5_000,
            connect_timeout_ms: 1_000,
            connections_max: 64,
        }
    }
}

/// A request from one controller node's Raft to another's.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A broker's request to the controller (registration, heartbeat, a metadata change).
    Controller(ControllerRequest),
}

/// The answer to a [`RaftRequest`] of the same variant: what the callee's Raft returned.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Controller(ControllerResponse),
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {length_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        length_bytes: u64,
        limit_bytes: usize,
    },
    #[error("frame CRC mismatch: header says {expected:#010x}, payload has {actual:#010x}")]
    Crc { expected: u32, actual: u32 },
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    /// Reading failed before any byte of a frame arrived (a reset, say): like a close between
    /// frames, the peer has sent nothing of an answer.
    #[error("the connection failed before a frame began: {0}")]
    IoBeforeFrame(io::Error),
    #[error("frame I/O: {0}")]
    Io(#[from] io::Error),
}

/// The payload length and CRC of a frame, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub length_bytes: usize,
    pub crc: u32,
}

impl FrameHeader {
    /// Parse a header, refusing a length over `frame_bytes_max`. Nothing is allocated here,
    /// so the check happens before a buffer of the peer-supplied length exists.
    pub fn parse(
        header: [u8; FRAME_HEADER_BYTES],
        frame_bytes_max: usize,
    ) -> Result<FrameHeader, FrameError> {
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let length = u32::from_be_bytes([l0, l1, l2, l3]);
        let too_large = || FrameError::TooLarge {
            length_bytes: u64::from(length),
            limit_bytes: frame_bytes_max,
        };
        let length_bytes = usize::try_from(length).map_err(|_| too_large())?;
        if length_bytes > frame_bytes_max {
            return Err(too_large());
        }
        Ok(FrameHeader {
            length_bytes,
            crc: u32::from_be_bytes([c0, c1, c2, c3]),
        })
    }
}

/// `payload` as one frame: header then payload.
pub fn encode_frame(payload: &[u8], frame_bytes_max: usize) -> Result<Vec<u8>, FrameError> {
    let too_large = || FrameError::TooLarge {
        length_bytes: payload.len() as u64,
        limit_bytes: frame_bytes_max,
    };
    if payload.len() > frame_bytes_max {
        return Err(too_large());
    }
    let length = u32::try_from(payload.len()).map_err(|_| too_large())?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Read one frame's payload. `Ok(None)` when the peer closed cleanly between frames, and
/// [`FrameError::IoBeforeFrame`] when reading failed before the frame's first byte.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_bytes_max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut filled = 0;
    while filled < FRAME_HEADER_BYTES {
        match reader.read(&mut header[filled..]).await {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(read) => filled += read,
            Err(error) if filled == 0 => return Err(FrameError::IoBeforeFrame(error)),
            Err(error) => return Err(FrameError::Io(error)),
        }
    }
    let header = FrameHeader::parse(header, frame_bytes_max)?;
    let mut payload = vec![0u8; header.length_bytes];
    reader
        .read_exact(&mut payload)
        .await
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(error),
        })?;
    let actual = crc32fast::hash(&payload);
    if actual != header.crc {
        return Err(FrameError::Crc {
            expected: header.crc,
            actual,
        });
    }
    Ok(Some(payload))
}

/// Serialize `message` and write it as one frame.
async fn write_message<W: AsyncWrite + Unpin, M: Serialize>(
    writer: &mut W,
    message: &M,
    frame_bytes_max: usize,
) -> Result<(), TransportError> {
    let payload = serde_json::to_vec(message).map_err(TransportError::Encode)?;
    let frame = encode_frame(&payload, frame_bytes_max)?;
    writer
        .write_all(&frame)
        .await
        .map_err(TransportError::Write)?;
    writer.flush().await.map_err(TransportError::Write)?;
    Ok(())
}

/// What went wrong on one RPC, before openraft's error types are chosen.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    /// Writing a frame failed. The peer cannot have read all of it, so it acted on nothing.
    #[error("writing a frame: {0}")]
    Write(io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the peer closed the connection without answering")]
    Closed,
    #[error("encoding a message: {0}")]
    Encode(serde_json::Error),
    #[error("decoding a message: {0}")]
    Decode(serde_json::Error),
    #[error("the peer answered a {0} request with a different kind of answer")]
    Mismatched(&'static str),
}

impl TransportError {
    /// A peer we could not reach at all is `Unreachable`, so openraft backs off; anything
    /// else is a `Network` error, retried as usual.
    fn into_rpc_error<E: std::error::Error>(self) -> RPCError<NodeId, BasicNode, E> {
        match self {
            TransportError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&self)),
            _ => RPCError::Network(NetworkError::new(&self)),
        }
    }

    /// Whether a call failed because its connection was already dead when the request was
    /// sent: the write failed, or the connection ended (closed, reset, broken pipe) before
    /// any byte of an answer. The peer has then answered nothing, so the request may go
    /// again on a new connection. Anything else (a bad or partial answer, say) may come
    /// from a peer that acted on the request, and sending it again could apply it twice.
    fn connection_was_dead(&self) -> bool {
        match self {
            TransportError::Write(_) | TransportError::Closed => true,
            TransportError::Frame(FrameError::IoBeforeFrame(error)) => matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }
}

/// Creates a [`TcpRaftConnection`] per peer. Give one to [`Controller::open`](super::Controller::open).
#[derive(Debug, Clone, Default)]
pub struct TcpRaftNetwork {
    config: Arc<TcpNetworkConfig>,
}

impl TcpRaftNetwork {
    pub fn new(config: TcpNetworkConfig) -> TcpRaftNetwork {
        TcpRaftNetwork {
            config: Arc::new(config),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for TcpRaftNetwork {
    type Network = TcpRaftConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> TcpRaftConnection {
        TcpRaftConnection {
            config: self.config.clone(),
            target,
            addr: node.addr.clone(),
            stream: None,
        }
    }
}

/// One node's connection to one peer, (re)connected lazily.
#[derive(Debug)]
pub struct TcpRaftConnection {
    config: Arc<TcpNetworkConfig>,
    target: NodeId,
    addr: String,
    /// `None` until the first call and after a failed one.
    stream: Option<TcpStream>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl TcpRaftConnection {
    /// Send `request` and return the answer, within the RPC's soft TTL.
    async fn call(
        &mut self,
        request: &RaftRequest,
        option: &RPCOption,
    ) -> Result<RaftResponse, TransportError> {
        let timeout = option
            .soft_ttl()
            .min(Duration::from_millis(self.config.request_timeout_ms));
        // Taken, not borrowed: if this call fails or is dropped, so is the connection.
        let stream = self.stream.take();
        let (stream, response) = tokio::time::timeout(timeout, self.exchange(stream, request))
            .await
            .map_err(|_| TransportError::Timeout {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            })??;
        self.stream = Some(stream);
        Ok(response)
    }

    async fn exchange(
        &self,
        stream: Option<TcpStream>,
        request: &RaftRequest,
    ) -> Result<(TcpStream, RaftResponse), TransportError> {
        let mut stream = match stream {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        let frame_bytes_max = self.config.frame_bytes_max;
        write_message(&mut stream, request, frame_bytes_max).await?;
        let payload = read_frame(&mut stream, frame_bytes_max)
            .await?
            .ok_or(TransportError::Closed)?;
        let response = serde_json::from_slice(&payload).map_err(TransportError::Decode)?;
        Ok((stream, response))
    }

    async fn connect(&self) -> Result<TcpStream, TransportError> {
        let connect_error = |source| TransportError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let stream = tokio::time::timeout(timeout, TcpStream::connect(self.addr.as_str()))
            .await
            .map_err(|_| connect_error(io::ErrorKind::TimedOut.into()))?
            .map_err(connect_error)?;
        // Raft messages are small and latency-bound (heartbeats).
        stream.set_nodelay(true).map_err(connect_error)?;
        Ok(stream)
    }

    fn remote<E: std::error::Error>(
        &self,
        error: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, error))
    }
}

impl RaftNetwork<TypeConfig> for TcpRaftConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let request = RaftRequest::AppendEntries(request);
        match self.call(&request, &option).await {
            Ok(RaftResponse::AppendEntries(answer)) => answer.map_err(|error| self.remote(error)),
            Ok(_) => Err(TransportError::Mismatched("append-entries").into_rpc_error()),
            Err(error) => Err(error.into_rpc_error()),
        }
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let request = RaftRequest::InstallSnapshot(request);
        match self.call(&request, &option).await {
            Ok(RaftResponse::InstallSnapshot(answer)) => answer.map_err(|error| self.remote(error)),
            Ok(_) => Err(TransportError::Mismatched("install-snapshot").into_rpc_error()),
            Err(error) => Err(error.into_rpc_error()),
        }
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let request = RaftRequest::Vote(request);
        match self.call(&request, &option).await {
            Ok(RaftResponse::Vote(answer)) => answer.map_err(|error| self.remote(error)),
            Ok(_) => Err(TransportError::Mismatched("vote").into_rpc_error()),
            Err(error) => Err(error.into_rpc_error()),
        }
    }
}

/// Idle connections [`ControllerConnections`] keeps per controller address; a connection
/// returned when that many are idle closes the oldest.
pub const CONTROLLER_IDLE_CONNECTIONS_MAX: usize = 2;

/// How long [`ControllerConnections`] keeps a connection idle before closing it: 30 s.
pub const CONTROLLER_IDLE_MS_MAX: u64 = 30_000;

/// Connections to controller nodes kept open between controller requests (heartbeats come
/// every `--broker-heartbeat-interval-ms`; a connection per request would leave a trail of
/// TIME_WAIT sockets). As with [`TcpRaftConnection`], a connection carries one request at
/// a time and goes back to the idle set only after a complete answer; a failed or cancelled
/// call drops it.
///
/// The idle set is bounded, because each idle connection holds one of the controller's
/// [`TcpNetworkConfig::connections_max`] permits (its server has no idle timeout): at most
/// [`CONTROLLER_IDLE_CONNECTIONS_MAX`] per address (a burst of concurrent calls opens more,
/// and the extras close as they come back, oldest first), none idle for longer than
/// [`CONTROLLER_IDLE_MS_MAX`]. Stale connections are closed when a call looks for one to
/// reuse and when one is returned for that address; an address nobody calls keeps its few
/// connections until the pool is dropped.
///
/// A call on a kept connection is sent again on a fresh one only when the kept one was
/// evidently dead before the peer answered anything (the write failed, or the connection
/// ended before the first byte of an answer). Any other failure (an undecodable, corrupt
/// or partial answer) is returned: the peer may have acted on the request, and a `Submit`
/// sent twice could be applied twice.
#[derive(Debug, Default)]
pub struct ControllerConnections {
    /// Per address, oldest first, each with the time it was returned.
    idle: std::sync::Mutex<HashMap<String, Vec<IdleConnection>>>,
}

#[derive(Debug)]
struct IdleConnection {
    stream: TcpStream,
    returned_at: Instant,
}

impl ControllerConnections {
    /// Send `request` to the node at `addr` and return its answer, within `timeout`. A
    /// kept connection the peer has closed meanwhile is replaced by a fresh one at once.
    pub async fn call(
        &self,
        addr: &str,
        request: ControllerRequest,
        timeout: Duration,
    ) -> Result<ControllerResponse, String> {
        let request = RaftRequest::Controller(request);
        let attempt = async {
            if let Some(stream) = self.take_idle(addr, Instant::now()) {
                match self.exchange(addr, stream, &request).await {
                    Err(error) if error.connection_was_dead() => {
                        tracing::debug!(addr, %error, "kept controller connection was closed; reconnecting");
                    }
                    result => return result,
                }
            }
            let stream =
                TcpStream::connect(addr)
                    .await
                    .map_err(|source| TransportError::Connect {
                        addr: addr.to_string(),
                        source,
                    })?;
            stream.set_nodelay(true).map_err(FrameError::Io)?;
            self.exchange(addr, stream, &request).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err(format!(
                "no answer from {addr} within {} ms",
                timeout.as_millis()
            )),
        }
    }

    /// The most recently returned connection to `addr` that has not been idle too long at
    /// `now`; older ones are closed.
    fn take_idle(&self, addr: &str, now: Instant) -> Option<TcpStream> {
        let mut idle = self.lock();
        let connections = idle.get_mut(addr)?;
        retain_fresh(connections, now);
        let stream = connections.pop().map(|connection| connection.stream);
        if connections.is_empty() {
            idle.remove(addr);
        }
        stream
    }

    /// Keep `stream` for the next call to `addr`, closing the connections to `addr` that
    /// have been idle too long at `now` and, over the limit, the oldest.
    fn put_idle(&self, addr: &str, stream: TcpStream, now: Instant) {
        let mut idle = self.lock();
        let connections = idle.entry(addr.to_string()).or_default();
        retain_fresh(connections, now);
        connections.push(IdleConnection {
            stream,
            returned_at: now,
        });
        let excess = connections
            .len()
            .saturating_sub(CONTROLLER_IDLE_CONNECTIONS_MAX);
        connections.drain(..excess);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<IdleConnection>>> {
        // No statement under the lock can leave the map half-changed, so a lock poisoned
        // by a panic still holds a consistent map.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many connections to `addr` are idle.
    #[cfg(test)]
    fn idle_count(&self, addr: &str) -> usize {
        self.lock().get(addr).map_or(0, Vec::len)
    }

    /// One request and its answer on `stream`, which is kept for the next call if the
    /// answer arrived whole.
    async fn exchange(
        &self,
        addr: &str,
        mut stream: TcpStream,
        request: &RaftRequest,
    ) -> Result<ControllerResponse, TransportError> {
        write_message(&mut stream, request, FRAME_BYTES_MAX).await?;
        let payload = read_frame(&mut stream, FRAME_BYTES_MAX)
            .await?
            .ok_or(TransportError::Closed)?;
        let response = match serde_json::from_slice(&payload).map_err(TransportError::Decode)? {
            RaftResponse::Controller(response) => response,
            _ => return Err(TransportError::Mismatched("controller")),
        };
        self.put_idle(addr, stream, Instant::now());
        Ok(response)
    }
}

/// Close (drop) the connections idle for longer than [`CONTROLLER_IDLE_MS_MAX`] at `now`.
fn retain_fresh(connections: &mut Vec<IdleConnection>, now: Instant) {
    let idle_max = Duration::from_millis(CONTROLLER_IDLE_MS_MAX);
    connections
        .retain(|connection| now.saturating_duration_since(connection.returned_at) <= idle_max);
}

/// Serve Raft RPCs arriving on `listener` with `raft`, with the default limits, until
/// `shutdown` turns true (or its sender is dropped).
pub async fn serve_raft(
    listener: TcpListener,
    raft: Raft<TypeConfig>,
    shutdown: watch::Receiver<bool>,
) {
    serve_raft_with_config(listener, raft, None, shutdown, TcpNetworkConfig::default()).await
}

/// [`serve_raft`] with explicit limits. Open connections are closed when this returns.
pub async fn serve_raft_with_config(
    listener: TcpListener,
    raft: Raft<TypeConfig>,
    service: Option<Arc<ControllerService>>,
    mut shutdown: watch::Receiver<bool>,
    config: TcpNetworkConfig,
) {
    let permits = Arc::new(Semaphore::new(config.connections_max));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = crate::shutdown::stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and friends: back off briefly rather than spin.
                        tracing::warn!(%error, "raft listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, limit = config.connections_max, "raft listener: connection limit reached; closing new connection");
                    continue;
                };
                let open = crate::metrics::OpenConnection::open("internal");
                let raft = raft.clone();
                let service = service.clone();
                let frame_bytes_max = config.frame_bytes_max;
                connections.spawn(async move {
                    serve_connection(stream, peer, raft, service, frame_bytes_max).await;
                    drop(open);
                    drop(permit);
                });
            }
        }
    }
    // Dropping the set aborts the connection tasks.
    connections.shutdown().await;
}

/// Answer requests on one connection until the peer closes it or sends something bad.
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    raft: Raft<TypeConfig>,
    service: Option<Arc<ControllerService>>,
    frame_bytes_max: usize,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "raft connection: set_nodelay failed");
    }
    loop {
        let payload = match read_frame(&mut stream, frame_bytes_max).await {
            Ok(Some(payload)) => payload,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%peer, %error, "raft connection: bad frame; closing the connection");
                return;
            }
        };
        let request: RaftRequest = match serde_json::from_slice(&payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%peer, %error, "raft connection: undecodable request; closing the connection");
                return;
            }
        };
        let response = match request {
            RaftRequest::AppendEntries(request) => {
                RaftResponse::AppendEntries(raft.append_entries(request).await)
            }
            RaftRequest::Vote(request) => RaftResponse::Vote(raft.vote(request).await),
            RaftRequest::InstallSnapshot(request) => {
                RaftResponse::InstallSnapshot(raft.install_snapshot(request).await)
            }
            RaftRequest::Controller(request) => RaftResponse::Controller(match &service {
                Some(service) => service.handle(request).await,
                None => ControllerResponse::Error("this node serves no controller requests".into()),
            }),
        };
        if let Err(error) = write_message(&mut stream, &response, frame_bytes_max).await {
            tracing::warn!(%peer, %error, "raft connection: answering failed; closing the connection");
            return;
        }
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
