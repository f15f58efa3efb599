//! Sluice's Kafka-protocol client: producer, consumer and admin, and the `sluice` CLI on top.
//!
//! Layers, each depending only on the ones above it:
//!
//! - [`error`]: the one [`Error`] type, shaped around what the caller does next.
//! - [`connection`]: one TCP connection to one broker: framing, correlation ids,
//!   pipelining, API version negotiation.
//! - [`cluster`]: bootstrap, the metadata cache and one connection per broker.
//! - [`partitioner`]: which partition a record goes to (Java-compatible murmur2, sticky).
//! - [`delivery`]: the per-batch completion and per-record [`DeliveryFuture`].
//! - `accumulator` (internal): the producer's per-partition batches; sans-IO.
//! - [`offsets`]: ListOffsets lookups (earliest, latest, by timestamp).
//! - [`producer`], [`consumer`], [`admin`]: the three clients.
//! - [`metrics`]: the producer's and consumer's metric names, reported through the
//!   `metrics` facade (no exporter in the crate).
//! - [`reassignment`]: reassignment plans (Kafka's JSON), decommission planning and plan
//!   progress, pure functions over what [`admin`] reports.
//!
//! The `sluice` CLI is the crate's binary, `src/bin/sluice/`: one module per command, and
//! the operator views (`cluster status`, `topic describe`, `top`) with what they gather,
//! their tables and JSON, and reading brokers' Prometheus `/metrics`.
//!
//! Every client works against Sluice and against Apache Kafka 3.x/4.x: versions are
//! negotiated per API with ApiVersions, and only versions that name topics (not topic ids)
//! are used.

mod accumulator;
pub mod admin;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod delivery;
pub mod error;
pub mod group;
pub mod metrics;
pub mod offsets;
pub mod partitioner;
pub mod producer;
pub mod reassignment;

pub(crate) use sluice_protocol::records;

pub use admin::{
    Admin, ClusterDescription, CommittedOffset, ConfigEntry, ConfigOp, ConfigSource,
    ElectionOutcome, ElectionResult, ElectionType, GroupDescription, GroupListing, GroupListings,
    GroupMember, GroupState, ListGroupsFilter, MemberAssignment, NewOffset, NewTopic,
    OngoingReassignment, PartitionResult, QuorumDescription, QuorumReplica, Reassignment,
    ReassignmentOutcome, ReassignmentResult, TopicDescription,
};
pub use cluster::{Cluster, ClusterConfig};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetReset, SeekTo};
pub use delivery::{DeliveryFuture, RecordMetadata};
pub use error::{Error, Result};
pub use group::{
    Assignor, GroupConsumer, GroupConsumerConfig, GroupProtocol, PendingCommit, RebalanceListener,
    TopicPartition,
};
pub use offsets::OffsetSpec;
pub use producer::{Acks, Producer, ProducerConfig, ProducerRecord};
pub use sluice_protocol::batch::Compression;

/// Compile-time check: the clients' futures can be spawned on a multi-threaded runtime, and
/// the clients can be shared between tasks.
#[cfg(test)]
#[allow(dead_code)]
mod send_and_sync {
    use super::*;

    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}

    fn client_futures_are_send(producer: &Producer, consumer: &mut Consumer, admin: &Admin) {
        is_send_sync::<Producer>();
        is_send_sync::<Admin>();
        is_send_sync::<Cluster>();
        is_send::<Consumer>(consumer);
        is_send(&producer.send(ProducerRecord::default()));
        is_send(&producer.flush());
        is_send(&producer.close());
        is_send(&admin.create_topic("t", 1, 1, &[]));
        is_send(&admin.describe_topic("t"));
        is_send(&admin.elect_leaders(ElectionType::Preferred, None));
        is_send(&admin.alter_partition_reassignments(Vec::new()));
        is_send(&admin.list_partition_reassignments(None));
        let timeout = std::time::Duration::from_secs(1);
        is_send(&admin.describe_quorum(Some(1), timeout));
        is_send(&admin.replica_log_end_offsets(1, &[]));
        is_send(&admin.high_watermarks(1, &[]));
        is_send(&admin.record_timestamp(1, "t", 0, 0));
        is_send(&consumer.poll(std::time::Duration::from_secs(1)));
    }

    fn delivery_future_is_send(future: DeliveryFuture) {
        is_send(&future);
    }
}
