//! Appending to hosted partitions: [`ReplicaManager::append_records`] and
//! [`ReplicaManager::wait_for_acks`], Kafka's `ReplicaManager.appendRecords` split at its one
//! await. Produce requests use them, and so will the group coordinator (origin
//! [`AppendOrigin::Coordinator`]) for its internal topic.
//!
//! # One partition's append ([`ReplicaManager::append_records`], synchronous)
//! 1. This broker must lead the partition (NOT_LEADER_OR_FOLLOWER, or
//!    UNKNOWN_TOPIC_OR_PARTITION for a partition the metadata does not have).
//! 2. acks=all is refused with NOT_ENOUGH_REPLICAS while the ISR is below
//!    `min.insync.replicas` (before anything is written).
//! 3. Every batch is validated: whole, CRC-32C, magic, codec header, record count, none
//!    over `max.message.bytes` (MESSAGE_TOO_LARGE). Nothing malformed reaches storage.
//! 4. A client may not write transactional or control batches (INVALID_RECORD: Sluice has no
//!    transactions, and control batches are a coordinator's).
//! 5. Idempotent producers (a batch with a producer id): exactly one batch per partition;
//!    under the partition's producer-state lock, check the sequence
//!    ([`producer_state`](super::producer_state)), append, record. A retried batch (one of
//!    the producer's last five) is not appended again: it is answered with the offsets its
//!    original got. The state of a partition is rebuilt from its log's tail the first time
//!    it is needed in a leadership ([`SCAN_OFFSETS_MAX`], [`SCAN_BYTES_MAX`]).
//! 6. The append stamps offsets and the leader epoch ([`Replica::append_as_leader`]).
//!
//! It never awaits, so the appends of one connection happen in the order its requests were
//! read (an idempotent producer pipelining five requests relies on that).
//!
//! # Waiting ([`ReplicaManager::wait_for_acks`])
//! acks=all parks until the high watermark covers the records (every ISR member has them),
//! then (with fsync durability) until they are fsynced: NOT_ENOUGH_REPLICAS_AFTER_APPEND if
//! the ISR shrank below min ISR meanwhile, NOT_LEADER_OR_FOLLOWER if leadership moved,
//! REQUEST_TIMED_OUT at the deadline. acks=0 and acks=1 do not wait; with fsync durability
//! the group commit is started in the background ([`ReplicaManager::flush_in_background`]).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sluice_protocol::batch::{self, BatchIterError, Batches, RecordsSummary, ValidateError};
use sluice_protocol::error::{ErrorCode, ProtocolError};

use super::producer_state::{
    lock_slot, PartitionProducers, ProducerBatch, Verdict, PRODUCERS_PER_PARTITION_MAX,
};
use super::{AppendRefusal, Replica, ReplicaManager};
use crate::metrics as m;
use crate::replication::{AcksAllStatus, AcksAllWait};
use crate::storage::{Durability, PartitionLog, StorageError};

/// A producer-state rebuild starts at most this many offsets before the log end.
pub const SCAN_OFFSETS_MAX: i64 = 100_000;
/// A producer-state rebuild reads at most this many bytes per attempt; past it, it starts
/// again nearer the log end.
pub const SCAN_BYTES_MAX: usize = 16 << 20;
/// Bytes per read while rebuilding producer state.
const SCAN_READ_BYTES: usize = 1 << 20;
/// Attempts at a producer-state rebuild before starting with no state.
const SCAN_ATTEMPTS_MAX: usize = 3;

/// Why a partition's records were not appended: the error code and, for v8+ responses and
/// the log, a message.
pub type Refusal = (ErrorCode, Option<String>);

/// How many replicas must have the records before the append is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no answer at all (the connection is closed on an error).
    None,
    /// acks=1: the leader's append.
    Leader,
    /// acks=all (-1): every in-sync replica, with at least `min.insync.replicas` of them.
    All,
}

impl Acks {
    /// From the wire value (0, 1, -1); `None` for anything else (INVALID_REQUIRED_ACKS).
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// Who is appending: a client's Produce, or a coordinator writing its internal topic (which
/// may write control batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

/// Where a partition's records are (appended now, or by the original of a duplicate).
#[derive(Debug)]
pub struct Appended {
    pub replica: Arc<Replica>,
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// The leader epoch of the append (`None` for a duplicate answered from its original).
    pub leader_epoch: Option<i32>,
}

/// One partition's records to append.
#[derive(Debug)]
pub struct AppendRequest<'a> {
    pub topic: &'a str,
    pub partition: i32,
    /// As received; `None` (null records) is refused.
    pub records: Option<Bytes>,
    pub acks: Acks,
    pub origin: AppendOrigin,
    pub now_ms: i64,
}

/// The one place storage errors become wire error codes.
pub fn storage_error_code(error: &StorageError) -> ErrorCode {
    match error {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::Poisoned(_) | StorageError::Io(_) | StorageError::Corrupt(_) => {
            ErrorCode::KafkaStorageError
        }
        StorageError::UnknownTopic(_) | StorageError::UnknownPartition { .. } => {
            ErrorCode::UnknownTopicOrPartition
        }
        StorageError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
        StorageError::InvalidTopic(_) => ErrorCode::InvalidTopicException,
        StorageError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        StorageError::InvalidConfig(_) => ErrorCode::InvalidConfig,
    }
}

impl ReplicaManager {
    /// The replica of a partition this broker leads, or the error to answer with.
    pub fn leader_replica(&self, topic: &str, partition: i32) -> Result<Arc<Replica>, ErrorCode> {
        match self.replica(topic, partition) {
            Some(replica) if replica.lock().is_leader() => Ok(replica),
            Some(_) => Err(ErrorCode::NotLeaderOrFollower),
            None => {
                let known = self.metadata.read(|state| {
                    state.topic_by_name(topic).is_some_and(|t| {
                        usize::try_from(partition).is_ok_and(|p| p < t.partitions.len())
                    })
                });
                Err(if known {
                    ErrorCode::NotLeaderOrFollower
                } else {
                    ErrorCode::UnknownTopicOrPartition
                })
            }
        }
    }

    /// Validate one partition's records and append them as its leader, or recognise them
    /// as an idempotent producer's duplicate. Never awaits (see the module docs).
    pub fn append_records(&self, request: AppendRequest<'_>) -> Result<Appended, Refusal> {
        let AppendRequest {
            topic,
            partition,
            records,
            acks,
            origin,
            now_ms,
        } = request;
        let replica = self
            .leader_replica(topic, partition)
            .map_err(|code| (code, None))?;
        if acks == Acks::All {
            if let Err(refusal) = replica.lock().check_acks_all_admission() {
                return Err((refusal.error_code(), Some(refusal.to_string())));
            }
        }
        let log = replica.log.clone();
        let records = records.ok_or((
            ErrorCode::CorruptMessage,
            Some("records are null".to_string()),
        ))?;
        let summary = validate(&log, &records, topic, partition)?;
        let producer =
            producer_of(&records, summary.batch_count, origin).inspect_err(|(_, reason)| {
                let reason = reason.as_deref();
                tracing::debug!(topic, partition, reason, "refused produce batch");
            })?;
        let append = || self.append_to_log(&replica, &records, &summary, now_ms);
        let Some(producer) = producer else {
            return append();
        };

        let leader_epoch = replica.lock().leader_epoch();
        let slot = self.producers.partition_in_epoch(
            *replica.topic_id.as_bytes(),
            partition,
            leader_epoch,
        );
        let mut guard = lock_slot(&slot);
        let state = guard.get_or_insert_with(|| rebuild_producer_state(&log));
        match state.check(&producer) {
            Ok(Verdict::Append) => {}
            Ok(Verdict::Duplicate(original)) => {
                metrics::counter!(m::PRODUCER_DUPLICATES_TOTAL).increment(1);
                tracing::debug!(
                    topic,
                    partition,
                    producer_id = producer.producer_id,
                    first_sequence = producer.first_sequence,
                    base_offset = original.base_offset,
                    "duplicate idempotent batch; answering with its original offset"
                );
                return Ok(Appended {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                    log_start_offset: log.log_start_offset(),
                    replica: replica.clone(),
                    leader_epoch: None,
                });
            }
            Err(error) => {
                metrics::counter!(m::PRODUCER_SEQUENCE_ERRORS_TOTAL, "reason" => error.label())
                    .increment(1);
                tracing::debug!(topic, partition, %error, "refused idempotent batch");
                return Err((error.code(), Some(error.to_string())));
            }
        }
        let appended = append()?;
        state.record(&producer, appended.base_offset, appended.last_offset);
        Ok(appended)
    }

    fn append_to_log(
        &self,
        replica: &Arc<Replica>,
        records: &[u8],
        summary: &RecordsSummary,
        now_ms: i64,
    ) -> Result<Appended, Refusal> {
        let (appended, leader_epoch) = replica
            .append_as_leader(BytesMut::from(records), now_ms, &self.sink())
            .map_err(|refusal| match refusal {
                AppendRefusal::NotLeader => (ErrorCode::NotLeaderOrFollower, None),
                AppendRefusal::Storage(e) => {
                    tracing::warn!(partition = replica.log.name(), error = %e, "append failed");
                    (storage_error_code(&e), Some(e.to_string()))
                }
            })?;
        let (bytes, count) = (records.len() as u64, summary.record_count as u64);
        metrics::counter!(m::BYTES_IN_TOTAL).increment(bytes);
        metrics::counter!(m::MESSAGES_IN_TOTAL).increment(count);
        self.count_topic(m::TOPIC_BYTES_IN_TOTAL, &replica.topic, bytes);
        self.count_topic(m::TOPIC_MESSAGES_IN_TOTAL, &replica.topic, count);
        Ok(Appended {
            replica: replica.clone(),
            base_offset: appended.base_offset,
            last_offset: appended.last_offset,
            log_start_offset: appended.log_start_offset,
            leader_epoch: Some(leader_epoch),
        })
    }

    /// Add to a per-topic counter, when per-topic series are exported.
    pub fn count_topic(&self, name: &'static str, topic: &str, value: u64) {
        if self.per_partition_metrics() {
            metrics::counter!(name, "topic" => topic.to_string()).increment(value);
        }
    }

    /// acks=all: wait until the records are on every in-sync replica and (with fsync
    /// durability) fsynced, or `deadline` passes. See the module docs.
    pub async fn wait_for_acks(
        &self,
        appended: &Appended,
        deadline: tokio::time::Instant,
    ) -> Result<(), Refusal> {
        wait_replicated(self, appended, deadline).await?;
        wait_durable(appended, deadline).await
    }

    /// acks=0/1 with fsync durability: nobody waits for the fsync, but consumers only see
    /// what it covers, so start (or join) the group commit in the background.
    pub fn flush_in_background(&self, appended: &Appended) {
        if appended.replica.log.config().durability != Durability::Fsync {
            return;
        }
        let log = appended.replica.log.clone();
        let last_offset = appended.last_offset;
        tokio::spawn(async move {
            if let Err(e) = log.wait_durable(last_offset).await {
                tracing::warn!(error = %e, "background fsync failed");
            }
        });
    }
}

/// Every batch whole and valid, none over the partition's `max.message.bytes`.
fn validate(
    log: &PartitionLog,
    records: &[u8],
    topic: &str,
    partition: i32,
) -> Result<RecordsSummary, Refusal> {
    let limit = log.config().batch_bytes_max;
    batch::validate_records(records, limit).map_err(|e| {
        let (code, reason) = match &e {
            ValidateError::TooLarge { .. } => {
                metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "message_max_bytes")
                    .increment(1);
                (ErrorCode::MessageTooLarge, "batch_too_large")
            }
            ValidateError::Invalid(ProtocolError::UnsupportedMagic(_)) => {
                (ErrorCode::UnsupportedForMessageFormat, "unsupported_magic")
            }
            ValidateError::Invalid(ProtocolError::Compression(_)) => {
                (ErrorCode::CorruptMessage, "bad_compression")
            }
            ValidateError::Invalid(_) => (ErrorCode::CorruptMessage, "corrupt_batch"),
        };
        metrics::counter!(m::MALFORMED_REQUESTS_TOTAL, "reason" => reason).increment(1);
        tracing::debug!(topic, partition, error = %e, "refused produce batch");
        (code, Some(e.to_string()))
    })
}

/// The idempotent producer that sent `records` (already validated), if any. Refuses
/// transactional batches, a client's control batches, an idempotent batch with negative
/// producer fields, and idempotent records that are not exactly one batch.
fn producer_of(
    records: &[u8],
    batch_count: usize,
    origin: AppendOrigin,
) -> Result<Option<ProducerBatch>, Refusal> {
    let invalid = |message: String| (ErrorCode::InvalidRecord, Some(message));
    let mut producer = None;
    for item in Batches::new(records) {
        let (header, _) =
            item.map_err(|e: BatchIterError| (ErrorCode::CorruptMessage, Some(format!("{e:?}"))))?;
        if header.is_transactional() {
            return Err(invalid(format!(
                "transactional batch from producer {}: Sluice does not support transactions",
                header.producer_id
            )));
        }
        if header.is_control() && origin == AppendOrigin::Client {
            return Err(invalid(
                "control batches are written by a transaction coordinator, never produced"
                    .to_string(),
            ));
        }
        if let Some(batch) = ProducerBatch::from_header(&header).map_err(invalid)? {
            producer.get_or_insert(batch);
        }
    }
    if producer.is_some() && batch_count != 1 {
        return Err(invalid(format!(
            "an idempotent producer must send exactly one record batch per partition, \
             not {batch_count}"
        )));
    }
    Ok(producer)
}

/// acks=all: wait until the high watermark covers the records (every ISR member has them).
async fn wait_replicated(
    manager: &ReplicaManager,
    appended: &Appended,
    deadline: tokio::time::Instant,
) -> Result<(), Refusal> {
    let replica = &appended.replica;
    let mut changes = replica.subscribe();
    let leader_epoch = match appended.leader_epoch {
        Some(epoch) => epoch,
        // A duplicate: its original was appended in some epoch; wait for the high watermark.
        None => replica.lock().leader_epoch(),
    };
    let wait = AcksAllWait {
        leader_epoch,
        required_offset: appended.last_offset + 1,
    };
    loop {
        if !manager.is_current(replica) {
            return Err((
                ErrorCode::NotLeaderOrFollower,
                Some("this broker no longer hosts the partition".into()),
            ));
        }
        match replica.lock().acks_all_status(wait) {
            AcksAllStatus::Done => return Ok(()),
            AcksAllStatus::Pending => {}
            AcksAllStatus::NotEnoughReplicasAfterAppend => {
                return Err((
                    ErrorCode::NotEnoughReplicasAfterAppend,
                    Some("the ISR shrank below min.insync.replicas after the append".into()),
                ))
            }
            AcksAllStatus::NotLeaderOrFollower => {
                return Err((
                    ErrorCode::NotLeaderOrFollower,
                    Some("leadership moved before the records were replicated".into()),
                ))
            }
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                // Last look before giving up.
                if replica.lock().acks_all_status(wait) == AcksAllStatus::Done {
                    return Ok(());
                }
                return Err((
                    ErrorCode::RequestTimedOut,
                    Some("the in-sync replicas did not acknowledge in time".into()),
                ));
            }
        }
    }
}

/// acks=all: wait until the records are durable (at once unless the log fsyncs).
async fn wait_durable(appended: &Appended, deadline: tokio::time::Instant) -> Result<(), Refusal> {
    match tokio::time::timeout_at(
        deadline,
        appended.replica.log.wait_durable(appended.last_offset),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((storage_error_code(&e), Some(e.to_string()))),
        Err(_) => Err((
            ErrorCode::RequestTimedOut,
            Some("fsync did not complete in time".into()),
        )),
    }
}

/// Rebuild a partition's producer state from the headers of its log's tail (see the module
/// documentation). Called under the partition's producer-state lock, so no idempotent batch
/// is appended meanwhile. Reads at most [`SCAN_BYTES_MAX`] bytes per attempt, on the calling
/// thread, once per partition per broker run. If the tail cannot be scanned the state starts
/// empty: every producer is then unknown, which is lenient rather than wrong.
pub(super) fn rebuild_producer_state(log: &PartitionLog) -> PartitionProducers {
    let end = log.log_end_offset();
    let log_start = log.log_start_offset();
    if end <= log_start {
        return PartitionProducers::default();
    }
    let mut start = log_start.max(end - SCAN_OFFSETS_MAX);
    for _ in 0..SCAN_ATTEMPTS_MAX {
        match scan_tail(log, start, end) {
            Ok(state) => {
                metrics::counter!(m::PRODUCER_STATE_REBUILDS_TOTAL, "outcome" => "rebuilt")
                    .increment(1);
                tracing::info!(
                    partition = log.name(),
                    from_offset = start,
                    to_offset = end,
                    producers = state.len(),
                    "rebuilt idempotent producer state from the log"
                );
                return state;
            }
            Err(ScanStop::TooBig {
                offsets_scanned,
                bytes_scanned,
            }) => {
                // Start again nearer the end, where half the budget should reach it.
                let bytes_per_offset = (bytes_scanned / offsets_scanned.max(1) as usize).max(1);
                let window = i64::try_from(SCAN_BYTES_MAX / 2 / bytes_per_offset).unwrap_or(1);
                start = (start + 1).max(end - window.max(1));
            }
            Err(ScanStop::Failed(reason)) => {
                tracing::warn!(
                    partition = log.name(),
                    %reason,
                    "cannot scan the log for producer state"
                );
                break;
            }
        }
    }
    metrics::counter!(m::PRODUCER_STATE_REBUILDS_TOTAL, "outcome" => "gave_up").increment(1);
    tracing::warn!(
        partition = log.name(),
        "starting with no idempotent producer state: retries from before the restart will not be recognised"
    );
    PartitionProducers::default()
}

enum ScanStop {
    TooBig {
        offsets_scanned: i64,
        bytes_scanned: usize,
    },
    Failed(String),
}

/// Feed the headers of the batches covering `start..end` to a fresh producer state.
fn scan_tail(log: &PartitionLog, start: i64, end: i64) -> Result<PartitionProducers, ScanStop> {
    let mut state = PartitionProducers::new(PRODUCERS_PER_PARTITION_MAX);
    let mut offset = start;
    let mut bytes_scanned = 0usize;
    while offset < end {
        if bytes_scanned >= SCAN_BYTES_MAX {
            return Err(ScanStop::TooBig {
                offsets_scanned: offset - start,
                bytes_scanned,
            });
        }
        let chunk = log
            .read(offset, SCAN_READ_BYTES)
            .map_err(|e| ScanStop::Failed(e.to_string()))?;
        bytes_scanned += chunk.len();
        let before = offset;
        for item in Batches::new(&chunk) {
            match item {
                Ok((header, _)) if header.base_offset >= end => return Ok(state),
                Ok((header, _)) => {
                    state.observe(&header);
                    offset = header.next_offset();
                }
                // The log returns whole batches; a partial one is read again next round.
                Err(BatchIterError::Partial { .. }) => break,
                Err(BatchIterError::Corrupt { position, error }) => {
                    return Err(ScanStop::Failed(format!(
                        "batch at byte {position} of the read at offset {before}: {error}"
                    )))
                }
            }
        }
        if offset <= before {
            return Err(ScanStop::Failed(format!(
                "reading at offset {before} returned no whole batch"
            )));
        }
    }
    Ok(state)
}
