//! The inside of an uncompressed batch as the cleaner needs it: its records' offsets,
//! timestamps, keys and whether they carry a value, and a batch rebuilt from the records
//! it keeps. Also the check a compacted log's stored batches must pass.
//!
//! A record (Kafka's layout, zigzag varints):
//! `length | attributes i8 | timestampDelta varlong | offsetDelta varint | keyLength | key |
//! valueLength | value | headers`. The cleaner copies a kept record's bytes unchanged,
//! except for its timestamp delta when the batch's base timestamp changes (when a delete
//! horizon is set, see `rewrite`).

use sluice_protocol::batch::{
    self, BatchHeader, Compression, BATCH_HEADER_BYTES, LOG_OVERHEAD, MAGIC_V2,
};

use crate::storage::{StorageError, NO_TIMESTAMP};

/// Attribute bit: the batch's baseTimestamp field holds its delete horizon (KIP-534).
pub(super) const DELETE_HORIZON_FLAG: i16 = 0x40;
/// Where a batch's CRC-32C is stored, and where the bytes it covers start.
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// One record inside an uncompressed batch, borrowed from the batch's bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub has_value: bool,
    attributes: u8,
    /// The record's body from its offsetDelta to its end (unchanged by a rewrite).
    after_timestamp: &'a [u8],
    /// The whole record, length prefix included.
    whole: &'a [u8],
}

/// The records of an uncompressed batch (`bytes` is the whole, valid batch).
pub(super) fn records(bytes: &[u8]) -> Result<Vec<RecordView<'_>>, StorageError> {
    let header = BatchHeader::parse(bytes)?;
    let count = usize::try_from(header.records_count)
        .map_err(|_| corrupt("a negative record count".into()))?;
    let mut cursor = Cursor {
        bytes,
        position: BATCH_HEADER_BYTES,
    };
    // Each record takes at least 7 bytes: bound the allocation by what is there.
    let mut records = Vec::with_capacity(count.min(bytes.len() / 7));
    for _ in 0..count {
        records.push(cursor.record()?);
    }
    if cursor.position != bytes.len() {
        return Err(corrupt(format!(
            "{} bytes left after the last record",
            bytes.len() - cursor.position
        )));
    }
    Ok(records)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn record(&mut self) -> Result<RecordView<'a>, StorageError> {
        let start = self.position;
        let length = usize::try_from(self.varint()?)
            .map_err(|_| corrupt("a negative record length".into()))?;
        let body_start = self.position;
        let end = body_start
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| corrupt(format!("a record of {length} bytes runs past the batch")))?;
        let mut body = Cursor {
            bytes: &self.bytes[..end],
            position: body_start,
        };
        let attributes = body.take(1)?[0];
        let timestamp_delta = body.varint()?;
        let after_timestamp_at = body.position;
        let offset_delta = i32::try_from(body.varint()?)
            .map_err(|_| corrupt("an offset delta beyond 32 bits".into()))?;
        let key = body.nullable_bytes()?;
        let has_value = body.nullable_bytes()?.is_some();
        self.position = end;
        Ok(RecordView {
            offset_delta,
            timestamp_delta,
            key,
            has_value,
            attributes,
            after_timestamp: &self.bytes[after_timestamp_at..end],
            whole: &self.bytes[start..end],
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        let end = self
            .position
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| corrupt("a record field runs past its record".into()))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    /// A zigzag varint or varlong (at most 10 bytes).
    fn varint(&mut self) -> Result<i64, StorageError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(corrupt("a varint longer than 10 bytes".into()))
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, StorageError> {
        let length = self.varint()?;
        if length < 0 {
            return Ok(None);
        }
        let length =
            usize::try_from(length).map_err(|_| corrupt("an oversized field length".into()))?;
        self.take(length).map(Some)
    }
}

fn corrupt(why: String) -> StorageError {
    StorageError::Corrupt(format!("record batch: {why}"))
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// What a rebuilt batch keeps of its original.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rebuild {
    /// The new baseTimestamp field: the original one, or a newly set delete horizon.
    pub base_timestamp: i64,
    /// The new attributes (the delete-horizon bit may have been set).
    pub attributes: i16,
}

/// A batch with the original's header fields (base offset, last offset delta, epoch,
/// producer fields) but only `kept` records, re-encoded against `rebuild.base_timestamp`,
/// with its max timestamp recomputed and a fresh CRC-32C. With no record kept it is
/// Kafka's empty batch (`DefaultRecordBatch.writeEmptyHeader`): no records, both
/// timestamps the original max timestamp.
pub(super) fn rebuild(
    original: &[u8],
    kept: &[RecordView<'_>],
    rebuild: Rebuild,
) -> Result<Vec<u8>, StorageError> {
    let header = BatchHeader::parse(original)?;
    let old_base = header.base_timestamp;
    let log_append_time = header.is_log_append_time();
    let mut body = Vec::new();
    // As Kafka's MemoryRecordsBuilder: the largest record timestamp, NO_TIMESTAMP if none.
    let mut max_timestamp = NO_TIMESTAMP;
    for record in kept {
        let timestamp = old_base.wrapping_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        if rebuild.base_timestamp == old_base {
            body.extend_from_slice(record.whole);
            continue;
        }
        let mut inner = vec![record.attributes];
        put_varint(&mut inner, timestamp.wrapping_sub(rebuild.base_timestamp));
        inner.extend_from_slice(record.after_timestamp);
        put_varint(&mut body, inner.len() as i64);
        body.extend_from_slice(&inner);
    }
    if log_append_time || kept.is_empty() {
        max_timestamp = header.max_timestamp;
    }
    let base_timestamp = if kept.is_empty() {
        header.max_timestamp
    } else {
        rebuild.base_timestamp
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    let batch_length = i32::try_from(BATCH_HEADER_BYTES - LOG_OVERHEAD + body.len())
        .map_err(|_| corrupt(format!("a rebuilt batch of {} bytes", body.len())))?;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    out.extend_from_slice(&rebuild.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&(kept.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Check a stored batch of a log that may have been compacted: like
/// `sluice_protocol::batch::validate` (length, magic, codec, CRC-32C), except that the
/// record count may be below `lastOffsetDelta + 1` (compaction removes records but keeps
/// the batch's last offset), down to none (Kafka's empty batch).
pub(crate) fn validate_stored(bytes: &[u8]) -> Result<BatchHeader, StorageError> {
    if let Ok(header) = batch::validate(bytes) {
        return Ok(header);
    }
    let header = BatchHeader::parse(bytes)?;
    let size = batch::batch_size_from_prefix(bytes)?;
    if size != bytes.len() {
        return Err(corrupt(format!(
            "its length says {size} bytes but {} are present",
            bytes.len()
        )));
    }
    if header.magic != MAGIC_V2 {
        return Err(corrupt(format!("magic {} is not 2", header.magic)));
    }
    header.compression()?;
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
    if crc != header.crc {
        return Err(corrupt(format!(
            "CRC-32C mismatch: stored {:#010x}, computed {crc:#010x}",
            header.crc
        )));
    }
    if header.last_offset_delta < 0
        || header.records_count < 0
        || i64::from(header.records_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(corrupt(format!(
            "record count {} does not fit lastOffsetDelta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Whether the cleaner reads this batch's records directly: an uncompressed data batch.
/// Compressed data batches are decompressed first ([`decompressed`]); control batches
/// (transaction markers) are kept whole.
pub(super) fn filterable(header: &BatchHeader) -> Result<bool, StorageError> {
    Ok(!header.is_control() && header.compression()? == Compression::None)
}

/// Rewrite a batch's length, attributes and CRC-32C after its records section changed.
fn seal(out: &mut [u8], attributes: i16) -> Result<(), StorageError> {
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| corrupt(format!("a rebuilt batch of {} bytes", out.len())))?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// A compressed data batch as the uncompressed batch it stands for: the same header (no
/// codec in its attributes) over the decompressed records section.
pub(super) fn decompressed(bytes: &[u8], codec: Compression) -> Result<Vec<u8>, StorageError> {
    let header = BatchHeader::parse(bytes)?;
    let section = sluice_protocol::records::decompress_records_section(
        codec,
        &bytes[BATCH_HEADER_BYTES..],
        sluice_protocol::records::DECOMPRESSED_BATCH_BYTES_MAX,
    )
    .map_err(|e| corrupt(format!("its records do not decompress: {e}")))?;
    let mut plain = Vec::with_capacity(BATCH_HEADER_BYTES + section.len());
    plain.extend_from_slice(&bytes[..BATCH_HEADER_BYTES]);
    plain.extend_from_slice(&section);
    seal(&mut plain, header.attributes & !CODEC_MASK)?;
    Ok(plain)
}

/// An uncompressed batch compressed with `codec` (its records section, and the codec in its
/// attributes).
pub(super) fn compressed(plain: &[u8], codec: Compression) -> Result<Vec<u8>, StorageError> {
    let header = BatchHeader::parse(plain)?;
    let section =
        sluice_protocol::records::compress_records_section(codec, &plain[BATCH_HEADER_BYTES..])
            .map_err(|e| corrupt(format!("its records do not compress: {e}")))?;
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + section.len());
    out.extend_from_slice(&plain[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&section);
    seal(&mut out, (header.attributes & !CODEC_MASK) | codec as i16)?;
    Ok(out)
}

/// The codec bits of a batch's attributes.
const CODEC_MASK: i16 = 0x7;

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sluice_protocol::records::{decode_records, encode_batch, Record};

    use super::*;

    fn three_records() -> Bytes {
        let record = |key: &'static [u8], value: Option<&'static [u8]>, timestamp| Record {
            key: Some(Bytes::from_static(key)),
            value: value.map(Bytes::from_static),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"v")))],
            timestamp,
        };
        let records = [
            record(b"a", Some(b"1"), 1_000),
            record(b"b", None, 1_005),
            record(b"c", Some(b"3"), 1_002),
        ];
        let mut built = encode_batch(&records, Compression::None).unwrap().to_vec();
        built[..8].copy_from_slice(&40i64.to_be_bytes());
        Bytes::from(built)
    }

    #[test]
    fn a_rebuilt_batch_keeps_offsets_timestamps_and_the_records_it_keeps() {
        let original = three_records();
        let views = records(&original).unwrap();
        let kept = [views[1], views[2]];
        let horizon = Rebuild {
            base_timestamp: 90_000,
            attributes: DELETE_HORIZON_FLAG,
        };
        let rebuilt = Bytes::from(rebuild(&original, &kept, horizon).unwrap());
        let header = validate_stored(&rebuilt).unwrap();
        assert!(
            batch::validate(&rebuilt).is_err(),
            "two records for three offsets"
        );
        assert_eq!((header.base_offset, header.last_offset()), (40, 42));
        assert_eq!(
            (header.base_timestamp, header.max_timestamp),
            (90_000, 1_005)
        );
        let decoded = decode_records(&rebuilt).unwrap();
        let all = decode_records(&original).unwrap();
        assert_eq!(decoded, all[1..].to_vec());

        let empty = Rebuild {
            base_timestamp: 0,
            attributes: 0,
        };
        let emptied = rebuild(&original, &[], empty).unwrap();
        let header = validate_stored(&emptied).unwrap();
        assert_eq!((header.records_count, header.last_offset()), (0, 42));
        assert_eq!(header.size_bytes(), BATCH_HEADER_BYTES);
    }

    #[test]
    fn stored_batches_still_need_a_valid_crc_and_no_more_records_than_offsets() {
        let mut corrupt = three_records().to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(validate_stored(&corrupt).is_err());
        let mut too_many = three_records().to_vec();
        too_many[23..27].copy_from_slice(&1i32.to_be_bytes()); // lastOffsetDelta 1, 3 records
        let crc = crc32c::crc32c(&too_many[ATTRIBUTES_AT..]);
        too_many[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
        assert!(validate_stored(&too_many).is_err());
    }
}
