//! The primitive types of Kafka's generated message schemas, as the record schemas of
//! `__consumer_offsets` use them: fixed-width big-endian integers, strings, byte
//! arrays, arrays, and (in flexible versions) compact lengths and tagged fields.
//!
//! [`Reader`] never panics and never allocates from a length it has not checked against the
//! bytes that remain: a string or byte array is sliced out of the input only after its
//! length has been compared with [`Reader::remaining`], and an array count is refused if it
//! exceeds the bytes left (every element takes at least one byte). [`Writer`] refuses a
//! string or byte array too long for its length prefix instead of truncating it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::RecordError;

/// How lengths are written: the classic fixed-width prefixes, or the unsigned-varint
/// "compact" prefixes (length + 1, 0 for null) of a schema's `flexibleVersions`, which also
/// end every struct with a tagged-field section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Classic,
    Flexible,
}

impl Encoding {
    /// The encoding of `version` for a schema whose flexible versions start at
    /// `first_flexible`.
    pub(super) fn of(version: i16, first_flexible: i16) -> Encoding {
        if version >= first_flexible {
            Encoding::Flexible
        } else {
            Encoding::Classic
        }
    }
}

/// Kafka's limit on a string's length in bytes, classic or compact (`0x7fff`).
const STRING_BYTES_MAX: usize = i16::MAX as usize;
/// Kafka's limit on a byte array's length or an array's count (they are `int32`s).
const BYTES_MAX: usize = i32::MAX as usize;

/// The width of a classic length prefix: `int16` for strings, `int32` for byte arrays and
/// arrays. It also sets the longest length allowed, in compact form too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Int16,
    Int32,
}

impl Width {
    fn max(self) -> usize {
        match self {
            Width::Int16 => STRING_BYTES_MAX,
            Width::Int32 => BYTES_MAX,
        }
    }
}

/// The most array elements reserved up front; a longer array grows as it is read, so a
/// hostile count costs at most what the input itself costs.
const ARRAY_PREALLOCATION_MAX: usize = 64;

/// A tagged field this code does not know, kept as raw bytes so that a record read and
/// written again loses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTaggedField {
    pub tag: u32,
    pub data: Bytes,
}

/// A cursor over untrusted bytes.
pub(super) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(super) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    fn need(&self, needed: usize, field: &'static str) -> Result<(), RecordError> {
        if self.buf.remaining() < needed {
            return Err(RecordError::Truncated {
                field,
                needed,
                remaining: self.buf.remaining(),
            });
        }
        Ok(())
    }

    pub(super) fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        self.need(2, field)?;
        Ok(self.buf.get_i16())
    }

    pub(super) fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        self.need(4, field)?;
        Ok(self.buf.get_i32())
    }

    pub(super) fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        self.need(8, field)?;
        Ok(self.buf.get_i64())
    }

    /// Kafka's unsigned varint: at most 5 bytes, 7 bits each, least significant first.
    pub(super) fn unsigned_varint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for index in 0..5 {
            self.need(1, field)?;
            let byte = self.buf.get_u8();
            value |= u32::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidVarint { field })
    }

    /// `length` bytes, sliced out of the input (no copy) after checking they are there.
    pub(super) fn take(
        &mut self,
        length: usize,
        field: &'static str,
    ) -> Result<Bytes, RecordError> {
        self.need(length, field)?;
        Ok(self.buf.split_to(length))
    }

    /// A length prefix: `None` for null, else a length within the width's maximum.
    fn length(
        &mut self,
        encoding: Encoding,
        width: Width,
        field: &'static str,
    ) -> Result<Option<usize>, RecordError> {
        let length = match (encoding, width) {
            (Encoding::Classic, Width::Int16) => i64::from(self.i16(field)?),
            (Encoding::Classic, Width::Int32) => i64::from(self.i32(field)?),
            (Encoding::Flexible, _) => i64::from(self.unsigned_varint(field)?) - 1,
        };
        if length == -1 {
            return Ok(None);
        }
        match usize::try_from(length) {
            Ok(length) if length <= width.max() => Ok(Some(length)),
            _ => Err(RecordError::InvalidLength { field, length }),
        }
    }

    pub(super) fn nullable_string(
        &mut self,
        encoding: Encoding,
        field: &'static str,
    ) -> Result<Option<String>, RecordError> {
        let Some(length) = self.length(encoding, Width::Int16, field)? else {
            return Ok(None);
        };
        let bytes = self.take(length, field)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError::InvalidUtf8 { field })
    }

    pub(super) fn string(
        &mut self,
        encoding: Encoding,
        field: &'static str,
    ) -> Result<String, RecordError> {
        self.nullable_string(encoding, field)?
            .ok_or(RecordError::UnexpectedNull { field })
    }

    pub(super) fn bytes(
        &mut self,
        encoding: Encoding,
        field: &'static str,
    ) -> Result<Bytes, RecordError> {
        let length = self
            .length(encoding, Width::Int32, field)?
            .ok_or(RecordError::UnexpectedNull { field })?;
        self.take(length, field)
    }

    /// An array's element count, refused if it exceeds the bytes left.
    pub(super) fn array_length(
        &mut self,
        encoding: Encoding,
        field: &'static str,
    ) -> Result<usize, RecordError> {
        let count = self
            .length(encoding, Width::Int32, field)?
            .ok_or(RecordError::UnexpectedNull { field })?;
        if count > self.remaining() {
            return Err(RecordError::InvalidLength {
                field,
                length: i64::try_from(count).unwrap_or(i64::MAX),
            });
        }
        Ok(count)
    }

    /// A vector to read `count` elements into, reserving no more than a small bound.
    pub(super) fn vec_for<T>(count: usize) -> Vec<T> {
        Vec::with_capacity(count.min(ARRAY_PREALLOCATION_MAX))
    }

    /// The tagged-field section that ends a struct in a flexible version: a count, then
    /// `(tag, size, data)` for each. Returned in the order read; the caller takes out the
    /// tags its schema defines.
    pub(super) fn tagged_fields(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<RawTaggedField>, RecordError> {
        let count = self.unsigned_varint(field)?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        // Each tagged field takes at least two bytes (its tag and its size).
        if count > self.remaining() / 2 {
            return Err(RecordError::InvalidLength {
                field,
                length: i64::try_from(count).unwrap_or(i64::MAX),
            });
        }
        let mut fields = Reader::vec_for(count);
        for _ in 0..count {
            let tag = self.unsigned_varint(field)?;
            let size = self.unsigned_varint(field)?;
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            let data = self.take(size, field)?;
            fields.push(RawTaggedField { tag, data });
        }
        Ok(fields)
    }
}

/// Appends to a buffer; every length is checked against its prefix's range.
pub(super) struct Writer<'a> {
    buf: &'a mut BytesMut,
}

impl<'a> Writer<'a> {
    pub(super) fn new(buf: &'a mut BytesMut) -> Writer<'a> {
        Writer { buf }
    }

    pub(super) fn i16(&mut self, value: i16) {
        self.buf.put_i16(value);
    }

    pub(super) fn i32(&mut self, value: i32) {
        self.buf.put_i32(value);
    }

    pub(super) fn i64(&mut self, value: i64) {
        self.buf.put_i64(value);
    }

    pub(super) fn unsigned_varint(&mut self, mut value: u32) {
        while value >= 0x80 {
            // Truncation to the low 7 bits is the point of the encoding.
            self.buf.put_u8((value & 0x7f) as u8 | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    /// A length prefix for `length` bytes or elements, or for null.
    fn length(
        &mut self,
        encoding: Encoding,
        width: Width,
        length: Option<usize>,
        field: &'static str,
    ) -> Result<(), RecordError> {
        let max = width.max();
        let too_long = |length| RecordError::TooLong { field, length, max };
        let Some(length) = length else {
            match (encoding, width) {
                (Encoding::Classic, Width::Int16) => self.i16(-1),
                (Encoding::Classic, Width::Int32) => self.i32(-1),
                (Encoding::Flexible, _) => self.unsigned_varint(0),
            }
            return Ok(());
        };
        if length > max {
            return Err(too_long(length));
        }
        // `length <= max <= i32::MAX`, so none of these conversions fails.
        match (encoding, width) {
            (Encoding::Classic, Width::Int16) => {
                self.i16(i16::try_from(length).map_err(|_| too_long(length))?)
            }
            (Encoding::Classic, Width::Int32) => {
                self.i32(i32::try_from(length).map_err(|_| too_long(length))?)
            }
            (Encoding::Flexible, _) => {
                self.unsigned_varint(u32::try_from(length + 1).map_err(|_| too_long(length))?)
            }
        }
        Ok(())
    }

    pub(super) fn nullable_string(
        &mut self,
        encoding: Encoding,
        value: Option<&str>,
        field: &'static str,
    ) -> Result<(), RecordError> {
        self.length(encoding, Width::Int16, value.map(str::len), field)?;
        if let Some(value) = value {
            self.buf.put_slice(value.as_bytes());
        }
        Ok(())
    }

    pub(super) fn string(
        &mut self,
        encoding: Encoding,
        value: &str,
        field: &'static str,
    ) -> Result<(), RecordError> {
        self.nullable_string(encoding, Some(value), field)
    }

    pub(super) fn bytes(
        &mut self,
        encoding: Encoding,
        value: &[u8],
        field: &'static str,
    ) -> Result<(), RecordError> {
        self.length(encoding, Width::Int32, Some(value.len()), field)?;
        self.buf.put_slice(value);
        Ok(())
    }

    pub(super) fn array_length(
        &mut self,
        encoding: Encoding,
        count: usize,
        field: &'static str,
    ) -> Result<(), RecordError> {
        self.length(encoding, Width::Int32, Some(count), field)
    }

    /// A tagged-field section: the `known` fields (in tag order, as the schema defines them)
    /// and then the `unknown` ones carried over from a decode, as Kafka writes them.
    pub(super) fn tagged_fields(
        &mut self,
        known: &[RawTaggedField],
        unknown: &[RawTaggedField],
        field: &'static str,
    ) -> Result<(), RecordError> {
        let count = known.len() + unknown.len();
        let too_long = |length| RecordError::TooLong {
            field,
            length,
            max: BYTES_MAX,
        };
        self.unsigned_varint(u32::try_from(count).map_err(|_| too_long(count))?);
        for tagged in known.iter().chain(unknown) {
            let size = tagged.data.len();
            self.unsigned_varint(tagged.tag);
            self.unsigned_varint(u32::try_from(size).map_err(|_| too_long(size))?);
            self.buf.put_slice(&tagged.data);
        }
        Ok(())
    }
}
