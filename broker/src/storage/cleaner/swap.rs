//! Replacing a segment, or a group of consecutive segments, by one cleaned copy,
//! crash-safely (Kafka's `.cleaned` -> `.swap` -> rename), and finishing a replacement a
//! crash interrupted.
//!
//! The cleaned copy of the group starting at segment `B` is written to `B.log.cleaned`,
//! `B.index.cleaned` and `B.timeindex.cleaned` and fsynced (`rewrite`). It ends exactly
//! where the group's last segment ended (its last batch is kept). Then [`commit`]:
//! 1. Rename the two `.cleaned` indexes to `.swap`, then `B.log.cleaned` to `B.log.swap`.
//! 2. Fsync the directory. **The commit point**: once `B.log.swap` is durable the cleaned
//!    copy wins; before, the old segments do (recovery deletes `.cleaned` files and index
//!    `.swap` files without a `B.log.swap`).
//! 3. If the group merged several segments: delete the others (each log, then its
//!    indexes), then fsync the directory. Before `B.log` is replaced these must be durably
//!    gone: a merged `B.log` beside an old later segment would overlap it.
//! 4. Rename each index `.swap` over its old index, then fsync the directory, so that an
//!    index `.swap` never outlives its log's `.swap` (which would make it ambiguous).
//! 5. Rename `B.log.swap` over `B.log` (atomically replacing it), fsync the directory.
//!
//! [`finish_interrupted`] (run by recovery before it lists the segments): delete every
//! `.cleaned` file; for every `B.log.swap`, find where it ends (its last batch), delete the
//! segments after `B` that start before that end (step 3), rename each index `.swap` over
//! the old index or, if that index has no `.swap` (it did not survive, or was already
//! renamed), delete the old index so that recovery rebuilds it from the new log; then
//! rename `B.log.swap` over `B.log` (with a directory fsync after each of these steps, as
//! in `commit`); delete index `.swap` files that have no `B.log.swap`; fsync the
//! directory. Every step is idempotent, so a crash during recovery is finished
//! by the next one.
//!
//! What a crash at each point leaves, for a reader of the recovered directory: before step
//! 2 is durable, the old segments with their own indexes (a `.swap` index that survived
//! without `B.log.swap` is deleted); after it, the cleaned copy in place of the whole
//! group, with either its own indexes or rebuilt ones, never the old segment's indexes over
//! the new log. The file system may persist any subset of the renames and removals not yet
//! covered by a directory fsync, and the argument holds for every subset.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use sluice_protocol::batch::{batch_size_from_prefix, BatchHeader, BATCH_HEADER_BYTES};

use crate::storage::fs::{remove_file_if_exists, FileSystem, StorageFile};
use crate::storage::segment::{
    parse_segment_file_name, SegmentPaths, CLEANED_SUFFIX, LOG_SUFFIX, OFFSET_INDEX_SUFFIX,
    SWAP_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Swap the cleaned copy of the group at `base` (its three `.cleaned` files, fsynced) in
/// for the group; `merged` are the base offsets of the group's other segments. Steps 1 to
/// 5 of the module documentation.
pub(crate) fn commit(fs: &dyn FileSystem, dir: &Path, base: i64, merged: &[i64]) -> io::Result<()> {
    let cleaned = SegmentPaths::with_suffix(dir, base, CLEANED_SUFFIX);
    let swap = SegmentPaths::with_suffix(dir, base, SWAP_SUFFIX);
    let live = SegmentPaths::new(dir, base);
    // 1. The log last: its `.swap` is the commit marker.
    fs.rename(&cleaned.offset_index, &swap.offset_index)?;
    fs.rename(&cleaned.time_index, &swap.time_index)?;
    fs.rename(&cleaned.log, &swap.log)?;
    // 2. The commit point.
    fs.sync_dir(dir)?;
    // 3. The other segments of a merged group, durably gone before `B.log` grows.
    if !merged.is_empty() {
        for &other in merged.iter().rev() {
            SegmentPaths::new(dir, other).remove(fs)?;
        }
        fs.sync_dir(dir)?;
    }
    // 4. The indexes, durably before the log's `.swap` goes.
    fs.rename(&swap.offset_index, &live.offset_index)?;
    fs.rename(&swap.time_index, &live.time_index)?;
    fs.sync_dir(dir)?;
    // 5. The log.
    fs.rename(&swap.log, &live.log)?;
    fs.sync_dir(dir)
}

/// Remove the cleaned copy of segment `base` (a pass that stopped before its commit).
pub(crate) fn discard(fs: &dyn FileSystem, dir: &Path, base: i64) -> io::Result<()> {
    SegmentPaths::with_suffix(dir, base, CLEANED_SUFFIX).remove(fs)
}

/// Finish what a crash interrupted, given the names in `dir`: see the module
/// documentation. Returns whether it changed anything (the caller lists `dir` again).
pub(crate) fn finish_interrupted(
    fs: &dyn FileSystem,
    dir: &Path,
    names: &[String],
) -> io::Result<bool> {
    let mut changed = false;
    let mut committed = BTreeSet::new();
    let mut index_swaps = BTreeSet::new();
    for name in names {
        if name.ends_with(CLEANED_SUFFIX) {
            tracing::info!(dir = %dir.display(), file = %name, "removing a cleaned segment file whose swap never began");
            remove_file_if_exists(fs, &dir.join(name))?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            if let Some(base) = parse_segment_file_name(stem, LOG_SUFFIX) {
                committed.insert(base);
            } else if let Some(base) = parse_segment_file_name(stem, OFFSET_INDEX_SUFFIX)
                .or_else(|| parse_segment_file_name(stem, TIME_INDEX_SUFFIX))
            {
                index_swaps.insert(base);
            }
        }
    }
    for &base in &committed {
        tracing::info!(dir = %dir.display(), base_offset = base, "finishing the swap of a cleaned segment");
        finish_committed(fs, dir, base, names)?;
        changed = true;
    }
    for base in index_swaps.difference(&committed) {
        let swap = SegmentPaths::with_suffix(dir, *base, SWAP_SUFFIX);
        remove_file_if_exists(fs, &swap.offset_index)?;
        remove_file_if_exists(fs, &swap.time_index)?;
        changed = true;
    }
    if changed {
        fs.sync_dir(dir)?;
    }
    Ok(changed)
}

/// Make the committed cleaned copy of the group at `base` the segment.
fn finish_committed(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    names: &[String],
) -> io::Result<()> {
    let swap = SegmentPaths::with_suffix(dir, base, SWAP_SUFFIX);
    let live = SegmentPaths::new(dir, base);
    let end = log_end(&*fs.open(&swap.log)?, base)?;
    let merged: BTreeSet<i64> = names
        .iter()
        .filter_map(|name| {
            [LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX]
                .iter()
                .find_map(|suffix| parse_segment_file_name(name, suffix))
        })
        .filter(|other| *other > base && *other < end)
        .collect();
    // In the order of `commit`, each step durable before the next.
    if !merged.is_empty() {
        for other in merged {
            SegmentPaths::new(dir, other).remove(fs)?;
        }
        fs.sync_dir(dir)?;
    }
    for (swapped, old) in [
        (&swap.offset_index, &live.offset_index),
        (&swap.time_index, &live.time_index),
    ] {
        if fs.exists(swapped)? {
            fs.rename(swapped, old)?;
        } else {
            // The old segment's index, or the new one already renamed: either way rebuilt.
            remove_file_if_exists(fs, old)?;
        }
    }
    fs.sync_dir(dir)?;
    fs.rename(&swap.log, &live.log)
}

/// Where a (fsynced, whole) segment log starting at `base` ends: one past its last batch.
fn log_end(log: &dyn StorageFile, base: i64) -> io::Result<i64> {
    let len = log.len()?;
    let (mut position, mut end) = (0, base);
    let mut header = [0u8; BATCH_HEADER_BYTES];
    while position + BATCH_HEADER_BYTES as u64 <= len {
        log.read_exact_at(&mut header, position)?;
        let (Ok(size), Ok(parsed)) = (batch_size_from_prefix(&header), BatchHeader::parse(&header))
        else {
            break;
        };
        end = parsed.next_offset();
        position += size as u64;
    }
    Ok(end)
}
