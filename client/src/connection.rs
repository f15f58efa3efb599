//! One TCP connection to one broker.
//!
//! Owns the socket, the correlation ids, the queue of requests awaiting responses, and the
//! API versions negotiated with that broker.
//!
//! Protocol steps:
//! 1. Connect (bounded by `connect_timeout`), then send ApiVersions (v3; if the broker
//!    answers UNSUPPORTED_VERSION with a v0 body, retry at the highest version it offers).
//!    For every API the client uses, the version is `min(our max, broker max)`, refused when
//!    that falls below either side's minimum.
//! 2. Requests are pipelined: [`Connection::start_send`] encodes the request, assigns the
//!    next correlation id and hands the frame to the writer task, all under one lock, so the
//!    order of the pending queue is the order on the wire. Kafka answers a connection's
//!    requests in order, so the reader task matches each response frame to the front of the
//!    queue and checks its correlation id; a mismatch is a protocol error that closes the
//!    connection.
//! 3. Produce with acks=0 gets no response: [`Connection::send_no_response`] completes when
//!    the frame has been written to the socket, and registers nothing in the queue.
//!
//! Failure: any socket error, EOF, correlation mismatch or request timeout closes the
//! connection and fails every pending request with the same error. A closed connection
//! stays closed ([`Connection::is_closed`]); the owner (the cluster) opens a new one. On a
//! timeout the whole connection is closed, as the Java client does, because what the broker
//! did with the request is unknown and later responses would be queued behind it anyway.
//!
//! Responses are decoded by the task that awaits them, not by the reader task, so a large
//! Fetch decode does not hold up the socket.
//!
//! Reading goes through `FrameCodec` (tokio-util `FramedRead`), which checks each length
//! against `frame_bytes_max` before buffering. Writing skips the codec's encoder: the
//! request encoder already emits the length prefix, so the writer task copies frames
//! straight into a buffered socket and flushes once per burst.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use sluice_protocol::error::ProtocolError;
use sluice_protocol::frame::{FrameCodec, FrameError, FRAME_BYTES_MAX_DEFAULT};
use sluice_protocol::header::{decode_response, encode_request, peek_response_correlation_id};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::FramedRead;

use crate::error::{Error, Result};

/// The API versions this client speaks, inclusive. Produce starts at v3 (the first with
/// RecordBatch v2) and stops at v11, Fetch at v12: the last versions that name topics
/// instead of topic ids. Metadata starts at v1, where a null topic list means "all".
pub const CLIENT_API_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeQuorum, 0, 1),
];

/// The (lowest, highest) version of `api` in [`CLIENT_API_VERSIONS`], if the client speaks
/// it at all.
pub(crate) fn client_versions(api: ApiKey) -> Option<(i16, i16)> {
    CLIENT_API_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// Panics unless `request` encodes at every version of `api` the client may pick.
#[cfg(test)]
pub(crate) fn assert_encodes_at_every_client_version(
    request: &impl kafka_protocol::protocol::Encodable,
    api: ApiKey,
) {
    let (min, max) = client_versions(api).expect("an API the client speaks");
    for version in min..=max {
        let mut buf = bytes::BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
    }
}

/// The ApiVersions request version tried first; Kafka >= 2.4 and Sluice support it.
const API_VERSIONS_FIRST_TRY: i16 = 3;

/// Bytes the writer task gathers before it flushes the socket.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Kafka's UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// Settings for one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header; shows up in broker logs and quotas.
    pub client_id: String,
    /// How long a request may wait for its response before the connection is closed.
    pub request_timeout: Duration,
    /// How long a TCP connect plus the ApiVersions handshake may take.
    pub connect_timeout: Duration,
    /// Largest response frame accepted.
    pub frame_bytes_max: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "sluice".to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
        }
    }
}

/// The version ranges one broker advertised, indexed by API key.
#[derive(Debug, Clone, Default)]
pub struct BrokerApiVersions {
    ranges: Vec<Option<(i16, i16)>>,
}

impl BrokerApiVersions {
    fn from_response(response: &ApiVersionsResponse) -> Self {
        let mut ranges = Vec::new();
        for api in &response.api_keys {
            let Ok(key) = usize::try_from(api.api_key) else {
                continue;
            };
            // Kafka has fewer than 100 API keys; ignore nonsense rather than allocate.
            if key > 1024 {
                continue;
            }
            if key >= ranges.len() {
                ranges.resize(key + 1, None);
            }
            ranges[key] = Some((api.min_version, api.max_version));
        }
        BrokerApiVersions { ranges }
    }

    /// The broker's range for an API, if it advertised one.
    pub fn range(&self, api: ApiKey) -> Option<(i16, i16)> {
        usize::try_from(api as i16)
            .ok()
            .and_then(|key| self.ranges.get(key).copied().flatten())
    }

    /// The version to use for `api`: the highest both sides support.
    pub fn negotiate(&self, api: ApiKey, broker: &str) -> Result<i16> {
        let (ours_min, ours_max) = client_versions(api).unwrap_or((0, 0));
        let unsupported = |theirs: String| Error::UnsupportedVersion {
            broker: broker.to_string(),
            api,
            ours_min,
            ours_max,
            theirs,
        };
        let Some((theirs_min, theirs_max)) = self.range(api) else {
            return Err(unsupported("none".to_string()));
        };
        let chosen = ours_max.min(theirs_max);
        if chosen < ours_min.max(theirs_min) {
            return Err(unsupported(format!("{theirs_min}..={theirs_max}")));
        }
        Ok(chosen)
    }
}

/// A frame on its way to the writer task.
struct Outgoing {
    frame: Bytes,
    /// Fired once the frame is on the socket (used for requests without a response).
    written: Option<oneshot::Sender<Result<()>>>,
}

/// A request awaiting its response.
struct Pending {
    correlation_id: i32,
    respond: oneshot::Sender<Result<BytesMut>>,
}

/// State shared by the handle, the reader task and the writer task.
struct Shared {
    broker: String,
    client_id: StrBytes,
    state: Mutex<State>,
}

struct State {
    next_correlation_id: i32,
    pending: VecDeque<Pending>,
    /// Set once; every later request fails with it.
    closed: Option<Error>,
    outgoing: Option<mpsc::UnboundedSender<Outgoing>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No update to the state spans a panic point, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected {
            broker: self.broker.clone(),
        }
    }

    /// Close the connection: fail every pending request and refuse new ones. Dropping the
    /// channel sender ends the writer task, which drops the socket's write half.
    fn close(&self, error: Error) {
        let pending = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(error.clone());
            }
            state.outgoing = None;
            std::mem::take(&mut state.pending)
        };
        for p in pending {
            let _ = p.respond.send(Err(error.clone()));
        }
    }

    /// Encode, assign the correlation id, register the pending response and queue the frame,
    /// all under the state lock so that queue order is wire order.
    fn enqueue<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        request: &R,
        expect_response: bool,
        written: Option<oneshot::Sender<Result<()>>>,
    ) -> Result<Option<oneshot::Receiver<Result<BytesMut>>>> {
        let mut state = self.lock();
        if let Some(error) = &state.closed {
            return Err(error.clone());
        }
        let correlation_id = state.next_correlation_id;
        state.next_correlation_id = correlation_id.wrapping_add(1).max(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let frame = encode_request(api, &header, request).map_err(|source| Error::Protocol {
            broker: self.broker.clone(),
            source,
        })?;
        let outgoing = state.outgoing.as_ref().ok_or_else(|| self.disconnected())?;
        outgoing
            .send(Outgoing { frame, written })
            .map_err(|_| self.disconnected())?;
        if !expect_response {
            return Ok(None);
        }
        let (respond, receiver) = oneshot::channel();
        state.pending.push_back(Pending {
            correlation_id,
            respond,
        });
        Ok(Some(receiver))
    }

    fn enqueue_expecting_response<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<oneshot::Receiver<Result<BytesMut>>> {
        self.enqueue(api, version, request, true, None)?
            .ok_or_else(|| self.disconnected())
    }
}

/// A connection to one broker. Cheap to clone; all clones share the socket. The socket is
/// closed when the last clone is dropped or on the first failure.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    versions: BrokerApiVersions,
    request_timeout: Duration,
    tasks: [AbortHandle; 2],
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close(self.shared.disconnected());
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.inner.shared.broker)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The response to a request already on its way to the broker. Await it with
/// [`PendingResponse::response`].
pub struct PendingResponse<T> {
    shared: Arc<Shared>,
    receiver: oneshot::Receiver<Result<BytesMut>>,
    api: ApiKey,
    version: i16,
    timeout: Duration,
    _response: std::marker::PhantomData<fn() -> T>,
}

impl<T: Decodable> PendingResponse<T> {
    /// Wait for the response and decode it. A timeout closes the connection.
    pub async fn response(self) -> Result<T> {
        let frame = await_frame(&self.shared, self.receiver, self.api, self.timeout).await?;
        let mut frame = frame.freeze();
        let (_, body) =
            decode_response::<T>(self.api, self.version, &mut frame).map_err(|source| {
                Error::Protocol {
                    broker: self.shared.broker.clone(),
                    source,
                }
            })?;
        Ok(body)
    }
}

async fn await_frame<T>(
    shared: &Shared,
    receiver: oneshot::Receiver<Result<T>>,
    api: ApiKey,
    timeout: Duration,
) -> Result<T> {
    match tokio::time::timeout(timeout, receiver).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(shared.disconnected()),
        Err(_) => {
            let error = Error::Timeout {
                broker: shared.broker.clone(),
                api,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            };
            shared.close(error.clone());
            Err(error)
        }
    }
}

impl Connection {
    /// Connect to `address` (`host:port`) and negotiate API versions.
    pub async fn connect(address: &str, config: &ConnectionConfig) -> Result<Connection> {
        let io_error = |e: std::io::Error| Error::Io {
            broker: address.to_string(),
            reason: e.to_string(),
        };
        let connect = async {
            let stream = TcpStream::connect(address).await.map_err(io_error)?;
            stream.set_nodelay(true).map_err(io_error)?;
            let (sender, receiver) = mpsc::unbounded_channel();
            let shared = Arc::new(Shared {
                broker: address.to_string(),
                client_id: StrBytes::from_string(config.client_id.clone()),
                state: Mutex::new(State {
                    next_correlation_id: 1,
                    pending: VecDeque::new(),
                    closed: None,
                    outgoing: Some(sender),
                }),
            });
            let (read_half, write_half) = stream.into_split();
            let reader = tokio::spawn(read_loop(
                shared.clone(),
                FramedRead::new(read_half, FrameCodec::new(config.frame_bytes_max)),
            ));
            let writer = tokio::spawn(write_loop(shared.clone(), write_half, receiver));
            let mut inner = Inner {
                shared,
                versions: BrokerApiVersions::default(),
                request_timeout: config.request_timeout,
                tasks: [reader.abort_handle(), writer.abort_handle()],
            };
            // On error `inner` drops here, which closes the socket.
            inner.versions = negotiate_versions(&inner.shared, config.request_timeout).await?;
            Ok(Connection {
                inner: Arc::new(inner),
            })
        };
        match tokio::time::timeout(config.connect_timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(Error::Io {
                broker: address.to_string(),
                reason: format!(
                    "connect and handshake timed out after {} ms",
                    config.connect_timeout.as_millis()
                ),
            }),
        }
    }

    /// `host:port` of the broker.
    pub fn broker(&self) -> &str {
        &self.inner.shared.broker
    }

    /// Whether the connection has failed or been closed; a closed connection never reopens.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.lock().closed.is_some()
    }

    /// The API versions the broker advertised.
    pub fn api_versions(&self) -> &BrokerApiVersions {
        &self.inner.versions
    }

    /// The negotiated version for `api`.
    pub fn version(&self, api: ApiKey) -> Result<i16> {
        self.inner.versions.negotiate(api, self.broker())
    }

    /// The configured request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Send a request at the negotiated version and wait for its response.
    pub async fn send<R: Request>(&self, request: R) -> Result<R::Response> {
        self.start_send(&request)?.response().await
    }

    /// Like [`Connection::send`] at an explicit version (negotiated with
    /// [`Connection::version`] by a caller that fills version-dependent fields) and timeout
    /// (a Fetch that may wait `max_wait_ms` at the broker needs longer than usual).
    pub async fn send_versioned<R: Request>(
        &self,
        request: R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.start_send_versioned(&request, version, timeout)?
            .response()
            .await
    }

    /// Put a request on the wire now, at the negotiated version, and return a handle to its
    /// response. Requests started one after another reach the broker in that order.
    pub fn start_send<R: Request>(&self, request: &R) -> Result<PendingResponse<R::Response>> {
        let version = self.version(api_key_of::<R>())?;
        self.start_send_versioned(request, version, self.inner.request_timeout)
    }

    /// [`Connection::start_send`] at an explicit version and timeout.
    pub fn start_send_versioned<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<PendingResponse<R::Response>> {
        let api = api_key_of::<R>();
        let receiver = self
            .inner
            .shared
            .enqueue_expecting_response(api, version, request)?;
        Ok(PendingResponse {
            shared: self.inner.shared.clone(),
            receiver,
            api,
            version,
            timeout,
            _response: std::marker::PhantomData,
        })
    }

    /// Send a request that gets no response (Produce with acks=0) at the negotiated version.
    /// The returned future completes when the frame has been written to the socket.
    pub fn send_no_response<R: Request>(
        &self,
        request: &R,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        let api = api_key_of::<R>();
        let version = self.version(api)?;
        let (written_tx, written_rx) = oneshot::channel();
        let shared = self.inner.shared.clone();
        shared.enqueue(api, version, request, false, Some(written_tx))?;
        let timeout = self.inner.request_timeout;
        Ok(async move { await_frame(&shared, written_rx, api, timeout).await })
    }
}

fn api_key_of<R: Request>() -> ApiKey {
    // Every `Request` type in kafka-protocol carries a valid key.
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

/// ApiVersions handshake: try v3; on UNSUPPORTED_VERSION the broker answers with a v0 body
/// listing what it supports, and we retry at its highest ApiVersions version.
async fn negotiate_versions(shared: &Shared, timeout: Duration) -> Result<BrokerApiVersions> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let malformed = |reason: &str| Error::Protocol {
        broker: shared.broker.clone(),
        source: ProtocolError::Malformed {
            what: "ApiVersions response",
            reason: reason.to_string(),
        },
    };
    let mut version = API_VERSIONS_FIRST_TRY;
    for _attempt in 0..2 {
        let receiver = shared.enqueue_expecting_response(ApiKey::ApiVersions, version, &request)?;
        let frame = await_frame(shared, receiver, ApiKey::ApiVersions, timeout)
            .await?
            .freeze();
        if let Some(response) = decode_api_versions(&frame, version) {
            if response.error_code == 0 {
                return Ok(BrokerApiVersions::from_response(&response));
            }
        }
        // Every broker answers an unsupported ApiVersions version in the v0 layout.
        match decode_api_versions(&frame, 0) {
            Some(response) if response.error_code == UNSUPPORTED_VERSION => {
                let theirs = BrokerApiVersions::from_response(&response);
                let (_, max) = theirs.range(ApiKey::ApiVersions).unwrap_or((0, 0));
                version = max.min(API_VERSIONS_FIRST_TRY);
            }
            Some(response) if response.error_code != 0 => {
                return Err(Error::broker(
                    format!("ApiVersions handshake with {}", shared.broker),
                    response.error_code,
                    None,
                ));
            }
            _ => return Err(malformed("undecodable at the requested version and at v0")),
        }
    }
    Err(malformed("broker rejected every ApiVersions version tried"))
}

fn decode_api_versions(frame: &Bytes, version: i16) -> Option<ApiVersionsResponse> {
    let mut buf = frame.clone();
    // ApiVersions responses always use header v0: just the correlation id.
    <ResponseHeader as Decodable>::decode(&mut buf, 0).ok()?;
    <ApiVersionsResponse as Decodable>::decode(&mut buf, version).ok()
}

async fn read_loop(shared: Arc<Shared>, mut frames: FramedRead<OwnedReadHalf, FrameCodec>) {
    loop {
        let frame = match frames.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::Io(e))) => {
                shared.close(Error::Io {
                    broker: shared.broker.clone(),
                    reason: e.to_string(),
                });
                return;
            }
            Some(Err(FrameError::Protocol(source))) => {
                shared.close(Error::Protocol {
                    broker: shared.broker.clone(),
                    source,
                });
                return;
            }
            None => {
                shared.close(shared.disconnected());
                return;
            }
        };
        let correlation_id = peek_response_correlation_id(&frame).ok();
        let pending = {
            let mut state = shared.lock();
            match (state.pending.front(), correlation_id) {
                (Some(front), Some(id)) if front.correlation_id == id => state.pending.pop_front(),
                _ => None,
            }
        };
        let Some(pending) = pending else {
            shared.close(Error::Protocol {
                broker: shared.broker.clone(),
                source: ProtocolError::Malformed {
                    what: "response",
                    reason: format!(
                        "correlation id {correlation_id:?} does not match the oldest pending request"
                    ),
                },
            });
            return;
        };
        // The requester may have given up (dropped its future); nothing to do then.
        let _ = pending.respond.send(Ok(frame));
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    write_half: OwnedWriteHalf,
    mut receiver: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut writer = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, write_half);
    let mut written = Vec::new();
    while let Some(first) = receiver.recv().await {
        // Frames queued before a close are dropped, not sent: their requests have already
        // been failed, and sending them anyway could duplicate a retried produce.
        if shared.lock().closed.is_some() {
            return;
        }
        let mut next = Some(first);
        let mut result = Ok(());
        // Gather whatever is queued, then flush once: one syscall for many small requests.
        while let Some(outgoing) = next.take() {
            result = writer.write_all(&outgoing.frame).await;
            if let Some(w) = outgoing.written {
                written.push(w);
            }
            if result.is_err() {
                break;
            }
            next = receiver.try_recv().ok();
        }
        if result.is_ok() {
            result = writer.flush().await;
        }
        if let Err(e) = result {
            shared.close(Error::Io {
                broker: shared.broker.clone(),
                reason: e.to_string(),
            });
            return;
        }
        for w in written.drain(..) {
            let _ = w.send(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn broker_versions(ranges: &[(ApiKey, i16, i16)]) -> BrokerApiVersions {
        let response = ApiVersionsResponse::default().with_api_keys(
            ranges
                .iter()
                .map(|(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*key as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        );
        BrokerApiVersions::from_response(&response)
    }

    #[test]
    fn negotiation_picks_highest_common_version() {
        let versions = broker_versions(&[(ApiKey::Produce, 3, 12), (ApiKey::Fetch, 4, 9)]);
        assert_eq!(versions.negotiate(ApiKey::Produce, "b").unwrap(), 11);
        assert_eq!(versions.negotiate(ApiKey::Fetch, "b").unwrap(), 9);
    }

    #[test]
    fn negotiation_refuses_disjoint_ranges_and_missing_apis() {
        let versions = broker_versions(&[(ApiKey::Fetch, 13, 17)]);
        let error = versions.negotiate(ApiKey::Fetch, "b").unwrap_err();
        assert!(matches!(error, Error::UnsupportedVersion { .. }), "{error}");
        assert!(error.to_string().contains("13..=17"), "{error}");
        assert!(versions.negotiate(ApiKey::Produce, "b").is_err());
    }

    /// A scripted broker on 127.0.0.1:0: answers ApiVersions (v3 unless `api_versions_max`
    /// is lower, in which case it first answers UNSUPPORTED_VERSION in the v0 layout) and
    /// Metadata with `controller_id` = the request's correlation id, unless `silent`.
    async fn fake_broker(
        api_versions_max: i16,
        silent: bool,
    ) -> (String, tokio::task::JoinHandle<Vec<i16>>) {
        use kafka_protocol::messages::MetadataResponse;
        use sluice_protocol::header::{decode_request_header, encode_response};
        use tokio::io::AsyncReadExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut api_versions_seen = Vec::new();
            loop {
                let mut length = [0u8; 4];
                if socket.read_exact(&mut length).await.is_err() {
                    return api_versions_seen;
                }
                let mut frame = vec![0u8; i32::from_be_bytes(length) as usize];
                socket.read_exact(&mut frame).await.unwrap();
                let mut frame = Bytes::from(frame);
                let (key, header) = decode_request_header(&mut frame).unwrap();
                let version = header.request_api_version;
                let id = header.correlation_id;
                let response = match key {
                    ApiKey::ApiVersions => {
                        api_versions_seen.push(version);
                        let ranges = [
                            (ApiKey::ApiVersions, 0, api_versions_max),
                            (ApiKey::Metadata, 0, 12),
                        ];
                        let body = ApiVersionsResponse::default().with_api_keys(
                            ranges
                                .iter()
                                .map(|(k, min, max)| {
                                    ApiVersion::default()
                                        .with_api_key(*k as i16)
                                        .with_min_version(*min)
                                        .with_max_version(*max)
                                })
                                .collect(),
                        );
                        if version > api_versions_max {
                            let body = body.with_error_code(UNSUPPORTED_VERSION);
                            encode_response(key, 0, id, &body).unwrap()
                        } else {
                            encode_response(key, version, id, &body).unwrap()
                        }
                    }
                    ApiKey::Metadata if silent => continue,
                    ApiKey::Metadata => {
                        let body = MetadataResponse::default()
                            .with_controller_id(kafka_protocol::messages::BrokerId(id));
                        encode_response(key, version, id, &body).unwrap()
                    }
                    other => panic!("unexpected {other:?}"),
                };
                socket.write_all(&response).await.unwrap();
            }
        });
        (address, handle)
    }

    fn config(request_timeout: Duration) -> ConnectionConfig {
        ConnectionConfig {
            request_timeout,
            connect_timeout: Duration::from_secs(5),
            ..ConnectionConfig::default()
        }
    }

    #[tokio::test]
    async fn pipelined_requests_each_get_their_own_response() {
        use kafka_protocol::messages::MetadataRequest;
        let (address, _broker) = fake_broker(3, false).await;
        let connection = Connection::connect(&address, &config(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(connection.version(ApiKey::Metadata).unwrap(), 12);
        // Three requests on the wire before any response is read.
        let pending: Vec<_> = (0..3)
            .map(|_| connection.start_send(&MetadataRequest::default()).unwrap())
            .collect();
        let mut ids = Vec::new();
        for p in pending {
            ids.push(p.response().await.unwrap().controller_id.0);
        }
        // Correlation ids are consecutive after the handshake's; each response matched its
        // own request.
        assert_eq!(ids, vec![ids[0], ids[0] + 1, ids[0] + 2]);
    }

    #[tokio::test]
    async fn api_versions_falls_back_to_the_brokers_highest_version() {
        let (address, broker) = fake_broker(2, false).await;
        let connection = Connection::connect(&address, &config(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(
            connection.api_versions().range(ApiKey::ApiVersions),
            Some((0, 2))
        );
        drop(connection);
        assert_eq!(broker.await.unwrap(), vec![3, 2]);
    }

    #[tokio::test]
    async fn a_request_timeout_closes_the_connection_and_fails_what_is_pending() {
        use kafka_protocol::messages::MetadataRequest;
        let (address, _broker) = fake_broker(3, true).await;
        let connection = Connection::connect(&address, &config(Duration::from_millis(200)))
            .await
            .unwrap();
        let first = connection.start_send(&MetadataRequest::default()).unwrap();
        let second = connection.start_send(&MetadataRequest::default()).unwrap();
        let error = first.response().await.unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
        assert!(error.is_retriable());
        assert!(connection.is_closed());
        assert!(second.response().await.is_err());
        assert!(connection.send(MetadataRequest::default()).await.is_err());
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_a_retriable_io_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let error = Connection::connect(&address, &config(Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Io { .. }), "{error}");
        assert!(error.is_retriable());
    }
}
