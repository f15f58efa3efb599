//! OffsetCommit and OffsetFetch on the coordinator (Kafka's `OffsetMetadataManager`).
//!
//! A commit is checked against its group, written as one batch of offset-commit records to
//! the group's partition with acks=all, and applied and answered once the ISR has it. The
//! checks, as Kafka 4.1's `validateOffsetCommit` (an existing group's own rules, generation
//! and member, are its `ClassicGroup`'s):
//! - an empty group id: INVALID_GROUP_ID;
//! - generation < 0 (a client that does not use group management, or an admin tool): a
//!   "simple" commit, accepted, and the group exists from then on;
//! - generation >= 0 for a group that does not exist: ILLEGAL_GENERATION, or
//!   GROUP_ID_NOT_FOUND from OffsetCommit v9; for a group with no such member:
//!   UNKNOWN_MEMBER_ID;
//! - per partition, metadata longer than `offset.metadata.max.bytes` (4096):
//!   OFFSET_METADATA_TOO_LARGE for that partition alone.
//!
//! Write failures become what Kafka's `GroupCoordinatorService` answers for them:
//! NOT_LEADER_OR_FOLLOWER and KAFKA_STORAGE_ERROR become NOT_COORDINATOR (the client looks
//! the coordinator up again); NOT_ENOUGH_REPLICAS(_AFTER_APPEND) and REQUEST_TIMED_OUT
//! become COORDINATOR_NOT_AVAILABLE; MESSAGE_TOO_LARGE and RECORD_LIST_TOO_LARGE become
//! INVALID_COMMIT_OFFSET_SIZE.
//!
//! A fetch reads the shard: an offset never committed (or a group that does not exist)
//! is answered -1 with no error, as Kafka does.

use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::batch::Compression;
use sluice_protocol::clock::now_ms;
use sluice_protocol::error::ErrorCode;
use sluice_protocol::records::{encode_batch, Record as WireRecord};

use super::shard::{GroupEntry, Shard};
use super::{GroupCoordinator, OFFSETS_COMMIT_TIMEOUT, OFFSET_METADATA_BYTES_MAX};
use crate::group::classic::CommitKind;
use crate::group::offsets_topic::OFFSETS_TOPIC;
use crate::group::records::{OffsetCommitKey, OffsetCommitValue, Record};
use crate::replica::{Acks, AppendOrigin, AppendRequest, Appended};

/// An OffsetCommit request, as the coordinator needs it.
#[derive(Debug, Clone)]
pub struct OffsetCommitInput {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v2-v4's retention time; `None` (-1 on the wire) for the broker's.
    pub retention_ms: Option<i64>,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    pub api_version: i16,
}

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Each topic's partitions and their error codes, in request order.
pub type TopicCommitResult = (String, Vec<(i32, ErrorCode)>);

/// An OffsetFetch for one group: `None` topics means every committed offset.
#[derive(Debug, Clone)]
pub struct OffsetFetchInput {
    pub group_id: String,
    pub topics: Option<Vec<(String, Vec<i32>)>>,
    /// OffsetFetch v9's member id and epoch (`None` and -1 before v9, and from admin
    /// clients): a consumer group (KIP-848) checks them (STALE_MEMBER_EPOCH,
    /// UNKNOWN_MEMBER_ID); a classic group does not.
    pub member_id: Option<String>,
    pub member_epoch: i32,
}

/// One partition's committed offset (-1 when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl GroupCoordinator {
    /// Commit offsets (see the module docs). A group-level error is answered for every
    /// partition by the caller.
    pub async fn commit_offsets(
        &self,
        input: OffsetCommitInput,
    ) -> Result<Vec<TopicCommitResult>, ErrorCode> {
        if input.group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let shard = self.shard_for(&input.group_id)?;
        check_member(&shard, &input)?;
        let now = now_ms();
        let mut results: Vec<TopicCommitResult> = Vec::new();
        let mut records = Vec::new();
        for (topic, partitions) in &input.topics {
            let mut codes = Vec::new();
            for partition in partitions {
                let metadata = partition.metadata.clone().unwrap_or_default();
                if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                    codes.push((partition.partition, ErrorCode::OffsetMetadataTooLarge));
                    continue;
                }
                codes.push((partition.partition, ErrorCode::None));
                records.push(commit_record(&input, topic, partition, metadata, now));
            }
            results.push((topic.clone(), codes));
        }
        if records.is_empty() {
            return Ok(results);
        }
        let written = self.write(&shard, &records).await;
        if written.is_ok() {
            metrics::counter!(crate::metrics::OFFSET_COMMITS_TOTAL).increment(records.len() as u64);
        }
        if let Err(code) = written {
            for (_, codes) in &mut results {
                for (_, partition_code) in codes.iter_mut() {
                    if *partition_code == ErrorCode::None {
                        *partition_code = code;
                    }
                }
            }
        }
        Ok(results)
    }

    /// [`GroupCoordinator::write_raw`], with a failure as Kafka's coordinator answers it
    /// for offset and group-admin writes (module docs).
    pub(super) async fn write(
        &self,
        shard: &Arc<Shard>,
        records: &[Record],
    ) -> Result<(), ErrorCode> {
        self.write_raw(shard, records).await.map_err(write_error)
    }

    /// Append `records` to the shard's partition (acks=all), then apply them. A failure is
    /// the replica manager's error code, for the caller to map (a group's metadata write
    /// maps it the classic protocol's way).
    pub(super) async fn write_raw(
        &self,
        shard: &Arc<Shard>,
        records: &[Record],
    ) -> Result<(), ErrorCode> {
        // Appended under the shard's lock, so the log has the records in the order the
        // shard produced them (see `append`).
        let appended = {
            let _state = shard.lock();
            self.append(shard, records)?
        };
        self.committed(shard, &appended, records).await
    }

    /// Put `records` at the end of the shard's partition, now (no waiting). Callers that
    /// changed a group's state for these records call it with the shard's lock held, so two
    /// writes reach the log in the order their changes were made.
    pub(super) fn append(&self, shard: &Shard, records: &[Record]) -> Result<Appended, ErrorCode> {
        let batch = encode(records).map_err(|_| ErrorCode::UnknownServerError)?;
        self.replicas
            .append_records(AppendRequest {
                topic: OFFSETS_TOPIC,
                partition: shard.partition,
                records: Some(batch),
                acks: Acks::All,
                origin: AppendOrigin::Coordinator,
                now_ms: now_ms(),
            })
            .map_err(|(code, _)| code)
    }

    /// Wait until the ISR has the `appended` records (at most `offsets.commit.timeout.ms`),
    /// then apply them to the shard (if it still serves the partition).
    pub(super) async fn committed(
        &self,
        shard: &Arc<Shard>,
        appended: &Appended,
        records: &[Record],
    ) -> Result<(), ErrorCode> {
        let deadline = tokio::time::Instant::now() + OFFSETS_COMMIT_TIMEOUT;
        self.replicas
            .wait_for_acks(appended, deadline)
            .await
            .map_err(|(code, _)| code)?;
        if appended
            .leader_epoch
            .is_some_and(|epoch| epoch != shard.leader_epoch)
            || !self.is_current(shard)
        {
            return Err(ErrorCode::NotCoordinator);
        }
        let mut state = shard.lock();
        for (i, record) in records.iter().enumerate() {
            state.apply(appended.base_offset + i as i64, record);
            if let Record::OffsetCommit {
                key,
                value: Some(_),
                ..
            } = record
            {
                // A simple commit makes the group (Empty) if it did not exist.
                state.ensure_group(&key.group, &self.group_config);
            }
        }
        Ok(())
    }

    /// The committed offsets of a group (see the module docs).
    pub fn fetch_offsets(
        &self,
        input: &OffsetFetchInput,
    ) -> Result<Vec<(String, Vec<FetchedOffset>)>, ErrorCode> {
        if input.group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let shard = self.shard_for(&input.group_id)?;
        let state = shard.lock();
        let group = state.groups.get(&input.group_id);
        if let Some(consumer) = group.and_then(|entry| entry.consumer.as_ref()) {
            consumer
                .validate_offset_fetch(input.member_id.as_deref(), input.member_epoch)
                .map_err(|error| {
                    ErrorCode::from_code(error.code()).unwrap_or(ErrorCode::UnknownServerError)
                })?;
        }
        Ok(match &input.topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let offsets = partitions
                        .iter()
                        .map(|&partition| fetched(group, topic, partition))
                        .collect();
                    (topic.clone(), offsets)
                })
                .collect(),
            None => all_committed(group),
        })
    }
}

/// Kafka's check of who commits (module docs; a group's own rules are its state
/// machine's `validate_offset_commit`).
fn check_member(shard: &Shard, input: &OffsetCommitInput) -> Result<(), ErrorCode> {
    let state = shard.lock();
    let entry = state.groups.get(&input.group_id);
    if let Some(group) = entry.and_then(|entry| entry.consumer.as_ref()) {
        // A consumer group (KIP-848): the generation is the member epoch.
        return group
            .validate_offset_commit(
                &input.member_id,
                input.generation,
                CommitKind::Consumer,
                input.api_version,
            )
            .map_err(|error| {
                ErrorCode::from_code(error.code()).unwrap_or(ErrorCode::UnknownServerError)
            });
    }
    match entry.and_then(|entry| entry.group.as_ref()) {
        Some(group) => group.validate_offset_commit(
            &input.member_id,
            input.group_instance_id.as_deref(),
            input.generation,
            CommitKind::Consumer,
        ),
        None if input.generation < 0 => Ok(()),
        None if input.api_version >= 9 => Err(ErrorCode::GroupIdNotFound),
        None => Err(ErrorCode::IllegalGeneration),
    }
}

fn commit_record(
    input: &OffsetCommitInput,
    topic: &str,
    partition: &CommitPartition,
    metadata: String,
    now: i64,
) -> Record {
    let mut value = OffsetCommitValue::new(partition.offset, metadata, now);
    value.leader_epoch = partition.leader_epoch;
    if let Some(retention_ms) = input.retention_ms {
        value.version = OffsetCommitValue::VERSION_WITH_EXPIRE_TIMESTAMP;
        value.expire_timestamp_ms = now.saturating_add(retention_ms);
    }
    Record::offset_commit(
        OffsetCommitKey {
            group: input.group_id.clone(),
            topic: topic.to_string(),
            partition: partition.partition,
        },
        value,
    )
}

/// One batch holding `records`, keys and values as Kafka writes them.
fn encode(records: &[Record]) -> Result<Bytes, String> {
    let now = now_ms();
    let wire: Vec<WireRecord> = records
        .iter()
        .map(|record| {
            Ok(WireRecord {
                key: Some(record.encode_key().map_err(|e| e.to_string())?),
                value: record.encode_value().map_err(|e| e.to_string())?,
                headers: Vec::new(),
                timestamp: now,
            })
        })
        .collect::<Result<_, String>>()?;
    encode_batch(&wire, Compression::None).map_err(|e| e.to_string())
}

/// What a failed coordinator write answers (module docs).
pub(super) fn write_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::MessageTooLarge
        | ErrorCode::RecordListTooLarge
        | ErrorCode::InvalidFetchSize => ErrorCode::InvalidCommitOffsetSize,
        other => other,
    }
}

fn fetched(group: Option<&GroupEntry>, topic: &str, partition: i32) -> FetchedOffset {
    match group.and_then(|group| group.offsets.get(&(topic.to_string(), partition))) {
        Some(committed) => FetchedOffset {
            partition,
            offset: committed.offset,
            leader_epoch: committed.leader_epoch,
            metadata: committed.metadata.clone(),
        },
        None => FetchedOffset {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
        },
    }
}

fn all_committed(group: Option<&GroupEntry>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut topics: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for ((topic, partition), committed) in group.map(|g| &g.offsets).into_iter().flatten() {
        let offset = FetchedOffset {
            partition: *partition,
            offset: committed.offset,
            leader_epoch: committed.leader_epoch,
            metadata: committed.metadata.clone(),
        };
        match topics.last_mut() {
            Some((last, offsets)) if last == topic => offsets.push(offset),
            _ => topics.push((topic.clone(), vec![offset])),
        }
    }
    topics
}
