//! The next-generation consumer group protocol (KIP-848: ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe) for one group, as a sans-IO state machine: Kafka 4.1's
//! `ConsumerGroup` together with the consumer-group parts of its `GroupMetadataManager`,
//! `CurrentAssignmentBuilder` and `TargetAssignmentBuilder`, and its server-side assignors.
//!
//! # What it owns
//!
//! One [`ConsumerGroup`] per group id: the group epoch, the subscribed topics' metadata,
//! the members (subscriptions and current assignments), the target assignment and its
//! epoch, the index of which partitions are owned at which epoch, and the members' session
//! and rebalance timers. It does no I/O and reads no clock: a heartbeat comes in with
//! `now_ms` and a [`TopicsSnapshot`] of the cluster's topics; a v0 member id is made from a
//! caller-supplied UUID; changes go out as typed records in [`Effect::Persist`] (already
//! applied, through [`ConsumerGroup::replay`], the same path that loads a group); timers go
//! out as [`Effect::ScheduleTimer`] and fire through [`ConsumerGroup::tick`].
//!
//! The caller (the coordinator, issue 11) owns: looking groups up and creating them (a
//! heartbeat with epoch 0 creates the group; any other for a missing group, or for a
//! classic group, is GROUP_ID_NOT_FOUND there), COORDINATOR_NOT_AVAILABLE/NOT_COORDINATOR,
//! encoding the records and the responses, and holding each response until its records
//! are appended. Kafka applies records at once and reverts them if the append fails; here a
//! failed append means the partition is being unloaded or must be reloaded from the log.
//!
//! # A heartbeat, step by step
//!
//! 1. Validate the request (INVALID_REQUEST with Kafka's messages, UNSUPPORTED_ASSIGNOR),
//!    then the group size (GROUP_MAX_SIZE_REACHED), then the member: a new one (epoch 0),
//!    a known one at its epoch (or its previous epoch, if it owns a subset of its
//!    assignment: the response with the bump was lost), else FENCED_MEMBER_EPOCH or
//!    UNKNOWN_MEMBER_ID; static members by instance id (UNRELEASED_INSTANCE_ID,
//!    FENCED_INSTANCE_ID).
//! 2. Update the member's metadata; a new member, a changed subscription, or a change in
//!    the subscribed topics' partition counts bumps the group epoch.
//! 3. If the group epoch is past the assignment epoch, the assignor computes a new target
//!    assignment for every member.
//! 4. Reconcile the member's current assignment towards its target (below).
//! 5. Re-arm its session; answer with its id, epoch, the heartbeat interval and, when it
//!    changed (or the request was a full one), its assigned partitions.
//!
//! Epoch -1 leaves (the member is removed, the group epoch bumped); -2 is a static member
//! leaving for a while: it keeps its partitions until it rejoins (with epoch 0 and a new
//! member id, taking over the old member's assignment) or its session expires.
//!
//! # Member states (reconciliation)
//!
//! ```text
//!                 new target epoch; partitions to revoke still owned
//!   Stable ---------------------------------------------> UnrevokedPartitions
//!     ^  ^                                                     |
//!     |  |  all partitions revoked (absent from the owned      |
//!     |  |  partitions of a heartbeat): epoch + 1, towards      |
//!     |  +---- the target again --------------------------------+
//!     |                                                         |
//!     | all target partitions released by their                 | (then as from Stable)
//!     | previous owners                                         v
//!     +------------------------------------------------ UnreleasedPartitions
//!             target epoch reached, but some target partitions
//!             are still owned by other members
//! ```
//!
//! A member that does not revoke within its rebalance timeout is removed.
//!
//! # Group states
//!
//! Computed, as Kafka's: `Empty` (no members), `Assigning` (group epoch > assignment
//! epoch), `Reconciling` (some member not Stable at the assignment epoch), `Stable`;
//! `Dead` once deleted.
//!
//! # Invariants
//!
//! - No partition is owned (assigned or pending revocation) by two members; a partition
//!   is given to a new owner only once its previous owner has revoked it.
//! - The group epoch and the assignment epoch never decrease; assignment epoch <= group
//!   epoch; every member epoch <= the assignment epoch.
//! - A member Stable at the assignment epoch owns exactly its target.
//! - The owned-partition index matches the members' current assignments (checked by
//!   [`ConsumerGroup::replay`], which refuses records that would break it).
//! - A member's epoch only moves forward, except when it rejoins with epoch 0 or a static
//!   member leaves with -2.
//!
//! # Left out on purpose, and deviations from Kafka
//!
//! - Regex subscriptions (`SubscribedTopicRegex`, v1) are resolved against the caller's
//!   topic snapshot on every heartbeat, synchronously, and not persisted (Kafka resolves
//!   them asynchronously and writes `ConsumerGroupRegularExpression` records); see
//!   `regex`.
//! - Classic-protocol members in a consumer group (online upgrade and downgrade), rack-aware
//!   assignment (racks are stored, not used), per-group dynamic configs, metrics.
//! - Subscription metadata is compared with the caller's snapshot on every heartbeat
//!   (Kafka: every `metadata.refresh.interval`, and in 4.1 by metadata hash).
//! - A known dynamic member that heartbeats with epoch 0 (a Java 4.x client rejoining with
//!   its own member id after FENCED_MEMBER_EPOCH) rejoins: its current assignment is
//!   dropped and it reconciles from epoch 0 (the 2024 snapshot would fence it again).
//!   Likewise a static member rejoining with the member id that still holds its instance.
//! - A static member replaced on rejoin restarts Stable (Kafka copies the old state).
//! - `group.consumer.max.size` refuses only new members, after the member checks (Kafka
//!   checks first, so there a static member rejoining a full group under a new member id
//!   is refused too, and an unknown member of a full group gets GROUP_MAX_SIZE_REACHED).
//! - A new member always bumps the group epoch (Kafka: only if its subscription is not
//!   empty; an empty one would leave it at epoch 0 in a group never assigned).
//! - Ties for the preferred server assignor go to the smaller name (Kafka: hash order).

mod assignment;
pub mod assignor;
mod describe;
mod heartbeat;
pub mod member;
mod offsets;
pub mod records;
mod regex;
mod timers;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use uuid::Uuid;

use member::Member;
use records::ConsumerGroupRecord;
pub use types::*;

/// A group's state (Kafka's `ConsumerGroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's name, as ConsumerGroupDescribe and ListGroups report it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Everything the records rebuild: two groups that replayed the same records are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GroupData {
    group_epoch: i32,
    /// The subscribed topics that exist, by name (Kafka's subscription metadata).
    subscription_metadata: BTreeMap<String, TopicInfo>,
    members: BTreeMap<String, Member>,
    /// Instance id -> member id.
    static_members: BTreeMap<String, String>,
    assignment_epoch: i32,
    /// Member id -> target partitions.
    target_assignment: BTreeMap<String, Partitions>,
    /// Topic id -> partition -> epoch of the member owning it (assigned or revoking).
    partition_epochs: BTreeMap<Uuid, BTreeMap<i32, i32>>,
}

/// A timer's deadline, and the arming sequence number that keeps a tick from firing timers
/// armed during that same tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline {
    at_ms: i64,
    armed_seq: u64,
}

/// One consumer group. See the module docs.
#[derive(Debug)]
pub struct ConsumerGroup {
    group_id: String,
    config: ConsumerGroupConfig,
    data: GroupData,
    /// A group tombstone was replayed.
    deleted: bool,
    timers: BTreeMap<TimerKind, Deadline>,
    /// The member epoch each rebalance timer was armed for.
    rebalance_timer_epochs: BTreeMap<String, i32>,
    timer_seq: u64,
}

impl ConsumerGroup {
    /// A new, Empty group (also the starting point for loading one by `replay`).
    pub fn new(group_id: impl Into<String>, config: ConsumerGroupConfig) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.into(),
            config,
            data: GroupData::default(),
            deleted: false,
            timers: BTreeMap::new(),
            rebalance_timer_epochs: BTreeMap::new(),
            timer_seq: 0,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn group_epoch(&self) -> i32 {
        self.data.group_epoch
    }

    pub fn assignment_epoch(&self) -> i32 {
        self.data.assignment_epoch
    }

    /// Kafka's `maybeUpdateGroupState`, computed on demand.
    pub fn state(&self) -> GroupState {
        let data = &self.data;
        if self.deleted {
            GroupState::Dead
        } else if data.members.is_empty() {
            GroupState::Empty
        } else if data.group_epoch > data.assignment_epoch {
            GroupState::Assigning
        } else if data
            .members
            .values()
            .any(|m| !m.is_reconciled_to(data.assignment_epoch))
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    pub fn member_ids(&self) -> impl Iterator<Item = &str> {
        self.data.members.keys().map(String::as_str)
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.data.members.get(member_id)
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.data.members.contains_key(member_id)
    }

    /// A member's target assignment (empty if it has none).
    pub fn target_assignment(&self, member_id: &str) -> Partitions {
        let target = self.data.target_assignment.get(member_id);
        target.cloned().unwrap_or_default()
    }

    /// Whether some member subscribes to `topic` (Kafka's `isSubscribedToTopic`, for
    /// OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        let mut members = self.data.members.values();
        members.any(|m| regex::subscribes(&m.metadata, topic))
    }

    /// The epoch of the member owning a partition, or -1 if none does.
    pub fn current_partition_epoch(&self, topic_id: Uuid, partition: i32) -> i32 {
        let topic = self.data.partition_epochs.get(&topic_id);
        topic.and_then(|t| t.get(&partition)).copied().unwrap_or(-1)
    }

    /// The earliest timer deadline, for a caller that keeps one timer per group.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.values().map(|d| d.at_ms).min()
    }

    /// The assignor the group uses: the one most members ask for (ties to the smaller
    /// name), else the configured default (Kafka's `computePreferredServerAssignor`).
    fn preferred_assignor(&self) -> assignor::Assignor {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let requested = self.data.members.values();
        for name in requested.filter_map(|m| m.metadata.server_assignor.as_deref()) {
            *counts.entry(name).or_default() += 1;
        }
        let most = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
        let by_name = most.and_then(|(name, _)| assignor::Assignor::from_name(name));
        by_name
            .or_else(|| self.config.assignors.first().copied())
            .unwrap_or(assignor::Assignor::Uniform)
    }

    /// Applies records the group made itself and adds them to `records`. A record the
    /// group made that it cannot apply is a bug, not bad input: it stops the process.
    fn apply(&mut self, new: Vec<ConsumerGroupRecord>, records: &mut Vec<ConsumerGroupRecord>) {
        for record in new {
            if let Err(e) = self.replay(record.clone()) {
                panic!("group {}: own record {record:?}: {e}", self.group_id);
            }
            records.push(record);
        }
    }

    /// The records that delete the group (Kafka's `createGroupTombstoneRecords`), applied;
    /// NON_EMPTY_GROUP if it has members (Kafka's `validateDeleteGroup`).
    pub fn delete(&mut self) -> Result<Vec<ConsumerGroupRecord>, GroupError> {
        if !self.data.members.is_empty() {
            return Err(GroupError::NonEmptyGroup(format!(
                "Group {} is not empty.",
                self.group_id
            )));
        }
        let targets = self.data.target_assignment.keys().cloned();
        let mut tombstones: Vec<_> = targets
            .map(|member_id| ConsumerGroupRecord::TargetAssignmentMemberTombstone { member_id })
            .collect();
        tombstones.extend([
            ConsumerGroupRecord::TargetAssignmentMetadataTombstone,
            ConsumerGroupRecord::PartitionMetadataTombstone,
            ConsumerGroupRecord::GroupMetadataTombstone,
        ]);
        let mut records = Vec::new();
        self.apply(tombstones, &mut records);
        self.timers.clear();
        self.rebalance_timer_epochs.clear();
        Ok(records)
    }
}
