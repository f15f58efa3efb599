//! The controller's Raft log storage: entries, vote and committed id in one write-ahead file.
//!
//! [`RaftLogStore`] implements openraft's `RaftLogStorage` (storage-v2) over a single
//! append-only [`RecordFile`], `<data_dir>/controller/raft-log`. Every change is one record:
//!
//! | record              | written by        | durable before returning |
//! |---------------------|-------------------|--------------------------|
//! | `Entry(entry)`      | `append`          | yes: fsync, *then* `log_io_completed` |
//! | `Vote(vote)`        | `save_vote`       | yes (Raft's safety rests on it) |
//! | `Committed(id)`     | `save_committed`  | no: see below |
//! | `Purged(id)`        | `purge`           | yes |
//! | `Truncated{since}`  | `truncate`        | yes |
//!
//! Opening the store replays the records in order. Because the vote, truncations and purges
//! are records in the same file as the entries, one ordered file says everything and one
//! fsync makes any change durable; openraft's rule that log and vote writes are serialized
//! holds by construction (every write goes through `&mut self`). A truncation is logical (a
//! record), not a cut of the file: a vote written after the truncated entries must survive.
//!
//! The committed log id is saved without an fsync. It only lets a restarted node re-apply
//! committed entries before it hears from the leader; if the last one is lost, the node
//! re-applies less and learns the rest from the leader. The next fsync covers it anyway.
//! The store also publishes its index as the `sluice_controller_raft_commit_index` gauge:
//! openraft's metrics lack it.
//!
//! Replay cuts a torn tail (see [`record_file`](super::record_file)): an entry whose write
//! did not finish was never reported flushed, so no quorum counted it.
//!
//! Entries that are not purged stay in memory (readers clone them from there); openraft
//! purges the log behind each snapshot, which bounds both memory and the live part of the
//! file. The file itself is compacted (rewritten atomically with only the live records) when
//! it is over [`LOG_COMPACTION_BYTES_MIN`] and more than half garbage.
//!
//! # Invariants
//! - Replay reproduces exactly the state the live store had: each record is replayed with
//!   the same effect its live call had. A record that passes its checksum but does not
//!   decode is corruption and opening fails (it is not a torn write).
//! - The store does not police entry order. That the log has no holes and is truncated
//!   before it is overwritten is openraft's guarantee; openraft's own storage suite appends
//!   out of order on purpose, so asserting it here would fail the suite.
//! - `last_purged` never goes back: a purge behind the last one changes nothing.
//! - After a failed write or fsync the store refuses all writes (the file is poisoned) and
//!   openraft shuts the node down on the error.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogId, RaftLogReader, StorageError, Vote,
};
use serde::{Deserialize, Serialize};

use super::record_file::{remove_leftover_temporary, replace_atomically, RecordFile};
use super::{NodeId, TypeConfig};
use crate::storage::FileSystem;

/// File name of the write-ahead log inside the controller directory.
pub const LOG_FILE_NAME: &str = "raft-log";
/// The log file is not compacted below this size, however much of it is garbage.
pub const LOG_COMPACTION_BYTES_MIN: u64 = 4 * 1024 * 1024;

/// One record of the log file.
#[derive(Debug, Serialize, Deserialize)]
enum LogRecord {
    Entry(Entry<TypeConfig>),
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
    Purged(LogId<NodeId>),
    Truncated { since: u64 },
}

type Entries = Arc<Mutex<BTreeMap<u64, Entry<TypeConfig>>>>;

/// Reads log entries for openraft's replication tasks, concurrently with the writer.
#[derive(Debug, Clone)]
pub struct RaftLogReaderHandle {
    entries: Entries,
}

/// The Raft log storage. See the module docs.
#[derive(Debug)]
pub struct RaftLogStore {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    file: RecordFile,
    entries: Entries,
    /// Framed size of each live entry's record, for deciding when to compact.
    entry_record_bytes: BTreeMap<u64, u64>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    compaction_bytes_min: u64,
}

impl RaftLogStore {
    /// Open (or create) the log in `dir`, replaying and repairing it.
    pub fn open(fs: Arc<dyn FileSystem>, dir: &Path) -> io::Result<RaftLogStore> {
        fs.create_dir_all(dir)?;
        let path = dir.join(LOG_FILE_NAME);
        remove_leftover_temporary(fs.as_ref(), &path)?;
        let (file, recovered) = RecordFile::open(fs.as_ref(), &path)?;
        let mut store = RaftLogStore {
            fs,
            path,
            file,
            entries: Entries::default(),
            entry_record_bytes: BTreeMap::new(),
            vote: None,
            committed: None,
            last_purged: None,
            compaction_bytes_min: LOG_COMPACTION_BYTES_MIN,
        };
        for (position, payload) in recovered.records {
            let record: LogRecord = serde_json::from_slice(&payload).map_err(|error| {
                corrupt(
                    &store.path,
                    position,
                    format!("undecodable record: {error}"),
                )
            })?;
            store.replay(record, payload.len() as u64);
        }
        publish_commit_index(store.committed);
        Ok(store)
    }

    /// Shrink the compaction threshold (tests).
    pub fn set_compaction_bytes_min(&mut self, bytes: u64) {
        self.compaction_bytes_min = bytes;
    }

    /// Size of the log file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.file.end()
    }

    /// Redo one record's effect, exactly as the live call did it.
    fn replay(&mut self, record: LogRecord, payload_bytes: u64) {
        match record {
            LogRecord::Entry(entry) => {
                let index = entry.get_log_id().index;
                self.entry_record_bytes.insert(
                    index,
                    payload_bytes + super::record_file::RECORD_HEADER_BYTES,
                );
                self.lock_entries().insert(index, entry);
            }
            LogRecord::Vote(vote) => self.vote = Some(vote),
            LogRecord::Committed(committed) => self.committed = committed,
            LogRecord::Purged(log_id) => self.forget_upto(log_id),
            LogRecord::Truncated { since } => self.forget_since(since),
        }
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry<TypeConfig>>> {
        lock(&self.entries)
    }

    /// Drop entries up to `log_id` and remember it as purged, unless it is behind the last
    /// purge.
    fn forget_upto(&mut self, log_id: LogId<NodeId>) {
        if self
            .last_purged
            .is_some_and(|purged| purged.index >= log_id.index)
        {
            return;
        }
        let mut entries = self.lock_entries();
        let kept = entries.split_off(&(log_id.index + 1));
        *entries = kept;
        drop(entries);
        let kept_sizes = self.entry_record_bytes.split_off(&(log_id.index + 1));
        self.entry_record_bytes = kept_sizes;
        self.last_purged = Some(log_id);
    }

    fn forget_since(&mut self, index: u64) {
        self.lock_entries().split_off(&index);
        self.entry_record_bytes.split_off(&index);
    }

    /// Append one record and fsync it.
    fn write_durably(&mut self, record: &LogRecord) -> io::Result<()> {
        let payload = encode(record)?;
        self.file.append([payload.as_slice()])?;
        self.file.sync()
    }

    /// Rewrite the file with only the live records if it is big and mostly garbage. A
    /// failure poisons the log: after a failed rename or directory fsync the open handle
    /// may point at a file that is no longer (durably) the log.
    fn compact_if_worthwhile(&mut self) -> io::Result<()> {
        let result = self.compact_if_worthwhile_inner();
        if let Err(error) = &result {
            self.file.poison(format!("compaction failed: {error}"));
        }
        result
    }

    fn compact_if_worthwhile_inner(&mut self) -> io::Result<()> {
        let live_bytes: u64 = self.entry_record_bytes.values().sum();
        let file_bytes = self.file.end();
        if file_bytes < self.compaction_bytes_min || file_bytes < 2 * live_bytes.max(1) {
            return Ok(());
        }
        let mut records = Vec::new();
        if let Some(vote) = self.vote {
            records.push(encode(&LogRecord::Vote(vote))?);
        }
        records.push(encode(&LogRecord::Committed(self.committed))?);
        if let Some(purged) = self.last_purged {
            records.push(encode(&LogRecord::Purged(purged))?);
        }
        for entry in self.lock_entries().values() {
            records.push(encode(&LogRecord::Entry(entry.clone()))?);
        }
        replace_atomically(
            self.fs.as_ref(),
            &self.path,
            records.iter().map(Vec::as_slice),
        )?;
        let (file, _) = RecordFile::open(self.fs.as_ref(), &self.path)?;
        tracing::info!(
            before_bytes = file_bytes,
            after_bytes = file.end(),
            "compacted the controller log"
        );
        self.file = file;
        Ok(())
    }

    fn log_state(&self) -> LogState<TypeConfig> {
        let last = self
            .lock_entries()
            .last_key_value()
            .map(|(_, entry)| *entry.get_log_id());
        LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: last.or(self.last_purged),
        }
    }
}

/// openraft's metrics do not carry the commit index; the log store is told it.
fn publish_commit_index(committed: Option<LogId<NodeId>>) {
    let index = committed.map_or(0, |log_id| log_id.index);
    metrics::gauge!(crate::metrics::CONTROLLER_RAFT_COMMIT_INDEX).set(index as f64);
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock left the map in a state we wrote completely (every
    // update is a single insert or split), so the data is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn encode(record: &LogRecord) -> io::Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(io::Error::other)
}

fn corrupt(path: &Path, position: u64, reason: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is corrupt at byte {position}: {reason}", path.display()),
    )
}

fn write_error(subject: ErrorSubject<NodeId>, error: io::Error) -> StorageError<NodeId> {
    StorageError::from_io_error(subject, ErrorVerb::Write, error)
}

fn read_entries<RB: RangeBounds<u64>>(entries: &Entries, range: RB) -> Vec<Entry<TypeConfig>> {
    lock(entries)
        .range(range)
        .map(|(_, entry)| entry.clone())
        .collect()
}

impl RaftLogReader<TypeConfig> for RaftLogReaderHandle {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(read_entries(&self.entries, range))
    }
}

impl RaftLogReader<TypeConfig> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(read_entries(&self.entries, range))
    }
}

impl RaftLogStorage<TypeConfig> for RaftLogStore {
    type LogReader = RaftLogReaderHandle;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        Ok(self.log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        RaftLogReaderHandle {
            entries: self.entries.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_durably(&LogRecord::Vote(*vote))
            .map_err(|error| write_error(ErrorSubject::Vote, error))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // No fsync: see the module docs.
        let payload = encode(&LogRecord::Committed(committed))
            .map_err(|error| write_error(ErrorSubject::Store, error))?;
        self.file
            .append([payload.as_slice()])
            .map_err(|error| write_error(ErrorSubject::Store, error))?;
        self.committed = committed;
        publish_commit_index(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut payloads = Vec::new();
        let mut batch = Vec::new();
        for entry in entries {
            let record = LogRecord::Entry(entry);
            payloads.push(encode(&record).map_err(|error| write_error(ErrorSubject::Logs, error))?);
            let LogRecord::Entry(entry) = record else {
                unreachable!("built as an entry just above")
            };
            batch.push(entry);
        }
        self.file
            .append(payloads.iter().map(Vec::as_slice))
            .map_err(|error| write_error(ErrorSubject::Logs, error))?;
        {
            let mut map = lock(&self.entries);
            for (entry, payload) in batch.into_iter().zip(&payloads) {
                let index = entry.get_log_id().index;
                self.entry_record_bytes.insert(
                    index,
                    payload.len() as u64 + super::record_file::RECORD_HEADER_BYTES,
                );
                map.insert(index, entry);
            }
        }
        // Durable first, then tell openraft: only flushed entries may count toward a quorum.
        match self.file.sync() {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.log_io_completed(Err(io::Error::new(error.kind(), error.to_string())));
                Err(write_error(ErrorSubject::Logs, error))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_durably(&LogRecord::Truncated {
            since: log_id.index,
        })
        .map_err(|error| write_error(ErrorSubject::Logs, error))?;
        self.forget_since(log_id.index);
        self.compact_if_worthwhile()
            .map_err(|error| write_error(ErrorSubject::Logs, error))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_durably(&LogRecord::Purged(log_id))
            .map_err(|error| write_error(ErrorSubject::Logs, error))?;
        self.forget_upto(log_id);
        self.compact_if_worthwhile()
            .map_err(|error| write_error(ErrorSubject::Logs, error))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::{blank_ent, log_id};
    use openraft::EntryPayload;

    use super::*;
    use crate::controller::MetadataCommand;
    use crate::storage::{FaultInjectingFileSystem, StdFileSystem};

    fn open(dir: &Path) -> RaftLogStore {
        RaftLogStore::open(Arc::new(StdFileSystem), dir).unwrap()
    }

    fn command_entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, 1, index),
            payload: EntryPayload::Normal(MetadataCommand::DeleteTopic {
                id: uuid::Uuid::from_u128(u128::from(index)),
            }),
        }
    }

    async fn indexes(store: &mut RaftLogStore) -> Vec<u64> {
        store
            .try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .map(|entry| entry.log_id.index)
            .collect()
    }

    #[tokio::test]
    async fn entries_vote_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store
            .blocking_append((1..=3).map(|i| command_entry(1, i)))
            .await
            .unwrap();
        store.save_vote(&Vote::new(4, 2)).await.unwrap();
        store.save_committed(Some(log_id(1, 1, 2))).await.unwrap();
        store.blocking_append([blank_ent(4, 2, 4)]).await.unwrap();
        let before = store.try_get_log_entries(..).await.unwrap();
        drop(store);

        let mut store = open(dir.path());
        assert_eq!(store.try_get_log_entries(..).await.unwrap(), before);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(4, 2)));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 2)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(4, 2, 4)));
        assert_eq!(state.last_purged_log_id, None);
    }

    #[tokio::test]
    async fn reopen_cuts_a_torn_entry_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store
            .blocking_append((1..=3).map(|i| command_entry(1, i)))
            .await
            .unwrap();
        drop(store);
        // A crash in the middle of writing entry 3.
        let path = dir.path().join(LOG_FILE_NAME);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();

        let mut store = open(dir.path());
        assert_eq!(indexes(&mut store).await, vec![1, 2]);
        store.blocking_append([command_entry(2, 3)]).await.unwrap();
        drop(store);
        let mut store = open(dir.path());
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3]);
        let last = store.get_log_state().await.unwrap().last_log_id;
        assert_eq!(
            last,
            Some(log_id(2, 1, 3)),
            "the rewritten entry, not the torn one"
        );
    }

    #[tokio::test]
    async fn a_vote_saved_after_truncated_entries_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store
            .blocking_append((1..=10).map(|i| command_entry(1, i)))
            .await
            .unwrap();
        store.save_vote(&Vote::new(2, 3)).await.unwrap();
        store.truncate(log_id(1, 1, 8)).await.unwrap();
        store.purge(log_id(1, 1, 3)).await.unwrap();
        store.save_vote(&Vote::new(3, 3)).await.unwrap();
        drop(store);

        let mut store = open(dir.path());
        assert_eq!(indexes(&mut store).await, vec![4, 5, 6, 7]);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 3)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    }

    #[tokio::test]
    async fn purging_everything_keeps_the_last_purged_id_as_the_last_log_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store
            .blocking_append((1..=3).map(|i| command_entry(1, i)))
            .await
            .unwrap();
        // A follower installing a snapshot purges past its own log.
        store.purge(log_id(2, 1, 9)).await.unwrap();
        drop(store);
        let mut store = open(dir.path());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 1, 9)));
        store.blocking_append([command_entry(2, 10)]).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![10]);
    }

    #[tokio::test]
    async fn compaction_rewrites_only_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.set_compaction_bytes_min(0);
        store
            .blocking_append((1..=50).map(|i| command_entry(1, i)))
            .await
            .unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        let before = store.file_bytes();
        store.purge(log_id(1, 1, 45)).await.unwrap();
        assert!(
            store.file_bytes() < before / 4,
            "{} bytes after compaction, {before} before",
            store.file_bytes()
        );
        store.blocking_append([command_entry(1, 51)]).await.unwrap();
        drop(store);
        let mut store = open(dir.path());
        assert_eq!(indexes(&mut store).await, (46..=51).collect::<Vec<_>>());
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 45)));
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_the_append_and_poisons_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultInjectingFileSystem::new(Arc::new(StdFileSystem)));
        let mut store = RaftLogStore::open(fs.clone(), dir.path()).unwrap();
        store.blocking_append([command_entry(1, 1)]).await.unwrap();
        fs.start_failing_syncs();
        assert!(store.blocking_append([command_entry(1, 2)]).await.is_err());
        fs.stop_failing_syncs();
        assert!(store.blocking_append([command_entry(1, 3)]).await.is_err());
        assert!(store.save_vote(&Vote::new(9, 1)).await.is_err());
    }

    #[tokio::test]
    async fn a_checksummed_but_undecodable_record_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE_NAME);
        let records = [
            encode(&LogRecord::Entry(command_entry(1, 1))).unwrap(),
            b"{\"Entry\": 17}".to_vec(),
        ];
        replace_atomically(&StdFileSystem, &path, records.iter().map(Vec::as_slice)).unwrap();
        let error = RaftLogStore::open(Arc::new(StdFileSystem), dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
