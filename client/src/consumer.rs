//! The consumer: read assigned partitions from a position, with Fetch.
//!
//! Owns the assignment (which partitions to read), each partition's *position* (the offset
//! of the next record to return), and the fetch loop. There are no consumer groups yet:
//! partitions are assigned explicitly and positions are not committed anywhere.
//!
//! Steps of [`Consumer::poll`]:
//! 1. Partitions without a position get one from ListOffsets (earliest/latest per
//!    `auto_offset_reset`, or the target of a pending seek).
//! 2. Assigned partitions are grouped by leader; one Fetch per leader is sent concurrently
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
//! `poll` returns as soon as any records arrived, or empty when `timeout` runs out.
//! Records already decoded when a later partition fails are kept and returned by the next
//! `poll`, so an error never loses records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::{BatchIterError, Batches};

use crate::cluster::{Cluster, ClusterConfig};
use crate::error::{code_needs_metadata_refresh, Error, Result};
pub use crate::offsets::IsolationLevel;
use crate::offsets::{list_offsets, OffsetSpec, PartitionKey};
use crate::records::decode_records;

/// Pause after a round that failed for want of a leader or a connection.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Kafka's OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

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

    /// Fetch records from every assigned partition. Returns as soon as some arrived, or
    /// an empty vector after `timeout`.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
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

    /// One round of Fetch requests, one per leader, concurrently.
    async fn fetch_once(&mut self, deadline: Instant) -> Result<Vec<ConsumerRecord>> {
        let metadata = self.cluster.metadata();
        let mut by_leader: BTreeMap<i32, Vec<(PartitionKey, i64)>> = BTreeMap::new();
        let mut leaders_missing = false;
        for (key, state) in &self.partitions {
            let Position::At(offset) = state.position else {
                continue;
            };
            match metadata.leader(&key.0, key.1) {
                Some(leader) => by_leader
                    .entry(leader)
                    .or_default()
                    .push((key.clone(), offset)),
                None => leaders_missing = true,
            }
        }
        if leaders_missing {
            self.refresh_metadata().await;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if by_leader.is_empty() {
            // Nothing fetchable now (no assignment, or no leaders yet): wait a little.
            tokio::time::sleep(remaining.min(RETRY_BACKOFF)).await;
            return Ok(Vec::new());
        }
        let max_wait = remaining.min(Duration::from_millis(self.config.fetch_max_wait_ms));
        let fetches = by_leader.into_iter().map(|(leader, partitions)| {
            let cluster = self.cluster.clone();
            let config = &self.config;
            async move {
                let result = fetch_from(&cluster, config, leader, &partitions, max_wait).await;
                (partitions, result)
            }
        });
        let results = futures::future::join_all(fetches).await;

        let mut records = Vec::new();
        let mut refresh = false;
        let mut first_error = None;
        for (partitions, result) in results {
            let response = match result {
                Ok(response) => response,
                Err(error) if error.is_retriable() => {
                    tracing::debug!(%error, "fetch failed; will retry");
                    // Also covers a broker that refuses connections: back off, then retry.
                    refresh = true;
                    continue;
                }
                Err(error) => {
                    first_error.get_or_insert(error);
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
                match p.error_code {
                    0 => {
                        let bytes = p.records.clone().unwrap_or_default();
                        let next = match decode_partition(&key, &bytes, offset, &mut records) {
                            Ok(next) => next,
                            Err(error) => {
                                first_error.get_or_insert(error);
                                continue;
                            }
                        };
                        if let Some(state) = self.partitions.get_mut(&key) {
                            state.high_watermark = Some(p.high_watermark);
                            if let Some(next) = next {
                                state.position = Position::At(next.max(offset));
                            }
                        }
                    }
                    OFFSET_OUT_OF_RANGE => {
                        let reset = match self.config.auto_offset_reset {
                            OffsetReset::Earliest => Position::Pending(SeekTo::Earliest),
                            OffsetReset::Latest => Position::Pending(SeekTo::Latest),
                            OffsetReset::None => {
                                first_error.get_or_insert(Error::OffsetOutOfRange {
                                    topic: key.0.to_string(),
                                    partition: key.1,
                                    offset,
                                });
                                continue;
                            }
                        };
                        tracing::info!(
                            topic = %key.0,
                            partition = key.1,
                            offset,
                            "offset out of range; resetting per auto_offset_reset"
                        );
                        if let Some(state) = self.partitions.get_mut(&key) {
                            state.position = reset;
                        }
                    }
                    code if code_needs_metadata_refresh(code) => refresh = true,
                    code => {
                        first_error.get_or_insert(Error::broker(
                            format!("fetching {}-{}", key.0, key.1),
                            code,
                            None,
                        ));
                    }
                }
            }
        }
        if refresh {
            self.refresh_metadata().await;
            if records.is_empty() {
                // Do not spin on a partition that keeps failing until its leader is found.
                let remaining = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(remaining.min(RETRY_BACKOFF)).await;
            }
        }
        if let Some(error) = first_error {
            self.buffered.append(&mut records);
            return Err(error);
        }
        Ok(records)
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// One Fetch request to one leader.
async fn fetch_from(
    cluster: &Cluster,
    config: &ConsumerConfig,
    leader: i32,
    partitions: &[(PartitionKey, i64)],
    max_wait: Duration,
) -> Result<FetchResponse> {
    let connection = cluster.broker_connection(leader).await?;
    let version = connection.version(ApiKey::Fetch)?;
    let request = fetch_request(config, partitions, max_wait);
    let timeout = connection.request_timeout() + max_wait;
    let response = connection.send_versioned(request, version, timeout).await?;
    if response.error_code != 0 {
        return Err(Error::broker(
            format!("fetching from broker {leader}"),
            response.error_code,
            None,
        ));
    }
    Ok(response)
}

/// A sessionless Fetch request (session id 0, epoch -1) for `partitions` at their offsets.
/// Every field left at its default exists in all versions we use (v4-v12).
fn fetch_request(
    config: &ConsumerConfig,
    partitions: &[(PartitionKey, i64)],
    max_wait: Duration,
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
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(config.fetch_max_bytes)
        .with_isolation_level(config.isolation.wire_value())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
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
        let config = ConsumerConfig::new("127.0.0.1:9092");
        let partitions = vec![((Arc::from("t"), 0), 5), ((Arc::from("t"), 1), 7)];
        let request = fetch_request(&config, &partitions, Duration::from_millis(100));
        assert_eq!(request.topics.len(), 1);
        assert_eq!(request.topics[0].partitions.len(), 2);
        crate::connection::assert_encodes_at_every_client_version(&request, ApiKey::Fetch);
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
}
