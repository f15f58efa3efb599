//! A segment's two sparse indexes: the offset index and the time index.
//!
//! Both are flat files of fixed-size big-endian entries, appended to and searched by binary
//! search with positional reads. Only the entry count and the last entry are kept in memory,
//! so an open segment costs a few bytes of memory however large its index (Kafka mmaps its
//! indexes instead; mmap cannot be simulated).
//!
//! - **Offset index** (`.index`): `relative offset (u32) -> file position (u32)`. An entry is
//!   written for a batch once at least `index_interval_bytes` were appended since the previous
//!   entry; its relative offset is the batch's base offset minus the segment's base offset,
//!   and its position is where the batch starts. To find offset `o`, take the last entry with
//!   relative offset `<= o - base` and scan batch headers forward from its position.
//! - **Time index** (`.timeindex`): `timestamp (i64) -> relative offset (u32)`. At the same
//!   moments as offset-index entries (and when the segment is sealed or flushed), if the
//!   segment's largest timestamp so far grew since the last entry, an entry records it with the
//!   offset of the first batch that reached it.
//!
//! Invariants (checked when an index is loaded; a failing index is rebuilt from its log):
//! - the file holds a whole number of entries;
//! - offset index: relative offsets and positions strictly increase, positions lie inside the
//!   log file;
//! - time index: timestamps strictly increase, relative offsets never decrease.
//!
//! Relative offsets and positions are 4 bytes, which is why a segment rolls before its
//! relative offsets or size would overflow them.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;

use super::fs::StorageFile;
use super::StorageError;

/// One fixed-size index entry.
pub(super) trait IndexEntry: Copy + std::fmt::Debug {
    const BYTES: usize;
    const KIND: &'static str;
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
    /// Check that `next` may follow `previous` in the file.
    fn check_order(previous: &Self, next: &Self) -> Result<(), String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = 8;
    const KIND: &'static str = "offset index";

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> OffsetEntry {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            position: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }

    fn check_order(previous: &OffsetEntry, next: &OffsetEntry) -> Result<(), String> {
        if next.relative_offset <= previous.relative_offset || next.position <= previous.position {
            return Err(format!(
                "entry {next:?} does not increase past {previous:?}"
            ));
        }
        Ok(())
    }
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = 12;
    const KIND: &'static str = "time index";

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> TimeEntry {
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&bytes[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        }
    }

    fn check_order(previous: &TimeEntry, next: &TimeEntry) -> Result<(), String> {
        if next.timestamp <= previous.timestamp || next.relative_offset < previous.relative_offset {
            return Err(format!(
                "entry {next:?} does not increase past {previous:?}"
            ));
        }
        Ok(())
    }
}

pub(super) type OffsetIndex = IndexFile<OffsetEntry>;
pub(super) type TimeIndex = IndexFile<TimeEntry>;

/// Why an index file was refused on load.
#[derive(Debug)]
pub(super) enum IndexLoadError {
    Io(io::Error),
    /// The file breaks an invariant; the message says which. The caller rebuilds it.
    Invalid(String),
}

impl From<io::Error> for IndexLoadError {
    fn from(error: io::Error) -> IndexLoadError {
        IndexLoadError::Io(error)
    }
}

/// An index file: entries appended at the end, searched by binary search.
#[derive(Debug)]
pub(super) struct IndexFile<E: IndexEntry> {
    file: Arc<dyn StorageFile>,
    entries: u64,
    last: Option<E>,
    _entry: PhantomData<E>,
}

impl<E: IndexEntry> IndexFile<E> {
    /// An empty index over `file`, discarding whatever it held.
    pub(super) fn create(file: Arc<dyn StorageFile>) -> io::Result<IndexFile<E>> {
        file.truncate(0)?;
        Ok(IndexFile {
            file,
            entries: 0,
            last: None,
            _entry: PhantomData,
        })
    }

    /// Load an existing index, checking its size and order. `check_entry` adds checks that
    /// need the segment (for the offset index: positions inside the log).
    pub(super) fn load(
        file: Arc<dyn StorageFile>,
        check_entry: impl Fn(&E) -> Result<(), String>,
    ) -> Result<IndexFile<E>, IndexLoadError> {
        let len = file.len()?;
        if len % E::BYTES as u64 != 0 {
            return Err(IndexLoadError::Invalid(format!(
                "{} of {len} bytes is not a whole number of {}-byte entries",
                E::KIND,
                E::BYTES
            )));
        }
        let size = usize::try_from(len).map_err(|_| {
            IndexLoadError::Invalid(format!("{} of {len} bytes is too large", E::KIND))
        })?;
        let mut bytes = vec![0u8; size];
        file.read_exact_at(&mut bytes, 0)?;
        let mut last: Option<E> = None;
        for chunk in bytes.chunks_exact(E::BYTES) {
            let entry = E::decode(chunk);
            check_entry(&entry)
                .map_err(|why| IndexLoadError::Invalid(format!("{}: {why}", E::KIND)))?;
            if let Some(previous) = &last {
                E::check_order(previous, &entry)
                    .map_err(|why| IndexLoadError::Invalid(format!("{}: {why}", E::KIND)))?;
            }
            last = Some(entry);
        }
        Ok(IndexFile {
            file,
            entries: len / E::BYTES as u64,
            last,
            _entry: PhantomData,
        })
    }

    /// Append one entry. Refuses (`Corrupt`, nothing written) an entry that would break the
    /// order invariant: live appends derive entries from contiguous appends, so there it is a
    /// bug; in recovery it means indexes trusted after a clean shutdown disagree with the
    /// log, and recovery rebuilds them (the log_recovery fuzz target found the panic this
    /// used to be).
    pub(super) fn append(&mut self, entry: E) -> Result<(), StorageError> {
        if let Some(previous) = &self.last {
            E::check_order(previous, &entry).map_err(|why| {
                StorageError::Corrupt(format!("{} append out of order: {why}", E::KIND))
            })?;
        }
        let mut bytes = [0u8; 16];
        entry.encode(&mut bytes[..E::BYTES]);
        self.file
            .write_at(&bytes[..E::BYTES], self.entries * E::BYTES as u64)?;
        self.entries += 1;
        self.last = Some(entry);
        Ok(())
    }

    pub(super) fn last(&self) -> Option<E> {
        self.last
    }

    #[cfg(test)]
    pub(super) fn entry_count(&self) -> u64 {
        self.entries
    }

    pub(super) fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    fn read_entry(&self, index: u64) -> io::Result<E> {
        let mut bytes = [0u8; 16];
        self.file
            .read_exact_at(&mut bytes[..E::BYTES], index * E::BYTES as u64)?;
        Ok(E::decode(&bytes[..E::BYTES]))
    }

    /// How many leading entries `at_or_before` holds for, given that it holds for a prefix
    /// of the entries (true for every entry up to some point, false after).
    fn partition_point(&self, at_or_before: impl Fn(&E) -> bool) -> io::Result<u64> {
        let (mut low, mut high) = (0u64, self.entries);
        while low < high {
            let middle = low + (high - low) / 2;
            if at_or_before(&self.read_entry(middle)?) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// The last entry for which `at_or_before` holds, given that it holds for a prefix of the
    /// entries.
    fn floor(&self, at_or_before: impl Fn(&E) -> bool) -> io::Result<Option<E>> {
        match self.partition_point(at_or_before)? {
            0 => Ok(None),
            count => self.read_entry(count - 1).map(Some),
        }
    }

    /// Keep only the leading entries for which `keep` holds (a prefix, as for
    /// [`IndexFile::floor`]); cut the file after them.
    pub(super) fn truncate_to_prefix(&mut self, keep: impl Fn(&E) -> bool) -> io::Result<()> {
        let count = self.partition_point(keep)?;
        if count == self.entries {
            return Ok(());
        }
        let last = match count {
            0 => None,
            count => Some(self.read_entry(count - 1)?),
        };
        self.file.truncate(count * E::BYTES as u64)?;
        self.entries = count;
        self.last = last;
        Ok(())
    }
}

impl IndexFile<OffsetEntry> {
    /// The last entry whose relative offset is `<= relative_offset`.
    pub(super) fn lookup(&self, relative_offset: u32) -> io::Result<Option<OffsetEntry>> {
        self.floor(|entry| entry.relative_offset <= relative_offset)
    }
}

impl IndexFile<TimeEntry> {
    /// The last entry whose timestamp is `<= timestamp`.
    pub(super) fn lookup(&self, timestamp: i64) -> io::Result<Option<TimeEntry>> {
        self.floor(|entry| entry.timestamp <= timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::{FileSystem, StdFileSystem};

    fn offset_index(dir: &tempfile::TempDir) -> OffsetIndex {
        IndexFile::create(StdFileSystem.open(&dir.path().join("i")).unwrap()).unwrap()
    }

    #[test]
    fn offset_lookup_finds_the_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = offset_index(&dir);
        assert_eq!(index.lookup(5).unwrap(), None);
        for (relative_offset, position) in [(10, 100), (20, 200), (30, 300)] {
            index
                .append(OffsetEntry {
                    relative_offset,
                    position,
                })
                .unwrap();
        }
        assert_eq!(index.lookup(9).unwrap(), None);
        assert_eq!(index.lookup(10).unwrap().unwrap().position, 100);
        assert_eq!(index.lookup(29).unwrap().unwrap().position, 200);
        assert_eq!(index.lookup(1000).unwrap().unwrap().position, 300);
    }

    #[test]
    fn truncate_to_prefix_cuts_the_file_after_the_kept_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = offset_index(&dir);
        for (relative_offset, position) in [(10, 100), (20, 200), (30, 300)] {
            index
                .append(OffsetEntry {
                    relative_offset,
                    position,
                })
                .unwrap();
        }
        index
            .truncate_to_prefix(|entry| entry.relative_offset < 25)
            .unwrap();
        assert_eq!(index.entry_count(), 2);
        assert_eq!(index.file().len().unwrap(), 16);
        assert_eq!(index.last().unwrap().relative_offset, 20);
        assert_eq!(index.lookup(1000).unwrap().unwrap().position, 200);
        // Appends continue after the kept entries.
        index
            .append(OffsetEntry {
                relative_offset: 22,
                position: 220,
            })
            .unwrap();
        index
            .truncate_to_prefix(|entry| entry.relative_offset < 10)
            .unwrap();
        assert_eq!((index.entry_count(), index.last()), (0, None));
        assert!(index.file().is_empty().unwrap());
    }

    #[test]
    fn time_lookup_finds_the_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut index: TimeIndex =
            IndexFile::create(StdFileSystem.open(&dir.path().join("t")).unwrap()).unwrap();
        index
            .append(TimeEntry {
                timestamp: 1000,
                relative_offset: 0,
            })
            .unwrap();
        index
            .append(TimeEntry {
                timestamp: 2000,
                relative_offset: 7,
            })
            .unwrap();
        assert_eq!(index.lookup(999).unwrap(), None);
        assert_eq!(index.lookup(1999).unwrap().unwrap().relative_offset, 0);
        assert_eq!(index.lookup(2000).unwrap().unwrap().relative_offset, 7);
    }

    #[test]
    fn load_refuses_partial_entries_and_disorder() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = offset_index(&dir);
        index
            .append(OffsetEntry {
                relative_offset: 1,
                position: 10,
            })
            .unwrap();
        index
            .append(OffsetEntry {
                relative_offset: 2,
                position: 20,
            })
            .unwrap();
        let file = Arc::clone(index.file());
        let loaded = OffsetIndex::load(Arc::clone(&file), |_| Ok(())).unwrap();
        assert_eq!(loaded.entry_count(), 2);
        assert_eq!(loaded.last().unwrap().position, 20);

        // An entry pointing backwards.
        let mut bytes = [0u8; 8];
        OffsetEntry {
            relative_offset: 3,
            position: 5,
        }
        .encode(&mut bytes);
        file.write_at(&bytes, 16).unwrap();
        assert!(matches!(
            OffsetIndex::load(Arc::clone(&file), |_| Ok(())),
            Err(IndexLoadError::Invalid(_))
        ));

        // A torn entry.
        file.truncate(12).unwrap();
        assert!(matches!(
            OffsetIndex::load(Arc::clone(&file), |_| Ok(())),
            Err(IndexLoadError::Invalid(_))
        ));

        // A position the caller says lies outside the log.
        OffsetEntry {
            relative_offset: 2,
            position: 20,
        }
        .encode(&mut bytes);
        file.write_at(&bytes, 8).unwrap();
        assert_eq!(file.len().unwrap(), 16);
        let outside = OffsetIndex::load(file, |entry| {
            if entry.position >= 15 {
                Err("past the end".into())
            } else {
                Ok(())
            }
        });
        assert!(
            matches!(outside, Err(IndexLoadError::Invalid(why)) if why.contains("past the end"))
        );
    }
}
