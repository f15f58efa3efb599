//! The records of `__consumer_offsets`, byte for byte as Kafka 4.1 writes and reads them, so
//! that a partition written by Kafka can be loaded by Sluice and the other way round.
//!
//! This module owns the encoding only: which record means what to a group is the
//! coordinator's business.
//!
//! # Layout
//!
//! A record's key is an `int16` *key version* followed by the key's fields; its value is an
//! `int16` value version followed by the value's fields, or null for a tombstone (the
//! offset or the group is deleted, and compaction will drop the key). Kafka 4 calls the key
//! version the record type (`CoordinatorRecordType`) and parses every key at schema version
//! 0; the value version picks the value's schema version.
//!
//! | key version | key / value (Kafka's schema names)                          | here                      |
//! |-------------|-------------------------------------------------------------|---------------------------|
//! | 0           | `LegacyOffsetCommitKey` / `LegacyOffsetCommitValue` (v0)    | [`Record::OffsetCommit`]  |
//! | 1           | `OffsetCommitKey` / `OffsetCommitValue` v0-4                | [`Record::OffsetCommit`]  |
//! | 2           | `GroupMetadataKey` / `GroupMetadataValue` v0-4              | [`Record::GroupMetadata`] |
//! | 3-8, 16     | consumer groups of KIP-848 (`consumer_group`)               | [`Record::ConsumerGroup`] |
//! | 10-15       | share groups (KIP-932)                                      | [`Record::Unknown`]       |
//! | 17, 19-23   | streams groups (KIP-1071)                                   | [`Record::Unknown`]       |
//!
//! The legacy key has the layout of key version 1, and its value that of `OffsetCommitValue`
//! v0. Kafka 4.1 writes key version 1 with value v4 (v1 if the commit carries an expire
//! timestamp), and group metadata at value v3.
//!
//! # Invariants
//!
//! - Decoding never panics, whatever the bytes, and never reserves memory from a length
//!   before checking that many bytes remain (see `wire`).
//! - A key version Kafka 4.1 does not parse here decodes as [`Record::Unknown`], never as an
//!   error, so a loader can skip it (Kafka's loader skips an `UnknownRecordTypeException`).
//!   A known key with a value version outside its schema is an error, as in Kafka
//!   (`UnknownRecordVersionException`).
//! - Encoding what decoding returned gives back the same bytes: unknown tagged fields are
//!   kept, and every field a version lacks keeps its default.
//! - Bytes after the last field of a key or value are ignored, as Kafka's deserializer does.
//!
//! Left out on purpose: parsing the share and streams group records, which only those
//! group protocols write.

mod consumer_group;
mod group_metadata;
mod offset_commit;
mod wire;

#[cfg(test)]
mod consumer_group_golden_tests;
#[cfg(test)]
mod consumer_group_proptests;
#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod proptests;

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

// Nothing outside names these until the coordinator maps its consumer group records to
// them.
#[allow(unused_imports)]
pub use consumer_group::{
    ClassicMemberMetadata, ClassicProtocol, ConsumerGroupCurrentMemberAssignmentKey,
    ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupLogRecord,
    ConsumerGroupMemberMetadataKey, ConsumerGroupMemberMetadataValue, ConsumerGroupMetadataKey,
    ConsumerGroupMetadataValue, ConsumerGroupPartitionMetadataKey,
    ConsumerGroupPartitionMetadataValue, ConsumerGroupRegularExpressionKey,
    ConsumerGroupRegularExpressionValue, ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue, ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue, PartitionMetadata, TopicMetadata, TopicPartition,
    TopicPartitions,
};
pub use group_metadata::{GroupMetadataKey, GroupMetadataValue};
pub use offset_commit::{OffsetCommitKey, OffsetCommitValue};
// Reached through the fields of the types above; nothing names them until the coordinator
// (issue 11) does.
#[allow(unused_imports)]
pub use {group_metadata::MemberMetadata, wire::RawTaggedField};

use wire::Reader;

/// Key version 0: an offset commit as Kafka before 0.10 wrote it.
pub const KEY_VERSION_LEGACY_OFFSET_COMMIT: i16 = 0;
/// Key version 1: an offset commit.
pub const KEY_VERSION_OFFSET_COMMIT: i16 = 1;
/// Key version 2: a classic group's metadata.
pub const KEY_VERSION_GROUP_METADATA: i16 = 2;

/// Why a key or value could not be decoded or encoded. Decoding errors mean the bytes are
/// corrupt or from a Kafka newer than 4.1; Kafka's loader stops loading the partition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("{field}: the record ends early ({needed} bytes needed, {remaining} left)")]
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("{field}: length {length} is out of range for the bytes left or the schema")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("{field} is null, which its schema does not allow")]
    UnexpectedNull { field: &'static str },
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str },
    #[error("{field}: an unsigned varint longer than 5 bytes")]
    InvalidVarint { field: &'static str },
    #[error(
        "key version {key_version} has no value version {value_version} in Kafka 4.1; \
         the record is corrupt or from a newer Kafka"
    )]
    UnsupportedValueVersion {
        key_version: i16,
        value_version: i16,
    },
    #[error("{field}: {length} is more than its schema allows ({max})")]
    TooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },
    #[error("records of key version {version} are recognised but not encoded by Sluice")]
    NotEncodable { version: i16 },
}

/// Which of the two key versions of an offset commit a record has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetKeyVersion {
    /// Key version 0, whose value must be version 0.
    Legacy,
    /// Key version 1, the one Kafka writes.
    Current,
}

impl OffsetKeyVersion {
    fn key_version(self) -> i16 {
        match self {
            OffsetKeyVersion::Legacy => KEY_VERSION_LEGACY_OFFSET_COMMIT,
            OffsetKeyVersion::Current => KEY_VERSION_OFFSET_COMMIT,
        }
    }
}

/// One record of `__consumer_offsets`. A `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    OffsetCommit {
        key_version: OffsetKeyVersion,
        key: OffsetCommitKey,
        value: Option<OffsetCommitValue>,
    },
    GroupMetadata {
        key: GroupMetadataKey,
        value: Option<GroupMetadataValue>,
    },
    /// A KIP-848 consumer group record (key versions 3-8 and 16).
    ConsumerGroup(ConsumerGroupLogRecord),
    /// A key version not parsed here, such as a share or streams group record; its value is
    /// not looked at. [`kafka_record_type_name`] names the ones Kafka 4.1 defines.
    Unknown { version: i16 },
}

impl Record {
    /// A committed offset, with the key version Kafka writes.
    pub fn offset_commit(key: OffsetCommitKey, value: OffsetCommitValue) -> Record {
        Record::OffsetCommit {
            key_version: OffsetKeyVersion::Current,
            key,
            value: Some(value),
        }
    }

    /// The deletion of a committed offset.
    pub fn offset_commit_tombstone(key: OffsetCommitKey) -> Record {
        Record::OffsetCommit {
            key_version: OffsetKeyVersion::Current,
            key,
            value: None,
        }
    }

    /// A classic group's state.
    pub fn group_metadata(key: GroupMetadataKey, value: GroupMetadataValue) -> Record {
        Record::GroupMetadata {
            key,
            value: Some(value),
        }
    }

    /// The deletion of a group.
    pub fn group_metadata_tombstone(key: GroupMetadataKey) -> Record {
        Record::GroupMetadata { key, value: None }
    }

    /// The record's key version (Kafka 4's record type).
    pub fn key_version(&self) -> i16 {
        match self {
            Record::OffsetCommit { key_version, .. } => key_version.key_version(),
            Record::GroupMetadata { .. } => KEY_VERSION_GROUP_METADATA,
            Record::ConsumerGroup(record) => record.key_version(),
            Record::Unknown { version } => *version,
        }
    }

    /// Decodes a record from its key and value (`None` for a tombstone).
    pub fn decode(key: Bytes, value: Option<Bytes>) -> Result<Record, RecordError> {
        let mut key = Reader::new(key);
        let version = key.i16("key version")?;
        let key_version = match version {
            KEY_VERSION_LEGACY_OFFSET_COMMIT => OffsetKeyVersion::Legacy,
            KEY_VERSION_OFFSET_COMMIT => OffsetKeyVersion::Current,
            KEY_VERSION_GROUP_METADATA => {
                let key = GroupMetadataKey::decode(&mut key)?;
                let value = value.map(decode_group_metadata_value).transpose()?;
                return Ok(Record::GroupMetadata { key, value });
            }
            version => {
                return Ok(
                    match ConsumerGroupLogRecord::decode(version, &mut key, value)? {
                        Some(record) => Record::ConsumerGroup(record),
                        None => Record::Unknown { version },
                    },
                );
            }
        };
        let key = OffsetCommitKey::decode(&mut key)?;
        let value = value
            .map(|value| decode_offset_commit_value(key_version, value))
            .transpose()?;
        Ok(Record::OffsetCommit {
            key_version,
            key,
            value,
        })
    }

    /// The key's bytes: its version, then its fields.
    pub fn encode_key(&self) -> Result<Bytes, RecordError> {
        let mut buf = BytesMut::new();
        buf.put_i16(self.key_version());
        match self {
            Record::OffsetCommit { key, .. } => key.encode(&mut buf)?,
            Record::GroupMetadata { key, .. } => key.encode(&mut buf)?,
            Record::ConsumerGroup(record) => record.encode_key(&mut buf)?,
            Record::Unknown { version } => {
                return Err(RecordError::NotEncodable { version: *version })
            }
        }
        Ok(buf.freeze())
    }

    /// The value's bytes (its version, then its fields), `None` for a tombstone.
    pub fn encode_value(&self) -> Result<Option<Bytes>, RecordError> {
        let mut buf = BytesMut::new();
        match self {
            Record::OffsetCommit { value: None, .. }
            | Record::GroupMetadata { value: None, .. } => return Ok(None),
            Record::OffsetCommit {
                key_version: offset_key_version,
                value: Some(value),
                ..
            } => {
                check_offset_commit_version(*offset_key_version, value.version)?;
                buf.put_i16(value.version);
                value.encode(&mut buf)?;
            }
            Record::GroupMetadata {
                value: Some(value), ..
            } => {
                check_group_metadata_version(value.version)?;
                buf.put_i16(value.version);
                value.encode(&mut buf)?;
            }
            Record::ConsumerGroup(record) => return record.encode_value(),
            Record::Unknown { version } => {
                return Err(RecordError::NotEncodable { version: *version })
            }
        }
        Ok(Some(buf.freeze()))
    }
}

fn check_offset_commit_version(
    key_version: OffsetKeyVersion,
    value_version: i16,
) -> Result<(), RecordError> {
    let supported = match key_version {
        OffsetKeyVersion::Legacy => value_version == 0,
        OffsetKeyVersion::Current => OffsetCommitValue::supports(value_version),
    };
    if !supported {
        return Err(RecordError::UnsupportedValueVersion {
            key_version: key_version.key_version(),
            value_version,
        });
    }
    Ok(())
}

fn decode_offset_commit_value(
    key_version: OffsetKeyVersion,
    value: Bytes,
) -> Result<OffsetCommitValue, RecordError> {
    let mut reader = Reader::new(value);
    let version = reader.i16("offset commit value version")?;
    check_offset_commit_version(key_version, version)?;
    OffsetCommitValue::decode(&mut reader, version)
}

fn decode_group_metadata_value(value: Bytes) -> Result<GroupMetadataValue, RecordError> {
    let mut reader = Reader::new(value);
    let version = reader.i16("group metadata value version")?;
    check_group_metadata_version(version)?;
    GroupMetadataValue::decode(&mut reader, version)
}

fn check_group_metadata_version(value_version: i16) -> Result<(), RecordError> {
    if !GroupMetadataValue::supports(value_version) {
        return Err(RecordError::UnsupportedValueVersion {
            key_version: KEY_VERSION_GROUP_METADATA,
            value_version,
        });
    }
    Ok(())
}

/// Kafka 4.1's name (`CoordinatorRecordType`) for a key version, for logs about records
/// that decode as [`Record::Unknown`]. Kafka 4.1 leaves 9 and 18 undefined (9 was the
/// share groups' `ShareGroupPartitionMetadata` before 4.1).
pub fn kafka_record_type_name(version: i16) -> Option<&'static str> {
    Some(match version {
        0 => "LEGACY_OFFSET_COMMIT",
        1 => "OFFSET_COMMIT",
        2 => "GROUP_METADATA",
        3 => "CONSUMER_GROUP_METADATA",
        4 => "CONSUMER_GROUP_PARTITION_METADATA",
        5 => "CONSUMER_GROUP_MEMBER_METADATA",
        6 => "CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA",
        7 => "CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER",
        8 => "CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT",
        10 => "SHARE_GROUP_MEMBER_METADATA",
        11 => "SHARE_GROUP_METADATA",
        12 => "SHARE_GROUP_TARGET_ASSIGNMENT_METADATA",
        13 => "SHARE_GROUP_TARGET_ASSIGNMENT_MEMBER",
        14 => "SHARE_GROUP_CURRENT_MEMBER_ASSIGNMENT",
        15 => "SHARE_GROUP_STATE_PARTITION_METADATA",
        16 => "CONSUMER_GROUP_REGULAR_EXPRESSION",
        17 => "STREAMS_GROUP_METADATA",
        19 => "STREAMS_GROUP_MEMBER_METADATA",
        20 => "STREAMS_GROUP_TARGET_ASSIGNMENT_METADATA",
        21 => "STREAMS_GROUP_TARGET_ASSIGNMENT_MEMBER",
        22 => "STREAMS_GROUP_CURRENT_MEMBER_ASSIGNMENT",
        23 => "STREAMS_GROUP_TOPOLOGY",
        _ => return None,
    })
}
