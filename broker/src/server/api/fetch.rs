//! Fetch: decode, read through the replica manager
//! ([`ReplicaManager::fetch_records`](crate::replica::ReplicaManager::fetch_records): consumer
//! and follower reads, the long poll, follower reads by rack, the reassignment throttle),
//! encode.
//!
//! - A fetch with a replica id >= 0 is a follower's (v15+: in `replica_state`, with its broker
//!   epoch); before v15 its broker epoch comes in the tagged field
//!   [`BROKER_EPOCH_TAG`](crate::replica::fetcher::BROKER_EPOCH_TAG). Otherwise a
//!   consumer's, with its rack (v11+) for KIP-392.
//! - From v13 topics are named by id (KIP-516): an id the metadata does not have is
//!   UNKNOWN_TOPIC_ID for each of its partitions.
//! - `max_bytes` is capped by the broker's `fetch_bytes_max`.
//! - Incremental fetch sessions (KIP-227) are refused cleanly: every response carries
//!   session id 0, so clients keep sending full fetch requests; a request naming a session
//!   gets FETCH_SESSION_ID_NOT_FOUND.
//! - An empty partition gets `records: Some(empty)`, never null (librdkafka logs "invalid
//!   MessageSetSize -1" on null).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, count_topic, RemoteTime};
use crate::metrics as m;
use crate::replica::fetcher::BROKER_EPOCH_TAG;
use crate::replica::{FetchOrigin, FetchParams, PartitionFetch, PartitionRead};
use crate::replication::BROKER_EPOCH_UNKNOWN;
use crate::server::Broker;

/// Answer a Fetch request; time spent long-polling is added to `remote`.
pub async fn handle(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    remote: &mut RemoteTime,
) -> FetchResponse {
    if version >= 7 && request.session_id != 0 {
        let mut response = FetchResponse::default();
        response.error_code = count_error("Fetch", ErrorCode::FetchSessionIdNotFound);
        return response;
    }
    let names = topic_names(broker, &request, version);
    if broker.replicas.per_partition_metrics() {
        // Topics that exist only: a name made up by a client must not create a series.
        for name in names.iter().flatten() {
            if broker.topic(name).is_some() {
                count_topic(broker, m::TOPIC_FETCH_REQUESTS_TOTAL, name, 1);
            }
        }
    }
    let params = FetchParams {
        origin: origin(&request, version),
        max_bytes: usize::try_from(request.max_bytes)
            .unwrap_or(0)
            .min(broker.limits.fetch_bytes_max),
        min_bytes: usize::try_from(request.min_bytes).unwrap_or(0),
        max_wait: Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)),
    };
    let partitions: Vec<PartitionFetch> = request
        .topics
        .iter()
        .zip(&names)
        .flat_map(|(topic, name)| {
            // An unknown topic id reads as a topic no name has (answered UNKNOWN_TOPIC_ID).
            let name = name.clone().unwrap_or_default();
            topic.partitions.iter().map(move |p| PartitionFetch {
                topic: name.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: p.log_start_offset,
                max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
            })
        })
        .collect();
    let (reads, bytes) = broker
        .replicas
        .fetch_records(&params, &partitions, remote)
        .await;
    let response = encode(&request, &names, reads, &params.origin, version);
    count_bytes_out(broker, &params.origin, &response, bytes);
    response
}

/// Each requested topic's name: as given before v13, looked up by topic id from v13 on
/// (KIP-516), `None` for an id the metadata does not have.
fn topic_names(broker: &Broker, request: &FetchRequest, version: i16) -> Vec<Option<String>> {
    if version < 13 {
        return request
            .topics
            .iter()
            .map(|t| Some(t.topic.0.to_string()))
            .collect();
    }
    broker.replicas.metadata().read(|state| {
        request
            .topics
            .iter()
            .map(|t| state.topic(&t.topic_id).map(|topic| topic.name.clone()))
            .collect()
    })
}

/// Who sent the fetch.
fn origin(request: &FetchRequest, version: i16) -> FetchOrigin {
    // v15+ carries the follower in `replica_state` (KIP-903), with its broker epoch.
    let (replica_id, epoch) = if version >= 15 {
        (
            request.replica_state.replica_id.0,
            Some(request.replica_state.replica_epoch),
        )
    } else {
        (request.replica_id.0, None)
    };
    if replica_id >= 0 {
        let broker_epoch = epoch.filter(|e| *e >= 0).unwrap_or_else(|| {
            request
                .unknown_tagged_fields
                .get(&BROKER_EPOCH_TAG)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
                .map_or(BROKER_EPOCH_UNKNOWN, i64::from_be_bytes)
        });
        FetchOrigin::Follower {
            replica_id,
            broker_epoch,
        }
    } else {
        let rack = if version >= 11 {
            request.rack_id.to_string()
        } else {
            String::new()
        };
        FetchOrigin::Consumer { rack }
    }
}

/// The response: the request's topics and partitions in order, one read each.
fn encode(
    request: &FetchRequest,
    names: &[Option<String>],
    reads: Vec<PartitionRead>,
    origin: &FetchOrigin,
    version: i16,
) -> FetchResponse {
    let mut response = FetchResponse::default();
    let mut reads = reads.into_iter();
    let consumer = origin.is_consumer();
    for (topic, name) in request.topics.iter().zip(names) {
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = topic.topic.clone();
        topic_response.topic_id = topic.topic_id;
        for partition in &topic.partitions {
            let mut read = reads.next().expect("one read per requested partition");
            if name.is_none() {
                read.error = ErrorCode::UnknownTopicId;
            }
            let mut p = PartitionData::default();
            p.partition_index = partition.partition;
            p.error_code = count_error("Fetch", read.error);
            p.records = Some(read.records);
            p.high_watermark = read.high_watermark;
            p.last_stable_offset = read.last_stable_offset;
            p.log_start_offset = if version < 5 {
                -1
            } else {
                read.log_start_offset
            };
            if read.error != ErrorCode::None && consumer {
                // Kafka answers a consumer's failed partition with every offset unknown;
                // a follower keeps the leader's log start (it restarts its log there).
                p.high_watermark = -1;
                p.last_stable_offset = -1;
                p.log_start_offset = -1;
            }
            p.preferred_read_replica = BrokerId(read.preferred_read_replica);
            if let Some((epoch, end_offset)) = read.diverging_epoch {
                p.diverging_epoch.epoch = epoch;
                p.diverging_epoch.end_offset = end_offset;
            }
            topic_response.partitions.push(p);
        }
        response.responses.push(topic_response);
    }
    response
}

/// Record bytes sent, in total, by who fetched them (consumers or followers) and, for
/// consumers, by topic.
fn count_bytes_out(broker: &Broker, origin: &FetchOrigin, response: &FetchResponse, bytes: usize) {
    metrics::counter!(m::BYTES_OUT_TOTAL).increment(bytes as u64);
    let from = match origin {
        FetchOrigin::Consumer { .. } => {
            for topic in &response.responses {
                let topic_bytes: usize = topic
                    .partitions
                    .iter()
                    .filter_map(|p| p.records.as_ref().map(Bytes::len))
                    .sum();
                // Only topics that sent something: a consumer naming a topic that does
                // not exist must not create a series.
                if topic_bytes > 0 {
                    count_topic(
                        broker,
                        m::TOPIC_BYTES_OUT_TOTAL,
                        &topic.topic.0,
                        topic_bytes as u64,
                    );
                }
            }
            "consumer"
        }
        FetchOrigin::Follower { .. } => "follower",
    };
    metrics::counter!(m::FETCH_BYTES_OUT_TOTAL, "fetcher" => from).increment(bytes as u64);
    metrics::counter!(m::FETCH_RESPONSES_TOTAL, "fetcher" => from).increment(1);
}
