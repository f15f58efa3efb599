//! Test helpers: valid, uncompressed RecordBatch v2 batches built by hand, so storage tests
//! depend on nothing but the batch layout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use sluice_protocol::batch::{self, BatchHeader, Batches, BATCH_HEADER_BYTES, LOG_OVERHEAD};

use super::fs::{FileSystem, StdFileSystem};
use super::{Durability, LogConfig, PartitionLog, ShutdownState};

/// Small limits so that tests cross index entries and segments with a few batches.
pub(crate) fn test_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 1 << 20,
        segment_ms_max: u64::MAX,
        index_interval_bytes: 64,
        retention_ms: None,
        retention_bytes: None,
        batch_bytes_max: 1 << 20,
        durability: Durability::Replicated,
    }
}

pub(crate) fn std_fs() -> Arc<dyn FileSystem> {
    Arc::new(StdFileSystem)
}

pub(crate) fn open_log(fs: &Arc<dyn FileSystem>, dir: &Path, config: &LogConfig, shutdown: ShutdownState) -> PartitionLog {
    PartitionLog::open(Arc::clone(fs), dir.to_path_buf(), "test-0".into(), config.clone(), shutdown).unwrap()
}

/// Every batch in `bytes`, which must be whole, valid batches back to back.
pub(crate) fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    Batches::new(bytes)
        .map(|item| {
            let (_, bytes) = item.expect("whole batches");
            batch::validate(bytes).expect("valid batch")
        })
        .collect()
}

/// `batch` as append stores it at `base_offset` with leader epoch `epoch`.
pub(crate) fn stamped(batch: &[u8], base_offset: i64, epoch: i32) -> Vec<u8> {
    let mut bytes = batch.to_vec();
    batch::stamp(&mut bytes, base_offset, epoch);
    bytes
}

/// The segment log files in `dir`, in offset order.
pub(crate) fn segment_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// A batch of `records` records with timestamps `first_timestamp`, `first_timestamp + 1`, ...
/// and distinct values of `value_bytes` bytes each (derived from `seed` and the record's
/// index). Its base offset is 0; append stamps the real one.
pub(crate) fn batch(records: i32, first_timestamp: i64, value_bytes: usize, seed: u64) -> BytesMut {
    assert!(records >= 1);
    let mut body = Vec::new();
    for i in 0..records {
        let mut record = vec![0u8]; // attributes
        put_varint(&mut record, i64::from(i)); // timestampDelta
        put_varint(&mut record, i64::from(i)); // offsetDelta
        put_varint(&mut record, -1); // key: null
        let mut value = format!("{seed}:{i}:").into_bytes();
        value.resize(value_bytes.max(value.len()), b'a' + (seed % 26) as u8);
        put_varint(&mut record, value.len() as i64);
        record.extend_from_slice(&value);
        put_varint(&mut record, 0); // headers
        put_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let mut batch = BytesMut::with_capacity(BATCH_HEADER_BYTES + body.len());
    batch.put_i64(0); // baseOffset
    batch.put_i32((BATCH_HEADER_BYTES - LOG_OVERHEAD + body.len()) as i32); // batchLength
    batch.put_i32(-1); // partitionLeaderEpoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // crc, filled below
    batch.put_i16(0); // attributes: no compression, CreateTime
    batch.put_i32(records - 1); // lastOffsetDelta
    batch.put_i64(first_timestamp); // baseTimestamp
    batch.put_i64(first_timestamp + i64::from(records) - 1); // maxTimestamp
    batch.put_i64(-1); // producerId
    batch.put_i16(-1); // producerEpoch
    batch.put_i32(-1); // baseSequence
    batch.put_i32(records); // recordsCount
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn built_batches_validate() {
    let built = batch(3, 1000, 10, 7);
    let header = sluice_protocol::batch::validate(&built).unwrap();
    assert_eq!(header.records_count, 3);
    assert_eq!(header.max_timestamp, 1002);
}
