//! DeleteGroups (v0-v2) and OffsetDelete (v0): decode, ask the group coordinator, encode.
//! The rules are the coordinator's (`group::coordinator`, `admin.rs`). OffsetDelete's
//! group-level error goes in the response's error code with no topics, as Kafka answers;
//! a partition the metadata does not have is UNKNOWN_TOPIC_OR_PARTITION (Kafka's
//! `handleOffsetDeleteRequest`), not passed to the coordinator.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, GroupId, OffsetDeleteRequest, OffsetDeleteResponse,
};

use super::{count_error, str_bytes, topic_name, unknown_partitions};
use crate::server::Broker;

pub async fn handle_delete_groups(
    broker: &Broker,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let ids: Vec<String> = request
        .groups_names
        .iter()
        .map(|id| id.0.to_string())
        .collect();
    let mut response = DeleteGroupsResponse::default();
    for (group_id, error) in broker.groups.delete_groups(&ids).await {
        let mut result = DeletableGroupResult::default();
        result.group_id = GroupId(str_bytes(group_id));
        result.error_code = count_error("DeleteGroups", error);
        response.results.push(result);
    }
    response
}

pub async fn handle_offset_delete(
    broker: &Broker,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
    let mut unknown: Vec<(String, Vec<i32>)> = Vec::new();
    for t in &request.topics {
        let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let missing = unknown_partitions(broker, &t.name.0, &partitions);
        let present: Vec<i32> = partitions
            .into_iter()
            .filter(|p| !missing.contains(p))
            .collect();
        topics.push((t.name.0.to_string(), present));
        if !missing.is_empty() {
            unknown.push((t.name.0.to_string(), missing));
        }
    }
    let mut response = OffsetDeleteResponse::default();
    match broker
        .groups
        .delete_offsets(&request.group_id.0, &topics)
        .await
    {
        Ok(results) => {
            let unknown = unknown.into_iter().map(|(topic, partitions)| {
                let codes = partitions
                    .into_iter()
                    .map(|p| {
                        (
                            p,
                            sluice_protocol::error::ErrorCode::UnknownTopicOrPartition,
                        )
                    })
                    .collect();
                (topic, codes)
            });
            let results = results.into_iter().filter(|(_, codes)| !codes.is_empty());
            for (topic, codes) in results.chain(unknown) {
                let mut entry = OffsetDeleteResponseTopic::default();
                entry.name = topic_name(&topic);
                entry.partitions = codes
                    .into_iter()
                    .map(|(partition, error)| {
                        let mut p = OffsetDeleteResponsePartition::default();
                        p.partition_index = partition;
                        p.error_code = count_error("OffsetDelete", error);
                        p
                    })
                    .collect();
                response.topics.push(entry);
            }
        }
        Err(error) => response.error_code = count_error("OffsetDelete", error),
    }
    response
}
