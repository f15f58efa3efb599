//! The async producer: `send` records, get their offsets back.
//!
//! Owns the producer's configuration, its buffer budget and its sender task; batching
//! decisions live in the sans-IO [`Accumulator`](crate::accumulator::Accumulator).
//!
//! How a record travels:
//! 1. [`Producer::send`] reserves the record's size from the buffer budget
//!    (`buffer_bytes_max`; this is the only place `send` waits, which is the backpressure),
//!    picks its partition and appends it to that partition's open batch, under one short
//!    lock. It returns a [`DeliveryFuture`] at once. The first record for a topic also
//!    waits for the topic's metadata (at most `metadata_wait_ms`).
//! 2. The sender task drains the accumulator whenever a batch fills up, a linger timer runs
//!    out, a response frees an in-flight slot, or a flush asks: it groups ready batches by
//!    leader into one Produce request per broker, encodes (and compresses) each batch once,
//!    and puts the request on that broker's connection. Requests are pipelined, up to
//!    `max_in_flight_per_broker` per broker; a small task per request awaits its response.
//! 3. Each partition's result completes its batch (offset = base offset + index), or sends
//!    it back for a retry when the error is retriable, after `retry_backoff_ms` doubling
//!    per attempt up to `retry_backoff_max_ms` (with a metadata refresh when the error
//!    says leadership moved). A batch gives up after
//!    `retries` failed attempts or `delivery_timeout_ms`.
//!
//! With acks=0 the broker sends no response: a batch counts as delivered (offset -1) once
//! its request is written to the socket.
//!
//! Left out on purpose for now: idempotence (producer id + sequence numbers), transactions.
//! Without them a retry can duplicate a batch whose first attempt did land (e.g. after a
//! timeout), and batches in flight behind a failed one can overtake its retry; see the
//! accumulator's ordering rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_protocol::clock::now_ms;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_protocol::batch::Compression;
use tokio::sync::{Notify, Semaphore, TryAcquireError};
use tokio::task::JoinHandle;

use crate::accumulator::{
    Accumulator, AccumulatorConfig, AppendError, Finished, ReadyBatch, RequestPlan,
};
use crate::cluster::{Cluster, ClusterConfig, Metadata};
use crate::delivery::DeliveryFuture;
use crate::error::{Error, Result};
use crate::metrics as m;
use crate::records::Record;

/// How many replicas must have a batch before the broker acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no acknowledgement; offsets are reported as -1.
    None,
    /// acks=1: the leader has appended the batch.
    Leader,
    /// acks=all (-1): every in-sync replica has it.
    All,
}

impl Acks {
    /// The value on the wire.
    pub fn wire_value(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    /// Parse `0`, `1`, `all` or `-1`.
    pub fn parse(text: &str) -> Option<Acks> {
        match text.trim().to_ascii_lowercase().as_str() {
            "0" | "none" => Some(Acks::None),
            "1" | "leader" => Some(Acks::Leader),
            "all" | "-1" => Some(Acks::All),
            _ => None,
        }
    }
}

/// Producer settings. [`ProducerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `HOST:PORT[,HOST:PORT...]`.
    pub bootstrap: String,
    pub client_id: String,
    pub acks: Acks,
    /// How long a batch waits for more records before it is sent (default 5).
    pub linger_ms: u64,
    /// A batch is sent once it reaches this size (default 256 KiB). A single larger record
    /// gets a batch of its own.
    pub batch_bytes_max: usize,
    /// Largest Produce request (default 1 MiB, Kafka's `max.request.size`); also the
    /// largest record accepted.
    pub request_bytes_max: usize,
    pub compression: Compression,
    /// Further attempts for a batch after a retriable error (default 5).
    pub retries: u32,
    /// Wait before the first retry (default 100); doubles per attempt...
    pub retry_backoff_ms: u64,
    /// ...up to this (default 1 000).
    pub retry_backoff_max_ms: u64,
    /// How long a request may wait for its response (default 30 000).
    pub request_timeout_ms: u64,
    /// Upper bound on the time from `send` until a record is acknowledged or failed,
    /// retries included (default 120 000).
    pub delivery_timeout_ms: u64,
    /// Bytes of records buffered and in flight before `send` waits (default 32 MiB).
    pub buffer_bytes_max: usize,
    /// Produce requests in flight per broker (default 5).
    pub max_in_flight_per_broker: usize,
    /// How long the first `send` to a topic waits for the topic's metadata (default 10 000).
    pub metadata_wait_ms: u64,
}

impl ProducerConfig {
    pub fn new(bootstrap: impl Into<String>) -> ProducerConfig {
        ProducerConfig {
            bootstrap: bootstrap.into(),
            client_id: "sluice-producer".to_string(),
            acks: Acks::Leader,
            linger_ms: 5,
            batch_bytes_max: 256 * 1024,
            request_bytes_max: 1024 * 1024,
            compression: Compression::None,
            retries: 5,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 1_000,
            request_timeout_ms: 30_000,
            delivery_timeout_ms: 120_000,
            buffer_bytes_max: 32 * 1024 * 1024,
            max_in_flight_per_broker: 5,
            metadata_wait_ms: 10_000,
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |what: &str| Err(Error::InvalidConfig(what.to_string()));
        if self.batch_bytes_max == 0 {
            return invalid("batch_bytes_max must be positive");
        }
        if self.request_bytes_max == 0 || self.request_bytes_max > i32::MAX as usize {
            return invalid("request_bytes_max must be between 1 and 2^31-1");
        }
        if self.buffer_bytes_max < self.request_bytes_max.min(self.batch_bytes_max) {
            return invalid("buffer_bytes_max must hold at least one batch");
        }
        if self.buffer_bytes_max > (u32::MAX >> 3) as usize {
            return invalid("buffer_bytes_max must be below 512 MiB");
        }
        if self.max_in_flight_per_broker == 0 {
            return invalid("max_in_flight_per_broker must be at least 1");
        }
        if self.request_timeout_ms == 0 {
            return invalid("request_timeout_ms must be positive");
        }
        Ok(())
    }

    fn accumulator_config(&self) -> AccumulatorConfig {
        AccumulatorConfig {
            batch_bytes_max: self.batch_bytes_max,
            linger: Duration::from_millis(self.linger_ms),
            request_bytes_max: self.request_bytes_max,
            compression: self.compression,
            max_in_flight_per_broker: self.max_in_flight_per_broker,
            retries: self.retries,
            retry_backoff: Duration::from_millis(self.retry_backoff_ms),
            retry_backoff_max: Duration::from_millis(self.retry_backoff_max_ms),
            delivery_timeout: Duration::from_millis(self.delivery_timeout_ms),
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// None: by key hash if there is a key, else the sticky partition.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; None: now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    pub fn with_key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    pub fn with_partition(mut self, partition: i32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    pub fn with_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> ProducerRecord {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    pub fn with_timestamp(mut self, timestamp_ms: i64) -> ProducerRecord {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// What the record costs in the buffer budget and in a batch: its bytes plus the
    /// worst-case varint overhead of a v2 record.
    pub fn size_bytes(&self) -> usize {
        const RECORD_OVERHEAD_BYTES: usize = 21;
        const HEADER_OVERHEAD_BYTES: usize = 10;
        RECORD_OVERHEAD_BYTES
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|(name, value)| {
                    HEADER_OVERHEAD_BYTES + name.len() + value.as_ref().map_or(0, Bytes::len)
                })
                .sum::<usize>()
    }

    /// The batch record this becomes, stamped `now_ms` unless it carries a timestamp.
    fn into_record(self, now_ms: i64) -> (String, Option<i32>, Record) {
        let record = Record {
            key: self.key,
            value: self.value,
            headers: self.headers,
            timestamp: self.timestamp.unwrap_or(now_ms),
        };
        (self.topic, self.partition, record)
    }
}

/// The producer. Share it by reference (or in an `Arc`); `send` takes `&self`.
pub struct Producer {
    shared: Arc<Shared>,
    sender: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    accumulator: Mutex<Accumulator>,
    /// Wakes the sender task: a batch opened or filled, a slot freed, a flush, a close.
    wake: Notify,
    /// Buffer budget in bytes: taken by `send`, returned when a batch completes.
    buffer: Semaphore,
    /// No more sends accepted.
    closed: AtomicBool,
    /// The sender should send everything now and exit once idle.
    stopping: AtomicBool,
}

impl Shared {
    fn accumulator(&self) -> std::sync::MutexGuard<'_, Accumulator> {
        // The accumulator is never left half-updated across a panic point.
        self.accumulator.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.buffer.add_permits(bytes);
        }
    }
}

impl Producer {
    /// Connect to the cluster and start the sender task.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let mut cluster_config = ClusterConfig::new(&config.bootstrap)?;
        cluster_config.connection.client_id = config.client_id.clone();
        cluster_config.connection.request_timeout =
            Duration::from_millis(config.request_timeout_ms);
        cluster_config.metadata_refresh_backoff = Duration::from_millis(config.retry_backoff_ms);
        let cluster = Cluster::connect(cluster_config).await?;
        Producer::with_cluster(config, cluster)
    }

    /// A producer on an existing cluster handle (shared with a consumer or admin).
    pub fn with_cluster(config: ProducerConfig, cluster: Arc<Cluster>) -> Result<Producer> {
        config.validate()?;
        let shared = Arc::new(Shared {
            accumulator: Mutex::new(Accumulator::new(config.accumulator_config())),
            buffer: Semaphore::new(config.buffer_bytes_max),
            config,
            cluster,
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        });
        let sender = tokio::spawn(run_sender(shared.clone()));
        Ok(Producer {
            shared,
            sender: tokio::sync::Mutex::new(Some(sender)),
        })
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.shared.cluster
    }

    /// Queue a record. Waits only for buffer space (and, for a topic's first record, its
    /// metadata); the returned future resolves once the record is acknowledged.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let size = record.size_bytes();
        let limit = shared
            .config
            .request_bytes_max
            .min(shared.config.buffer_bytes_max);
        if size > limit {
            return Err(Error::RecordTooLarge {
                size_bytes: size,
                limit_bytes: limit,
            });
        }
        // `size <= request_bytes_max <= i32::MAX`, checked in `validate`.
        let permits = size as u32;
        match shared.buffer.try_acquire_many(permits) {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => shared
                .buffer
                .acquire_many(permits)
                .await
                .map_err(|_| Error::Closed)?
                .forget(),
            Err(TryAcquireError::Closed) => return Err(Error::Closed),
        }
        let (topic, partition, mut record) = record.into_record(now_ms());
        // Bounded: once for an unknown topic, once more if it still is not registered.
        let mut metadata_lookups = 0;
        loop {
            let appended =
                shared
                    .accumulator()
                    .append(&topic, partition, record, size, Instant::now());
            match appended {
                Ok(appended) => {
                    if appended.wake_sender {
                        shared.wake.notify_one();
                    }
                    return Ok(DeliveryFuture::new(appended.completion, appended.index));
                }
                Err(AppendError::UnknownTopic(returned)) if metadata_lookups < 2 => {
                    record = returned;
                }
                Err(AppendError::UnknownTopic(_)) => {
                    shared.release(size);
                    return Err(Error::UnknownTopic(topic));
                }
                Err(AppendError::UnknownPartition {
                    partition,
                    partition_count,
                }) => {
                    shared.release(size);
                    return Err(Error::UnknownPartition {
                        topic,
                        partition,
                        partition_count,
                    });
                }
            }
            metadata_lookups += 1;
            let wait = Duration::from_millis(shared.config.metadata_wait_ms);
            match shared.cluster.topic(&topic, wait).await {
                Ok(info) => shared
                    .accumulator()
                    .set_partition_count(&topic, info.partition_count()),
                Err(error) => {
                    shared.release(size);
                    return Err(error);
                }
            }
        }
    }

    /// Send every buffered record now and wait until each is acknowledged or failed (the
    /// outcome of each record is reported by its own future).
    pub async fn flush(&self) {
        let pending = self.shared.accumulator().seal_all();
        self.shared.wake.notify_one();
        for completion in pending {
            let _ = completion.wait().await;
        }
    }

    /// Refuse new records, deliver the buffered ones, and stop the sender task.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.flush().await;
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(sender) = self.sender.lock().await.take() {
            let _ = sender.await;
        }
        self.shared.buffer.close();
    }
}

impl Drop for Producer {
    /// Without `close`, buffered records are still sent in the background (bounded by the
    /// delivery timeout), then the sender task exits.
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// The sender task: drain, dispatch, sleep until the next reason to drain.
async fn run_sender(shared: Arc<Shared>) {
    let retry_backoff = Duration::from_millis(shared.config.retry_backoff_ms);
    let mut known_metadata: Option<Arc<Metadata>> = None;
    loop {
        let now = Instant::now();
        let metadata = shared.cluster.metadata();
        let stopping = shared.stopping.load(Ordering::Acquire);
        let (drain, idle) = {
            let mut accumulator = shared.accumulator();
            if !known_metadata
                .as_ref()
                .is_some_and(|known| Arc::ptr_eq(known, &metadata))
            {
                // Partitions may have been added: keyed records follow the new count.
                for topic in metadata.topics.values() {
                    if accumulator.partition_count(&topic.name).is_some() {
                        accumulator.set_partition_count(&topic.name, topic.partition_count());
                    }
                }
                known_metadata = Some(metadata.clone());
            }
            if stopping {
                accumulator.seal_all();
            }
            let mut drain =
                accumulator.drain(now, |topic, partition| metadata.leader(topic, partition));
            let mut released = 0;
            for batch in std::mem::take(&mut drain.expired) {
                let error = Error::DeliveryTimeout {
                    topic: batch.topic.0.to_string(),
                    partition: batch.partition,
                    timeout_ms: shared.config.delivery_timeout_ms,
                };
                released += accumulator.fail_unsent(batch, error);
            }
            shared.release(released);
            (drain, accumulator.is_idle())
        };
        if stopping && idle {
            return;
        }
        if drain.leaders_missing {
            shared.cluster.request_refresh();
        }
        for plan in drain.requests {
            dispatch(&shared, plan).await;
        }
        let mut next_wakeup = drain.next_wakeup;
        if drain.leaders_missing {
            let retry_at = Instant::now() + retry_backoff;
            next_wakeup = Some(next_wakeup.map_or(retry_at, |t| t.min(retry_at)));
        }
        let notified = shared.wake.notified();
        match next_wakeup {
            Some(at) => {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Encode a plan's batches into one Produce request and put it on the leader's connection.
/// Runs on the sender task, so requests reach each connection in drain order.
async fn dispatch(shared: &Arc<Shared>, plan: RequestPlan) {
    let broker = plan.broker;
    let connection = match shared.cluster.broker_connection(broker).await {
        Ok(connection) => connection,
        Err(error) => {
            complete_request(shared, broker, plan.batches, Err(error));
            return;
        }
    };
    let mut batches = Vec::with_capacity(plan.batches.len());
    let mut topic_data: Vec<TopicProduceData> = Vec::new();
    let mut unencodable = Vec::new();
    for mut batch in plan.batches {
        match batch.encoded() {
            Ok(bytes) => {
                metrics::counter!(m::PRODUCER_BATCHES_SENT_TOTAL).increment(1);
                metrics::counter!(m::PRODUCER_RECORDS_SENT_TOTAL)
                    .increment(batch.record_count as u64);
                metrics::histogram!(m::PRODUCER_BATCH_SIZE_BYTES).record(bytes.len() as f64);
                let partition_data = PartitionProduceData::default()
                    .with_index(batch.partition)
                    .with_records(Some(bytes));
                match topic_data.iter_mut().find(|t| t.name == batch.topic) {
                    Some(topic) => topic.partition_data.push(partition_data),
                    None => topic_data.push(
                        TopicProduceData::default()
                            .with_name(batch.topic.clone())
                            .with_partition_data(vec![partition_data]),
                    ),
                }
                batches.push(batch);
            }
            Err(source) => unencodable.push((batch, source)),
        }
    }
    if !unencodable.is_empty() {
        let now = Instant::now();
        let mut accumulator = shared.accumulator();
        let mut released = 0;
        for (batch, source) in unencodable {
            let error = Error::Protocol {
                broker: connection.broker().to_string(),
                source,
            };
            if let Finished::Done { released_bytes } = accumulator.finish(batch, Err(error), now) {
                released += released_bytes;
            }
        }
        shared.release(released);
    }
    if batches.is_empty() {
        complete_request(shared, broker, batches, Ok(None));
        return;
    }
    let timeout_ms = i32::try_from(shared.config.request_timeout_ms).unwrap_or(i32::MAX);
    let request = ProduceRequest::default()
        .with_acks(shared.config.acks.wire_value())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topic_data);
    if shared.config.acks == Acks::None {
        match connection.send_no_response(&request) {
            Ok(written) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let result = written.await.map(|()| None);
                    complete_request(&shared, broker, batches, result);
                });
            }
            Err(error) => complete_request(shared, broker, batches, Err(error)),
        }
        return;
    }
    match connection.start_send(&request) {
        Ok(pending) => {
            let shared = shared.clone();
            tokio::spawn(async move {
                let result = pending.response().await.map(Some);
                complete_request(&shared, broker, batches, result);
            });
        }
        Err(error) => complete_request(shared, broker, batches, Err(error)),
    }
}

/// Apply a request's outcome to its batches: `Ok(Some(response))` per partition,
/// `Ok(None)` for acks=0 (written, offsets unknown), `Err` for the whole request.
fn complete_request(
    shared: &Arc<Shared>,
    broker: i32,
    batches: Vec<ReadyBatch>,
    result: Result<Option<ProduceResponse>>,
) {
    let now = Instant::now();
    let mut refresh = false;
    let mut released = 0;
    {
        let mut accumulator = shared.accumulator();
        let outcomes = partition_outcomes(&batches, &result);
        for (batch, outcome) in batches.into_iter().zip(outcomes) {
            if let Err(error) = &outcome {
                refresh |= error.needs_metadata_refresh();
            }
            if let Finished::Done { released_bytes } = accumulator.finish(batch, outcome, now) {
                released += released_bytes;
            }
        }
        accumulator.request_finished(broker);
    }
    shared.release(released);
    if refresh {
        shared.cluster.request_refresh();
    }
    shared.wake.notify_one();
}

/// Each batch's outcome from the response: its base offset, or the error for its partition.
fn partition_outcomes(
    batches: &[ReadyBatch],
    result: &Result<Option<ProduceResponse>>,
) -> Vec<Result<i64>> {
    let response = match result {
        Err(error) => return batches.iter().map(|_| Err(error.clone())).collect(),
        Ok(None) => return batches.iter().map(|_| Ok(-1)).collect(),
        Ok(Some(response)) => response,
    };
    let mut by_partition = HashMap::new();
    for topic in &response.responses {
        for partition in &topic.partition_responses {
            by_partition.insert((&*topic.name.0, partition.index), partition);
        }
    }
    batches
        .iter()
        .map(|batch| {
            let context = || format!("producing to {}-{}", batch.topic.0, batch.partition);
            match by_partition.get(&(&*batch.topic.0, batch.partition)) {
                Some(p) if p.error_code == 0 => Ok(p.base_offset),
                Some(p) => Err(Error::broker(
                    context(),
                    p.error_code,
                    p.error_message.as_ref().map(|m| m.to_string()),
                )),
                None => Err(Error::broker(
                    context(),
                    -1,
                    Some("the partition is missing from the broker's response".to_string()),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_the_cli_spellings() {
        assert_eq!(Acks::parse("0"), Some(Acks::None));
        assert_eq!(Acks::parse("1"), Some(Acks::Leader));
        assert_eq!(Acks::parse("all"), Some(Acks::All));
        assert_eq!(Acks::parse("-1"), Some(Acks::All));
        assert_eq!(Acks::parse("2"), None);
        assert_eq!(Acks::All.wire_value(), -1);
    }

    #[test]
    fn producer_record_converts_to_a_batch_record() {
        let record = ProducerRecord::new("t", "v")
            .with_key("k")
            .with_header("h", "x")
            .with_partition(2);
        assert_eq!(record.size_bytes(), 21 + 1 + 1 + 10 + 1 + 1);
        let (topic, partition, converted) = record.clone().into_record(42);
        assert_eq!(topic, "t");
        assert_eq!(partition, Some(2));
        assert_eq!(converted.timestamp, 42);
        assert_eq!(converted.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(converted.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(
            converted.headers,
            vec![("h".to_string(), Some(Bytes::from("x")))]
        );
        let (_, _, stamped) = record.with_timestamp(7).into_record(42);
        assert_eq!(stamped.timestamp, 7);
    }

    #[test]
    fn config_validation_rejects_impossible_limits() {
        let mut config = ProducerConfig::new("127.0.0.1:9092");
        assert!(config.validate().is_ok());
        config.max_in_flight_per_broker = 0;
        assert!(config.validate().is_err());
        let mut config = ProducerConfig::new("127.0.0.1:9092");
        config.buffer_bytes_max = 10;
        assert!(config.validate().is_err());
    }
}
