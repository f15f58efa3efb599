//! The producer's and consumer's own metrics, reported through the `metrics` facade.
//!
//! The crate installs no exporter: an application that installs a recorder (for example
//! `metrics-exporter-prometheus`, as the broker does) gets these series beside its own;
//! without one, recording costs next to nothing. Call [`describe`] once after installing
//! the recorder to attach help texts. Names mirror the Java client's producer and consumer
//! metrics (noted per constant) with a `sluice_client_` prefix.

use crate::error::{kafka_error_name, Error};

/// Records put into Produce requests, retries included (Java: `record-send-total`).
pub const PRODUCER_RECORDS_SENT_TOTAL: &str = "sluice_client_producer_records_sent_total";
/// Batches put into Produce requests, retries included.
pub const PRODUCER_BATCHES_SENT_TOTAL: &str = "sluice_client_producer_batches_sent_total";
/// Encoded size of each batch sent, in bytes (Java: `batch-size-avg` / `-max`).
pub const PRODUCER_BATCH_SIZE_BYTES: &str = "sluice_client_producer_batch_size_bytes";
/// Batches sent again after a retriable error (Java: `record-retry-total`, per batch here).
pub const PRODUCER_RETRIES_TOTAL: &str = "sluice_client_producer_retries_total";
/// Records whose delivery failed for good, by `error` (Java: `record-error-total`).
pub const PRODUCER_ERRORS_TOTAL: &str = "sluice_client_producer_errors_total";
/// Time a batch waited in the producer between its first record and leaving in a request,
/// in seconds (Java: `record-queue-time-avg` / `-max`).
pub const PRODUCER_RECORD_QUEUE_TIME_SECONDS: &str =
    "sluice_client_producer_record_queue_time_seconds";

/// Records handed to the application by `poll` (Java: `records-consumed-total`).
pub const CONSUMER_RECORDS_CONSUMED_TOTAL: &str = "sluice_client_consumer_records_consumed_total";
/// Record batch bytes received in fetch responses (Java: `bytes-consumed-total`).
pub const CONSUMER_BYTES_CONSUMED_TOTAL: &str = "sluice_client_consumer_bytes_consumed_total";
/// Fetch requests answered (Java: `fetch-total`).
pub const CONSUMER_FETCH_REQUESTS_TOTAL: &str = "sluice_client_consumer_fetch_requests_total";
/// Time from sending a Fetch to its answer, long poll included, in seconds (Java:
/// `fetch-latency-avg` / `-max`).
pub const CONSUMER_FETCH_LATENCY_SECONDS: &str = "sluice_client_consumer_fetch_latency_seconds";
/// Failed fetches and partition errors in fetch responses, by `error`.
pub const CONSUMER_ERRORS_TOTAL: &str = "sluice_client_consumer_errors_total";

/// Attach units and help texts to the client's metrics in the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        PRODUCER_RECORDS_SENT_TOTAL,
        "Records put into Produce requests, retries included"
    );
    describe_counter!(
        PRODUCER_BATCHES_SENT_TOTAL,
        "Batches put into Produce requests, retries included"
    );
    describe_histogram!(
        PRODUCER_BATCH_SIZE_BYTES,
        Unit::Bytes,
        "Encoded size of each batch sent"
    );
    describe_counter!(
        PRODUCER_RETRIES_TOTAL,
        "Batches sent again after a retriable error"
    );
    describe_counter!(
        PRODUCER_ERRORS_TOTAL,
        "Records whose delivery failed, by error"
    );
    describe_histogram!(
        PRODUCER_RECORD_QUEUE_TIME_SECONDS,
        Unit::Seconds,
        "Time a batch waited in the producer before it was sent"
    );
    describe_counter!(
        CONSUMER_RECORDS_CONSUMED_TOTAL,
        "Records returned to the application by poll"
    );
    describe_counter!(
        CONSUMER_BYTES_CONSUMED_TOTAL,
        Unit::Bytes,
        "Record batch bytes received in fetch responses"
    );
    describe_counter!(CONSUMER_FETCH_REQUESTS_TOTAL, "Fetch requests answered");
    describe_histogram!(
        CONSUMER_FETCH_LATENCY_SECONDS,
        Unit::Seconds,
        "Fetch round-trip time, long poll included"
    );
    describe_counter!(
        CONSUMER_ERRORS_TOTAL,
        "Failed fetches and partition errors, by error"
    );
}

/// The `error` label for an error: Kafka's name for broker errors
/// (`NOT_LEADER_OR_FOLLOWER`), otherwise the client-side kind (`disconnected`, `timeout`...).
pub(crate) fn error_label(error: &Error) -> String {
    if let Some(code) = error.kafka_code() {
        return kafka_error_name(code);
    }
    match error {
        Error::Io { .. } => "io",
        Error::Disconnected { .. } => "disconnected",
        Error::Timeout { .. } => "timeout",
        Error::Protocol { .. } => "protocol",
        Error::UnsupportedVersion { .. } => "unsupported_version",
        Error::UnknownPartition { .. } => "unknown_partition",
        Error::RecordTooLarge { .. } => "record_too_large",
        Error::DeliveryTimeout { .. } => "delivery_timeout",
        Error::NoBrokerAvailable(_) => "no_broker_available",
        Error::NoQuorumLeader(_) => "no_quorum_leader",
        Error::InvalidConfig(_) => "invalid_config",
        Error::Unsupported(_) => "unsupported",
        Error::Closed => "closed",
        Error::Broker { .. } | Error::UnknownTopic(_) | Error::OffsetOutOfRange { .. } => "broker",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_are_labelled_with_kafka_names_and_others_by_kind() {
        assert_eq!(
            error_label(&Error::broker("producing", 6, None)),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(
            error_label(&Error::UnknownTopic("t".into())),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_label(&Error::Disconnected { broker: "b".into() }),
            "disconnected"
        );
        assert_eq!(
            error_label(&Error::DeliveryTimeout {
                topic: "t".into(),
                partition: 0,
                timeout_ms: 1
            }),
            "delivery_timeout"
        );
    }
}
