//! Tests of compaction with the rest of the log: recovery of interrupted swaps, rescans of
//! cleaned segments, truncation, followers copying a compacted leader, leader epochs, a
//! failed fsync, and when a pass is due.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_protocol::batch::Compression;

use super::tests::{
    append_all, append_updates, compacted_config, everything, headers_stored, keyed_batch,
    records_of, updates, Kv,
};
use super::*;
use crate::storage::testing::{open_log, segment_logs, std_fs};
use crate::storage::{LogConfig, PartitionLog, ShutdownState, StorageError};

#[test]
fn a_rescan_of_cleaned_segments_keeps_the_leader_epoch_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    // Epoch 1 starts at offset 4 with a record the cleaner removes ("a" comes again).
    let records: [&[Kv<'_>]; 4] = [
        &[(Some("a"), Some("1")), (Some("b"), Some("1"))],
        &[(Some("c"), Some("1")), (Some("d"), Some("1"))],
        &[(Some("a"), Some("2")), (Some("a"), Some("3"))],
        &[(Some("e"), Some("1")), (Some("a"), Some("4"))],
    ];
    for (i, batch) in records.iter().enumerate() {
        let epoch = if i < 2 { 0 } else { 1 };
        log.append(keyed_batch(batch, 1000, Compression::None), epoch, 0)
            .unwrap();
    }
    let filler: Vec<Vec<Kv<'_>>> = (0..6)
        .map(|_| vec![(Some("f"), Some("0123456789012345678901234567890123456789"))])
        .collect();
    for batch in &filler {
        log.append(keyed_batch(batch, 1000, Compression::None), 2, 0)
            .unwrap();
    }
    let epochs = log.epoch_entries();
    log.clean(&everything(&log), 100_000).unwrap();
    assert!(
        records_of(&log).iter().all(|record| record.0 != 4),
        "offset 4 was removed"
    );
    log.flush().unwrap();
    drop(log);
    let _ = std::fs::remove_file(dir.path().join("recovery-point-offset-checkpoint"));
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Unclean);
    assert!(
        !log.recovery_report().epoch_cache_rebuilt,
        "{:?}",
        log.recovery_report()
    );
    assert_eq!(log.epoch_entries(), epochs);
}

#[test]
fn after_a_truncation_the_next_pass_treats_the_whole_log_as_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        &std_fs(),
        dir.path(),
        &compacted_config(),
        ShutdownState::Clean,
    );
    append_updates(&log);
    let cleaned_to = log
        .clean(&everything(&log), 100_000)
        .unwrap()
        .cleaned_to
        .unwrap();
    // A follower cuts back into the cleaned part, then copies new records there.
    let starts: Vec<i64> = headers_stored(&log.read(0, usize::MAX).unwrap())
        .iter()
        .map(|header| header.base_offset)
        .collect();
    let cut = *starts
        .iter()
        .rev()
        .find(|start| **start + 2 < cleaned_to)
        .unwrap();
    assert!(log.truncate_to(cut).unwrap());
    append_all(&log, &[&[(Some("n"), Some("1")), (Some("n"), Some("2"))]]);
    let filler: Vec<Vec<Kv<'_>>> = (0..8)
        .map(|_| vec![(Some("f"), Some("0123456789012345678901234567890123456789"))])
        .collect();
    append_all(&log, &filler.iter().map(Vec::as_slice).collect::<Vec<_>>());
    log.clean(&everything(&log), 100_000).unwrap();
    let n: Vec<i64> = records_of(&log)
        .iter()
        .filter(|record| record.1.as_deref() == Some("n"))
        .map(|record| record.0)
        .collect();
    assert_eq!(
        n,
        vec![cut + 1],
        "the older \"n\" below the old dirty offset is gone"
    );
}

#[test]
fn recovery_finishes_a_committed_swap_and_drops_an_uncommitted_one() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    append_updates(&log);
    log.flush().unwrap();
    let logs = segment_logs(dir.path());
    drop(log);
    let name = |path: &Path, suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    let index = |path: &Path| path.with_extension("index");
    // Segment 0: a committed swap whose index swap was lost; segment 1: uncommitted.
    std::fs::copy(&logs[0], name(&logs[0], ".swap")).unwrap();
    std::fs::write(index(&logs[0]), [0u8; 8]).unwrap();
    std::fs::copy(index(&logs[1]), name(&index(&logs[1]), ".swap")).unwrap();
    std::fs::write(name(&logs[2], ".cleaned"), b"partial").unwrap();
    let before = std::fs::read(&logs[1]).unwrap();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    assert_eq!(
        log.recovery_report().indexes_rebuilt,
        1,
        "segment 0's index was rebuilt"
    );
    assert_eq!(std::fs::read(&logs[1]).unwrap(), before);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".swap") && !n.ends_with(".cleaned")),
        "{names:?}"
    );
    assert_eq!(records_of(&log).len(), 24);
}

#[test]
fn recovery_deletes_the_segments_a_committed_merge_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    append_updates(&log);
    let everything_before = records_of(&log);
    log.flush().unwrap();
    drop(log);
    // A merged copy of the first two segments, committed (its `.swap` durable), while the
    // second segment still exists: the merge's deletions did not happen yet.
    let logs = segment_logs(dir.path());
    let merged = [
        std::fs::read(&logs[0]).unwrap(),
        std::fs::read(&logs[1]).unwrap(),
    ]
    .concat();
    std::fs::write(format!("{}.swap", logs[0].display()), merged).unwrap();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    assert_eq!(segment_logs(dir.path()).len(), logs.len() - 1);
    assert!(!logs[1].exists() && !logs[1].with_extension("index").exists());
    assert_eq!(records_of(&log), everything_before);
}

#[test]
fn a_follower_copies_a_compacted_leader_gaps_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let leader = open_log(
        &std_fs(),
        &dir.path().join("leader"),
        &compacted_config(),
        ShutdownState::Clean,
    );
    for (i, batch) in updates().iter().enumerate() {
        leader
            .append(keyed_batch(batch, 1000 * i as i64, Compression::None), 3, 0)
            .unwrap();
    }
    leader.clean(&everything(&leader), 100_000).unwrap();
    let end = leader.log_end_offset();
    // A follower fetching from offset 0, one batch per fetch, as its fetcher would.
    let fetch_all = |follower: &PartitionLog| -> Result<(), StorageError> {
        while follower.log_end_offset() < end {
            let fetched = leader.read(follower.log_end_offset(), 1)?;
            follower.append_as_follower(&fetched, 0)?;
        }
        Ok(())
    };
    let follower_dir = dir.path().join("follower");
    let follower = open_log(
        &std_fs(),
        &follower_dir,
        &compacted_config(),
        ShutdownState::Clean,
    );
    fetch_all(&follower).unwrap();
    assert_eq!(
        follower.read(0, usize::MAX).unwrap(),
        leader.read(0, usize::MAX).unwrap()
    );
    // The follower learns epoch 3 from the first batch it gets; it ends where the leader's does.
    assert_eq!(
        follower.end_offset_for_epoch(3),
        leader.end_offset_for_epoch(3)
    );
    let epochs = follower.epoch_entries();
    drop(follower);
    let _ = std::fs::remove_file(follower_dir.join("recovery-point-offset-checkpoint"));
    let follower = open_log(
        &std_fs(),
        &follower_dir,
        &compacted_config(),
        ShutdownState::Unclean,
    );
    assert!(!follower.recovery_report().removed_data());
    assert!(!follower.recovery_report().epoch_cache_rebuilt);
    assert_eq!(follower.epoch_entries(), epochs);
    assert_eq!(
        follower.read(0, usize::MAX).unwrap(),
        leader.read(0, usize::MAX).unwrap()
    );
    // A log that is not compacted keeps refusing gaps and short batches.
    let strict = LogConfig {
        cleaner: CleanerConfig::default(),
        ..compacted_config()
    };
    let other = open_log(
        &std_fs(),
        &dir.path().join("strict"),
        &strict,
        ShutdownState::Clean,
    );
    assert!(fetch_all(&other).is_err());
}

#[test]
fn a_failed_fsync_before_the_swap_fails_the_pass_but_not_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(crate::storage::FaultInjectingFileSystem::new(std_fs()));
    let fs: Arc<dyn crate::storage::FileSystem> = faulty.clone();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    append_updates(&log);
    let before = records_of(&log);
    faulty.start_failing_syncs();
    assert!(matches!(
        log.clean(&everything(&log), 100_000),
        Err(StorageError::Io(_))
    ));
    faulty.stop_failing_syncs();
    assert_eq!(records_of(&log), before);
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".cleaned")
        })
        .count();
    assert_eq!(leftovers, 0);
    // Not poisoned: it takes appends, and the next pass succeeds.
    append_all(&log, &[&[(Some("a"), Some("again"))]]);
    assert!(
        log.clean(&everything(&log), 100_000)
            .unwrap()
            .segments_cleaned
            > 0
    );
}

#[test]
fn cleaning_is_due_by_dirty_ratio_or_by_max_compaction_lag() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &compacted_config(), ShutdownState::Clean);
    append_updates(&log);
    // Never cleaned: everything cleanable is dirty.
    assert_eq!(
        log.cleaning_due(&everything(&log), 100_000).unwrap(),
        Some(1.0)
    );
    log.clean(&everything(&log), 100_000).unwrap();
    assert_eq!(log.cleaning_due(&everything(&log), 100_000).unwrap(), None);
    // A little new dirty data: below the 0.5 ratio...
    let batches: Vec<Vec<Kv<'_>>> = (0..4).map(|_| vec![(Some("n"), Some("value"))]).collect();
    append_all(&log, &batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let ratio = |log: &PartitionLog, now| log.cleaning_due(&everything(log), now).unwrap();
    assert_eq!(ratio(&log, 100_000), None);
    drop(log);
    // ...but older than max.compaction.lag.ms, it is due anyway.
    let lagged = LogConfig {
        cleaner: CleanerConfig {
            max_compaction_lag_ms: 50_000,
            ..compacted_config().cleaner
        },
        ..compacted_config()
    };
    let log = open_log(&fs, dir.path(), &lagged, ShutdownState::Clean);
    log.clean(&everything(&log), 100_000).unwrap();
    append_all(&log, &batches.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let dirty = ratio(&log, 100_000).expect("records from 1 s are older than 50 s");
    assert!(dirty < 0.5, "{dirty}");
    assert_eq!(ratio(&log, 40_000), None);
}
