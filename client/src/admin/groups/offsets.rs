//! A group's committed offsets: list them (OffsetFetch), change them from outside the
//! group (OffsetCommit with generation -1) and delete them (OffsetDelete), each asked of the
//! group's coordinator.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
};

use super::coordinator::group_api_version;
use super::{
    group_key, group_not_found, missing_group, CommittedOffset, NewOffset, PartitionResult,
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, FENCED_INSTANCE_ID,
    GROUP_ID_NOT_FOUND, GROUP_SUBSCRIBED_TO_TOPIC, ILLEGAL_GENERATION, NOT_COORDINATOR,
    REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
};
use crate::admin::{
    partition_missing_from_response, topic_name, Admin, UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::error::{Error, Result};

/// OffsetCommit's generation of a commit from outside the group (an admin tool).
pub(super) const SIMPLE_COMMIT_GENERATION: i32 = -1;

impl Admin {
    /// A group's committed offsets: of `partitions` (`None` offset where nothing is
    /// committed), or with `None` every partition it has committed. Sorted by topic and
    /// partition. A group that does not exist has no offsets (Kafka answers so too).
    pub async fn list_group_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<CommittedOffset>> {
        let topics = partitions.map(by_topic);
        self.with_coordinator(group_id, |connection, _| {
            let topics = topics.clone();
            async move {
                let version = group_api_version(&connection, ApiKey::OffsetFetch)?;
                let request = offset_fetch_request(group_id, topics.as_ref(), version);
                let response = connection
                    .send_versioned(request, version, connection.request_timeout())
                    .await?;
                // (topic, partition, offset, leader epoch, metadata, error code)
                let (group_error, fetched): (i16, Vec<_>) = if version >= 8 {
                    let group = response
                        .groups
                        .into_iter()
                        .find(|g| &*g.group_id.0 == group_id)
                        .ok_or_else(|| missing_group("OffsetFetch", group_id))?;
                    let fetched = group
                        .topics
                        .into_iter()
                        .flat_map(|t| {
                            let topic = t.name.0.to_string();
                            t.partitions.into_iter().map(move |p| {
                                (
                                    topic.clone(),
                                    p.partition_index,
                                    p.committed_offset,
                                    p.committed_leader_epoch,
                                    p.metadata,
                                    p.error_code,
                                )
                            })
                        })
                        .collect();
                    (group.error_code, fetched)
                } else {
                    let fetched = response
                        .topics
                        .into_iter()
                        .flat_map(|t| {
                            let topic = t.name.0.to_string();
                            t.partitions.into_iter().map(move |p| {
                                (
                                    topic.clone(),
                                    p.partition_index,
                                    p.committed_offset,
                                    p.committed_leader_epoch,
                                    p.metadata,
                                    p.error_code,
                                )
                            })
                        })
                        .collect();
                    (response.error_code, fetched)
                };
                if group_error != 0 {
                    return Err(Error::broker(
                        format!("fetching the committed offsets of group '{group_id}'"),
                        group_error,
                        None,
                    ));
                }
                let mut offsets = Vec::with_capacity(fetched.len());
                for (topic, partition, offset, leader_epoch, metadata, code) in fetched {
                    if code != 0 {
                        return Err(Error::broker(
                            format!(
                                "fetching the committed offset of group '{group_id}' for \
                                 {topic}-{partition}"
                            ),
                            code,
                            None,
                        ));
                    }
                    offsets.push(CommittedOffset {
                        topic,
                        partition,
                        offset: (offset >= 0).then_some(offset),
                        leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
                        metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
                    });
                }
                offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                Ok(offsets)
            }
        })
        .await
    }

    /// Commit `offsets` for a group from outside it (OffsetCommit with generation -1, as
    /// `kafka-consumer-groups --reset-offsets --execute`). One result per partition, sorted.
    /// The coordinator refuses while the group has members: that, and other errors of the
    /// whole group (INVALID_GROUP_ID, ...), are an `Err` of the call.
    pub async fn alter_group_offsets(
        &self,
        group_id: &str,
        offsets: &[NewOffset],
    ) -> Result<Vec<PartitionResult>> {
        let mut topics: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for offset in offsets {
            topics
                .entry(offset.topic.as_str())
                .or_default()
                .push((offset.partition, offset.offset));
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_key(group_id))
            .with_generation_id_or_member_epoch(SIMPLE_COMMIT_GENERATION)
            .with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&(partition, offset)| {
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(partition)
                                            .with_committed_offset(offset)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self
            .with_coordinator(group_id, |connection, _| {
                let request = request.clone();
                async move {
                    let version = group_api_version(&connection, ApiKey::OffsetCommit)?;
                    let response = connection
                        .send_versioned(request, version, connection.request_timeout())
                        .await?;
                    // A group-level error is answered on every partition: the first one
                    // found decides (coordinator errors are retried).
                    let codes = response.topics.iter().flat_map(|t| &t.partitions);
                    for code in codes.map(|p| p.error_code) {
                        if let Some(error) = commit_group_error(group_id, code) {
                            return Err(error);
                        }
                    }
                    Ok(response)
                }
            })
            .await?;
        let mut results: Vec<PartitionResult> = offsets
            .iter()
            .map(|o| {
                let code = response
                    .topics
                    .iter()
                    .filter(|t| *t.name.0 == *o.topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == o.partition)
                    .map(|p| p.error_code);
                let doing = || {
                    format!(
                        "committing offset {} of group '{group_id}' for {}-{}",
                        o.offset, o.topic, o.partition
                    )
                };
                let result = match code {
                    Some(0) => Ok(()),
                    Some(UNKNOWN_TOPIC_OR_PARTITION) => Err(Error::broker(
                        format!("{}: no such topic or partition", doing()),
                        UNKNOWN_TOPIC_OR_PARTITION,
                        None,
                    )),
                    Some(code) => Err(Error::broker(doing(), code, None)),
                    None => Err(partition_missing_from_response("OffsetCommit", &doing())),
                };
                PartitionResult {
                    topic: o.topic.clone(),
                    partition: o.partition,
                    result,
                }
            })
            .collect();
        sort_results(&mut results);
        Ok(results)
    }
    /// Delete a group's committed offsets of `partitions` (OffsetDelete). One result per
    /// partition, sorted: a topic the group's members subscribe to is
    /// GROUP_SUBSCRIBED_TO_TOPIC. A group that does not exist is an `Err` of the call.
    pub async fn delete_group_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<PartitionResult>> {
        let request = OffsetDeleteRequest::default()
            .with_group_id(group_key(group_id))
            .with_topics(
                by_topic(partitions)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(&topic))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self
            .with_coordinator(group_id, |connection, _| {
                let request = request.clone();
                async move {
                    let version = group_api_version(&connection, ApiKey::OffsetDelete)?;
                    let response = connection
                        .send_versioned(request, version, connection.request_timeout())
                        .await?;
                    match response.error_code {
                        0 => Ok(response),
                        GROUP_ID_NOT_FOUND => Err(group_not_found(group_id)),
                        code => Err(Error::broker(
                            format!("deleting committed offsets of group '{group_id}'"),
                            code,
                            None,
                        )),
                    }
                }
            })
            .await?;
        let mut results: Vec<PartitionResult> = partitions
            .iter()
            .map(|(topic, partition)| {
                let code = response
                    .topics
                    .iter()
                    .filter(|t| *t.name.0 == **topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == *partition)
                    .map(|p| p.error_code);
                let doing =
                    || format!("deleting the offset of group '{group_id}' for {topic}-{partition}");
                let result = match code {
                    Some(0) => Ok(()),
                    Some(GROUP_SUBSCRIBED_TO_TOPIC) => Err(Error::broker(
                        format!(
                            "{}: the group's members subscribe to topic '{topic}' (stop them or \
                             change their subscription first)",
                            doing()
                        ),
                        GROUP_SUBSCRIBED_TO_TOPIC,
                        None,
                    )),
                    Some(code) => Err(Error::broker(doing(), code, None)),
                    None => Err(partition_missing_from_response("OffsetDelete", &doing())),
                };
                PartitionResult {
                    topic: topic.clone(),
                    partition: *partition,
                    result,
                }
            })
            .collect();
        sort_results(&mut results);
        Ok(results)
    }
}

/// OffsetFetch for one group at `version`: the batched form from v8, `None` topics for
/// every committed offset.
pub(super) fn offset_fetch_request(
    group_id: &str,
    topics: Option<&Vec<(String, Vec<i32>)>>,
    version: i16,
) -> OffsetFetchRequest {
    if version >= 8 {
        let topics = topics.map(|topics| {
            topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        return OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_key(group_id))
            .with_topics(topics)]);
    }
    OffsetFetchRequest::default()
        .with_group_id(group_key(group_id))
        .with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        }))
}

/// An OffsetCommit partition code that is about the whole group, as the error of the call;
/// `None` for a partition's own outcome. Coordinator errors stay retriable.
pub(super) fn commit_group_error(group_id: &str, code: i16) -> Option<Error> {
    match code {
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
            Some(Error::broker(
                format!("committing offsets of group '{group_id}'"),
                code,
                None,
            ))
        }
        // A commit from outside the group (generation -1, no member) meets these only
        // while the group has members.
        UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION | REBALANCE_IN_PROGRESS | FENCED_INSTANCE_ID => {
            Some(Error::broker(
                format!(
                    "cannot change the committed offsets of group '{group_id}': it has active \
                     members, and offsets can only be changed while the group is Empty (stop \
                     its consumers first)"
                ),
                code,
                None,
            ))
        }
        // INVALID_GROUP_ID, GROUP_AUTHORIZATION_FAILED, INVALID_COMMIT_OFFSET_SIZE.
        24 | 30 | 28 => Some(Error::broker(
            format!("committing offsets of group '{group_id}'"),
            code,
            None,
        )),
        _ => None,
    }
}
/// Partitions grouped by topic, both sorted, duplicates dropped.
pub(super) fn by_topic(partitions: &[(String, i32)]) -> Vec<(String, Vec<i32>)> {
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.clone()).or_default().push(*partition);
    }
    topics
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            partitions.dedup();
            (topic, partitions)
        })
        .collect()
}

fn sort_results(results: &mut [PartitionResult]) {
    results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
}
