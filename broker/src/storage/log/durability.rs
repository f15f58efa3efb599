//! Durability of a partition's log: flushes, group-commit fsync, the durable offset and
//! its waiters, poisoning, the recovery point.
//!
//! - `Durability::Replicated`: appends stay in the page cache. The log is flushed (data and
//!   indexes, then the recovery point recorded) when a segment rolls and on shutdown.
//! - `Durability::Fsync`: group commit. [`PartitionLog::wait_durable`] resolves once an fsync
//!   that began after the offset was appended has completed. The first waiter that finds no
//!   fsync running becomes the syncer: it notes the log end offset and clones the file
//!   handles under the state lock, releases it, fsyncs, publishes the new durable offset on a
//!   watch channel and wakes the others. Appends go on during the fsync; the next syncer
//!   covers all of them with one fsync. The fsync runs on the waiting task's thread (no
//!   dedicated thread, no `spawn_blocking`), which keeps it deterministic under simulation.
//! - Any failed fsync or write **poisons** the log: appends and flushes fail with
//!   `StorageError::Poisoned` from then on and every waiter gets the error. The kernel may
//!   have dropped the dirty pages, so retrying could report success for lost data; only a
//!   restart (and recovery) learns what the disk holds. Reads still work.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::{lock, LogState, PartitionLog, Writes};
use crate::metrics as m;
use crate::storage::fs::StorageFile;
use crate::storage::{Durability, StorageError};

#[derive(Debug)]
pub(super) struct SyncState {
    /// Offset below which log and indexes are flushed, as last recorded in the data
    /// directory's checkpoints.
    pub(super) recovery_point: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Durable {
    /// Every offset below this is fsynced.
    pub(super) offset: i64,
    refusal: Option<String>,
    /// Truncations so far, and the most recent ones, so that a durability waiter whose
    /// offset was truncated away learns it even if new records reached that offset since.
    truncations: u64,
    recent_truncations: VecDeque<Truncation>,
}

/// Most truncations a durability waiter can look back over; one that slept through more
/// is answered as if its offset was truncated (it may have been).
pub(super) const RECENT_TRUNCATIONS_MAX: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Truncation {
    /// Its number: the first truncation is 1.
    number: u64,
    /// The first offset it removed.
    removed_from: i64,
}

impl Durable {
    pub(super) fn new(offset: i64) -> Durable {
        Durable {
            offset,
            refusal: None,
            truncations: 0,
            recent_truncations: VecDeque::new(),
        }
    }

    /// Whether a truncation after the first `since` ones removed `offset`.
    pub(super) fn truncated_since(&self, since: u64, offset: i64) -> bool {
        if self.truncations == since {
            return false;
        }
        let oldest_known = self.truncations + 1 - self.recent_truncations.len() as u64;
        since + 1 < oldest_known
            || self
                .recent_truncations
                .iter()
                .any(|truncation| truncation.number > since && truncation.removed_from <= offset)
    }

    /// How many truncations the log has had (the cleaner checks none ran during its pass).
    pub(super) fn truncation_count(&self) -> u64 {
        self.truncations
    }

    /// Every offset from `removed_from` on was removed; the log now ends at `log_end_offset`.
    pub(super) fn note_truncation(&mut self, removed_from: i64, log_end_offset: i64) {
        self.truncations += 1;
        if self.recent_truncations.len() == RECENT_TRUNCATIONS_MAX {
            self.recent_truncations.pop_front();
        }
        self.recent_truncations.push_back(Truncation {
            number: self.truncations,
            removed_from,
        });
        self.offset = self.offset.min(log_end_offset);
    }
}

impl PartitionLog {
    /// Refuse writes from now on; wake every durability waiter with the error.
    pub(super) fn poison(&self, state: &mut LogState, what: String) -> StorageError {
        let reason = format!(
            "{what}; the log of {} is poisoned and refuses writes until the broker restarts and recovers it",
            self.name
        );
        tracing::error!(partition = %self.name, %reason, "poisoning partition log");
        let reason = match &state.writes {
            // The first failure is the one to report.
            Writes::Poisoned(first) => first.clone(),
            // The data directory failed. Not for a closed log: one being deleted loses its
            // directory under a late flush or cleaning pass, which says nothing of the disk.
            Writes::Open => {
                self.health.report(&reason);
                reason
            }
            Writes::Closed(_) => reason,
        };
        state.writes = Writes::Poisoned(reason.clone());
        self.durable
            .send_modify(|durable| durable.refusal = Some(reason.clone()));
        StorageError::Poisoned(reason)
    }

    /// Group commit (see the module documentation). With `Durability::Replicated` this
    /// resolves at once.
    ///
    /// If a truncation removes `offset` while waiting, the answer is `OffsetOutOfRange`, even
    /// if new records have reached that offset since: those are not the records waited for.
    pub async fn wait_durable(&self, offset: i64) -> Result<(), StorageError> {
        let mut durable = self.durable.subscribe();
        let truncations = durable.borrow().truncations;
        loop {
            {
                let current = durable.borrow_and_update();
                if let Some(reason) = &current.refusal {
                    return Err(StorageError::Poisoned(reason.clone()));
                }
                if current.truncated_since(truncations, offset) {
                    drop(current);
                    let (log_start_offset, log_end_offset) = self.offsets();
                    return Err(StorageError::OffsetOutOfRange {
                        requested: offset,
                        log_start_offset,
                        log_end_offset,
                    });
                }
                if self.config().durability == Durability::Replicated || current.offset > offset {
                    return Ok(());
                }
            }
            let (log_start_offset, log_end_offset) = self.offsets();
            if offset >= log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset,
                    log_end_offset,
                });
            }
            // The syncing below has no await point, so a cancelled waiter never leaves the
            // sync lock taken.
            let synced = match self.sync.try_lock() {
                Ok(_guard) => Some(self.sync_log_files()),
                Err(std::sync::TryLockError::WouldBlock) => None,
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    panic!("the sync lock was poisoned by a panic")
                }
            };
            match synced {
                Some(result) => {
                    self.notify_durable_waiters();
                    result?;
                }
                None => {
                    // Someone else is syncing; they notify after releasing the lock.
                    if durable.changed().await.is_err() {
                        unreachable!("the log owns the durable watch's sender");
                    }
                }
            }
        }
    }

    /// One group-commit fsync of every log file with unsynced data. The caller holds the
    /// sync lock.
    fn sync_log_files(&self) -> Result<(), StorageError> {
        let (log_end_offset, files) = {
            let state = lock(&self.state);
            state.check_not_poisoned()?;
            let mut files: Vec<Arc<dyn StorageFile>> = state
                .unflushed
                .iter()
                .map(|segment| Arc::clone(&segment.log))
                .collect();
            files.push(Arc::clone(state.active.log()));
            (state.log_end_offset(), files)
        };
        if let Err((file, error)) = sync_segment_data(files.iter()) {
            let mut state = lock(&self.state);
            return Err(self.poison(&mut state, format!("fsync of {file:?} failed: {error}")));
        }
        self.publish_durable(log_end_offset);
        Ok(())
    }

    fn publish_durable(&self, offset: i64) {
        self.durable
            .send_modify(|durable| durable.offset = durable.offset.max(offset));
    }

    /// Wake every durability waiter to look again (after the sync lock is released).
    pub(super) fn notify_durable_waiters(&self) {
        self.durable.send_modify(|_| {});
    }

    /// Offset below which data is known durable: the last fsync's log end offset
    /// (`Fsync`), or the log end offset (`Replicated`).
    pub fn durable_offset(&self) -> i64 {
        match self.config().durability {
            Durability::Fsync => self.durable.borrow().offset,
            Durability::Replicated => self.log_end_offset(),
        }
    }

    /// A future that resolves at the next append or truncation (a change of the log end
    /// offset), whatever the durability: what a follower fetching from this log waits for.
    /// Armed when this is called, as [`durable_end_changed`](Self::durable_end_changed).
    pub fn log_end_changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.end_offset.subscribe();
        rx.borrow_and_update();
        async move {
            // An error means the log was dropped (topic deleted): wake up and re-read.
            let _ = rx.changed().await;
        }
    }

    /// A future that resolves at the next change of what consumers may see: an append, or
    /// with `Durability::Fsync` a completed fsync. It is armed when this is called, so a
    /// caller that calls it *before* reading cannot miss a change that lands in between.
    pub fn durable_end_changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        enum Armed {
            End(watch::Receiver<i64>),
            Durable(watch::Receiver<Durable>),
        }
        let mut armed = match self.config().durability {
            Durability::Replicated => Armed::End(self.end_offset.subscribe()),
            Durability::Fsync => Armed::Durable(self.durable.subscribe()),
        };
        match &mut armed {
            Armed::End(rx) => {
                rx.borrow_and_update();
            }
            Armed::Durable(rx) => {
                rx.borrow_and_update();
            }
        }
        async move {
            // An error means the log was dropped (topic deleted): wake up and re-read.
            let _ = match &mut armed {
                Armed::End(rx) => rx.changed().await,
                Armed::Durable(rx) => rx.changed().await,
            };
        }
    }

    /// Fsync every unflushed segment (log and indexes) and move the recovery point to the
    /// log end offset (recorded for the data directory's next checkpoint write). A failure
    /// poisons the log.
    pub fn flush(&self) -> Result<(), StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            self.flush_locked(&mut sync)
        };
        self.notify_durable_waiters();
        result
    }

    pub(super) fn flush_everything(&self) -> Result<(), StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            // Force the recovery point to be recorded.
            sync.recovery_point = -1;
            self.flush_locked(&mut sync)
        };
        self.notify_durable_waiters();
        result
    }

    fn flush_locked(&self, sync: &mut SyncState) -> Result<(), StorageError> {
        let (log_end_offset, files) = {
            let mut state = lock(&self.state);
            state.check_not_poisoned()?;
            if state.unflushed.is_empty() && sync.recovery_point == state.log_end_offset() {
                return Ok(());
            }
            if let Err(error) = state.active.update_time_index() {
                return Err(self.poison(
                    &mut state,
                    format!("updating the time index failed: {error}"),
                ));
            }
            let mut files = std::mem::take(&mut state.unflushed);
            files.push(state.active.files());
            (state.log_end_offset(), files)
        };
        let synced = sync_segment_data(
            files
                .iter()
                .flat_map(|segment| [&segment.log, &segment.offset_index, &segment.time_index]),
        );
        if let Err((file, error)) = synced {
            let mut state = lock(&self.state);
            return Err(self.poison(&mut state, format!("fsync of {file:?} failed: {error}")));
        }
        self.publish_durable(log_end_offset);
        if let Err(error) = self
            .checkpoints
            .record_recovery_point(&self.key, log_end_offset)
        {
            let mut state = lock(&self.state);
            return Err(self.poison(
                &mut state,
                format!("writing the recovery point checkpoint failed: {error}"),
            ));
        }
        sync.recovery_point = log_end_offset;
        Ok(())
    }
}

/// Fsync `files` (segment logs, and for a flush their indexes) as one flush of a
/// partition's segment data, counted in `sluice_log_flushes_total` and timed in
/// `sluice_log_flush_time_seconds`, failed or not (Kafka's `LogFlushRateAndTimeMs`, which
/// also covers the indexes). Checkpoint, directory and truncation fsyncs are not flushes.
/// Stops at the first failure and returns the file that failed.
fn sync_segment_data<'a>(
    files: impl IntoIterator<Item = &'a Arc<dyn StorageFile>>,
) -> Result<(), (&'a Arc<dyn StorageFile>, std::io::Error)> {
    let started = Instant::now();
    let result = files
        .into_iter()
        .try_for_each(|file| file.sync().map_err(|error| (file, error)));
    metrics::counter!(m::LOG_FLUSHES_TOTAL).increment(1);
    metrics::histogram!(m::LOG_FLUSH_TIME_SECONDS).record(started.elapsed().as_secs_f64());
    result
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::storage::fs::{FaultInjectingFileSystem, FileSystem};
    use crate::storage::testing::{batch, headers, open_log, std_fs, test_config};
    use crate::storage::{LogConfig, ShutdownState};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// A fresh log in `dir` on a file system whose syncs the test can make fail.
    fn log_with_faulty_syncs(
        dir: &Path,
        durability: Durability,
    ) -> (PartitionLog, Arc<FaultInjectingFileSystem>) {
        let faulty = Arc::new(FaultInjectingFileSystem::new(std_fs()));
        let fs: Arc<dyn FileSystem> = faulty.clone();
        let config = LogConfig {
            durability,
            ..test_config()
        };
        (open_log(&fs, dir, &config, ShutdownState::Clean), faulty)
    }

    #[test]
    fn replicated_durability_resolves_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        log.append(batch(2, 0, 1, 0), 0, 0).unwrap();
        assert_eq!(log.durable_offset(), 2);
        runtime().block_on(log.wait_durable(1)).unwrap();
    }

    #[test]
    fn group_commit_covers_every_waiter_with_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (log, faulty) = log_with_faulty_syncs(dir.path(), Durability::Fsync);
        let offsets: Vec<i64> = (0..50)
            .map(|i| {
                log.append(batch(1, i, 1, i as u64), 0, 0)
                    .unwrap()
                    .last_offset
            })
            .collect();
        assert_eq!(log.durable_offset(), 0);
        let before = faulty.file_sync_count();
        let results = runtime().block_on(futures::future::join_all(
            offsets.iter().map(|offset| log.wait_durable(*offset)),
        ));
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(
            faulty.file_sync_count() - before,
            1,
            "one fsync of the active log covers all 50 waiters"
        );
        assert_eq!(log.durable_offset(), 50);
        // Already durable: no further fsync.
        runtime().block_on(log.wait_durable(10)).unwrap();
        assert_eq!(faulty.file_sync_count() - before, 1);
    }

    #[test]
    fn group_commit_with_concurrent_appenders_makes_everything_durable() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durability: Durability::Fsync,
            segment_bytes_max: 2000,
            ..test_config()
        };
        let log = Arc::new(open_log(
            &std_fs(),
            dir.path(),
            &config,
            ShutdownState::Clean,
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..4)
                .map(|task| {
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        for i in 0..25 {
                            let info = log
                                .append(batch(1, i, 8, task * 100 + i as u64), 0, 0)
                                .unwrap();
                            log.wait_durable(info.last_offset).await.unwrap();
                            assert!(log.durable_offset() > info.last_offset);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        assert_eq!(log.log_end_offset(), 100);
        assert_eq!(log.durable_offset(), 100);
        assert!(log.segment_count() > 1);
    }

    #[test]
    fn a_failed_fsync_poisons_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (log, faulty) = log_with_faulty_syncs(dir.path(), Durability::Fsync);
        log.append(batch(2, 0, 1, 0), 0, 0).unwrap();
        faulty.start_failing_syncs();
        let results = runtime().block_on(futures::future::join(
            log.wait_durable(0),
            log.wait_durable(1),
        ));
        for result in [results.0, results.1] {
            assert!(matches!(result, Err(StorageError::Poisoned(why)) if why.contains("fsync")));
        }
        faulty.stop_failing_syncs();
        // Poisoned for good: appends, flushes and waits all refuse, with a message that says so.
        let error = log.append(batch(1, 0, 1, 1), 0, 0).unwrap_err();
        assert!(
            matches!(&error, StorageError::Poisoned(why) if why.contains("fsync") && why.contains("poisoned")),
            "{error}"
        );
        assert!(matches!(log.flush(), Err(StorageError::Poisoned(_))));
        assert!(matches!(
            runtime().block_on(log.wait_durable(1)),
            Err(StorageError::Poisoned(_))
        ));
        assert_eq!(log.durable_offset(), 0);
        // Reads still work.
        assert_eq!(headers(&log.read(0, usize::MAX).unwrap()).len(), 1);
        // And the data directory is marked failed, with the first error (the broker halts).
        let failure = log
            .health
            .failure()
            .expect("the directory is marked failed");
        assert!(failure.contains("fsync"), "{failure}");
    }

    #[test]
    fn a_failed_flush_of_a_closed_log_does_not_fail_the_directory() {
        // A log being deleted is closed first; its directory may vanish under a late flush.
        let dir = tempfile::tempdir().unwrap();
        let (log, faulty) = log_with_faulty_syncs(dir.path(), Durability::Replicated);
        log.append(batch(2, 0, 1, 0), 0, 0).unwrap();
        log.close_for_writes("its topic was deleted");
        faulty.start_failing_syncs();
        assert!(matches!(log.flush(), Err(StorageError::Poisoned(_))));
        assert_eq!(log.health.failure(), None);
    }

    #[test]
    fn a_failed_flush_poisons_a_replicated_log() {
        let dir = tempfile::tempdir().unwrap();
        let (log, faulty) = log_with_faulty_syncs(dir.path(), Durability::Replicated);
        log.append(batch(2, 0, 1, 0), 0, 0).unwrap();
        faulty.start_failing_syncs();
        assert!(matches!(log.flush(), Err(StorageError::Poisoned(_))));
        faulty.stop_failing_syncs();
        assert!(matches!(
            log.append(batch(1, 0, 1, 1), 0, 0),
            Err(StorageError::Poisoned(_))
        ));
        assert!(matches!(
            runtime().block_on(log.wait_durable(0)),
            Err(StorageError::Poisoned(_))
        ));
    }

    #[test]
    fn waiting_for_an_offset_not_yet_written_is_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durability: Durability::Fsync,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        log.append(batch(2, 0, 1, 0), 0, 0).unwrap();
        assert!(matches!(
            runtime().block_on(log.wait_durable(2)),
            Err(StorageError::OffsetOutOfRange { requested: 2, .. })
        ));
    }
}
