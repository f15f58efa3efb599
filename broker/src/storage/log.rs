//! One partition's log: its ordered segments, append, read, roll, retention, durability.
//!
//! A [`PartitionLog`] is shared as `Arc<PartitionLog>` and synchronises itself.
//!
//! # Append
//! The server validates a Produce request's records; [`PartitionLog::append`] validates each
//! batch again (cheap, and it keeps "nothing malformed reaches storage" true whoever calls),
//! then for each batch: stamps `baseOffset` (from the log end offset) and
//! `partitionLeaderEpoch` in place, rolls the active segment first if the batch would make it
//! too big, it is too old, or its relative offsets would overflow, writes the bytes at the
//! end of the active segment and updates the sparse indexes. Batches are written exactly as
//! received otherwise.
//!
//! # Leader epochs
//! The log keeps its partition's leader-epoch cache (`epoch_cache`, persisted as
//! `leader-epoch-checkpoint`) in step with its batches: whenever an append brings a new
//! epoch, the cache records `(epoch, first offset)` and its checkpoint is made durable
//! *before* the batches are written, under the state lock. A leader taking over records its
//! epoch at once with [`PartitionLog::begin_leader_epoch`] (in memory; the checkpoint gets
//! it with the epoch's first batch). An epoch lower than the latest
//! is refused (`Corrupt`, nothing written): epochs never go back along the log.
//! [`PartitionLog::end_offset_for_epoch`] answers OffsetsForLeaderEpoch.
//!
//! On open the checkpoint is reconciled with what recovery found: entries at or past the
//! log end offset are dropped (the crash lost their batches), entries below the log start
//! offset collapse into it, and the batches of every segment recovery scanned are checked
//! against the cache (epochs the checkpoint lacks at the end of the log are learnt). A
//! checkpoint that is missing, unreadable, does not cover the log from its first record
//! (every batch carries an epoch) or is contradicted by the scanned batches is **rebuilt
//! from every batch header** (`RecoveryReport::epoch_cache_rebuilt`). A new, empty log
//! writes no checkpoint until it has an epoch.
//!
//! # Follower append
//! [`PartitionLog::append_as_follower`] takes batches fetched from the leader as they are:
//! they already carry their offsets and epochs, so nothing is stamped and the bytes on disk
//! are the leader's bytes. Each batch is validated; the first must start at the log end
//! offset (else `OffsetOutOfRange`, nothing written) and each next one where the previous
//! ended; each must carry an epoch, and epochs must not go back (else `Corrupt`).
//!
//! # Truncation
//! A follower whose tail diverges from its leader's removes it with
//! [`PartitionLog::truncate_to`]; one that fell behind the leader's log start starts over
//! with [`PartitionLog::truncate_fully_and_start_at`]. Both hold the `sync` and `state`
//! locks throughout (no append, read or fsync interleaves) and are durable when they
//! return. The order of `truncate_to(offset)`, and why a crash at any point leaves a log
//! that recovery turns into either the old log or a prefix of it (never truncated records
//! coming back *after* the truncation was reported done, never a log with a hole):
//! 1. Lower the recovery-point checkpoint to `offset` (if above). From now on an unclean
//!    open scans the segment containing `offset` and everything after it instead of
//!    trusting their sizes: a sealed segment is trusted to end where its successor starts,
//!    which a half-done truncation would make a lie.
//! 2. Detach the later segments and delete their files, last segment first.
//! 3. Cut the segment containing `offset` at the batch boundary (log, offset index, time
//!    index) and make it the active segment.
//! 4. Fsync its three files, then fsync the directory. Until this point a crash leaves
//!    either the old bytes of each file or the new ones; recovery's scan and its contiguity
//!    check (a segment that does not start where the previous one ends is dropped with
//!    everything after it) turn every mix into a prefix of the old log, at least `offset`
//!    long. After it the truncation is durable.
//! 5. Drop the epoch-cache entries at or past `offset` and write the checkpoint. Written
//!    only now, so the checkpoint never lacks an epoch of data that is still on disk; if the
//!    crash comes before, open drops the stale entries (they start past the end).
//! 6. Publish the new log end offset (subscribers wake), clamp the durable offset to it.
//!
//! A crash during `truncate_fully_and_start_at(offset)` (for `offset >=` the log end
//! offset) is safe by the same kind of argument: (1) the epoch cache is emptied (an empty
//! cache over a non-empty log is rebuilt on open), (2) an empty segment at `offset` is
//! created and its directory entry made durable (before the log-start checkpoint moves it
//! is dropped by the contiguity check), (3) the log-start checkpoint moves to `offset`
//! (from now on recovery deletes every older segment), (4) the old segments are deleted and
//! (5) the recovery point moves to `offset`.
//!
//! Any failure after the first change poisons the log: memory and disk may disagree until
//! a restart recovers the log.
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
//! # Read
//! [`PartitionLog::read`] finds the segment holding the offset, the nearest offset-index
//! entry at or before it, scans batch headers forward to the batch containing the offset,
//! then returns whole batches up to `max_bytes`, continuing into later segments. The first
//! batch is returned whole even if it alone exceeds `max_bytes`.
//!
//! # Durability
//! - `Durability::Replicated`: appends stay in the page cache. The log is flushed (data,
//!   indexes, recovery-point checkpoint) when a segment rolls and on shutdown.
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
//!
//! # Retention
//! [`PartitionLog::apply_retention`] deletes whole sealed segments from the front while the
//! oldest is past `retention_ms` (by its largest timestamp) or removing it leaves the log at
//! least `retention_bytes` big. The active segment is never deleted. The log start offset
//! advances to the new first segment and is checkpointed.
//!
//! # Locks
//! - `state`: segments, offsets, epoch cache, poison. Held by append, read, retention and
//!   briefly by the syncer, never during an fsync, except for rare events: roll creates and
//!   syncs a directory entry, a new epoch writes the epoch checkpoint, truncation holds it
//!   throughout.
//! - `sync`: held by whoever fsyncs (group-commit syncer or flush) and by truncation; it
//!   also guards the recovery-point checkpoint. Whoever releases it then notifies the
//!   durable watch, so a waiter that found it taken always wakes and looks again.
//! - `log_start_checkpoint`: serialises writes of the log-start-offset checkpoint.
//! - `high_watermark`: serialises writes of the high-watermark checkpoint.
//!
//! Lock order: `sync` before `log_start_checkpoint` before `state`; `high_watermark` before
//! `state`. `state` is never held while taking another.
//!
//! # Invariants
//! - `log_start_offset <= log_end_offset`; offsets are contiguous (asserted on append).
//! - The segments are ordered by base offset; each sealed segment ends where the next begins;
//!   the last one is the active segment.
//! - `durable_offset <= log_end_offset`. Both only grow, except that a truncation lowers
//!   both to the truncation offset.
//! - The epoch cache describes the batches (see `epoch_cache`): epochs never go back, and
//!   no entry starts past the log end offset.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sluice_protocol::batch::{self, BatchHeader, BatchIterError, Batches};
use tokio::sync::watch;

use super::checkpoint::{self, HIGH_WATERMARK_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use super::epoch_cache::{self, EpochCache, EpochEndOffset, EpochEntry, EpochRegression};
use super::fs::{FileSystem, StorageFile};
use super::recovery::{self, Recovered, RecoveryReport, ShutdownState};
use super::segment::{
    ActiveSegment, FirstBatch, ReadEnd, SealedSegment, Segment, SegmentFiles, SegmentPaths,
};
use super::{Durability, LogConfig, StorageError};
use crate::metrics as m;

/// Where an append put its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The log start offset at the time of the append.
    pub log_start_offset: i64,
}

/// One partition's log. See the module documentation.
#[derive(Debug)]
pub struct PartitionLog {
    /// `<topic>-<partition>`, for log lines and errors.
    name: String,
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    config: LogConfig,
    state: Mutex<LogState>,
    sync: Mutex<SyncState>,
    /// The last log start offset written to its checkpoint.
    log_start_checkpoint: Mutex<i64>,
    /// The last high watermark stored in (or read from) its checkpoint.
    high_watermark: Mutex<Option<i64>>,
    end_offset: watch::Sender<i64>,
    durable: watch::Sender<Durable>,
    recovery_report: RecoveryReport,
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

#[derive(Debug)]
struct SyncState {
    /// Offset below which log and indexes are flushed, as last checkpointed.
    recovery_point: i64,
}

#[derive(Debug, Clone)]
struct Durable {
    /// Every offset below this is fsynced.
    offset: i64,
    refusal: Option<String>,
    /// Truncations so far, and the most recent ones, so that a durability waiter whose
    /// offset was truncated away learns it even if new records reached that offset since.
    truncations: u64,
    recent_truncations: VecDeque<Truncation>,
}

/// Most truncations a durability waiter can look back over; one that slept through more
/// is answered as if its offset was truncated (it may have been).
const RECENT_TRUNCATIONS_MAX: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Truncation {
    /// Its number: the first truncation is 1.
    number: u64,
    /// The first offset it removed.
    removed_from: i64,
}

impl Durable {
    fn new(offset: i64) -> Durable {
        Durable {
            offset,
            refusal: None,
            truncations: 0,
            recent_truncations: VecDeque::new(),
        }
    }

    /// Whether a truncation after the first `since` ones removed `offset`.
    fn truncated_since(&self, since: u64, offset: i64) -> bool {
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

    /// Every offset from `removed_from` on was removed; the log now ends at `log_end_offset`.
    fn note_truncation(&mut self, removed_from: i64, log_end_offset: i64) {
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a log lock means an invariant broke mid-update: do not go on.
    mutex
        .lock()
        .expect("a partition log lock was poisoned by a panic")
}

impl PartitionLog {
    /// Open (or create) the log in `dir`, recovering it if `shutdown` was unclean. `name`
    /// identifies it in log lines (`<topic>-<partition>`).
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        name: String,
        config: LogConfig,
        shutdown: ShutdownState,
    ) -> Result<PartitionLog, StorageError> {
        fs.create_dir_all(&dir)?;
        let recovery_point = checkpoint::read_offset(&*fs, &dir, RECOVERY_POINT_FILE)?.unwrap_or(0);
        let mut recovered = recovery::recover(&*fs, &dir, &config, shutdown)?;
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
        let log = PartitionLog {
            name,
            dir,
            fs,
            config,
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
            log_start_checkpoint: Mutex::new(-1),
            high_watermark: Mutex::new(high_watermark),
            end_offset: watch::Sender::new(log_end_offset),
            // What recovery kept is durable once the flush below has run.
            durable: watch::Sender::new(Durable::new(log_end_offset)),
            recovery_report: report,
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

    /// Append already-validated batches (as received in a Produce request; may be several
    /// back to back) as the leader of `leader_epoch`. See the module documentation.
    ///
    /// Refuses (`Poisoned`) once the log is poisoned or closed. A corrupt batch, or a
    /// `leader_epoch` older than the log's latest epoch, is refused (`Corrupt`) before
    /// anything is written. If the flush that follows a segment roll fails, the batches are
    /// in the log but the log is poisoned and the error is returned.
    pub fn append(
        &self,
        mut records: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let mut batches = validate_all(&records)?;
        let mut state = lock(&self.state);
        state.check_appendable()?;
        let base_offset = state.log_end_offset();
        let mut next_offset = base_offset;
        for (start, header) in &mut batches {
            batch::stamp(
                &mut records[*start..*start + header.size_bytes()],
                next_offset,
                leader_epoch,
            );
            header.base_offset = next_offset;
            header.partition_leader_epoch = leader_epoch;
            next_offset = header.next_offset();
        }
        self.record_epochs(&mut state, &[(leader_epoch, base_offset)])?;
        let rolled = self.write_batches(&mut state, &records, &batches, now_ms)?;
        self.finish_append(state, base_offset, rolled)
    }

    /// Append batches fetched from the leader, exactly as they are: they already carry
    /// their offsets and leader epochs, and nothing is stamped. See the module
    /// documentation.
    ///
    /// Refuses before writing anything: `OffsetOutOfRange` if the first batch does not
    /// start at the log end offset; `Corrupt` if a batch is invalid, does not start where
    /// the previous one ended, carries no leader epoch or an epoch older than the one
    /// before it (or than the log's latest); `Poisoned` once the log is poisoned or closed.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let batches = validate_all(records)?;
        let mut state = lock(&self.state);
        state.check_appendable()?;
        let base_offset = state.log_end_offset();
        if batches[0].1.base_offset != base_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: batches[0].1.base_offset,
                log_start_offset: state.log_start_offset,
                log_end_offset: base_offset,
            });
        }
        let mut next_offset = base_offset;
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        for (start, header) in &batches {
            if header.base_offset != next_offset {
                return Err(StorageError::Corrupt(format!(
                    "{}: the replicated batch at byte {start} has base offset {}, expected {next_offset}: batches must be contiguous",
                    self.name, header.base_offset
                )));
            }
            if header.partition_leader_epoch < 0 {
                return Err(StorageError::Corrupt(format!(
                    "{}: the replicated batch at offset {next_offset} carries no leader epoch",
                    self.name
                )));
            }
            if epochs
                .last()
                .is_none_or(|(epoch, _)| *epoch != header.partition_leader_epoch)
            {
                epochs.push((header.partition_leader_epoch, header.base_offset));
            }
            next_offset = header.next_offset();
        }
        self.record_epochs(&mut state, &epochs)?;
        let rolled = self.write_batches(&mut state, records, &batches, now_ms)?;
        self.finish_append(state, base_offset, rolled)
    }

    /// Record in the epoch cache that each `(epoch, start offset)` begins (in offset order),
    /// making the checkpoint durable before the batches are written. Refuses (`Corrupt`)
    /// an epoch going back, changing nothing. A failed checkpoint write poisons the log.
    fn record_epochs(
        &self,
        state: &mut LogState,
        epochs: &[(i32, i64)],
    ) -> Result<(), StorageError> {
        // The common case: every batch of the latest epoch.
        if let ([(epoch, start_offset)], Some(latest)) = (epochs, state.epochs.latest()) {
            if *epoch == latest.epoch && *start_offset >= latest.start_offset {
                if state.epochs_unpersisted {
                    // The first batch of an epoch begun by `begin_leader_epoch`.
                    if let Err(error) = epoch_cache::persist(&*self.fs, &self.dir, &state.epochs) {
                        return Err(self.poison(
                            state,
                            format!("writing the leader-epoch checkpoint failed: {error}"),
                        ));
                    }
                    state.epochs_unpersisted = false;
                }
                return Ok(());
            }
        }
        let mut next = state.epochs.clone();
        let mut changed = false;
        for &(epoch, start_offset) in epochs {
            changed |= next
                .assign(epoch, start_offset)
                .map_err(|regression| self.epoch_refusal(regression))?;
        }
        if changed {
            if let Err(error) = epoch_cache::persist(&*self.fs, &self.dir, &next) {
                return Err(self.poison(
                    state,
                    format!("writing the leader-epoch checkpoint failed: {error}"),
                ));
            }
            // Replication logs the leader change itself (one line per change).
            tracing::debug!(partition = %self.name, epochs = ?next.entries().last(), "new leader epoch");
            state.epochs = next;
            state.epochs_unpersisted = false;
        }
        Ok(())
    }

    fn epoch_refusal(&self, regression: EpochRegression) -> StorageError {
        StorageError::Corrupt(format!(
            "{}: {regression}; leader epochs never go back along a log",
            self.name
        ))
    }

    /// Write validated, stamped batches at the end of the log, rolling as needed. Returns
    /// whether a segment rolled. A failure poisons the log.
    fn write_batches(
        &self,
        state: &mut LogState,
        records: &[u8],
        batches: &[(usize, BatchHeader)],
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut rolled = false;
        for (start, header) in batches {
            let bytes = &records[*start..*start + header.size_bytes()];
            let offset = header.base_offset;
            if state
                .active
                .should_roll(bytes.len(), header.last_offset(), now_ms, &self.config)
            {
                if let Err(error) = self.roll(state) {
                    return Err(self.poison(
                        state,
                        format!("rolling a new segment at offset {offset} failed: {error}"),
                    ));
                }
                rolled = true;
            }
            if let Err(error) = state.active.append(bytes, header, now_ms) {
                return Err(self.poison(
                    state,
                    format!("writing the batch at offset {offset} failed: {error}"),
                ));
            }
            metrics::counter!(m::LOG_BYTES_APPENDED_TOTAL).increment(bytes.len() as u64);
        }
        Ok(rolled)
    }

    /// Publish the new log end offset and, after a roll, flush.
    fn finish_append(
        &self,
        state: MutexGuard<'_, LogState>,
        base_offset: i64,
        rolled: bool,
    ) -> Result<AppendInfo, StorageError> {
        let log_end_offset = state.log_end_offset();
        let info = AppendInfo {
            base_offset,
            last_offset: log_end_offset - 1,
            log_start_offset: state.log_start_offset,
        };
        // Under the state lock, so concurrent appends publish in order.
        self.end_offset.send_replace(log_end_offset);
        drop(state);
        if rolled {
            // Outside the state lock: appends and reads go on during the fsyncs.
            self.flush()?;
        }
        Ok(info)
    }

    /// A replica becoming leader of `epoch` records that the epoch starts at its log end
    /// offset, before its first append (Kafka's `maybeAssignEpochStartOffset`): followers
    /// asking where the previous epoch ended then get this offset. Returns the epoch's start
    /// offset, which a follower must reach to join the ISR. Refuses (`Corrupt`) an epoch
    /// older than the log's latest; for the latest epoch it only returns its start offset.
    ///
    /// The entry is recorded in memory only; the checkpoint gets it with the epoch's first
    /// batch. Until then it describes no record, and an entry at the log end would be dropped
    /// by the next open anyway, so writing it now (two fsyncs and a new file, for every
    /// partition a restarted broker leads again) would buy nothing.
    pub fn begin_leader_epoch(&self, epoch: i32) -> Result<i64, StorageError> {
        let mut state = lock(&self.state);
        state.check_appendable()?;
        let log_end_offset = state.log_end_offset();
        let mut next = state.epochs.clone();
        if next
            .assign(epoch, log_end_offset)
            .map_err(|regression| self.epoch_refusal(regression))?
        {
            state.epochs = next;
            state.epochs_unpersisted = true;
        }
        Ok(state
            .epochs
            .latest()
            .map_or(log_end_offset, |latest| latest.start_offset))
    }

    /// The latest leader epoch that wrote to (or took over) this log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        lock(&self.state).epochs.latest_epoch()
    }

    /// Where `epoch` ends in this log (OffsetsForLeaderEpoch, KIP-279): the largest known
    /// epoch `<= epoch` and the offset one past its last record; `None` if undefined. See
    /// `EpochCache::end_offset_for` for Kafka's cases.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<EpochEndOffset> {
        let state = lock(&self.state);
        state.epochs.end_offset_for(epoch, state.log_end_offset())
    }

    /// The leader-epoch cache's entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        lock(&self.state).epochs.entries().to_vec()
    }

    /// Seal the active segment and start a new one at the log end offset.
    fn roll(&self, state: &mut LogState) -> Result<(), StorageError> {
        let base_offset = state.log_end_offset();
        // Everything fallible happens before the swap, so a failure leaves the segments as
        // they were (and the log poisoned).
        state.active.update_time_index()?;
        let fresh = ActiveSegment::create(
            &*self.fs,
            &self.dir,
            base_offset,
            self.config.index_interval_bytes,
        )?;
        // The new files' directory entries must be durable before data in them can be.
        self.fs.sync_dir(&self.dir)?;
        let sealed = std::mem::replace(&mut state.active, fresh).seal();
        tracing::debug!(partition = %self.name, base_offset, sealed_base_offset = sealed.base_offset(), "rolled segment");
        state.unflushed.push(sealed.files());
        state.sealed.push_back(sealed);
        Ok(())
    }

    /// Refuse writes from now on; wake every durability waiter with the error.
    fn poison(&self, state: &mut LogState, what: String) -> StorageError {
        let reason = format!(
            "{what}; the log of {} is poisoned and refuses writes until the broker restarts and recovers it",
            self.name
        );
        tracing::error!(partition = %self.name, %reason, "poisoning partition log");
        let reason = match &state.writes {
            // The first failure is the one to report.
            Writes::Poisoned(first) => first.clone(),
            Writes::Open | Writes::Closed(_) => reason,
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
                if self.config.durability == Durability::Replicated || current.offset > offset {
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
    fn notify_durable_waiters(&self) {
        self.durable.send_modify(|_| {});
    }

    /// Read whole batches from the one containing `offset`; see the module documentation.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        let state = lock(&self.state);
        let log_end_offset = state.log_end_offset();
        if offset < state.log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: state.log_start_offset,
                log_end_offset,
            });
        }
        let mut out = BytesMut::new();
        if offset == log_end_offset {
            return Ok(out.freeze());
        }
        let mut first = true;
        for segment in state.segments_from(offset) {
            let (position, rule) = if first {
                (segment.find_position(offset)?, FirstBatch::Whole)
            } else {
                (0, FirstBatch::IfFits)
            };
            first = false;
            let budget = max_bytes.saturating_sub(out.len());
            if segment.read_into(position, budget, rule, &mut out)? == ReadEnd::BudgetSpent {
                break;
            }
        }
        Ok(out.freeze())
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

    /// Offset below which data is known durable: the last fsync's log end offset
    /// (`Fsync`), or the log end offset (`Replicated`).
    pub fn durable_offset(&self) -> i64 {
        match self.config.durability {
            Durability::Fsync => self.durable.borrow().offset,
            Durability::Replicated => self.log_end_offset(),
        }
    }

    /// Watch of the log end offset, bumped on every append.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.end_offset.subscribe()
    }

    /// A future that resolves at the next change of what consumers may see: an append, or
    /// with `Durability::Fsync` a completed fsync. It is armed when this is called, so a
    /// caller that calls it *before* reading cannot miss a change that lands in between.
    pub fn durable_end_changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        enum Armed {
            End(watch::Receiver<i64>),
            Durable(watch::Receiver<Durable>),
        }
        let mut armed = match self.config.durability {
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

    /// The first batch whose max timestamp is `>= timestamp_ms`: `(its base offset, its max
    /// timestamp)`, or `None` if no batch has such a timestamp.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let state = lock(&self.state);
        for segment in state.segments() {
            if let Some(found) = segment.find_timestamp(timestamp_ms)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Delete whole sealed segments past retention; returns how many were deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        self.apply_retention_below(now_ms, i64::MAX)
    }

    /// [`PartitionLog::apply_retention`], deleting only segments that end at or below
    /// `limit_offset`: replication passes the high watermark, so the log start never passes
    /// records a follower may still need to fetch, and a new leader never finds its log start
    /// above what the ISR has acknowledged (Kafka's rule).
    pub fn apply_retention_below(
        &self,
        now_ms: i64,
        limit_offset: i64,
    ) -> Result<usize, StorageError> {
        let mut checkpointed = lock(&self.log_start_checkpoint);
        let (deleted, deleted_bytes, log_start_offset) = {
            let mut state = lock(&self.state);
            let mut total_bytes: u64 = state.segments().map(Segment::size_bytes).sum();
            let mut doomed = Vec::new();
            while let Some(oldest) = state.sealed.front() {
                let expired = match self.config.retention_ms {
                    // A segment without timestamps never expires by time.
                    Some(retention_ms) if oldest.max_timestamp() >= 0 => {
                        i128::from(now_ms) - i128::from(oldest.max_timestamp())
                            > i128::from(retention_ms)
                    }
                    _ => false,
                };
                let oversized = self.config.retention_bytes.is_some_and(|retention_bytes| {
                    total_bytes - oldest.size_bytes() >= retention_bytes
                });
                if !(expired || oversized) {
                    break;
                }
                let end_offset = state
                    .sealed
                    .get(1)
                    .map_or(state.active.base_offset(), |next| next.base_offset());
                if end_offset > limit_offset {
                    break;
                }
                let Some(oldest) = state.sealed.pop_front() else {
                    break;
                };
                total_bytes -= oldest.size_bytes();
                doomed.push(oldest);
            }
            if doomed.is_empty() {
                return Ok(0);
            }
            let new_start = state
                .sealed
                .front()
                .map_or(state.active.base_offset(), |segment| segment.base_offset());
            state.log_start_offset = state.log_start_offset.max(new_start);
            state.unflushed.retain(|files| {
                doomed
                    .iter()
                    .all(|segment| segment.base_offset() != files.base_offset)
            });
            for segment in &doomed {
                segment.paths().remove(&*self.fs)?;
            }
            let deleted_bytes: u64 = doomed.iter().map(|segment| segment.size_bytes()).sum();
            metrics::counter!(m::RETENTION_SEGMENTS_DELETED_TOTAL).increment(doomed.len() as u64);
            metrics::counter!(m::RETENTION_BYTES_DELETED_TOTAL).increment(deleted_bytes);
            // Entries below the log start are harmless on disk (open drops them), so a
            // failed write here only fails this pass.
            let log_start_offset = state.log_start_offset;
            if state.epochs.truncate_from_start(log_start_offset) {
                epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
            }
            (doomed.len(), deleted_bytes, log_start_offset)
        };
        tracing::info!(partition = %self.name, deleted, deleted_bytes, log_start_offset, "retention deleted segments");
        if *checkpointed != log_start_offset {
            checkpoint::write_offset(
                &*self.fs,
                &self.dir,
                LOG_START_OFFSET_FILE,
                log_start_offset,
            )?;
            *checkpointed = log_start_offset;
        }
        Ok(deleted)
    }

    /// Total bytes of all segments' logs.
    pub fn size_bytes(&self) -> u64 {
        lock(&self.state).segments().map(Segment::size_bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        lock(&self.state).sealed.len() + 1
    }

    /// Remove every record at or past `offset`: a follower cutting the tail where its log
    /// diverges from its leader's. Durable when it returns; see the module documentation
    /// for the order of the steps and why a crash at any point is safe. Returns whether
    /// any record was removed (none is when `offset >=` the log end offset; epochs that
    /// start at the log end offset, which wrote nothing, are still forgotten).
    ///
    /// Refuses, changing nothing: `OffsetOutOfRange` below the log start offset; `Corrupt`
    /// if `offset` lies inside a batch (replicas truncate only where an epoch or a batch
    /// ends, and the batches are the leader's, so its boundaries are theirs);
    /// `Poisoned` once the log is poisoned or closed. A failure part-way poisons the log.
    pub fn truncate_to(&self, offset: i64) -> Result<bool, StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            let mut state = lock(&self.state);
            self.truncate_locked(&mut sync, &mut state, offset)
        };
        self.notify_durable_waiters();
        result
    }

    fn truncate_locked(
        &self,
        sync: &mut SyncState,
        state: &mut LogState,
        offset: i64,
    ) -> Result<bool, StorageError> {
        state.check_appendable()?;
        let log_end_offset = state.log_end_offset();
        if offset >= log_end_offset {
            // No record to remove, but an epoch that starts at the end wrote nothing: this
            // replica led it briefly. As a follower it must forget it, or it would name it
            // as its last fetched epoch and refuse its leader's older-epoch batches at this
            // offset (Kafka's `UnifiedLog.truncateTo` does the same). Dropping entries past
            // the data is safe at any time, so a failed write does not poison.
            if state.epochs.truncate_from_end(log_end_offset) {
                epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
            }
            return Ok(false);
        }
        if offset < state.log_start_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: state.log_start_offset,
                log_end_offset,
            });
        }
        let containing = state
            .sealed
            .partition_point(|segment| segment.next_offset() <= offset);
        let segment: &Segment = state
            .sealed
            .get(containing)
            .map_or(&*state.active, |sealed| &**sealed);
        if segment.batch_start_position(offset)?.is_none() {
            return Err(StorageError::Corrupt(format!(
                "{}: cannot truncate to offset {offset}, which lies inside a batch: replicas truncate only at batch boundaries",
                self.name
            )));
        }
        let result = self.truncate_segments(sync, state, containing, offset);
        // Whatever happened, publish what memory now holds.
        let log_end_offset = state.log_end_offset();
        self.end_offset.send_replace(log_end_offset);
        self.durable
            .send_modify(|durable| durable.note_truncation(offset, log_end_offset));
        match result {
            Ok(()) => {
                // The caller (the follower's fetcher) logs the truncation with its epochs.
                tracing::debug!(partition = %self.name, log_end_offset, "truncated log");
                Ok(true)
            }
            Err(error) => Err(self.poison(
                state,
                format!("truncating to offset {offset} failed: {error}"),
            )),
        }
    }

    /// Steps 1 to 5 of truncation (module documentation); `containing` indexes the sealed
    /// segment holding `offset`, or is the sealed count if the active one does.
    fn truncate_segments(
        &self,
        sync: &mut SyncState,
        state: &mut LogState,
        containing: usize,
        offset: i64,
    ) -> Result<(), StorageError> {
        // 1. From now on an unclean open scans everything from `offset` on.
        if sync.recovery_point > offset {
            checkpoint::write_offset(&*self.fs, &self.dir, RECOVERY_POINT_FILE, offset)?;
            sync.recovery_point = offset;
        }
        // 2. Detach the later segments, delete their files, last first.
        let mut doomed: Vec<SegmentPaths> = Vec::new();
        if containing < state.sealed.len() {
            let later = state.sealed.split_off(containing + 1);
            let Some(sealed) = state.sealed.pop_back() else {
                unreachable!("the containing segment is sealed");
            };
            let reopened = ActiveSegment::reopen(sealed)?;
            let old_active = std::mem::replace(&mut state.active, reopened);
            doomed.extend(later.iter().map(|segment| segment.paths().clone()));
            doomed.push(old_active.paths().clone());
        }
        let containing_base = state.active.base_offset();
        state
            .unflushed
            .retain(|files| files.base_offset < containing_base);
        for paths in doomed.iter().rev() {
            paths.remove(&*self.fs)?;
        }
        // 3. Cut the containing segment, now the active one.
        state.active.truncate_to(offset)?;
        // 4. Make the cut and the deletions durable.
        let files = state.active.files();
        for file in [&files.log, &files.offset_index, &files.time_index] {
            file.sync()?;
        }
        self.fs.sync_dir(&self.dir)?;
        // 5. Only now may the checkpoint forget the epochs of the removed records.
        if state.epochs.truncate_from_end(offset) {
            epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
        }
        Ok(())
    }

    /// Remove every record and start the log over, empty, at `offset` (`>=` the log end
    /// offset): a follower whose log ends before its leader's log start offset. The log
    /// start offset becomes `offset` and the epoch cache is emptied. Durable when it
    /// returns; see the module documentation for the crash-safe order.
    ///
    /// Refuses, changing nothing: `OffsetOutOfRange` below the log end offset (use
    /// [`PartitionLog::truncate_to`]); `Poisoned` once the log is poisoned or closed. A
    /// failure part-way poisons the log.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            let mut checkpointed = lock(&self.log_start_checkpoint);
            let mut state = lock(&self.state);
            state.check_appendable()?;
            let log_end_offset = state.log_end_offset();
            if offset < log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: state.log_start_offset,
                    log_end_offset,
                });
            }
            let removed_from = state.log_start_offset;
            let result = self.restart_segments(&mut sync, &mut checkpointed, &mut state, offset);
            let log_end_offset = state.log_end_offset();
            self.end_offset.send_replace(log_end_offset);
            self.durable.send_modify(|durable| {
                durable.note_truncation(removed_from, log_end_offset);
                if result.is_ok() {
                    // Nothing below the new start remains to be fsynced.
                    durable.offset = log_end_offset;
                }
            });
            match result {
                Ok(()) => {
                    tracing::debug!(partition = %self.name, offset, "emptied log and restarted it");
                    Ok(())
                }
                Err(error) => Err(self.poison(
                    &mut state,
                    format!("restarting the log at offset {offset} failed: {error}"),
                )),
            }
        };
        self.notify_durable_waiters();
        result
    }

    fn restart_segments(
        &self,
        sync: &mut SyncState,
        checkpointed: &mut i64,
        state: &mut LogState,
        offset: i64,
    ) -> Result<(), StorageError> {
        // 1. An empty cache over a non-empty log is rebuilt on open.
        if !state.epochs.is_empty() {
            state.epochs = EpochCache::default();
            epoch_cache::persist(&*self.fs, &self.dir, &state.epochs)?;
        }
        // 2. The new, empty segment (unless the active one already is it).
        let reuse_active = state.active.base_offset() == offset;
        assert!(
            !reuse_active || state.active.is_empty(),
            "a segment at or past the log end offset is empty"
        );
        if !reuse_active {
            let fresh = ActiveSegment::create(
                &*self.fs,
                &self.dir,
                offset,
                self.config.index_interval_bytes,
            )?;
            self.fs.sync_dir(&self.dir)?;
            let old_active = std::mem::replace(&mut state.active, fresh);
            state.sealed.push_back(old_active.seal());
        }
        // 3. From now on recovery deletes every older segment.
        checkpoint::write_offset(&*self.fs, &self.dir, LOG_START_OFFSET_FILE, offset)?;
        *checkpointed = offset;
        state.log_start_offset = offset;
        // 4. Delete the old segments, last first.
        let doomed = std::mem::take(&mut state.sealed);
        state.unflushed.clear();
        for segment in doomed.iter().rev() {
            segment.paths().remove(&*self.fs)?;
        }
        self.fs.sync_dir(&self.dir)?;
        // 5. Nothing to recover below the new start.
        checkpoint::write_offset(&*self.fs, &self.dir, RECOVERY_POINT_FILE, offset)?;
        sync.recovery_point = offset;
        Ok(())
    }

    /// Note the high watermark (owned by replication) for the data directory's
    /// high-watermark checkpoint ([`LogManager::checkpoint_high_watermarks`] writes one file
    /// for every partition), clamped into `[log_start_offset, log_end_offset]`; returns the
    /// value noted. Refuses (`Poisoned`) on a poisoned log.
    ///
    /// [`LogManager::checkpoint_high_watermarks`]: super::LogManager::checkpoint_high_watermarks
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

    /// Fsync every unflushed segment (log and indexes) and move the recovery point to the
    /// log end offset. A failure poisons the log.
    pub fn flush(&self) -> Result<(), StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            self.flush_locked(&mut sync)
        };
        self.notify_durable_waiters();
        result
    }

    fn flush_everything(&self) -> Result<(), StorageError> {
        let result = {
            let mut sync = lock(&self.sync);
            // Force the checkpoint to be written.
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
        if let Err(error) =
            checkpoint::write_offset(&*self.fs, &self.dir, RECOVERY_POINT_FILE, log_end_offset)
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

    /// Refuse appends from now on (`why`: the broker is shutting down, the topic was
    /// deleted). Flushes and reads still work.
    pub(super) fn close_for_writes(&self, why: &str) {
        let mut state = lock(&self.state);
        if let Writes::Open = state.writes {
            state.writes = Writes::Closed(format!("the log of {} is closed: {why}", self.name));
        }
    }

    pub fn config(&self) -> LogConfig {
        self.config.clone()
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
        // Every batch has an epoch, so the cache of a non-empty log covers it from its start.
        let first_start = epochs.entries().first().map(|entry| entry.start_offset);
        let mut verdict = if log_start_offset < log_end_offset
            && first_start.is_none_or(|start| start > log_start_offset)
        {
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
        for run in segment.epoch_runs()? {
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

/// Check that the batches of a scanned `segment` carry the epochs `epochs` says they do;
/// epochs past the cache's latest, at the end of the log, are added (their checkpoint
/// write did not survive). `Ok(Err(why))` if they contradict it.
fn check_epochs(
    epochs: &mut EpochCache,
    segment: &Segment,
    log_start_offset: i64,
) -> Result<Result<(), String>, StorageError> {
    let runs = segment.epoch_runs()?;
    for (i, run) in runs.iter().enumerate() {
        let run_end = runs
            .get(i + 1)
            .map_or(segment.next_offset(), |next| next.start_offset);
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

/// Whether recovery rewrote anything that a flush must make durable.
fn report_changed_files(report: &RecoveryReport) -> bool {
    report.indexes_rebuilt > 0 || report.segments_dropped > 0 || report.bytes_truncated > 0
}

/// Check every batch of an append: whole, valid, back to back. Returns each batch's start
/// and header.
fn validate_all(records: &[u8]) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    let mut batches = Vec::new();
    let mut start = 0;
    for item in Batches::new(records) {
        match item {
            Ok((_, bytes)) => {
                let header = batch::validate(bytes)?;
                batches.push((start, header));
                start += bytes.len();
            }
            Err(BatchIterError::Partial { position }) => {
                return Err(StorageError::Corrupt(format!(
                    "records end inside the batch at byte {position}"
                )))
            }
            Err(BatchIterError::Corrupt { position, error }) => {
                return Err(StorageError::Corrupt(format!(
                    "batch at byte {position}: {error}"
                )))
            }
        }
    }
    if batches.is_empty() {
        return Err(StorageError::Corrupt(
            "an append must carry at least one batch".into(),
        ));
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::fs::FaultInjectingFileSystem;
    use crate::storage::testing::{batch, headers, open_log, stamped, std_fs, test_config};

    fn one_record(timestamp: i64, seed: u64) -> BytesMut {
        batch(1, timestamp, 20, seed)
    }

    #[test]
    fn append_assigns_contiguous_offsets_and_stamps_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        let mut two = batch(3, 100, 10, 1);
        two.extend_from_slice(&batch(2, 200, 10, 2));
        let info = log.append(two, 7, 0).unwrap();
        assert_eq!(
            (info.base_offset, info.last_offset, info.log_start_offset),
            (0, 4, 0)
        );
        let info = log.append(batch(1, 300, 10, 3), 8, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (5, 5));
        assert_eq!(log.log_end_offset(), 6);

        let read = log.read(0, usize::MAX).unwrap();
        let found: Vec<(i64, i32, i32)> = headers(&read)
            .iter()
            .map(|header| {
                (
                    header.base_offset,
                    header.records_count,
                    header.partition_leader_epoch,
                )
            })
            .collect();
        assert_eq!(found, vec![(0, 3, 7), (3, 2, 7), (5, 1, 8)]);
    }

    #[test]
    fn an_unclean_open_fsyncs_only_logs_with_unflushed_data() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultInjectingFileSystem::new(std_fs()));
        let as_fs: Arc<dyn FileSystem> = fs.clone();
        let log = open_log(&as_fs, dir.path(), &test_config(), ShutdownState::Clean);
        log.append(batch(3, 100, 10, 1), 0, 0).unwrap();
        log.flush().unwrap();
        drop(log); // a crash after the flush

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
        drop(log);
        let before = fs.file_sync_count();
        open_log(&as_fs, dir.path(), &test_config(), ShutdownState::Unclean);
        assert_eq!(fs.file_sync_count(), before, "and only once");
    }

    #[test]
    fn append_refuses_a_corrupt_batch_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        let mut records = batch(1, 100, 10, 1);
        let mut bad = batch(2, 100, 10, 2);
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        records.extend_from_slice(&bad);
        assert!(
            matches!(log.append(records, 0, 0), Err(StorageError::Corrupt(why)) if why.contains("CRC"))
        );
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.size_bytes(), 0);
    }

    #[test]
    fn reads_cross_segment_boundaries_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 400,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        let mut appended = Vec::new();
        for i in 0..20 {
            let records = batch(2, 1000 + i, 30, i as u64);
            let info = log.append(records.clone(), 0, 0).unwrap();
            appended.push(stamped(&records, info.base_offset, 0));
        }
        assert!(log.segment_count() > 5, "{} segments", log.segment_count());
        assert_eq!(log.log_end_offset(), 40);
        let everything: Vec<u8> = appended.concat();
        for offset in 0..40 {
            let read = log.read(offset, usize::MAX).unwrap();
            let first = (offset / 2) as usize;
            assert_eq!(
                &read[..],
                &appended[first..].concat()[..],
                "read from offset {offset}"
            );
        }
        assert_eq!(&log.read(0, usize::MAX).unwrap()[..], &everything[..]);
    }

    #[test]
    fn segments_roll_before_exceeding_segment_bytes_max() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 500,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        for i in 0..30 {
            log.append(batch(1, i, 50, i as u64), 0, 0).unwrap();
        }
        let sizes: Vec<u64> = lock(&log.state)
            .segments()
            .map(Segment::size_bytes)
            .collect();
        assert!(sizes.len() > 3);
        assert!(sizes.iter().all(|size| *size <= 500), "{sizes:?}");
        // A batch larger than a segment still gets a segment of its own.
        log.append(batch(1, 99, 2000, 99), 0, 0).unwrap();
        assert_eq!(lock(&log.state).active.base_offset(), 30);
    }

    #[test]
    fn read_honours_max_bytes_and_returns_an_oversized_first_batch_whole() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 250,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        let sizes: Vec<usize> = (0..6)
            .map(|i| {
                let records = batch(1, i, 40, i as u64);
                let size = records.len();
                log.append(records, 0, 0).unwrap();
                size
            })
            .collect();
        assert!(log.segment_count() >= 2);
        // Smaller than the first batch: that batch alone, whole.
        let read = log.read(0, 1).unwrap();
        assert_eq!(read.len(), sizes[0]);
        // One byte short of two batches: one.
        assert_eq!(
            log.read(0, sizes[0] + sizes[1] - 1).unwrap().len(),
            sizes[0]
        );
        // Room for exactly four batches, across a segment boundary: four whole batches.
        let four: usize = sizes[..4].iter().sum();
        let read = log.read(0, four).unwrap();
        assert_eq!(headers(&read).len(), 4);
        assert_eq!(read.len(), four);
        // From the middle.
        assert_eq!(
            headers(&log.read(3, sizes[3] + 5).unwrap())[0].base_offset,
            3
        );
    }

    #[test]
    fn reading_at_the_end_is_empty_and_past_it_is_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        assert!(log.read(0, 100).unwrap().is_empty());
        log.append(batch(2, 0, 10, 0), 0, 0).unwrap();
        assert!(log.read(2, 100).unwrap().is_empty());
        assert!(matches!(
            log.read(3, 100),
            Err(StorageError::OffsetOutOfRange {
                requested: 3,
                log_start_offset: 0,
                log_end_offset: 2
            })
        ));
        assert!(matches!(
            log.read(-1, 100),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn segment_rolls_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms_max: 1000,
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        log.append(one_record(0, 0), 0, 10_000).unwrap();
        log.append(one_record(0, 1), 0, 11_000).unwrap();
        assert_eq!(
            log.segment_count(),
            1,
            "exactly segment_ms_max old does not roll"
        );
        log.append(one_record(0, 2), 0, 11_001).unwrap();
        assert_eq!(log.segment_count(), 2);
        // The new segment's age counts from its first append.
        log.append(one_record(0, 3), 0, 12_000).unwrap();
        assert_eq!(log.segment_count(), 2);
        log.append(one_record(0, 4), 0, 12_002).unwrap();
        assert_eq!(log.segment_count(), 3);
        assert_eq!(headers(&log.read(0, usize::MAX).unwrap()).len(), 5);
    }

    /// One batch per segment, batch `i` with timestamp `i * 1000`.
    fn log_of_ten_segments(dir: &tempfile::TempDir, config: LogConfig) -> (PartitionLog, u64) {
        let config = LogConfig {
            segment_bytes_max: 100,
            ..config
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        let mut size = 0;
        for i in 0..10 {
            let records = one_record(i * 1000, i as u64);
            size = records.len() as u64;
            log.append(records, 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 10);
        (log, size)
    }

    #[test]
    fn retention_by_time_deletes_old_sealed_segments_and_advances_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(5000),
            ..test_config()
        };
        let (log, _) = log_of_ten_segments(&dir, config);
        assert_eq!(log.apply_retention(10_000).unwrap(), 5);
        assert_eq!(log.log_start_offset(), 5);
        assert_eq!(log.segment_count(), 5);
        assert!(matches!(
            log.read(4, 100),
            Err(StorageError::OffsetOutOfRange {
                requested: 4,
                log_start_offset: 5,
                ..
            })
        ));
        assert_eq!(headers(&log.read(5, 1).unwrap())[0].base_offset, 5);
        assert_eq!(crate::storage::testing::segment_logs(dir.path()).len(), 5);

        // Everything expired: the active segment stays.
        assert_eq!(log.apply_retention(1_000_000).unwrap(), 4);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), 9);
        assert_eq!(headers(&log.read(9, 1).unwrap())[0].base_offset, 9);

        // The log start offset survives a reopen.
        drop(log);
        let log = open_log(
            &std_fs(),
            dir.path(),
            &test_config(),
            ShutdownState::Unclean,
        );
        assert_eq!(log.log_start_offset(), 9);
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit_and_never_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, size) = log_of_ten_segments(&dir, test_config());
        drop(log);
        let config = LogConfig {
            segment_bytes_max: 100,
            retention_bytes: Some(3 * size + 1),
            ..test_config()
        };
        let log = open_log(&std_fs(), dir.path(), &config, ShutdownState::Clean);
        assert_eq!(log.apply_retention(0).unwrap(), 6);
        assert_eq!(log.size_bytes(), 4 * size);
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.apply_retention(0).unwrap(), 0);

        let dir = tempfile::tempdir().unwrap();
        let (log, _) = log_of_ten_segments(
            &dir,
            LogConfig {
                retention_bytes: Some(0),
                ..test_config()
            },
        );
        assert_eq!(log.apply_retention(0).unwrap(), 9);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), 10);
    }

    #[test]
    fn offset_for_timestamp_finds_the_first_batch_at_or_after() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 300,
            index_interval_bytes: 1,
            ..test_config()
        };
        let fs = std_fs();
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
        // Timestamps are not monotonic across batches.
        for (i, timestamp) in [100, 300, 200, 500, 400, 450, 600, 550]
            .into_iter()
            .enumerate()
        {
            log.append(one_record(timestamp, i as u64), 0, 0).unwrap();
        }
        assert!(log.segment_count() >= 3);
        let expect = [
            (0, Some((0, 100))),
            (100, Some((0, 100))),
            (150, Some((1, 300))),
            (300, Some((1, 300))),
            (301, Some((3, 500))),
            (450, Some((3, 500))),
            (501, Some((6, 600))),
            (600, Some((6, 600))),
            (601, None),
        ];
        for (timestamp, expected) in expect {
            assert_eq!(
                log.offset_for_timestamp(timestamp).unwrap(),
                expected,
                "timestamp {timestamp}"
            );
        }
        // The same answers from indexes loaded off disk.
        log.flush().unwrap();
        drop(log);
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
        assert_eq!(log.recovery_report().segments_scanned, 0);
        for (timestamp, expected) in expect {
            assert_eq!(
                log.offset_for_timestamp(timestamp).unwrap(),
                expected,
                "reopened, timestamp {timestamp}"
            );
        }
    }

    #[test]
    fn subscribe_sees_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&std_fs(), dir.path(), &test_config(), ShutdownState::Clean);
        let mut end = log.subscribe();
        assert_eq!(*end.borrow_and_update(), 0);
        log.append(batch(3, 0, 1, 0), 0, 0).unwrap();
        assert!(end.has_changed().unwrap());
        assert_eq!(*end.borrow_and_update(), 3);
    }

    #[test]
    fn roll_flushes_and_moves_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes_max: 100,
            ..test_config()
        };
        let fs = std_fs();
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Clean);
        for i in 0..3 {
            log.append(one_record(i, i as u64), 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 3);
        let recovery_point =
            checkpoint::read_offset(&*fs, dir.path(), RECOVERY_POINT_FILE).unwrap();
        assert_eq!(recovery_point, Some(3));
        // So an unclean reopen scans only the active segment.
        drop(log);
        let log = open_log(&fs, dir.path(), &config, ShutdownState::Unclean);
        assert_eq!(log.recovery_report().segments_scanned, 1);
        assert_eq!(log.log_end_offset(), 3);
    }

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

#[cfg(test)]
mod replica_tests;
