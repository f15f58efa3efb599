//! FindCoordinator: which broker coordinates a group.
//!
//! As Kafka's `KafkaApis.getCoordinator`: a group's coordinator is the leader of its
//! `__consumer_offsets` partition ([`partition_for`]). If the topic does not exist yet it is
//! created (`offsets.topic.num.partitions`, replication factor clamped to the eligible
//! brokers: [`OffsetsTopicConfig`]) and this request gets COORDINATOR_NOT_AVAILABLE, which
//! clients retry; so does a partition without a leader, or a leader with no client
//! endpoint. v0-v3 carry one key, v4+ a batch (`coordinator_keys`), each answered on its
//! own. Every answer carries the error's message, "NONE" on success, as Kafka's does.
//!
//! Key types: 0 (group) is answered; anything else but 1 (2, share groups, included)
//! gets INVALID_REQUEST with Kafka's message. 1 (transaction) differs from Kafka on
//! purpose: Kafka creates `__transaction_state` and answers its leader; Sluice has no
//! transaction coordinator yet, so it answers INVALID_REQUEST saying so, and a
//! transactional producer fails at once rather than retrying COORDINATOR_NOT_AVAILABLE
//! forever.
//!
//! Checked against Kafka 4.1.1 (a raw FindCoordinator v3): the first answer
//! COORDINATOR_NOT_AVAILABLE with "The coordinator is not available.", then NONE with
//! "NONE"; an empty group id is answered like any other.

use std::collections::BTreeMap;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::group::offsets_topic::{partition_for, OFFSETS_TOPIC};
use crate::metrics as m;
use crate::server::{Broker, TopicRequest};

/// FindCoordinator's key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a client reaches a coordinator, or why it cannot yet.
type Found = Result<(i32, String, i32), (ErrorCode, String)>;

pub async fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let key_type = if version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    let mut response = FindCoordinatorResponse::default();
    if version < 4 {
        let found = find(broker, key_type, &request.key).await;
        let (node_id, host, port, code, message) = answer(found);
        response.node_id = BrokerId(node_id);
        response.host = str_bytes(host);
        response.port = port;
        response.error_code = count_error("FindCoordinator", code);
        if version >= 1 {
            response.error_message = Some(str_bytes(message));
        }
        return response;
    }
    for key in request.coordinator_keys {
        let found = find(broker, key_type, &key).await;
        let (node_id, host, port, code, message) = answer(found);
        let mut coordinator = Coordinator::default();
        coordinator.key = key;
        coordinator.node_id = BrokerId(node_id);
        coordinator.host = str_bytes(host);
        coordinator.port = port;
        coordinator.error_code = count_error("FindCoordinator", code);
        coordinator.error_message = Some(str_bytes(message));
        response.coordinators.push(coordinator);
    }
    response
}

/// A found coordinator or an error as the response's fields: Kafka's "no node" is id -1,
/// empty host, port -1.
fn answer(found: Found) -> (i32, String, i32, ErrorCode, String) {
    match found {
        Ok((node_id, host, port)) => (node_id, host, port, ErrorCode::None, "NONE".to_string()),
        Err((code, message)) => (-1, String::new(), -1, code, message),
    }
}

async fn find(broker: &Broker, key_type: i8, key: &str) -> Found {
    match key_type {
        KEY_TYPE_GROUP => find_group_coordinator(broker, key).await,
        KEY_TYPE_TRANSACTION => Err((
            ErrorCode::InvalidRequest,
            "this broker does not support transactions yet".to_string(),
        )),
        // Kafka answers with INVALID_REQUEST's generic message.
        _ => Err((
            ErrorCode::InvalidRequest,
            "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.".to_string(),
        )),
    }
}

async fn find_group_coordinator(broker: &Broker, group_id: &str) -> Found {
    let not_available = || {
        (
            ErrorCode::CoordinatorNotAvailable,
            "The coordinator is not available.".to_string(),
        )
    };
    let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
        create_offsets_topic(broker).await;
        return Err(not_available());
    };
    let partition = partition_for(group_id, topic.partitions);
    broker
        .replicas
        .metadata()
        .read(|state| {
            let leader = state.partition(&topic.id, partition)?.leader?;
            let endpoint = state.broker(leader)?.client_endpoint()?;
            Some((leader, endpoint.host.clone(), i32::from(endpoint.port)))
        })
        .ok_or_else(not_available)
}

/// Ask the controller for `__consumer_offsets`. Failures are logged: the client retries
/// FindCoordinator, which tries again.
async fn create_offsets_topic(broker: &Broker) {
    let config = broker.offsets_topic;
    let eligible = broker
        .replicas
        .metadata()
        .read(|state| state.brokers().filter(|b| b.is_eligible()).count());
    let replication_factor = config.replication_factor_for(eligible);
    let request = TopicRequest {
        name: OFFSETS_TOPIC.to_string(),
        partitions: config.partitions,
        replication_factor,
        // Compacted, as Kafka's: the latest record of each group and committed offset is
        // kept, whatever its age (no time retention), the rest cleaned away.
        configs: BTreeMap::from([
            (
                "segment.bytes".to_string(),
                config.segment_bytes.to_string(),
            ),
            ("cleanup.policy".to_string(), "compact".to_string()),
        ]),
        assignment: None,
    };
    match broker.create_topics(vec![request], false).await.pop() {
        Some(Ok(_)) => {
            metrics::counter!(m::TOPICS_AUTO_CREATED_TOTAL).increment(1);
            tracing::info!(
                topic = OFFSETS_TOPIC,
                partitions = config.partitions,
                replication_factor,
                configured_replication_factor = config.replication_factor,
                "created the group coordinator's internal topic"
            );
        }
        Some(Err((ErrorCode::TopicAlreadyExists, _))) | None => {}
        Some(Err((code, message))) => {
            tracing::warn!(topic = OFFSETS_TOPIC, ?code, %message, "creating the group coordinator's internal topic failed");
        }
    }
}
