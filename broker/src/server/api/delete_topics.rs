//! DeleteTopics, by name (v0-v5 `topic_names`, v6 `topics`). Deletion by topic id only is
//! answered with UNKNOWN_TOPIC_ID unless the id matches a topic.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_id, topic_name};
use crate::server::{storage_error_code, Broker};

pub fn handle(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
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
        let name = name.or_else(|| {
            broker
                .logs
                .topics()
                .into_iter()
                .find(|t| topic_id(t.id) == id)
                .map(|t| t.name)
        });
        let Some(name) = name else {
            result.topic_id = id;
            result.error_code = count_error("DeleteTopics", ErrorCode::UnknownTopicId);
            response.responses.push(result);
            continue;
        };
        result.name = Some(topic_name(&name));
        if version >= 6 {
            if let Some(info) = broker.logs.topic(&name) {
                result.topic_id = topic_id(info.id);
            }
        }
        let deleted_id = broker.logs.topic(&name).map(|t| t.id);
        match broker.logs.delete_topic(&name) {
            Ok(()) => {
                if let Some(id) = deleted_id {
                    broker.producers.forget_topic(id);
                }
                tracing::info!(topic = %name, "deleted topic")
            }
            Err(e) => {
                result.error_code = count_error("DeleteTopics", storage_error_code(&e));
                if version >= 5 {
                    result.error_message = Some(str_bytes(e.to_string()));
                }
            }
        }
        response.responses.push(result);
    }
    response
}
