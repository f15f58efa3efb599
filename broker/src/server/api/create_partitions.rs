//! CreatePartitions: grow a topic's partition count (never shrink).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::server::{storage_error_code, Broker};

pub fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        let name = topic.name.0.to_string();
        let outcome = match broker.logs.topic(&name) {
            None => Err((
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )),
            Some(info) if topic.count <= info.partitions => Err((
                ErrorCode::InvalidPartitions,
                format!(
                    "topic '{name}' has {} partitions; the new count {} must be larger",
                    info.partitions, topic.count
                ),
            )),
            Some(_) if request.validate_only => Ok(()),
            Some(_) => broker
                .logs
                .create_partitions(&name, topic.count)
                .map_err(|e| (storage_error_code(&e), e.to_string())),
        };
        if let Err((code, message)) = outcome {
            result.error_code = count_error("CreatePartitions", code);
            result.error_message = Some(str_bytes(message));
        } else if !request.validate_only {
            tracing::info!(topic = %name, partitions = topic.count, "added partitions");
        }
        response.results.push(result);
    }
    response
}
