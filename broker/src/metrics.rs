//! Metric names and the Prometheus exporter.
//!
//! Names follow Kafka's meanings with a `sluice_` prefix. Every limit that refuses work and
//! every malformed input is counted, so an operator can see why clients got errors.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Requests handled, by `api`.
pub const REQUESTS_TOTAL: &str = "sluice_requests_total";
/// Request handling time in seconds, by `api`.
pub const REQUEST_DURATION_SECONDS: &str = "sluice_request_duration_seconds";
/// Partition- or request-level error codes returned, by `api` and `error`.
pub const REQUEST_ERRORS_TOTAL: &str = "sluice_request_errors_total";
/// Frames or requests that could not be parsed, by `reason`.
pub const MALFORMED_REQUESTS_TOTAL: &str = "sluice_malformed_requests_total";
/// Requests for an API key or version Sluice does not support, by `api_key`.
pub const UNSUPPORTED_REQUESTS_TOTAL: &str = "sluice_unsupported_requests_total";
/// Work refused because a configured limit was reached, by `limit`.
pub const LIMIT_EXCEEDED_TOTAL: &str = "sluice_limit_exceeded_total";
/// Open client connections.
pub const CONNECTIONS_ACTIVE: &str = "sluice_connections_active";
/// Connections accepted since start.
pub const CONNECTIONS_TOTAL: &str = "sluice_connections_total";
/// Bytes of record batches appended.
pub const BYTES_IN_TOTAL: &str = "sluice_bytes_in_total";
/// Records appended.
pub const MESSAGES_IN_TOTAL: &str = "sluice_messages_in_total";
/// Bytes of record batches returned by Fetch.
pub const BYTES_OUT_TOTAL: &str = "sluice_bytes_out_total";
/// Topics created automatically on Metadata/Produce.
pub const TOPICS_AUTO_CREATED_TOTAL: &str = "sluice_topics_auto_created_total";
/// Segments deleted by retention.
pub const RETENTION_SEGMENTS_DELETED_TOTAL: &str = "sluice_retention_segments_deleted_total";
/// Producer ids handed out by InitProducerId.
pub const PRODUCER_IDS_ALLOCATED_TOTAL: &str = "sluice_producer_ids_allocated_total";
/// Idempotent batches recognised as retries of batches already appended: not written
/// again, answered with the original offsets.
pub const PRODUCER_DUPLICATES_TOTAL: &str = "sluice_producer_duplicate_batches_total";
/// Idempotent batches refused, by `reason`: `out_of_order` (OUT_OF_ORDER_SEQUENCE_NUMBER)
/// or `fenced_epoch` (INVALID_PRODUCER_EPOCH).
pub const PRODUCER_SEQUENCE_ERRORS_TOTAL: &str = "sluice_producer_sequence_errors_total";
/// Partitions whose producer state was rebuilt from the log's tail, by `outcome`
/// (`rebuilt`, or `gave_up` when the tail could not be scanned and the state starts empty).
pub const PRODUCER_STATE_REBUILDS_TOTAL: &str = "sluice_producer_state_rebuilds_total";
/// Partitions known to this broker.
pub const PARTITIONS: &str = "sluice_partitions";
/// Leaders elected from outside the ISR (Kafka's UncleanLeaderElectionsPerSec), counted by
/// every controller node as it applies the metadata log.
pub const UNCLEAN_LEADER_ELECTIONS_TOTAL: &str = "sluice_unclean_leader_elections_total";
/// Brokers fenced by the active controller because their session expired.
pub const BROKERS_FENCED_TOTAL: &str = "sluice_brokers_fenced_total";
/// ISR shrinks and expands this broker proposed as leader and the controller committed.
pub const ISR_SHRINKS_TOTAL: &str = "sluice_isr_shrinks_total";
pub const ISR_EXPANDS_TOTAL: &str = "sluice_isr_expands_total";
/// Follower truncations after a divergence (KIP-320).
pub const TRUNCATIONS_TOTAL: &str = "sluice_replica_truncations_total";
/// Leader elections this broker saw for partitions it hosts (it became leader).
pub const LEADERSHIPS_TAKEN_TOTAL: &str = "sluice_leaderships_taken_total";
/// Partitions this broker leads / follows.
pub const PARTITIONS_LED: &str = "sluice_partitions_led";
pub const PARTITIONS_FOLLOWED: &str = "sluice_partitions_followed";
/// Partitions this broker leads whose ISR is smaller than the replica set / min ISR.
pub const UNDER_REPLICATED_PARTITIONS: &str = "sluice_under_replicated_partitions";
pub const UNDER_MIN_ISR_PARTITIONS: &str = "sluice_under_min_isr_partitions";
/// Bytes a follower copied from leaders.
pub const REPLICATION_BYTES_IN_TOTAL: &str = "sluice_replication_bytes_in_total";
/// Per hosted partition (`topic`, `partition`): log end offset and high watermark; on the
/// leader, the committed ISR size.
pub const PARTITION_LOG_END_OFFSET: &str = "sluice_partition_log_end_offset";
pub const PARTITION_HIGH_WATERMARK: &str = "sluice_partition_high_watermark";
pub const PARTITION_ISR_SIZE: &str = "sluice_partition_isr_size";
/// On the leader, per follower (`topic`, `partition`, `replica`): how far its log end is
/// behind the leader's, in offsets, and how long since it was last caught up, in
/// milliseconds (0 when caught up, -1 when not heard from in this leadership).
pub const REPLICA_LAG_OFFSETS: &str = "sluice_replica_lag_offsets";
pub const REPLICA_LAG_MS: &str = "sluice_replica_lag_ms";
/// Record bytes and responses sent to fetchers, by `fetcher` = `consumer` or `follower`
/// (a consumer reading from this broker as a follower counts as `consumer`).
pub const FETCH_BYTES_OUT_TOTAL: &str = "sluice_fetch_bytes_out_total";
pub const FETCH_RESPONSES_TOTAL: &str = "sluice_fetch_responses_total";
/// Leaderships moved back to preferred replicas by the automatic rebalance.
pub const PREFERRED_LEADER_ELECTIONS_TOTAL: &str = "sluice_preferred_leader_elections_total";
/// Follower fetches of a reassignment's new replica answered empty by the throttle.
pub const REASSIGNMENT_THROTTLED_TOTAL: &str = "sluice_reassignment_throttled_fetches_total";
/// 1 while this node is the active controller.
pub const ACTIVE_CONTROLLER: &str = "sluice_active_controller";

/// Start the Prometheus exporter's HTTP listener on `address` (serves `/metrics`).
pub fn install(address: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(
            Matcher::Suffix("seconds".to_string()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ],
        )
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
    describe();
    Ok(())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS_TOTAL, "Requests handled, by API");
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Request handling time, by API"
    );
    describe_counter!(
        REQUEST_ERRORS_TOTAL,
        "Error codes returned, by API and error"
    );
    describe_counter!(
        MALFORMED_REQUESTS_TOTAL,
        "Frames or requests that could not be parsed"
    );
    describe_counter!(
        UNSUPPORTED_REQUESTS_TOTAL,
        "Requests for unsupported API keys or versions"
    );
    describe_counter!(
        LIMIT_EXCEEDED_TOTAL,
        "Work refused because a configured limit was reached"
    );
    describe_gauge!(CONNECTIONS_ACTIVE, "Open client connections");
    describe_counter!(CONNECTIONS_TOTAL, "Connections accepted");
    describe_counter!(BYTES_IN_TOTAL, Unit::Bytes, "Record batch bytes appended");
    describe_counter!(MESSAGES_IN_TOTAL, "Records appended");
    describe_counter!(
        BYTES_OUT_TOTAL,
        Unit::Bytes,
        "Record batch bytes served by Fetch"
    );
    describe_counter!(TOPICS_AUTO_CREATED_TOTAL, "Topics created automatically");
    describe_counter!(
        RETENTION_SEGMENTS_DELETED_TOTAL,
        "Segments deleted by retention"
    );
    describe_counter!(
        PRODUCER_IDS_ALLOCATED_TOTAL,
        "Producer ids handed out by InitProducerId"
    );
    describe_counter!(
        PRODUCER_DUPLICATES_TOTAL,
        "Idempotent batches answered as duplicates instead of appended"
    );
    describe_counter!(
        PRODUCER_SEQUENCE_ERRORS_TOTAL,
        "Idempotent batches refused (out of order sequence or fenced epoch)"
    );
    describe_counter!(
        UNCLEAN_LEADER_ELECTIONS_TOTAL,
        "Partition leaders elected from outside the ISR"
    );
    describe_counter!(
        PRODUCER_STATE_REBUILDS_TOTAL,
        "Partitions whose producer state was rebuilt from the log"
    );
    describe_gauge!(PARTITIONS, "Partitions hosted by this broker");
}
