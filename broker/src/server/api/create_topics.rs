//! CreateTopics, through the controller: it assigns replicas across the eligible brokers
//! (spreading leaders) and the answer comes once the topic is in this broker's metadata.
//! Manual replica assignments are refused with INVALID_REQUEST (reassignment is later work).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    for topic in request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        let name = topic.name.0.to_string();
        let partitions = if topic.num_partitions == -1 {
            broker.topic_defaults.partitions
        } else {
            topic.num_partitions
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
        let outcome = if !topic.assignments.is_empty() {
            Err((
                ErrorCode::InvalidRequest,
                "manual replica assignment is not supported".to_string(),
            ))
        } else {
            broker
                .create_topic(
                    &name,
                    partitions,
                    topic.replication_factor,
                    configs,
                    request.validate_only,
                )
                .await
        };
        match outcome {
            Ok((view, replication_factor)) => {
                if !request.validate_only {
                    tracing::info!(topic = %name, partitions, replication_factor, "created topic");
                    if version >= 7 {
                        result.topic_id = view.id;
                    }
                }
                if version < 5 {
                    response.topics.push(result);
                    continue;
                }
                result.num_partitions = partitions;
                result.replication_factor = replication_factor;
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
