//! The topics a subscription's regular expression resolved to (key version 16): Kafka's
//! `ConsumerGroupRegularExpressionKey` and `ConsumerGroupRegularExpressionValue`, one record
//! per distinct expression of the group's members (KIP-848's regex subscriptions, which
//! the coordinator resolves against the cluster's topics).

use bytes::BytesMut;

use super::{read_strings, read_unknown_tagged_fields, write_strings, write_unknown_tagged_fields};
use crate::group::records::wire::{Encoding, RawTaggedField, Reader, Writer};
use crate::group::records::RecordError;

/// `ConsumerGroupRegularExpressionKey`: the group and the expression (RE2/J syntax).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerGroupRegularExpressionKey {
    pub group_id: String,
    pub regular_expression: String,
}

impl ConsumerGroupRegularExpressionKey {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        writer.string(Encoding::Classic, &self.group_id, "regex key group id")?;
        writer.string(
            Encoding::Classic,
            &self.regular_expression,
            "regex key expression",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupRegularExpressionKey, RecordError> {
        Ok(ConsumerGroupRegularExpressionKey {
            group_id: reader.string(Encoding::Classic, "regex key group id")?,
            regular_expression: reader.string(Encoding::Classic, "regex key expression")?,
        })
    }
}

/// `ConsumerGroupRegularExpressionValue`: what the expression matched, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupRegularExpressionValue {
    /// The matching topics' names.
    pub topics: Vec<String>,
    /// The version of the cluster metadata the expression was resolved against.
    pub version: i64,
    /// When it was resolved, in milliseconds since the epoch.
    pub timestamp: i64,
    pub unknown_tagged_fields: Vec<RawTaggedField>,
}

impl ConsumerGroupRegularExpressionValue {
    pub(super) fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordError> {
        let mut writer = Writer::new(buf);
        write_strings(&mut writer, &self.topics, "regex topics")?;
        writer.i64(self.version);
        writer.i64(self.timestamp);
        write_unknown_tagged_fields(
            &mut writer,
            &self.unknown_tagged_fields,
            "regex tagged fields",
        )
    }

    pub(super) fn decode(
        reader: &mut Reader,
    ) -> Result<ConsumerGroupRegularExpressionValue, RecordError> {
        Ok(ConsumerGroupRegularExpressionValue {
            topics: read_strings(reader, "regex topics")?,
            version: reader.i64("regex metadata version")?,
            timestamp: reader.i64("regex timestamp")?,
            unknown_tagged_fields: read_unknown_tagged_fields(reader, "regex tagged fields")?,
        })
    }
}
