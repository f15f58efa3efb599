//! Tests of what replication needs from a partition log: leader epochs, follower appends,
//! truncation (and crashes during and after it), the high-watermark checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;

use super::durability::RECENT_TRUNCATIONS_MAX;
use super::*;
use crate::storage::checkpoint::{self, HIGH_WATERMARK_FILE};
use crate::storage::epoch_cache::{self, EpochEndOffset, EpochEntry};
use crate::storage::testing::{
    batch, headers, open_log, segment_logs, stamped, std_fs, test_config, CrashFileSystem,
};
use crate::storage::{Durability, ShutdownState};

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry {
            epoch,
            start_offset,
        })
        .collect()
}

/// Append one batch of `records` records per `(epoch, records)` as leader; returns the
/// batches as stored.
fn append_as_leader(log: &PartitionLog, appends: &[(i32, i32)]) -> Vec<Vec<u8>> {
    appends
        .iter()
        .enumerate()
        .map(|(i, &(epoch, records))| {
            let records_batch = batch(records, 1000 + i as i64, 30, i as u64);
            let info = log.append(records_batch.clone(), epoch, 0).unwrap();
            stamped(&records_batch, info.base_offset, epoch)
        })
        .collect()
}

/// Every epoch change along the log's batches, the way a rebuild reads them.
fn epochs_of_batches(log: &PartitionLog) -> Vec<EpochEntry> {
    let mut runs: Vec<EpochEntry> = Vec::new();
    let start = log.log_start_offset();
    for header in headers(&log.read(start, usize::MAX).unwrap()) {
        if runs
            .last()
            .is_none_or(|run| run.epoch != header.partition_leader_epoch)
        {
            runs.push(EpochEntry {
                epoch: header.partition_leader_epoch,
                start_offset: header.base_offset,
            });
        }
    }
    runs
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes_max: 400,
        ..test_config()
    }
}

fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn leader_append_records_each_new_epoch_at_its_first_offset() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    assert_eq!(log.latest_epoch(), None);
    // A new log needs no checkpoint yet (creating a partition costs no extra fsync).
    assert!(!dir.path().join("leader-epoch-checkpoint").exists());
    assert!(!log.recovery_report().epoch_cache_rebuilt);
    // Batches of 2 records: epoch 0 at 0..4, epoch 3 at 4..8, epoch 4 at 8..10.
    append_as_leader(&log, &[(0, 2), (0, 2), (3, 2), (3, 2), (4, 2)]);
    let expected = entries(&[(0, 0), (3, 4), (4, 8)]);
    assert_eq!(log.epoch_entries(), expected);
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap(),
        "0\n3\n0 0\n3 4\n4 8\n"
    );
    // OffsetsForLeaderEpoch against the log.
    let end = |epoch, end_offset| Some(EpochEndOffset { epoch, end_offset });
    assert_eq!(log.end_offset_for_epoch(4), end(4, 10));
    assert_eq!(log.end_offset_for_epoch(3), end(3, 8));
    assert_eq!(log.end_offset_for_epoch(2), end(0, 4));
    assert_eq!(log.end_offset_for_epoch(5), None);

    // The cache survives a clean and an unclean reopen without a rebuild.
    for shutdown in [ShutdownState::Clean, ShutdownState::Unclean] {
        drop(log_reopened(&fs, dir.path(), shutdown, &expected));
    }
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    assert!(!log.recovery_report().epoch_cache_rebuilt);
}

fn log_reopened(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    shutdown: ShutdownState,
    expected: &[EpochEntry],
) -> PartitionLog {
    let log = open_log(fs, dir, &test_config(), shutdown);
    assert_eq!(log.epoch_entries(), expected, "{shutdown:?}");
    assert!(!log.recovery_report().epoch_cache_rebuilt, "{shutdown:?}");
    log
}

#[test]
fn leader_append_with_an_older_epoch_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
    append_as_leader(&log, &[(5, 2)]);
    let size = log.size_bytes();
    let error = log.append(batch(1, 0, 10, 9), 4, 0).unwrap_err();
    assert!(
        matches!(&error, StorageError::Corrupt(why) if why.contains("epoch 4")),
        "{error}"
    );
    assert_eq!((log.log_end_offset(), log.size_bytes()), (2, size));
    assert_eq!(log.epoch_entries(), entries(&[(5, 0)]));
    // The log is not poisoned by a refusal.
    log.append(batch(1, 0, 10, 9), 5, 0).unwrap();
}

#[test]
fn begin_leader_epoch_records_the_epoch_at_the_log_end_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
    append_as_leader(&log, &[(1, 3)]);
    assert_eq!(log.begin_leader_epoch(2).unwrap(), 3);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 3)]));
    // A follower of epoch 1 learns that it ended at 3, before epoch 2 wrote anything.
    assert_eq!(
        log.end_offset_for_epoch(1),
        Some(EpochEndOffset {
            epoch: 1,
            end_offset: 3
        })
    );
    // Again for the same epoch: its start, nothing changes.
    assert_eq!(log.begin_leader_epoch(2).unwrap(), 3);
    // A newer epoch before epoch 2 wrote anything replaces it.
    assert_eq!(log.begin_leader_epoch(4).unwrap(), 3);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (4, 3)]));
    assert!(matches!(
        log.begin_leader_epoch(3),
        Err(StorageError::Corrupt(_))
    ));
    // The leader's appends then carry on in its epoch without a new entry.
    append_as_leader(&log, &[(4, 1)]);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (4, 3)]));
}

/// Fetch everything the leader has past the follower's end, `max_bytes` at a time, as a
/// follower's fetcher would, and append it.
fn replicate(leader: &PartitionLog, follower: &PartitionLog, max_bytes: usize) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let fetched = leader.read(follower.log_end_offset(), max_bytes).unwrap();
        follower.append_as_follower(&fetched[..], 0).unwrap();
    }
}

#[test]
fn follower_append_keeps_the_leaders_bytes_offsets_and_epochs() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let leader = open_log(
        &fs,
        leader_dir.path(),
        &small_segments(),
        ShutdownState::Clean,
    );
    let follower = open_log(
        &fs,
        follower_dir.path(),
        &small_segments(),
        ShutdownState::Clean,
    );
    let appends: Vec<(i32, i32)> = (0..24)
        .map(|i| {
            (
                [0, 0, 2, 2, 2, 7][i % 6] + 10 * (i as i32 / 6),
                1 + (i as i32 % 3),
            )
        })
        .collect();
    append_as_leader(&leader, &appends);
    assert!(leader.segment_count() > 3);
    replicate(&leader, &follower, 700);

    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(
        follower.read(0, usize::MAX).unwrap(),
        leader.read(0, usize::MAX).unwrap()
    );
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.epoch_entries(), epochs_of_batches(&leader));
    // Byte for byte the same files: segments, offset indexes, epoch checkpoint.
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".log") || name.ends_with(".index"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(leader_dir.path()), names(follower_dir.path()));
    for name in names(leader_dir.path())
        .iter()
        .map(String::as_str)
        .chain(["leader-epoch-checkpoint"])
    {
        assert_eq!(
            read_file(&leader_dir.path().join(name)),
            read_file(&follower_dir.path().join(name)),
            "{name}"
        );
    }
}

#[test]
fn follower_append_refuses_gaps_overlaps_and_epochs_going_back() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let leader = open_log(&fs, leader_dir.path(), &test_config(), ShutdownState::Clean);
    let follower = open_log(
        &fs,
        follower_dir.path(),
        &test_config(),
        ShutdownState::Clean,
    );
    let stored = append_as_leader(&leader, &[(1, 2), (1, 2), (2, 2), (3, 2)]);
    follower.append_as_follower(&stored[0][..], 0).unwrap();
    let refused = |records: Vec<u8>| {
        let before = (follower.log_end_offset(), follower.size_bytes());
        let error = follower.append_as_follower(&records[..], 0).unwrap_err();
        assert_eq!(
            (follower.log_end_offset(), follower.size_bytes()),
            before,
            "nothing written"
        );
        error
    };
    // A gap: batches 0 and 2 without 1.
    assert!(matches!(
        refused(stored[2].clone()),
        StorageError::OffsetOutOfRange {
            requested: 4,
            log_end_offset: 2,
            ..
        }
    ));
    // An overlap: batch 0 again.
    assert!(matches!(
        refused(stored[0].clone()),
        StorageError::OffsetOutOfRange { requested: 0, .. }
    ));
    // A gap inside the fetched records.
    assert!(matches!(
        refused([stored[1].clone(), stored[3].clone()].concat()),
        StorageError::Corrupt(why) if why.contains("contiguous")
    ));
    // A batch without a leader epoch.
    assert!(matches!(
        refused(stamped(&stored[1], 2, -1)),
        StorageError::Corrupt(why) if why.contains("no leader epoch")
    ));
    // Epochs going back: the batch at 2 stamped with epoch 0 < 1.
    assert!(matches!(
        refused(stamped(&stored[1], 2, 0)),
        StorageError::Corrupt(why) if why.contains("go back")
    ));
    // Epochs going back inside one fetch.
    assert!(matches!(
        refused([stamped(&stored[1], 2, 2), stamped(&stored[2], 4, 1)].concat()),
        StorageError::Corrupt(why) if why.contains("go back")
    ));
    assert_eq!(follower.epoch_entries(), entries(&[(1, 0)]));
    // And the right continuation is taken.
    follower
        .append_as_follower(&stored[1..].concat()[..], 0)
        .unwrap();
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
}

/// A log of 12 two-record batches over several segments: epoch 1 for offsets 0..12, epoch
/// 2 for 12..20, epoch 3 for 20..24.
fn log_with_three_epochs(fs: &Arc<dyn FileSystem>, dir: &Path) -> (PartitionLog, Vec<Vec<u8>>) {
    let log = open_log(fs, dir, &small_segments(), ShutdownState::Clean);
    let epochs = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3];
    let appends: Vec<(i32, i32)> = epochs.iter().map(|epoch| (*epoch, 2)).collect();
    let stored = append_as_leader(&log, &appends);
    assert!(log.segment_count() >= 4, "{}", log.segment_count());
    (log, stored)
}

/// The base offset of the segment that holds `offset` (from the file names).
fn segment_base_holding(dir: &Path, offset: i64) -> i64 {
    segment_logs(dir)
        .iter()
        .map(|path| {
            path.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .filter(|base| *base <= offset)
        .max()
        .unwrap()
}

#[test]
fn truncate_to_across_segments_then_append_continues_at_the_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, stored) = log_with_three_epochs(&fs, dir.path());
    let mut end = log.subscribe();
    end.borrow_and_update();
    // Offset 10 is a batch boundary inside an earlier segment, not on a segment boundary.
    let target = 10;
    let base = segment_base_holding(dir.path(), target);
    assert!(base < target && log.segment_count() > 2);

    assert!(log.truncate_to(target).unwrap());
    assert_eq!(log.log_end_offset(), target);
    assert!(end.has_changed().unwrap());
    assert_eq!(*end.borrow_and_update(), target);
    assert_eq!(log.durable_offset(), target);
    assert_eq!(
        &log.read(0, usize::MAX).unwrap()[..],
        &stored[..5].concat()[..]
    );
    // Later segments are gone: the truncated one is the last, and active.
    let logs = segment_logs(dir.path());
    assert_eq!(
        logs.last().unwrap().file_stem().unwrap().to_str().unwrap(),
        format!("{base:020}")
    );
    assert_eq!(log.segment_count(), logs.len());
    assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap(),
        "0\n1\n1 0\n"
    );
    assert!(matches!(
        log.read(target + 1, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));

    // Appends go on at the new end, into the truncated segment, as leader of a new epoch.
    let info = log.append(batch(3, 5000, 30, 77), 4, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (target, target + 2));
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (4, target)]));
    let read = headers(&log.read(target, usize::MAX).unwrap());
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].partition_leader_epoch, 4);

    // Reopened cleanly, the indexes are trusted as they are and agree with the batches.
    drop(log);
    let log = open_log(&fs, dir.path(), &small_segments(), ShutdownState::Clean);
    assert_eq!(log.recovery_report().indexes_rebuilt, 0);
    assert_eq!(log.log_end_offset(), target + 3);
    for offset in 0..target + 3 {
        let found = headers(&log.read(offset, 1).unwrap());
        assert!(found[0].base_offset <= offset && offset <= found[0].last_offset());
    }
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (4, target)]));
}

#[test]
fn truncate_to_refuses_offsets_inside_batches_and_below_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = log_with_three_epochs(&std_fs(), dir.path());
    let size = log.size_bytes();
    assert!(matches!(
        log.truncate_to(7),
        Err(StorageError::Corrupt(why)) if why.contains("inside a batch")
    ));
    assert!(matches!(
        log.truncate_to(-1),
        Err(StorageError::OffsetOutOfRange { requested: -1, .. })
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (24, size));
    // At or past the end: nothing to do.
    assert!(!log.truncate_to(24).unwrap());
    assert!(!log.truncate_to(100).unwrap());
    // Not poisoned by any of it.
    append_as_leader(&log, &[(3, 1)]);
}

#[test]
fn truncate_to_the_end_forgets_an_epoch_that_wrote_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    append_as_leader(&log, &[(1, 2)]);
    // This replica led epoch 3 briefly and appended nothing; now it follows a leader whose
    // log continues in epoch 2 at this offset.
    log.begin_leader_epoch(3).unwrap();
    let leader_batch = stamped(&batch(1, 0, 10, 5), 2, 2);
    assert!(matches!(
        log.append_as_follower(&leader_batch[..], 0),
        Err(StorageError::Corrupt(_))
    ));
    assert!(!log.truncate_to(2).unwrap(), "no record removed");
    assert_eq!(log.epoch_entries(), entries(&[(1, 0)]));
    assert_eq!(
        epoch_cache::load(&*fs, dir.path())
            .unwrap()
            .unwrap()
            .entries(),
        &entries(&[(1, 0)])[..]
    );
    log.append_as_follower(&leader_batch[..], 0).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 2)]));
}

#[test]
fn truncate_to_a_segment_base_empties_that_segment_and_keeps_it_active() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, stored) = log_with_three_epochs(&fs, dir.path());
    let bases: Vec<i64> = segment_logs(dir.path())
        .iter()
        .map(|path| path.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    let target = bases[1];
    assert!(log.truncate_to(target).unwrap());
    assert_eq!(log.segment_count(), 2);
    assert_eq!(
        std::fs::metadata(&segment_logs(dir.path())[1])
            .unwrap()
            .len(),
        0
    );
    let kept = (target / 2) as usize;
    assert_eq!(
        &log.read(0, usize::MAX).unwrap()[..],
        &stored[..kept].concat()[..]
    );
    // Truncating to the very start empties the log.
    assert!(log.truncate_to(0).unwrap());
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
    assert!(log.epoch_entries().is_empty());
    append_as_leader(&log, &[(5, 1)]);
    assert_eq!(log.epoch_entries(), entries(&[(5, 0)]));
}

#[test]
fn truncated_segment_answers_timestamp_lookups_from_its_remaining_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 1,
        ..test_config()
    };
    let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
    // Single-record batches; timestamps not monotonic.
    for (i, timestamp) in [100, 300, 200, 900, 400].into_iter().enumerate() {
        log.append(batch(1, timestamp, 10, i as u64), 1, 0).unwrap();
    }
    log.flush().unwrap();
    assert!(log.truncate_to(3).unwrap());
    // The batch with timestamp 900 is gone: the segment's largest timestamp (what
    // retention by time judges it by) is 300 again, and nothing reaches 301 any more.
    assert_eq!(lock(&log.state).active.max_timestamp(), 300);
    let at = |t| {
        log.offset_for_timestamp(t)
            .unwrap()
            .map(|f| (f.offset, f.timestamp))
    };
    assert_eq!(at(250), Some((1, 300)));
    assert_eq!(log.offset_for_timestamp(301).unwrap(), None);
    log.append(batch(1, 350, 10, 9), 1, 0).unwrap();
    assert_eq!(at(301), Some((3, 350)));
}

/// The recovered log holds exactly the batches in `expected`, and its epoch cache is the
/// one its batches imply.
fn check_log(log: &PartitionLog, expected: &[u8]) {
    assert_eq!(
        &log.read(log.log_start_offset(), usize::MAX).unwrap()[..],
        expected
    );
    assert_eq!(log.epoch_entries(), epochs_of_batches(log));
}

fn crash_dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

#[test]
fn truncate_then_crash_never_brings_truncated_records_back() {
    // No new records; one, which stays in the truncated segment; two, which roll it.
    for new_batches in 0..3 {
        for keep_torn in [0, usize::MAX] {
            let case = format!("{new_batches} new batches, keep_torn {keep_torn}");
            let crashing = Arc::new(CrashFileSystem::default());
            let fs: Arc<dyn FileSystem> = crashing.clone();
            let dir = crash_dir();
            let (log, stored) = log_with_three_epochs(&fs, &dir);
            log.flush().unwrap();
            assert!(log.truncate_to(10).unwrap());
            // New records from a new leader land where the truncated ones were, unsynced.
            let new_leader = open_log(
                &fs,
                Path::new("/data/leader"),
                &small_segments(),
                ShutdownState::Clean,
            );
            new_leader
                .append_as_follower(&stored[..5].concat()[..], 0)
                .unwrap();
            let replacement = append_as_leader(&new_leader, &vec![(5, 3); new_batches]);
            replicate(&new_leader, &log, usize::MAX);
            let segments = log.segment_count();
            drop(log);

            crashing.crash(|unsynced| unsynced.min(keep_torn));
            let log = open_log(&fs, &dir, &small_segments(), ShutdownState::Unclean);
            let recovered = log.read(0, usize::MAX).unwrap();
            let kept = stored[..5].concat();
            assert!(
                recovered.len() >= kept.len(),
                "{case}: nothing kept was lost"
            );
            let with_new = [kept, replacement.concat()].concat();
            assert!(
                with_new.starts_with(&recovered),
                "{case}: only the kept prefix and the new records, {segments} segments"
            );
            check_log(&log, &recovered);
        }
    }
}

/// Run `operation` on a fresh copy of the three-epoch log, with the power failing after
/// each possible number of mutations in turn; after the crash, reopen and hand the log to
/// `check`. Returns how many crash points there were.
fn crash_at_every_step(
    operation: impl Fn(&PartitionLog) -> Result<(), StorageError>,
    check: impl Fn(&PartitionLog, &[Vec<u8>], bool),
) -> u64 {
    // Count the mutations of an undisturbed run.
    let crashing = Arc::new(CrashFileSystem::default());
    let fs: Arc<dyn FileSystem> = crashing.clone();
    let (log, _) = log_with_three_epochs(&fs, &crash_dir());
    log.flush().unwrap();
    let before = crashing.mutations();
    operation(&log).unwrap();
    let steps = crashing.mutations() - before;
    assert!(steps > 5, "{steps}");

    for allowed in 0..=steps {
        let crashing = Arc::new(CrashFileSystem::default());
        let fs: Arc<dyn FileSystem> = crashing.clone();
        let (log, stored) = log_with_three_epochs(&fs, &crash_dir());
        log.flush().unwrap();
        crashing.lose_power_after(allowed);
        let finished = operation(&log).is_ok();
        assert_eq!(finished, allowed == steps, "allowed {allowed} of {steps}");
        drop(log);
        crashing.crash(|unsynced| unsynced);
        crashing.restore_power();
        let log = open_log(&fs, &crash_dir(), &small_segments(), ShutdownState::Unclean);
        check(&log, &stored, finished);
        // And the recovered log takes appends at its end.
        let end = log.log_end_offset();
        let epoch = log.latest_epoch().unwrap_or(0).max(9);
        assert_eq!(
            log.append(batch(1, 0, 1, 0), epoch, 0).unwrap().base_offset,
            end
        );
    }
    steps
}

#[test]
fn crash_at_any_step_of_truncation_leaves_the_old_log_or_a_prefix() {
    let target = 10;
    crash_at_every_step(
        |log| log.truncate_to(target).map(drop),
        |log, stored, finished| {
            let recovered = log.read(0, usize::MAX).unwrap();
            let everything = stored.concat();
            assert!(
                everything.starts_with(&recovered),
                "a prefix of the old log"
            );
            assert!(
                log.log_end_offset() >= target,
                "the log was flushed: nothing below the target is lost"
            );
            if finished {
                assert_eq!(log.log_end_offset(), target);
            }
            check_log(log, &recovered);
        },
    );
}

#[test]
fn truncate_fully_and_start_at_empties_the_log_and_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, _) = log_with_three_epochs(&fs, dir.path());
    assert!(matches!(
        log.truncate_fully_and_start_at(23),
        Err(StorageError::OffsetOutOfRange { requested: 23, .. })
    ));
    log.truncate_fully_and_start_at(1000).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_count()
        ),
        (1000, 1000, 1)
    );
    assert!(log.epoch_entries().is_empty());
    assert_eq!(segment_logs(dir.path()).len(), 1);
    assert!(log.read(1000, 100).unwrap().is_empty());
    // A follower then appends the leader's batches from there.
    let leader_batch = stamped(&batch(2, 0, 10, 1), 1000, 6);
    log.append_as_follower(&leader_batch[..], 0).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(6, 1000)]));
    drop(log);
    let log = open_log(&fs, dir.path(), &small_segments(), ShutdownState::Unclean);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1002));
    assert_eq!(log.epoch_entries(), entries(&[(6, 1000)]));
}

#[test]
fn crash_at_any_step_of_a_full_truncation_leaves_the_old_log_or_the_empty_one() {
    crash_at_every_step(
        |log| log.truncate_fully_and_start_at(1000),
        |log, stored, finished| {
            let recovered = log.read(log.log_start_offset(), usize::MAX).unwrap();
            let old = log.log_end_offset() == 24 && recovered[..] == stored.concat()[..];
            let restarted = log.log_start_offset() == log.log_end_offset() && recovered.is_empty();
            assert!(
                old || restarted,
                "neither old nor restarted: {:?}",
                log.recovery_report()
            );
            if finished {
                assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1000));
            }
            check_log(log, &recovered);
        },
    );
}

#[test]
fn epoch_checkpoint_missing_or_unreadable_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, _) = log_with_three_epochs(&fs, dir.path());
    let expected = log.epoch_entries();
    assert_eq!(expected, entries(&[(1, 0), (2, 12), (3, 20)]));
    drop(log);
    let checkpoint = dir.path().join("leader-epoch-checkpoint");
    for damage in [None, Some("0\n3\n1 0\n"), Some("0\n0\n")] {
        match damage {
            None => std::fs::remove_file(&checkpoint).unwrap(),
            Some(text) => std::fs::write(&checkpoint, text).unwrap(),
        }
        let log = open_log(&fs, dir.path(), &small_segments(), ShutdownState::Clean);
        assert!(log.recovery_report().epoch_cache_rebuilt, "{damage:?}");
        assert_eq!(log.epoch_entries(), expected, "{damage:?}");
        drop(log);
        // And written back.
        assert_eq!(
            epoch_cache::load(&*fs, dir.path())
                .unwrap()
                .unwrap()
                .entries(),
            &expected[..]
        );
    }
}

#[test]
fn epoch_checkpoint_contradicted_by_scanned_batches_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, _) = log_with_three_epochs(&fs, dir.path());
    let expected = log.epoch_entries();
    drop(log);
    // The checkpoint claims epoch 3 started at 22, but the batch at 20 is already epoch 3.
    // An unclean open scans the last segment, which holds offset 20, and sees it.
    assert!(segment_base_holding(dir.path(), 23) <= 20);
    std::fs::write(
        dir.path().join("leader-epoch-checkpoint"),
        "0\n3\n1 0\n2 12\n3 22\n",
    )
    .unwrap();
    let log = open_log(&fs, dir.path(), &small_segments(), ShutdownState::Unclean);
    assert!(log.recovery_report().epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), expected);
}

#[test]
fn stale_epoch_entries_past_the_recovered_end_are_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, _) = log_with_three_epochs(&fs, dir.path());
    drop(log);
    // As if epoch 4's checkpoint write survived a crash that lost its batches.
    std::fs::write(
        dir.path().join("leader-epoch-checkpoint"),
        "0\n4\n1 0\n2 12\n3 20\n4 24\n",
    )
    .unwrap();
    let log = open_log(&fs, dir.path(), &small_segments(), ShutdownState::Unclean);
    assert!(!log.recovery_report().epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 12), (3, 20)]));
    drop(log);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap(),
        "0\n3\n1 0\n2 12\n3 20\n"
    );
}

#[test]
fn epochs_missing_from_the_checkpoint_are_learnt_from_the_scanned_tail() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, _) = log_with_three_epochs(&fs, dir.path());
    drop(log);
    std::fs::write(
        dir.path().join("leader-epoch-checkpoint"),
        "0\n2\n1 0\n2 12\n",
    )
    .unwrap();
    let log = open_log(&fs, dir.path(), &small_segments(), ShutdownState::Unclean);
    assert!(!log.recovery_report().epoch_cache_rebuilt);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 12), (3, 20)]));
}

#[test]
fn retention_trims_the_epoch_cache_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let config = LogConfig {
        retention_bytes: Some(1),
        ..small_segments()
    };
    let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
    let epochs = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3];
    append_as_leader(
        &log,
        &epochs.iter().map(|epoch| (*epoch, 2)).collect::<Vec<_>>(),
    );
    assert!(log.apply_retention(0).unwrap() > 0);
    let start = log.log_start_offset();
    assert!(start > 12, "{start}");
    let cache = log.epoch_entries();
    assert_eq!(cache[0].start_offset, start);
    assert_eq!(cache, epochs_of_batches(&log));
    assert_eq!(
        epoch_cache::load(&*fs, dir.path())
            .unwrap()
            .unwrap()
            .entries(),
        &cache[..]
    );
}

#[test]
fn noted_high_watermark_is_clamped_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, _) = log_with_three_epochs(&fs, dir.path());
    assert_eq!(log.high_watermark_checkpoint(), None);
    assert_eq!(log.note_high_watermark(16).unwrap(), 16);
    assert_eq!(log.high_watermark_checkpoint(), Some(16));
    // Past the end: noted as the end.
    assert_eq!(log.note_high_watermark(99).unwrap(), 24);
    assert_eq!(log.high_watermark_checkpoint(), Some(24));
    // A truncation below it clamps what is handed back.
    log.truncate_to(10).unwrap();
    assert_eq!(log.high_watermark_checkpoint(), Some(10));
}

#[test]
fn a_high_watermark_file_of_an_older_version_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (log, _) = log_with_three_epochs(&fs, dir.path());
    drop(log);
    checkpoint::write_offset(&*fs, dir.path(), HIGH_WATERMARK_FILE, 16).unwrap();
    let log = open_log(&fs, dir.path(), &small_segments(), ShutdownState::Clean);
    assert_eq!(log.high_watermark_checkpoint(), Some(16));
}

#[test]
fn durability_waiter_of_a_truncated_offset_is_told_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability: Durability::Fsync,
        ..test_config()
    };
    let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
    log.append(batch(2, 0, 10, 0), 1, 0).unwrap();
    log.append(batch(2, 0, 10, 1), 1, 0).unwrap();
    // Keep the waiter from fsyncing itself: someone else holds the sync lock.
    let mut waiter = Box::pin(log.wait_durable(3));
    {
        let _syncing = lock(&log.sync);
        assert!((&mut waiter).now_or_never().is_none());
    }
    log.truncate_to(2).unwrap();
    // New records reach offset 3 again before the waiter looks.
    log.append_as_follower(&stamped(&batch(2, 0, 10, 2), 2, 2)[..], 0)
        .unwrap();
    assert!(matches!(
        (&mut waiter).now_or_never(),
        Some(Err(StorageError::OffsetOutOfRange { requested: 3, .. }))
    ));
    // A waiter for a kept offset is not disturbed.
    futures::executor::block_on(log.wait_durable(1)).unwrap();
}

#[test]
fn durable_remembers_which_truncations_removed_an_offset() {
    let mut durable = Durable::new(100);
    durable.note_truncation(50, 50);
    assert_eq!(durable.offset, 50);
    assert!(durable.truncated_since(0, 50));
    assert!(durable.truncated_since(0, 70));
    assert!(!durable.truncated_since(0, 49));
    assert!(!durable.truncated_since(1, 70), "began after it");
    for _ in 0..RECENT_TRUNCATIONS_MAX {
        durable.note_truncation(90, 90);
    }
    assert!(!durable.truncated_since(1, 60));
    // The truncation to 50 is forgotten: a waiter from before it is told conservatively.
    assert!(durable.truncated_since(0, 10));
}

#[derive(Debug, Clone)]
enum Step {
    /// Append as leader: epoch bump (0 = same epoch), records, value bytes.
    Append(i32, i32, usize),
    /// Truncate to the start of a batch, chosen among the log's batches.
    Truncate(proptest::sample::Index),
    Flush,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0i32..3, 1i32..4, 0usize..120).prop_map(|(bump, records, bytes)| Step::Append(bump, records, bytes)),
        2 => any::<proptest::sample::Index>().prop_map(Step::Truncate),
        1 => Just(Step::Flush),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..proptest::prelude::ProptestConfig::default() })]

    /// Random leader appends (with epoch changes), truncations and flushes on a file system
    /// that loses everything unsynced on a crash (keeping random torn prefixes). After the
    /// crash the log must hold only records that were in the log when it crashed (never a
    /// truncated one), everything that was flushed or lay below a truncation point, and an
    /// epoch cache that matches its batches.
    #[test]
    fn crash_after_appends_and_truncations_keeps_a_consistent_prefix(
        steps in proptest::collection::vec(step(), 1..30),
        keep in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 64),
    ) {
        use proptest::prelude::*;
        let crashing = Arc::new(CrashFileSystem::default());
        let fs: Arc<dyn FileSystem> = crashing.clone();
        let dir = crash_dir();
        let log = open_log(&fs, &dir, &small_segments(), ShutdownState::Clean);
        // The log as it should be: its batches as stored, and how much of it is durable.
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut durable_batches = 0;
        let mut epoch = 0;
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Step::Append(bump, records, bytes) => {
                    epoch += bump;
                    let records = batch(records, i as i64, bytes, i as u64);
                    let info = log.append(records.clone(), epoch, 0).unwrap();
                    model.push(stamped(&records, info.base_offset, epoch));
                }
                Step::Truncate(ref index) => {
                    if model.is_empty() {
                        continue;
                    }
                    let keep = index.index(model.len());
                    let offset = headers(&model[keep])[0].base_offset;
                    prop_assert!(log.truncate_to(offset).unwrap());
                    model.truncate(keep);
                    durable_batches = keep;
                }
                Step::Flush => {
                    log.flush().unwrap();
                    durable_batches = model.len();
                }
            }
        }
        drop(log);
        let mut keep = keep.into_iter();
        crashing.crash(|unsynced| keep.next().map_or(0, |index| index.index(unsynced + 1)));

        let log = open_log(&fs, &dir, &small_segments(), ShutdownState::Unclean);
        let recovered = log.read(log.log_start_offset(), usize::MAX).unwrap();
        let everything = model.concat();
        prop_assert!(everything.starts_with(&recovered), "a prefix of the log as it was");
        prop_assert!(
            recovered.len() >= model[..durable_batches].concat().len(),
            "lost durable records: {} of {} bytes", recovered.len(), model[..durable_batches].concat().len()
        );
        prop_assert_eq!(log.epoch_entries(), epochs_of_batches(&log));
        // And it goes on taking appends at its end.
        let end = log.log_end_offset();
        let next_epoch = log.latest_epoch().unwrap_or(0);
        prop_assert_eq!(log.append(batch(1, 0, 1, 0), next_epoch, 0).unwrap().base_offset, end);
    }
}

#[test]
fn a_new_leader_epoch_reaches_the_checkpoint_with_its_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    append_as_leader(&log, &[(1, 2)]);
    let on_disk = || {
        epoch_cache::load(&*fs, dir.path())
            .unwrap()
            .map(|cache| cache.entries().to_vec())
            .unwrap_or_default()
    };
    assert_eq!(on_disk(), entries(&[(1, 0)]));
    assert_eq!(log.begin_leader_epoch(5).unwrap(), 2);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (5, 2)]));
    assert_eq!(
        on_disk(),
        entries(&[(1, 0)]),
        "an epoch that wrote nothing is not written yet"
    );
    append_as_leader(&log, &[(5, 1)]);
    assert_eq!(
        on_disk(),
        entries(&[(1, 0), (5, 2)]),
        "written before its first batch"
    );
}
