//! One partition's log: its ordered segments, append, read, roll, retention, durability.
//!
//! A [`PartitionLog`] is shared as `Arc<PartitionLog>` and synchronises itself.
//!
//! The log is one type, [`PartitionLog`], whose methods live with the concept they serve:
//! - `open`: opening a log (recovery, the leader-epoch checkpoint reconciled with it).
//! - `append`: appends as leader and as follower, the leader epochs they record, rolls.
//! - `read`: reading batches and looking offsets up by timestamp.
//! - `durability`: flushes, group-commit fsync, durable offsets and their waiters,
//!   poisoning, the recovery point.
//! - `truncation`: a follower's truncations and their crash-safe order.
//! - `retention`: deleting old segments, the log start offset.
//! - `clean`: compaction passes (the work is in `storage::cleaner`) and their swaps.
//! - `room`: refusing an append the disk has no room for, before it writes anything.
//!
//! # Recovery point and log start offset
//! A log records both in its data directory's [`DirCheckpoints`] (one file each for every
//! partition; see that module for when they reach the disk and what they may claim).
//!
//! This module holds the type, its state and locks, and the small accessors.
//!
//! # High watermark
//! Replication owns the high watermark; storage only persists it
//! ([`PartitionLog::note_high_watermark`], written for every partition at once in the data
//! directory's `replication-offset-checkpoint` by the log manager) and
//! hands the last stored value back ([`PartitionLog::high_watermark_checkpoint`]), clamped
//! into `[log_start_offset, log_end_offset]` since truncation may have cut below it. The
//! file costs two fsyncs per write, whatever the partition count: it is written
//! periodically, not on every advance.
//!
//! # Locks
//! - `state`: segments, offsets, epoch cache, poison. Held by append, read, retention and
//!   briefly by the syncer, never during an fsync, except for rare events: roll creates and
//!   syncs a directory entry, a new epoch writes the epoch checkpoint, truncation holds it
//!   throughout.
//! - `sync`: held by whoever fsyncs (group-commit syncer or flush) and by truncation; it
//!   also orders the recovery points this log records. Whoever releases it then notifies
//!   the durable watch, so a waiter that found it taken always wakes and looks again.
//! - `high_watermark`: serialises writes of the high-watermark checkpoint.
//!
//! - `first_dirty_offset`: held by a cleaning pass from start to end (one pass at a time).
//!
//! Lock order: `first_dirty_offset` before `state`; `sync` before `state`; `high_watermark`
//! before `state`. `state` is never held while taking another, except the
//! [`DirCheckpoints`] locks (which take no log lock).
//!
//! # Invariants
//! - `log_start_offset <= log_end_offset`; offsets are contiguous (asserted on append),
//!   except for the gaps compaction leaves in a compacted log's sealed segments.
//! - The segments are ordered by base offset; each sealed segment ends where the next begins;
//!   the last one is the active segment.
//! - `durable_offset <= log_end_offset`. Both only grow, except that a truncation lowers
//!   both to the truncation offset.
//! - The epoch cache describes the batches (see `epoch_cache`): epochs never go back, and
//!   no entry starts past the log end offset.

mod append;
mod clean;
mod durability;
mod open;
mod read;
mod retention;
mod room;
mod truncation;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::watch;

use super::dir_checkpoints::{DirCheckpoints, PartitionKey};
use super::dir_health::DirHealth;
use super::epoch_cache::EpochCache;
use super::fs::FileSystem;
use super::recovery::RecoveryReport;
use super::segment::{ActiveSegment, SealedSegment, Segment, SegmentFiles};
use super::{LogConfig, StorageError};
use durability::{Durable, SyncState};

pub use append::AppendInfo;

/// One partition's log. See the module documentation.
#[derive(Debug)]
pub struct PartitionLog {
    /// `<topic>-<partition>`, for log lines and errors.
    name: String,
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    /// The data directory's health, marked failed when this log is poisoned.
    health: Arc<DirHealth>,
    /// The topic's settings; replaced whole when its configs change
    /// ([`PartitionLog::set_config`]), read as a snapshot by each operation.
    config: RwLock<Arc<LogConfig>>,
    state: Mutex<LogState>,
    sync: Mutex<SyncState>,
    /// Where the recovery point and log start offset are recorded, under `key`.
    checkpoints: Arc<DirCheckpoints>,
    key: PartitionKey,
    /// The last high watermark stored in (or read from) its checkpoint.
    high_watermark: Mutex<Option<i64>>,
    /// Held by a cleaning pass throughout; where the last pass ended, `None` until one ran.
    first_dirty_offset: Mutex<Option<clean::FirstDirty>>,
    /// The dirty ratio last seen and whether the last pass failed, for metrics.
    cleaner_status: clean::CleanerStatus,
    end_offset: watch::Sender<i64>,
    durable: watch::Sender<Durable>,
    recovery_report: RecoveryReport,
    /// The last free-space reading (`room`).
    room: room::Room,
}

#[derive(Debug)]
struct LogState {
    sealed: VecDeque<SealedSegment>,
    active: ActiveSegment,
    log_start_offset: i64,
    /// Sealed segments whose files have not been flushed since they were sealed.
    unflushed: Vec<SegmentFiles>,
    /// Which leader epoch wrote which offsets; its checkpoint is written under this lock.
    epochs: EpochCache,
    /// `epochs` holds an entry its checkpoint lacks: a leader's epoch that has written
    /// nothing yet ([`PartitionLog::begin_leader_epoch`]). Persisted with its first batch.
    epochs_unpersisted: bool,
    writes: Writes,
}

/// Whether the log takes writes.
#[derive(Debug, Clone)]
enum Writes {
    Open,
    /// Closed by a clean shutdown: no appends, but flushes still run.
    Closed(String),
    /// A write or fsync failed: nothing more is written, not even a flush.
    Poisoned(String),
}

impl LogState {
    fn log_end_offset(&self) -> i64 {
        self.active.next_offset()
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed
            .iter()
            .map(|segment| &**segment)
            .chain(std::iter::once(&*self.active))
    }

    /// The segments from the one containing `offset` (which must be below the log end
    /// offset) onwards.
    fn segments_from(&self, offset: i64) -> impl Iterator<Item = &Segment> {
        let skip = self
            .sealed
            .partition_point(|segment| segment.next_offset() <= offset);
        self.segments().skip(skip)
    }

    /// Where the oldest sealed segment ends (the next segment's base offset); `None`
    /// without sealed segments.
    fn oldest_sealed_end(&self) -> Option<i64> {
        self.sealed.front()?;
        Some(
            self.sealed
                .get(1)
                .map_or(self.active.base_offset(), |next| next.base_offset()),
        )
    }

    /// Take the oldest sealed segment off the log (its files are the caller's to remove),
    /// and forget it among the segments awaiting a flush.
    fn pop_oldest_sealed(&mut self) -> Option<SealedSegment> {
        let oldest = self.sealed.pop_front()?;
        self.unflushed
            .retain(|files| files.base_offset != oldest.base_offset());
        Some(oldest)
    }

    /// Appends need an open log.
    fn check_appendable(&self) -> Result<(), StorageError> {
        match &self.writes {
            Writes::Open => Ok(()),
            Writes::Closed(reason) | Writes::Poisoned(reason) => {
                Err(StorageError::Poisoned(reason.clone()))
            }
        }
    }

    /// Fsyncs and flushes need a log that is not poisoned.
    fn check_not_poisoned(&self) -> Result<(), StorageError> {
        match &self.writes {
            Writes::Poisoned(reason) => Err(StorageError::Poisoned(reason.clone())),
            Writes::Open | Writes::Closed(_) => Ok(()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a log lock means an invariant broke mid-update: do not go on.
    mutex
        .lock()
        .expect("a partition log lock was poisoned by a panic")
}

impl PartitionLog {
    /// What opening this log found and did.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery_report
    }

    /// `<topic>-<partition>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        lock(&self.state).log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        *self.end_offset.borrow()
    }

    fn offsets(&self) -> (i64, i64) {
        let state = lock(&self.state);
        (state.log_start_offset, state.log_end_offset())
    }

    /// Watch of the log end offset, bumped on every append.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.end_offset.subscribe()
    }

    /// Total bytes of all segments' logs.
    pub fn size_bytes(&self) -> u64 {
        lock(&self.state).segments().map(Segment::size_bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        lock(&self.state).sealed.len() + 1
    }

    /// Note the high watermark (owned by replication) for the data directory's
    /// high-watermark checkpoint ([`LogManager::checkpoint_offsets`] writes one file
    /// for every partition), clamped into `[log_start_offset, log_end_offset]`; returns the
    /// value noted. Refuses (`Poisoned`) on a poisoned log.
    ///
    /// [`LogManager::checkpoint_offsets`]: super::LogManager::checkpoint_offsets
    pub fn note_high_watermark(&self, high_watermark: i64) -> Result<i64, StorageError> {
        let mut stored = lock(&self.high_watermark);
        let clamped = {
            let state = lock(&self.state);
            state.check_not_poisoned()?;
            high_watermark.clamp(state.log_start_offset, state.log_end_offset())
        };
        *stored = Some(clamped);
        Ok(clamped)
    }

    /// Take the high watermark the data directory's checkpoint holds for this partition
    /// (at open; it is newer than a per-partition file of an older version).
    pub(super) fn restore_high_watermark(&self, high_watermark: i64) {
        *lock(&self.high_watermark) = Some(high_watermark);
    }

    /// The last high watermark checkpointed (in this run or, after a restart, found on
    /// disk), clamped into `[log_start_offset, log_end_offset]`: a truncation or a crash may
    /// have cut the log below it. `None` if none was ever checkpointed.
    pub fn high_watermark_checkpoint(&self) -> Option<i64> {
        let stored = *lock(&self.high_watermark);
        let (log_start_offset, log_end_offset) = self.offsets();
        stored.map(|high_watermark| high_watermark.clamp(log_start_offset, log_end_offset))
    }

    /// Refuse appends from now on (`why`: the broker is shutting down, the topic was
    /// deleted). Flushes and reads still work.
    pub(super) fn close_for_writes(&self, why: &str) {
        let mut state = lock(&self.state);
        if let Writes::Open = state.writes {
            state.writes = Writes::Closed(format!("the log of {} is closed: {why}", self.name));
        }
    }

    /// The settings in force now (a snapshot: a config change replaces them whole).
    pub fn config(&self) -> Arc<LogConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Apply a topic config change: later appends, rolls, retention and cleaning passes
    /// use `config`. The durability mode is fixed at creation (see `topic_config`), so it is
    /// kept as it was.
    pub fn set_config(&self, mut config: LogConfig) {
        let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
        config.durability = current.durability;
        *current = Arc::new(config);
    }

    /// The data directory's checkpoints this log records its offsets in.
    #[cfg(test)]
    pub(crate) fn dir_checkpoints(&self) -> &DirCheckpoints {
        &self.checkpoints
    }
}

#[cfg(test)]
fn one_record(timestamp: i64, seed: u64) -> bytes::BytesMut {
    crate::storage::testing::batch(1, timestamp, 20, seed)
}

#[cfg(test)]
mod replica_tests;
