//! The records of the whole group: its epoch (key version 3), the subscribed topics'
//! metadata that Kafka before 4.1 kept (4), and the epoch of the target assignment (6). Each
//! key is the group id alone.

use bytes::BytesMut;
use uuid::Uuid;

use super::{
    decode_group_id, encode_group_id, read_array, read_strings, read_unknown_tagged_fields,
    read_uuid, tagged_size_mismatch, write_strings, write_unknown_tagged_fields, write_uuid,
    FLEXIBLE,
};
use crate::group::records::wire::{RawTaggedField, Reader, Writer};
use crate::group::records::RecordError;

/// `ConsumerGroupMetadataKey`: the group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupMetadataKey {
    pub group_id: String,
}

impl ConsumerGroupMetadataKey {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        encode_group_id(buf, &self.group_id, "consumer group metadata key group id")
    }

    pub(super) fn decode(reader: &mut Reader) -> Result<ConsumerGroupMetadataKey, RecordError> {
        Ok(ConsumerGroupMetadataKey {
            group_id: decode_group_id(reader, "consumer group metadata key group id")?,
        })
    }
}

/// `ConsumerGroupMetadataValue`: the group's epoch, bumped whenever its members or their
/// subscriptions change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadataValue {
    pub epoch: i32,
    /// The hash of the subscribed topics' metadata (KIP-1101, Kafka 4.1); a change means the
    /// group must be rebalanced. 0, the default, is not written (tagged field 0).
    pub metadata_hash: i64,
    /// Tagged fields other than the metadata hash, kept so a rewrite loses nothing.
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ConsumerGroupMetadataValue {
    const METADATA_HASH_TAG: u32 = 0;
    const METADATA_HASH_BYTES: usize = 8;

    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.i32(self.epoch);
        let mut known = Vec::new();
        if self.metadata_hash != 0 {
            known.push(RawTaggedField {
                tag: Self::METADATA_HASH_TAG,
                data: self.metadata_hash.to_be_bytes().to_vec().into(),
            });
        }
        writer.tagged_fields(
            &known,
            &self.unknown_tagged_fields,
            "consumer group metadata tagged fields",
        )
    }

    pub(super) fn decode(reader: &mut Reader) -> Result<ConsumerGroupMetadataValue, RecordError> {
        let epoch = reader.i32("consumer group epoch")?;
        let mut metadata_hash = 0;
        let mut unknown_tagged_fields = Vec::new();
        for tagged in reader.tagged_fields("consumer group metadata tagged fields")? {
            if tagged.tag != Self::METADATA_HASH_TAG {
                unknown_tagged_fields.push(tagged);
                continue;
            }
            let bytes: [u8; Self::METADATA_HASH_BYTES] =
                tagged.data.as_ref().try_into().map_err(|_| {
                    tagged_size_mismatch("consumer group metadata hash", tagged.data.len())
                })?;
            metadata_hash = i64::from_be_bytes(bytes);
        }
        Ok(ConsumerGroupMetadataValue {
            epoch,
            metadata_hash,
            unknown_tagged_fields,
        })
    }
}

/// `ConsumerGroupPartitionMetadataKey`: the group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupPartitionMetadataKey {
    pub group_id: String,
}

impl ConsumerGroupPartitionMetadataKey {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        encode_group_id(buf, &self.group_id, "partition metadata key group id")
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupPartitionMetadataKey, RecordError> {
        Ok(ConsumerGroupPartitionMetadataKey {
            group_id: decode_group_id(reader, "partition metadata key group id")?,
        })
    }
}

/// `ConsumerGroupPartitionMetadataValue`: the subscribed topics that exist, as the group last
/// saw them. Kafka 4.1 replaced it with the metadata hash and writes only its tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupPartitionMetadataValue {
    pub topics: Vec<TopicMetadata>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// `ConsumerGroupPartitionMetadataValue.TopicMetadata`: one subscribed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub topic_id: Uuid,
    pub topic_name: String,
    pub num_partitions: i32,
    /// The racks of each partition's replicas; Kafka wrote it only with rack-aware assignors.
    pub partition_metadata: Vec<PartitionMetadata>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// `ConsumerGroupPartitionMetadataValue.PartitionMetadata`: the racks of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub racks: Vec<String>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ConsumerGroupPartitionMetadataValue {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.array_length(FLEXIBLE, self.topics.len(), "partition metadata topics")?;
        for topic in &self.topics {
            topic.encode(&mut writer)?;
        }
        write_unknown_tagged_fields(
            &mut writer,
            &self.unknown_tagged_fields,
            "partition metadata tagged fields",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupPartitionMetadataValue, RecordError> {
        Ok(ConsumerGroupPartitionMetadataValue {
            topics: read_array(reader, "partition metadata topics", TopicMetadata::decode)?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "partition metadata tagged fields",
            )?,
        })
    }
}

impl TopicMetadata {
    fn encode(&self, writer: &mut Writer) -> Result<(), RecordError> {
        write_uuid(writer, self.topic_id);
        writer.string(FLEXIBLE, &self.topic_name, "partition metadata topic name")?;
        writer.i32(self.num_partitions);
        let count = self.partition_metadata.len();
        writer.array_length(FLEXIBLE, count, "partition metadata partitions")?;
        for partition in &self.partition_metadata {
            writer.i32(partition.partition);
            write_strings(writer, &partition.racks, "partition metadata racks")?;
            write_unknown_tagged_fields(
                writer,
                &partition.unknown_tagged_fields,
                "partition metadata partition tagged fields",
            )?;
        }
        write_unknown_tagged_fields(
            writer,
            &self.unknown_tagged_fields,
            "partition metadata topic tagged fields",
        )
    }

    fn decode(reader: &mut Reader) -> Result<TopicMetadata, RecordError> {
        Ok(TopicMetadata {
            topic_id: read_uuid(reader, "partition metadata topic id")?,
            topic_name: reader.string(FLEXIBLE, "partition metadata topic name")?,
            num_partitions: reader.i32("partition metadata partition count")?,
            partition_metadata: read_array(
                reader,
                "partition metadata partitions",
                PartitionMetadata::decode,
            )?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "partition metadata topic tagged fields",
            )?,
        })
    }
}

impl PartitionMetadata {
    fn decode(reader: &mut Reader) -> Result<PartitionMetadata, RecordError> {
        Ok(PartitionMetadata {
            partition: reader.i32("partition metadata partition")?,
            racks: read_strings(reader, "partition metadata racks")?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "partition metadata partition tagged fields",
            )?,
        })
    }
}

/// `ConsumerGroupTargetAssignmentMetadataKey`: the group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupTargetAssignmentMetadataKey {
    pub group_id: String,
}

impl ConsumerGroupTargetAssignmentMetadataKey {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        encode_group_id(
            buf,
            &self.group_id,
            "target assignment metadata key group id",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupTargetAssignmentMetadataKey, RecordError> {
        Ok(ConsumerGroupTargetAssignmentMetadataKey {
            group_id: decode_group_id(reader, "target assignment metadata key group id")?,
        })
    }
}

/// `ConsumerGroupTargetAssignmentMetadataValue`: the group epoch the target assignment was
/// computed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupTargetAssignmentMetadataValue {
    pub assignment_epoch: i32,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ConsumerGroupTargetAssignmentMetadataValue {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.i32(self.assignment_epoch);
        write_unknown_tagged_fields(
            &mut writer,
            &self.unknown_tagged_fields,
            "target assignment metadata tagged fields",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupTargetAssignmentMetadataValue, RecordError> {
        Ok(ConsumerGroupTargetAssignmentMetadataValue {
            assignment_epoch: reader.i32("target assignment epoch")?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "target assignment metadata tagged fields",
            )?,
        })
    }
}
