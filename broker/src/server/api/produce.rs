//! Produce: validate each partition's batches, check idempotent producers' sequence numbers,
//! append, answer per the acks mode.
//!
//! - acks=0: no response; if any partition failed, the connection is closed (Kafka's way
//!   of telling a fire-and-forget producer something went wrong).
//! - acks=1: answer after the leader's append.
//! - acks=-1 (all): refused before the append with NOT_ENOUGH_REPLICAS while the ISR is
//!   below `min.insync.replicas`; after the append the request is parked until the high
//!   watermark covers its last offset (the whole ISR has it), answered
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below min ISR meanwhile,
//!   NOT_LEADER_OR_FOLLOWER if leadership moved, REQUEST_TIMED_OUT after the request's
//!   timeout. With fsync durability it also waits for the leader's group-commit fsync.
//!   The wait is the produce purgatory: counted in its gauge and in the request's remote
//!   time.
//! - Only the partition's leader appends; any other broker answers NOT_LEADER_OR_FOLLOWER
//!   (the client refreshes its metadata and retries).
//!
//! Nothing malformed reaches storage: every batch is validated (length, magic, CRC-32C,
//! record count, codec header) before the append, and a batch over `max.message.bytes`
//! gets MESSAGE_TOO_LARGE.
//!
//! # Idempotent producers
//! A batch with a producer id (>= 0) comes from an idempotent producer (InitProducerId).
//! - Its partition's records must be exactly that one batch, as Kafka requires; otherwise
//!   INVALID_RECORD.
//! - Under the partition's producer-state lock: [`PartitionProducers::check`], the append,
//!   then [`PartitionProducers::record`]. A retried batch (one of the producer's last five
//!   on the partition) is not appended again: it is answered with error NONE and the base
//!   offset it got the first time, as Kafka does. Out-of-order sequences get
//!   OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch INVALID_PRODUCER_EPOCH (see
//!   [`producer_state`](crate::server::producer_state)).
//! - Producer state lives in memory. The first idempotent batch for a partition after the
//!   broker starts rebuilds it from the batch headers of the log's tail (at most
//!   [`SCAN_OFFSETS_MAX`] offsets and [`SCAN_BYTES_MAX`] bytes), so a retry that spans a
//!   restart is still recognised. A producer whose last batch lies before that window is
//!   unknown and its next batch is accepted at any sequence; Kafka snapshots producer
//!   state to disk instead.
//!
//! Transactional batches (attribute bit 4) and control batches (bit 5) are refused with
//! INVALID_RECORD and a message saying why: Sluice has no transactions, and a control batch
//! is the coordinator's to write, never a client's.
//!
//! # Ordering
//! Every append of a request happens before the handler's first `.await`: phase 1 validates
//! and appends every partition synchronously, phase 2 only waits for durability. The
//! connection polls its in-flight requests in a `FuturesOrdered`, in the order they were
//! read, and `dispatch::handle` does not await before calling this handler, so the appends of
//! one connection happen in request order. An idempotent producer pipelines up to five
//! requests on one connection and relies on that order; an `.await` before an append would
//! let a later request overtake an earlier one and draw OUT_OF_ORDER_SEQUENCE_NUMBER.
//!
//! # Locks
//! A partition's producer-state lock is taken before the log's own locks (inside
//! `PartitionLog::append` and `read`) and is never held across an `.await`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_protocol::batch::{self, BatchIterError, Batches, RecordsSummary, ValidateError};
use sluice_protocol::error::{ErrorCode, ProtocolError};

use super::{count_error, count_topic, str_bytes, Purgatory, RemoteTime};
use crate::metrics as m;
use crate::replica::{AppendRefusal, Replica};
use crate::replication::{AcksAllStatus, AcksAllWait};
use crate::server::producer_state::{
    lock_slot, PartitionProducers, ProducerBatch, Verdict, PRODUCERS_PER_PARTITION_MAX,
};
use crate::server::{storage_error_code, Broker, TopicView};
use crate::storage::{Durability, PartitionLog};
use sluice_protocol::clock::now_ms;

/// What the connection should do with the result.
pub enum Outcome {
    Respond(ProduceResponse),
    NoResponse,
    Close(String),
}

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
type Refusal = (ErrorCode, Option<String>);

/// Where a partition's records are (appended now, or by the original of a duplicate).
struct Appended {
    replica: Arc<Replica>,
    base_offset: i64,
    last_offset: i64,
    log_start_offset: i64,
    /// The leader epoch of the append (`None` for a duplicate answered from its original).
    leader_epoch: Option<i32>,
}

/// Answer a Produce request; time parked waiting for the ISR is added to `remote`.
pub async fn handle(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
    remote: &mut RemoteTime,
) -> Outcome {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    let now = now_ms();

    // Topics nobody created yet: create them first (the only await before the appends; a
    // producer pipelining to a topic it has not seen in Metadata gets no ordering promise).
    if valid_acks {
        for topic in &request.topic_data {
            if broker.topic(&topic.name.0).is_none() {
                let _ = broker.topic_or_auto_create(&topic.name.0).await;
            }
        }
    }

    // Phase 1, synchronous (see "Ordering" in the module documentation): every append.
    let mut results = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let info = if valid_acks {
            broker
                .topic(&topic.name.0)
                .ok_or(ErrorCode::UnknownTopicOrPartition)
        } else {
            Err(ErrorCode::InvalidRequiredAcks)
        };
        if info.is_ok() {
            count_topic(broker, m::TOPIC_PRODUCE_REQUESTS_TOTAL, &topic.name.0, 1);
        }
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            let result = match &info {
                Err(code) => Err((*code, None)),
                Ok(info) if partition.index < 0 || partition.index >= info.partitions => {
                    Err((ErrorCode::UnknownTopicOrPartition, None))
                }
                Ok(info) => append(broker, info, partition.index, partition.records, acks, now),
            };
            partitions.push((partition.index, result));
        }
        results.push((topic.name, partitions));
    }

    // Phase 2: replication and durability, for the whole request within its timeout.
    for (_, partitions) in &mut results {
        for (_, result) in partitions.iter_mut() {
            let Ok(appended) = result else { continue };
            if acks == -1 {
                // Parked in the produce purgatory, one partition after the other.
                let waited = remote
                    .park(Purgatory::Produce, async {
                        wait_replicated(broker, appended, deadline).await?;
                        wait_durable(appended, deadline).await
                    })
                    .await;
                if let Err(refusal) = waited {
                    *result = Err(refusal);
                }
            } else if appended.replica.log.config().durability == Durability::Fsync {
                // Nobody waits for this fsync, but consumers only see what it covers: start
                // (or join) the group commit in the background.
                let log = appended.replica.log.clone();
                let last_offset = appended.last_offset;
                tokio::spawn(async move {
                    if let Err(e) = log.wait_durable(last_offset).await {
                        tracing::warn!(error = %e, "background fsync failed");
                    }
                });
            }
        }
    }

    let mut response = ProduceResponse::default();
    let mut first_failure: Option<String> = None;
    for (name, partitions) in results {
        let mut topic_response = TopicProduceResponse::default();
        for (index, result) in partitions {
            let mut p = PartitionProduceResponse::default();
            p.index = index;
            match result {
                Ok(appended) => {
                    p.base_offset = appended.base_offset;
                    if version >= 5 {
                        p.log_start_offset = appended.log_start_offset;
                    }
                }
                Err((code, message)) => {
                    p.error_code = count_error("Produce", code);
                    p.base_offset = -1;
                    if first_failure.is_none() {
                        first_failure = Some(format!(
                            "produce to {}-{index} failed: {code:?}{}",
                            name.0,
                            message
                                .as_deref()
                                .map(|m| format!(" ({m})"))
                                .unwrap_or_default()
                        ));
                    }
                    if version >= 8 {
                        p.error_message = message.map(str_bytes);
                    }
                }
            }
            topic_response.partition_responses.push(p);
        }
        topic_response.name = name;
        response.responses.push(topic_response);
    }

    if acks == 0 {
        return match first_failure {
            Some(reason) => Outcome::Close(reason),
            None => Outcome::NoResponse,
        };
    }
    Outcome::Respond(response)
}

/// Validate one partition's records and append them, or recognise them as a duplicate.
/// Never awaits (see "Ordering" in the module documentation).
fn append(
    broker: &Broker,
    topic: &TopicView,
    partition: i32,
    records: Option<Bytes>,
    acks: i16,
    now_ms: i64,
) -> Result<Appended, Refusal> {
    let replica = broker
        .leader_replica(&topic.name, partition)
        .map_err(|code| (code, None))?;
    if acks == -1 {
        if let Err(refusal) = replica.lock().check_acks_all_admission() {
            return Err((refusal.error_code(), Some(refusal.to_string())));
        }
    }
    let log = replica.log.clone();
    let records = records.ok_or((
        ErrorCode::CorruptMessage,
        Some("records are null".to_string()),
    ))?;
    let summary = validate(&log, &records, &topic.name, partition)?;
    let producer = producer_of(&records, summary.batch_count).inspect_err(|(_, reason)| {
        let reason = reason.as_deref();
        tracing::debug!(topic = %topic.name, partition, reason, "refused produce batch");
    })?;
    let append = || {
        append_to_log(
            broker,
            &replica,
            &records,
            &summary,
            now_ms,
            &topic.name,
            partition,
        )
    };
    let Some(producer) = producer else {
        return append();
    };

    let leader_epoch = replica.lock().leader_epoch();
    let slot = broker
        .producers
        .partition_in_epoch(*topic.id.as_bytes(), partition, leader_epoch);
    let mut guard = lock_slot(&slot);
    let state = guard.get_or_insert_with(|| rebuild_producer_state(&log));
    match state.check(&producer) {
        Ok(Verdict::Append) => {}
        Ok(Verdict::Duplicate(original)) => {
            metrics::counter!(m::PRODUCER_DUPLICATES_TOTAL).increment(1);
            tracing::debug!(
                topic = %topic.name,
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
            tracing::debug!(topic = %topic.name, partition, %error, "refused idempotent batch");
            return Err((error.code(), Some(error.to_string())));
        }
    }
    let appended = append()?;
    state.record(&producer, appended.base_offset, appended.last_offset);
    Ok(appended)
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
/// transactional and control batches, an idempotent batch with negative producer fields,
/// and idempotent records that are not exactly one batch.
fn producer_of(records: &[u8], batch_count: usize) -> Result<Option<ProducerBatch>, Refusal> {
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
        if header.is_control() {
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

fn append_to_log(
    broker: &Broker,
    replica: &Arc<Replica>,
    records: &[u8],
    summary: &RecordsSummary,
    now_ms: i64,
    topic: &str,
    partition: i32,
) -> Result<Appended, Refusal> {
    let (appended, leader_epoch) = replica
        .append_as_leader(BytesMut::from(records), now_ms, &broker.replicas.sink())
        .map_err(|refusal| match refusal {
            AppendRefusal::NotLeader => (ErrorCode::NotLeaderOrFollower, None),
            AppendRefusal::Storage(e) => {
                tracing::warn!(topic, partition, error = %e, "append failed");
                (storage_error_code(&e), Some(e.to_string()))
            }
        })?;
    metrics::counter!(m::BYTES_IN_TOTAL).increment(records.len() as u64);
    metrics::counter!(m::MESSAGES_IN_TOTAL).increment(summary.record_count as u64);
    count_topic(broker, m::TOPIC_BYTES_IN_TOTAL, topic, records.len() as u64);
    count_topic(
        broker,
        m::TOPIC_MESSAGES_IN_TOTAL,
        topic,
        summary.record_count as u64,
    );
    Ok(Appended {
        replica: replica.clone(),
        base_offset: appended.base_offset,
        last_offset: appended.last_offset,
        log_start_offset: appended.log_start_offset,
        leader_epoch: Some(leader_epoch),
    })
}

/// acks=all: wait until the high watermark covers the records (every ISR member has them).
async fn wait_replicated(
    broker: &Broker,
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
        if !broker.replicas.is_current(replica) {
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
fn rebuild_producer_state(log: &PartitionLog) -> PartitionProducers {
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

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::produce_response::PartitionProduceResponse;
    use sluice_protocol::batch::Compression;
    use sluice_protocol::records::{encode_batch, Record};

    use super::*;
    use crate::server::api::topic_name;
    use crate::server::testing;

    const TOPIC: &str = "idempotence";

    /// A batch of `count` records from producer `producer_id` (-1: none) with extra
    /// attribute bits, CRC fixed up.
    fn batch(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        count: usize,
        attributes: i16,
    ) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                value: Some(Bytes::from(format!("value-{i}"))),
                timestamp: 1_700_000_000_000,
                ..Record::default()
            })
            .collect();
        let mut bytes = BytesMut::from(&encode_batch(&records, Compression::None).unwrap()[..]);
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | attributes;
        (&mut bytes[21..23]).put_i16(attributes);
        (&mut bytes[43..51]).put_i64(producer_id);
        (&mut bytes[51..53]).put_i16(epoch);
        (&mut bytes[53..57]).put_i32(base_sequence);
        let crc = crc32c::crc32c(&bytes[21..]);
        (&mut bytes[17..21]).put_u32(crc);
        bytes.freeze()
    }

    fn idempotent(epoch: i16, base_sequence: i32, count: usize) -> Bytes {
        batch(1, epoch, base_sequence, count, 0)
    }

    async fn produce(broker: &Broker, records: Bytes) -> PartitionProduceResponse {
        let mut partition = PartitionProduceData::default();
        partition.index = 0;
        partition.records = Some(records);
        let mut topic = TopicProduceData::default();
        topic.name = topic_name(TOPIC);
        topic.partition_data = vec![partition];
        let mut request = ProduceRequest::default();
        request.acks = -1;
        request.timeout_ms = 5_000;
        request.topic_data = vec![topic];
        match handle(broker, request, 9, &mut RemoteTime::default()).await {
            Outcome::Respond(mut response) => {
                response.responses.remove(0).partition_responses.remove(0)
            }
            Outcome::NoResponse | Outcome::Close(_) => panic!("acks=all must be answered"),
        }
    }

    fn log_end_offset(broker: &Broker) -> i64 {
        broker.logs.partition(TOPIC, 0).unwrap().log_end_offset()
    }

    #[track_caller]
    fn assert_appended(response: &PartitionProduceResponse, base_offset: i64) {
        assert_eq!(
            (response.error_code, response.base_offset),
            (0, base_offset),
            "{:?}",
            response.error_message
        );
    }

    #[tokio::test]
    async fn retried_idempotent_batch_gets_its_original_offset_and_is_not_appended_again() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(0, 0, 3)).await, 0);
        assert_appended(&produce(&broker, batch(-1, -1, -1, 2, 0)).await, 3);
        assert_appended(&produce(&broker, idempotent(0, 3, 2)).await, 5);
        assert_appended(&produce(&broker, idempotent(0, 0, 3)).await, 0);
        assert_appended(&produce(&broker, idempotent(0, 3, 2)).await, 5);
        assert_eq!(log_end_offset(&broker), 7);
    }

    #[tokio::test]
    async fn sequence_gap_is_refused_with_out_of_order_sequence_number() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(0, 0, 3)).await, 0);
        let response = produce(&broker, idempotent(0, 4, 1)).await;
        assert_eq!(
            response.error_code,
            ErrorCode::OutOfOrderSequenceNumber.code()
        );
        assert_eq!(response.base_offset, -1);
        assert!(response.error_message.is_some());
        assert_eq!(log_end_offset(&broker), 3);
    }

    #[tokio::test]
    async fn older_epoch_is_refused_with_invalid_producer_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(1, 0, 1)).await, 0);
        let response = produce(&broker, idempotent(0, 1, 1)).await;
        assert_eq!(response.error_code, ErrorCode::InvalidProducerEpoch.code());
        assert_eq!(log_end_offset(&broker), 1);
    }

    #[tokio::test]
    async fn transactional_and_control_batches_are_refused_with_invalid_record() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        for attributes in [0x10, 0x20] {
            let response = produce(&broker, batch(1, 0, 0, 1, attributes)).await;
            assert_eq!(response.error_code, ErrorCode::InvalidRecord.code());
        }
        assert_eq!(log_end_offset(&broker), 0);
    }

    #[tokio::test]
    async fn idempotent_records_must_be_exactly_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::broker(dir.path()).await;
        let mut two = BytesMut::new();
        two.extend_from_slice(&idempotent(0, 0, 1));
        two.extend_from_slice(&idempotent(0, 1, 1));
        let response = produce(&broker, two.freeze()).await;
        assert_eq!(response.error_code, ErrorCode::InvalidRecord.code());
        // Several batches without a producer id are still fine.
        let mut plain = BytesMut::new();
        plain.extend_from_slice(&batch(-1, -1, -1, 1, 0));
        plain.extend_from_slice(&batch(-1, -1, -1, 1, 0));
        assert_appended(&produce(&broker, plain.freeze()).await, 0);
    }

    #[tokio::test]
    async fn retry_spanning_a_restart_is_recognised_from_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let broker = testing::broker(dir.path()).await;
            assert_appended(&produce(&broker, idempotent(0, 0, 2)).await, 0);
            assert_appended(&produce(&broker, idempotent(0, 2, 2)).await, 2);
            broker.stop().await;
        }
        let broker = testing::broker(dir.path()).await;
        assert_appended(&produce(&broker, idempotent(0, 2, 2)).await, 2);
        assert_eq!(log_end_offset(&broker), 4);
        let response = produce(&broker, idempotent(0, 9, 1)).await;
        assert_eq!(
            response.error_code,
            ErrorCode::OutOfOrderSequenceNumber.code()
        );
        assert_appended(&produce(&broker, idempotent(0, 4, 1)).await, 4);
    }
}
