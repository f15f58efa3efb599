//! The one `match` on the API key: decode the body, call the API's handler, encode the
//! response. The supported surface can be read here in one place.
//!
//! Requests for an API key or version outside [`sluice_protocol::api::SUPPORTED_APIS`] get
//! what Kafka gives them (its `RequestContext.parseRequest`): ApiVersions a v0 response with
//! UNSUPPORTED_VERSION carrying our ranges (so the client retries at a version we have);
//! every other API has no response schema to answer in, so the connection is closed. Both
//! are counted in `sluice_unsupported_requests_total{api_key}` and logged.
//!
//! # Request metrics
//! Each request's time is split as Kafka's RequestMetrics split it. The connection notes
//! when the frame was read; this handler when it starts (its first poll) and when the
//! reply is ready; Produce and Fetch add up their purgatory waits ([`RemoteTime`]); the
//! connection records it all once the reply is written ([`RequestMetrics::record`]).
//! Requests that never reach a handler (a header that cannot be parsed, an unsupported
//! API or version) are counted only in the malformed and unsupported counters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use metrics::SharedString;
use sluice_protocol::api;
use sluice_protocol::error::ErrorCode;
use sluice_protocol::header::{self, RequestPreamble};

use super::api::{self as handlers, RemoteTime};
use super::request_memory::QueuedBytes;
use super::Broker;
use crate::metrics as m;

/// What a request produced for the connection to do.
pub enum Reply {
    /// A whole response frame, length prefix included.
    Frame(Bytes),
    /// No response (acks=0 produce).
    None,
    /// Close the connection, for this logged reason.
    Close(String),
}

impl Reply {
    /// Bytes sent for this reply.
    fn bytes(&self) -> usize {
        match self {
            Reply::Frame(frame) => frame.len(),
            Reply::None | Reply::Close(_) => 0,
        }
    }
}

/// A request's reply, and its metrics for the connection to record once the reply is
/// written (`None` for requests that reached no handler).
pub struct Handled {
    pub reply: Reply,
    pub metrics: Option<RequestMetrics>,
    /// Request memory the reply holds until it is written (a fetch's records).
    pub memory: Option<QueuedBytes>,
}

impl From<Reply> for Handled {
    fn from(reply: Reply) -> Handled {
        Handled {
            reply,
            metrics: None,
            memory: None,
        }
    }
}

/// What one request cost: its API, sizes and the instants between its stages.
#[derive(Debug)]
pub struct RequestMetrics {
    api: &'static str,
    version: i16,
    request_bytes: usize,
    response_bytes: usize,
    /// The request's frame was read.
    received: Instant,
    /// Its handler started.
    started: Instant,
    /// Its reply was ready.
    ready: Instant,
    /// Of `started..ready`, the time parked in a purgatory.
    remote: Duration,
}

impl RequestMetrics {
    /// Record the request, its reply written (or, with none to send, dropped) at `written`.
    pub fn record(self, written: Instant) {
        let labels = [
            ("api", SharedString::const_str(self.api)),
            ("version", version_label(self.version)),
        ];
        let handling = self.ready.saturating_duration_since(self.started);
        let seconds = [
            (
                m::REQUEST_TOTAL_TIME_SECONDS,
                written.saturating_duration_since(self.received),
            ),
            (
                m::REQUEST_QUEUE_TIME_SECONDS,
                self.started.saturating_duration_since(self.received),
            ),
            (
                m::REQUEST_LOCAL_TIME_SECONDS,
                handling.saturating_sub(self.remote),
            ),
            (m::REQUEST_REMOTE_TIME_SECONDS, self.remote),
            (
                m::RESPONSE_SEND_TIME_SECONDS,
                written.saturating_duration_since(self.ready),
            ),
        ];
        for (name, duration) in seconds {
            metrics::histogram!(name, &labels).record(duration.as_secs_f64());
        }
        metrics::counter!(m::REQUESTS_TOTAL, &labels).increment(1);
        metrics::counter!(m::REQUEST_BYTES_TOTAL, &labels).increment(self.request_bytes as u64);
        metrics::counter!(m::RESPONSE_BYTES_TOTAL, &labels).increment(self.response_bytes as u64);
    }
}

/// An API version as a metric label, without allocating for the versions in use.
fn version_label(version: i16) -> SharedString {
    const VERSIONS: [&str; 20] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19",
    ];
    match usize::try_from(version)
        .ok()
        .and_then(|v| VERSIONS.get(v).copied())
    {
        Some(label) => SharedString::const_str(label),
        None => SharedString::from(version.to_string()),
    }
}

/// Answer one request frame (without its length prefix) read at `received`.
/// `peer` is the client's address (group members' `client_host`).
pub async fn handle(
    broker: Arc<Broker>,
    mut frame: Bytes,
    received: Instant,
    peer: std::net::SocketAddr,
) -> Handled {
    // An async fn runs nothing until its first poll, so this is when handling starts.
    let started = Instant::now();
    let request_bytes = frame.len() + 4;
    let preamble = match header::peek_preamble(&frame) {
        Ok(p) => p,
        Err(e) => {
            metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => "truncated_header")
                .increment(1);
            return Reply::Close(e.to_string()).into();
        }
    };
    if !api::is_supported(preamble.api_key, preamble.api_version) {
        return unsupported(&preamble).into();
    }
    let (api_key, request_header) = match header::decode_request_header(&mut frame) {
        Ok(ok) => ok,
        Err(e) => {
            metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => "bad_header").increment(1);
            return Reply::Close(e.to_string()).into();
        }
    };
    let version = request_header.request_api_version;
    let correlation_id = request_header.correlation_id;
    tracing::trace!(
        api = api_name(api_key),
        version,
        client_id = request_header.client_id.as_deref().unwrap_or(""),
        "request"
    );
    let name = api_name(api_key);
    let mut remote = RemoteTime::default();
    let mut memory = None;

    macro_rules! call {
        ($request:ty, |$req:ident| $body:expr) => {{
            match <$request>::decode(&mut frame, version) {
                Ok($req) => {
                    let response = $body;
                    encode(api_key, version, correlation_id, &response)
                }
                Err(e) => malformed(name, e),
            }
        }};
    }

    let reply = match api_key {
        ApiKey::ApiVersions => call!(ApiVersionsRequest, |_req| handlers::api_versions::handle(
            ErrorCode::None
        )),
        ApiKey::Metadata => call!(MetadataRequest, |req| handlers::metadata::handle(
            &broker, req, version
        )
        .await),
        ApiKey::Produce => match ProduceRequest::decode(&mut frame, version) {
            Ok(req) => match handlers::produce::handle(&broker, req, version, &mut remote).await {
                handlers::produce::Outcome::Respond(response) => {
                    encode(api_key, version, correlation_id, &response)
                }
                handlers::produce::Outcome::NoResponse => Reply::None,
                handlers::produce::Outcome::Close(reason) => Reply::Close(reason),
            },
            Err(e) => malformed(name, e),
        },
        ApiKey::Fetch => call!(FetchRequest, |req| {
            let (response, grant) =
                handlers::fetch::handle(&broker, req, version, &mut remote).await;
            memory = grant;
            response
        }),
        ApiKey::ListOffsets => call!(ListOffsetsRequest, |req| handlers::list_offsets::handle(
            &broker, req, version
        )),
        ApiKey::OffsetForLeaderEpoch => call!(OffsetForLeaderEpochRequest, |req| {
            handlers::offset_for_leader_epoch::handle(&broker, req)
        }),
        ApiKey::DescribeLogDirs => call!(DescribeLogDirsRequest, |req| {
            handlers::describe_log_dirs::handle(&broker, req)
        }),
        ApiKey::CreateTopics => call!(CreateTopicsRequest, |req| handlers::create_topics::handle(
            &broker, req, version
        )
        .await),
        ApiKey::DeleteTopics => call!(DeleteTopicsRequest, |req| handlers::delete_topics::handle(
            &broker, req, version
        )
        .await),
        ApiKey::CreatePartitions => call!(CreatePartitionsRequest, |req| {
            handlers::create_partitions::handle(&broker, req).await
        }),
        ApiKey::DescribeConfigs => call!(DescribeConfigsRequest, |req| {
            handlers::describe_configs::handle(&broker, req)
        }),
        ApiKey::IncrementalAlterConfigs => call!(IncrementalAlterConfigsRequest, |req| {
            handlers::alter_configs::handle_incremental(&broker, req).await
        }),
        ApiKey::AlterConfigs => call!(AlterConfigsRequest, |req| {
            handlers::alter_configs::handle(&broker, req).await
        }),
        ApiKey::DescribeTopicPartitions => call!(DescribeTopicPartitionsRequest, |req| {
            handlers::describe_topic_partitions::handle(&broker, req)
        }),
        ApiKey::DescribeProducers => call!(DescribeProducersRequest, |req| {
            handlers::describe_producers::handle(&broker, req)
        }),
        ApiKey::DeleteRecords => call!(DeleteRecordsRequest, |req| {
            handlers::delete_records::handle(&broker, req).await
        }),
        ApiKey::DescribeCluster => call!(DescribeClusterRequest, |req| {
            handlers::describe_cluster::handle(&broker, req, version)
        }),
        ApiKey::DescribeQuorum => call!(DescribeQuorumRequest, |req| {
            handlers::describe_quorum::handle(&broker, req, version)
        }),
        ApiKey::AlterPartitionReassignments => call!(AlterPartitionReassignmentsRequest, |req| {
            handlers::reassignments::alter(&broker, req, version).await
        }),
        ApiKey::ListPartitionReassignments => call!(ListPartitionReassignmentsRequest, |req| {
            handlers::reassignments::list(&broker, req)
        }),
        ApiKey::ElectLeaders => call!(ElectLeadersRequest, |req| {
            handlers::elect_leaders::handle(&broker, req, version).await
        }),
        ApiKey::FindCoordinator => call!(FindCoordinatorRequest, |req| {
            handlers::find_coordinator::handle(&broker, req, version).await
        }),
        ApiKey::JoinGroup => call!(JoinGroupRequest, |req| {
            let client_id = request_header.client_id.as_deref().unwrap_or("");
            handlers::join_group::handle_join(&broker, req, version, client_id, peer).await
        }),
        ApiKey::SyncGroup => call!(SyncGroupRequest, |req| {
            handlers::join_group::handle_sync(&broker, req, version).await
        }),
        ApiKey::Heartbeat => call!(HeartbeatRequest, |req| {
            handlers::group_membership::handle_heartbeat(&broker, req)
        }),
        ApiKey::LeaveGroup => call!(LeaveGroupRequest, |req| {
            handlers::group_membership::handle_leave(&broker, req, version)
        }),
        ApiKey::ListGroups => call!(ListGroupsRequest, |req| {
            handlers::list_groups::handle_list(&broker, req, version)
        }),
        ApiKey::DescribeGroups => call!(DescribeGroupsRequest, |req| {
            handlers::list_groups::handle_describe(&broker, req, version)
        }),
        ApiKey::DeleteGroups => call!(DeleteGroupsRequest, |req| {
            handlers::delete_groups::handle_delete_groups(&broker, req).await
        }),
        ApiKey::OffsetDelete => call!(OffsetDeleteRequest, |req| {
            handlers::delete_groups::handle_offset_delete(&broker, req).await
        }),
        ApiKey::ConsumerGroupHeartbeat => call!(ConsumerGroupHeartbeatRequest, |req| {
            let client_id = request_header.client_id.as_deref().unwrap_or("");
            handlers::consumer_group::handle_heartbeat(&broker, req, version, client_id, peer).await
        }),
        ApiKey::ConsumerGroupDescribe => call!(ConsumerGroupDescribeRequest, |req| {
            handlers::consumer_group::handle_describe(&broker, req)
        }),
        ApiKey::OffsetCommit => call!(OffsetCommitRequest, |req| {
            handlers::offset_commit::handle(&broker, req, version).await
        }),
        ApiKey::OffsetFetch => call!(OffsetFetchRequest, |req| {
            handlers::offset_fetch::handle(&broker, req, version)
        }),
        ApiKey::InitProducerId => call!(InitProducerIdRequest, |req| {
            handlers::init_producer_id::handle(&broker, req, version)
        }),
        // The version table and this match must agree; a key in the table without a
        // handler is a bug, answered like any unsupported API.
        _ => unsupported(&RequestPreamble {
            api_key: preamble.api_key,
            api_version: preamble.api_version,
            correlation_id,
        }),
    };
    let metrics = RequestMetrics {
        api: name,
        version,
        request_bytes,
        response_bytes: reply.bytes(),
        received,
        started,
        ready: Instant::now(),
        remote: remote.total(),
    };
    Handled {
        reply,
        metrics: Some(metrics),
        memory,
    }
}

fn encode<T: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Reply {
    match header::encode_response(api_key, version, correlation_id, body) {
        Ok(frame) => Reply::Frame(frame),
        Err(e) => {
            // Our own response failed to encode: a bug, not the client's fault.
            tracing::error!(api = api_name(api_key), version, error = %e, "cannot encode response");
            Reply::Close(format!("cannot encode {} response: {e}", api_name(api_key)))
        }
    }
}

/// A body that does not decode: counted as malformed and as an INVALID_REQUEST error of
/// its API, and the connection closed.
fn malformed(api: &'static str, error: impl std::fmt::Display) -> Reply {
    metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => "bad_body").increment(1);
    handlers::count_error(api, ErrorCode::InvalidRequest);
    Reply::Close(format!("malformed {api} request: {error}"))
}

fn unsupported(preamble: &RequestPreamble) -> Reply {
    let known = ApiKey::try_from(preamble.api_key).ok();
    let api = known.map(api_name).unwrap_or("unknown");
    metrics::counter!(m::UNSUPPORTED_REQUESTS_TOTAL, "api_key" => preamble.api_key.to_string())
        .increment(1);
    if known == Some(ApiKey::ApiVersions) {
        tracing::info!(
            api_version = preamble.api_version,
            "ApiVersions at a version this broker lacks; answering v0 with UNSUPPORTED_VERSION"
        );
        let response = handlers::api_versions::handle(ErrorCode::UnsupportedVersion);
        return encode(ApiKey::ApiVersions, 0, preamble.correlation_id, &response);
    }
    // No response schema to answer in: close, as Kafka does.
    Reply::Close(format!(
        "unsupported API or version: {api} (key {}) v{}",
        preamble.api_key, preamble.api_version
    ))
}

/// Kafka's name for an API, for logs and metric labels.
pub fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::Metadata => "Metadata",
        ApiKey::ElectLeaders => "ElectLeaders",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::DescribeProducers => "DescribeProducers",
        ApiKey::DescribeTopicPartitions => "DescribeTopicPartitions",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::DescribeQuorum => "DescribeQuorum",
        ApiKey::InitProducerId => "InitProducerId",
        _ => "Other",
    }
}
