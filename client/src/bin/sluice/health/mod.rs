//! What an operator looks at: the cluster's brokers and controller quorum, one topic's
//! replicas and how far each lags, and rates between two samples. The data behind `sluice
//! cluster status`, `sluice topic describe` and `sluice top`; [`crate::views`] renders it.
//!
//! Everything is read with ordinary Kafka requests, so the views work against Apache Kafka
//! where the APIs exist (DescribeCluster, DescribeQuorum, Metadata, ListOffsets, Fetch);
//! what a cluster cannot answer is `None` (shown as "-"), never a failure of the whole view.
//! Gathering is async and bounded (every request to one broker by a timeout, so a stopped
//! broker costs the timeout, not the whole view); building a view from what was gathered is
//! a pure function, tested without a cluster.
//!
//! # Definitions
//!
//! - **High watermark**: the partition leader's answer to ListOffsets "latest" for a
//!   consumer (replica id -1): the first offset not yet on every in-sync replica.
//! - **Replica log end offset**: that replica's own broker's answer to ListOffsets "latest"
//!   with Kafka's debugging replica id -2, which any replica answers from its local log.
//!   A broker that cannot be reached (not listed in metadata, connection refused, no answer
//!   within the timeout) makes the replica **unreachable**.
//! - **Lag (offsets)**: the leader's log end offset minus the replica's (0 for the leader).
//! - **Lag (ms)**: the age of the oldest record the replica lacks: now minus the timestamp
//!   of the leader's record at the replica's log end offset, fetched from the leader; 0 when
//!   the replica has everything the leader has. Unknown (`None`) when that record is at or
//!   above the high watermark (a consumer cannot read it yet; a replica in the ISR lacks only
//!   such records, which the leader appended moments ago), or when it cannot be read.
//! - **Under-replicated**: the ISR is smaller than the replica list. **Offline**: no leader.
//! - **Fenced broker**: with DescribeCluster v2 (Kafka 4.0+), what the cluster reports.
//!   Otherwise derived: DescribeCluster v0-1 and Metadata list only unfenced brokers, so a
//!   broker id that the cluster knows elsewhere (a partition's replica list, a quorum
//!   observer, or a quorum voter when the quorum leader is itself a listed broker, i.e.
//!   controllers run inside brokers, as in Sluice) but that is not listed counts as fenced.
//! - **Quorum lag**: the quorum high watermark minus a member's log end offset (0 when the
//!   member is ahead of it). A Sluice leader's high watermark is its applied index + 1,
//!   which may trail the commit index + 1 by the entries being applied.
//! - **Rates** (`top`): the difference between two samples over the time between them
//!   (each timed from when its requests were sent, see [`top::Sample::taken`]). A topic's
//!   records/s sums its partitions' leader log end offset deltas (the high watermark's
//!   when a leader's log end offset is unknown in either sample); bytes in/out
//!   per second come from brokers' `/metrics` (`sluice_topic_bytes_in_total{topic}`,
//!   `sluice_topic_bytes_out_total{topic}`), summed over the endpoints read in both samples
//!   that have the topic's series. Those series exist only where per-topic metrics are on
//!   (Sluice's `--metrics-per-partition`, the default): a topic no such endpoint has a
//!   series for is at 0 B/s when some endpoint exports per-topic series at all
//!   (`sluice_topic_*{topic}`; the topic just had no such traffic), and unknown (`None`)
//!   otherwise, never a made-up 0.
//!
//! # Files
//!
//! This file has what every view shares: why a broker's answer is missing
//! ([`Unavailable`]), the bound on one broker's answer, every replica's offsets
//! ([`replica_offsets`]) and what under-replicated means. Each view has its own file:
//!
//! - `cluster.rs`: `cluster status` (brokers, fencing, the quorum, partition counts).
//! - `topic.rs`: `topic describe` (every replica's log end offset and lag).
//! - `top.rs`: `top` (samples, and the rates and lags between two of them).

pub mod cluster;
pub mod top;
pub mod topic;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use sluice_client::cluster::PartitionInfo;
use sluice_client::{Admin, Error};

/// A partition by topic name and index.
pub type PartitionId = (String, i32);

/// Why one broker's answer is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Unavailable {
    /// The broker could not be reached: not listed, refused, or silent past the timeout.
    Unreachable(String),
    /// The broker answered with an error.
    Error(String),
}

impl Unavailable {
    fn from_error(error: &Error) -> Unavailable {
        match error {
            Error::Io { .. }
            | Error::Disconnected { .. }
            | Error::Timeout { .. }
            | Error::NoBrokerAvailable(_) => Unavailable::Unreachable(error.to_string()),
            Error::Broker { name, .. } => Unavailable::Error(name.clone()),
            other => Unavailable::Error(other.to_string()),
        }
    }

    /// One word for a table cell: "unreachable" or the Kafka error's name.
    pub fn short(&self) -> &str {
        match self {
            Unavailable::Unreachable(_) => "unreachable",
            Unavailable::Error(name) => name,
        }
    }
}

/// `future`, or [`Unavailable::Unreachable`] if it takes longer than `timeout`.
async fn bounded<T>(
    timeout: Duration,
    future: impl Future<Output = sluice_client::Result<T>>,
) -> Result<T, Unavailable> {
    match tokio::time::timeout(timeout, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Unavailable::from_error(&error)),
        Err(_) => Err(Unavailable::Unreachable(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Offsets of every replica of some partitions.

/// What ListOffsets said about some partitions: the leaders' high watermarks and every
/// replica's log end offset.
#[derive(Debug, Clone, Default)]
pub struct ReplicaOffsets {
    pub high_watermarks: HashMap<PartitionId, Result<i64, Unavailable>>,
    /// By (partition, broker).
    pub log_ends: HashMap<(PartitionId, i32), Result<i64, Unavailable>>,
}

impl ReplicaOffsets {
    pub fn high_watermark(&self, partition: &PartitionId) -> Option<i64> {
        self.high_watermarks.get(partition)?.as_ref().ok().copied()
    }

    pub fn log_end(
        &self,
        partition: &PartitionId,
        broker: i32,
    ) -> Option<&Result<i64, Unavailable>> {
        self.log_ends.get(&(partition.clone(), broker))
    }
}

/// Ask every broker holding a replica of `partitions` for its log end offsets (one
/// ListOffsets per broker), and every leader for its high watermarks, all at once, each
/// bounded by `timeout`.
pub async fn replica_offsets(
    admin: &Admin,
    partitions: &[(String, PartitionInfo)],
    timeout: Duration,
) -> ReplicaOffsets {
    let mut by_replica: BTreeMap<i32, Vec<PartitionId>> = BTreeMap::new();
    let mut by_leader: BTreeMap<i32, Vec<PartitionId>> = BTreeMap::new();
    for (topic, p) in partitions {
        let id = (topic.clone(), p.partition);
        for replica in &p.replicas {
            by_replica.entry(*replica).or_default().push(id.clone());
        }
        if let Some(leader) = p.leader {
            by_leader.entry(leader).or_default().push(id);
        }
    }
    let log_ends =
        futures::future::join_all(by_replica.into_iter().map(|(broker, ids)| async move {
            let answer = bounded(timeout, admin.replica_log_end_offsets(broker, &ids)).await;
            (broker, ids, answer)
        }));
    let high_watermarks =
        futures::future::join_all(by_leader.into_iter().map(|(broker, ids)| async move {
            let answer = bounded(timeout, admin.high_watermarks(broker, &ids)).await;
            (broker, ids, answer)
        }));
    let (log_ends, high_watermarks) = futures::future::join(log_ends, high_watermarks).await;
    let mut offsets = ReplicaOffsets::default();
    for (broker, ids, answer) in log_ends {
        for (id, result) in spread(ids, answer) {
            offsets.log_ends.insert((id, broker), result);
        }
    }
    for (_, ids, answer) in high_watermarks {
        offsets.high_watermarks.extend(spread(ids, answer));
    }
    offsets
}

/// One result per partition from a per-broker answer (a failed request fails them all).
fn spread(
    ids: Vec<PartitionId>,
    answer: Result<Vec<sluice_client::Result<i64>>, Unavailable>,
) -> Vec<(PartitionId, Result<i64, Unavailable>)> {
    match answer {
        Ok(results) => ids
            .into_iter()
            .zip(results)
            .map(|(id, r)| (id, r.map_err(|e| Unavailable::from_error(&e))))
            .collect(),
        Err(unavailable) => ids
            .into_iter()
            .map(|id| (id, Err(unavailable.clone())))
            .collect(),
    }
}

/// Kafka's UnderReplicatedPartitions: fewer in-sync replicas than replicas.
pub fn is_under_replicated(p: &PartitionInfo) -> bool {
    p.isr.len() < p.replicas.len()
}

#[cfg(test)]
mod test_support {
    use sluice_client::cluster::PartitionInfo;

    pub fn partition(
        index: i32,
        leader: Option<i32>,
        replicas: &[i32],
        isr: &[i32],
    ) -> PartitionInfo {
        PartitionInfo {
            partition: index,
            leader,
            leader_epoch: 7,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline_replicas: Vec::new(),
            error_code: 0,
        }
    }
}

/// Compile-time check: what the views gather can be awaited on a multi-threaded runtime's
/// tasks, as the clients' own futures can.
#[cfg(test)]
#[allow(dead_code)]
mod send {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    fn gathering_futures_are_send(admin: &Admin) {
        let timeout = Duration::from_secs(1);
        is_send(&cluster::cluster_status(admin, timeout));
        is_send(&topic::topic_health(admin, "t", false, timeout));
        is_send(&top::sample(admin, &[], &[], timeout));
    }
}
