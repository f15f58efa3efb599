//! The producer's record accumulator: records in, per-broker Produce plans out. Sans-IO.
//!
//! Owns, per topic partition, the *open* batch records are appended to and the queue of
//! *ready* batches waiting to be sent, plus the in-flight accounting per broker and the retry
//! policy. It does no I/O and reads no clock: the producer passes `now` in, sends what
//! [`Accumulator::drain`] plans, and reports each batch's outcome to
//! [`Accumulator::finish`]. That keeps batching, lingering and retry ordering testable as
//! plain functions.
//!
//! Life of a batch: *open* (accepting records) -> *ready* (sealed because it reached
//! `batch_bytes_max`, its `linger` expired, or a flush asked for it) -> *in flight* (part of
//! a planned request) -> acknowledged, failed, or back to *ready* for a retry after
//! `retry_backoff`, doubling per attempt up to `retry_backoff_max`.
//!
//! Rules:
//! - A Produce request carries at most one batch per partition (Kafka requires it for
//!   RecordBatch v2) and at most `request_bytes_max` bytes (one larger batch may go alone).
//! - At most `max_in_flight_per_broker` requests are in flight per broker.
//! - Order within a partition: batches are sent in the order they were sealed. A batch
//!   coming back for a retry goes back to the *front* of its queue (ordered by batch id),
//!   and while it is being retried the partition sends nothing else. Batches that were
//!   already in flight behind a failed one can still land before its retry; without
//!   idempotence (producer ids and sequence numbers, not implemented) that is the same as
//!   the Java client with `max.in.flight.requests.per.connection > 1`. With
//!   `max_in_flight_per_broker = 1` order is strict.
//! - A batch that has waited longer than `delivery_timeout` since it was created, and is not
//!   in flight, is failed rather than kept forever (e.g. no leader ever appears).
//! - A partition's failed attempts in a row are charged to every batch queued behind the
//!   retrying one, and when a batch runs out of attempts on a retriable error, the batches
//!   queued behind it fail with it. So a partition that stays unavailable fails its queue
//!   after one retry budget (about `retries` backoffs), not one budget per batch in turn.
//! - Draining starts at a rotating position so that, when `request_bytes_max` cuts a request
//!   short, no partition is starved.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::Compression;
use sluice_protocol::error::ProtocolError;

use crate::delivery::BatchCompletion;
use crate::error::Error;
use crate::metrics as m;
use crate::partitioner::{partition_for_key, StickyPartition};
use crate::records::{BatchBuilder, Record};

/// Limits and policy of the accumulator.
#[derive(Debug, Clone)]
pub struct AccumulatorConfig {
    pub batch_bytes_max: usize,
    pub linger: Duration,
    pub request_bytes_max: usize,
    pub compression: Compression,
    pub max_in_flight_per_broker: usize,
    pub retries: u32,
    /// Wait before the first retry; doubles with each further attempt...
    pub retry_backoff: Duration,
    /// ...up to this.
    pub retry_backoff_max: Duration,
    pub delivery_timeout: Duration,
}

/// A batch's bytes: still a builder until the first send encodes it; kept encoded for
/// retries.
pub enum Payload {
    Builder(BatchBuilder),
    Built(Bytes),
}

/// A sealed batch, ready to send (or being sent).
pub struct ReadyBatch {
    pub id: u64,
    pub topic: TopicName,
    pub partition: i32,
    pub record_count: usize,
    /// Bytes this batch holds in the producer's buffer; released when it completes.
    pub buffer_bytes: usize,
    pub completion: Arc<BatchCompletion>,
    /// Sends that failed so far.
    pub attempts: u32,
    payload: Payload,
    created: Instant,
    retry_at: Option<Instant>,
    topic_index: usize,
}

impl ReadyBatch {
    /// The encoded batch, encoding (and compressing) it on first use.
    pub fn encoded(&mut self) -> Result<Bytes, ProtocolError> {
        match std::mem::replace(&mut self.payload, Payload::Built(Bytes::new())) {
            Payload::Built(bytes) => {
                self.payload = Payload::Built(bytes.clone());
                Ok(bytes)
            }
            Payload::Builder(builder) => {
                let bytes = builder.build()?;
                self.payload = Payload::Built(bytes.clone());
                Ok(bytes)
            }
        }
    }

    /// Bytes the batch takes in a request (exact once encoded, estimated before).
    fn request_bytes(&self) -> usize {
        match &self.payload {
            Payload::Builder(builder) => builder.estimated_bytes(),
            Payload::Built(bytes) => bytes.len(),
        }
    }
}

/// One Produce request to send: the broker and its batches, at most one per partition.
pub struct RequestPlan {
    pub broker: i32,
    pub batches: Vec<ReadyBatch>,
}

/// What [`Accumulator::drain`] decided.
#[derive(Default)]
pub struct Drain {
    pub requests: Vec<RequestPlan>,
    /// Batches past `delivery_timeout`: fail them.
    pub expired: Vec<ReadyBatch>,
    /// When to drain next if nothing else happens (linger or retry backoff running out).
    pub next_wakeup: Option<Instant>,
    /// Some ready batch has no known leader: refresh metadata.
    pub leaders_missing: bool,
}

/// Where an appended record went.
pub struct Appended {
    pub completion: Arc<BatchCompletion>,
    /// Index of the record in its batch.
    pub index: u32,
    /// A batch was opened or sealed: the sender should re-plan.
    pub wake_sender: bool,
}

/// Why a record could not be appended.
pub enum AppendError {
    /// The topic is not registered yet; the record is handed back.
    UnknownTopic(Record),
    UnknownPartition {
        partition: i32,
        partition_count: i32,
    },
}

/// What a finished batch means for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// The batch's outcome was delivered; release this many buffer bytes.
    Done { released_bytes: usize },
    /// The batch went back to its queue for another attempt.
    Retrying,
}

struct OpenBatch {
    /// Assigned when the batch opens; increasing, so it orders a partition's batches.
    id: u64,
    builder: BatchBuilder,
    completion: Arc<BatchCompletion>,
    created: Instant,
    buffer_bytes: usize,
}

#[derive(Default)]
struct PartitionBatches {
    open: Option<OpenBatch>,
    ready: VecDeque<ReadyBatch>,
    in_flight: usize,
    /// A retried batch is in flight: send nothing else from this partition until it returns.
    retry_in_flight: bool,
    /// Failed attempts in a row on this partition (0 after any success). Batches queued
    /// behind a retrying one share its fate: they are charged these attempts too.
    failure_streak: u32,
}

struct TopicBatches {
    name: TopicName,
    partitions: Vec<PartitionBatches>,
    sticky: StickyPartition,
}

impl TopicBatches {
    fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }
}

/// Per-partition batches of one producer.
pub struct Accumulator {
    config: AccumulatorConfig,
    topics: Vec<TopicBatches>,
    topic_index: HashMap<String, usize>,
    in_flight_per_broker: HashMap<i32, usize>,
    /// Every batch not yet completed, for flush.
    incomplete: HashMap<u64, Arc<BatchCompletion>>,
    next_batch_id: u64,
    drain_rotation: usize,
}

impl Accumulator {
    pub fn new(config: AccumulatorConfig) -> Accumulator {
        Accumulator {
            config,
            topics: Vec::new(),
            topic_index: HashMap::new(),
            in_flight_per_broker: HashMap::new(),
            incomplete: HashMap::new(),
            next_batch_id: 0,
            drain_rotation: 0,
        }
    }

    /// Register a topic, or grow its partition count (partitions are never removed).
    pub fn set_partition_count(&mut self, topic: &str, partition_count: i32) {
        let count = usize::try_from(partition_count).unwrap_or(0);
        let index = match self.topic_index.get(topic) {
            Some(&index) => index,
            None => {
                self.topics.push(TopicBatches {
                    name: TopicName(StrBytes::from_string(topic.to_string())),
                    partitions: Vec::new(),
                    sticky: StickyPartition::default(),
                });
                self.topic_index
                    .insert(topic.to_string(), self.topics.len() - 1);
                self.topics.len() - 1
            }
        };
        let partitions = &mut self.topics[index].partitions;
        if partitions.len() < count {
            partitions.resize_with(count, PartitionBatches::default);
        }
    }

    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        let index = *self.topic_index.get(topic)?;
        Some(self.topics[index].partition_count())
    }

    /// Append a record: to `partition` if given, else by key hash, else to the sticky
    /// partition. Seals the open batch first if the record would overflow it, and after, if
    /// it is full.
    pub fn append(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        record: Record,
        record_bytes: usize,
        now: Instant,
    ) -> Result<Appended, AppendError> {
        let Some(&topic_index) = self.topic_index.get(topic) else {
            return Err(AppendError::UnknownTopic(record));
        };
        let topic_batches = &mut self.topics[topic_index];
        let partition_count = topic_batches.partition_count();
        let partition = match (partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partition_count),
            (None, None) => topic_batches.sticky.get(partition_count),
        };
        if partition < 0 || partition >= partition_count {
            return Err(AppendError::UnknownPartition {
                partition,
                partition_count,
            });
        }
        let batch_bytes_max = self.config.batch_bytes_max;
        let mut wake_sender = false;
        let slot = partition as usize;
        let overflows = topic_batches.partitions[slot]
            .open
            .as_ref()
            .is_some_and(|open| {
                !open.builder.is_empty()
                    && open.builder.estimated_bytes_with(&record) > batch_bytes_max
            });
        if overflows {
            Self::seal(topic_batches, topic_index, partition);
            wake_sender = true;
        }
        let partition_batches = &mut topic_batches.partitions[slot];
        let next_batch_id = &mut self.next_batch_id;
        let incomplete = &mut self.incomplete;
        let compression = self.config.compression;
        let open = partition_batches.open.get_or_insert_with(|| {
            let id = *next_batch_id;
            *next_batch_id += 1;
            let completion = BatchCompletion::new(partition);
            // Registered at once, so a flush also waits for open batches.
            incomplete.insert(id, completion.clone());
            wake_sender = true;
            OpenBatch {
                id,
                builder: BatchBuilder::new(compression),
                completion,
                created: now,
                buffer_bytes: 0,
            }
        });
        let index = u32::try_from(open.builder.len()).unwrap_or(u32::MAX);
        open.builder.push(record);
        open.buffer_bytes += record_bytes;
        let completion = open.completion.clone();
        if open.builder.estimated_bytes() >= batch_bytes_max {
            Self::seal(topic_batches, topic_index, partition);
            wake_sender = true;
        }
        Ok(Appended {
            completion,
            index,
            wake_sender,
        })
    }

    /// Move a partition's open batch to the back of its ready queue.
    fn seal(topic: &mut TopicBatches, topic_index: usize, partition: i32) {
        let partition_count = topic.partition_count();
        let slot = partition as usize;
        let Some(open) = topic.partitions[slot].open.take() else {
            return;
        };
        topic.partitions[slot].ready.push_back(ReadyBatch {
            id: open.id,
            topic: topic.name.clone(),
            partition,
            record_count: open.builder.len(),
            buffer_bytes: open.buffer_bytes,
            completion: open.completion,
            attempts: 0,
            payload: Payload::Builder(open.builder),
            created: open.created,
            retry_at: None,
            topic_index,
        });
        topic.sticky.batch_closed(partition, partition_count);
    }

    /// Seal every open batch (flush) and return the completions of every batch not yet
    /// done, to wait on.
    pub fn seal_all(&mut self) -> Vec<Arc<BatchCompletion>> {
        for (topic_index, topic) in self.topics.iter_mut().enumerate() {
            for partition in 0..topic.partition_count() {
                Self::seal(topic, topic_index, partition);
            }
        }
        self.incomplete.values().cloned().collect()
    }

    /// Whether nothing is buffered or in flight.
    pub fn is_idle(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// Seal batches whose linger expired, expire old batches, and plan requests for every
    /// partition whose leader is known and whose broker has room for another request.
    pub fn drain(&mut self, now: Instant, leader_of: impl Fn(&str, i32) -> Option<i32>) -> Drain {
        let mut drain = Drain::default();
        let linger = self.config.linger;
        let delivery_timeout = self.config.delivery_timeout;
        let wake = |at: Instant, drain: &mut Drain| {
            drain.next_wakeup = Some(drain.next_wakeup.map_or(at, |t| t.min(at)));
        };

        // Seal lingered batches; expire batches waiting too long.
        for (topic_index, topic) in self.topics.iter_mut().enumerate() {
            for partition in 0..topic.partition_count() {
                let slot = partition as usize;
                if let Some(open) = &topic.partitions[slot].open {
                    let due = open.created + linger;
                    if due <= now {
                        Self::seal(topic, topic_index, partition);
                    } else {
                        wake(due, &mut drain);
                    }
                }
                let ready = &mut topic.partitions[slot].ready;
                let mut kept = VecDeque::with_capacity(ready.len());
                for batch in ready.drain(..) {
                    if now.saturating_duration_since(batch.created) >= delivery_timeout {
                        drain.expired.push(batch);
                    } else {
                        kept.push_back(batch);
                    }
                }
                *ready = kept;
            }
        }

        // Plan requests, starting at a rotating partition for fairness.
        let slots: Vec<(usize, usize)> = self
            .topics
            .iter()
            .enumerate()
            .flat_map(|(t, topic)| (0..topic.partitions.len()).map(move |p| (t, p)))
            .collect();
        if slots.is_empty() {
            return drain;
        }
        let start = self.drain_rotation % slots.len();
        self.drain_rotation = self.drain_rotation.wrapping_add(1);
        let mut plans: HashMap<i32, (RequestPlan, usize)> = HashMap::new();
        for i in 0..slots.len() {
            let (t, p) = slots[(start + i) % slots.len()];
            let topic = &mut self.topics[t];
            let partition_batches = &mut topic.partitions[p];
            let Some(front) = partition_batches.ready.front() else {
                continue;
            };
            if partition_batches.retry_in_flight {
                continue;
            }
            if let Some(retry_at) = front.retry_at {
                if retry_at > now {
                    wake(retry_at, &mut drain);
                    continue;
                }
            }
            if front.attempts > 0 && partition_batches.in_flight > 0 {
                continue;
            }
            let Some(broker) = leader_of(&topic.name.0, p as i32) else {
                drain.leaders_missing = true;
                continue;
            };
            let front_bytes = front.request_bytes();
            let in_flight = self.in_flight_per_broker.get(&broker).copied().unwrap_or(0);
            let (plan, plan_bytes) = match plans.get_mut(&broker) {
                Some(entry) => entry,
                None => {
                    if in_flight >= self.config.max_in_flight_per_broker {
                        continue;
                    }
                    plans.entry(broker).or_insert((
                        RequestPlan {
                            broker,
                            batches: Vec::new(),
                        },
                        0,
                    ))
                }
            };
            if !plan.batches.is_empty() && *plan_bytes + front_bytes > self.config.request_bytes_max
            {
                continue;
            }
            let Some(batch) = partition_batches.ready.pop_front() else {
                continue;
            };
            if batch.attempts > 0 {
                partition_batches.retry_in_flight = true;
            }
            partition_batches.in_flight += 1;
            *plan_bytes += front_bytes;
            metrics::histogram!(m::PRODUCER_RECORD_QUEUE_TIME_SECONDS)
                .record(now.saturating_duration_since(batch.created).as_secs_f64());
            plan.batches.push(batch);
        }
        for (broker, (plan, _)) in plans {
            *self.in_flight_per_broker.entry(broker).or_insert(0) += 1;
            drain.requests.push(plan);
        }
        drain
    }

    /// A planned request is over (answered, failed or written for acks=0): free its slot.
    /// Call once per [`RequestPlan`], after [`Accumulator::finish`] for its batches.
    pub fn request_finished(&mut self, broker: i32) {
        if let Some(count) = self.in_flight_per_broker.get_mut(&broker) {
            *count = count.saturating_sub(1);
        }
    }

    /// Record the outcome of one batch: `Ok(base_offset)` or the error. A retriable error
    /// with attempts left sends the batch back to the front of its queue after the backoff;
    /// otherwise the outcome goes to every record of the batch.
    pub fn finish(
        &mut self,
        mut batch: ReadyBatch,
        outcome: Result<i64, Error>,
        now: Instant,
    ) -> Finished {
        let topic = &mut self.topics[batch.topic_index];
        let partition_batches = &mut topic.partitions[batch.partition as usize];
        partition_batches.in_flight = partition_batches.in_flight.saturating_sub(1);
        if batch.attempts > 0 {
            partition_batches.retry_in_flight = false;
        }
        let attempts = batch.attempts.max(partition_batches.failure_streak);
        let error = match outcome {
            Ok(base_offset) => {
                partition_batches.failure_streak = 0;
                batch.completion.complete(Ok(base_offset));
                self.incomplete.remove(&batch.id);
                return Finished::Done {
                    released_bytes: batch.buffer_bytes,
                };
            }
            Err(error) => error,
        };
        let timed_out =
            now.saturating_duration_since(batch.created) >= self.config.delivery_timeout;
        if error.is_retriable() && attempts < self.config.retries && !timed_out {
            tracing::debug!(
                topic = %batch.topic.0,
                partition = batch.partition,
                attempt = attempts + 1,
                records = batch.record_count,
                %error,
                "retrying batch"
            );
            metrics::counter!(m::PRODUCER_RETRIES_TOTAL).increment(1);
            batch.attempts = attempts + 1;
            partition_batches.failure_streak = batch.attempts;
            let backoff = self
                .config
                .retry_backoff
                .saturating_mul(1 << (batch.attempts - 1).min(16))
                .min(self.config.retry_backoff_max.max(self.config.retry_backoff));
            batch.retry_at = Some(now + backoff);
            let position = partition_batches
                .ready
                .iter()
                .position(|b| b.id > batch.id)
                .unwrap_or(partition_batches.ready.len());
            partition_batches.ready.insert(position, batch);
            return Finished::Retrying;
        }
        let mut released_bytes = batch.buffer_bytes;
        let mut failed = vec![batch];
        if error.is_retriable() {
            // The partition stayed unavailable through a whole retry budget: everything
            // queued behind this batch has waited as long and fails with it, instead of
            // each batch spending a budget of its own, one after another.
            failed.extend(partition_batches.ready.drain(..));
            partition_batches.failure_streak = 0;
        }
        for batch in failed.iter().skip(1) {
            released_bytes += batch.buffer_bytes;
        }
        let records: usize = failed.iter().map(|b| b.record_count).sum();
        metrics::counter!(m::PRODUCER_ERRORS_TOTAL, "error" => m::error_label(&error))
            .increment(records as u64);
        for batch in failed {
            batch.completion.complete(Err(error.clone()));
            self.incomplete.remove(&batch.id);
        }
        Finished::Done { released_bytes }
    }

    /// Fail a batch that never reached a request (expired): completes it and returns the
    /// buffer bytes to release.
    pub fn fail_unsent(&mut self, batch: ReadyBatch, error: Error) -> usize {
        metrics::counter!(m::PRODUCER_ERRORS_TOTAL, "error" => m::error_label(&error))
            .increment(batch.record_count as u64);
        batch.completion.complete(Err(error));
        self.incomplete.remove(&batch.id);
        batch.buffer_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partitioner::{murmur2, to_positive};

    const LINGER: Duration = Duration::from_millis(5);
    const BACKOFF: Duration = Duration::from_millis(100);

    fn config() -> AccumulatorConfig {
        AccumulatorConfig {
            batch_bytes_max: 1024,
            linger: LINGER,
            request_bytes_max: 1024 * 1024,
            compression: Compression::None,
            max_in_flight_per_broker: 5,
            retries: 2,
            retry_backoff: BACKOFF,
            retry_backoff_max: BACKOFF * 4,
            delivery_timeout: Duration::from_secs(60),
        }
    }

    fn record(value_bytes: usize) -> Record {
        Record {
            value: Some(Bytes::from(vec![b'x'; value_bytes])),
            ..Record::default()
        }
    }

    fn keyed(key: &'static str) -> Record {
        Record {
            key: Some(Bytes::from_static(key.as_bytes())),
            value: Some(Bytes::from_static(b"v")),
            ..Record::default()
        }
    }

    fn append(acc: &mut Accumulator, partition: Option<i32>, r: Record, now: Instant) -> Appended {
        let bytes = r.value.as_ref().map_or(0, Bytes::len) + 21;
        match acc.append("t", partition, r, bytes, now) {
            Ok(appended) => appended,
            Err(_) => panic!("append failed"),
        }
    }

    fn accumulator(partitions: i32) -> Accumulator {
        let mut acc = Accumulator::new(config());
        acc.set_partition_count("t", partitions);
        acc
    }

    fn all_on_broker_1(_: &str, _: i32) -> Option<i32> {
        Some(1)
    }

    #[test]
    fn full_batch_is_sent_without_waiting_for_linger() {
        let mut acc = accumulator(1);
        let now = Instant::now();
        let mut sealed = false;
        for _ in 0..20 {
            sealed |= append(&mut acc, Some(0), record(100), now).wake_sender;
        }
        assert!(sealed);
        let drain = acc.drain(now, all_on_broker_1);
        assert_eq!(drain.requests.len(), 1);
        let batch = &drain.requests[0].batches[0];
        assert!(batch.record_count > 1 && batch.record_count < 20);
        // The rest still lingers in the open batch.
        assert!(drain.next_wakeup.is_some());
    }

    #[test]
    fn partial_batch_waits_for_linger_then_drains() {
        let mut acc = accumulator(1);
        let now = Instant::now();
        append(&mut acc, Some(0), record(10), now);
        append(&mut acc, Some(0), record(10), now);
        let drain = acc.drain(now, all_on_broker_1);
        assert!(drain.requests.is_empty());
        assert_eq!(drain.next_wakeup, Some(now + LINGER));
        let drain = acc.drain(now + LINGER, all_on_broker_1);
        assert_eq!(drain.requests.len(), 1);
        assert_eq!(drain.requests[0].batches[0].record_count, 2);
    }

    #[test]
    fn requests_group_by_leader_with_one_batch_per_partition() {
        let mut acc = accumulator(3);
        let now = Instant::now();
        for partition in 0..3 {
            for _ in 0..25 {
                append(&mut acc, Some(partition), record(100), now);
            }
        }
        let leader = |_: &str, p: i32| Some(if p == 2 { 2 } else { 1 });
        let drain = acc.drain(now + LINGER, leader);
        assert_eq!(drain.requests.len(), 2);
        for plan in &drain.requests {
            let mut partitions: Vec<i32> = plan.batches.iter().map(|b| b.partition).collect();
            partitions.sort();
            let expected = if plan.broker == 1 {
                vec![0, 1]
            } else {
                vec![2]
            };
            assert_eq!(partitions, expected);
        }
    }

    #[test]
    fn in_flight_requests_per_broker_are_limited() {
        let mut acc = Accumulator::new(AccumulatorConfig {
            max_in_flight_per_broker: 1,
            ..config()
        });
        acc.set_partition_count("t", 1);
        let now = Instant::now();
        for _ in 0..40 {
            append(&mut acc, Some(0), record(100), now);
        }
        let first = acc.drain(now + LINGER, all_on_broker_1);
        assert_eq!(first.requests.len(), 1);
        assert!(acc.drain(now + LINGER, all_on_broker_1).requests.is_empty());
        let batch = first.requests.into_iter().next().unwrap().batches.remove(0);
        let first_id = batch.id;
        assert!(matches!(
            acc.finish(batch, Ok(0), now),
            Finished::Done { .. }
        ));
        acc.request_finished(1);
        let second = acc.drain(now + LINGER, all_on_broker_1);
        assert_eq!(second.requests.len(), 1);
        assert!(second.requests[0].batches[0].id > first_id);
    }

    #[test]
    fn retriable_failure_goes_back_to_the_front_after_the_backoff() {
        let mut acc = accumulator(1);
        let now = Instant::now();
        for _ in 0..40 {
            append(&mut acc, Some(0), record(100), now);
        }
        let mut drain = acc.drain(now + LINGER, all_on_broker_1);
        let batch = drain.requests.remove(0).batches.remove(0);
        let failed_id = batch.id;
        let not_leader = Error::broker("producing", 6, None);
        assert_eq!(acc.finish(batch, Err(not_leader), now), Finished::Retrying);
        acc.request_finished(1);
        assert!(acc.drain(now + LINGER, all_on_broker_1).requests.is_empty());
        let mut drain = acc.drain(now + BACKOFF, all_on_broker_1);
        let retried = drain.requests.remove(0).batches.remove(0);
        assert_eq!(retried.id, failed_id);
        assert_eq!(retried.attempts, 1);
        // While the retry is in flight the partition sends nothing else.
        acc.request_finished(1);
        assert!(acc
            .drain(now + BACKOFF, all_on_broker_1)
            .requests
            .is_empty());
    }

    #[test]
    fn failures_reach_the_records_when_not_retriable_or_out_of_attempts() {
        let mut acc = accumulator(1);
        let now = Instant::now();
        let appended = append(&mut acc, Some(0), record(10), now);
        let mut drain = acc.drain(now + LINGER, all_on_broker_1);
        let batch = drain.requests.remove(0).batches.remove(0);
        let too_large = Error::broker("producing", 10, None);
        assert!(matches!(
            acc.finish(batch, Err(too_large), now),
            Finished::Done { released_bytes: 31 }
        ));
        assert!(appended.completion.is_complete());
        assert!(acc.is_idle());

        let appended = append(&mut acc, Some(0), record(10), now);
        acc.request_finished(1);
        let mut at = now + LINGER;
        for attempt in 0..=2 {
            let mut drain = acc.drain(at, all_on_broker_1);
            let batch = drain.requests.remove(0).batches.remove(0);
            acc.request_finished(1);
            let outcome = acc.finish(batch, Err(Error::broker("producing", 6, None)), at);
            assert_eq!(
                outcome == Finished::Retrying,
                attempt < 2,
                "attempt {attempt}"
            );
            // Not yet due after the base backoff once the backoff has doubled.
            if attempt == 1 {
                let early = acc.drain(at + BACKOFF, all_on_broker_1);
                assert!(early.requests.is_empty());
                assert_eq!(early.next_wakeup, Some(at + BACKOFF * 2));
            }
            at += BACKOFF * 4;
        }
        assert!(appended.completion.is_complete());
    }

    #[test]
    fn keyed_records_land_where_the_java_client_puts_them() {
        let mut acc = accumulator(7);
        let now = Instant::now();
        let appended = append(&mut acc, None, keyed("foobar"), now);
        assert_eq!(
            appended.completion.partition(),
            to_positive(murmur2(b"foobar")) % 7
        );
        assert_eq!(appended.completion.partition(), to_positive(-790332482) % 7);
    }

    #[test]
    fn keyless_records_stick_to_one_partition_until_its_batch_is_sealed() {
        let mut acc = accumulator(8);
        let now = Instant::now();
        let first = append(&mut acc, None, record(10), now)
            .completion
            .partition();
        for _ in 0..5 {
            assert_eq!(
                append(&mut acc, None, record(10), now)
                    .completion
                    .partition(),
                first
            );
        }
        acc.drain(now + LINGER, all_on_broker_1);
        let next = append(&mut acc, None, record(10), now + LINGER)
            .completion
            .partition();
        assert_ne!(next, first);
    }

    #[test]
    fn unknown_topic_returns_the_record_and_bad_partition_is_refused() {
        let mut acc = accumulator(2);
        let now = Instant::now();
        match acc.append("other", None, record(3), 24, now) {
            Err(AppendError::UnknownTopic(r)) => assert_eq!(r.value.unwrap().len(), 3),
            _ => panic!("expected UnknownTopic"),
        }
        assert!(matches!(
            acc.append("t", Some(2), record(3), 24, now),
            Err(AppendError::UnknownPartition {
                partition: 2,
                partition_count: 2
            })
        ));
    }

    #[test]
    fn batches_without_a_leader_wait_then_expire() {
        let mut acc = accumulator(1);
        let now = Instant::now();
        append(&mut acc, Some(0), record(10), now);
        let drain = acc.drain(now + LINGER, |_, _| None);
        assert!(drain.requests.is_empty());
        assert!(drain.leaders_missing);
        let drain = acc.drain(now + Duration::from_secs(61), |_, _| None);
        assert_eq!(drain.expired.len(), 1);
        let released = acc.fail_unsent(drain.expired.into_iter().next().unwrap(), Error::Closed);
        assert_eq!(released, 31);
        assert!(acc.is_idle());
    }

    #[test]
    fn flush_seals_open_batches_and_returns_every_incomplete_batch() {
        let mut acc = accumulator(2);
        let now = Instant::now();
        append(&mut acc, Some(0), record(10), now);
        append(&mut acc, Some(1), record(10), now);
        let pending = acc.seal_all();
        assert_eq!(pending.len(), 2);
        // Sealed batches go out without waiting for linger.
        let drain = acc.drain(now, all_on_broker_1);
        assert_eq!(drain.requests[0].batches.len(), 2);
    }

    #[test]
    fn request_size_limit_splits_requests_and_rotation_avoids_starvation() {
        let mut acc = Accumulator::new(AccumulatorConfig {
            request_bytes_max: 1,
            ..config()
        });
        acc.set_partition_count("t", 2);
        let now = Instant::now();
        append(&mut acc, Some(0), record(10), now);
        append(&mut acc, Some(1), record(10), now);
        let first = acc.drain(now + LINGER, all_on_broker_1);
        assert_eq!(first.requests[0].batches.len(), 1);
        let second = acc.drain(now + LINGER, all_on_broker_1);
        assert_eq!(second.requests[0].batches.len(), 1);
        assert_ne!(
            first.requests[0].batches[0].partition,
            second.requests[0].batches[0].partition
        );
    }

    #[test]
    fn an_unavailable_partition_fails_its_whole_queue_after_one_retry_budget() {
        let mut acc = Accumulator::new(AccumulatorConfig {
            max_in_flight_per_broker: 1,
            ..config()
        });
        acc.set_partition_count("t", 1);
        let now = Instant::now();
        let completions: Vec<_> = (0..60)
            .map(|_| append(&mut acc, Some(0), record(100), now).completion)
            .collect();
        acc.seal_all();
        let refused = || Error::Io {
            broker: "b".into(),
            reason: "refused".into(),
        };
        let mut at = now;
        let mut sends = 0;
        while !acc.is_idle() {
            sends += 1;
            assert!(sends < 10, "the queue should fail after one retry budget");
            let mut drain = acc.drain(at, all_on_broker_1);
            if let Some(plan) = drain.requests.pop() {
                for batch in plan.batches {
                    acc.finish(batch, Err(refused()), at);
                }
                acc.request_finished(1);
            }
            at += Duration::from_secs(1);
        }
        assert!(completions.iter().all(|c| c.is_complete()));
    }

    #[test]
    fn a_success_clears_the_failure_streak() {
        let mut acc = accumulator(1);
        let now = Instant::now();
        for _ in 0..40 {
            append(&mut acc, Some(0), record(100), now);
        }
        acc.seal_all();
        let mut drain = acc.drain(now, all_on_broker_1);
        let batch = drain.requests.remove(0).batches.remove(0);
        acc.finish(batch, Err(Error::broker("producing", 6, None)), now);
        acc.request_finished(1);
        let mut drain = acc.drain(now + BACKOFF, all_on_broker_1);
        let retried = drain.requests.remove(0).batches.remove(0);
        assert!(matches!(
            acc.finish(retried, Ok(0), now),
            Finished::Done { .. }
        ));
        acc.request_finished(1);
        // The next batch starts with a full budget: two retries before it fails.
        let mut at = now + BACKOFF;
        for attempt in 0..3 {
            let mut drain = acc.drain(at, all_on_broker_1);
            let batch = drain.requests.remove(0).batches.remove(0);
            acc.request_finished(1);
            let outcome = acc.finish(batch, Err(Error::broker("producing", 6, None)), at);
            assert_eq!(
                outcome == Finished::Retrying,
                attempt < 2,
                "attempt {attempt}"
            );
            at += BACKOFF * 4;
        }
    }
}
