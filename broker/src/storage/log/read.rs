//! Reading a partition's log: batches from an offset, offsets by timestamp.
//!
//! # Read
//! [`PartitionLog::read`] finds the segment holding the offset, the nearest offset-index
//! entry at or before it, scans batch headers forward to the batch containing the offset,
//! then returns whole batches up to `max_bytes`, continuing into later segments. The first
//! batch is returned whole even if it alone exceeds `max_bytes`.
//!
//! In a compacted log an offset may lie in a gap the cleaner left (its record was
//! removed): the read starts at the first batch after it, as Kafka's does. Batches keep
//! their last offset, so every offset below the log end has a batch at or after it.

use bytes::{Bytes, BytesMut};

use super::{lock, PartitionLog};
use crate::storage::segment::{FirstBatch, ReadEnd, TimestampMatch};
use crate::storage::StorageError;

impl PartitionLog {
    /// Read whole batches from the one containing `offset`; see the module documentation.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        let state = lock(&self.state);
        let log_end_offset = state.log_end_offset();
        if offset < state.log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: state.log_start_offset,
                log_end_offset,
            });
        }
        let mut out = BytesMut::new();
        if offset == log_end_offset {
            return Ok(out.freeze());
        }
        let mut first = true;
        for segment in state.segments_from(offset) {
            let position = if first {
                segment.find_position(offset)?
            } else {
                0
            };
            first = false;
            // Whole while nothing is read yet: in a compacted log the segment holding
            // `offset` may have no batch left at or past it.
            let rule = if out.is_empty() {
                FirstBatch::Whole
            } else {
                FirstBatch::IfFits
            };
            let budget = max_bytes.saturating_sub(out.len());
            if segment.read_into(position, budget, rule, &mut out)? == ReadEnd::BudgetSpent {
                break;
            }
        }
        Ok(out.freeze())
    }

    /// The first record at or past the log start whose timestamp is `>= timestamp_ms`
    /// (Kafka's `fetchOffsetByTimestamp`), or `None` if no record has such a timestamp.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampMatch>, StorageError> {
        let state = lock(&self.state);
        for segment in state.segments() {
            if let Some(found) = segment.find_timestamp(timestamp_ms, state.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::one_record;
    use crate::storage::testing::{batch, headers, open_log, stamped, std_fs, test_config};
    use crate::storage::{LogConfig, ShutdownState};

    #[test]
    fn reads_cross_segment_boundaries_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 400,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        let mut appended = Vec::new();
        for i in 0..20 {
            let records = batch(2, 1000 + i, 30, i as u64);
            let info = log.append(records.clone(), 0, 0).unwrap();
            appended.push(stamped(&records, info.base_offset, 0));
        }
        assert!(log.segment_count() > 5, "{} segments", log.segment_count());
        assert_eq!(log.log_end_offset(), 40);
        let everything: Vec<u8> = appended.concat();
        for offset in 0..40 {
            let read = log.read(offset, usize::MAX).unwrap();
            let first = (offset / 2) as usize;
            assert_eq!(
                &read[..],
                &appended[first..].concat()[..],
                "read from offset {offset}"
            );
        }
        assert_eq!(&log.read(0, usize::MAX).unwrap()[..], &everything[..]);
    }

    #[test]
    fn read_honours_max_bytes_and_returns_an_oversized_first_batch_whole() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 250,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        let sizes: Vec<usize> = (0..6)
            .map(|i| {
                let records = batch(1, i, 40, i as u64);
                let size = records.len();
                log.append(records, 0, 0).unwrap();
                size
            })
            .collect();
        assert!(log.segment_count() >= 2);
        // Smaller than the first batch: that batch alone, whole.
        let read = log.read(0, 1).unwrap();
        assert_eq!(read.len(), sizes[0]);
        // One byte short of two batches: one.
        assert_eq!(
            log.read(0, sizes[0] + sizes[1] - 1).unwrap().len(),
            sizes[0]
        );
        // Room for exactly four batches, across a segment boundary: four whole batches.
        let four: usize = sizes[..4].iter().sum();
        let read = log.read(0, four).unwrap();
        assert_eq!(headers(&read).len(), 4);
        assert_eq!(read.len(), four);
        // From the middle.
        assert_eq!(
            headers(&log.read(3, sizes[3] + 5).unwrap())[0].base_offset,
            3
        );
    }

    #[test]
    fn reading_at_the_end_is_empty_and_past_it_is_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        assert!(log.read(0, 100).unwrap().is_empty());
        log.append(batch(2, 0, 10, 0), 0, 0).unwrap();
        assert!(log.read(2, 100).unwrap().is_empty());
        assert!(matches!(
            log.read(3, 100),
            Err(StorageError::OffsetOutOfRange {
                requested: 3,
                log_start_offset: 0,
                log_end_offset: 2
            })
        ));
        assert!(matches!(
            log.read(-1, 100),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn offset_for_timestamp_finds_the_first_record_at_or_after() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 300,
            index_interval_bytes: 1,
            ..test_config()
        };
        let fs = std_fs();
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
        // Timestamps are not monotonic across batches.
        for (i, timestamp) in [100, 300, 200, 500, 400, 450, 600, 550]
            .into_iter()
            .enumerate()
        {
            log.append(one_record(timestamp, i as u64), 0, 0).unwrap();
        }
        assert!(log.segment_count() >= 3);
        let expect = [
            (0, Some((0, 100))),
            (100, Some((0, 100))),
            (150, Some((1, 300))),
            (300, Some((1, 300))),
            (301, Some((3, 500))),
            (450, Some((3, 500))),
            (501, Some((6, 600))),
            (600, Some((6, 600))),
            (601, None),
        ];
        let found = |log: &PartitionLog, timestamp| {
            let found = log.offset_for_timestamp(timestamp).unwrap();
            found.map(|f| (f.offset, f.timestamp))
        };
        for (timestamp, expected) in expect {
            assert_eq!(found(&log, timestamp), expected, "timestamp {timestamp}");
        }
        // The same answers from indexes loaded off disk.
        log.flush().unwrap();
        drop(log);
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
        assert_eq!(log.recovery_report().segments_scanned, 0);
        for (timestamp, expected) in expect {
            assert_eq!(found(&log, timestamp), expected, "reopened, {timestamp}");
        }
    }

    /// The case: one batch of 100 records 1 ms apart; asking for base + 50 ms
    /// answers the 51st record (offset 50 and its own timestamp), not the batch, whatever
    /// the codec; the answer carries the batch's leader epoch.
    #[test]
    fn offset_for_timestamp_answers_the_record_inside_a_batch() {
        use sluice_protocol::batch::Compression;
        use sluice_protocol::records::{encode_batch, Record};
        for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let dir = tempfile::tempdir().unwrap();
            let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
            let base = 1_700_000_000_000i64;
            let records: Vec<Record> = (0..100)
                .map(|i| Record {
                    key: None,
                    value: Some(bytes::Bytes::from(format!("v{i}"))),
                    headers: Vec::new(),
                    timestamp: base + i,
                })
                .collect();
            let batch = BytesMut::from(&encode_batch(&records, codec).unwrap()[..]);
            log.append(batch, 7, 0).unwrap();
            let found = log.offset_for_timestamp(base + 50).unwrap().unwrap();
            assert_eq!(
                (found.offset, found.timestamp, found.leader_epoch),
                (50, base + 50, 7),
                "{codec:?}"
            );
            let first = log.offset_for_timestamp(base - 5).unwrap().unwrap();
            assert_eq!((first.offset, first.timestamp), (0, base), "{codec:?}");
            assert_eq!(log.offset_for_timestamp(base + 100).unwrap(), None);
        }
    }
}
