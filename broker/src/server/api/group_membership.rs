//! Heartbeat (v0-v4) and LeaveGroup (v0-v5): decode, ask the group coordinator, encode.
//!
//! LeaveGroup v0-v2 name one member (`member_id`); its error is the response's. v3+ carry
//! a batch of members (static ones by instance id), each answered on its own, with a
//! top-level error only for what concerns the whole group.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, LeaveGroupResponse,
};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::group::classic::{HeartbeatRequest as Heartbeat, LeavingMember};
use crate::server::Broker;

pub fn handle_heartbeat(broker: &Broker, request: HeartbeatRequest) -> HeartbeatResponse {
    let heartbeat = Heartbeat {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id,
    };
    let error = broker.groups.heartbeat(&request.group_id.0, &heartbeat);
    let mut response = HeartbeatResponse::default();
    response.error_code = count_error("Heartbeat", error);
    response
}

pub fn handle_leave(
    broker: &Broker,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let members: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let answer = broker.groups.leave_group(&request.group_id.0, &members);
    let mut response = LeaveGroupResponse::default();
    if version < 3 {
        let member_error = answer.members.first().map(|(_, error)| *error);
        let error = match (answer.error, member_error) {
            (ErrorCode::None, Some(error)) => error,
            (error, _) => error,
        };
        response.error_code = count_error("LeaveGroup", error);
        return response;
    }
    response.error_code = count_error("LeaveGroup", answer.error);
    response.members = answer
        .members
        .into_iter()
        .map(|(member, error)| {
            let mut entry = MemberResponse::default();
            entry.member_id = str_bytes(member.member_id);
            entry.group_instance_id = member.group_instance_id.map(str_bytes);
            entry.error_code = count_error("LeaveGroup", error);
            entry
        })
        .collect();
    response
}
