//! Errors raised while reading bytes off the wire, and the Kafka error codes Sluice uses.
//!
//! Wire error codes live in one place, [`ErrorCode`]; everything else maps onto it.

use thiserror::Error;

/// Something in a peer's bytes was wrong. `Display` says what, for the log line.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame length {0} is negative")]
    NegativeFrameLength(i32),
    #[error("frame length {length} exceeds the limit of {limit} bytes")]
    FrameTooLarge { length: usize, limit: usize },
    #[error("request is shorter than a header ({0} bytes)")]
    TruncatedHeader(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    UnsupportedMagic(i8),
    #[error("compression: {0}")]
    Compression(String),
}

impl ProtocolError {
    /// The Kafka error code a response should carry for this error, where one exists.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::CorruptBatch(_) => ErrorCode::CorruptMessage,
            ProtocolError::Compression(_) => ErrorCode::CorruptMessage,
            ProtocolError::UnsupportedMagic(_) => ErrorCode::UnsupportedForMessageFormat,
            ProtocolError::UnknownApiKey(_) => ErrorCode::UnsupportedVersion,
            ProtocolError::FrameTooLarge { .. } => ErrorCode::MessageTooLarge,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

/// The Kafka error codes Sluice sends. Values are Kafka's (see `Errors.java`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    UnknownServerError = -1,
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    InvalidFetchSize = 4,
    LeaderNotAvailable = 5,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    /// A committed offset's metadata is longer than `offset.metadata.max.bytes`.
    OffsetMetadataTooLarge = 12,
    NetworkException = 13,
    /// The coordinator is loading its partition: retry.
    CoordinatorLoadInProgress = 14,
    CoordinatorNotAvailable = 15,
    /// This broker does not coordinate the group (any more): find the coordinator again.
    NotCoordinator = 16,
    InvalidTopicException = 17,
    RecordListTooLarge = 18,
    NotEnoughReplicas = 19,
    NotEnoughReplicasAfterAppend = 20,
    InvalidRequiredAcks = 21,
    /// A group request from a member of another generation.
    IllegalGeneration = 22,
    /// A member's protocols share none with the group's, or the protocol type differs.
    InconsistentGroupProtocol = 23,
    /// An empty or null group id.
    InvalidGroupId = 24,
    /// The member id is not one of the group's.
    UnknownMemberId = 25,
    /// The session timeout is outside `group.min/max.session.timeout.ms`.
    InvalidSessionTimeout = 26,
    /// The group is rebalancing: the member must rejoin.
    RebalanceInProgress = 27,
    /// The commit's records are too large to append.
    InvalidCommitOffsetSize = 28,
    InvalidTimestamp = 32,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidConfig = 40,
    NotController = 41,
    InvalidRequest = 42,
    UnsupportedForMessageFormat = 43,
    PolicyViolation = 44,
    /// An idempotent producer's batch does not continue its sequence on the partition.
    OutOfOrderSequenceNumber = 45,
    /// An idempotent producer's batch carries an epoch older than one already seen: the
    /// producer instance is fenced.
    InvalidProducerEpoch = 47,
    /// DeleteGroups of a group that still has members.
    NonEmptyGroup = 68,
    /// The group does not exist.
    GroupIdNotFound = 69,
    KafkaStorageError = 56,
    FetchSessionIdNotFound = 70,
    InvalidFetchSessionEpoch = 71,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    /// A broker's request carries a broker epoch other than its current registration's.
    StaleBrokerEpoch = 77,
    OffsetNotAvailable = 78,
    /// A dynamic member's first JoinGroup: rejoin with the member id in the response.
    MemberIdRequired = 79,
    /// The preferred leader is not in the ISR or not eligible (ElectLeaders).
    PreferredLeaderNotAvailable = 80,
    /// No live replica can lead (ElectLeaders, unclean).
    /// The group is at `group.max.size` members.
    GroupMaxSizeReached = 81,
    /// A static member's instance id is now held by a newer member id.
    FencedInstanceId = 82,
    EligibleLeadersNotAvailable = 83,
    /// The partition already has the leader the election would give it (ElectLeaders).
    ElectionNotNeeded = 84,
    /// No reassignment runs for the partition (cancel, ListPartitionReassignments).
    NoReassignmentInProgress = 85,
    /// OffsetDelete of a partition the group is subscribed to.
    GroupSubscribedToTopic = 86,
    InvalidRecord = 87,
    /// A transactional commit to the partition is pending (require_stable fetches).
    UnstableOffsetCommit = 88,
    /// An AlterPartition's partition epoch is not the controller's current one.
    InvalidUpdateVersion = 95,
    UnknownTopicId = 100,
    BrokerIdNotRegistered = 102,
    /// An incremental fetch names topics by id where its session was created by name, or
    /// the other way round (the Fetch version crossed v13).
    FetchSessionTopicIdError = 106,
    /// A proposed ISR names a broker that is fenced or shutting down.
    IneligibleReplica = 107,
    /// A consumer group member's epoch is not the coordinator's (KIP-848): it must give up
    /// its partitions and rejoin with epoch 0.
    FencedMemberEpoch = 110,
    /// A static member joined with an instance id another member still holds (KIP-848).
    UnreleasedInstanceId = 111,
    /// The requested server-side assignor is not configured (KIP-848).
    UnsupportedAssignor = 112,
    /// An offset commit or fetch carries a member epoch that is not the member's (KIP-848).
    StaleMemberEpoch = 113,
    /// DescribeCluster asked a listener for endpoints of the other kind (controllers of a
    /// broker listener).
    MismatchedEndpointType = 114,
    /// DescribeCluster asked for an endpoint type that does not exist.
    UnsupportedEndpointType = 115,
}

impl ErrorCode {
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// Whether a client should retry the request that got this code (after a metadata
    /// refresh where the code says leadership moved).
    pub const fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::CorruptMessage
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::RequestTimedOut
                | ErrorCode::NetworkException
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::KafkaStorageError
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::OffsetNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::NotCoordinator
                | ErrorCode::UnstableOffsetCommit
        )
    }

    /// Kafka's name for the code ([`kafka_error_name`]): `NOT_LEADER_OR_FOLLOWER`.
    pub fn kafka_name(self) -> String {
        kafka_error_name(self.code())
    }

    /// The code's variant, if Sluice knows it.
    pub fn from_code(code: i16) -> Option<ErrorCode> {
        use ErrorCode::*;
        const ALL: &[ErrorCode] = &[
            UnknownServerError,
            None,
            OffsetOutOfRange,
            CorruptMessage,
            UnknownTopicOrPartition,
            InvalidFetchSize,
            LeaderNotAvailable,
            NotLeaderOrFollower,
            RequestTimedOut,
            MessageTooLarge,
            OffsetMetadataTooLarge,
            NetworkException,
            CoordinatorLoadInProgress,
            CoordinatorNotAvailable,
            NotCoordinator,
            InvalidTopicException,
            RecordListTooLarge,
            NotEnoughReplicas,
            NotEnoughReplicasAfterAppend,
            InvalidRequiredAcks,
            IllegalGeneration,
            InconsistentGroupProtocol,
            InvalidGroupId,
            UnknownMemberId,
            InvalidSessionTimeout,
            RebalanceInProgress,
            InvalidCommitOffsetSize,
            InvalidTimestamp,
            UnsupportedVersion,
            TopicAlreadyExists,
            InvalidPartitions,
            InvalidReplicationFactor,
            InvalidReplicaAssignment,
            InvalidConfig,
            NotController,
            InvalidRequest,
            UnsupportedForMessageFormat,
            PolicyViolation,
            OutOfOrderSequenceNumber,
            InvalidProducerEpoch,
            NonEmptyGroup,
            GroupIdNotFound,
            KafkaStorageError,
            FetchSessionIdNotFound,
            InvalidFetchSessionEpoch,
            FencedLeaderEpoch,
            UnknownLeaderEpoch,
            StaleBrokerEpoch,
            OffsetNotAvailable,
            MemberIdRequired,
            PreferredLeaderNotAvailable,
            GroupMaxSizeReached,
            FencedInstanceId,
            EligibleLeadersNotAvailable,
            ElectionNotNeeded,
            NoReassignmentInProgress,
            GroupSubscribedToTopic,
            InvalidRecord,
            UnstableOffsetCommit,
            InvalidUpdateVersion,
            UnknownTopicId,
            FetchSessionTopicIdError,
            BrokerIdNotRegistered,
            IneligibleReplica,
            FencedMemberEpoch,
            UnreleasedInstanceId,
            UnsupportedAssignor,
            StaleMemberEpoch,
            MismatchedEndpointType,
            UnsupportedEndpointType,
        ];
        ALL.iter().copied().find(|e| e.code() == code)
    }
}

/// Kafka's name for any error code, as its `Errors` enum and the `error` tag of its
/// ErrorsPerSec metric spell it: 36 -> `TOPIC_ALREADY_EXISTS`; codes Kafka does not know
/// are `UNKNOWN_ERROR_CODE_<code>`.
pub fn kafka_error_name(code: i16) -> String {
    use kafka_protocol::error::ResponseError;
    let camel = match ResponseError::try_from_code(code) {
        None => return "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => return format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(e) => e.to_string(),
    };
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A human-readable description of any Kafka error code, including ones Sluice never sends.
pub fn describe_code(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("NONE ({code})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_are_screaming_snake_case() {
        assert_eq!(
            ErrorCode::NotLeaderOrFollower.kafka_name(),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(ErrorCode::InvalidRequest.kafka_name(), "INVALID_REQUEST");
        assert_eq!(
            ErrorCode::KafkaStorageError.kafka_name(),
            "KAFKA_STORAGE_ERROR"
        );
        assert_eq!(ErrorCode::None.kafka_name(), "NONE");
        assert_eq!(
            ErrorCode::MismatchedEndpointType.kafka_name(),
            "MISMATCHED_ENDPOINT_TYPE"
        );
    }

    #[test]
    fn kafka_error_names_are_spelled_as_kafka_does() {
        assert_eq!(kafka_error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(kafka_error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(kafka_error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(kafka_error_name(0), "NONE");
        assert_eq!(kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    /// Every variant's value is the code Kafka gives that name (checked against the codec
    /// crate's table), and `from_code` finds it.
    #[test]
    fn every_variant_has_kafkas_value_for_its_name() {
        for code in -1..=200 {
            let Some(variant) = ErrorCode::from_code(code) else {
                continue;
            };
            assert_eq!(variant.code(), code);
            let from_debug: String = format!("{variant:?}")
                .chars()
                .flat_map(|c| {
                    let upper = c.to_ascii_uppercase();
                    if c.is_ascii_uppercase() {
                        vec!['_', upper]
                    } else {
                        vec![upper]
                    }
                })
                .collect();
            let expected = from_debug.trim_start_matches('_').replace("_EXCEPTION", "");
            let kafka = kafka_error_name(code);
            assert!(
                kafka == expected || kafka.replace("_EXCEPTION", "") == expected,
                "{variant:?} = {code} is Kafka's {kafka}"
            );
        }
        assert_eq!(ErrorCode::NotCoordinator.kafka_name(), "NOT_COORDINATOR");
        assert_eq!(
            ErrorCode::MemberIdRequired.kafka_name(),
            "MEMBER_ID_REQUIRED"
        );
        assert_eq!(
            ErrorCode::UnstableOffsetCommit.kafka_name(),
            "UNSTABLE_OFFSET_COMMIT"
        );
    }
}
