//! Fetch: read whole batches from each requested partition up to the high watermark, with
//! Kafka's byte limits and long poll.
//!
//! - `partition_max_bytes` bounds each partition and `max_bytes` (capped by the broker's
//!   `fetch_bytes_max`) the whole response, except that the first batch of the first
//!   non-empty partition is always returned whole so a consumer can make progress.
//! - Long poll: if fewer than `min_bytes` are ready the request waits, up to
//!   `max_wait_ms`, for the visible end of any requested partition to move (an append, or
//!   with fsync durability a completed fsync), then reads again.
//! - Incremental fetch sessions (KIP-227) are refused cleanly: every response carries
//!   session id 0, so clients keep sending full fetch requests; a request naming a session
//!   gets FETCH_SESSION_ID_NOT_FOUND.
//! - An empty partition gets `records: Some(empty)`, never null (librdkafka logs "invalid
//!   MessageSetSize -1" on null).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use sluice_protocol::batch::Batches;
use sluice_protocol::error::ErrorCode;
use tokio::time::Instant;

use super::count_error;
use crate::metrics as m;
use crate::server::{high_watermark, storage_error_code, Broker};
use crate::storage::StorageError;

pub async fn handle(broker: &Broker, request: FetchRequest, version: i16) -> FetchResponse {
    let mut response = FetchResponse::default();
    if version >= 7 && request.session_id != 0 {
        response.error_code = count_error("Fetch", ErrorCode::FetchSessionIdNotFound);
        return response;
    }
    let max_wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(broker.limits.fetch_bytes_max);

    loop {
        // Subscribe before reading so an append between the read and the wait wakes us.
        let watches = subscribe(broker, &request);
        let (built, bytes, any_error) = read_once(broker, &request, max_bytes, version);
        let now = Instant::now();
        if bytes >= min_bytes || any_error || now >= deadline || watches.is_empty() {
            metrics::counter!(m::BYTES_OUT_TOTAL).increment(bytes as u64);
            return built;
        }
        let changed = select_all(watches);
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            // Deadline: answer with whatever is there now.
            let (built, bytes, _) = read_once(broker, &request, max_bytes, version);
            metrics::counter!(m::BYTES_OUT_TOTAL).increment(bytes as u64);
            return built;
        }
    }
}

/// One armed "visible end changed" future per requested partition that exists.
fn subscribe(
    broker: &Broker,
    request: &FetchRequest,
) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
    let mut watches: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            if let Some(log) = broker.logs.partition(&topic.topic.0, partition.partition) {
                watches.push(Box::pin(log.durable_end_changed()));
            }
        }
    }
    watches
}

/// One pass over the requested partitions: the response, its record bytes, and whether
/// any partition got an error (which answers at once rather than long-polling).
fn read_once(
    broker: &Broker,
    request: &FetchRequest,
    max_bytes: usize,
    version: i16,
) -> (FetchResponse, usize, bool) {
    let mut response = FetchResponse::default();
    let mut total = 0usize;
    let mut any_error = false;
    for topic in &request.topics {
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = topic.topic.clone();
        topic_response.topic_id = topic.topic_id;
        for partition in &topic.partitions {
            let mut p = PartitionData::default();
            p.partition_index = partition.partition;
            p.records = Some(Bytes::new());
            match broker.logs.partition(&topic.topic.0, partition.partition) {
                None => {
                    p.error_code = count_error("Fetch", ErrorCode::UnknownTopicOrPartition);
                    p.high_watermark = -1;
                    any_error = true;
                }
                Some(log) => {
                    let high_watermark = high_watermark(&log);
                    p.high_watermark = high_watermark;
                    p.last_stable_offset = high_watermark;
                    if version >= 5 {
                        p.log_start_offset = log.log_start_offset();
                    }
                    let partition_max = usize::try_from(partition.partition_max_bytes).unwrap_or(0);
                    // The first bytes of a response may exceed the limits by one batch.
                    let budget = if total == 0 {
                        partition_max.min(max_bytes).max(1)
                    } else {
                        partition_max.min(max_bytes.saturating_sub(total))
                    };
                    if budget == 0 {
                        topic_response.partitions.push(p);
                        continue;
                    }
                    match read_partition(&log, partition.fetch_offset, budget, high_watermark) {
                        Ok(records) => {
                            total += records.len();
                            p.records = Some(records);
                        }
                        Err(e) => {
                            p.error_code = count_error("Fetch", storage_error_code(&e));
                            any_error = true;
                        }
                    }
                }
            }
            topic_response.partitions.push(p);
        }
        response.responses.push(topic_response);
    }
    (response, total, any_error)
}

/// Whole batches from `offset`, at most `budget` bytes (or one batch), none at or above the
/// high watermark.
fn read_partition(
    log: &crate::storage::PartitionLog,
    offset: i64,
    budget: usize,
    high_watermark: i64,
) -> Result<Bytes, StorageError> {
    if offset > high_watermark {
        // Beyond what consumers may see: Kafka answers OFFSET_OUT_OF_RANGE past the log
        // end, and nothing (yet) between the high watermark and the log end.
        if offset > log.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
            });
        }
        return Ok(Bytes::new());
    }
    if offset == high_watermark {
        return Ok(Bytes::new());
    }
    let data = log.read(offset, budget)?;
    // Trim batches at or above the high watermark (only possible with fsync durability).
    let mut visible = 0;
    for (header, batch) in Batches::new(&data).flatten() {
        if header.last_offset() >= high_watermark {
            break;
        }
        visible += batch.len();
    }
    Ok(data.slice(..visible))
}
