//! Kafka's DeleteRecords on the replicas: the leader moves its log start offset
//! ([`ReplicaManager::delete_records`]), each follower follows it from the leader's Fetch
//! answers (`fetcher`), and the request completes once the partition's *low watermark* (the
//! smallest log start offset of the leader and its in-sync followers, as each last reported
//! it in a fetch; Kafka's `lowWatermarkIfLeader`, which looks at live replicas) reaches the
//! requested offset ([`ReplicaManager::wait_low_watermark`]).
//!
//! Kafka's checks, in its order: internal topics refuse (INVALID_TOPIC_EXCEPTION); only the
//! leader deletes (NOT_LEADER_OR_FOLLOWER); a log whose `cleanup.policy` lacks `delete`
//! refuses (POLICY_VIOLATION); the offset is at most the high watermark, -1 meaning the high
//! watermark (OFFSET_OUT_OF_RANGE above it). An offset at or below the log start changes nothing.

use std::time::Duration;

use sluice_protocol::error::ErrorCode;

use super::ReplicaManager;

/// Kafka's internal topics, whose records clients may not delete.
const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// DeleteRecords' "up to the high watermark".
pub const HIGH_WATERMARK_OFFSET: i64 = -1;

/// How often a waiting DeleteRecords looks at the low watermark again when nothing woke it.
const LOW_WATERMARK_RECHECK: Duration = Duration::from_millis(20);

impl ReplicaManager {
    /// Move the log start offset of a partition this broker leads to `offset` (or the high
    /// watermark for -1); returns the offset the low watermark must reach.
    pub fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<i64, (ErrorCode, String)> {
        if INTERNAL_TOPICS.contains(&topic) {
            return Err((
                ErrorCode::InvalidTopicException,
                format!("Cannot delete records of internal topic {topic}"),
            ));
        }
        let replica = self
            .replica(topic, partition)
            .ok_or_else(|| self.not_hosted(topic, partition))?;
        let state = replica.lock();
        if !state.is_leader() {
            return Err((
                ErrorCode::NotLeaderOrFollower,
                format!("this broker does not lead {topic}-{partition}"),
            ));
        }
        if !replica.log.config().cleaner.cleanup_policy.deletes() {
            return Err((
                ErrorCode::PolicyViolation,
                format!("Records of partition {topic}-{partition} can not be deleted since the cleanup.policy is not delete"),
            ));
        }
        let high_watermark = state.high_watermark();
        let target = if offset == HIGH_WATERMARK_OFFSET {
            high_watermark
        } else {
            offset
        };
        if target < 0 || target > high_watermark {
            return Err((
                ErrorCode::OffsetOutOfRange,
                format!("Cannot increment the log start offset to {target} of partition {topic}-{partition} since it is larger than the high watermark {high_watermark}"),
            ));
        }
        replica
            .log
            .advance_log_start(target)
            .map_err(|error| (ErrorCode::KafkaStorageError, error.to_string()))?;
        // Followers learn the new start from their next fetch answer.
        Ok(target)
    }

    /// The smallest log start offset of the leader and its in-sync followers (those that
    /// reported one); `None` unless this broker leads the partition.
    pub fn low_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        let replica = self.replica(topic, partition)?;
        let state = replica.lock();
        let isr = state.isr()?.committed_isr().clone();
        let followers = state.followers()?;
        let leader_start = replica.log.log_start_offset();
        Some(
            isr.iter()
                .filter_map(|id| followers.get(*id))
                .map(|f| f.log_start_offset())
                .filter(|start| *start >= 0)
                .fold(leader_start, i64::min),
        )
    }

    /// Wait (at most `timeout`) until the partition's low watermark reaches `target`; the
    /// low watermark then, or why not (REQUEST_TIMED_OUT, or the leadership moved).
    pub async fn wait_low_watermark(
        &self,
        topic: &str,
        partition: i32,
        target: i64,
        timeout: Duration,
    ) -> Result<i64, (ErrorCode, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self
            .replica(topic, partition)
            .ok_or_else(|| self.not_hosted(topic, partition))?
            .subscribe();
        loop {
            let Some(low_watermark) = self.low_watermark(topic, partition) else {
                return Err((
                    ErrorCode::NotLeaderOrFollower,
                    format!("this broker no longer leads {topic}-{partition}"),
                ));
            };
            if low_watermark >= target {
                return Ok(low_watermark);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err((
                    ErrorCode::RequestTimedOut,
                    format!("the followers of {topic}-{partition} did not reach log start offset {target} in time (low watermark {low_watermark})"),
                ));
            }
            let next_look = (tokio::time::Instant::now() + LOW_WATERMARK_RECHECK).min(deadline);
            let _ = tokio::time::timeout_at(next_look, changes.changed()).await;
        }
    }

    pub(super) fn not_hosted(&self, topic: &str, partition: i32) -> (ErrorCode, String) {
        let known = self.metadata.read(|state| {
            state
                .topic_by_name(topic)
                .is_some_and(|t| usize::try_from(partition).is_ok_and(|p| p < t.partitions.len()))
        });
        if known {
            (
                ErrorCode::NotLeaderOrFollower,
                format!("this broker does not lead {topic}-{partition}"),
            )
        } else {
            (
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic or partition {topic}-{partition}"),
            )
        }
    }
}
