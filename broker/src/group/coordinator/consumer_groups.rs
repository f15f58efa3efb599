//! Consumer groups (KIP-848) on the coordinator: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe through each group's [`ConsumerGroup`] state machine, its records
//! written to the group's partition, its timers, and its loading.
//!
//! A heartbeat runs the state machine under the shard's lock, which applies the change at
//! once and returns the records that describe it; those are appended while the lock is
//! still held (so the log has every group's changes in the order they were made), and the
//! response is sent once the ISR has them. If the write fails the shard is ahead of its log,
//! so the partition is loaded again from the log (as Kafka's runtime reverts to its last
//! committed snapshot), and the member gets the error (NOT_COORDINATOR or
//! COORDINATOR_NOT_AVAILABLE, as Kafka maps append errors), retries and rejoins.
//!
//! A group id is either a classic group or a consumer group. A heartbeat for a classic group
//! with members is refused (GROUP_ID_NOT_FOUND, "Group <id> is not a consumer group."); an
//! empty classic group becomes a consumer group (its metadata record gets a tombstone, its
//! committed offsets stay), as Kafka converts it. A JoinGroup for a consumer group is
//! refused with INCONSISTENT_GROUP_PROTOCOL (Kafka lets classic members join a consumer
//! group; not here yet).

use std::collections::BTreeSet;
use std::sync::Arc;

use sluice_protocol::clock::now_ms;
use sluice_protocol::error::ErrorCode;

use super::consumer_records::{from_log_record, to_log_record};
use super::shard::{Shard, ShardState};
use super::GroupCoordinator;
use crate::group::consumer::records::ConsumerGroupRecord;
use crate::group::consumer::{
    ConsumerGroup, Effect, GroupDescription, HeartbeatRequest, HeartbeatResponse, TopicInfo,
    TopicsSnapshot,
};
use crate::group::records::{ConsumerGroupLogRecord, GroupMetadataKey, Record};
use crate::replica::Appended;

/// A refused consumer group request: the code and Kafka's message.
pub type ConsumerGroupRefusal = (i16, Option<String>);

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat (module docs).
    pub async fn consumer_group_heartbeat(
        self: &Arc<Self>,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ConsumerGroupRefusal> {
        let refuse = |code: ErrorCode| (code.code(), None);
        if request.group_id.is_empty() {
            return Err((
                ErrorCode::InvalidRequest.code(),
                Some("GroupId can't be empty.".to_string()),
            ));
        }
        let shard = self.shard_for(&request.group_id).map_err(refuse)?;
        let (response, written) = {
            let mut state = shard.lock();
            let converted = self.take_consumer_group(&mut state, &request.group_id)?;
            let group = state
                .groups
                .get_mut(&request.group_id)
                .and_then(|entry| entry.consumer.as_mut())
                .expect("made above");
            let snapshot = self.topics_snapshot(group, Some(&request));
            let outcome = group
                .heartbeat(&request, &snapshot, now_ms(), new_uuid())
                .map_err(|error| (error.code(), Some(error.message().to_string())))?;
            let mut records = converted;
            records.extend(persisted_records(&request.group_id, outcome.effects));
            let written = self.append_or_reload(&shard, &records).map_err(refuse)?;
            (outcome.response, written)
        };
        if let Some((appended, records)) = written {
            if let Err(code) = self.committed(&shard, &appended, &records).await {
                self.reload(&shard);
                return Err(refuse(super::offsets::write_error(code)));
            }
        }
        Ok(response)
    }

    /// Make sure `group_id` is a consumer group in `state`: an empty classic group is
    /// converted (the returned records end it), one with members refused.
    fn take_consumer_group(
        &self,
        state: &mut ShardState,
        group_id: &str,
    ) -> Result<Vec<Record>, ConsumerGroupRefusal> {
        let entry = state.groups.entry(group_id.to_string()).or_default();
        let mut records = Vec::new();
        if let Some(classic) = &entry.group {
            if classic.member_ids().next().is_some() {
                return Err((
                    ErrorCode::GroupIdNotFound.code(),
                    Some(format!("Group {group_id} is not a consumer group.")),
                ));
            }
            entry.group = None;
            if entry.metadata_record_offset >= 0 {
                records.push(Record::group_metadata_tombstone(GroupMetadataKey {
                    group: group_id.to_string(),
                }));
            }
        }
        if entry.consumer.is_none() {
            entry.consumer = Some(ConsumerGroup::new(group_id, self.consumer_config.clone()));
        }
        Ok(records)
    }

    /// The topics a group's members and this request subscribe to, as the metadata has them;
    /// every topic when one of them subscribes by regular expression (it is matched
    /// against all names).
    fn topics_snapshot(
        &self,
        group: &ConsumerGroup,
        request: Option<&HeartbeatRequest>,
    ) -> TopicsSnapshot {
        let mut names: BTreeSet<String> = request
            .and_then(|r| r.subscribed_topic_names.clone())
            .into_iter()
            .flatten()
            .collect();
        let regex = request.and_then(|r| r.subscribed_topic_regex.as_deref());
        let mut by_regex = regex.is_some_and(|r| !r.is_empty());
        for member_id in group.member_ids() {
            if let Some(member) = group.member(member_id) {
                names.extend(member.metadata.subscribed_topic_names.iter().cloned());
                by_regex |= member.metadata.subscribed_topic_regex.is_some();
            }
        }
        let info = |topic: &crate::controller::metadata::Topic| {
            let partition_count = i32::try_from(topic.partitions.len()).ok()?;
            Some((
                topic.name.clone(),
                TopicInfo {
                    topic_id: topic.id,
                    partition_count,
                },
            ))
        };
        self.replicas.metadata().read(|state| {
            if by_regex {
                TopicsSnapshot::new(state.topics().filter_map(info))
            } else {
                let topics = names.iter().filter_map(|name| state.topic_by_name(name));
                TopicsSnapshot::new(topics.filter_map(info))
            }
        })
    }

    /// ConsumerGroupDescribe of one group: `Ok(None)` if it is not a consumer group here.
    pub fn describe_consumer_group(
        &self,
        group_id: &str,
    ) -> Result<Option<GroupDescription>, ErrorCode> {
        let shard = self.shard_for(group_id)?;
        let state = shard.lock();
        let Some(group) = state.groups.get(group_id).and_then(|e| e.consumer.as_ref()) else {
            return Ok(None);
        };
        let snapshot = self.topics_snapshot(group, None);
        Ok(Some(group.describe(&snapshot)))
    }

    /// Append `records` now (under the caller's lock); on failure reload the shard, whose
    /// groups already applied them. `None` when there is nothing to write.
    fn append_or_reload(
        self: &Arc<Self>,
        shard: &Arc<Shard>,
        records: &[Record],
    ) -> Result<Option<(Appended, Vec<Record>)>, ErrorCode> {
        if records.is_empty() {
            return Ok(None);
        }
        match self.append(shard, records) {
            Ok(appended) => Ok(Some((appended, records.to_vec()))),
            Err(code) => {
                self.reload(shard);
                Err(super::offsets::write_error(code))
            }
        }
    }

    /// Fire a consumer group's due timers (called by the shard's ticker, lock held), and
    /// write what they changed.
    pub(super) fn tick_consumer_group(
        self: &Arc<Self>,
        shard: &Arc<Shard>,
        state: &mut ShardState,
        group_id: &str,
        now: i64,
    ) {
        let Some(group) = state
            .groups
            .get_mut(group_id)
            .and_then(|e| e.consumer.as_mut())
        else {
            return;
        };
        let records = persisted_records(group_id, group.tick(now));
        self.write_in_background(shard, records);
    }

    /// Append `records` now and wait for the ISR in a task; reload the shard on failure.
    pub(super) fn write_in_background(self: &Arc<Self>, shard: &Arc<Shard>, records: Vec<Record>) {
        let Ok(Some((appended, records))) = self.append_or_reload(shard, &records) else {
            return;
        };
        let (coordinator, shard) = (self.clone(), shard.clone());
        tokio::spawn(async move {
            if coordinator
                .committed(&shard, &appended, &records)
                .await
                .is_err()
            {
                coordinator.reload(&shard);
            }
        });
    }

    /// Apply one stored consumer group record while loading.
    pub(super) fn replay_consumer_record(
        &self,
        state: &mut ShardState,
        stored: &ConsumerGroupLogRecord,
    ) -> Result<(), String> {
        let Some((group_id, record)) = from_log_record(stored) else {
            // Regular-expression records (Kafka's stored resolutions) are not needed: Sluice
            // resolves members' expressions on every heartbeat. Anything else unreadable (an unknown member state) stops the load, as Kafka's.
            return match stored {
                ConsumerGroupLogRecord::RegularExpression { .. } => Ok(()),
                other => Err(format!(
                    "a consumer group record this broker cannot use: {other:?}"
                )),
            };
        };
        let entry = state.groups.entry(group_id.clone()).or_default();
        let group = entry
            .consumer
            .get_or_insert_with(|| ConsumerGroup::new(&group_id, self.consumer_config.clone()));
        group
            .replay(record)
            .map_err(|error| format!("consumer group {group_id}: {}", error.0))
    }
}

/// The records among `effects`, in order, as stored.
pub(super) fn persisted_records(group_id: &str, effects: Vec<Effect>) -> Vec<Record> {
    effects
        .into_iter()
        .filter_map(|effect| match effect {
            Effect::Persist { records } => Some(records),
            Effect::ScheduleTimer { .. } => None,
        })
        .flatten()
        .map(|record: ConsumerGroupRecord| to_log_record(group_id, &record))
        .collect()
}

/// A member id's UUID (version 4), for v0 members that let the coordinator choose.
fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}
