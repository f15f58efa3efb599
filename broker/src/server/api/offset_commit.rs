//! OffsetCommit (v2-v9): decode, ask the group coordinator, encode.
//!
//! As Kafka's `KafkaApis.handleOffsetCommitRequest`, a partition the metadata does not have
//! (of a known topic or not) is answered UNKNOWN_TOPIC_OR_PARTITION and not passed on; a
//! group-level error (NOT_COORDINATOR, ILLEGAL_GENERATION, ...) is answered for every
//! partition. The rules of the commit itself are the coordinator's
//! (`group::coordinator`, `offsets.rs`).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, topic_name, unknown_partitions};
use crate::group::coordinator::{CommitPartition, OffsetCommitInput};
use crate::server::Broker;

/// OffsetCommit's retention time meaning "the broker's".
const DEFAULT_RETENTION_TIME: i64 = -1;

pub async fn handle(
    broker: &Broker,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for topic in request.topics {
        let partitions: Vec<CommitPartition> = topic
            .partitions
            .into_iter()
            .map(|p| CommitPartition {
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.map(|m| m.to_string()),
            })
            .collect();
        let indexes: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
        let missing = unknown_partitions(broker, &topic.name.0, &indexes);
        let (absent, present): (Vec<CommitPartition>, Vec<CommitPartition>) = partitions
            .into_iter()
            .partition(|p| missing.contains(&p.partition));
        if !present.is_empty() {
            known.push((topic.name.0.to_string(), present));
        }
        if !absent.is_empty() {
            let codes = absent
                .iter()
                .map(|p| (p.partition, ErrorCode::UnknownTopicOrPartition))
                .collect();
            unknown.push((topic.name.0.to_string(), codes));
        }
    }
    let input = OffsetCommitInput {
        group_id: request.group_id.0.to_string(),
        generation: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        retention_ms: (version <= 4 && request.retention_time_ms != DEFAULT_RETENTION_TIME)
            .then_some(request.retention_time_ms),
        topics: known.clone(),
        api_version: version,
    };
    let results = if known.is_empty() {
        Vec::new()
    } else {
        match broker.groups.commit_offsets(input).await {
            Ok(results) => results,
            Err(code) => known
                .iter()
                .map(|(topic, partitions)| {
                    let codes = partitions.iter().map(|p| (p.partition, code)).collect();
                    (topic.clone(), codes)
                })
                .collect(),
        }
    };
    let mut response = OffsetCommitResponse::default();
    for (topic, codes) in results.into_iter().chain(unknown) {
        let mut entry = OffsetCommitResponseTopic::default();
        entry.name = topic_name(&topic);
        entry.partitions = codes
            .into_iter()
            .map(|(partition, code)| {
                let mut p = OffsetCommitResponsePartition::default();
                p.partition_index = partition;
                p.error_code = count_error("OffsetCommit", code);
                p
            })
            .collect();
        response.topics.push(entry);
    }
    response
}
