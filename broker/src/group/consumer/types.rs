//! The values that go in and out of a [`ConsumerGroup`](super::ConsumerGroup): its config,
//! the topic metadata snapshot the caller passes in, the ConsumerGroupHeartbeat request and
//! response (as the handler decodes and encodes them), the effects, the errors with their
//! wire codes, and what ConsumerGroupDescribe reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sluice_protocol::error::ErrorCode;
use uuid::Uuid;

use super::assignor::Assignor;
use super::records::ConsumerGroupRecord;

/// Partitions by topic id: an assignment, a target, or what a member says it owns. Topics
/// with no partitions are never stored (an empty set is no entry).
pub type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// FENCED_MEMBER_EPOCH (110): the member's epoch is not the coordinator's; it must give up
/// its partitions and rejoin with epoch 0. Not in `ErrorCode` yet.
pub const FENCED_MEMBER_EPOCH: i16 = 110;
/// UNRELEASED_INSTANCE_ID (111): a static member joined with an instance id another member
/// still holds. Not in `ErrorCode` yet.
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
/// UNSUPPORTED_ASSIGNOR (112): the requested server-side assignor is not configured. Not in
/// `ErrorCode` yet.
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
/// STALE_MEMBER_EPOCH (113): an offset commit or fetch came with an epoch that is not the
/// member's current one. Not in `ErrorCode` yet.
pub const STALE_MEMBER_EPOCH: i16 = 113;
/// INVALID_REGULAR_EXPRESSION (128): a member's `SubscribedTopicRegex` does not compile.
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;

/// The member epoch that asks to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The member epoch a static member sends when it leaves for a while and will rejoin with
/// the same instance id (its partitions are kept for it until its session ends).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// The group coordinator's consumer-group settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`: a member that does not heartbeat for this long
    /// is removed.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often members are told to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`: members a group accepts (unbounded by default).
    pub group_size_max: usize,
    /// `group.consumer.assignors`: the server-side assignors; the first is the default.
    pub assignors: Vec<Assignor>,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            group_size_max: i32::MAX as usize,
            assignors: vec![Assignor::Uniform, Assignor::Range],
        }
    }
}

/// A topic as the caller's metadata snapshot knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub topic_id: Uuid,
    pub partition_count: i32,
}

/// The cluster's topics at the time of a call (name -> id and partition count), passed in
/// by the caller so the group never reads shared metadata itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsSnapshot {
    by_name: BTreeMap<String, TopicInfo>,
    names_by_id: BTreeMap<Uuid, String>,
}

impl TopicsSnapshot {
    pub fn new(topics: impl IntoIterator<Item = (String, TopicInfo)>) -> TopicsSnapshot {
        let by_name: BTreeMap<String, TopicInfo> = topics.into_iter().collect();
        let names_by_id = by_name
            .iter()
            .map(|(name, info)| (info.topic_id, name.clone()))
            .collect();
        TopicsSnapshot {
            by_name,
            names_by_id,
        }
    }

    pub fn get(&self, name: &str) -> Option<TopicInfo> {
        self.by_name.get(name).copied()
    }

    pub fn name_of(&self, topic_id: Uuid) -> Option<&str> {
        self.names_by_id.get(&topic_id).map(String::as_str)
    }

    /// Every topic name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.by_name.keys().map(String::as_str)
    }
}

/// A ConsumerGroupHeartbeat request (v0-v1), plus what the handler knows of the client.
/// `None` and -1 mean "unchanged since the last heartbeat", as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// v1 requires the client to generate its member id (KIP-1082); v0 may send an empty
    /// one on the first heartbeat and get one from the coordinator.
    pub api_version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    /// v1; refused (see the module docs).
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned_partitions: Option<Partitions>,
    /// From the request header.
    pub client_id: String,
    /// The client's address, as Kafka prints it (`/127.0.0.1`).
    pub client_host: String,
}

/// A successful ConsumerGroupHeartbeat response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    /// 0 in the answer to a leave, as Kafka leaves it.
    pub heartbeat_interval_ms: i32,
    /// The member's assigned partitions, only when they changed or the request was a full
    /// one (a join, or every field set).
    pub assignment: Option<Partitions>,
}

/// What a heartbeat produced: the response to send once `effects`' records are appended,
/// and the effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub response: HeartbeatResponse,
    pub effects: Vec<Effect>,
}

/// The timers a group keeps, one deadline each at most.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// The member's session: it is removed when this passes without a heartbeat.
    Session(String),
    /// The member must revoke its partitions before this passes, or it is removed.
    Rebalance(String),
}

/// What the caller must do after a call into the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Append these records (keyed by the group id) to the group's `__consumer_offsets`
    /// partition, in order, before answering. The group has already applied them.
    Persist { records: Vec<ConsumerGroupRecord> },
    /// Call [`ConsumerGroup::tick`](super::ConsumerGroup::tick) at or after `deadline_ms`.
    /// A timer rescheduled or cancelled since makes that tick do nothing.
    ScheduleTimer { timer: TimerKind, deadline_ms: i64 },
}

/// A refused request: what the client is told, designed around what it does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// INVALID_REQUEST: a malformed request; the message says which rule.
    InvalidRequest(String),
    /// UNSUPPORTED_ASSIGNOR: the named server assignor is not configured.
    UnsupportedAssignor(String),
    /// GROUP_MAX_SIZE_REACHED: the group is full.
    GroupMaxSizeReached(String),
    /// UNKNOWN_MEMBER_ID: the member (or static instance) is not in the group; rejoin.
    UnknownMemberId(String),
    /// FENCED_MEMBER_EPOCH: the member's epoch is wrong; give up partitions and rejoin.
    FencedMemberEpoch(String),
    /// FENCED_INSTANCE_ID: another member holds the static instance id.
    FencedInstanceId(String),
    /// UNRELEASED_INSTANCE_ID: the static instance id is still held by a live member.
    UnreleasedInstanceId(String),
    /// STALE_MEMBER_EPOCH: an offset commit/fetch from an older (or newer) epoch.
    StaleMemberEpoch(String),
    /// UNSUPPORTED_VERSION: a consumer-protocol member committed with OffsetCommit < v9.
    UnsupportedVersion(String),
    /// NON_EMPTY_GROUP: a group with members cannot be deleted.
    NonEmptyGroup(String),
    /// INVALID_REGULAR_EXPRESSION: the member's `SubscribedTopicRegex` does not compile.
    InvalidRegularExpression(String),
}

impl GroupError {
    /// The wire error code (the one place codes are mapped).
    pub fn code(&self) -> i16 {
        match self {
            GroupError::InvalidRequest(_) => ErrorCode::InvalidRequest.code(),
            GroupError::UnsupportedAssignor(_) => UNSUPPORTED_ASSIGNOR,
            GroupError::GroupMaxSizeReached(_) => ErrorCode::GroupMaxSizeReached.code(),
            GroupError::UnknownMemberId(_) => ErrorCode::UnknownMemberId.code(),
            GroupError::FencedMemberEpoch(_) => FENCED_MEMBER_EPOCH,
            GroupError::FencedInstanceId(_) => ErrorCode::FencedInstanceId.code(),
            GroupError::UnreleasedInstanceId(_) => UNRELEASED_INSTANCE_ID,
            GroupError::StaleMemberEpoch(_) => STALE_MEMBER_EPOCH,
            GroupError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion.code(),
            GroupError::NonEmptyGroup(_) => ErrorCode::NonEmptyGroup.code(),
            GroupError::InvalidRegularExpression(_) => INVALID_REGULAR_EXPRESSION,
        }
    }

    /// The error message Kafka sends with it.
    pub fn message(&self) -> &str {
        match self {
            GroupError::InvalidRequest(m)
            | GroupError::UnsupportedAssignor(m)
            | GroupError::GroupMaxSizeReached(m)
            | GroupError::UnknownMemberId(m)
            | GroupError::FencedMemberEpoch(m)
            | GroupError::FencedInstanceId(m)
            | GroupError::UnreleasedInstanceId(m)
            | GroupError::StaleMemberEpoch(m)
            | GroupError::UnsupportedVersion(m)
            | GroupError::NonEmptyGroup(m)
            | GroupError::InvalidRegularExpression(m) => m,
        }
    }
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}: {}", self.code(), self.message())
    }
}

impl std::error::Error for GroupError {}

/// A record sequence that does not describe a consistent group (a corrupt or foreign
/// `__consumer_offsets` partition); loading the group must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError(pub String);

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inconsistent consumer group records: {}", self.0)
    }
}

impl std::error::Error for ReplayError {}

/// Partitions of one topic in a ConsumerGroupDescribe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTopicPartitions {
    pub topic_id: Uuid,
    pub topic_name: String,
    pub partitions: Vec<i32>,
}

/// One member in a ConsumerGroupDescribe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// Assigned partitions (not those pending revocation), of topics that still exist.
    pub assignment: Vec<DescribedTopicPartitions>,
    pub target_assignment: Vec<DescribedTopicPartitions>,
    /// v1: 1 for a member using the consumer protocol (all of them here).
    pub member_type: i8,
}

/// A group for ConsumerGroupDescribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub group_state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedMember>,
}
