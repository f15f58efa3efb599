//! OffsetFetch (v1-v9): decode, ask the group coordinator, encode.
//!
//! v1-v7 ask for one group, v8+ for a batch (`groups`), each answered on its own. A null
//! topic list (v2+) asks for every committed offset of the group. A group-level error
//! (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, INVALID_GROUP_ID) goes in the response's
//! error code (v2+), and, for v1, which has none, on every partition, as Kafka does. An
//! offset never committed is -1 with no error. `require_stable` (v7+) needs no wait: no
//! transactional commit can be pending until transactions exist.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_name};
use crate::group::coordinator::{FetchedOffset, OffsetFetchInput};
use crate::server::Broker;

type GroupAnswer = Result<Vec<(String, Vec<FetchedOffset>)>, ErrorCode>;

pub fn handle(broker: &Broker, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        for group in request.groups {
            let input = OffsetFetchInput {
                group_id: group.group_id.0.to_string(),
                topics: group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                }),
                member_id: group.member_id.map(|id| id.to_string()),
                member_epoch: if version >= 9 { group.member_epoch } else { -1 },
            };
            let answer = broker.groups.fetch_offsets(&input);
            response.groups.push(group_response(group.group_id, answer));
        }
        return response;
    }
    let input = OffsetFetchInput {
        group_id: request.group_id.0.to_string(),
        topics: request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        }),
        member_id: None,
        member_epoch: -1,
    };
    match broker.groups.fetch_offsets(&input) {
        Ok(topics) => response.topics = single_group_topics(topics),
        Err(code) if version >= 2 => response.error_code = count_error("OffsetFetch", code),
        Err(code) => {
            // v1 has no top-level error code: every requested partition carries it.
            let topics = input.topics.unwrap_or_default();
            response.topics = topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let mut entry = OffsetFetchResponseTopic::default();
                    entry.name = topic_name(&topic);
                    entry.partitions = partitions
                        .into_iter()
                        .map(|partition| {
                            let mut p = partition_v1(&unknown(partition));
                            p.error_code = count_error("OffsetFetch", code);
                            p
                        })
                        .collect();
                    entry
                })
                .collect();
        }
    }
    response
}

fn unknown(partition: i32) -> FetchedOffset {
    FetchedOffset {
        partition,
        offset: -1,
        leader_epoch: -1,
        metadata: String::new(),
    }
}

fn partition_v1(offset: &FetchedOffset) -> OffsetFetchResponsePartition {
    let mut p = OffsetFetchResponsePartition::default();
    p.partition_index = offset.partition;
    p.committed_offset = offset.offset;
    p.committed_leader_epoch = offset.leader_epoch;
    p.metadata = Some(str_bytes(offset.metadata.clone()));
    p
}

fn single_group_topics(topics: Vec<(String, Vec<FetchedOffset>)>) -> Vec<OffsetFetchResponseTopic> {
    topics
        .into_iter()
        .map(|(topic, offsets)| {
            let mut entry = OffsetFetchResponseTopic::default();
            entry.name = topic_name(&topic);
            entry.partitions = offsets.iter().map(partition_v1).collect();
            entry
        })
        .collect()
}

fn group_response(
    group_id: kafka_protocol::messages::GroupId,
    answer: GroupAnswer,
) -> OffsetFetchResponseGroup {
    let mut group = OffsetFetchResponseGroup::default();
    group.group_id = group_id;
    match answer {
        Ok(topics) => {
            group.topics = topics
                .into_iter()
                .map(|(topic, offsets)| {
                    let mut entry = OffsetFetchResponseTopics::default();
                    entry.name = topic_name(&topic);
                    entry.partitions = offsets
                        .iter()
                        .map(|offset| {
                            let mut p = OffsetFetchResponsePartitions::default();
                            p.partition_index = offset.partition;
                            p.committed_offset = offset.offset;
                            p.committed_leader_epoch = offset.leader_epoch;
                            p.metadata = Some(str_bytes(offset.metadata.clone()));
                            p
                        })
                        .collect();
                    entry
                })
                .collect();
        }
        Err(code) => group.error_code = count_error("OffsetFetch", code),
    }
    group
}
