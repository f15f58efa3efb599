//! ListGroups (v0-v5) and DescribeGroups (v0-v6): the groups this broker coordinates.
//!
//! ListGroups answers for this broker's coordinators only (clients ask every broker, as
//! with Kafka), classic and consumer (KIP-848) groups, filtered by state (v4+) and type
//! (v5+, "classic" or "consumer";
//! case-insensitive, as Kafka compares them). While one of its partitions loads it
//! answers COORDINATOR_LOAD_IN_PROGRESS.
//!
//! DescribeGroups answers each group on its own: NOT_COORDINATOR and the like per group; a
//! group that does not exist is Dead with no error before v6, GROUP_ID_NOT_FOUND with
//! "Group <id> not found." from v6, as Kafka 4.1. Authorized operations (v3+) are not
//! computed (no ACLs yet): the schema's default is sent.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use sluice_protocol::error::ErrorCode;

use super::{count_error, str_bytes};
use crate::server::Broker;

pub fn handle_list(
    broker: &Broker,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let mut response = ListGroupsResponse::default();
    let groups = match broker.groups.list_groups() {
        Ok(groups) => groups,
        Err(error) => {
            response.error_code = count_error("ListGroups", error);
            return response;
        }
    };
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.to_lowercase())
        .collect();
    for (group_id, listed, group_type) in groups {
        if version >= 4 && !states.is_empty() && !states.contains(&listed.state.to_lowercase()) {
            continue;
        }
        if version >= 5 && !types.is_empty() && !types.contains(&group_type.to_string()) {
            continue;
        }
        let mut entry = ListedGroup::default();
        entry.group_id = GroupId(str_bytes(group_id));
        entry.protocol_type = str_bytes(listed.protocol_type);
        if version >= 4 {
            entry.group_state = str_bytes(listed.state);
        }
        if version >= 5 {
            entry.group_type = str_bytes(group_type);
        }
        response.groups.push(entry);
    }
    response
}

pub fn handle_describe(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for group_id in request.groups {
        let mut group = DescribedGroup::default();
        match broker.groups.describe_group(&group_id.0) {
            Ok(Some(description)) => {
                group.group_state = str_bytes(description.state);
                group.protocol_type = str_bytes(description.protocol_type);
                group.protocol_data = str_bytes(description.protocol_data);
                group.members = description
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default();
                        member.member_id = str_bytes(m.member_id);
                        if version >= 4 {
                            member.group_instance_id = m.group_instance_id.map(str_bytes);
                        }
                        member.client_id = str_bytes(m.client_id);
                        member.client_host = str_bytes(m.client_host);
                        member.member_metadata = m.metadata;
                        member.member_assignment = m.assignment;
                        member
                    })
                    .collect();
            }
            Ok(None) if version >= 6 => {
                group.error_code = count_error("DescribeGroups", ErrorCode::GroupIdNotFound);
                group.error_message = Some(str_bytes(format!("Group {} not found.", &*group_id.0)));
            }
            Ok(None) => group.group_state = str_bytes("Dead"),
            Err(error) => group.error_code = count_error("DescribeGroups", error),
        }
        group.group_id = group_id;
        response.groups.push(group);
    }
    response
}
