//! Heartbeat, LeaveGroup and the group's check of an offset commit (Kafka's
//! `classicGroupHeartbeatToClassicGroup`, `classicGroupLeaveToClassicGroup` and
//! `ClassicGroup.validateOffsetCommit`).

use sluice_protocol::error::ErrorCode;

use super::{
    ClassicGroup, CommitKind, Effect, GroupState, HeartbeatRequest, LeaveResponse, LeavingMember,
};

impl ClassicGroup {
    /// Handles a Heartbeat: the error code to answer with, and the effects (the member's
    /// session restarted).
    pub fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        now_ms: i64,
    ) -> (ErrorCode, Vec<Effect>) {
        let mut out = Vec::new();
        if self.state == GroupState::Dead {
            return (ErrorCode::CoordinatorNotAvailable, out);
        }
        let instance_id = request.group_instance_id.as_deref();
        if let Err(error) = self.validate_member(&request.member_id, instance_id) {
            return (error, out);
        }
        if request.generation_id != self.generation_id {
            return (ErrorCode::IllegalGeneration, out);
        }
        let error = match self.state {
            GroupState::Empty | GroupState::Dead => return (ErrorCode::UnknownMemberId, out),
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            // Members may heartbeat as soon as they have their JoinGroup response.
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
        };
        let session_ms = self.members[&request.member_id].session_timeout_ms;
        self.schedule_heartbeat(&request.member_id, session_ms, now_ms, &mut out);
        (error, out)
    }

    /// Handles a LeaveGroup: each member is removed (a static one by instance id alone if
    /// its member id is empty) or gets its error; then the group rebalances.
    pub fn leave(
        &mut self,
        members: &[LeavingMember],
        now_ms: i64,
    ) -> (LeaveResponse, Vec<Effect>) {
        let mut out = Vec::new();
        if self.state == GroupState::Dead {
            let response = LeaveResponse {
                error: ErrorCode::CoordinatorNotAvailable,
                members: Vec::new(),
            };
            return (response, out);
        }
        let mut results = Vec::with_capacity(members.len());
        for leaving in members {
            let error = self.leave_one(leaving, &mut out);
            results.push((leaving.clone(), error));
        }
        let anyone_left = results.iter().any(|(_, e)| *e == ErrorCode::None);
        if anyone_left {
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, &mut out)
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, &mut out),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        let response = LeaveResponse {
            error: ErrorCode::None,
            members: results,
        };
        (response, out)
    }

    fn leave_one(&mut self, leaving: &LeavingMember, out: &mut Vec<Effect>) -> ErrorCode {
        let instance_id = leaving.group_instance_id.as_deref();
        if leaving.member_id.is_empty() {
            let static_member = instance_id
                .and_then(|id| self.static_members.get(id))
                .cloned();
            return match static_member {
                Some(member_id) => {
                    self.remove_member(&member_id, out);
                    ErrorCode::None
                }
                None => ErrorCode::UnknownMemberId,
            };
        }
        if self.pending_members.contains(&leaving.member_id) {
            self.remove_member(&leaving.member_id, out);
            return ErrorCode::None;
        }
        match self.validate_member(&leaving.member_id, instance_id) {
            Ok(()) => {
                self.remove_member(&leaving.member_id, out);
                ErrorCode::None
            }
            Err(error) => error,
        }
    }

    /// Whether this group takes an offset commit from `member_id` in `generation_id`.
    /// Generation -1 with no member id is a simple ("standalone") consumer or an admin
    /// client, allowed only while the group is Empty.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        kind: CommitKind,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(ErrorCode::IllegalGeneration);
            }
        } else if kind == CommitKind::Consumer && self.state != GroupState::Empty {
            return Err(ErrorCode::UnknownMemberId);
        }
        // The member has the new generation's JoinGroup response but not its assignment.
        if kind == CommitKind::Consumer && self.state == GroupState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        Ok(())
    }
}
