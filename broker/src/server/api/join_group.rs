//! JoinGroup (v0-v9) and SyncGroup (v0-v5): decode, hand to the group coordinator (which
//! parks the request until the group's join or sync phase ends), encode.
//!
//! Version details kept here, as Kafka's: v0 has no rebalance timeout (the session timeout
//! stands in); before v7 the protocol name is not nullable ("" for none); the member's
//! `client_host` is the connection's address as Kafka prints it (`/127.0.0.1`).

use std::net::SocketAddr;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::group::classic::{JoinRequest, Protocol, SyncRequest};
use crate::server::Broker;

pub async fn handle_join(
    broker: &Broker,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> JoinGroupResponse {
    let join = JoinRequest {
        api_version: version,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
    };
    let answer = broker.groups.join_group(&request.group_id.0, join).await;
    let mut response = JoinGroupResponse::default();
    response.error_code = count_error("JoinGroup", answer.error);
    response.generation_id = answer.generation_id;
    response.protocol_type = answer.protocol_type.map(str_bytes);
    response.protocol_name = match answer.protocol_name {
        Some(name) => Some(str_bytes(name)),
        None if version < 7 => Some(str_bytes("")),
        None => None,
    };
    response.leader = str_bytes(answer.leader);
    response.skip_assignment = version >= 9 && answer.skip_assignment;
    response.member_id = str_bytes(answer.member_id);
    response.members = answer
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default();
            member.member_id = str_bytes(m.member_id);
            member.group_instance_id = m.group_instance_id.map(str_bytes);
            member.metadata = m.metadata;
            member
        })
        .collect();
    response
}

pub async fn handle_sync(
    broker: &Broker,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|t| t.to_string()),
        protocol_name: request.protocol_name.map(|n| n.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let answer = broker.groups.sync_group(&request.group_id.0, sync).await;
    let mut response = SyncGroupResponse::default();
    response.error_code = count_error("SyncGroup", answer.error);
    if version >= 5 {
        response.protocol_type = answer.protocol_type.map(str_bytes);
        response.protocol_name = answer.protocol_name.map(str_bytes);
    }
    response.assignment = if answer.error == ErrorCode::None {
        answer.assignment
    } else {
        bytes::Bytes::new()
    };
    response
}
