//! One segment: a `.log` file of batches and its two sparse indexes.
//!
//! A segment is named by its base offset, the offset of its first batch, printed as 20 digits
//! (`00000000000000000042.log`, `.index`, `.timeindex`). Its log file holds whole batches
//! back to back exactly as they were appended; the batch at file position `p` is followed by
//! the batch at `p + 12 + batchLength`.
//!
//! The lifecycle is in the types: an [`ActiveSegment`] takes appends; rolling seals it into
//! a [`SealedSegment`], which is only read, until retention deletes it, or until a follower
//! truncates the log into it, which makes it the active segment again, or until the log
//! cleaner replaces it by a cleaned copy with the same base offset. Both dereference to
//! [`Segment`], which holds the read path: find the batch containing an offset (offset index,
//! then a forward scan of batch headers; in a compacted log, the first batch after an
//! offset the cleaner removed), read whole batches, search by timestamp.
//!
//! Truncation ([`ActiveSegment::truncate_to`]) cuts the log file at a batch boundary and
//! both indexes after their last entry below the cut, then re-derives the segment's end
//! state the way recovery does for a trusted last segment: from the last kept index
//! entries, scanning the few batch headers between them and the cut. So a truncated segment
//! is in the state it would have had if its batches past the cut had never been appended.
//!
//! Invariants:
//! - `size_bytes` is where the next batch goes, and every byte before it belongs to a whole,
//!   valid batch (append validates; recovery truncates at the first batch that is not).
//! - Batches are contiguous: each batch's base offset is `next_offset` when it is appended.
//!   In a compacted log's sealed segments, which the cleaner rewrote (written by
//!   [`Segment::write_batch`] to `.cleaned` files, see `cleaner`), base offsets may skip
//!   past it; they never go back, and the last batch still ends at the segment's end.
//! - Relative offsets and file positions fit in 4 bytes (the active segment rolls first).
//! - Index entries are written by one rule, [`Segment::note_batch`], both when appending and
//!   when recovery rebuilds an index, so a rebuilt index equals the one appends produced.

use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use sluice_protocol::batch::{self, BatchHeader, BatchIterError, Batches, BATCH_HEADER_BYTES};

use super::epoch_cache::EpochEntry;
use super::fs::{FileSystem, StorageFile};
use super::index::{IndexFile, IndexLoadError, OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::{LogConfig, StorageError, NO_TIMESTAMP};

mod paths;

pub(super) use paths::{
    parse_segment_file_name, SegmentPaths, CLEANED_SUFFIX, LOG_SUFFIX, OFFSET_INDEX_SUFFIX,
    SWAP_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Handles to a segment's files, cloned out so they can be fsynced without the log's lock.
#[derive(Debug, Clone)]
pub(super) struct SegmentFiles {
    pub base_offset: i64,
    pub log: Arc<dyn StorageFile>,
    pub offset_index: Arc<dyn StorageFile>,
    pub time_index: Arc<dyn StorageFile>,
}

/// How a read treats the first batch it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstBatch {
    /// Return it whole even if it is larger than the budget (Kafka's rule, so a consumer
    /// always makes progress).
    Whole,
    /// Return it only if it fits in the budget.
    IfFits,
}

/// Why a read of one segment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadEnd {
    /// Every batch up to the end of the segment was read: the next segment may follow.
    SegmentEnd,
    /// The next batch did not fit in the budget.
    BudgetSpent,
}

/// The state and read path shared by active and sealed segments.
#[derive(Debug)]
pub(super) struct Segment {
    base_offset: i64,
    paths: SegmentPaths,
    log: Arc<dyn StorageFile>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Bytes of whole batches; where the next batch goes.
    size_bytes: u64,
    /// Offset one past the last batch.
    next_offset: i64,
    /// Largest batch max timestamp so far, [`NO_TIMESTAMP`] if none.
    max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    offset_of_max_timestamp: i64,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
}

impl Segment {
    fn with_files(
        fs: &dyn FileSystem,
        (paths, base_offset): (SegmentPaths, i64),
        index_interval_bytes: u32,
        offset_index: impl FnOnce(Arc<dyn StorageFile>) -> Result<OffsetIndex, IndexLoadError>,
        time_index: impl FnOnce(Arc<dyn StorageFile>) -> Result<TimeIndex, IndexLoadError>,
    ) -> Result<Segment, IndexLoadError> {
        let log = fs.open(&paths.log)?;
        let offset_index = offset_index(fs.open(&paths.offset_index)?)?;
        let time_index = time_index(fs.open(&paths.time_index)?)?;
        Ok(Segment {
            base_offset,
            paths,
            log,
            offset_index,
            time_index,
            size_bytes: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            bytes_since_index_entry: 0,
            index_interval_bytes: u64::from(index_interval_bytes),
        })
    }

    /// Open a segment's log keeping its bytes, with both indexes emptied, positioned at
    /// the start: recovery then feeds it every valid batch through [`Segment::note_batch`].
    pub(super) fn open_for_rebuild(
        fs: &dyn FileSystem,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<Segment> {
        Segment::empty_indexes(
            fs,
            (SegmentPaths::new(dir, base_offset), base_offset),
            index_interval_bytes,
        )
    }

    /// A new segment written to `<base>.log.cleaned` (and `.index.cleaned`,
    /// `.timeindex.cleaned`), all three emptied first: the cleaner's output, which its swap
    /// renames into place.
    pub(super) fn create_cleaned(
        fs: &dyn FileSystem,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<Segment> {
        let paths = SegmentPaths::with_suffix(dir, base_offset, CLEANED_SUFFIX);
        let segment = Segment::empty_indexes(fs, (paths, base_offset), index_interval_bytes)?;
        segment.log.truncate(0)?;
        Ok(segment)
    }

    fn empty_indexes(
        fs: &dyn FileSystem,
        (paths, base_offset): (SegmentPaths, i64),
        index_interval_bytes: u32,
    ) -> io::Result<Segment> {
        let segment = Segment::with_files(
            fs,
            (paths, base_offset),
            index_interval_bytes,
            |file| Ok(IndexFile::create(file)?),
            |file| Ok(IndexFile::create(file)?),
        );
        match segment {
            Ok(segment) => Ok(segment),
            Err(IndexLoadError::Io(error)) => Err(error),
            Err(IndexLoadError::Invalid(why)) => {
                unreachable!("creating an index cannot find it invalid: {why}")
            }
        }
    }

    /// Open a segment trusting its indexes once they pass their checks. The segment is
    /// positioned at its last offset-index entry (or the start), with the largest timestamp
    /// taken from the time index: the caller either scans the tail from there (the last
    /// segment) or calls [`Segment::assume_ends_at`] (a sealed one).
    pub(super) fn open_with_indexes(
        fs: &dyn FileSystem,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> Result<Segment, IndexLoadError> {
        let paths = SegmentPaths::new(dir, base_offset);
        for path in [&paths.offset_index, &paths.time_index] {
            if !fs.exists(path)? {
                return Err(IndexLoadError::Invalid(format!(
                    "{} is missing",
                    path.display()
                )));
            }
        }
        let log_len = fs.open(&paths.log)?.len()?;
        let mut segment = Segment::with_files(
            fs,
            (paths, base_offset),
            index_interval_bytes,
            |file| {
                IndexFile::load(file, |entry: &OffsetEntry| {
                    if u64::from(entry.position) >= log_len {
                        return Err(format!(
                            "entry {entry:?} points past the log's {log_len} bytes"
                        ));
                    }
                    Ok(())
                })
            },
            |file| IndexFile::load(file, |_| Ok(())),
        )?;
        segment.position_at_last_index_entries();
        Ok(segment)
    }

    /// Position the segment at its last offset-index entry (or the start), with the largest
    /// timestamp taken from the time index, ready for [`Segment::note_batch`] to be fed the
    /// batches from there on. The time index's last entry accounts for every batch before
    /// the last offset-index entry: whenever an offset-index entry is written, a time entry
    /// is too if the largest timestamp grew.
    fn position_at_last_index_entries(&mut self) {
        (self.size_bytes, self.next_offset) = match self.offset_index.last() {
            Some(entry) => (
                u64::from(entry.position),
                self.base_offset + i64::from(entry.relative_offset),
            ),
            None => (0, self.base_offset),
        };
        (self.max_timestamp, self.offset_of_max_timestamp) = match self.time_index.last() {
            Some(entry) => (
                entry.timestamp,
                self.base_offset + i64::from(entry.relative_offset),
            ),
            None => (NO_TIMESTAMP, self.base_offset),
        };
        self.bytes_since_index_entry = 0;
    }

    /// Declare a trusted sealed segment to end at `size_bytes` with next offset
    /// `next_offset` (its successor's base offset), checking the indexes agree.
    pub(super) fn assume_ends_at(
        &mut self,
        size_bytes: u64,
        next_offset: i64,
    ) -> Result<(), String> {
        let end = next_offset - self.base_offset;
        if end < 0 {
            return Err(format!(
                "next offset {next_offset} is below the base offset {}",
                self.base_offset
            ));
        }
        if let Some(entry) = self.offset_index.last() {
            if i64::from(entry.relative_offset) >= end {
                return Err(format!(
                    "offset index entry {entry:?} lies past the segment's end offset {next_offset}"
                ));
            }
        }
        if let Some(entry) = self.time_index.last() {
            if i64::from(entry.relative_offset) >= end {
                return Err(format!(
                    "time index entry {entry:?} lies past the segment's end offset {next_offset}"
                ));
            }
        }
        self.size_bytes = size_bytes;
        self.next_offset = next_offset;
        Ok(())
    }

    /// Check that the time index does not point past the end (after a tail scan).
    pub(super) fn check_time_index_end(&self) -> Result<(), String> {
        match self.time_index.last() {
            Some(entry)
                if self.base_offset + i64::from(entry.relative_offset) >= self.next_offset =>
            {
                Err(format!(
                    "time index entry {entry:?} lies past the segment's end offset {}",
                    self.next_offset
                ))
            }
            // The next entry (for the largest timestamp the scan saw) must be appendable:
            // a last entry at a later offset than a larger timestamp is ahead of the log.
            Some(entry)
                if self.max_timestamp > entry.timestamp
                    && self.offset_of_max_timestamp - self.base_offset
                        < i64::from(entry.relative_offset) =>
            {
                Err(format!(
                    "time index entry {entry:?} lies after offset {} of the larger timestamp {}",
                    self.offset_of_max_timestamp, self.max_timestamp
                ))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(super) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub(super) fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub(super) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(super) fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    pub(super) fn log(&self) -> &Arc<dyn StorageFile> {
        &self.log
    }

    pub(super) fn paths(&self) -> &SegmentPaths {
        &self.paths
    }

    pub(super) fn files(&self) -> SegmentFiles {
        SegmentFiles {
            base_offset: self.base_offset,
            log: Arc::clone(&self.log),
            offset_index: Arc::clone(self.offset_index.file()),
            time_index: Arc::clone(self.time_index.file()),
        }
    }

    fn relative(&self, offset: i64) -> Result<u32, StorageError> {
        u32::try_from(offset - self.base_offset).map_err(|_| {
            StorageError::Corrupt(format!(
                "offset {offset} does not fit segment {} (relative offsets are 4 bytes)",
                self.base_offset
            ))
        })
    }

    /// Account for a whole, valid batch lying at `position` (appended, or found by recovery):
    /// advance size and next offset, track the largest timestamp, and write index entries
    /// by the sparse rule.
    pub(super) fn note_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
    ) -> Result<(), StorageError> {
        // Equal in a log that was never compacted; compaction leaves gaps (see `cleaner`).
        assert!(
            header.base_offset >= self.next_offset,
            "batch offsets must increase in segment {}: batch {} after offset {}",
            self.base_offset,
            header.base_offset,
            self.next_offset
        );
        assert_eq!(
            position, self.size_bytes,
            "batches must lie back to back in segment {}",
            self.base_offset
        );
        let relative_offset = self.relative(header.base_offset)?;
        self.relative(header.last_offset())?;
        let file_position = u32::try_from(position).map_err(|_| {
            StorageError::Corrupt(format!(
                "position {position} in segment {} exceeds 4 bytes",
                self.base_offset
            ))
        })?;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if self.bytes_since_index_entry > self.index_interval_bytes {
            self.offset_index.append(OffsetEntry {
                relative_offset,
                position: file_position,
            })?;
            self.maybe_append_time_entry()?;
            self.bytes_since_index_entry = 0;
        }
        let size = header.size_bytes() as u64;
        self.bytes_since_index_entry += size;
        self.size_bytes = position + size;
        self.next_offset = header.next_offset();
        Ok(())
    }

    /// Write one whole, valid batch at the end of the log and index it (the cleaner's
    /// output segment; appends go through [`ActiveSegment::append`]).
    pub(super) fn write_batch(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
    ) -> Result<(), StorageError> {
        let position = self.size_bytes;
        self.log.write_at(batch, position)?;
        self.note_batch(position, header)
    }

    /// Record the largest timestamp in the time index if it grew since the last entry.
    pub(super) fn maybe_append_time_entry(&mut self) -> Result<(), StorageError> {
        let last = self
            .time_index
            .last()
            .map_or(NO_TIMESTAMP, |entry| entry.timestamp);
        if self.max_timestamp > last {
            let relative_offset = self.relative(self.offset_of_max_timestamp)?;
            self.time_index.append(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            })?;
        }
        Ok(())
    }

    /// Read the header of the batch at `position`.
    pub(super) fn read_header(&self, position: u64) -> Result<BatchHeader, StorageError> {
        self.read_header_before(position, self.size_bytes)
    }

    /// Read the header of the batch at `position`, which must end by `end`.
    fn read_header_before(&self, position: u64, end: u64) -> Result<BatchHeader, StorageError> {
        if position + BATCH_HEADER_BYTES as u64 > end {
            return Err(StorageError::Corrupt(format!(
                "segment {}: no batch header fits at position {position} (end {end})",
                self.base_offset
            )));
        }
        let mut bytes = [0u8; BATCH_HEADER_BYTES];
        self.log.read_exact_at(&mut bytes, position)?;
        batch::batch_size_from_prefix(&bytes)?;
        let header = BatchHeader::parse(&bytes)?;
        if position + header.size_bytes() as u64 > end {
            return Err(StorageError::Corrupt(format!(
                "segment {}: the batch at position {position} runs past the end {end}",
                self.base_offset
            )));
        }
        Ok(header)
    }

    /// File position where the records at or past `offset` (which must lie in this
    /// segment) start: the batch starting exactly at `offset`, or in a compacted log the
    /// first batch after the gap `offset` lies in (or the end of the segment). `None` if
    /// `offset` lies inside a batch.
    pub(super) fn batch_start_position(&self, offset: i64) -> Result<Option<u64>, StorageError> {
        let position = self.find_position(offset)?;
        if position == self.size_bytes {
            return Ok(Some(position));
        }
        let header = self.read_header(position)?;
        Ok((header.base_offset >= offset).then_some(position))
    }

    /// The epoch changes along this segment's batches: the first batch's `(epoch, base
    /// offset)` and then one entry wherever the epoch differs from the batch before. Batches
    /// without an epoch (negative, Kafka's `NO_PARTITION_LEADER_EPOCH`) are skipped. One
    /// header read per batch.
    ///
    /// Each run comes with the offset one past its last batch: in a compacted log the next
    /// run may start later (the cleaner removed the batches between).
    pub(super) fn epoch_runs(&self) -> Result<Vec<(EpochEntry, i64)>, StorageError> {
        let mut runs: Vec<(EpochEntry, i64)> = Vec::new();
        let mut position = 0;
        while position < self.size_bytes {
            let header = self.read_header(position)?;
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && runs.last().is_none_or(|(run, _)| run.epoch != epoch) {
                let run = EpochEntry {
                    epoch,
                    start_offset: header.base_offset,
                };
                runs.push((run, header.next_offset()));
            }
            if let Some((run, end)) = runs.last_mut() {
                if run.epoch == epoch {
                    *end = header.next_offset();
                }
            }
            position += header.size_bytes() as u64;
        }
        Ok(runs)
    }

    /// Remove every batch at or past `offset`, which must be the base offset of one of this
    /// segment's batches (or its next offset: nothing to do). See the module documentation.
    fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset == self.next_offset {
            return Ok(());
        }
        let Some(position) = self.batch_start_position(offset)? else {
            return Err(StorageError::Corrupt(format!(
                "segment {}: offset {offset} is not the start of a batch",
                self.base_offset
            )));
        };
        let relative_offset = self.relative(offset)?;
        self.offset_index
            .truncate_to_prefix(|entry| entry.relative_offset < relative_offset)?;
        self.time_index
            .truncate_to_prefix(|entry| entry.relative_offset < relative_offset)?;
        self.log.truncate(position)?;
        self.position_at_last_index_entries();
        while self.size_bytes < position {
            let header = self.read_header_before(self.size_bytes, position)?;
            if header.base_offset < self.next_offset {
                return Err(StorageError::Corrupt(format!(
                    "segment {}: the batch at position {} has base offset {}, below offset {}",
                    self.base_offset, self.size_bytes, header.base_offset, self.next_offset
                )));
            }
            self.note_batch(self.size_bytes, &header)?;
        }
        // In a compacted log `offset` may lie in a gap after the last kept batch; the log
        // still ends at `offset` (Kafka's `truncateTo` sets the log end offset likewise).
        self.next_offset = self.next_offset.max(offset);
        Ok(())
    }

    /// File position of the batch that contains `offset` (which must lie in this segment);
    /// in a compacted log, of the first batch after `offset` if compaction removed it, or
    /// the end of the segment if no batch holds an offset at or past it.
    pub(super) fn find_position(&self, offset: i64) -> Result<u64, StorageError> {
        assert!(
            offset >= self.base_offset && offset < self.next_offset,
            "offset {offset} is outside segment {}..{}",
            self.base_offset,
            self.next_offset
        );
        let mut position = self
            .offset_index
            .lookup(self.relative(offset)?)?
            .map_or(0, |entry| u64::from(entry.position));
        while position < self.size_bytes {
            let header = self.read_header(position)?;
            // A batch starting past `offset` is the first after a compaction gap.
            if header.next_offset() > offset {
                return Ok(position);
            }
            position += header.size_bytes() as u64;
        }
        Ok(position)
    }

    /// Append to `out` the whole batches from `position` on, up to `budget_bytes` (but see
    /// [`FirstBatch`]).
    pub(super) fn read_into(
        &self,
        position: u64,
        budget_bytes: usize,
        first: FirstBatch,
        out: &mut BytesMut,
    ) -> Result<ReadEnd, StorageError> {
        if position >= self.size_bytes {
            return Ok(ReadEnd::SegmentEnd);
        }
        let available = self.size_bytes - position;
        let first_size = match first {
            FirstBatch::Whole => self.read_header(position)?.size_bytes(),
            FirstBatch::IfFits => 0,
        };
        let want = available.min(budget_bytes.max(first_size) as u64) as usize;
        let start = out.len();
        out.resize(start + want, 0);
        self.log.read_exact_at(&mut out[start..], position)?;
        let mut whole = 0;
        for item in Batches::new(&out[start..]) {
            match item {
                Ok((_, bytes)) => whole += bytes.len(),
                Err(BatchIterError::Partial { .. }) => break,
                Err(BatchIterError::Corrupt {
                    position: at,
                    error,
                }) => {
                    return Err(StorageError::Corrupt(format!(
                        "segment {} at position {}: {error}",
                        self.base_offset,
                        position + at as u64
                    )))
                }
            }
        }
        out.truncate(start + whole);
        if position + whole as u64 == self.size_bytes {
            Ok(ReadEnd::SegmentEnd)
        } else {
            Ok(ReadEnd::BudgetSpent)
        }
    }

    /// The first record in this segment at or past `min_offset` whose timestamp is
    /// `>= timestamp` (Kafka's `searchForTimestamp`): the time index finds where to start,
    /// batch max timestamps which batch to open, then its records (decompressed if need be;
    /// with LogAppendTime each record has the batch's time). `(offset, timestamp, the
    /// batch's partition leader epoch)`.
    pub(super) fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<TimestampMatch>, StorageError> {
        if self.max_timestamp < timestamp || self.is_empty() {
            return Ok(None);
        }
        // Every batch before the floor entry's batch has a smaller max timestamp than the
        // entry's (the entry names the first batch that reached it), so start there.
        let start_offset = self
            .time_index
            .lookup(timestamp)?
            .map_or(self.base_offset, |entry| {
                self.base_offset + i64::from(entry.relative_offset)
            });
        let mut position = self.find_position(start_offset.max(min_offset))?;
        while position < self.size_bytes {
            let header = self.read_header(position)?;
            // An empty batch (the cleaner removed every record) answers nothing; nor does
            // one whose records with the max timestamp were cleaned away.
            if header.max_timestamp >= timestamp && header.records_count > 0 {
                let mut bytes = vec![0u8; header.size_bytes()];
                self.log.read_exact_at(&mut bytes, position)?;
                let records = sluice_protocol::records::decode_records(&bytes.into())?;
                let found = records
                    .iter()
                    .find(|r| r.timestamp >= timestamp && r.offset >= min_offset);
                if let Some(record) = found {
                    return Ok(Some(TimestampMatch {
                        offset: record.offset,
                        timestamp: record.timestamp,
                        leader_epoch: header.partition_leader_epoch,
                    }));
                }
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// Cut the log file to `size_bytes` (dropping a torn or corrupt tail).
    pub(super) fn truncate_log_to_size(&self) -> io::Result<()> {
        self.log.truncate(self.size_bytes)
    }
}

/// The answer of a search by timestamp: the first record at or after the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampMatch {
    pub offset: i64,
    pub timestamp: i64,
    /// The leader epoch of the batch holding it (what Kafka answers with).
    pub leader_epoch: i32,
}

/// The segment that takes appends: the last one of a log.
#[derive(Debug)]
pub(super) struct ActiveSegment {
    segment: Segment,
    /// When the segment's age started counting: the time of its first append, or after a
    /// restart the max timestamp of its first batch (Kafka's rule). `None` while empty.
    rolling_base_ms: Option<i64>,
}

impl Deref for ActiveSegment {
    type Target = Segment;

    fn deref(&self) -> &Segment {
        &self.segment
    }
}

impl ActiveSegment {
    /// A new, empty segment at `base_offset`; any old files of that name are emptied.
    pub(super) fn create(
        fs: &dyn FileSystem,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u32,
    ) -> io::Result<ActiveSegment> {
        let segment = Segment::open_for_rebuild(fs, dir, base_offset, index_interval_bytes)?;
        segment.log.truncate(0)?;
        Ok(ActiveSegment {
            segment,
            rolling_base_ms: None,
        })
    }

    /// Make the last segment found by recovery the active one.
    pub(super) fn from_recovered(segment: Segment) -> Result<ActiveSegment, StorageError> {
        let rolling_base_ms = first_batch_rolling_base(&segment)?;
        Ok(ActiveSegment {
            segment,
            rolling_base_ms,
        })
    }

    /// Make a sealed segment take appends again (a truncation reached into it). Its age
    /// counts from its first batch's timestamp, as after a restart.
    pub(super) fn reopen(sealed: SealedSegment) -> Result<ActiveSegment, StorageError> {
        ActiveSegment::from_recovered(sealed.segment)
    }

    /// Remove every batch at or past `offset`, a batch boundary inside this segment (or
    /// its base offset: the segment becomes empty). Refuses (`Corrupt`) an offset inside a
    /// batch before changing anything. The files are cut but not fsynced.
    pub(super) fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        self.segment.truncate_to(offset)?;
        if self.segment.is_empty() {
            self.rolling_base_ms = None;
        }
        Ok(())
    }

    /// Whether a batch of `batch_bytes` ending at `last_offset` must go to a new segment.
    /// An empty segment never rolls, so an oversized batch gets a segment of its own.
    pub(super) fn should_roll(
        &self,
        batch_bytes: usize,
        last_offset: i64,
        now_ms: i64,
        config: &LogConfig,
    ) -> bool {
        if self.is_empty() {
            return false;
        }
        let size_after = self.size_bytes + batch_bytes as u64;
        let too_big = size_after > config.segment_bytes_max || size_after > u64::from(u32::MAX);
        let too_old = self.rolling_base_ms.is_some_and(|base| {
            i128::from(now_ms) - i128::from(base) > i128::from(config.segment_ms_max)
        });
        let offsets_overflow = last_offset - self.base_offset > i64::from(i32::MAX);
        too_big || too_old || offsets_overflow
    }

    /// Write one validated, stamped batch at the end of the log and index it.
    pub(super) fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let position = self.segment.size_bytes;
        self.segment.log.write_at(batch, position)?;
        self.segment.note_batch(position, header)?;
        self.rolling_base_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Bring the time index up to the largest timestamp: before a flush, and before
    /// sealing so that a reopened sealed segment knows its largest timestamp without a scan.
    pub(super) fn update_time_index(&mut self) -> Result<(), StorageError> {
        self.segment.maybe_append_time_entry()
    }

    /// Stop taking appends. Call [`ActiveSegment::update_time_index`] first.
    pub(super) fn seal(self) -> SealedSegment {
        SealedSegment {
            segment: self.segment,
        }
    }
}

/// When an existing segment's age started counting: its first batch's max timestamp (Kafka's
/// rule after a restart), `None` if it is empty or has no timestamps.
fn first_batch_rolling_base(segment: &Segment) -> Result<Option<i64>, StorageError> {
    if segment.is_empty() {
        return Ok(None);
    }
    Ok(Some(segment.read_header(0)?.max_timestamp).filter(|timestamp| *timestamp >= 0))
}

/// A segment that no longer takes appends.
#[derive(Debug)]
pub(super) struct SealedSegment {
    segment: Segment,
}

impl Deref for SealedSegment {
    type Target = Segment;

    fn deref(&self) -> &Segment {
        &self.segment
    }
}

impl SealedSegment {
    pub(super) fn from_recovered(segment: Segment) -> SealedSegment {
        SealedSegment { segment }
    }
}
