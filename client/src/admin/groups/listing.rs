//! Listing groups (ListGroups, asked of every broker in metadata and merged) and describing
//! them (DescribeGroups, asked of each group's coordinator).

use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, ListGroupsRequest};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::group_api_version;
use super::{
    group_key, group_not_found, missing_group, GroupDescription, GroupListing, GroupListings,
    GroupMember, GroupState, ListGroupsFilter, MemberAssignment, GROUP_ID_NOT_FOUND,
};
use crate::admin::{message, Admin};
use crate::error::{Error, Result};

impl Admin {
    /// Every group of the cluster, asking each broker in metadata for the groups it
    /// coordinates, filtered by state and type. Filters need ListGroups v4 (states) and v5
    /// (types); a broker too old for them is a failure, not an unfiltered answer.
    pub async fn list_groups(&self, filter: &ListGroupsFilter) -> Result<GroupListings> {
        let metadata = self.cluster.refresh().await?;
        let brokers: Vec<i32> = metadata.brokers.keys().copied().collect();
        let answers = futures::future::join_all(
            brokers
                .iter()
                .map(|&broker| self.list_groups_on(broker, filter)),
        )
        .await;
        let mut groups: BTreeMap<String, GroupListing> = BTreeMap::new();
        let mut failures = Vec::new();
        for (broker, answer) in brokers.into_iter().zip(answers) {
            match answer {
                // While a coordinator moves, two brokers may list one group: keep one.
                Ok(listed) => {
                    for group in listed {
                        groups.entry(group.group_id.clone()).or_insert(group);
                    }
                }
                Err(error) => failures.push((broker, error)),
            }
        }
        Ok(GroupListings {
            groups: groups.into_values().collect(),
            failures,
        })
    }

    async fn list_groups_on(
        &self,
        broker: i32,
        filter: &ListGroupsFilter,
    ) -> Result<Vec<GroupListing>> {
        self.retrying(|| async {
            let connection = self.cluster.broker_connection(broker).await?;
            let version = group_api_version(&connection, ApiKey::ListGroups)?;
            let request = list_groups_request(filter, version, connection.broker())?;
            let response = connection
                .send_versioned(request, version, connection.request_timeout())
                .await?;
            if response.error_code != 0 {
                return Err(Error::broker(
                    format!("listing the groups of broker {broker}"),
                    response.error_code,
                    None,
                ));
            }
            Ok(response
                .groups
                .iter()
                .map(|g| GroupListing {
                    group_id: g.group_id.0.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: (version >= 4).then(|| GroupState::parse(&g.group_state)),
                    group_type: (version >= 5).then(|| g.group_type.to_string()),
                    coordinator: broker,
                })
                .collect())
        })
        .await
    }

    /// Describe groups, each asked of its coordinator (concurrently); one result per id, in
    /// order. A group that does not exist is GROUP_ID_NOT_FOUND (also from brokers that
    /// answer it as Dead, before DescribeGroups v6).
    pub async fn describe_groups(
        &self,
        group_ids: &[&str],
    ) -> Vec<(String, Result<GroupDescription>)> {
        let answers =
            futures::future::join_all(group_ids.iter().map(|id| self.describe_group(id))).await;
        group_ids
            .iter()
            .map(|id| id.to_string())
            .zip(answers)
            .collect()
    }

    /// Describe one group (see [`Admin::describe_groups`]).
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        self.with_coordinator(group_id, |connection, coordinator| async move {
            let version = group_api_version(&connection, ApiKey::DescribeGroups)?;
            let request = DescribeGroupsRequest::default().with_groups(vec![group_key(group_id)]);
            let response = connection
                .send_versioned(request, version, connection.request_timeout())
                .await?;
            let group = response
                .groups
                .into_iter()
                .find(|g| &*g.group_id.0 == group_id)
                .ok_or_else(|| missing_group("DescribeGroups", group_id))?;
            let state = GroupState::parse(&group.group_state);
            match group.error_code {
                0 if state != GroupState::Dead => {}
                0 | GROUP_ID_NOT_FOUND => return Err(group_not_found(group_id)),
                code => {
                    return Err(Error::broker(
                        format!("describing group '{group_id}'"),
                        code,
                        message(&group.error_message),
                    ))
                }
            }
            let protocol_type = group.protocol_type.to_string();
            let members = group
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|id| id.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: MemberAssignment::decode(&protocol_type, m.member_assignment),
                })
                .collect();
            Ok(GroupDescription {
                group_id: group_id.to_string(),
                state,
                protocol_type,
                protocol: group.protocol_data.to_string(),
                members,
                coordinator,
            })
        })
        .await
    }
}

/// ListGroups at `version` with `filter`; a filter the version cannot carry is refused.
pub(super) fn list_groups_request(
    filter: &ListGroupsFilter,
    version: i16,
    broker: &str,
) -> Result<ListGroupsRequest> {
    let too_old = |what: &str, needed: i16| {
        Error::Unsupported(format!(
            "broker {broker} cannot filter groups by {what} (needs ListGroups v{needed}, it \
             speaks v{version})"
        ))
    };
    if !filter.states.is_empty() && version < 4 {
        return Err(too_old("state", 4));
    }
    if !filter.types.is_empty() && version < 5 {
        return Err(too_old("type", 5));
    }
    let strings = |names: Vec<String>| -> Vec<StrBytes> {
        names.into_iter().map(StrBytes::from_string).collect()
    };
    Ok(ListGroupsRequest::default()
        .with_states_filter(strings(
            filter.states.iter().map(|s| s.name().to_string()).collect(),
        ))
        .with_types_filter(strings(filter.types.clone())))
}
