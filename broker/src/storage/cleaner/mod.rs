//! Log compaction (Kafka's log cleaner), the storage core of it: one cleaning pass over
//! one partition's log, its crash-safe swap of segments, and the configs that drive it.
//!
//! A topic with `cleanup.policy=compact` keeps at least the latest record of every key.
//! [`PartitionLog::clean`](crate::storage::PartitionLog::clean) runs one pass (the method
//! lives in `log::clean`, beside the log's state; everything it does to bytes and files is
//! here):
//! 1. **Plan.** The cleanable segments are the sealed segments, from the first, that end at
//!    or below the caller's limit (the high watermark: Kafka's first unstable offset) and
//!    whose largest timestamp is at least `min.compaction.lag.ms` old. The active segment
//!    is never cleaned. The dirty part is what lies at or past the first dirty offset (the
//!    end of the previous pass; the log start offset at first).
//! 2. **Offset map** (`offset_map`): key -> offset of its latest record, over the dirty
//!    part, within a memory budget; if it fills, the pass covers only up to the last batch
//!    it took (Kafka's rule), and the next pass goes on from there.
//! 3. **Rewrite** (`rewrite`) every segment from the log start through the one holding
//!    the map's last offset. Consecutive segments whose sizes add up to at most
//!    `segment.bytes` are rewritten into one `.cleaned` copy (Kafka's
//!    `groupSegmentsBySize`), so segments shrunk by earlier passes merge. A record is kept
//!    if it lies past the map's reach, has no key (Kafka refuses keyless records on
//!    compacted topics at produce time and its cleaner drops them; here they stay), or is
//!    the latest of its key and either has a value or is a tombstone still within its
//!    delete horizon. A batch keeps its base offset and last offset (Kafka's `filterTo`),
//!    so offsets of removed records become gaps, and is rebuilt with the kept records and a
//!    new CRC-32C (its bytes copied unchanged when nothing is removed). A compressed batch
//!    is decompressed, filtered the same way and compressed again with its codec (counted
//!    in [`CleanStats::compressed_batches_rewritten`]). A batch left with
//!    no record is dropped, except the last batch of each group (so the cleaned segment
//!    still ends where its successor begins, which recovery checks) and the last batch of
//!    each producer id (its sequence numbers): those stay as Kafka's empty batch.
//! 4. **Swap** (`swap`), group by group in offset order; see that module for the
//!    crash-safe steps. A lone segment whose copy equals it is left alone.
//!
//! A pass runs without the log's `state` lock but for each swap; see `log::clean`.
//!
//! # Tombstones (KIP-534)
//! The first pass that keeps a tombstone sets its batch's delete horizon, `now +
//! delete.retention.ms`: attribute bit 6 set and the baseTimestamp field holding the
//! horizon (record timestamp deltas are re-encoded against it, so record timestamps do not
//! change). A later pass removes the tombstone once `now >=` the horizon, so consumers have
//! `delete.retention.ms` to see it. A log whose earliest kept horizon has passed is due for
//! a pass even with nothing new to clean (Kafka's `latestDeleteHorizon`, kept in memory as
//! there): that pass rewrites the cleaned part alone, with an offset map of no keys.
//!
//! # Invariants
//! - Offsets only increase along a log, within and across segments; in a compacted log
//!   they may have gaps. Batches keep their base and last offsets, so the log end offset
//!   and every segment's end never move.
//! - A crash at any point leaves each group of segments either wholly old or wholly
//!   cleaned, never a mix and never a loss.
//! - Segments are swapped in offset order, so a record superseded by a later one (a
//!   tombstone, say) is durably gone before the later one can be removed.
//! - Recovery checks a compacted log's batches by [`OffsetLayout::MayHaveGaps`]: a base
//!   offset may exceed the previous batch's end and a record count may be below
//!   `lastOffsetDelta + 1`. Other logs keep the strict checks.
//!
//! # Left out on purpose
//! - Control batches (transaction markers) are kept whole: transactions do not exist yet,
//!   so no aborted records need removing.
//!
//! Where a pass ended (the next one's first dirty offset) is kept in the data directory's
//! `cleaner-offset-checkpoint` (Kafka's file), lowered at once by a truncation below it,
//! so a restart does not clean everything again.
//!
//! # Who runs it
//! `LogManager::clean_pass` (storage/manager/clean.rs) picks the partitions due, dirtiest
//! first; the broker's cleaner loop (node.rs) calls it every `log.cleaner.backoff.ms` on a
//! blocking thread with the high watermark as each log's limit. [`Throttle`] (`throttle`)
//! caps a pass's reads plus writes at `CleanLimits::io_bytes_per_sec_max`. A follower of
//! a compacted log cleans on its own and accepts its leader's gaps and short batches
//! (`append_as_follower`, by the log's layout).

mod config;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod log_tests;
mod offset_map;
#[cfg(test)]
mod proptests;
mod records;
mod rewrite;
pub(crate) mod swap;
#[cfg(test)]
mod tests;
mod throttle;

use std::sync::Arc;

pub(crate) use config::parse_dirty_ratio;
pub use config::{CleanerConfig, CleanupPolicy, DirtyRatio};
pub(crate) use offset_map::OffsetMap;
pub(crate) use records::validate_stored;
pub(crate) use rewrite::{
    build_offset_map, clean_part_map, producer_last_batches, rewrite_group, Filter,
};
pub(crate) use throttle::Throttle;

use super::fs::StorageFile;
use super::LogConfig;

/// The offset map's default memory budget (Kafka `log.cleaner.dedupe.buffer.size`).
pub const OFFSET_MAP_BYTES_MAX: usize = 128 << 20;

/// What a cleaning pass may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanLimits {
    /// Nothing at or past this offset is cleaned: the caller passes the high watermark
    /// (Kafka's first unstable offset). Only whole segments below it are cleaned.
    pub first_uncleanable_offset: i64,
    /// Memory the offset map may use, in bytes.
    pub offset_map_bytes_max: usize,
    /// Bytes per second the pass may read and write (Kafka
    /// `log.cleaner.io.max.bytes.per.second`); `u64::MAX` for no limit.
    pub io_bytes_per_sec_max: u64,
}

impl CleanLimits {
    pub fn below(first_uncleanable_offset: i64) -> CleanLimits {
        CleanLimits {
            first_uncleanable_offset,
            offset_map_bytes_max: OFFSET_MAP_BYTES_MAX,
            io_bytes_per_sec_max: u64::MAX,
        }
    }
}

/// What a cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments replaced by a cleaned copy.
    pub segments_cleaned: usize,
    /// Bytes of the segments read while rewriting, and of their cleaned copies.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Records of filterable batches read, and those removed.
    pub records_read: u64,
    pub records_removed: u64,
    /// Tombstones removed because their delete horizon had passed.
    pub tombstones_removed: u64,
    /// Batches dropped because no record of theirs survived.
    pub batches_removed: u64,
    /// Compressed batches rewritten (decompressed, filtered, compressed again).
    pub compressed_batches_rewritten: u64,
    /// Keys in the offset map, and whether it filled before the dirty part's end.
    pub map_keys: usize,
    pub map_full: bool,
    /// The first dirty offset after the pass (`None` if it cleaned nothing).
    pub cleaned_to: Option<i64>,
    /// The earliest delete horizon among the tombstones the pass kept (`None`: it kept
    /// none): from then on a pass is due to remove them, new records or not.
    pub delete_horizon: Option<i64>,
}

/// How strictly a log's stored batches are checked when read back by recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetLayout {
    /// Batches follow each other without gaps and hold `lastOffsetDelta + 1` records.
    Contiguous,
    /// A compacted log's: gaps between batches, fewer records than offsets.
    MayHaveGaps,
}

impl OffsetLayout {
    pub(crate) fn of(config: &LogConfig) -> OffsetLayout {
        if config.cleaner.cleanup_policy.compacts() {
            OffsetLayout::MayHaveGaps
        } else {
            OffsetLayout::Contiguous
        }
    }
}

/// A sealed segment as a pass sees it: read without the log's lock through its own file
/// handle (sealed segments do not change, and the swap checks the segment is still there).
#[derive(Debug, Clone)]
pub(crate) struct SegmentSnapshot {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
    pub log: Arc<dyn StorageFile>,
}

/// Which of `sealed` (the log's sealed segments, in order) a pass cleans: the cleanable
/// prefix (step 1 of the module documentation). Returns how many.
pub(crate) fn cleanable_count(
    sealed: &[SegmentSnapshot],
    limits: &CleanLimits,
    config: &CleanerConfig,
    now_ms: i64,
) -> usize {
    let lag_ms = i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX);
    sealed
        .iter()
        .take_while(|segment| {
            // Kafka checks the lag only when one is set (so future timestamps do not block).
            let old_enough = lag_ms == 0 || segment.max_timestamp <= now_ms.saturating_sub(lag_ms);
            segment.next_offset <= limits.first_uncleanable_offset && old_enough
        })
        .count()
}

/// Kafka's `groupSegmentsBySize`: runs of consecutive segments whose log bytes total at
/// most `bytes_max` (`segment.bytes`) and whose offsets stay within 4-byte relative
/// offsets of the run's base. Each run is cleaned into one segment, so that segments
/// shrunk by earlier passes are merged.
pub(crate) fn group_by_size(
    segments: &[SegmentSnapshot],
    bytes_max: u64,
) -> Vec<&[SegmentSnapshot]> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let base = segments[start].base_offset;
        let mut bytes = segments[start].size_bytes;
        let mut end = start + 1;
        while let Some(next) = segments.get(end) {
            let fits_offsets = next.next_offset - 1 - base <= i64::from(i32::MAX);
            if bytes + next.size_bytes > bytes_max || !fits_offsets {
                break;
            }
            bytes += next.size_bytes;
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}
