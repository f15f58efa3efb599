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
//! - `state`: segments, offsets, poison. Held by append, read, retention and briefly by the
//!   syncer, never during an fsync (except that roll creates and syncs a directory entry).
//! - `sync`: held by whoever fsyncs (group-commit syncer or flush); it also guards the
//!   recovery-point checkpoint. Whoever releases it then notifies the durable watch, so a
//!   waiter that found it taken always wakes and looks again.
//! - `log_start_checkpoint`: serialises writes of the log-start-offset checkpoint.
//!
//! Lock order: `sync` before `state`; `log_start_checkpoint` before `state`. `state` is
//! never held while taking either.
//!
//! # Invariants
//! - `log_start_offset <= log_end_offset`; offsets are contiguous (asserted on append).
//! - The segments are ordered by base offset; each sealed segment ends where the next begins;
//!   the last one is the active segment.
//! - `durable_offset <= log_end_offset`, and both only grow.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use sluice_protocol::batch::{self, BatchHeader, BatchIterError, Batches};
use tokio::sync::watch;

use super::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use super::fs::{FileSystem, StorageFile};
use super::recovery::{self, RecoveryReport, ShutdownState};
use super::segment::{ActiveSegment, FirstBatch, ReadEnd, SealedSegment, Segment, SegmentFiles};
use super::{Durability, LogConfig, StorageError};

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
        let recovered = recovery::recover(&*fs, &dir, &config, shutdown)?;
        let report = recovered.report.clone();
        if report.segments_scanned > 0 || report.indexes_rebuilt > 0 || report.corruption.is_some()
        {
            tracing::info!(
                partition = %name,
                ?shutdown,
                log_start_offset = report.log_start_offset,
                log_end_offset = report.log_end_offset,
                segments_scanned = report.segments_scanned,
                indexes_rebuilt = report.indexes_rebuilt,
                bytes_truncated = report.bytes_truncated,
                segments_dropped = report.segments_dropped,
                corruption = report.corruption.as_deref().unwrap_or("none"),
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
                writes: Writes::Open,
            }),
            sync: Mutex::new(SyncState { recovery_point }),
            log_start_checkpoint: Mutex::new(-1),
            end_offset: watch::Sender::new(log_end_offset),
            // What recovery kept is durable once the flush below has run.
            durable: watch::Sender::new(Durable {
                offset: log_end_offset,
                refusal: None,
            }),
            recovery_report: report,
        };
        // Make what recovery changed (truncations, rebuilt indexes) durable and move the
        // recovery point to the end, so the next crash does not scan all of it again.
        if shutdown == ShutdownState::Unclean
            || recovery_point != log_end_offset
            || report_changed_files(&log.recovery_report)
        {
            log.flush_everything()?;
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
    /// back to back). See the module documentation.
    ///
    /// Refuses (`Poisoned`) once the log is poisoned or closed. A corrupt batch is refused
    /// (`Corrupt`) before anything is written. If the flush that follows a segment roll
    /// fails, the batches are in the log but the log is poisoned and the error is returned.
    pub fn append(
        &self,
        mut records: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let batches = validate_all(&records)?;
        let mut state = lock(&self.state);
        state.check_appendable()?;
        let base_offset = state.log_end_offset();
        let mut rolled = false;
        for (start, header) in batches {
            let offset = state.log_end_offset();
            let bytes = &mut records[start..start + header.size_bytes()];
            batch::stamp(bytes, offset, leader_epoch);
            let header = BatchHeader {
                base_offset: offset,
                partition_leader_epoch: leader_epoch,
                ..header
            };
            if state
                .active
                .should_roll(bytes.len(), header.last_offset(), now_ms, &self.config)
            {
                if let Err(error) = self.roll(&mut state) {
                    return Err(self.poison(
                        &mut state,
                        format!("rolling a new segment at offset {offset} failed: {error}"),
                    ));
                }
                rolled = true;
            }
            if let Err(error) = state.active.append(bytes, &header, now_ms) {
                return Err(self.poison(
                    &mut state,
                    format!("writing the batch at offset {offset} failed: {error}"),
                ));
            }
        }
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
    pub async fn wait_durable(&self, offset: i64) -> Result<(), StorageError> {
        let mut durable = self.durable.subscribe();
        loop {
            {
                let current = durable.borrow_and_update();
                if let Some(reason) = &current.refusal {
                    return Err(StorageError::Poisoned(reason.clone()));
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
        for file in files {
            if let Err(error) = file.sync() {
                let mut state = lock(&self.state);
                return Err(self.poison(&mut state, format!("fsync of {file:?} failed: {error}")));
            }
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
        let mut checkpointed = lock(&self.log_start_checkpoint);
        let (deleted, log_start_offset) = {
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
            (doomed.len(), state.log_start_offset)
        };
        tracing::info!(partition = %self.name, deleted, log_start_offset, "retention deleted segments");
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
        for segment in &files {
            for file in [&segment.log, &segment.offset_index, &segment.time_index] {
                if let Err(error) = file.sync() {
                    let mut state = lock(&self.state);
                    return Err(
                        self.poison(&mut state, format!("fsync of {file:?} failed: {error}"))
                    );
                }
            }
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

/// Whether recovery rewrote anything that a flush must make durable.
fn report_changed_files(report: &RecoveryReport) -> bool {
    report.segments_scanned > 0
        || report.indexes_rebuilt > 0
        || report.segments_dropped > 0
        || report.bytes_truncated > 0
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
