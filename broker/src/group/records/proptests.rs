//! Property tests: every record round-trips, and no input makes decoding panic.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn opaque() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

/// Unknown tagged fields; tag 0 is the offset commit's topic id, so these start at 1.
fn tagged_fields() -> impl Strategy<Value = Vec<RawTaggedField>> {
    vec(
        (1u32..100_000, opaque()).prop_map(|(tag, data)| RawTaggedField { tag, data }),
        0..3,
    )
}

fn offset_commit_key() -> impl Strategy<Value = OffsetCommitKey> {
    (text(), text(), any::<i32>()).prop_map(|(group, topic, partition)| OffsetCommitKey {
        group,
        topic,
        partition,
    })
}

/// A value at `version` with the fields that version lacks at their defaults.
fn offset_commit_value(
    versions: std::ops::RangeInclusive<i16>,
) -> impl Strategy<Value = OffsetCommitValue> {
    let fields = (
        any::<i64>(),
        any::<i32>(),
        text(),
        any::<i64>(),
        any::<i64>(),
        any::<u128>(),
    );
    (versions, fields, tagged_fields()).prop_map(|(version, fields, tagged)| {
        let (offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms, id) = fields;
        OffsetCommitValue {
            version,
            offset,
            leader_epoch: if version >= 3 { leader_epoch } else { -1 },
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms: if version == 1 {
                expire_timestamp_ms
            } else {
                -1
            },
            topic_id: if version >= 4 {
                Uuid::from_u128(id)
            } else {
                Uuid::nil()
            },
            unknown_tagged_fields: if version >= 4 { tagged } else { Vec::new() },
        }
    })
}

fn member(version: i16) -> impl Strategy<Value = MemberMetadata> {
    let names = (text(), option::of(text()), text(), text());
    let rest = (
        any::<i32>(),
        any::<i32>(),
        opaque(),
        opaque(),
        tagged_fields(),
    );
    (names, rest).prop_map(move |(names, rest)| {
        let (member_id, group_instance_id, client_id, client_host) = names;
        let (rebalance_timeout_ms, session_timeout_ms, subscription, assignment, tagged) = rest;
        MemberMetadata {
            member_id,
            group_instance_id: if version >= 3 {
                group_instance_id
            } else {
                None
            },
            client_id,
            client_host,
            rebalance_timeout_ms: if version >= 1 {
                rebalance_timeout_ms
            } else {
                -1
            },
            session_timeout_ms,
            subscription,
            assignment,
            unknown_tagged_fields: if version >= 4 { tagged } else { Vec::new() },
        }
    })
}

fn group_metadata_value() -> impl Strategy<Value = GroupMetadataValue> {
    (0i16..=4).prop_flat_map(|version| {
        let head = (
            text(),
            any::<i32>(),
            option::of(text()),
            option::of(text()),
            any::<i64>(),
        );
        (head, vec(member(version), 0..4), tagged_fields()).prop_map(
            move |(head, members, tagged)| {
                let (protocol_type, generation, protocol, leader, timestamp) = head;
                GroupMetadataValue {
                    version,
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp_ms: if version >= 2 { timestamp } else { -1 },
                    members,
                    unknown_tagged_fields: if version >= 4 { tagged } else { Vec::new() },
                }
            },
        )
    })
}

fn record() -> impl Strategy<Value = Record> {
    let current =
        (offset_commit_key(), option::of(offset_commit_value(0..=4))).prop_map(|(key, value)| {
            Record::OffsetCommit {
                key_version: OffsetKeyVersion::Current,
                key,
                value,
            }
        });
    let legacy =
        (offset_commit_key(), option::of(offset_commit_value(0..=0))).prop_map(|(key, value)| {
            Record::OffsetCommit {
                key_version: OffsetKeyVersion::Legacy,
                key,
                value,
            }
        });
    let group = (text(), option::of(group_metadata_value())).prop_map(|(group, value)| {
        Record::GroupMetadata {
            key: GroupMetadataKey { group },
            value,
        }
    });
    prop_oneof![current, legacy, group]
}

/// Bytes that start like a value of a known version, so the field parsers see them.
fn versioned_garbage() -> impl Strategy<Value = Bytes> {
    (-1i16..=5, vec(any::<u8>(), 0..128)).prop_map(|(version, rest)| {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        buf.put_slice(&rest);
        buf.freeze()
    })
}

proptest! {
    #[test]
    fn every_record_round_trips(record in record()) {
        let key = record.encode_key().expect("encode key");
        let value = record.encode_value().expect("encode value");
        prop_assert_eq!(Record::decode(key, value).expect("decode"), record);
    }

    #[test]
    fn decoding_random_bytes_never_panics(
        key_version in 0i16..=3,
        key_rest in vec(any::<u8>(), 0..48),
        value in option::of(versioned_garbage()),
    ) {
        let mut key = BytesMut::new();
        key.put_i16(key_version);
        key.put_slice(&key_rest);
        let _ = Record::decode(key.freeze(), value);
    }

    #[test]
    fn decoding_a_corrupted_record_never_panics(
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
fn huge_member_count_is_refused_before_allocating() {
    // GroupMetadataValue v3: protocol type "", generation 0, null protocol and leader,
    // timestamp 0, then a member count of i32::MAX with nothing after it.
    let mut value = BytesMut::new();
    value.put_i16(3);
    value.put_i16(0);
    value.put_i32(0);
    value.put_i16(-1);
    value.put_i16(-1);
    value.put_i64(0);
    value.put_i32(i32::MAX);
    let key = Record::group_metadata_tombstone(GroupMetadataKey { group: "g".into() })
        .encode_key()
        .expect("encode key");
    let result = Record::decode(key, Some(value.freeze()));
    assert_eq!(
        result,
        Err(RecordError::InvalidLength {
            field: "group members",
            length: i64::from(i32::MAX),
        })
    );
}

#[test]
fn string_longer_than_kafka_allows_is_refused_on_encode() {
    let key = OffsetCommitKey {
        group: "g".repeat(usize::from(i16::MAX.unsigned_abs()) + 1),
        topic: "t".into(),
        partition: 0,
    };
    let result = Record::offset_commit_tombstone(key).encode_key();
    assert!(matches!(
        result,
        Err(RecordError::TooLong {
            field: "offset commit key group",
            ..
        })
    ));
}
