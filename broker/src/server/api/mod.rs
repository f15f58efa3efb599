//! One file per Kafka API. Each handler takes the broker's shared state and the decoded
//! request and returns the response; the dispatch `match` encodes it.
//!
//! Produce (acks=all) and Fetch (long poll) may park a request until the partition moves:
//! Kafka's purgatories. A handler parks through [`RemoteTime::park`], which counts the
//! request in its purgatory's gauge while it waits and adds the wait to the request's
//! remote time, which dispatch reports.

pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod group_membership;
pub mod init_producer_id;
pub mod join_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod reassignments;

pub use crate::replica::{Purgatory, RemoteTime};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::error::ErrorCode;

use crate::metrics as m;
use crate::server::Broker;

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Which of `partitions` of `topic` the metadata does not have (all of them for an unknown
/// topic): Kafka answers UNKNOWN_TOPIC_OR_PARTITION for those in OffsetCommit and
/// OffsetDelete without asking the coordinator.
pub(crate) fn unknown_partitions(broker: &Broker, topic: &str, partitions: &[i32]) -> Vec<i32> {
    let count = broker.topic(topic).map_or(0, |view| view.partitions);
    partitions
        .iter()
        .copied()
        .filter(|&p| !(0..count).contains(&p))
        .collect()
}

/// Count an error code returned by an API (NONE is not counted).
pub(crate) fn count_error(api: &'static str, code: ErrorCode) -> i16 {
    if code != ErrorCode::None {
        metrics::counter!(m::REQUEST_ERRORS_TOTAL, "api" => api, "error" => code.kafka_name())
            .increment(1);
    }
    code.code()
}

/// Add `value` to the per-topic counter `name` of `topic`, if the broker exports per-topic
/// series (`--metrics-per-partition`).
pub(crate) fn count_topic(broker: &Broker, name: &'static str, topic: &str, value: u64) {
    broker.replicas.count_topic(name, topic, value);
}
