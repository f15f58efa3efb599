//! Crash tests of compaction on a simulated file system that loses what was not made
//! durable: power fails after every possible number of file operations of a pass (and of
//! the recovery after it), and the recovered log must hold, segment group by segment
//! group, either the old segments or their cleaned copy, never a mix, never a loss.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_protocol::batch::Compression;

use super::tests::{append_updates, compacted_config, everything, headers_stored, keyed_batch};
use crate::storage::fs::FileSystem;
use crate::storage::segment::{parse_segment_file_name, LOG_SUFFIX};
use crate::storage::testing::{open_log, CrashFileSystem};
use crate::storage::{LogConfig, PartitionLog, ShutdownState, StorageError};

fn crash_dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

/// The updates log, written with small segments and flushed, opened with `config`.
fn crash_log(fs: &Arc<dyn FileSystem>, config: &LogConfig) -> PartitionLog {
    let log = open_log(fs, &crash_dir(), &compacted_config(), ShutdownState::Clean);
    append_updates(&log);
    log.flush().unwrap();
    drop(log);
    open_log(fs, &crash_dir(), config, ShutdownState::Clean)
}

/// Base offsets of the segment logs on the simulated disk.
fn segment_bases(crashing: &CrashFileSystem) -> Vec<i64> {
    let mut bases: Vec<i64> = crashing
        .files()
        .iter()
        .filter_map(|path| parse_segment_file_name(path.file_name()?.to_str()?, LOG_SUFFIX))
        .collect();
    bases.sort_unstable();
    bases
}

fn leftovers(crashing: &CrashFileSystem) -> Vec<PathBuf> {
    crashing
        .files()
        .into_iter()
        .filter(|file| {
            let name = file.to_string_lossy();
            name.ends_with(".cleaned") || name.ends_with(".swap")
        })
        .collect()
}

/// What an undisturbed pass does: the log before and after, the pass's mutations, and the
/// boundaries between the groups it cleaned (the segment bases after it, and the end).
struct Undisturbed {
    old: Vec<u8>,
    new: Vec<u8>,
    steps: u64,
    boundaries: Vec<i64>,
    end: i64,
}

fn undisturbed(config: &LogConfig) -> Undisturbed {
    let crashing = Arc::new(CrashFileSystem::default());
    let fs: Arc<dyn FileSystem> = crashing.clone();
    let log = crash_log(&fs, config);
    let old = log.read(0, usize::MAX).unwrap().to_vec();
    let end = log.log_end_offset();
    let before = crashing.mutations();
    let stats = log.clean(&everything(&log), 100_000).unwrap();
    let steps = crashing.mutations() - before;
    assert!(
        stats.segments_cleaned >= 3 && steps > 20,
        "{stats:?}, {steps} steps"
    );
    let mut boundaries = segment_bases(&crashing);
    boundaries.push(end);
    let new = log.read(0, usize::MAX).unwrap().to_vec();
    Undisturbed {
        old,
        new,
        steps,
        boundaries,
        end,
    }
}

/// The recovered log is the old one with its first few groups (any number, in order)
/// replaced by their cleaned copies: `new` up to a group boundary, `old` after it.
fn check_old_or_new_per_group(log: &PartitionLog, pass: &Undisturbed) {
    let recovered = log.read(0, usize::MAX).unwrap();
    let split = |bytes: &[u8], boundary: i64| {
        let mut position = 0;
        for header in headers_stored(bytes) {
            if header.base_offset >= boundary {
                break;
            }
            position += header.size_bytes();
        }
        position
    };
    let matches = pass.boundaries.iter().any(|&boundary| {
        let new_part = &pass.new[..split(&pass.new, boundary)];
        let old_part = &pass.old[split(&pass.old, boundary)..];
        recovered[..] == [new_part, old_part].concat()[..]
    });
    assert!(
        matches,
        "the recovered log mixes old and cleaned segments, or lost records"
    );
    assert_eq!(log.log_end_offset(), pass.end);
}

fn crash_at_every_step_of_a_pass(config: &LogConfig) {
    let pass = undisturbed(config);
    for allowed in 0..=pass.steps {
        for keep_torn in [0, usize::MAX] {
            let crashing = Arc::new(CrashFileSystem::default());
            let fs: Arc<dyn FileSystem> = crashing.clone();
            let log = crash_log(&fs, config);
            crashing.lose_power_after(allowed);
            let finished = log.clean(&everything(&log), 100_000).is_ok();
            assert_eq!(
                finished,
                allowed == pass.steps,
                "allowed {allowed} of {}",
                pass.steps
            );
            drop(log);
            crashing.crash(|unsynced| unsynced.min(keep_torn));
            crashing.restore_power();
            let log = open_log(&fs, &crash_dir(), config, ShutdownState::Unclean);
            check_old_or_new_per_group(&log, &pass);
            if finished {
                assert_eq!(log.read(0, usize::MAX).unwrap(), pass.new);
            }
            assert!(leftovers(&crashing).is_empty(), "allowed {allowed}");
            // The recovered log can be cleaned to the same result, and takes appends.
            let stats = log.clean(&everything(&log), 100_000).unwrap();
            assert_eq!(
                log.read(0, usize::MAX).unwrap(),
                pass.new,
                "allowed {allowed}: {stats:?}"
            );
            let more = keyed_batch(&[(Some("a"), Some("z"))], 0, Compression::None);
            assert_eq!(log.append(more, 0, 0).unwrap().base_offset, pass.end);
        }
    }
}

/// Segments big enough that a pass merges several of the small ones into one.
fn merging_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 2_000,
        ..compacted_config()
    }
}

#[test]
fn crash_at_any_step_of_a_pass_leaves_each_segment_old_or_cleaned() {
    crash_at_every_step_of_a_pass(&compacted_config());
}

#[test]
fn crash_at_any_step_of_a_merging_pass_leaves_each_group_old_or_merged() {
    let pass = undisturbed(&merging_config());
    let old_segments = headers_stored(&pass.old).len();
    assert!(
        pass.boundaries.len() < 4,
        "the pass merged: {:?} ({old_segments} batches before)",
        pass.boundaries
    );
    crash_at_every_step_of_a_pass(&merging_config());
}

/// Open the crash test's log, or fail (as a power loss during recovery makes it).
fn try_open(fs: &Arc<dyn FileSystem>, config: &LogConfig) -> Result<PartitionLog, StorageError> {
    let checkpoints =
        crate::storage::dir_checkpoints::DirCheckpoints::open(Arc::clone(fs), &crash_dir())?;
    PartitionLog::open(
        Arc::clone(fs),
        crash_dir(),
        (Arc::new(checkpoints), ("test".into(), 0)),
        Arc::default(),
        config.clone(),
        ShutdownState::Unclean,
    )
}

/// After a crash between a swap's commit and its end, crash again at every step of the
/// recovery that finishes it: the next open finishes it.
fn crash_while_recovery_finishes_a_swap(config: &LogConfig) {
    let pass = undisturbed(config);
    let mut interrupted = 0;
    for allowed in 0..pass.steps {
        for recovery_allowed in 0.. {
            let crashing = Arc::new(CrashFileSystem::default());
            let fs: Arc<dyn FileSystem> = crashing.clone();
            let log = crash_log(&fs, config);
            crashing.lose_power_after(allowed);
            assert!(log.clean(&everything(&log), 100_000).is_err());
            drop(log);
            crashing.crash(|unsynced| unsynced);
            if leftovers(&crashing)
                .iter()
                .all(|f| !f.to_string_lossy().ends_with(".swap"))
            {
                break;
            }
            crashing.restore_power();
            crashing.lose_power_after(recovery_allowed);
            let finished = try_open(&fs, config).is_ok();
            crashing.crash(|unsynced| unsynced);
            crashing.restore_power();
            let log = open_log(&fs, &crash_dir(), config, ShutdownState::Unclean);
            check_old_or_new_per_group(&log, &pass);
            assert!(
                leftovers(&crashing).is_empty(),
                "allowed {allowed}, then {recovery_allowed}"
            );
            interrupted += 1;
            if finished {
                break;
            }
        }
    }
    assert!(interrupted > 3, "{interrupted} crashes during recovery");
}

#[test]
fn a_crash_while_recovery_finishes_a_swap_is_finished_by_the_next_open() {
    crash_while_recovery_finishes_a_swap(&compacted_config());
}

#[test]
fn a_crash_while_recovery_finishes_a_merged_swap_is_finished_by_the_next_open() {
    crash_while_recovery_finishes_a_swap(&merging_config());
}
