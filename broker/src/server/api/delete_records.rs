//! DeleteRecords (v0-2, Kafka 4.1's range): move each partition's log start offset up to
//! the requested offset on its leader (`replica::delete_records` has the rules and errors),
//! then answer with the partition's low watermark once every in-sync replica has followed,
//! or REQUEST_TIMED_OUT (low watermark -1) after the request's timeout, as Kafka's
//! DelayedDeleteRecords does. Partitions are independent: one refusal does not stop others.

use std::time::Duration;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::count_error;
use crate::server::Broker;

/// Kafka's low watermark of a partition without an answer.
const INVALID_LOW_WATERMARK: i64 = -1;

pub async fn handle(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = DeleteRecordsTopicResult::default();
        result.name = topic.name;
        // Every partition's log start moves first; then the waits share the deadline.
        let started: Vec<_> = topic
            .partitions
            .iter()
            .map(|p| {
                let outcome = broker
                    .replicas
                    .delete_records(&name, p.partition_index, p.offset);
                (p.partition_index, outcome)
            })
            .collect();
        for (partition, outcome) in started {
            let outcome = match outcome {
                Ok(target) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    broker
                        .replicas
                        .wait_low_watermark(&name, partition, target, left)
                        .await
                }
                Err(refusal) => Err(refusal),
            };
            let mut answer = DeleteRecordsPartitionResult::default();
            answer.partition_index = partition;
            match outcome {
                Ok(low_watermark) => {
                    answer.low_watermark = low_watermark;
                    tracing::info!(topic = %name, partition, low_watermark, "records deleted");
                }
                Err((code, message)) => {
                    answer.low_watermark = INVALID_LOW_WATERMARK;
                    answer.error_code = count_error("DeleteRecords", code);
                    tracing::debug!(topic = %name, partition, %message, "delete records refused");
                }
            }
            result.partitions.push(answer);
        }
        response.topics.push(result);
    }
    response
}
