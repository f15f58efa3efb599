//! Deleting groups and committed offsets (DeleteGroups, OffsetDelete), as Kafka 4.1's
//! `GroupMetadataManager.deleteGroups` / `OffsetMetadataManager.deleteOffsets`.
//!
//! - DeleteGroups: a group that does not exist is GROUP_ID_NOT_FOUND; one with members
//!   (not Empty) NON_EMPTY_GROUP; otherwise a tombstone for each committed offset and one
//!   for the group are appended (acks=all), and the group is gone once they are committed.
//! - OffsetDelete: the group must exist (GROUP_ID_NOT_FOUND); a partition of a topic the
//!   group's members subscribe to gets GROUP_SUBSCRIBED_TO_TOPIC (a group whose
//!   subscriptions cannot be read counts as subscribed to everything, as in Kafka); the
//!   others get a tombstone. Offsets never committed are answered NONE and written nothing.
//! - A deleted topic (the metadata deleted it): every group's offsets of it get tombstones,
//!   in every shard loaded here, as Kafka's `OffsetMetadataManager.onPartitionsDeleted`;
//!   a topic created again under the same name starts with no committed offsets. A shard
//!   still loading when the deletion is announced keeps them (its previous leader wrote the
//!   tombstones if it was still leading).

use std::collections::BTreeSet;
use std::sync::Arc;

use sluice_protocol::error::ErrorCode;

use super::offsets::TopicCommitResult;
use super::GroupCoordinator;
use crate::group::classic::GroupState;
use crate::group::records::{GroupMetadataKey, OffsetCommitKey, Record};

impl GroupCoordinator {
    /// DeleteGroups: each group's error code, in request order.
    pub async fn delete_groups(self: &Arc<Self>, group_ids: &[String]) -> Vec<(String, ErrorCode)> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let error = match self.delete_group(group_id).await {
                Ok(()) => ErrorCode::None,
                Err(error) => error,
            };
            results.push((group_id.clone(), error));
        }
        results
    }

    async fn delete_group(self: &Arc<Self>, group_id: &str) -> Result<(), ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let shard = self.shard_for(group_id)?;
        let (records, consumer) = {
            let mut state = shard.lock();
            let entry = state
                .groups
                .get_mut(group_id)
                .ok_or(ErrorCode::GroupIdNotFound)?;
            let mut records: Vec<Record> = entry
                .offsets
                .keys()
                .map(|(topic, partition)| offset_tombstone(group_id, topic, *partition))
                .collect();
            let consumer = entry.consumer.is_some();
            if let Some(group) = entry.consumer.as_mut() {
                // A consumer group (KIP-848): its own records end it (it refuses while it
                // has members), and it counts as deleted from here on.
                let ended = group.delete().map_err(|error| {
                    ErrorCode::from_code(error.code()).unwrap_or(ErrorCode::UnknownServerError)
                })?;
                records.extend(
                    ended
                        .iter()
                        .map(|record| super::consumer_records::to_log_record(group_id, record)),
                );
            } else {
                let group = entry.group.as_ref().ok_or(ErrorCode::GroupIdNotFound)?;
                if !matches!(group.state(), GroupState::Empty | GroupState::Dead) {
                    return Err(ErrorCode::NonEmptyGroup);
                }
                records.push(Record::group_metadata_tombstone(GroupMetadataKey {
                    group: group_id.to_string(),
                }));
            }
            (records, consumer)
        };
        if let Err(error) = self.write(&shard, &records).await {
            if consumer {
                // The group already counts itself deleted: back to what the log says.
                self.reload(&shard);
            }
            return Err(error);
        }
        shard.lock().groups.remove(group_id);
        tracing::info!(group = group_id, "deleted group");
        Ok(())
    }

    /// OffsetDelete: each partition's error code, or a group-level error.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<Vec<TopicCommitResult>, ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let shard = self.shard_for(group_id)?;
        let (results, records) = {
            let state = shard.lock();
            let entry = state
                .groups
                .get(group_id)
                .ok_or(ErrorCode::GroupIdNotFound)?;
            let subscribed: Box<dyn Fn(&str) -> bool> = match (&entry.group, &entry.consumer) {
                (_, Some(consumer)) => Box::new(|topic: &str| {
                    consumer.member_ids().next().is_some() && consumer.is_subscribed_to_topic(topic)
                }),
                (Some(group), None) => {
                    let topics = group.subscribed_topics();
                    Box::new(move |topic: &str| {
                        topics
                            .as_ref()
                            .is_none_or(|topics: &BTreeSet<String>| topics.contains(topic))
                    })
                }
                (None, None) => return Err(ErrorCode::GroupIdNotFound),
            };
            let is_subscribed = |topic: &str| subscribed(topic);
            let mut results = Vec::new();
            let mut records = Vec::new();
            for (topic, partitions) in topics {
                let mut codes = Vec::new();
                for &partition in partitions {
                    if is_subscribed(topic) {
                        codes.push((partition, ErrorCode::GroupSubscribedToTopic));
                        continue;
                    }
                    if entry.offsets.contains_key(&(topic.clone(), partition)) {
                        records.push(offset_tombstone(group_id, topic, partition));
                    }
                    codes.push((partition, ErrorCode::None));
                }
                results.push((topic.clone(), codes));
            }
            (results, records)
        };
        if !records.is_empty() {
            self.write(&shard, &records).await?;
        }
        Ok(results)
    }
}

impl GroupCoordinator {
    /// Tombstones for every group's committed offsets of the deleted `topic`, in every
    /// loaded shard (module docs).
    pub(super) async fn delete_topic_offsets(&self, topic: &str) {
        for shard in self.shards_snapshot() {
            if !shard.is_loaded() {
                continue;
            }
            let records: Vec<Record> = {
                let state = shard.lock();
                state
                    .groups
                    .iter()
                    .flat_map(|(group_id, entry)| {
                        entry
                            .offsets
                            .keys()
                            .filter(|(t, _)| t == topic)
                            .map(|(t, partition)| offset_tombstone(group_id, t, *partition))
                    })
                    .collect()
            };
            if records.is_empty() {
                continue;
            }
            match self.write(&shard, &records).await {
                Ok(()) => tracing::info!(
                    topic,
                    partition = shard.partition,
                    offsets = records.len(),
                    "removed the committed offsets of a deleted topic"
                ),
                Err(error) => tracing::warn!(
                    topic,
                    partition = shard.partition,
                    ?error,
                    "could not remove the committed offsets of a deleted topic"
                ),
            }
        }
    }
}

fn offset_tombstone(group_id: &str, topic: &str, partition: i32) -> Record {
    Record::offset_commit_tombstone(OffsetCommitKey {
        group: group_id.to_string(),
        topic: topic.to_string(),
        partition,
    })
}
