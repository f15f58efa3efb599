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
//!   (each timed from when its requests were sent, see [`Sample::taken`]). A topic's
//!   records/s sums its partitions' leader log end offset deltas (the high watermark's
//!   when a leader's log end offset is unknown in either sample); bytes in/out
//!   per second come from brokers' `/metrics` (`sluice_topic_bytes_in_total{topic}`,
//!   `sluice_topic_bytes_out_total{topic}`), summed over the endpoints read in both samples
//!   that have the topic's series. Those series exist only where per-topic metrics are on
//!   (Sluice's `--metrics-per-partition`, the default): a topic no such endpoint has a
//!   series for is at 0 B/s when some endpoint exports per-topic series at all
//!   (`sluice_topic_*{topic}`; the topic just had no such traffic), and unknown (`None`)
//!   otherwise, never a made-up 0.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::admin::{Admin, ClusterDescription, QuorumDescription, QuorumReplica};
use crate::cluster::{Metadata, PartitionInfo};
use crate::error::Error;
use crate::scrape::{self, Endpoint};

/// A partition by topic name and index.
pub type PartitionId = (String, i32);

/// Metric names `top` reads from Sluice brokers' `/metrics`.
pub const TOPIC_BYTES_IN_METRIC: &str = "sluice_topic_bytes_in_total";
pub const TOPIC_BYTES_OUT_METRIC: &str = "sluice_topic_bytes_out_total";
/// The prefix of Sluice's per-topic series (each with a `topic` label), exported only with
/// `--metrics-per-partition`.
pub const TOPIC_METRIC_PREFIX: &str = "sluice_topic_";

pub use sluice_protocol::clock::now_ms;

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
    future: impl Future<Output = crate::Result<T>>,
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
    answer: Result<Vec<crate::Result<i64>>, Unavailable>,
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

// ---------------------------------------------------------------------------------------
// sluice cluster status

/// One broker in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerStatus {
    pub id: i32,
    /// None for a broker known only by id (a fenced one, when derived).
    pub address: Option<String>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The broker DescribeCluster names as the controller.
    pub controller: bool,
}

/// How the `fenced` flags were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FencedSource {
    /// The cluster reported them (DescribeCluster v2).
    Reported,
    /// Known ids missing from the broker list (see the module doc).
    Derived,
}

/// One quorum member in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumMember {
    pub id: i32,
    pub log_end_offset: Option<i64>,
    /// The quorum high watermark minus `log_end_offset`, at least 0.
    pub lag: Option<i64>,
    pub last_fetch_timestamp: Option<i64>,
    pub last_caught_up_timestamp: Option<i64>,
}

/// The controller quorum in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumStatus {
    pub leader_id: Option<i32>,
    /// The leader's epoch: the Raft term.
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumMember>,
    pub observers: Vec<QuorumMember>,
}

/// Partition counts over every topic in metadata (internal ones included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PartitionCounts {
    pub topics: usize,
    pub partitions: usize,
    /// ISR smaller than the replica list.
    pub under_replicated: usize,
    /// No leader.
    pub offline: usize,
}

/// `sluice cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub brokers: Vec<BrokerStatus>,
    pub fenced_source: FencedSource,
    /// None when the cluster does not answer DescribeQuorum; `quorum_error` says why when it
    /// failed rather than being unsupported.
    pub quorum: Option<QuorumStatus>,
    pub quorum_error: Option<String>,
    pub partitions: PartitionCounts,
}

/// Gather `cluster status`: DescribeCluster, DescribeQuorum (where supported; first to the
/// controller DescribeCluster names, see [`Admin::describe_quorum`]) and the metadata of
/// every topic. Each DescribeQuorum request is bounded by `timeout`; DescribeCluster and
/// Metadata by the admin's connection timeouts.
pub async fn cluster_status(admin: &Admin, timeout: Duration) -> crate::Result<ClusterStatus> {
    let description = admin.describe_cluster().await?;
    let quorum = admin.describe_quorum(description.controller_id, timeout);
    let (quorum, quorum_error) = match quorum.await {
        Ok(quorum) => (quorum, None),
        Err(error) => (None, Some(error.to_string())),
    };
    let metadata = admin.cluster().refresh_all_topics().await?;
    Ok(build_cluster_status(
        &description,
        quorum.as_ref(),
        quorum_error,
        &metadata,
    ))
}

/// `cluster status` from what the cluster said.
pub fn build_cluster_status(
    description: &ClusterDescription,
    quorum: Option<&QuorumDescription>,
    quorum_error: Option<String>,
    metadata: &Metadata,
) -> ClusterStatus {
    let controller = description.controller_id;
    let mut brokers: BTreeMap<i32, BrokerStatus> = description
        .brokers
        .iter()
        .map(|b| {
            let status = BrokerStatus {
                id: b.id,
                address: Some(b.address()),
                rack: b.rack.clone(),
                fenced: description
                    .fenced
                    .as_ref()
                    .is_some_and(|fenced| fenced.contains(&b.id)),
                controller: controller == Some(b.id),
            };
            (b.id, status)
        })
        .collect();
    let fenced_source = if description.fenced.is_some() {
        FencedSource::Reported
    } else {
        let mut known: BTreeSet<i32> = metadata
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .flat_map(|p| &p.replicas)
            .copied()
            .collect();
        if let Some(quorum) = quorum {
            known.extend(quorum.observers.iter().map(|r| r.id));
            let controllers_are_brokers = quorum
                .leader_id
                .is_some_and(|leader| brokers.contains_key(&leader));
            if controllers_are_brokers {
                known.extend(quorum.voters.iter().map(|r| r.id));
            }
        }
        for id in known {
            brokers.entry(id).or_insert(BrokerStatus {
                id,
                address: None,
                rack: None,
                fenced: true,
                controller: controller == Some(id),
            });
        }
        FencedSource::Derived
    };
    ClusterStatus {
        cluster_id: description.cluster_id.clone(),
        controller_id: controller,
        brokers: brokers.into_values().collect(),
        fenced_source,
        quorum: quorum.map(quorum_status),
        quorum_error,
        partitions: partition_counts(metadata),
    }
}

fn quorum_status(quorum: &QuorumDescription) -> QuorumStatus {
    let member = |r: &QuorumReplica| QuorumMember {
        id: r.id,
        log_end_offset: r.log_end_offset,
        lag: r
            .log_end_offset
            .map(|end| quorum.high_watermark.saturating_sub(end).max(0)),
        last_fetch_timestamp: r.last_fetch_timestamp,
        last_caught_up_timestamp: r.last_caught_up_timestamp,
    };
    QuorumStatus {
        leader_id: quorum.leader_id,
        leader_epoch: quorum.leader_epoch,
        high_watermark: quorum.high_watermark,
        voters: quorum.voters.iter().map(member).collect(),
        observers: quorum.observers.iter().map(member).collect(),
    }
}

/// Topic and partition counts, under-replicated and offline partitions.
pub fn partition_counts(metadata: &Metadata) -> PartitionCounts {
    let partitions = metadata.topics.values().flat_map(|t| &t.partitions);
    PartitionCounts {
        topics: metadata.topics.len(),
        partitions: partitions.clone().count(),
        under_replicated: partitions
            .clone()
            .filter(|p| is_under_replicated(p))
            .count(),
        offline: partitions.filter(|p| p.leader.is_none()).count(),
    }
}

/// Kafka's UnderReplicatedPartitions: fewer in-sync replicas than replicas.
pub fn is_under_replicated(p: &PartitionInfo) -> bool {
    p.isr.len() < p.replicas.len()
}

// ---------------------------------------------------------------------------------------
// sluice topic describe

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
) -> crate::Result<TopicHealth> {
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
        .filter(|c| all_configs || c.source == crate::ConfigSource::TopicOverride)
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
        .map(|p| {
            let id = (topic.to_string(), p.partition);
            let high_watermark = offsets.high_watermark(&id);
            let leader_end = p
                .leader
                .and_then(|leader| offsets.log_end(&id, leader)?.as_ref().ok().copied());
            let replica_states = p
                .replicas
                .iter()
                .map(|&broker| {
                    let (end, unavailable) = match offsets.log_end(&id, broker) {
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
                })
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
        })
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

// ---------------------------------------------------------------------------------------
// sluice top

/// One partition at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSample {
    pub topic: String,
    pub info: PartitionInfo,
    pub high_watermark: Option<i64>,
    /// Every replica's log end offset, by broker (an `Err` for an unavailable one).
    pub log_ends: BTreeMap<i32, Result<i64, Unavailable>>,
}

impl PartitionSample {
    /// The leader's log end offset, if known.
    pub fn leader_end(&self) -> Option<i64> {
        let leader = self.info.leader?;
        self.log_ends.get(&leader)?.as_ref().ok().copied()
    }
}

/// One metrics endpoint's per-topic byte counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicCounters {
    /// (metric name, topic) -> value, for [`TOPIC_BYTES_IN_METRIC`] and
    /// [`TOPIC_BYTES_OUT_METRIC`].
    pub values: BTreeMap<(String, String), f64>,
    /// Whether the endpoint exports any per-topic series (`sluice_topic_*{topic=...}`):
    /// false for a Sluice broker run with `--metrics-per-partition false`, or an endpoint
    /// that is not a Sluice broker's.
    pub per_topic_series: bool,
}

/// Everything `top` reads at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the ListOffsets requests and the scrapes were started, all at once: the
    /// moment rates are measured from. Taken before them, not after, so that one slow
    /// answer (up to the timeout) does not stretch the time between two samples and
    /// understate the rates.
    pub taken: Instant,
    pub partitions: Vec<PartitionSample>,
    /// By endpoint (its URL), the counters or why they are missing.
    pub metrics: BTreeMap<String, Result<TopicCounters, String>>,
}

/// Read every partition of `topics` (every non-internal topic when empty), and the
/// per-topic byte counters of each `/metrics` endpoint.
pub async fn sample(
    admin: &Admin,
    topics: &[String],
    metrics_endpoints: &[Endpoint],
    timeout: Duration,
) -> crate::Result<Sample> {
    let metadata = admin.cluster().refresh_all_topics().await?;
    let mut partitions: Vec<(String, PartitionInfo)> = metadata
        .topics
        .values()
        .filter(|t| {
            if topics.is_empty() {
                !t.is_internal
            } else {
                topics.contains(&t.name)
            }
        })
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.clone())))
        .collect();
    partitions.sort_by(|a, b| (&a.0, a.1.partition).cmp(&(&b.0, b.1.partition)));
    let scrapes = futures::future::join_all(metrics_endpoints.iter().map(|endpoint| async move {
        let counters = scrape::get(&endpoint.address, &endpoint.path, timeout)
            .await
            .map(|text| topic_counters(&text));
        (endpoint.to_string(), counters)
    }));
    // The futures are lazy: offsets and counters are all requested from here on, so this
    // is the instant of both (see `Sample::taken`).
    let taken = Instant::now();
    let (offsets, scrapes) =
        futures::future::join(replica_offsets(admin, &partitions, timeout), scrapes).await;
    let partitions = partitions
        .into_iter()
        .map(|(topic, info)| {
            let id = (topic.clone(), info.partition);
            let log_ends = info
                .replicas
                .iter()
                .filter_map(|&broker| Some((broker, offsets.log_end(&id, broker)?.clone())))
                .collect();
            PartitionSample {
                high_watermark: offsets.high_watermark(&id),
                topic,
                info,
                log_ends,
            }
        })
        .collect();
    Ok(Sample {
        taken,
        partitions,
        metrics: scrapes.into_iter().collect(),
    })
}

/// The per-topic byte counters `top` uses from one `/metrics` text.
pub fn topic_counters(text: &str) -> TopicCounters {
    let mut counters = TopicCounters::default();
    for sample in scrape::parse(text) {
        let Some(topic) = sample.label("topic") else {
            continue;
        };
        if sample.name.starts_with(TOPIC_METRIC_PREFIX) {
            counters.per_topic_series = true;
        }
        if sample.name != TOPIC_BYTES_IN_METRIC && sample.name != TOPIC_BYTES_OUT_METRIC {
            continue;
        }
        *counters
            .values
            .entry((sample.name.clone(), topic.to_string()))
            .or_insert(0.0) += sample.value;
    }
    counters
}

/// One topic's line in `top`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicRates {
    pub topic: String,
    pub partitions: usize,
    /// Records appended per second (None when no partition's offsets were known twice).
    pub records_per_sec: Option<f64>,
    /// From `/metrics`: None when no endpoint read in both samples exports per-topic
    /// series (none given, none answered, or per-topic metrics off); see the module doc.
    pub bytes_in_per_sec: Option<f64>,
    pub bytes_out_per_sec: Option<f64>,
    pub under_replicated_partitions: usize,
    pub offline_partitions: usize,
    /// The largest replica lag (offsets) among its partitions.
    pub max_lag: Option<i64>,
    pub unreachable_replicas: usize,
}

/// One partition's line in `top`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub under_replicated: bool,
    pub records_per_sec: Option<f64>,
    /// The largest lag (offsets) of a replica behind the leader's log end offset.
    pub max_lag: Option<i64>,
    /// The replica with that lag, when it is above 0.
    pub max_lag_replica: Option<i32>,
    /// Replicas whose broker gave no offset.
    pub unavailable_replicas: Vec<i32>,
}

/// One refresh of `top`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopView {
    pub iteration: u64,
    /// Wall-clock time of the refresh, ms since the epoch.
    pub time_ms: i64,
    /// Time between the two samples the rates come from.
    pub elapsed_ms: u64,
    pub topics: Vec<TopicRates>,
    pub partitions: Vec<PartitionLag>,
    /// Endpoints whose `/metrics` could not be read, with why.
    pub metrics_errors: BTreeMap<String, String>,
}

/// The rates and lags between two samples.
pub fn top_view(previous: &Sample, current: &Sample, iteration: u64, time_ms: i64) -> TopView {
    let elapsed = current.taken.saturating_duration_since(previous.taken);
    let seconds = elapsed.as_secs_f64();
    let per_second = |delta: i64| {
        if seconds > 0.0 {
            delta.max(0) as f64 / seconds
        } else {
            0.0
        }
    };
    let before: HashMap<(&str, i32), &PartitionSample> = previous
        .partitions
        .iter()
        .map(|p| ((p.topic.as_str(), p.info.partition), p))
        .collect();
    let mut partitions = Vec::new();
    for now in &current.partitions {
        let then = before.get(&(now.topic.as_str(), now.info.partition));
        let delta = then.and_then(|then| match (then.leader_end(), now.leader_end()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => Some(now.high_watermark? - then.high_watermark?),
        });
        let leader_end = now.leader_end();
        let mut max_lag: Option<(i64, i32)> = None;
        let mut unavailable_replicas = Vec::new();
        for (&broker, end) in &now.log_ends {
            match (end, leader_end) {
                (Ok(end), Some(leader_end)) => {
                    let lag = (leader_end - end).max(0);
                    if max_lag.is_none_or(|(worst, _)| lag > worst) {
                        max_lag = Some((lag, broker));
                    }
                }
                (Ok(_), None) => {}
                (Err(_), _) => unavailable_replicas.push(broker),
            }
        }
        partitions.push(PartitionLag {
            topic: now.topic.clone(),
            partition: now.info.partition,
            leader: now.info.leader,
            replicas: now.info.replicas.clone(),
            isr: now.info.isr.clone(),
            under_replicated: is_under_replicated(&now.info),
            records_per_sec: delta.map(per_second),
            max_lag: max_lag.map(|(lag, _)| lag),
            max_lag_replica: max_lag
                .filter(|(lag, _)| *lag > 0)
                .map(|(_, broker)| broker),
            unavailable_replicas,
        });
    }

    // Endpoints read in both samples: only they give a rate.
    let read_twice: Vec<(&TopicCounters, &TopicCounters)> = current
        .metrics
        .iter()
        .filter_map(
            |(endpoint, now)| match (now, previous.metrics.get(endpoint)) {
                (Ok(now), Some(Ok(then))) => Some((then, now)),
                _ => None,
            },
        )
        .collect();
    let per_topic_series = read_twice.iter().any(|(_, now)| now.per_topic_series);
    let byte_rates = |metric: &str| -> BTreeMap<String, f64> {
        let mut rates = BTreeMap::new();
        for (then, now) in &read_twice {
            for ((name, topic), value) in &now.values {
                if name != metric {
                    continue;
                }
                let before = then
                    .values
                    .get(&(name.clone(), topic.clone()))
                    .copied()
                    .unwrap_or(0.0);
                // A counter that went down restarted with its broker: count from zero.
                let delta = if *value >= before {
                    value - before
                } else {
                    *value
                };
                let rate = if seconds > 0.0 { delta / seconds } else { 0.0 };
                *rates.entry(topic.clone()).or_insert(0.0) += rate;
            }
        }
        rates
    };
    let bytes_in = byte_rates(TOPIC_BYTES_IN_METRIC);
    let bytes_out = byte_rates(TOPIC_BYTES_OUT_METRIC);
    // A topic without a series where per-topic series exist had no such traffic (0);
    // where none exist, its rate is unknown.
    let byte_rate = |rates: &BTreeMap<String, f64>, topic: &str| {
        rates
            .get(topic)
            .copied()
            .or(per_topic_series.then_some(0.0))
    };

    let mut topics: BTreeMap<&str, TopicRates> = BTreeMap::new();
    for p in &partitions {
        let entry = topics.entry(&p.topic).or_insert_with(|| TopicRates {
            topic: p.topic.clone(),
            partitions: 0,
            records_per_sec: None,
            bytes_in_per_sec: None,
            bytes_out_per_sec: None,
            under_replicated_partitions: 0,
            offline_partitions: 0,
            max_lag: None,
            unreachable_replicas: 0,
        });
        entry.partitions += 1;
        if let Some(rate) = p.records_per_sec {
            *entry.records_per_sec.get_or_insert(0.0) += rate;
        }
        entry.under_replicated_partitions += usize::from(p.under_replicated);
        entry.offline_partitions += usize::from(p.leader.is_none());
        if let Some(lag) = p.max_lag {
            entry.max_lag = Some(entry.max_lag.map_or(lag, |worst| worst.max(lag)));
        }
        entry.unreachable_replicas += p.unavailable_replicas.len();
    }
    for (topic, rates) in topics.iter_mut() {
        rates.bytes_in_per_sec = byte_rate(&bytes_in, topic);
        rates.bytes_out_per_sec = byte_rate(&bytes_out, topic);
    }
    TopView {
        iteration,
        time_ms,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        topics: topics.into_values().collect(),
        partitions,
        metrics_errors: current
            .metrics
            .iter()
            .filter_map(|(endpoint, r)| Some((endpoint.clone(), r.as_ref().err()?.clone())))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{BrokerInfo, TopicInfo};

    fn partition(index: i32, leader: Option<i32>, replicas: &[i32], isr: &[i32]) -> PartitionInfo {
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

    fn broker(id: i32) -> BrokerInfo {
        BrokerInfo {
            id,
            host: "127.0.0.1".to_string(),
            port: 9090 + id,
            rack: None,
        }
    }

    fn metadata(partitions: Vec<PartitionInfo>) -> Metadata {
        let mut metadata = Metadata::default();
        metadata.topics.insert(
            "t".to_string(),
            TopicInfo {
                name: "t".to_string(),
                is_internal: false,
                partitions,
                error_code: 0,
            },
        );
        metadata
    }

    fn quorum(leader: i32) -> QuorumDescription {
        let replica = |id: i32, end: Option<i64>| QuorumReplica {
            id,
            log_end_offset: end,
            last_fetch_timestamp: None,
            last_caught_up_timestamp: None,
        };
        QuorumDescription {
            leader_id: Some(leader),
            leader_epoch: 3,
            high_watermark: 100,
            voters: vec![
                replica(1, Some(100)),
                replica(2, Some(90)),
                replica(3, Some(101)),
            ],
            observers: vec![replica(4, None)],
        }
    }

    #[test]
    fn counts_under_replicated_and_offline_partitions() {
        let metadata = metadata(vec![
            partition(0, Some(1), &[1, 2, 3], &[1, 2, 3]),
            partition(1, Some(2), &[2, 3, 1], &[2, 3]),
            partition(2, None, &[3, 1, 2], &[3]),
        ]);
        assert_eq!(
            partition_counts(&metadata),
            PartitionCounts {
                topics: 1,
                partitions: 3,
                under_replicated: 2,
                offline: 1
            }
        );
    }

    #[test]
    fn unlisted_known_brokers_are_derived_fenced() {
        let description = ClusterDescription {
            cluster_id: Some("c".to_string()),
            controller_id: Some(1),
            brokers: vec![broker(1), broker(2)],
            fenced: None,
        };
        // Broker 3 holds replicas but is not listed; 4 is a quorum observer.
        let metadata = metadata(vec![partition(0, Some(1), &[1, 2, 3], &[1, 2])]);
        let status = build_cluster_status(&description, Some(&quorum(1)), None, &metadata);
        assert_eq!(status.fenced_source, FencedSource::Derived);
        let brokers: Vec<(i32, bool, bool, bool)> = status
            .brokers
            .iter()
            .map(|b| (b.id, b.address.is_some(), b.fenced, b.controller))
            .collect();
        assert_eq!(
            brokers,
            vec![
                (1, true, false, true),
                (2, true, false, false),
                (3, false, true, false),
                (4, false, true, false)
            ]
        );
        let quorum = status.quorum.expect("a quorum");
        let lags: Vec<(i32, Option<i64>)> = quorum.voters.iter().map(|v| (v.id, v.lag)).collect();
        // A member ahead of the high watermark does not lag.
        assert_eq!(lags, vec![(1, Some(0)), (2, Some(10)), (3, Some(0))]);
        assert_eq!(quorum.observers[0].lag, None);
        assert_eq!(status.partitions.under_replicated, 1);
    }

    #[test]
    fn voters_count_as_brokers_only_when_controllers_are_brokers() {
        // Kafka with separate controllers: the quorum leader (3000) is no listed broker,
        // so voters 3000.. are not brokers, let alone fenced ones.
        let description = ClusterDescription {
            cluster_id: None,
            controller_id: Some(1),
            brokers: vec![broker(1)],
            fenced: None,
        };
        let mut separate = quorum(3000);
        for (voter, id) in separate.voters.iter_mut().zip(3000..) {
            voter.id = id;
        }
        separate.observers.clear();
        let status = build_cluster_status(&description, Some(&separate), None, &metadata(vec![]));
        assert_eq!(status.brokers.len(), 1);
        assert!(!status.brokers[0].fenced);
    }

    #[test]
    fn reported_fencing_is_taken_as_is() {
        let description = ClusterDescription {
            cluster_id: None,
            controller_id: None,
            brokers: vec![broker(1), broker(2)],
            fenced: Some(vec![2]),
        };
        let metadata = metadata(vec![partition(0, Some(1), &[1, 2, 3], &[1])]);
        let status = build_cluster_status(&description, None, Some("boom".into()), &metadata);
        assert_eq!(status.fenced_source, FencedSource::Reported);
        let fenced: Vec<(i32, bool)> = status.brokers.iter().map(|b| (b.id, b.fenced)).collect();
        assert_eq!(fenced, vec![(1, false), (2, true)], "3 is not invented");
        assert_eq!(status.quorum, None);
        assert_eq!(status.quorum_error.as_deref(), Some("boom"));
    }

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

    fn partition_sample(
        index: i32,
        high_watermark: i64,
        log_ends: &[(i32, Result<i64, Unavailable>)],
        isr: &[i32],
    ) -> PartitionSample {
        let replicas: Vec<i32> = log_ends.iter().map(|(b, _)| *b).collect();
        PartitionSample {
            topic: "t".to_string(),
            info: partition(index, Some(replicas[0]), &replicas, isr),
            high_watermark: Some(high_watermark),
            log_ends: log_ends.iter().cloned().collect(),
        }
    }

    #[test]
    fn top_rates_come_from_offset_and_counter_deltas() {
        let start = Instant::now();
        let counters = |bytes_in: f64| -> Result<TopicCounters, String> {
            Ok(TopicCounters {
                values: BTreeMap::from([(
                    (TOPIC_BYTES_IN_METRIC.to_string(), "t".to_string()),
                    bytes_in,
                )]),
                per_topic_series: true,
            })
        };
        let previous = Sample {
            taken: start,
            partitions: vec![
                partition_sample(0, 100, &[(1, Ok(100)), (2, Ok(100))], &[1, 2]),
                partition_sample(1, 50, &[(2, Ok(50)), (1, Ok(50))], &[2, 1]),
            ],
            metrics: BTreeMap::from([
                ("a:1".to_string(), counters(1_000.0)),
                ("b:1".to_string(), counters(500.0)),
            ]),
        };
        let current = Sample {
            taken: start + Duration::from_secs(2),
            partitions: vec![
                partition_sample(0, 300, &[(1, Ok(300)), (2, Ok(300))], &[1, 2]),
                partition_sample(
                    1,
                    60,
                    &[
                        (2, Ok(90)),
                        (1, Err(Unavailable::Unreachable("gone".into()))),
                    ],
                    &[2],
                ),
            ],
            metrics: BTreeMap::from([
                ("a:1".to_string(), counters(3_000.0)),
                // Restarted: its counter starts again from zero.
                ("b:1".to_string(), counters(200.0)),
                ("c:1".to_string(), Err("refused".to_string())),
            ]),
        };
        let view = top_view(&previous, &current, 1, 0);
        assert_eq!(view.elapsed_ms, 2_000);
        // p0: 200 records in 2 s; p1: the leader's log end moved 40 (its HW only 10).
        assert_eq!(view.partitions[0].records_per_sec, Some(100.0));
        assert_eq!(view.partitions[1].records_per_sec, Some(20.0));
        assert_eq!(view.partitions[1].unavailable_replicas, vec![1]);
        assert!(view.partitions[1].under_replicated);
        assert_eq!(view.partitions[0].max_lag, Some(0));
        let topic = &view.topics[0];
        assert_eq!(topic.records_per_sec, Some(120.0));
        // (2000 + 200) bytes over 2 s.
        assert_eq!(topic.bytes_in_per_sec, Some(1_100.0));
        // Per-topic series are exported, just none of bytes out for t: nothing consumed.
        assert_eq!(topic.bytes_out_per_sec, Some(0.0));
        assert_eq!(topic.under_replicated_partitions, 1);
        assert_eq!(topic.unreachable_replicas, 1);
        assert_eq!(
            view.metrics_errors,
            BTreeMap::from([("c:1".to_string(), "refused".to_string())])
        );
    }

    #[test]
    fn top_without_metrics_or_a_previous_sample_has_no_rates() {
        let start = Instant::now();
        let previous = Sample {
            taken: start,
            partitions: Vec::new(),
            metrics: BTreeMap::new(),
        };
        let current = Sample {
            taken: start + Duration::from_secs(1),
            partitions: vec![partition_sample(
                0,
                10,
                &[(1, Ok(12)), (2, Ok(10))],
                &[1, 2],
            )],
            metrics: BTreeMap::new(),
        };
        let view = top_view(&previous, &current, 1, 0);
        assert_eq!(view.partitions[0].records_per_sec, None);
        assert_eq!(view.partitions[0].max_lag, Some(2));
        assert_eq!(view.partitions[0].max_lag_replica, Some(2));
        assert_eq!(view.topics[0].records_per_sec, None);
        assert_eq!(view.topics[0].bytes_in_per_sec, None);
    }

    #[test]
    fn counters_are_summed_per_topic_from_metrics_text() {
        let text = "# TYPE sluice_topic_bytes_in_total counter\n\
            sluice_topic_bytes_in_total{topic=\"a\"} 10\n\
            sluice_topic_bytes_in_total{topic=\"b\"} 5\n\
            sluice_topic_bytes_out_total{topic=\"a\"} 7\n\
            sluice_bytes_in_total 99\n";
        let counters = topic_counters(text);
        assert!(counters.per_topic_series);
        assert_eq!(counters.values.len(), 3);
        assert_eq!(
            counters.values[&(TOPIC_BYTES_IN_METRIC.to_string(), "a".to_string())],
            10.0
        );
        assert_eq!(
            counters.values[&(TOPIC_BYTES_OUT_METRIC.to_string(), "a".to_string())],
            7.0
        );
        // Any per-topic series says per-topic metrics are on; broker-wide ones do not.
        let fetches = topic_counters("sluice_topic_fetch_requests_total{topic=\"a\"} 3\n");
        assert!(fetches.per_topic_series && fetches.values.is_empty());
        let off = topic_counters("sluice_bytes_in_total 99\nsluice_messages_in_total 3\n");
        assert_eq!(off, TopicCounters::default());
    }

    #[test]
    fn byte_rates_are_unknown_where_no_endpoint_exports_per_topic_series() {
        // Brokers run with --metrics-per-partition false: /metrics answers, without any
        // sluice_topic_* series. The rate is unknown, not 0 B/s.
        let start = Instant::now();
        let off = || topic_counters("sluice_bytes_in_total 500\nsluice_messages_in_total 5\n");
        let sample = |taken, end| Sample {
            taken,
            partitions: vec![partition_sample(0, end, &[(1, Ok(end))], &[1])],
            metrics: BTreeMap::from([("http://a:1/metrics".to_string(), Ok(off()))]),
        };
        let view = top_view(
            &sample(start, 10),
            &sample(start + Duration::from_secs(1), 20),
            1,
            0,
        );
        let topic = &view.topics[0];
        assert_eq!(topic.records_per_sec, Some(10.0));
        assert_eq!(topic.bytes_in_per_sec, None);
        assert_eq!(topic.bytes_out_per_sec, None);
        assert!(view.metrics_errors.is_empty());

        // An endpoint read only once gives no rate either.
        let mut first = sample(start, 10);
        first
            .metrics
            .insert("http://b:1/metrics".to_string(), Err("refused".to_string()));
        let mut second = sample(start + Duration::from_secs(1), 20);
        second.metrics.insert(
            "http://b:1/metrics".to_string(),
            Ok(topic_counters(
                "sluice_topic_bytes_in_total{topic=\"t\"} 100\n",
            )),
        );
        assert_eq!(
            top_view(&first, &second, 1, 0).topics[0].bytes_in_per_sec,
            None
        );
    }
}
