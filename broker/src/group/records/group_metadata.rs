//! A classic group's state: Kafka's `GroupMetadataKey` and `GroupMetadataValue` versions
//! 0-4, with one `MemberMetadata` per member.
//!
//! | value version | adds                                                   | written by Kafka 4.1 |
//! |---------------|--------------------------------------------------------|----------------------|
//! | 0             | protocol type, generation, protocol, leader, members   | no                   |
//! | 1             | member rebalance timeout                               | no                   |
//! | 2             | current state timestamp                                | no                   |
//! | 3             | member group instance id (static membership)           | yes, always          |
//! | 4 (flexible)  | compact strings and bytes, tagged fields (none defined)| no                   |
//!
//! Fields a version lacks are "ignorable": encoding drops them, decoding gives their default
//! (`-1`, or no group instance id). The subscription and assignment are opaque here; for
//! the `consumer` protocol type they are `sluice_protocol::consumer_protocol` messages.

use bytes::{Bytes, BytesMut};

use super::wire::{Encoding, RawTaggedField, Reader, Writer};
use super::RecordError;

/// The key of a group's metadata record: the group id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMetadataKey {
    pub group: String,
}

impl GroupMetadataKey {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        Writer::new(buf).string(Encoding::Classic, &self.group, "group metadata key group")
    }

    pub(super) fn decode(reader: &mut Reader) -> Result<GroupMetadataKey, RecordError> {
        Ok(GroupMetadataKey {
            group: reader.string(Encoding::Classic, "group metadata key group")?,
        })
    }
}

/// A classic group's state after a rebalance (or when it becomes empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// The schema version, 0-4; see the module table.
    pub version: i16,
    pub protocol_type: String,
    pub generation: i32,
    /// The chosen protocol (assignor), none while the group is empty.
    pub protocol: Option<String>,
    /// The leader's member id, none while the group is empty.
    pub leader: Option<String>,
    /// When the group last changed state, -1 if unknown (v2+).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
    /// Tagged fields, none of which Kafka 4.1 defines, kept so a rewrite loses nothing (v4+).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// One member of a classic group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    /// The static member's instance id (v3+).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// -1 if unknown (v1+).
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's subscription for the chosen protocol.
    pub subscription: Bytes,
    /// What the leader assigned to the member.
    pub assignment: Bytes,
    /// Tagged fields, none of which Kafka 4.1 defines (v4+).
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl GroupMetadataValue {
    /// The newest version this schema defines.
    pub const VERSION_MAX: i16 = 4;
    /// The version Kafka 4.1 writes (`GroupCoordinatorRecordHelpers.newGroupMetadataRecord`).
    pub const VERSION_WRITTEN_BY_KAFKA: i16 = 3;
    const FIRST_FLEXIBLE_VERSION: i16 = 4;

    /// Whether `version` is one this schema defines.
    pub(super) fn supports(version: i16) -> bool {
        (0..=GroupMetadataValue::VERSION_MAX).contains(&version)
    }

    /// Writes the value's fields (not its version prefix) at `self.version`.
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let version = self.version;
        let encoding = Encoding::of(version, GroupMetadataValue::FIRST_FLEXIBLE_VERSION);
        let mut writer = Writer::new(buf);
        writer.string(encoding, &self.protocol_type, "group protocol type")?;
        writer.i32(self.generation);
        writer.nullable_string(encoding, self.protocol.as_deref(), "group protocol")?;
        writer.nullable_string(encoding, self.leader.as_deref(), "group leader")?;
        if version >= 2 {
            writer.i64(self.current_state_timestamp_ms);
        }
        writer.array_length(encoding, self.members.len(), "group members")?;
        for member in &self.members {
            member.encode(&mut writer, version)?;
        }
        if encoding == Encoding::Flexible {
            writer.tagged_fields(&[], &self.unknown_tagged_fields, "group tagged fields")?;
        }
        Ok(())
    }

    /// Reads the fields of `version` (the prefix already read and checked by the caller).
    pub(super) fn decode(
        reader: &mut Reader,
        version: i16,
    ) -> Result<GroupMetadataValue, RecordError> {
        let encoding = Encoding::of(version, GroupMetadataValue::FIRST_FLEXIBLE_VERSION);
        let protocol_type = reader.string(encoding, "group protocol type")?;
        let generation = reader.i32("group generation")?;
        let protocol = reader.nullable_string(encoding, "group protocol")?;
        let leader = reader.nullable_string(encoding, "group leader")?;
        let current_state_timestamp_ms = if version >= 2 {
            reader.i64("group current state timestamp")?
        } else {
            -1
        };
        let count = reader.array_length(encoding, "group members")?;
        let mut members = Reader::vec_for(count);
        for _ in 0..count {
            members.push(MemberMetadata::decode(reader, version)?);
        }
        let unknown_tagged_fields = match encoding {
            Encoding::Flexible => reader.tagged_fields("group tagged fields")?,
            Encoding::Classic => Vec::new(),
        };
        Ok(GroupMetadataValue {
            version,
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
            unknown_tagged_fields,
        })
    }
}

impl MemberMetadata {
    fn encode(&self, writer: &mut Writer, version: i16) -> Result<(), RecordError> {
        let encoding = Encoding::of(version, GroupMetadataValue::FIRST_FLEXIBLE_VERSION);
        writer.string(encoding, &self.member_id, "member id")?;
        if version >= 3 {
            let instance_id = self.group_instance_id.as_deref();
            writer.nullable_string(encoding, instance_id, "member group instance id")?;
        }
        writer.string(encoding, &self.client_id, "member client id")?;
        writer.string(encoding, &self.client_host, "member client host")?;
        if version >= 1 {
            writer.i32(self.rebalance_timeout_ms);
        }
        writer.i32(self.session_timeout_ms);
        writer.bytes(encoding, &self.subscription, "member subscription")?;
        writer.bytes(encoding, &self.assignment, "member assignment")?;
        if encoding == Encoding::Flexible {
            writer.tagged_fields(&[], &self.unknown_tagged_fields, "member tagged fields")?;
        }
        Ok(())
    }

    fn decode(reader: &mut Reader, version: i16) -> Result<MemberMetadata, RecordError> {
        let encoding = Encoding::of(version, GroupMetadataValue::FIRST_FLEXIBLE_VERSION);
        let member_id = reader.string(encoding, "member id")?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string(encoding, "member group instance id")?
        } else {
            None
        };
        let client_id = reader.string(encoding, "member client id")?;
        let client_host = reader.string(encoding, "member client host")?;
        let rebalance_timeout_ms = if version >= 1 {
            reader.i32("member rebalance timeout")?
        } else {
            -1
        };
        let session_timeout_ms = reader.i32("member session timeout")?;
        let subscription = reader.bytes(encoding, "member subscription")?;
        let assignment = reader.bytes(encoding, "member assignment")?;
        let unknown_tagged_fields = match encoding {
            Encoding::Flexible => reader.tagged_fields("member tagged fields")?,
            Encoding::Classic => Vec::new(),
        };
        Ok(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
            unknown_tagged_fields,
        })
    }
}
