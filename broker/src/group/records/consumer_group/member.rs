//! A member's subscription and client (key version 5): Kafka's
//! `ConsumerGroupMemberMetadataKey` and `ConsumerGroupMemberMetadataValue`, with the
//! `ClassicMemberMetadata` of a member that joined through the classic protocol.

use bytes::{Bytes, BytesMut};

use super::{
    read_array, read_strings, read_unknown_tagged_fields, tagged_size_mismatch, write_strings,
    write_unknown_tagged_fields, FLEXIBLE,
};
use crate::group::records::wire::{Encoding, RawTaggedField, Reader, Writer};
use crate::group::records::RecordError;

/// `ConsumerGroupMemberMetadataKey`: the group and the member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupMemberMetadataKey {
    pub group_id: String,
    pub member_id: String,
}

impl ConsumerGroupMemberMetadataKey {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.string(
            Encoding::Classic,
            &self.group_id,
            "member metadata key group id",
        )?;
        writer.string(
            Encoding::Classic,
            &self.member_id,
            "member metadata key member id",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupMemberMetadataKey, RecordError> {
        Ok(ConsumerGroupMemberMetadataKey {
            group_id: reader.string(Encoding::Classic, "member metadata key group id")?,
            member_id: reader.string(Encoding::Classic, "member metadata key member id")?,
        })
    }
}

/// `ConsumerGroupMemberMetadataValue`: what a member subscribes to, and who it is.
///
/// `classic_member_metadata` (tagged field 0) is encoded as Kafka 4.1.1's generated code
/// does, which is not what its schema's `"default": null` suggests:
///
/// - `None` (a member of the consumer protocol, what Kafka writes for one) is written
///   explicitly, as tag 0 holding a 0 presence byte.
/// - `Some` of the empty [`ClassicMemberMetadata::default`] is the field's default and is
///   not written; a value without tag 0 therefore decodes to it, not to `None` (and Kafka's
///   coordinator then takes the member for a classic one).
/// - Any other `Some` is tag 0 holding a presence byte 1 and the struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMemberMetadataValue {
    /// The static member's instance id.
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// -1 by the schema's default.
    pub rebalance_timeout_ms: i32,
    /// The server-side assignor the member asked for, if any.
    pub server_assignor: Option<String>,
    pub classic_member_metadata: Option<ClassicMemberMetadata>,
    /// Tagged fields other than tag 0, kept so a rewrite loses nothing.
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// `ConsumerGroupMemberMetadataValue.ClassicMemberMetadata`: a classic member's session
/// timeout and the protocols (assignors) it offered in its JoinGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    pub supported_protocols: Vec<ClassicProtocol>,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

/// `ConsumerGroupMemberMetadataValue.ClassicProtocol`: one protocol of a classic member,
/// with its metadata (a `ConsumerProtocol` subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicProtocol {
    pub name: String,
    pub metadata: Bytes,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ConsumerGroupMemberMetadataValue {
    const CLASSIC_MEMBER_METADATA_TAG: u32 = 0;
    /// The presence byte (an unsigned varint) before a nullable struct: 0 for null.
    const NULL: u32 = 0;
    const PRESENT: u32 = 1;

    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        let instance_id = self.instance_id.as_deref();
        writer.nullable_string(FLEXIBLE, instance_id, "member instance id")?;
        writer.nullable_string(FLEXIBLE, self.rack_id.as_deref(), "member rack id")?;
        writer.string(FLEXIBLE, &self.client_id, "member client id")?;
        writer.string(FLEXIBLE, &self.client_host, "member client host")?;
        write_strings(
            &mut writer,
            &self.subscribed_topic_names,
            "member subscribed topic names",
        )?;
        let regex = self.subscribed_topic_regex.as_deref();
        writer.nullable_string(FLEXIBLE, regex, "member subscribed topic regex")?;
        writer.i32(self.rebalance_timeout_ms);
        let assignor = self.server_assignor.as_deref();
        writer.nullable_string(FLEXIBLE, assignor, "member server assignor")?;
        let known = self.classic_member_metadata_field()?;
        writer.tagged_fields(
            known.as_slice(),
            &self.unknown_tagged_fields,
            "member metadata tagged fields",
        )
    }

    /// Tag 0 as Kafka 4.1.1 writes it (see the type's doc), or nothing for the default.
    fn classic_member_metadata_field(&self) -> Result<Option<RawTaggedField>, RecordError> {
        let mut data = BytesMut::new();
        let mut writer = Writer::new(&mut data);
        match &self.classic_member_metadata {
            None => writer.unsigned_varint(Self::NULL),
            Some(classic) if *classic == ClassicMemberMetadata::default() => return Ok(None),
            Some(classic) => {
                writer.unsigned_varint(Self::PRESENT);
                classic.encode(&mut writer)?;
            }
        }
        Ok(Some(RawTaggedField {
            tag: Self::CLASSIC_MEMBER_METADATA_TAG,
            data: data.freeze(),
        }))
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupMemberMetadataValue, RecordError> {
        let instance_id = reader.nullable_string(FLEXIBLE, "member instance id")?;
        let rack_id = reader.nullable_string(FLEXIBLE, "member rack id")?;
        let client_id = reader.string(FLEXIBLE, "member client id")?;
        let client_host = reader.string(FLEXIBLE, "member client host")?;
        let subscribed_topic_names = read_strings(reader, "member subscribed topic names")?;
        let subscribed_topic_regex =
            reader.nullable_string(FLEXIBLE, "member subscribed topic regex")?;
        let rebalance_timeout_ms = reader.i32("member rebalance timeout")?;
        let server_assignor = reader.nullable_string(FLEXIBLE, "member server assignor")?;
        let mut classic_member_metadata = Some(ClassicMemberMetadata::default());
        let mut unknown_tagged_fields = Vec::new();
        for tagged in reader.tagged_fields("member metadata tagged fields")? {
            if tagged.tag == Self::CLASSIC_MEMBER_METADATA_TAG {
                classic_member_metadata = Self::decode_classic_member_metadata(tagged.data)?;
            } else {
                unknown_tagged_fields.push(tagged);
            }
        }
        Ok(ConsumerGroupMemberMetadataValue {
            instance_id,
            rack_id,
            client_id,
            client_host,
            subscribed_topic_names,
            subscribed_topic_regex,
            rebalance_timeout_ms,
            server_assignor,
            classic_member_metadata,
            unknown_tagged_fields,
        })
    }

    /// Tag 0's data: a presence varint, then the struct if present. Kafka reads a varint
    /// that is positive as a Java `int` as present, anything else as null.
    fn decode_classic_member_metadata(
        data: Bytes,
    ) -> Result<Option<ClassicMemberMetadata>, RecordError> {
        const FIELD: &str = "member classic member metadata";
        let size = data.len();
        let mut reader = Reader::new(data);
        let presence = reader.unsigned_varint(FIELD)?;
        let classic = if i32::try_from(presence).is_ok_and(|presence| presence > 0) {
            Some(ClassicMemberMetadata::decode(&mut reader)?)
        } else {
            None
        };
        if reader.remaining() != 0 {
            return Err(tagged_size_mismatch(FIELD, size));
        }
        Ok(classic)
    }
}

impl ClassicMemberMetadata {
    fn encode(&self, writer: &mut Writer) -> Result<(), RecordError> {
        writer.i32(self.session_timeout_ms);
        let count = self.supported_protocols.len();
        writer.array_length(FLEXIBLE, count, "classic member protocols")?;
        for protocol in &self.supported_protocols {
            writer.string(FLEXIBLE, &protocol.name, "classic member protocol name")?;
            writer.bytes(
                FLEXIBLE,
                &protocol.metadata,
                "classic member protocol metadata",
            )?;
            write_unknown_tagged_fields(
                writer,
                &protocol.unknown_tagged_fields,
                "classic member protocol tagged fields",
            )?;
        }
        write_unknown_tagged_fields(
            writer,
            &self.unknown_tagged_fields,
            "classic member metadata tagged fields",
        )
    }

    fn decode(reader: &mut Reader) -> Result<ClassicMemberMetadata, RecordError> {
        Ok(ClassicMemberMetadata {
            session_timeout_ms: reader.i32("classic member session timeout")?,
            supported_protocols: read_array(
                reader,
                "classic member protocols",
                ClassicProtocol::decode,
            )?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "classic member metadata tagged fields",
            )?,
        })
    }
}

impl ClassicProtocol {
    fn decode(reader: &mut Reader) -> Result<ClassicProtocol, RecordError> {
        Ok(ClassicProtocol {
            name: reader.string(FLEXIBLE, "classic member protocol name")?,
            metadata: reader.bytes(FLEXIBLE, "classic member protocol metadata")?,
            unknown_tagged_fields: read_unknown_tagged_fields(
                reader,
                "classic member protocol tagged fields",
            )?,
        })
    }
}
