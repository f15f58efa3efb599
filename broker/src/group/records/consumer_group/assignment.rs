//! A member's partitions: its target assignment (key version 7, Kafka's
//! `ConsumerGroupTargetAssignmentMemberKey`/`Value`) and its current assignment with its
//! epochs (key version 8, `ConsumerGroupCurrentMemberAssignmentKey`/`Value`). Both keys are
//! the group id and the member id; partitions are listed by topic id.

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

use super::{
    read_array, read_i32s, read_i8, read_unknown_tagged_fields, read_uuid, write_i32s,
    write_unknown_tagged_fields, write_uuid, FLEXIBLE,
};
use crate::group::records::wire::{Encoding, RawTaggedField, Reader, Writer};
use crate::group::records::RecordError;

/// `ConsumerGroupTargetAssignmentMemberKey`: the group and the member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupTargetAssignmentMemberKey {
    pub group_id: String,
    pub member_id: String,
}

impl ConsumerGroupTargetAssignmentMemberKey {
    const GROUP_ID: &str = "target assignment key group id";
    const MEMBER_ID: &str = "target assignment key member id";

    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.string(Encoding::Classic, &self.group_id, Self::GROUP_ID)?;
        writer.string(Encoding::Classic, &self.member_id, Self::MEMBER_ID)
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupTargetAssignmentMemberKey, RecordError> {
        Ok(ConsumerGroupTargetAssignmentMemberKey {
            group_id: reader.string(Encoding::Classic, Self::GROUP_ID)?,
            member_id: reader.string(Encoding::Classic, Self::MEMBER_ID)?,
        })
    }
}

/// `ConsumerGroupTargetAssignmentMemberValue`: the partitions the assignor gave the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupTargetAssignmentMemberValue {
    pub topic_partitions: Vec<TopicPartition>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// `ConsumerGroupTargetAssignmentMemberValue.TopicPartition`: one topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartition {
    pub topic_id: Uuid,
    pub partitions: Vec<i32>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ConsumerGroupTargetAssignmentMemberValue {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        let count = self.topic_partitions.len();
        writer.array_length(FLEXIBLE, count, "target assignment topics")?;
        for topic in &self.topic_partitions {
            write_uuid(&mut writer, topic.topic_id);
            write_i32s(
                &mut writer,
                &topic.partitions,
                "target assignment partitions",
            )?;
            write_unknown_tagged_fields(
                &mut writer,
                &topic.unknown_tagged_fields,
                "target assignment topic tagged fields",
            )?;
        }
        write_unknown_tagged_fields(
            &mut writer,
            &self.unknown_tagged_fields,
            "target assignment tagged fields",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupTargetAssignmentMemberValue, RecordError> {
        Ok(ConsumerGroupTargetAssignmentMemberValue {
            topic_partitions: read_array(reader, "target assignment topics", |reader| {
                Ok(TopicPartition {
                    topic_id: read_uuid(reader, "target assignment topic id")?,
                    partitions: read_i32s(reader, "target assignment partitions")?,
                    unknown_tagged_fields: read_unknown_tagged_fields(
                        reader,
                        "target assignment topic tagged fields",
                    )?,
                })
            })?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "target assignment tagged fields",
            )?,
        })
    }
}

/// `ConsumerGroupCurrentMemberAssignmentKey`: the group and the member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupCurrentMemberAssignmentKey {
    pub group_id: String,
    pub member_id: String,
}

impl ConsumerGroupCurrentMemberAssignmentKey {
    const GROUP_ID: &str = "current assignment key group id";
    const MEMBER_ID: &str = "current assignment key member id";

    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.string(Encoding::Classic, &self.group_id, Self::GROUP_ID)?;
        writer.string(Encoding::Classic, &self.member_id, Self::MEMBER_ID)
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupCurrentMemberAssignmentKey, RecordError> {
        Ok(ConsumerGroupCurrentMemberAssignmentKey {
            group_id: reader.string(Encoding::Classic, Self::GROUP_ID)?,
            member_id: reader.string(Encoding::Classic, Self::MEMBER_ID)?,
        })
    }
}

/// `ConsumerGroupCurrentMemberAssignmentValue`: where the member's reconciliation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupCurrentMemberAssignmentValue {
    /// The epoch the member must send in its next heartbeat.
    pub member_epoch: i32,
    /// The epoch before the last bump, accepted in case the member missed that bump.
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState` byte: 0 `STABLE`, 1 `UNREVOKED_PARTITIONS`,
    /// 2 `UNRELEASED_PARTITIONS`, 127 `UNKNOWN`. Kept raw, as the schema's `int8`.
    pub state: i8,
    /// The partitions assigned to (owned by) the member.
    pub assigned_partitions: Vec<TopicPartitions>,
    /// The partitions the member must revoke before it gets new ones.
    pub partitions_pending_revocation: Vec<TopicPartitions>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue.TopicPartitions`: one topic's partitions.
/// Kafka after 4.1 adds tagged `AssignmentEpochs` (KIP-1251) here, kept as an unknown field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic_id: Uuid,
    pub partitions: Vec<i32>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ConsumerGroupCurrentMemberAssignmentValue {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.i32(self.member_epoch);
        writer.i32(self.previous_member_epoch);
        // `wire::Writer` has no `int8`: the offset and classic group records have none.
        buf.put_i8(self.state);
        let mut writer = Writer::new(buf);
        for (topics, field) in [
            (&self.assigned_partitions, "current assignment assigned"),
            (
                &self.partitions_pending_revocation,
                "current assignment pending revocation",
            ),
        ] {
            writer.array_length(FLEXIBLE, topics.len(), field)?;
            for topic in topics {
                topic.encode(&mut writer)?;
            }
        }
        write_unknown_tagged_fields(
            &mut writer,
            &self.unknown_tagged_fields,
            "current assignment tagged fields",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupCurrentMemberAssignmentValue, RecordError> {
        Ok(ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: reader.i32("current assignment member epoch")?,
            previous_member_epoch: reader.i32("current assignment previous member epoch")?,
            state: read_i8(reader, "current assignment state")?,
            assigned_partitions: read_array(
                reader,
                "current assignment assigned",
                TopicPartitions::decode,
            )?,
            partitions_pending_revocation: read_array(
                reader,
                "current assignment pending revocation",
                TopicPartitions::decode,
            )?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "current assignment tagged fields",
            )?,
        })
    }
}

impl TopicPartitions {
    fn encode(&self, writer: &mut Writer) -> Result<(), RecordError> {
        write_uuid(writer, self.topic_id);
        write_i32s(writer, &self.partitions, "current assignment partitions")?;
        write_unknown_tagged_fields(
            writer,
            &self.unknown_tagged_fields,
            "current assignment topic tagged fields",
        )
    }

    fn decode(reader: &mut Reader) -> Result<TopicPartitions, RecordError> {
        Ok(TopicPartitions {
            topic_id: read_uuid(reader, "current assignment topic id")?,
            partitions: read_i32s(reader, "current assignment partitions")?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "current assignment topic tagged fields",
            )?,
        })
    }
}
