//! Consumer groups: list them, describe them (members and their assignments), read, change
//! and delete their committed offsets, and delete them; what `kafka-consumer-groups` needs,
//! done as Kafka's AdminClient does it.
//!
//! - ListGroups is answered by each broker for the groups it coordinates, so every broker in
//!   metadata is asked (concurrently) and the answers are merged. A broker that cannot be
//!   asked is named in [`GroupListings::failures`] rather than failing the whole listing.
//! - Every other request goes to the group's coordinator, found with FindCoordinator (key
//!   type 0, group). COORDINATOR_NOT_AVAILABLE (the first lookup creates
//!   `__consumer_offsets`; a partition without a leader yet) and
//!   COORDINATOR_LOAD_IN_PROGRESS are retried with a growing backoff; NOT_COORDINATOR
//!   (leadership moved) and a failed connection look the coordinator up again. All of it is
//!   bounded by the admin's request timeout.
//! - `alter_group_offsets` is an OffsetCommit with generation -1 and no member id, as
//!   `kafka-consumer-groups --reset-offsets` sends it. The coordinator takes it only while the
//!   group has no members (Empty, or no group at all, which it then creates); a group with
//!   members answers UNKNOWN_MEMBER_ID (Kafka 4.1's rule), reported as an error that says
//!   the group is active, not as an unknown member.
//! - Members' assignments of `consumer` groups are decoded with
//!   [`sluice_protocol::consumer_protocol`]; other protocol types keep the raw bytes.
//! - Versions: the connection's version table lists what the producer and consumer speak;
//!   these APIs are negotiated here against [`GROUP_API_VERSIONS`], the highest version both
//!   sides speak, and every request is built for the version it goes out at (fields a
//!   version lacks stay at their defaults).
//!
//! Errors name the group and Kafka's code: "group 'g' does not exist (GROUP_ID_NOT_FOUND)".

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::consumer_protocol::{self, PROTOCOL_TYPE};
use tokio::time::Instant;

use super::{message, topic_name, Admin, UNKNOWN_TOPIC_OR_PARTITION};
use crate::cluster::BrokerInfo;
use crate::connection::Connection;
use crate::error::{Error, Result};

/// The versions of the group APIs this module speaks, inclusive. OffsetFetch starts at v2,
/// the first where a null topic list asks for every committed offset.
pub const GROUP_API_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::OffsetFetch, 2, 9),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// FindCoordinator's key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// OffsetCommit's generation of a commit from outside the group (an admin tool).
const SIMPLE_COMMIT_GENERATION: i32 = -1;

// Kafka's codes that get a sentence of their own.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_INSTANCE_ID: i16 = 82;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// First wait before asking again after a retriable error; doubles up to the max.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A group's state, as Kafka names it (classic groups: Empty, PreparingRebalance,
/// CompletingRebalance, Stable, Dead; KIP-848 consumer groups add Assigning and
/// Reconciling).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    /// No members; offsets can be changed from outside.
    Empty,
    Stable,
    PreparingRebalance,
    CompletingRebalance,
    Assigning,
    Reconciling,
    /// Gone (or, before DescribeGroups v6, never existed).
    Dead,
    /// A name this client does not know.
    Unknown(String),
}

impl GroupState {
    /// The known states, in the order a person reads them.
    pub const KNOWN: [GroupState; 7] = [
        GroupState::Empty,
        GroupState::Stable,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Assigning,
        GroupState::Reconciling,
        GroupState::Dead,
    ];

    /// A state from its name, compared case-insensitively as Kafka does.
    pub fn parse(name: &str) -> GroupState {
        GroupState::KNOWN
            .into_iter()
            .find(|state| state.name().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| GroupState::Unknown(name.to_string()))
    }

    /// Kafka's name for the state.
    pub fn name(&self) -> &str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Stable => "Stable",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Dead => "Dead",
            GroupState::Unknown(name) => name,
        }
    }

    /// Whether the group has no members, so that offsets may be changed from outside
    /// (Kafka's `kafka-consumer-groups` allows Empty and Dead).
    pub fn is_inactive(&self) -> bool {
        matches!(self, GroupState::Empty | GroupState::Dead)
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which groups [`Admin::list_groups`] lists; empty lists mean no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListGroupsFilter {
    /// Only groups in these states (ListGroups v4+).
    pub states: Vec<GroupState>,
    /// Only groups of these types, "classic" or "consumer", case-insensitive (v5+).
    pub types: Vec<String>,
}

/// One group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// "consumer" for consumers; empty for a group that only ever had simple commits.
    pub protocol_type: String,
    /// `None` from a broker older than ListGroups v4.
    pub state: Option<GroupState>,
    /// "classic" or "consumer"; `None` from a broker older than ListGroups v5.
    pub group_type: Option<String>,
    /// The broker that listed it: its coordinator.
    pub coordinator: i32,
}

/// What [`Admin::list_groups`] found: the groups of every broker that answered, sorted by
/// id, and the brokers that did not.
#[derive(Debug, Clone)]
pub struct GroupListings {
    pub groups: Vec<GroupListing>,
    /// (broker id, why it could not be asked); its groups are missing from `groups`.
    pub failures: Vec<(i32, Error)>,
}

/// A member's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberAssignment {
    /// A `consumer` group member's partitions, by topic (empty while a rebalance runs).
    Partitions(Vec<(String, Vec<i32>)>),
    /// Another protocol type's assignment, undecoded.
    Opaque(Bytes),
    /// A `consumer` assignment that could not be read, and why.
    Unreadable(String),
}

impl MemberAssignment {
    fn decode(protocol_type: &str, bytes: Bytes) -> MemberAssignment {
        if protocol_type != PROTOCOL_TYPE {
            return MemberAssignment::Opaque(bytes);
        }
        if bytes.is_empty() {
            return MemberAssignment::Partitions(Vec::new());
        }
        match consumer_protocol::decode_assignment(bytes) {
            Ok(assignment) => {
                let mut topics: Vec<(String, Vec<i32>)> = assignment
                    .message
                    .assigned_partitions
                    .iter()
                    .map(|t| {
                        let mut partitions = t.partitions.clone();
                        partitions.sort_unstable();
                        (t.topic.0.to_string(), partitions)
                    })
                    .collect();
                topics.sort();
                MemberAssignment::Partitions(topics)
            }
            Err(error) => MemberAssignment::Unreadable(error.to_string()),
        }
    }

    /// The assigned partitions, (topic, partition), sorted; none unless decoded.
    pub fn partitions(&self) -> Vec<(String, i32)> {
        match self {
            MemberAssignment::Partitions(topics) => topics
                .iter()
                .flat_map(|(topic, partitions)| partitions.iter().map(|p| (topic.clone(), *p)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    /// Static members' `group.instance.id`.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    /// As the coordinator saw the member's connection, e.g. "/127.0.0.1".
    pub client_host: String,
    pub assignment: MemberAssignment,
}

/// A group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    /// "consumer" for consumers; empty for a group that only ever had simple commits.
    pub protocol_type: String,
    /// The protocol of the current generation: the assignor ("range", ...) of a consumer
    /// group; empty when there is none.
    pub protocol: String,
    pub members: Vec<GroupMember>,
    /// The coordinator that answered.
    pub coordinator: BrokerInfo,
}

/// A group's committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// `None`: nothing committed.
    pub offset: Option<i64>,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

/// An offset to commit for a group ([`Admin::alter_group_offsets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What happened to one partition of a request about many.
#[derive(Debug, Clone)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub result: Result<()>,
}

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

    /// A group's committed offsets: of `partitions` (`None` offset where nothing is
    /// committed), or with `None` every partition it has committed. Sorted by topic and
    /// partition. A group that does not exist has no offsets (Kafka answers so too).
    pub async fn list_group_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<CommittedOffset>> {
        let topics = partitions.map(by_topic);
        self.with_coordinator(group_id, |connection, _| {
            let topics = topics.clone();
            async move {
                let version = group_api_version(&connection, ApiKey::OffsetFetch)?;
                let request = offset_fetch_request(group_id, topics.as_ref(), version);
                let response = connection
                    .send_versioned(request, version, connection.request_timeout())
                    .await?;
                // (topic, partition, offset, leader epoch, metadata, error code)
                let (group_error, fetched): (i16, Vec<_>) = if version >= 8 {
                    let group = response
                        .groups
                        .into_iter()
                        .find(|g| &*g.group_id.0 == group_id)
                        .ok_or_else(|| missing_group("OffsetFetch", group_id))?;
                    let fetched = group
                        .topics
                        .into_iter()
                        .flat_map(|t| {
                            let topic = t.name.0.to_string();
                            t.partitions.into_iter().map(move |p| {
                                (
                                    topic.clone(),
                                    p.partition_index,
                                    p.committed_offset,
                                    p.committed_leader_epoch,
                                    p.metadata,
                                    p.error_code,
                                )
                            })
                        })
                        .collect();
                    (group.error_code, fetched)
                } else {
                    let fetched = response
                        .topics
                        .into_iter()
                        .flat_map(|t| {
                            let topic = t.name.0.to_string();
                            t.partitions.into_iter().map(move |p| {
                                (
                                    topic.clone(),
                                    p.partition_index,
                                    p.committed_offset,
                                    p.committed_leader_epoch,
                                    p.metadata,
                                    p.error_code,
                                )
                            })
                        })
                        .collect();
                    (response.error_code, fetched)
                };
                if group_error != 0 {
                    return Err(Error::broker(
                        format!("fetching the committed offsets of group '{group_id}'"),
                        group_error,
                        None,
                    ));
                }
                let mut offsets = Vec::with_capacity(fetched.len());
                for (topic, partition, offset, leader_epoch, metadata, code) in fetched {
                    if code != 0 {
                        return Err(Error::broker(
                            format!(
                                "fetching the committed offset of group '{group_id}' for \
                                 {topic}-{partition}"
                            ),
                            code,
                            None,
                        ));
                    }
                    offsets.push(CommittedOffset {
                        topic,
                        partition,
                        offset: (offset >= 0).then_some(offset),
                        leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
                        metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
                    });
                }
                offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                Ok(offsets)
            }
        })
        .await
    }

    /// Commit `offsets` for a group from outside it (OffsetCommit with generation -1, as
    /// `kafka-consumer-groups --reset-offsets --execute`). One result per partition, sorted.
    /// The coordinator refuses while the group has members: that, and other errors of the
    /// whole group (INVALID_GROUP_ID, ...), are an `Err` of the call.
    pub async fn alter_group_offsets(
        &self,
        group_id: &str,
        offsets: &[NewOffset],
    ) -> Result<Vec<PartitionResult>> {
        let mut topics: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for offset in offsets {
            topics
                .entry(offset.topic.as_str())
                .or_default()
                .push((offset.partition, offset.offset));
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_key(group_id))
            .with_generation_id_or_member_epoch(SIMPLE_COMMIT_GENERATION)
            .with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&(partition, offset)| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(partition)
                                            .with_committed_offset(offset)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self
            .with_coordinator(group_id, |connection, _| {
                let request = request.clone();
                async move {
                    let version = group_api_version(&connection, ApiKey::OffsetCommit)?;
                    let response = connection
                        .send_versioned(request, version, connection.request_timeout())
                        .await?;
                    // A group-level error is answered on every partition: the first one
                    // found decides (coordinator errors are retried).
                    let codes = response.topics.iter().flat_map(|t| &t.partitions);
                    for code in codes.map(|p| p.error_code) {
                        if let Some(error) = commit_group_error(group_id, code) {
                            return Err(error);
                        }
                    }
                    Ok(response)
                }
            })
            .await?;
        let mut results: Vec<PartitionResult> = offsets
            .iter()
            .map(|o| {
                let code = response
                    .topics
                    .iter()
                    .filter(|t| *t.name.0 == *o.topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == o.partition)
                    .map(|p| p.error_code);
                let doing = || {
                    format!(
                        "committing offset {} of group '{group_id}' for {}-{}",
                        o.offset, o.topic, o.partition
                    )
                };
                let result = match code {
                    Some(0) => Ok(()),
                    Some(UNKNOWN_TOPIC_OR_PARTITION) => Err(Error::broker(
                        format!("{}: no such topic or partition", doing()),
                        UNKNOWN_TOPIC_OR_PARTITION,
                        None,
                    )),
                    Some(code) => Err(Error::broker(doing(), code, None)),
                    None => Err(super::partition_missing_from_response(
                        "OffsetCommit",
                        &doing(),
                    )),
                };
                PartitionResult {
                    topic: o.topic.clone(),
                    partition: o.partition,
                    result,
                }
            })
            .collect();
        sort_results(&mut results);
        Ok(results)
    }

    /// Delete groups, each asked of its coordinator (concurrently); one result per id, in
    /// order. A group with members is NON_EMPTY_GROUP, one that does not exist
    /// GROUP_ID_NOT_FOUND; deleting a group deletes its committed offsets.
    pub async fn delete_groups(&self, group_ids: &[&str]) -> Vec<(String, Result<()>)> {
        let answers =
            futures::future::join_all(group_ids.iter().map(|id| self.delete_group(id))).await;
        group_ids
            .iter()
            .map(|id| id.to_string())
            .zip(answers)
            .collect()
    }

    async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.with_coordinator(group_id, |connection, _| async move {
            let version = group_api_version(&connection, ApiKey::DeleteGroups)?;
            let request =
                DeleteGroupsRequest::default().with_groups_names(vec![group_key(group_id)]);
            let response = connection
                .send_versioned(request, version, connection.request_timeout())
                .await?;
            let result = response
                .results
                .iter()
                .find(|r| &*r.group_id.0 == group_id)
                .ok_or_else(|| missing_group("DeleteGroups", group_id))?;
            match result.error_code {
                0 => Ok(()),
                GROUP_ID_NOT_FOUND => Err(group_not_found(group_id)),
                NON_EMPTY_GROUP => Err(Error::broker(
                    format!(
                        "group '{group_id}' has active members and cannot be deleted (stop its \
                         consumers first)"
                    ),
                    NON_EMPTY_GROUP,
                    None,
                )),
                code => Err(Error::broker(
                    format!("deleting group '{group_id}'"),
                    code,
                    None,
                )),
            }
        })
        .await
    }

    /// Delete a group's committed offsets of `partitions` (OffsetDelete). One result per
    /// partition, sorted: a topic the group's members subscribe to is
    /// GROUP_SUBSCRIBED_TO_TOPIC. A group that does not exist is an `Err` of the call.
    pub async fn delete_group_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<PartitionResult>> {
        let request = OffsetDeleteRequest::default()
            .with_group_id(group_key(group_id))
            .with_topics(
                by_topic(partitions)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(&topic))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self
            .with_coordinator(group_id, |connection, _| {
                let request = request.clone();
                async move {
                    let version = group_api_version(&connection, ApiKey::OffsetDelete)?;
                    let response = connection
                        .send_versioned(request, version, connection.request_timeout())
                        .await?;
                    match response.error_code {
                        0 => Ok(response),
                        GROUP_ID_NOT_FOUND => Err(group_not_found(group_id)),
                        code => Err(Error::broker(
                            format!("deleting committed offsets of group '{group_id}'"),
                            code,
                            None,
                        )),
                    }
                }
            })
            .await?;
        let mut results: Vec<PartitionResult> = partitions
            .iter()
            .map(|(topic, partition)| {
                let code = response
                    .topics
                    .iter()
                    .filter(|t| *t.name.0 == **topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == *partition)
                    .map(|p| p.error_code);
                let doing =
                    || format!("deleting the offset of group '{group_id}' for {topic}-{partition}");
                let result = match code {
                    Some(0) => Ok(()),
                    Some(GROUP_SUBSCRIBED_TO_TOPIC) => Err(Error::broker(
                        format!(
                            "{}: the group's members subscribe to topic '{topic}' (stop them or \
                             change their subscription first)",
                            doing()
                        ),
                        GROUP_SUBSCRIBED_TO_TOPIC,
                        None,
                    )),
                    Some(code) => Err(Error::broker(doing(), code, None)),
                    None => Err(super::partition_missing_from_response(
                        "OffsetDelete",
                        &doing(),
                    )),
                };
                PartitionResult {
                    topic: topic.clone(),
                    partition: *partition,
                    result,
                }
            })
            .collect();
        sort_results(&mut results);
        Ok(results)
    }

    /// The coordinator of a group: FindCoordinator, asked again after a backoff while the
    /// answer is COORDINATOR_NOT_AVAILABLE or COORDINATOR_LOAD_IN_PROGRESS, until the
    /// request timeout.
    pub async fn find_group_coordinator(&self, group_id: &str) -> Result<BrokerInfo> {
        self.retrying(|| self.find_coordinator_once(group_id)).await
    }

    async fn find_coordinator_once(&self, group_id: &str) -> Result<BrokerInfo> {
        let connection = self.cluster.any_connection().await?;
        let version = group_api_version(&connection, ApiKey::FindCoordinator)?;
        let request = find_coordinator_request(group_id, version);
        let response = connection
            .send_versioned(request, version, connection.request_timeout())
            .await?;
        let (code, error_message, node_id, host, port) = if version >= 4 {
            let found = response
                .coordinators
                .into_iter()
                .find(|c| &*c.key == group_id)
                .ok_or_else(|| missing_group("FindCoordinator", group_id))?;
            (
                found.error_code,
                found.error_message,
                found.node_id,
                found.host,
                found.port,
            )
        } else {
            (
                response.error_code,
                response.error_message,
                response.node_id,
                response.host,
                response.port,
            )
        };
        if code != 0 {
            let error_message = message(&error_message)
                .filter(|m| !super::restates_error_name(m, code) && m != "NONE");
            return Err(Error::broker(
                format!("finding the coordinator of group '{group_id}'"),
                code,
                error_message,
            ));
        }
        Ok(BrokerInfo {
            id: node_id.0,
            host: host.to_string(),
            port,
            rack: None,
        })
    }

    /// A connection to a coordinator: the cluster's to that broker, or, when metadata does
    /// not list it yet, one to the address FindCoordinator named.
    async fn coordinator_connection(&self, coordinator: &BrokerInfo) -> Result<Connection> {
        match self.cluster.broker_connection(coordinator.id).await {
            Ok(connection) => Ok(connection),
            Err(Error::NoBrokerAvailable(_)) => {
                Connection::connect(&coordinator.address(), &self.cluster.config().connection).await
            }
            Err(error) => Err(error),
        }
    }

    /// Run `request` against the group's coordinator. A retriable error (coordinator
    /// loading or unavailable, NOT_COORDINATOR, a failed connection or timeout) looks the
    /// coordinator up again and retries after a backoff, until the request timeout.
    async fn with_coordinator<T, F, Fut>(&self, group_id: &str, request: F) -> Result<T>
    where
        F: Fn(Connection, BrokerInfo) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retrying(|| async {
            let coordinator = self.find_coordinator_once(group_id).await?;
            let connection = self.coordinator_connection(&coordinator).await?;
            request(connection, coordinator).await
        })
        .await
    }

    /// `attempt` until it succeeds, fails for good, or the request timeout has passed;
    /// retriable errors wait a growing backoff.
    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = RETRY_BACKOFF_MIN;
        loop {
            match attempt().await {
                Err(error) if error.is_retriable() && Instant::now() + backoff < deadline => {
                    tracing::debug!(%error, "group request failed; retrying");
                    if error.needs_metadata_refresh() || error.kafka_code() == Some(NOT_COORDINATOR)
                    {
                        let _ = self.cluster.refresh().await;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
                other => return other,
            }
        }
    }
}

/// The version of a group API to use with this broker: the highest both sides speak.
fn group_api_version(connection: &Connection, api: ApiKey) -> Result<i16> {
    let (ours_min, ours_max) = GROUP_API_VERSIONS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
        .unwrap_or((0, -1));
    let unsupported = |theirs: String| Error::UnsupportedVersion {
        broker: connection.broker().to_string(),
        api,
        ours_min,
        ours_max,
        theirs,
    };
    let Some((theirs_min, theirs_max)) = connection.api_versions().range(api) else {
        return Err(unsupported("none".to_string()));
    };
    let chosen = ours_max.min(theirs_max);
    if chosen < ours_min.max(theirs_min) {
        return Err(unsupported(format!("{theirs_min}..={theirs_max}")));
    }
    Ok(chosen)
}

/// FindCoordinator for a group at `version`: one key before v4, a batch of one from v4.
fn find_coordinator_request(group_id: &str, version: i16) -> FindCoordinatorRequest {
    let key = StrBytes::from_string(group_id.to_string());
    let mut request = FindCoordinatorRequest::default();
    if version >= 1 {
        request.key_type = KEY_TYPE_GROUP;
    }
    if version >= 4 {
        request.coordinator_keys = vec![key];
    } else {
        request.key = key;
    }
    request
}

/// ListGroups at `version` with `filter`; a filter the version cannot carry is refused.
fn list_groups_request(
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

/// OffsetFetch for one group at `version`: the batched form from v8, `None` topics for
/// every committed offset.
fn offset_fetch_request(
    group_id: &str,
    topics: Option<&Vec<(String, Vec<i32>)>>,
    version: i16,
) -> OffsetFetchRequest {
    if version >= 8 {
        let topics = topics.map(|topics| {
            topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        return OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_key(group_id))
            .with_topics(topics)]);
    }
    OffsetFetchRequest::default()
        .with_group_id(group_key(group_id))
        .with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        }))
}

/// An OffsetCommit partition code that is about the whole group, as the error of the call;
/// `None` for a partition's own outcome. Coordinator errors stay retriable.
fn commit_group_error(group_id: &str, code: i16) -> Option<Error> {
    match code {
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
            Some(Error::broker(
                format!("committing offsets of group '{group_id}'"),
                code,
                None,
            ))
        }
        // A commit from outside the group (generation -1, no member) meets these only
        // while the group has members.
        UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION | REBALANCE_IN_PROGRESS | FENCED_INSTANCE_ID => {
            Some(Error::broker(
                format!(
                    "cannot change the committed offsets of group '{group_id}': it has active \
                     members, and offsets can only be changed while the group is Empty (stop \
                     its consumers first)"
                ),
                code,
                None,
            ))
        }
        // INVALID_GROUP_ID, GROUP_AUTHORIZATION_FAILED, INVALID_COMMIT_OFFSET_SIZE.
        24 | 30 | 28 => Some(Error::broker(
            format!("committing offsets of group '{group_id}'"),
            code,
            None,
        )),
        _ => None,
    }
}

fn group_key(group_id: &str) -> GroupId {
    GroupId(StrBytes::from_string(group_id.to_string()))
}

fn group_not_found(group_id: &str) -> Error {
    Error::broker(
        format!("group '{group_id}' does not exist"),
        GROUP_ID_NOT_FOUND,
        None,
    )
}

fn missing_group(api: &str, group_id: &str) -> Error {
    Error::broker(
        format!("{api} response does not mention group '{group_id}'"),
        -1,
        None,
    )
}

/// Partitions grouped by topic, both sorted, duplicates dropped.
fn by_topic(partitions: &[(String, i32)]) -> Vec<(String, Vec<i32>)> {
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.clone()).or_default().push(*partition);
    }
    topics
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            (topic, partitions)
        })
        .collect()
}

fn sort_results(results: &mut [PartitionResult]) {
    results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;
    use sluice_protocol::consumer_protocol::{
        encode_assignment, AssignedPartitions, ConsumerProtocolAssignment,
    };

    fn encodes(request: &impl Encodable, api: ApiKey, version: i16) {
        let mut buf = bytes::BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
    }

    fn versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
        let (_, min, max) = GROUP_API_VERSIONS
            .iter()
            .find(|(key, _, _)| *key == api)
            .unwrap();
        *min..=*max
    }

    #[test]
    fn offset_fetch_requests_encode_at_every_version_for_some_or_all_partitions() {
        let topics = vec![("t".to_string(), vec![0, 1])];
        for version in versions(ApiKey::OffsetFetch) {
            for selection in [None, Some(&topics)] {
                let request = offset_fetch_request("g", selection, version);
                encodes(&request, ApiKey::OffsetFetch, version);
                if version >= 8 {
                    assert_eq!(request.groups.len(), 1);
                    assert_eq!(request.groups[0].topics.is_none(), selection.is_none());
                } else {
                    assert_eq!(&*request.group_id.0, "g");
                    assert_eq!(request.topics.is_none(), selection.is_none());
                }
            }
        }
    }

    #[test]
    fn list_groups_filters_are_refused_where_the_version_lacks_them() {
        let states = ListGroupsFilter {
            states: vec![GroupState::Empty],
            types: Vec::new(),
        };
        let types = ListGroupsFilter {
            states: Vec::new(),
            types: vec!["classic".into()],
        };
        for version in versions(ApiKey::ListGroups) {
            let none = list_groups_request(&ListGroupsFilter::default(), version, "b").unwrap();
            encodes(&none, ApiKey::ListGroups, version);
            match list_groups_request(&states, version, "b") {
                Ok(request) => {
                    assert!(version >= 4);
                    assert_eq!(&*request.states_filter[0], "Empty");
                    encodes(&request, ApiKey::ListGroups, version);
                }
                Err(error) => {
                    assert!(version < 4);
                    assert!(error.to_string().contains("state"), "{error}");
                }
            }
            assert_eq!(
                list_groups_request(&types, version, "b").is_ok(),
                version >= 5
            );
        }
    }

    #[test]
    fn find_coordinator_asks_for_one_group_key_at_every_version() {
        for version in versions(ApiKey::FindCoordinator) {
            let request = find_coordinator_request("g", version);
            encodes(&request, ApiKey::FindCoordinator, version);
            let keys: Vec<&str> = if version >= 4 {
                assert!(request.key.is_empty());
                request.coordinator_keys.iter().map(|k| &**k).collect()
            } else {
                assert!(request.coordinator_keys.is_empty());
                vec![&*request.key]
            };
            assert_eq!(keys, ["g"], "v{version}");
            assert_eq!(request.key_type, KEY_TYPE_GROUP);
        }
    }

    #[test]
    fn other_group_requests_encode_at_every_version() {
        let commit = OffsetCommitRequest::default()
            .with_group_id(group_key("g"))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)])]);
        assert_eq!(
            commit.generation_id_or_member_epoch,
            SIMPLE_COMMIT_GENERATION
        );
        for version in versions(ApiKey::OffsetCommit) {
            encodes(&commit, ApiKey::OffsetCommit, version);
        }
        let describe = DescribeGroupsRequest::default().with_groups(vec![group_key("g")]);
        for version in versions(ApiKey::DescribeGroups) {
            encodes(&describe, ApiKey::DescribeGroups, version);
        }
        let delete = DeleteGroupsRequest::default().with_groups_names(vec![group_key("g")]);
        for version in versions(ApiKey::DeleteGroups) {
            encodes(&delete, ApiKey::DeleteGroups, version);
        }
    }

    #[test]
    fn consumer_assignments_are_decoded_and_others_kept_raw() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedPartitions::default()
                .with_topic(topic_name("b"))
                .with_partitions(vec![2, 0]),
            AssignedPartitions::default()
                .with_topic(topic_name("a"))
                .with_partitions(vec![1]),
        ]);
        let bytes = encode_assignment(&assignment, 3).unwrap();
        let decoded = MemberAssignment::decode("consumer", bytes.clone());
        assert_eq!(
            decoded,
            MemberAssignment::Partitions(vec![("a".into(), vec![1]), ("b".into(), vec![0, 2])])
        );
        assert_eq!(
            decoded.partitions(),
            vec![("a".into(), 1), ("b".into(), 0), ("b".into(), 2)]
        );
        assert_eq!(
            MemberAssignment::decode("connect", bytes.clone()),
            MemberAssignment::Opaque(bytes)
        );
        assert_eq!(
            MemberAssignment::decode("consumer", Bytes::new()),
            MemberAssignment::Partitions(Vec::new())
        );
        assert!(matches!(
            MemberAssignment::decode("consumer", Bytes::from_static(b"\x00")),
            MemberAssignment::Unreadable(_)
        ));
    }

    #[test]
    fn a_commit_refused_for_members_says_the_group_is_active() {
        let error = commit_group_error("g", UNKNOWN_MEMBER_ID).unwrap();
        let text = error.to_string();
        assert!(text.contains("active members"), "{text}");
        assert!(text.ends_with("(UNKNOWN_MEMBER_ID)"), "{text}");
        assert!(!error.is_retriable());
        assert!(commit_group_error("g", NOT_COORDINATOR)
            .unwrap()
            .is_retriable());
        assert!(commit_group_error("g", UNKNOWN_TOPIC_OR_PARTITION).is_none());
        assert!(commit_group_error("g", 0).is_none());
    }

    #[test]
    fn group_states_parse_case_insensitively() {
        assert_eq!(GroupState::parse("empty"), GroupState::Empty);
        assert_eq!(
            GroupState::parse("PreparingRebalance"),
            GroupState::PreparingRebalance
        );
        assert_eq!(GroupState::parse("Odd"), GroupState::Unknown("Odd".into()));
        assert!(GroupState::Dead.is_inactive() && !GroupState::Stable.is_inactive());
        assert_eq!(
            group_not_found("g").to_string(),
            "group 'g' does not exist (GROUP_ID_NOT_FOUND)"
        );
    }

    #[test]
    fn partitions_are_grouped_by_topic_without_duplicates() {
        let grouped = by_topic(&[
            ("b".into(), 1),
            ("a".into(), 2),
            ("b".into(), 0),
            ("b".into(), 1),
        ]);
        assert_eq!(
            grouped,
            vec![("a".into(), vec![2]), ("b".into(), vec![0, 1])]
        );
    }
}
