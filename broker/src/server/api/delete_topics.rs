//! DeleteTopics, by name (v0-v5 `topic_names`, v6 `topics`) or by id, through the
//! controller. Every broker deletes its local logs when it applies the deletion.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_name};
use crate::controller::MetadataCommand;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let mut response = DeleteTopicsResponse::default();
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = Vec::new();
    if version >= 6 {
        for t in request.topics {
            targets.push((t.name.map(|n| n.0.to_string()), t.topic_id));
        }
    } else {
        for n in request.topic_names {
            targets.push((Some(n.0.to_string()), uuid::Uuid::nil()));
        }
    }
    for (name, id) in targets {
        let mut result = DeletableTopicResult::default();
        let found = broker.replicas.metadata().read(|state| match &name {
            Some(name) => state.topic_by_name(name).map(|t| (t.name.clone(), t.id)),
            None => state.topic(&id).map(|t| (t.name.clone(), t.id)),
        });
        let Some((name, id)) = found else {
            match name {
                Some(name) => {
                    result.name = Some(topic_name(&name));
                    result.error_code =
                        count_error("DeleteTopics", ErrorCode::UnknownTopicOrPartition);
                }
                None => {
                    result.topic_id = id;
                    result.error_code = count_error("DeleteTopics", ErrorCode::UnknownTopicId);
                }
            }
            response.responses.push(result);
            continue;
        };
        result.name = Some(topic_name(&name));
        if version >= 6 {
            result.topic_id = id;
        }
        match broker
            .controller_command(MetadataCommand::DeleteTopic { id })
            .await
        {
            Ok(index) => {
                broker.caught_up_to(index).await;
                broker.replicas.producers().forget_topic(*id.as_bytes());
                tracing::info!(topic = %name, "deleted topic");
            }
            Err((code, message)) => {
                result.error_code = count_error("DeleteTopics", code);
                if version >= 5 {
                    result.error_message = Some(str_bytes(message));
                }
            }
        }
        response.responses.push(result);
    }
    response
}
