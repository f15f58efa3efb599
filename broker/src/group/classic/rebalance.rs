//! The rebalance core shared by every request and timer: adding and removing members,
//! starting a rebalance (Kafka's `prepareRebalance`), ending the join phase
//! (`completeClassicGroupJoin`) and handing out assignments (`propagateAssignment`).

use std::collections::BTreeMap;

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;

use super::member::{select_protocol, Member};
use super::{
    ClassicGroup, Effect, GroupState, JoinResponse, JoinResponseMember, JoinTimer, PendingPersist,
    SyncResponse,
};

impl ClassicGroup {
    /// Kafka's `add`: the first member sets the protocol type and becomes leader.
    pub(super) fn add_member(&mut self, member: Member) {
        assert!(
            !self.members.contains_key(&member.member_id),
            "member {} added twice",
            member.member_id
        );
        if let Some(instance_id) = &member.group_instance_id {
            let previous = self
                .static_members
                .insert(instance_id.clone(), member.member_id.clone());
            assert!(
                previous.is_none(),
                "instance {instance_id} already a member"
            );
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Kafka's `remove`, plus what its callers do around it: a parked JoinGroup is told
    /// UNKNOWN_MEMBER_ID (so a live client rejoins), the session timer goes, and a departed
    /// leader is succeeded by the first remaining member.
    pub(super) fn remove_member(&mut self, member_id: &str, out: &mut Vec<Effect>) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(token) = member.awaiting_join {
                let response = JoinResponse::error(ErrorCode::UnknownMemberId, "");
                out.push(Effect::Join { token, response });
            }
            if let Some(token) = member.awaiting_sync {
                let response = SyncResponse::error(ErrorCode::UnknownMemberId);
                out.push(Effect::Sync { token, response });
            }
            if let Some(instance_id) = &member.group_instance_id {
                self.static_members.remove(instance_id);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync_members.remove(member_id);
        self.heartbeat_timers.remove(member_id);
    }

    /// Starts a rebalance if the state allows one, else tries to end the join phase.
    pub(super) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(now_ms, out);
        } else {
            self.maybe_complete_join_phase(now_ms, out);
        }
    }

    /// Kafka's `prepareRebalance`: parked syncs are told REBALANCE_IN_PROGRESS, and the
    /// join phase starts, with the initial delay if the group was Empty.
    pub(super) fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment(ErrorCode::RebalanceInProgress, now_ms, out);
        }
        self.pending_sync_members.clear();
        self.sync_timer = None;

        let is_initial = self.state == GroupState::Empty;
        if is_initial {
            let delay_ms = self.config.initial_rebalance_delay_ms;
            let remaining_ms = (self.rebalance_timeout_ms() - delay_ms).max(0);
            let timer = JoinTimer::InitialDelay {
                delay_ms,
                remaining_ms,
            };
            self.schedule_join_timer(timer, delay_ms, now_ms, out);
        }
        self.transition_to(GroupState::PreparingRebalance, now_ms);
        if !is_initial {
            if self.has_all_members_joined() {
                self.complete_join(now_ms, out);
            } else {
                let timeout_ms = self.rebalance_timeout_ms();
                self.schedule_join_timer(JoinTimer::Rebalance, timeout_ms, now_ms, out);
            }
        }
    }

    /// Kafka's `maybeCompleteJoinPhase`: ends the join phase once every known member has
    /// rejoined, except during the initial rebalance, which only its timer ends.
    pub(super) fn maybe_complete_join_phase(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now_ms, out);
        }
    }

    /// Kafka's `tryCompleteInitialRebalanceElseSchedule`.
    pub(super) fn complete_initial_rebalance_or_wait(
        &mut self,
        delay_ms: i32,
        remaining_ms: i32,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        if self.new_member_added && remaining_ms != 0 {
            self.new_member_added = false;
            let next_delay_ms = self.config.initial_rebalance_delay_ms.min(remaining_ms);
            let next_remaining_ms = (remaining_ms - delay_ms).max(0);
            let timer = JoinTimer::InitialDelay {
                delay_ms: next_delay_ms,
                remaining_ms: next_remaining_ms,
            };
            self.schedule_join_timer(timer, next_delay_ms, now_ms, out);
        } else {
            self.complete_join(now_ms, out);
        }
    }

    /// Kafka's `completeClassicGroupJoin`: drops dynamic members that did not rejoin, then
    /// starts the next generation and answers every parked JoinGroup. If no member
    /// rejoined at all the phase is extended by another rebalance timeout.
    pub(super) fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        self.join_timer = None;
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &not_rejoined {
            self.remove_member(member_id, out);
        }

        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            let timeout_ms = self.rebalance_timeout_ms();
            self.schedule_join_timer(JoinTimer::Rebalance, timeout_ms, now_ms, out);
            return;
        }
        self.init_next_generation(now_ms);
        if self.state == GroupState::Empty {
            let snapshot = self.snapshot(&BTreeMap::new());
            let id = self.new_persist(PendingPersist::EmptyGeneration);
            out.push(Effect::Persist { id, snapshot });
        } else {
            self.answer_joins(now_ms, out);
            let timeout_ms = self.rebalance_timeout_ms();
            self.schedule_sync_timer(timeout_ms, now_ms, out);
        }
    }

    /// Answers every parked JoinGroup with the new generation; every member restarts its
    /// session and is expected to sync.
    fn answer_joins(&mut self, now_ms: i64, out: &mut Vec<Effect>) {
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        let leader_view = self.current_members();
        for member_id in member_ids {
            let mut response = self.join_response(&member_id, false);
            if self.is_leader(&member_id) {
                response.members = leader_view.clone();
            }
            let member = self.members.get_mut(&member_id).expect("listed member");
            if let Some(token) = member.awaiting_join.take() {
                out.push(Effect::Join { token, response });
            }
            member.is_new = false;
            let session_ms = member.session_timeout_ms;
            self.schedule_heartbeat(&member_id, session_ms, now_ms, out);
            self.pending_sync_members.insert(member_id);
        }
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keeps the leader if it rejoined, else picks a
    /// member that did. False if there is no leader or nobody rejoined.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader_id else {
            return false;
        };
        if self.members[leader].is_awaiting_join() {
            return true;
        }
        match self.members.values().find(|m| m.is_awaiting_join()) {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Kafka's `initNextGeneration`.
    fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition_to(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = select_protocol(self.members.values());
            assert!(self.protocol_name.is_some(), "members share no protocol");
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync_members.clear();
    }

    /// A successful JoinGroup response for `member_id` in the current generation, without
    /// the member list.
    pub(super) fn join_response(&self, member_id: &str, skip_assignment: bool) -> JoinResponse {
        JoinResponse {
            error: ErrorCode::None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }

    /// Every member's metadata for the chosen protocol (the leader's JoinGroup response).
    pub(super) fn current_members(&self) -> Vec<JoinResponseMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinResponseMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Kafka's `resetAndPropagateAssignmentWithError`.
    pub(super) fn reset_and_propagate_assignment(
        &mut self,
        error: ErrorCode,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        assert_eq!(self.state, GroupState::CompletingRebalance);
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(error, now_ms, out);
    }

    /// Kafka's `setAndPropagateAssignment`: members missing from `assignment` get an empty
    /// one.
    pub(super) fn set_and_propagate_assignment(
        &mut self,
        assignment: &BTreeMap<String, Bytes>,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        assert_eq!(self.state, GroupState::CompletingRebalance);
        for member in self.members.values_mut() {
            member.assignment = assignment
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
        }
        self.propagate_assignment(ErrorCode::None, now_ms, out);
    }

    /// Answers every parked SyncGroup with its member's assignment and `error`, restarting
    /// those members' sessions.
    fn propagate_assignment(&mut self, error: ErrorCode, now_ms: i64, out: &mut Vec<Effect>) {
        let (protocol_type, protocol_name) = match error {
            ErrorCode::None => (self.protocol_type.clone(), self.protocol_name.clone()),
            _ => (None, None),
        };
        let mut answered = Vec::new();
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_sync.take() {
                let response = SyncResponse {
                    error,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                out.push(Effect::Sync { token, response });
                answered.push((member.member_id.clone(), member.session_timeout_ms));
            }
        }
        for (member_id, session_ms) in answered {
            self.schedule_heartbeat(&member_id, session_ms, now_ms, out);
        }
    }
}
