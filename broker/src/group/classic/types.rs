//! The values that go in and out of a [`ClassicGroup`](super::ClassicGroup): its config,
//! the requests (what the handlers decode from Kafka's JoinGroup, SyncGroup, Heartbeat and
//! LeaveGroup), the responses, the effects, and the snapshot written to `__consumer_offsets`.

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;

/// The group coordinator's classic-group settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicGroupConfig {
    /// `group.min.session.timeout.ms`: the shortest session a member may ask for.
    pub session_timeout_ms_min: i32,
    /// `group.max.session.timeout.ms`: the longest session a member may ask for.
    pub session_timeout_ms_max: i32,
    /// `group.max.size`: members a group accepts (Kafka's default is unbounded).
    pub group_size_max: usize,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an Empty group
    /// waits for more members, extended by this much while new members keep arriving, up to
    /// the rebalance timeout.
    pub initial_rebalance_delay_ms: i32,
    /// `group.classic.new.member.join.timeout.ms` (internal in Kafka, 5 minutes): how long a
    /// new member's JoinGroup may wait for the rebalance before the member is dropped.
    pub new_member_join_timeout_ms: i32,
}

impl Default for ClassicGroupConfig {
    fn default() -> Self {
        ClassicGroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            group_size_max: i32::MAX as usize,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 5 * 60 * 1_000,
        }
    }
}

/// The caller's handle on a request whose response may come later (JoinGroup, SyncGroup).
/// The caller keeps, say, a oneshot sender per token; every token given to the group is
/// answered by exactly one [`Effect::Join`] or [`Effect::Sync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestToken(pub u64);

/// Names a [`Effect::Persist`] so the caller can report how the append ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub u64);

/// What a client is told when appending the group's metadata failed with `error`
/// (Kafka's `appendGroupMetadataErrorToResponseError`).
pub fn append_error_to_group_error(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::UnknownServerError,
        ErrorCode::UnknownServerError => ErrorCode::UnknownServerError,
        other => other,
    }
}

/// One protocol a member supports (a JoinGroup `protocols` entry), in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup request, as the handler decodes it. Version 0 has no rebalance timeout: the
/// handler passes the session timeout, as Kafka does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The request's API version: v4+ requires a known member id, v9+ may skip assignment.
    pub api_version: i16,
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
}

/// One member's entry in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponseMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Empty when there is none.
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member's metadata for the leader; empty for the others.
    pub members: Vec<JoinResponseMember>,
}

impl JoinResponse {
    /// A response carrying only an error, as Kafka's error paths build it.
    pub fn error(error: ErrorCode, member_id: &str) -> JoinResponse {
        JoinResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request. `assignments` is the leader's; others send none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+; checked against the group's when both are present.
    pub protocol_type: Option<String>,
    /// v5+; checked against the group's when both are present.
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ErrorCode) -> SyncResponse {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A Heartbeat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

/// One member leaving (LeaveGroup v3+ batches them; older versions have one, and the
/// handler lifts its error to the top level). An empty `member_id` with an instance id
/// removes that static member (administrative removal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// The LeaveGroup response: a top-level error, else one result per member, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResponse {
    pub error: ErrorCode,
    pub members: Vec<(LeavingMember, ErrorCode)>,
}

/// Whether an offset commit is a consumer's own or part of a transaction
/// (TxnOffsetCommit); Kafka checks the group state only for the former.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    Consumer,
    Transactional,
}

/// The timers a group keeps. Each has at most one deadline at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// A member's (or pending member's) session, or a new member's join timeout.
    Heartbeat(String),
    /// The join phase: the rebalance timeout, or the initial rebalance delay.
    Join,
    /// Members that got their JoinGroup response must send SyncGroup in time.
    Sync,
}

/// What the caller must do after a call into the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer the JoinGroup request held under `token`.
    Join {
        token: RequestToken,
        response: JoinResponse,
    },
    /// Answer the SyncGroup request held under `token`.
    Sync {
        token: RequestToken,
        response: SyncResponse,
    },
    /// Append the group's metadata record (`GroupMetadataKey/Value`) and then call
    /// [`ClassicGroup::on_persisted`](super::ClassicGroup::on_persisted) with `id`.
    Persist {
        id: PersistId,
        snapshot: GroupSnapshot,
    },
    /// Call [`ClassicGroup::tick`](super::ClassicGroup::tick) at or after `deadline_ms`.
    /// A timer that was rescheduled or cancelled since makes that tick do nothing.
    ScheduleTimer { timer: TimerKind, deadline_ms: i64 },
}

/// A member as `GroupMetadataValue` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// What `GroupMetadataValue` stores of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// Empty for none, as Kafka writes it.
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown.
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberSnapshot>,
}

/// One member in a DescribeGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Empty unless the group is Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group for DescribeGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    /// The protocol when Stable, else empty.
    pub protocol_data: String,
    pub members: Vec<MemberDescription>,
}

/// A group for ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub state: &'static str,
    pub protocol_type: String,
}
