//! SyncGroup (Kafka's `classicGroupSyncToClassicGroup`) and the end of the appends the
//! group asks for ([`ClassicGroup::on_persisted`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use sluice_protocol::error::ErrorCode;

use super::{
    append_error_to_group_error, ClassicGroup, Effect, GroupState, PendingPersist, PersistId,
    RequestToken, SyncRequest, SyncResponse,
};

/// Kafka's `isProtocolInconsistent`: only a value given on both sides can disagree.
fn is_inconsistent(requested: Option<&str>, group: Option<&str>) -> bool {
    matches!((requested, group), (Some(r), Some(g)) if r != g)
}

impl ClassicGroup {
    /// Handles a SyncGroup. The response comes as an [`Effect::Sync`] for `token`: at once
    /// when Stable or on error, else when the leader's assignment has been persisted.
    pub fn sync(&mut self, token: RequestToken, request: SyncRequest) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Err(error) = self.validate_sync(&request) {
            let response = SyncResponse::error(error);
            out.push(Effect::Sync { token, response });
            return out;
        }
        let member_id = request.member_id.clone();
        match self.state {
            GroupState::PreparingRebalance => {
                let response = SyncResponse::error(ErrorCode::RebalanceInProgress);
                out.push(Effect::Sync { token, response });
            }
            GroupState::CompletingRebalance => {
                self.park_sync(&member_id, token, &mut out);
                self.pending_sync_members.remove(&member_id);
                self.cancel_sync_timer_if_all_synced();
                if self.is_leader(&member_id) {
                    self.persist_assignment(request.assignments, &mut out);
                }
            }
            GroupState::Stable => {
                self.pending_sync_members.remove(&member_id);
                self.cancel_sync_timer_if_all_synced();
                let response = SyncResponse {
                    error: ErrorCode::None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: self.members[&member_id].assignment.clone(),
                };
                out.push(Effect::Sync { token, response });
            }
            GroupState::Empty | GroupState::Dead => unreachable!("rejected by validate_sync"),
        }
        out
    }

    /// Kafka's `validateSyncGroup`, with `classicGroupSync`'s check for an Empty group.
    fn validate_sync(&self, request: &SyncRequest) -> Result<(), ErrorCode> {
        match self.state {
            GroupState::Empty => return Err(ErrorCode::UnknownMemberId),
            GroupState::Dead => return Err(ErrorCode::CoordinatorNotAvailable),
            _ => {}
        }
        let instance_id = request.group_instance_id.as_deref();
        self.validate_member(&request.member_id, instance_id)?;
        if request.generation_id != self.generation_id {
            return Err(ErrorCode::IllegalGeneration);
        }
        let protocol_type = request.protocol_type.as_deref();
        let protocol_name = request.protocol_name.as_deref();
        if is_inconsistent(protocol_type, self.protocol_type.as_deref())
            || is_inconsistent(protocol_name, self.protocol_name.as_deref())
        {
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        Ok(())
    }

    /// Parks the member's sync. One parked before it is superseded (answered
    /// REBALANCE_IN_PROGRESS; Kafka drops it).
    fn park_sync(&mut self, member_id: &str, token: RequestToken, out: &mut Vec<Effect>) {
        let member = self.members.get_mut(member_id).expect("validated member");
        if let Some(old) = member.awaiting_sync.replace(token) {
            let response = SyncResponse::error(ErrorCode::RebalanceInProgress);
            out.push(Effect::Sync {
                token: old,
                response,
            });
        }
    }

    fn cancel_sync_timer_if_all_synced(&mut self) {
        if self.pending_sync_members.is_empty() {
            self.sync_timer = None;
        }
    }

    /// The leader's assignment (members it left out get an empty one) goes to the log
    /// before anyone sees it.
    fn persist_assignment(&mut self, assignments: Vec<(String, Bytes)>, out: &mut Vec<Effect>) {
        let mut assignment: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for member_id in self.members.keys() {
            assignment.entry(member_id.clone()).or_default();
        }
        let snapshot = self.snapshot(&assignment);
        let generation_id = self.generation_id;
        let pending = PendingPersist::Assignment {
            generation_id,
            assignment,
        };
        let id = self.new_persist(pending);
        out.push(Effect::Persist { id, snapshot });
    }

    /// The append asked for by [`Effect::Persist`] `id` ended, with the replica manager's
    /// error if it failed. An unknown id (already reported) does nothing.
    pub fn on_persisted(
        &mut self,
        id: PersistId,
        result: Result<(), ErrorCode>,
        now_ms: i64,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let result = result.map_err(append_error_to_group_error);
        match self.pending_persists.remove(&id) {
            None | Some(PendingPersist::EmptyGeneration) => {}
            Some(PendingPersist::Assignment {
                generation_id,
                assignment,
            }) => {
                self.on_assignment_persisted(generation_id, &assignment, result, now_ms, &mut out)
            }
            Some(PendingPersist::StaticReplacement(replacement)) => {
                self.on_static_replacement_persisted(replacement, result, &mut out, now_ms)
            }
        }
        out
    }

    /// Another member may have joined while the append was in flight: only if the group is
    /// still completing the same generation does the append's end count.
    fn on_assignment_persisted(
        &mut self,
        generation_id: i32,
        assignment: &BTreeMap<String, Bytes>,
        result: Result<(), ErrorCode>,
        now_ms: i64,
        out: &mut Vec<Effect>,
    ) {
        if self.state != GroupState::CompletingRebalance || generation_id != self.generation_id {
            return;
        }
        match result {
            Ok(()) => {
                self.set_and_propagate_assignment(assignment, now_ms, out);
                self.transition_to(GroupState::Stable, now_ms);
            }
            Err(error) => {
                self.reset_and_propagate_assignment(error, now_ms, out);
                self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
            }
        }
    }
}
