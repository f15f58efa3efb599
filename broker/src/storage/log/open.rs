//! Opening a partition's log: recovery, the leader-epoch checkpoint reconciled with what
//! recovery found, and a flush of what recovery changed.
//!
//! # Leader epochs
//! On open the checkpoint is reconciled with what recovery found: entries at or past the
//! log end offset are dropped (the crash lost their batches), entries below the log start
//! offset collapse into it, and the batches of every segment recovery scanned are checked
//! against the cache (epochs the checkpoint lacks at the end of the log are learnt). A
//! checkpoint that is missing, unreadable, does not cover the log from its first record
//! (every batch carries an epoch) or is contradicted by the scanned batches is **rebuilt
//! from every batch header** (`RecoveryReport::epoch_cache_rebuilt`). A new, empty log
//! writes no checkpoint until it has an epoch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::durability::{Durable, SyncState};
use super::{lock, LogState, PartitionLog, Writes};
use crate::metrics as m;
use crate::storage::checkpoint::{self, HIGH_WATERMARK_FILE};
use crate::storage::dir_checkpoints::{DirCheckpoints, OffsetKind, PartitionKey};
use crate::storage::dir_health::DirHealth;
use crate::storage::epoch_cache::{self, EpochCache};
use crate::storage::fs::FileSystem;
use crate::storage::recovery::{self, Recovered, RecoveryReport, ShutdownState};
use crate::storage::segment::Segment;
use crate::storage::{LogConfig, StorageError};

impl PartitionLog {
    /// Open (or create) the log of partition `key` in `dir`, recovering it if `shutdown`
    /// was unclean; its recovery point and log start offset are recorded in `checkpoints`.
    /// The recovery point moves to the log end offset in memory only: the caller writes
    /// `checkpoints` once for all the logs it opens.
    pub(crate) fn open(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        (checkpoints, key): (Arc<DirCheckpoints>, PartitionKey),
        health: Arc<DirHealth>,
        config: LogConfig,
        shutdown: ShutdownState,
    ) -> Result<PartitionLog, StorageError> {
        fs.create_dir_all(&dir)?;
        let name = format!("{}-{}", key.0, key.1);
        let recovery_point = checkpoints
            .load(OffsetKind::RecoveryPoint, &key, &dir)?
            .unwrap_or(0);
        let log_start_checkpoint = checkpoints.load(OffsetKind::LogStart, &key, &dir)?;
        let mut recovered = recovery::recover(
            &*fs,
            &dir,
            &config,
            shutdown,
            (recovery_point, log_start_checkpoint),
        )?;
        let (epochs, epochs_changed) = open_epoch_cache(&*fs, &dir, &mut recovered)?;
        let high_watermark = checkpoint::read_offset(&*fs, &dir, HIGH_WATERMARK_FILE)?;
        let report = recovered.report.clone();
        if report.removed_data() {
            // The one line per partition that lost a tail: after a crash, bytes past the
            // recovery point that never reached the disk whole.
            metrics::counter!(m::LOG_RECOVERY_TRUNCATED_BYTES_TOTAL)
                .increment(report.bytes_removed());
            tracing::info!(
                partition = %name,
                ?shutdown,
                bytes_truncated = report.bytes_removed(),
                segments_dropped = report.segments_dropped,
                recovery_point,
                log_start_offset = report.log_start_offset,
                log_end_offset = report.log_end_offset,
                leader_epoch = ?epochs.latest_epoch(),
                corruption = report.corruption.as_deref().unwrap_or("none"),
                "recovery truncated the partition log"
            );
        } else if report.segments_scanned > 0
            || report.indexes_rebuilt > 0
            || report.epoch_cache_rebuilt
        {
            tracing::debug!(
                partition = %name,
                ?shutdown,
                log_start_offset = report.log_start_offset,
                log_end_offset = report.log_end_offset,
                segments_scanned = report.segments_scanned,
                indexes_rebuilt = report.indexes_rebuilt,
                epoch_cache_rebuilt = report.epoch_cache_rebuilt,
                "recovered partition log"
            );
        } else {
            tracing::debug!(partition = %name, log_end_offset = report.log_end_offset, "opened partition log");
        }
        let log_end_offset = recovered.active.next_offset();
        // Where the last cleaning pass ended, never past what recovery kept.
        checkpoints.lower_cleaner_offset(&key, log_end_offset)?;
        let cleaned_to = checkpoints.load(OffsetKind::CleanerOffset, &key, &dir)?;
        let log = PartitionLog {
            name,
            dir,
            fs,
            health,
            config: std::sync::RwLock::new(Arc::new(config)),
            state: Mutex::new(LogState {
                sealed: recovered.sealed,
                active: recovered.active,
                log_start_offset: recovered.log_start_offset,
                unflushed: Vec::new(),
                epochs,
                epochs_unpersisted: false,
                writes: Writes::Open,
            }),
            sync: Mutex::new(SyncState { recovery_point }),
            checkpoints,
            key,
            high_watermark: Mutex::new(high_watermark),
            first_dirty_offset: Mutex::new(cleaned_to.map(super::clean::FirstDirty::restored)),
            cleaner_status: Default::default(),
            end_offset: watch::Sender::new(log_end_offset),
            // What recovery kept is durable once the flush below has run.
            durable: watch::Sender::new(Durable::new(log_end_offset)),
            recovery_report: report,
            room: Default::default(),
        };
        // Make what recovery changed (truncations, rebuilt indexes) durable and move the
        // recovery point to the end, so the next crash does not scan all of it again. A log
        // whose recovery point is already its end and that recovery did not change needs
        // nothing: everything in it was flushed before the crash (a scan that found it whole
        // rewrote its indexes with the same entries). So a restart after `kill -9` costs no
        // fsync for the many idle partitions of a big broker.
        if recovery_point != log_end_offset || report_changed_files(&log.recovery_report) {
            log.flush_everything()?;
        }
        // After the flush: the checkpoint may now describe the recovered batches.
        if epochs_changed {
            let state = lock(&log.state);
            epoch_cache::persist(&*log.fs, &log.dir, &state.epochs)?;
        }
        Ok(log)
    }
}

/// Load the leader-epoch cache and reconcile it with the recovered segments (module
/// documentation, "Leader epochs"). Returns the cache and whether it differs from the
/// checkpoint on disk; sets `epoch_cache_rebuilt` in the report.
fn open_epoch_cache(
    fs: &dyn FileSystem,
    dir: &Path,
    recovered: &mut Recovered,
) -> Result<(EpochCache, bool), StorageError> {
    let log_start_offset = recovered.log_start_offset;
    let log_end_offset = recovered.active.next_offset();
    let segments: Vec<&Segment> = recovered
        .sealed
        .iter()
        .map(|segment| &**segment)
        .chain(std::iter::once(&*recovered.active))
        .collect();
    let loaded = epoch_cache::load(fs, dir)?;
    if let Some(loaded) = &loaded {
        let mut epochs = loaded.clone();
        epochs.truncate_from_end(log_end_offset);
        epochs.truncate_from_start(log_start_offset);
        let scanned = segments
            .iter()
            .filter(|segment| recovered.scanned.contains(&segment.base_offset()));
        // Every batch has an epoch, so the cache of a non-empty log covers it from its first
        // batch (in a compacted log that may start past the log start offset: a follower
        // copying a compacted leader learns the epoch from the first batch it gets).
        let first_start = epochs.entries().first().map(|entry| entry.start_offset);
        let uncovered = match first_start {
            _ if log_start_offset >= log_end_offset => false,
            None => true,
            Some(start) => {
                start > log_start_offset && start > first_batch_offset(&segments, log_start_offset)?
            }
        };
        let mut verdict = if uncovered {
            Err(format!(
                "it starts at {first_start:?} but the log holds records from {log_start_offset}"
            ))
        } else {
            Ok(())
        };
        for segment in scanned {
            if verdict.is_err() {
                break;
            }
            verdict = check_epochs(&mut epochs, segment, log_start_offset)?;
        }
        match verdict {
            Ok(()) => {
                let changed = epochs != *loaded;
                return Ok((epochs, changed));
            }
            Err(why) => {
                tracing::warn!(dir = %dir.display(), %why, "the leader-epoch checkpoint does not match the log; rebuilding it from the batches");
            }
        }
    }
    let mut epochs = EpochCache::default();
    for segment in &segments {
        for (run, _) in segment.epoch_runs()? {
            // Kafka's rule when reading epochs off batches: only ever move forward.
            if epochs
                .latest_epoch()
                .is_none_or(|latest| run.epoch > latest)
            {
                if let Err(regression) = epochs.assign(run.epoch, run.start_offset) {
                    unreachable!(
                        "a newer epoch at a later offset is always accepted: {regression}"
                    );
                }
            } else {
                tracing::warn!(dir = %dir.display(), epoch = run.epoch, offset = run.start_offset, "ignoring a batch whose leader epoch goes back");
            }
        }
    }
    epochs.truncate_from_start(log_start_offset);
    // A new, empty log has no checkpoint and needs none (no fsyncs per created partition).
    let existed = fs.exists(&dir.join(epoch_cache::LEADER_EPOCH_FILE))?;
    let rebuilt = existed || log_start_offset < log_end_offset;
    recovered.report.epoch_cache_rebuilt = rebuilt;
    Ok((epochs, rebuilt))
}

/// The base offset of the first batch holding offsets at or past `log_start_offset`
/// (below the log end offset), or the log start offset if that batch begins before it.
fn first_batch_offset(segments: &[&Segment], log_start_offset: i64) -> Result<i64, StorageError> {
    for segment in segments {
        if segment.next_offset() <= log_start_offset {
            continue;
        }
        let position = segment.find_position(log_start_offset.max(segment.base_offset()))?;
        if position < segment.size_bytes() {
            return Ok(segment
                .read_header(position)?
                .base_offset
                .max(log_start_offset));
        }
    }
    Ok(log_start_offset)
}

/// Check that the batches of a scanned `segment` carry the epochs `epochs` says they do;
/// epochs past the cache's latest, at the end of the log, are added (their checkpoint
/// write did not survive). `Ok(Err(why))` if they contradict it.
fn check_epochs(
    epochs: &mut EpochCache,
    segment: &Segment,
    log_start_offset: i64,
) -> Result<Result<(), String>, StorageError> {
    for (run, run_end) in segment.epoch_runs()? {
        if run_end <= log_start_offset {
            continue;
        }
        let start = run.start_offset.max(log_start_offset);
        if epochs
            .entry_for_offset(start)
            .is_none_or(|owner| owner.epoch != run.epoch)
        {
            let newer = epochs
                .latest()
                .is_none_or(|latest| run.epoch > latest.epoch && start >= latest.start_offset);
            if !newer {
                return Ok(Err(format!(
                    "the batches from offset {start} have epoch {}, the checkpoint says {:?}",
                    run.epoch,
                    epochs.entry_for_offset(start)
                )));
            }
            if let Err(regression) = epochs.assign(run.epoch, start) {
                return Ok(Err(regression.0));
            }
        }
        if let Some(entry) = epochs
            .entries()
            .iter()
            .find(|entry| entry.start_offset > start && entry.start_offset < run_end)
        {
            return Ok(Err(format!(
                "the checkpoint has epoch {} start at offset {}, inside a run of epoch {} batches",
                entry.epoch, entry.start_offset, run.epoch
            )));
        }
    }
    Ok(Ok(()))
}

/// Whether recovery rewrote anything that a flush must make durable.
fn report_changed_files(report: &RecoveryReport) -> bool {
    report.indexes_rebuilt > 0 || report.segments_dropped > 0 || report.bytes_truncated > 0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::fs::FaultInjectingFileSystem;
    use crate::storage::testing::{batch, open_log, std_fs, test_config};

    #[test]
    fn an_unclean_open_fsyncs_only_logs_with_unflushed_data() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultInjectingFileSystem::new(std_fs()));
        let as_fs: Arc<dyn FileSystem> = fs.clone();
        let log = open_log(&as_fs, dir.path(), &test_config(), ShutdownState::Clean);
        log.append(batch(3, 100, 10, 1), 0, 0).unwrap();
        log.flush().unwrap();
        log.dir_checkpoints().write_if_changed().unwrap();
        drop(log); // a crash after the flush and the checkpoint

        let before = fs.file_sync_count();
        let log = open_log(&as_fs, dir.path(), &test_config(), ShutdownState::Unclean);
        assert_eq!(log.recovery_report().segments_scanned, 1);
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(
            fs.file_sync_count(),
            before,
            "a log flushed up to its end needs no fsync after a crash"
        );

        log.append(batch(2, 200, 10, 2), 0, 0).unwrap();
        drop(log); // a crash with two records past the recovery point
        let before = fs.file_sync_count();
        let log = open_log(&as_fs, dir.path(), &test_config(), ShutdownState::Unclean);
        assert_eq!(log.log_end_offset(), 5);
        assert!(
            fs.file_sync_count() > before,
            "records past the recovery point are flushed before the log is used"
        );
        // As `LogManager::open` does once for all the logs it opened.
        log.dir_checkpoints().write_if_changed().unwrap();
        drop(log);
        let before = fs.file_sync_count();
        open_log(&as_fs, dir.path(), &test_config(), ShutdownState::Unclean);
        assert_eq!(fs.file_sync_count(), before, "and only once");
    }
}
