//! DescribeTopicPartitions (KIP-966, v0): topics and their partitions, paged, from this
//! broker's copy of the metadata. Java's Admin (`kafka-topics --describe`) uses it.
//!
//! Kafka's rules (`DescribeTopicPartitionsRequestHandler`, `describeTopicResponse`): the
//! requested topics (or every topic when none is named) in name order, from the cursor's
//! topic and partition; at most `response_partition_limit` partitions (capped at 2000, at
//! least 1) per answer, with `next_cursor` at the first partition left out. A cursor topic
//! the request does not name, or a negative cursor partition, is INVALID_REQUEST for the
//! whole request (answered by the dispatcher's empty response with the topics in error);
//! an unknown named topic is UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an
//! invalid name). Eligible leader replicas are not kept (empty lists), and every topic
//! operation is allowed (there is no authorizer yet): Kafka's bit field 3576.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use sluice_protocol::error::ErrorCode;

use super::{count_error, topic_name};
use crate::controller::{BrokerStatus, MetadataState, Topic};
use crate::server::Broker;

/// Kafka's `max.request.partition.size.limit` default.
const PARTITION_LIMIT_MAX: i32 = 2000;
/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS: what
/// Kafka answers for a topic when no authorizer is configured.
const ALL_TOPIC_OPERATIONS: i32 = 3576;

pub fn handle(
    broker: &Broker,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    let named: BTreeSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .collect();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(cursor) => (cursor.topic_name.0.to_string(), cursor.partition_index),
        None => (String::new(), 0),
    };
    let bad_cursor = request.cursor.is_some()
        && ((!named.is_empty() && !named.contains(&cursor_topic)) || cursor_partition < 0);
    if bad_cursor {
        // Kafka fails the whole request; each named topic carries the error.
        for name in &named {
            let mut topic = DescribeTopicPartitionsResponseTopic::default();
            topic.name = Some(topic_name(name));
            topic.error_code = count_error("DescribeTopicPartitions", ErrorCode::InvalidRequest);
            response.topics.push(topic);
        }
        return response;
    }
    let limit = request
        .response_partition_limit
        .clamp(1, PARTITION_LIMIT_MAX);
    broker.replicas.metadata().read(|state| {
        let all = named.is_empty();
        let names: Vec<String> = if all {
            state
                .topics()
                .map(|t| t.name.clone())
                .filter(|name| *name >= cursor_topic)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            named
                .iter()
                .filter(|n| **n >= cursor_topic)
                .cloned()
                .collect()
        };
        let start = |name: &str| {
            if name == cursor_topic {
                cursor_partition
            } else {
                0
            }
        };
        let mut remaining = limit;
        for name in names {
            if remaining == 0 {
                response.next_cursor = Some(cursor(&name, 0));
                break;
            }
            match state.topic_by_name(&name) {
                Some(topic) => {
                    let (described, next) = describe(state, topic, start(&name), remaining);
                    remaining -= i32::try_from(described.partitions.len()).unwrap_or(i32::MAX);
                    response.topics.push(described);
                    if let Some(next) = next {
                        response.next_cursor = Some(cursor(&name, next));
                        break;
                    }
                }
                None if all => {}
                None => response.topics.push(unknown(&name)),
            }
        }
    });
    response
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    let mut cursor = Cursor::default();
    cursor.topic_name = topic_name(topic);
    cursor.partition_index = partition;
    cursor
}

fn unknown(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let valid = crate::storage::validate_topic_name(name).is_ok();
    let code = if valid {
        ErrorCode::UnknownTopicOrPartition
    } else {
        ErrorCode::InvalidTopicException
    };
    let mut topic = DescribeTopicPartitionsResponseTopic::default();
    topic.name = Some(topic_name(name));
    topic.error_code = count_error("DescribeTopicPartitions", code);
    topic.topic_authorized_operations = ALL_TOPIC_OPERATIONS;
    topic
}

/// The topic's partitions from `first`, at most `limit`; and the first one left out.
fn describe(
    state: &MetadataState,
    topic: &Topic,
    first: i32,
    limit: i32,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    let end = first.saturating_add(limit).min(count);
    let mut described = DescribeTopicPartitionsResponseTopic::default();
    described.name = Some(topic_name(&topic.name));
    described.topic_id = topic.id;
    described.is_internal = topic.name == crate::group::offsets_topic::OFFSETS_TOPIC;
    described.topic_authorized_operations = ALL_TOPIC_OPERATIONS;
    described.partitions = (first.max(0)..end)
        .map(|index| {
            let partition = &topic.partitions[usize::try_from(index).unwrap_or(0)];
            let mut p = DescribeTopicPartitionsResponsePartition::default();
            p.partition_index = index;
            p.leader_id = BrokerId(partition.leader_id());
            if partition.leader.is_none() {
                p.error_code = ErrorCode::LeaderNotAvailable.code();
            }
            p.leader_epoch = partition.leader_epoch;
            p.replica_nodes = partition.replicas.iter().map(|&id| BrokerId(id)).collect();
            p.isr_nodes = partition.isr.iter().map(|&id| BrokerId(id)).collect();
            p.eligible_leader_replicas = Some(Vec::new());
            p.last_known_elr = Some(Vec::new());
            p.offline_replicas = partition
                .replicas
                .iter()
                .filter(|&&id| {
                    state
                        .broker(id)
                        .is_none_or(|b| b.status == BrokerStatus::Fenced)
                })
                .map(|&id| BrokerId(id))
                .collect();
            p
        })
        .collect();
    (described, (end < count).then_some(end))
}
