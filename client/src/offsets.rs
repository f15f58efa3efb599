//! Offset lookups with ListOffsets: the earliest offset, the latest, or the first at or
//! after a timestamp, for many partitions at once.
//!
//! Owns the ListOffsets exchange: targets are grouped by leader (one request per broker),
//! and partitions whose leader is unknown or stale (NOT_LEADER_OR_FOLLOWER,
//! LEADER_NOT_AVAILABLE, ...) are retried after a metadata refresh, a bounded number of
//! times. The consumer uses it to resolve seeks; admin uses it to report offsets and to
//! check that a new topic's leaders are really serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// A topic partition.
pub type PartitionKey = (Arc<str>, i32);

/// ListOffsets timestamp meaning "the log start offset".
const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp meaning "the log end offset" (high watermark for consumers).
const LATEST_TIMESTAMP: i64 = -1;
/// Attempts for a lookup that hits a stale or missing leader.
const ATTEMPTS: u32 = 5;
/// Backoff between attempts grows by this much each time.
const BACKOFF_STEP: Duration = Duration::from_millis(100);

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (for consumers, the high watermark).
    Latest,
    /// The first offset whose record has a timestamp at or after this one (ms since the
    /// epoch); the log end offset if there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => EARLIEST_TIMESTAMP,
            OffsetSpec::Latest => LATEST_TIMESTAMP,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// Which records a lookup (and a read) may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Everything below the high watermark, including open and aborted transactions.
    ReadUncommitted,
    /// Only committed transactional records (below the last stable offset).
    ReadCommitted,
}

impl IsolationLevel {
    pub(crate) fn wire_value(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Look up an offset for each target partition.
pub async fn list_offsets(
    cluster: &Cluster,
    isolation: IsolationLevel,
    targets: &[(PartitionKey, OffsetSpec)],
) -> Result<HashMap<PartitionKey, i64>> {
    let mut resolved = HashMap::new();
    let mut remaining: Vec<(PartitionKey, i64)> = targets
        .iter()
        .map(|(key, spec)| (key.clone(), spec.wire_timestamp()))
        .collect();
    let mut last_error = None;
    for attempt in 0..ATTEMPTS {
        if remaining.is_empty() {
            return Ok(resolved);
        }
        if attempt > 0 {
            tokio::time::sleep(BACKOFF_STEP * attempt).await;
            cluster.refresh().await?;
        }
        let metadata = cluster.metadata();
        let mut by_leader: HashMap<i32, Vec<(PartitionKey, i64)>> = HashMap::new();
        let mut retry = Vec::new();
        for (key, timestamp) in remaining.drain(..) {
            match metadata.leader(&key.0, key.1) {
                Some(leader) => by_leader.entry(leader).or_default().push((key, timestamp)),
                None => retry.push((key, timestamp)),
            }
        }
        for (leader, items) in by_leader {
            match list_offsets_at(cluster, isolation, leader, &items).await {
                Ok(results) => {
                    for ((key, timestamp), result) in items.into_iter().zip(results) {
                        match result {
                            // No record at or after the timestamp: the end of the log.
                            Ok(-1) if timestamp >= 0 => retry.push((key, LATEST_TIMESTAMP)),
                            Ok(offset) => {
                                resolved.insert(key, offset);
                            }
                            Err(error) if error.is_retriable() => {
                                last_error = Some(error);
                                retry.push((key, timestamp));
                            }
                            Err(error) => return Err(error),
                        }
                    }
                }
                Err(error) if error.is_retriable() => {
                    last_error = Some(error);
                    retry.extend(items);
                }
                Err(error) => return Err(error),
            }
        }
        remaining = retry;
    }
    if remaining.is_empty() {
        return Ok(resolved);
    }
    Err(last_error.unwrap_or_else(|| {
        let (key, _) = &remaining[0];
        Error::broker(format!("no leader known for {}-{}", key.0, key.1), 5, None)
    }))
}

/// One ListOffsets request to one broker; one result per item, in order.
async fn list_offsets_at(
    cluster: &Cluster,
    isolation: IsolationLevel,
    leader: i32,
    items: &[(PartitionKey, i64)],
) -> Result<Vec<Result<i64>>> {
    let connection = cluster.broker_connection(leader).await?;
    let request = list_offsets_request(isolation, items);
    let response = connection.send(request).await?;
    let mut by_partition = HashMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            by_partition.insert(
                (&*topic.name.0, p.partition_index),
                (p.error_code, p.offset),
            );
        }
    }
    Ok(items
        .iter()
        .map(|((topic, partition), _)| {
            let context = || format!("looking up offsets of {topic}-{partition}");
            match by_partition.get(&(&**topic, *partition)) {
                Some((0, offset)) => Ok(*offset),
                Some((code, _)) => Err(Error::broker(context(), *code, None)),
                None => Err(Error::broker(
                    context(),
                    -1,
                    Some("the partition is missing from the response".into()),
                )),
            }
        })
        .collect())
}

/// A ListOffsets request as a consumer sends it (replica id -1).
fn list_offsets_request(
    isolation: IsolationLevel,
    items: &[(PartitionKey, i64)],
) -> ListOffsetsRequest {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for ((topic, partition), timestamp) in items {
        let entry = ListOffsetsPartition::default()
            .with_partition_index(*partition)
            .with_current_leader_epoch(-1)
            .with_timestamp(*timestamp);
        match topics.iter_mut().find(|t| *t.name.0 == **topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation.wire_value())
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::assert_encodes_at_every_client_version;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn list_offsets_request_encodes_at_every_version_we_may_pick() {
        let items = vec![
            ((Arc::from("t"), 0), OffsetSpec::Earliest.wire_timestamp()),
            (
                (Arc::from("t"), 1),
                OffsetSpec::Timestamp(5).wire_timestamp(),
            ),
        ];
        let request = list_offsets_request(IsolationLevel::ReadUncommitted, &items);
        assert_eq!(request.topics[0].partitions.len(), 2);
        assert_encodes_at_every_client_version(&request, ApiKey::ListOffsets);
    }
}
