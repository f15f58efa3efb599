//! The embedded consumer protocol of classic groups: the subscription a member sends in
//! JoinGroup and the assignment the leader hands out in SyncGroup, for groups of protocol
//! type `consumer`.
//!
//! To the broker both are opaque bytes it stores in `__consumer_offsets` and forwards; this
//! module reads and writes them as Kafka's `ConsumerProtocol` does: an `int16` version, then
//! a `ConsumerProtocolSubscription` or `ConsumerProtocolAssignment` (versions 0-3, never
//! flexible). The message codecs are the `kafka-protocol` crate's; this module adds the
//! version prefix and Kafka's rules for it.
//!
//! | version | subscription adds   | assignment adds                        |
//! |---------|---------------------|----------------------------------------|
//! | 0       | topics, user data   | assigned partitions, user data         |
//! | 1       | owned partitions    | nothing (matches subscription v1)      |
//! | 2       | generation id       | nothing                                |
//! | 3       | rack id             | nothing                                |
//!
//! # Rules and invariants
//!
//! - A version above the newest known one is read with the newest known schema and the bytes
//!   after it are ignored: the schemas promise that new versions only append fields. A
//!   negative version is an error. Both as in Kafka's `ConsumerProtocol`.
//! - Encoding refuses a version outside 0-3 (Kafka would clamp it), and drops the fields the
//!   version lacks (all are "ignorable").
//! - Decoding never panics and never reserves memory from a length before checking that many
//!   bytes remain (the vendored codecs check array counts against the bytes left).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

pub use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
pub use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedPartitions;
pub use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};

/// The protocol type of groups that use this protocol.
pub const PROTOCOL_TYPE: &str = "consumer";
/// The newest subscription version Kafka 4.1 defines (and its consumers send).
pub const SUBSCRIPTION_VERSION_MAX: i16 = 3;
/// The newest assignment version Kafka 4.1 defines.
pub const ASSIGNMENT_VERSION_MAX: i16 = 3;

/// A decoded message and the version on the wire. A version above the newest known one was
/// read with the newest known schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub version: i16,
    pub message: T,
}

/// Why a subscription or assignment could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConsumerProtocolError {
    #[error("{what} is shorter than its 2-byte version")]
    MissingVersion { what: &'static str },
    #[error("{what} version {version} is outside the versions Kafka 4.1 defines (0-{max})")]
    UnsupportedVersion {
        what: &'static str,
        version: i16,
        max: i16,
    },
    #[error("malformed {what} v{version}: {reason}")]
    Malformed {
        what: &'static str,
        version: i16,
        reason: String,
    },
}

const SUBSCRIPTION: &str = "consumer protocol subscription";
const ASSIGNMENT: &str = "consumer protocol assignment";

/// Writes `subscription` at `version` (0-3), prefixed by the version.
pub fn encode_subscription(
    subscription: &ConsumerProtocolSubscription,
    version: i16,
) -> Result<Bytes, ConsumerProtocolError> {
    encode(
        subscription,
        version,
        SUBSCRIPTION_VERSION_MAX,
        SUBSCRIPTION,
    )
}

/// Reads a version-prefixed subscription.
pub fn decode_subscription(
    buf: Bytes,
) -> Result<Versioned<ConsumerProtocolSubscription>, ConsumerProtocolError> {
    decode(buf, SUBSCRIPTION_VERSION_MAX, SUBSCRIPTION)
}

/// Writes `assignment` at `version` (0-3), prefixed by the version.
pub fn encode_assignment(
    assignment: &ConsumerProtocolAssignment,
    version: i16,
) -> Result<Bytes, ConsumerProtocolError> {
    encode(assignment, version, ASSIGNMENT_VERSION_MAX, ASSIGNMENT)
}

/// Reads a version-prefixed assignment.
pub fn decode_assignment(
    buf: Bytes,
) -> Result<Versioned<ConsumerProtocolAssignment>, ConsumerProtocolError> {
    decode(buf, ASSIGNMENT_VERSION_MAX, ASSIGNMENT)
}

fn encode<T: Encodable>(
    message: &T,
    version: i16,
    max: i16,
    what: &'static str,
) -> Result<Bytes, ConsumerProtocolError> {
    if !(0..=max).contains(&version) {
        return Err(ConsumerProtocolError::UnsupportedVersion { what, version, max });
    }
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|error| ConsumerProtocolError::Malformed {
            what,
            version,
            reason: error.to_string(),
        })?;
    Ok(buf.freeze())
}

fn decode<T: Decodable>(
    mut buf: Bytes,
    max: i16,
    what: &'static str,
) -> Result<Versioned<T>, ConsumerProtocolError> {
    if buf.remaining() < 2 {
        return Err(ConsumerProtocolError::MissingVersion { what });
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(ConsumerProtocolError::UnsupportedVersion { what, version, max });
    }
    let message = T::decode(&mut buf, version.min(max)).map_err(|error| {
        ConsumerProtocolError::Malformed {
            what,
            version,
            reason: error.to_string(),
        }
    })?;
    Ok(Versioned { version, message })
}

/// Golden bytes from Kafka 4.1.1: a throwaway Java program (not in the repository) built
/// `ConsumerPartitionAssignor.Subscription`/`Assignment` values, serialised them with
/// `ConsumerProtocol.serializeSubscription(subscription, version)` and
/// `serializeAssignment(assignment, version)` for versions 0-3, and printed the buffers as
/// hex. It ran with `java -cp 'target/kafka-reference/lib-4.1.1/*'`.
#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    /// Topics `orders` and `payments`, user data `010203`, owning `orders-0`, `orders-2`
    /// and `payments-1`, generation 5, rack `rack-a`.
    const SUBSCRIPTIONS: [&str; 4] = [
        "00000000000200066f726465727300087061796d656e747300000003010203",
        "00010000000200066f726465727300087061796d656e7473000000030102030000000200066f726465727300000002000000000000000200087061796d656e74730000000100000001",
        "00020000000200066f726465727300087061796d656e7473000000030102030000000200066f726465727300000002000000000000000200087061796d656e7473000000010000000100000005",
        "00030000000200066f726465727300087061796d656e7473000000030102030000000200066f726465727300000002000000000000000200087061796d656e747300000001000000010000000500067261636b2d61",
    ];
    /// Topic `orders` only; null user data, no owned partitions, generation -1, null rack.
    const SUBSCRIPTION_V3_NULLS: &str = "00030000000100066f7264657273ffffffff00000000ffffffffffff";
    /// `orders-0`, `orders-2` and `payments-1`, user data `0908`; the same bytes at every
    /// version but the prefix.
    const ASSIGNMENT_BODY: &str = "0000000200066f726465727300000002000000000000000200087061796d656e74730000000100000001000000020908";
    /// No partitions, null user data.
    const ASSIGNMENT_V3_NULLS: &str = "000300000000ffffffff";

    fn bytes_of(hex: &str) -> Bytes {
        (0..hex.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(&hex[index..index + 2], 16).expect("hex digit"))
            .collect::<Vec<u8>>()
            .into()
    }

    fn topic(name: &str) -> TopicName {
        TopicName(StrBytes::from_string(name.to_string()))
    }

    fn two_topic_subscription(version: i16) -> ConsumerProtocolSubscription {
        let owned = [("orders", vec![0, 2]), ("payments", vec![1])].map(|(name, partitions)| {
            OwnedPartitions::default()
                .with_topic(topic(name))
                .with_partitions(partitions)
        });
        ConsumerProtocolSubscription::default()
            .with_topics(vec![
                StrBytes::from_string("orders".into()),
                StrBytes::from_string("payments".into()),
            ])
            .with_user_data(Some(Bytes::from_static(&[1, 2, 3])))
            .with_owned_partitions(if version >= 1 {
                owned.to_vec()
            } else {
                Vec::new()
            })
            .with_generation_id(if version >= 2 { 5 } else { -1 })
            .with_rack_id((version >= 3).then(|| StrBytes::from_string("rack-a".into())))
    }

    fn two_topic_assignment() -> ConsumerProtocolAssignment {
        let assigned = [("orders", vec![0, 2]), ("payments", vec![1])].map(|(name, partitions)| {
            AssignedPartitions::default()
                .with_topic(topic(name))
                .with_partitions(partitions)
        });
        ConsumerProtocolAssignment::default()
            .with_assigned_partitions(assigned.to_vec())
            .with_user_data(Some(Bytes::from_static(&[9, 8])))
    }

    #[test]
    fn subscriptions_v0_to_v3_match_kafka() {
        for (version, hex) in (0..).zip(SUBSCRIPTIONS) {
            let subscription = two_topic_subscription(version);
            let encoded = encode_subscription(&subscription, version).expect("encode");
            assert_eq!(encoded, bytes_of(hex), "version {version}");
            let decoded = decode_subscription(encoded).expect("decode");
            assert_eq!(
                decoded,
                Versioned {
                    version,
                    message: subscription
                }
            );
        }
    }

    #[test]
    fn subscription_with_nulls_matches_kafka() {
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_string("orders".into())]);
        let encoded = encode_subscription(&subscription, 3).expect("encode");
        assert_eq!(encoded, bytes_of(SUBSCRIPTION_V3_NULLS));
        assert_eq!(
            decode_subscription(encoded).expect("decode").message,
            subscription
        );
    }

    #[test]
    fn assignments_v0_to_v3_match_kafka() {
        let assignment = two_topic_assignment();
        for version in 0..=ASSIGNMENT_VERSION_MAX {
            let expected = format!("{version:04x}{ASSIGNMENT_BODY}");
            let encoded = encode_assignment(&assignment, version).expect("encode");
            assert_eq!(encoded, bytes_of(&expected), "version {version}");
            let decoded = decode_assignment(encoded).expect("decode");
            assert_eq!(
                decoded,
                Versioned {
                    version,
                    message: assignment.clone()
                }
            );
        }
        let empty = ConsumerProtocolAssignment::default();
        let encoded = encode_assignment(&empty, 3).expect("encode");
        assert_eq!(encoded, bytes_of(ASSIGNMENT_V3_NULLS));
        assert_eq!(decode_assignment(encoded).expect("decode").message, empty);
    }

    #[test]
    fn newer_version_is_read_with_the_newest_schema_and_its_extra_bytes_ignored() {
        let v3 = &SUBSCRIPTIONS[3][4..];
        let from_the_future = bytes_of(&format!("0007{v3}deadbeef"));
        let decoded = decode_subscription(from_the_future).expect("decode");
        assert_eq!(decoded.version, 7);
        assert_eq!(decoded.message, two_topic_subscription(3));
    }

    #[test]
    fn negative_or_missing_version_is_an_error() {
        let negative = decode_assignment(bytes_of(&format!("ffff{ASSIGNMENT_BODY}")));
        assert_eq!(
            negative,
            Err(ConsumerProtocolError::UnsupportedVersion {
                what: ASSIGNMENT,
                version: -1,
                max: 3
            })
        );
        let missing = decode_subscription(bytes_of("00"));
        assert_eq!(
            missing,
            Err(ConsumerProtocolError::MissingVersion { what: SUBSCRIPTION })
        );
        let too_new = encode_subscription(&ConsumerProtocolSubscription::default(), 4);
        assert!(matches!(
            too_new,
            Err(ConsumerProtocolError::UnsupportedVersion { version: 4, .. })
        ));
    }

    #[test]
    fn huge_topic_count_is_refused_before_allocating() {
        let result = decode_subscription(bytes_of("00037fffffff"));
        assert!(matches!(
            result,
            Err(ConsumerProtocolError::Malformed { version: 3, .. })
        ));
    }

    fn name() -> impl Strategy<Value = StrBytes> {
        "\\PC{0,10}".prop_map(StrBytes::from_string)
    }

    fn user_data() -> impl Strategy<Value = Option<Bytes>> {
        option::of(vec(any::<u8>(), 0..16).prop_map(Bytes::from))
    }

    /// A subscription at `version` with the fields that version lacks at their defaults.
    fn subscription() -> impl Strategy<Value = (i16, ConsumerProtocolSubscription)> {
        let owned = (name(), vec(any::<i32>(), 0..4)).prop_map(|(name, partitions)| {
            OwnedPartitions::default()
                .with_topic(TopicName(name))
                .with_partitions(partitions)
        });
        let fields = (
            vec(name(), 0..4),
            user_data(),
            vec(owned, 0..3),
            any::<i32>(),
            option::of(name()),
        );
        (0..=SUBSCRIPTION_VERSION_MAX, fields).prop_map(
            |(version, (topics, data, owned, generation, rack))| {
                let subscription = ConsumerProtocolSubscription::default()
                    .with_topics(topics)
                    .with_user_data(data)
                    .with_owned_partitions(if version >= 1 { owned } else { Vec::new() })
                    .with_generation_id(if version >= 2 { generation } else { -1 })
                    .with_rack_id(if version >= 3 { rack } else { None });
                (version, subscription)
            },
        )
    }

    fn assignment() -> impl Strategy<Value = ConsumerProtocolAssignment> {
        let assigned = (name(), vec(any::<i32>(), 0..4)).prop_map(|(name, partitions)| {
            AssignedPartitions::default()
                .with_topic(TopicName(name))
                .with_partitions(partitions)
        });
        (vec(assigned, 0..4), user_data()).prop_map(|(assigned, data)| {
            ConsumerProtocolAssignment::default()
                .with_assigned_partitions(assigned)
                .with_user_data(data)
        })
    }

    proptest! {
        #[test]
        fn subscription_round_trips((version, subscription) in subscription()) {
            let encoded = encode_subscription(&subscription, version).expect("encode");
            prop_assert_eq!(decode_subscription(encoded).expect("decode"), Versioned { version, message: subscription });
        }

        #[test]
        fn assignment_round_trips(version in 0..=ASSIGNMENT_VERSION_MAX, assignment in assignment()) {
            let encoded = encode_assignment(&assignment, version).expect("encode");
            prop_assert_eq!(decode_assignment(encoded).expect("decode"), Versioned { version, message: assignment });
        }

        #[test]
        fn decoding_random_bytes_never_panics(version in -1i16..=4, rest in vec(any::<u8>(), 0..96)) {
            let mut buf = BytesMut::new();
            buf.put_i16(version);
            buf.extend_from_slice(&rest);
            let _ = decode_subscription(buf.clone().freeze());
            let _ = decode_assignment(buf.freeze());
        }
    }
}
