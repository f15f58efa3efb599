//! Golden tests: the bytes Kafka 4.1.1 itself writes for these records.
//!
//! How the bytes were produced: a throwaway Java program (not in the repository) built each
//! record with Kafka's generated classes (`OffsetCommitKey/Value`, `LegacyOffsetCommitKey/
//! Value`, `GroupMetadataKey/Value`, `ConsumerGroupMetadataKey/Value`) and
//! `CoordinatorRecord.record`/`tombstone`, serialised key and value with
//! `GroupCoordinatorRecordSerde.serializeKey`/`serializeValue` (checking that `deserialize`
//! gives the record back), and printed them as hex. It ran with `java -cp
//! 'target/kafka-reference/lib-4.1.1/*'`. The members' subscriptions and assignments are
//! `ConsumerProtocol.serializeSubscription`/`serializeAssignment` at version 0.

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
fn assert_golden(record: &Record, key_hex: &str, value_hex: Option<&str>) {
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
    assert_eq!(&Record::decode(key, value).expect("decode"), record);
}

const OFFSET_KEY: &str = "0001000767726f75702d3100066f726465727300000007";
const GROUP_KEY: &str = "0002000767726f75702d31";
/// `ConsumerProtocol` subscription v0 to `orders` and `payments`, no user data.
const SUBSCRIPTION: &str = "00000000000200066f726465727300087061796d656e7473ffffffff";
/// Assignment v0 of `orders-0` and `payments-1`.
const ASSIGNMENT_A: &str =
    "00000000000200066f7264657273000000010000000000087061796d656e74730000000100000001ffffffff";
/// Assignment v0 of `orders-1`.
const ASSIGNMENT_B: &str = "00000000000100066f72646572730000000100000001ffffffff";

fn offset_key() -> OffsetCommitKey {
    OffsetCommitKey {
        group: "group-1".into(),
        topic: "orders".into(),
        partition: 7,
    }
}

fn offset_value(version: i16, metadata: &str) -> OffsetCommitValue {
    OffsetCommitValue {
        version,
        ..OffsetCommitValue::new(1_234_567_890_123, metadata.into(), 1_700_000_000_000)
    }
}

#[test]
fn offset_commit_values_v0_to_v3_match_kafka() {
    let cases = [
        (
            offset_value(0, ""),
            "00000000011f71fb04cb00000000018bcfe56800",
        ),
        (
            OffsetCommitValue {
                expire_timestamp_ms: 1_700_000_600_000,
                ..offset_value(1, "m")
            },
            "00010000011f71fb04cb00016d0000018bcfe568000000018bcfee8fc0",
        ),
        (
            offset_value(2, "meta"),
            "00020000011f71fb04cb00046d6574610000018bcfe56800",
        ),
        (
            OffsetCommitValue {
                leader_epoch: 5,
                ..offset_value(3, "meta")
            },
            "00030000011f71fb04cb0000000500046d6574610000018bcfe56800",
        ),
    ];
    for (value, value_hex) in cases {
        assert_golden(
            &Record::offset_commit(offset_key(), value),
            OFFSET_KEY,
            Some(value_hex),
        );
    }
}

#[test]
fn offset_commit_value_v4_matches_kafka_with_and_without_topic_id() {
    let without = offset_value(4, "");
    assert_golden(
        &Record::offset_commit(offset_key(), without),
        OFFSET_KEY,
        Some("00040000011f71fb04cbffffffff010000018bcfe5680000"),
    );
    let with = OffsetCommitValue {
        leader_epoch: 9,
        topic_id: Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
        ..offset_value(4, "meta")
    };
    assert_golden(
        &Record::offset_commit(offset_key(), with),
        OFFSET_KEY,
        Some("00040000011f71fb04cb00000009056d6574610000018bcfe568000100100123456789abcdeffedcba9876543210"),
    );
}

#[test]
fn legacy_offset_commit_and_tombstones_match_kafka() {
    let legacy = Record::OffsetCommit {
        key_version: OffsetKeyVersion::Legacy,
        key: offset_key(),
        value: Some(OffsetCommitValue {
            offset: 42,
            ..offset_value(0, "x")
        }),
    };
    assert_golden(
        &legacy,
        "0000000767726f75702d3100066f726465727300000007",
        Some("0000000000000000002a0001780000018bcfe56800"),
    );
    assert_golden(
        &Record::offset_commit_tombstone(offset_key()),
        OFFSET_KEY,
        None,
    );
    let group = GroupMetadataKey {
        group: "group-1".into(),
    };
    assert_golden(&Record::group_metadata_tombstone(group), GROUP_KEY, None);
}

/// The group Kafka's program wrote: two members, `member-a` static (from v3), with the
/// fields a version lacks at their defaults.
fn two_member_group(version: i16) -> GroupMetadataValue {
    let member =
        |id: &str, instance: &str, host: &str, timeouts: (i32, i32), assignment| MemberMetadata {
            member_id: format!("member-{id}"),
            group_instance_id: (version >= 3 && !instance.is_empty()).then(|| instance.to_string()),
            client_id: format!("client-{id}"),
            client_host: host.into(),
            rebalance_timeout_ms: if version >= 1 { timeouts.0 } else { -1 },
            session_timeout_ms: timeouts.1,
            subscription: bytes_of(SUBSCRIPTION),
            assignment: bytes_of(assignment),
            unknown_tagged_fields: Vec::new(),
        };
    GroupMetadataValue {
        version,
        protocol_type: "consumer".into(),
        generation: 3,
        protocol: Some("range".into()),
        leader: Some("member-a".into()),
        current_state_timestamp_ms: if version >= 2 { 1_700_000_000_000 } else { -1 },
        members: vec![
            member(
                "a",
                "instance-a",
                "/10.0.0.1",
                (300_000, 45_000),
                ASSIGNMENT_A,
            ),
            member("b", "", "/10.0.0.2", (60_000, 10_000), ASSIGNMENT_B),
        ],
        unknown_tagged_fields: Vec::new(),
    }
}

const GROUP_VALUES: [&str; 5] = [
    "00000008636f6e73756d657200000003000572616e676500086d656d6265722d610000000200086d656d6265722d610008636c69656e742d6100092f31302e302e302e310000afc80000001c00000000000200066f726465727300087061796d656e7473ffffffff0000002c00000000000200066f7264657273000000010000000000087061796d656e74730000000100000001ffffffff00086d656d6265722d620008636c69656e742d6200092f31302e302e302e32000027100000001c00000000000200066f726465727300087061796d656e7473ffffffff0000001a00000000000100066f72646572730000000100000001ffffffff",
    "00010008636f6e73756d657200000003000572616e676500086d656d6265722d610000000200086d656d6265722d610008636c69656e742d6100092f31302e302e302e31000493e00000afc80000001c00000000000200066f726465727300087061796d656e7473ffffffff0000002c00000000000200066f7264657273000000010000000000087061796d656e74730000000100000001ffffffff00086d656d6265722d620008636c69656e742d6200092f31302e302e302e320000ea60000027100000001c00000000000200066f726465727300087061796d656e7473ffffffff0000001a00000000000100066f72646572730000000100000001ffffffff",
    "00020008636f6e73756d657200000003000572616e676500086d656d6265722d610000018bcfe568000000000200086d656d6265722d610008636c69656e742d6100092f31302e302e302e31000493e00000afc80000001c00000000000200066f726465727300087061796d656e7473ffffffff0000002c00000000000200066f7264657273000000010000000000087061796d656e74730000000100000001ffffffff00086d656d6265722d620008636c69656e742d6200092f31302e302e302e320000ea60000027100000001c00000000000200066f726465727300087061796d656e7473ffffffff0000001a00000000000100066f72646572730000000100000001ffffffff",
    "00030008636f6e73756d657200000003000572616e676500086d656d6265722d610000018bcfe568000000000200086d656d6265722d61000a696e7374616e63652d610008636c69656e742d6100092f31302e302e302e31000493e00000afc80000001c00000000000200066f726465727300087061796d656e7473ffffffff0000002c00000000000200066f7264657273000000010000000000087061796d656e74730000000100000001ffffffff00086d656d6265722d62ffff0008636c69656e742d6200092f31302e302e302e320000ea60000027100000001c00000000000200066f726465727300087061796d656e7473ffffffff0000001a00000000000100066f72646572730000000100000001ffffffff",
    "000409636f6e73756d6572000000030672616e6765096d656d6265722d610000018bcfe5680003096d656d6265722d610b696e7374616e63652d6109636c69656e742d610a2f31302e302e302e31000493e00000afc81d00000000000200066f726465727300087061796d656e7473ffffffff2d00000000000200066f7264657273000000010000000000087061796d656e74730000000100000001ffffffff00096d656d6265722d620009636c69656e742d620a2f31302e302e302e320000ea60000027101d00000000000200066f726465727300087061796d656e7473ffffffff1b00000000000100066f72646572730000000100000001ffffffff0000",
];

#[test]
fn group_metadata_values_v0_to_v4_match_kafka() {
    for (version, value_hex) in (0..).zip(GROUP_VALUES) {
        let key = GroupMetadataKey {
            group: "group-1".into(),
        };
        let record = Record::group_metadata(key, two_member_group(version));
        assert_golden(&record, GROUP_KEY, Some(value_hex));
    }
}

#[test]
fn empty_group_with_null_protocol_and_leader_matches_kafka() {
    let empty = GroupMetadataValue {
        version: GroupMetadataValue::VERSION_WRITTEN_BY_KAFKA,
        protocol_type: "consumer".into(),
        generation: 0,
        protocol: None,
        leader: None,
        current_state_timestamp_ms: 1_700_000_000_000,
        members: Vec::new(),
        unknown_tagged_fields: Vec::new(),
    };
    let key = GroupMetadataKey {
        group: "group-1".into(),
    };
    assert_golden(
        &Record::group_metadata(key, empty),
        GROUP_KEY,
        Some("00030008636f6e73756d657200000000ffffffff0000018bcfe5680000000000"),
    );
}

#[test]
fn every_truncation_of_a_golden_value_is_an_error() {
    let offset_values = [
        "00040000011f71fb04cb00000009056d6574610000018bcfe568000100100123456789abcdeffedcba9876543210",
        "00010000011f71fb04cb00016d0000018bcfe568000000018bcfee8fc0",
    ];
    let cases = GROUP_VALUES
        .iter()
        .map(|value| (GROUP_KEY, *value))
        .chain(offset_values.iter().map(|value| (OFFSET_KEY, *value)));
    for (key_hex, value_hex) in cases {
        let value = bytes_of(value_hex);
        assert!(Record::decode(bytes_of(key_hex), Some(value.clone())).is_ok());
        for length in 0..value.len() {
            let result = Record::decode(bytes_of(key_hex), Some(value.slice(..length)));
            assert!(result.is_err(), "{length} of {} bytes decoded", value.len());
        }
    }
}

#[test]
fn value_version_outside_the_schema_is_an_error() {
    let legacy_v1 = Record::decode(
        bytes_of("0000000767726f75702d3100066f726465727300000007"),
        Some(bytes_of(
            "00010000011f71fb04cb00016d0000018bcfe568000000018bcfee8fc0",
        )),
    );
    assert_eq!(
        legacy_v1,
        Err(RecordError::UnsupportedValueVersion {
            key_version: 0,
            value_version: 1
        })
    );
    let group_v5 = Record::decode(bytes_of(GROUP_KEY), Some(bytes_of("0005")));
    assert_eq!(
        group_v5,
        Err(RecordError::UnsupportedValueVersion {
            key_version: 2,
            value_version: 5
        })
    );
}

#[test]
fn member_subscription_and_assignment_are_consumer_protocol_messages() {
    use sluice_protocol::consumer_protocol::{decode_assignment, decode_subscription};

    let group = two_member_group(GroupMetadataValue::VERSION_WRITTEN_BY_KAFKA);
    let member = &group.members[0];
    let subscription = decode_subscription(member.subscription.clone()).expect("subscription");
    let topics: Vec<&str> = subscription
        .message
        .topics
        .iter()
        .map(|topic| &**topic)
        .collect();
    assert_eq!(topics, ["orders", "payments"]);
    let assignment = decode_assignment(member.assignment.clone()).expect("assignment");
    assert_eq!(assignment.message.assigned_partitions.len(), 2);
}
