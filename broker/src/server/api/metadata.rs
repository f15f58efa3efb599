//! Metadata: brokers, topics and partition leaders, from this broker's copy of the metadata
//! log. Requested topics that do not exist are auto-created (through the controller) when
//! both the request and the broker allow it. A topic asked for by id alone (v10+, as
//! KIP-848 clients resolve the topic ids of their assignments) is answered by id, or
//! UNKNOWN_TOPIC_ID. The controller id is this broker ([`Broker::client_controller_id`]):
//! it forwards admin requests to the active controller (KIP-590).

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_name};
use crate::controller::{MetadataState, Topic};
use crate::server::Broker;

pub async fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    // v0 has no null: an empty list there means "all topics".
    let all_topics = match &request.topics {
        None => true,
        Some(list) => version == 0 && list.is_empty(),
    };
    let mut errors: Vec<(kafka_protocol::messages::TopicName, ErrorCode)> = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    let mut ids = Vec::new();
    if !all_topics {
        for requested in request.topics.clone().unwrap_or_default() {
            let Some(name) = requested.name else {
                ids.push(requested.topic_id);
                continue;
            };
            let lookup = if request.allow_auto_topic_creation {
                broker.topic_or_auto_create(&name.0).await.map(|_| ())
            } else {
                broker
                    .topic(&name.0)
                    .map(|_| ())
                    .ok_or(ErrorCode::UnknownTopicOrPartition)
            };
            match lookup {
                Ok(()) => wanted.push(name.0.to_string()),
                Err(code) => errors.push((name, code)),
            }
        }
    }

    let controller_id = broker.client_controller_id();
    let mut response = broker.replicas.metadata().read(|state| {
        let mut response = MetadataResponse::default();
        response.brokers = brokers(broker, state);
        if version >= 2 {
            response.cluster_id = Some(str_bytes(broker.identity.cluster_id.clone()));
        }
        if version >= 1 {
            response.controller_id = BrokerId(controller_id);
        }
        if all_topics {
            response.topics = state.topics().map(|t| describe(t, version)).collect();
        } else {
            for name in &wanted {
                match state.topic_by_name(name) {
                    Some(topic) => response.topics.push(describe(topic, version)),
                    None => errors.push((topic_name(name), ErrorCode::LeaderNotAvailable)),
                }
            }
        }
        ids.retain(|id| match state.topic(id) {
            Some(topic) => {
                response.topics.push(describe(topic, version));
                false
            }
            None => true,
        });
        response
    });
    for id in ids {
        let mut topic = MetadataResponseTopic::default();
        topic.topic_id = id;
        topic.error_code = count_error("Metadata", ErrorCode::UnknownTopicId);
        response.topics.push(topic);
    }
    for (name, code) in errors {
        let mut topic = MetadataResponseTopic::default();
        topic.name = Some(name);
        topic.error_code = count_error("Metadata", code);
        response.topics.push(topic);
    }
    response
}

/// The listed brokers, and this broker always (it answered, so it is up), even before its
/// registration is applied here.
fn brokers(broker: &Broker, state: &MetadataState) -> Vec<MetadataResponseBroker> {
    let me = broker.identity.node_id;
    let mut list: Vec<MetadataResponseBroker> = broker
        .listed_brokers(state)
        .map(|(b, endpoint)| {
            let mut entry = MetadataResponseBroker::default();
            entry.node_id = BrokerId(b.id);
            entry.host = str_bytes(endpoint.host.clone());
            entry.port = i32::from(endpoint.port);
            entry.rack = b.rack.clone().map(str_bytes);
            entry
        })
        .collect();
    if !list.iter().any(|b| b.node_id.0 == me) {
        let mut entry = MetadataResponseBroker::default();
        entry.node_id = BrokerId(me);
        entry.host = str_bytes(broker.identity.host.clone());
        entry.port = broker.identity.port;
        list.push(entry);
    }
    list
}

fn describe(topic: &Topic, version: i16) -> MetadataResponseTopic {
    let mut response = MetadataResponseTopic::default();
    response.name = Some(topic_name(&topic.name));
    // Kafka marks its internal topics (v1+ has the flag).
    response.is_internal = topic.name == crate::group::offsets_topic::OFFSETS_TOPIC;
    if version >= 10 {
        response.topic_id = topic.id;
    }
    response.partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, partition)| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = index as i32;
            p.leader_id = BrokerId(partition.leader_id());
            if partition.leader.is_none() {
                p.error_code = ErrorCode::LeaderNotAvailable.code();
            }
            if version >= 7 {
                p.leader_epoch = partition.leader_epoch;
            }
            p.replica_nodes = partition.replicas.iter().map(|&id| BrokerId(id)).collect();
            p.isr_nodes = partition.isr.iter().map(|&id| BrokerId(id)).collect();
            p
        })
        .collect();
    response
}
