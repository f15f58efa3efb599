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
//!
//! # Files
//!
//! This file has the public types, the version table [`GROUP_API_VERSIONS`] and the helpers
//! every request shares; each concept has its own file:
//!
//! - `coordinator.rs`: finding a group's coordinator and sending to it, the retries with
//!   backoff, and the version negotiation.
//! - `listing.rs`: list and describe groups.
//! - `offsets.rs`: a group's committed offsets: list, alter, delete.
//! - `delete.rs`: delete groups.
//! - `tests.rs`: the unit tests.

mod coordinator;
mod delete;
mod listing;
mod offsets;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, GroupId};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::consumer_protocol::{self, PROTOCOL_TYPE};

use crate::cluster::BrokerInfo;
use crate::error::{Error, Result};

// Only the doc links name the admin client here; its group methods live in the files above.
#[cfg(doc)]
use super::Admin;

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
