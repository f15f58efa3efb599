//! The traffic of the cluster tests, on Sluice's own client: a [`BackgroundProducer`] that
//! numbers its records (`<prefix>-<i>`) and keeps the outcome of each (acknowledged at an
//! offset, failed, or still pending), a consumer read of one partition
//! ([`consume_partition`], or [`read_back`] of what a [`Cluster`] committed), and the check
//! that what was acknowledged is where its acknowledgement said ([`verify_acked`], with
//! [`acked_end_offset`] for how far the read must go).
//!
//! The producer runs on a tokio runtime the test owns while the test thread drives the
//! cluster with blocking calls; the test thread only reads counters and snapshots, so it
//! never blocks the runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_client::{
    Consumer, ConsumerConfig, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, SeekTo,
};
use tokio::sync::Notify;

use crate::Cluster;

/// Longest a producer waits at its gate for the test to open it.
const GATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Ticks per second of a paced producer.
const PACING_TICKS_PER_SECOND: u64 = 100;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent, no answer yet.
    Pending,
    /// Acknowledged at this offset.
    Acked(i64),
    /// Delivery failed (the error reached the application).
    Failed(String),
}

/// The value of record `i` of a producer with `prefix`.
pub fn value_of(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// The values of records `0..count` of a producer with `prefix` (see [`value_of`]), for a
/// test that writes its own batches.
pub fn numbered_values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| value_of(prefix, i)).collect()
}

/// The record number in a value written by a producer with `prefix`, if it is one.
pub fn index_of(prefix: &str, value: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(value).ok()?;
    text.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
}

/// What a [`BackgroundProducer`] sends.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    pub topic: String,
    pub partition: i32,
    /// Values are `<prefix>-<i>`.
    pub prefix: String,
    /// Records to send at most (the producer also ends on [`BackgroundProducer::stop`]).
    pub count: usize,
    /// Before sending record `gate_at`, wait until [`BackgroundProducer::open_gate`].
    pub gate_at: Option<usize>,
    /// Send at most this many records per second (`None`: as fast as the buffer allows).
    pub records_per_second: Option<u64>,
    pub config: ProducerConfig,
}

impl ProduceSpec {
    /// `count` records to `topic`-`partition` as fast as the producer's buffer allows, no
    /// gate; set [`records_per_second`](Self::records_per_second) or
    /// [`gate_at`](Self::gate_at) with struct update syntax.
    pub fn new(
        topic: &str,
        partition: i32,
        prefix: &str,
        count: usize,
        config: ProducerConfig,
    ) -> ProduceSpec {
        ProduceSpec {
            topic: topic.to_string(),
            partition,
            prefix: prefix.to_string(),
            count,
            gate_at: None,
            records_per_second: None,
            config,
        }
    }
}

struct Shared {
    outcomes: Mutex<Vec<Outcome>>,
    acked: AtomicUsize,
    failed: AtomicUsize,
    gate_open: AtomicBool,
    gate: Notify,
    stop: AtomicBool,
}

impl Shared {
    fn set(&self, i: usize, outcome: Outcome) {
        match outcome {
            Outcome::Acked(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed(_) => self.failed.fetch_add(1, Ordering::Relaxed),
            Outcome::Pending => 0,
        };
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        if outcomes.len() <= i {
            outcomes.resize(i + 1, Outcome::Pending);
        }
        outcomes[i] = outcome;
    }
}

/// A producer task sending numbered records and recording each outcome.
pub struct BackgroundProducer {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    spec: ProduceSpec,
}

impl BackgroundProducer {
    /// Start sending on `runtime`.
    pub fn start(runtime: &tokio::runtime::Runtime, spec: ProduceSpec) -> BackgroundProducer {
        let shared = Arc::new(Shared {
            outcomes: Mutex::new(Vec::with_capacity(spec.count.min(1 << 20))),
            acked: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            gate_open: AtomicBool::new(false),
            gate: Notify::new(),
            stop: AtomicBool::new(false),
        });
        let task = runtime.spawn(run(shared.clone(), spec.clone()));
        BackgroundProducer {
            shared,
            handle: runtime.handle().clone(),
            task: Some(task),
            spec,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.spec.prefix
    }

    /// Records sent so far (acknowledged, failed or pending).
    pub fn sent(&self) -> usize {
        self.shared
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn acked(&self) -> usize {
        self.shared.acked.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> usize {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Every record's outcome so far, by record number.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.shared
            .outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The first few delivery errors, for failure messages.
    pub fn first_errors(&self, max: usize) -> Vec<(usize, String)> {
        self.outcomes()
            .into_iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Outcome::Failed(e) => Some((i, e)),
                _ => None,
            })
            .take(max)
            .collect()
    }

    /// Let a producer waiting at its gate go on.
    pub fn open_gate(&self) {
        self.shared.gate_open.store(true, Ordering::Release);
        self.shared.gate.notify_waiters();
        self.shared.gate.notify_one();
    }

    /// Send no more records (those sent still get their outcome).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.open_gate();
    }

    /// Poll until `condition(acked, failed)` holds, at most `timeout`; false on timeout.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(usize, usize) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition(self.acked(), self.failed()) {
                return true;
            }
            if Instant::now() >= deadline || self.task.as_ref().is_none_or(|t| t.is_finished()) {
                return condition(self.acked(), self.failed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait (at most `timeout`) until at least `target` records are acknowledged, or one
    /// fails. An error naming the counts and the first delivery errors unless `target` was
    /// reached with no record failed.
    pub fn wait_for_acked(&self, target: usize, timeout: Duration) -> Result<(), String> {
        let reached = self.wait_until(timeout, |acked, failed| acked >= target || failed > 0);
        if reached && self.failed() == 0 {
            return Ok(());
        }
        Err(format!(
            "{} acked (awaited {target} within {timeout:?}), {} failed, first errors {:?}",
            self.acked(),
            self.failed(),
            self.first_errors(5)
        ))
    }

    /// Wait (at most `timeout`) until every record sent has its outcome and the producer
    /// closed; return the outcomes. An error if the task failed or the time ran out.
    pub fn finish(&mut self, timeout: Duration) -> Result<Vec<Outcome>, String> {
        let task = self.task.take().ok_or("finish called twice")?;
        let result = self
            .handle
            .block_on(async { tokio::time::timeout(timeout, task).await });
        match result {
            Err(_) => Err(format!(
                "the producer did not finish within {timeout:?} ({} sent, {} acked, {} failed)",
                self.sent(),
                self.acked(),
                self.failed()
            )),
            Ok(Err(join_error)) => Err(format!("the producer task failed: {join_error}")),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Ok(Ok(()))) => Ok(self.outcomes()),
        }
    }
}

impl Drop for BackgroundProducer {
    fn drop(&mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(shared: Arc<Shared>, spec: ProduceSpec) -> Result<(), String> {
    let producer = Producer::new(spec.config.clone())
        .await
        .map_err(|e| format!("cannot create the producer: {e}"))?;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(usize, DeliveryFuture)>();
    let acker = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some((i, future)) = receiver.recv().await {
                let outcome = match future.await {
                    Ok(metadata) => Outcome::Acked(metadata.offset),
                    Err(error) => Outcome::Failed(error.to_string()),
                };
                shared.set(i, outcome);
            }
        })
    };
    let per_tick = spec
        .records_per_second
        .map(|rate| (rate / PACING_TICKS_PER_SECOND).max(1) as usize);
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / PACING_TICKS_PER_SECOND));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    for i in 0..spec.count {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        if spec.gate_at == Some(i) && !shared.gate_open.load(Ordering::Acquire) {
            let opened = tokio::time::timeout(GATE_TIMEOUT, async {
                while !shared.gate_open.load(Ordering::Acquire) {
                    let notified = shared.gate.notified();
                    if shared.gate_open.load(Ordering::Acquire) {
                        break;
                    }
                    notified.await;
                }
            })
            .await;
            if opened.is_err() {
                result = Err(format!(
                    "the producer waited {GATE_TIMEOUT:?} at record {i} for the test to open its gate"
                ));
                break;
            }
        }
        if let Some(per_tick) = per_tick {
            if i % per_tick == 0 {
                ticks.tick().await;
            }
        }
        shared.set(i, Outcome::Pending);
        let record = ProducerRecord::new(spec.topic.clone(), value_of(&spec.prefix, i))
            .with_partition(spec.partition);
        match producer.send(record).await {
            Ok(future) => {
                let _ = sender.send((i, future));
            }
            Err(error) => shared.set(i, Outcome::Failed(error.to_string())),
        }
    }
    drop(sender);
    producer.flush().await;
    let _ = acker.await;
    producer.close().await;
    result
}

/// The multi-threaded runtime a cluster test runs its clients on (the test thread stays
/// outside it, free to block on the cluster).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

/// A producer config for the cluster tests: acks and generous retries, so that a leader
/// change is ridden out rather than reported.
pub fn producer_config(bootstrap: &str, acks: sluice_client::Acks) -> ProducerConfig {
    let mut config = ProducerConfig::new(bootstrap);
    config.acks = acks;
    config.retries = 100;
    config.retry_backoff_ms = 50;
    config.retry_backoff_max_ms = 500;
    config.request_timeout_ms = 15_000;
    config.delivery_timeout_ms = 120_000;
    config.metadata_wait_ms = 20_000;
    config
}

/// Read one partition with the consumer from its earliest offset until the position
/// reaches `end_offset` (exclusive), at most `timeout`. Returns (offset, value) pairs.
pub async fn consume_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    end_offset: i64,
    timeout: Duration,
) -> Result<Vec<(i64, Option<Bytes>)>, String> {
    let mut consumer = Consumer::new(ConsumerConfig::new(bootstrap))
        .await
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    consumer
        .assign(vec![(topic.to_string(), partition)])
        .await
        .map_err(|e| format!("assign: {e}"))?;
    consumer
        .seek(topic, partition, SeekTo::Earliest)
        .await
        .map_err(|e| format!("seek to earliest: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while consumer.position(topic, partition).unwrap_or(0) < end_offset {
        if Instant::now() >= deadline {
            return Err(format!(
                "consumed only up to offset {:?} of {end_offset} within {timeout:?} (high watermark seen: {:?})",
                consumer.position(topic, partition),
                consumer.high_watermark(topic, partition)
            ));
        }
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => out.extend(records.into_iter().map(|r| (r.offset, r.value))),
            Err(e) if e.is_retriable() => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
    Ok(out)
}

/// How long [`read_back`] waits for the high watermark to cover what it must read.
pub const READ_BACK_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`read_back`] may take to consume up to that high watermark.
pub const READ_BACK_CONSUME_TIMEOUT: Duration = Duration::from_secs(120);

/// Read back what was committed up to `needed` (e.g. [`acked_end_offset`]): wait until
/// the partition's high watermark is at least `needed` (at most
/// [`READ_BACK_COMMIT_TIMEOUT`]), then [`consume_partition`] on `runtime`, with every node
/// of `cluster` as bootstrap, from the earliest offset up to that high watermark (at most
/// [`READ_BACK_CONSUME_TIMEOUT`]). Returns (high watermark, records read); panics with
/// every node's log if either step fails.
pub fn read_back(
    runtime: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    topic: &str,
    partition: i32,
    needed: i64,
) -> (i64, Vec<(i64, Option<Bytes>)>) {
    let high_watermark =
        cluster.wait_for_high_watermark(topic, partition, needed, READ_BACK_COMMIT_TIMEOUT);
    let records = runtime
        .block_on(consume_partition(
            &cluster.bootstrap(),
            topic,
            partition,
            high_watermark,
            READ_BACK_CONSUME_TIMEOUT,
        ))
        .unwrap_or_else(|e| panic!("reading {topic}-{partition} back: {e}\n{}", cluster.logs()));
    (high_watermark, records)
}

/// The offset just past the highest acknowledged record (`None` if none was): the high
/// watermark a read-back must reach to see every acknowledged record.
pub fn acked_end_offset(outcomes: &[Outcome]) -> Option<i64> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Acked(offset) => Some(offset + 1),
            _ => None,
        })
        .max()
}

/// What [`verify_acked`] found.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    pub acked: usize,
    pub failed: usize,
    pub pending: usize,
    /// Values present more than once (retries of a write that had landed).
    pub duplicated_values: usize,
    pub records_read: usize,
}

/// Check a partition read back against a producer's outcomes:
/// - the offsets read are contiguous;
/// - every acknowledged record is at the offset its acknowledgement reported;
/// - every value read is one the producer sent (`<prefix>-<i>` with `i` sent), or one of
///   `other_prefixes`;
/// - no value is present more than `max_copies` times.
pub fn verify_acked(
    prefix: &str,
    outcomes: &[Outcome],
    records: &[(i64, Option<Bytes>)],
    other_prefixes: &[&str],
    max_copies: usize,
) -> Result<Verified, String> {
    let mut problems = Vec::new();
    let mut by_offset: HashMap<i64, Option<&Bytes>> = HashMap::with_capacity(records.len());
    let mut copies: HashMap<usize, usize> = HashMap::new();
    for (n, (offset, value)) in records.iter().enumerate() {
        if n > 0 && *offset != records[n - 1].0 + 1 {
            problems.push(format!(
                "offset {offset} follows offset {}",
                records[n - 1].0
            ));
        }
        by_offset.insert(*offset, value.as_ref());
        let Some(value) = value else {
            problems.push(format!("offset {offset}: null value"));
            continue;
        };
        match index_of(prefix, value) {
            Some(i) if i < outcomes.len() => *copies.entry(i).or_default() += 1,
            _ if other_prefixes.iter().any(|p| index_of(p, value).is_some()) => {}
            _ => problems.push(format!(
                "offset {offset}: value {:?} was never sent",
                String::from_utf8_lossy(value)
            )),
        }
    }
    let mut verified = Verified {
        records_read: records.len(),
        ..Verified::default()
    };
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Outcome::Acked(offset) => {
                verified.acked += 1;
                let expected = value_of(prefix, i);
                match by_offset.get(offset) {
                    Some(Some(value)) if value.as_ref() == expected.as_bytes() => {}
                    Some(found) => problems.push(format!(
                        "{expected} was acknowledged at offset {offset}, which holds {:?}",
                        found.map(|v| String::from_utf8_lossy(v).into_owned())
                    )),
                    None => problems.push(format!(
                        "{expected} was acknowledged at offset {offset}, which was not read back (read {} records{})",
                        records.len(),
                        records
                            .last()
                            .map(|(o, _)| format!(", up to offset {o}"))
                            .unwrap_or_default()
                    )),
                }
            }
            Outcome::Failed(_) => verified.failed += 1,
            Outcome::Pending => verified.pending += 1,
        }
    }
    for (i, count) in &copies {
        if *count > 1 {
            verified.duplicated_values += 1;
        }
        if *count > max_copies {
            problems.push(format!(
                "{} is present {count} times (at most {max_copies} allowed)",
                value_of(prefix, *i)
            ));
        }
    }
    if problems.is_empty() {
        Ok(verified)
    } else {
        let shown = problems.len().min(20);
        Err(format!(
            "{} problems ({verified:?}); first {shown}:\n  {}",
            problems.len(),
            problems[..shown].join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(values: &[(i64, &str)]) -> Vec<(i64, Option<Bytes>)> {
        values
            .iter()
            .map(|(o, v)| (*o, Some(Bytes::from(v.to_string()))))
            .collect()
    }

    #[test]
    fn values_name_their_record() {
        assert_eq!(index_of("rec", value_of("rec", 42).as_bytes()), Some(42));
        assert_eq!(index_of("rec", b"record-1"), None);
        assert_eq!(index_of("rec", b"rec-x"), None);
    }

    #[test]
    fn verify_acked_finds_moved_lost_foreign_and_repeated_records() {
        let outcomes = vec![
            Outcome::Acked(0),
            Outcome::Acked(1),
            Outcome::Failed("x".into()),
        ];
        let good = read(&[(0, "rec-0"), (1, "rec-1"), (2, "rec-1"), (3, "rec-2")]);
        let verified = verify_acked("rec", &outcomes, &good, &[], 2).unwrap();
        assert_eq!((verified.acked, verified.failed), (2, 1));
        assert_eq!(verified.duplicated_values, 1);
        assert!(verify_acked("rec", &outcomes, &good, &[], 1).is_err());

        let moved = read(&[(0, "rec-1"), (1, "rec-0")]);
        assert!(verify_acked("rec", &outcomes, &moved, &[], 2).is_err());
        let lost = read(&[(0, "rec-0")]);
        assert!(verify_acked("rec", &outcomes, &lost, &[], 2).is_err());
        let foreign = read(&[(0, "rec-0"), (1, "rec-1"), (2, "other-0")]);
        assert!(verify_acked("rec", &outcomes, &foreign, &[], 2).is_err());
        assert!(verify_acked("rec", &outcomes, &foreign, &["other"], 2).is_ok());
        let gap = read(&[(0, "rec-0"), (1, "rec-1"), (3, "rec-2")]);
        assert!(verify_acked("rec", &outcomes, &gap, &[], 2).is_err());
    }
}
