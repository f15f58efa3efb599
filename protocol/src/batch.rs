//! A zero-copy view over Kafka RecordBatch v2.
//!
//! The bytes a producer sends are the bytes on disk and the bytes a consumer receives. The
//! broker never decompresses or re-encodes a batch; it reads the 61-byte header, validates the
//! batch, and stamps `baseOffset` and `partitionLeaderEpoch` in place. Both stamped fields
//! lie before the CRC'd region (attributes..end), so stamping keeps the CRC valid.
//!
//! Layout (big-endian):
//!
//! ```text
//! 0  baseOffset i64        | 8  batchLength i32     | 12 partitionLeaderEpoch i32
//! 16 magic i8              | 17 crc u32 (CRC-32C over 21..end)
//! 21 attributes i16        | 23 lastOffsetDelta i32 | 27 baseTimestamp i64
//! 35 maxTimestamp i64      | 43 producerId i64      | 51 producerEpoch i16
//! 53 baseSequence i32      | 57 recordsCount i32    | 61 records...
//! ```
//!
//! `batchLength` counts the bytes after itself, so a batch occupies `12 + batchLength` bytes.

use crate::error::ProtocolError;

/// Bytes before `batchLength`'s region starts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed batch header, records excluded.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only record format Sluice stores.
pub const MAGIC_V2: i8 = 2;

const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// Compression codec, from attribute bits 0..2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub fn from_attributes(attributes: i16) -> Result<Compression, ProtocolError> {
        match attributes & 0x7 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(ProtocolError::CorruptBatch(format!(
                "unknown compression codec {other}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub fn parse(name: &str) -> Option<Compression> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// The header fields of one batch, copied out of its first 61 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Copy the header fields out of the first 61 bytes of `buf`. Checks only that they are
    /// present; [`validate`] checks the rest.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, ProtocolError> {
        if buf.len() < BATCH_HEADER_BYTES {
            return Err(ProtocolError::CorruptBatch(format!(
                "{} bytes is shorter than a batch header ({BATCH_HEADER_BYTES})",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: i64_at(buf, 0),
            batch_length: i32_at(buf, 8),
            partition_leader_epoch: i32_at(buf, PARTITION_LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: i32_at(buf, CRC_AT) as u32,
            attributes: i16_at(buf, ATTRIBUTES_AT),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, 35),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16_at(buf, 51),
            base_sequence: i32_at(buf, 53),
            records_count: i32_at(buf, 57),
        })
    }

    /// Total bytes the batch occupies, length prefix included.
    pub fn size_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset one past the last record of the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> Result<Compression, ProtocolError> {
        Compression::from_attributes(self.attributes)
    }

    /// Timestamp type bit: false = CreateTime, true = LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x8 != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Read the total size of the batch starting at `prefix` from its first 12 bytes, checking
/// that the length is sane. Used by recovery to step through a file.
pub fn batch_size_from_prefix(prefix: &[u8]) -> Result<usize, ProtocolError> {
    if prefix.len() < LOG_OVERHEAD {
        return Err(ProtocolError::CorruptBatch("truncated batch length".into()));
    }
    let batch_length = i32_at(prefix, 8);
    let minimum = (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32;
    if batch_length < minimum {
        return Err(ProtocolError::CorruptBatch(format!(
            "batch length {batch_length} is below the minimum {minimum}"
        )));
    }
    Ok(LOG_OVERHEAD + batch_length as usize)
}

/// Validate one whole batch (exactly `batch.len()` bytes): length, magic 2, codec, CRC-32C
/// over attributes..end, and a record count consistent with lastOffsetDelta.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, ProtocolError> {
    let header = BatchHeader::parse(batch)?;
    let size = batch_size_from_prefix(batch)?;
    if size != batch.len() {
        return Err(ProtocolError::CorruptBatch(format!(
            "batch length says {size} bytes but {} are present",
            batch.len()
        )));
    }
    if header.magic != MAGIC_V2 {
        return Err(ProtocolError::UnsupportedMagic(header.magic));
    }
    header.compression()?;
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    if crc != header.crc {
        return Err(ProtocolError::CorruptBatch(format!(
            "CRC-32C mismatch: stored {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    // Widened: `last_offset_delta + 1` in i32 overflows at i32::MAX (a panic in debug builds,
    // and in release it wraps to i32::MIN, which a records_count of i32::MIN would then match).
    if header.last_offset_delta < 0
        || i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1
    {
        return Err(ProtocolError::CorruptBatch(format!(
            "record count {} does not match lastOffsetDelta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Validate one batch like [`validate`] and also check that a compressed payload starts the
/// way its codec's format requires. This catches garbage payloads without decompressing.
pub fn validate_for_append(batch: &[u8]) -> Result<BatchHeader, ProtocolError> {
    let header = validate(batch)?;
    let payload = &batch[BATCH_HEADER_BYTES..];
    let compression = header.compression()?;
    let looks_right = match compression {
        Compression::None => true,
        Compression::Gzip => payload.starts_with(&[0x1f, 0x8b]),
        Compression::Lz4 => payload.starts_with(&[0x04, 0x22, 0x4d, 0x18]),
        Compression::Zstd => payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        // Raw snappy has no magic; xerial framing does. Accept either shape, reject empty.
        Compression::Snappy => !payload.is_empty(),
    };
    if !looks_right {
        return Err(ProtocolError::Compression(format!(
            "{} payload does not start with the codec's magic bytes",
            compression.name()
        )));
    }
    Ok(header)
}

/// Stamp a batch's baseOffset and partitionLeaderEpoch in place. Neither is covered by the
/// CRC, so the batch stays valid.
pub fn stamp(batch: &mut [u8], base_offset: i64, partition_leader_epoch: i32) {
    assert!(
        batch.len() >= BATCH_HEADER_BYTES,
        "stamping a batch shorter than its header"
    );
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&partition_leader_epoch.to_be_bytes());
}

/// Iterate over the batches laid back to back in a buffer. Yields each batch's header and
/// bytes; stops at the end of the buffer or at the first batch whose length runs past it or
/// is invalid, reporting that as one error item (after which the iterator is exhausted).
/// A trailing partial batch (as a fetch response may carry) yields [`BatchIterError::Partial`] once.
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
    done: bool,
}

/// Why iteration stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchIterError {
    /// The buffer ends inside a batch: `position` is where that batch starts.
    Partial { position: usize },
    /// The batch at `position` has an impossible length.
    Corrupt {
        position: usize,
        error: ProtocolError,
    },
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            position: 0,
            done: false,
        }
    }

    /// Byte position just past the last batch yielded.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchIterError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        if rest.len() < LOG_OVERHEAD {
            self.done = true;
            return Some(Err(BatchIterError::Partial {
                position: self.position,
            }));
        }
        let size = match batch_size_from_prefix(rest) {
            Ok(size) => size,
            Err(error) => {
                self.done = true;
                return Some(Err(BatchIterError::Corrupt {
                    position: self.position,
                    error,
                }));
            }
        };
        if rest.len() < size {
            self.done = true;
            return Some(Err(BatchIterError::Partial {
                position: self.position,
            }));
        }
        let batch = &rest[..size];
        match BatchHeader::parse(batch) {
            Ok(header) => {
                self.position += size;
                Some(Ok((header, batch)))
            }
            Err(error) => {
                self.done = true;
                Some(Err(BatchIterError::Corrupt {
                    position: self.position,
                    error,
                }))
            }
        }
    }
}

/// Summary of a producer's records buffer after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsSummary {
    pub batch_count: usize,
    pub record_count: i64,
    pub max_timestamp: i64,
    /// Offset of the record with `max_timestamp`, relative to the first record.
    pub max_timestamp_offset_delta: i64,
}

/// Validate every batch in a produce request's records buffer: each must be whole and pass
/// [`validate_for_append`]; none may exceed `batch_bytes_max` (Kafka's message.max.bytes).
/// Returns what the log needs to know to assign offsets.
pub fn validate_records(
    buf: &[u8],
    batch_bytes_max: usize,
) -> Result<RecordsSummary, ValidateError> {
    let mut summary = RecordsSummary {
        batch_count: 0,
        record_count: 0,
        max_timestamp: -1,
        max_timestamp_offset_delta: 0,
    };
    if buf.is_empty() {
        return Err(ValidateError::Invalid(ProtocolError::CorruptBatch(
            "empty records".into(),
        )));
    }
    for item in Batches::new(buf) {
        let (header, batch) = match item {
            Ok(ok) => ok,
            Err(BatchIterError::Partial { .. }) => {
                return Err(ValidateError::Invalid(ProtocolError::CorruptBatch(
                    "records end inside a batch".into(),
                )))
            }
            Err(BatchIterError::Corrupt { error, .. }) => {
                return Err(ValidateError::Invalid(error))
            }
        };
        if batch.len() > batch_bytes_max {
            return Err(ValidateError::TooLarge {
                size: batch.len(),
                limit: batch_bytes_max,
            });
        }
        validate_for_append(batch).map_err(ValidateError::Invalid)?;
        if header.max_timestamp > summary.max_timestamp {
            summary.max_timestamp = header.max_timestamp;
            summary.max_timestamp_offset_delta =
                summary.record_count + i64::from(header.last_offset_delta);
        }
        summary.batch_count += 1;
        summary.record_count += i64::from(header.records_count);
    }
    Ok(summary)
}

/// Why a produce request's records were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error("batch of {size} bytes exceeds message.max.bytes ({limit})")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Invalid(ProtocolError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid uncompressed batch with `count` empty records, built by hand so this
    /// module's tests do not depend on the builder.
    pub(crate) fn hand_built_batch(count: i32) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..count {
            // length, attributes, timestampDelta, offsetDelta, keyLen=-1, valueLen=-1, headers=0
            let body = [0u8, 0, (i as u8) << 1, 1, 1, 0];
            records.push((body.len() as u8) << 1);
            records.extend_from_slice(&body);
        }
        let mut b = vec![0u8; BATCH_HEADER_BYTES];
        b.extend_from_slice(&records);
        let batch_length = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&batch_length.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn valid_batch_passes_and_stamping_keeps_crc() {
        let mut batch = hand_built_batch(3);
        let header = validate(&batch).unwrap();
        assert_eq!(header.records_count, 3);
        stamp(&mut batch, 1000, 7);
        let header = validate(&batch).unwrap();
        assert_eq!(header.base_offset, 1000);
        assert_eq!(header.partition_leader_epoch, 7);
        assert_eq!(header.last_offset(), 1002);
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let mut batch = hand_built_batch(2);
        let last = batch.len() - 1;
        batch[last] ^= 0x40;
        assert!(
            matches!(validate(&batch), Err(ProtocolError::CorruptBatch(m)) if m.contains("CRC"))
        );
    }

    #[test]
    fn count_mismatch_is_refused() {
        let mut batch = hand_built_batch(2);
        batch[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(
            matches!(validate(&batch), Err(ProtocolError::CorruptBatch(m)) if m.contains("record count"))
        );
    }

    #[test]
    fn last_offset_delta_at_i32_max_is_refused_without_overflow() {
        let mut batch = hand_built_batch(1);
        batch[23..27].copy_from_slice(&i32::MAX.to_be_bytes());
        batch[57..61].copy_from_slice(&i32::MIN.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(
            matches!(validate(&batch), Err(ProtocolError::CorruptBatch(m)) if m.contains("record count"))
        );
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut batch = hand_built_batch(1);
        batch[16] = 1;
        assert_eq!(validate(&batch), Err(ProtocolError::UnsupportedMagic(1)));
    }

    #[test]
    fn iterator_reports_partial_tail() {
        let mut buf = hand_built_batch(1);
        let second = hand_built_batch(2);
        buf.extend_from_slice(&second[..second.len() - 3]);
        let items: Vec<_> = Batches::new(&buf).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(items[1], Err(BatchIterError::Partial { .. })));
    }

    #[test]
    fn validate_records_enforces_batch_limit() {
        let batch = hand_built_batch(4);
        assert!(matches!(
            validate_records(&batch, 10),
            Err(ValidateError::TooLarge { .. })
        ));
        let summary = validate_records(&batch, 1 << 20).unwrap();
        assert_eq!(summary.record_count, 4);
    }
}
