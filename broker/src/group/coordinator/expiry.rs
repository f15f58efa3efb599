//! Expiring committed offsets, as Kafka 4.1's `OffsetMetadataManager.cleanupExpiredOffsets`
//! with the classic group's `offsetExpirationCondition`.
//!
//! Every `offsets.retention.check.interval.ms` each loaded shard looks at its groups. An
//! offset with an explicit expire timestamp (committed with a retention time, OffsetCommit
//! v2-v4) expires at it. Otherwise it expires `offsets.retention.minutes` after a base
//! time, which depends on the group:
//! - an Empty group with a protocol type (it had members): when it became Empty (its state
//!   timestamp), or the commit time if that is unknown — so offsets live a full retention
//!   period after the last member left, however old they are;
//! - a group without a protocol type (simple commits only): the commit time;
//! - a group with members of the consumer protocol: the commit time, and only for topics
//!   none of its members subscribes to;
//! - any other group with members: never.
//!
//! Expired offsets get tombstones (acks=all); an Empty group left with no offsets is
//! deleted too (a group tombstone), as Kafka does.

use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::clock::now_ms;

use super::shard::{GroupEntry, Shard, ShardState};
use super::GroupCoordinator;
use crate::group::classic::{ClassicGroup, GroupState};
use crate::group::records::{GroupMetadataKey, OffsetCommitKey, Record};

/// Kafka's `offsets.retention.minutes` default: 7 days.
pub const OFFSETS_RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `offsets.retention.check.interval.ms` default: 10 minutes.
pub const OFFSETS_RETENTION_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);

impl GroupCoordinator {
    /// Expire offsets in `shard` every check interval while it is current.
    pub(super) async fn expire_offsets_periodically(self: Arc<Self>, shard: Arc<Shard>) {
        let mut interval = tokio::time::interval(self.config.offsets_retention_check_interval);
        interval.tick().await; // the first tick is immediate: wait a whole interval
        loop {
            interval.tick().await;
            if !self.is_current(&shard) {
                return;
            }
            self.expire_offsets(&shard, now_ms()).await;
        }
    }

    /// One expiration pass over `shard` as of `now`; returns how many records it wrote.
    pub(crate) async fn expire_offsets(&self, shard: &Arc<Shard>, now: i64) -> usize {
        let (records, emptied) =
            expired_records(&shard.lock(), now, self.config.offsets_retention_ms);
        if records.is_empty() {
            return 0;
        }
        match self.write(shard, &records).await {
            Ok(()) => {
                let offsets = records
                    .iter()
                    .filter(|r| matches!(r, Record::OffsetCommit { .. }))
                    .count();
                metrics::counter!(crate::metrics::OFFSETS_EXPIRED_TOTAL).increment(offsets as u64);
                let mut state = shard.lock();
                for group_id in &emptied {
                    let still_empty = state.groups.get(group_id).is_some_and(|entry| {
                        entry.offsets.is_empty()
                            && entry
                                .group
                                .as_ref()
                                .is_none_or(|g| g.state() == GroupState::Empty)
                    });
                    if still_empty {
                        state.groups.remove(group_id);
                    }
                }
                tracing::info!(
                    partition = shard.partition,
                    records = records.len(),
                    groups_deleted = emptied.len(),
                    "expired committed offsets"
                );
                records.len()
            }
            Err(error) => {
                tracing::warn!(
                    partition = shard.partition,
                    ?error,
                    "writing expired offsets failed; the next pass retries"
                );
                0
            }
        }
    }
}

/// The tombstones of every expired offset, and a group tombstone for each Empty group left
/// with none (whose ids are returned too).
fn expired_records(state: &ShardState, now: i64, retention_ms: i64) -> (Vec<Record>, Vec<String>) {
    let mut records = Vec::new();
    let mut emptied = Vec::new();
    for (group_id, entry) in &state.groups {
        let expired = expired_offsets(entry, now, retention_ms);
        // A consumer group keeps its own records; only a classic or simple one is deleted
        // with its last offsets.
        let empty_group = entry.consumer.is_none()
            && entry
                .group
                .as_ref()
                .is_none_or(|group| group.state() == GroupState::Empty);
        let all_gone = expired.len() == entry.offsets.len();
        for (topic, partition) in &expired {
            records.push(Record::offset_commit_tombstone(OffsetCommitKey {
                group: group_id.clone(),
                topic: topic.clone(),
                partition: *partition,
            }));
        }
        if !expired.is_empty() && all_gone && empty_group {
            records.push(Record::group_metadata_tombstone(GroupMetadataKey {
                group: group_id.clone(),
            }));
            emptied.push(group_id.clone());
        }
    }
    (records, emptied)
}

/// The offsets of one group that have expired (module docs).
fn expired_offsets(entry: &GroupEntry, now: i64, retention_ms: i64) -> Vec<(String, i32)> {
    let condition = match (&entry.group, &entry.consumer) {
        (Some(group), _) => base_of(group),
        (None, Some(consumer)) => Some(consumer_base(consumer)),
        (None, None) => Some(Base::CommitTime),
    };
    let Some(condition) = condition else {
        return Vec::new();
    };
    entry
        .offsets
        .iter()
        .filter(|((topic, _), committed)| {
            if committed.expire_timestamp_ms >= 0 {
                return now >= committed.expire_timestamp_ms;
            }
            let base = match &condition {
                Base::CommitTime => committed.commit_timestamp_ms,
                Base::EmptySince(since) => since.unwrap_or(committed.commit_timestamp_ms),
                Base::Unsubscribed(topics) if topics.contains(topic) => return false,
                Base::Unsubscribed(_) => committed.commit_timestamp_ms,
            };
            now.saturating_sub(base) >= retention_ms
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Where an offset's retention counts from, by the kind of group (module docs).
enum Base {
    CommitTime,
    EmptySince(Option<i64>),
    /// The commit time, for topics outside these.
    Unsubscribed(std::collections::BTreeSet<String>),
}

/// A consumer group's (Kafka's `ConsumerGroup.offsetExpirationCondition`): the commit time,
/// for topics none of its members subscribes to.
fn consumer_base(group: &crate::group::consumer::ConsumerGroup) -> Base {
    let topics = group
        .member_ids()
        .filter_map(|id| group.member(id))
        .flat_map(|member| member.metadata.subscribed_topic_names.iter().cloned())
        .collect();
    Base::Unsubscribed(topics)
}

fn base_of(group: &ClassicGroup) -> Option<Base> {
    let has_protocol_type = group.protocol_type().is_some_and(|t| !t.is_empty());
    match group.state() {
        GroupState::Empty if has_protocol_type => {
            Some(Base::EmptySince(group.state_timestamp_ms()))
        }
        GroupState::Empty => Some(Base::CommitTime),
        GroupState::Dead => None,
        _ if group.protocol_type() == Some(sluice_protocol::consumer_protocol::PROTOCOL_TYPE) => {
            group.subscribed_topics().map(Base::Unsubscribed)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::classic::ClassicGroupConfig;
    use crate::group::coordinator::shard::Committed;

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn committed(commit_timestamp_ms: i64, expire_timestamp_ms: i64) -> Committed {
        Committed {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms,
            expire_timestamp_ms,
            record_offset: 0,
        }
    }

    fn simple_group(offsets: &[(&str, i32, Committed)]) -> GroupEntry {
        let mut entry = GroupEntry {
            group: Some(ClassicGroup::new("g", ClassicGroupConfig::default())),
            ..GroupEntry::default()
        };
        for (topic, partition, c) in offsets {
            entry
                .offsets
                .insert((topic.to_string(), *partition), c.clone());
        }
        entry
    }

    #[test]
    fn a_simple_groups_offsets_expire_a_retention_after_their_commit() {
        let entry = simple_group(&[("t", 0, committed(0, -1)), ("t", 1, committed(5 * DAY, -1))]);
        assert!(expired_offsets(&entry, 7 * DAY - 1, 7 * DAY).is_empty());
        assert_eq!(
            expired_offsets(&entry, 7 * DAY, 7 * DAY),
            [("t".to_string(), 0)]
        );
        assert_eq!(expired_offsets(&entry, 12 * DAY, 7 * DAY).len(), 2);
    }

    #[test]
    fn an_explicit_expire_timestamp_wins() {
        let entry = simple_group(&[("t", 0, committed(0, DAY))]);
        assert!(expired_offsets(&entry, DAY - 1, 7 * DAY).is_empty());
        assert_eq!(expired_offsets(&entry, DAY, 7 * DAY).len(), 1);
    }

    #[test]
    fn an_emptied_groups_offsets_count_from_when_it_became_empty() {
        // A group that had consumer members: loaded Empty with a state timestamp.
        let snapshot = crate::group::classic::GroupSnapshot {
            protocol_type: "consumer".into(),
            generation_id: 4,
            protocol_name: None,
            leader: None,
            current_state_timestamp_ms: 10 * DAY,
            members: Vec::new(),
        };
        let (group, _) = ClassicGroup::load("g", snapshot, ClassicGroupConfig::default(), 10 * DAY);
        let mut entry = GroupEntry {
            group: Some(group),
            ..GroupEntry::default()
        };
        entry.offsets.insert(("t".into(), 0), committed(0, -1));
        // Committed long ago, but the group emptied on day 10.
        assert!(expired_offsets(&entry, 16 * DAY, 7 * DAY).is_empty());
        assert_eq!(expired_offsets(&entry, 17 * DAY, 7 * DAY).len(), 1);
    }

    #[test]
    fn a_group_whose_offsets_all_expired_is_deleted_with_them() {
        let mut state = ShardState::default();
        state.groups.insert(
            "gone".into(),
            simple_group(&[("t", 0, committed(0, -1)), ("t", 1, committed(0, -1))]),
        );
        state.groups.insert(
            "kept".into(),
            simple_group(&[("t", 0, committed(0, -1)), ("t", 1, committed(6 * DAY, -1))]),
        );
        let (records, emptied) = expired_records(&state, 8 * DAY, 7 * DAY);
        assert_eq!(emptied, ["gone"]);
        let tombstones = records
            .iter()
            .filter(|r| matches!(r, Record::OffsetCommit { value: None, .. }))
            .count();
        let group_tombstones: Vec<_> = records
            .iter()
            .filter_map(|r| match r {
                Record::GroupMetadata { key, value: None } => Some(key.group.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(tombstones, 3);
        assert_eq!(group_tombstones, ["gone"]);
    }
}

#[cfg(test)]
mod broker_tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use kafka_protocol::messages::FindCoordinatorRequest;

    use crate::group::coordinator::{CommitPartition, OffsetCommitInput, OffsetFetchInput};
    use crate::server::testing;

    const DAY: i64 = 24 * 60 * 60 * 1000;

    #[tokio::test]
    async fn an_expiration_pass_tombstones_old_offsets_and_their_empty_group() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        broker
            .create_topic("t", 1, -1, BTreeMap::new(), false)
            .await
            .unwrap();
        let find = || FindCoordinatorRequest::default().with_key("g".to_string().into());
        crate::server::api::find_coordinator::handle(&broker, find(), 3).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let commit = || OffsetCommitInput {
            group_id: "g".into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_ms: None,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 0,
                    offset: 42,
                    leader_epoch: -1,
                    metadata: None,
                }],
            )],
            api_version: 8,
        };
        loop {
            broker.replicas.reconcile();
            if broker.groups.commit_offsets(commit()).await.is_ok() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no coordinator");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let fetch = OffsetFetchInput {
            group_id: "g".into(),
            topics: Some(vec![("t".into(), vec![0])]),
            member_id: None,
            member_epoch: -1,
        };
        let offset = |broker: &testing::TestBroker| {
            broker.groups.fetch_offsets(&fetch).unwrap()[0].1[0].offset
        };
        assert_eq!(offset(&broker), 42);

        let shard = broker.groups.shard_for("g").unwrap();
        let now = sluice_protocol::clock::now_ms();
        assert_eq!(broker.groups.expire_offsets(&shard, now + 6 * DAY).await, 0);
        assert_eq!(offset(&broker), 42);
        // The offset's tombstone and the emptied group's.
        assert_eq!(broker.groups.expire_offsets(&shard, now + 8 * DAY).await, 2);
        assert_eq!(offset(&broker), -1);
        assert!(broker.groups.list_groups().unwrap().is_empty());
        broker.stop().await;
    }
}
