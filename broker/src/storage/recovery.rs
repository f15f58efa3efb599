//! Opening a partition's segments after a clean or an unclean shutdown.
//!
//! What the disk holds after a crash: every batch below the **recovery point** (the offset
//! up to which log and indexes were last flushed, from `recovery-point-checkpoint`) is
//! intact, indexes included. Past it, anything may have happened to the data the kernel had
//! not written back: a torn last batch, garbage, index entries pointing at bytes that never
//! reached the disk, a segment whose directory entry is gone.
//!
//! Steps, as Kafka's `LogLoader`/`LogSegment.recover` do them:
//! 1. Finish or undo what a crash interrupted in the log cleaner's swap of segments
//!    (`cleaner::swap`: `.cleaned` files are deleted, committed `.swap` files renamed into
//!    place). List the directory. Remove temp files and index files whose log is gone.
//!    Remove segments that lie wholly below the log start checkpoint (retention deleted
//!    them, but the deletion did not survive the crash).
//! 2. For each segment in offset order:
//!    - **Scan** it if the shutdown was unclean and it holds offsets at or past the
//!      recovery point (the last segment always, then). Scanning reads every batch from the
//!      start: it must have a sane length, lie wholly inside the file, pass
//!      `batch::validate` (magic, CRC-32C, record count) and start at the offset the previous
//!      batch ended (in a compacted log, `cleaner::OffsetLayout::MayHaveGaps`, a batch may
//!      start past it and hold fewer records than offsets). Both indexes are rebuilt from
//!      the batches by the same rule appends use. At the first batch that fails, the file
//!      is truncated there and every later segment is deleted: offsets must stay
//!      contiguous (each segment starts where the one before it ends).
//!    - Otherwise **trust** it after a sanity check of its indexes (whole entries, strictly
//!      increasing, positions inside the log, offsets inside the segment). The last segment's
//!      end is found by scanning forward from its last index entry. An index that is missing
//!      or fails the check is rebuilt by a scan (which may then find corruption too).
//! 3. The last segment becomes the active one; the log start offset is the checkpoint,
//!    clamped to the first segment's base offset and the log end offset.
//!
//! The caller (`PartitionLog::open`) then flushes what recovery changed and moves the
//! recovery point to the log end offset.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use sluice_protocol::batch::{self, BatchIterError, Batches, LOG_OVERHEAD};

use super::checkpoint::TEMP_SUFFIX;
use super::cleaner::{swap, validate_stored, OffsetLayout};
use super::fs::{remove_file_if_exists, FileSystem};
use super::index::IndexLoadError;
use super::segment::{
    parse_segment_file_name, ActiveSegment, SealedSegment, Segment, SegmentPaths, LOG_SUFFIX,
    OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::{LogConfig, StorageError};

/// Bytes read per `pread` while scanning a segment (more if one batch is larger).
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// How the previous run of the broker ended, as the clean-shutdown marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownState {
    /// The marker was present: every log was flushed; no segment is scanned.
    Clean,
    /// No marker: segments past the recovery point are scanned.
    Unclean,
}

/// What opening a partition found and did, for the log line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments whose batches were all read and checked.
    pub segments_scanned: usize,
    /// Bytes of those segments' log files that the scans read.
    pub bytes_scanned: u64,
    /// Segments whose index files were missing or failed their sanity check.
    pub indexes_rebuilt: usize,
    /// Bytes cut from the end of the segment where the scan stopped.
    pub bytes_truncated: u64,
    /// Segments deleted because an earlier one was corrupt.
    pub segments_dropped: usize,
    /// Bytes of the log files of those segments.
    pub bytes_dropped: u64,
    /// Why the scan stopped early, if it did.
    pub corruption: Option<String>,
    /// Whether the leader-epoch checkpoint was missing, unreadable or inconsistent with the
    /// scanned batches, so the cache was rebuilt from every batch header.
    pub epoch_cache_rebuilt: bool,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl RecoveryReport {
    /// Whether recovery removed records (or bytes that looked like them): a torn or corrupt
    /// tail cut, or segments after a corrupt one deleted.
    pub fn removed_data(&self) -> bool {
        self.bytes_truncated > 0 || self.segments_dropped > 0
    }

    /// Bytes recovery removed from the log: cut from the segment where the scan stopped and
    /// the segments deleted after it.
    pub fn bytes_removed(&self) -> u64 {
        self.bytes_truncated + self.bytes_dropped
    }
}

/// The segments of an opened partition.
#[derive(Debug)]
pub(super) struct Recovered {
    pub sealed: VecDeque<SealedSegment>,
    pub active: ActiveSegment,
    pub log_start_offset: i64,
    /// Base offsets of the segments that were scanned (rebuilt from their batches), in
    /// offset order: the leader-epoch cache is checked against their batches.
    pub scanned: Vec<i64>,
    pub report: RecoveryReport,
}

pub(super) fn recover(
    fs: &dyn FileSystem,
    dir: &Path,
    config: &LogConfig,
    shutdown: ShutdownState,
    (recovery_point, log_start_checkpoint): (i64, Option<i64>),
) -> Result<Recovered, StorageError> {
    let mut report = RecoveryReport::default();

    let mut names = fs.list_dir(dir)?;
    if swap::finish_interrupted(fs, dir, &names)? {
        names = fs.list_dir(dir)?;
    }
    let mut bases = Vec::new();
    let mut index_bases = BTreeSet::new();
    for name in names {
        if name.ends_with(TEMP_SUFFIX) {
            remove_file_if_exists(fs, &dir.join(&name))?;
        } else if let Some(base) = parse_segment_file_name(&name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_segment_file_name(&name, OFFSET_INDEX_SUFFIX)
            .or_else(|| parse_segment_file_name(&name, TIME_INDEX_SUFFIX))
        {
            index_bases.insert(base);
        }
    }
    bases.sort_unstable();
    for orphan in index_bases
        .iter()
        .filter(|base| bases.binary_search(base).is_err())
    {
        tracing::warn!(dir = %dir.display(), base_offset = orphan, "removing index files whose log is gone");
        SegmentPaths::new(dir, *orphan).remove(fs)?;
    }
    if let Some(log_start) = log_start_checkpoint {
        while bases.len() > 1 && bases[1] <= log_start {
            tracing::info!(dir = %dir.display(), base_offset = bases[0], log_start, "removing segment below the log start offset");
            SegmentPaths::new(dir, bases[0]).remove(fs)?;
            bases.remove(0);
        }
    }

    let mut segments: Vec<Segment> = Vec::new();
    let mut scanned = Vec::new();
    let mut kept = bases.len();
    for (i, &base) in bases.iter().enumerate() {
        if let Some(previous) = segments.last() {
            if previous.next_offset() != base {
                report.corruption = Some(format!(
                    "segment {base} does not start where segment {} ends (offset {})",
                    previous.base_offset(),
                    previous.next_offset()
                ));
                kept = i;
                break;
            }
        }
        let next_base = bases.get(i + 1).copied();
        let must_scan = shutdown == ShutdownState::Unclean
            && next_base.is_none_or(|next| next > recovery_point);
        let trusted = if must_scan {
            None
        } else {
            match open_trusted(fs, dir, base, next_base, config)? {
                Ok(segment) => Some(segment),
                Err(why) => {
                    tracing::warn!(dir = %dir.display(), base_offset = base, %why, "rebuilding segment indexes");
                    report.indexes_rebuilt += 1;
                    None
                }
            }
        };
        let segment = match trusted {
            Some(segment) => segment,
            None => {
                report.segments_scanned += 1;
                scanned.push(base);
                let (segment, stop, truncated) = scan_whole(fs, dir, base, config)?;
                report.bytes_scanned += segment.size_bytes() + truncated;
                report.bytes_truncated += truncated;
                if let Some(why) = stop {
                    // `PartitionLog::open` reports the whole partition in one line.
                    tracing::debug!(dir = %dir.display(), base_offset = base, truncated, %why, "truncating segment at the first bad batch");
                    report.corruption = Some(format!("segment {base}: {why}"));
                    kept = i + 1;
                    segments.push(segment);
                    break;
                }
                segment
            }
        };
        segments.push(segment);
    }
    for &dropped in &bases[kept..] {
        let paths = SegmentPaths::new(dir, dropped);
        let bytes = fs.open(&paths.log)?.len()?;
        tracing::debug!(dir = %dir.display(), base_offset = dropped, bytes, "deleting segment after a corrupt one");
        paths.remove(fs)?;
        report.segments_dropped += 1;
        report.bytes_dropped += bytes;
    }

    let active = match segments.pop() {
        Some(last) => ActiveSegment::from_recovered(last)?,
        None => {
            let base = log_start_checkpoint.unwrap_or(0);
            let active = ActiveSegment::create(fs, dir, base, config.index_interval_bytes)?;
            fs.sync_dir(dir)?;
            active
        }
    };
    let sealed: VecDeque<SealedSegment> = segments
        .into_iter()
        .map(SealedSegment::from_recovered)
        .collect();
    let first_base = sealed
        .front()
        .map_or(active.base_offset(), |segment| segment.base_offset());
    let log_end_offset = active.next_offset();
    let log_start_offset = log_start_checkpoint
        .unwrap_or(first_base)
        .max(first_base)
        .min(log_end_offset);
    report.log_start_offset = log_start_offset;
    report.log_end_offset = log_end_offset;
    Ok(Recovered {
        sealed,
        active,
        log_start_offset,
        scanned,
        report,
    })
}

/// Open a segment trusting its indexes. `Ok(Err(why))` if they are missing or wrong (the
/// caller rebuilds them by a scan).
fn open_trusted(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    next_base: Option<i64>,
    config: &LogConfig,
) -> Result<Result<Segment, String>, StorageError> {
    let mut segment = match Segment::open_with_indexes(fs, dir, base, config.index_interval_bytes) {
        Ok(segment) => segment,
        Err(IndexLoadError::Io(error)) => return Err(error.into()),
        Err(IndexLoadError::Invalid(why)) => return Ok(Err(why)),
    };
    let file_len = segment.log().len()?;
    match next_base {
        Some(next_offset) => Ok(segment
            .assume_ends_at(file_len, next_offset)
            .map(|()| segment)),
        None => {
            // The last segment: find its end from the last index entry on.
            if let Some(why) = scan_batches(&mut segment, file_len, OffsetLayout::of(config))? {
                return Ok(Err(format!(
                    "scanning the tail after the last index entry: {why}"
                )));
            }
            Ok(segment.check_time_index_end().map(|()| segment))
        }
    }
}

/// Rebuild a segment from its log: scan every batch, truncate at the first bad one.
/// Returns the segment, why the scan stopped early (if it did) and the bytes truncated.
fn scan_whole(
    fs: &dyn FileSystem,
    dir: &Path,
    base: i64,
    config: &LogConfig,
) -> Result<(Segment, Option<String>, u64), StorageError> {
    let mut segment = Segment::open_for_rebuild(fs, dir, base, config.index_interval_bytes)?;
    let file_len = segment.log().len()?;
    let stop = scan_batches(&mut segment, file_len, OffsetLayout::of(config))?;
    let truncated = file_len - segment.size_bytes();
    if truncated > 0 {
        segment.truncate_log_to_size()?;
    }
    segment.maybe_append_time_entry()?;
    Ok((segment, stop, truncated))
}

/// Read batches from the segment's current end (`size_bytes`, where a batch starting at
/// `next_offset` must lie) up to `file_len`, validating each and feeding it to
/// [`Segment::note_batch`]. Returns why it stopped before `file_len`, if it did; the
/// segment then ends at the last good batch.
fn scan_batches(
    segment: &mut Segment,
    file_len: u64,
    layout: OffsetLayout,
) -> Result<Option<String>, StorageError> {
    let mut chunk = Vec::new();
    let mut read_bytes = SCAN_CHUNK_BYTES;
    loop {
        let position = segment.size_bytes();
        if position >= file_len {
            return Ok(None);
        }
        // Bounded by the file: a corrupt length cannot make us allocate more than it holds.
        let len = (file_len - position).min(read_bytes) as usize;
        chunk.resize(len, 0);
        segment.log().read_exact_at(&mut chunk, position)?;
        read_bytes = SCAN_CHUNK_BYTES;
        for item in Batches::new(&chunk) {
            let at = segment.size_bytes();
            match item {
                Ok((_, bytes)) => {
                    let checked = match layout {
                        OffsetLayout::Contiguous => {
                            batch::validate(bytes).map_err(StorageError::from)
                        }
                        OffsetLayout::MayHaveGaps => validate_stored(bytes),
                    };
                    let header = match checked {
                        Ok(header) => header,
                        Err(error) => return Ok(Some(format!("batch at position {at}: {error}"))),
                    };
                    let in_order = match layout {
                        OffsetLayout::Contiguous => header.base_offset == segment.next_offset(),
                        OffsetLayout::MayHaveGaps => header.base_offset >= segment.next_offset(),
                    };
                    if !in_order {
                        return Ok(Some(format!(
                            "batch at position {at} has base offset {}, expected {}",
                            header.base_offset,
                            segment.next_offset()
                        )));
                    }
                    match segment.note_batch(at, &header) {
                        Ok(()) => {}
                        Err(StorageError::Corrupt(why)) => return Ok(Some(why)),
                        Err(error) => return Err(error),
                    }
                }
                Err(BatchIterError::Partial { position: in_chunk }) => {
                    let rest = &chunk[in_chunk..];
                    let file_rest = file_len - at;
                    if rest.len() as u64 == file_rest {
                        return Ok(Some(format!(
                            "torn batch at position {at}: the file ends {file_rest} bytes into it"
                        )));
                    }
                    // The chunk ends inside a batch that may be whole in the file: read on
                    // from it, far enough to hold it.
                    if rest.len() >= LOG_OVERHEAD {
                        match batch::batch_size_from_prefix(rest) {
                            Ok(size) if size as u64 > file_rest => {
                                return Ok(Some(format!(
                                    "torn batch at position {at}: {size} bytes long but the file ends {file_rest} bytes into it"
                                )))
                            }
                            Ok(size) => read_bytes = read_bytes.max(size as u64),
                            Err(error) => return Ok(Some(format!("batch at position {at}: {error}"))),
                        }
                    }
                    break;
                }
                Err(BatchIterError::Corrupt { error, .. }) => {
                    return Ok(Some(format!("batch at position {at}: {error}")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
