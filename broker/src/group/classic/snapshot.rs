//! The group as `__consumer_offsets` stores it (Kafka's `newGroupMetadataRecord` and
//! `replay`), as DescribeGroups and ListGroups show it, and its end when the coordinator
//! unloads it.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use sluice_protocol::consumer_protocol;
use sluice_protocol::error::ErrorCode;

use super::member::Member;
use super::{
    ClassicGroup, ClassicGroupConfig, Effect, GroupDescription, GroupSnapshot, GroupState,
    JoinResponse, ListedGroup, MemberDescription, MemberSnapshot, Protocol, SyncResponse,
};

impl ClassicGroup {
    /// The record to persist, with `assignment` (members missing from it keep theirs).
    pub(super) fn snapshot(&self, assignment: &BTreeMap<String, Bytes>) -> GroupSnapshot {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        let members = self.members.values().map(|m| MemberSnapshot {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout_ms,
            subscription: m.metadata(protocol).cloned().unwrap_or_default(),
            assignment: assignment
                .get(&m.member_id)
                .unwrap_or(&m.assignment)
                .clone(),
        });
        GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms.unwrap_or(-1),
            members: members.collect(),
        }
    }

    /// Rebuilds a group from its last persisted record when the coordinator loads the
    /// partition: Empty without members, else Stable with every member's session started
    /// now. A group over `group_size_max` (the limit was lowered) rebalances at once.
    pub fn load(
        group_id: impl Into<String>,
        snapshot: GroupSnapshot,
        config: ClassicGroupConfig,
        now_ms: i64,
    ) -> (ClassicGroup, Vec<Effect>) {
        let mut group = ClassicGroup::new(group_id, config);
        let mut out = Vec::new();
        let state = match snapshot.members.is_empty() {
            true => GroupState::Empty,
            false => GroupState::Stable,
        };
        group.state = state;
        group.previous_state = state;
        group.generation_id = snapshot.generation_id;
        let protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
        group.protocol_type = protocol_type.clone();
        group.protocol_name = snapshot.protocol_name.clone();
        group.leader_id = snapshot.leader;
        group.state_timestamp_ms = Some(snapshot.current_state_timestamp_ms).filter(|&t| t != -1);
        for m in snapshot.members {
            let member = Member {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: match m.rebalance_timeout_ms {
                    -1 => m.session_timeout_ms,
                    timeout_ms => timeout_ms,
                },
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: protocol_type.clone().unwrap_or_default(),
                protocols: vec![Protocol {
                    name: snapshot.protocol_name.clone().unwrap_or_default(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            };
            let (member_id, session_ms) = (member.member_id.clone(), member.session_timeout_ms);
            group.add_member(member);
            group.schedule_heartbeat(&member_id, session_ms, now_ms, &mut out);
        }
        if group.members.len() > group.config.group_size_max {
            // A chance for the members to commit before some are turned away.
            group.prepare_rebalance(now_ms, &mut out);
        }
        (group, out)
    }

    /// The group for DescribeGroups: members' metadata and the protocol only when Stable.
    pub fn describe(&self) -> GroupDescription {
        let stable_protocol = match self.state {
            GroupState::Stable => self.protocol_name.as_deref(),
            _ => None,
        };
        let members = self.members.values().map(|m| MemberDescription {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            metadata: stable_protocol
                .and_then(|p| m.metadata(p).cloned())
                .unwrap_or_default(),
            assignment: m.assignment.clone(),
        });
        GroupDescription {
            state: self.state.as_str(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_data: stable_protocol.unwrap_or_default().to_string(),
            members: members.collect(),
        }
    }

    /// The topics the members subscribe to (Kafka's `computeSubscribedTopics`): empty for a
    /// group without members; `None` when not known (the protocol type is not `consumer`,
    /// or a member's subscription cannot be decoded), which callers treat as "every topic".
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        if self.protocol_type.as_deref() != Some(consumer_protocol::PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata = member.metadata(protocol)?.clone();
            let subscription = consumer_protocol::decode_subscription(metadata).ok()?;
            topics.extend(subscription.message.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// The group for ListGroups.
    pub fn list_state(&self) -> ListedGroup {
        ListedGroup {
            state: self.state.as_str(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
        }
    }

    /// The coordinator gave up the group's partition: the group is Dead, parked requests
    /// are told NOT_COORDINATOR (so clients find the new coordinator), timers stop.
    pub fn unload(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut out = Vec::new();
        self.transition_to(GroupState::Dead, now_ms);
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_join.take() {
                let error = ErrorCode::NotCoordinator;
                let response = JoinResponse::error(error, &member.member_id);
                out.push(Effect::Join { token, response });
            }
            if let Some(token) = member.awaiting_sync.take() {
                let response = SyncResponse::error(ErrorCode::NotCoordinator);
                out.push(Effect::Sync { token, response });
            }
        }
        self.heartbeat_timers.clear();
        self.join_timer = None;
        self.sync_timer = None;
        self.pending_persists.clear();
        out
    }
}
