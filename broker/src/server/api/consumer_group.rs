//! ConsumerGroupHeartbeat (v0-v1) and ConsumerGroupDescribe (v0-v1), the KIP-848 group
//! protocol (`group.protocol=consumer`): decode, ask the group coordinator, encode. The
//! rules are the coordinator's (`group::coordinator`, `consumer_groups.rs`) and the group
//! state machine's (`group::consumer`). A refused heartbeat carries Kafka's error message.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes, topic_name};
use crate::group::consumer::{self, HeartbeatRequest, Partitions};
use crate::server::Broker;

pub async fn handle_heartbeat(
    broker: &Broker,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> ConsumerGroupHeartbeatResponse {
    let heartbeat = HeartbeatRequest {
        api_version: version,
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|id| id.to_string()),
        rack_id: request.rack_id.map(|id| id.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        // An empty regex is none (librdkafka sends "", and Kafka stores "" for none).
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .filter(|r| !r.is_empty())
            .map(|r| r.to_string()),
        server_assignor: request.server_assignor.map(|a| a.to_string()),
        owned_partitions: request.topic_partitions.map(|topics| {
            let mut owned: Partitions = BTreeMap::new();
            for topic in topics {
                let partitions: BTreeSet<i32> = topic.partitions.into_iter().collect();
                if !partitions.is_empty() {
                    owned.entry(topic.topic_id).or_default().extend(partitions);
                }
            }
            owned
        }),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
    };
    let mut response = ConsumerGroupHeartbeatResponse::default();
    match broker.groups.consumer_group_heartbeat(heartbeat).await {
        Ok(answer) => {
            response.member_id = Some(str_bytes(answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.heartbeat_interval_ms = answer.heartbeat_interval_ms;
            response.assignment = answer.assignment.map(|partitions| {
                let mut assignment = Assignment::default();
                assignment.topic_partitions = partitions
                    .into_iter()
                    .map(|(topic_id, partitions)| {
                        let mut topic = TopicPartitions::default();
                        topic.topic_id = topic_id;
                        topic.partitions = partitions.into_iter().collect();
                        topic
                    })
                    .collect();
                assignment
            });
        }
        Err((code, message)) => {
            let code = ErrorCode::from_code(code).unwrap_or(ErrorCode::UnknownServerError);
            response.error_code = count_error("ConsumerGroupHeartbeat", code);
            response.error_message = message.map(str_bytes);
        }
    }
    response
}

pub fn handle_describe(
    broker: &Broker,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in request.group_ids {
        let mut group = DescribedGroup::default();
        match broker.groups.describe_consumer_group(&group_id.0) {
            Ok(Some(description)) => {
                group.group_state = str_bytes(description.group_state);
                group.group_epoch = description.group_epoch;
                group.assignment_epoch = description.assignment_epoch;
                group.assignor_name = str_bytes(description.assignor_name);
                group.members = description.members.into_iter().map(member).collect();
            }
            Ok(None) => {
                group.error_code = count_error("ConsumerGroupDescribe", ErrorCode::GroupIdNotFound);
                group.error_message = Some(str_bytes(format!("Group {} not found.", &*group_id.0)));
            }
            Err(error) => group.error_code = count_error("ConsumerGroupDescribe", error),
        }
        group.group_id = group_id;
        response.groups.push(group);
    }
    response
}

fn member(described: consumer::DescribedMember) -> Member {
    let mut member = Member::default();
    member.member_id = str_bytes(described.member_id);
    member.instance_id = described.instance_id.map(str_bytes);
    member.rack_id = described.rack_id.map(str_bytes);
    member.member_epoch = described.member_epoch;
    member.client_id = str_bytes(described.client_id);
    member.client_host = str_bytes(described.client_host);
    member.subscribed_topic_names = described
        .subscribed_topic_names
        .iter()
        .map(|name| topic_name(name))
        .collect();
    member.subscribed_topic_regex = described.subscribed_topic_regex.map(str_bytes);
    member.assignment = assignment(described.assignment);
    member.target_assignment = assignment(described.target_assignment);
    member.member_type = described.member_type;
    member
}

fn assignment(topics: Vec<consumer::DescribedTopicPartitions>) -> DescribedAssignment {
    let mut assignment = DescribedAssignment::default();
    assignment.topic_partitions = topics
        .into_iter()
        .map(|t| {
            let mut topic = DescribedTopicPartitions::default();
            topic.topic_id = t.topic_id;
            topic.topic_name = topic_name(&t.topic_name);
            topic.partitions = t.partitions;
            topic
        })
        .collect();
    assignment
}
