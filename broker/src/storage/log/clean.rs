//! Compaction passes over a partition's log: the plan, and swapping cleaned segments into
//! the log's state. What a pass does to bytes and files, and why a crash at any point is
//! safe, is in `storage::cleaner`.
//!
//! A pass holds the `first_dirty_offset` lock throughout (one pass per log at a time) and
//! reads the sealed segments it cleans through cloned file handles, without the `state`
//! lock: appends, reads, flushes and retention go on meanwhile. Only each swap takes the
//! `state` lock, and first checks that the group's segments are still the ones the pass
//! read (same files, in the same order, and no truncation since the pass began); if not
//! (retention deleted one, a follower truncated into one), the cleaned copy is discarded
//! and the pass stops. The first dirty offset it records is forgotten by the next
//! truncation (which may cut below it), so the next pass then starts at the log start.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use sluice_protocol::batch::{BatchHeader, BATCH_HEADER_BYTES};

use super::{lock, LogState, PartitionLog};
use crate::metrics as m;
use crate::storage::cleaner::{
    self, build_offset_map, clean_part_map, producer_last_batches, rewrite_group, swap,
    CleanLimits, CleanStats, Filter, OffsetMap, SegmentSnapshot, Throttle,
};
use crate::storage::index::IndexLoadError;
use crate::storage::segment::{SealedSegment, Segment};
use crate::storage::{StorageError, NO_TIMESTAMP};

/// Where the last pass ended: the first offset it did not clean, valid only while the
/// log has had no truncation since (one may have cut below it and new records come in).
/// Kept in the data directory's `cleaner-offset-checkpoint` across restarts.
#[derive(Debug, Clone, Copy)]
pub(super) struct FirstDirty {
    offset: i64,
    truncations: u64,
}

impl FirstDirty {
    /// The checkpointed offset of an opening log (no truncation yet).
    pub(super) fn restored(offset: i64) -> FirstDirty {
        FirstDirty {
            offset,
            truncations: 0,
        }
    }
}

/// What the cleaner last saw of a log, for metrics: the dirty ratio (f64 bits; negative
/// until measured) and whether its last pass failed.
#[derive(Debug)]
pub(super) struct CleanerStatus {
    dirty_ratio: AtomicU64,
    uncleanable: AtomicBool,
    /// The earliest delete horizon of the tombstones the last pass kept (`i64::MAX`: none
    /// known; in memory only, as Kafka's `latestDeleteHorizon`).
    delete_horizon: AtomicI64,
}

impl Default for CleanerStatus {
    fn default() -> CleanerStatus {
        CleanerStatus {
            dirty_ratio: AtomicU64::new((-1.0f64).to_bits()),
            uncleanable: AtomicBool::new(false),
            delete_horizon: AtomicI64::new(i64::MAX),
        }
    }
}

impl PartitionLog {
    /// The share of the cleanable bytes not yet cleaned, as the cleaner last measured it
    /// ([`PartitionLog::cleaning_due`]); `None` before that or if the log is not compacted.
    pub fn dirty_ratio(&self) -> Option<f64> {
        let ratio = f64::from_bits(self.cleaner_status.dirty_ratio.load(Ordering::Relaxed));
        (ratio >= 0.0 && self.config().cleaner.cleanup_policy.compacts()).then_some(ratio)
    }

    /// Whether the last cleaning pass over this log failed (Kafka's uncleanable partition).
    pub fn uncleanable(&self) -> bool {
        self.cleaner_status.uncleanable.load(Ordering::Relaxed)
    }

    pub(crate) fn set_uncleanable(&self, uncleanable: bool) {
        self.cleaner_status
            .uncleanable
            .store(uncleanable, Ordering::Relaxed);
    }

    /// Run one compaction pass (see `storage::cleaner`), cleaning only whole sealed
    /// segments below `limits.first_uncleanable_offset` whose records are at least
    /// `min.compaction.lag.ms` old at `now_ms`. Does nothing unless the log's
    /// `cleanup.policy` includes `compact`.
    ///
    /// Errors: `Poisoned` on a poisoned or closed log (nothing done); `InvalidConfig` if the
    /// offset map's budget cannot hold the keys of one batch;
    /// `Corrupt` or `Io` if reading or writing a segment fails before its swap (the log is
    /// unchanged but for the segments already swapped); a failure during a swap poisons the
    /// log (`Poisoned` from then on), as memory and disk may disagree until recovery.
    pub fn clean(&self, limits: &CleanLimits, now_ms: i64) -> Result<CleanStats, StorageError> {
        let mut first_dirty = lock(&self.first_dirty_offset);
        let mut stats = CleanStats::default();
        if !self.config().cleaner.cleanup_policy.compacts() {
            return Ok(stats);
        }
        let (sealed, log_start_offset, truncations) = self.sealed_snapshot()?;
        let cleanable =
            &sealed[..cleaner::cleanable_count(&sealed, limits, &self.config().cleaner, now_ms)];
        let start = dirty_from(*first_dirty, log_start_offset, truncations);
        let mut throttle = Throttle::new(limits.io_bytes_per_sec_max);
        let io = (&mut stats, &mut throttle);
        let Some(map) =
            self.offset_map(cleanable, (start, log_start_offset), limits, now_ms, io)?
        else {
            return Ok(stats);
        };
        stats.map_keys = map.len();
        let covered_to = map.covered_to().unwrap_or(start - 1);
        let rewritten: Vec<SegmentSnapshot> = cleanable
            .iter()
            .filter(|segment| segment.base_offset <= covered_to)
            .cloned()
            .collect();
        // Bounded like the offset map: 16 bytes a producer id (and its offset).
        let producers_max = limits.offset_map_bytes_max / 16;
        let producer_last = producer_last_batches(&rewritten, producers_max)?;
        let mut filter = Filter::new(
            (&map, producer_last.as_ref()),
            now_ms,
            self.config().cleaner.delete_retention_ms,
        );
        let io = (&mut stats, &mut throttle);
        if !self.rewrite_and_swap(&rewritten, &mut filter, truncations, io)? {
            return Ok(stats);
        }
        *first_dirty = Some(FirstDirty {
            offset: covered_to + 1,
            truncations,
        });
        self.checkpoints
            .record_cleaner_offset(&self.key, covered_to + 1);
        let horizon = stats.delete_horizon.unwrap_or(i64::MAX);
        self.cleaner_status
            .delete_horizon
            .store(horizon, Ordering::Relaxed);
        stats.cleaned_to = Some(covered_to + 1);
        metrics::counter!(m::LOG_CLEANER_PASSES_TOTAL).increment(1);
        metrics::counter!(m::LOG_CLEANER_BYTES_READ_TOTAL).increment(stats.bytes_read);
        metrics::counter!(m::LOG_CLEANER_BYTES_WRITTEN_TOTAL).increment(stats.bytes_written);
        tracing::info!(partition = %self.name, ?stats, "cleaned log");
        Ok(stats)
    }

    /// Step 2 of a pass: the offset map over the dirty part of `cleanable` (from `start`);
    /// with nothing dirty, one of no keys over the cleaned part if tombstones there have
    /// expired; `None` if there is nothing to do.
    fn offset_map(
        &self,
        cleanable: &[SegmentSnapshot],
        (start, log_start_offset): (i64, i64),
        limits: &CleanLimits,
        now_ms: i64,
        io: (&mut CleanStats, &mut Throttle),
    ) -> Result<Option<OffsetMap>, StorageError> {
        let dirty: Vec<SegmentSnapshot> = cleanable
            .iter()
            .filter(|segment| segment.next_offset > start)
            .cloned()
            .collect();
        if dirty.is_empty() {
            let expired = self.tombstones_expired(now_ms) && start > log_start_offset;
            return Ok(expired.then(|| clean_part_map(start)));
        }
        let map = build_offset_map(&dirty, start, limits.offset_map_bytes_max, io)?;
        if map.covered_to().is_none() {
            return Err(StorageError::InvalidConfig(format!(
                "{}: an offset map of {} bytes cannot hold the keys of one batch at offset {start}",
                self.name, limits.offset_map_bytes_max
            )));
        }
        Ok(Some(map))
    }

    /// Whether a tombstone kept by the last pass has reached its delete horizon.
    fn tombstones_expired(&self, now_ms: i64) -> bool {
        self.cleaner_status.delete_horizon.load(Ordering::Relaxed) <= now_ms
    }

    /// Steps 3 and 4 of a pass: rewrite `rewritten` group by group, swapping each in.
    /// Returns `false` if a group changed under the pass (which then stops).
    fn rewrite_and_swap(
        &self,
        rewritten: &[SegmentSnapshot],
        filter: &mut Filter<'_>,
        truncations: u64,
        (stats, throttle): (&mut CleanStats, &mut Throttle),
    ) -> Result<bool, StorageError> {
        let interval = self.config().index_interval_bytes;
        for group in cleaner::group_by_size(rewritten, self.config().segment_bytes_max) {
            let io = (&mut *stats, &mut *throttle);
            if !rewrite_group((&self.fs, &self.dir), group, interval, filter, io)? {
                continue;
            }
            if !self.swap_in(group, truncations)? {
                tracing::info!(partition = %self.name, base_offset = group[0].base_offset, "segments changed during cleaning; pass stopped");
                return Ok(false);
            }
            stats.segments_cleaned += group.len();
        }
        Ok(true)
    }

    /// Whether a pass is due at `now_ms`, by Kafka's `LogCleanerManager` rule: the dirty
    /// share of the cleanable segments' bytes exceeds `min.cleanable.dirty.ratio`, or the
    /// oldest dirty batch is older than `max.compaction.lag.ms`. Returns the dirty ratio if
    /// due, `None` if not (or if the log is not compacted); the ratio is kept for
    /// [`PartitionLog::dirty_ratio`] either way.
    pub fn cleaning_due(
        &self,
        limits: &CleanLimits,
        now_ms: i64,
    ) -> Result<Option<f64>, StorageError> {
        let cleaner = &self.config().cleaner;
        if !cleaner.cleanup_policy.compacts() {
            return Ok(None);
        }
        let first_dirty = *lock(&self.first_dirty_offset);
        let (sealed, log_start_offset, truncations) = self.sealed_snapshot()?;
        let cleanable = &sealed[..cleaner::cleanable_count(&sealed, limits, cleaner, now_ms)];
        let start = dirty_from(first_dirty, log_start_offset, truncations);
        let (clean, dirty): (Vec<_>, Vec<_>) = cleanable
            .iter()
            .partition(|segment| segment.next_offset <= start);
        let bytes = |segments: &[&SegmentSnapshot]| -> u64 {
            segments.iter().map(|segment| segment.size_bytes).sum()
        };
        let dirty_bytes = bytes(&dirty);
        let ratio = dirty_bytes as f64 / (dirty_bytes + bytes(&clean)).max(1) as f64;
        let status = &self.cleaner_status;
        status.dirty_ratio.store(ratio.to_bits(), Ordering::Relaxed);
        if dirty_bytes == 0 {
            return Ok(self.tombstones_expired(now_ms).then_some(ratio));
        }
        let lag_ms = i64::try_from(cleaner.max_compaction_lag_ms).unwrap_or(i64::MAX);
        let oldest_dirty = first_batch_timestamp(dirty[0])?;
        let overdue = oldest_dirty >= 0 && oldest_dirty < now_ms.saturating_sub(lag_ms);
        let due = ratio > cleaner.min_cleanable_dirty_ratio.get()
            || overdue
            || self.tombstones_expired(now_ms);
        Ok(due.then_some(ratio))
    }

    /// The sealed segments as a pass reads them, the log start offset, and the truncation
    /// count (a swap checks no truncation ran since).
    fn sealed_snapshot(&self) -> Result<(Vec<SegmentSnapshot>, i64, u64), StorageError> {
        let state = lock(&self.state);
        state.check_appendable()?;
        let sealed = state
            .sealed
            .iter()
            .map(|segment| SegmentSnapshot {
                base_offset: segment.base_offset(),
                next_offset: segment.next_offset(),
                size_bytes: segment.size_bytes(),
                max_timestamp: segment.max_timestamp(),
                log: Arc::clone(segment.log()),
            })
            .collect();
        let truncations = self.durable.borrow().truncation_count();
        Ok((sealed, state.log_start_offset, truncations))
    }

    /// Swap the cleaned copy of `group` in, if its segments are still the ones the pass
    /// read; else discard the copy and return `false`.
    fn swap_in(&self, group: &[SegmentSnapshot], truncations: u64) -> Result<bool, StorageError> {
        let base = group[0].base_offset;
        let mut state = lock(&self.state);
        state.check_appendable()?;
        let unchanged = self.durable.borrow().truncation_count() == truncations;
        let same = |at: usize, snapshot: &SegmentSnapshot| {
            state.sealed.get(at).is_some_and(|segment| {
                segment.base_offset() == snapshot.base_offset
                    && Arc::ptr_eq(segment.log(), &snapshot.log)
            })
        };
        let index = state
            .sealed
            .iter()
            .position(|segment| segment.base_offset() == base)
            .filter(|&at| unchanged && group.iter().enumerate().all(|(i, s)| same(at + i, s)));
        let Some(index) = index else {
            swap::discard(&*self.fs, &self.dir, base)?;
            return Ok(false);
        };
        match self.commit_swap(&mut state, index, group) {
            Ok(()) => Ok(true),
            Err(error) => Err(self.poison(
                &mut state,
                format!("swapping in the cleaned segment {base} failed: {error}"),
            )),
        }
    }

    /// Commit the swap on disk, then replace the group's sealed segments, from `index` on,
    /// by the cleaned one, opened from its files.
    fn commit_swap(
        &self,
        state: &mut LogState,
        index: usize,
        group: &[SegmentSnapshot],
    ) -> Result<(), StorageError> {
        let base = group[0].base_offset;
        let merged: Vec<i64> = group[1..].iter().map(|s| s.base_offset).collect();
        swap::commit(&*self.fs, &self.dir, base, &merged)?;
        let interval = self.config().index_interval_bytes;
        let mut segment = match Segment::open_with_indexes(&*self.fs, &self.dir, base, interval) {
            Ok(segment) => segment,
            Err(IndexLoadError::Io(error)) => return Err(error.into()),
            Err(IndexLoadError::Invalid(why)) => return Err(StorageError::Corrupt(why)),
        };
        let size = segment.log().len()?;
        let next_offset = group[group.len() - 1].next_offset;
        segment
            .assume_ends_at(size, next_offset)
            .map_err(StorageError::Corrupt)?;
        state.sealed.drain(index + 1..index + group.len());
        state.sealed[index] = SealedSegment::from_recovered(segment);
        // The cleaned files were fsynced before the swap; the merged ones are gone.
        state
            .unflushed
            .retain(|files| files.base_offset < base || files.base_offset >= next_offset);
        Ok(())
    }
}

/// Where the dirty part starts: where the last pass ended, unless a truncation ran since
/// (then the whole log), and never below the log start offset.
fn dirty_from(first_dirty: Option<FirstDirty>, log_start_offset: i64, truncations: u64) -> i64 {
    first_dirty
        .filter(|dirty| dirty.truncations == truncations)
        .map_or(log_start_offset, |dirty| dirty.offset)
        .max(log_start_offset)
}

/// The max timestamp of a segment's first batch (Kafka's `getFirstBatchTimestamp`).
fn first_batch_timestamp(segment: &SegmentSnapshot) -> Result<i64, StorageError> {
    let mut header = [0u8; BATCH_HEADER_BYTES];
    if segment.size_bytes < header.len() as u64 {
        return Ok(NO_TIMESTAMP);
    }
    segment.log.read_exact_at(&mut header, 0)?;
    Ok(BatchHeader::parse(&header)?.max_timestamp)
}
