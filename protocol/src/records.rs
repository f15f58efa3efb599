//! Building and decoding record batches on the client side: records with keys, values and
//! headers, in RecordBatch v2, with the four codecs.
//!
//! This module owns the inside of a batch, which the broker never looks at: the records
//! section and its compression. The 61-byte header and its checks belong to [`crate::batch`];
//! this module writes that header once when it builds a batch and reads it through
//! [`crate::batch::Batches`] when it decodes.
//!
//! # Record layout (inside the batch, after compression is undone)
//!
//! ```text
//! length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//! headerCount varint | [headerKeyLength varint | key (UTF-8) | headerValueLength varint | value]*
//! ```
//!
//! Varints are zigzag-encoded, as in protobuf. `length` counts the bytes after itself.
//!
//! # Building
//!
//! [`BatchBuilder`] writes what a non-idempotent Java producer writes: base offset 0,
//! offsets 0..n-1, producer id / epoch / base sequence -1, partitionLeaderEpoch -1,
//! CreateTime, the first record's timestamp as baseTimestamp (deltas may be negative), and
//! CRC-32C over attributes..end. The compressed records start right after the 61-byte header,
//! so a built batch passes [`crate::batch::validate_for_append`] for every codec. The codecs
//! are written the way the Java client writes them:
//!
//! - gzip: one gzip member.
//! - snappy: xerial framing (`\x82SNAPPY\0`, version 1, compatible version 1, then chunks of
//!   `[u32 big-endian length][raw snappy block]`, 32 KiB of input per chunk).
//! - lz4: the LZ4 *frame* format (magic `04 22 4D 18`), 64 KiB independent blocks, no content
//!   checksum.
//! - zstd: one zstd frame at level 3.
//!
//! An empty builder builds an empty buffer, not a batch (as Java's `MemoryRecordsBuilder`
//! does): a batch with no records would fail [`crate::batch::validate`].
//!
//! # Decoding
//!
//! [`decode_records`] walks a fetch response's records bytes batch by batch. A trailing
//! partial batch is dropped (a fetch may stop mid-batch); anything else that is wrong is an
//! error: bad length, magic other than 2, unknown codec, CRC mismatch, a record that does
//! not parse or does not use exactly its stated length, or bytes left after the last record.
//! Snappy is accepted both xerial-framed (Java) and raw (librdkafka). Control batches are
//! skipped. With LogAppendTime, every record reports the batch's maxTimestamp, as Kafka's
//! consumers do.
//!
//! The decoder does not require recordsCount to equal lastOffsetDelta + 1, unlike
//! [`crate::batch::validate`]: Kafka's log compaction removes records but keeps
//! lastOffsetDelta, so consumers of a compacted topic see such batches.
//!
//! # Limits
//!
//! Nothing is allocated from a peer-supplied count before it is checked against the bytes
//! that are actually there: a record takes at least [`MIN_RECORD_BYTES`] bytes, a header at
//! least two. Decompression stops at `decompressed_batch_bytes_max` per batch
//! ([`DECOMPRESSED_BATCH_BYTES_MAX`] by default), so a compression bomb costs at most that
//! much memory per batch. zstd frames may additionally ask for a window of up to 128 MiB (the
//! zstd library's default cap). Arithmetic on peer-supplied offsets and timestamps is checked.
//!
//! # Left out on purpose
//!
//! Idempotent and transactional producing (producer id, sequence numbers), read_committed
//! filtering of aborted transactions (decoding is read_uncommitted: it skips the control
//! markers but returns every data record), and the pre-v2 message formats (magic 0 and 1),
//! which Sluice never stores.

use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{
    BatchHeader, BatchIterError, Batches, Compression, BATCH_HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2,
};
use crate::error::ProtocolError;

/// Default bound on one batch's decompressed records section: 256 MiB. Decoding refuses a
/// batch whose records would decompress to more.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The smallest a record can be on the wire: a one-byte length, then attributes, timestamp
/// delta, offset delta, key length, value length and header count at one byte each.
pub const MIN_RECORD_BYTES: usize = 7;

/// Where the CRC-32C is stored, and where the region it covers starts.
const CRC_AT: usize = 17;
const CRC_COVERED_FROM: usize = 21;

/// Input bytes per xerial snappy chunk; the Java client's `SnappyOutputStream` default.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version (i32) and compatible version (i32).
const XERIAL_HEADER_BYTES: usize = 16;

/// zstd level the Java client uses by default.
const ZSTD_LEVEL: i32 = 3;

/// One record as a producer gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch (CreateTime).
    pub timestamp: i64,
}

/// One record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Accumulates records for one batch and encodes it as RecordBatch v2.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    records: Vec<Record>,
    /// Encoded size of the records section so far, uncompressed.
    records_bytes: usize,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> Self {
        BatchBuilder {
            compression,
            records: Vec::new(),
            records_bytes: 0,
        }
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    pub fn push(&mut self, record: Record) {
        self.records_bytes += self.record_bytes(&record);
        self.records.push(record);
    }

    /// Records so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Uncompressed size of the batch if built now (header + records), for batch_bytes_max.
    /// Exact for [`Compression::None`]; 0 for an empty builder, which builds nothing.
    pub fn estimated_bytes(&self) -> usize {
        if self.records.is_empty() {
            0
        } else {
            BATCH_HEADER_BYTES + self.records_bytes
        }
    }

    /// What [`estimated_bytes`](Self::estimated_bytes) would return after pushing `record`,
    /// so a producer can close a batch before it crosses its size limit.
    pub fn estimated_bytes_with(&self, record: &Record) -> usize {
        BATCH_HEADER_BYTES + self.records_bytes + self.record_bytes(record)
    }

    /// Size of `record` encoded as the next record of this batch, length prefix included.
    fn record_bytes(&self, record: &Record) -> usize {
        let offset_delta = self.records.len() as i64;
        let base_timestamp = self
            .records
            .first()
            .map_or(record.timestamp, |first| first.timestamp);
        // An overflowing delta fails in build(); count it at the widest varlong meanwhile.
        let timestamp_delta_bytes = record
            .timestamp
            .checked_sub(base_timestamp)
            .map_or(10, varlong_bytes);
        let body = record_body_bytes(record, offset_delta, timestamp_delta_bytes);
        varlong_bytes(body as i64) + body
    }

    /// Encode the batch with base offset 0, producer id -1, epoch -1, base sequence -1,
    /// partitionLeaderEpoch -1, CreateTime timestamps, CRC-32C set. Consumes the records.
    ///
    /// Fails if a record cannot be represented: a key, value or record longer than i32::MAX
    /// bytes, more than i32::MAX records, or timestamps so far apart that their difference
    /// overflows i64.
    pub fn build(self) -> Result<Bytes, ProtocolError> {
        let Some(first) = self.records.first() else {
            return Ok(Bytes::new());
        };
        let base_timestamp = first.timestamp;
        let count = i32::try_from(self.records.len())
            .map_err(|_| unrepresentable(format!("{} records in one batch", self.records.len())))?;
        let max_timestamp = self
            .records
            .iter()
            .map(|record| record.timestamp)
            .max()
            .unwrap_or(base_timestamp);

        let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + self.records_bytes);
        out.put_bytes(0, BATCH_HEADER_BYTES);
        if self.compression == Compression::None {
            encode_records(&mut out, &self.records, base_timestamp)?;
        } else {
            let mut section = Vec::with_capacity(self.records_bytes);
            encode_records(&mut section, &self.records, base_timestamp)?;
            out.extend_from_slice(&compress(self.compression, &section)?);
        }

        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
            .map_err(|_| unrepresentable(format!("batch of {} bytes", out.len())))?;
        let mut header = &mut out[..BATCH_HEADER_BYTES];
        header.put_i64(0); // baseOffset: the broker assigns offsets.
        header.put_i32(batch_length);
        header.put_i32(-1); // partitionLeaderEpoch: the broker stamps it.
        header.put_i8(MAGIC_V2);
        header.put_u32(0); // CRC, filled in below.
        header.put_i16(self.compression as i16); // CreateTime, not transactional, not control.
        header.put_i32(count - 1); // lastOffsetDelta
        header.put_i64(base_timestamp);
        header.put_i64(max_timestamp);
        header.put_i64(-1); // producerId
        header.put_i16(-1); // producerEpoch
        header.put_i32(-1); // baseSequence
        header.put_i32(count);
        debug_assert!(header.is_empty());
        let crc = crc32c::crc32c(&out[CRC_COVERED_FROM..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out.freeze())
    }
}

/// Encode records into one batch (convenience over BatchBuilder).
pub fn encode_batch(records: &[Record], compression: Compression) -> Result<Bytes, ProtocolError> {
    let mut builder = BatchBuilder::new(compression);
    for record in records {
        builder.push(record.clone());
    }
    builder.build()
}

/// Decode every whole batch in a fetch response's records bytes into consumer records,
/// decompressing any of the four codecs. A trailing partial batch (fetch responses may end
/// mid-batch) is ignored, not an error. Control batches are skipped. CRC is checked.
/// Malformed input returns Err, never panics.
///
/// Each batch may decompress to at most [`DECOMPRESSED_BATCH_BYTES_MAX`]; see
/// [`decode_records_with_limit`] to choose another bound.
pub fn decode_records(buf: &Bytes) -> Result<Vec<ConsumedRecord>, ProtocolError> {
    decode_records_with_limit(buf, DECOMPRESSED_BATCH_BYTES_MAX)
}

/// [`decode_records`] with a chosen bound on each batch's decompressed records section.
/// Uncompressed batches are not subject to it: their bytes are already in `buf`.
pub fn decode_records_with_limit(
    buf: &Bytes,
    decompressed_batch_bytes_max: usize,
) -> Result<Vec<ConsumedRecord>, ProtocolError> {
    let mut records = Vec::new();
    let mut batches = Batches::new(buf);
    loop {
        let start = batches.position();
        match batches.next() {
            None => break,
            Some(Ok((header, batch))) => {
                // Slice the shared buffer so uncompressed keys and values are not copied.
                let batch = buf.slice(start..start + batch.len());
                decode_batch(&header, &batch, decompressed_batch_bytes_max, &mut records)?;
            }
            Some(Err(BatchIterError::Partial { .. })) => break,
            Some(Err(BatchIterError::Corrupt { error, .. })) => return Err(error),
        }
    }
    Ok(records)
}

/// Check one whole batch and append its records to `out`.
fn decode_batch(
    header: &BatchHeader,
    batch: &Bytes,
    decompressed_batch_bytes_max: usize,
    out: &mut Vec<ConsumedRecord>,
) -> Result<(), ProtocolError> {
    if header.magic != MAGIC_V2 {
        return Err(ProtocolError::UnsupportedMagic(header.magic));
    }
    let compression = header.compression()?;
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    if crc != header.crc {
        return Err(ProtocolError::CorruptBatch(format!(
            "CRC-32C mismatch in batch at offset {}: stored {:#010x}, computed {crc:#010x}",
            header.base_offset, header.crc
        )));
    }
    if header.is_control() {
        return Ok(());
    }
    let count = usize::try_from(header.records_count).map_err(|_| {
        ProtocolError::CorruptBatch(format!("negative record count {}", header.records_count))
    })?;
    let payload = batch.slice(BATCH_HEADER_BYTES..);
    let section = match compression {
        Compression::None => payload,
        codec => Bytes::from(decompress(codec, &payload, decompressed_batch_bytes_max)?),
    };
    if count > section.len() / MIN_RECORD_BYTES {
        return Err(ProtocolError::CorruptBatch(format!(
            "batch says {count} records but its records section has only {} bytes",
            section.len()
        )));
    }
    out.reserve(count);
    let mut reader = Reader::new(section);
    for index in 0..count {
        out.push(decode_record(&mut reader, header, index)?);
    }
    if reader.remaining() != 0 {
        return Err(ProtocolError::CorruptBatch(format!(
            "{} bytes after the last of {count} records",
            reader.remaining()
        )));
    }
    Ok(())
}

fn decode_record(
    reader: &mut Reader,
    header: &BatchHeader,
    index: usize,
) -> Result<ConsumedRecord, ProtocolError> {
    let corrupt = |what: String| ProtocolError::CorruptBatch(format!("record {index}: {what}"));
    let length = reader.varint()?;
    let length =
        usize::try_from(length).map_err(|_| corrupt(format!("negative length {length}")))?;
    let mut body = Reader::new(reader.take(length)?);
    let _attributes = body.u8()?; // Unused in v2.
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key = body.nullable_bytes()?;
    let value = body.nullable_bytes()?;
    let header_count = body.varint()?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| corrupt(format!("negative header count {header_count}")))?;
    // A header takes at least two bytes: key length and value length.
    if header_count > body.remaining() / 2 {
        return Err(corrupt(format!(
            "{header_count} headers in {} bytes",
            body.remaining()
        )));
    }
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let key_length = body.varint()?;
        let key_length = usize::try_from(key_length)
            .map_err(|_| corrupt(format!("negative header key length {key_length}")))?;
        let key = body.take(key_length)?;
        let key = std::str::from_utf8(&key)
            .map_err(|_| corrupt("header key is not UTF-8".into()))?
            .to_owned();
        headers.push((key, body.nullable_bytes()?));
    }
    if body.remaining() != 0 {
        return Err(corrupt(format!(
            "length says {length} bytes but the fields end {} bytes early",
            body.remaining()
        )));
    }
    let offset = header
        .base_offset
        .checked_add(i64::from(offset_delta))
        .ok_or_else(|| corrupt(format!("offset delta {offset_delta} overflows")))?;
    let timestamp = if header.is_log_append_time() {
        header.max_timestamp
    } else {
        header
            .base_timestamp
            .checked_add(timestamp_delta)
            .ok_or_else(|| corrupt(format!("timestamp delta {timestamp_delta} overflows")))?
    };
    Ok(ConsumedRecord {
        offset,
        timestamp,
        key,
        value,
        headers,
    })
}

/// A cursor over a records section (or one record's body). Slices share the buffer.
struct Reader {
    buf: Bytes,
    position: usize,
}

impl Reader {
    fn new(buf: Bytes) -> Self {
        Reader { buf, position: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.position
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        let byte = *self.buf.get(self.position).ok_or_else(|| truncated(1, 0))?;
        self.position += 1;
        Ok(byte)
    }

    fn take(&mut self, length: usize) -> Result<Bytes, ProtocolError> {
        if length > self.remaining() {
            return Err(truncated(length, self.remaining()));
        }
        let slice = self.buf.slice(self.position..self.position + length);
        self.position += length;
        Ok(slice)
    }

    /// An unsigned LEB128 value of at most `bytes_max` bytes.
    fn unsigned(&mut self, bytes_max: usize) -> Result<u64, ProtocolError> {
        let mut value = 0u64;
        for i in 0..bytes_max {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtocolError::CorruptBatch(format!(
            "varint longer than {bytes_max} bytes"
        )))
    }

    fn varint(&mut self) -> Result<i32, ProtocolError> {
        let zigzag = u32::try_from(self.unsigned(5)?)
            .map_err(|_| ProtocolError::CorruptBatch("varint overflows 32 bits".into()))?;
        Ok((zigzag >> 1) as i32 ^ -((zigzag & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, ProtocolError> {
        let zigzag = self.unsigned(10)?;
        Ok((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
    }

    /// A varint length followed by that many bytes; length -1 means null.
    fn nullable_bytes(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        match self.varint()? {
            -1 => Ok(None),
            length => {
                let length = usize::try_from(length).map_err(|_| {
                    ProtocolError::CorruptBatch(format!("negative length {length}"))
                })?;
                self.take(length).map(Some)
            }
        }
    }
}

fn truncated(wanted: usize, present: usize) -> ProtocolError {
    ProtocolError::CorruptBatch(format!(
        "record data ends early: {wanted} bytes wanted, {present} present"
    ))
}

fn unrepresentable(what: String) -> ProtocolError {
    ProtocolError::Malformed {
        what: "record batch",
        reason: format!("{what} cannot be encoded"),
    }
}

fn encode_records(
    out: &mut impl BufMut,
    records: &[Record],
    base_timestamp: i64,
) -> Result<(), ProtocolError> {
    for (offset_delta, record) in (0i32..).zip(records) {
        encode_record(out, record, offset_delta, base_timestamp)?;
    }
    Ok(())
}

fn encode_record(
    out: &mut impl BufMut,
    record: &Record,
    offset_delta: i32,
    base_timestamp: i64,
) -> Result<(), ProtocolError> {
    let timestamp_delta = record
        .timestamp
        .checked_sub(base_timestamp)
        .ok_or_else(|| {
            unrepresentable(format!(
                "timestamp {} in a batch based at {base_timestamp}",
                record.timestamp
            ))
        })?;
    let body = record_body_bytes(
        record,
        i64::from(offset_delta),
        varlong_bytes(timestamp_delta),
    );
    // Every length inside the body is smaller than the body, so checking it covers them all.
    let body =
        i32::try_from(body).map_err(|_| unrepresentable(format!("record of {body} bytes")))?;
    put_varint(out, body);
    out.put_u8(0); // attributes
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_nullable_bytes(out, record.key.as_deref());
    put_nullable_bytes(out, record.value.as_deref());
    put_varint(out, record.headers.len() as i32);
    for (key, value) in &record.headers {
        put_varint(out, key.len() as i32);
        out.put_slice(key.as_bytes());
        put_nullable_bytes(out, value.as_deref());
    }
    Ok(())
}

/// Bytes of a record after its length prefix. Computed in usize so that oversized fields are
/// measured, not truncated; `build` refuses them.
fn record_body_bytes(record: &Record, offset_delta: i64, timestamp_delta_bytes: usize) -> usize {
    let nullable =
        |field: Option<&[u8]>| field.map_or(1, |b| varlong_bytes(b.len() as i64) + b.len());
    let headers: usize = record
        .headers
        .iter()
        .map(|(key, value)| {
            varlong_bytes(key.len() as i64) + key.len() + nullable(value.as_deref())
        })
        .sum();
    1 + timestamp_delta_bytes
        + varlong_bytes(offset_delta)
        + nullable(record.key.as_deref())
        + nullable(record.value.as_deref())
        + varlong_bytes(record.headers.len() as i64)
        + headers
}

/// Bytes of `value` as a zigzag varint (the same for varint and varlong when it fits i32).
fn varlong_bytes(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut bytes = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        bytes += 1;
    }
    bytes
}

fn put_unsigned(out: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8(value as u8 | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_varint(out: &mut impl BufMut, value: i32) {
    put_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

fn put_varlong(out: &mut impl BufMut, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_nullable_bytes(out: &mut impl BufMut, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i32);
            out.put_slice(bytes);
        }
    }
}

/// Compress a batch's records section with `codec`, as the producer would (the log
/// cleaner re-encodes the records a compressed batch keeps).
pub fn compress_records_section(
    codec: Compression,
    section: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    compress(codec, section)
}

/// Decompress a batch's records section, refusing to produce more than `bytes_max` bytes.
pub fn decompress_records_section(
    codec: Compression,
    section: &[u8],
    bytes_max: usize,
) -> Result<Vec<u8>, ProtocolError> {
    decompress(codec, section, bytes_max)
}

fn codec_error(codec: Compression, error: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Compression(format!("{}: {error}", codec.name()))
}

/// Compress a records section the way the Java client does (see the module docs).
fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let error = |e: std::io::Error| codec_error(codec, e);
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 64),
                flate2::Compression::default(),
            );
            encoder.write_all(input).map_err(error)?;
            encoder.finish().map_err(error)
        }
        Compression::Snappy => compress_xerial_snappy(input),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 64),
            );
            encoder.write_all(input).map_err(error)?;
            encoder.finish().map_err(|e| codec_error(codec, e))
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).map_err(error),
    }
}

fn compress_xerial_snappy(input: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + input.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.put_i32(1); // version
    out.put_i32(1); // compatible version
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .map_err(|e| codec_error(Compression::Snappy, e))?;
        // A 32 KiB chunk compresses to well under 4 GiB.
        out.put_u32(block.len() as u32);
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Decompress a records section, refusing to produce more than `bytes_max` bytes.
fn decompress(
    codec: Compression,
    input: &[u8],
    bytes_max: usize,
) -> Result<Vec<u8>, ProtocolError> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        // Multi-member, like Java's GZIPInputStream.
        Compression::Gzip => {
            read_bounded(codec, flate2::read::MultiGzDecoder::new(input), bytes_max)
        }
        Compression::Snappy => decompress_snappy(input, bytes_max),
        Compression::Lz4 => {
            read_bounded(codec, lz4_flex::frame::FrameDecoder::new(input), bytes_max)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(input)
                .map_err(|e| codec_error(codec, e))?;
            read_bounded(codec, decoder, bytes_max)
        }
    }
}

fn read_bounded(
    codec: Compression,
    reader: impl Read,
    bytes_max: usize,
) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    let limit = u64::try_from(bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| codec_error(codec, e))?;
    if out.len() > bytes_max {
        return Err(too_large(codec, bytes_max));
    }
    Ok(out)
}

fn too_large(codec: Compression, bytes_max: usize) -> ProtocolError {
    codec_error(
        codec,
        format!("records decompress to more than the limit of {bytes_max} bytes"),
    )
}

/// Snappy as Java sends it (xerial framing) or as librdkafka sends it (one raw block).
fn decompress_snappy(input: &[u8], bytes_max: usize) -> Result<Vec<u8>, ProtocolError> {
    let codec = Compression::Snappy;
    let mut decoder = snap::raw::Decoder::new();
    let mut decompress_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), ProtocolError> {
        // The raw format states its decompressed length up front: check it before allocating.
        let length = snap::raw::decompress_len(block).map_err(|e| codec_error(codec, e))?;
        if length > bytes_max - out.len() {
            return Err(too_large(codec, bytes_max));
        }
        let start = out.len();
        out.resize(start + length, 0);
        let written = decoder
            .decompress(block, &mut out[start..])
            .map_err(|e| codec_error(codec, e))?;
        out.truncate(start + written);
        Ok(())
    };
    let mut out = Vec::new();
    if input.len() >= XERIAL_HEADER_BYTES && input.starts_with(&XERIAL_MAGIC) {
        let mut rest = &input[XERIAL_HEADER_BYTES..];
        while !rest.is_empty() {
            let Some((length, tail)) = rest.split_first_chunk::<4>() else {
                return Err(codec_error(codec, "xerial chunk length is cut off"));
            };
            let length = u32::from_be_bytes(*length) as usize;
            if length > tail.len() {
                return Err(codec_error(
                    codec,
                    format!("xerial chunk of {length} bytes but {} remain", tail.len()),
                ));
            }
            let (block, tail) = tail.split_at(length);
            decompress_block(block, &mut out)?;
            rest = tail;
        }
    } else {
        decompress_block(input, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{validate, validate_for_append};

    const ALL_CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn record(key: Option<&'static str>, value: Option<&'static str>, timestamp: i64) -> Record {
        Record {
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: value.map(|v| Bytes::from_static(v.as_bytes())),
            headers: Vec::new(),
            timestamp,
        }
    }

    fn sample_records() -> Vec<Record> {
        let mut with_headers = record(Some("k2"), Some("v2"), 1_700_000_000_500);
        with_headers.headers = vec![
            ("trace".into(), Some(Bytes::from_static(b"abc"))),
            ("empty".into(), Some(Bytes::new())),
            ("null".into(), None),
            // Kafka allows a header key to repeat; order and both values must survive.
            ("trace".into(), Some(Bytes::from_static(b"def"))),
        ];
        vec![
            record(Some("k1"), Some("v1"), 1_700_000_000_000),
            record(None, Some("no key"), 1_699_999_999_000), // earlier than the first: negative delta
            record(Some("no value"), None, 1_700_000_000_123),
            record(None, None, 0),
            with_headers,
            record(Some(""), Some(""), -1),
        ]
    }

    fn assert_round_trip(records: &[Record], decoded: &[ConsumedRecord]) {
        assert_eq!(records.len(), decoded.len());
        for (i, (sent, got)) in records.iter().zip(decoded).enumerate() {
            assert_eq!(got.offset, i as i64);
            assert_eq!(got.timestamp, sent.timestamp, "record {i}");
            assert_eq!(got.key, sent.key, "record {i}");
            assert_eq!(got.value, sent.value, "record {i}");
            assert_eq!(got.headers, sent.headers, "record {i}");
        }
    }

    /// A big, compressible section so that codecs use several blocks/chunks.
    fn large_records() -> Vec<Record> {
        (0..300)
            .map(|i| Record {
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value {i} ").repeat(100))),
                headers: vec![("i".into(), Some(Bytes::from(i.to_string())))],
                timestamp: 1_700_000_000_000 + i,
            })
            .collect()
    }

    #[test]
    fn every_codec_round_trips_keys_values_headers_and_timestamps() {
        for records in [sample_records(), large_records()] {
            for codec in ALL_CODECS {
                let batch = encode_batch(&records, codec).unwrap();
                let decoded = decode_records(&batch).unwrap();
                assert_round_trip(&records, &decoded);
            }
        }
    }

    #[test]
    fn built_batch_has_the_header_a_non_idempotent_producer_writes() {
        let records = sample_records();
        for codec in ALL_CODECS {
            let batch = encode_batch(&records, codec).unwrap();
            let header = validate_for_append(&batch).unwrap();
            assert_eq!(header.base_offset, 0);
            assert_eq!(header.partition_leader_epoch, -1);
            assert_eq!(header.producer_id, -1);
            assert_eq!(header.producer_epoch, -1);
            assert_eq!(header.base_sequence, -1);
            assert_eq!(header.records_count, records.len() as i32);
            assert_eq!(header.last_offset_delta, records.len() as i32 - 1);
            assert_eq!(header.base_timestamp, records[0].timestamp);
            assert_eq!(header.max_timestamp, 1_700_000_000_500);
            assert_eq!(header.compression().unwrap(), codec);
            assert!(!header.is_log_append_time());
            assert!(!header.is_transactional());
            assert!(!header.is_control());
        }
    }

    #[test]
    fn compressed_payload_starts_with_the_codec_magic() {
        let records = large_records();
        let magic: [(Compression, &[u8]); 4] = [
            (Compression::Gzip, &[0x1f, 0x8b]),
            (Compression::Snappy, &XERIAL_MAGIC),
            (Compression::Lz4, &[0x04, 0x22, 0x4d, 0x18]),
            (Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
        ];
        for (codec, magic) in magic {
            let batch = encode_batch(&records, codec).unwrap();
            assert!(batch[BATCH_HEADER_BYTES..].starts_with(magic), "{codec:?}");
            let uncompressed = encode_batch(&records, Compression::None).unwrap();
            assert!(
                batch.len() < uncompressed.len() / 4,
                "{codec:?} should compress"
            );
        }
    }

    #[test]
    fn estimate_is_exact_for_uncompressed_batches() {
        let mut builder = BatchBuilder::new(Compression::None);
        assert_eq!(builder.estimated_bytes(), 0);
        for record in sample_records() {
            let expected = builder.estimated_bytes_with(&record);
            builder.push(record);
            assert_eq!(builder.estimated_bytes(), expected);
        }
        assert_eq!(builder.len(), 6);
        let estimate = builder.estimated_bytes();
        assert_eq!(builder.build().unwrap().len(), estimate);
    }

    #[test]
    fn empty_builder_builds_nothing() {
        let builder = BatchBuilder::new(Compression::Zstd);
        assert!(builder.is_empty());
        let built = builder.build().unwrap();
        assert!(built.is_empty());
        assert!(decode_records(&built).unwrap().is_empty());
    }

    #[test]
    fn timestamps_too_far_apart_are_refused_not_wrapped() {
        let records = [record(None, None, i64::MIN), record(None, None, i64::MAX)];
        assert!(matches!(
            encode_batch(&records, Compression::None),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn several_batches_decode_in_order_with_their_offsets() {
        let mut buf = BytesMut::new();
        let mut first =
            BytesMut::from(&encode_batch(&sample_records()[..2], Compression::Lz4).unwrap()[..]);
        crate::batch::stamp(&mut first, 100, 3);
        buf.extend_from_slice(&first);
        let mut second =
            BytesMut::from(&encode_batch(&sample_records()[2..], Compression::Gzip).unwrap()[..]);
        crate::batch::stamp(&mut second, 102, 3);
        buf.extend_from_slice(&second);
        let decoded = decode_records(&buf.freeze()).unwrap();
        let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![100, 101, 102, 103, 104, 105]);
    }

    #[test]
    fn trailing_partial_batch_is_ignored() {
        let whole = encode_batch(&sample_records(), Compression::Snappy).unwrap();
        let mut buf = BytesMut::from(&whole[..]);
        buf.extend_from_slice(&whole);
        let cut_points = [
            1,
            LOG_OVERHEAD - 1,
            LOG_OVERHEAD,
            BATCH_HEADER_BYTES,
            whole.len() - 1,
        ];
        for cut in cut_points {
            let truncated = buf.clone().freeze().slice(..whole.len() + cut);
            let decoded = decode_records(&truncated).unwrap();
            assert_eq!(decoded.len(), sample_records().len(), "cut at {cut}");
        }
        // A lone partial batch decodes to nothing.
        assert!(decode_records(&whole.slice(..whole.len() - 1))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn corrupt_whole_batch_is_an_error() {
        let whole = encode_batch(&sample_records(), Compression::None).unwrap();
        let mut bad = BytesMut::from(&whole[..]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode_records(&bad.freeze()),
            Err(ProtocolError::CorruptBatch(m)) if m.contains("CRC")
        ));
    }

    /// Rewrite a header field inside the CRC'd region and fix the CRC up.
    fn patch(batch: &Bytes, at: usize, bytes: &[u8]) -> Bytes {
        let mut patched = BytesMut::from(&batch[..]);
        patched[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crc32c::crc32c(&patched[CRC_COVERED_FROM..]);
        patched[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        patched.freeze()
    }

    #[test]
    fn control_batches_are_skipped() {
        let data = encode_batch(&sample_records()[..1], Compression::None).unwrap();
        let control = patch(&data, 21, &0x20i16.to_be_bytes());
        let mut buf = BytesMut::from(&control[..]);
        buf.extend_from_slice(&data);
        assert_eq!(decode_records(&buf.freeze()).unwrap().len(), 1);
    }

    #[test]
    fn log_append_time_reports_the_batch_max_timestamp() {
        let batch = encode_batch(&sample_records(), Compression::None).unwrap();
        let batch = patch(&batch, 21, &0x08i16.to_be_bytes());
        let batch = patch(&batch, 35, &42i64.to_be_bytes());
        for record in decode_records(&batch).unwrap() {
            assert_eq!(record.timestamp, 42);
        }
    }

    #[test]
    fn huge_record_count_is_refused_before_allocating() {
        let batch = encode_batch(&sample_records(), Compression::Zstd).unwrap();
        let batch = patch(&batch, 57, &i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_records(&batch),
            Err(ProtocolError::CorruptBatch(m)) if m.contains("records")
        ));
    }

    #[test]
    fn compacted_batch_with_fewer_records_than_its_offset_range_decodes() {
        let batch = encode_batch(&sample_records(), Compression::None).unwrap();
        let batch = patch(&batch, 23, &20i32.to_be_bytes());
        assert!(validate(&batch).is_err());
        assert_eq!(
            decode_records(&batch).unwrap().len(),
            sample_records().len()
        );
    }

    #[test]
    fn offset_and_timestamp_overflow_are_errors_not_panics() {
        let batch = encode_batch(&sample_records(), Compression::None).unwrap();
        let mut late = BytesMut::from(&batch[..]);
        crate::batch::stamp(&mut late, i64::MAX, 0);
        assert!(decode_records(&late.freeze()).is_err());
        let batch = patch(&batch, 27, &i64::MAX.to_be_bytes());
        assert!(decode_records(&batch).is_err());
    }

    #[test]
    fn record_count_larger_than_records_present_is_an_error() {
        let batch = encode_batch(&sample_records(), Compression::Gzip).unwrap();
        let batch = patch(&batch, 57, &7i32.to_be_bytes());
        assert!(decode_records(&batch).is_err());
        let batch = encode_batch(&sample_records(), Compression::Gzip).unwrap();
        let batch = patch(&batch, 57, &5i32.to_be_bytes());
        assert!(matches!(
            decode_records(&batch),
            Err(ProtocolError::CorruptBatch(m)) if m.contains("after the last")
        ));
    }

    #[test]
    fn decompression_is_bounded() {
        let records = large_records();
        let uncompressed =
            encode_batch(&records, Compression::None).unwrap().len() - BATCH_HEADER_BYTES;
        for codec in ALL_CODECS.into_iter().skip(1) {
            let batch = encode_batch(&records, codec).unwrap();
            assert!(
                decode_records_with_limit(&batch, uncompressed).is_ok(),
                "{codec:?}"
            );
            assert!(
                matches!(
                    decode_records_with_limit(&batch, uncompressed - 1),
                    Err(ProtocolError::Compression(m)) if m.contains("limit")
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let bomb = compress(Compression::Gzip, &zeros).unwrap();
        assert!(bomb.len() < 64 * 1024);
        assert!(matches!(
            decompress(Compression::Gzip, &bomb, 1024 * 1024),
            Err(ProtocolError::Compression(_))
        ));
    }

    /// Replace a batch's compressed payload, fixing length and CRC.
    fn with_payload(batch: &Bytes, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::from(&batch[..BATCH_HEADER_BYTES]);
        out.extend_from_slice(payload);
        let length = (out.len() - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&out[CRC_COVERED_FROM..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }

    #[test]
    fn raw_and_xerial_snappy_both_decode() {
        let records = large_records();
        let xerial = encode_batch(&records, Compression::Snappy).unwrap();
        let plain = encode_batch(&records, Compression::None).unwrap();
        let section = &plain[BATCH_HEADER_BYTES..];
        // Several xerial chunks.
        assert!(section.len() > 2 * XERIAL_BLOCK_BYTES);
        assert_round_trip(&records, &decode_records(&xerial).unwrap());
        // librdkafka's shape: one raw snappy block.
        let raw = snap::raw::Encoder::new().compress_vec(section).unwrap();
        assert!(!raw.starts_with(&XERIAL_MAGIC));
        let raw_batch = with_payload(&xerial, &raw);
        validate_for_append(&raw_batch).unwrap();
        assert_round_trip(&records, &decode_records(&raw_batch).unwrap());
    }

    #[test]
    fn snappy_declared_length_is_checked_before_allocating() {
        // A raw snappy block that claims 2^32-1 bytes of output.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(matches!(
            decompress(Compression::Snappy, &claim, 1024),
            Err(ProtocolError::Compression(_))
        ));
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6]);
        xerial.extend_from_slice(&claim);
        assert!(decompress(Compression::Snappy, &xerial, 1024).is_err());
        // A chunk length running past the end.
        let mut cut = XERIAL_MAGIC.to_vec();
        cut.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 99, 1]);
        assert!(decompress(Compression::Snappy, &cut, 1024).is_err());
    }

    #[test]
    fn garbage_payloads_are_errors() {
        let batch = encode_batch(&sample_records(), Compression::None).unwrap();
        for codec in ALL_CODECS.into_iter().skip(1) {
            let bad = patch(
                &with_payload(&batch, b"\x1f\x8b\x04\x22\x4d\x18 not really"),
                21,
                &(codec as i16).to_be_bytes(),
            );
            assert!(decode_records(&bad).is_err(), "{codec:?}");
        }
    }

    #[test]
    fn lz4_frame_from_another_encoder_decodes() {
        // Linked blocks and a content checksum, as other lz4 frame writers may produce.
        let plain = encode_batch(&large_records(), Compression::None).unwrap();
        let info = lz4_flex::frame::FrameInfo::new()
            .block_mode(lz4_flex::frame::BlockMode::Linked)
            .content_checksum(true);
        let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(&plain[BATCH_HEADER_BYTES..]).unwrap();
        let frame = encoder.finish().unwrap();
        let batch = patch(
            &with_payload(&plain, &frame),
            21,
            &(Compression::Lz4 as i16).to_be_bytes(),
        );
        assert_round_trip(&large_records(), &decode_records(&batch).unwrap());
    }

    fn to_kafka(codec: Compression) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression as K;
        match codec {
            Compression::None => K::None,
            Compression::Gzip => K::Gzip,
            Compression::Snappy => K::Snappy,
            Compression::Lz4 => K::Lz4,
            Compression::Zstd => K::Zstd,
        }
    }

    fn from_kafka(codec: kafka_protocol::records::Compression) -> Compression {
        use kafka_protocol::records::Compression as K;
        match codec {
            K::None => Compression::None,
            K::Gzip => Compression::Gzip,
            K::Snappy => Compression::Snappy,
            K::Lz4 => Compression::Lz4,
            K::Zstd => Compression::Zstd,
        }
    }

    /// Headers without repeated keys: kafka-protocol keeps them in a map.
    fn interop_records() -> Vec<Record> {
        let mut records = sample_records();
        records[4].headers.pop();
        records
    }

    #[test]
    fn kafka_protocol_decoder_reads_our_batches() {
        use kafka_protocol::records::RecordBatchDecoder;
        let records = interop_records();
        for codec in ALL_CODECS {
            let mut batch = encode_batch(&records, codec).unwrap();
            let set = RecordBatchDecoder::decode_with_custom_compression(
                &mut batch,
                Some(|payload: &mut Bytes, codec| {
                    Ok(Bytes::from(decompress(
                        from_kafka(codec),
                        payload,
                        1 << 20,
                    )?))
                }),
            )
            .unwrap();
            assert_eq!(set.records.len(), records.len());
            for (i, (sent, got)) in records.iter().zip(&set.records).enumerate() {
                assert_eq!(got.offset, i as i64);
                assert_eq!(got.sequence, i as i32 - 1);
                assert_eq!(got.producer_id, -1);
                assert_eq!(got.timestamp, sent.timestamp);
                assert_eq!(got.key, sent.key);
                assert_eq!(got.value, sent.value);
                let headers: Vec<(String, Option<Bytes>)> = got
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                assert_eq!(headers, sent.headers);
            }
        }
    }

    #[test]
    fn we_read_kafka_protocol_encoder_batches() {
        use kafka_protocol::protocol::StrBytes;
        use kafka_protocol::records::{
            Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let records = interop_records();
        let kafka_records: Vec<KafkaRecord> = (0i64..)
            .zip(&records)
            .map(|(offset, r)| KafkaRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                sequence: offset as i32 - 1,
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                    .collect(),
            })
            .collect();
        for codec in ALL_CODECS {
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode_with_custom_compression(
                &mut buf,
                &kafka_records,
                &RecordEncodeOptions {
                    version: 2,
                    compression: to_kafka(codec),
                },
                Some(|section: &mut BytesMut, out: &mut BytesMut, codec| {
                    out.extend_from_slice(&compress(from_kafka(codec), section)?);
                    Ok(())
                }),
            )
            .unwrap();
            let buf = buf.freeze();
            // One batch, with the base sequence we want.
            let header = validate_for_append(&buf).unwrap();
            assert_eq!(header.base_sequence, -1);
            assert_round_trip(&records, &decode_records(&buf).unwrap());
        }
    }
}
