//! One `__consumer_offsets` partition this broker leads: the groups that map to it and
//! their committed offsets, rebuilt from the partition's records and kept in step with
//! every record the coordinator appends.
//!
//! Invariants:
//! - The state is what the partition's records say, applied in log order: a record is
//!   applied only if it is newer (by log offset) than what its key last got, so two writes
//!   whose acknowledgements complete out of order still leave the later one.
//! - A shard serves only while `loaded` and only for the leader epoch it was made for; a
//!   new epoch makes a new shard (the old one is dropped with everything in it).

use std::collections::{BTreeMap, HashMap};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;

use crate::group::classic::{ClassicGroup, JoinResponse, RequestToken, SyncResponse};
use crate::group::consumer::ConsumerGroup;
use crate::group::records::{GroupMetadataValue, OffsetCommitKey, OffsetCommitValue, Record};

/// A committed offset and where its record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// -1: the broker's retention applies.
    pub expire_timestamp_ms: i64,
    /// Log offset of the record that committed it.
    pub record_offset: i64,
}

/// What a shard knows of one group.
#[derive(Debug)]
pub struct GroupEntry {
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Log offset of the last group-metadata record applied (-1: none).
    pub metadata_record_offset: i64,
    /// While the shard loads: the group's last metadata record (`None`: none, or deleted).
    pub loaded: Option<GroupMetadataValue>,
    /// Once the shard is loaded: the live group (every group has one from then on),
    /// unless it is a consumer group (KIP-848), which `consumer` holds instead.
    pub group: Option<ClassicGroup>,
    /// A consumer group (KIP-848): rebuilt by replaying its records while loading, live
    /// afterwards. A group id is a classic group or a consumer group, never both.
    pub consumer: Option<ConsumerGroup>,
    /// The group's generation (epoch) when its shard finished loading: rebalances up to it
    /// ran on an earlier coordinator (0 for a group created since).
    pub generation_at_load: i32,
}

impl Default for GroupEntry {
    fn default() -> GroupEntry {
        GroupEntry {
            offsets: BTreeMap::new(),
            metadata_record_offset: -1,
            loaded: None,
            group: None,
            consumer: None,
            generation_at_load: 0,
        }
    }
}

/// The state behind a shard's lock.
#[derive(Debug, Default)]
pub struct ShardState {
    pub groups: HashMap<String, GroupEntry>,
    /// Parked JoinGroup and SyncGroup requests, by the token their group knows them by.
    pub pending_joins: HashMap<RequestToken, oneshot::Sender<JoinResponse>>,
    pub pending_syncs: HashMap<RequestToken, oneshot::Sender<SyncResponse>>,
    pub next_token: u64,
}

/// One led offsets partition. See the module docs.
#[derive(Debug)]
pub struct Shard {
    pub partition: i32,
    pub leader_epoch: i32,
    loaded: AtomicBool,
    state: Mutex<ShardState>,
}

impl Shard {
    pub fn new(partition: i32, leader_epoch: i32) -> Shard {
        Shard {
            partition,
            leader_epoch,
            loaded: AtomicBool::new(false),
            state: Mutex::new(ShardState::default()),
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    pub fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ShardState {
    /// Apply one record found at `record_offset` of the partition (loading, or after the
    /// coordinator's own append was acknowledged). Records of other kinds are skipped.
    pub fn apply(&mut self, record_offset: i64, record: &Record) {
        match record {
            Record::OffsetCommit { key, value, .. } => {
                self.apply_offset(record_offset, key, value.as_ref())
            }
            Record::GroupMetadata { key, value } => {
                let entry = self.groups.entry(key.group.clone()).or_default();
                if entry.metadata_record_offset >= record_offset {
                    return;
                }
                entry.metadata_record_offset = record_offset;
                // A live group is its own state; while loading, the last record is kept.
                if entry.group.is_none() {
                    entry.loaded = value.clone();
                    if value.is_none() && entry.offsets.is_empty() {
                        // Deleted; its offsets have their own tombstones.
                        self.groups.remove(&key.group);
                    }
                }
            }
            Record::ConsumerGroup(_) | Record::Unknown { .. } => {}
        }
    }

    fn apply_offset(
        &mut self,
        record_offset: i64,
        key: &OffsetCommitKey,
        value: Option<&OffsetCommitValue>,
    ) {
        let partition_key = (key.topic.clone(), key.partition);
        let entry = self.groups.entry(key.group.clone()).or_default();
        if entry
            .offsets
            .get(&partition_key)
            .is_some_and(|current| current.record_offset >= record_offset)
        {
            return;
        }
        match value {
            Some(value) => {
                entry.offsets.insert(
                    partition_key,
                    Committed {
                        offset: value.offset,
                        leader_epoch: value.leader_epoch,
                        metadata: value.metadata.clone(),
                        commit_timestamp_ms: value.commit_timestamp_ms,
                        expire_timestamp_ms: value.expire_timestamp_ms,
                        record_offset,
                    },
                );
            }
            None => {
                entry.offsets.remove(&partition_key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(group: &str, partition: i32, offset: i64) -> Record {
        Record::offset_commit(
            OffsetCommitKey {
                group: group.into(),
                topic: "t".into(),
                partition,
            },
            OffsetCommitValue::new(offset, String::new(), 1_000),
        )
    }

    #[test]
    fn later_records_win_whatever_order_they_are_applied_in() {
        let mut state = ShardState::default();
        state.apply(10, &commit("g", 0, 7));
        state.apply(5, &commit("g", 0, 3)); // an older record, acknowledged late
        let committed = &state.groups["g"].offsets[&("t".to_string(), 0)];
        assert_eq!((committed.offset, committed.record_offset), (7, 10));
        state.apply(11, &commit("g", 0, 9));
        assert_eq!(state.groups["g"].offsets[&("t".to_string(), 0)].offset, 9);
    }

    #[test]
    fn a_tombstone_removes_the_offset() {
        let mut state = ShardState::default();
        state.apply(1, &commit("g", 0, 7));
        state.apply(2, &commit("g", 1, 8));
        let key = OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        state.apply(3, &Record::offset_commit_tombstone(key));
        let offsets = &state.groups["g"].offsets;
        assert_eq!(offsets.len(), 1);
        assert!(offsets.contains_key(&("t".to_string(), 1)));
    }
}
