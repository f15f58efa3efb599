//! Truncating a partition's log: a follower's cut of a diverging tail, and its restart
//! past the leader's log start.
//!
//! A follower whose tail diverges from its leader's removes it with
//! [`PartitionLog::truncate_to`]; one that fell behind the leader's log start starts over
//! with [`PartitionLog::truncate_fully_and_start_at`]. Both hold the `sync` and `state`
//! locks throughout (no append, read or fsync interleaves) and are durable when they
//! return. The order of `truncate_to(offset)`, and why a crash at any point leaves a log
//! that recovery turns into either the old log or a prefix of it (never truncated records
//! coming back *after* the truncation was reported done, never a log with a hole):
//! 1. Lower the recovery point to `offset` (if above), written to the data directory's
//!    `recovery-point-offset-checkpoint` at once if that holds more. From now on an unclean
//!    open scans the segment containing `offset` and everything after it instead of
//!    trusting their sizes: a sealed segment is trusted to end where its successor starts,
//!    which a half-done truncation would make a lie.
//! 2. Detach the later segments and delete their files, last segment first.
//! 3. Cut the segment containing `offset` at the batch boundary (log, offset index, time
//!    index) and make it the active segment.
//! 4. Fsync its three files, then fsync the directory. Until this point a crash leaves
//!    either the old bytes of each file or the new ones; recovery's scan and its contiguity
//!    check (a segment that does not start where the previous one ends is dropped with
//!    everything after it) turn every mix into a prefix of the old log, at least `offset`
//!    long. After it the truncation is durable.
//! 5. Drop the epoch-cache entries at or past `offset` and write the checkpoint. Written
//!    only now, so the checkpoint never lacks an epoch of data that is still on disk; if the
//!    crash comes before, open drops the stale entries (they start past the end).
//! 6. Publish the new log end offset (subscribers wake), clamp the durable offset to it.
//!
//! A crash during `truncate_fully_and_start_at(offset)` (for `offset >=` the log end
//! offset) is safe by the same kind of argument: (1) the epoch cache is emptied (an empty
//! cache over a non-empty log is rebuilt on open), (2) an empty segment at `offset` is
//! created and its directory entry made durable (before the log-start checkpoint moves it
//! is dropped by the contiguity check), (3) the log-start checkpoint moves to `offset`
//! (written at once: from now on recovery deletes every older segment), (4) the old segments
//! are deleted and (5) the recovery point moves to `offset`.
//!
//! Any failure after the first change poisons the log: memory and disk may disagree until
//! a restart recovers the log.

use super::durability::SyncState;
use super::{lock, LogState, PartitionLog};
use crate::storage::epoch_cache::{self, EpochCache};
use crate::storage::segment::{ActiveSegment, Segment, SegmentPaths};
use crate::storage::StorageError;

impl PartitionLog {
    /// Remove every record at or past `offset`: a follower cutting the tail where its log
    /// diverges from its leader's. Durable when it returns; see the module documentation
    /// for the order of the steps and why a crash at any point is safe. Returns whether
    /// any record was removed (none is when `offset >=` the log end offset; epochs that
    /// start at the log end offset, which wrote nothing, are still forgotten).
    ///
    /// Refuses, changing nothing: `OffsetOutOfRange` below the log start offset; `Corrupt`
    /// if `offset` lies inside a batch (replicas truncate only where an epoch or a batch
    /// ends, and the batches are the leader's, so its boundaries are theirs);
    /// `Poisoned` once the log is poisoned or closed. A failure part-way poisons the log.
    pub fn truncate_to(&self, offset: i64) -> Result<bool, StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            let mut state = lock(&self.state);
            self.truncate_locked(&mut sync, &mut state, offset)
        };
        self.notify_durable_waiters();
        result
    }

    fn truncate_locked(
        &self,
        sync: &mut SyncState,
        state: &mut LogState,
        offset: i64,
    ) -> Result<bool, StorageError> {
        state.check_appendable()?;
        let log_end_offset = state.log_end_offset();
        if offset >= log_end_offset {
            // No record to remove, but an epoch that starts at the end wrote nothing: this
            // replica led it briefly. As a follower it must forget it, or it would name it
            // as its last fetched epoch and refuse its leader's older-epoch batches at this
            // offset (Kafka's `UnifiedLog.truncateTo` does the same). Dropping entries past
            // the data is safe at any time, so a failed write does not poison.
            if state.epochs.truncate_from_end(log_end_offset) {
                epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
            }
            return Ok(false);
        }
        if offset < state.log_start_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: state.log_start_offset,
                log_end_offset,
            });
        }
        let containing = state
            .sealed
            .partition_point(|segment| segment.next_offset() <= offset);
        let segment: &Segment = state
            .sealed
            .get(containing)
            .map_or(&*state.active, |sealed| &**sealed);
        if segment.batch_start_position(offset)?.is_none() {
            return Err(StorageError::Corrupt(format!(
                "{}: cannot truncate to offset {offset}, which lies inside a batch: replicas truncate only at batch boundaries",
                self.name
            )));
        }
        let result = self.truncate_segments(sync, state, containing, offset);
        // Whatever happened, publish what memory now holds.
        let log_end_offset = state.log_end_offset();
        self.end_offset.send_replace(log_end_offset);
        self.durable
            .send_modify(|durable| durable.note_truncation(offset, log_end_offset));
        match result {
            Ok(()) => {
                // The caller (the follower's fetcher) logs the truncation with its epochs.
                tracing::debug!(partition = %self.name, log_end_offset, "truncated log");
                Ok(true)
            }
            Err(error) => Err(self.poison(
                state,
                format!("truncating to offset {offset} failed: {error}"),
            )),
        }
    }

    /// Steps 1 to 5 of truncation (module documentation); `containing` indexes the sealed
    /// segment holding `offset`, or is the sealed count if the active one does.
    fn truncate_segments(
        &self,
        sync: &mut SyncState,
        state: &mut LogState,
        containing: usize,
        offset: i64,
    ) -> Result<(), StorageError> {
        // 1. From now on an unclean open scans everything from `offset` on, and a compacted
        // log's records from `offset` on are dirty.
        if sync.recovery_point > offset {
            // Written before this returns if the file holds more.
            self.checkpoints.record_recovery_point(&self.key, offset)?;
            sync.recovery_point = offset;
        }
        self.checkpoints.lower_cleaner_offset(&self.key, offset)?;
        // 2. Detach the later segments, delete their files, last first.
        let mut doomed: Vec<SegmentPaths> = Vec::new();
        if containing < state.sealed.len() {
            let later = state.sealed.split_off(containing + 1);
            let Some(sealed) = state.sealed.pop_back() else {
                unreachable!("the containing segment is sealed");
            };
            let reopened = ActiveSegment::reopen(sealed)?;
            let old_active = std::mem::replace(&mut state.active, reopened);
            doomed.extend(later.iter().map(|segment| segment.paths().clone()));
            doomed.push(old_active.paths().clone());
        }
        let containing_base = state.active.base_offset();
        state
            .unflushed
            .retain(|files| files.base_offset < containing_base);
        for paths in doomed.iter().rev() {
            paths.remove(&*self.fs)?;
        }
        // 3. Cut the containing segment, now the active one.
        state.active.truncate_to(offset)?;
        // 4. Make the cut and the deletions durable.
        let files = state.active.files();
        for file in [&files.log, &files.offset_index, &files.time_index] {
            file.sync()?;
        }
        self.fs.sync_dir(&self.dir)?;
        // 5. Only now may the checkpoint forget the epochs of the removed records.
        if state.epochs.truncate_from_end(offset) {
            epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
        }
        Ok(())
    }

    /// Remove every record and start the log over, empty, at `offset` (`>=` the log end
    /// offset): a follower whose log ends before its leader's log start offset. The log
    /// start offset becomes `offset` and the epoch cache is emptied. Durable when it
    /// returns; see the module documentation for the crash-safe order.
    ///
    /// Refuses, changing nothing: `OffsetOutOfRange` below the log end offset (use
    /// [`PartitionLog::truncate_to`]); `Poisoned` once the log is poisoned or closed. A
    /// failure part-way poisons the log.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            let mut state = lock(&self.state);
            state.check_appendable()?;
            let log_end_offset = state.log_end_offset();
            if offset < log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: state.log_start_offset,
                    log_end_offset,
                });
            }
            let removed_from = state.log_start_offset;
            let result = self.restart_segments(&mut sync, &mut state, offset);
            let log_end_offset = state.log_end_offset();
            self.end_offset.send_replace(log_end_offset);
            self.durable.send_modify(|durable| {
                durable.note_truncation(removed_from, log_end_offset);
                if result.is_ok() {
                    // Nothing below the new start remains to be fsynced.
                    durable.offset = log_end_offset;
                }
            });
            match result {
                Ok(()) => {
                    tracing::debug!(partition = %self.name, offset, "emptied log and restarted it");
                    Ok(())
                }
                Err(error) => Err(self.poison(
                    &mut state,
                    format!("restarting the log at offset {offset} failed: {error}"),
                )),
            }
        };
        self.notify_durable_waiters();
        result
    }

    fn restart_segments(
        &self,
        sync: &mut SyncState,
        state: &mut LogState,
        offset: i64,
    ) -> Result<(), StorageError> {
        // 1. An empty cache over a non-empty log is rebuilt on open.
        if !state.epochs.is_empty() {
            state.epochs = EpochCache::default();
            epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
        }
        // 2. The new, empty segment (unless the active one already is it).
        let reuse_active = state.active.base_offset() == offset;
        assert!(
            !reuse_active || state.active.is_empty(),
            "a segment at or past the log end offset is empty"
        );
        if !reuse_active {
            let fresh = ActiveSegment::create(
                &*self.fs,
                &self.dir,
                offset,
                self.config().index_interval_bytes,
            )?;
            self.fs.sync_dir(&self.dir)?;
            let old_active = std::mem::replace(&mut state.active, fresh);
            state.sealed.push_back(old_active.seal());
        }
        // 3. From now on recovery deletes every older segment.
        self.checkpoints.record_log_start(&self.key, offset, true)?;
        state.log_start_offset = offset;
        // 4. Delete the old segments, last first.
        let doomed = std::mem::take(&mut state.sealed);
        state.unflushed.clear();
        for segment in doomed.iter().rev() {
            segment.paths().remove(&*self.fs)?;
        }
        self.fs.sync_dir(&self.dir)?;
        // 5. Nothing to recover below the new start.
        self.checkpoints.record_recovery_point(&self.key, offset)?;
        sync.recovery_point = offset;
        Ok(())
    }
}
