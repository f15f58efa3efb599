//! The classic group protocol on the coordinator: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups and DescribeGroups, each run through the group's
//! [`ClassicGroup`] state machine under its shard's lock, and the effects it asks for
//! carried out here:
//!
//! - `Join`/`Sync`: the parked request's oneshot is completed (the handler awaits it);
//! - `Persist`: the group's metadata record is appended (acks=all) by a task, which then
//!   reports the result back to the group ([`ClassicGroup::on_persisted`]);
//! - `ScheduleTimer`: nothing to do here: each shard's ticker (every [`TICK`]) calls
//!   [`ClassicGroup::tick`] on the groups whose earliest deadline has passed.
//!
//! A JoinGroup or SyncGroup whose shard is dropped (leadership moved) is answered
//! NOT_COORDINATOR: unloading answers every parked request, and a oneshot dropped
//! unanswered reads as that too.

use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::clock::now_ms;
use sluice_protocol::error::ErrorCode;
use tokio::sync::oneshot;

use super::shard::{GroupEntry, Shard, ShardState};
use super::GroupCoordinator;
use crate::group::classic::{
    ClassicGroup, ClassicGroupConfig, Effect, GroupDescription, GroupSnapshot, HeartbeatRequest,
    JoinRequest, JoinResponse, LeaveResponse, LeavingMember, ListedGroup, RequestToken,
    SyncRequest, SyncResponse,
};
use crate::group::records::{GroupMetadataKey, GroupMetadataValue, MemberMetadata, Record};

/// How often a shard looks for group timers that are due.
pub(super) const TICK: Duration = Duration::from_millis(50);

impl GroupCoordinator {
    /// JoinGroup: the response comes when the group's join phase ends (or at once for an
    /// error or MEMBER_ID_REQUIRED).
    pub async fn join_group(
        self: &Arc<Self>,
        group_id: &str,
        request: JoinRequest,
    ) -> JoinResponse {
        let member_id = request.member_id.clone();
        let receiver = match self.park_join(group_id, request) {
            Ok(receiver) => receiver,
            Err(error) => return JoinResponse::error(error, &member_id),
        };
        receiver
            .await
            .unwrap_or_else(|_| JoinResponse::error(ErrorCode::NotCoordinator, &member_id))
    }

    fn park_join(
        self: &Arc<Self>,
        group_id: &str,
        request: JoinRequest,
    ) -> Result<oneshot::Receiver<JoinResponse>, ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let shard = self.shard_for(group_id)?;
        let config = &self.group_config;
        // Checked before a group is made for the request, as Kafka does.
        if !(config.session_timeout_ms_min..=config.session_timeout_ms_max)
            .contains(&request.session_timeout_ms)
        {
            return Err(ErrorCode::InvalidSessionTimeout);
        }
        let mut state = shard.lock();
        if state
            .groups
            .get(group_id)
            .is_some_and(|entry| entry.consumer.is_some())
        {
            // A consumer group (KIP-848); classic members cannot join it here yet.
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        let is_new = state.group_mut(group_id).is_none();
        if is_new {
            if !request.member_id.is_empty() {
                return Err(ErrorCode::UnknownMemberId);
            }
            state.ensure_group(group_id, config);
        }
        let token = state.next_token();
        let group = state.group_mut(group_id).expect("made above");
        let effects = group.join(token, request, new_uuid(), now_ms());
        let refused = effects.iter().any(|effect| {
            matches!(effect, Effect::Join { token: t, response }
                if *t == token && !matches!(response.error, ErrorCode::None | ErrorCode::MemberIdRequired))
        });
        if is_new && refused {
            // A group made for a join it refused is not kept (Kafka removes it too).
            state.groups.remove(group_id);
        }
        let (sender, receiver) = oneshot::channel();
        state.pending_joins.insert(token, sender);
        self.carry_out(&shard, &mut state, group_id, effects);
        Ok(receiver)
    }

    /// SyncGroup: the response comes once the leader's assignment is persisted.
    pub async fn sync_group(
        self: &Arc<Self>,
        group_id: &str,
        request: SyncRequest,
    ) -> SyncResponse {
        let receiver = match self.park_sync(group_id, request) {
            Ok(receiver) => receiver,
            Err(error) => return SyncResponse::error(error),
        };
        receiver
            .await
            .unwrap_or_else(|_| SyncResponse::error(ErrorCode::NotCoordinator))
    }

    fn park_sync(
        self: &Arc<Self>,
        group_id: &str,
        request: SyncRequest,
    ) -> Result<oneshot::Receiver<SyncResponse>, ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let shard = self.shard_for(group_id)?;
        let mut state = shard.lock();
        let token = state.next_token();
        let group = state
            .group_mut(group_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        let effects = group.sync(token, request);
        let (sender, receiver) = oneshot::channel();
        state.pending_syncs.insert(token, sender);
        self.carry_out(&shard, &mut state, group_id, effects);
        Ok(receiver)
    }

    /// Heartbeat: the error code to answer with.
    pub fn heartbeat(self: &Arc<Self>, group_id: &str, request: &HeartbeatRequest) -> ErrorCode {
        if group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        let shard = match self.shard_for(group_id) {
            Ok(shard) => shard,
            Err(error) => return error,
        };
        let mut state = shard.lock();
        let Some(group) = state.group_mut(group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        let (error, effects) = group.heartbeat(request, now_ms());
        self.carry_out(&shard, &mut state, group_id, effects);
        error
    }

    /// LeaveGroup of one or more members.
    pub fn leave_group(
        self: &Arc<Self>,
        group_id: &str,
        members: &[LeavingMember],
    ) -> LeaveResponse {
        let refused = |error| LeaveResponse {
            error,
            members: Vec::new(),
        };
        if group_id.is_empty() {
            return refused(ErrorCode::InvalidGroupId);
        }
        let shard = match self.shard_for(group_id) {
            Ok(shard) => shard,
            Err(error) => return refused(error),
        };
        let mut state = shard.lock();
        let Some(group) = state.group_mut(group_id) else {
            return refused(ErrorCode::UnknownMemberId);
        };
        let (response, effects) = group.leave(members, now_ms());
        self.carry_out(&shard, &mut state, group_id, effects);
        response
    }

    /// Every group of every loaded shard, for ListGroups; the error of a shard still
    /// loading (Kafka answers COORDINATOR_LOAD_IN_PROGRESS then).
    /// Each group with its type: "classic", or "consumer" (KIP-848).
    pub fn list_groups(&self) -> Result<Vec<(String, ListedGroup, &'static str)>, ErrorCode> {
        let shards: Vec<Arc<Shard>> = self.shards_snapshot();
        if shards.iter().any(|shard| !shard.is_loaded()) {
            return Err(ErrorCode::CoordinatorLoadInProgress);
        }
        let mut groups = Vec::new();
        for shard in shards {
            let state = shard.lock();
            for (group_id, entry) in &state.groups {
                if let Some(group) = &entry.group {
                    groups.push((group_id.clone(), group.list_state(), "classic"));
                }
                if let Some(group) = &entry.consumer {
                    let listed = ListedGroup {
                        state: group.state().as_str(),
                        protocol_type: sluice_protocol::consumer_protocol::PROTOCOL_TYPE
                            .to_string(),
                    };
                    groups.push((group_id.clone(), listed, "consumer"));
                }
            }
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(groups)
    }

    /// A group for DescribeGroups: `None` if it does not exist.
    pub fn describe_group(&self, group_id: &str) -> Result<Option<GroupDescription>, ErrorCode> {
        let shard = self.shard_for(group_id)?;
        let state = shard.lock();
        Ok(state
            .groups
            .get(group_id)
            .and_then(|entry| entry.group.as_ref())
            .map(ClassicGroup::describe))
    }

    /// Carry out what a group asked for (module docs). Called with the shard's lock held.
    pub(super) fn carry_out(
        self: &Arc<Self>,
        shard: &Arc<Shard>,
        state: &mut ShardState,
        group_id: &str,
        effects: Vec<Effect>,
    ) {
        for effect in effects {
            match effect {
                Effect::Join { token, response } => {
                    if let Some(sender) = state.pending_joins.remove(&token) {
                        let _ = sender.send(response);
                    }
                }
                Effect::Sync { token, response } => {
                    if let Some(sender) = state.pending_syncs.remove(&token) {
                        let _ = sender.send(response);
                    }
                }
                Effect::Persist { id, snapshot } => {
                    // Appended now, under the lock (so in the order the group changed);
                    // the wait for the ISR runs in a task, which reports back to the group
                    // with the replica manager's own error (Kafka's
                    // appendGroupMetadataErrorToResponseError maps it there).
                    let records = [metadata_record(group_id, snapshot)];
                    let appended = self.append(shard, &records);
                    let (coordinator, shard) = (self.clone(), shard.clone());
                    let group_id = group_id.to_string();
                    tokio::spawn(async move {
                        let result = match appended {
                            Ok(appended) => {
                                coordinator.committed(&shard, &appended, &records).await
                            }
                            Err(code) => Err(code),
                        };
                        coordinator.persisted(&shard, &group_id, id, result);
                    });
                }
                Effect::ScheduleTimer { .. } => {}
            }
        }
    }

    /// Report a finished metadata append to its group.
    fn persisted(
        self: &Arc<Self>,
        shard: &Arc<Shard>,
        group_id: &str,
        id: crate::group::classic::PersistId,
        result: Result<(), ErrorCode>,
    ) {
        let mut state = shard.lock();
        let Some(group) = state.group_mut(group_id) else {
            return;
        };
        let effects = group.on_persisted(id, result, now_ms());
        self.carry_out(shard, &mut state, group_id, effects);
    }

    /// Fire the group timers that are due, every [`TICK`], while `shard` is current.
    pub(super) async fn tick_groups(self: Arc<Self>, shard: Arc<Shard>) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if !self.is_current(&shard) {
                return;
            }
            let now = now_ms();
            let mut state = shard.lock();
            let due: Vec<String> = state
                .groups
                .iter()
                .filter(|(_, entry)| {
                    let classic = entry
                        .group
                        .as_ref()
                        .and_then(ClassicGroup::next_deadline_ms);
                    let consumer = entry.consumer.as_ref().and_then(|g| g.next_deadline_ms());
                    classic
                        .into_iter()
                        .chain(consumer)
                        .any(|deadline| deadline <= now)
                })
                .map(|(group_id, _)| group_id.clone())
                .collect();
            for group_id in due {
                if let Some(group) = state.group_mut(&group_id) {
                    let effects = group.tick(now);
                    self.carry_out(&shard, &mut state, &group_id, effects);
                }
                self.tick_consumer_group(&shard, &mut state, &group_id, now);
            }
        }
    }

    /// Answer every parked request of a dropped shard (NOT_COORDINATOR).
    pub(super) fn unload_groups(self: &Arc<Self>, shard: &Arc<Shard>) {
        let mut state = shard.lock();
        let group_ids: Vec<String> = state.groups.keys().cloned().collect();
        let now = now_ms();
        for group_id in group_ids {
            let effects = match state.group_mut(&group_id) {
                Some(group) => group.unload(now),
                None => continue,
            };
            // Only answers: a dropped shard persists nothing.
            let answers = effects
                .into_iter()
                .filter(|effect| matches!(effect, Effect::Join { .. } | Effect::Sync { .. }))
                .collect();
            self.carry_out(shard, &mut state, &group_id, answers);
        }
        state.pending_joins.clear();
        state.pending_syncs.clear();
    }

    /// Turn the group metadata loaded from the log into live groups (end of a load).
    pub(super) fn start_loaded_groups(self: &Arc<Self>, shard: &Arc<Shard>) {
        let mut state = shard.lock();
        let now = now_ms();
        let group_ids: Vec<String> = state.groups.keys().cloned().collect();
        for group_id in group_ids {
            let entry: &mut GroupEntry = state.groups.get_mut(&group_id).expect("listed");
            if let Some(consumer) = entry.consumer.as_mut() {
                // A consumer group (KIP-848): its sessions start now; no classic group.
                entry.loaded = None;
                entry.generation_at_load = consumer.group_epoch();
                let effects = consumer.start_timers(now);
                let records = super::consumer_groups::persisted_records(&group_id, effects);
                self.write_in_background(shard, records);
                continue;
            }
            let (group, effects) = match entry.loaded.take() {
                Some(value) => ClassicGroup::load(
                    &group_id,
                    snapshot_of(value),
                    self.group_config.clone(),
                    now,
                ),
                None => (
                    ClassicGroup::new(&group_id, self.group_config.clone()),
                    Vec::new(),
                ),
            };
            entry.generation_at_load = group.generation_id();
            entry.group = Some(group);
            self.carry_out(shard, &mut state, &group_id, effects);
        }
    }
}

impl ShardState {
    fn next_token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    fn group_mut(&mut self, group_id: &str) -> Option<&mut ClassicGroup> {
        self.groups.get_mut(group_id)?.group.as_mut()
    }

    /// The group, made Empty if it does not exist (a first JoinGroup, a simple commit).
    pub(super) fn ensure_group(&mut self, group_id: &str, config: &ClassicGroupConfig) {
        let entry = self.groups.entry(group_id.to_string()).or_default();
        entry
            .group
            .get_or_insert_with(|| ClassicGroup::new(group_id, config.clone()));
    }
}

/// A member id's UUID part: random (version 4), as Kafka's.
fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// The group metadata record of a persisted snapshot, at the version Kafka 4.1 writes.
fn metadata_record(group_id: &str, snapshot: GroupSnapshot) -> Record {
    let members = snapshot
        .members
        .into_iter()
        .map(|m| MemberMetadata {
            member_id: m.member_id,
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            session_timeout_ms: m.session_timeout_ms,
            subscription: m.subscription,
            assignment: m.assignment,
            unknown_tagged_fields: Vec::new(),
        })
        .collect();
    let value = GroupMetadataValue {
        version: GroupMetadataValue::VERSION_WRITTEN_BY_KAFKA,
        protocol_type: snapshot.protocol_type,
        generation: snapshot.generation_id,
        protocol: snapshot.protocol_name,
        leader: snapshot.leader,
        current_state_timestamp_ms: snapshot.current_state_timestamp_ms,
        members,
        unknown_tagged_fields: Vec::new(),
    };
    Record::group_metadata(
        GroupMetadataKey {
            group: group_id.to_string(),
        },
        value,
    )
}

/// The snapshot a loaded group metadata record describes.
fn snapshot_of(value: GroupMetadataValue) -> GroupSnapshot {
    GroupSnapshot {
        protocol_type: value.protocol_type,
        generation_id: value.generation,
        protocol_name: value.protocol,
        leader: value.leader,
        current_state_timestamp_ms: value.current_state_timestamp_ms,
        members: value
            .members
            .into_iter()
            .map(|m| crate::group::classic::MemberSnapshot {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.subscription,
                assignment: m.assignment,
            })
            .collect(),
    }
}
