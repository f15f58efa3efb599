//! JoinGroup (Kafka's `classicGroupJoinToClassicGroup` and the functions it calls): new
//! dynamic members and MEMBER_ID_REQUIRED, static members and their replacement, existing
//! members rejoining in each state, and the group size and session timeout limits.

use sluice_protocol::error::ErrorCode;
use uuid::Uuid;

use super::member::{select_protocol, Member};
use super::{
    ClassicGroup, Effect, GroupState, JoinRequest, JoinResponse, PendingPersist, Protocol,
    RequestToken,
};

/// JoinGroup v4+ requires a member id: a dynamic member's first join gets one back.
const API_VERSION_MEMBER_ID_REQUIRED: i16 = 4;
/// JoinGroup v9+ lets a static leader skip the assignment when it is replaced while Stable.
const API_VERSION_SKIP_ASSIGNMENT: i16 = 9;

/// What undoing a static member's replacement needs if persisting it fails.
#[derive(Debug, Clone)]
pub(super) struct StaticReplacement {
    token: RequestToken,
    api_version: i16,
    instance_id: String,
    old_member_id: String,
    new_member_id: String,
    old_protocols: Vec<Protocol>,
    old_rebalance_timeout_ms: i32,
    old_session_timeout_ms: i32,
    leader_before: String,
}

impl StaticReplacement {
    #[cfg(test)]
    pub(super) fn token(&self) -> RequestToken {
        self.token
    }
}

fn respond(out: &mut Vec<Effect>, token: RequestToken, error: ErrorCode, member_id: &str) {
    let response = JoinResponse::error(error, member_id);
    out.push(Effect::Join { token, response });
}

impl ClassicGroup {
    /// Handles a JoinGroup. The response comes as an [`Effect::Join`] for `token`, now or
    /// when the join phase ends. `fresh_uuid` makes the member id if one is handed out.
    pub fn join(
        &mut self,
        token: RequestToken,
        request: JoinRequest,
        fresh_uuid: Uuid,
        now_ms: i64,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let session_ms = request.session_timeout_ms;
        if session_ms < self.config.session_timeout_ms_min
            || session_ms > self.config.session_timeout_ms_max
        {
            let error = ErrorCode::InvalidSessionTimeout;
            respond(&mut out, token, error, &request.member_id);
        } else if !self.accepts_joining_member(&request.member_id) {
            self.remove_member(&request.member_id, &mut out);
            respond(&mut out, token, ErrorCode::GroupMaxSizeReached, "");
        } else if request.member_id.is_empty() {
            self.join_new_member(token, request, fresh_uuid, now_ms, &mut out);
        } else {
            self.join_existing_member(token, request, now_ms, &mut out);
        }
        out
    }

    /// Kafka's `acceptJoiningMember`. While preparing a rebalance the count is of members
    /// that rejoined, so the last to rejoin of an oversized group are the ones turned away.
    fn accepts_joining_member(&self, member_id: &str) -> bool {
        let max = self.config.group_size_max;
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                let rejoined = self.members.get(member_id);
                rejoined.is_some_and(Member::is_awaiting_join) || self.awaiting_join_count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max
            }
        }
    }

    fn join_new_member(
        &mut self,
        token: RequestToken,
        request: JoinRequest,
        fresh_uuid: Uuid,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        if self.state == GroupState::Dead {
            return respond(out, token, ErrorCode::CoordinatorNotAvailable, "");
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return respond(out, token, ErrorCode::InconsistentGroupProtocol, "");
        }
        let prefix = request
            .group_instance_id
            .as_deref()
            .unwrap_or(&request.client_id);
        let new_member_id = format!("{prefix}-{fresh_uuid}");
        let existing = (request.group_instance_id.as_ref())
            .and_then(|instance_id| self.static_members.get(instance_id).cloned());
        if let Some(old_member_id) = existing {
            let ids = (old_member_id, new_member_id);
            self.replace_static_member_then_rebalance(token, request, ids, now_ms, out);
        } else if request.group_instance_id.is_some()
            || request.api_version < API_VERSION_MEMBER_ID_REQUIRED
        {
            self.add_member_then_rebalance(token, request, new_member_id, now_ms, out);
        } else {
            // The id is reserved until the member rejoins with it, for one session at most.
            self.pending_members.insert(new_member_id.clone());
            let session_ms = request.session_timeout_ms;
            self.schedule_heartbeat(&new_member_id, session_ms, now_ms, out);
            respond(out, token, ErrorCode::MemberIdRequired, &new_member_id);
        }
    }

    fn join_existing_member(
        &mut self,
        token: RequestToken,
        request: JoinRequest,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let member_id = request.member_id.clone();
        if self.state == GroupState::Dead {
            return respond(out, token, ErrorCode::CoordinatorNotAvailable, &member_id);
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            let error = ErrorCode::InconsistentGroupProtocol;
            return respond(out, token, error, &member_id);
        }
        if self.pending_members.contains(&member_id) {
            // Pending ids are only handed to dynamic members; Kafka fails such a request
            // with an IllegalStateException, which reaches the client as this code.
            if request.group_instance_id.is_some() {
                let error = ErrorCode::UnknownServerError;
                return respond(out, token, error, &member_id);
            }
            return self.add_member_then_rebalance(token, request, member_id, now_ms, out);
        }
        let instance_id = request.group_instance_id.as_deref();
        if let Err(error) = self.validate_member(&member_id, instance_id) {
            return respond(out, token, error, &member_id);
        }
        let member = &self.members[&member_id];
        let unchanged = member.matches(&request.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_then_rebalance(token, &request, now_ms, out)
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged
                    && !(self.state == GroupState::Stable && self.is_leader(&member_id)) =>
            {
                // A lost JoinGroup response, or a follower with nothing new: the current
                // generation as it is (the member list only for the leader, and only while
                // the assignment is still to come).
                let mut response = self.join_response(&member_id, false);
                if self.state == GroupState::CompletingRebalance && self.is_leader(&member_id) {
                    response.members = self.current_members();
                }
                out.push(Effect::Join { token, response });
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                // New metadata, or the leader asking for a rebalance.
                self.update_member_then_rebalance(token, &request, now_ms, out)
            }
            GroupState::Empty | GroupState::Dead => {
                respond(out, token, ErrorCode::UnknownMemberId, &member_id)
            }
        }
    }

    fn add_member_then_rebalance(
        &mut self,
        token: RequestToken,
        request: JoinRequest,
        member_id: String,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            protocol_type: request.protocol_type,
            protocols: request.protocols,
            assignment: Default::default(),
            awaiting_join: Some(token),
            awaiting_sync: None,
            is_new: true,
        };
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty
        {
            self.new_member_added = true;
        }
        self.add_member(member);
        // A new member cannot heartbeat (it has no id yet on the client), and a client
        // that gave up on a long rebalance would otherwise stay: its join times out.
        let timeout_ms = self.config.new_member_join_timeout_ms;
        self.schedule_heartbeat(&member_id, timeout_ms, now_ms, out);
        self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
    }

    fn update_member_then_rebalance(
        &mut self,
        token: RequestToken,
        request: &JoinRequest,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let member_id = &request.member_id;
        let protocols = request.protocols.clone();
        let (rebalance_ms, session_ms) = (request.rebalance_timeout_ms, request.session_timeout_ms);
        self.update_member(
            member_id,
            protocols,
            (rebalance_ms, session_ms),
            Some(token),
            out,
        );
        self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
    }

    /// Kafka's `updateMember`. `timeouts_ms` is (rebalance, session). A JoinGroup already
    /// parked for the member is superseded (answered REBALANCE_IN_PROGRESS; Kafka drops it).
    fn update_member(
        &mut self,
        member_id: &str,
        protocols: Vec<Protocol>,
        timeouts_ms: (i32, i32),
        token: Option<RequestToken>,
        out: &mut Vec<Effect>,
    ) {
        let member = self
            .members
            .get_mut(member_id)
            .expect("updated member exists");
        member.protocols = protocols;
        (member.rebalance_timeout_ms, member.session_timeout_ms) = timeouts_ms;
        let superseded = std::mem::replace(&mut member.awaiting_join, token);
        if let (Some(old), Some(_)) = (superseded, token) {
            respond(out, old, ErrorCode::RebalanceInProgress, member_id);
        }
    }

    /// Kafka's `replaceStaticMember`: the old id is fenced (its parked requests answered
    /// FENCED_INSTANCE_ID) and the member continues under the new id.
    fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
        out: &mut Vec<Effect>,
    ) {
        let mut member = self
            .members
            .remove(old_member_id)
            .expect("replaced member exists");
        if let Some(token) = member.awaiting_join.take() {
            respond(out, token, ErrorCode::FencedInstanceId, old_member_id);
        }
        if let Some(token) = member.awaiting_sync.take() {
            let response = super::SyncResponse::error(ErrorCode::FencedInstanceId);
            out.push(Effect::Sync { token, response });
        }
        self.heartbeat_timers.remove(old_member_id);
        member.member_id = new_member_id.to_string();
        member.is_new = false;
        self.members.insert(new_member_id.to_string(), member);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_string());
        }
        let new_id = new_member_id.to_string();
        self.static_members.insert(instance_id.to_string(), new_id);
    }

    /// Kafka's `updateStaticMemberThenRebalanceOrCompleteJoin`: a known static member
    /// rejoins without its member id. While Stable, if the protocol would not change, the
    /// group only persists the new id and answers after the append; otherwise it rebalances.
    fn replace_static_member_then_rebalance(
        &mut self,
        token: RequestToken,
        request: JoinRequest,
        (old_member_id, new_member_id): (String, String),
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        let instance_id = request.group_instance_id.clone().expect("static member");
        let leader_before = self.leader_id.clone().unwrap_or_default();
        self.replace_static_member(&instance_id, &old_member_id, &new_member_id, out);
        let member = &self.members[&new_member_id];
        let replacement = StaticReplacement {
            token,
            api_version: request.api_version,
            instance_id,
            old_member_id,
            new_member_id: new_member_id.clone(),
            old_protocols: member.protocols.clone(),
            old_rebalance_timeout_ms: member.rebalance_timeout_ms,
            old_session_timeout_ms: member.session_timeout_ms,
            leader_before,
        };
        self.schedule_heartbeat(&new_member_id, member.session_timeout_ms, now_ms, out);
        let timeouts_ms = (request.rebalance_timeout_ms, request.session_timeout_ms);
        let protocols = request.protocols;
        self.update_member(&new_member_id, protocols, timeouts_ms, Some(token), out);

        match self.state {
            GroupState::Stable => {
                if self.protocol_name == select_protocol(self.members.values()) {
                    let assignment = self.group_assignment();
                    let snapshot = self.snapshot(&assignment);
                    let pending = PendingPersist::StaticReplacement(replacement);
                    let id = self.new_persist(pending);
                    out.push(Effect::Persist { id, snapshot });
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
                }
            }
            GroupState::CompletingRebalance => self.prepare_rebalance(now_ms, out),
            _ => self.maybe_complete_join_phase(now_ms, out),
        }
    }

    /// The append of a static member's new id ended: answer its JoinGroup, or undo the
    /// replacement and answer with the append error.
    pub(super) fn on_static_replacement_persisted(
        &mut self,
        replacement: StaticReplacement,
        result: Result<(), ErrorCode>,
        out: &mut Vec<Effect>,
        now_ms: i64,
    ) {
        let StaticReplacement {
            token,
            new_member_id,
            ..
        } = &replacement;
        let still_parked = self
            .members
            .get(new_member_id)
            .is_some_and(|m| m.awaiting_join == Some(*token));
        if !still_parked {
            return; // Already answered by a rebalance or the member's removal.
        }
        match result {
            Ok(()) => {
                let leader = self.is_leader(new_member_id);
                let mut response = if replacement.api_version >= API_VERSION_SKIP_ASSIGNMENT {
                    let mut response = self.join_response(new_member_id, leader);
                    if leader {
                        response.members = self.current_members();
                    }
                    response
                } else {
                    self.join_response(new_member_id, false)
                };
                if replacement.api_version < API_VERSION_SKIP_ASSIGNMENT {
                    response.leader = replacement.leader_before.clone();
                }
                let member = self.members.get_mut(new_member_id).expect("parked member");
                member.awaiting_join = None;
                out.push(Effect::Join {
                    token: *token,
                    response,
                });
            }
            Err(error) => self.undo_static_replacement(replacement, error, out, now_ms),
        }
    }

    fn undo_static_replacement(
        &mut self,
        replacement: StaticReplacement,
        error: ErrorCode,
        out: &mut Vec<Effect>,
        now_ms: i64,
    ) {
        let r = replacement;
        let timeouts_ms = (r.old_rebalance_timeout_ms, r.old_session_timeout_ms);
        self.update_member(&r.new_member_id, r.old_protocols, timeouts_ms, None, out);
        self.replace_static_member(&r.instance_id, &r.new_member_id, &r.old_member_id, out);
        self.schedule_heartbeat(&r.old_member_id, r.old_session_timeout_ms, now_ms, out);
        let mut response = self.join_response("", false);
        response.error = error;
        response.leader = r.leader_before;
        out.push(Effect::Join {
            token: r.token,
            response,
        });
    }

    /// Every member's current assignment.
    fn group_assignment(&self) -> std::collections::BTreeMap<String, bytes::Bytes> {
        let members = self.members.values();
        members
            .map(|m| (m.member_id.clone(), m.assignment.clone()))
            .collect()
    }
}
