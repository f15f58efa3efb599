//! The consumer: read assigned partitions from a position, with Fetch.
//!
//! Owns the assignment (which partitions to read), each partition's *position* (the offset
//! of the next record to return), and the fetch loop. There are no consumer groups yet:
//! partitions are assigned explicitly and positions are not committed anywhere.
//!
//! Steps of [`Consumer::poll`]:
//! 1. Partitions without a position get one from ListOffsets (earliest/latest per
//!    `auto_offset_reset`, or the target of a pending seek).
//! 2. Assigned partitions are grouped by the broker to fetch from (the leader, or the
//!    partition's preferred read replica, below); one Fetch per broker is sent concurrently
//!    (sessionless: session id 0, epoch -1), waiting at most `fetch_max_wait_ms` at the broker.
//! 3. Each partition's records are split into batches. A batch may start before the
//!    requested offset (compression and compaction make the broker return whole batches),
//!    so records below the position are dropped. Control batches (transaction markers) are
//!    skipped. The position moves past the last complete batch, so a batch of only control
//!    records or compacted-away offsets still advances it.
//! 4. Errors per partition: NOT_LEADER_OR_FOLLOWER and friends refresh metadata and the
//!    partition is fetched again next round; OFFSET_OUT_OF_RANGE resets the position per
//!    `auto_offset_reset` or is reported as [`Error::OffsetOutOfRange`].
//!
//! Follower reads (KIP-392): with `client_rack` set, Fetch (v11+) carries the consumer's
//! rack. The leader may answer a partition with a *preferred read replica* (and no records);
//! the consumer then fetches that partition from that broker, as an ordinary consumer,
//! until the replica answers an error (NOT_LEADER_OR_FOLLOWER, FENCED/UNKNOWN_LEADER_EPOCH,
//! OFFSET_OUT_OF_RANGE, ...), the connection to it fails, it drops out of metadata, or
//! `preferred_read_replica_max_age_ms` passes (Kafka's `metadata.max.age.ms`); then the
//! partition goes back to the leader, which may redirect it again. An OFFSET_OUT_OF_RANGE
//! from the preferred replica does not reset the position: the leader is asked first.
//!
//! `poll` returns as soon as any records arrived, or empty when `timeout` runs out.
//! Records already decoded when a later partition fails are kept and returned by the next
//! `poll`, so an error never loses records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::{BatchIterError, Batches};

use crate::cluster::{Cluster, ClusterConfig, Metadata};
use crate::error::{code_needs_metadata_refresh, kafka_error_name, Error, Result};
use crate::metrics as m;
pub use crate::offsets::IsolationLevel;
use crate::offsets::{list_offsets, OffsetSpec, PartitionKey};
use crate::records::decode_records;

/// Pause after a round that failed for want of a leader or a connection.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Kafka's OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// The first Fetch version with `rack_id` in the request and `preferred_read_replica` in
/// the response (KIP-392).
const FETCH_RACK_ID_MIN_VERSION: i16 = 11;

/// Where to go when a partition has no position or its position is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Report [`Error::OffsetOutOfRange`] (or, for a partition never sought, an error
    /// asking for a seek).
    None,
}

/// Where [`Consumer::seek`] moves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The log start offset.
    Earliest,
    /// The end of the log: only records produced from now on.
    Latest,
    Offset(i64),
    /// The first record with a timestamp at or after this one (ms since the epoch); the
    /// end of the log if there is none.
    Timestamp(i64),
}

/// Consumer settings. [`ConsumerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub bootstrap: String,
    pub client_id: String,
    /// Longest the broker holds a Fetch waiting for `fetch_min_bytes` (default 500).
    pub fetch_max_wait_ms: u64,
    /// Bytes the broker waits for before answering a Fetch (default 1).
    pub fetch_min_bytes: i32,
    /// Bytes per Fetch response (default 50 MiB).
    pub fetch_max_bytes: i32,
    /// Bytes per partition per Fetch (default 1 MiB). The broker still returns one whole
    /// batch if it is larger, so progress is always possible.
    pub partition_max_bytes: i32,
    pub isolation: IsolationLevel,
    /// Default [`OffsetReset::Latest`], as the Java client.
    pub auto_offset_reset: OffsetReset,
    pub request_timeout_ms: u64,
    /// The rack this consumer runs in, Kafka's `client.rack` (default None). Sent as
    /// `rack_id` in Fetch v11+ so that the leader can point the consumer at an in-sync
    /// replica in the same rack (KIP-392 follower reads); ignored by older brokers.
    pub client_rack: Option<String>,
    /// How long a preferred read replica named by the leader is used before the leader is
    /// asked again (default 300 000, as Kafka's `metadata.max.age.ms` which plays this part
    /// in the Java consumer). Errors from the replica send the consumer back sooner.
    pub preferred_read_replica_max_age_ms: u64,
}

impl ConsumerConfig {
    pub fn new(bootstrap: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            bootstrap: bootstrap.into(),
            client_id: "sluice-consumer".to_string(),
            fetch_max_wait_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            isolation: IsolationLevel::ReadUncommitted,
            auto_offset_reset: OffsetReset::Latest,
            request_timeout_ms: 30_000,
            client_rack: None,
            preferred_read_replica_max_age_ms: 300_000,
        }
    }
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create time or log-append time per the topic).
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

#[derive(Debug, Clone, Copy)]
enum Position {
    /// The offset of the next record to return.
    At(i64),
    /// To be resolved with ListOffsets before the next fetch.
    Pending(SeekTo),
    /// No position and no reset policy: the caller must seek.
    Unset,
}

#[derive(Debug)]
struct PartitionState {
    position: Position,
    high_watermark: Option<i64>,
    /// The replica the leader told us to read from (KIP-392), while it lasts.
    preferred_read_replica: Option<PreferredReplica>,
}

/// A preferred read replica named by a partition's leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PreferredReplica {
    broker: i32,
    /// When to go back to the leader; None when the configured age does not fit an Instant.
    expires: Option<Instant>,
}

impl PreferredReplica {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}

/// Where a partition's next Fetch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Leader(i32),
    PreferredReplica(i32),
}

/// Decide where to fetch a partition from: its preferred read replica while that is valid,
/// else its leader; None when no leader is known (metadata must be refreshed first, even
/// with a preferred replica, as in the Java client). A preferred replica that expired, or
/// that metadata no longer lists as a live broker for the partition, is cleared.
fn route(
    metadata: &Metadata,
    key: &PartitionKey,
    preferred: &mut Option<PreferredReplica>,
    now: Instant,
) -> Option<Route> {
    let leader = metadata.leader(&key.0, key.1)?;
    let Some(replica) = *preferred else {
        return Some(Route::Leader(leader));
    };
    let reason = if replica.is_expired(now) {
        "expired"
    } else if !metadata.brokers.contains_key(&replica.broker) {
        "not in metadata"
    } else if metadata
        .topic(&key.0)
        .and_then(|t| t.partition(key.1))
        .is_some_and(|p| p.offline_replicas.contains(&replica.broker))
    {
        "offline"
    } else {
        return Some(Route::PreferredReplica(replica.broker));
    };
    tracing::debug!(
        topic = %key.0,
        partition = key.1,
        replica = replica.broker,
        leader,
        reason,
        "dropping preferred read replica; fetching from the leader"
    );
    *preferred = None;
    Some(Route::Leader(leader))
}

/// A consumer of explicitly assigned partitions.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Arc<Cluster>,
    partitions: BTreeMap<PartitionKey, PartitionState>,
    /// Records decoded by a poll that then failed; returned first by the next poll.
    buffered: Vec<ConsumerRecord>,
}

impl Consumer {
    /// Connect to the cluster.
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        let mut cluster_config = ClusterConfig::new(&config.bootstrap)?;
        cluster_config.connection.client_id = config.client_id.clone();
        cluster_config.connection.request_timeout =
            Duration::from_millis(config.request_timeout_ms);
        let cluster = Cluster::connect(cluster_config).await?;
        Ok(Consumer::with_cluster(config, cluster))
    }

    /// A consumer on an existing cluster handle.
    pub fn with_cluster(config: ConsumerConfig, cluster: Arc<Cluster>) -> Consumer {
        Consumer {
            config,
            cluster,
            partitions: BTreeMap::new(),
            buffered: Vec::new(),
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Read exactly these partitions from now on. Partitions kept from the previous
    /// assignment keep their positions; new ones start per `auto_offset_reset` unless
    /// sought. Checks that each topic and partition exists.
    pub async fn assign(&mut self, partitions: Vec<(String, i32)>) -> Result<()> {
        let wait = Duration::from_millis(self.config.request_timeout_ms);
        let mut topics: HashMap<String, i32> = HashMap::new();
        for (topic, _) in &partitions {
            if !topics.contains_key(topic) {
                let info = self.cluster.topic(topic, wait).await?;
                topics.insert(topic.clone(), info.partition_count());
            }
        }
        let initial = match self.config.auto_offset_reset {
            OffsetReset::Earliest => Position::Pending(SeekTo::Earliest),
            OffsetReset::Latest => Position::Pending(SeekTo::Latest),
            OffsetReset::None => Position::Unset,
        };
        let mut assigned = BTreeMap::new();
        for (topic, partition) in partitions {
            let partition_count = topics.get(&topic).copied().unwrap_or(0);
            if partition < 0 || partition >= partition_count {
                return Err(Error::UnknownPartition {
                    topic,
                    partition,
                    partition_count,
                });
            }
            let key: PartitionKey = (Arc::from(topic.as_str()), partition);
            let state = self.partitions.remove(&key).unwrap_or(PartitionState {
                position: initial,
                high_watermark: None,
                preferred_read_replica: None,
            });
            assigned.insert(key, state);
        }
        self.partitions = assigned;
        self.buffered.retain(|r| {
            self.partitions
                .contains_key(&(r.topic.clone(), r.partition))
        });
        Ok(())
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.partitions
            .keys()
            .map(|(topic, partition)| (topic.to_string(), *partition))
            .collect()
    }

    /// Move an assigned partition's position. Earliest, Latest and Timestamp are resolved
    /// now with ListOffsets.
    pub async fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<()> {
        let key: PartitionKey = (Arc::from(topic), partition);
        if !self.partitions.contains_key(&key) {
            return Err(Error::InvalidConfig(format!(
                "cannot seek {topic}-{partition}: the partition is not assigned"
            )));
        }
        let offset = match to {
            SeekTo::Offset(offset) => offset,
            other => {
                let resolved = self.list_offsets(&[(key.clone(), other)]).await?;
                resolved.get(&key).copied().unwrap_or(0)
            }
        };
        self.buffered
            .retain(|r| !(&*r.topic == topic && r.partition == partition));
        if let Some(state) = self.partitions.get_mut(&key) {
            state.position = Position::At(offset);
        }
        Ok(())
    }

    /// The offset of the next record `poll` returns for a partition, if known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        match self
            .partitions
            .get(&(Arc::from(topic), partition))?
            .position
        {
            Position::At(offset) => Some(offset),
            _ => None,
        }
    }

    /// The partition's high watermark as of the last fetch (the end of the readable log).
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(Arc::from(topic), partition))?
            .high_watermark
    }

    /// The broker id of the partition's preferred read replica (KIP-392 follower reads):
    /// the broker its leader last told this consumer to fetch from instead, while that
    /// still holds (it has not failed or expired). None when the partition is fetched from
    /// its leader, or is not assigned.
    pub fn preferred_read_replica(&self, topic: &str, partition: i32) -> Option<i32> {
        self.partitions
            .get(&(Arc::from(topic), partition))?
            .preferred_read_replica
            .filter(|replica| !replica.is_expired(Instant::now()))
            .map(|replica| replica.broker)
    }

    /// Fetch records from every assigned partition. Returns as soon as some arrived, or
    /// an empty vector after `timeout`.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let records = self.poll_records(timeout).await?;
        metrics::counter!(m::CONSUMER_RECORDS_CONSUMED_TOTAL).increment(records.len() as u64);
        Ok(records)
    }

    async fn poll_records(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if !self.buffered.is_empty() {
            return Ok(std::mem::take(&mut self.buffered));
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.resolve_positions().await?;
            let records = self.fetch_once(deadline).await?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// Resolve every pending position with ListOffsets.
    async fn resolve_positions(&mut self) -> Result<()> {
        let mut pending = Vec::new();
        for (key, state) in &self.partitions {
            match state.position {
                Position::Pending(to) => pending.push((key.clone(), to)),
                Position::Unset => {
                    return Err(Error::InvalidConfig(format!(
                        "{}-{} has no position and auto_offset_reset is none: seek first",
                        key.0, key.1
                    )))
                }
                Position::At(_) => {}
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let resolved = self.list_offsets(&pending).await?;
        for (key, offset) in resolved {
            if let Some(state) = self.partitions.get_mut(&key) {
                state.position = Position::At(offset);
            }
        }
        Ok(())
    }

    /// Resolve seek targets to offsets.
    async fn list_offsets(
        &self,
        targets: &[(PartitionKey, SeekTo)],
    ) -> Result<HashMap<PartitionKey, i64>> {
        let mut resolved = HashMap::new();
        let mut lookups = Vec::new();
        for (key, to) in targets {
            let spec = match to {
                SeekTo::Earliest => OffsetSpec::Earliest,
                SeekTo::Latest => OffsetSpec::Latest,
                SeekTo::Timestamp(ts) => OffsetSpec::Timestamp(*ts),
                SeekTo::Offset(offset) => {
                    resolved.insert(key.clone(), *offset);
                    continue;
                }
            };
            lookups.push((key.clone(), spec));
        }
        if !lookups.is_empty() {
            resolved.extend(list_offsets(&self.cluster, self.config.isolation, &lookups).await?);
        }
        Ok(resolved)
    }

    /// Refresh metadata; a failure is only logged, since the next round retries anyway and
    /// an unreachable broker is not a reason for `poll` to fail.
    async fn refresh_metadata(&self) {
        if let Err(error) = self.cluster.refresh().await {
            tracing::debug!(%error, "metadata refresh failed");
        }
    }

    /// Forget a partition's preferred read replica, so that its next fetch goes to the
    /// leader.
    fn drop_preferred_replica(&mut self, key: &PartitionKey, reason: &str) {
        let Some(state) = self.partitions.get_mut(key) else {
            return;
        };
        if let Some(replica) = state.preferred_read_replica.take() {
            tracing::debug!(
                topic = %key.0,
                partition = key.1,
                replica = replica.broker,
                reason,
                "dropping preferred read replica; fetching from the leader"
            );
        }
    }

    /// Remember the preferred read replica a leader named for a partition. Returns whether
    /// metadata lacks that broker (a refresh should find it).
    fn set_preferred_replica(
        &mut self,
        key: &PartitionKey,
        broker: i32,
        metadata: &Metadata,
    ) -> bool {
        let max_age = Duration::from_millis(self.config.preferred_read_replica_max_age_ms);
        let Some(state) = self.partitions.get_mut(key) else {
            return false;
        };
        // The same replica again keeps its expiry, so it is still re-checked with the leader
        // on time (the Java client does the same).
        if state.preferred_read_replica.map(|r| r.broker) != Some(broker) {
            tracing::debug!(
                topic = %key.0,
                partition = key.1,
                replica = broker,
                "leader named a preferred read replica; fetching from it"
            );
            state.preferred_read_replica = Some(PreferredReplica {
                broker,
                expires: Instant::now().checked_add(max_age),
            });
        }
        !metadata.brokers.contains_key(&broker)
    }

    /// One round of Fetch requests, one per broker (leader or preferred read replica),
    /// concurrently.
    async fn fetch_once(&mut self, deadline: Instant) -> Result<Vec<ConsumerRecord>> {
        let metadata = self.cluster.metadata();
        let plan = self.plan_round(&metadata, Instant::now());
        if plan.leaders_missing {
            self.refresh_metadata().await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if plan.by_broker.is_empty() {
            // Nothing fetchable now (no assignment, or no leaders yet): wait a little.
            tokio::time::sleep(remaining.min(RETRY_BACKOFF)).await;
            return Ok(Vec::new());
        }
        let max_wait = remaining.min(Duration::from_millis(self.config.fetch_max_wait_ms));
        let results = self.send_round(plan.by_broker, max_wait).await;

        let mut round = RoundOutcome::default();
        for (broker, partitions, result) in results {
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    self.note_failed_fetch(
                        broker,
                        &partitions,
                        &plan.via_replica,
                        error,
                        &mut round,
                    );
                    continue;
                }
            };
            let mut data = HashMap::new();
            for topic in &response.responses {
                for p in &topic.partitions {
                    data.insert((&*topic.topic.0, p.partition_index), p);
                }
            }
            for (key, offset) in partitions {
                let Some(p) = data.get(&(&*key.0, key.1)) else {
                    continue;
                };
                let asked = Asked {
                    broker,
                    from_replica: plan.via_replica.contains(&key),
                    key: key.clone(),
                    offset,
                };
                self.apply_partition(&asked, p, &metadata, &mut round);
            }
        }
        if round.refresh {
            self.refresh_metadata().await;
        }
        let mut records = round.records;
        if (round.refresh || round.back_off) && records.is_empty() {
            // Do not spin on a partition that keeps failing until its leader is found.
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(remaining.min(RETRY_BACKOFF)).await;
        }
        if let Some(error) = round.first_error {
            self.buffered.append(&mut records);
            return Err(error);
        }
        Ok(records)
    }

    /// Which broker each fetchable partition is asked of this round, at which offset.
    fn plan_round(&mut self, metadata: &Metadata, now: Instant) -> RoundPlan {
        let mut plan = RoundPlan::default();
        for (key, state) in &mut self.partitions {
            let Position::At(offset) = state.position else {
                continue;
            };
            let broker = match route(metadata, key, &mut state.preferred_read_replica, now) {
                Some(Route::Leader(broker)) => broker,
                Some(Route::PreferredReplica(broker)) => {
                    plan.via_replica.insert(key.clone());
                    broker
                }
                None => {
                    plan.leaders_missing = true;
                    continue;
                }
            };
            plan.by_broker
                .entry(broker)
                .or_default()
                .push((key.clone(), offset));
        }
        plan
    }

    /// Send the round's fetches concurrently; return as soon as one broker answers with
    /// records: a broker holding its fetch for caught-up partitions (up to
    /// `fetch_max_wait_ms`) must not hold back partitions that have data elsewhere. Fetches
    /// still waiting are abandoned; their partitions' positions did not move, so the next
    /// round asks again.
    async fn send_round(
        &self,
        by_broker: BTreeMap<i32, Vec<(PartitionKey, i64)>>,
        max_wait: Duration,
    ) -> Vec<BrokerFetch> {
        let fetches = by_broker.into_iter().map(|(broker, partitions)| {
            let cluster = self.cluster.clone();
            let config = &self.config;
            async move {
                let result = fetch_from(&cluster, config, broker, &partitions, max_wait).await;
                (broker, partitions, result)
            }
        });
        let mut pending: futures::stream::FuturesUnordered<_> = fetches.collect();
        let mut results = Vec::new();
        while let Some(done) = futures::StreamExt::next(&mut pending).await {
            let has_records = matches!(&done.2, Ok(response) if response.responses.iter().any(|t| {
                t.partitions
                    .iter()
                    .any(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()))
            }));
            results.push(done);
            if has_records {
                break;
            }
        }
        results
    }

    /// A whole fetch to `broker` failed: forget the preferred replicas it stood for, and
    /// retry (retriable) or report it.
    fn note_failed_fetch(
        &mut self,
        broker: i32,
        partitions: &[(PartitionKey, i64)],
        via_replica: &BTreeSet<PartitionKey>,
        error: Error,
        round: &mut RoundOutcome,
    ) {
        metrics::counter!(m::CONSUMER_ERRORS_TOTAL, "error" => m::error_label(&error)).increment(1);
        for (key, _) in partitions {
            if via_replica.contains(key) {
                self.drop_preferred_replica(key, "fetch from it failed");
            }
        }
        if error.is_retriable() {
            tracing::debug!(broker, %error, "fetch failed; will retry");
            // Also covers a broker that refuses connections: back off, then retry.
            round.refresh = true;
        } else {
            round.first_error.get_or_insert(error);
        }
    }

    /// One partition's answer: its records and new position, a redirect, a reset, or an
    /// error to retry or report.
    fn apply_partition(
        &mut self,
        asked: &Asked,
        p: &kafka_protocol::messages::fetch_response::PartitionData,
        metadata: &Metadata,
        round: &mut RoundOutcome,
    ) {
        let Asked {
            broker,
            ref key,
            offset,
            from_replica,
        } = *asked;
        if p.error_code != 0 {
            metrics::counter!(
                m::CONSUMER_ERRORS_TOTAL,
                "error" => kafka_error_name(p.error_code)
            )
            .increment(1);
        }
        if p.error_code != 0 && from_replica {
            // Whatever the error, the leader is asked next (it may redirect again).
            self.drop_preferred_replica(key, &kafka_error_name(p.error_code));
            round.back_off = true;
        }
        match p.error_code {
            0 => {
                if p.preferred_read_replica.0 >= 0
                    && p.preferred_read_replica.0 != broker
                    && self.set_preferred_replica(key, p.preferred_read_replica.0, metadata)
                {
                    round.refresh = true;
                }
                let bytes = p.records.clone().unwrap_or_default();
                metrics::counter!(m::CONSUMER_BYTES_CONSUMED_TOTAL).increment(bytes.len() as u64);
                let next = match decode_partition(key, &bytes, offset, &mut round.records) {
                    Ok(next) => next,
                    Err(error) => {
                        round.first_error.get_or_insert(error);
                        return;
                    }
                };
                if let Some(state) = self.partitions.get_mut(key) {
                    state.high_watermark = Some(p.high_watermark);
                    if let Some(next) = next {
                        state.position = Position::At(next.max(offset));
                    }
                }
            }
            // Out of range at the replica (it may lag, or be ahead of a new leader):
            // the leader decides, so the position stays.
            OFFSET_OUT_OF_RANGE if from_replica => {}
            OFFSET_OUT_OF_RANGE => self.reset_out_of_range(key, offset, round),
            code if code_needs_metadata_refresh(code) => round.refresh = true,
            code => {
                round.first_error.get_or_insert(Error::broker(
                    format!("fetching {}-{}", key.0, key.1),
                    code,
                    None,
                ));
            }
        }
    }

    /// OFFSET_OUT_OF_RANGE from the leader: reset per `auto_offset_reset`, or report it.
    fn reset_out_of_range(&mut self, key: &PartitionKey, offset: i64, round: &mut RoundOutcome) {
        let reset = match self.config.auto_offset_reset {
            OffsetReset::Earliest => Position::Pending(SeekTo::Earliest),
            OffsetReset::Latest => Position::Pending(SeekTo::Latest),
            OffsetReset::None => {
                round.first_error.get_or_insert(Error::OffsetOutOfRange {
                    topic: key.0.to_string(),
                    partition: key.1,
                    offset,
                });
                return;
            }
        };
        tracing::info!(
            topic = %key.0,
            partition = key.1,
            offset,
            "offset out of range; resetting per auto_offset_reset"
        );
        if let Some(state) = self.partitions.get_mut(key) {
            state.position = reset;
        }
    }
}

/// One partition as a fetch round asked for it.
struct Asked {
    broker: i32,
    key: PartitionKey,
    offset: i64,
    /// Asked of a preferred read replica, not the leader.
    from_replica: bool,
}

/// Where one fetch round sends each partition.
#[derive(Default)]
struct RoundPlan {
    by_broker: BTreeMap<i32, Vec<(PartitionKey, i64)>>,
    /// Partitions sent to a preferred read replica this round (not to their leader).
    via_replica: BTreeSet<PartitionKey>,
    leaders_missing: bool,
}

/// One broker's fetch of a round: the partitions and offsets asked, and the answer.
type BrokerFetch = (i32, Vec<(PartitionKey, i64)>, Result<FetchResponse>);

/// What one fetch round gathered.
#[derive(Default)]
struct RoundOutcome {
    records: Vec<ConsumerRecord>,
    /// Ask for metadata before the next round.
    refresh: bool,
    /// Pause before the next round if it got nothing (set with `refresh`, and when a
    /// preferred replica failed, so that a leader that keeps redirecting to a failing
    /// replica is not asked in a tight loop).
    back_off: bool,
    first_error: Option<Error>,
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// One Fetch request to one broker (a leader, or a preferred read replica).
async fn fetch_from(
    cluster: &Cluster,
    config: &ConsumerConfig,
    broker: i32,
    partitions: &[(PartitionKey, i64)],
    max_wait: Duration,
) -> Result<FetchResponse> {
    let connection = cluster.broker_connection(broker).await?;
    let version = connection.version(ApiKey::Fetch)?;
    let request = fetch_request(config, partitions, max_wait, version);
    let timeout = connection.request_timeout() + max_wait;
    let sent = Instant::now();
    let response = connection.send_versioned(request, version, timeout).await?;
    metrics::counter!(m::CONSUMER_FETCH_REQUESTS_TOTAL).increment(1);
    metrics::histogram!(m::CONSUMER_FETCH_LATENCY_SECONDS).record(sent.elapsed().as_secs_f64());
    if response.error_code != 0 {
        return Err(Error::broker(
            format!("fetching from broker {broker}"),
            response.error_code,
            None,
        ));
    }
    Ok(response)
}

/// A sessionless Fetch request (session id 0, epoch -1) for `partitions` at their offsets,
/// to be sent at `version`. Every field left at its default exists in all versions we use
/// (v4-v12); `rack_id` is set only from v11, where it exists.
fn fetch_request(
    config: &ConsumerConfig,
    partitions: &[(PartitionKey, i64)],
    max_wait: Duration,
    version: i16,
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic, partition), offset) in partitions {
        let entry = FetchPartition::default()
            .with_partition(*partition)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(*offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(config.partition_max_bytes);
        match topics.iter_mut().find(|t| *t.topic.0 == **topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let max_wait_ms = i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX);
    let rack_id = match &config.client_rack {
        Some(rack) if version >= FETCH_RACK_ID_MIN_VERSION => StrBytes::from_string(rack.clone()),
        _ => StrBytes::default(),
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(config.fetch_max_bytes)
        .with_isolation_level(config.isolation.wire_value())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
        .with_rack_id(rack_id)
}

/// Decode one partition's records into `out`, dropping those below `position`. Returns
/// the offset after the last complete batch, if there was one.
fn decode_partition(
    key: &PartitionKey,
    bytes: &Bytes,
    position: i64,
    out: &mut Vec<ConsumerRecord>,
) -> Result<Option<i64>> {
    let mut next = None;
    let mut start = 0;
    for item in Batches::new(bytes) {
        let (header, batch) = match item {
            Ok(item) => item,
            // A fetch response may end inside a batch; the rest comes next time.
            Err(BatchIterError::Partial { .. }) => break,
            Err(BatchIterError::Corrupt {
                position: at,
                error,
            }) => {
                return Err(Error::Protocol {
                    broker: format!("{}-{} at byte {at}", key.0, key.1),
                    source: error,
                });
            }
        };
        let end = start + batch.len();
        next = Some(header.next_offset());
        if !header.is_control() && header.next_offset() > position {
            let consumed =
                decode_records(&bytes.slice(start..end)).map_err(|source| Error::Protocol {
                    broker: format!("{}-{}", key.0, key.1),
                    source,
                })?;
            out.extend(
                consumed
                    .into_iter()
                    .filter(|r| r.offset >= position)
                    .map(|r| ConsumerRecord {
                        topic: key.0.clone(),
                        partition: key.1,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    }),
            );
        }
        start = end;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{encode_batch, Record};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use sluice_protocol::batch::{stamp, Compression};

    fn batch_at(base_offset: i64, values: &[&'static str]) -> Vec<u8> {
        let records: Vec<Record> = values
            .iter()
            .map(|v| Record {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(v.as_bytes())),
                headers: vec![("h".to_string(), Some(Bytes::from_static(b"1")))],
                timestamp: 1_000,
            })
            .collect();
        let mut bytes = encode_batch(&records, Compression::None).unwrap().to_vec();
        stamp(&mut bytes, base_offset, 0);
        bytes
    }

    #[test]
    fn records_below_the_position_are_dropped_and_position_moves_past_the_batch() {
        let mut buf = batch_at(10, &["a", "b", "c"]);
        buf.extend(batch_at(13, &["d"]));
        let bytes = Bytes::from(buf);
        let key: PartitionKey = (Arc::from("t"), 0);
        let mut out = Vec::new();
        let next = decode_partition(&key, &bytes, 11, &mut out).unwrap();
        assert_eq!(next, Some(14));
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![11, 12, 13]);
        assert_eq!(out[0].value.as_deref(), Some(&b"b"[..]));
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].headers[0].0, "h");
        assert_eq!(&*out[0].topic, "t");
    }

    #[test]
    fn a_trailing_partial_batch_is_left_for_the_next_fetch() {
        let mut buf = batch_at(0, &["a"]);
        let second = batch_at(1, &["b"]);
        buf.extend_from_slice(&second[..second.len() - 3]);
        let key: PartitionKey = (Arc::from("t"), 0);
        let mut out = Vec::new();
        let next = decode_partition(&key, &Bytes::from(buf), 0, &mut out).unwrap();
        assert_eq!(next, Some(1));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn fetch_request_encodes_at_every_version_we_may_pick() {
        let mut config = ConsumerConfig::new("127.0.0.1:9092");
        let partitions = vec![((Arc::from("t"), 0), 5), ((Arc::from("t"), 1), 7)];
        let (min, max) = crate::connection::client_versions(ApiKey::Fetch).unwrap();
        for rack in [None, Some("rack-a".to_string())] {
            config.client_rack = rack;
            for version in min..=max {
                let request =
                    fetch_request(&config, &partitions, Duration::from_millis(100), version);
                assert_eq!(request.topics.len(), 1);
                assert_eq!(request.topics[0].partitions.len(), 2);
                let mut buf = bytes::BytesMut::new();
                request
                    .encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
    }

    /// Encode at `version` and decode again: what the broker sees.
    fn fetch_request_on_the_wire(config: &ConsumerConfig, version: i16) -> FetchRequest {
        let partitions = vec![((Arc::from("t"), 0), 5)];
        let request = fetch_request(config, &partitions, Duration::from_millis(100), version);
        let mut buf = bytes::BytesMut::new();
        request.encode(&mut buf, version).unwrap();
        FetchRequest::decode(&mut buf.freeze(), version).unwrap()
    }

    #[test]
    fn client_rack_is_sent_as_rack_id_from_fetch_v11() {
        let mut config = ConsumerConfig::new("127.0.0.1:9092");
        config.client_rack = Some("rack-a".to_string());
        for version in [11, 12] {
            let request = fetch_request_on_the_wire(&config, version);
            assert_eq!(&*request.rack_id, "rack-a", "v{version}");
            assert_eq!(request.replica_id, BrokerId(-1), "v{version}");
        }
        for version in [4, 10] {
            let request = fetch_request(
                &config,
                &[((Arc::from("t"), 0), 5)],
                Duration::from_millis(100),
                version,
            );
            assert_eq!(&*request.rack_id, "", "v{version} has no rack_id");
            assert_eq!(&*fetch_request_on_the_wire(&config, version).rack_id, "");
        }
        config.client_rack = None;
        assert_eq!(&*fetch_request_on_the_wire(&config, 12).rack_id, "");
    }

    fn metadata_with_partition(
        brokers: &[i32],
        leader: Option<i32>,
        offline: &[i32],
    ) -> (Metadata, PartitionKey) {
        use crate::cluster::{BrokerInfo, PartitionInfo, TopicInfo};
        let mut metadata = Metadata::default();
        for &id in brokers {
            metadata.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    host: "127.0.0.1".to_string(),
                    port: 9000 + id,
                    rack: None,
                },
            );
        }
        metadata.topics.insert(
            "t".to_string(),
            TopicInfo {
                name: "t".to_string(),
                is_internal: false,
                partitions: vec![PartitionInfo {
                    partition: 0,
                    leader,
                    leader_epoch: 0,
                    replicas: brokers.to_vec(),
                    isr: brokers.to_vec(),
                    offline_replicas: offline.to_vec(),
                    error_code: 0,
                }],
                error_code: 0,
            },
        );
        (metadata, (Arc::from("t"), 0))
    }

    #[test]
    fn route_prefers_a_valid_preferred_replica_over_the_leader() {
        let now = Instant::now();
        let (metadata, key) = metadata_with_partition(&[1, 2, 3], Some(1), &[]);
        let mut none = None;
        assert_eq!(
            route(&metadata, &key, &mut none, now),
            Some(Route::Leader(1))
        );
        let replica = PreferredReplica {
            broker: 2,
            expires: Some(now + Duration::from_secs(1)),
        };
        let mut preferred = Some(replica);
        assert_eq!(
            route(&metadata, &key, &mut preferred, now),
            Some(Route::PreferredReplica(2))
        );
        assert_eq!(preferred, Some(replica), "kept while valid");
        let mut forever = Some(PreferredReplica {
            broker: 3,
            expires: None,
        });
        assert_eq!(
            route(
                &metadata,
                &key,
                &mut forever,
                now + Duration::from_secs(86_400)
            ),
            Some(Route::PreferredReplica(3))
        );
    }

    #[test]
    fn route_drops_an_expired_unknown_or_offline_preferred_replica() {
        let now = Instant::now();
        let replica = PreferredReplica {
            broker: 2,
            expires: Some(now + Duration::from_secs(1)),
        };
        let (metadata, key) = metadata_with_partition(&[1, 2], Some(1), &[]);
        let mut preferred = Some(replica);
        let later = now + Duration::from_secs(1);
        assert_eq!(
            route(&metadata, &key, &mut preferred, later),
            Some(Route::Leader(1))
        );
        assert_eq!(preferred, None, "expired");

        let (metadata, key) = metadata_with_partition(&[1], Some(1), &[]);
        let mut preferred = Some(replica);
        assert_eq!(
            route(&metadata, &key, &mut preferred, now),
            Some(Route::Leader(1))
        );
        assert_eq!(preferred, None, "not in metadata");

        let (metadata, key) = metadata_with_partition(&[1, 2], Some(1), &[2]);
        let mut preferred = Some(replica);
        assert_eq!(
            route(&metadata, &key, &mut preferred, now),
            Some(Route::Leader(1))
        );
        assert_eq!(preferred, None, "offline");
    }

    #[test]
    fn route_needs_a_leader_even_with_a_preferred_replica() {
        let now = Instant::now();
        let (metadata, key) = metadata_with_partition(&[1, 2], None, &[]);
        let replica = PreferredReplica {
            broker: 2,
            expires: Some(now + Duration::from_secs(1)),
        };
        let mut preferred = Some(replica);
        assert_eq!(route(&metadata, &key, &mut preferred, now), None);
        assert_eq!(preferred, Some(replica), "kept until metadata has a leader");
        let mut preferred = Some(replica);
        let (metadata, _) = metadata_with_partition(&[1, 2], Some(1), &[]);
        let other: PartitionKey = (Arc::from("other"), 0);
        assert_eq!(route(&metadata, &other, &mut preferred, now), None);
    }

    #[test]
    fn empty_fetch_leaves_the_position_alone() {
        let key: PartitionKey = (Arc::from("t"), 0);
        let mut out = Vec::new();
        assert_eq!(
            decode_partition(&key, &Bytes::new(), 5, &mut out).unwrap(),
            None
        );
        assert!(out.is_empty());
    }

    /// A Fetch partition one fake broker received.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct SeenFetch {
        broker: i32,
        version: i16,
        replica_id: i32,
        rack: String,
        partition: i32,
        offset: i64,
    }

    /// What a fake broker answers for one partition: given the request and how many
    /// fetches of that partition this broker answered before.
    type FetchScript = Arc<dyn Fn(&SeenFetch, usize) -> PartitionData + Send + Sync>;

    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};

    /// Scripted brokers 1..=n on 127.0.0.1 (broker i in rack "r{i}"), one topic "t" with
    /// partition 0 led by broker 1 and replicated on all of them. `closed` brokers are in
    /// metadata but refuse connections. Fetch is advertised up to `fetch_max`.
    struct FakeCluster {
        bootstrap: String,
        seen: Arc<std::sync::Mutex<Vec<SeenFetch>>>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    }

    impl Drop for FakeCluster {
        fn drop(&mut self) {
            for task in &self.tasks {
                task.abort();
            }
        }
    }

    impl FakeCluster {
        async fn start(brokers: i32, closed: &[i32], fetch_max: i16, script: FetchScript) -> Self {
            use kafka_protocol::messages::metadata_response::{
                MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
            };
            use kafka_protocol::messages::MetadataResponse;

            let mut listeners = Vec::new();
            let mut addresses = Vec::new();
            for id in 1..=brokers {
                if closed.contains(&id) {
                    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    addresses.push(listener.local_addr().unwrap());
                    drop(listener);
                } else {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addresses.push(listener.local_addr().unwrap());
                    listeners.push((id, listener));
                }
            }
            let all: Vec<BrokerId> = (1..=brokers).map(BrokerId).collect();
            let metadata = MetadataResponse::default()
                .with_controller_id(BrokerId(1))
                .with_brokers(
                    addresses
                        .iter()
                        .zip(1..)
                        .map(|(address, id)| {
                            MetadataResponseBroker::default()
                                .with_node_id(BrokerId(id))
                                .with_host(StrBytes::from_string(address.ip().to_string()))
                                .with_port(i32::from(address.port()))
                                .with_rack(Some(StrBytes::from_string(format!("r{id}"))))
                        })
                        .collect(),
                )
                .with_topics(vec![MetadataResponseTopic::default()
                    .with_name(Some(topic_name("t")))
                    .with_partitions(vec![MetadataResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(1))
                        .with_replica_nodes(all.clone())
                        .with_isr_nodes(all)])]);
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for (id, listener) in listeners {
                let (metadata, seen, script) = (metadata.clone(), seen.clone(), script.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let Ok((socket, _)) = listener.accept().await else {
                            return;
                        };
                        let (metadata, seen, script) =
                            (metadata.clone(), seen.clone(), script.clone());
                        tokio::spawn(serve(id, socket, fetch_max, metadata, seen, script));
                    }
                }));
            }
            FakeCluster {
                bootstrap: addresses[0].to_string(),
                seen,
                tasks,
            }
        }

        fn seen(&self) -> Vec<SeenFetch> {
            self.seen.lock().unwrap().clone()
        }

        async fn consumer(&self, rack: Option<&str>, start: i64) -> Consumer {
            let mut config = ConsumerConfig::new(&self.bootstrap);
            config.client_rack = rack.map(str::to_string);
            config.fetch_max_wait_ms = 10;
            // An OFFSET_OUT_OF_RANGE from the leader would need ListOffsets, which these
            // brokers do not speak: make it an error instead.
            config.auto_offset_reset = OffsetReset::None;
            let mut consumer = Consumer::new(config).await.unwrap();
            consumer.assign(vec![("t".to_string(), 0)]).await.unwrap();
            consumer.seek("t", 0, SeekTo::Offset(start)).await.unwrap();
            consumer
        }
    }

    async fn serve(
        broker: i32,
        mut socket: tokio::net::TcpStream,
        fetch_max: i16,
        metadata: kafka_protocol::messages::MetadataResponse,
        seen: Arc<std::sync::Mutex<Vec<SeenFetch>>>,
        script: FetchScript,
    ) {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        use kafka_protocol::messages::ApiVersionsResponse;
        use sluice_protocol::header::{decode_request_header, encode_response};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        loop {
            let mut length = [0u8; 4];
            if socket.read_exact(&mut length).await.is_err() {
                return;
            }
            let mut frame = vec![0u8; i32::from_be_bytes(length) as usize];
            socket.read_exact(&mut frame).await.unwrap();
            let mut frame = Bytes::from(frame);
            let (key, header) = decode_request_header(&mut frame).unwrap();
            let (version, id) = (header.request_api_version, header.correlation_id);
            let response = match key {
                ApiKey::ApiVersions => {
                    let ranges = [
                        (ApiKey::ApiVersions, 0, 3),
                        (ApiKey::Metadata, 1, 12),
                        (ApiKey::Fetch, 4, fetch_max),
                    ];
                    let body = ApiVersionsResponse::default().with_api_keys(
                        ranges
                            .iter()
                            .map(|(k, min, max)| {
                                ApiVersion::default()
                                    .with_api_key(*k as i16)
                                    .with_min_version(*min)
                                    .with_max_version(*max)
                            })
                            .collect(),
                    );
                    encode_response(key, version, id, &body).unwrap()
                }
                ApiKey::Metadata => encode_response(key, version, id, &metadata).unwrap(),
                ApiKey::Fetch => {
                    let request = FetchRequest::decode(&mut frame, version).unwrap();
                    let mut responses = Vec::new();
                    for topic in &request.topics {
                        let mut partitions = Vec::new();
                        for p in &topic.partitions {
                            let fetch = SeenFetch {
                                broker,
                                version,
                                replica_id: request.replica_id.0,
                                rack: request.rack_id.to_string(),
                                partition: p.partition,
                                offset: p.fetch_offset,
                            };
                            let before = {
                                let mut seen = seen.lock().unwrap();
                                let before = seen
                                    .iter()
                                    .filter(|s| s.broker == broker && s.partition == p.partition)
                                    .count();
                                seen.push(fetch.clone());
                                before
                            };
                            partitions
                                .push(script(&fetch, before).with_partition_index(p.partition));
                        }
                        responses.push(
                            FetchableTopicResponse::default()
                                .with_topic(topic.topic.clone())
                                .with_partitions(partitions),
                        );
                    }
                    let body = FetchResponse::default().with_responses(responses);
                    encode_response(key, version, id, &body).unwrap()
                }
                other => panic!("fake broker {broker}: unexpected {other:?}"),
            };
            if socket.write_all(&response).await.is_err() {
                return;
            }
        }
    }

    /// The leader's answer: redirect a consumer in rack r2 to broker 2, else serve
    /// `records` at the requested offset.
    fn leader_redirecting_rack_r2(fetch: &SeenFetch) -> PartitionData {
        if fetch.rack == "r2" {
            PartitionData::default()
                .with_high_watermark(100)
                .with_preferred_read_replica(BrokerId(2))
        } else {
            records_at(fetch.offset)
        }
    }

    fn records_at(offset: i64) -> PartitionData {
        PartitionData::default()
            .with_high_watermark(100)
            .with_records(Some(Bytes::from(batch_at(offset, &["x", "y"]))))
    }

    fn fetches(seen: &[SeenFetch]) -> Vec<(i32, i64)> {
        seen.iter().map(|s| (s.broker, s.offset)).collect()
    }

    #[tokio::test]
    async fn the_leader_redirects_to_the_preferred_replica_and_an_error_sends_fetches_back() {
        let script: FetchScript = Arc::new(|fetch, before| match fetch.broker {
            1 => leader_redirecting_rack_r2(fetch),
            _ => match before {
                0 => records_at(fetch.offset),
                1 => PartitionData::default().with_error_code(6), // NOT_LEADER_OR_FOLLOWER
                _ => PartitionData::default().with_high_watermark(100),
            },
        });
        let cluster = FakeCluster::start(2, &[], 12, script).await;
        let mut consumer = cluster.consumer(Some("r2"), 0).await;
        assert_eq!(consumer.preferred_read_replica("t", 0), None);

        let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(consumer.preferred_read_replica("t", 0), Some(2));
        let seen = cluster.seen();
        assert_eq!(fetches(&seen), [(1, 0), (2, 0)]);
        for fetch in &seen {
            assert_eq!((fetch.version, fetch.rack.as_str()), (12, "r2"));
            assert_eq!(
                fetch.replica_id, -1,
                "a follower read is an ordinary consumer fetch"
            );
        }

        // Broker 2 now answers NOT_LEADER_OR_FOLLOWER: back to the leader, which redirects
        // again, and broker 2 serves (empty) from then on.
        let records = consumer.poll(Duration::from_millis(300)).await.unwrap();
        assert!(records.is_empty());
        let seen = fetches(&cluster.seen());
        assert_eq!(
            seen[..5],
            [(1, 0), (2, 0), (2, 2), (1, 2), (2, 2)],
            "{seen:?}"
        );
        assert!(seen[5..].iter().all(|&f| f == (2, 2)), "{seen:?}");
        assert_eq!(consumer.preferred_read_replica("t", 0), Some(2));
        assert_eq!(consumer.position("t", 0), Some(2));
    }

    #[tokio::test]
    async fn offset_out_of_range_at_the_preferred_replica_asks_the_leader_and_keeps_the_position() {
        let script: FetchScript = Arc::new(|fetch, _| match fetch.broker {
            1 => leader_redirecting_rack_r2(fetch),
            _ => PartitionData::default().with_error_code(OFFSET_OUT_OF_RANGE),
        });
        let cluster = FakeCluster::start(2, &[], 12, script).await;
        let mut consumer = cluster.consumer(Some("r2"), 5).await;
        // With auto_offset_reset none, an out-of-range answer from the leader would fail.
        let records = consumer.poll(Duration::from_millis(500)).await.unwrap();
        assert!(records.is_empty());
        assert_eq!(consumer.position("t", 0), Some(5));
        let seen = fetches(&cluster.seen());
        assert!(seen.len() >= 4, "{seen:?}");
        for (i, fetch) in seen.iter().enumerate() {
            assert_eq!(*fetch, (if i % 2 == 0 { 1 } else { 2 }, 5), "{seen:?}");
        }
        // Each failure backs off (100 ms) instead of bouncing in a tight loop (which makes
        // hundreds of round trips in this time).
        assert!(seen.len() <= 20, "{seen:?}");
    }

    #[tokio::test]
    async fn an_unreachable_preferred_replica_sends_fetches_back_to_the_leader() {
        // Broker 2 is in metadata but refuses connections.
        let script: FetchScript = Arc::new(|fetch, _| leader_redirecting_rack_r2(fetch));
        let cluster = FakeCluster::start(2, &[2], 12, script).await;
        let mut consumer = cluster.consumer(Some("r2"), 0).await;
        let records = consumer.poll(Duration::from_millis(350)).await.unwrap();
        assert!(records.is_empty());
        let seen = fetches(&cluster.seen());
        assert!(seen.len() >= 2, "the leader is asked again: {seen:?}");
        assert!(seen.iter().all(|&f| f == (1, 0)), "{seen:?}");
    }

    #[tokio::test]
    async fn without_fetch_v11_no_rack_is_sent_and_the_leader_serves() {
        let script: FetchScript = Arc::new(|fetch, _| leader_redirecting_rack_r2(fetch));
        let cluster = FakeCluster::start(2, &[], 10, script).await;
        let mut consumer = cluster.consumer(Some("r2"), 0).await;
        let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
        assert_eq!(records.len(), 2);
        let seen = cluster.seen();
        assert_eq!(
            (seen[0].broker, seen[0].version, seen[0].rack.as_str()),
            (1, 10, "")
        );
        assert_eq!(consumer.preferred_read_replica("t", 0), None);
    }

    #[tokio::test]
    async fn without_a_rack_the_leader_serves() {
        let script: FetchScript = Arc::new(|fetch, _| leader_redirecting_rack_r2(fetch));
        let cluster = FakeCluster::start(2, &[], 12, script).await;
        let mut consumer = cluster.consumer(None, 0).await;
        let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(fetches(&cluster.seen()), [(1, 0)]);
        assert_eq!(consumer.preferred_read_replica("t", 0), None);
    }
}
