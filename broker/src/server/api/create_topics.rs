//! CreateTopics. A single node can only host replication factor 1; manual replica
//! assignments are refused with INVALID_REQUEST until there is a cluster to assign across.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_id};
use crate::server::{storage_error_code, AutoCreate, Broker};

pub fn handle(broker: &Broker, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    let default_partitions = match broker.auto_create {
        AutoCreate::Enabled { partitions } => partitions,
        AutoCreate::Disabled => 1,
    };
    for topic in request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        let name = topic.name.0.to_string();
        let partitions = if topic.num_partitions == -1 {
            default_partitions
        } else {
            topic.num_partitions
        };
        let replication_factor = if topic.replication_factor == -1 {
            1
        } else {
            topic.replication_factor
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let outcome = if replication_factor != 1 {
            Err((
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} is larger than the 1 available broker"
                ),
            ))
        } else if !topic.assignments.is_empty() {
            Err((
                ErrorCode::InvalidRequest,
                "manual replica assignment is not supported".to_string(),
            ))
        } else if request.validate_only {
            if broker.logs.topic(&name).is_some() {
                Err((
                    ErrorCode::TopicAlreadyExists,
                    format!("topic '{name}' already exists"),
                ))
            } else if partitions < 1 {
                Err((
                    ErrorCode::InvalidPartitions,
                    format!("partition count must be at least 1, got {partitions}"),
                ))
            } else {
                Ok(None)
            }
        } else {
            broker
                .logs
                .create_topic(&name, partitions, configs)
                .map(Some)
                .map_err(|e| (storage_error_code(&e), e.to_string()))
        };
        match outcome {
            Ok(info) => {
                if let Some(info) = &info {
                    tracing::info!(topic = %name, partitions, "created topic");
                    if version >= 7 {
                        result.topic_id = topic_id(info.id);
                    }
                }
                if version < 5 {
                    response.topics.push(result);
                    continue;
                }
                result.num_partitions = partitions;
                result.replication_factor = 1;
                result.configs = Some(
                    broker
                        .logs
                        .describe_configs(&name)
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
        response.topics.push(result);
    }
    response
}
