//! Produce: validate each partition's batches, append them, answer per the acks mode.
//!
//! - acks=0: no response; if any partition failed, the connection is closed (Kafka's way
//!   of telling a fire-and-forget producer something went wrong).
//! - acks=1: answer after the leader's append.
//! - acks=-1 (all): on a single node the ISR is this broker; with fsync durability the
//!   answer waits for the group-commit fsync covering the last offset, bounded by the
//!   request's timeout.
//!
//! Nothing malformed reaches storage: every batch is validated (length, magic, CRC-32C,
//! record count, codec header) before the append, and a batch over `max.message.bytes`
//! gets MESSAGE_TOO_LARGE.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_protocol::batch::{self, ValidateError};
use sluice_protocol::error::{ErrorCode, ProtocolError};

use super::{count_error, str_bytes};
use crate::metrics as m;
use crate::server::{now_ms, storage_error_code, Broker};
use crate::storage::Durability;

/// What the connection should do with the result.
pub enum Outcome {
    Respond(ProduceResponse),
    NoResponse,
    Close(String),
}

/// The leader epoch stamped into batches on a single node.
const LEADER_EPOCH: i32 = 0;

pub async fn handle(broker: &Broker, request: ProduceRequest, version: i16) -> Outcome {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut response = ProduceResponse::default();
    let mut first_failure: Option<String> = None;

    for topic in request.topic_data {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        let info = if valid_acks {
            broker.topic_or_auto_create(&topic.name.0)
        } else {
            Err(ErrorCode::InvalidRequiredAcks)
        };
        for partition in topic.partition_data {
            let mut p = PartitionProduceResponse::default();
            p.index = partition.index;
            let result = match &info {
                Err(code) => Err((*code, None)),
                Ok(info) if partition.index < 0 || partition.index >= info.partitions => {
                    Err((ErrorCode::UnknownTopicOrPartition, None))
                }
                Ok(_) => {
                    append(broker, &topic.name.0, partition.index, partition.records, acks, timeout).await
                }
            };
            match result {
                Ok((base_offset, log_start_offset)) => {
                    p.base_offset = base_offset;
                    if version >= 5 {
                        p.log_start_offset = log_start_offset;
                    }
                }
                Err((code, message)) => {
                    p.error_code = count_error("Produce", code);
                    p.base_offset = -1;
                    if first_failure.is_none() {
                        first_failure = Some(format!(
                            "produce to {}-{} failed: {code:?}{}",
                            topic.name.0,
                            partition.index,
                            message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
                        ));
                    }
                    if version >= 8 {
                        p.error_message = message.map(str_bytes);
                    }
                }
            }
            topic_response.partition_responses.push(p);
        }
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

/// Validate and append one partition's records; returns (base offset, log start offset).
async fn append(
    broker: &Broker,
    topic: &str,
    partition: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
    timeout: Duration,
) -> Result<(i64, i64), (ErrorCode, Option<String>)> {
    let log = broker
        .logs
        .partition(topic, partition)
        .ok_or((ErrorCode::UnknownTopicOrPartition, None))?;
    let records = records.ok_or((ErrorCode::CorruptMessage, Some("records are null".to_string())))?;
    let limit = log.config().batch_bytes_max;
    let summary = batch::validate_records(&records, limit).map_err(|e| {
        let (code, reason) = match &e {
            ValidateError::TooLarge { .. } => {
                metrics::counter!(m::LIMIT_EXCEEDED_TOTAL, "limit" => "message_max_bytes").increment(1);
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
    })?;
    let size = records.len();
    let appended = log
        .append(BytesMut::from(&records[..]), LEADER_EPOCH, now_ms())
        .map_err(|e| {
            tracing::warn!(topic, partition, error = %e, "append failed");
            (storage_error_code(&e), Some(e.to_string()))
        })?;
    metrics::counter!(m::BYTES_IN_TOTAL).increment(size as u64);
    metrics::counter!(m::MESSAGES_IN_TOTAL).increment(summary.record_count as u64);
    if acks != -1 {
        if log.config().durability == Durability::Fsync {
            // Nobody waits for this fsync, but consumers only see what it covers: start
            // (or join) the group commit in the background.
            let log = log.clone();
            tokio::spawn(async move {
                if let Err(e) = log.wait_durable(appended.last_offset).await {
                    tracing::warn!(error = %e, "background fsync failed");
                }
            });
        }
    } else {
        match tokio::time::timeout(timeout, log.wait_durable(appended.last_offset)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err((storage_error_code(&e), Some(e.to_string()))),
            Err(_) => return Err((ErrorCode::RequestTimedOut, Some("fsync did not complete in time".into()))),
        }
    }
    Ok((appended.base_offset, appended.log_start_offset))
}
