//! One file per Kafka API. Each handler takes the broker's shared state and the decoded
//! request and returns the response; the dispatch `match` encodes it.
//!
//! Produce (acks=all) and Fetch (long poll) may park a request until the partition moves:
//! Kafka's purgatories. A handler parks through [`RemoteTime::park`], which counts the
//! request in its purgatory's gauge while it waits and adds the wait to the request's
//! remote time, which dispatch reports.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_quorum;
pub mod elect_leaders;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod reassignments;

use std::future::Future;
use std::time::{Duration, Instant};

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

/// A client's `current_leader_epoch` against this replica's (KIP-320): -1 skips the check;
/// an older epoch is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (this broker's
/// metadata is behind).
pub(crate) fn check_leader_epoch(asked: i32, current: i32) -> Result<(), ErrorCode> {
    if asked < 0 || asked == current {
        Ok(())
    } else if asked < current {
        Err(ErrorCode::FencedLeaderEpoch)
    } else {
        Err(ErrorCode::UnknownLeaderEpoch)
    }
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
    if broker.per_topic_metrics {
        metrics::counter!(name, "topic" => topic.to_string()).increment(value);
    }
}

/// Where a request can be parked, each with a gauge of the requests parked there now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purgatory {
    /// acks=all produces waiting for the ISR (and, with fsync durability, the fsync).
    Produce,
    /// Fetches waiting for `min_bytes` (long poll).
    Fetch,
}

/// The time a request spent parked (Kafka's RemoteTime), summed over its waits.
#[derive(Debug, Default)]
pub struct RemoteTime {
    total: Duration,
}

impl RemoteTime {
    /// Await `wait` as a parked request: counted in `purgatory`'s gauge until it finishes
    /// or is dropped (the connection closed), its duration added to this request's.
    pub async fn park<F: Future>(&mut self, purgatory: Purgatory, wait: F) -> F::Output {
        let _parked = Parked::enter(purgatory);
        let started = Instant::now();
        let output = wait.await;
        self.total += started.elapsed();
        output
    }

    pub fn total(&self) -> Duration {
        self.total
    }
}

/// One request in a purgatory's gauge, for as long as this lives.
struct Parked(metrics::Gauge);

impl Parked {
    fn enter(purgatory: Purgatory) -> Parked {
        let gauge = metrics::gauge!(match purgatory {
            Purgatory::Produce => m::PRODUCE_PURGATORY_SIZE,
            Purgatory::Fetch => m::FETCH_PURGATORY_SIZE,
        });
        gauge.increment(1.0);
        Parked(gauge)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
