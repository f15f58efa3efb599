//! DescribeLogDirs (v1-v4, Kafka 4.1's range; `kafka-log-dirs --describe`): the one data
//! directory of this broker with every hosted partition (or the requested ones) and its
//! log size. The offset lag is Kafka's for a current (not future) log,
//! `max(high watermark - log end, 0)`; `is_future_key` is always false (no replica moves
//! between directories here). The directory's total and usable bytes (v4) are -1, Kafka's "unknown": the
//! broker reads no file-system statistics.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::server::Broker;

pub fn handle(broker: &Broker, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for replica in broker.replicas.all_replicas() {
        if !wanted(&replica.topic, replica.index) {
            continue;
        }
        let log_end = replica.log.log_end_offset();
        let mut p = DescribeLogDirsPartition::default();
        p.partition_index = replica.index;
        p.partition_size = i64::try_from(replica.log.size_bytes()).unwrap_or(i64::MAX);
        p.offset_lag = (replica.high_watermark() - log_end).max(0);
        p.is_future_key = false;
        by_topic.entry(replica.topic.clone()).or_default().push(p);
    }
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = str_bytes(broker.logs.data_dir().display().to_string());
    result.total_bytes = -1;
    result.usable_bytes = -1;
    result.topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            let mut topic = DescribeLogDirsTopic::default();
            topic.name = TopicName(str_bytes(name));
            topic.partitions = partitions;
            topic
        })
        .collect();
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![result];
    response
}
