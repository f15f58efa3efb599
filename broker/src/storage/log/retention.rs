//! Retention of a partition's log: deleting old segments by time and size, which moves
//! the log start offset and its checkpoint.
//!
//! [`PartitionLog::apply_retention`] deletes whole sealed segments from the front while the
//! oldest is past `retention_ms` (by its largest timestamp) or removing it leaves the log at
//! least `retention_bytes` big. The active segment is never deleted. The log start offset
//! advances to the new first segment and is checkpointed. A log whose `cleanup.policy`
//! lacks `delete` (compaction alone) is never cut by retention, as in Kafka.
//!
//! [`PartitionLog::advance_log_start`] moves the log start to any offset (Kafka's
//! DeleteRecords on a leader, and a follower following its leader's log start): it may land
//! inside a segment, whose records below it then stay on disk but are never served (reads
//! below the log start are out of range); whole segments below it are deleted. The new
//! start is checkpointed before it returns, so a restart does not bring the records back.

use super::{lock, PartitionLog};
use crate::metrics as m;
use crate::storage::epoch_cache;
use crate::storage::segment::Segment;
use crate::storage::StorageError;

impl PartitionLog {
    /// Make `offset` the log start (if above it; at most the log end offset): records
    /// below are gone for readers, and sealed segments that end at or below it are deleted.
    /// Returns the log start offset now. The caller keeps it at or below what is committed
    /// (the high watermark).
    pub fn advance_log_start(&self, offset: i64) -> Result<i64, StorageError> {
        let doomed = {
            let mut state = lock(&self.state);
            let offset = offset.min(state.log_end_offset());
            if offset <= state.log_start_offset {
                return Ok(state.log_start_offset);
            }
            state.log_start_offset = offset;
            let mut doomed = Vec::new();
            while state.oldest_sealed_end().is_some_and(|end| end <= offset) {
                doomed.extend(state.pop_oldest_sealed());
            }
            // Entries below the log start are harmless on disk (open drops them).
            if state.epochs.truncate_from_start(offset) {
                epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
            }
            doomed
        };
        let log_start_offset = self.log_start_offset();
        // The start on disk first: a crash before the files go leaves segments that
        // opening removes as below the log start, never records that come back.
        self.checkpoints
            .record_log_start(&self.key, log_start_offset, true)?;
        for segment in &doomed {
            segment.paths().remove(&*self.fs)?;
        }
        tracing::info!(partition = %self.name, log_start_offset, segments_deleted = doomed.len(), "log start offset advanced");
        Ok(log_start_offset)
    }

    /// Delete whole sealed segments past retention; returns how many were deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        self.apply_retention_below(now_ms, i64::MAX)
    }

    /// [`PartitionLog::apply_retention`], deleting only segments that end at or below
    /// `limit_offset`: replication passes the high watermark, so the log start never passes
    /// records a follower may still need to fetch, and a new leader never finds its log start
    /// above what the ISR has acknowledged (Kafka's rule).
    pub fn apply_retention_below(
        &self,
        now_ms: i64,
        limit_offset: i64,
    ) -> Result<usize, StorageError> {
        // Kafka: time and size retention apply only when the policy includes `delete`.
        let config = self.config();
        if !config.cleaner.cleanup_policy.deletes() {
            return Ok(0);
        }
        let (deleted, deleted_bytes, log_start_offset) = {
            let mut state = lock(&self.state);
            let mut total_bytes: u64 = state.segments().map(Segment::size_bytes).sum();
            let mut doomed = Vec::new();
            while let Some(oldest) = state.sealed.front() {
                let expired = match config.retention_ms {
                    // A segment without timestamps never expires by time.
                    Some(retention_ms) if oldest.max_timestamp() >= 0 => {
                        i128::from(now_ms) - i128::from(oldest.max_timestamp())
                            > i128::from(retention_ms)
                    }
                    _ => false,
                };
                let oversized = config.retention_bytes.is_some_and(|retention_bytes| {
                    total_bytes - oldest.size_bytes() >= retention_bytes
                });
                if !(expired || oversized) {
                    break;
                }
                if state
                    .oldest_sealed_end()
                    .is_some_and(|end| end > limit_offset)
                {
                    break;
                }
                let Some(oldest) = state.pop_oldest_sealed() else {
                    break;
                };
                total_bytes -= oldest.size_bytes();
                doomed.push(oldest);
            }
            if doomed.is_empty() {
                return Ok(0);
            }
            let new_start = state
                .sealed
                .front()
                .map_or(state.active.base_offset(), |segment| segment.base_offset());
            state.log_start_offset = state.log_start_offset.max(new_start);
            for segment in &doomed {
                segment.paths().remove(&*self.fs)?;
            }
            let deleted_bytes: u64 = doomed.iter().map(|segment| segment.size_bytes()).sum();
            metrics::counter!(m::RETENTION_SEGMENTS_DELETED_TOTAL).increment(doomed.len() as u64);
            metrics::counter!(m::RETENTION_BYTES_DELETED_TOTAL).increment(deleted_bytes);
            // Entries below the log start are harmless on disk (open drops them), so a
            // failed write here only fails this pass.
            let log_start_offset = state.log_start_offset;
            if state.epochs.truncate_from_start(log_start_offset) {
                epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
            }
            (doomed.len(), deleted_bytes, log_start_offset)
        };
        tracing::info!(partition = %self.name, deleted, deleted_bytes, log_start_offset, "retention deleted segments");
        // Recovery never starts below the first segment, so the file may learn it later.
        self.checkpoints
            .record_log_start(&self.key, log_start_offset, false)?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::one_record;
    use crate::storage::testing::{headers, open_log, std_fs, test_config};
    use crate::storage::{LogConfig, ShutdownState};

    /// One batch per segment, batch `i` with timestamp `i * 1000`.
    fn log_of_ten_segments(dir: &tempfile::TempDir, config: LogConfig) -> (PartitionLog, u64) {
        let config = LogConfig {
            segment_bytes_max: 100,
            ..config
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        let mut size = 0;
        for i in 0..10 {
            let records = one_record(i * 1000, i as u64);
            size = records.len() as u64;
            log.append(records, 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 10);
        (log, size)
    }

    #[test]
    fn advancing_the_log_start_hides_records_deletes_segments_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = log_of_ten_segments(&dir, test_config());
        // A batch of five records in the active segment: offsets 10..15.
        log.append(crate::storage::testing::batch(5, 20_000, 20, 7), 0, 0)
            .unwrap();
        assert_eq!(log.advance_log_start(3).unwrap(), 3);
        assert_eq!(log.segment_count(), 8);
        // Inside the batch of the active segment: every sealed segment goes.
        assert_eq!(log.advance_log_start(12).unwrap(), 12);
        assert_eq!(log.segment_count(), 1);
        assert!(matches!(
            log.read(11, 100),
            Err(StorageError::OffsetOutOfRange {
                requested: 11,
                log_start_offset: 12,
                ..
            })
        ));
        // The batch holding the log start is served whole, as Kafka serves it.
        assert_eq!(headers(&log.read(12, 1000).unwrap())[0].base_offset, 10);
        drop(log);
        let log = open_log(
            &std_fs(),
            dir.path(),
            &test_config(),
            ShutdownState::Unclean,
        );
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (12, 15));
        assert_eq!(headers(&log.read(12, 1000).unwrap())[0].base_offset, 10);
        // Never backwards, never past the log end.
        assert_eq!(log.advance_log_start(5).unwrap(), 12);
        assert_eq!(log.advance_log_start(99).unwrap(), 15);
        assert_eq!(log.log_end_offset(), 15);
        drop(log);
        let log = open_log(
            &std_fs(),
            dir.path(),
            &test_config(),
            ShutdownState::Unclean,
        );
        assert_eq!(log.log_start_offset(), 15);
        assert_eq!(log.log_end_offset(), 15);
    }

    #[test]
    fn retention_by_time_deletes_old_sealed_segments_and_advances_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(5000),
            ..test_config()
        };
        let (log, _) = log_of_ten_segments(&dir, config);
        assert_eq!(log.apply_retention(10_000).unwrap(), 5);
        assert_eq!(log.log_start_offset(), 5);
        assert_eq!(log.segment_count(), 5);
        assert!(matches!(
            log.read(4, 100),
            Err(StorageError::OffsetOutOfRange {
                requested: 4,
                log_start_offset: 5,
                ..
            })
        ));
        assert_eq!(headers(&log.read(5, 1).unwrap())[0].base_offset, 5);
        assert_eq!(crate::storage::testing::segment_logs(dir.path()).len(), 5);

        // Everything expired: the active segment stays.
        assert_eq!(log.apply_retention(1_000_000).unwrap(), 4);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), 9);
        assert_eq!(headers(&log.read(9, 1).unwrap())[0].base_offset, 9);

        // The log start offset survives a reopen.
        drop(log);
        let log = open_log(
            &std_fs(),
            dir.path(),
            &test_config(),
            ShutdownState::Unclean,
        );
        assert_eq!(log.log_start_offset(), 9);
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit_and_never_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, size) = log_of_ten_segments(&dir, test_config());
        drop(log);
        let config = LogConfig {
            segment_bytes_max: 100,
            retention_bytes: Some(3 * size + 1),
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        assert_eq!(log.apply_retention(0).unwrap(), 6);
        assert_eq!(log.size_bytes(), 4 * size);
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.apply_retention(0).unwrap(), 0);

        let dir = tempfile::tempdir().unwrap();
        let (log, _) = log_of_ten_segments(
            &dir,
            LogConfig {
                retention_bytes: Some(0),
                ..test_config()
            },
        );
        assert_eq!(log.apply_retention(0).unwrap(), 9);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), 10);
    }
}
