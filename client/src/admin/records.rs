//! Deleting records (DeleteRecords): move partitions' log start offsets forward, each on
//! its leader, as `kafka-delete-records` does.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::DeleteRecordsRequest;

use super::{topic_name, Admin};
use crate::error::{Error, Result};

/// DeleteRecords' offset meaning "up to the high watermark" (every record consumers see).
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

impl Admin {
    /// Delete the records of `topic` below each given (partition, offset) (-1, or
    /// [`DELETE_TO_HIGH_WATERMARK`]: everything below the high watermark). Answers per
    /// partition with its low watermark (the log start offset every in-sync replica has
    /// reached) or why not (NOT_LEADER_OR_FOLLOWER after a leader change, OFFSET_OUT_OF_RANGE
    /// past the high watermark, POLICY_VIOLATION for a compacted topic, ...).
    pub async fn delete_records(
        &self,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<Vec<(i32, Result<i64>)>> {
        let info = self.cluster.topic(topic, self.timeout).await?;
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        let mut answers = Vec::new();
        for &(partition, offset) in offsets {
            match info
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .and_then(|p| p.leader)
            {
                Some(leader) => by_leader
                    .entry(leader)
                    .or_default()
                    .push((partition, offset)),
                None => answers.push((
                    partition,
                    Err(Error::broker(
                        format!("deleting records of {topic}-{partition}"),
                        5,
                        Some("the partition has no leader (or does not exist)".into()),
                    )),
                )),
            }
        }
        for (leader, partitions) in by_leader {
            let request = DeleteRecordsRequest::default()
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&(partition, offset)| {
                                DeleteRecordsPartition::default()
                                    .with_partition_index(partition)
                                    .with_offset(offset)
                            })
                            .collect(),
                    )])
                .with_timeout_ms(self.timeout_ms());
            let connection = self.cluster.broker_connection(leader).await?;
            let response = connection.send(request).await?;
            for result in response.topics.iter().flat_map(|t| &t.partitions) {
                let partition = result.partition_index;
                let answer = match result.error_code {
                    0 => Ok(result.low_watermark),
                    code => Err(Error::broker(
                        format!("deleting records of {topic}-{partition}"),
                        code,
                        None,
                    )),
                };
                answers.push((partition, answer));
            }
        }
        answers.sort_by_key(|(partition, _)| *partition);
        Ok(answers)
    }
}
