//! Positions of a [`GroupConsumer`]: the offset of the next record the application will
//! see, per assigned partition, and the calls that move it or stop it moving (`seek`,
//! `pause`, `resume`).
//!
//! # Positions
//! A partition's *position* here is the offset of the next record the application will
//! see: it moves only when `poll` returns (the inner consumer hands out everything it
//! decoded before an `Ok` return, so its position then equals what the application saw),
//! and on `seek`. Commits (auto, `commit_sync`, `commit_async`, on revoke and on close)
//! send these positions, so nothing is ever committed ahead of what `poll` returned.
//!
//! # Pause
//! A paused partition stays in the group's assignment but is taken out of the inner
//! consumer's; its position is kept and restored on `resume`.

use std::sync::Arc;

use crate::consumer::SeekTo;
use crate::error::{Error, Result};
use crate::group::consumer::{GroupConsumer, TopicPartition};
use crate::offsets::{list_offsets, OffsetSpec, PartitionKey};

impl GroupConsumer {
    /// The offset of the next record `poll` returns for an assigned partition, once known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }
    /// After a successful inner poll, the inner consumer's positions are exactly what the
    /// application has seen.
    pub(super) fn note_positions(&mut self) {
        for (topic, partition) in self.consumer.assignment() {
            if let Some(position) = self.consumer.position(&topic, partition) {
                self.positions.insert((topic, partition), position);
            }
        }
    }
    /// Move an assigned partition's position (paused ones included). Earliest, Latest and
    /// Timestamp are resolved now with ListOffsets.
    pub async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<()> {
        let key = (topic.to_string(), partition);
        if !self.assigned.contains(&key) {
            return Err(Error::InvalidConfig(format!(
                "cannot seek {topic}-{partition}: the group has not assigned it to this member"
            )));
        }
        let offset = if let Some(saved) = self.paused.get_mut(&key) {
            // The inner consumer does not hold a paused partition: resolve here.
            let spec = match to {
                SeekTo::Offset(offset) => Err(offset),
                SeekTo::Earliest => Ok(OffsetSpec::Earliest),
                SeekTo::Latest => Ok(OffsetSpec::Latest),
                SeekTo::Timestamp(ts) => Ok(OffsetSpec::Timestamp(ts)),
            };
            let offset = match spec {
                Err(offset) => offset,
                Ok(spec) => {
                    let target: PartitionKey = (Arc::from(topic), partition);
                    let resolved = list_offsets(
                        self.consumer.cluster(),
                        self.config.consumer.isolation,
                        &[(target.clone(), spec)],
                    )
                    .await?;
                    resolved.get(&target).copied().unwrap_or(0)
                }
            };
            *saved = Some(offset);
            offset
        } else {
            self.consumer.seek(topic, partition, to).await?;
            self.consumer.position(topic, partition).unwrap_or(0)
        };
        self.positions.insert(key, offset);
        Ok(())
    }

    /// Stop fetching these assigned partitions until `resume`; their positions are kept.
    /// A rebalance clears the paused set, as in Kafka.
    pub async fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for key in partitions {
            if !self.assigned.contains(key) {
                return Err(Error::InvalidConfig(format!(
                    "cannot pause {}-{}: the group has not assigned it to this member",
                    key.0, key.1
                )));
            }
        }
        for key in partitions {
            if !self.paused.contains_key(key) {
                self.paused
                    .insert(key.clone(), self.positions.get(key).copied());
            }
        }
        self.consumer.assign(self.fetched_partitions()).await
    }

    /// Fetch these paused partitions again, from where they were paused (or sought).
    pub async fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let mut resumed = Vec::new();
        for key in partitions {
            if let Some(saved) = self.paused.remove(key) {
                resumed.push((key.clone(), saved));
            }
        }
        self.consumer.assign(self.fetched_partitions()).await?;
        for ((topic, partition), saved) in resumed {
            if let Some(offset) = saved {
                self.consumer
                    .seek(&topic, partition, SeekTo::Offset(offset))
                    .await?;
            }
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.paused.keys().cloned().collect()
    }

    /// The assigned partitions that are not paused: what the inner consumer fetches.
    pub(in crate::group) fn fetched_partitions(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .filter(|key| !self.paused.contains_key(*key))
            .cloned()
            .collect()
    }
}
