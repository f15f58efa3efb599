//! Property tests for the KIP-848 consumer group records: every record round-trips through
//! its bytes, and no input makes decoding panic.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..4)
}

fn opaque() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Unknown tagged fields in ascending tag order, the only order Kafka writes; tag 0 is a
/// known field of some values, so these start at 1.
fn tagged_fields() -> impl Strategy<Value = Vec<RawTaggedField>> {
    btree_map(1u32..100_000, opaque(), 0..3).prop_map(|fields| {
        fields
            .into_iter()
            .map(|(tag, data)| RawTaggedField { tag, data })
            .collect()
    })
}

fn metadata() -> impl Strategy<Value = ConsumerGroupLogRecord> {
    let value = (any::<i32>(), any::<i64>(), tagged_fields()).prop_map(
        |(epoch, metadata_hash, unknown_tagged_fields)| ConsumerGroupMetadataValue {
            epoch,
            metadata_hash,
            unknown_tagged_fields,
        },
    );
    (text(), option::of(value)).prop_map(|(group_id, value)| ConsumerGroupLogRecord::Metadata {
        key: ConsumerGroupMetadataKey { group_id },
        value,
    })
}

fn partition_metadata() -> impl Strategy<Value = ConsumerGroupLogRecord> {
    let partition = (any::<i32>(), texts(), tagged_fields()).prop_map(
        |(partition, racks, unknown_tagged_fields)| PartitionMetadata {
            partition,
            racks,
            unknown_tagged_fields,
        },
    );
    let topic = (
        uuid(),
        text(),
        any::<i32>(),
        vec(partition, 0..3),
        tagged_fields(),
    )
        .prop_map(
            |(topic_id, topic_name, num_partitions, partition_metadata, tagged)| TopicMetadata {
                topic_id,
                topic_name,
                num_partitions,
                partition_metadata,
                unknown_tagged_fields: tagged,
            },
        );
    let value = (vec(topic, 0..3), tagged_fields()).prop_map(|(topics, unknown_tagged_fields)| {
        ConsumerGroupPartitionMetadataValue {
            topics,
            unknown_tagged_fields,
        }
    });
    (text(), option::of(value)).prop_map(|(group_id, value)| {
        ConsumerGroupLogRecord::PartitionMetadata {
            key: ConsumerGroupPartitionMetadataKey { group_id },
            value,
        }
    })
}

/// Any classic metadata round-trips, the empty default included (it is what an absent tag
/// decodes to).
fn classic_member_metadata() -> impl Strategy<Value = Option<ClassicMemberMetadata>> {
    let protocol =
        (text(), opaque(), tagged_fields()).prop_map(|(name, metadata, unknown_tagged_fields)| {
            ClassicProtocol {
                name,
                metadata,
                unknown_tagged_fields,
            }
        });
    let classic = (any::<i32>(), vec(protocol, 0..3), tagged_fields()).prop_map(
        |(session_timeout_ms, supported_protocols, unknown_tagged_fields)| ClassicMemberMetadata {
            session_timeout_ms,
            supported_protocols,
            unknown_tagged_fields,
        },
    );
    prop_oneof![
        Just(None),
        Just(Some(ClassicMemberMetadata::default())),
        classic.prop_map(Some),
    ]
}

fn member_metadata() -> impl Strategy<Value = ConsumerGroupLogRecord> {
    let names = (
        option::of(text()),
        option::of(text()),
        text(),
        text(),
        texts(),
        option::of(text()),
    );
    let rest = (
        any::<i32>(),
        option::of(text()),
        classic_member_metadata(),
        tagged_fields(),
    );
    let value = (names, rest).prop_map(|(names, rest)| {
        let (instance_id, rack_id, client_id, client_host, subscribed_topic_names, regex) = names;
        let (rebalance_timeout_ms, server_assignor, classic_member_metadata, tagged) = rest;
        ConsumerGroupMemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex: regex,
            rebalance_timeout_ms,
            server_assignor,
            classic_member_metadata,
            unknown_tagged_fields: tagged,
        }
    });
    (text(), text(), option::of(value)).prop_map(|(group_id, member_id, value)| {
        ConsumerGroupLogRecord::MemberMetadata {
            key: ConsumerGroupMemberMetadataKey {
                group_id,
                member_id,
            },
            value,
        }
    })
}

fn target_assignment_metadata() -> impl Strategy<Value = ConsumerGroupLogRecord> {
    let value = (any::<i32>(), tagged_fields()).prop_map(|(assignment_epoch, tagged)| {
        ConsumerGroupTargetAssignmentMetadataValue {
            assignment_epoch,
            unknown_tagged_fields: tagged,
        }
    });
    (text(), option::of(value)).prop_map(|(group_id, value)| {
        ConsumerGroupLogRecord::TargetAssignmentMetadata {
            key: ConsumerGroupTargetAssignmentMetadataKey { group_id },
            value,
        }
    })
}

fn partitions() -> impl Strategy<Value = (Uuid, Vec<i32>, Vec<RawTaggedField>)> {
    (uuid(), vec(any::<i32>(), 0..5), tagged_fields())
}

fn target_assignment_member() -> impl Strategy<Value = ConsumerGroupLogRecord> {
    let topic = partitions().prop_map(|(topic_id, partitions, tagged)| TopicPartition {
        topic_id,
        partitions,
        unknown_tagged_fields: tagged,
    });
    let value = (vec(topic, 0..3), tagged_fields()).prop_map(|(topic_partitions, tagged)| {
        ConsumerGroupTargetAssignmentMemberValue {
            topic_partitions,
            unknown_tagged_fields: tagged,
        }
    });
    (text(), text(), option::of(value)).prop_map(|(group_id, member_id, value)| {
        ConsumerGroupLogRecord::TargetAssignmentMember {
            key: ConsumerGroupTargetAssignmentMemberKey {
                group_id,
                member_id,
            },
            value,
        }
    })
}

fn current_member_assignment() -> impl Strategy<Value = ConsumerGroupLogRecord> {
    let topic = || {
        partitions().prop_map(|(topic_id, partitions, tagged)| TopicPartitions {
            topic_id,
            partitions,
            unknown_tagged_fields: tagged,
        })
    };
    let value = (
        (any::<i32>(), any::<i32>(), any::<i8>()),
        vec(topic(), 0..3),
        vec(topic(), 0..3),
        tagged_fields(),
    )
        .prop_map(|(epochs, assigned, pending, tagged)| {
            let (member_epoch, previous_member_epoch, state) = epochs;
            ConsumerGroupCurrentMemberAssignmentValue {
                member_epoch,
                previous_member_epoch,
                state,
                assigned_partitions: assigned,
                partitions_pending_revocation: pending,
                unknown_tagged_fields: tagged,
            }
        });
    (text(), text(), option::of(value)).prop_map(|(group_id, member_id, value)| {
        ConsumerGroupLogRecord::CurrentMemberAssignment {
            key: ConsumerGroupCurrentMemberAssignmentKey {
                group_id,
                member_id,
            },
            value,
        }
    })
}

fn regular_expression() -> impl Strategy<Value = ConsumerGroupLogRecord> {
    let value = (texts(), any::<i64>(), any::<i64>(), tagged_fields()).prop_map(
        |(topics, version, timestamp, tagged)| ConsumerGroupRegularExpressionValue {
            topics,
            version,
            timestamp,
            unknown_tagged_fields: tagged,
        },
    );
    (text(), text(), option::of(value)).prop_map(|(group_id, regular_expression, value)| {
        ConsumerGroupLogRecord::RegularExpression {
            key: ConsumerGroupRegularExpressionKey {
                group_id,
                regular_expression,
            },
            value,
        }
    })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        metadata(),
        partition_metadata(),
        member_metadata(),
        target_assignment_metadata(),
        target_assignment_member(),
        current_member_assignment(),
        regular_expression(),
    ]
    .prop_map(Record::ConsumerGroup)
}

fn consumer_group_key_version() -> impl Strategy<Value = i16> {
    prop_oneof![3i16..=8, Just(16i16)]
}

proptest! {
    #[test]
    fn every_consumer_group_record_round_trips(record in record()) {
        let key = record.encode_key().expect("encode key");
        let value = record.encode_value().expect("encode value");
        prop_assert_eq!(Record::decode(key.clone(), value.clone()).expect("decode"), record.clone());
        // Decoding and encoding again gives the same bytes.
        let again = Record::decode(key.clone(), value.clone()).expect("decode");
        prop_assert_eq!(again.encode_key().expect("encode key"), key);
        prop_assert_eq!(again.encode_value().expect("encode value"), value);
    }

    #[test]
    fn decoding_random_consumer_group_bytes_never_panics(
        key_version in consumer_group_key_version(),
        key_rest in vec(any::<u8>(), 0..48),
        value_version in -1i16..=1,
        value_rest in option::of(vec(any::<u8>(), 0..160)),
    ) {
        let mut key = BytesMut::new();
        key.put_i16(key_version);
        key.put_slice(&key_rest);
        let value = value_rest.map(|rest| {
            let mut value = BytesMut::new();
            value.put_i16(value_version);
            value.put_slice(&rest);
            value.freeze()
        });
        let _ = Record::decode(key.freeze(), value);
    }

    #[test]
    fn decoding_a_corrupted_consumer_group_record_never_panics(
        record in record(),
        position in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let key = record.encode_key().expect("encode key");
        if let Some(value) = record.encode_value().expect("encode value") {
            let mut corrupted = value.to_vec();
            let index = position.index(corrupted.len());
            corrupted[index] = byte;
            let _ = Record::decode(key, Some(Bytes::from(corrupted)));
        }
    }
}

#[test]
fn huge_partition_count_is_refused_before_allocating() {
    // ConsumerGroupTargetAssignmentMemberValue v0 whose topic count is a million, with
    // nothing after it.
    let mut value = BytesMut::new();
    value.put_i16(0);
    value.put_slice(&[0xc1, 0x84, 0x3d]); // unsigned varint 1_000_001: a count of 1_000_000
    let key = Record::ConsumerGroup(ConsumerGroupLogRecord::TargetAssignmentMember {
        key: ConsumerGroupTargetAssignmentMemberKey {
            group_id: "g".into(),
            member_id: "m".into(),
        },
        value: None,
    })
    .encode_key()
    .expect("encode key");
    assert_eq!(
        Record::decode(key, Some(value.freeze())),
        Err(RecordError::InvalidLength {
            field: "target assignment topics",
            length: 1_000_000,
        })
    );
}

#[test]
fn topic_name_longer_than_kafka_allows_is_refused_on_encode() {
    let record = Record::ConsumerGroup(ConsumerGroupLogRecord::RegularExpression {
        key: ConsumerGroupRegularExpressionKey {
            group_id: "g".into(),
            regular_expression: "r".into(),
        },
        value: Some(ConsumerGroupRegularExpressionValue {
            topics: vec!["t".repeat(usize::from(i16::MAX.unsigned_abs()) + 1)],
            version: 0,
            timestamp: 0,
            unknown_tagged_fields: Vec::new(),
        }),
    });
    assert!(matches!(
        record.encode_value(),
        Err(RecordError::TooLong {
            field: "regex topics",
            ..
        })
    ));
}
