//! The classic consumer group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) for one
//! group, as a sans-IO state machine: Kafka 4.1's `ClassicGroup` together with the classic
//! parts of its `GroupMetadataManager`.
//!
//! # What it owns
//!
//! One [`ClassicGroup`] per group id: its state, generation, protocol type and chosen
//! protocol, leader, members (with their parked JoinGroup/SyncGroup requests), pending
//! members (dynamic members told MEMBER_ID_REQUIRED), and its timers. It does no I/O and
//! reads no clock: requests come in with `now_ms`, responses go out as [`Effect`]s, a
//! request answered later is named by a caller-supplied [`RequestToken`], new member ids
//! take a caller-supplied UUID, writes to `__consumer_offsets` go out as
//! [`Effect::Persist`] and come back through [`ClassicGroup::on_persisted`], and timers go
//! out as [`Effect::ScheduleTimer`] and fire through [`ClassicGroup::tick`].
//!
//! The caller (the coordinator, issue 11) owns what is not one group's: looking groups up
//! and creating them (a JoinGroup with a member id for a group that does not exist is
//! UNKNOWN_MEMBER_ID there, as are SyncGroup/Heartbeat/LeaveGroup), INVALID_GROUP_ID for
//! an empty group id, COORDINATOR_NOT_AVAILABLE/NOT_COORDINATOR before the group is
//! consulted, and encoding.
//!
//! # States
//!
//! ```text
//!                 first member joins (initial delay)
//!        Empty  ------------------------------------>  PreparingRebalance
//!          ^                                            |   ^        ^
//!          | join phase ends with no members            |   |        |
//!          +--------------------------------------------+   |        | member joins/leaves/
//!                                                       |   |        | fails, leader rejoins,
//!            join phase ends (all known members         |   |        | metadata changes
//!            rejoined, or the rebalance timeout):        v   |        |
//!            generation + 1, protocol chosen      CompletingRebalance |
//!                                                       |            |
//!            leader's SyncGroup, assignment persisted   v            |
//!                                                    Stable ---------+
//!
//!        any state --(unload)--> Dead
//! ```
//!
//! Kafka's allowed transitions (above) are asserted on every transition.
//!
//! # Protocol
//!
//! 1. JoinGroup. A dynamic member's first join (v4+) is answered MEMBER_ID_REQUIRED with a
//!    new id `<client id>-<uuid>`; the id is pending until the member rejoins with it. A
//!    static member (`group.instance.id`) gets `<instance id>-<uuid>` at once, replacing
//!    (and fencing) the instance's previous member id. Joins are parked until the join
//!    phase ends: when every known member has rejoined, or the rebalance timeout (the
//!    largest of the members') fires and the members that did not rejoin are dropped. An
//!    Empty group's first rebalance waits `initial_rebalance_delay_ms`, extended by that
//!    much while new members keep joining, up to the rebalance timeout. The phase ends with
//!    generation + 1 and the protocol all members support, chosen by vote; the leader's
//!    response carries every member's metadata.
//! 2. SyncGroup. Members' syncs are parked until the leader's arrives. The leader's
//!    assignment is persisted ([`Effect::Persist`]); when the append succeeds every parked
//!    sync is answered with its member's assignment and the group is Stable; when it fails
//!    they get the append error as Kafka maps it ([`append_error_to_group_error`]) and the
//!    group rebalances.
//! 3. Heartbeat keeps a member's session; LeaveGroup removes members and rebalances.
//!
//! # Invariants
//!
//! - The generation never decreases.
//! - The leader, when there is one, is a member; a group with members has a leader.
//! - In Stable every member has the assignment of the current generation (possibly empty).
//! - Every token handed in is answered by exactly one `Join`/`Sync` effect (see the
//!   deviations below for the two cases Kafka leaves unanswered).
//! - A member that is neither new nor parked in a rebalance has a live session timer, and
//!   [`ClassicGroup::tick`] removes it when that timer passes.
//!
//! # Left out on purpose, and deviations from Kafka
//!
//! - Only classic groups: conversion to and from KIP-848 consumer groups is not here.
//! - Kafka appends an "empty group" record when a JoinGroup creates a group; creation is
//!   the caller's, so it is not emitted here.
//! - Kafka leaves a superseded parked request (a second JoinGroup or SyncGroup from the same
//!   member while the first is parked) and the parked SyncGroup of a member that leaves
//!   unanswered until the client times out; here they are answered with
//!   REBALANCE_IN_PROGRESS and UNKNOWN_MEMBER_ID, so no caller-side handle leaks.
//! - Ties in the protocol vote go to the smallest name (Kafka: hash-map order), and a
//!   departed leader is succeeded by the member with the smallest id.
//! - Limits are Kafka's: members by `group_size_max` (unbounded by default, as in Kafka);
//!   pending member ids are not counted against it, but each lives one session at most.

mod join;
mod member;
mod membership;
mod rebalance;
mod snapshot;
mod sync;
mod timers;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;

use member::Member;
pub use types::*;

/// A group's state (Kafka's `ClassicGroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's name, as DescribeGroups and ListGroups report it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// The states a group may enter this one from.
    fn valid_previous(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// What the join-phase timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    /// End the join phase (the rebalance timeout).
    Rebalance,
    /// Kafka's `InitialDelayedJoin`: end the initial rebalance unless new members arrived
    /// during `delay_ms` and time remains, in which case wait again.
    InitialDelay { delay_ms: i32, remaining_ms: i32 },
}

/// A deadline, and the arming sequence number that keeps a tick from firing timers armed
/// during that same tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline {
    at_ms: i64,
    armed_seq: u64,
}

/// What to do when an append the group asked for ends.
#[derive(Debug, Clone)]
enum PendingPersist {
    /// The join phase ended with no members; a failure is only logged by Kafka.
    EmptyGeneration,
    /// The leader's assignment for `generation_id`.
    Assignment {
        generation_id: i32,
        assignment: BTreeMap<String, Bytes>,
    },
    /// A known static member rejoined with a new id while Stable.
    StaticReplacement(join::StaticReplacement),
}

/// One classic group. See the module docs.
#[derive(Debug)]
pub struct ClassicGroup {
    group_id: String,
    config: ClassicGroupConfig,
    state: GroupState,
    previous_state: GroupState,
    state_timestamp_ms: Option<i64>,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// Instance id -> member id.
    static_members: BTreeMap<String, String>,
    /// Dynamic member ids handed out with MEMBER_ID_REQUIRED and not yet rejoined.
    pending_members: BTreeSet<String>,
    /// Members that got a JoinGroup response this generation and have not sent SyncGroup.
    pending_sync_members: BTreeSet<String>,
    /// A new member joined during the initial delay (it is extended).
    new_member_added: bool,
    heartbeat_timers: BTreeMap<String, Deadline>,
    join_timer: Option<(Deadline, JoinTimer)>,
    /// With the generation it was armed for.
    sync_timer: Option<(Deadline, i32)>,
    timer_seq: u64,
    pending_persists: BTreeMap<PersistId, PendingPersist>,
    next_persist_id: u64,
}

impl ClassicGroup {
    /// A new, Empty group.
    pub fn new(group_id: impl Into<String>, config: ClassicGroupConfig) -> ClassicGroup {
        ClassicGroup {
            group_id: group_id.into(),
            config,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: None,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeSet::new(),
            pending_sync_members: BTreeSet::new(),
            new_member_added: false,
            heartbeat_timers: BTreeMap::new(),
            join_timer: None,
            sync_timer: None,
            timer_seq: 0,
            pending_persists: BTreeMap::new(),
            next_persist_id: 0,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// When the group last changed state (`None` if unknown, as for a group loaded from a
    /// record that did not say).
    pub fn state_timestamp_ms(&self) -> Option<i64> {
        self.state_timestamp_ms
    }

    /// The member ids, in order.
    pub fn member_ids(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// A member's current assignment.
    pub fn assignment(&self, member_id: &str) -> Option<&Bytes> {
        self.members.get(member_id).map(|m| &m.assignment)
    }

    /// Whether `member_id` is a pending (MEMBER_ID_REQUIRED, not yet rejoined) member.
    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains(member_id)
    }

    /// The earliest timer deadline, for a caller that keeps one timer per group.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let heartbeats = self.heartbeat_timers.values().map(|d| d.at_ms);
        let join = self.join_timer.iter().map(|(d, _)| d.at_ms);
        let sync = self.sync_timer.iter().map(|(d, _)| d.at_ms);
        heartbeats.chain(join).chain(sync).min()
    }

    fn transition_to(&mut self, to: GroupState, now_ms: i64) {
        assert!(
            to.valid_previous().contains(&self.state),
            "group {}: invalid transition {:?} -> {:?}",
            self.group_id,
            self.state,
            to
        );
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = Some(now_ms);
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// The largest rebalance timeout of the members (Kafka's group rebalance timeout).
    fn rebalance_timeout_ms(&self) -> i32 {
        let max = self.members.values().map(|m| m.rebalance_timeout_ms).max();
        max.unwrap_or(0).max(0)
    }

    fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_awaiting_join())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.awaiting_join_count() == self.members.len() && self.pending_members.is_empty()
    }

    /// Kafka's `canRebalance`: the states PreparingRebalance may be entered from.
    fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance
            .valid_previous()
            .contains(&self.state)
    }

    /// Kafka's `supportsProtocols`: an Empty group takes any non-empty type and protocol
    /// list; otherwise the type must match and one protocol must be supported by all.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let count = self.members.len();
        protocols.iter().any(|p| {
            let supporters = self
                .members
                .values()
                .filter(|m| m.metadata(&p.name).is_some());
            supporters.count() == count
        })
    }

    /// Kafka's `validateMember`: the instance id (when given) must map to `member_id`, and
    /// the member must exist.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ErrorCode> {
        if let Some(instance_id) = group_instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ErrorCode::UnknownMemberId),
                Some(existing) if existing != member_id => return Err(ErrorCode::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        Ok(())
    }

    fn new_persist(&mut self, pending: PendingPersist) -> PersistId {
        let id = PersistId(self.next_persist_id);
        self.next_persist_id += 1;
        self.pending_persists.insert(id, pending);
        id
    }
}
