//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455), through the
//! controller. A reassignment adds the target's new replicas, which fetch from the leader's
//! log start like any follower; once they are all in the ISR the controller drops the
//! replicas not in the target (and moves leadership if the leader was one of them), and the
//! dropped brokers delete their copy. `replicas: null` cancels a running reassignment.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_name};
use crate::controller::MetadataCommand;
use crate::server::Broker;

pub async fn alter(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    if version >= 1 {
        response.allow_replication_factor_change = request.allow_replication_factor_change;
    }
    let mut last_index = None;
    for topic in request.topics {
        let mut topic_response = ReassignableTopicResponse::default();
        topic_response.name = topic.name.clone();
        let topic_id = broker.topic(&topic.name.0).map(|t| t.id);
        for partition in topic.partitions {
            let mut result = ReassignablePartitionResponse::default();
            result.partition_index = partition.partition_index;
            let outcome = match topic_id {
                None => Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic '{}' does not exist", topic.name.0),
                )),
                Some(topic_id) => {
                    let target = partition
                        .replicas
                        .map(|replicas| replicas.into_iter().map(|id| id.0).collect::<Vec<_>>());
                    let current_len = broker.replicas.metadata().read(|state| {
                        state
                            .partition(&topic_id, partition.partition_index)
                            .map(|p| p.original_replicas().len())
                    });
                    match (&target, current_len) {
                        (Some(target), Some(len))
                            if version >= 1
                                && !request.allow_replication_factor_change
                                && target.len() != len =>
                        {
                            Err((
                                ErrorCode::InvalidReplicationFactor,
                                format!(
                                    "the reassignment changes the replication factor from {len} to {}, which the request does not allow",
                                    target.len()
                                ),
                            ))
                        }
                        _ => {
                            let command = MetadataCommand::ReassignPartition {
                                topic_id,
                                partition: partition.partition_index,
                                target: target.clone(),
                            };
                            broker.controller_command(command).await.map(|index| {
                                last_index = Some(index);
                                tracing::info!(topic = %topic.name.0, partition = partition.partition_index, ?target, "partition reassignment requested");
                            })
                        }
                    }
                }
            };
            if let Err((code, message)) = outcome {
                result.error_code = count_error("AlterPartitionReassignments", code);
                result.error_message = Some(str_bytes(message));
            }
            topic_response.partitions.push(result);
        }
        response.responses.push(topic_response);
    }
    if let Some(index) = last_index {
        broker.caught_up_to(index).await;
    }
    response
}

pub fn list(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut response = ListPartitionReassignmentsResponse::default();
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    response.topics = broker.replicas.metadata().read(|state| {
        let ids = |list: &[i32]| list.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
        state
            .topics()
            .filter_map(|topic| {
                let partitions: Vec<OngoingPartitionReassignment> = topic
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(index, p)| {
                        p.is_reassigning()
                            && wanted.as_ref().is_none_or(|w| {
                                w.get(&topic.name)
                                    .is_some_and(|list| list.contains(&(*index as i32)))
                            })
                    })
                    .map(|(index, p)| {
                        let mut ongoing = OngoingPartitionReassignment::default();
                        ongoing.partition_index = index as i32;
                        ongoing.replicas = ids(&p.replicas);
                        ongoing.adding_replicas = ids(&p.adding_replicas);
                        ongoing.removing_replicas = ids(&p.removing_replicas);
                        ongoing
                    })
                    .collect();
                (!partitions.is_empty()).then(|| {
                    let mut ongoing = OngoingTopicReassignment::default();
                    ongoing.name = topic_name(&topic.name);
                    ongoing.partitions = partitions;
                    ongoing
                })
            })
            .collect()
    });
    response
}
