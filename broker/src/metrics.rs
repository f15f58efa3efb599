//! Metric names and the Prometheus exporter.
//!
//! Names follow Kafka's meanings with a `sluice_` prefix. Every limit that refuses work and
//! every malformed input is counted, so an operator can see why clients got errors.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Requests answered, by `api` and `version`.
pub const REQUESTS_TOTAL: &str = "sluice_requests_total";
/// Where a request's time went, in seconds, by `api` and `version`, split as Kafka's
/// RequestMetrics split it: total = queue + local + remote + response send.
/// - total: the request's frame read -> its response written to the socket.
/// - queue: frame read -> its handler starts (it waits behind the connection's earlier
///   requests and the task's other work).
/// - local: the handler's own work, its purgatory waits excluded.
/// - remote: parked in a purgatory (the acks=all wait for the ISR, the fetch long poll).
/// - response send: response ready -> written (includes waiting for the connection's
///   earlier responses, which go out first).
pub const REQUEST_TOTAL_TIME_SECONDS: &str = "sluice_request_total_time_seconds";
pub const REQUEST_QUEUE_TIME_SECONDS: &str = "sluice_request_queue_time_seconds";
pub const REQUEST_LOCAL_TIME_SECONDS: &str = "sluice_request_local_time_seconds";
pub const REQUEST_REMOTE_TIME_SECONDS: &str = "sluice_request_remote_time_seconds";
pub const RESPONSE_SEND_TIME_SECONDS: &str = "sluice_response_send_time_seconds";
/// Bytes of request and response frames (length prefix included), by `api` and `version`.
pub const REQUEST_BYTES_TOTAL: &str = "sluice_request_bytes_total";
pub const RESPONSE_BYTES_TOTAL: &str = "sluice_response_bytes_total";
/// Requests parked now: acks=all produces waiting for the ISR, fetches long-polling.
pub const PRODUCE_PURGATORY_SIZE: &str = "sluice_produce_purgatory_size";
pub const FETCH_PURGATORY_SIZE: &str = "sluice_fetch_purgatory_size";
/// Incremental fetch sessions (KIP-227) held now, and the partitions they hold (Kafka's
/// NumIncrementalFetchSessions and NumIncrementalFetchPartitionsCached).
pub const FETCH_SESSIONS: &str = "sluice_fetch_sessions";
pub const FETCH_SESSION_PARTITIONS: &str = "sluice_fetch_session_partitions";
/// Fetch sessions evicted to make room for a new one.
pub const FETCH_SESSION_EVICTIONS_TOTAL: &str = "sluice_fetch_session_evictions_total";
/// Fetch requests by `session`: `sessionless`, `full` (may create a session),
/// `incremental`, or `error` (unknown session, wrong epoch).
pub const FETCH_SESSION_REQUESTS_TOTAL: &str = "sluice_fetch_session_requests_total";
/// Partition- or request-level error codes returned, by `api` and `error`.
pub const REQUEST_ERRORS_TOTAL: &str = "sluice_request_errors_total";
/// Frames or requests that could not be parsed, by `reason`.
pub const MALFORMED_REQUESTS_TOTAL: &str = "sluice_malformed_requests_total";
/// Requests for an API key or version Sluice does not support, by `api_key`.
pub const UNSUPPORTED_REQUESTS_TOTAL: &str = "sluice_unsupported_requests_total";
/// Work refused because a configured limit was reached, by `limit`.
pub const LIMIT_EXCEEDED_TOTAL: &str = "sluice_limit_exceeded_total";
/// Bytes of client requests and consumer fetch responses held until written
/// (`--queued-max-request-bytes`).
pub const QUEUED_REQUEST_BYTES: &str = "sluice_queued_request_bytes";
/// Connections open now, accepted and closed since start, by `listener` (see
/// [`OpenConnection`]).
pub const CONNECTIONS_ACTIVE: &str = "sluice_connections_active";
pub const CONNECTIONS_CREATED_TOTAL: &str = "sluice_connections_created_total";
pub const CONNECTIONS_CLOSED_TOTAL: &str = "sluice_connections_closed_total";
/// Bytes of record batches appended.
pub const BYTES_IN_TOTAL: &str = "sluice_bytes_in_total";
/// Records appended.
pub const MESSAGES_IN_TOTAL: &str = "sluice_messages_in_total";
/// Per topic (`topic`), only with `--metrics-per-partition`: record bytes and records
/// appended by producers, record bytes sent to consumers, and the Produce and Fetch
/// requests (consumers' and followers') that named the topic.
pub const TOPIC_BYTES_IN_TOTAL: &str = "sluice_topic_bytes_in_total";
pub const TOPIC_MESSAGES_IN_TOTAL: &str = "sluice_topic_messages_in_total";
pub const TOPIC_BYTES_OUT_TOTAL: &str = "sluice_topic_bytes_out_total";
pub const TOPIC_PRODUCE_REQUESTS_TOTAL: &str = "sluice_topic_produce_requests_total";
pub const TOPIC_FETCH_REQUESTS_TOTAL: &str = "sluice_topic_fetch_requests_total";
/// Bytes of record batches returned by Fetch.
pub const BYTES_OUT_TOTAL: &str = "sluice_bytes_out_total";
/// Topics created automatically on Metadata/Produce.
pub const TOPICS_AUTO_CREATED_TOTAL: &str = "sluice_topics_auto_created_total";
/// Groups this broker coordinates, by `state` (refreshed every 10 s).
pub const GROUPS: &str = "sluice_groups";
/// Members of a group, by `group`.
pub const GROUP_MEMBERS: &str = "sluice_group_members";
/// Rebalances a group completed (generations), by `group`.
pub const GROUP_REBALANCES_TOTAL: &str = "sluice_group_rebalances_total";
/// Consumer lag of a group on a topic, by `group` and `topic`: the sum over its committed
/// partitions of the partition's high watermark minus the committed offset.
pub const GROUP_LAG: &str = "sluice_group_lag";
/// The same per partition (`group`, `topic`, `partition`), only with
/// `--metrics-per-partition`.
pub const GROUP_PARTITION_LAG: &str = "sluice_group_partition_lag";
/// Committed partitions whose end offset the last lag pass could not learn.
pub const GROUP_LAG_UNKNOWN_PARTITIONS: &str = "sluice_group_lag_unknown_partitions";
/// Offsets committed (partitions), and offsets removed by expiration.
pub const OFFSET_COMMITS_TOTAL: &str = "sluice_offset_commits_total";
pub const OFFSETS_EXPIRED_TOTAL: &str = "sluice_offsets_expired_total";
/// `__consumer_offsets` partitions this broker coordinates, by `state` (loading, loaded).
pub const GROUP_COORDINATOR_PARTITIONS: &str = "sluice_group_coordinator_partitions";
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
/// Committed ISR shrinks and expands of partitions this broker leads, whether it proposed
/// them (lag check, catch-up) or the controller made them (a fenced broker, a reassignment).
pub const ISR_SHRINKS_TOTAL: &str = "sluice_isr_shrinks_total";
pub const ISR_EXPANDS_TOTAL: &str = "sluice_isr_expands_total";
/// Follower truncations after a divergence (KIP-320).
pub const TRUNCATIONS_TOTAL: &str = "sluice_replica_truncations_total";
/// Leader elections this broker saw for partitions it hosts (it became leader).
pub const LEADERSHIPS_TAKEN_TOTAL: &str = "sluice_leaderships_taken_total";
/// Partitions the replica manager looked at while applying metadata changes: it grows with
/// what changed (a topic created or altered), not with how many partitions exist.
pub const METADATA_PARTITIONS_RECONCILED_TOTAL: &str =
    "sluice_metadata_partitions_reconciled_total";
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

// Storage (measured in `storage`; the gauges refreshed by the replica manager).
/// Record batch bytes written to partition logs, as leader and as follower.
pub const LOG_BYTES_APPENDED_TOTAL: &str = "sluice_log_bytes_appended_total";
/// Flushes of a partition's segment data (group-commit fsyncs, and flushes at segment roll,
/// after recovery and at shutdown, which also fsync the indexes), and their duration in
/// seconds. Checkpoint, directory and truncation fsyncs are not counted.
pub const LOG_FLUSHES_TOTAL: &str = "sluice_log_flushes_total";
pub const LOG_FLUSH_TIME_SECONDS: &str = "sluice_log_flush_time_seconds";
/// Gauge: seconds the last start-up took to open (and recover) every partition log.
pub const LOG_RECOVERY_SECONDS: &str = "sluice_log_recovery_seconds";
/// Bytes recovery removed: torn or corrupt tails, and segments after a corrupt one.
pub const LOG_RECOVERY_TRUNCATED_BYTES_TOTAL: &str = "sluice_log_recovery_truncated_bytes_total";
/// Log-file bytes of the segments deleted by retention.
pub const RETENTION_BYTES_DELETED_TOTAL: &str = "sluice_retention_bytes_deleted_total";
/// Compaction passes completed over a partition log, the segment bytes they read and the
/// bytes of the cleaned copies they wrote (Kafka's log cleaner metrics), and passes that
/// failed (the offset map could not hold one batch's keys, an I/O error).
pub const LOG_CLEANER_PASSES_TOTAL: &str = "sluice_log_cleaner_passes_total";
pub const LOG_CLEANER_BYTES_READ_TOTAL: &str = "sluice_log_cleaner_bytes_read_total";
pub const LOG_CLEANER_BYTES_WRITTEN_TOTAL: &str = "sluice_log_cleaner_bytes_written_total";
pub const LOG_CLEANER_UNCLEANABLE_TOTAL: &str = "sluice_log_cleaner_uncleanable_total";
/// Time of one partition's compaction pass (Kafka's max-clean-time-secs, as a histogram).
pub const LOG_CLEANER_CLEAN_SECONDS: &str = "sluice_log_cleaner_clean_seconds";
/// Compacted partitions whose last pass failed (Kafka's uncleanable-partitions-count), and
/// the largest dirty ratio among compacted partitions (Kafka's max-dirty-percent / 100).
pub const LOG_CLEANER_UNCLEANABLE_PARTITIONS: &str = "sluice_log_cleaner_uncleanable_partitions";
pub const LOG_CLEANER_MAX_DIRTY_RATIO: &str = "sluice_log_cleaner_max_dirty_ratio";
/// Per compacted hosted partition (`topic`, `partition`), with `--metrics-per-partition`:
/// the share of its cleanable bytes not cleaned yet.
pub const PARTITION_LOG_DIRTY_RATIO: &str = "sluice_partition_log_dirty_ratio";
/// Bytes of segment log files and number of segments, over every partition log on disk.
pub const LOG_SIZE_BYTES: &str = "sluice_log_size_bytes";
pub const LOG_SEGMENTS: &str = "sluice_log_segments";
/// Per hosted partition (`topic`, `partition`): log size, segments, log start offset.
pub const PARTITION_LOG_SIZE_BYTES: &str = "sluice_partition_log_size_bytes";
pub const PARTITION_LOG_SEGMENTS: &str = "sluice_partition_log_segments";
pub const PARTITION_LOG_START_OFFSET: &str = "sluice_partition_log_start_offset";

// Cluster health, from this node's copy of the metadata (every node reports them).
/// Partitions without a leader.
pub const OFFLINE_PARTITIONS: &str = "sluice_offline_partitions";
/// Registered brokers that are fenced (neither lead nor join ISRs).
pub const FENCED_BROKERS: &str = "sluice_fenced_brokers";
/// Registered brokers, fenced and shutting down ones included.
pub const REGISTERED_BROKERS: &str = "sluice_registered_brokers";
/// Partitions and topics in the cluster.
pub const GLOBAL_PARTITION_COUNT: &str = "sluice_global_partition_count";
pub const GLOBAL_TOPIC_COUNT: &str = "sluice_global_topic_count";
/// This node's view of the metadata quorum (openraft's metrics): current term, last
/// committed and last applied log index, and the quorum leader's node id (-1 for none).
pub const CONTROLLER_RAFT_TERM: &str = "sluice_controller_raft_term";
pub const CONTROLLER_RAFT_COMMIT_INDEX: &str = "sluice_controller_raft_commit_index";
pub const CONTROLLER_RAFT_APPLIED_INDEX: &str = "sluice_controller_raft_applied_index";
pub const CONTROLLER_RAFT_LEADER: &str = "sluice_controller_raft_leader";
/// Partition leader changes to a new leader applied from the metadata log, counted by every
/// node as it applies them (first leaders of new partitions not counted).
pub const LEADER_ELECTIONS_TOTAL: &str = "sluice_leader_elections_total";
/// Records a follower removed from its log: divergent tails (KIP-320) and logs restarted
/// at the leader's log start.
pub const REPLICA_TRUNCATED_RECORDS_TOTAL: &str = "sluice_replica_truncated_records_total";

/// One open connection on a listener (`client`: the Kafka listener; `internal`: the
/// controller listener), counted in [`CONNECTIONS_CREATED_TOTAL`] and
/// [`CONNECTIONS_ACTIVE`] when opened and in [`CONNECTIONS_CLOSED_TOTAL`] when dropped, so a
/// connection task that is aborted still counts as closed.
pub struct OpenConnection {
    listener: &'static str,
}

impl OpenConnection {
    pub fn open(listener: &'static str) -> OpenConnection {
        metrics::counter!(CONNECTIONS_CREATED_TOTAL, "listener" => listener).increment(1);
        metrics::gauge!(CONNECTIONS_ACTIVE, "listener" => listener).increment(1.0);
        OpenConnection { listener }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_ACTIVE, "listener" => self.listener).decrement(1.0);
        metrics::counter!(CONNECTIONS_CLOSED_TOTAL, "listener" => self.listener).increment(1);
    }
}

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
    for &name in EVENT_COUNTERS {
        // Present at 0 from the start, so a rate() or an alert sees "none yet", not "no data".
        metrics::counter!(name).increment(0);
    }
    Ok(())
}

/// The unlabelled counters of rare events, exported from start-up even before they happen.
const EVENT_COUNTERS: &[&str] = &[
    BYTES_IN_TOTAL,
    MESSAGES_IN_TOTAL,
    BYTES_OUT_TOTAL,
    TOPICS_AUTO_CREATED_TOTAL,
    RETENTION_SEGMENTS_DELETED_TOTAL,
    RETENTION_BYTES_DELETED_TOTAL,
    LOG_CLEANER_PASSES_TOTAL,
    LOG_CLEANER_UNCLEANABLE_TOTAL,
    PRODUCER_IDS_ALLOCATED_TOTAL,
    PRODUCER_DUPLICATES_TOTAL,
    UNCLEAN_LEADER_ELECTIONS_TOTAL,
    BROKERS_FENCED_TOTAL,
    ISR_SHRINKS_TOTAL,
    ISR_EXPANDS_TOTAL,
    TRUNCATIONS_TOTAL,
    REPLICA_TRUNCATED_RECORDS_TOTAL,
    LEADERSHIPS_TAKEN_TOTAL,
    LEADER_ELECTIONS_TOTAL,
    REPLICATION_BYTES_IN_TOTAL,
    PREFERRED_LEADER_ELECTIONS_TOTAL,
    REASSIGNMENT_THROTTLED_TOTAL,
    LOG_BYTES_APPENDED_TOTAL,
    LOG_FLUSHES_TOTAL,
    LOG_RECOVERY_TRUNCATED_BYTES_TOTAL,
];

fn describe_groups() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(GROUPS, "Groups this broker coordinates, by state");
    describe_gauge!(GROUP_MEMBERS, "Members of a group, by group");
    describe_counter!(
        GROUP_REBALANCES_TOTAL,
        "Rebalances (generations) a group completed, by group"
    );
    describe_gauge!(
        GROUP_LAG,
        "Consumer lag of a group on a topic: high watermark minus committed offset, summed over its committed partitions"
    );
    describe_gauge!(
        GROUP_PARTITION_LAG,
        "Consumer lag of a group on one partition (--metrics-per-partition)"
    );
    describe_gauge!(
        GROUP_LAG_UNKNOWN_PARTITIONS,
        "Committed partitions whose end offset the last lag pass could not learn"
    );
    describe_counter!(OFFSET_COMMITS_TOTAL, "Offsets committed (partitions)");
    describe_counter!(
        OFFSETS_EXPIRED_TOTAL,
        "Committed offsets removed by expiration"
    );
    describe_gauge!(
        GROUP_COORDINATOR_PARTITIONS,
        "__consumer_offsets partitions this broker coordinates, by state (loading, loaded)"
    );
}

fn describe() {
    describe_groups();
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS_TOTAL, "Requests answered, by API and version");
    describe_histogram!(
        REQUEST_TOTAL_TIME_SECONDS,
        Unit::Seconds,
        "Request frame read to response written, by API and version"
    );
    describe_histogram!(
        REQUEST_QUEUE_TIME_SECONDS,
        Unit::Seconds,
        "Request frame read to handler start, by API and version"
    );
    describe_histogram!(
        REQUEST_LOCAL_TIME_SECONDS,
        Unit::Seconds,
        "Handler work excluding purgatory waits, by API and version"
    );
    describe_histogram!(
        REQUEST_REMOTE_TIME_SECONDS,
        Unit::Seconds,
        "Time parked in a purgatory (acks=all, fetch long poll), by API and version"
    );
    describe_histogram!(
        RESPONSE_SEND_TIME_SECONDS,
        Unit::Seconds,
        "Response ready to written, by API and version"
    );
    describe_counter!(
        REQUEST_BYTES_TOTAL,
        Unit::Bytes,
        "Request frame bytes, by API and version"
    );
    describe_counter!(
        RESPONSE_BYTES_TOTAL,
        Unit::Bytes,
        "Response frame bytes, by API and version"
    );
    describe_gauge!(
        PRODUCE_PURGATORY_SIZE,
        "acks=all produce requests waiting for the ISR"
    );
    describe_gauge!(FETCH_PURGATORY_SIZE, "Fetch requests long-polling");
    describe_gauge!(FETCH_SESSIONS, "Incremental fetch sessions held (KIP-227)");
    describe_gauge!(
        FETCH_SESSION_PARTITIONS,
        "Partitions held over all fetch sessions"
    );
    describe_counter!(
        FETCH_SESSION_EVICTIONS_TOTAL,
        "Fetch sessions evicted to make room for a new one"
    );
    describe_counter!(
        FETCH_SESSION_REQUESTS_TOTAL,
        "Fetch requests by session kind (sessionless, full, incremental, error)"
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
    describe_gauge!(CONNECTIONS_ACTIVE, "Open connections, by listener");
    describe_counter!(
        CONNECTIONS_CREATED_TOTAL,
        "Connections accepted, by listener"
    );
    describe_counter!(CONNECTIONS_CLOSED_TOTAL, "Connections closed, by listener");
    describe_counter!(BYTES_IN_TOTAL, Unit::Bytes, "Record batch bytes appended");
    describe_counter!(MESSAGES_IN_TOTAL, "Records appended");
    describe_counter!(
        TOPIC_BYTES_IN_TOTAL,
        Unit::Bytes,
        "Record batch bytes appended by producers, by topic"
    );
    describe_counter!(
        TOPIC_MESSAGES_IN_TOTAL,
        "Records appended by producers, by topic"
    );
    describe_counter!(
        TOPIC_BYTES_OUT_TOTAL,
        Unit::Bytes,
        "Record batch bytes sent to consumers, by topic"
    );
    describe_counter!(
        TOPIC_PRODUCE_REQUESTS_TOTAL,
        "Produce requests naming the topic"
    );
    describe_counter!(
        TOPIC_FETCH_REQUESTS_TOTAL,
        "Fetch requests naming the topic"
    );
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
    describe_storage_and_cluster();
}

fn describe_cleaner() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        LOG_CLEANER_PASSES_TOTAL,
        "Compaction passes completed over a partition log"
    );
    describe_counter!(
        LOG_CLEANER_BYTES_READ_TOTAL,
        Unit::Bytes,
        "Segment bytes read by compaction passes"
    );
    describe_counter!(
        LOG_CLEANER_BYTES_WRITTEN_TOTAL,
        Unit::Bytes,
        "Bytes of the cleaned segment copies written by compaction passes"
    );
    describe_counter!(
        LOG_CLEANER_UNCLEANABLE_TOTAL,
        "Compaction passes that failed (the partition is retried on the next pass)"
    );
    describe_histogram!(
        LOG_CLEANER_CLEAN_SECONDS,
        Unit::Seconds,
        "Time of one partition's compaction pass, throttle pauses included"
    );
    describe_gauge!(
        LOG_CLEANER_UNCLEANABLE_PARTITIONS,
        "Compacted partitions whose last compaction pass failed"
    );
    describe_gauge!(
        LOG_CLEANER_MAX_DIRTY_RATIO,
        "Largest share of not-yet-cleaned bytes among compacted partitions"
    );
    describe_gauge!(
        PARTITION_LOG_DIRTY_RATIO,
        "Share of a compacted partition's cleanable bytes not cleaned yet"
    );
}

fn describe_storage_and_cluster() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        LOG_BYTES_APPENDED_TOTAL,
        Unit::Bytes,
        "Record batch bytes written to partition logs (leader and follower appends)"
    );
    describe_counter!(
        LOG_FLUSHES_TOTAL,
        "Fsyncs of a partition's segment data (group commit, roll, recovery, shutdown)"
    );
    describe_histogram!(
        LOG_FLUSH_TIME_SECONDS,
        Unit::Seconds,
        "Time of one fsync pass over a partition's segment data"
    );
    describe_gauge!(
        LOG_RECOVERY_SECONDS,
        Unit::Seconds,
        "Time the last start-up took to open and recover every partition log"
    );
    describe_counter!(
        LOG_RECOVERY_TRUNCATED_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of torn or corrupt log tails removed by recovery"
    );
    describe_counter!(
        RETENTION_BYTES_DELETED_TOTAL,
        Unit::Bytes,
        "Segment bytes deleted by retention"
    );
    describe_cleaner();
    describe_gauge!(
        LOG_SIZE_BYTES,
        Unit::Bytes,
        "Bytes of every partition log on this broker"
    );
    describe_gauge!(
        LOG_SEGMENTS,
        "Segments of every partition log on this broker"
    );
    describe_gauge!(
        PARTITION_LOG_SIZE_BYTES,
        Unit::Bytes,
        "Bytes of a hosted partition's log"
    );
    describe_gauge!(
        PARTITION_LOG_SEGMENTS,
        "Segments of a hosted partition's log"
    );
    describe_gauge!(
        PARTITION_LOG_START_OFFSET,
        "First offset retained in a hosted partition's log"
    );
    describe_gauge!(OFFLINE_PARTITIONS, "Partitions without a leader");
    describe_gauge!(FENCED_BROKERS, "Registered brokers that are fenced");
    describe_gauge!(REGISTERED_BROKERS, "Registered brokers");
    describe_gauge!(GLOBAL_PARTITION_COUNT, "Partitions in the cluster");
    describe_gauge!(GLOBAL_TOPIC_COUNT, "Topics in the cluster");
    describe_gauge!(CONTROLLER_RAFT_TERM, "Current term of the metadata quorum");
    describe_gauge!(
        CONTROLLER_RAFT_COMMIT_INDEX,
        "Last committed index of the metadata log"
    );
    describe_gauge!(
        CONTROLLER_RAFT_APPLIED_INDEX,
        "Last metadata log index applied by this node"
    );
    describe_gauge!(
        CONTROLLER_RAFT_LEADER,
        "Node id of the metadata quorum's leader (-1 for none)"
    );
    describe_counter!(
        LEADER_ELECTIONS_TOTAL,
        "Partition leader changes applied from the metadata log"
    );
    describe_counter!(
        REPLICA_TRUNCATED_RECORDS_TOTAL,
        "Records removed from follower logs by truncation"
    );
    describe_counter!(TRUNCATIONS_TOTAL, "Follower truncations after a divergence");
    describe_gauge!(PARTITIONS_LED, "Partitions this broker leads");
    describe_gauge!(PARTITIONS_FOLLOWED, "Partitions this broker follows");
    describe_gauge!(
        UNDER_REPLICATED_PARTITIONS,
        "Led partitions whose ISR is smaller than the replica set"
    );
    describe_gauge!(
        UNDER_MIN_ISR_PARTITIONS,
        "Led partitions whose ISR is below min.insync.replicas"
    );
    describe_counter!(ISR_SHRINKS_TOTAL, "ISR shrinks committed for this leader");
    describe_counter!(ISR_EXPANDS_TOTAL, "ISR expands committed for this leader");
    describe_counter!(
        LEADERSHIPS_TAKEN_TOTAL,
        "Times this broker became a partition leader"
    );
    describe_counter!(
        METADATA_PARTITIONS_RECONCILED_TOTAL,
        "Partitions looked at while applying metadata changes (grows with what changed)"
    );
    describe_gauge!(
        ACTIVE_CONTROLLER,
        "1 on the node that leads the metadata quorum"
    );
    describe_counter!(
        BROKERS_FENCED_TOTAL,
        "Brokers fenced by this node as active controller"
    );
    describe_counter!(
        PREFERRED_LEADER_ELECTIONS_TOTAL,
        "Leaderships moved back to preferred replicas by the rebalance"
    );
    describe_gauge!(
        PARTITION_LOG_END_OFFSET,
        "Log end offset of a hosted partition"
    );
    describe_gauge!(
        PARTITION_HIGH_WATERMARK,
        "High watermark of a hosted partition"
    );
    describe_gauge!(PARTITION_ISR_SIZE, "Committed ISR size of a led partition");
    describe_gauge!(
        REPLICA_LAG_OFFSETS,
        "Offsets a follower's log end is behind the leader's"
    );
    describe_gauge!(
        REPLICA_LAG_MS,
        "Milliseconds since a follower was last caught up (-1: not heard from)"
    );
}
