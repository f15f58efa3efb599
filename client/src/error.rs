//! The client's one error type, shaped around what the caller does next.
//!
//! - Retry (after a metadata refresh where leadership may have moved): [`Error::Io`],
//!   [`Error::Disconnected`], [`Error::Timeout`], and [`Error::Broker`] with a retriable
//!   Kafka code (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, ...). [`Error::is_retriable`]
//!   says which, and [`Error::needs_metadata_refresh`] says when the cached leaders are stale.
//! - Fix the input: [`Error::UnknownTopic`], [`Error::UnknownPartition`],
//!   [`Error::RecordTooLarge`], [`Error::InvalidConfig`], and non-retriable broker codes such
//!   as TOPIC_ALREADY_EXISTS.
//! - Give up on this broker: [`Error::Protocol`], [`Error::UnsupportedVersion`].
//!
//! Kafka error codes are mapped in one place, [`Error::broker`], and `Display` always names
//! the Kafka error the way Kafka spells it (`TOPIC_ALREADY_EXISTS`), so an operator can look
//! it up.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use sluice_protocol::error::ProtocolError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A socket operation failed; the connection is gone. Retriable on a new connection.
    #[error("connection to {broker} failed: {reason}")]
    Io { broker: String, reason: String },
    /// The broker closed the connection (or it was closed after an earlier failure) before
    /// answering.
    #[error("connection to {broker} closed before the response arrived")]
    Disconnected { broker: String },
    /// No response within the request timeout. The connection is closed, since what the
    /// broker did with the request is unknown.
    #[error("{api:?} request to {broker} timed out after {timeout_ms} ms")]
    Timeout {
        broker: String,
        api: ApiKey,
        timeout_ms: u64,
    },
    /// The peer's bytes could not be decoded, or our request could not be encoded.
    #[error("protocol error talking to {broker}: {source}")]
    Protocol {
        broker: String,
        source: ProtocolError,
    },
    /// The broker supports no version of an API that we also support.
    #[error(
        "broker {broker} does not support {api:?} versions {ours_min}..={ours_max} (it supports {theirs})"
    )]
    UnsupportedVersion {
        broker: String,
        api: ApiKey,
        ours_min: i16,
        ours_max: i16,
        theirs: String,
    },
    /// The broker answered with a Kafka error code. `context` names what was being done
    /// ("creating topic 'x'"), `name` is Kafka's name for the code.
    #[error("{context}{} ({name})", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        context: String,
        code: i16,
        name: String,
        message: Option<String>,
    },
    #[error("topic '{0}' does not exist (UNKNOWN_TOPIC_OR_PARTITION)")]
    UnknownTopic(String),
    #[error("topic '{topic}' has no partition {partition} (it has {partition_count})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        partition_count: i32,
    },
    #[error("offset {offset} is out of range for {topic}-{partition} (OFFSET_OUT_OF_RANGE)")]
    OffsetOutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
    },
    #[error("record of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    RecordTooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    /// A produced batch was not acknowledged within the delivery timeout (retries included).
    #[error("records for {topic}-{partition} were not delivered within {timeout_ms} ms")]
    DeliveryTimeout {
        topic: String,
        partition: i32,
        timeout_ms: u64,
    },
    /// None of the bootstrap or known brokers could be reached.
    #[error("no broker reachable: {0}")]
    NoBrokerAvailable(String),
    /// The controller quorum has no leader that answers: the one named did not answer, or
    /// none is known. The detail says which; a new leader is usually elected within an
    /// election timeout, so asking again later can succeed.
    #[error("{0}; an election may be in progress")]
    NoQuorumLeader(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Unsupported(String),
    /// The producer or consumer was closed.
    #[error("client is closed")]
    Closed,
}

impl Error {
    /// Map a Kafka error code from a response onto an error. `context` says what we were
    /// doing, for the message.
    pub fn broker(context: impl Into<String>, code: i16, message: Option<String>) -> Error {
        Error::Broker {
            context: context.into(),
            code,
            name: kafka_error_name(code),
            message: message.filter(|m| !m.is_empty()),
        }
    }

    /// Whether doing the same thing again (after a backoff, and a metadata refresh where
    /// [`Error::needs_metadata_refresh`] says so) can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Disconnected { .. } | Error::Timeout { .. } => true,
            Error::NoBrokerAvailable(_) | Error::NoQuorumLeader(_) => true,
            Error::Broker { code, .. } => is_retriable_code(*code),
            _ => false,
        }
    }

    /// Whether the cached cluster metadata is probably stale (leader moved, broker gone).
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Disconnected { .. } | Error::Timeout { .. } => true,
            Error::NoBrokerAvailable(_) | Error::NoQuorumLeader(_) | Error::UnknownTopic(_) => true,
            Error::Broker { code, .. } => code_needs_metadata_refresh(*code),
            _ => false,
        }
    }

    /// The Kafka error code, where this error came from one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            Error::UnknownTopic(_) => Some(3),
            Error::OffsetOutOfRange { .. } => Some(1),
            _ => None,
        }
    }
}

/// Kafka codes after which the client must refresh metadata before retrying.
pub(crate) fn code_needs_metadata_refresh(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::UnknownTopicOrPartition
                | ResponseError::LeaderNotAvailable
                | ResponseError::NotLeaderOrFollower
                | ResponseError::FencedLeaderEpoch
                | ResponseError::UnknownLeaderEpoch
                | ResponseError::KafkaStorageError
                | ResponseError::ReplicaNotAvailable
        )
    )
}

/// Whether Kafka classifies the code as retriable.
pub(crate) fn is_retriable_code(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// Kafka's name for an error code, e.g. 36 -> `TOPIC_ALREADY_EXISTS` (the protocol crate's,
/// which the broker's metrics use too).
pub use sluice_protocol::error::kafka_error_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_error_display_names_context_and_code() {
        let e = Error::broker(
            "creating topic 'x'",
            36,
            Some("Topic 'x' already exists.".into()),
        );
        assert_eq!(
            e.to_string(),
            "creating topic 'x': Topic 'x' already exists. (TOPIC_ALREADY_EXISTS)"
        );
        let e = Error::broker("topic 'x' already exists", 36, None);
        assert_eq!(
            e.to_string(),
            "topic 'x' already exists (TOPIC_ALREADY_EXISTS)"
        );
        assert!(!e.is_retriable());
        let e = Error::broker("producing to t-0", 6, None);
        assert_eq!(e.to_string(), "producing to t-0 (NOT_LEADER_OR_FOLLOWER)");
        assert!(e.is_retriable());
        assert!(e.needs_metadata_refresh());
    }
}
