//! Golden tests for the KIP-848 consumer group records: the bytes Kafka 4.1.1 itself writes.
//!
//! How the bytes were produced: a throwaway Java program (not in the repository), run with
//! `java -cp 'target/kafka-reference/lib-4.1.1/*'`, built each record the way Kafka's
//! coordinator does, with `GroupCoordinatorRecordHelpers` (`newConsumerGroupEpochRecord`,
//! `newConsumerGroupMemberSubscriptionRecord` from a `ConsumerGroupMember.Builder`,
//! `newConsumerGroupTargetAssignmentEpochRecord`, `newConsumerGroupTargetAssignmentRecord`,
//! `newConsumerGroupCurrentAssignmentRecord`, `newConsumerGroupRegularExpressionRecord` and
//! their `...Tombstone...` siblings, including `newConsumerGroupSubscriptionMetadataTombstoneRecord`).
//! The records Kafka 4.1.1 has no helper for (a `ConsumerGroupPartitionMetadataValue`, a value
//! with an unknown tagged field, a member whose `ClassicMemberMetadata` is the empty default)
//! were built from the generated classes with `CoordinatorRecord.record(key, new
//! ApiMessageAndVersion(value, (short) 0))`. Each key and value was serialised with
//! `GroupCoordinatorRecordSerde.serializeKey`/`serializeValue` (which prefix the record type
//! and the value version), checked to come back equal through `deserialize`, and printed as
//! hex. Partition sets were `TreeSet`s and topic maps `LinkedHashMap`s, so the order below is
//! the order given. Topic ids: `orders` is `0123456789abcdef-fedcba9876543210`, `payments`
//! is `1111222233334444-5555666677778888` (Kafka's `new Uuid(most, least)`).

use bytes::Bytes;
use uuid::Uuid;

use super::*;

fn bytes_of(hex: &str) -> Bytes {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&hex[index..index + 2], 16).expect("hex digit"))
        .collect::<Vec<u8>>()
        .into()
}

/// Our encoder writes exactly Kafka's bytes, and our decoder reads them back to `record`.
fn assert_golden(record: ConsumerGroupLogRecord, key_hex: &str, value_hex: Option<&str>) {
    let record = Record::ConsumerGroup(record);
    let key = bytes_of(key_hex);
    let value = value_hex.map(bytes_of);
    assert_eq!(
        record.encode_key().expect("encode key"),
        key,
        "key of {record:?}"
    );
    assert_eq!(
        record.encode_value().expect("encode value"),
        value,
        "value of {record:?}"
    );
    assert_eq!(Record::decode(key, value).expect("decode"), record);
}

const ORDERS: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
const PAYMENTS: Uuid = Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);

const METADATA_KEY: &str = "0003000767726f75702d31";
const PARTITION_METADATA_KEY: &str = "0004000767726f75702d31";
const MEMBER_A_KEY: &str = "0005000767726f75702d3100086d656d6265722d61";
const TARGET_METADATA_KEY: &str = "0006000767726f75702d31";
const TARGET_MEMBER_KEY: &str = "0007000767726f75702d3100086d656d6265722d61";
const CURRENT_ASSIGNMENT_KEY: &str = "0008000767726f75702d3100086d656d6265722d61";
const REGEX_KEY: &str = "0010000767726f75702d3100086f72646572732e2a";

/// Epoch 5, metadata hash `0x0123456789abcdef` (tag 0).
const METADATA_WITH_HASH: &str = "0000000000050100080123456789abcdef";
/// `orders` (3 partitions; partition 0 on `rack-1` and `rack-2`, partition 1 on none) and
/// `payments` (2 partitions, no partition metadata).
const PARTITION_METADATA: &str = "0000030123456789abcdeffedcba9876543210076f726465727300000003030000000003077261636b2d31077261636b2d32000000000101000011112222333344445555666677778888097061796d656e747300000002010000";
/// `member-a` of the consumer protocol: static, with a rack, subscribed to `orders` and
/// `payments` (and to the regex "", which is how Kafka's member says "none"), the `uniform`
/// assignor, and the explicit null `ClassicMemberMetadata`.
const MEMBER_CONSUMER: &str = "00000b696e7374616e63652d61077261636b2d3109636c69656e742d610a2f31302e302e302e3103076f7264657273097061796d656e747301000493e008756e69666f726d01000100";
/// `member-b` of the classic protocol: the regex `orders.*`, a session timeout of 45 s and
/// the protocols `range` (metadata `00030102`) and `cooperative-sticky` (empty metadata).
const MEMBER_CLASSIC: &str = "0000000009636c69656e742d620a2f31302e302e302e3201096f72646572732e2a0000ea6000010028010000afc8030672616e676505000301020013636f6f70657261746976652d737469636b79010000";
/// `orders` 0 and 2, `payments` 1.
const TARGET_MEMBER: &str = "0000030123456789abcdeffedcba9876543210030000000000000002001111222233334444555566667777888802000000010000";
/// Epoch 5 (previous 4), `UNREVOKED_PARTITIONS`, owning `orders` 0 and 2 and revoking
/// `payments` 1 and 3.
const CURRENT_ASSIGNMENT: &str = "0000000000050000000401020123456789abcdeffedcba98765432100300000000000000020002111122223333444455556666777788880300000001000000030000";
/// `orders.*` resolved to `orders` and `orders-eu` at metadata version 12.
const REGEX: &str = "000003076f72646572730a6f72646572732d6575000000000000000c0000018bcfe5680000";

fn group_id() -> String {
    "group-1".into()
}

fn member_a_key() -> ConsumerGroupMemberMetadataKey {
    ConsumerGroupMemberMetadataKey {
        group_id: group_id(),
        member_id: "member-a".into(),
    }
}

fn topic_partitions(topic_id: Uuid, partitions: &[i32]) -> TopicPartitions {
    TopicPartitions {
        topic_id,
        partitions: partitions.to_vec(),
        unknown_tagged_fields: Vec::new(),
    }
}

#[test]
fn group_metadata_with_and_without_metadata_hash_matches_kafka() {
    let key = || ConsumerGroupMetadataKey {
        group_id: group_id(),
    };
    let value = |metadata_hash| ConsumerGroupMetadataValue {
        epoch: 5,
        metadata_hash,
        unknown_tagged_fields: Vec::new(),
    };
    let with_hash = ConsumerGroupLogRecord::Metadata {
        key: key(),
        value: Some(value(0x0123_4567_89ab_cdef)),
    };
    assert_golden(with_hash, METADATA_KEY, Some(METADATA_WITH_HASH));
    let without_hash = ConsumerGroupLogRecord::Metadata {
        key: key(),
        value: Some(value(0)),
    };
    assert_golden(without_hash, METADATA_KEY, Some("00000000000500"));
}

#[test]
fn unknown_tagged_field_is_kept_after_the_metadata_hash_as_kafka_writes_it() {
    let record = ConsumerGroupLogRecord::Metadata {
        key: ConsumerGroupMetadataKey {
            group_id: group_id(),
        },
        value: Some(ConsumerGroupMetadataValue {
            epoch: 5,
            metadata_hash: -2,
            unknown_tagged_fields: vec![RawTaggedField {
                tag: 7,
                data: Bytes::from_static(&[0xab, 0xcd]),
            }],
        }),
    };
    assert_golden(
        record,
        METADATA_KEY,
        Some("000000000005020008fffffffffffffffe0702abcd"),
    );
}

#[test]
fn partition_metadata_of_two_topics_matches_kafka() {
    let partition = |partition, racks: &[&str]| PartitionMetadata {
        partition,
        racks: racks.iter().map(|rack| rack.to_string()).collect(),
        unknown_tagged_fields: Vec::new(),
    };
    let record = ConsumerGroupLogRecord::PartitionMetadata {
        key: ConsumerGroupPartitionMetadataKey {
            group_id: group_id(),
        },
        value: Some(ConsumerGroupPartitionMetadataValue {
            topics: vec![
                TopicMetadata {
                    topic_id: ORDERS,
                    topic_name: "orders".into(),
                    num_partitions: 3,
                    partition_metadata: vec![
                        partition(0, &["rack-1", "rack-2"]),
                        partition(1, &[]),
                    ],
                    unknown_tagged_fields: Vec::new(),
                },
                TopicMetadata {
                    topic_id: PAYMENTS,
                    topic_name: "payments".into(),
                    num_partitions: 2,
                    partition_metadata: Vec::new(),
                    unknown_tagged_fields: Vec::new(),
                },
            ],
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(record, PARTITION_METADATA_KEY, Some(PARTITION_METADATA));
}

#[test]
fn member_of_the_consumer_protocol_subscribed_to_two_topics_matches_kafka() {
    let record = ConsumerGroupLogRecord::MemberMetadata {
        key: member_a_key(),
        value: Some(ConsumerGroupMemberMetadataValue {
            instance_id: Some("instance-a".into()),
            rack_id: Some("rack-1".into()),
            client_id: "client-a".into(),
            client_host: "/10.0.0.1".into(),
            subscribed_topic_names: vec!["orders".into(), "payments".into()],
            // Kafka's `ConsumerGroupMember` has "" for no regex, and writes it so, not null.
            subscribed_topic_regex: Some(String::new()),
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("uniform".into()),
            classic_member_metadata: None,
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(record, MEMBER_A_KEY, Some(MEMBER_CONSUMER));
}

#[test]
fn member_of_the_classic_protocol_with_a_regex_matches_kafka() {
    let protocol = |name: &str, metadata: &'static [u8]| ClassicProtocol {
        name: name.into(),
        metadata: Bytes::from_static(metadata),
        unknown_tagged_fields: Vec::new(),
    };
    let record = ConsumerGroupLogRecord::MemberMetadata {
        key: ConsumerGroupMemberMetadataKey {
            group_id: group_id(),
            member_id: "member-b".into(),
        },
        value: Some(ConsumerGroupMemberMetadataValue {
            instance_id: None,
            rack_id: None,
            client_id: "client-b".into(),
            client_host: "/10.0.0.2".into(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: Some("orders.*".into()),
            rebalance_timeout_ms: 60_000,
            server_assignor: None,
            classic_member_metadata: Some(ClassicMemberMetadata {
                session_timeout_ms: 45_000,
                supported_protocols: vec![
                    protocol("range", &[0, 3, 1, 2]),
                    protocol("cooperative-sticky", &[]),
                ],
                unknown_tagged_fields: Vec::new(),
            }),
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(
        record,
        "0005000767726f75702d3100086d656d6265722d62",
        Some(MEMBER_CLASSIC),
    );
}

#[test]
fn empty_classic_member_metadata_is_not_written_and_is_what_an_absent_tag_means() {
    let record = ConsumerGroupLogRecord::MemberMetadata {
        key: ConsumerGroupMemberMetadataKey {
            group_id: group_id(),
            member_id: "m".into(),
        },
        value: Some(ConsumerGroupMemberMetadataValue {
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            classic_member_metadata: Some(ClassicMemberMetadata::default()),
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(
        record,
        "0005000767726f75702d3100016d",
        Some("00000000026302680100ffffffff0000"),
    );
}

#[test]
fn target_assignment_epoch_and_member_of_two_topics_match_kafka() {
    let epoch = ConsumerGroupLogRecord::TargetAssignmentMetadata {
        key: ConsumerGroupTargetAssignmentMetadataKey {
            group_id: group_id(),
        },
        value: Some(ConsumerGroupTargetAssignmentMetadataValue {
            assignment_epoch: 5,
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(epoch, TARGET_METADATA_KEY, Some("00000000000500"));
    let topic = |topic_id, partitions: &[i32]| TopicPartition {
        topic_id,
        partitions: partitions.to_vec(),
        unknown_tagged_fields: Vec::new(),
    };
    let member = ConsumerGroupLogRecord::TargetAssignmentMember {
        key: ConsumerGroupTargetAssignmentMemberKey {
            group_id: group_id(),
            member_id: "member-a".into(),
        },
        value: Some(ConsumerGroupTargetAssignmentMemberValue {
            topic_partitions: vec![topic(ORDERS, &[0, 2]), topic(PAYMENTS, &[1])],
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(member, TARGET_MEMBER_KEY, Some(TARGET_MEMBER));
}

#[test]
fn current_assignment_with_partitions_pending_revocation_matches_kafka() {
    let record = ConsumerGroupLogRecord::CurrentMemberAssignment {
        key: ConsumerGroupCurrentMemberAssignmentKey {
            group_id: group_id(),
            member_id: "member-a".into(),
        },
        value: Some(ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: 5,
            previous_member_epoch: 4,
            // Kafka's MemberState.UNREVOKED_PARTITIONS.
            state: 1,
            assigned_partitions: vec![topic_partitions(ORDERS, &[0, 2])],
            partitions_pending_revocation: vec![topic_partitions(PAYMENTS, &[1, 3])],
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(record, CURRENT_ASSIGNMENT_KEY, Some(CURRENT_ASSIGNMENT));
}

#[test]
fn resolved_regular_expression_matches_kafka() {
    let record = ConsumerGroupLogRecord::RegularExpression {
        key: ConsumerGroupRegularExpressionKey {
            group_id: group_id(),
            regular_expression: "orders.*".into(),
        },
        value: Some(ConsumerGroupRegularExpressionValue {
            topics: vec!["orders".into(), "orders-eu".into()],
            version: 12,
            timestamp: 1_700_000_000_000,
            unknown_tagged_fields: Vec::new(),
        }),
    };
    assert_golden(record, REGEX_KEY, Some(REGEX));
}

#[test]
fn tombstones_of_every_type_match_kafka() {
    let member_id = || "member-a".to_string();
    let tombstones = [
        (
            ConsumerGroupLogRecord::Metadata {
                key: ConsumerGroupMetadataKey {
                    group_id: group_id(),
                },
                value: None,
            },
            METADATA_KEY,
        ),
        (
            ConsumerGroupLogRecord::PartitionMetadata {
                key: ConsumerGroupPartitionMetadataKey {
                    group_id: group_id(),
                },
                value: None,
            },
            PARTITION_METADATA_KEY,
        ),
        (
            ConsumerGroupLogRecord::MemberMetadata {
                key: member_a_key(),
                value: None,
            },
            MEMBER_A_KEY,
        ),
        (
            ConsumerGroupLogRecord::TargetAssignmentMetadata {
                key: ConsumerGroupTargetAssignmentMetadataKey {
                    group_id: group_id(),
                },
                value: None,
            },
            TARGET_METADATA_KEY,
        ),
        (
            ConsumerGroupLogRecord::TargetAssignmentMember {
                key: ConsumerGroupTargetAssignmentMemberKey {
                    group_id: group_id(),
                    member_id: member_id(),
                },
                value: None,
            },
            TARGET_MEMBER_KEY,
        ),
        (
            ConsumerGroupLogRecord::CurrentMemberAssignment {
                key: ConsumerGroupCurrentMemberAssignmentKey {
                    group_id: group_id(),
                    member_id: member_id(),
                },
                value: None,
            },
            CURRENT_ASSIGNMENT_KEY,
        ),
        (
            ConsumerGroupLogRecord::RegularExpression {
                key: ConsumerGroupRegularExpressionKey {
                    group_id: group_id(),
                    regular_expression: "orders.*".into(),
                },
                value: None,
            },
            REGEX_KEY,
        ),
    ];
    for (record, key_hex) in tombstones {
        assert!(record.is_tombstone());
        assert_golden(record, key_hex, None);
    }
}

#[test]
fn record_of_a_share_group_still_decodes_as_unknown() {
    // ShareGroupMetadataKey{groupId: "group-2"} (type 11); its value is not looked at.
    let key = bytes_of("000b000767726f75702d32");
    let record = Record::decode(key, Some(bytes_of("00ff"))).expect("decode");
    assert_eq!(record, Record::Unknown { version: 11 });
    assert_eq!(kafka_record_type_name(11), Some("SHARE_GROUP_METADATA"));
    assert_eq!(
        record.encode_key(),
        Err(RecordError::NotEncodable { version: 11 })
    );
}

const GOLDEN_VALUES: [(&str, &str); 8] = [
    (METADATA_KEY, METADATA_WITH_HASH),
    (PARTITION_METADATA_KEY, PARTITION_METADATA),
    (MEMBER_A_KEY, MEMBER_CONSUMER),
    (MEMBER_A_KEY, MEMBER_CLASSIC),
    (TARGET_METADATA_KEY, "00000000000500"),
    (TARGET_MEMBER_KEY, TARGET_MEMBER),
    (CURRENT_ASSIGNMENT_KEY, CURRENT_ASSIGNMENT),
    (REGEX_KEY, REGEX),
];

#[test]
fn every_truncation_of_a_consumer_group_value_is_an_error() {
    for (key_hex, value_hex) in GOLDEN_VALUES {
        let value = bytes_of(value_hex);
        assert!(Record::decode(bytes_of(key_hex), Some(value.clone())).is_ok());
        for length in 0..value.len() {
            let result = Record::decode(bytes_of(key_hex), Some(value.slice(..length)));
            assert!(result.is_err(), "{length} of {} bytes decoded", value.len());
        }
    }
}

#[test]
fn every_truncation_of_a_consumer_group_key_is_an_error() {
    for key_hex in [MEMBER_A_KEY, REGEX_KEY, METADATA_KEY] {
        let key = bytes_of(key_hex);
        // From 2 bytes on, the key version is there and a field is cut short.
        for length in 2..key.len() {
            let result = Record::decode(key.slice(..length), None);
            assert!(result.is_err(), "{length} of {} bytes decoded", key.len());
        }
    }
}

#[test]
fn value_version_other_than_0_is_an_error() {
    for (key_hex, value_hex) in GOLDEN_VALUES {
        let mut value = bytes_of(value_hex).to_vec();
        value[1] = 1;
        let key = bytes_of(key_hex);
        let key_version = i16::from_be_bytes([key[0], key[1]]);
        assert_eq!(
            Record::decode(key, Some(value.into())),
            Err(RecordError::UnsupportedValueVersion {
                key_version,
                value_version: 1
            })
        );
    }
}

#[test]
fn metadata_hash_of_the_wrong_size_is_an_error() {
    // Epoch 5, then tag 0 with 4 bytes instead of an int64's 8.
    let value = bytes_of("0000000000050100040123456700");
    let result = Record::decode(bytes_of(METADATA_KEY), Some(value));
    assert_eq!(
        result,
        Err(RecordError::InvalidLength {
            field: "consumer group metadata hash",
            length: 4
        })
    );
}

#[test]
fn classic_member_metadata_with_bytes_after_it_is_an_error() {
    // MEMBER_CONSUMER's null classic metadata (tag 0, size 1, 0x00), given a size of 2.
    let head = MEMBER_CONSUMER
        .strip_suffix("01000100")
        .expect("null classic metadata");
    let value = format!("{head}0100020000");
    let result = Record::decode(bytes_of(MEMBER_A_KEY), Some(bytes_of(&value)));
    assert!(
        matches!(
            result,
            Err(RecordError::InvalidLength {
                field: "member classic member metadata",
                ..
            })
        ),
        "{result:?}"
    );
}
