//! The one `match` on the API key: decode the body, call the API's handler, encode the
//! response. The supported surface can be read here in one place.
//!
//! Requests for an API key or version outside [`sluice_protocol::api::SUPPORTED_APIS`] are
//! answered with UNSUPPORTED_VERSION rather than left hanging: ApiVersions with a v0
//! response carrying our ranges (so the client retries lower, as Kafka does), every other
//! API with a bare header + error code.

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use sluice_protocol::api;
use sluice_protocol::error::ErrorCode;
use sluice_protocol::header::{self, RequestPreamble};

use super::api as handlers;
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

pub async fn handle(broker: Arc<Broker>, mut frame: Bytes) -> Reply {
    let preamble = match header::peek_preamble(&frame) {
        Ok(p) => p,
        Err(e) => {
            metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => "truncated_header")
                .increment(1);
            return Reply::Close(e.to_string());
        }
    };
    if !api::is_supported(preamble.api_key, preamble.api_version) {
        return unsupported(&preamble);
    }
    let (api_key, request_header) = match header::decode_request_header(&mut frame) {
        Ok(ok) => ok,
        Err(e) => {
            metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => "bad_header").increment(1);
            return Reply::Close(e.to_string());
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
    let started = Instant::now();
    let name = api_name(api_key);

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
            Ok(req) => match handlers::produce::handle(&broker, req, version).await {
                handlers::produce::Outcome::Respond(response) => {
                    encode(api_key, version, correlation_id, &response)
                }
                handlers::produce::Outcome::NoResponse => Reply::None,
                handlers::produce::Outcome::Close(reason) => Reply::Close(reason),
            },
            Err(e) => malformed(name, e),
        },
        ApiKey::Fetch => call!(FetchRequest, |req| handlers::fetch::handle(
            &broker, req, version
        )
        .await),
        ApiKey::ListOffsets => call!(ListOffsetsRequest, |req| handlers::list_offsets::handle(
            &broker, req, version
        )),
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
        ApiKey::DescribeCluster => call!(DescribeClusterRequest, |_req| {
            handlers::describe_cluster::handle(&broker)
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
    metrics::counter!(m::REQUESTS_TOTAL, "api" => name).increment(1);
    metrics::histogram!(m::REQUEST_DURATION_SECONDS, "api" => name)
        .record(started.elapsed().as_secs_f64());
    reply
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

fn malformed(api: &'static str, error: impl std::fmt::Display) -> Reply {
    metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => "bad_body").increment(1);
    Reply::Close(format!("malformed {api} request: {error}"))
}

fn unsupported(preamble: &RequestPreamble) -> Reply {
    let known = ApiKey::try_from(preamble.api_key).ok();
    tracing::info!(
        api_key = preamble.api_key,
        api = known.map(api_name).unwrap_or("unknown"),
        api_version = preamble.api_version,
        "unsupported API or version; answering UNSUPPORTED_VERSION"
    );
    metrics::counter!(m::UNSUPPORTED_REQUESTS_TOTAL, "api_key" => preamble.api_key.to_string())
        .increment(1);
    if known == Some(ApiKey::ApiVersions) {
        let response = handlers::api_versions::handle(ErrorCode::UnsupportedVersion);
        return encode(ApiKey::ApiVersions, 0, preamble.correlation_id, &response);
    }
    // No schema to answer in: header v0 (correlation id) and the error code.
    let mut frame = BytesMut::with_capacity(10);
    frame.put_i32(6);
    frame.put_i32(preamble.correlation_id);
    frame.put_i16(ErrorCode::UnsupportedVersion.code());
    Reply::Frame(frame.freeze())
}

/// Kafka's name for an API, for logs and metric labels.
pub fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ElectLeaders => "ElectLeaders",
        ApiKey::AlterPartitionReassignments => "AlterPartitionReassignments",
        ApiKey::ListPartitionReassignments => "ListPartitionReassignments",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::InitProducerId => "InitProducerId",
        _ => "Other",
    }
}
