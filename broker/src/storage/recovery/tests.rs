//! Tests of opening a partition after a clean or unclean shutdown.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::storage::dir_checkpoints::RECOVERY_POINT_OFFSET_FILE;
use crate::storage::fs::StdFileSystem;
use crate::storage::testing::{
    batch, headers, open_log, segment_logs, stamped, std_fs, test_config,
};
use crate::storage::{Durability, PartitionLog};

/// Append `count` batches of 2 records; returns them as stored.
fn append_batches(log: &PartitionLog, count: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let records = batch(2, 1000 + i as i64, 30, i);
            let info = log.append(records.clone(), 0, 0).unwrap();
            stamped(&records, info.base_offset, 0)
        })
        .collect()
}

/// Append `count` batches to a new log in `dir` and close it after a flush, as a clean
/// shutdown leaves it: the batches as stored, and the log's first segment file.
fn written_and_closed(fs: &Arc<dyn FileSystem>, dir: &Path, count: u64) -> (Vec<Vec<u8>>, PathBuf) {
    let log = open_log(fs, dir, &test_config(), ShutdownState::Clean);
    let appended = append_batches(&log, count);
    log.flush().unwrap();
    drop(log);
    (appended, segment_logs(dir)[0].clone())
}

fn flip_byte(path: &Path, position: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], position).unwrap();
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn with_extension(path: &Path, extension: &str) -> PathBuf {
    path.with_extension(extension)
}

#[test]
fn recovery_drops_torn_batch() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    let appended = append_batches(&log, 5);
    drop(log);
    let kept: usize = appended[..4].iter().map(Vec::len).sum();
    let cut = kept + appended[4].len() / 2;
    set_len(&segment_logs(dir.path())[0], cut as u64);

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Unclean);
    let report = log.recovery_report();
    assert_eq!(report.bytes_truncated, (cut - kept) as u64);
    assert!(report.removed_data());
    assert_eq!(report.bytes_removed(), (cut - kept) as u64);
    assert!(
        report.corruption.as_deref().unwrap().contains("torn"),
        "{report:?}"
    );
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(
        &log.read(0, usize::MAX).unwrap()[..],
        &appended[..4].concat()[..]
    );
    assert_eq!(
        std::fs::metadata(&segment_logs(dir.path())[0])
            .unwrap()
            .len(),
        kept as u64
    );
    assert_eq!(log.append(batch(1, 0, 1, 9), 0, 0).unwrap().base_offset, 8);
}

#[test]
fn recovery_drops_batch_with_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    let appended = append_batches(&log, 5);
    drop(log);
    let before: usize = appended[..2].iter().map(Vec::len).sum();
    flip_byte(&segment_logs(dir.path())[0], (before + 70) as u64);

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Unclean);
    let report = log.recovery_report();
    assert!(
        report.corruption.as_deref().unwrap().contains("CRC"),
        "{report:?}"
    );
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(
        &log.read(0, usize::MAX).unwrap()[..],
        &appended[..2].concat()[..]
    );
}

#[test]
fn recovery_treats_an_offset_gap_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    let appended = append_batches(&log, 3);
    drop(log);
    // A valid batch, but stamped with an offset past the end.
    let stray = stamped(&batch(1, 0, 1, 0), 10, 0);
    let file = OpenOptions::new()
        .write(true)
        .open(&segment_logs(dir.path())[0])
        .unwrap();
    file.write_all_at(&stray, appended.concat().len() as u64)
        .unwrap();

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Unclean);
    assert!(log
        .recovery_report()
        .corruption
        .as_deref()
        .unwrap()
        .contains("base offset 10"));
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn recovery_drops_segments_after_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let config = LogConfig {
        segment_bytes_max: 300,
        ..test_config()
    };
    let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
    append_batches(&log, 12);
    let segments = log.segment_count();
    assert!(segments >= 4);
    log.dir_checkpoints().write_if_changed().unwrap();
    drop(log);
    // Forget the recovery point so every segment is scanned, and corrupt the second one.
    std::fs::remove_file(dir.path().join(RECOVERY_POINT_OFFSET_FILE)).unwrap();
    let logs = segment_logs(dir.path());
    flip_byte(&logs[1], 40);
    let bytes_after_second: u64 = logs[2..]
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum();
    let second_bytes = std::fs::metadata(&logs[1]).unwrap().len();

    let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
    let report = log.recovery_report();
    assert_eq!(report.segments_dropped, segments - 2, "{report:?}");
    assert_eq!(report.bytes_dropped, bytes_after_second);
    assert_eq!(report.bytes_truncated, second_bytes);
    assert_eq!(report.bytes_removed(), second_bytes + bytes_after_second);
    assert_eq!(log.segment_count(), 2);
    let second_base =
        parse_segment_file_name(logs[1].file_name().unwrap().to_str().unwrap(), LOG_SUFFIX)
            .unwrap();
    assert_eq!(log.log_end_offset(), second_base);
    assert_eq!(segment_logs(dir.path()), logs[..2].to_vec());
    assert!(!with_extension(&logs[2], "index").exists());
    assert!(!with_extension(&logs[2], "timeindex").exists());
    assert_eq!(
        headers(&log.read(0, usize::MAX).unwrap())
            .last()
            .unwrap()
            .next_offset(),
        second_base
    );
}

#[test]
fn an_unclean_open_scans_only_the_segments_past_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let config = LogConfig {
        segment_bytes_max: 300,
        ..test_config()
    };
    let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
    append_batches(&log, 12);
    let (segments, end) = (log.segment_count(), log.log_end_offset());
    assert!(segments >= 4);
    // The periodic checkpoint ran, then a crash: each roll flushed the segment before
    // it, the last one is not.
    log.dir_checkpoints().write_if_changed().unwrap();
    drop(log);
    let logs = segment_logs(dir.path());
    let size = |path: &PathBuf| std::fs::metadata(path).unwrap().len();
    let last_bytes = size(logs.last().unwrap());
    let all_bytes: u64 = logs.iter().map(size).sum();
    assert!(last_bytes > 0 && last_bytes < all_bytes);

    let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
    let report = log.recovery_report().clone();
    assert_eq!(report.segments_scanned, 1, "{report:?}");
    assert_eq!(report.bytes_scanned, last_bytes, "{report:?}");
    assert_eq!(log.log_end_offset(), end);
    drop(log);

    // Without a recovery point, everything is read again.
    std::fs::remove_file(dir.path().join(RECOVERY_POINT_OFFSET_FILE)).unwrap();
    let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
    let report = log.recovery_report();
    assert_eq!(report.segments_scanned, segments, "{report:?}");
    assert_eq!(report.bytes_scanned, all_bytes, "{report:?}");
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn recovery_rebuilds_deleted_index() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (appended, segment) = written_and_closed(&fs, dir.path(), 20);
    let (index, time_index) = (
        with_extension(&segment, "index"),
        with_extension(&segment, "timeindex"),
    );
    let original = (
        std::fs::read(&index).unwrap(),
        std::fs::read(&time_index).unwrap(),
    );
    assert!(
        original.0.len() >= 8 * 10,
        "the test needs a populated index"
    );
    std::fs::remove_file(&index).unwrap();
    std::fs::remove_file(&time_index).unwrap();

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
    assert_eq!(log.recovery_report().segments_scanned, 1);
    assert_eq!(std::fs::read(&index).unwrap(), original.0);
    assert_eq!(std::fs::read(&time_index).unwrap(), original.1);
    for (i, stored) in appended.iter().enumerate() {
        assert_eq!(&log.read(2 * i as i64 + 1, 1).unwrap()[..], &stored[..]);
    }
}

#[test]
fn recovery_rebuilds_corrupt_index() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (_, segment) = written_and_closed(&fs, dir.path(), 20);
    let index = with_extension(&segment, "index");
    let original = std::fs::read(&index).unwrap();
    // An entry pointing past the end of the log.
    let mut corrupt = original.clone();
    corrupt.extend_from_slice(&[0, 0, 0, 100, 0, 1, 0, 0]);
    std::fs::write(&index, &corrupt).unwrap();

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
    assert_eq!(std::fs::read(&index).unwrap(), original);
    assert_eq!(log.log_end_offset(), 40);
}

/// Found by the log_recovery fuzz target: a time index trusted after a clean shutdown whose
/// last entry is ahead of the log (a small timestamp at the last offset) made the tail scan
/// append an entry out of order, and the broker panicked on start.
#[test]
fn a_trusted_time_index_ahead_of_the_log_is_rebuilt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let (_, segment) = written_and_closed(&fs, dir.path(), 20);
    let time_index = with_extension(&segment, "timeindex");
    let original = std::fs::read(&time_index).unwrap();
    let mut ahead = 1000i64.to_be_bytes().to_vec();
    ahead.extend_from_slice(&39u32.to_be_bytes());
    std::fs::write(&time_index, &ahead).unwrap();

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    assert_eq!(log.recovery_report().indexes_rebuilt, 1);
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(std::fs::read(&time_index).unwrap(), original);
}

#[test]
fn clean_shutdown_skips_the_scan_and_unclean_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    append_batches(&log, 10);
    log.flush().unwrap();
    drop(log);
    // Corrupt the first batch, which lies before every index entry: only a full scan sees it.
    flip_byte(&segment_logs(dir.path())[0], 70);

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    assert_eq!(log.recovery_report().segments_scanned, 0);
    assert_eq!(log.log_end_offset(), 20);
    drop(log);

    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Unclean);
    assert_eq!(log.recovery_report().segments_scanned, 1);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn recovery_removes_orphan_index_files_and_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let fs = std_fs();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Clean);
    append_batches(&log, 2);
    drop(log);
    let orphan = dir.path().join("00000000000000000999.index");
    let temp = dir.path().join("recovery-point-checkpoint.tmp");
    std::fs::write(&orphan, [0u8; 8]).unwrap();
    std::fs::write(&temp, "0\n").unwrap();
    let log = open_log(&fs, dir.path(), &test_config(), ShutdownState::Unclean);
    assert!(!orphan.exists());
    assert!(!temp.exists());
    assert_eq!(log.log_end_offset(), 4);
}

/// The log config of the crash tests: fsync durability, segments of at most
/// `segment_bytes_max`.
fn fsync_config(segment_bytes_max: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        durability: Durability::Fsync,
        ..test_config()
    }
}

/// Open a fresh log in `dir`, append one batch per `(records, value bytes, fsync)`,
/// waiting for an fsync after those marked so, and close it. Returns every batch as
/// stored and the offset the log reported durable.
fn append_fsyncing(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    config: &LogConfig,
    runtime: &tokio::runtime::Runtime,
    appends: &[(i32, usize, bool)],
) -> (Vec<Vec<u8>>, i64) {
    let log = open_log(fs, dir, config, ShutdownState::Clean);
    let mut appended = Vec::new();
    for (i, (records, value_bytes, fsync)) in appends.iter().enumerate() {
        let records = batch(*records, i as i64, *value_bytes, i as u64);
        let info = log.append(records.clone(), 3, 0).unwrap();
        appended.push(stamped(&records, info.base_offset, 3));
        if *fsync {
            runtime
                .block_on(log.wait_durable(info.last_offset))
                .unwrap();
        }
    }
    (appended, log.durable_offset())
}

/// The recovered `log` holds every offset below `durable`, is a prefix of `appended`,
/// and ends where its last batch does. Returns the headers of its batches.
fn check_durable_prefix(
    log: &PartitionLog,
    appended: &[Vec<u8>],
    durable: i64,
) -> Result<Vec<sluice_protocol::batch::BatchHeader>, TestCaseError> {
    let end = log.log_end_offset();
    prop_assert!(
        end >= durable,
        "lost fsynced data: end {} < durable {}",
        end,
        durable
    );
    let read = log.read(0, usize::MAX).unwrap();
    let everything = appended.concat();
    prop_assert!(read.len() <= everything.len());
    prop_assert_eq!(&read[..], &everything[..read.len()]);
    let recovered = headers(&read);
    prop_assert_eq!(
        recovered.last().map_or(0, |header| header.next_offset()),
        end
    );
    Ok(recovered)
}

/// The recovered `log` takes an append at its end, and fsyncs it.
fn check_appends_at_end(
    log: &PartitionLog,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), TestCaseError> {
    let end = log.log_end_offset();
    let info = log.append(batch(1, 0, 1, 0), 3, 0).unwrap();
    prop_assert_eq!(info.base_offset, end);
    runtime
        .block_on(log.wait_durable(info.last_offset))
        .unwrap();
    Ok(())
}

/// Positions of the batches lying back to back in `bytes`.
fn batch_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut position = 0;
    for item in sluice_protocol::batch::Batches::new(bytes) {
        let Ok((_, batch)) = item else { break };
        starts.push(position);
        position += batch.len();
    }
    starts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Append random batches with fsync durability, fsyncing at random points; "crash"
    /// by cutting the last segment anywhere past the last fsync and maybe flipping a byte
    /// there; reopen. The log must be a prefix of what was appended that holds every
    /// fsynced batch, and take appends again.
    #[test]
    fn crash_keeps_a_prefix_holding_every_fsynced_batch(
        appends in prop::collection::vec((1i32..5, 0usize..200, prop::bool::weighted(0.25)), 1..25),
        segment_bytes_max in 150u64..3000,
        cut in any::<Index>(),
        flip in prop::option::weighted(0.75, (any::<Index>(), 1u8..=255)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFileSystem);
        let config = fsync_config(segment_bytes_max);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (appended, durable) = append_fsyncing(&fs, dir.path(), &config, &runtime, &appends);

        // Crash: only bytes of the last segment past the durable offset may change.
        let last = segment_logs(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        let durable_end = batch_starts(&bytes)
            .into_iter()
            .find(|start| headers(&bytes[*start..])[0].base_offset >= durable)
            .unwrap_or(bytes.len());
        let cut_at = durable_end + cut.index(bytes.len() - durable_end + 1);
        bytes.truncate(cut_at);
        if let (Some((at, mask)), true) = (flip, cut_at > durable_end) {
            let at = durable_end + at.index(cut_at - durable_end);
            // partitionLeaderEpoch (bytes 12..16 of a batch) is outside the CRC by
            // Kafka's design: a flip there cannot be detected, so leave it alone.
            let in_epoch = batch_starts(&bytes).iter().any(|start| (start + 12..start + 16).contains(&at));
            if !in_epoch {
                bytes[at] ^= mask;
            }
        }
        std::fs::write(&last, &bytes).unwrap();

        let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
        let recovered = check_durable_prefix(&log, &appended, durable)?;
        for header in &recovered {
            let found = headers(&log.read(header.last_offset(), 1).unwrap());
            prop_assert_eq!(found[0].base_offset, header.base_offset);
        }
        check_appends_at_end(&log, &runtime)?;
    }
}

/// The bytes of `path` may be flipped at `at` without the flip being undetectable by
/// design (a batch's partitionLeaderEpoch, bytes 12..16, lies outside its CRC).
fn flippable(path: &Path, bytes: &[u8], at: usize) -> bool {
    path.extension().is_none_or(|extension| extension != "log")
        || !batch_starts(bytes)
            .iter()
            .any(|start| (start + 12..start + 16).contains(&at))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Like the test above, on a file system that really loses what was not fsynced: a
    /// crash reverts every file to its last fsync and every directory to its last
    /// directory fsync, keeping random torn prefixes of unsynced appends (one of them
    /// with a byte flipped). Whatever the log reported durable must survive, and the
    /// log must be a prefix of what was appended.
    #[test]
    fn simulated_crash_loses_nothing_reported_durable(
        appends in prop::collection::vec((1i32..5, 0usize..200, prop::bool::weighted(0.25)), 1..25),
        segment_bytes_max in 150u64..3000,
        keep in prop::collection::vec(any::<Index>(), 64),
        flip in prop::option::weighted(0.75, (any::<Index>(), any::<Index>(), 1u8..=255)),
    ) {
        let crashing = Arc::new(crate::storage::testing::CrashFileSystem::default());
        let fs: Arc<dyn FileSystem> = crashing.clone();
        let dir = Path::new("/data/t-0");
        let config = fsync_config(segment_bytes_max);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (appended, durable) = append_fsyncing(&fs, dir, &config, &runtime, &appends);

        let mut keep = keep.into_iter();
        let torn = crashing.crash(|unsynced| keep.next().map_or(0, |index| index.index(unsynced + 1)));
        if let (Some((which, at, mask)), false) = (flip, torn.is_empty()) {
            let file = which.get(&torn);
            let at = file.durable_len + at.index(file.len - file.durable_len);
            if flippable(&file.path, &crashing.read(&file.path), at) {
                crashing.flip(&file.path, at, mask);
            }
        }

        let log = open_log(&fs, dir, &config, ShutdownState::Unclean);
        check_durable_prefix(&log, &appended, durable)?;
        check_appends_at_end(&log, &runtime)?;
        prop_assert!(crashing.files().iter().all(|file| !file.to_string_lossy().ends_with(".tmp")));
    }
}
