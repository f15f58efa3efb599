//! The records of a KIP-848 consumer group, byte for byte as Kafka 4.1.1 writes them: key
//! versions (Kafka's record types) 3-8 and 16. Each is a key of classic (non-flexible)
//! strings and a value at version 0, the only one these schemas have, which is flexible:
//! compact lengths, and a tagged-field section at the end of the value and of every struct
//! in it. A null value is a tombstone.
//!
//! | key version | Kafka's key / value                          | fields of the value (Kafka 4.1.1)                                   |
//! |-------------|----------------------------------------------|---------------------------------------------------------------------|
//! | 3           | `ConsumerGroupMetadata`                      | `Epoch`; tag 0 `MetadataHash`                                       |
//! | 4           | `ConsumerGroupPartitionMetadata`             | `Topics[]`: `TopicId`, `TopicName`, `NumPartitions`, `PartitionMetadata[]`: `Partition`, `Racks[]` |
//! | 5           | `ConsumerGroupMemberMetadata`                | `InstanceId`, `RackId`, `ClientId`, `ClientHost`, `SubscribedTopicNames[]`, `SubscribedTopicRegex`, `RebalanceTimeoutMs`, `ServerAssignor`; tag 0 `ClassicMemberMetadata` |
//! | 6           | `ConsumerGroupTargetAssignmentMetadata`      | `AssignmentEpoch`                                                   |
//! | 7           | `ConsumerGroupTargetAssignmentMember`        | `TopicPartitions[]`: `TopicId`, `Partitions[]`                      |
//! | 8           | `ConsumerGroupCurrentMemberAssignment`       | `MemberEpoch`, `PreviousMemberEpoch`, `State`, `AssignedPartitions[]`, `PartitionsPendingRevocation[]` (each `TopicId`, `Partitions[]`) |
//! | 16          | `ConsumerGroupRegularExpression`             | `Topics[]`, `Version`, `Timestamp`                                  |
//!
//! The keys are `GroupId` (3, 4, 6), `GroupId` and `MemberId` (5, 7, 8), and `GroupId` and
//! `RegularExpression` (16).
//!
//! What Kafka 4.1.1 does differently from the 2024 schemas that the group's state machine
//! (`group::consumer::records`) follows:
//!
//! - `ConsumerGroupMetadataValue` has a tagged `MetadataHash` (KIP-1101): a hash of the
//!   subscribed topics' metadata, written only when it is not 0.
//! - `ConsumerGroupPartitionMetadata` is no longer written; Kafka 4.1.1 writes only its
//!   tombstone, to drop a record an older Kafka left. It is decoded and encoded all the same.
//! - A regex subscription's resolved topics are persisted as `ConsumerGroupRegularExpression`
//!   records (key version 16).
//! - `ClassicMemberMetadata` (the protocols of a member that joined with the classic
//!   protocol) is a nullable tagged struct, and Kafka's generated code writes it in a way of
//!   its own, mirrored here: see [`ConsumerGroupMemberMetadataValue`].
//!
//! Newer Kafkas add tagged fields (`CreationTimeMs` to the group metadata, `AssignmentEpochs`
//! to the current assignment's partitions); here they are unknown tagged fields, kept.
//!
//! # Invariants
//!
//! As for every record of `__consumer_offsets` (see the parent module): decoding never
//! panics, reads counts and lengths only through `wire::Reader`, refuses a value version other
//! than 0 (`UnsupportedValueVersion`, as Kafka's `UnknownRecordVersionException`), and
//! encoding what was decoded from Kafka's bytes gives those bytes back. A known tagged field
//! whose size does not match its contents is an error (Kafka would read past it and
//! misparse what follows).

mod assignment;
mod member;
mod metadata;
mod regular_expression;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::wire::{Encoding, RawTaggedField, Reader, Writer};
use super::RecordError;

pub use assignment::{
    ConsumerGroupCurrentMemberAssignmentKey, ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupTargetAssignmentMemberKey, ConsumerGroupTargetAssignmentMemberValue,
    TopicPartition, TopicPartitions,
};
pub use member::{
    ClassicMemberMetadata, ClassicProtocol, ConsumerGroupMemberMetadataKey,
    ConsumerGroupMemberMetadataValue,
};
pub use metadata::{
    ConsumerGroupMetadataKey, ConsumerGroupMetadataValue, ConsumerGroupPartitionMetadataKey,
    ConsumerGroupPartitionMetadataValue, ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue, PartitionMetadata, TopicMetadata,
};
pub use regular_expression::{
    ConsumerGroupRegularExpressionKey, ConsumerGroupRegularExpressionValue,
};

/// Key version 3: the group's epoch (and metadata hash).
pub const KEY_VERSION_CONSUMER_GROUP_METADATA: i16 = 3;
/// Key version 4: the subscribed topics' metadata, before Kafka 4.1.
pub const KEY_VERSION_CONSUMER_GROUP_PARTITION_METADATA: i16 = 4;
/// Key version 5: one member's subscription and client.
pub const KEY_VERSION_CONSUMER_GROUP_MEMBER_METADATA: i16 = 5;
/// Key version 6: the epoch of the target assignment.
pub const KEY_VERSION_CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA: i16 = 6;
/// Key version 7: one member's target assignment.
pub const KEY_VERSION_CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER: i16 = 7;
/// Key version 8: one member's current assignment and epochs.
pub const KEY_VERSION_CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT: i16 = 8;
/// Key version 16: the topics a subscription's regular expression resolved to.
pub const KEY_VERSION_CONSUMER_GROUP_REGULAR_EXPRESSION: i16 = 16;

/// The only value version these schemas define (`validVersions: "0"`), which Kafka writes.
pub const CONSUMER_GROUP_VALUE_VERSION: i16 = 0;

/// Every struct of these values is flexible.
const FLEXIBLE: Encoding = Encoding::Flexible;

/// One consumer group record of `__consumer_offsets`: its key, and its value or `None` for
/// a tombstone. The variants are Kafka's record types without the `ConsumerGroup` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerGroupLogRecord {
    Metadata {
        key: ConsumerGroupMetadataKey,
        value: Option<ConsumerGroupMetadataValue>,
    },
    PartitionMetadata {
        key: ConsumerGroupPartitionMetadataKey,
        value: Option<ConsumerGroupPartitionMetadataValue>,
    },
    MemberMetadata {
        key: ConsumerGroupMemberMetadataKey,
        value: Option<ConsumerGroupMemberMetadataValue>,
    },
    TargetAssignmentMetadata {
        key: ConsumerGroupTargetAssignmentMetadataKey,
        value: Option<ConsumerGroupTargetAssignmentMetadataValue>,
    },
    TargetAssignmentMember {
        key: ConsumerGroupTargetAssignmentMemberKey,
        value: Option<ConsumerGroupTargetAssignmentMemberValue>,
    },
    CurrentMemberAssignment {
        key: ConsumerGroupCurrentMemberAssignmentKey,
        value: Option<ConsumerGroupCurrentMemberAssignmentValue>,
    },
    RegularExpression {
        key: ConsumerGroupRegularExpressionKey,
        value: Option<ConsumerGroupRegularExpressionValue>,
    },
}

impl ConsumerGroupLogRecord {
    /// Whether `key_version` is one of the consumer group records.
    pub fn is_key_version(key_version: i16) -> bool {
        matches!(key_version, 3..=8 | 16)
    }

    /// The record's key version (Kafka 4's record type).
    pub fn key_version(&self) -> i16 {
        use ConsumerGroupLogRecord::*;
        match self {
            Metadata { .. } => KEY_VERSION_CONSUMER_GROUP_METADATA,
            PartitionMetadata { .. } => KEY_VERSION_CONSUMER_GROUP_PARTITION_METADATA,
            MemberMetadata { .. } => KEY_VERSION_CONSUMER_GROUP_MEMBER_METADATA,
            TargetAssignmentMetadata { .. } => {
                KEY_VERSION_CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA
            }
            TargetAssignmentMember { .. } => KEY_VERSION_CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
            CurrentMemberAssignment { .. } => KEY_VERSION_CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
            RegularExpression { .. } => KEY_VERSION_CONSUMER_GROUP_REGULAR_EXPRESSION,
        }
    }

    /// Whether the value is null: the member, assignment, expression or group is deleted.
    pub fn is_tombstone(&self) -> bool {
        use ConsumerGroupLogRecord::*;
        match self {
            Metadata { value, .. } => value.is_none(),
            PartitionMetadata { value, .. } => value.is_none(),
            MemberMetadata { value, .. } => value.is_none(),
            TargetAssignmentMetadata { value, .. } => value.is_none(),
            TargetAssignmentMember { value, .. } => value.is_none(),
            CurrentMemberAssignment { value, .. } => value.is_none(),
            RegularExpression { value, .. } => value.is_none(),
        }
    }

    /// Decodes a record from its key's fields (the version already read) and its value;
    /// `None` if `key_version` is not a consumer group record's.
    pub(super) fn decode(
        key_version: i16,
        key: &mut Reader,
        value: Option<Bytes>,
    ) -> Result<Option<ConsumerGroupLogRecord>, RecordError> {
        use ConsumerGroupLogRecord::*;
        if !Self::is_key_version(key_version) {
            return Ok(None);
        }
        let mut value = value
            .map(|value| value_reader(key_version, value))
            .transpose()?;
        let value = value.as_mut();
        Ok(Some(match key_version {
            KEY_VERSION_CONSUMER_GROUP_METADATA => Metadata {
                key: ConsumerGroupMetadataKey::decode(key)?,
                value: value.map(ConsumerGroupMetadataValue::decode).transpose()?,
            },
            KEY_VERSION_CONSUMER_GROUP_PARTITION_METADATA => PartitionMetadata {
                key: ConsumerGroupPartitionMetadataKey::decode(key)?,
                value: value
                    .map(ConsumerGroupPartitionMetadataValue::decode)
                    .transpose()?,
            },
            KEY_VERSION_CONSUMER_GROUP_MEMBER_METADATA => MemberMetadata {
                key: ConsumerGroupMemberMetadataKey::decode(key)?,
                value: value
                    .map(ConsumerGroupMemberMetadataValue::decode)
                    .transpose()?,
            },
            KEY_VERSION_CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA => TargetAssignmentMetadata {
                key: ConsumerGroupTargetAssignmentMetadataKey::decode(key)?,
                value: value
                    .map(ConsumerGroupTargetAssignmentMetadataValue::decode)
                    .transpose()?,
            },
            KEY_VERSION_CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER => TargetAssignmentMember {
                key: ConsumerGroupTargetAssignmentMemberKey::decode(key)?,
                value: value
                    .map(ConsumerGroupTargetAssignmentMemberValue::decode)
                    .transpose()?,
            },
            KEY_VERSION_CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT => CurrentMemberAssignment {
                key: ConsumerGroupCurrentMemberAssignmentKey::decode(key)?,
                value: value
                    .map(ConsumerGroupCurrentMemberAssignmentValue::decode)
                    .transpose()?,
            },
            KEY_VERSION_CONSUMER_GROUP_REGULAR_EXPRESSION => RegularExpression {
                key: ConsumerGroupRegularExpressionKey::decode(key)?,
                value: value
                    .map(ConsumerGroupRegularExpressionValue::decode)
                    .transpose()?,
            },
            _ => return Ok(None),
        }))
    }

    /// Writes the key's fields (not its version).
    pub(super) fn encode_key(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        use ConsumerGroupLogRecord::*;
        match self {
            Metadata { key, .. } => key.encode(buf),
            PartitionMetadata { key, .. } => key.encode(buf),
            MemberMetadata { key, .. } => key.encode(buf),
            TargetAssignmentMetadata { key, .. } => key.encode(buf),
            TargetAssignmentMember { key, .. } => key.encode(buf),
            CurrentMemberAssignment { key, .. } => key.encode(buf),
            RegularExpression { key, .. } => key.encode(buf),
        }
    }

    /// The value's bytes (version 0, then its fields), `None` for a tombstone.
    pub(super) fn encode_value(&self) -> Result<Option<Bytes>, RecordError> {
        use ConsumerGroupLogRecord::*;
        let mut buf = BytesMut::new();
        buf.put_i16(CONSUMER_GROUP_VALUE_VERSION);
        let written = match self {
            Metadata { value, .. } => value.as_ref().map(|value| value.encode(&mut buf)),
            PartitionMetadata { value, .. } => value.as_ref().map(|value| value.encode(&mut buf)),
            MemberMetadata { value, .. } => value.as_ref().map(|value| value.encode(&mut buf)),
            TargetAssignmentMetadata { value, .. } => {
                value.as_ref().map(|value| value.encode(&mut buf))
            }
            TargetAssignmentMember { value, .. } => {
                value.as_ref().map(|value| value.encode(&mut buf))
            }
            CurrentMemberAssignment { value, .. } => {
                value.as_ref().map(|value| value.encode(&mut buf))
            }
            RegularExpression { value, .. } => value.as_ref().map(|value| value.encode(&mut buf)),
        };
        match written {
            None => Ok(None),
            Some(result) => result.map(|()| Some(buf.freeze())),
        }
    }
}

/// A reader over `value` after its version, which must be 0.
fn value_reader(key_version: i16, value: Bytes) -> Result<Reader, RecordError> {
    let mut reader = Reader::new(value);
    let value_version = reader.i16("consumer group value version")?;
    if value_version != CONSUMER_GROUP_VALUE_VERSION {
        return Err(RecordError::UnsupportedValueVersion {
            key_version,
            value_version,
        });
    }
    Ok(reader)
}

// The field types these schemas use beyond those of the offset and group records. A uuid is
// two `int64`s, most significant first (Kafka's `writeUuid`); the bit casts keep the bits.

fn read_uuid(reader: &mut Reader, field: &'static str) -> Result<Uuid, RecordError> {
    let high = reader.i64(field)?;
    let low = reader.i64(field)?;
    Ok(Uuid::from_u64_pair(high as u64, low as u64))
}

fn write_uuid(writer: &mut Writer, id: Uuid) {
    let (high, low) = id.as_u64_pair();
    writer.i64(high as i64);
    writer.i64(low as i64);
}

fn read_i8(reader: &mut Reader, field: &'static str) -> Result<i8, RecordError> {
    let byte = reader.take(1, field)?;
    // `take` returned exactly the one byte asked for.
    Ok(i8::from_be_bytes([byte[0]]))
}

/// A compact `[]string`.
fn read_strings(reader: &mut Reader, field: &'static str) -> Result<Vec<String>, RecordError> {
    let count = reader.array_length(FLEXIBLE, field)?;
    let mut strings = Reader::vec_for(count);
    for _ in 0..count {
        strings.push(reader.string(FLEXIBLE, field)?);
    }
    Ok(strings)
}

fn write_strings(
    writer: &mut Writer,
    strings: &[String],
    field: &'static str,
) -> Result<(), RecordError> {
    writer.array_length(FLEXIBLE, strings.len(), field)?;
    for string in strings {
        writer.string(FLEXIBLE, string, field)?;
    }
    Ok(())
}

/// A compact `[]int32`.
fn read_i32s(reader: &mut Reader, field: &'static str) -> Result<Vec<i32>, RecordError> {
    let count = reader.array_length(FLEXIBLE, field)?;
    let mut values = Reader::vec_for(count);
    for _ in 0..count {
        values.push(reader.i32(field)?);
    }
    Ok(values)
}

fn write_i32s(writer: &mut Writer, values: &[i32], field: &'static str) -> Result<(), RecordError> {
    writer.array_length(FLEXIBLE, values.len(), field)?;
    for value in values {
        writer.i32(*value);
    }
    Ok(())
}

/// A compact array of structs, each read by `read`.
fn read_array<T>(
    reader: &mut Reader,
    field: &'static str,
    read: impl Fn(&mut Reader) -> Result<T, RecordError>,
) -> Result<Vec<T>, RecordError> {
    let count = reader.array_length(FLEXIBLE, field)?;
    let mut items = Reader::vec_for(count);
    for _ in 0..count {
        items.push(read(reader)?);
    }
    Ok(items)
}

/// A known tagged field's data must be exactly its value; anything else is corrupt.
fn tagged_size_mismatch(field: &'static str, size: usize) -> RecordError {
    RecordError::InvalidLength {
        field,
        length: i64::try_from(size).unwrap_or(i64::MAX),
    }
}

/// The key of a record of the whole group: `GroupId`.
fn decode_group_id(reader: &mut Reader, field: &'static str) -> Result<String, RecordError> {
    reader.string(Encoding::Classic, field)
}

fn encode_group_id(
    buf: &mut BytesMut,
    group_id: &str,
    field: &'static str,
) -> Result<(), RecordError> {
    Writer::new(buf).string(Encoding::Classic, group_id, field)
}

/// The end of a struct whose schema defines no tagged fields.
fn read_unknown_tagged_fields(
    reader: &mut Reader,
    field: &'static str,
) -> Result<Vec<RawTaggedField>, RecordError> {
    reader.tagged_fields(field)
}

fn write_unknown_tagged_fields(
    writer: &mut Writer,
    unknown: &[RawTaggedField],
    field: &'static str,
) -> Result<(), RecordError> {
    writer.tagged_fields(&[], unknown, field)
}
