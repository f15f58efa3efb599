//! A committed offset: Kafka's `OffsetCommitKey` (and `LegacyOffsetCommitKey`, the same
//! layout) and `OffsetCommitValue` versions 0-4.
//!
//! | value version | fields after `offset`                                   | written by Kafka 4.1 |
//! |---------------|---------------------------------------------------------|----------------------|
//! | 0             | metadata, commit timestamp                              | no (legacy type 0)   |
//! | 1             | metadata, commit timestamp, expire timestamp            | when an expiry is set|
//! | 2             | metadata, commit timestamp                              | no                   |
//! | 3             | leader epoch, metadata, commit timestamp                | no                   |
//! | 4 (flexible)  | as 3, compact metadata, tagged field 0 = topic id       | yes, the default     |
//!
//! Every field a version lacks is "ignorable" in Kafka's schema: encoding drops it, decoding
//! gives its default (`-1`, or the nil topic id, which Kafka's `Uuid.ZERO_UUID` is).

use bytes::{Bytes, BytesMut};
use uuid::Uuid;

use super::wire::{Encoding, RawTaggedField, Reader, Writer};
use super::RecordError;

/// The key of a committed offset: which group, topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

impl OffsetCommitKey {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.string(Encoding::Classic, &self.group, "offset commit key group")?;
        writer.string(Encoding::Classic, &self.topic, "offset commit key topic")?;
        writer.i32(self.partition);
        Ok(())
    }

    pub(super) fn decode(reader: &mut Reader) -> Result<OffsetCommitKey, RecordError> {
        Ok(OffsetCommitKey {
            group: reader.string(Encoding::Classic, "offset commit key group")?,
            topic: reader.string(Encoding::Classic, "offset commit key topic")?,
            partition: reader.i32("offset commit key partition")?,
        })
    }
}

/// A committed offset, in the value version it is (or is to be) written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The schema version, 0-4; see the module table.
    pub version: i16,
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown (v3+).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// When the offset expires, -1 for the broker's retention (v1 only).
    pub expire_timestamp_ms: i64,
    /// The topic's id, nil if not known (v4+, tagged field 0).
    pub topic_id: Uuid,
    /// Tagged fields other than the topic id, kept so a rewrite loses nothing (v4+).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl OffsetCommitValue {
    /// The newest version this schema defines.
    pub const VERSION_MAX: i16 = 4;
    /// The version Kafka 4.1 writes unless the commit has an expire timestamp
    /// (`GroupCoordinatorRecordHelpers.offsetCommitValueVersion`).
    pub const VERSION_WRITTEN_BY_KAFKA: i16 = 4;
    /// The version Kafka 4.1 writes for a commit with an expire timestamp (the only one
    /// that has the field).
    pub const VERSION_WITH_EXPIRE_TIMESTAMP: i16 = 1;
    const FIRST_FLEXIBLE_VERSION: i16 = 4;
    const TOPIC_ID_TAG: u32 = 0;
    const UUID_BYTES: usize = 16;

    /// A value with every optional field at its default, at the version Kafka 4.1 writes.
    pub fn new(offset: i64, metadata: String, commit_timestamp_ms: i64) -> OffsetCommitValue {
        OffsetCommitValue {
            version: OffsetCommitValue::VERSION_WRITTEN_BY_KAFKA,
            offset,
            leader_epoch: -1,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms: -1,
            topic_id: Uuid::nil(),
            unknown_tagged_fields: Vec::new(),
        }
    }

    /// Whether `version` is one this schema defines.
    pub(super) fn supports(version: i16) -> bool {
        (0..=OffsetCommitValue::VERSION_MAX).contains(&version)
    }

    /// Writes the value's fields (not its version prefix) at `self.version`.
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let version = self.version;
        let encoding = Encoding::of(version, OffsetCommitValue::FIRST_FLEXIBLE_VERSION);
        let mut writer = Writer::new(buf);
        writer.i64(self.offset);
        if version >= 3 {
            writer.i32(self.leader_epoch);
        }
        writer.string(encoding, &self.metadata, "offset commit metadata")?;
        writer.i64(self.commit_timestamp_ms);
        if version == 1 {
            writer.i64(self.expire_timestamp_ms);
        }
        if encoding == Encoding::Flexible {
            let mut known = Vec::new();
            if !self.topic_id.is_nil() {
                known.push(RawTaggedField {
                    tag: OffsetCommitValue::TOPIC_ID_TAG,
                    data: Bytes::copy_from_slice(self.topic_id.as_bytes()),
                });
            }
            writer.tagged_fields(
                &known,
                &self.unknown_tagged_fields,
                "offset commit tagged fields",
            )?;
        }
        Ok(())
    }

    /// Reads the fields of `version` (the prefix already read and checked by the caller).
    pub(super) fn decode(
        reader: &mut Reader,
        version: i16,
    ) -> Result<OffsetCommitValue, RecordError> {
        let encoding = Encoding::of(version, OffsetCommitValue::FIRST_FLEXIBLE_VERSION);
        let offset = reader.i64("offset commit offset")?;
        let leader_epoch = if version >= 3 {
            reader.i32("offset commit leader epoch")?
        } else {
            -1
        };
        let metadata = reader.string(encoding, "offset commit metadata")?;
        let commit_timestamp_ms = reader.i64("offset commit timestamp")?;
        let expire_timestamp_ms = if version == 1 {
            reader.i64("offset commit expire timestamp")?
        } else {
            -1
        };
        let mut topic_id = Uuid::nil();
        let mut unknown_tagged_fields = Vec::new();
        if encoding == Encoding::Flexible {
            for tagged in reader.tagged_fields("offset commit tagged fields")? {
                if tagged.tag == OffsetCommitValue::TOPIC_ID_TAG {
                    topic_id = topic_id_from(&tagged.data)?;
                } else {
                    unknown_tagged_fields.push(tagged);
                }
            }
        }
        Ok(OffsetCommitValue {
            version,
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
            topic_id,
            unknown_tagged_fields,
        })
    }
}

fn topic_id_from(data: &[u8]) -> Result<Uuid, RecordError> {
    let bytes: [u8; OffsetCommitValue::UUID_BYTES] =
        data.try_into().map_err(|_| RecordError::InvalidLength {
            field: "offset commit topic id",
            length: i64::try_from(data.len()).unwrap_or(i64::MAX),
        })?;
    Ok(Uuid::from_bytes(bytes))
}
