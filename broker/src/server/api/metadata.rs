//! Metadata: brokers, topics and partition leaders. On a single node this broker leads
//! every partition. Requested topics that do not exist are auto-created when both the
//! request and the broker allow it.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_id, topic_name};
use crate::server::Broker;
use crate::storage::TopicInfo;

pub fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let identity = &broker.identity;
    let mut response = MetadataResponse::default();
    let mut me = MetadataResponseBroker::default();
    me.node_id = BrokerId(identity.node_id);
    me.host = str_bytes(identity.host.clone());
    me.port = identity.port;
    response.brokers = vec![me];
    if version >= 2 {
        response.cluster_id = Some(str_bytes(identity.cluster_id.clone()));
    }
    if version >= 1 {
        response.controller_id = BrokerId(identity.node_id);
    }

    // v0 has no null: an empty list there means "all topics".
    let all_topics = match &request.topics {
        None => true,
        Some(list) => version == 0 && list.is_empty(),
    };
    if all_topics {
        response.topics = broker
            .logs
            .topics()
            .iter()
            .map(|t| describe(broker, t, version))
            .collect();
        return response;
    }
    for requested in request.topics.unwrap_or_default() {
        let Some(name) = requested.name else {
            let mut topic = MetadataResponseTopic::default();
            topic.topic_id = requested.topic_id;
            topic.error_code = count_error("Metadata", ErrorCode::UnknownTopicId);
            response.topics.push(topic);
            continue;
        };
        let lookup = if request.allow_auto_topic_creation {
            broker.topic_or_auto_create(&name.0)
        } else {
            broker
                .logs
                .topic(&name.0)
                .ok_or(ErrorCode::UnknownTopicOrPartition)
        };
        match lookup {
            Ok(info) => response.topics.push(describe(broker, &info, version)),
            Err(code) => {
                let mut topic = MetadataResponseTopic::default();
                topic.name = Some(name);
                topic.error_code = count_error("Metadata", code);
                response.topics.push(topic);
            }
        }
    }
    response
}

fn describe(broker: &Broker, info: &TopicInfo, version: i16) -> MetadataResponseTopic {
    let node = BrokerId(broker.identity.node_id);
    let mut topic = MetadataResponseTopic::default();
    topic.name = Some(topic_name(&info.name));
    if version >= 10 {
        topic.topic_id = topic_id(info.id);
    }
    topic.partitions = (0..info.partitions)
        .map(|index| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = index;
            p.leader_id = node;
            if version >= 7 {
                p.leader_epoch = 0;
            }
            p.replica_nodes = vec![node];
            p.isr_nodes = vec![node];
            p
        })
        .collect();
    topic
}
