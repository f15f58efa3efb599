//! `topic describe`: one topic's configs and partitions, every replica's log end offset
//! (asked of its own broker) and its lag behind the leader in offsets and in ms (the age
//! of the oldest record it lacks, read from the leader; see the module doc of [`super`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;
use sluice_client::cluster::PartitionInfo;
use sluice_client::{Admin, ConfigSource};
use sluice_protocol::clock::now_ms;

use super::{
    bounded, is_under_replicated, replica_offsets, PartitionId, ReplicaOffsets, Unavailable,
};

/// One replica in `topic describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaHealth {
    pub broker: i32,
    pub leader: bool,
    pub in_isr: bool,
    /// None when `unavailable` says why.
    pub log_end_offset: Option<i64>,
    /// The leader's log end offset minus this one's.
    pub lag: Option<i64>,
    /// The age of the oldest record this replica lacks (see the module doc).
    pub lag_ms: Option<i64>,
    pub unavailable: Option<Unavailable>,
}

/// One partition in `topic describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionHealth {
    pub partition: i32,
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    pub high_watermark: Option<i64>,
    pub under_replicated: bool,
    pub replica_states: Vec<ReplicaHealth>,
}

/// `sluice topic describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicHealth {
    pub topic: String,
    pub internal: bool,
    pub partition_count: usize,
    pub replication_factor: usize,
    /// The configs shown (overrides only, unless every config was asked for); None values
    /// are sensitive.
    pub configs: BTreeMap<String, Option<String>>,
    pub under_replicated_partitions: usize,
    pub partitions: Vec<PartitionHealth>,
}

/// Where the record a lagging replica lacks first is, and what reading it gave.
pub type RecordTimestamps = HashMap<(PartitionId, i64), Option<i64>>;

/// Gather `topic describe`: metadata and configs, every replica's log end offset, the
/// leaders' high watermarks, and the timestamps of the first records lagging replicas lack.
pub async fn topic_health(
    admin: &Admin,
    topic: &str,
    all_configs: bool,
    timeout: Duration,
) -> sluice_client::Result<TopicHealth> {
    let description = admin.describe_topic(topic).await?;
    let partitions: Vec<(String, PartitionInfo)> = description
        .partitions
        .iter()
        .map(|p| (description.name.clone(), p.clone()))
        .collect();
    let offsets = replica_offsets(admin, &partitions, timeout).await;
    let wanted = lagging_records(&partitions, &offsets);
    let timestamps = record_timestamps(admin, wanted, timeout).await;
    let configs = description
        .configs
        .iter()
        .filter(|c| all_configs || c.source == ConfigSource::TopicOverride)
        .map(|c| (c.name.clone(), c.value.clone()))
        .collect();
    Ok(build_topic_health(
        &description.name,
        description.is_internal,
        configs,
        &description.partitions,
        &offsets,
        &timestamps,
        now_ms(),
    ))
}

/// For each partition, the offsets at which a replica's log ends short of the leader's
/// and below the high watermark (so a consumer fetch can read the record there), with the
/// partition's leader: the records whose timestamps measure lag in ms.
pub fn lagging_records(
    partitions: &[(String, PartitionInfo)],
    offsets: &ReplicaOffsets,
) -> Vec<(PartitionId, i32, i64)> {
    let mut wanted = BTreeSet::new();
    for (topic, p) in partitions {
        let id = (topic.clone(), p.partition);
        let Some(leader) = p.leader else { continue };
        let (Some(Ok(leader_end)), Some(high_watermark)) =
            (offsets.log_end(&id, leader), offsets.high_watermark(&id))
        else {
            continue;
        };
        for replica in &p.replicas {
            if let Some(Ok(end)) = offsets.log_end(&id, *replica) {
                if end < leader_end && *end < high_watermark {
                    wanted.insert((id.clone(), leader, *end));
                }
            }
        }
    }
    wanted.into_iter().collect()
}

/// Read each wanted record's timestamp from the leader (all at once, each bounded).
async fn record_timestamps(
    admin: &Admin,
    wanted: Vec<(PartitionId, i32, i64)>,
    timeout: Duration,
) -> RecordTimestamps {
    let reads = wanted.into_iter().map(|(id, leader, offset)| async move {
        let read = bounded(timeout, admin.record_timestamp(leader, &id.0, id.1, offset)).await;
        ((id, offset), read.ok().flatten())
    });
    futures::future::join_all(reads).await.into_iter().collect()
}

/// `topic describe` from what was gathered, at `now_ms`.
pub fn build_topic_health(
    topic: &str,
    internal: bool,
    configs: BTreeMap<String, Option<String>>,
    partitions: &[PartitionInfo],
    offsets: &ReplicaOffsets,
    timestamps: &RecordTimestamps,
    now_ms: i64,
) -> TopicHealth {
    let partitions: Vec<PartitionHealth> = partitions
        .iter()
        .map(|p| partition_health(topic, p, offsets, timestamps, now_ms))
        .collect();
    TopicHealth {
        topic: topic.to_string(),
        internal,
        partition_count: partitions.len(),
        replication_factor: partitions.first().map_or(0, |p| p.replicas.len()),
        configs,
        under_replicated_partitions: partitions.iter().filter(|p| p.under_replicated).count(),
        partitions,
    }
}

/// One partition of `topic describe`, with every replica's state.
fn partition_health(
    topic: &str,
    p: &PartitionInfo,
    offsets: &ReplicaOffsets,
    timestamps: &RecordTimestamps,
    now_ms: i64,
) -> PartitionHealth {
    let id = (topic.to_string(), p.partition);
    let high_watermark = offsets.high_watermark(&id);
    let leader_end = p
        .leader
        .and_then(|leader| offsets.log_end(&id, leader)?.as_ref().ok().copied());
    let replica_states = p
        .replicas
        .iter()
        .map(|&broker| replica_health(&id, p, broker, leader_end, offsets, timestamps, now_ms))
        .collect();
    PartitionHealth {
        partition: p.partition,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        offline_replicas: p.offline_replicas.clone(),
        high_watermark,
        under_replicated: is_under_replicated(p),
        replica_states,
    }
}

/// One replica of partition `id` (`p` in metadata): its log end offset, or why it is
/// missing, and its lag in offsets and in ms behind the leader's log end offset.
fn replica_health(
    id: &PartitionId,
    p: &PartitionInfo,
    broker: i32,
    leader_end: Option<i64>,
    offsets: &ReplicaOffsets,
    timestamps: &RecordTimestamps,
    now_ms: i64,
) -> ReplicaHealth {
    let (end, unavailable) = match offsets.log_end(id, broker) {
        Some(Ok(end)) => (Some(*end), None),
        Some(Err(unavailable)) => (None, Some(unavailable.clone())),
        None => (None, None),
    };
    let lag = end
        .zip(leader_end)
        .map(|(end, leader)| (leader - end).max(0));
    let lag_ms = match (end, lag) {
        (_, Some(0)) => Some(0),
        (Some(end), Some(_)) => timestamps
            .get(&(id.clone(), end))
            .copied()
            .flatten()
            .map(|timestamp| (now_ms - timestamp).max(0)),
        _ => None,
    };
    ReplicaHealth {
        broker,
        leader: p.leader == Some(broker),
        in_isr: p.isr.contains(&broker),
        log_end_offset: end,
        lag,
        lag_ms,
        unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::test_support::partition;

    fn offsets(
        high_watermark: i64,
        log_ends: &[(i32, Result<i64, Unavailable>)],
    ) -> ReplicaOffsets {
        let id = ("t".to_string(), 0);
        let mut offsets = ReplicaOffsets::default();
        offsets
            .high_watermarks
            .insert(id.clone(), Ok(high_watermark));
        for (broker, end) in log_ends {
            offsets.log_ends.insert((id.clone(), *broker), end.clone());
        }
        offsets
    }

    #[test]
    fn replica_lag_in_offsets_and_in_ms() {
        let p = partition(0, Some(1), &[1, 2, 3, 4], &[1, 2]);
        let offsets = offsets(
            95,
            &[
                (1, Ok(100)),
                (2, Ok(100)),
                (3, Ok(80)),
                (4, Err(Unavailable::Unreachable("refused".into()))),
            ],
        );
        let partitions = vec![("t".to_string(), p.clone())];
        // Only replica 3's first missing record (80) is readable (below the HW).
        assert_eq!(
            lagging_records(&partitions, &offsets),
            vec![(("t".to_string(), 0), 1, 80)]
        );
        let mut timestamps = RecordTimestamps::new();
        timestamps.insert((("t".to_string(), 0), 80), Some(9_000));
        let health = build_topic_health(
            "t",
            false,
            BTreeMap::new(),
            &[p],
            &offsets,
            &timestamps,
            10_000,
        );
        assert_eq!(health.under_replicated_partitions, 1);
        let partition = &health.partitions[0];
        assert_eq!(partition.high_watermark, Some(95));
        assert!(partition.under_replicated);
        type Row = (i32, bool, Option<i64>, Option<i64>, Option<i64>);
        let replicas: Vec<Row> = partition
            .replica_states
            .iter()
            .map(|r| (r.broker, r.in_isr, r.log_end_offset, r.lag, r.lag_ms))
            .collect();
        assert_eq!(
            replicas,
            vec![
                (1, true, Some(100), Some(0), Some(0)),
                (2, true, Some(100), Some(0), Some(0)),
                (3, false, Some(80), Some(20), Some(1_000)),
                (4, false, None, None, None),
            ]
        );
        assert_eq!(
            partition.replica_states[3]
                .unavailable
                .as_ref()
                .map(Unavailable::short),
            Some("unreachable")
        );
        assert!(partition.replica_states[0].leader);
    }

    #[test]
    fn lag_ms_is_unknown_when_the_missing_record_is_not_readable() {
        // Replica 2 lacks records 95..100, all at or above the high watermark.
        let p = partition(0, Some(1), &[1, 2], &[1, 2]);
        let offsets = offsets(95, &[(1, Ok(100)), (2, Ok(95))]);
        let partitions = vec![("t".to_string(), p.clone())];
        assert!(lagging_records(&partitions, &offsets).is_empty());
        let health = build_topic_health(
            "t",
            false,
            BTreeMap::new(),
            &[p],
            &offsets,
            &RecordTimestamps::new(),
            0,
        );
        let replica = &health.partitions[0].replica_states[1];
        assert_eq!((replica.lag, replica.lag_ms), (Some(5), None));
    }
}
