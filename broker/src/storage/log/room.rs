//! Room on the disk for an append: a full disk refuses the append before anything is
//! written (KAFKA_STORAGE_ERROR through `StorageError::Io` of kind `StorageFull`), so the
//! log is not poisoned and takes writes again as soon as space is freed. A write that
//! still runs out of space (another writer took the room in between) poisons the log as
//! any failed write does.
//!
//! The file system is asked (statvfs) at most once a second while more than
//! [`ASK_EVERY_APPEND_BELOW`] is free, and at every append below that.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::PartitionLog;
use crate::storage::StorageError;

/// Room kept free beyond the batch itself, for the files an append may add (a rolled
/// segment's indexes, checkpoints) and for the rest of the broker.
pub(super) const RESERVE_BYTES: u64 = 4 << 20;
/// Below this much free space every append asks the file system again.
const ASK_EVERY_APPEND_BELOW: u64 = 1 << 30;
/// How long a reading above that stands.
const READING_LIFETIME: Duration = Duration::from_secs(1);

/// The last free-space reading of a log's file system.
#[derive(Debug, Default)]
pub(super) struct Room {
    last: Mutex<Option<(Instant, u64)>>,
}

impl PartitionLog {
    /// Refuse an append of `bytes` when the file system cannot hold it and the reserve.
    pub(super) fn check_room(&self, bytes: usize) -> Result<(), StorageError> {
        let needed = bytes as u64 + RESERVE_BYTES;
        {
            let last = self.room.last.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, available)) = *last {
                if available >= ASK_EVERY_APPEND_BELOW && at.elapsed() < READING_LIFETIME {
                    return Ok(());
                }
            }
        }
        let Some(available) = self.fs.available_bytes(&self.dir)? else {
            return Ok(());
        };
        *self.room.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), available));
        if available < needed {
            return Err(StorageError::Io(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "{}: {available} bytes free on the data directory's file system, an append of {bytes} needs {needed} (with a {RESERVE_BYTES}-byte reserve); refused, nothing written: writes resume once space is freed",
                    self.name
                ),
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::storage::fs::{FaultInjectingFileSystem, FileSystem};
    use crate::storage::testing::{batch, headers, open_log, std_fs, test_config};
    use crate::storage::{ShutdownState, StorageError};

    #[test]
    fn a_full_disk_refuses_appends_without_poisoning_and_they_resume_once_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let faulty = Arc::new(FaultInjectingFileSystem::new(std_fs()));
        let fs: Arc<dyn FileSystem> = faulty.clone();
        let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
        // Under 1 GiB free: every append asks.
        faulty.set_available_bytes(Some(512 << 20));
        log.append(batch(2, 0, 1, 0), 0, 0).unwrap();
        faulty.set_available_bytes(Some(super::RESERVE_BYTES));
        for _ in 0..3 {
            let error = log.append(batch(1, 0, 1, 1), 0, 0).unwrap_err();
            assert!(
                matches!(&error, StorageError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull),
                "{error}"
            );
        }
        assert_eq!(
            log.log_end_offset(),
            2,
            "nothing written by the refused appends"
        );
        faulty.set_available_bytes(Some(512 << 20));
        let info = log.append(batch(1, 0, 1, 1), 0, 0).unwrap();
        assert_eq!(
            info.base_offset, 2,
            "the log takes writes again, right after the last"
        );
        let offsets: Vec<i64> = headers(&log.read(0, usize::MAX).unwrap())
            .iter()
            .map(|h| h.base_offset)
            .collect();
        assert_eq!(offsets, vec![0, 2]);
    }
}
