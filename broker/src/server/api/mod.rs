//! One file per Kafka API. Each handler takes the broker's shared state and the decoded
//! request and returns the response; the dispatch `match` encodes it.

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod elect_leaders;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod reassignments;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::error::ErrorCode;

use crate::metrics as m;

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
        metrics::counter!(m::REQUEST_ERRORS_TOTAL, "api" => api, "error" => format!("{code:?}"))
            .increment(1);
    }
    code.code()
}
