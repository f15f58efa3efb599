//! A data directory's per-partition offset checkpoints: every hosted partition's recovery
//! point in `recovery-point-offset-checkpoint`, its log start offset in
//! `log-start-offset-checkpoint` and, for compacted logs, where the cleaner's last pass
//! ended in `cleaner-offset-checkpoint` (Kafka's names and multi-partition format), one
//! file each for however many partitions, each rewritten whole with
//! [`checkpoint::write_atomic`].
//!
//! Logs record their offsets here in memory; the files are written together by
//! [`DirCheckpoints::write_if_changed`] (the replica manager's periodic checkpoint, the end
//! of `LogManager::open`, clean shutdown), so a segment roll or a recovered partition costs
//! no fsync of its own. A few changes cannot wait and are written before `record` returns.
//!
//! # What the files may claim (the invariant every write keeps)
//!
//! - A partition's recovery point on disk is never above what its log really has flushed.
//!   Raising it late only makes recovery scan more, so raises wait for the next write; a
//!   *lower* value (truncation) is written at once, before any record past it can be
//!   written.
//! - A log start offset only grows while its partition exists. A full truncation's new start
//!   is written at once (from then on recovery deletes every older segment); retention's
//!   waits, since recovery never starts below the first segment anyway.
//! - A cleaner offset on disk is never above an offset a truncation cut the log to (a
//!   truncation lowers it before returning): records appended after the truncation are
//!   never taken for cleaned. Raises wait for the next write (a restart then cleans a
//!   little more again).
//! - An entry for a partition that no longer has a directory may linger until the next
//!   write; before a new directory of that name is created its entries are removed on disk
//!   ([`DirCheckpoints::forget_now`]), so a new log never inherits an old one's offsets.
//!
//! "On disk" here means what an unclean open would read: the file's entry, or, for a
//! partition the file has none for, the per-partition file an older version wrote in the
//! partition directory ([`LEGACY_RECOVERY_POINT_FILE`], [`LEGACY_LOG_START_OFFSET_FILE`]),
//! which is read as a fallback and counted as the on-disk claim until the file has an entry.
//!
//! Locks: `entries` (the maps, held briefly, never during I/O) and `io` (serialises writes
//! of the files, held during them). `io` before `entries`. A write takes a copy of the
//! current offsets under `entries`, writes them, then records them as written; since
//! writers are serialised and each copies the offsets current when it starts, the last
//! write to finish has the latest offsets of every write before it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::checkpoint;
use super::fs::FileSystem;

/// Every hosted partition's recovery point (Kafka's name and format).
pub(super) const RECOVERY_POINT_OFFSET_FILE: &str = "recovery-point-offset-checkpoint";
/// Every hosted partition's log start offset (Kafka's name and format).
pub(super) const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// A partition's own recovery-point file, written by versions before
/// [`RECOVERY_POINT_OFFSET_FILE`]; read when that file has no entry for the partition.
pub(super) const LEGACY_RECOVERY_POINT_FILE: &str = "recovery-point-checkpoint";
/// A partition's own log-start file, as [`LEGACY_RECOVERY_POINT_FILE`] (the same name as
/// the data directory's file, in the partition directory).
pub(super) const LEGACY_LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// Where each compacted log's last cleaning pass ended (Kafka's name and format).
pub(super) const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

/// A partition by topic name and index, as the files name it.
pub(crate) type PartitionKey = (String, i32);

/// Which of the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetKind {
    RecoveryPoint,
    LogStart,
    CleanerOffset,
}

impl OffsetKind {
    fn file_name(self) -> &'static str {
        match self {
            OffsetKind::RecoveryPoint => RECOVERY_POINT_OFFSET_FILE,
            OffsetKind::LogStart => LOG_START_OFFSET_FILE,
            OffsetKind::CleanerOffset => CLEANER_OFFSET_FILE,
        }
    }

    fn legacy_file_name(self) -> Option<&'static str> {
        match self {
            OffsetKind::RecoveryPoint => Some(LEGACY_RECOVERY_POINT_FILE),
            OffsetKind::LogStart => Some(LEGACY_LOG_START_OFFSET_FILE),
            OffsetKind::CleanerOffset => None,
        }
    }

    fn index(self) -> usize {
        match self {
            OffsetKind::RecoveryPoint => 0,
            OffsetKind::LogStart => 1,
            OffsetKind::CleanerOffset => 2,
        }
    }
}

const KINDS: [OffsetKind; 3] = [
    OffsetKind::RecoveryPoint,
    OffsetKind::LogStart,
    OffsetKind::CleanerOffset,
];

/// The offset checkpoint files of one data directory. See the module documentation.
#[derive(Debug)]
pub(crate) struct DirCheckpoints {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    entries: Mutex<[Entries; 3]>,
    io: Mutex<()>,
}

#[derive(Debug, Default)]
struct Entries {
    /// What the logs recorded last.
    current: BTreeMap<PartitionKey, i64>,
    /// What an unclean open would read now.
    on_disk: BTreeMap<PartitionKey, i64>,
}

impl DirCheckpoints {
    /// Read the files in `dir` (missing or unreadable files read as empty: every partition
    /// falls back to its safe default).
    pub(crate) fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> io::Result<DirCheckpoints> {
        let mut entries: [Entries; 3] = Default::default();
        for kind in KINDS {
            let offsets = checkpoint::read_offsets(&*fs, dir, kind.file_name())?;
            entries[kind.index()] = Entries {
                current: offsets.clone(),
                on_disk: offsets,
            };
        }
        Ok(DirCheckpoints {
            fs,
            dir: dir.to_path_buf(),
            entries: Mutex::new(entries),
            io: Mutex::new(()),
        })
    }

    fn entries(&self) -> MutexGuard<'_, [Entries; 3]> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The offset an open of `key`'s log starts from: the file's entry, else the legacy
    /// per-partition file in `partition_dir` (adopted as this file's entry), else `None`.
    pub(crate) fn load(
        &self,
        kind: OffsetKind,
        key: &PartitionKey,
        partition_dir: &Path,
    ) -> io::Result<Option<i64>> {
        if let Some(offset) = self.entries()[kind.index()].current.get(key) {
            return Ok(Some(*offset));
        }
        let Some(legacy_name) = kind.legacy_file_name() else {
            return Ok(None);
        };
        if partition_dir == self.dir {
            // A log opened alone (tests) keeps the data directory's files in its own.
            return Ok(None);
        }
        let legacy = checkpoint::read_offset(&*self.fs, partition_dir, legacy_name)?;
        if let Some(offset) = legacy {
            let mut entries = self.entries();
            let entries = &mut entries[kind.index()];
            entries.current.insert(key.clone(), offset);
            entries.on_disk.insert(key.clone(), offset);
        }
        Ok(legacy)
    }

    /// Record `key`'s recovery point. Written before returning if the disk claims more
    /// (a truncation lowered it); otherwise with the next write.
    pub(crate) fn record_recovery_point(&self, key: &PartitionKey, offset: i64) -> io::Result<()> {
        let lowered = {
            let mut entries = self.entries();
            let entries = &mut entries[OffsetKind::RecoveryPoint.index()];
            entries.current.insert(key.clone(), offset);
            entries.on_disk.get(key).is_some_and(|disk| *disk > offset)
        };
        if lowered {
            self.write(OffsetKind::RecoveryPoint)?;
        }
        Ok(())
    }

    /// Record that `key`'s log starts at `offset` (ignored if an earlier record said more:
    /// the start only grows). Written before returning if `now`.
    pub(crate) fn record_log_start(
        &self,
        key: &PartitionKey,
        offset: i64,
        now: bool,
    ) -> io::Result<()> {
        {
            let mut entries = self.entries();
            let current = &mut entries[OffsetKind::LogStart.index()].current;
            let entry = current.entry(key.clone()).or_insert(offset);
            *entry = (*entry).max(offset);
        }
        if now {
            self.write(OffsetKind::LogStart)?;
        }
        Ok(())
    }

    /// Record where a cleaning pass over `key`'s log ended; written with the next write.
    pub(crate) fn record_cleaner_offset(&self, key: &PartitionKey, offset: i64) {
        let mut entries = self.entries();
        let current = &mut entries[OffsetKind::CleanerOffset.index()].current;
        current.insert(key.clone(), offset);
    }

    /// A truncation cut `key`'s log to `offset`: lower its cleaner offset to it if above,
    /// written before returning if the file holds more.
    pub(crate) fn lower_cleaner_offset(&self, key: &PartitionKey, offset: i64) -> io::Result<()> {
        let lowered = {
            let mut entries = self.entries();
            let entries = &mut entries[OffsetKind::CleanerOffset.index()];
            if let Some(current) = entries.current.get_mut(key) {
                *current = (*current).min(offset);
            }
            entries.on_disk.get(key).is_some_and(|disk| *disk > offset)
        };
        if lowered {
            self.write(OffsetKind::CleanerOffset)?;
        }
        Ok(())
    }

    /// Drop `key`'s entries from the next write (its directory is gone).
    pub(crate) fn forget(&self, key: &PartitionKey) {
        for entries in self.entries().iter_mut() {
            entries.current.remove(key);
        }
    }

    /// Drop `key`'s entries and, if a file still has one, write it now: called before a new
    /// directory for `key` is created.
    pub(crate) fn forget_now(&self, key: &PartitionKey) -> io::Result<()> {
        let stale: Vec<OffsetKind> = {
            let mut entries = self.entries();
            KINDS
                .into_iter()
                .filter(|kind| {
                    let entries = &mut entries[kind.index()];
                    entries.current.remove(key);
                    entries.on_disk.contains_key(key)
                })
                .collect()
        };
        for kind in stale {
            self.write(kind)?;
        }
        Ok(())
    }

    /// Keep only the entries of `hosted` partitions (after open: the others have no
    /// directory).
    pub(crate) fn retain(&self, hosted: impl Fn(&PartitionKey) -> bool) {
        for entries in self.entries().iter_mut() {
            entries.current.retain(|key, _| hosted(key));
        }
    }

    /// Write each file whose offsets changed since it was last written.
    pub(crate) fn write_if_changed(&self) -> io::Result<()> {
        for kind in KINDS {
            let changed = {
                let entries = &self.entries()[kind.index()];
                entries.current != entries.on_disk
            };
            if changed {
                self.write(kind)?;
            }
        }
        Ok(())
    }

    /// Write `kind`'s file with the current offsets.
    fn write(&self, kind: OffsetKind) -> io::Result<()> {
        let _io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let offsets = self.entries()[kind.index()].current.clone();
        checkpoint::write_offsets(&*self.fs, &self.dir, kind.file_name(), &offsets)?;
        self.entries()[kind.index()].on_disk = offsets;
        Ok(())
    }

    /// The offset the file holds for `key` (what an unclean open would read).
    #[cfg(test)]
    pub(crate) fn on_disk(&self, kind: OffsetKind, key: &PartitionKey) -> Option<i64> {
        self.entries()[kind.index()].on_disk.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::checkpoint::read_offsets;
    use crate::storage::fs::StdFileSystem;

    fn key(partition: i32) -> PartitionKey {
        ("t".to_string(), partition)
    }

    fn file(dir: &Path, kind: OffsetKind) -> BTreeMap<PartitionKey, i64> {
        read_offsets(&StdFileSystem, dir, kind.file_name()).unwrap()
    }

    fn open(dir: &Path) -> DirCheckpoints {
        DirCheckpoints::open(Arc::new(StdFileSystem), dir).unwrap()
    }

    #[test]
    fn a_raised_recovery_point_waits_for_the_next_write_and_a_lowered_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = open(dir.path());
        checkpoints.record_recovery_point(&key(0), 100).unwrap();
        checkpoints.record_recovery_point(&key(1), 7).unwrap();
        assert!(file(dir.path(), OffsetKind::RecoveryPoint).is_empty());
        checkpoints.write_if_changed().unwrap();
        let written = BTreeMap::from([(key(0), 100), (key(1), 7)]);
        assert_eq!(file(dir.path(), OffsetKind::RecoveryPoint), written);

        checkpoints.record_recovery_point(&key(0), 150).unwrap();
        assert_eq!(file(dir.path(), OffsetKind::RecoveryPoint), written);
        // A truncation to 40: the file must not claim 100 once `record` returns.
        checkpoints.record_recovery_point(&key(0), 40).unwrap();
        assert_eq!(
            file(dir.path(), OffsetKind::RecoveryPoint),
            BTreeMap::from([(key(0), 40), (key(1), 7)])
        );
        // Reopened, the file is what the logs start from.
        let reopened = open(dir.path());
        let recovery_point =
            reopened.load(OffsetKind::RecoveryPoint, &key(0), &dir.path().join("t-0"));
        assert_eq!(recovery_point.unwrap(), Some(40));
    }

    #[test]
    fn the_log_start_only_grows_and_a_full_truncation_writes_it_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = open(dir.path());
        checkpoints.record_log_start(&key(0), 10, false).unwrap();
        assert!(file(dir.path(), OffsetKind::LogStart).is_empty());
        checkpoints.record_log_start(&key(0), 500, true).unwrap();
        assert_eq!(
            file(dir.path(), OffsetKind::LogStart),
            BTreeMap::from([(key(0), 500)])
        );
        // A retention pass that computed an older start loses to the newer one.
        checkpoints.record_log_start(&key(0), 300, false).unwrap();
        checkpoints.write_if_changed().unwrap();
        assert_eq!(
            file(dir.path(), OffsetKind::LogStart),
            BTreeMap::from([(key(0), 500)])
        );
    }

    #[test]
    fn a_new_directory_never_inherits_the_offsets_of_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = open(dir.path());
        checkpoints.record_recovery_point(&key(0), 100).unwrap();
        checkpoints.record_log_start(&key(0), 50, true).unwrap();
        checkpoints.record_recovery_point(&key(1), 3).unwrap();
        checkpoints.write_if_changed().unwrap();
        // The directory is removed: the entries go with the next write...
        checkpoints.forget(&key(0));
        assert_eq!(
            checkpoints.on_disk(OffsetKind::RecoveryPoint, &key(0)),
            Some(100)
        );
        // ...or, if a directory of that name is created first, before it is.
        checkpoints.forget_now(&key(0)).unwrap();
        assert_eq!(
            file(dir.path(), OffsetKind::RecoveryPoint),
            BTreeMap::from([(key(1), 3)])
        );
        assert!(file(dir.path(), OffsetKind::LogStart).is_empty());
        // Nothing on disk for it: no write at all.
        std::fs::remove_file(dir.path().join(RECOVERY_POINT_OFFSET_FILE)).unwrap();
        checkpoints.forget_now(&key(0)).unwrap();
        assert!(!dir.path().join(RECOVERY_POINT_OFFSET_FILE).exists());
    }

    #[test]
    fn an_older_versions_per_partition_files_are_read_and_count_as_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let partition_dir = dir.path().join("t-0");
        std::fs::create_dir(&partition_dir).unwrap();
        std::fs::write(partition_dir.join(LEGACY_RECOVERY_POINT_FILE), "0\n80\n").unwrap();
        std::fs::write(partition_dir.join(LEGACY_LOG_START_OFFSET_FILE), "0\n20\n").unwrap();
        let checkpoints = open(dir.path());
        let load = |kind| checkpoints.load(kind, &key(0), &partition_dir).unwrap();
        assert_eq!(load(OffsetKind::RecoveryPoint), Some(80));
        assert_eq!(load(OffsetKind::LogStart), Some(20));
        // The old file claims 80: a truncation below it is written at once.
        checkpoints.record_recovery_point(&key(0), 60).unwrap();
        assert_eq!(
            file(dir.path(), OffsetKind::RecoveryPoint),
            BTreeMap::from([(key(0), 60)])
        );
        // Once the data directory's file has the partition, the old file is not read.
        std::fs::write(partition_dir.join(LEGACY_RECOVERY_POINT_FILE), "0\n999\n").unwrap();
        let reopened = open(dir.path());
        let recovery_point = reopened.load(OffsetKind::RecoveryPoint, &key(0), &partition_dir);
        assert_eq!(recovery_point.unwrap(), Some(60));
    }

    #[test]
    fn a_truncation_below_the_cleaner_offset_lowers_it_on_disk_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
        let checkpoints = DirCheckpoints::open(fs.clone(), dir.path()).unwrap();
        let key = ("t".to_string(), 0);
        checkpoints.record_cleaner_offset(&key, 40);
        assert_eq!(checkpoints.on_disk(OffsetKind::CleanerOffset, &key), None);
        checkpoints.write_if_changed().unwrap();
        assert_eq!(
            checkpoints.on_disk(OffsetKind::CleanerOffset, &key),
            Some(40)
        );
        // Above it: nothing to do. Below it: lowered and written now.
        checkpoints.lower_cleaner_offset(&key, 50).unwrap();
        assert_eq!(
            checkpoints.on_disk(OffsetKind::CleanerOffset, &key),
            Some(40)
        );
        checkpoints.lower_cleaner_offset(&key, 25).unwrap();
        assert_eq!(
            checkpoints.on_disk(OffsetKind::CleanerOffset, &key),
            Some(25)
        );
        let offsets = read_offsets(&*fs, dir.path(), CLEANER_OFFSET_FILE).unwrap();
        assert_eq!(offsets.get(&key), Some(&25));
        // The cleaner offset has no per-partition legacy file.
        let reopened = DirCheckpoints::open(fs, dir.path()).unwrap();
        let elsewhere = dir.path().join("t-0");
        let loaded = reopened
            .load(OffsetKind::CleanerOffset, &key, &elsewhere)
            .unwrap();
        assert_eq!(loaded, Some(25));
    }
}
