//! The group consumer's metrics, reported through the `metrics` facade like the rest of the
//! client's (see [`crate::metrics`]): names mirror the Java consumer's coordinator metrics
//! with a `sluice_client_consumer_group_` prefix.

/// Completed rebalances: generations this member joined and got an assignment in (Java:
/// `rebalance-total`).
pub const REBALANCES_TOTAL: &str = "sluice_client_consumer_group_rebalances_total";
/// Offset commits the coordinator accepted (Java: `commit-total`).
pub const COMMITS_TOTAL: &str = "sluice_client_consumer_group_commits_total";
/// Offset commits that failed, by `error` (a Kafka error name or the client-side kind).
pub const COMMIT_ERRORS_TOTAL: &str = "sluice_client_consumer_group_commit_errors_total";
/// Time from sending an OffsetCommit to its answer, in seconds (Java: `commit-latency-avg`
/// / `-max`).
pub const COMMIT_LATENCY_SECONDS: &str = "sluice_client_consumer_group_commit_latency_seconds";
/// Partitions currently assigned to the process's group consumers, summed over them (Java:
/// `assigned-partitions`, per consumer).
pub const ASSIGNED_PARTITIONS: &str = "sluice_client_consumer_group_assigned_partitions";

/// Attach units and help texts to the group consumer's metrics in the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REBALANCES_TOTAL,
        "Rebalances completed: generations joined with an assignment"
    );
    describe_counter!(COMMITS_TOTAL, "Offset commits accepted by the coordinator");
    describe_counter!(COMMIT_ERRORS_TOTAL, "Offset commits that failed, by error");
    describe_histogram!(
        COMMIT_LATENCY_SECONDS,
        Unit::Seconds,
        "OffsetCommit round-trip time"
    );
    describe_gauge!(
        ASSIGNED_PARTITIONS,
        "Partitions assigned to this process's group consumers"
    );
}
