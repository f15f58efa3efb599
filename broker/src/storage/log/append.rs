//! Appending to a partition's log, as leader or as follower, the leader epochs the appends
//! record, and rolling segments.
//!
//! # Append
//! The server validates a Produce request's records; [`PartitionLog::append`] validates each
//! batch again (cheap, and it keeps "nothing malformed reaches storage" true whoever calls),
//! then for each batch: stamps `baseOffset` (from the log end offset) and
//! `partitionLeaderEpoch` in place, rolls the active segment first if the batch would make it
//! too big, it is too old, or its relative offsets would overflow, writes the bytes at the
//! end of the active segment and updates the sparse indexes. Batches are written exactly as
//! received otherwise.
//!
//! # Leader epochs
//! The log keeps its partition's leader-epoch cache (`epoch_cache`, persisted as
//! `leader-epoch-checkpoint`) in step with its batches: whenever an append brings a new
//! epoch, the cache records `(epoch, first offset)` and its checkpoint is made durable
//! *before* the batches are written, under the state lock. A leader taking over records its
//! epoch at once with [`PartitionLog::begin_leader_epoch`] (in memory; the checkpoint gets
//! it with the epoch's first batch). An epoch lower than the latest
//! is refused (`Corrupt`, nothing written): epochs never go back along the log.
//! [`PartitionLog::end_offset_for_epoch`] answers OffsetsForLeaderEpoch.
//! (How the checkpoint is reconciled with the batches when the log opens: see `open`.)
//!
//! # Follower append
//! [`PartitionLog::append_as_follower`] takes batches fetched from the leader as they are:
//! they already carry their offsets and epochs, so nothing is stamped and the bytes on disk
//! are the leader's bytes. Each batch is validated; the first must start at the log end
//! offset (else `OffsetOutOfRange`, nothing written) and each next one where the previous
//! ended; each must carry an epoch, and epochs must not go back (else `Corrupt`). In a
//! compacted log (`cleaner::OffsetLayout::MayHaveGaps`) the leader's cleaner may have left
//! gaps: a batch may start past that offset and hold fewer records than offsets (Kafka's
//! follower accepts the same).

use std::sync::MutexGuard;

use bytes::BytesMut;
use sluice_protocol::batch::{self, BatchHeader, BatchIterError, Batches};

use super::{lock, LogState, PartitionLog};
use crate::metrics as m;
use crate::storage::cleaner::{validate_stored, OffsetLayout};
use crate::storage::epoch_cache::{self, EpochEndOffset, EpochEntry, EpochRegression};
use crate::storage::segment::ActiveSegment;
use crate::storage::StorageError;

/// Where an append put its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The log start offset at the time of the append.
    pub log_start_offset: i64,
}

impl PartitionLog {
    /// Append already-validated batches (as received in a Produce request; may be several
    /// back to back) as the leader of `leader_epoch`. See the module documentation.
    ///
    /// Refuses (`Poisoned`) once the log is poisoned or closed, and (`Io`, kind
    /// `StorageFull`, nothing written, not poisoned) when the disk has no room (`room`).
    /// A corrupt batch, or a
    /// `leader_epoch` older than the log's latest epoch, is refused (`Corrupt`) before
    /// anything is written. If the flush that follows a segment roll fails, the batches are
    /// in the log but the log is poisoned and the error is returned.
    pub fn append(
        &self,
        mut records: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        // A producer's batches hold every record of their offsets, compacted log or not.
        let mut batches = validate_all(&records, OffsetLayout::Contiguous)?;
        let mut state = lock(&self.state);
        state.check_appendable()?;
        self.check_room(records.len())?;
        let base_offset = state.log_end_offset();
        let mut next_offset = base_offset;
        for (start, header) in &mut batches {
            batch::stamp(
                &mut records[*start..*start + header.size_bytes()],
                next_offset,
                leader_epoch,
            );
            header.base_offset = next_offset;
            header.partition_leader_epoch = leader_epoch;
            next_offset = header.next_offset();
        }
        self.record_epochs(&mut state, &[(leader_epoch, base_offset)])?;
        let rolled = self.write_batches(&mut state, &records, &batches, now_ms)?;
        self.finish_append(state, base_offset, rolled)
    }

    /// Append batches fetched from the leader, exactly as they are: they already carry
    /// their offsets and leader epochs, and nothing is stamped. See the module
    /// documentation.
    ///
    /// Refuses before writing anything: `OffsetOutOfRange` if the first batch does not
    /// start at the log end offset (in a compacted log: starts below it); `Corrupt` if a
    /// batch is invalid, does not start where the previous one ended (in a compacted log:
    /// starts before it), carries no leader epoch or an epoch older than the one
    /// before it (or than the log's latest); `Poisoned` once the log is poisoned or closed.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let layout = OffsetLayout::of(&self.config());
        let batches = validate_all(records, layout)?;
        let mut state = lock(&self.state);
        state.check_appendable()?;
        self.check_room(records.len())?;
        let log_end_offset = state.log_end_offset();
        let base_offset = batches[0].1.base_offset;
        if !follows(layout, log_end_offset, base_offset) {
            return Err(StorageError::OffsetOutOfRange {
                requested: base_offset,
                log_start_offset: state.log_start_offset,
                log_end_offset,
            });
        }
        let mut next_offset = log_end_offset;
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        for (start, header) in &batches {
            if !follows(layout, next_offset, header.base_offset) {
                return Err(StorageError::Corrupt(format!(
                    "{}: the replicated batch at byte {start} has base offset {}, expected {next_offset}: batches must be contiguous",
                    self.name, header.base_offset
                )));
            }
            if header.partition_leader_epoch < 0 {
                return Err(StorageError::Corrupt(format!(
                    "{}: the replicated batch at offset {next_offset} carries no leader epoch",
                    self.name
                )));
            }
            if epochs
                .last()
                .is_none_or(|(epoch, _)| *epoch != header.partition_leader_epoch)
            {
                epochs.push((header.partition_leader_epoch, header.base_offset));
            }
            next_offset = header.next_offset();
        }
        self.record_epochs(&mut state, &epochs)?;
        let rolled = self.write_batches(&mut state, records, &batches, now_ms)?;
        self.finish_append(state, base_offset, rolled)
    }

    /// Record in the epoch cache that each `(epoch, start offset)` begins (in offset order),
    /// making the checkpoint durable before the batches are written. Refuses (`Corrupt`)
    /// an epoch going back, changing nothing. A failed checkpoint write poisons the log.
    fn record_epochs(
        &self,
        state: &mut LogState,
        epochs: &[(i32, i64)],
    ) -> Result<(), StorageError> {
        // The common case: every batch of the latest epoch.
        if let ([(epoch, start_offset)], Some(latest)) = (epochs, state.epochs.latest()) {
            if *epoch == latest.epoch && *start_offset >= latest.start_offset {
                if state.epochs_unpersisted {
                    // The first batch of an epoch begun by `begin_leader_epoch`.
                    if let Err(error) = epoch_cache::persist(&*self.fs, &self.dir, &state.epochs) {
                        return Err(self.poison(
                            state,
                            format!("writing the leader-epoch checkpoint failed: {error}"),
                        ));
                    }
                    state.epochs_unpersisted = false;
                }
                return Ok(());
            }
        }
        let mut next = state.epochs.clone();
        let mut changed = false;
        for &(epoch, start_offset) in epochs {
            changed |= next
                .assign(epoch, start_offset)
                .map_err(|regression| self.epoch_refusal(regression))?;
        }
        if changed {
            if let Err(error) = epoch_cache::persist(&*self.fs, &self.dir, &next) {
                return Err(self.poison(
                    state,
                    format!("writing the leader-epoch checkpoint failed: {error}"),
                ));
            }
            // Replication logs the leader change itself (one line per change).
            tracing::debug!(partition = %self.name, epochs = ?next.entries().last(), "new leader epoch");
            state.epochs = next;
            state.epochs_unpersisted = false;
        }
        Ok(())
    }

    fn epoch_refusal(&self, regression: EpochRegression) -> StorageError {
        StorageError::Corrupt(format!(
            "{}: {regression}; leader epochs never go back along a log",
            self.name
        ))
    }

    /// Write validated, stamped batches at the end of the log, rolling as needed. Returns
    /// whether a segment rolled. A failure poisons the log.
    fn write_batches(
        &self,
        state: &mut LogState,
        records: &[u8],
        batches: &[(usize, BatchHeader)],
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut rolled = false;
        for (start, header) in batches {
            let bytes = &records[*start..*start + header.size_bytes()];
            let offset = header.base_offset;
            if state
                .active
                .should_roll(bytes.len(), header.last_offset(), now_ms, &self.config())
            {
                if let Err(error) = self.roll(state) {
                    return Err(self.poison(
                        state,
                        format!("rolling a new segment at offset {offset} failed: {error}"),
                    ));
                }
                rolled = true;
            }
            if let Err(error) = state.active.append(bytes, header, now_ms) {
                return Err(self.poison(
                    state,
                    format!("writing the batch at offset {offset} failed: {error}"),
                ));
            }
            metrics::counter!(m::LOG_BYTES_APPENDED_TOTAL).increment(bytes.len() as u64);
        }
        Ok(rolled)
    }

    /// Publish the new log end offset and, after a roll, flush.
    fn finish_append(
        &self,
        state: MutexGuard<'_, LogState>,
        base_offset: i64,
        rolled: bool,
    ) -> Result<AppendInfo, StorageError> {
        let log_end_offset = state.log_end_offset();
        let info = AppendInfo {
            base_offset,
            last_offset: log_end_offset - 1,
            log_start_offset: state.log_start_offset,
        };
        // Under the state lock, so concurrent appends publish in order.
        self.end_offset.send_replace(log_end_offset);
        drop(state);
        if rolled {
            // Outside the state lock: appends and reads go on during the fsyncs.
            self.flush()?;
        }
        Ok(info)
    }

    /// A replica becoming leader of `epoch` records that the epoch starts at its log end
    /// offset, before its first append (Kafka's `maybeAssignEpochStartOffset`): followers
    /// asking where the previous epoch ended then get this offset. Returns the epoch's start
    /// offset, which a follower must reach to join the ISR. Refuses (`Corrupt`) an epoch
    /// older than the log's latest; for the latest epoch it only returns its start offset.
    ///
    /// The entry is recorded in memory only; the checkpoint gets it with the epoch's first
    /// batch. Until then it describes no record, and an entry at the log end would be dropped
    /// by the next open anyway, so writing it now (two fsyncs and a new file, for every
    /// partition a restarted broker leads again) would buy nothing.
    pub fn begin_leader_epoch(&self, epoch: i32) -> Result<i64, StorageError> {
        let mut state = lock(&self.state);
        state.check_appendable()?;
        let log_end_offset = state.log_end_offset();
        let mut next = state.epochs.clone();
        if next
            .assign(epoch, log_end_offset)
            .map_err(|regression| self.epoch_refusal(regression))?
        {
            state.epochs = next;
            state.epochs_unpersisted = true;
        }
        Ok(state
            .epochs
            .latest()
            .map_or(log_end_offset, |latest| latest.start_offset))
    }

    /// The latest leader epoch that wrote to (or took over) this log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        lock(&self.state).epochs.latest_epoch()
    }

    /// Where `epoch` ends in this log (OffsetsForLeaderEpoch, KIP-279): the largest known
    /// epoch `<= epoch` and the offset one past its last record; `None` if undefined. See
    /// `EpochCache::end_offset_for` for Kafka's cases.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<EpochEndOffset> {
        let state = lock(&self.state);
        state.epochs.end_offset_for(epoch, state.log_end_offset())
    }

    /// The leader-epoch cache's entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        lock(&self.state).epochs.entries().to_vec()
    }

    /// Seal the active segment and start a new one at the log end offset.
    fn roll(&self, state: &mut LogState) -> Result<(), StorageError> {
        let base_offset = state.log_end_offset();
        // Everything fallible happens before the swap, so a failure leaves the segments as
        // they were (and the log poisoned).
        state.active.update_time_index()?;
        let fresh = ActiveSegment::create(
            &*self.fs,
            &self.dir,
            base_offset,
            self.config().index_interval_bytes,
        )?;
        // The new files' directory entries must be durable before data in them can be.
        self.fs.sync_dir(&self.dir)?;
        let sealed = std::mem::replace(&mut state.active, fresh).seal();
        tracing::debug!(partition = %self.name, base_offset, sealed_base_offset = sealed.base_offset(), "rolled segment");
        state.unflushed.push(sealed.files());
        state.sealed.push_back(sealed);
        Ok(())
    }
}

/// Whether a batch starting at `base_offset` may follow one ending before `next_offset`:
/// right there, or in a compacted log anywhere after (the leader's cleaner left a gap).
fn follows(layout: OffsetLayout, next_offset: i64, base_offset: i64) -> bool {
    match layout {
        OffsetLayout::Contiguous => base_offset == next_offset,
        OffsetLayout::MayHaveGaps => base_offset >= next_offset,
    }
}

/// Check every batch of an append: whole, valid, back to back (by `layout`'s rule: a
/// compacted log's batches may hold fewer records than offsets). Returns each batch's
/// start and header.
fn validate_all(
    records: &[u8],
    layout: OffsetLayout,
) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    let mut batches = Vec::new();
    let mut start = 0;
    for item in Batches::new(records) {
        match item {
            Ok((_, bytes)) => {
                let header = match layout {
                    OffsetLayout::Contiguous => batch::validate(bytes)?,
                    OffsetLayout::MayHaveGaps => validate_stored(bytes)?,
                };
                batches.push((start, header));
                start += bytes.len();
            }
            Err(BatchIterError::Partial { position }) => {
                return Err(StorageError::Corrupt(format!(
                    "records end inside the batch at byte {position}"
                )))
            }
            Err(BatchIterError::Corrupt { position, error }) => {
                return Err(StorageError::Corrupt(format!(
                    "batch at byte {position}: {error}"
                )))
            }
        }
    }
    if batches.is_empty() {
        return Err(StorageError::Corrupt(
            "an append must carry at least one batch".into(),
        ));
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::checkpoint;
    use crate::storage::dir_checkpoints::{OffsetKind, RECOVERY_POINT_OFFSET_FILE};
    use crate::storage::log::one_record;
    use crate::storage::segment::Segment;
    use crate::storage::testing::{batch, headers, open_log, std_fs, test_config};
    use crate::storage::{LogConfig, ShutdownState};

    #[test]
    fn append_assigns_contiguous_offsets_and_stamps_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        let mut two = batch(3, 100, 10, 1);
        two.extend_from_slice(&batch(2, 200, 10, 2));
        let info = log.append(two, 7, 0).unwrap();
        assert_eq!(
            (info.base_offset, info.last_offset, info.log_start_offset),
            (0, 4, 0)
        );
        let info = log.append(batch(1, 300, 10, 3), 8, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (5, 5));
        assert_eq!(log.log_end_offset(), 6);

        let read = log.read(0, usize::MAX).unwrap();
        let found: Vec<(i64, i32, i32)> = headers(&read)
            .iter()
            .map(|header| {
                (
                    header.base_offset,
                    header.records_count,
                    header.partition_leader_epoch,
                )
            })
            .collect();
        assert_eq!(found, vec![(0, 3, 7), (3, 2, 7), (5, 1, 8)]);
    }

    #[test]
    fn append_refuses_a_corrupt_batch_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        let mut records = batch(1, 100, 10, 1);
        let mut bad = batch(2, 100, 10, 2);
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        records.extend_from_slice(&bad);
        assert!(
            matches!(log.append(records, 0, 0), Err(StorageError::Corrupt(why)) if why.contains("CRC"))
        );
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.size_bytes(), 0);
    }

    #[test]
    fn segments_roll_before_exceeding_segment_bytes_max() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 500,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        for i in 0..30 {
            log.append(batch(1, i, 50, i as u64), 0, 0).unwrap();
        }
        let sizes: Vec<u64> = lock(&log.state)
            .segments()
            .map(Segment::size_bytes)
            .collect();
        assert!(sizes.len() > 3);
        assert!(sizes.iter().all(|size| *size <= 500), "{sizes:?}");
        // A batch larger than a segment still gets a segment of its own.
        log.append(batch(1, 99, 2000, 99), 0, 0).unwrap();
        assert_eq!(lock(&log.state).active.base_offset(), 30);
    }

    #[test]
    fn segment_rolls_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms_max: 1000,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        log.append(one_record(0, 0), 0, 10_000).unwrap();
        log.append(one_record(0, 1), 0, 11_000).unwrap();
        assert_eq!(
            log.segment_count(),
            1,
            "exactly segment_ms_max old does not roll"
        );
        log.append(one_record(0, 2), 0, 11_001).unwrap();
        assert_eq!(log.segment_count(), 2);
        // The new segment's age counts from its first append.
        log.append(one_record(0, 3), 0, 12_000).unwrap();
        assert_eq!(log.segment_count(), 2);
        log.append(one_record(0, 4), 0, 12_002).unwrap();
        assert_eq!(log.segment_count(), 3);
        assert_eq!(headers(&log.read(0, usize::MAX).unwrap()).len(), 5);
    }

    #[test]
    fn subscribe_sees_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        let mut end = log.subscribe();
        assert_eq!(*end.borrow_and_update(), 0);
        log.append(batch(3, 0, 1, 0), 0, 0).unwrap();
        assert!(end.has_changed().unwrap());
        assert_eq!(*end.borrow_and_update(), 3);
    }

    #[test]
    fn roll_flushes_and_moves_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 100,
            ..test_config()
        };
        let fs = std_fs();
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
        for i in 0..3 {
            log.append(one_record(i, i as u64), 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 3);
        // Recorded, not written yet: the data directory's file is written for every log at
        // once.
        let key = ("test".to_string(), 0);
        let checkpoints = log.dir_checkpoints();
        assert_eq!(checkpoints.on_disk(OffsetKind::RecoveryPoint, &key), None);
        checkpoints.write_if_changed().unwrap();
        let offsets =
            checkpoint::read_offsets(&*fs, dir.path(), RECOVERY_POINT_OFFSET_FILE).unwrap();
        assert_eq!(offsets.get(&key), Some(&3));
        // So an unclean reopen scans only the active segment.
        drop(log);
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
        assert_eq!(log.recovery_report().segments_scanned, 1);
        assert_eq!(log.log_end_offset(), 3);
    }
}
