//! Mapping between a consumer group's records as its state machine models them
//! ([`ConsumerGroupRecord`]) and as they are stored ([`ConsumerGroupLogRecord`], Kafka 4.1.1's
//! byte format).
//!
//! This module owns the translation only: which key and value each state-machine record is
//! written as, and which state-machine record a stored one is read back as. The bytes are
//! the codec's (`group::records`); what a record does to a group is `ConsumerGroup::replay`'s.
//!
//! # Writing (Kafka 4.1.1 compatibility)
//!
//! Each variant is written with its key version (3-8, [`ConsumerGroupRecord::key_version`])
//! and value version 0; a tombstone is the same key with a null value. What Kafka 4.1.1
//! would write for the same group is written:
//!
//! - A member without a regular expression has `SubscribedTopicRegex` `""`, not null
//!   (Kafka's `ConsumerGroupMember` defaults it to the empty string).
//! - `ClassicMemberMetadata` is null: every member here uses the consumer protocol.
//! - `ConsumerGroupMetadataValue.MetadataHash` is 0, which is not written (the hash of
//!   KIP-1101 is not computed yet; a Kafka that loads the group sees a changed hash and
//!   rebalances it once).
//! - `PartitionMetadata`'s topics are written in name order, each with its id and partition
//!   count and no per-partition racks (Kafka wrote racks only for rack-aware assignors).
//!   Kafka 4.1.1 itself writes only this record's tombstone.
//! - `MemberState` is the byte Kafka stores: 0 `STABLE`, 1 `UNREVOKED_PARTITIONS`,
//!   2 `UNRELEASED_PARTITIONS`.
//! - Partitions are written as one entry per topic in topic id order, each with its
//!   partitions ascending ([`Partitions`] is ordered both ways).
//!
//! No unknown tagged fields are written.
//!
//! # Reading
//!
//! [`from_log_record`] is the inverse of [`to_log_record`]: for every record `r` the state
//! machine can produce (member ids and regexes as the state machine keeps them: no empty
//! partition sets, no `Some("")` regex), `from_log_record(to_log_record(g, r))` is `(g, r)`.
//! What the state machine does not model is dropped on the way in:
//!
//! - `ConsumerGroupRegularExpression` records (key version 16) read as `None`: regex
//!   subscriptions are refused by the state machine, so it keeps no resolved topics.
//! - A stored regex of `""` reads as no regex.
//! - The metadata hash, per-partition racks, classic member metadata (a member of a classic
//!   group being upgraded reads as a consumer-protocol member) and unknown tagged fields are
//!   dropped.
//! - A stored topic with no partitions is dropped and repeated partitions collapse, since
//!   [`Partitions`] holds no empty sets; repeated topic names in `PartitionMetadata` keep
//!   the last.
//! - A current assignment whose `State` is not 0, 1 or 2 (Kafka's 127 `UNKNOWN`, or a state
//!   of a newer Kafka) reads as `None`. Kafka's `MemberState.fromValue` maps such a byte to
//!   `UNKNOWN`, a state the member is fenced from on its next heartbeat; the state machine
//!   has no such state, and reading it as any other state would invent a reconciliation
//!   step the member never reached. The caller can tell this `None` from the regex one by the
//!   record's type, and should stop loading the group as for any record it cannot replay
//!   ([`MemberState::from_record_value`]).

use std::collections::BTreeMap;

use crate::group::consumer::member::{CurrentAssignment, MemberMetadata, MemberState};
use crate::group::consumer::records::ConsumerGroupRecord;
use crate::group::consumer::{Partitions, TopicInfo};
use crate::group::records::{
    ConsumerGroupCurrentMemberAssignmentKey, ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupLogRecord, ConsumerGroupMemberMetadataKey, ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataKey, ConsumerGroupMetadataValue, ConsumerGroupPartitionMetadataKey,
    ConsumerGroupPartitionMetadataValue, ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue, ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue, Record, TopicMetadata, TopicPartition,
    TopicPartitions,
};

/// The `SubscribedTopicRegex` Kafka writes for a member without one.
const NO_REGEX: &str = "";

/// The stored form of `record` of group `group_id`.
pub(super) fn to_log_record(group_id: &str, record: &ConsumerGroupRecord) -> Record {
    use ConsumerGroupLogRecord as Log;
    use ConsumerGroupRecord::*;
    let group_id = group_id.to_string();
    let log = match record {
        GroupMetadata { epoch } => Log::Metadata {
            key: ConsumerGroupMetadataKey { group_id },
            value: Some(ConsumerGroupMetadataValue {
                epoch: *epoch,
                metadata_hash: 0,
                unknown_tagged_fields: Vec::new(),
            }),
        },
        GroupMetadataTombstone => Log::Metadata {
            key: ConsumerGroupMetadataKey { group_id },
            value: None,
        },
        PartitionMetadata { topics } => Log::PartitionMetadata {
            key: ConsumerGroupPartitionMetadataKey { group_id },
            value: Some(partition_metadata_value(topics)),
        },
        PartitionMetadataTombstone => Log::PartitionMetadata {
            key: ConsumerGroupPartitionMetadataKey { group_id },
            value: None,
        },
        MemberMetadata {
            member_id,
            metadata,
        } => Log::MemberMetadata {
            key: ConsumerGroupMemberMetadataKey {
                group_id,
                member_id: member_id.clone(),
            },
            value: Some(member_metadata_value(metadata)),
        },
        MemberMetadataTombstone { member_id } => Log::MemberMetadata {
            key: ConsumerGroupMemberMetadataKey {
                group_id,
                member_id: member_id.clone(),
            },
            value: None,
        },
        TargetAssignmentMetadata { assignment_epoch } => Log::TargetAssignmentMetadata {
            key: ConsumerGroupTargetAssignmentMetadataKey { group_id },
            value: Some(ConsumerGroupTargetAssignmentMetadataValue {
                assignment_epoch: *assignment_epoch,
                unknown_tagged_fields: Vec::new(),
            }),
        },
        TargetAssignmentMetadataTombstone => Log::TargetAssignmentMetadata {
            key: ConsumerGroupTargetAssignmentMetadataKey { group_id },
            value: None,
        },
        TargetAssignmentMember {
            member_id,
            partitions,
        } => Log::TargetAssignmentMember {
            key: ConsumerGroupTargetAssignmentMemberKey {
                group_id,
                member_id: member_id.clone(),
            },
            value: Some(ConsumerGroupTargetAssignmentMemberValue {
                topic_partitions: partitions
                    .iter()
                    .map(|(topic_id, set)| TopicPartition {
                        topic_id: *topic_id,
                        partitions: set.iter().copied().collect(),
                        unknown_tagged_fields: Vec::new(),
                    })
                    .collect(),
                unknown_tagged_fields: Vec::new(),
            }),
        },
        TargetAssignmentMemberTombstone { member_id } => Log::TargetAssignmentMember {
            key: ConsumerGroupTargetAssignmentMemberKey {
                group_id,
                member_id: member_id.clone(),
            },
            value: None,
        },
        CurrentMemberAssignment {
            member_id,
            assignment,
        } => Log::CurrentMemberAssignment {
            key: ConsumerGroupCurrentMemberAssignmentKey {
                group_id,
                member_id: member_id.clone(),
            },
            value: Some(ConsumerGroupCurrentMemberAssignmentValue {
                member_epoch: assignment.member_epoch,
                previous_member_epoch: assignment.previous_member_epoch,
                state: assignment.state.as_record_value(),
                assigned_partitions: stored_partitions(&assignment.assigned_partitions),
                partitions_pending_revocation: stored_partitions(
                    &assignment.partitions_pending_revocation,
                ),
                unknown_tagged_fields: Vec::new(),
            }),
        },
        CurrentMemberAssignmentTombstone { member_id } => Log::CurrentMemberAssignment {
            key: ConsumerGroupCurrentMemberAssignmentKey {
                group_id,
                member_id: member_id.clone(),
            },
            value: None,
        },
    };
    Record::ConsumerGroup(log)
}

/// The group id and state-machine form of a stored record; `None` for records the state
/// machine does not model (regular expressions) and for a current assignment in a state it
/// does not know (see the module docs).
pub(super) fn from_log_record(
    record: &ConsumerGroupLogRecord,
) -> Option<(String, ConsumerGroupRecord)> {
    use ConsumerGroupLogRecord as Log;
    use ConsumerGroupRecord::*;
    let (group_id, record) = match record {
        Log::Metadata { key, value } => (
            &key.group_id,
            match value {
                Some(value) => GroupMetadata { epoch: value.epoch },
                None => GroupMetadataTombstone,
            },
        ),
        Log::PartitionMetadata { key, value } => (
            &key.group_id,
            match value {
                Some(value) => PartitionMetadata {
                    topics: value
                        .topics
                        .iter()
                        .map(|topic| {
                            let info = TopicInfo {
                                topic_id: topic.topic_id,
                                partition_count: topic.num_partitions,
                            };
                            (topic.topic_name.clone(), info)
                        })
                        .collect(),
                },
                None => PartitionMetadataTombstone,
            },
        ),
        Log::MemberMetadata { key, value } => {
            let member_id = key.member_id.clone();
            (
                &key.group_id,
                match value {
                    Some(value) => MemberMetadata {
                        member_id,
                        metadata: member_metadata(value),
                    },
                    None => MemberMetadataTombstone { member_id },
                },
            )
        }
        Log::TargetAssignmentMetadata { key, value } => (
            &key.group_id,
            match value {
                Some(value) => TargetAssignmentMetadata {
                    assignment_epoch: value.assignment_epoch,
                },
                None => TargetAssignmentMetadataTombstone,
            },
        ),
        Log::TargetAssignmentMember { key, value } => {
            let member_id = key.member_id.clone();
            (
                &key.group_id,
                match value {
                    Some(value) => TargetAssignmentMember {
                        member_id,
                        partitions: partitions_of(
                            value
                                .topic_partitions
                                .iter()
                                .map(|topic| (topic.topic_id, &topic.partitions)),
                        ),
                    },
                    None => TargetAssignmentMemberTombstone { member_id },
                },
            )
        }
        Log::CurrentMemberAssignment { key, value } => {
            let member_id = key.member_id.clone();
            (
                &key.group_id,
                match value {
                    Some(value) => CurrentMemberAssignment {
                        member_id,
                        assignment: CurrentAssignment {
                            member_epoch: value.member_epoch,
                            previous_member_epoch: value.previous_member_epoch,
                            state: MemberState::from_record_value(value.state)?,
                            assigned_partitions: read_partitions(&value.assigned_partitions),
                            partitions_pending_revocation: read_partitions(
                                &value.partitions_pending_revocation,
                            ),
                        },
                    },
                    None => CurrentMemberAssignmentTombstone { member_id },
                },
            )
        }
        Log::RegularExpression { .. } => return None,
    };
    Some((group_id.clone(), record))
}

fn partition_metadata_value(
    topics: &BTreeMap<String, TopicInfo>,
) -> ConsumerGroupPartitionMetadataValue {
    ConsumerGroupPartitionMetadataValue {
        topics: topics
            .iter()
            .map(|(name, info)| TopicMetadata {
                topic_id: info.topic_id,
                topic_name: name.clone(),
                num_partitions: info.partition_count,
                partition_metadata: Vec::new(),
                unknown_tagged_fields: Vec::new(),
            })
            .collect(),
        unknown_tagged_fields: Vec::new(),
    }
}

fn member_metadata_value(metadata: &MemberMetadata) -> ConsumerGroupMemberMetadataValue {
    let regex = metadata
        .subscribed_topic_regex
        .as_deref()
        .unwrap_or(NO_REGEX);
    ConsumerGroupMemberMetadataValue {
        instance_id: metadata.instance_id.clone(),
        rack_id: metadata.rack_id.clone(),
        client_id: metadata.client_id.clone(),
        client_host: metadata.client_host.clone(),
        subscribed_topic_names: metadata.subscribed_topic_names.clone(),
        subscribed_topic_regex: Some(regex.to_string()),
        rebalance_timeout_ms: metadata.rebalance_timeout_ms,
        server_assignor: metadata.server_assignor.clone(),
        classic_member_metadata: None,
        unknown_tagged_fields: Vec::new(),
    }
}

fn member_metadata(value: &ConsumerGroupMemberMetadataValue) -> MemberMetadata {
    MemberMetadata {
        instance_id: value.instance_id.clone(),
        rack_id: value.rack_id.clone(),
        client_id: value.client_id.clone(),
        client_host: value.client_host.clone(),
        subscribed_topic_names: value.subscribed_topic_names.clone(),
        subscribed_topic_regex: value
            .subscribed_topic_regex
            .clone()
            .filter(|regex| regex != NO_REGEX),
        rebalance_timeout_ms: value.rebalance_timeout_ms,
        server_assignor: value.server_assignor.clone(),
    }
}

/// A current assignment's partitions as stored: topics in id order, partitions ascending.
fn stored_partitions(partitions: &Partitions) -> Vec<TopicPartitions> {
    partitions
        .iter()
        .map(|(topic_id, set)| TopicPartitions {
            topic_id: *topic_id,
            partitions: set.iter().copied().collect(),
            unknown_tagged_fields: Vec::new(),
        })
        .collect()
}

fn read_partitions(topics: &[TopicPartitions]) -> Partitions {
    partitions_of(
        topics
            .iter()
            .map(|topic| (topic.topic_id, &topic.partitions)),
    )
}

/// Stored topic lists as [`Partitions`]: a topic listed twice gets the partitions of both,
/// and one with no partitions gets no entry.
fn partitions_of<'a>(topics: impl Iterator<Item = (uuid::Uuid, &'a Vec<i32>)>) -> Partitions {
    let mut partitions = Partitions::new();
    for (topic_id, list) in topics {
        if !list.is_empty() {
            partitions
                .entry(topic_id)
                .or_default()
                .extend(list.iter().copied());
        }
    }
    partitions
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::collection::{btree_map, btree_set};
    use proptest::option;
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    const GROUP: &str = "payments";

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn partitions(topics: &[(Uuid, &[i32])]) -> Partitions {
        topics
            .iter()
            .map(|(id, ps)| (*id, ps.iter().copied().collect::<BTreeSet<i32>>()))
            .collect()
    }

    fn static_member_metadata() -> MemberMetadata {
        MemberMetadata {
            instance_id: Some("instance-1".into()),
            rack_id: Some("rack-a".into()),
            client_id: "consumer-1".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["orders".into(), "refunds".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("uniform".into()),
        }
    }

    /// Every variant, tombstones included, with representative values.
    fn representative_records() -> Vec<ConsumerGroupRecord> {
        use ConsumerGroupRecord as R;
        let orders = topic(0x0a);
        let refunds = topic(0x0b);
        let member_id = "member-1".to_string();
        vec![
            R::GroupMetadata { epoch: 7 },
            R::GroupMetadataTombstone,
            R::PartitionMetadata {
                topics: BTreeMap::from([
                    (
                        "orders".to_string(),
                        TopicInfo {
                            topic_id: orders,
                            partition_count: 6,
                        },
                    ),
                    (
                        "refunds".to_string(),
                        TopicInfo {
                            topic_id: refunds,
                            partition_count: 3,
                        },
                    ),
                ]),
            },
            R::PartitionMetadataTombstone,
            R::MemberMetadata {
                member_id: member_id.clone(),
                metadata: static_member_metadata(),
            },
            R::MemberMetadata {
                member_id: "member-2".into(),
                metadata: MemberMetadata {
                    subscribed_topic_regex: Some("orders-.*".into()),
                    rebalance_timeout_ms: -1,
                    ..MemberMetadata::default()
                },
            },
            R::MemberMetadataTombstone {
                member_id: member_id.clone(),
            },
            R::TargetAssignmentMetadata {
                assignment_epoch: 7,
            },
            R::TargetAssignmentMetadataTombstone,
            R::TargetAssignmentMember {
                member_id: member_id.clone(),
                partitions: partitions(&[(orders, &[0, 2, 4]), (refunds, &[1])]),
            },
            R::TargetAssignmentMemberTombstone {
                member_id: member_id.clone(),
            },
            R::CurrentMemberAssignment {
                member_id: member_id.clone(),
                assignment: CurrentAssignment {
                    member_epoch: 7,
                    previous_member_epoch: 6,
                    state: MemberState::UnrevokedPartitions,
                    assigned_partitions: partitions(&[(orders, &[0, 2]), (refunds, &[1])]),
                    partitions_pending_revocation: partitions(&[(orders, &[5])]),
                },
            },
            R::CurrentMemberAssignment {
                member_id: "member-2".into(),
                assignment: CurrentAssignment {
                    state: MemberState::UnreleasedPartitions,
                    ..CurrentAssignment::joining()
                },
            },
            R::CurrentMemberAssignmentTombstone { member_id },
        ]
    }

    fn consumer_group(record: Record) -> ConsumerGroupLogRecord {
        match record {
            Record::ConsumerGroup(record) => record,
            other => panic!("not a consumer group record: {other:?}"),
        }
    }

    fn through_bytes(record: &Record) -> Record {
        let key = record.encode_key().expect("key encodes");
        let value = record.encode_value().expect("value encodes");
        Record::decode(key, value).expect("record decodes")
    }

    #[test]
    fn every_variant_round_trips() {
        for record in representative_records() {
            let log = consumer_group(to_log_record(GROUP, &record));
            assert_eq!(log.key_version(), record.key_version(), "{record:?}");
            assert_eq!(log.is_tombstone(), record.is_tombstone(), "{record:?}");
            assert_eq!(
                from_log_record(&log),
                Some((GROUP.to_string(), record.clone()))
            );
        }
    }

    #[test]
    fn every_variant_round_trips_through_bytes() {
        for record in representative_records() {
            let log = to_log_record(GROUP, &record);
            let decoded = through_bytes(&log);
            assert_eq!(decoded, log);
            assert_eq!(
                from_log_record(&consumer_group(decoded)),
                Some((GROUP.to_string(), record))
            );
        }
    }

    #[test]
    fn member_is_written_as_kafka_writes_a_consumer_protocol_member() {
        let record = ConsumerGroupRecord::MemberMetadata {
            member_id: "member-1".into(),
            metadata: static_member_metadata(),
        };
        let ConsumerGroupLogRecord::MemberMetadata {
            value: Some(value), ..
        } = consumer_group(to_log_record(GROUP, &record))
        else {
            panic!("not a member metadata value");
        };
        assert_eq!(value.subscribed_topic_regex.as_deref(), Some(""));
        assert_eq!(value.classic_member_metadata, None);
    }

    #[test]
    fn group_metadata_is_written_without_hash() {
        let record = ConsumerGroupRecord::GroupMetadata { epoch: 3 };
        let ConsumerGroupLogRecord::Metadata {
            value: Some(value), ..
        } = consumer_group(to_log_record(GROUP, &record))
        else {
            panic!("not a group metadata value");
        };
        assert_eq!(value.metadata_hash, 0);
    }

    #[test]
    fn member_state_is_written_as_kafka_byte() {
        for (state, byte) in [
            (MemberState::Stable, 0),
            (MemberState::UnrevokedPartitions, 1),
            (MemberState::UnreleasedPartitions, 2),
        ] {
            let record = ConsumerGroupRecord::CurrentMemberAssignment {
                member_id: "m".into(),
                assignment: CurrentAssignment {
                    state,
                    ..CurrentAssignment::joining()
                },
            };
            let ConsumerGroupLogRecord::CurrentMemberAssignment {
                value: Some(value), ..
            } = consumer_group(to_log_record(GROUP, &record))
            else {
                panic!("not a current assignment value");
            };
            assert_eq!(value.state, byte);
        }
    }

    #[test]
    fn partition_metadata_is_written_in_name_order_without_racks() {
        let record = ConsumerGroupRecord::PartitionMetadata {
            topics: BTreeMap::from([
                (
                    "b".to_string(),
                    TopicInfo {
                        topic_id: topic(1),
                        partition_count: 1,
                    },
                ),
                (
                    "a".to_string(),
                    TopicInfo {
                        topic_id: topic(2),
                        partition_count: 2,
                    },
                ),
            ]),
        };
        let ConsumerGroupLogRecord::PartitionMetadata {
            value: Some(value), ..
        } = consumer_group(to_log_record(GROUP, &record))
        else {
            panic!("not a partition metadata value");
        };
        let names: Vec<&str> = value.topics.iter().map(|t| t.topic_name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(value.topics.iter().all(|t| t.partition_metadata.is_empty()));
    }

    #[test]
    fn regular_expression_is_not_modelled() {
        let record = ConsumerGroupLogRecord::RegularExpression {
            key: crate::group::records::ConsumerGroupRegularExpressionKey {
                group_id: GROUP.into(),
                regular_expression: "orders-.*".into(),
            },
            value: None,
        };
        assert_eq!(from_log_record(&record), None);
    }

    #[test]
    fn unknown_member_state_is_not_read() {
        let record = ConsumerGroupRecord::CurrentMemberAssignment {
            member_id: "m".into(),
            assignment: CurrentAssignment::joining(),
        };
        let mut log = consumer_group(to_log_record(GROUP, &record));
        let ConsumerGroupLogRecord::CurrentMemberAssignment {
            value: Some(value), ..
        } = &mut log
        else {
            panic!("not a current assignment value");
        };
        value.state = 127;
        assert_eq!(from_log_record(&log), None);
    }

    #[test]
    fn stored_topics_without_partitions_are_dropped_and_repeats_merge() {
        let id = topic(9);
        let stored = [
            TopicPartitions {
                topic_id: id,
                partitions: vec![3, 1],
                unknown_tagged_fields: Vec::new(),
            },
            TopicPartitions {
                topic_id: topic(10),
                partitions: Vec::new(),
                unknown_tagged_fields: Vec::new(),
            },
            TopicPartitions {
                topic_id: id,
                partitions: vec![1, 2],
                unknown_tagged_fields: Vec::new(),
            },
        ];
        assert_eq!(read_partitions(&stored), partitions(&[(id, &[1, 2, 3])]));
    }

    fn text() -> impl Strategy<Value = String> {
        "\\PC{0,8}"
    }

    fn non_empty_text() -> impl Strategy<Value = String> {
        "\\PC{1,8}"
    }

    fn arbitrary_partitions() -> impl Strategy<Value = Partitions> {
        btree_map(
            any::<u128>().prop_map(Uuid::from_u128),
            btree_set(any::<i32>(), 1..4),
            0..3,
        )
    }

    fn arbitrary_metadata() -> impl Strategy<Value = MemberMetadata> {
        (
            option::of(text()),
            option::of(text()),
            text(),
            text(),
            btree_set(text(), 0..3),
            option::of(non_empty_text()),
            any::<i32>(),
            option::of(text()),
        )
            .prop_map(
                |(
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    names,
                    regex,
                    timeout,
                    assignor,
                )| {
                    MemberMetadata {
                        instance_id,
                        rack_id,
                        client_id,
                        client_host,
                        subscribed_topic_names: names.into_iter().collect(),
                        subscribed_topic_regex: regex,
                        rebalance_timeout_ms: timeout,
                        server_assignor: assignor,
                    }
                },
            )
    }

    fn arbitrary_assignment() -> impl Strategy<Value = CurrentAssignment> {
        (
            any::<i32>(),
            any::<i32>(),
            prop_oneof![
                Just(MemberState::Stable),
                Just(MemberState::UnrevokedPartitions),
                Just(MemberState::UnreleasedPartitions),
            ],
            arbitrary_partitions(),
            arbitrary_partitions(),
        )
            .prop_map(
                |(member_epoch, previous_member_epoch, state, assigned, pending)| {
                    CurrentAssignment {
                        member_epoch,
                        previous_member_epoch,
                        state,
                        assigned_partitions: assigned,
                        partitions_pending_revocation: pending,
                    }
                },
            )
    }

    fn arbitrary_record() -> impl Strategy<Value = ConsumerGroupRecord> {
        use ConsumerGroupRecord::*;
        let topic_info = (any::<u128>(), any::<i32>()).prop_map(|(id, count)| TopicInfo {
            topic_id: Uuid::from_u128(id),
            partition_count: count,
        });
        prop_oneof![
            any::<i32>().prop_map(|epoch| GroupMetadata { epoch }),
            Just(GroupMetadataTombstone),
            btree_map(text(), topic_info, 0..3).prop_map(|topics| PartitionMetadata { topics }),
            Just(PartitionMetadataTombstone),
            (text(), arbitrary_metadata()).prop_map(|(member_id, metadata)| MemberMetadata {
                member_id,
                metadata
            }),
            text().prop_map(|member_id| MemberMetadataTombstone { member_id }),
            any::<i32>().prop_map(|assignment_epoch| TargetAssignmentMetadata { assignment_epoch }),
            Just(TargetAssignmentMetadataTombstone),
            (text(), arbitrary_partitions()).prop_map(|(member_id, partitions)| {
                TargetAssignmentMember {
                    member_id,
                    partitions,
                }
            }),
            text().prop_map(|member_id| TargetAssignmentMemberTombstone { member_id }),
            (text(), arbitrary_assignment()).prop_map(|(member_id, assignment)| {
                CurrentMemberAssignment {
                    member_id,
                    assignment,
                }
            }),
            text().prop_map(|member_id| CurrentMemberAssignmentTombstone { member_id }),
        ]
    }

    proptest! {
        #[test]
        fn generated_records_round_trip_through_bytes(
            group_id in text(),
            record in arbitrary_record(),
        ) {
            let decoded = through_bytes(&to_log_record(&group_id, &record));
            let read = from_log_record(&consumer_group(decoded));
            prop_assert_eq!(read, Some((group_id, record)));
        }
    }
}
