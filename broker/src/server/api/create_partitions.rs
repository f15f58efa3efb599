//! CreatePartitions: grow a topic's partition count (never shrink), through the controller,
//! which places the new partitions' replicas, or puts them where the request's manual
//! assignment says (`kafka-topics --alter --replica-assignment`; one list per new
//! partition, of the topic's replication factor, checked as for CreateTopics:
//! INVALID_REPLICA_ASSIGNMENT).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::controller::MetadataCommand;
use crate::server::Broker;

pub async fn handle(broker: &Broker, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        let name = topic.name.0.to_string();
        let outcome = match broker.topic(&name) {
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
            Some(info) => match broker
                .controller_command(MetadataCommand::CreatePartitions {
                    topic_id: info.id,
                    count: topic.count,
                    assignment: topic.assignments.as_ref().map(|lists| {
                        lists
                            .iter()
                            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                            .collect()
                    }),
                })
                .await
            {
                Ok(index) => {
                    broker.caught_up_to(index).await;
                    Ok(())
                }
                Err(error) => Err(error),
            },
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
