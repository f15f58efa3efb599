//! CreateTopics, through the controller: the topics of one request are proposed in one
//! metadata log entry; the controller assigns replicas across the eligible brokers
//! (spreading leaders) and the answer comes once the topics are in this broker's metadata.
//!
//! As Kafka's controller does: a name given twice in one request is refused for both
//! (INVALID_REQUEST, "Duplicate topic name.", answered once). A manual replica assignment
//! (`kafka-topics --replica-assignment`) needs the partition count and replication factor
//! left at -1 (INVALID_REQUEST otherwise) and partitions numbered 0.. without gaps or
//! repeats (INVALID_REPLICA_ASSIGNMENT); the controller checks the brokers.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::server::{Broker, TopicRequest, TopicView};

pub async fn handle(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    let duplicates = duplicate_names(&request.topics);
    let mut asked = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        if duplicates.contains(&name) {
            continue;
        }
        match topic_request(broker, topic, name) {
            Ok(request) => asked.push((topic, request)),
            Err(refusal) => response
                .topics
                .push(result(broker, topic, Err(refusal), version)),
        }
    }
    let requests = asked.iter().map(|(_, request)| request.clone()).collect();
    let outcomes = broker.create_topics(requests, request.validate_only).await;
    for ((topic, asked), outcome) in asked.into_iter().zip(outcomes) {
        if outcome.is_ok() && !request.validate_only {
            tracing::info!(topic = %asked.name, partitions = asked.partitions, "created topic");
        }
        response
            .topics
            .push(result(broker, topic, outcome, version));
    }
    for name in duplicates {
        let mut duplicate = CreatableTopicResult::default();
        duplicate.name = kafka_protocol::messages::TopicName(str_bytes(name));
        duplicate.error_code = count_error("CreateTopics", ErrorCode::InvalidRequest);
        duplicate.error_message = Some(str_bytes("Duplicate topic name.".to_string()));
        response.topics.push(duplicate);
    }
    response
}

/// Names given more than once in the request, in first-seen order.
fn duplicate_names(topics: &[CreatableTopic]) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut duplicates = Vec::new();
    for topic in topics {
        let name = topic.name.0.to_string();
        if !seen.insert(name.clone()) && !duplicates.contains(&name) {
            duplicates.push(name);
        }
    }
    duplicates
}

fn topic_request(
    broker: &Broker,
    topic: &CreatableTopic,
    name: String,
) -> Result<TopicRequest, (ErrorCode, String)> {
    let partitions = if topic.num_partitions == -1 {
        broker.topic_defaults.partitions
    } else {
        topic.num_partitions
    };
    Ok(TopicRequest {
        name,
        partitions,
        replication_factor: topic.replication_factor,
        configs: requested_configs(topic),
        assignment: manual_assignment(topic)?,
    })
}

/// The request's manual assignment as replicas per partition (`None` without one), with
/// Kafka's checks of its shape.
fn manual_assignment(topic: &CreatableTopic) -> Result<Option<Vec<Vec<i32>>>, (ErrorCode, String)> {
    if topic.assignments.is_empty() {
        return Ok(None);
    }
    let invalid_request = |m: &str| Err((ErrorCode::InvalidRequest, m.to_string()));
    if topic.replication_factor != -1 {
        return invalid_request(
            "A manual partition assignment was specified, but replication factor was not set to -1.",
        );
    }
    if topic.num_partitions != -1 {
        return invalid_request(
            "A manual partition assignment was specified, but numPartitions was not set to -1.",
        );
    }
    let mut by_partition: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for assignment in &topic.assignments {
        let replicas = assignment.broker_ids.iter().map(|b| b.0).collect();
        if by_partition
            .insert(assignment.partition_index, replicas)
            .is_some()
        {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "Found multiple manual partition assignments for partition {}",
                    assignment.partition_index
                ),
            ));
        }
    }
    if by_partition
        .keys()
        .copied()
        .ne(0..by_partition.len() as i32)
    {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence".to_string(),
        ));
    }
    Ok(Some(by_partition.into_values().collect()))
}

/// The config overrides a request gives a topic (entries without a value are left out).
fn requested_configs(topic: &CreatableTopic) -> BTreeMap<String, String> {
    topic
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect()
}

/// One topic's answer: on success (v5+) its partition count, replication factor and
/// configs, (v7+) its id.
fn result(
    broker: &Broker,
    topic: &CreatableTopic,
    outcome: Result<(TopicView, i16), (ErrorCode, String)>,
    version: i16,
) -> CreatableTopicResult {
    let mut result = CreatableTopicResult::default();
    result.name = topic.name.clone();
    match outcome {
        Ok((view, replication_factor)) => {
            if version >= 7 {
                result.topic_id = view.id;
            }
            if version < 5 {
                return result;
            }
            result.num_partitions = view.partitions;
            result.replication_factor = replication_factor;
            // From the metadata's overrides: this broker may not have recorded the topic
            // locally yet (its metadata loop does that right after).
            let overrides = broker
                .replicas
                .metadata()
                .read(|state| state.topic_by_name(&view.name).map(|t| t.configs.clone()))
                .unwrap_or_else(|| requested_configs(topic));
            result.configs = Some(
                broker
                    .logs
                    .describe_overrides(&overrides)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|entry| {
                        let mut c = CreatableTopicConfigs::default();
                        c.name = str_bytes(entry.name);
                        c.value = entry.value.map(str_bytes);
                        c.config_source = if entry.is_default { 5 } else { 1 };
                        c
                    })
                    .collect(),
            );
        }
        Err((code, message)) => {
            result.error_code = count_error("CreateTopics", code);
            result.error_message = Some(str_bytes(message));
        }
    }
    result
}
